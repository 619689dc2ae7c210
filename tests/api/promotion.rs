//! Promotion of lower-layer hits, by promotion mode.

use strata::{Promotion, SetOptions};

use crate::support::*;

#[test]
fn promotion_off_never_copies_up() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::Off);
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(cache.lookup(&1).unwrap().served_by, Some(2));
    }
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert!(cache.stats().layers.iter().all(|l| l.promotions_in == 0));
}

#[test]
fn promotion_all_above_copies_into_every_upper_layer() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::AllAbove);
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("deep")));
    let promotions: Vec<u64> = cache
        .stats()
        .layers
        .iter()
        .map(|l| l.promotions_in)
        .collect();
    assert_eq!(promotions, [1, 1, 0]);
    assert_eq!(cache.lookup(&1).unwrap().served_by, Some(0));
}

#[test]
fn promotion_l1_only_copies_into_l1_but_not_l2() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::L1Only);
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l2", 1), None);
    let promotions: Vec<u64> = cache
        .stats()
        .layers
        .iter()
        .map(|l| l.promotions_in)
        .collect();
    assert_eq!(promotions, [1, 0, 0]);
}

#[test]
fn promotion_from_l2_with_all_above_fills_l1_only() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::AllAbove);
    cache
        .set_with(1, s("mid"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.lookup(&1).unwrap().served_by, Some(1));
    let promotions: Vec<u64> = cache
        .stats()
        .layers
        .iter()
        .map(|l| l.promotions_in)
        .collect();
    assert_eq!(promotions, [1, 0, 0]);
}

#[test]
fn lower_layer_hit_counts_once_as_a_request_hit() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache
            .set_with(1, s("one"), &SetOptions::new().skip("l1"))
            .unwrap();
        assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 0));
        assert_eq!((stats.layers[0].hits, stats.layers[0].misses), (0, 1));
        assert_eq!((stats.layers[1].hits, stats.layers[1].misses), (1, 0));
        assert_eq!(stats.hit_ratio(), 1.0);
    });
}

#[test]
fn lower_layer_hit_counts_once_with_a_custom_l1() {
    let (clock, _hand) = manual();
    let (cache, _l1) = test_over_memory(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    assert_eq!(cache.get(&2).unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
    assert_eq!((stats.layers[0].hits, stats.layers[0].misses), (0, 2));
    assert_eq!((stats.layers[1].hits, stats.layers[1].misses), (1, 1));
    assert_eq!(stats.layers[0].promotions_in, 1);
    assert_eq!(stats.hit_ratio(), 0.5);
}

#[test]
fn promotion_does_not_overwrite_a_present_l1_value() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("old")).unwrap();
        cache
            .set_with(1, s("new"), &SetOptions::new().l1_only())
            .unwrap();
        // L1 serves the new value; L2 no longer holds anything.
        assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
        assert_eq!(cache.stats().layers[0].promotions_in, 0);
    });
}

/// A lower-layer hit is copied into L1 (once the queue is run, when promotion is deferred), and
/// L1 serves the next read.
#[test]
fn a_lower_layer_hit_is_promoted_into_l1() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache
            .set_with(1, s("one"), &SetOptions::new().skip("l1"))
            .unwrap();
        assert_eq!(cache.lookup(&1).unwrap().served_by, Some(1));
        cache.run_pending_tasks();
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("one")));
        assert_eq!(cache.stats().layers[0].promotions_in, 1);
        assert_eq!(cache.lookup(&1).unwrap().served_by, Some(0));
        assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    });
}
