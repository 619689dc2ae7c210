//! Deferred promotion: queued, applied in batches or on `run_pending_tasks`, and dropped when overtaken by a write.

use std::sync::atomic::Ordering;
use strata::{Cache, Clock, LayerSpec, SetOptions};

use crate::support::*;

fn deferred(clock: &Clock, batch: usize) -> C {
    Cache::builder()
        .clock(clock.clone())
        .deferred_promotion(batch)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 100))
        .build()
        .unwrap()
}

fn only_in_l2(cache: &C, keys: impl IntoIterator<Item = u64>) {
    for key in keys {
        cache
            .set_with(key, format!("v{key}"), &SetOptions::new().skip("l1"))
            .unwrap();
    }
}

#[test]
fn deferred_promotion_waits_for_a_full_queue() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, 1..=4);
    for key in 1..=3 {
        assert_eq!(cache.get(&key).unwrap(), Some(format!("v{key}")));
        assert_eq!(
            in_layer(&cache, "l1", key),
            None,
            "key {key} promoted too early"
        );
    }
    assert_eq!(cache.stats().layers[0].promotions_in, 0);
    assert_eq!(cache.get(&4).unwrap(), Some(s("v4")));
    for key in 1..=4 {
        assert_eq!(
            in_layer(&cache, "l1", key),
            Some(format!("v{key}")),
            "key {key}"
        );
    }
    assert_eq!(cache.stats().layers[0].promotions_in, 4);
    assert_eq!(cache.run_pending_tasks(), 0);
}

#[test]
fn run_pending_tasks_applies_the_queue() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, 1..=2);
    cache.get(&1).unwrap();
    cache.get(&2).unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.run_pending_tasks(), 2);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")));
    assert_eq!(in_layer(&cache, "l1", 2), Some(s("v2")));
    assert_eq!(cache.stats().layers[0].promotions_in, 2);
    assert_eq!(cache.run_pending_tasks(), 0);
}

#[test]
fn queued_promotion_overtaken_by_a_set_does_not_land() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    cache.set(1, s("newer")).unwrap();
    assert_eq!(cache.run_pending_tasks(), 0);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("newer")));
    assert_eq!(cache.get(&1).unwrap(), Some(s("newer")));
}

#[test]
fn queued_promotion_overtaken_by_an_l2_only_set_does_not_land() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    cache
        .set_with(1, s("newer"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.run_pending_tasks(), 0);
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.get(&1).unwrap(), Some(s("newer")));
}

#[test]
fn queued_promotion_overtaken_by_a_delete_does_not_land() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    cache.delete(&1).unwrap();
    assert_eq!(cache.run_pending_tasks(), 0);
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.get(&1).unwrap(), None);
}

#[test]
fn queued_promotion_overtaken_by_a_delete_does_not_land_when_the_queue_fills() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 2);
    only_in_l2(&cache, [1, 2]);
    cache.get(&1).unwrap();
    cache.delete(&1).unwrap();
    // This read fills the queue and applies it on this thread.
    cache.get(&2).unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l1", 2), Some(s("v2")));
    assert_eq!(cache.get(&1).unwrap(), None);
}

#[test]
fn deferred_promotion_also_defers_get_many_promotions() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1, 2]);
    let values: Vec<Option<String>> = cache
        .get_many(&[1, 2])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, [Some(s("v1")), Some(s("v2"))]);
    assert_eq!(
        in_layer(&cache, "l1", 1),
        None,
        "promoted on the reading thread"
    );
    assert_eq!(cache.run_pending_tasks(), 2);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")));
}

/// The queues are bounded and lossy: while one reader is applying a batch into a slow L1,
/// another reader keeps reading; its stripe fills and further promotions are dropped (counted),
/// never waited for. Everything queued before the stripe filled is applied afterwards.
#[test]
fn full_queues_drop_promotions_instead_of_blocking_readers() {
    let (clock, _hand) = manual();
    let l1 = TestLayer::<u64, String>::new("l1", 1_000, &clock);
    let cache: C = Cache::builder()
        .clock(clock.clone())
        .deferred_promotion(2)
        .layer(LayerSpec::shared("l1", l1.clone()))
        .layer(LayerSpec::memory("l2", 1_000))
        .build()
        .unwrap();
    only_in_l2(&cache, 1..=100);
    l1.hold_promote.store(true, Ordering::SeqCst);
    // A reader whose second read fills its stripe to the batch size: it drains, and waits
    // inside the slow layer.
    let drainer = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache.get(&1).unwrap();
            cache.get(&2).unwrap();
        })
    };
    while l1.promote_calls.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    // Meanwhile this thread reads 40 more keys: none of its reads waits for the drain.
    for key in 3..=42 {
        assert_eq!(cache.get(&key).unwrap(), Some(format!("v{key}")));
    }
    let dropped = cache.stats().layers[0].promotions_dropped;
    l1.hold_promote.store(false, Ordering::SeqCst);
    drainer.join().unwrap();
    // A stripe holds four batches (16 items here): the rest was dropped.
    assert_eq!(dropped, 40 - 16, "dropped {dropped}");
    assert_eq!(cache.run_pending_tasks(), 16);
    assert_eq!(cache.stats().layers[0].promotions_in, 2 + 16);
    for key in 3..=18 {
        assert_eq!(
            in_layer(&cache, "l1", key),
            Some(format!("v{key}")),
            "key {key}"
        );
    }
}

#[test]
fn the_maintenance_thread_applies_queued_promotions_nobody_drains() {
    let cache: C = Cache::builder()
        .deferred_promotion(64)
        .maintenance(std::time::Duration::from_millis(2))
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 100))
        .build()
        .unwrap();
    only_in_l2(&cache, [1]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1"))); // queued: 1 of 64
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while in_layer(&cache, "l1", 1).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the maintenance thread never applied the promotion"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(cache.stats().layers[0].promotions_in, 1);
}

#[test]
fn the_maintenance_thread_readies_a_filter_over_a_layer_of_unknown_contents() {
    let (clock, _hand) = manual();
    let remote = TestLayer::new("remote", 100, &clock);
    remote.put(7, s("seven"));
    let cache: C = Cache::builder()
        .clock(clock.clone())
        .maintenance(std::time::Duration::from_millis(2))
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("remote", remote.clone()).negative_filter(1_000))
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cache.stats().layers[1].filter.as_ref().unwrap().ready {
        assert!(
            std::time::Instant::now() < deadline,
            "the filter never became ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(
        cache.get(&7).unwrap(),
        Some(s("seven")),
        "rebuilt from the listing"
    );
    assert_eq!(cache.get(&8).unwrap(), None);
    assert!(cache.stats().layers[1].filter.as_ref().unwrap().skips >= 1);
}
