//! What strata's bench runner, criterion benches, hit-ratio examples and allocation tests share:
//! the seed scenarios (one list for the runner and the criterion rows), the design-card rows and
//! their simulated remote layer, the key streams, the caches the scenarios run on, and the
//! counting allocators. Not part
//! of the library: it lives in its own workspace member so that the library's dependency set
//! stays lean.

pub mod alloc;
pub mod fixtures;
pub mod keys;
pub mod remote;
pub mod scenarios;
pub mod traces;
