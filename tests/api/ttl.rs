//! TTLs on a manual clock: per-layer and per-call TTLs, and the expiry of promoted copies.

use std::time::Duration;

use strata::{Cache, Clock, Error, LayerSpec, SetOptions};

use crate::support::*;

/// l1 with `l1_ttl`, l2 with `l2_ttl`.
fn with_ttls(clock: &Clock, l1_ttl: Duration, l2_ttl: Duration) -> C {
    Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100).ttl(l1_ttl))
        .layer(LayerSpec::memory("l2", 100).ttl(l2_ttl))
        .build()
        .unwrap()
}

#[test]
fn promoted_copy_expires_with_its_source_when_that_is_sooner() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, Some(secs(60)), Some(secs(100)));
        cache
            .set_with(1, s("v"), &SetOptions::new().skip("l1"))
            .unwrap();
        hand.advance(secs(70));
        assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
        cache.run_pending_tasks();
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")), "promoted");
        // Remaining 30 s < L1 TTL 60 s: the copy lives 30 s.
        hand.advance(secs(29));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
        hand.advance(secs(2));
        assert_eq!(in_layer(&cache, "l1", 1), None);
        assert_eq!(cache.get(&1).unwrap(), None);
    });
}

#[test]
fn promoted_copy_expires_exactly_when_its_source_does() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, Some(secs(60)), Some(secs(100)));
        cache
            .set_with(1, s("v"), &SetOptions::new().skip("l1"))
            .unwrap();
        hand.advance(secs(70));
        assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
        cache.run_pending_tasks();
        hand.advance(Duration::from_millis(29_999));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
        hand.advance(Duration::from_millis(1));
        assert_eq!(in_layer(&cache, "l1", 1), None);
        assert_eq!(in_layer(&cache, "l2", 1), None);
    });
}

#[test]
fn promoted_copy_gets_the_layer_ttl_when_that_is_sooner() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, Some(secs(10)), Some(secs(100)));
        cache
            .set_with(1, s("v"), &SetOptions::new().skip("l1"))
            .unwrap();
        hand.advance(secs(5));
        assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
        cache.run_pending_tasks();
        // Remaining 95 s > L1 TTL 10 s: the copy lives 10 s.
        hand.advance(secs(9));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
        hand.advance(secs(2));
        assert_eq!(in_layer(&cache, "l1", 1), None);
        assert_eq!(in_layer(&cache, "l2", 1), Some(s("v")));
    });
}

#[test]
fn promoted_copy_of_a_non_expiring_value_gets_the_layer_ttl() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, Some(secs(10)), None);
        cache
            .set_with(1, s("v"), &SetOptions::new().skip("l1"))
            .unwrap();
        hand.advance(secs(1000));
        assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
        cache.run_pending_tasks();
        hand.advance(Duration::from_millis(9_999));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
        hand.advance(Duration::from_millis(1));
        assert_eq!(in_layer(&cache, "l1", 1), None);
    });
}

#[test]
fn promoted_copy_into_a_layer_without_ttl_keeps_the_source_expiry() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, None, Some(secs(100)));
        cache
            .set_with(1, s("v"), &SetOptions::new().skip("l1"))
            .unwrap();
        hand.advance(secs(50));
        assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
        cache.run_pending_tasks();
        hand.advance(Duration::from_millis(49_999));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
        hand.advance(Duration::from_millis(1));
        assert_eq!(in_layer(&cache, "l1", 1), None);
    });
}

#[test]
fn per_layer_ttls_expire_each_layer_on_its_own() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, Some(secs(10)), Some(secs(60)));
        cache.set(1, s("v")).unwrap();
        hand.advance(Duration::from_millis(9_999));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
        hand.advance(Duration::from_millis(1));
        assert_eq!(in_layer(&cache, "l1", 1), None);
        assert_eq!(in_layer(&cache, "l2", 1), Some(s("v")));
        assert_eq!(cache.lookup(&1).unwrap().served_by, Some(1));
        hand.advance(secs(50));
        assert_eq!(cache.get(&1).unwrap(), None);
        assert!(!cache.contains_key(&1).unwrap());
    });
}

#[test]
fn expirations_are_counted_per_layer() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(10), secs(60));
    cache.set(1, s("v")).unwrap();
    cache.set(2, s("w")).unwrap();
    hand.advance(secs(10));
    // Both L1 copies are now expired; reading finds and removes them.
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l1", 2), None);
    let stats = cache.stats();
    assert_eq!(stats.layers[0].expirations, 2);
    assert_eq!(stats.layers[1].expirations, 0);
    assert_eq!(stats.layers[0].len, Some(0));
    hand.advance(secs(50));
    assert_eq!(cache.get(&1).unwrap(), None);
    assert_eq!(cache.stats().layers[1].expirations, 1);
}

#[test]
fn per_call_ttl_overrides_layer_ttls() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, Some(secs(60)), Some(secs(600)));
        cache
            .set_with(1, s("short"), &SetOptions::new().ttl(secs(5)))
            .unwrap();
        cache.set(2, s("default")).unwrap();
        hand.advance(Duration::from_millis(4_999));
        assert_eq!(cache.get(&1).unwrap(), Some(s("short")));
        hand.advance(Duration::from_millis(1));
        assert_eq!(in_layer(&cache, "l1", 1), None);
        assert_eq!(in_layer(&cache, "l2", 1), None);
        assert_eq!(cache.get(&1).unwrap(), None);
        assert_eq!(cache.get(&2).unwrap(), Some(s("default")));
    });
}

#[test]
fn per_call_ttl_can_be_longer_than_layer_ttls() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, Some(secs(60)), Some(secs(60)));
        cache
            .set_with(1, s("long"), &SetOptions::new().ttl(secs(120)))
            .unwrap();
        hand.advance(secs(90));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("long")));
        hand.advance(secs(30));
        assert_eq!(cache.get(&1).unwrap(), None);
    });
}

#[test]
fn entries_without_ttl_never_expire() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("forever")).unwrap();
        hand.advance(Duration::from_secs(10 * 365 * 24 * 3600));
        assert_eq!(cache.get(&1).unwrap(), Some(s("forever")));
        assert_eq!(cache.stats().layers[0].expirations, 0);
    });
}

#[test]
fn expired_entries_are_not_iterated() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build_with_ttls(&clock, Some(secs(10)), Some(secs(60)));
        cache.set(1, s("a")).unwrap();
        hand.advance(secs(5));
        cache.set(2, s("b")).unwrap();
        hand.advance(secs(5));
        assert_eq!(cache.keys("l1").unwrap(), [2]);
        let mut l2 = cache.keys("l2").unwrap();
        l2.sort_unstable();
        assert_eq!(l2, [1, 2]);
    });
}

#[test]
fn a_per_call_ttl_under_a_millisecond_is_refused() {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 10))
        .build()
        .unwrap();
    let result = cache.set_with(1, 1, &SetOptions::new().ttl(Duration::from_micros(10)));
    assert!(matches!(result, Err(Error::ZeroTtl)), "{result:?}");
    assert_eq!(cache.get(&1).unwrap(), None, "nothing was written");
}
