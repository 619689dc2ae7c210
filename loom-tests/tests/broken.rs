//! The models have teeth: with ticket validation switched off (a loom-only test switch in
//! strata), loom must find the interleavings where a stale promotion outlives a `delete`, or a
//! `set` whose L1 copy was evicted meanwhile (the ABA case).
//!
//! A separate test binary, so the switch cannot leak into the real models.
#![cfg(loom)]

use loom::thread;
use loom_tests::model::{below_l1, cache, in_layer};
use std::sync::atomic::Ordering;

#[test]
#[should_panic(expected = "stale value after delete returned")]
fn unvalidated_promotion_racing_delete_is_caught() {
    strata::BREAK_PROMOTION_VALIDATION.store(true, Ordering::Relaxed);
    loom::model(|| {
        let (cache, _) = cache(&[4, 4], None);
        below_l1(&cache, 1, 1);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1).unwrap())
        };
        cache.delete(&1).unwrap();
        reader.join().unwrap();
        assert_eq!(in_layer(&cache, "l1", 1), None, "stale value after delete returned");
    });
}

#[test]
#[should_panic(expected = "stale value after set returned")]
fn unvalidated_promotion_racing_eviction_is_caught() {
    strata::BREAK_PROMOTION_VALIDATION.store(true, Ordering::Relaxed);
    loom::model(|| {
        let (cache, _) = cache(&[1, 4], None);
        below_l1(&cache, 1, 1);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1).unwrap())
        };
        cache.set(1, 2).unwrap();
        cache.set(2, 9).unwrap(); // evicts key 1 from L1
        reader.join().unwrap();
        assert_eq!(cache.get(&1).unwrap(), Some(2), "stale value after set returned");
    });
}
