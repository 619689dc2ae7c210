//! The `Layer` trait: what a tier must do to sit in a cache.
//!
//! strata's own in-memory tier ([`MemoryLayer`](crate::MemoryLayer)) implements it; users plug
//! in remote stores or databases the same way. A layer stores [`Entry`]s: a value with the write
//! version that produced it and its absolute expiry.
//!
//! # What a layer must guarantee
//!
//! - `get` never returns an entry whose `expires_at` is at or before `now`.
//! - `set` keeps the entry with the **higher version** when the key already holds one (an older
//!   version arriving late is dropped). This is what makes every layer agree on the last writer
//!   when two writes of a key race. A layer that cannot compare versions (a plain remote
//!   `SET`) still works, but then racing writes of one key may leave layers disagreeing.
//! - `delete(key, version)` removes the key unless it holds a version newer than `version`.
//! - `promote` inserts an entry only if the key is absent, and makes it visible to readers only
//!   after [`Ticket::is_current`] has been checked *after* the insert (see
//!   [`protocol`](crate::protocol) for why). The default implementation declines every
//!   promotion, which is always safe.
//!
//! Batch methods have default implementations that loop over the single-key ones; a layer
//! with a cheaper batch path (one network round trip, one guard pin) overrides them.

use crate::clock::Timestamp;
use crate::error::LayerError;
use crate::protocol::{Ticket, Version};

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
    /// Entries currently held, if the layer knows.
    pub len: Option<u64>,
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

    /// Stores an entry, keeping the higher version if the key already holds one.
    fn set(&self, key: &K, entry: Entry<V>) -> Result<(), LayerError>;

    /// Removes a key unless it holds a version newer than `version`. Idempotent.
    fn delete(&self, key: &K, version: Version) -> Result<(), LayerError>;

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

    /// Stores several entries; one result per entry, in order.
    fn set_many(&self, entries: Vec<(&K, Entry<V>)>) -> Vec<Result<(), LayerError>> {
        entries
            .into_iter()
            .map(|(key, entry)| self.set(key, entry))
            .collect()
    }

    /// Deletes several keys, each with its own version; one result per key, in order.
    fn delete_many(&self, keys: &[(&K, Version)]) -> Vec<Result<(), LayerError>> {
        keys.iter()
            .map(|(key, version)| self.delete(key, *version))
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

    /// Called once by [`Cache::close`](crate::Cache::close): release resources. After it, the
    /// cache never calls the layer again.
    fn close(&self) {}
}
