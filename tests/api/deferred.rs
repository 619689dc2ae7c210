//! Deferred promotion: queued, applied in batches or on `run_pending_promotions`, and dropped when overtaken by a write.

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
    assert_eq!(cache.run_pending_promotions(), 0);
}

#[test]
fn run_pending_promotions_applies_the_queue() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, 1..=2);
    cache.get(&1).unwrap();
    cache.get(&2).unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.run_pending_promotions(), 2);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")));
    assert_eq!(in_layer(&cache, "l1", 2), Some(s("v2")));
    assert_eq!(cache.stats().layers[0].promotions_in, 2);
    assert_eq!(cache.run_pending_promotions(), 0);
}

#[test]
fn queued_promotion_overtaken_by_a_set_does_not_land() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    cache.set(1, s("newer")).unwrap();
    assert_eq!(cache.run_pending_promotions(), 0);
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
    assert_eq!(cache.run_pending_promotions(), 0);
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
    assert_eq!(cache.run_pending_promotions(), 0);
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
    assert_eq!(cache.run_pending_promotions(), 2);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")));
}
