//! The in-memory tier: a papaya map of immutable nodes, bounded by an S3-FIFO policy.
//!
//! # Layout
//!
//! - `map`: a lock-free papaya `HashMap<K, Node<V>>`. papaya gives safe memory reclamation
//!   (seize): a node removed or replaced while a reader holds a guard stays valid until the
//!   reader unpins, so readers never lock and never refcount.
//! - `policy` ([`policy`]): S3-FIFO queues of `(key, birth)` items, sharded by key hash, plus
//!   the length and weight bounds.
//! - nodes ([`node`]): value, version, expiry, birth, weight and one byte of access bits.
//!
//! # The read path of a hit
//!
//! pin the guard (a thread-local reservation in seize, no shared write), one map probe, one
//! relaxed load of the node's `meta` byte, an expiry check that reads the coarse clock only for
//! nodes that can expire, a compare-exchange on `meta` only if the frequency is not yet
//! saturated, and the value's `clone`. No lock, no allocation, no write to any shared line but
//! the node's own access bits.
//!
//! # Writes and churn
//!
//! A write of an existing key replaces the node in its slot (one CAS, no tombstone; the policy
//! state is carried over), so updates do not lengthen probe sequences. New keys and removals
//! are what papaya finds expensive (tombstones until the next resize), so the table is presized
//! for the capacity and, above the capacity, eviction removes one entry per insert.
//!
//! # Invariants
//!
//! - A node's `version` never decreases for a key while the key stays in the map: writes with an
//!   older version are dropped, and a removal only happens with a version at least as new
//!   (`delete`) or through the policy.
//! - Every resident key has exactly one queue item with its birth (admitted on insert, moved
//!   between queues by eviction). Items whose residency ended are orphans, counted and reaped.
//! - `PENDING` nodes are invisible to `get`/`contains`/iteration; see [`crate::protocol`].

pub(crate) mod node;
pub(crate) mod policy;
pub(crate) mod table;

use crate::clock::{Clock, Timestamp};
use crate::error::{BuildError, LayerError};
use crate::layer::{Entry, GetResults, Layer, LayerCounters};
use crate::protocol::{Ticket, Version};
use crate::stats::Counters;
use crate::sync::{fence, random_state, spin_hint, Arc, Ordering};
use node::{Node, FREQ_MASK, PENDING};
use policy::{Policy, Queue, Shard};
use table::{Compute, Operation, Table, TableGuard};
use std::fmt;
use std::hash::Hash;

/// Measures an entry for a weight-bounded tier (for example its size in bytes).
pub type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

const EVICTIONS: usize = 0;
const EXPIRATIONS: usize = 1;

/// How many times an insert retries eviction when the queues are momentarily empty (their items
/// are held by other evicting threads) before leaving the bound to those threads.
const EVICTION_RETRIES: u32 = 16;

/// Configuration of a [`MemoryLayer`].
pub struct MemoryConfig<K, V> {
    /// Maximum number of entries.
    pub capacity: usize,
    /// Maximum total weight (`u64::MAX` for none). Needs a weigher.
    pub max_weight: u64,
    /// Measures entries; every entry weighs 1 without one.
    pub weigher: Option<Weigher<K, V>>,
}

impl<K, V> MemoryConfig<K, V> {
    /// A tier bounded to `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        MemoryConfig {
            capacity,
            max_weight: u64::MAX,
            weigher: None,
        }
    }
}

impl<K, V> Clone for MemoryConfig<K, V> {
    fn clone(&self) -> Self {
        MemoryConfig {
            capacity: self.capacity,
            max_weight: self.max_weight,
            weigher: self.weigher.clone(),
        }
    }
}

impl<K, V> fmt::Debug for MemoryConfig<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConfig")
            .field("capacity", &self.capacity)
            .field("max_weight", &self.max_weight)
            .field("weigher", &self.weigher.is_some())
            .finish()
    }
}

/// strata's in-process tier: lock-free reads, S3-FIFO eviction, TTLs on a coarse clock.
pub struct MemoryLayer<K, V> {
    map: Table<K, Node<V>>,
    policy: Policy<K>,
    hasher: ahash::RandomState,
    clock: Clock,
    weigher: Option<Weigher<K, V>>,
    counters: Counters,
}

impl<K, V> fmt::Debug for MemoryLayer<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLayer")
            .field("len", &self.policy.len())
            .field("shards", &self.policy.shards().len())
            .finish()
    }
}

impl<K, V> MemoryLayer<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Builds a tier. `name` is only used in errors.
    pub fn new(name: &str, config: MemoryConfig<K, V>, clock: Clock) -> Result<Self, BuildError> {
        if config.capacity == 0 {
            return Err(BuildError::ZeroCapacity(name.to_owned()));
        }
        if config.max_weight == 0 {
            return Err(BuildError::ZeroWeight(name.to_owned()));
        }
        if config.max_weight != u64::MAX && config.weigher.is_none() {
            return Err(BuildError::WeightWithoutWeigher(name.to_owned()));
        }
        Ok(MemoryLayer {
            map: Table::new(config.capacity, random_state()),
            policy: Policy::new(config.capacity, config.max_weight),
            hasher: random_state(),
            clock,
            weigher: config.weigher,
            counters: Counters::new(2),
        })
    }

    /// Number of live entries (pending promotions included, expired entries until removed).
    pub fn len(&self) -> usize {
        self.policy.len()
    }

    /// Whether the tier holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight of the entries held.
    pub fn weight(&self) -> u64 {
        self.policy.weight()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let guard = self.map.guard();
        self.map.clear(&guard);
        for shard in self.policy.shards() {
            shard.reset();
        }
    }

    #[inline]
    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    fn weigh(&self, key: &K, value: &V) -> u64 {
        self.weigher
            .as_ref()
            .map_or(1, |weigher| weigher(key, value))
    }

    fn shard_index(&self, hash: u64) -> usize {
        (hash as usize) & (self.policy.shards().len() - 1)
    }

    /// The read path. Returns the live node for `key`, recording the access.
    #[inline]
    fn read<'g>(&self, key: &K, guard: &'g TableGuard<'_>) -> Option<&'g Node<V>> {
        let node = self.map.get(key, guard)?;
        let meta = node.meta();
        if meta & PENDING != 0 {
            return None;
        }
        if node.is_expired_with(|| self.clock.now()) {
            self.remove_expired(key, node, guard);
            return None;
        }
        node.touch(meta);
        Some(node)
    }

    fn remove_expired(&self, key: &K, node: &Node<V>, guard: &TableGuard<'_>) {
        if let Ok(Some((_, removed))) = self.map.remove_if(key, |_, n| std::ptr::eq(n, node), guard)
        {
            self.policy
                .shard_of_birth(removed.birth)
                .forget_orphaned(removed.weight);
            self.counters.incr(EXPIRATIONS);
        }
    }

    fn set_in(&self, key: &K, entry: Entry<V>, guard: &TableGuard<'_>) {
        let hash = self.hash(key);
        let index = self.shard_index(hash);
        let shard = self.policy.shard_for_hash(hash);
        let weight = self.weigh(key, &entry.value);
        if weight > shard.max_weight {
            // Heavier than the whole bound: storing it would flush the shard and then the entry
            // itself. It is treated as stored and evicted at once: any older value is removed
            // (so the contract holds), nothing else is touched.
            self.delete_in(key, entry.version, guard);
            self.counters.incr(EVICTIONS);
            return;
        }
        let now = self.clock.now();
        let mut fresh_birth = None;
        let result = self.map.compute(
            key.clone(),
            |current| match current {
                Some((_, node)) if node.version >= entry.version => Operation::Abort(()),
                Some((_, node)) => Operation::Insert(Node::new(
                    entry.value.clone(),
                    entry.version,
                    entry.expires_at,
                    node.birth,
                    weight,
                    node.meta() & FREQ_MASK,
                )),
                None => Operation::Insert(Node::new(
                    entry.value.clone(),
                    entry.version,
                    entry.expires_at,
                    *fresh_birth.get_or_insert_with(|| shard.next_birth(index)),
                    weight,
                    0,
                )),
            },
            guard,
        );
        self.after_insert(result, shard, hash, now, guard);
    }

    /// Policy bookkeeping after a `compute` that may have inserted or replaced a node.
    /// Returns the node now in the map, if this call put it there.
    fn after_insert<'g>(
        &self,
        result: Compute<'g, K, Node<V>, ()>,
        shard: &Shard<K>,
        hash: u64,
        now: Timestamp,
        guard: &TableGuard<'_>,
    ) -> Option<&'g Node<V>> {
        match result {
            Compute::Inserted(key, node) => {
                shard.admit(key.clone(), node.birth, hash, node.weight);
                self.enforce(shard, guard);
                Some(node)
            }
            Compute::Updated {
                old: (_, old),
                new: (_, new),
            } => {
                if old.is_expired(now) {
                    self.counters.incr(EXPIRATIONS);
                }
                shard.adjust_weight(old.weight, new.weight);
                if new.weight > old.weight {
                    self.enforce(shard, guard);
                }
                Some(new)
            }
            Compute::Removed(..) | Compute::Aborted(()) => None,
        }
    }

    fn delete_in(&self, key: &K, version: Version, guard: &TableGuard<'_>) {
        if let Ok(Some((_, removed))) =
            self.map
                .remove_if(key, |_, node| node.version < version, guard)
        {
            self.policy
                .shard_of_birth(removed.birth)
                .forget_orphaned(removed.weight);
        }
    }

    /// Steps 1–3 of the promotion protocol (see [`crate::protocol`]).
    fn promote_in(
        &self,
        key: &K,
        entry: Entry<V>,
        ticket: &Ticket<'_>,
        guard: &TableGuard<'_>,
    ) -> bool {
        let now = self.clock.now();
        if entry.expires_at <= now {
            return false;
        }
        let hash = self.hash(key);
        let index = self.shard_index(hash);
        let shard = self.policy.shard_for_hash(hash);
        let weight = self.weigh(key, &entry.value);
        if weight > shard.max_weight {
            return false;
        }
        let mut fresh_birth = None;
        // 1. Insert pending, only where the key is absent or expired (and not newer).
        let result = self.map.compute(
            key.clone(),
            |current| match current {
                None => Operation::Insert(Node::new(
                    entry.value.clone(),
                    entry.version,
                    entry.expires_at,
                    *fresh_birth.get_or_insert_with(|| shard.next_birth(index)),
                    weight,
                    PENDING,
                )),
                Some((_, node))
                    if !node.is_pending()
                        && node.is_expired(now)
                        && node.version <= entry.version =>
                {
                    Operation::Insert(Node::new(
                        entry.value.clone(),
                        entry.version,
                        entry.expires_at,
                        node.birth,
                        weight,
                        PENDING,
                    ))
                }
                Some(_) => Operation::Abort(()),
            },
            guard,
        );
        let Some(node) = self.after_insert(result, shard, hash, now, guard) else {
            return false;
        };
        // 2. Validate. The fence makes the slot RMW above an acquire of whatever write it read
        // from, so a write whose slot operation preceded our insert is visible to the load.
        fence(Ordering::SeqCst);
        if ticket.is_current() || broken_validation() {
            // 3a. Publish.
            node.publish();
            true
        } else {
            // 3b. Undo: remove exactly the node we inserted (a newer write may already have
            // replaced it, in which case there is nothing to undo).
            if let Ok(Some((_, removed))) =
                self.map.remove_if(key, |_, n| std::ptr::eq(n, node), guard)
            {
                self.policy
                    .shard_of_birth(removed.birth)
                    .forget_orphaned(removed.weight);
            }
            false
        }
    }

    /// Evicts until the shard is within its bounds, then reaps orphans if there are too many.
    fn enforce(&self, shard: &Shard<K>, guard: &TableGuard<'_>) {
        let mut retries = 0;
        while shard.is_over_capacity() {
            if !self.evict_step(shard, guard) {
                retries += 1;
                if retries > EVICTION_RETRIES {
                    break;
                }
                spin_hint();
            }
        }
        if shard.has_too_many_orphans() {
            self.reap(shard, guard);
        }
    }

    /// One S3-FIFO step on the item at the head of a queue. Returns false if both queues were
    /// empty.
    fn evict_step(&self, shard: &Shard<K>, guard: &TableGuard<'_>) -> bool {
        let Some((item, queue)) = shard.pop() else {
            return false;
        };
        let node = match self.map.get(&item.key, guard) {
            Some(node) if node.birth == item.birth => node,
            _ => {
                shard.drop_orphan();
                return true;
            }
        };
        let expired = node.is_expired(self.clock.now());
        if !expired {
            match queue {
                Queue::Small if node.meta() & FREQ_MASK > 0 => {
                    node.reset_freq();
                    shard.push(item, Queue::Main);
                    return true;
                }
                Queue::Main if node.cool() > 0 => {
                    shard.push(item, Queue::Main);
                    return true;
                }
                _ => {}
            }
        }
        let birth = item.birth;
        match self
            .map
            .remove_if(&item.key, |_, n| n.birth == birth, guard)
        {
            Ok(Some((_, removed))) => {
                shard.forget(removed.weight);
                if expired {
                    self.counters.incr(EXPIRATIONS);
                } else {
                    self.counters.incr(EVICTIONS);
                    if queue == Queue::Small {
                        shard.remember(self.hash(&item.key));
                    }
                }
            }
            // Removed or re-inserted meanwhile: this item is stale.
            Ok(None) | Err(_) => shard.drop_orphan(),
        }
        true
    }

    /// Rotates the queues once around, dropping orphan items.
    fn reap(&self, shard: &Shard<K>, guard: &TableGuard<'_>) {
        let steps = shard.len() * 2 + 64;
        for _ in 0..steps {
            if !shard.has_too_many_orphans() {
                break;
            }
            let Some((item, queue)) = shard.pop() else {
                break;
            };
            match self.map.get(&item.key, guard) {
                Some(node) if node.birth == item.birth => shard.push(item, queue),
                _ => shard.drop_orphan(),
            }
        }
    }

    fn entry_of(node: &Node<V>) -> Entry<V> {
        Entry {
            value: node.value.clone(),
            version: node.version,
            expires_at: node.expires_at,
        }
    }

    /// The engine's L1 fast path: the value only.
    #[inline]
    pub(crate) fn get_value(&self, key: &K) -> Option<V> {
        let guard = self.map.guard();
        self.read(key, &guard).map(|node| node.value.clone())
    }

    /// Test hook: the node's frequency bits, if resident.
    #[cfg(test)]
    fn freq(&self, key: &K) -> Option<u8> {
        let guard = self.map.guard();
        self.map.get(key, &guard).map(|n| n.meta() & FREQ_MASK)
    }
}

impl<K, V> Layer<K, V> for MemoryLayer<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    #[inline]
    fn get(&self, key: &K, _now: Timestamp) -> Result<Option<Entry<V>>, LayerError> {
        let guard = self.map.guard();
        Ok(self.read(key, &guard).map(Self::entry_of))
    }

    fn contains(&self, key: &K, _now: Timestamp) -> Result<bool, LayerError> {
        let guard = self.map.guard();
        Ok(self
            .map
            .get(key, &guard)
            .is_some_and(|node| !node.is_pending() && !node.is_expired_with(|| self.clock.now())))
    }

    fn set(&self, key: &K, entry: Entry<V>) -> Result<(), LayerError> {
        let guard = self.map.guard();
        self.set_in(key, entry, &guard);
        Ok(())
    }

    fn delete(&self, key: &K, version: Version) -> Result<(), LayerError> {
        let guard = self.map.guard();
        self.delete_in(key, version, &guard);
        Ok(())
    }

    fn promote(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<bool, LayerError> {
        let guard = self.map.guard();
        Ok(self.promote_in(key, entry, ticket, &guard))
    }

    fn get_many(&self, keys: &[&K], _now: Timestamp) -> GetResults<V> {
        let guard = self.map.guard();
        keys.iter()
            .map(|key| Ok(self.read(key, &guard).map(Self::entry_of)))
            .collect()
    }

    fn set_many(&self, entries: Vec<(&K, Entry<V>)>) -> Vec<Result<(), LayerError>> {
        let guard = self.map.guard();
        entries
            .into_iter()
            .map(|(key, entry)| {
                self.set_in(key, entry, &guard);
                Ok(())
            })
            .collect()
    }

    fn delete_many(&self, keys: &[(&K, Version)]) -> Vec<Result<(), LayerError>> {
        let guard = self.map.guard();
        keys.iter()
            .map(|(key, version)| {
                self.delete_in(key, *version, &guard);
                Ok(())
            })
            .collect()
    }

    fn promote_many(
        &self,
        entries: Vec<(&K, Entry<V>, Ticket<'_>)>,
    ) -> Vec<Result<bool, LayerError>> {
        let guard = self.map.guard();
        entries
            .into_iter()
            .map(|(key, entry, ticket)| Ok(self.promote_in(key, entry, &ticket, &guard)))
            .collect()
    }

    fn for_each(&self, now: Timestamp, f: &mut dyn FnMut(&K, &V)) -> Result<(), LayerError> {
        let guard = self.map.guard();
        self.map.for_each(&guard, |key, node| {
            if !node.is_pending() && !node.is_expired(now) {
                f(key, &node.value);
            }
        });
        Ok(())
    }

    fn counters(&self) -> LayerCounters {
        LayerCounters {
            evictions: self.counters.sum(EVICTIONS),
            expirations: self.counters.sum(EXPIRATIONS),
            len: Some(self.len() as u64),
        }
    }

    fn close(&self) {
        self.clear();
    }
}

/// Loom builds only: a switch that skips ticket validation, so the loom models can show they
/// catch an unvalidated promotion (`loom-tests/tests/broken.rs`). It does not exist in normal
/// builds. A std atomic on purpose: it is test configuration, not part of the modelled state.
#[cfg(loom)]
#[doc(hidden)]
pub static BREAK_PROMOTION_VALIDATION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[inline(always)]
fn broken_validation() -> bool {
    #[cfg(loom)]
    return BREAK_PROMOTION_VALIDATION.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(loom))]
    false
}

#[cfg(all(test, not(loom)))]
mod tests;
