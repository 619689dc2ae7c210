//! Eviction bounds: capacity and weight.

use strata::{Cache, LayerSpec};

use crate::support::*;

#[test]
fn memory_layer_never_exceeds_its_capacity() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("l2", 50))
        .build()
        .unwrap();
    for i in 0..1000u64 {
        cache.set(i, format!("v{i}")).unwrap();
        // Re-read some keys so both S3-FIFO queues are exercised.
        if i % 3 == 0 {
            let _ = cache.get(&(i / 2)).unwrap();
        }
        let stats = cache.stats();
        assert!(
            stats.layers[0].len.unwrap() <= 10,
            "after {i}: {:?}",
            stats.layers[0]
        );
        assert!(
            stats.layers[1].len.unwrap() <= 50,
            "after {i}: {:?}",
            stats.layers[1]
        );
    }
    let stats = cache.stats();
    assert!(cache.keys("l1").unwrap().len() <= 10);
    assert!(cache.keys("l2").unwrap().len() <= 50);
    assert_eq!(
        stats.layers[1].evictions + stats.layers[1].len.unwrap(),
        1000,
        "{stats:?}"
    );
    // Every entry that entered L1 (1000 writes plus promotions) was evicted or is still there.
    assert_eq!(
        stats.layers[0].evictions + stats.layers[0].len.unwrap(),
        1000 + stats.layers[0].promotions_in,
        "{stats:?}"
    );
    // The most recent write is still there.
    assert_eq!(cache.get(&999).unwrap(), Some(s("v999")));
}

#[test]
fn large_memory_layer_stays_within_capacity() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 4096))
        .build()
        .unwrap();
    for i in 0..20_000u64 {
        cache.set(i, String::new()).unwrap();
    }
    let stats = cache.stats();
    let len = stats.layers[0].len.unwrap();
    assert!(len <= 4096, "{stats:?}");
    assert_eq!(len + stats.layers[0].evictions, 20_000);
    assert_eq!(cache.keys("l1").unwrap().len() as u64, len);
}

#[test]
fn weighted_memory_layer_stays_within_its_weight() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 1000).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap();
    for i in 0..500u64 {
        let value = "x".repeat((i % 20 + 1) as usize);
        cache.set(i, value).unwrap();
        let weight: usize = cache
            .entries("l1")
            .unwrap()
            .iter()
            .map(|(_, v)| v.len())
            .sum();
        assert!(weight <= 100, "after {i}: weight {weight}");
    }
    let stats = cache.stats();
    assert!(stats.layers[0].evictions > 0);
    assert!(stats.layers[0].len.unwrap() < 1000);
    assert!(cache.get(&499).unwrap().is_some());
}

#[test]
fn growing_a_value_in_place_respects_the_weight_bound() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 1000).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap();
    for i in 0..10u64 {
        cache.set(i, "x".repeat(10)).unwrap();
    }
    cache.set(0, "y".repeat(50)).unwrap();
    let weight: usize = cache
        .entries("l1")
        .unwrap()
        .iter()
        .map(|(_, v)| v.len())
        .sum();
    assert!(weight <= 100, "weight {weight}");
    // Key 0 is the oldest (FIFO head), so the policy may evict it alone (140 - 50 = 90).
    assert!(cache.stats().layers[0].evictions >= 1);
    assert_eq!(
        cache.stats().layers[0].len.unwrap(),
        cache.keys("l1").unwrap().len() as u64
    );
}

#[test]
fn oversized_entry_does_not_flush_the_layer() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 1000).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap();
    for i in 0..10u64 {
        cache.set(i, "x".repeat(5)).unwrap();
    }
    cache.set(100, "z".repeat(150)).unwrap();
    let mut kept = cache.keys("l1").unwrap();
    kept.sort_unstable();
    assert_eq!(
        kept,
        (0..10).collect::<Vec<u64>>(),
        "an entry that can never fit must not evict the entries that do"
    );
}

#[test]
fn entry_lighter_than_max_weight_is_kept_in_a_sharded_layer() {
    let (clock, _hand) = manual();
    // Capacity large enough for the policy to shard on any machine with 2+ CPUs.
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 100_000).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap();
    cache.set(1, "x".repeat(60)).unwrap();
    assert_eq!(cache.get(&1).unwrap().map(|v| v.len()), Some(60));
}
