//! Integration tests of strata's public API, one module per theme: builder checks, reads,
//! writes and write modes, read-only layers, promotion (immediate and deferred) and its TTLs,
//! expiry on a manual clock, eviction bounds, failure reporting through an injectable test
//! layer, batch operations, iteration, `close`, and thread-safety.
//!
//! The behaviour tests that hold whatever the configuration run through
//! [`support::each_config`], once under each configuration a user can choose: memory L1 over
//! memory L2 (the default), the same with deferred promotion, a custom (non-memory) L1 over a
//! memory L2, and three memory layers. Tests of one configuration's specifics build their own
//! cache.
//!
//! No test sleeps: every TTL is driven by `Clock::manual()`.

mod support;

mod batches;
mod builder;
mod close;
mod concurrency;
mod deferred;
mod eviction;
mod failures;
mod filter;
mod heat;
mod iteration;
mod promotion;
mod read_only;
mod reads;
mod ttl;
mod writes;
