//! # strata — a lock-free, multi-tier concurrent cache engine
//!
//! strata puts ordered cache layers — in-process tiers, and whatever you plug in through the
//! [`Layer`](layer::Layer) trait (a remote store, a database) — behind one API: `get`, `set`, `delete`,
//! `contains_key` and their batch forms, with promotion of lower-layer hits into faster layers,
//! write-through or L1-only writes, per-layer TTLs, and failures that degrade service without
//! being hidden.
//!
//! ```
//! use std::time::Duration;
//! use strata::{Cache, LayerSpec};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache: Cache<u64, String> = Cache::builder()
//!     .layer(LayerSpec::memory("l1", 10_000).ttl(Duration::from_secs(60)))
//!     .layer(LayerSpec::memory("l2", 1_000_000).ttl(Duration::from_secs(3600)))
//!     .build()?;
//!
//! cache.set(7, "seven".to_string())?;          // written to l2, then l1
//! assert_eq!(cache.get(&7)?, Some("seven".to_string()));
//! cache.delete(&7)?;
//! assert_eq!(cache.get(&7)?, None);
//! # Ok(())
//! # }
//! ```
//!
//! ## The contract
//!
//! Per key, within one cache: after `set(k, v)` returns, no `get(k)` that starts afterwards
//! returns an older value; after `delete(k)` returns, no `get(k)` that starts afterwards returns
//! a value written before it. Promotions, evictions and expirations never break this. How:
//! [`protocol`].
//!
//! ## Map of the crate
//!
//! - [`Cache`], [`CacheBuilder`], [`LayerSpec`], [`SetOptions`], [`DeleteOptions`]: the public
//!   API an application uses.
//! - [`Stats`], [`WriteReport`], [`Lookup`], [`Error`]: what operations report.
//! - [`layer`]: the [`Layer`](layer::Layer) trait and what a layer implementer needs
//!   (`Entry`, `Ticket`, `OwnedTicket`, `LayerError`, `Floors`).
//! - [`memory`]: the in-process tier (its own chained map, S3-FIFO eviction, coarse-clock TTLs).
//! - [`protocol`]: write versions and promotion tickets — the concurrency argument.

#![warn(missing_docs, missing_debug_implementations)]

mod builder;
mod cache;
mod clock;
mod engine;
mod error;
mod filter;
mod floors;
mod heat;
pub mod layer;
#[cfg(not(loom))]
mod maintenance;
pub mod memory;
mod options;
pub mod protocol;
mod report;
mod stats;
mod sync;

pub use builder::{CacheBuilder, LayerSpec};
pub use cache::Cache;
pub use clock::{Clock, ManualClock};
pub use error::{BuildError, Error};
/// The chained table, for its loom models (loom builds only).
#[cfg(loom)]
#[doc(hidden)]
pub use memory::table::chained::model::ChainedTable;
pub use options::{DeleteOptions, Promotion, PromotionGate, SetOptions, WriteMode};
pub use report::{LayerFailure, LayerSet, Lookup, WriteReport};
pub use stats::{FilterStats, LayerStats, Stats};
#[cfg(loom)]
#[doc(hidden)]
pub use sync::{break_for_test, yield_for_test, Broken, BrokenGuard, YieldPoint};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
