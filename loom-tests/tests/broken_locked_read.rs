//! The broken twin of `a_locked_read_never_reads_a_reclaimed_link` (`table.rs`): with the
//! chained table's guard-free locked lookup walking the chain without the lock, loom must find
//! the interleaving where a writer replaces the link the reader stands on and, no guard being
//! active, reclaims it while the reader reads it: loom reports the read racing the reclaimed
//! link's drop (a causality violation) before the value check can.
//!
//! A test binary of its own: the switches accumulate within a process, and this one would make
//! every in-place write of the other twins' models unsound.
#![cfg(loom)]

use loom_tests::model::locked_read_scenario;

#[test]
#[should_panic(expected = "Causality violation")]
fn a_locked_read_without_the_lock_is_caught() {
    strata::break_for_test(strata::Broken::TableLockedReadUnlocked);
    loom::model(|| {
        let seen = locked_read_scenario();
        assert!(
            matches!(seen, Some(10) | Some(11)),
            "a locked read saw a reclaimed link: {seen:?}"
        );
    });
}
