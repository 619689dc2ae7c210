//! Fuzzing of `CacheBuilder::build` with arbitrary, mostly invalid, input: it must never panic,
//! must refuse with exactly the `BuildError` the builder's rules predict, and a cache it accepts
//! must serve a set/get round trip (`fuzz/model.rs`, `check_config`).
#![no_main]

#[path = "../model.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use model::{check_config, BuilderInput};

fuzz_target!(|input: BuilderInput| {
    check_config(&input);
});
