//! The `Layer` trait: what a tier must do to sit in a cache.
//!
//! strata's own in-memory tier ([`MemoryLayer`](crate::memory::MemoryLayer)) implements it; users plug
//! in remote stores or databases the same way. A layer stores [`Entry`]s: a value with the write
//! version that produced it and its absolute expiry.
//!
//! # What a layer must guarantee
//!
//! - `get` never returns an entry whose `expires_at` is at or before `now`.
//! - `set` keeps the entry with the **higher version** when the key already holds one (an older
//!   version arriving late is dropped), and inserts a key it does not hold the way a promotion
//!   does (insert invisibly, check the write's [`Ticket`], then publish or remove). This is what
//!   makes every layer agree on the last writer when two writes of a key race, even when the
//!   newer value was evicted from a layer before the older one arrived. A layer that cannot do
//!   this (a plain remote `SET`) still works, but then racing writes of one key may leave it
//!   holding an older value.
//! - `delete(key, ticket)` removes the key unless it holds a version newer than the delete's
//!   own (`ticket.version()`), and, if the layer may later accept an older write into the empty
//!   slot, remembers that version for the key's stripe (the memory tier keeps per-stripe
//!   *floors*; see [`MemoryLayer`](crate::memory::MemoryLayer)).
//! - `promote` inserts an entry only if the key is absent, and makes it visible to readers only
//!   after [`Ticket::is_current`] has been checked *after* the insert (see
//!   [`protocol`](crate::protocol) for why). The default implementation declines every
//!   promotion, which is always safe.
//!
//! Batch methods have default implementations that loop over the single-key ones; a layer
//! with a cheaper batch path (one network round trip, one guard pin) overrides them.

use std::sync::Arc;
use thiserror::Error;

pub use crate::clock::{Clock, Timestamp};
pub use crate::floors::Floors;
pub use crate::protocol::{OwnedTicket, Ticket, Version};

/// A failure reported by one layer.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The layer could not be reached or refused the operation (a remote store that is down).
    #[error("layer unavailable: {0}")]
    Unavailable(String),
    /// The layer does not implement this operation (for example iteration).
    #[error("operation not supported by this layer")]
    Unsupported,
    /// Any other failure, with its source.
    #[error(transparent)]
    Other(Arc<dyn std::error::Error + Send + Sync>),
}

/// A value as a layer stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<V> {
    /// The cached value.
    pub value: V,
    /// The write version that produced this value (higher is later, per key).
    pub version: Version,
    /// When the entry stops being visible ([`Timestamp::NEVER`] for no expiry).
    pub expires_at: Timestamp,
}

/// Counters a layer keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerCounters {
    /// Entries removed to respect the capacity or weight bound.
    pub evictions: u64,
    /// Entries removed because their TTL had passed.
    pub expirations: u64,
    /// Writes the layer accepted but did not keep, as if evicted at once (strata's memory tier:
    /// an insert whose write ticket lost to a newer removal on the same write stripe). The
    /// engine learns of each from the tier and reports it in [`WriteReport::dropped`].
    ///
    /// [`WriteReport::dropped`]: crate::WriteReport::dropped
    pub dropped: u64,
    /// Entries currently held, if the layer knows.
    pub len: Option<u64>,
    /// Whether the layer is taking calls (a remote layer's circuit breaker).
    pub health: LayerHealth,
    /// How many times the layer's circuit breaker opened.
    pub circuit_opened: u64,
}

/// A layer's own account of whether it takes calls: the state of a remote layer's circuit
/// breaker. In-process layers are always [`Healthy`](LayerHealth::Healthy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerHealth {
    /// Calls go through.
    #[default]
    Healthy,
    /// After repeated failures the layer refuses calls at once (reads fall through to the other
    /// layers, writes report the layer as failed) until a cool-down ends.
    Open,
    /// The cool-down ended: one call probes the layer; its outcome closes or reopens the
    /// breaker.
    Probing,
}

/// The result of a batch read: one per key, in order.
pub type GetResults<V> = Vec<Result<Option<Entry<V>>, LayerError>>;

/// One tier of a cache. See the [module docs](self) for the guarantees a layer must give.
pub trait Layer<K, V>: Send + Sync {
    /// Looks a key up. A miss is `Ok(None)`.
    fn get(&self, key: &K, now: Timestamp) -> Result<Option<Entry<V>>, LayerError>;

    /// Whether the key is present, without cloning its value.
    fn contains(&self, key: &K, now: Timestamp) -> Result<bool, LayerError> {
        self.get(key, now).map(|entry| entry.is_some())
    }

    /// Stores an entry, keeping the higher version if the key already holds one. If the key is
    /// absent, the entry must become visible only if `ticket` is still current after it was
    /// inserted (see the [module docs](self)); use [`Ticket::unconditional`] to call a layer
    /// directly, outside a cache.
    fn set(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<(), LayerError>;

    /// Removes a key unless it holds a version newer than the delete's (`ticket.version()`).
    /// Idempotent.
    fn delete(&self, key: &K, ticket: &Ticket<'_>) -> Result<(), LayerError>;

    /// Inserts a promoted entry if the key is absent, validating `ticket` as described in
    /// [`protocol`](crate::protocol). Returns whether the entry was promoted. The default
    /// declines: a layer that cannot insert-then-validate atomically must not accept promotions.
    fn promote(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<bool, LayerError> {
        let _ = (key, entry, ticket);
        Ok(false)
    }

    /// Looks up several keys; one result per key, in order.
    fn get_many(&self, keys: &[&K], now: Timestamp) -> GetResults<V> {
        keys.iter().map(|key| self.get(key, now)).collect()
    }

    /// Stores several entries, each with its write's ticket; one result per entry, in order.
    fn set_many(&self, entries: Vec<(&K, Entry<V>, Ticket<'_>)>) -> Vec<Result<(), LayerError>> {
        entries
            .into_iter()
            .map(|(key, entry, ticket)| self.set(key, entry, &ticket))
            .collect()
    }

    /// Deletes several keys, each with its write's ticket; one result per key, in order.
    fn delete_many(&self, keys: &[(&K, Ticket<'_>)]) -> Vec<Result<(), LayerError>> {
        keys.iter()
            .map(|(key, ticket)| self.delete(key, ticket))
            .collect()
    }

    /// Promotes several entries; one result per entry, in order.
    fn promote_many(
        &self,
        entries: Vec<(&K, Entry<V>, Ticket<'_>)>,
    ) -> Vec<Result<bool, LayerError>> {
        entries
            .into_iter()
            .map(|(key, entry, ticket)| self.promote(key, entry, &ticket))
            .collect()
    }

    /// Calls `f` for every live entry. Layers that cannot enumerate return
    /// [`LayerError::Unsupported`] (the default).
    fn for_each(&self, now: Timestamp, f: &mut dyn FnMut(&K, &V)) -> Result<(), LayerError> {
        let _ = (now, f);
        Err(LayerError::Unsupported)
    }

    /// The layer's own counters (evictions, expirations, size). Zero by default.
    fn counters(&self) -> LayerCounters {
        LayerCounters::default()
    }

    /// Whether the cache puts a negative filter in front of this layer unless told otherwise
    /// (see `LayerSpec::negative_filter`): say yes for a layer that is slow to ask (a network
    /// round trip) and that only this cache writes. A filter is rebuilt from
    /// [`for_each`](Layer::for_each), which must then visit every key held for the whole call.
    fn wants_negative_filter(&self) -> bool {
        false
    }

    /// Called once by [`Cache::close`](crate::Cache::close): release resources. Operations that
    /// were already running when `close` was called may still complete and call the layer;
    /// operations started after `close` returned never do.
    fn close(&self) {}
}
