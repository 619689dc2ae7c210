//! Writes: `set`, `delete`, write modes and skipped layers.

use strata::{Cache, DeleteOptions, Error, LayerSpec, Promotion, SetOptions, WriteMode};

use crate::support::*;

#[test]
fn set_then_get_returns_value() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("one")).unwrap();
        assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
        assert_eq!(cache.get(&2).unwrap(), None);
    });
}

#[test]
fn set_overwrites_in_every_layer() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("old")).unwrap();
        cache.set(1, s("new")).unwrap();
        assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
        assert_eq!(in_layer(&cache, "l2", 1), Some(s("new")));
    });
}

/// A write-through `set` writes every layer, whatever the configuration.
#[test]
fn set_writes_every_layer_in_each_config() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        let report = cache.set(1, s("one")).unwrap();
        assert_eq!(layers_of(report.written), setup.all());
        assert!(report.invalidated.is_empty() && report.dropped.is_empty());
        assert!(report.is_complete());
        for layer in setup.layers() {
            assert_eq!(in_layer(&cache, layer, 1), Some(s("one")), "{layer}");
        }
    });
}

/// `delete` invalidates every layer, whether the key was in L1 or only below it, and is
/// idempotent, whatever the configuration.
#[test]
fn delete_removes_the_key_from_every_layer_in_each_config() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("one")).unwrap();
        cache
            .set_with(2, s("two"), &SetOptions::new().skip("l1"))
            .unwrap();
        for key in [1, 2] {
            let report = cache.delete(&key).unwrap();
            assert_eq!(layers_of(report.invalidated), setup.all(), "key {key}");
            assert!(report.written.is_empty() && report.failures.is_empty());
            assert_eq!(cache.get(&key).unwrap(), None, "key {key}");
            assert!(!cache.contains_key(&key).unwrap(), "key {key}");
            for layer in setup.layers() {
                assert_eq!(in_layer(&cache, layer, key), None, "key {key} in {layer}");
            }
        }
        assert_eq!(
            layers_of(cache.delete(&1).unwrap().invalidated),
            setup.all()
        );
        assert!(cache.delete(&999).is_ok());
    });
}

#[test]
fn delete_removes_from_every_layer_and_is_idempotent() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("one")).unwrap();
    let report = cache.delete(&1).unwrap();
    assert_eq!(layers_of(report.invalidated), [0, 1]);
    assert!(report.written.is_empty() && report.failures.is_empty());
    assert_eq!(cache.get(&1).unwrap(), None);
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), None);
    // Deleting again, and deleting a key never set, are fine.
    assert_eq!(layers_of(cache.delete(&1).unwrap().invalidated), [0, 1]);
    assert!(cache.delete(&999).is_ok());
}

#[test]
fn write_through_writes_every_writable_layer() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::AllAbove);
    let report = cache.set(1, s("one")).unwrap();
    assert_eq!(layers_of(report.written), [0, 1, 2]);
    assert!(report.invalidated.is_empty());
    assert!(report.is_complete());
    for layer in ["l1", "l2", "l3"] {
        assert_eq!(in_layer(&cache, layer, 1), Some(s("one")), "{layer}");
    }
}

#[test]
fn l1_only_write_mode_invalidates_lower_layers() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .write_mode(WriteMode::L1Only)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 100))
        .build()
        .unwrap();
    // An older value everywhere, written with the mode overridden.
    cache
        .set_with(
            1,
            s("old"),
            &SetOptions::new().mode(WriteMode::WriteThrough),
        )
        .unwrap();
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("old")));
    let report = cache.set(1, s("new")).unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert_eq!(layers_of(report.invalidated), [1]);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
}

#[test]
fn l1_only_set_option_invalidates_lower_layers() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::AllAbove);
    cache.set(1, s("old")).unwrap();
    let report = cache
        .set_with(1, s("new"), &SetOptions::new().l1_only())
        .unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert_eq!(layers_of(report.invalidated), [1, 2]);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert_eq!(in_layer(&cache, "l3", 1), None);
}

#[test]
fn l1_only_write_never_lets_an_older_lower_value_resurface() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 1))
        .layer(LayerSpec::memory("l2", 100))
        .build()
        .unwrap();
    cache.set(1, s("old")).unwrap();
    cache
        .set_with(1, s("new"), &SetOptions::new().l1_only())
        .unwrap();
    // Evict key 1 from the one-entry L1.
    cache
        .set_with(2, s("other"), &SetOptions::new().l1_only())
        .unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(
        cache.get(&1).unwrap(),
        None,
        "the older L2 value must not come back"
    );
}

#[test]
fn skip_option_skips_and_invalidates_the_layer() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("old")).unwrap();
    let report = cache
        .set_with(1, s("new"), &SetOptions::new().skip("l2"))
        .unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert_eq!(layers_of(report.invalidated), [1]);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
    assert_eq!(in_layer(&cache, "l2", 1), None);
}

#[test]
fn skipping_l1_writes_only_lower_layers() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("old")).unwrap();
    let report = cache
        .set_with(1, s("new"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(layers_of(report.written), [1]);
    assert_eq!(layers_of(report.invalidated), [0]);
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("new")));
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
}

#[test]
fn skipping_an_unknown_layer_fails_and_writes_nothing() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("old")).unwrap();
        let result = cache.set_with(1, s("new"), &SetOptions::new().skip("l2").skip("nope"));
        assert!(matches!(result, Err(Error::UnknownLayer(name)) if name == "nope"));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("old")));
        assert_eq!(in_layer(&cache, "l2", 1), Some(s("old")));
        let result = cache.set_with(2, s("two"), &SetOptions::new().skip("nope"));
        assert!(matches!(result, Err(Error::UnknownLayer(_))));
        assert_eq!(in_layer(&cache, "l1", 2), None);
        assert_eq!(in_layer(&cache, "l2", 2), None);
    });
}

/// A cache of one memory layer: a single-key `set` or `delete` with default options takes the
/// write path's shortcut (see `engine/write.rs`); the same calls with options that mean the same
/// on one layer (`l1_only`, `local_only`) take the general path. Both must give the same reports
/// and the same state, honour the layer's TTL, and refuse a closed cache.
#[test]
fn a_one_layer_cache_reports_its_writes_alike_on_both_paths() {
    for shortcut in [true, false] {
        let (clock, hand) = manual();
        let cache: Cache<u64, String> = Cache::builder()
            .clock(clock)
            .layer(LayerSpec::memory("l1", 100).ttl(secs(10)))
            .build()
            .unwrap();
        let set = |key: u64, value: &str| {
            if shortcut {
                cache.set(key, s(value))
            } else {
                cache.set_with(key, s(value), &SetOptions::new().l1_only())
            }
        };
        let delete = |key: u64| {
            if shortcut {
                cache.delete(&key)
            } else {
                cache.delete_with(&key, &DeleteOptions::new().local_only())
            }
        };
        let path = if shortcut { "shortcut" } else { "general path" };
        for value in ["one", "two"] {
            let report = set(1, value).unwrap();
            assert_eq!(layers_of(report.written), vec![0], "{path}");
            assert!(
                report.dropped.is_empty() && report.invalidated.is_empty(),
                "{path}"
            );
            assert!(report.is_complete(), "{path}");
        }
        assert_eq!(cache.get(&1).unwrap(), Some(s("two")), "{path}");
        for _ in 0..2 {
            let report = delete(1).unwrap();
            assert_eq!(layers_of(report.invalidated), vec![0], "{path}");
            assert!(report.written.is_empty() && report.is_complete(), "{path}");
            assert_eq!(cache.get(&1).unwrap(), None, "{path}");
        }
        set(3, "three").unwrap();
        hand.advance(secs(9));
        assert_eq!(cache.get(&3).unwrap(), Some(s("three")), "{path}");
        hand.advance(secs(1));
        assert_eq!(cache.get(&3).unwrap(), None, "{path}: the layer's TTL");
        cache.close();
        assert!(matches!(set(4, "four"), Err(Error::Closed)), "{path}");
        assert!(matches!(delete(4), Err(Error::Closed)), "{path}");
    }
}

/// On the shortcut too, an entry heavier than the layer's whole bound is reported dropped, and
/// it removes the key's older value.
#[test]
fn a_one_layer_cache_reports_an_entry_heavier_than_its_bound_dropped() {
    let cache: Cache<u64, String> = Cache::builder()
        .layer(
            LayerSpec::memory("l1", 100)
                .max_weight(10, |_: &u64, value: &String| value.len() as u64),
        )
        .build()
        .unwrap();
    cache.set(1, s("light")).unwrap();
    let report = cache.set(1, "x".repeat(20)).unwrap();
    assert_eq!(layers_of(report.dropped), vec![0]);
    assert!(report.written.is_empty() && report.is_complete());
    assert_eq!(cache.get(&1).unwrap(), None, "the older value is gone too");
}
