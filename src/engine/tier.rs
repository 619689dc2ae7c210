//! One layer of a cache as the engine holds it: its name, TTL, flags, counters and store.
//!
//! strata's own memory tier is called directly (no dynamic dispatch, borrowed keys, the
//! engine's hash); any other layer through the [`Layer`] trait, with an owned key made once per
//! operation. Batch forms call a custom layer's batch method (one round trip for a remote
//! store), and loop over a memory tier's single-key calls (no allocation). Results come back
//! through a callback, in order, exactly one per item, whatever a custom layer returned.

use super::key::{Key, KeyRef};
use crate::clock::Timestamp;
use crate::filter::NegativeFilter;
use crate::layer::{Entry, Layer, LayerError};
use crate::memory::MemoryLayer;
use crate::protocol::Ticket;
use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// Where a tier's entries live.
// One boxed slice of tiers, built once: boxing the memory tier to even the variants out would
// add a pointer chase to every L1 hit.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Store<K, V> {
    Memory(MemoryLayer<K, V>),
    Custom(Arc<dyn Layer<K, V>>),
}

/// The engine's counters of one tier, kept in the cache's striped counters.
#[derive(Clone, Copy)]
pub(crate) enum Count {
    Hits = 0,
    Misses = 1,
    PromotionsIn = 2,
    Errors = 3,
    /// Lower-layer hits not promoted into this tier: the key was not hot enough.
    PromotionsDeclined = 4,
    /// Promotions into this tier dropped because their queue stripe was full.
    PromotionsDropped = 5,
    /// Lookups that skipped this tier: its filter said the key was absent.
    FilterSkips = 6,
    /// Lookups the filter let through that missed.
    FilterFalsePositives = 7,
    /// Sampled skips that found the key after all.
    FilterFalseNegatives = 8,
}

/// Counter slot 0 counts requests no layer served that went through the read path; slot 1
/// the misses `get` ruled out below L1 by the filters alone (each is also a request miss and a
/// skip of every layer below L1: `stats` adds it there, so the fast path bumps one counter);
/// each tier has `PER_TIER` slots after them.
pub(crate) const REQUEST_MISSES: usize = 0;
pub(crate) const RULED_OUT_BELOW_L1: usize = 1;
const FIRST_TIER_SLOT: usize = 2;
const PER_TIER: usize = 9;
/// L1's hit and miss slots, as constants for `Cache::get`'s fast path.
pub(crate) const L1_HITS: usize = FIRST_TIER_SLOT + Count::Hits as usize;
pub(crate) const L1_MISSES: usize = FIRST_TIER_SLOT + Count::Misses as usize;

/// The number of counter slots a cache of `tiers` tiers needs.
pub(crate) const fn counter_slots(tiers: usize) -> usize {
    FIRST_TIER_SLOT + tiers * PER_TIER
}

pub(crate) struct Tier<K, V> {
    /// Position in the cache, L1 = 0.
    pub(crate) index: usize,
    pub(crate) name: Arc<str>,
    pub(crate) ttl: Option<Duration>,
    /// False for a read-only layer (a source of truth the cache never writes).
    pub(crate) writable: bool,
    pub(crate) store: Store<K, V>,
    /// The tier's negative filter, if it has one (see [`crate::filter`]). Boxed: the filter is
    /// large and cache-padded, and every read walks the tiers.
    pub(crate) filter: Option<Box<NegativeFilter>>,
}

impl<K, V> Tier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The counter slot of one of this tier's counts.
    #[inline]
    pub(crate) fn slot(&self, count: Count) -> usize {
        FIRST_TIER_SLOT + self.index * PER_TIER + count as usize
    }

    /// The tier as a [`Layer`] (iteration, counters, close).
    pub(crate) fn layer(&self) -> &dyn Layer<K, V> {
        match &self.store {
            Store::Memory(memory) => memory,
            Store::Custom(custom) => custom.as_ref(),
        }
    }

    /// The memory tier, if this is one.
    #[inline]
    pub(crate) fn memory(&self) -> Option<&MemoryLayer<K, V>> {
        match &self.store {
            Store::Memory(memory) => Some(memory),
            Store::Custom(_) => None,
        }
    }

    /// The memory tier, if this is one, while the engine is being built.
    pub(crate) fn memory_mut(&mut self) -> Option<&mut MemoryLayer<K, V>> {
        match &mut self.store {
            Store::Memory(memory) => Some(memory),
            Store::Custom(_) => None,
        }
    }

    #[inline]
    pub(crate) fn get<Q>(&self, key: &Key<'_, K, Q>, now: Timestamp) -> GetResult<V>
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        match &self.store {
            Store::Memory(memory) => Ok(memory.get_entry(key.borrowed(), key.known_hash())),
            Store::Custom(custom) => custom.get(key.owned(), now),
        }
    }

    pub(crate) fn contains<Q>(
        &self,
        key: &Key<'_, K, Q>,
        now: Timestamp,
    ) -> Result<bool, LayerError>
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        match &self.store {
            Store::Memory(memory) => Ok(memory.contains_key(key.borrowed())),
            Store::Custom(custom) => custom.contains(key.owned(), now),
        }
    }

    /// Reads several keys; `done(i, result)` for each, in order.
    pub(crate) fn get_each<'k, Q>(
        &self,
        keys: &[&Key<'k, K, Q>],
        now: Timestamp,
        mut done: impl FnMut(usize, GetResult<V>),
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized + 'k,
    {
        match (&self.store, keys) {
            (Store::Memory(_), _) | (Store::Custom(_), [_]) => {
                for (i, key) in keys.iter().enumerate() {
                    done(i, self.get(key, now));
                }
            }
            (Store::Custom(custom), _) => {
                let owned: Vec<&K> = keys.iter().map(|key| key.owned()).collect();
                for (i, result) in fit(custom.get_many(&owned, now), keys.len())
                    .into_iter()
                    .enumerate()
                {
                    done(i, result);
                }
            }
        }
    }

    /// Writes; `Ok(false)` when the layer accepted an entry but did not keep it (only strata's
    /// memory tier can tell; see `MemoryLayer::store`). `done(i, result)` for each, in order.
    #[inline]
    pub(crate) fn set_each<'k, 't, Q>(
        &self,
        entries: impl Iterator<Item = (&'k Key<'k, K, Q>, Entry<V>, Ticket<'t>)>,
        mut done: impl FnMut(usize, Result<bool, LayerError>),
    ) where
        K: Borrow<Q> + 'k,
        Q: KeyRef<K> + ?Sized + 'k,
    {
        match &self.store {
            // A single write (at most one entry) pins only if its policy step needs a guard:
            // the batch loop inlined into the engine's write path costs a `set` about 120
            // instructions more (callgrind).
            Store::Memory(memory) if entries.size_hint().1 <= Some(1) => {
                for (i, (key, entry, ticket)) in entries.enumerate() {
                    done(i, Ok(memory.store(key.owned(), key.hash(), entry, &ticket)));
                }
            }
            Store::Memory(memory) => {
                // One pin of the map for the whole batch (a pin's exit is an atomic swap).
                let pinned = memory.pinned();
                for (i, (key, entry, ticket)) in entries.enumerate() {
                    done(i, Ok(pinned.store(key.owned(), key.hash(), entry, &ticket)));
                }
            }
            Store::Custom(custom) => {
                let mut batch: Vec<(&K, Entry<V>, Ticket<'t>)> = entries
                    .map(|(key, entry, ticket)| (key.owned(), entry, ticket))
                    .collect();
                if batch.len() == 1 {
                    let (key, entry, ticket) = batch.pop().expect("one entry");
                    return done(0, custom.set(key, entry, &ticket).map(|()| true));
                }
                let expected = batch.len();
                for (i, result) in fit(custom.set_many(batch), expected)
                    .into_iter()
                    .enumerate()
                {
                    done(i, result.map(|()| true));
                }
            }
        }
    }

    /// Deletes or invalidations; `done(i, result)` for each, in order.
    #[inline]
    pub(crate) fn delete_each<'k, 't, Q>(
        &self,
        keys: impl Iterator<Item = (&'k Key<'k, K, Q>, Ticket<'t>)>,
        mut done: impl FnMut(usize, Result<(), LayerError>),
    ) where
        K: Borrow<Q> + 'k,
        Q: KeyRef<K> + ?Sized + 'k,
    {
        match &self.store {
            // A delete takes no pin (see `MemoryLayer::remove`), so a batch has none to share.
            Store::Memory(memory) => {
                for (i, (key, ticket)) in keys.enumerate() {
                    memory.remove(key.borrowed(), key.hash(), &ticket);
                    done(i, Ok(()));
                }
            }
            Store::Custom(custom) => {
                let batch: Vec<(&K, Ticket<'t>)> =
                    keys.map(|(key, ticket)| (key.owned(), ticket)).collect();
                if let [(key, ticket)] = batch.as_slice() {
                    return done(0, custom.delete(key, ticket));
                }
                for (i, result) in fit(custom.delete_many(&batch), batch.len())
                    .into_iter()
                    .enumerate()
                {
                    done(i, result);
                }
            }
        }
    }

    /// Promotions; `done(i, result)` for each, in order (`Ok(true)`: the entry landed).
    #[inline]
    pub(crate) fn promote_each<'k, 't>(
        &self,
        entries: impl Iterator<Item = (&'k K, u64, Entry<V>, Ticket<'t>)>,
        mut done: impl FnMut(usize, Result<bool, LayerError>),
    ) where
        K: 'k,
    {
        match &self.store {
            Store::Memory(memory) => {
                // One pin of the map for the whole batch.
                let pinned = memory.pinned();
                for (i, (key, hash, entry, ticket)) in entries.enumerate() {
                    done(i, Ok(pinned.promote(key, hash, entry, &ticket)));
                }
            }
            Store::Custom(custom) => {
                let mut batch: Vec<(&K, Entry<V>, Ticket<'t>)> = entries
                    .map(|(key, _, entry, ticket)| (key, entry, ticket))
                    .collect();
                if batch.len() == 1 {
                    let (key, entry, ticket) = batch.pop().expect("one entry");
                    return done(0, custom.promote(key, entry, &ticket));
                }
                let expected = batch.len();
                for (i, result) in fit(custom.promote_many(batch), expected)
                    .into_iter()
                    .enumerate()
                {
                    done(i, result);
                }
            }
        }
    }
}

/// One layer read's answer.
pub(crate) type GetResult<V> = Result<Option<Entry<V>>, LayerError>;

/// A custom layer's batch answer, made to have exactly one result per key: missing results
/// become errors, extra ones are dropped (a layer must not be able to panic the engine).
fn fit<T>(mut results: Vec<Result<T, LayerError>>, expected: usize) -> Vec<Result<T, LayerError>> {
    if results.len() != expected {
        let got = results.len();
        results.truncate(expected);
        results.resize_with(expected, || {
            Err(LayerError::Unavailable(format!(
                "the layer returned {got} results for a batch of {expected}"
            )))
        });
    }
    results
}
