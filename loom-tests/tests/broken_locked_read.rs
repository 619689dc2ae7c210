//! The broken twin of `a_locked_read_never_reads_a_reclaimed_link` (`table.rs`): with the
//! chained table's guard-free write (`write_unpinned`) walking the chain without the lock, loom
//! must find the interleaving where a writer replaces the link the reader stands on and, no
//! guard being active, reclaims it while the reader reads it.
//!
//! A test binary of its own: this switch makes every memory-tier write unsound (and drops the
//! stores it decides: the twin's model only reads), so it stays away from the other models.
#![cfg(loom)]

use loom_tests::model::locked_read_scenario;

#[test]
#[should_panic(expected = "the unlocked lookup was caught")]
fn a_locked_read_without_the_lock_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::TableLockedReadUnlocked);
    // Loom fails the model in one of two ways, whichever failing schedule it explores first:
    // the reader returns a reclaimed link's value, or it loads a `next` of a link whose memory
    // a newer link took, which loom reports as a causality violation. Either is the bug.
    let failure = std::panic::catch_unwind(|| loom::model(locked_read_scenario))
        .expect_err("loom must reject the unlocked lookup");
    let message = failure
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| failure.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(
        message.contains("a locked read saw a reclaimed link")
            || message.contains("Causality violation"),
        "failed for another reason: {message}"
    );
    panic!("the unlocked lookup was caught: {message}");
}
