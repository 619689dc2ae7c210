//! Two processes, each with an in-memory L1 over one shared Redis.
//!
//! ```sh
//! cargo run -p strata-redis --example two_processes
//! ```
//!
//! The parent starts a throwaway redis-server (`strata_redis::server`; point the layer at your
//! own server instead in an application), caches a value in its L1, then runs this same
//! program as a second process that reads the value from Redis and overwrites it. The
//! parent's L1 copy is dropped by the invalidation the child's write published, so the
//! parent's next read returns the child's value.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata::{Cache, LayerSpec};
use strata_redis::server::RedisServer;
use strata_redis::{RedisLayer, Subscription};

/// One process's cache: L1 memory over Redis, subscribed to other processes' writes.
fn open(url: &str) -> Result<(Cache<String, String>, Subscription), Box<dyn std::error::Error>> {
    let redis = Arc::new(
        RedisLayer::builder(url)
            .prefix("example:")
            .build::<String, String>()?,
    );
    let cache = Cache::builder()
        .layer(LayerSpec::memory("l1", 10_000).ttl(Duration::from_secs(60)))
        .layer(LayerSpec::shared("redis", redis.clone()).ttl(Duration::from_secs(3600)))
        .build()?;
    let subscription = redis.keep_in_sync(&cache)?;
    Ok((cache, subscription))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, url] = args.as_slice() {
        if role == "--child" {
            // The second process: sees the parent's value through Redis, then replaces it.
            let (cache, _sync) = open(url)?;
            let seen = cache.get("greeting")?;
            println!("child:  read {seen:?} from Redis");
            cache.set("greeting".into(), "bonjour".into())?;
            println!("child:  wrote \"bonjour\"");
            return Ok(());
        }
    }

    let server = RedisServer::start()?;
    let (cache, _sync) = open(&server.url())?;
    cache.set("greeting".into(), "hello".into())?;
    assert_eq!(
        cache.get_from_layer("l1", "greeting")?.as_deref(),
        Some("hello")
    );
    println!("parent: wrote \"hello\" (Redis, then L1)");

    let status = Command::new(std::env::current_exe()?)
        .args(["--child", &server.url()])
        .status()?;
    assert!(status.success(), "the child process failed");

    // The child's write returned before it exited; its invalidation reaches us within the
    // invalidation delay (well under a millisecond on loopback).
    let start = Instant::now();
    loop {
        let value = cache.get("greeting")?;
        if value.as_deref() == Some("bonjour") {
            println!(
                "parent: read \"bonjour\" {:?} after the child exited",
                start.elapsed()
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "stale: {value:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("stats:  {:?}", cache.stats().layers[1]);
    Ok(())
}
