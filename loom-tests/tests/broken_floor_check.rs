//! The broken twin of the memory tier's floor check under the bucket lock (`floors.rs`,
//! "Under a lock of the key"): a write into a place its key left checks the stripe's floor
//! while it holds the key's bucket lock, and links a node visible at once. With the check made
//! before the lock instead, loom must find the model `set_racing_a_second_delete` failing: the
//! set checks L1's floor, the second delete raises it, finds L1 empty and returns, and the set
//! then links its value into L1, above L2's deletion.
//!
//! `break_for_test` switches this variant on alone: with promotion validation off as well (as
//! in `broken.rs`), which also skips this check, the model would fail for that reason instead.
#![cfg(loom)]

use loom_tests::model::{check_with_preemptions, set_racing_a_second_delete_scenario};

#[test]
#[should_panic(expected = "layers disagree")]
fn floor_checked_before_the_bucket_lock_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::FloorCheckedBeforeLock);
    // Two preemptions, whatever LOOM_MAX_PREEMPTIONS says: the twin must reach the interleaving.
    check_with_preemptions(2, set_racing_a_second_delete_scenario);
}
