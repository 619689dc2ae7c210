//! What strata's bench runner, criterion benches, hit-ratio examples and allocation tests share:
//! the key streams, the caches the seed scenarios run on, and the counting allocators. Not part
//! of the library: it lives in its own workspace member so that the library's dependency set
//! stays lean.

pub mod alloc;
pub mod fixtures;
pub mod keys;
