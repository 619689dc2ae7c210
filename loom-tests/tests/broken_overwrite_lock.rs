//! The broken twin of the in-place overwrite model against an eviction: with the overwrite
//! decided and made on a node found without the bucket lock, loom must find the interleaving
//! where an eviction unlinks the node first (raising the floor to its old version), the
//! overwrite lands on the unlinked node, and a slower, older write then publishes into the
//! emptied place.
//!
//! `break_for_test` switches this variant on alone: with the floor validation off as well (as
//! in `broken.rs`) the correct code would fail this model too.
#![cfg(loom)]

use loom_tests::model::{check_with_preemptions, in_place_write_racing_an_eviction};

#[test]
#[should_panic(expected = "L1 went back to an older write")]
fn in_place_write_outside_the_lock_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::InPlaceOutsideLock);
    // Two preemptions, whatever LOOM_MAX_PREEMPTIONS says: the twin must reach the interleaving.
    check_with_preemptions(2, in_place_write_racing_an_eviction);
}
