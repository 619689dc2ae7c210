//! The broken twin of the in-place expiry model's reader half: with the overwrite storing the
//! new expiry before the new value, loom must find a reader that sees the later expiry beside
//! the old value and returns that value after it expired.
//!
//! A test binary of its own, as the model's (`expiry.rs`): reads yield after their lookup, and
//! the yield point is process-wide.
#![cfg(loom)]

use loom_tests::model::{check_with_preemptions, in_place_expiry_extension_racing_a_reader};

#[test]
#[should_panic(expected = "a value was read after its expiry")]
fn in_place_expiry_stored_first_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::InPlaceExpiryFirst);
    strata::yield_for_test(strata::YieldPoint::AfterReadLookup);
    // Three preemptions, whatever LOOM_MAX_PREEMPTIONS says: the twin must reach the interleaving.
    check_with_preemptions(3, in_place_expiry_extension_racing_a_reader);
}
