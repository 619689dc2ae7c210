//! The broken twin of the in-place expiry model's removal half: with a reader removing a node it
//! found expired without checking, under the bucket lock, that it still is, loom must find the
//! reader removing the node a racing write had just extended, losing the write's value.
//!
//! A test binary of its own, as the model's (`expiry.rs`): reads yield after their lookup, and
//! the yield point is process-wide.
#![cfg(loom)]

use loom_tests::model::{check_with_preemptions, in_place_expiry_extension_racing_a_reader};

#[test]
#[should_panic(expected = "the write's value was lost")]
fn expired_node_removed_without_a_recheck_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::ExpiryRemovalUnchecked);
    strata::yield_for_test(strata::YieldPoint::AfterReadLookup);
    // Three preemptions, as the model runs with.
    check_with_preemptions(3, in_place_expiry_extension_racing_a_reader);
}
