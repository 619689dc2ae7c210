//! A multi-threaded stress test of the concurrency contract.
//!
//! Writers store per-key increasing sequence numbers (each key has exactly one writer, so a
//! key's sequence order is its real-time write order), deleters delete, readers read single
//! keys and batches, while small L1/L2 capacities keep eviction constant, a driven clock makes
//! entries expire, and every lower-layer hit is promoted. A reader fails the test if it sees:
//!
//! - a value older than one whose `set` had returned before the read started (contract 1), or
//! - a value written before a `delete` that had returned before the read started (contract 2).
//!
//! Misses are always allowed (eviction and expiry).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use strata::{Cache, Clock, LayerSpec};

const KEYS: u64 = 128;
const WRITERS: u64 = 2;

struct Shared {
    /// Highest sequence number whose `set` has returned, per key.
    committed: Vec<AtomicU64>,
    /// Every sequence below this is dead: a `delete` that returned removed it.
    deleted_below: Vec<AtomicU64>,
    stop: AtomicBool,
}

fn encode(key: u64, seq: u64) -> u64 {
    (key << 40) | seq
}

fn check(shared: &Shared, key: u64, floor: u64, dead_below: u64, value: Option<u64>, what: &str) {
    let Some(value) = value else { return };
    assert_eq!(value >> 40, key, "{what}: value of another key");
    let seq = value & ((1 << 40) - 1);
    assert!(
        seq >= floor,
        "{what}: key {key} read seq {seq}, but seq {floor} was committed before the read started"
    );
    assert!(
        seq >= dead_below,
        "{what}: key {key} read seq {seq}, deleted before the read started (dead below {dead_below})"
    );
    let _ = shared;
}

fn run(layers: usize, deferred: Option<usize>, ops_per_thread: u64) {
    let (clock, hand) = Clock::manual();
    let mut builder = Cache::builder().clock(clock);
    let capacities = [32, 96, 400];
    let ttls = [15, 60, 400];
    for layer in 0..layers {
        builder = builder.layer(
            LayerSpec::memory(format!("l{}", layer + 1), capacities[layer])
                .ttl(Duration::from_millis(ttls[layer])),
        );
    }
    if let Some(batch) = deferred {
        builder = builder.deferred_promotion(batch);
    }
    let cache: Cache<u64, u64> = builder.build().unwrap();
    let shared = Arc::new(Shared {
        committed: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        deleted_below: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
    });

    let mut threads = Vec::new();
    // Writers: writer w owns keys k with k % WRITERS == w.
    for w in 0..WRITERS {
        let (cache, shared, hand) = (cache.clone(), shared.clone(), hand.clone());
        threads.push(thread::spawn(move || {
            let mut seq = vec![0u64; KEYS as usize];
            let mut rng = w + 1;
            for i in 0..ops_per_thread {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = ((rng >> 33) % (KEYS / WRITERS)) * WRITERS + w;
                seq[key as usize] += 1;
                let s = seq[key as usize];
                if i % 16 == 0 {
                    let batch = vec![(key, encode(key, s))];
                    for r in cache.set_many(batch) {
                        r.unwrap();
                    }
                } else {
                    cache.set(key, encode(key, s)).unwrap();
                }
                shared.committed[key as usize].fetch_max(s, SeqCst);
                // Time also moves with the writes, so entries expire however threads are
                // scheduled.
                if i % 32 == 0 {
                    hand.advance(Duration::from_millis(1));
                }
            }
        }));
    }
    // A deleter.
    {
        let (cache, shared) = (cache.clone(), shared.clone());
        threads.push(thread::spawn(move || {
            let mut key = 0;
            while !shared.stop.load(SeqCst) {
                key = (key + 7) % KEYS;
                let before = shared.committed[key as usize].load(SeqCst);
                if key % 5 == 0 {
                    for r in cache.delete_many(&[key]) {
                        r.unwrap();
                    }
                } else {
                    cache.delete(&key).unwrap();
                }
                shared.deleted_below[key as usize].fetch_max(before + 1, SeqCst);
                thread::yield_now();
            }
        }));
    }
    // The clock.
    {
        let shared = shared.clone();
        threads.push(thread::spawn(move || {
            while !shared.stop.load(SeqCst) {
                hand.advance(Duration::from_millis(3));
                thread::yield_now();
            }
        }));
    }
    // Readers.
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let (cache, shared) = (cache.clone(), shared.clone());
            thread::spawn(move || {
                let mut rng = r + 100;
                let mut reads = 0u64;
                while !shared.stop.load(SeqCst) || reads < 1_000 {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let key = (rng >> 33) % KEYS;
                    if reads % 8 == 0 {
                        let keys = [key, (key + 1) % KEYS, (key + 2) % KEYS];
                        let floors: Vec<_> = keys
                            .iter()
                            .map(|&k| {
                                (
                                    shared.committed[k as usize].load(SeqCst),
                                    shared.deleted_below[k as usize].load(SeqCst),
                                )
                            })
                            .collect();
                        for ((k, (floor, dead)), value) in
                            keys.iter().zip(floors).zip(cache.get_many(&keys))
                        {
                            check(&shared, *k, floor, dead, value.unwrap(), "get_many");
                        }
                    } else {
                        let floor = shared.committed[key as usize].load(SeqCst);
                        let dead = shared.deleted_below[key as usize].load(SeqCst);
                        check(&shared, key, floor, dead, cache.get(&key).unwrap(), "get");
                    }
                    if deferred.is_some() && reads % 64 == 0 {
                        cache.run_pending_tasks();
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    for thread in threads.drain(..WRITERS as usize) {
        thread.join().unwrap();
    }
    shared.stop.store(true, SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let stats = cache.stats();
    // The run exercised what it claims to: promotions, evictions and expirations happened.
    let promoted: u64 = stats.layers.iter().map(|l| l.promotions_in).sum();
    let evicted: u64 = stats.layers.iter().map(|l| l.evictions).sum();
    let expired: u64 = stats.layers.iter().map(|l| l.expirations).sum();
    assert!(
        reads > 0 && promoted > 0 && evicted > 0 && expired > 0,
        "{stats:#?}"
    );
    for (layer, capacity) in stats.layers.iter().zip(capacities) {
        assert!(layer.len.unwrap() <= capacity as u64, "{layer:?}");
    }
}

fn ops() -> u64 {
    std::env::var("STRATA_STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000)
}

#[test]
fn contract_holds_with_two_layers() {
    run(2, None, ops());
}

#[test]
fn contract_holds_with_three_layers() {
    run(3, None, ops());
}

#[test]
fn contract_holds_with_deferred_promotion() {
    run(2, Some(8), ops());
}
