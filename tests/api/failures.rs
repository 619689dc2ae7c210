//! Failures: reported through an injectable test layer, and custom layers that misbehave.

use std::sync::atomic::Ordering;

use strata::layer::{Entry, GetResults, Layer, LayerError, Ticket, Timestamp};
use strata::{Cache, Error, LayerSpec, SetOptions};

use crate::support::*;

#[test]
fn failing_l1_read_is_served_by_l2() {
    let (clock, _hand) = manual();
    let (cache, l1) = test_over_memory(&clock);
    cache.set(1, s("one")).unwrap();
    l1.fail_get.store(true, Ordering::SeqCst);
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    let lookup = cache.lookup(&1).unwrap();
    assert_eq!(lookup.value, Some(s("one")));
    assert_eq!(lookup.served_by, Some(1));
    assert_eq!(lookup.failures.len(), 1);
    let failure = &lookup.failures[0];
    assert_eq!((failure.index, &*failure.layer), (0, "l1"));
    assert!(!failure.invalidated);
    assert!(matches!(&failure.error, LayerError::Unavailable(msg) if msg == "injected"));
    assert_eq!(cache.stats().layers[0].errors, 2);
}

#[test]
fn failing_l2_read_of_a_key_missing_from_l1_is_unavailable() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    cache.set(2, s("two")).unwrap();
    l2.fail_get.store(true, Ordering::SeqCst);
    match cache.get(&1) {
        Err(Error::Unavailable(failures)) => {
            assert_eq!(failures.len(), 1);
            assert_eq!((failures[0].index, &*failures[0].layer), (1, "l2"));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // A key still in L1 is served.
    assert_eq!(cache.get(&2).unwrap(), Some(s("two")));
    // try_get does not fail: it reports.
    let lookup = cache.lookup(&1).unwrap();
    assert_eq!((lookup.value, lookup.failures.len()), (None, 1));
    // exists cannot tell either.
    assert!(matches!(cache.contains_key(&1), Err(Error::Unavailable(_))));
    assert!(cache.contains_key(&2).unwrap());
    assert_eq!(cache.stats().layers[1].errors, 3);
}

#[test]
fn failing_get_from_layer_is_a_layer_error() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    l2.fail_get.store(true, Ordering::SeqCst);
    match cache.get_from_layer("l2", &1) {
        Err(Error::Layer { layer, error }) => {
            assert_eq!(&*layer, "l2");
            assert!(matches!(error, LayerError::Unavailable(_)));
        }
        other => panic!("expected Error::Layer, got {other:?}"),
    }
    assert_eq!(cache.stats().layers[1].errors, 1);
}

#[test]
fn failing_set_in_l2_is_incomplete_and_invalidates_l2() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("old")).unwrap();
    l2.fail_set.store(true, Ordering::SeqCst);
    let report = incomplete(cache.set(1, s("new")));
    assert_eq!(layers_of(report.written), [0]);
    assert!(!report.is_complete());
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert_eq!((failure.index, &*failure.layer), (1, "l2"));
    assert!(
        failure.invalidated,
        "the delete worked, so l2 was invalidated"
    );
    assert_eq!(
        l2.peek(&1, clock.now()),
        None,
        "the old value is gone from l2"
    );
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
    assert_eq!(cache.stats().layers[1].errors, 1);
}

#[test]
fn failing_set_and_delete_in_l2_is_reported_not_invalidated() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("old")).unwrap();
    l2.fail_set.store(true, Ordering::SeqCst);
    l2.fail_delete.store(true, Ordering::SeqCst);
    let report = incomplete(cache.set(1, s("new")));
    assert_eq!(layers_of(report.written), [0]);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(&*report.failures[0].layer, "l2");
    assert!(!report.failures[0].invalidated);
    assert_eq!(l2.peek(&1, clock.now()), Some(s("old")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
}

#[test]
fn failing_invalidation_of_a_skipped_layer_is_reported() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("old")).unwrap();
    l2.fail_delete.store(true, Ordering::SeqCst);
    let report = incomplete(cache.set_with(1, s("new"), &SetOptions::new().l1_only()));
    assert_eq!(layers_of(report.written), [0]);
    assert!(report.invalidated.is_empty());
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].index, 1);
    assert!(!report.failures[0].invalidated);
}

#[test]
fn failing_delete_in_l2_is_incomplete() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("one")).unwrap();
    l2.fail_delete.store(true, Ordering::SeqCst);
    let report = incomplete(cache.delete(&1));
    assert_eq!(layers_of(report.invalidated), [0]);
    assert!(report.written.is_empty());
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert_eq!((failure.index, &*failure.layer), (1, "l2"));
    assert!(!failure.invalidated);
    assert!(matches!(failure.error, LayerError::Unavailable(_)));
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.stats().layers[1].errors, 1);
}

#[test]
fn failing_l1_set_still_writes_l2() {
    let (clock, _hand) = manual();
    let (cache, l1) = test_over_memory(&clock);
    cache.set(1, s("old")).unwrap();
    l1.fail_set.store(true, Ordering::SeqCst);
    let report = incomplete(cache.set(1, s("new")));
    assert_eq!(layers_of(report.written), [1]);
    assert_eq!(report.failures[0].index, 0);
    assert!(report.failures[0].invalidated);
    // L1 was invalidated, so the new value is read from L2 (and promoted).
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
    assert_eq!(l1.peek(&1, clock.now()), Some(s("new")));
}

#[test]
fn failing_promotion_is_counted_and_does_not_fail_the_read() {
    let (clock, _hand) = manual();
    let (cache, l1) = test_over_memory(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    l1.fail_promote.store(true, Ordering::SeqCst);
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    let stats = cache.stats();
    assert_eq!(stats.layers[0].errors, 1);
    assert_eq!(stats.layers[0].promotions_in, 0);
    assert_eq!(l1.peek(&1, clock.now()), None);
}

#[test]
fn error_messages_name_the_layer() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    l2.fail_set.store(true, Ordering::SeqCst);
    let err = cache.set(1, s("x")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("l2") && text.contains("injected"), "{text}");
}

/// A custom layer whose batch answers have the wrong length.
struct ShortBatches;

impl Layer<u64, u64> for ShortBatches {
    fn get(&self, _: &u64, _: Timestamp) -> Result<Option<Entry<u64>>, LayerError> {
        Ok(None)
    }
    fn set(&self, _: &u64, _: Entry<u64>, _: &Ticket<'_>) -> Result<(), LayerError> {
        Ok(())
    }
    fn delete(&self, _: &u64, _: &Ticket<'_>) -> Result<(), LayerError> {
        Ok(())
    }
    fn get_many(&self, _: &[&u64], _: Timestamp) -> GetResults<u64> {
        Vec::new()
    }
    fn set_many(
        &self,
        entries: Vec<(&u64, Entry<u64>, Ticket<'_>)>,
    ) -> Vec<Result<(), LayerError>> {
        entries
            .iter()
            .chain(entries.iter())
            .map(|_| Ok(()))
            .collect()
    }
}

#[test]
fn a_custom_layer_with_wrong_batch_lengths_is_reported_not_a_panic() {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::custom("odd", ShortBatches))
        .build()
        .unwrap();
    let results = cache.get_many(&[1, 2]);
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(Error::Unavailable(_)))),
        "{results:?}"
    );
    let results = cache.set_many(vec![(1, 1), (2, 2)]);
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}
