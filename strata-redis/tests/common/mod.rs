//! Helpers shared by the Redis tests: a throwaway server, and caches with an L1 over it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use strata::{Cache, LayerSpec};
use strata_redis::server::RedisServer;
use strata_redis::{RedisLayer, RedisLayerBuilder};

/// A fresh server; fails the test (never skips it) when none can be started.
pub fn server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot start a test redis-server: {e}"))
}

/// The default test layer configuration: short timeouts, a fast breaker.
pub fn layer_builder(url: &str) -> RedisLayerBuilder {
    test_settings(RedisLayer::builder(url))
}

/// The same settings for a cluster.
pub fn cluster_layer_builder(urls: Vec<String>) -> RedisLayerBuilder {
    test_settings(RedisLayer::cluster_builder(urls))
}

fn test_settings(builder: RedisLayerBuilder) -> RedisLayerBuilder {
    builder
        .prefix("t:")
        .connect_timeout(Duration::from_millis(200))
        .read_timeout(Duration::from_millis(200))
        .write_timeout(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_millis(200))
}

pub type Layer = Arc<RedisLayer<String, String>>;

/// L1 memory (capacity 10 000) over the Redis layer.
pub fn two_level(layer: Layer) -> Cache<String, String> {
    Cache::builder()
        .layer(LayerSpec::memory("l1", 10_000))
        .layer(LayerSpec::shared("redis", layer))
        .build()
        .expect("valid cache")
}

/// One of two caches sharing a server, each subscribed to the other's writes.
pub struct Subscribed {
    pub cache: Cache<String, String>,
    pub layer: Layer,
    pub sync: Option<strata_redis::Subscription>,
}

/// Two caches (L1 memory over the server), each subscribed.
pub fn two_subscribed(server: &RedisServer) -> (Subscribed, Subscribed) {
    let one = || {
        let layer: Layer = Arc::new(layer_builder(&server.url()).build().unwrap());
        let cache = two_level(layer.clone());
        let sync = Some(layer.keep_in_sync(&cache).unwrap());
        Subscribed { cache, layer, sync }
    };
    (one(), one())
}

/// A raw connection to the server, for looking behind the layer's back.
pub fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Polls `f` until it returns true or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
