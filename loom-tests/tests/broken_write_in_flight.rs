//! The broken twin of the sole tier's writes, which mark nothing in flight (they take no write
//! token at all; see "One layer" in `strata::protocol`): sound in a cache of one layer, which
//! has nowhere to promote from, and caught where it does not belong. With every write of a
//! cache of two layers begun with a version but no in-flight mark, loom must find a reader
//! that takes its promotion ticket while a delete is in flight (the stripe shows nothing in
//! flight), reads the old value below L1 before the delete removes it, and publishes it into
//! L1 after the delete returned.
//!
//! `break_for_test` switches this variant on alone: with promotion validation off as well (as
//! in `broken.rs`) this model would fail for that reason instead.
#![cfg(loom)]

use loom_tests::model::{check_with_preemptions, promotion_racing_delete_scenario};

#[test]
#[should_panic(expected = "stale value after delete returned")]
fn writes_without_an_in_flight_mark_in_a_two_layer_cache_are_caught() {
    let _broken = strata::break_for_test(strata::Broken::WriteWithoutInFlight);
    // Two preemptions, whatever LOOM_MAX_PREEMPTIONS says: the twin must reach the interleaving.
    check_with_preemptions(2, promotion_racing_delete_scenario);
}
