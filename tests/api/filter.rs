//! Negative filters: a lookup skips a filtered layer that certainly lacks the key; the filter
//! never hides a key this cache wrote; it is rebuilt from the layer's listing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use strata::{BuildError, Cache, LayerSpec, SetOptions};

use crate::support::*;

/// L1 memory over a filtered test layer (sized for `items` keys at first).
fn filtered(items: usize) -> (C, Arc<TestLayer<u64, String>>) {
    let (clock, _hand) = manual();
    let l2 = TestLayer::<u64, String>::new("l2", 10_000, &clock);
    let cache = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("l2", l2.clone()).negative_filter(items))
        .build()
        .unwrap();
    (cache, l2)
}

fn lookups(layer: &TestLayer<u64, String>) -> usize {
    layer.lookups.load(Ordering::SeqCst)
}

#[test]
fn a_miss_skips_the_filtered_layer() {
    let (cache, l2) = filtered(1_000);
    assert_eq!(cache.get(&1).unwrap(), None);
    assert!(!cache.contains_key(&1).unwrap());
    assert_eq!(cache.get_many([&1, &2, &3]).len(), 3);
    assert_eq!(lookups(&l2), 0, "the layer was never asked");
    let filter = cache.stats().layers[1].filter.clone().unwrap();
    assert!(filter.ready);
    assert_eq!(filter.skips, 5);
    assert_eq!(filter.false_negatives, 0);
}

#[test]
fn keys_the_cache_wrote_or_promoted_are_never_skipped() {
    let (cache, l2) = filtered(1_000);
    // Written below L1 only: the next read must ask L2.
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    assert_eq!(lookups(&l2), 1);
    // Batches too.
    let items = (10..20).map(|k| (k, format!("v{k}"))).collect();
    cache.set_many_with(items, &SetOptions::new().skip("l1"));
    let keys: Vec<u64> = (10..20).collect();
    for (key, result) in keys.iter().zip(cache.get_many(&keys)) {
        assert_eq!(result.unwrap(), Some(format!("v{key}")));
    }
    assert!(cache.contains_key(&15).unwrap());
}

#[test]
fn a_filter_over_a_layer_that_held_keys_waits_for_its_first_rebuild() {
    let (clock, _hand) = manual();
    let l2 = TestLayer::<u64, String>::new("l2", 10_000, &clock);
    l2.put(7, s("seven")); // written behind the cache's back, before it was built
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("l2", l2.clone()).negative_filter(1_000))
        .build()
        .unwrap();
    assert!(!cache.stats().layers[1].filter.clone().unwrap().ready);
    // Unready: every lookup goes through.
    assert_eq!(cache.get(&8).unwrap(), None);
    assert_eq!(lookups(&l2), 1);
    assert_eq!(cache.rebuild_filters(), 1);
    let filter = cache.stats().layers[1].filter.clone().unwrap();
    assert!(filter.ready);
    assert_eq!(filter.rebuilds, 1);
    assert_eq!(cache.get_from_layer("l2", &7).unwrap(), Some(s("seven")));
    cache
        .delete_with(&7, &strata::DeleteOptions::new().skip("l2"))
        .unwrap();
    assert_eq!(
        cache.get(&7).unwrap(),
        Some(s("seven")),
        "listed by the rebuild"
    );
    let asked = lookups(&l2);
    assert_eq!(cache.get(&9).unwrap(), None);
    assert_eq!(lookups(&l2), asked, "an absent key is skipped once ready");
}

#[test]
fn keys_written_behind_the_cache_s_back_are_found_by_sampling_and_counted() {
    let (cache, l2) = filtered(1_000);
    l2.put(5, s("five")); // the filter never saw this key
    let mut found = 0;
    for _ in 0..2 * 65_536 {
        if cache.get(&5).unwrap().is_some() {
            found += 1;
        }
    }
    // One skip in 65 536 is verified: the first verification finds the key and sets its
    // bits; from then on it is served (and promoted into L1).
    assert!(found > 0, "never verified");
    let filter = cache.stats().layers[1].filter.clone().unwrap();
    assert_eq!(filter.false_negatives, 1);
    assert_eq!(cache.get(&5).unwrap(), Some(s("five")));
}

#[test]
fn a_filter_that_outgrew_its_size_is_rebuilt_by_run_pending_tasks() {
    let (cache, _l2) = filtered(8);
    for key in 0..100 {
        cache
            .set_with(key, format!("v{key}"), &SetOptions::new().skip("l1"))
            .unwrap();
    }
    cache.run_pending_tasks();
    let filter = cache.stats().layers[1].filter.clone().unwrap();
    assert_eq!(filter.rebuilds, 1);
    for key in 0..100 {
        assert_eq!(
            cache.get(&key).unwrap(),
            Some(format!("v{key}")),
            "key {key}"
        );
    }
    // Sized for twice what it listed: nothing more to do.
    cache.run_pending_tasks();
    assert_eq!(cache.stats().layers[1].filter.clone().unwrap().rebuilds, 1);
}

#[test]
fn a_memory_tier_can_be_filtered_too() {
    let cache: C = Cache::builder()
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 1_000).negative_filter(1_000))
        .build()
        .unwrap();
    cache.set(1, s("one")).unwrap();
    cache
        .delete_with(&1, &strata::DeleteOptions::new().skip("l2"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    assert_eq!(cache.get(&2).unwrap(), None);
    assert_eq!(cache.stats().layers[1].filter.clone().unwrap().skips, 1);
    assert_eq!(cache.rebuild_filters(), 1);
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
}

#[test]
fn filters_are_refused_where_they_cannot_work() {
    let l1 = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 100).negative_filter(10))
        .build();
    assert!(matches!(l1, Err(BuildError::FilterOnL1(name)) if name == "l1"));
    let (clock, _hand) = manual();
    let read_only = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 100))
        .layer(
            LayerSpec::shared("db", TestLayer::<u64, String>::new("db", 10, &clock))
                .read_only()
                .negative_filter(10),
        )
        .build();
    assert!(matches!(read_only, Err(BuildError::FilterOnReadOnly(name)) if name == "db"));
    let zero = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 100).negative_filter(0))
        .build();
    assert!(matches!(zero, Err(BuildError::ZeroFilterItems(name)) if name == "l2"));
}
