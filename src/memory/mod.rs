//! The in-memory tier: a map of nodes, bounded by an S3-FIFO policy.
//!
//! # Layout
//!
//! - `map` (`table/`): the tier's own hash table of chained buckets, `K → Node<V>`. Readers
//!   never lock; writers lock one bucket. Safe memory reclamation (seize): a node removed or
//!   replaced while a reader holds a guard stays valid until the reader unpins, so readers
//!   never refcount; a reclaimed node's memory is the next write's (the table's pool).
//! - `policy` (`policy.rs`): S3-FIFO queues of `(key, birth)` items, sharded by key hash, plus
//!   the length and weight bounds and the small queue's sizing; `evict.rs` carries its
//!   decisions out on the map (eviction steps, the duel, reaping).
//! - nodes (`node.rs`): value, version, expiry, birth, weight and one byte of access bits;
//!   the value (`value.rs`) is immutable, but for plain machine words, overwritten in place
//!   with their version and, moved later, their expiry.
//!
//! # The read path of a hit
//!
//! pin the guard (a thread-local reservation in seize, no shared write), one bucket load and a
//! walk of its chain (a link holds the key beside the node), one relaxed load of the node's
//! `meta` byte, an expiry check that reads the coarse clock only for nodes that can expire, a
//! compare-exchange on `meta` only if the frequency is not yet saturated, and the value's
//! `clone` (a word value: one atomic load). No lock, no allocation, no write to any shared line
//! but the node's own access bits.
//!
//! # Writes and churn
//!
//! A write of an existing key stores a word value (`u64`, `i64`, `f64`, `usize`, `isize`) into
//! the key's node in place when it keeps the node's weight and stripe and does not bring its
//! expiry earlier (under the bucket lock: see `value.rs` for why that is sound, `node.rs` for
//! the expiry), and otherwise replaces the node in the
//! chain (the policy state is carried over); a new key pushes a node at the head of its
//! bucket's chain; a removal unlinks one.
//! The table is presized for the capacity and never resized, and above the capacity eviction
//! removes one entry per insert, so chains stay short. In steady state no write calls the
//! allocator: new nodes take the memory of reclaimed ones (`table/pool.rs`).
//!
//! # Invariants
//!
//! - A node's `version` never decreases for a key while the key stays in the map: writes with an
//!   older version are dropped, and a removal only happens with a version at least as new
//!   (`delete`) or through the policy. (A *sole* tier, its cache's only layer, compares no
//!   versions and keeps no floors: its bucket locks order its writes; see `make_sole`.)
//! - Every resident key has exactly one queue item with its birth (admitted on insert, moved
//!   between queues by eviction). Items whose residency ended are orphans, counted and reaped.
//! - `PENDING` nodes are invisible to `get`/`contains`/iteration; see [`crate::protocol`].
//! - A delete raises the key's stripe floor to its version and unlinks the key's node unless it
//!   holds something newer (a sole tier: unlinks it); the node's queue item becomes an orphan.
//!   (The tier once left a *dead* node instead, for papaya, which never reused a removed key's
//!   slot; the chained table leaves nothing behind a removal. PERF.md §7 and §12.)

mod evict;
pub(crate) mod node;
pub(crate) mod policy;
pub(crate) mod table;
mod value;

use crate::clock::{Clock, Timestamp};
use crate::error::BuildError;
use crate::floors::Floors;
use crate::layer::LayerError;
use crate::layer::{Entry, GetResults, Layer, LayerCounters};
use crate::protocol::{Ticket, Version};
use crate::stats::Counters;
use crate::sync::{self, broken, fence, random_state, Arc, Broken, Ordering};
use node::{clamp_weight, Node, FREQ_MASK, NO_STRIPE, PENDING};
use policy::{Item, Policy, Queue, Shard};
use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use table::{Compute, Operation, Table, TableGuard};

/// Measures an entry for a weight-bounded tier (for example its size in bytes). An entry is
/// accounted with at most `u32::MAX` units: a heavier one counts as `u32::MAX` against the bound
/// (and one heavier than the whole bound is still refused).
pub type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

const EVICTIONS: usize = 0;
const EXPIRATIONS: usize = 1;
/// Writes accepted but not kept: the insert into an empty slot failed its floor check.
const DROPPED: usize = 2;

/// What `set_in`'s write did under the bucket lock (nothing it reports refers to the map: the
/// write holds no guard).
enum Written {
    /// The value is there (stored in place), or a newer one is.
    Kept,
    /// The floor refused the insert into a place the key had left. `removed`: the birth and
    /// weight of a promotion's pending node found there and unlinked.
    Refused { removed: Option<(u64, u64)> },
    /// A new node holds the value.
    Linked(Linked),
}

/// A node just linked into the map, as the policy's bookkeeping needs it (`account_link`):
/// its birth and weight, and the weight of the node it replaced with whether that one had
/// expired (`None`: the key was absent).
struct Linked {
    birth: u64,
    weight: u64,
    replaced: Option<(u64, bool)>,
}

impl Linked {
    /// `new`, linked in place of `old` (if any) at `now`; a pending predecessor (a promotion's)
    /// did not expire as far as the counters go.
    fn of<V: Clone + 'static>(old: Option<&Node<V>>, new: &Node<V>, now: Timestamp) -> Self {
        Linked {
            birth: new.birth,
            weight: new.weight(),
            replaced: old.map(|old| (old.weight(), old.is_expired(now) && !old.is_pending())),
        }
    }
}

/// The largest capacity a tier accepts (2^40 entries; more could not be addressed anyway).
pub const MAX_CAPACITY: usize = 1 << 40;

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
///
/// Besides its map and policy, the tier keeps one **floor** per write stripe: the highest
/// version it removed (evicted, expired, deleted, invalidated, undone) for any key of that
/// stripe. A write that finds its key absent publishes its value only if its version is above
/// the floor, so a slow, older write cannot land in a slot a newer write's value just left (see
/// [`crate::protocol`]). Versions are only comparable within a stripe, hence one floor each.
/// The tier of a cache of one memory layer is *sole*: it needs neither (see `make_sole`).
pub struct MemoryLayer<K, V> {
    map: Table<K, Node<V>>,
    policy: Policy<K>,
    /// Indexed by write stripe; raised before, or during, every removal of a node of that
    /// stripe, under or before the removal's bucket lock (see "Under a lock of the key" in
    /// `floors.rs`).
    floors: Floors,
    /// The tier is its cache's only layer ([`MemoryLayer::make_sole`]): its bucket locks alone
    /// order the writes of a key, so it compares no versions and keeps no floors (see "One
    /// layer: the bucket lock orders everything" in `protocol`).
    sole: bool,
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
        Self::with_hasher(name, config, clock, random_state())
    }

    /// Builds a tier that hashes keys (for its policy shards, ghost and write stripes) with
    /// `hasher`: the engine's, so the engine hashes each key once and hands the hash down.
    pub(crate) fn with_hasher(
        name: &str,
        config: MemoryConfig<K, V>,
        clock: Clock,
        hasher: ahash::RandomState,
    ) -> Result<Self, BuildError> {
        if config.capacity == 0 {
            return Err(BuildError::ZeroCapacity(name.to_owned()));
        }
        if config.capacity > MAX_CAPACITY {
            return Err(BuildError::CapacityTooLarge {
                layer: name.to_owned(),
                max: MAX_CAPACITY,
            });
        }
        if config.max_weight == 0 {
            return Err(BuildError::ZeroWeight(name.to_owned()));
        }
        if config.max_weight != u64::MAX && config.weigher.is_none() {
            return Err(BuildError::WeightWithoutWeigher(name.to_owned()));
        }
        Ok(MemoryLayer {
            // The engine's hasher: a hash the engine computed finds the key's bucket.
            map: Table::new(config.capacity, hasher.clone()),
            policy: Policy::new(config.capacity, config.max_weight, config.weigher.is_some()),
            floors: Floors::new(),
            sole: false,
            hasher,
            clock,
            weigher: config.weigher,
            counters: Counters::new(3),
        })
    }

    /// Makes this tier one that its cache's bucket locks alone order: the engine's call for
    /// the tier of a cache of one memory layer (`Engine::new`), which nothing is promoted into
    /// and whose copy no other layer must agree with. Its writes and deletes then compare no
    /// versions and its removals raise no floors: two writes of a key are ordered by who takes
    /// the key's bucket lock last, as their effects are (see "One layer: the bucket lock orders
    /// everything" in `protocol`). Never for a tier with a layer below or above it.
    pub(crate) fn make_sole(&mut self) {
        self.sole = true;
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

    /// Removes every entry. Safe to run concurrently with other operations (entries inserted
    /// meanwhile may stay).
    ///
    /// It walks the policy's queues, not the map: every resident key has exactly one queue
    /// item (see `MemoryLayer::walk_residents`). Each queue is walked once around, so
    /// concurrent inserts cannot keep it going.
    pub fn clear(&self) {
        let guard = self.map.guard();
        for shard in self.policy.shards().iter() {
            for queue in [Queue::Small, Queue::Main] {
                for _ in 0..shard.queue_len(queue) {
                    let Some(item) = shard.pop_from(queue) else {
                        break;
                    };
                    self.remove_item(shard, &item, self.hash(&item.key), &guard);
                }
            }
        }
    }

    /// Calls `f` with every resident key and its node, once each, by walking each policy queue
    /// once around (each item is put back at the tail of the queue it came from, orphans are
    /// dropped, as in `reap`).
    ///
    /// Why the queues and not the map: the walk then costs what the tier holds, not the size
    /// of its presized bucket array. (It began as the way around papaya 0.2.5's `iter`, which
    /// never ended on a table whose keys share a hash.)
    ///
    /// Weakly consistent under concurrency, like a map iterator: an entry inserted, removed or
    /// held by an evicting thread during the walk may or may not be visited; none is visited
    /// twice (births are unique per residency).
    fn walk_residents(&self, guard: &TableGuard<'_>, mut f: impl FnMut(&K, &Node<V>)) {
        let mut visited = std::collections::HashSet::new();
        for (index, shard) in self.policy.shards().iter().enumerate() {
            for queue in [Queue::Small, Queue::Main] {
                for _ in 0..shard.queue_len(queue) {
                    let Some(item) = shard.pop_from(queue) else {
                        break;
                    };
                    match self.map.get(&item.key, guard) {
                        Some(node) if node.birth == item.birth => {
                            if visited.insert(item.birth) {
                                f(&item.key, node);
                            }
                            shard.push(item, queue);
                        }
                        _ => shard.drop_orphan(),
                    }
                }
            }
            // An insert that found the queues empty while this walk held their items left the
            // bounds to it (see `evict_within`; no key to spare: births are never 0).
            if shard.is_over_capacity() {
                self.evict_within(index, 0, guard);
            }
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

    // ----- floors ----------------------------------------------------------------------------

    /// Raises the floor of `stripe` to `version`, before or during a removal under the key's
    /// bucket lock (see "Under a lock of the key" in `floors.rs`).
    fn raise_floor(&self, stripe: Option<usize>, version: Version) {
        if !self.sole {
            self.floors.raise_locked(stripe, version);
        }
    }

    fn raise_floor_for(&self, node: &Node<V>) {
        if node.stripe != NO_STRIPE {
            self.raise_floor(Some(usize::from(node.stripe)), node.version());
        }
    }

    // ----- reads -----------------------------------------------------------------------------

    /// The read path. Returns the live node for `key`, recording the access.
    #[inline]
    fn read<'g, Q>(&self, key: &Q, guard: &'g TableGuard<'_>) -> Option<&'g Node<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read_hashed(key, self.map.hash(key), guard)
    }

    /// [`read`](Self::read) with the key's hash under this tier's hasher.
    #[inline]
    fn read_hashed<'g, Q>(
        &self,
        key: &Q,
        hash: u64,
        guard: &'g TableGuard<'_>,
    ) -> Option<&'g Node<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let node = self.map.get_hashed(key, hash, guard)?;
        sync::yield_point(sync::YieldPoint::AfterReadLookup);
        let meta = node.meta();
        if meta & PENDING != 0 {
            return None;
        }
        if node.is_expired_with(|| self.clock.now()) {
            if self.remove_expired(key, node) {
                self.counters.incr(EXPIRATIONS);
            }
            return None;
        }
        node.touch(meta);
        Some(node)
    }

    // ----- removals --------------------------------------------------------------------------

    /// Removes exactly `node` (if it is still the key's node), outside the policy: raises its
    /// stripe's floor first and leaves its queue item as an orphan. Returns whether it did.
    fn remove_exact<Q>(&self, key: &Q, node: &Node<V>, guard: &TableGuard<'_>) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_exact_if(key, node, |_| true, guard)
    }

    /// Removes `node`, which a reader found expired, if it still is under the bucket lock: an
    /// in-place overwrite may have moved its expiry later since the reader looked (see
    /// "Expiry and value, read together" in `node.rs`). Returns whether it did.
    ///
    /// Under a pin of its own (nested in the reader's, which keeps `node` alive): taking the
    /// reader's guard by reference here, out of line, made every read keep its guard in memory,
    /// and a read hit copy it there and back (6 more instructions; `opcount get-hit`).
    #[inline(never)]
    fn remove_expired<Q>(&self, key: &Q, node: &Node<V>) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.clock.now();
        let guard = self.map.guard();
        self.remove_exact_if(
            key,
            node,
            |current| current.is_expired(now) || broken(Broken::ExpiryRemovalUnchecked),
            &guard,
        )
    }

    /// [`remove_exact`](Self::remove_exact), only if `still(node)` holds under the bucket lock.
    fn remove_exact_if<Q>(
        &self,
        key: &Q,
        node: &Node<V>,
        still: impl Fn(&Node<V>) -> bool,
        guard: &TableGuard<'_>,
    ) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self.map.remove_if(
            key,
            self.map.hash(key),
            |_, current| {
                // The address names our node: the caller's guard keeps it from being
                // reclaimed, so no other node can have been given its memory meanwhile.
                let exact = std::ptr::eq(current, node) && still(current);
                if exact {
                    self.raise_floor_for(current);
                }
                exact
            },
            guard,
        );
        match removed {
            Ok(Some((_, removed))) => {
                self.policy
                    .shard_of_birth(removed.birth)
                    .forget_orphaned(removed.weight());
                true
            }
            _ => false,
        }
    }

    /// A delete or an invalidation: raise the floor to the delete's version, then unlink the
    /// key's node unless it holds something newer. The floor is what refuses a slower, older
    /// write of the key that arrives afterwards into the empty place (see [`crate::protocol`]);
    /// the node's queue item becomes an orphan. Under the bucket lock alone, without pinning
    /// the map (see `Table::remove_unpinned`).
    fn delete_in<Q>(&self, key: &Q, hash: u64, ticket: &Ticket<'_>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let version = ticket.version();
        // Before the bucket lock, which the removal below takes even when the key is absent:
        // an insert of the key that locks the bucket after it sees the raise, one that locked it
        // before is found and removed (see "Under a lock of the key" in `floors.rs`).
        self.raise_floor(ticket.stripe(), version);
        let removed = self.map.remove_unpinned(
            key,
            hash,
            // A sole tier removes whatever the lock finds (see `make_sole`).
            |node| self.sole || node.version() < version,
            |node| (node.birth, node.weight()),
        );
        if let Some((birth, weight)) = removed {
            self.policy.shard_of_birth(birth).forget_orphaned(weight);
        }
    }

    // ----- writes and promotions -------------------------------------------------------------

    /// A write (see [`crate::protocol`]), decided and applied under the bucket lock alone:
    /// a newer value there keeps its place; a word value goes into the key's live node in place
    /// (see `in_place`); a live node of an older version is replaced at once; an absent key (or
    /// an expired or pending node) gets a node only if the write's version is above the
    /// stripe's floor, checked under the bucket lock, where every removal of the key raises it
    /// (see "Under a lock of the key" in `floors.rs`): the node is visible at once, with no
    /// pending state to publish. The write holds no guard (see `Table::write_unpinned`);
    /// `pin` gives one only for the policy's steps after it, a duel or an eviction.
    ///
    /// Returns whether the tier keeps the value (or a newer one). It does not when the entry is
    /// heavier than the whole bound (counted as an eviction), or when its insert into an empty
    /// slot fails the floor check: a removal of a newer version of another key of the same
    /// write stripe raised the floor meanwhile, and the tier cannot tell that removal from one
    /// of this key. The value is then dropped as if evicted at once (counted as `dropped`):
    /// never a wrong value, only a lost copy.
    ///
    /// `weight` is the entry's, as `weigh` measures it.
    #[inline]
    fn set_in<'t, G: std::borrow::Borrow<TableGuard<'t>>>(
        &'t self,
        key: &K,
        hash: u64,
        entry: Entry<V>,
        weight: u64,
        ticket: &Ticket<'_>,
        pin: impl FnOnce() -> G,
    ) -> bool {
        let shard = self.policy.shard_for_hash(hash);
        if weight > shard.max_weight {
            // Heavier than the whole bound: storing it would flush the shard and then the entry
            // itself. It is treated as stored and evicted at once: any older value is removed
            // (so the contract holds), nothing else is touched.
            self.delete_in(key, hash, ticket);
            self.counters.incr(EVICTIONS);
            return false;
        }
        let now = self.clock.now();
        if broken(Broken::InPlaceOutsideLock) {
            // The broken twin of the loom model `in_place_write_racing_an_eviction`: the
            // overwrite decided and made on a node found without the bucket lock.
            let guard = self.map.guard();
            if let Some(node) = self.map.get_hashed(key, hash, &guard) {
                if node.version() < entry.version
                    && self.in_place(node, &entry, weight, ticket, now)
                {
                    node.overwrite(entry.value, entry.version, entry.expires_at);
                    return true;
                }
            }
        }
        if broken(Broken::FloorCheckedBeforeLock)
            && !self.sole
            && !self.floors.admits_locked(ticket)
        {
            // The broken twin of the floor check below: made before the bucket lock, so a
            // delete's raise and removal can both fall between the check and the insert.
            self.counters.incr(DROPPED);
            return false;
        }
        // The table calls `decide` once, under the bucket lock: the value moves into the new
        // node, uncloned, or (a word) is stored into the key's node in place.
        let written = self.map.write_unpinned(
            key,
            hash,
            |current| match current {
                // A sole tier compares no versions (see `make_sole`): the write that takes the
                // lock last is the later one.
                Some(node) if !self.sole && node.version() >= entry.version => {
                    Operation::Abort(Written::Kept)
                }
                Some(node) if self.in_place(node, &entry, weight, ticket, now) => {
                    node.overwrite(entry.value, entry.version, entry.expires_at);
                    Operation::Abort(Written::Kept)
                }
                Some(node) if node.is_live(now) => Operation::Insert(Node::new(
                    entry.value,
                    entry.version,
                    entry.expires_at,
                    node.birth,
                    weight,
                    ticket.stripe(),
                    node.meta() & FREQ_MASK,
                )),
                // The key left this place (or holds an expired node, or a promotion's pending
                // one): only a write above the floor may fill it.
                current
                    if !self.sole
                        && !self.floors.admits_locked(ticket)
                        && !broken(Broken::PromotionValidation)
                        && !broken(Broken::FloorCheckedBeforeLock) =>
                {
                    match current {
                        // A promotion's pending node holds an older value than this write's
                        // (its version is at most its ticket's epoch, taken before this write
                        // began). This write's removal of it is what makes the promotion's
                        // validation irrelevant (the "reads or replaces P's node" case in
                        // `protocol`): a refused write must not leave it to be published after
                        // the write returned. Removed as every removal is, raising its
                        // stripe's floor under the lock.
                        Some(node) if node.is_pending() => {
                            self.raise_floor_for(node);
                            Operation::Remove(Written::Refused {
                                removed: Some((node.birth, node.weight())),
                            })
                        }
                        _ => Operation::Abort(Written::Refused { removed: None }),
                    }
                }
                current => Operation::Insert(Node::new(
                    entry.value,
                    entry.version,
                    entry.expires_at,
                    self.birth_for(current, shard, hash, weight),
                    weight,
                    ticket.stripe(),
                    0,
                )),
            },
            |old, new| Written::Linked(Linked::of(old, new, now)),
        );
        let linked = match written {
            // Overwritten in place, or a newer value is there: nothing for the policy.
            Written::Kept => return true,
            Written::Refused { removed } => {
                if let Some((birth, weight)) = removed {
                    self.policy.shard_of_birth(birth).forget_orphaned(weight);
                }
                self.counters.incr(DROPPED);
                return false;
            }
            Written::Linked(linked) => linked,
        };
        let index = self.shard_index(hash);
        let (duel, grew) = self.account_link(shard, key, hash, &linked);
        // A replacement that weighs no more leaves the bounds as they were (and makes no
        // orphan): nothing to enforce. A write that has no duel to fight and finds its shard
        // within bounds takes no pin at all (`enforce` would do nothing).
        if duel.is_none() && !(grew && self.needs_enforcing(index)) {
            return true;
        }
        let guard = pin();
        let guard = guard.borrow();
        if let Some(item) = duel {
            self.duel(shard, item, hash, linked.weight, guard);
        }
        if grew {
            self.enforce(index, linked.birth, guard);
        }
        true
    }

    /// The policy's bookkeeping for a node a write or a promotion just linked: a new key is
    /// admitted (and handed back for a duel when the ghost remembers it while small is cut
    /// back, see `Shard::admit`); a replacement adjusts the shard's weight and counts an
    /// expired predecessor. Returns the duel's newcomer, if any, and whether the shard's length
    /// or weight grew (the caller then enforces its bounds). Always inlined: left to the
    /// compiler, an evicting insert cost 34 instructions more (`opcount set-evict`).
    #[inline(always)]
    fn account_link(
        &self,
        shard: &Shard<K>,
        key: &K,
        hash: u64,
        linked: &Linked,
    ) -> (Option<Item<K>>, bool) {
        match linked.replaced {
            None => {
                self.count_access(shard, hash);
                let duel = shard.admit(key.clone(), linked.birth, hash, linked.weight);
                (duel, true)
            }
            Some((old_weight, expired)) => {
                if expired {
                    self.counters.incr(EXPIRATIONS);
                }
                shard.adjust_weight(old_weight, linked.weight);
                (None, linked.weight > old_weight)
            }
        }
    }

    /// Whether a write of `entry` (newer than `node`'s value, weighing `weight`) stores its value
    /// into `node` in place rather than in a new node: a word value (see `value.rs`), a live
    /// node, the same weight and stripe, so that the policy, the bounds and the floors have
    /// nothing to learn, and an expiry no earlier than the node's, so that a reader pairing the
    /// new value with the old expiry never keeps it past its own (see "Expiry and value, read
    /// together" in `node.rs`). The caller holds the key's bucket lock.
    #[inline]
    fn in_place(
        &self,
        node: &Node<V>,
        entry: &Entry<V>,
        weight: u64,
        ticket: &Ticket<'_>,
        now: Timestamp,
    ) -> bool {
        value::is_word::<V>()
            && entry.expires_at >= node.expires_at()
            && node.weight() == clamp_weight(weight)
            // A sole tier keeps no floors to index by the node's stripe (see `make_sole`).
            && (self.sole || node.stripe == node::stripe_code(ticket.stripe()))
            && node.is_live(now)
    }

    /// The birth of a node replacing `current` (carried over), or a fresh one for a new key.
    fn birth_for(
        &self,
        current: Option<&Node<V>>,
        shard: &Shard<K>,
        hash: u64,
        weight: u64,
    ) -> u64 {
        match current {
            Some(node) => node.birth,
            // The weight as the node records it (clamped), so small is charged what the
            // shard is.
            None => shard.next_birth(self.shard_index(hash), clamp_weight(weight)),
        }
    }

    /// Policy bookkeeping after a promotion's `compute` that may have inserted or replaced a
    /// node (a write does its own, from what it captured under the bucket lock: `set_in`).
    /// Returns the node now in the map, if this call put it there, and whether the shard's
    /// length or weight grew. Capacity is enforced by the caller once the node is validated or
    /// undone.
    fn after_insert<'g, T>(
        &self,
        result: Compute<'g, K, Node<V>, T>,
        shard: &Shard<K>,
        hash: u64,
        now: Timestamp,
        guard: &TableGuard<'_>,
    ) -> Option<(&'g Node<V>, bool)> {
        let (key, old, new) = match result {
            Compute::Inserted(key, node) => (key, None, node),
            Compute::Updated {
                old: (_, old),
                new: (key, new),
            } => (key, Some(old), new),
            Compute::Aborted(_) => return None,
        };
        let linked = Linked::of(old, new, now);
        let (duel, grew) = self.account_link(shard, key, hash, &linked);
        if let Some(item) = duel {
            self.duel(shard, item, hash, linked.weight, guard);
        }
        Some((new, grew))
    }

    /// A promotion (see [`crate::protocol`]): insert pending where the key is absent (or holds
    /// an expired node of an older version), validate the ticket, publish or undo.
    fn promote_in(
        &self,
        key: &K,
        hash: u64,
        entry: Entry<V>,
        ticket: &Ticket<'_>,
        guard: &TableGuard<'_>,
    ) -> bool {
        let now = self.clock.now();
        if entry.expires_at <= now {
            return false;
        }
        let shard = self.policy.shard_for_hash(hash);
        let weight = self.weigh(key, &entry.value);
        if weight > shard.max_weight {
            return false;
        }
        // Announced before the insert, withdrawn once the node is published or removed: a write
        // that begins meanwhile cancels the node (see "Promotions that publish late" in
        // `protocol`).
        let _announcement = ticket.announce();
        let result = self.map.compute(
            key.clone(),
            hash,
            |current| match current {
                Some((_, node))
                    if node.is_pending()
                        || !node.is_expired(now)
                        || node.version() > entry.version =>
                {
                    Operation::Abort(())
                }
                current => Operation::Insert(Node::new(
                    entry.value,
                    entry.version,
                    entry.expires_at,
                    self.birth_for(current.map(|(_, node)| node), shard, hash, weight),
                    weight,
                    ticket.stripe(),
                    PENDING,
                )),
            },
            guard,
        );
        let Some((node, _)) = self.after_insert(result, shard, hash, now, guard) else {
            return false;
        };
        // The fence pairs with the one in `WriteStripes::begin`: either our validation load sees
        // a conflicting write's `begin`, or that write's operation on this slot sees our node.
        fence(Ordering::SeqCst);
        // A write that began after our validation may have cancelled the node meanwhile: then,
        // as with a stale ticket, remove exactly the node we inserted.
        let valid = ticket.is_current() || broken(Broken::PromotionValidation);
        crate::sync::yield_point(crate::sync::YieldPoint::BeforePromotionPublish);
        let published = valid && node.publish_promotion();
        if !published {
            self.remove_exact(key, node, guard);
        }
        // A promotion that landed makes room. An undone one normally evicts nobody (its node is
        // gone again; but for a duel's victim, see `duel`, when the promoted key won one on its
        // insert), yet it enforces the bounds too, for the case where a write replaced its node
        // first (see `enforce`).
        if published || !broken(Broken::UndoneInsertSkipsBounds) {
            self.enforce(self.shard_index(hash), node.birth, guard);
        }
        published
    }

    /// The node's entry. The expiry is loaded before the value (see "Expiry and value, read
    /// together" in `node.rs`): the value is that expiry's write's or a later one, whose own
    /// expiry is no earlier, so the entry never outlives its value.
    fn entry_of(node: &Node<V>) -> Entry<V> {
        let expires_at = node.expires_at();
        Entry {
            value: node.value(),
            version: node.version(),
            expires_at,
        }
    }

    /// Cancels the key's pending node, if it has one (a write of the key has begun; see
    /// "Promotions that publish late" in [`crate::protocol`]). A cancelled promotion is never
    /// published. (Writes make no pending nodes: they check their floor under the bucket lock.)
    pub(crate) fn cancel_pending_promotion<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if broken(Broken::PromotionCancellation) {
            return;
        }
        let guard = self.map.guard();
        if let Some(node) = self.map.get(key, &guard) {
            node.cancel_if_pending();
        }
    }

    // ----- the engine's entry points: borrowed keys, the key's hash computed once by the engine

    /// The L1 fast path: the value only.
    #[inline]
    pub(crate) fn get_value<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.map.guard();
        self.read(key, &guard).map(Node::value)
    }

    /// A read for the engine: the entry with its version and expiry. `hash`: the key's hash
    /// under this tier's hasher (the engine's), if the engine has it.
    pub(crate) fn get_entry<Q>(&self, key: &Q, hash: Option<u64>) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.map.guard();
        let hash = hash.unwrap_or_else(|| self.map.hash(key));
        self.read_hashed(key, hash, &guard).map(Self::entry_of)
    }

    /// Starts loading the map's bucket of a key with this hash (see `Table::prefetch`).
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        self.map.prefetch(hash);
    }

    /// A single write (see [`Pinned::store`]), pinning the map only if it must (see
    /// [`store_with`](Self::store_with)).
    pub(crate) fn store(&self, key: &K, hash: u64, entry: Entry<V>, ticket: &Ticket<'_>) -> bool {
        self.store_with(key, hash, entry, ticket, || self.map.guard())
    }

    /// The write path of [`store`](Self::store) and [`Pinned::store`]: `set_in`, with `pin`
    /// giving the guard only if the write has a policy step to take under one (a duel, an
    /// eviction): a new pin for a single write, a batch's own.
    #[inline]
    fn store_with<'t, G: std::borrow::Borrow<TableGuard<'t>>>(
        &'t self,
        key: &K,
        hash: u64,
        entry: Entry<V>,
        ticket: &Ticket<'_>,
        pin: impl FnOnce() -> G,
    ) -> bool {
        let weight = self.weigh(key, &entry.value);
        self.set_in(key, hash, entry, weight, ticket, pin)
    }

    /// A delete or invalidation, as [`Layer::delete`], under the bucket lock alone (no pin, so a
    /// batch has none to share). `hash` is the key's hash under this tier's hasher. No owned key
    /// is made: a delete only unlinks.
    pub(crate) fn remove<Q>(&self, key: &Q, hash: u64, ticket: &Ticket<'_>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.delete_in(key, hash, ticket);
    }

    /// A reader or writer that pins the map once for several operations (a batch: a pin's
    /// exit is an atomic swap).
    pub(crate) fn pinned(&self) -> Pinned<'_, K, V> {
        Pinned {
            layer: self,
            guard: self.map.guard(),
        }
    }

    /// Whether a live value is held, without recording an access.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.map.guard();
        self.map
            .get(key, &guard)
            .is_some_and(|node| node.is_live_with(|| self.clock.now()))
    }

    /// A promotion, as [`Layer::promote`].
    pub(crate) fn promote_hashed(
        &self,
        key: &K,
        hash: u64,
        entry: Entry<V>,
        ticket: &Ticket<'_>,
    ) -> bool {
        let guard = self.map.guard();
        self.promote_in(key, hash, entry, ticket, &guard)
    }

    /// Test hook: the node's frequency bits, if resident.
    #[cfg(test)]
    fn freq(&self, key: &K) -> Option<u8> {
        let guard = self.map.guard();
        self.map.get(key, &guard).map(|n| n.meta() & FREQ_MASK)
    }
}

/// Reads under one pin of the map (see [`MemoryLayer::pinned`]).
pub(crate) struct Pinned<'a, K, V> {
    layer: &'a MemoryLayer<K, V>,
    guard: TableGuard<'a>,
}

impl<K, V> Pinned<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// As [`MemoryLayer::get_entry`].
    #[inline]
    pub(crate) fn get_entry<Q>(&self, key: &Q, hash: Option<u64>) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash.unwrap_or_else(|| self.layer.map.hash(key));
        self.layer
            .read_hashed(key, hash, &self.guard)
            .map(MemoryLayer::<K, V>::entry_of)
    }

    /// A write, as [`Layer::set`], telling whether the tier kept the value (see `set_in`).
    /// `hash` is the key's hash under this tier's hasher (the engine's).
    #[inline]
    pub(crate) fn store(&self, key: &K, hash: u64, entry: Entry<V>, ticket: &Ticket<'_>) -> bool {
        self.layer
            .store_with(key, hash, entry, ticket, || &self.guard)
    }

    /// As [`MemoryLayer::promote_hashed`], under this pin (a batch of promotions pins once).
    #[inline]
    pub(crate) fn promote(&self, key: &K, hash: u64, entry: Entry<V>, ticket: &Ticket<'_>) -> bool {
        self.layer.promote_in(key, hash, entry, ticket, &self.guard)
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
            .is_some_and(|node| node.is_live_with(|| self.clock.now())))
    }

    fn set(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        self.store(key, self.hash(key), entry, ticket);
        Ok(())
    }

    fn delete(&self, key: &K, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        self.remove(key, self.hash(key), ticket);
        Ok(())
    }

    fn promote(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<bool, LayerError> {
        Ok(self.promote_hashed(key, self.hash(key), entry, ticket))
    }

    fn get_many(&self, keys: &[&K], _now: Timestamp) -> GetResults<V> {
        let guard = self.map.guard();
        keys.iter()
            .map(|key| Ok(self.read(key, &guard).map(Self::entry_of)))
            .collect()
    }

    fn set_many(&self, entries: Vec<(&K, Entry<V>, Ticket<'_>)>) -> Vec<Result<(), LayerError>> {
        let pinned = self.pinned();
        entries
            .into_iter()
            .map(|(key, entry, ticket)| {
                pinned.store(key, self.hash(key), entry, &ticket);
                Ok(())
            })
            .collect()
    }

    fn delete_many(&self, keys: &[(&K, Ticket<'_>)]) -> Vec<Result<(), LayerError>> {
        keys.iter()
            .map(|(key, ticket)| {
                self.delete_in(*key, self.hash(key), ticket);
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
            .map(|(key, entry, ticket)| {
                Ok(self.promote_in(key, self.hash(key), entry, &ticket, &guard))
            })
            .collect()
    }

    fn for_each(&self, now: Timestamp, f: &mut dyn FnMut(&K, &V)) -> Result<(), LayerError> {
        let guard = self.map.guard();
        self.walk_residents(&guard, |key, node| {
            if node.is_live(now) {
                // A copy, not a reference into the node: `f` may write the key to this tier,
                // and a write retires the node it replaces without a guard
                // (`Table::write_unpinned`), which seize may reclaim at once though this
                // thread still holds `guard` (its `Collector::retire` is disconnected from the
                // caller's guards). The key is the queue item's own.
                let value = node.value();
                f(key, &value);
            }
        });
        Ok(())
    }

    fn counters(&self) -> LayerCounters {
        LayerCounters {
            evictions: self.counters.sum(EVICTIONS),
            dropped: self.counters.sum(DROPPED),
            expirations: self.counters.sum(EXPIRATIONS),
            len: Some(self.len() as u64),
            ..LayerCounters::default()
        }
    }

    fn close(&self) {
        self.clear();
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
