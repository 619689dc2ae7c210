//! The model of an in-place overwrite that moves a word value's expiry later, racing a reader
//! that moves the clock: see
//! [`in_place_expiry_extension_racing_a_reader`](loom_tests::model::in_place_expiry_extension_racing_a_reader).
//!
//! A test binary of its own: it makes every read yield after its lookup
//! (`strata::YieldPoint::AfterReadLookup`, process-wide), which the interleavings its broken twins need
//! (a reader standing on the node while the writer stores into it) take, and which the other
//! models do not need to pay for.
#![cfg(loom)]

use loom_tests::model::{check_with_preemptions, in_place_expiry_extension_racing_a_reader};

/// Three preemptions, whatever LOOM_MAX_PREEMPTIONS says, as its twins run with.
#[test]
fn in_place_expiry_extension_racing_a_reader_keeps_the_contract() {
    strata::yield_for_test(strata::YieldPoint::AfterReadLookup);
    check_with_preemptions(3, in_place_expiry_extension_racing_a_reader);
}
