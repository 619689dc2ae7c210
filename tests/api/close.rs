//! `close()`: every operation refused afterwards, layers closed once.

use std::sync::atomic::Ordering;
use std::thread;

use strata::{Cache, Error, LayerSpec, SetOptions};

use crate::support::*;

fn assert_closed<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::Closed)), "{what}: {result:?}");
}

#[test]
fn close_makes_every_operation_fail_with_closed() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("one")).unwrap();
        cache.close();
        assert!(cache.is_closed());
        assert_closed("get", cache.get(&1));
        assert_closed("try_get", cache.lookup(&1));
        assert_closed("set", cache.set(2, s("two")));
        assert_closed(
            "set_with",
            cache.set_with(2, s("two"), &SetOptions::new().l1_only()),
        );
        assert_closed("delete", cache.delete(&1));
        assert_closed("exists", cache.contains_key(&1));
        assert_closed("get_from_layer", cache.get_from_layer("l1", &1));
        assert_closed("entries", cache.entries("l1"));
        assert_closed("keys", cache.keys("l2"));
        assert_closed(
            "for_each_in_layer",
            cache.for_each_in_layer("l1", |_, _| {}),
        );
        let gets = cache.get_many(&[1, 2, 3]);
        assert_eq!(gets.len(), 3);
        gets.into_iter().for_each(|r| assert_closed("get_many", r));
        let sets = cache.set_many(vec![(1, s("a")), (2, s("b"))]);
        assert_eq!(sets.len(), 2);
        sets.into_iter().for_each(|r| assert_closed("set_many", r));
        let deletes = cache.delete_many(&[1, 2, 3, 4]);
        assert_eq!(deletes.len(), 4);
        deletes
            .into_iter()
            .for_each(|r| assert_closed("delete_many", r));
        assert_eq!(cache.run_pending_tasks(), 0);
    });
}

#[test]
fn close_is_idempotent_and_closes_each_layer_once() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("one")).unwrap();
    cache.close();
    cache.close();
    cache.clone().close();
    assert!(cache.is_closed());
    assert_eq!(l2.closes.load(Ordering::SeqCst), 1);
    // The memory tiers freed their entries; stats still work.
    let stats = cache.stats();
    assert_eq!(stats.layers[0].len, Some(0));
    assert_eq!(stats.layers[1].len, Some(0));
}

#[test]
fn close_is_seen_by_every_clone() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        let other = cache.clone();
        cache.set(1, s("one")).unwrap();
        assert_eq!(other.get(&1).unwrap(), Some(s("one")));
        other.close();
        assert!(cache.is_closed());
        assert_closed("get", cache.get(&1));
        assert_closed("set", cache.set(1, s("x")));
        // And from another thread.
        let remote = cache.clone();
        let result = thread::spawn(move || remote.get(&1)).join().unwrap();
        assert_closed("get on another thread", result);
    });
}

#[test]
fn close_drops_queued_promotions() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .deferred_promotion(100)
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("l2", 10))
        .build()
        .unwrap();
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    cache.close();
    assert_eq!(cache.run_pending_tasks(), 0);
    assert_eq!(cache.stats().layers[0].promotions_in, 0);
}
