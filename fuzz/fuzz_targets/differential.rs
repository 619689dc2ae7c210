//! Differential fuzzing of the cache against the reference model of `fuzz/model.rs`: arbitrary
//! configurations (1–3 layers: memory tiers, TTLs, read-only and weighted layers, layers that
//! fail on command; promotion and write modes, deferred promotion) and arbitrary operation
//! sequences on a manual clock.
#![no_main]

#[path = "../model.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use model::{check_ops, Config, Op};

fuzz_target!(|input: (Config, Vec<Op>)| {
    let (config, ops) = input;
    check_ops(&config, &ops);
});
