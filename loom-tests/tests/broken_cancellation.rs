//! The broken twin of "Promotions that publish late" (`strata::protocol`): with writes that do
//! not cancel the pending promotions of their key, loom must find a promoter that validated
//! its ticket just before a write began and publishes the older value into L1 after a reader
//! has returned the write's value from L2: new, then old.
//!
//! A test binary of its own, with promotions that yield between validation and publication
//! (`strata::slow_promotions_for_test`). Among the twins of `broken.rs`, whose switches
//! accumulate within a process, this model failed only for the other twins' reasons (or hit
//! loom's branch limit in some runs), and alone, without the yield, loom's bounded search did
//! not reach the interleaving: a write beginning inside that window cost it a preemption.
#![cfg(loom)]

use loom::thread;
use loom_tests::model::{below_l1, cache, check_with_preemptions, two_reads_around};

#[test]
#[should_panic(expected = "new then old")]
fn promotion_without_cancellation_is_caught() {
    strata::break_for_test(strata::Broken::PromotionCancellation);
    strata::slow_promotions_for_test();
    check_with_preemptions(3, || {
        let (cache, _) = cache(&[4, 4], None);
        below_l1(&cache, 1, 1);
        let promoter = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1).unwrap())
        };
        let reader = two_reads_around(&cache, 1, promoter);
        cache.set(1, 2).unwrap();
        let (first, second) = reader.join().unwrap();
        assert!(
            !(first == Some(2) && second == Some(1)),
            "new then old: {first:?} then {second:?}"
        );
    });
}
