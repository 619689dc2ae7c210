//! The broken twin of "Promotions that publish late" (`strata::protocol`): with writes that do
//! not cancel the pending promotions of their key, loom must find a promoter that validated
//! its ticket just before a write began and publishes the older value into L1 after a reader
//! has returned the write's value from L2: new, then old (the contract model
//! `promotion_publishing_after_a_set_began_is_cancelled`, the same scenario).
//!
//! A test binary of its own, with promotions that yield between validation and publication
//! (`strata::YieldPoint::BeforePromotionPublish`, process-wide): without the yield, loom's
//! bounded search did not reach the interleaving, a write beginning inside that window cost it
//! a preemption.
#![cfg(loom)]

use loom_tests::model::{check_with_preemptions, promotion_publishing_late_scenario};

#[test]
#[should_panic(expected = "new then old")]
#[cfg_attr(
    strata_loom_chained,
    ignore = "over the chained table loom needs about five minutes to reach this interleaving; \
              cancellation does not depend on the map, and this twin runs over the stand-in"
)]
fn promotion_without_cancellation_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::PromotionCancellation);
    strata::yield_for_test(strata::YieldPoint::BeforePromotionPublish);
    check_with_preemptions(3, promotion_publishing_late_scenario);
}
