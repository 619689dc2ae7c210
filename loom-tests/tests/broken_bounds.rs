//! The bound model's broken twin: with an undone insert's bound check switched off, loom must
//! find the interleaving where a write replaces a promotion's pending node before the promoter
//! counted its residency, and L1 stays over its capacity.
//!
//! `break_for_test` switches this variant on alone: with promotion validation and cancellation
//! off as well (as in `broken.rs`), the promotion would publish and evict for that reason.
#![cfg(loom)]

use loom::thread;
use loom_tests::model::{below_l1, cache, check_with_preemptions};

#[test]
#[should_panic(expected = "L1 over capacity")]
fn undone_promotion_that_skips_the_bounds_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::UndoneInsertSkipsBounds);
    // Two preemptions, whatever LOOM_MAX_PREEMPTIONS says: the twin must reach the interleaving.
    check_with_preemptions(2, || {
        let (cache, _) = cache(&[1, 4], None);
        cache.set(2, 9).unwrap();
        below_l1(&cache, 1, 1);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1).unwrap())
        };
        cache.set(1, 2).unwrap();
        reader.join().unwrap();
        let len = cache.stats().layers[0].len.unwrap();
        assert!(len <= 1, "L1 over capacity: {len} entries");
    });
}
