//! The broken twin of the in-place overwrite model against a reader: with the word stored by a
//! plain write into the value's cell (not through its atomic), loom must report the reader
//! that races it.
//!
//! A test binary of its own: this switch makes every overwrite racy, so it stays away from the
//! other models.
#![cfg(loom)]

use loom_tests::model::in_place_writes_racing_a_reader;

#[test]
#[should_panic(expected = "Causality violation")]
fn plain_in_place_write_racing_a_reader_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::InPlacePlainWrite);
    loom::model(in_place_writes_racing_a_reader);
}
