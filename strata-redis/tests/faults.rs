//! Faults against a real redis-server: killed (SIGKILL) during a mixed run, paused (SIGSTOP),
//! the invalidation connection killed (`CLIENT KILL`).

mod common;

use common::{eventually, layer_builder, server, two_level, two_subscribed};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata::layer::LayerHealth;
use strata::{DeleteOptions, Error};
use strata_redis::SyncState;

#[test]
fn redis_killed_during_a_mixed_run_then_restarted() {
    let mut server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer.clone());
    let keys = 200;
    // One writer per key (thread t owns keys t, t+4, ...): the last acknowledged value of each.
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    for k in 0..keys {
        cache.set(format!("k{k}"), "0".into()).unwrap();
        acked.lock().unwrap().insert(format!("k{k}"), 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let incomplete = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (cache, acked, stop, incomplete) = (
                cache.clone(),
                acked.clone(),
                stop.clone(),
                incomplete.clone(),
            );
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("k{}", (n as usize * 4 + t) % keys);
                    if n.is_multiple_of(5) {
                        let value = n * 10 + t as u64;
                        match cache.set(key.clone(), value.to_string()) {
                            Ok(_) => {
                                acked.lock().unwrap().insert(key, value);
                            }
                            Err(Error::Incomplete(report)) => {
                                // Named layer: Redis failed, L1 took the value.
                                assert_eq!(report.failures[0].layer.as_ref(), "redis");
                                assert!(report.written.contains(0));
                                acked.lock().unwrap().insert(key, value);
                                *incomplete.lock().unwrap() += 1;
                            }
                            Err(other) => panic!("unexpected: {other}"),
                        }
                    } else {
                        // Reads never panic; a key L1 holds is served while Redis is down.
                        let _ = cache.get(&key);
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(200));
    server.kill();
    std::thread::sleep(Duration::from_millis(300));
    // L1 serves what it holds while Redis is down.
    let held = cache.entries("l1").unwrap();
    assert!(!held.is_empty());
    let (key, _) = &held[0];
    assert!(cache.get(key).unwrap().is_some());
    server.restart().unwrap();
    // The layer recovers by itself: writes complete again.
    assert!(
        eventually(Duration::from_secs(5), || cache
            .set("probe".into(), "x".into())
            .is_ok_and(|r| r.is_complete())),
        "{:?}",
        cache.stats().layers[1]
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("no panic");
    }
    assert!(
        *incomplete.lock().unwrap() > 0,
        "writes failed while Redis was down"
    );
    // No value older than an acknowledged write is served: every key holds its last
    // acknowledged value or nothing (the restarted server is empty).
    for (key, value) in acked.lock().unwrap().iter() {
        let seen = cache.get(key).unwrap();
        assert!(
            seen.is_none() || seen.as_deref() == Some(value.to_string().as_str()),
            "{key}: served {seen:?}, last acknowledged {value}"
        );
    }
}

#[test]
fn redis_paused_every_call_returns_within_the_timeout_and_the_breaker_opens() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer.clone());
    for k in 0..100 {
        cache.set(format!("k{k}"), "v".into()).unwrap();
    }
    server.pause();
    let mut latencies = Vec::new();
    for k in 0..100 {
        // Not in L1: every read must ask Redis.
        let key = format!("k{k}");
        cache
            .delete_with(&key, &DeleteOptions::new().local_only())
            .unwrap();
        let start = Instant::now();
        let result = cache.get(&key);
        latencies.push(start.elapsed());
        assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
        if k == 10 {
            assert_eq!(cache.stats().layers[1].health, LayerHealth::Open);
        }
    }
    eprintln!("first calls: {:?}", &latencies[..5]);
    latencies.sort();
    let p99 = latencies[98];
    let max = *latencies.last().unwrap();
    eprintln!(
        "get during a pause: p50 {:?}, p99 {p99:?}, max {max:?}",
        latencies[50]
    );
    // A call that opens a connection waits at most the connect timeout (200 ms, the handshake
    // included) and then the read timeout (200 ms).
    // The bound is the two timeouts (400 ms); the slack is for a loaded machine's scheduler.
    assert!(max < Duration::from_millis(650), "max {max:?}");
    assert!(p99 < Duration::from_millis(650));
    assert!(
        latencies[50] < Duration::from_millis(5),
        "the breaker answers at once"
    );
    assert!(layer.redis_stats().circuit_opened >= 1);
    server.resume();
    assert!(eventually(Duration::from_secs(3), || cache
        .get("k1")
        .is_ok_and(|v| v.is_some())));
    assert_eq!(cache.stats().layers[1].health, LayerHealth::Healthy);
}

#[test]
fn a_killed_invalidation_connection_resubscribes_and_clears_l1() {
    let server = server();
    let (one, two) = two_subscribed(&server);
    let (a, b, layer_b) = (&one.cache, &two.cache, two.layer.clone());
    a.set("k".into(), "v1".into()).unwrap();
    assert!(eventually(Duration::from_secs(1), || layer_b
        .redis_stats()
        .invalidations
        >= 1));
    assert_eq!(b.get("k").unwrap().as_deref(), Some("v1"));
    assert!(b.get_from_layer("l1", "k").unwrap().is_some());

    // Kill every subscriber connection (both caches'), then write at once: the message may be
    // published while B is not listening.
    let killed = server.cli(&["client", "kill", "type", "pubsub"]).unwrap();
    assert!(killed.trim() == "2", "{killed}");
    let write_returned = Instant::now();
    a.set("k".into(), "v2".into()).unwrap();
    let bound = Duration::from_millis(500);
    assert!(
        eventually(bound, || b.get("k").unwrap().as_deref() == Some("v2")),
        "B served its stale copy for more than {bound:?}"
    );
    eprintln!(
        "B served the new value {:?} after the write returned",
        write_returned.elapsed()
    );
    assert!(eventually(Duration::from_secs(1), || {
        let stats = layer_b.redis_stats();
        stats.sync == SyncState::InSync && stats.resubscriptions >= 1
    }));
}

#[test]
fn a_silent_invalidation_connection_is_found_by_ping() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer.clone());
    let _sync = layer.keep_in_sync(&cache).unwrap();
    // A paused server keeps the socket open and says nothing: only the PING after a second
    // of silence finds out.
    server.pause();
    assert!(
        eventually(Duration::from_secs(3), || layer.redis_stats().sync
            == SyncState::Lost),
        "{:?}",
        layer.redis_stats()
    );
    server.resume();
    assert!(eventually(Duration::from_secs(3), || {
        let stats = layer.redis_stats();
        stats.sync == SyncState::InSync && stats.resubscriptions == 1
    }));
}
