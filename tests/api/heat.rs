//! Heat-gated promotion: a lower-layer hit is promoted into L1 only once the key is hot.

use strata::{Cache, LayerSpec, PromotionGate, SetOptions};

use crate::support::*;

fn gated(gate: PromotionGate, deferred: Option<usize>) -> C {
    let mut builder = Cache::builder()
        .promotion_gate(gate)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 1_000))
        .layer(LayerSpec::memory("l3", 1_000));
    if let Some(batch) = deferred {
        builder = builder.deferred_promotion(batch);
    }
    builder.build().unwrap()
}

fn only_in_l3(cache: &C, key: u64) {
    cache
        .set_with(
            key,
            format!("v{key}"),
            &SetOptions::new().skip("l1").skip("l2"),
        )
        .unwrap();
}

#[test]
fn a_key_read_once_below_l1_is_served_but_not_promoted_into_l1() {
    let cache = gated(PromotionGate::by_heat(), None);
    only_in_l3(&cache, 1);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    assert_eq!(in_layer(&cache, "l1", 1), None, "one read: not hot yet");
    // Layers between L1 and the source are not gated.
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("v1")));
    let stats = cache.stats();
    assert_eq!(stats.layers[0].promotions_declined, 1);
    assert_eq!(stats.layers[0].promotions_in, 0);
    assert_eq!(stats.layers[1].promotions_in, 1);
    // The second read below L1 finds it hot.
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")));
    assert_eq!(cache.stats().layers[0].promotions_in, 1);
    // Now an L1 hit: the sketch is not touched, nothing more is promoted or declined.
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    assert_eq!(cache.stats().layers[0].promotions_declined, 1);
}

#[test]
fn the_threshold_is_the_number_of_reads_below_l1() {
    let cache = gated(PromotionGate::Hot { min_reads: 4 }, None);
    only_in_l3(&cache, 7);
    for read in 1..=3 {
        assert_eq!(cache.get(&7).unwrap(), Some(s("v7")));
        assert_eq!(in_layer(&cache, "l1", 7), None, "read {read}");
    }
    assert_eq!(cache.get(&7).unwrap(), Some(s("v7")));
    assert_eq!(in_layer(&cache, "l1", 7), Some(s("v7")));
    assert_eq!(cache.stats().layers[0].promotions_declined, 3);
}

#[test]
fn always_and_a_threshold_of_one_promote_every_hit() {
    for gate in [PromotionGate::Always, PromotionGate::Hot { min_reads: 1 }] {
        let cache = gated(gate, None);
        only_in_l3(&cache, 1);
        cache.get(&1).unwrap();
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")), "{gate:?}");
        assert_eq!(cache.stats().layers[0].promotions_declined, 0);
    }
}

#[test]
fn heat_gating_composes_with_queued_promotion() {
    let cache = gated(PromotionGate::by_heat(), Some(64));
    only_in_l3(&cache, 1);
    cache.get(&1).unwrap();
    cache.get(&1).unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None, "queued, not applied yet");
    assert_eq!(
        cache.run_pending_tasks(),
        2,
        "into l2 (first read), into l1 (second)"
    );
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")));
    assert_eq!(cache.stats().layers[0].promotions_declined, 1);
}

#[test]
fn a_write_resets_nothing_and_reads_stay_correct() {
    // Heat only decides whether to copy; the value served is always the newest.
    let cache = gated(PromotionGate::by_heat(), None);
    only_in_l3(&cache, 1);
    cache.get(&1).unwrap();
    cache
        .set_with(1, s("newer"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("newer")));
    assert_eq!(
        in_layer(&cache, "l1", 1),
        Some(s("newer")),
        "second read: promoted"
    );
}
