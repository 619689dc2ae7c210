//! Batch operations: `get_many`, `set_many(_with)`, `delete_many`.

use std::sync::atomic::Ordering;

use strata::{Error, Promotion, SetOptions};

use crate::support::*;

#[test]
fn get_many_returns_one_result_per_key_in_order() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("one")).unwrap();
        cache.set(3, s("three")).unwrap();
        let results = cache.get_many(&[3, 2, 1, 3]);
        let values: Vec<Option<String>> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            values,
            [Some(s("three")), None, Some(s("one")), Some(s("three"))]
        );
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (3, 1));
        assert!(cache.get_many(&[]).is_empty());
    });
}

#[test]
fn get_many_promotes_lower_layer_hits() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("one")).unwrap();
        cache
            .set_with(2, s("two"), &SetOptions::new().skip("l1"))
            .unwrap();
        cache
            .set_with(4, s("four"), &SetOptions::new().skip("l1"))
            .unwrap();
        let values: Vec<Option<String>> = cache
            .get_many(&[1, 2, 3, 4])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            values,
            [Some(s("one")), Some(s("two")), None, Some(s("four"))]
        );
        cache.run_pending_tasks();
        assert_eq!(in_layer(&cache, "l1", 2), Some(s("two")));
        assert_eq!(in_layer(&cache, "l1", 4), Some(s("four")));
        assert_eq!(in_layer(&cache, "l1", 3), None);
        let stats = cache.stats();
        assert_eq!(stats.layers[0].promotions_in, 2);
        assert_eq!((stats.hits, stats.misses), (3, 1));
        assert_eq!((stats.layers[0].hits, stats.layers[0].misses), (1, 3));
        assert_eq!((stats.layers[1].hits, stats.layers[1].misses), (2, 1));
    });
}

#[test]
fn get_many_respects_the_promotion_mode() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::L1Only);
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(cache.get_many(&[1])[0].as_ref().unwrap(), &Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l2", 1), None);

    let off = three_layers(&clock, Promotion::Off);
    off.set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(off.get_many(&[1])[0].as_ref().unwrap(), &Some(s("deep")));
    assert_eq!(in_layer(&off, "l1", 1), None);
    assert_eq!(in_layer(&off, "l2", 1), None);
}

#[test]
fn get_many_reports_failures_per_key() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("one")).unwrap();
    cache
        .set_with(2, s("two"), &SetOptions::new().skip("l1"))
        .unwrap();
    l2.fail_get.store(true, Ordering::SeqCst);
    let results = cache.get_many(&[1, 2, 3]);
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap(), &Some(s("one")));
    for result in &results[1..] {
        match result {
            Err(Error::Unavailable(failures)) => assert_eq!(&*failures[0].layer, "l2"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(cache.stats().layers[1].errors, 2);
}

#[test]
fn set_many_writes_every_entry_in_every_layer() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    let results = cache.set_many(vec![(1, s("a")), (2, s("b")), (3, s("c"))]);
    assert_eq!(results.len(), 3);
    for result in results {
        assert_eq!(layers_of(result.unwrap().written), [0, 1]);
    }
    for (key, value) in [(1, "a"), (2, "b"), (3, "c")] {
        assert_eq!(in_layer(&cache, "l1", key), Some(s(value)));
        assert_eq!(in_layer(&cache, "l2", key), Some(s(value)));
    }
}

#[test]
fn set_many_with_options_applies_them_to_every_entry() {
    let (clock, hand) = manual();
    let cache = two_layers(&clock);
    cache.set_many(vec![(1, s("old1")), (2, s("old2"))]);
    let options = SetOptions::new().l1_only().ttl(secs(5));
    for result in cache.set_many_with(vec![(1, s("new1")), (2, s("new2"))], &options) {
        let report = result.unwrap();
        assert_eq!(
            (layers_of(report.written), layers_of(report.invalidated)),
            (vec![0], vec![1])
        );
    }
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert_eq!(in_layer(&cache, "l2", 2), None);
    assert_eq!(cache.get(&2).unwrap(), Some(s("new2")));
    hand.advance(secs(5));
    assert_eq!(
        cache
            .get_many(&[1, 2])
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        [None, None]
    );
}

#[test]
fn set_many_with_an_unknown_skip_fails_every_entry() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        let results = cache.set_many_with(
            vec![(1, s("a")), (2, s("b"))],
            &SetOptions::new().skip("nope"),
        );
        assert_eq!(results.len(), 2);
        assert!(results
            .iter()
            .all(|r| matches!(r, Err(Error::UnknownLayer(n)) if n == "nope")));
        assert_eq!(cache.get(&1).unwrap(), None);
        assert_eq!(cache.get(&2).unwrap(), None);
    });
}

#[test]
fn set_many_with_duplicate_keys_keeps_the_last_value_everywhere() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        let results = cache.set_many(vec![(1, s("first")), (2, s("x")), (1, s("last"))]);
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(in_layer(&cache, "l1", 1), Some(s("last")));
        assert_eq!(in_layer(&cache, "l2", 1), Some(s("last")));
        assert_eq!(cache.get(&1).unwrap(), Some(s("last")));
    });
}

#[test]
fn set_many_with_duplicate_keys_keeps_the_last_value_in_custom_layers() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set_many(vec![(1, s("first")), (1, s("second")), (1, s("last"))]);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("last")));
    assert_eq!(l2.peek(&1, clock.now()), Some(s("last")));
}

#[test]
fn set_many_with_failing_layer_is_incomplete_for_every_key() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set_many(vec![(1, s("old1")), (2, s("old2"))]);
    l2.fail_set.store(true, Ordering::SeqCst);
    let results = cache.set_many(vec![(1, s("a")), (2, s("b")), (3, s("c"))]);
    assert_eq!(results.len(), 3);
    for result in results {
        let report = incomplete(result);
        assert_eq!(layers_of(report.written), [0]);
        assert_eq!(report.failures.len(), 1);
        assert_eq!(&*report.failures[0].layer, "l2");
        assert!(report.failures[0].invalidated);
    }
    assert_eq!(l2.peek(&1, clock.now()), None);
    assert_eq!(l2.peek(&2, clock.now()), None);
    assert_eq!(cache.get(&2).unwrap(), Some(s("b")));
    assert_eq!(cache.stats().layers[1].errors, 3);
}

#[test]
fn delete_many_returns_one_result_per_key() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set_many(vec![(1, s("a")), (2, s("b")), (3, s("c"))]);
    let results = cache.delete_many(&[1, 99, 3]);
    assert_eq!(results.len(), 3);
    for result in results {
        assert_eq!(layers_of(result.unwrap().invalidated), [0, 1]);
    }
    let values: Vec<Option<String>> = cache
        .get_many(&[1, 2, 3])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, [None, Some(s("b")), None]);
    assert_eq!(in_layer(&cache, "l2", 1), None);
}

#[test]
fn delete_many_with_failing_layer_is_incomplete_for_every_key() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set_many(vec![(1, s("a")), (2, s("b"))]);
    l2.fail_delete.store(true, Ordering::SeqCst);
    let results = cache.delete_many(&[1, 2]);
    assert_eq!(results.len(), 2);
    for result in results {
        let report = incomplete(result);
        assert_eq!(layers_of(report.invalidated), [0]);
        assert_eq!(report.failures[0].index, 1);
        assert!(!report.failures[0].invalidated);
    }
    assert_eq!(in_layer(&cache, "l1", 1), None);
}

/// `set_many` writes every entry in every layer and `delete_many` removes them from every
/// layer, whatever the configuration; with options, every entry gets them.
#[test]
fn set_many_and_delete_many_cover_every_layer_in_each_config() {
    each_config(|setup| {
        let (clock, hand) = manual();
        let cache = setup.build(&clock);
        let results = cache.set_many(vec![(1, s("a")), (2, s("b")), (3, s("c"))]);
        assert_eq!(results.len(), 3);
        for result in results {
            assert_eq!(layers_of(result.unwrap().written), setup.all());
        }
        for (key, value) in [(1, "a"), (2, "b"), (3, "c")] {
            for layer in setup.layers() {
                assert_eq!(
                    in_layer(&cache, layer, key),
                    Some(s(value)),
                    "{key} in {layer}"
                );
            }
        }
        let results = cache.delete_many(&[1, 99, 3]);
        assert_eq!(results.len(), 3);
        for result in results {
            assert_eq!(layers_of(result.unwrap().invalidated), setup.all());
        }
        let values: Vec<Option<String>> = cache
            .get_many(&[1, 2, 3])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(values, [None, Some(s("b")), None]);
        for layer in setup.layers() {
            assert_eq!(in_layer(&cache, layer, 1), None, "{layer}");
        }

        let options = SetOptions::new().l1_only().ttl(secs(5));
        for result in cache.set_many_with(vec![(2, s("new2")), (4, s("new4"))], &options) {
            let report = result.unwrap();
            assert_eq!(layers_of(report.written), [0]);
            assert_eq!(layers_of(report.invalidated), setup.all()[1..]);
        }
        assert_eq!(in_layer(&cache, "l2", 2), None);
        assert_eq!(cache.get(&2).unwrap(), Some(s("new2")));
        hand.advance(secs(5));
        let values: Vec<Option<String>> = cache
            .get_many(&[2, 4])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(values, [None, None]);
    });
}
