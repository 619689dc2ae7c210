//! The tier's map: a hash table of chained buckets, read without locks, written under a lock per
//! bucket. Written for the tier rather than taken from a crate (it replaced papaya, whose every
//! write allocates an entry and leaves tombstones on removal; see PERF.md §12 for the
//! measurements that decided it).
//!
//! # Layout
//!
//! A power-of-two array of buckets, presized for the tier's capacity and never resized (a tier
//! is bounded, so chains stay short; see [`bucket_count`]). A bucket is the head of a singly
//! linked chain of *links*; a link holds one key and its value (the tier's node).
//!
//! # Algorithm
//!
//! - **Readers** never lock and never write: they load the bucket's head and follow `next`
//!   pointers (protected loads of seize) until they find the key or the chain ends.
//! - **Writers** lock the bucket (bit 0 of its head pointer: links are 8-aligned), walk the
//!   chain, and change it with release stores. An update links a new, fully initialised link in
//!   place of the old one; an insert pushes one at the head; a removal unlinks one. When the
//!   head changes, the new head and the unlock are one store.
//! - Unlinked links are **retired** to seize, which runs the reclaimer only once every thread
//!   that could have loaded a pointer to the link has left its guard.
//!
//! # Invariants
//!
//! - A link is fully initialised before any pointer to it is published (a release store), and
//!   it is never changed afterwards except through its value's own atomics and its `next`
//!   pointer, which only a lock holder stores.
//! - Only the holder of a bucket's lock changes its chain, so writers of one bucket are totally
//!   ordered: `compute`, `write_unpinned`, `remove_if` and `remove_unpinned` are atomic per key.
//! - A link is retired only by the thread that unlinked it, once: under a guard
//!   (`compute`, `remove_if`: `defer_retire`, so the caller may still read it while the guard
//!   lives) or without one (`write_unpinned`, `remove_unpinned`: straight to the collector,
//!   after the lock holder's last access to it).
//! - An unlinked link stays readable, its `next` pointer included, until seize reclaims it: a
//!   reader that reached it before the unlink finishes its walk through the chain as it was,
//!   a chain that existed during its read. A reader that starts after an unlink cannot reach the
//!   link: no linked link and no head points to it any more.
//! - Per key, what a reader finds is the last link published for the key before its load of
//!   the pointer to it (coherence of that pointer's location), as with papaya's slots.

use super::pool::{self, Pool};
use super::{Compute, Operation};
use crate::sync::{broken, AtomicPtr, Broken, Ordering};
use epoch::{Collector, Guard, LocalGuard};
use std::alloc::Layout;
use std::borrow::Borrow;
use std::hash::Hash;
use std::ptr;

/// Buckets a table is presized for at most: a huge capacity used as a weight-only bound must
/// not allocate a huge array (its chains grow longer instead).
const MAX_BUCKETS: usize = 1 << 22;

/// Retired links (replaced or removed) that seize collects per thread before reclaiming a
/// batch. Readers pin with a compiler fence only (seize's `fast-barrier`), so reclaiming a
/// batch costs the writer a `membarrier` system call that interrupts every core: the default
/// batch of 32 made it a quarter of a two-thread write workload's time. A larger batch
/// amortizes it; the price is up to this many retired links per writing thread kept alive.
const RETIRE_BATCH: usize = 512;

/// The lock bit of a bucket's head pointer.
const LOCKED: usize = 1;

/// A pinned section: references returned under it stay valid until it is dropped.
pub(crate) type TableGuard<'a> = LocalGuard<'a>;

/// One entry of a chain. `repr(C)`: the key, then the value (the tier's node, whose hot fields
/// come first), so a hit reads one run of bytes.
#[repr(C)]
struct Link<K, V> {
    next: AtomicPtr<Link<K, V>>,
    key: K,
    value: V,
}

impl<K, V> Link<K, V> {
    const LAYOUT: Layout = Layout::new::<Link<K, V>>();

    /// A new link in memory from `pool` (see `pool.rs`), not yet reachable by anyone.
    fn allocate(link: Link<K, V>, pool: Option<&Pool>) -> *mut Link<K, V> {
        let block = pool::allocate(Self::LAYOUT, pool).cast::<Link<K, V>>();
        // SAFETY: `block` is unused memory of this layout.
        unsafe { block.write(link) };
        block
    }

    /// Drops a link's key and value and gives its memory back to the pool.
    ///
    /// # Safety
    ///
    /// `link` came from [`Link::allocate`] and no thread can reach it any more.
    unsafe fn free(link: *mut Link<K, V>) {
        // SAFETY: the caller's contract: the link is initialised and ours alone.
        unsafe {
            ptr::drop_in_place(link);
            pool::free(link.cast(), Self::LAYOUT);
        }
    }
}

pub(crate) struct Table<K, V> {
    buckets: Box<[AtomicPtr<Link<K, V>>]>,
    /// `buckets.len() - 1`.
    mask: usize,
    hasher: ahash::RandomState,
    /// The pool of this table's link layout (looked up once; `None` if every pool serves
    /// another layout).
    pool: Option<&'static Pool>,
    collector: Collector,
}

// SAFETY: the table owns its links (keys and values) and hands out shared references to them
// only; links move between threads when another thread reclaims them, which drops the key and
// value there. That is what `Send` on `K` and `V` allows, and shared access from several
// threads is what `Sync` on them allows (papaya's `HashMap` has the same bounds).
unsafe impl<K: Send, V: Send> Send for Table<K, V> {}
// SAFETY: see `Send`; readers share `&K` and `&V` across threads, writers send them.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Table<K, V> {}

/// How many buckets a table for `capacity` entries gets: a power of two at least the capacity
/// (a load factor of at most one while the tier holds no more than its capacity), within
/// [`MAX_BUCKETS`].
fn bucket_count(capacity: usize) -> usize {
    capacity.clamp(16, MAX_BUCKETS).next_power_of_two()
}

/// A prefetch of the cache line at `address` (a hint: nothing where the target has no stable
/// intrinsic for it, and under loom).
#[inline(always)]
fn prefetch<T>(address: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: a prefetch is a hint to the cache: it reads nothing into the program and never
    // faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = address;
}

/// The pointer without the lock bit.
#[inline]
fn untagged<K, V>(link: *mut Link<K, V>) -> *mut Link<K, V> {
    link.map_addr(|address| address & !LOCKED)
}

/// A link found in a locked chain, and the `next` field pointing to it (`None`: the head).
type Found<'l, K, V> = (Option<&'l AtomicPtr<Link<K, V>>>, &'l Link<K, V>);

/// A locked bucket: the chain's head as the lock holder will leave it. Dropping it stores the
/// head and releases the lock in one store, also when a closure or a key's `Eq` panics.
struct Locked<'t, K, V> {
    bucket: &'t AtomicPtr<Link<K, V>>,
    head: *mut Link<K, V>,
}

impl<K, V> Drop for Locked<'_, K, V> {
    fn drop(&mut self) {
        // Release: publishes every link this holder initialised and every `next` it stored, to
        // readers (their acquire loads of the head) and to the next holder (its acquire CAS).
        self.bucket.store(self.head, Ordering::Release);
    }
}

impl<K: Hash + Eq + 'static, V: 'static> Table<K, V> {
    pub(crate) fn new(capacity: usize, hasher: ahash::RandomState) -> Self {
        Self::with_buckets(bucket_count(capacity), hasher)
    }

    /// A table of exactly `buckets` buckets (a power of two); the loom models use one, so that
    /// every key shares a chain.
    pub(crate) fn with_buckets(buckets: usize, hasher: ahash::RandomState) -> Self {
        debug_assert!(buckets.is_power_of_two());
        let buckets: Box<[AtomicPtr<Link<K, V>>]> = (0..buckets)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        Table {
            mask: buckets.len() - 1,
            buckets,
            hasher,
            pool: Pool::of(Link::<K, V>::LAYOUT),
            collector: Collector::new().batch_size(RETIRE_BATCH),
        }
    }

    #[inline]
    pub(crate) fn guard(&self) -> TableGuard<'_> {
        self.collector.enter()
    }

    /// A key's hash under the table's hasher, which is its tier's (the engine's): callers that
    /// have the hash already pass it to the `_hashed` and writing methods instead of hashing
    /// the key again.
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn bucket(&self, hash: u64) -> &AtomicPtr<Link<K, V>> {
        &self.buckets[hash as usize & self.mask]
    }

    /// Asks the processor to start loading the bucket of `hash`: a batch prefetches every
    /// key's bucket before working on the first, so that their cache misses overlap instead of
    /// following one another.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        prefetch(self.bucket(hash));
    }

    #[inline]
    pub(crate) fn get<'g, Q>(&self, key: &Q, guard: &'g TableGuard<'_>) -> Option<&'g V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_hashed(key, self.hash(key), guard)
    }

    /// [`get`](Self::get) with the key's [`hash`](Self::hash) already computed.
    #[inline]
    pub(crate) fn get_hashed<'g, Q>(
        &self,
        key: &Q,
        hash: u64,
        guard: &'g TableGuard<'_>,
    ) -> Option<&'g V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        debug_assert_eq!(hash, self.hash(key), "a hash from another hasher");
        debug_assert!(
            *guard.collector() == self.collector,
            "a guard of another table"
        );
        let mut link = untagged(guard.protect(self.bucket(hash), Ordering::Acquire));
        // SAFETY: a non-null pointer loaded from a bucket or a link's `next` under the guard
        // points to a link that was fully initialised before it was published (acquire load,
        // release store) and is not reclaimed before the guard is dropped ('g).
        while let Some(current) = unsafe { link.as_ref() } {
            if current.key.borrow() == key {
                return Some(&current.value);
            }
            link = guard.protect(&current.next, Ordering::Acquire);
        }
        None
    }

    /// Locks `bucket`: spins, then yields, while another writer holds it.
    fn lock<'t>(&self, bucket: &'t AtomicPtr<Link<K, V>>) -> Locked<'t, K, V> {
        let backoff = epoch::Backoff::new();
        loop {
            // Relaxed: a failed attempt reads nothing the holder publishes; the successful
            // CAS is acquire.
            let head = bucket.load(Ordering::Relaxed);
            if head.addr() & LOCKED == 0
                && bucket
                    .compare_exchange_weak(
                        head,
                        head.map_addr(|address| address | LOCKED),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                return Locked { bucket, head };
            }
            backoff.snooze();
        }
    }

    /// In a locked chain, the link holding `key` and the `next` field pointing to it (`None`:
    /// the head points to it).
    fn find<'l, Q>(head: *mut Link<K, V>, key: &Q) -> Option<Found<'l, K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut previous = None;
        let mut link = head;
        // SAFETY: under the bucket's lock every link of the chain is live: only a lock holder
        // unlinks, and a link is retired only once unlinked; the links a caller keeps past the
        // lock ('l) are kept alive by its guard (`compute`, `remove_if`), or are ones it
        // unlinked itself and retires after its last access (`write_unpinned`,
        // `remove_unpinned`). Relaxed loads: `next` is only stored under the lock, whose
        // acquire orders the previous holders' stores before these loads.
        while let Some(current) = unsafe { link.as_ref() } {
            if current.key.borrow() == key {
                return Some((previous, current));
            }
            previous = Some(&current.next);
            link = current.next.load(Ordering::Relaxed);
        }
        None
    }

    /// Replaces what points to the found link (`previous`, or the head) with `with`.
    fn relink(
        locked: &mut Locked<'_, K, V>,
        previous: Option<&AtomicPtr<Link<K, V>>>,
        with: *mut Link<K, V>,
    ) {
        match previous {
            // Release: `with` (a new link) is initialised before readers can reach it.
            Some(next) => next.store(with, Ordering::Release),
            // Published by the unlock.
            None => locked.head = with,
        }
    }

    /// Unlinks the found link `old` (pointed to by `previous`, or the head) from the locked
    /// chain; the caller retires it once it has released the lock.
    fn unlink(
        locked: &mut Locked<'_, K, V>,
        previous: Option<&AtomicPtr<Link<K, V>>>,
        old: &Link<K, V>,
    ) {
        // Relaxed: under the lock, as in `find`.
        Self::relink(locked, previous, old.next.load(Ordering::Relaxed));
    }

    /// Links a new link holding `key` and `value` into the locked chain: in the found link's
    /// place (the caller retires that one once it has released the lock), or at the head.
    /// Returns it.
    fn link_new(
        &self,
        locked: &mut Locked<'_, K, V>,
        found: Option<Found<'_, K, V>>,
        key: K,
        value: V,
    ) -> *mut Link<K, V> {
        // Relaxed: under the lock, as in `find`.
        let next = match found {
            Some((_, old)) => old.next.load(Ordering::Relaxed),
            None => locked.head,
        };
        let new = Link::allocate(
            Link {
                next: AtomicPtr::new(next),
                key,
                value,
            },
            self.pool,
        );
        match found {
            Some((previous, _)) => Self::relink(locked, previous, new),
            // Published by the unlock.
            None => locked.head = new,
        }
        new
    }

    /// Retires an unlinked link: seize drops it once no guard can hold it.
    fn retire(link: &Link<K, V>, guard: &TableGuard<'_>) {
        let link = ptr::from_ref(link).cast_mut();
        if broken(Broken::TableReclaimWithoutGrace) {
            // The broken twin of the loom model `reclaimed_links_are_never_read`: the value is
            // dropped at once, as a reclaim without grace would (the link's memory is leaked
            // rather than reused, so that the twin fails on what readers see, not by a crash).
            // SAFETY: none, by design: loom runs one thread at a time, and the model's value
            // type stays readable after its drop.
            unsafe { ptr::drop_in_place(&raw mut (*link).value) };
            return;
        }
        // SAFETY: the link is unlinked (no head and no linked link points to it), so a thread
        // entering from now on cannot reach it; `defer_retire` keeps it for the current guard's
        // lifetime; it was allocated by `Link::allocate` in `compute`, as `reclaim` expects.
        unsafe { guard.defer_retire(link, reclaim::<K, V>) };
    }

    /// Applies `compute`'s decision for `key`'s current entry, atomically: the closure runs
    /// once, under the bucket's lock, so it may move what it inserts (no clone per attempt).
    pub(crate) fn compute<'g, F, T>(
        &self,
        key: K,
        hash: u64,
        compute: F,
        guard: &'g TableGuard<'_>,
    ) -> Compute<'g, K, V, T>
    where
        F: FnOnce(Option<(&'g K, &'g V)>) -> Operation<V, T>,
    {
        debug_assert!(
            *guard.collector() == self.collector,
            "a guard of another table"
        );
        debug_assert_eq!(hash, self.hash(&key), "a hash from another hasher");
        let mut locked = self.lock(self.bucket(hash));
        let found: Option<Found<'g, K, V>> = Self::find(locked.head, &key);
        let value = match compute(found.map(|(_, link)| (&link.key, &link.value))) {
            Operation::Abort(result) => return Compute::Aborted(result),
            Operation::Remove(result) => {
                if let Some((previous, old)) = found {
                    Self::unlink(&mut locked, previous, old);
                    drop(locked);
                    Self::retire(old, guard);
                }
                return Compute::Aborted(result);
            }
            Operation::Insert(value) => value,
        };
        let new_ptr = self.link_new(&mut locked, found, key, value);
        drop(locked);
        // SAFETY: initialised before it was linked; it is retired only after it is unlinked,
        // and reclaimed only after the caller's guard ('g) is dropped.
        let new: &'g Link<K, V> = unsafe { &*new_ptr };
        match found {
            Some((_, old)) => {
                Self::retire(old, guard);
                Compute::Updated {
                    old: (&old.key, &old.value),
                    new: (&new.key, &new.value),
                }
            }
            None => Compute::Inserted(&new.key, &new.value),
        }
    }

    /// A write decided and applied under the bucket's lock, without a guard: `decide` sees the
    /// key's current entry and may leave it (`Abort`; it may have changed the entry in place
    /// through its atomics), store a new value in its place or in an empty one (`Insert`; the
    /// key is cloned only then), or unlink it (`Remove`). After an insert, `stored` sees the
    /// entry it replaced (if any) and the new one, still under the lock, and its answer is
    /// returned.
    ///
    /// No guard is needed: while the lock is held no link of the chain can be retired (only a
    /// lock holder unlinks, and a link is retired only once unlinked), so nothing the closures
    /// see can be reclaimed, and they keep nothing past their return; a replaced or removed
    /// link goes straight to the collector, as in [`remove_unpinned`](Self::remove_unpinned).
    /// The memory tier's one write path: an overwrite in place, an insert and a replacement
    /// each take the bucket lock once and no pin (a pin and its exit are two atomic
    /// read-modify-writes).
    #[inline]
    pub(crate) fn write_unpinned<T>(
        &self,
        key: &K,
        hash: u64,
        decide: impl FnOnce(Option<&V>) -> Operation<V, T>,
        stored: impl FnOnce(Option<&V>, &V) -> T,
    ) -> T
    where
        K: Clone,
    {
        debug_assert_eq!(hash, self.hash(key), "a hash from another hasher");
        if broken(Broken::TableLockedReadUnlocked) {
            // The broken twin of the loom model `a_locked_read_never_reads_a_reclaimed_link`:
            // the chain walked with neither the lock nor a guard. (The twin's model only reads:
            // a store decided here is dropped.)
            let head = untagged(self.bucket(hash).load(Ordering::Acquire));
            return match decide(Self::find(head, key).map(|(_, link)| &link.value)) {
                Operation::Abort(result) | Operation::Remove(result) => result,
                Operation::Insert(value) => stored(None, &value),
            };
        }
        let mut locked = self.lock(self.bucket(hash));
        let found: Option<Found<'_, K, V>> = Self::find(locked.head, key);
        let value = match decide(found.map(|(_, link)| &link.value)) {
            Operation::Abort(result) => return result,
            Operation::Remove(result) => {
                if let Some((previous, old)) = found {
                    Self::unlink(&mut locked, previous, old);
                    drop(locked);
                    self.retire_unpinned(old);
                }
                return result;
            }
            Operation::Insert(value) => value,
        };
        let new_ptr = self.link_new(&mut locked, found, key.clone(), value);
        // SAFETY: initialised before it was linked, and linked under the lock this thread
        // holds: only a lock holder unlinks, so it stays alive at least until the unlock.
        let new = unsafe { &*new_ptr };
        let result = stored(found.map(|(_, old)| &old.value), &new.value);
        drop(locked);
        if let Some((_, old)) = found {
            self.retire_unpinned(old);
        }
        result
    }

    /// Removes `key`'s entry if `should_remove` says so: `Ok(Some(entry))` removed it,
    /// `Ok(None)` found no entry, `Err(entry)` kept it.
    pub(crate) fn remove_if<'g, Q, F>(
        &self,
        key: &Q,
        hash: u64,
        mut should_remove: F,
        guard: &'g TableGuard<'_>,
    ) -> Result<Option<(&'g K, &'g V)>, (&'g K, &'g V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        F: FnMut(&K, &V) -> bool,
    {
        debug_assert!(
            *guard.collector() == self.collector,
            "a guard of another table"
        );
        debug_assert_eq!(hash, self.hash(key), "a hash from another hasher");
        let mut locked = self.lock(self.bucket(hash));
        let found: Option<Found<'g, K, V>> = Self::find(locked.head, key);
        let Some((previous, link)) = found else {
            return Ok(None);
        };
        if !should_remove(&link.key, &link.value) {
            return Err((&link.key, &link.value));
        }
        Self::unlink(&mut locked, previous, link);
        if broken(Broken::TableUnlinkClearsNext) {
            // The broken twin of the loom model `a_walk_survives_unlinks`.
            link.next.store(ptr::null_mut(), Ordering::Release);
        }
        drop(locked);
        Self::retire(link, guard);
        Ok(Some((&link.key, &link.value)))
    }

    /// Removes `key`'s entry if `should_remove` says so, under the bucket's lock and without a
    /// guard (as [`write_unpinned`](Self::write_unpinned)): `removed` sees the entry just unlinked,
    /// still under the lock, and its answer is returned (`None`: nothing removed). The link
    /// then goes straight to the collector, since nothing here reads it again. For deletes,
    /// which need nothing else from the map: it saves the guard's pin and unpin.
    pub(crate) fn remove_unpinned<Q, R>(
        &self,
        key: &Q,
        hash: u64,
        should_remove: impl FnOnce(&V) -> bool,
        removed: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        debug_assert_eq!(hash, self.hash(key), "a hash from another hasher");
        let mut locked = self.lock(self.bucket(hash));
        let (previous, link) = Self::find(locked.head, key)?;
        if !should_remove(&link.value) {
            return None;
        }
        Self::unlink(&mut locked, previous, link);
        let result = removed(&link.value);
        drop(locked);
        self.retire_unpinned(link);
        Some(result)
    }

    /// Retires a link that the calling thread unlinked under a bucket lock it has released,
    /// holding no guard: straight to the collector, which reclaims it once every guard that
    /// could hold it is gone. The caller does not touch `link` again.
    #[inline]
    fn retire_unpinned(&self, link: &Link<K, V>) {
        let link = ptr::from_ref(link).cast_mut();
        if broken(Broken::TableReclaimWithoutGrace) {
            // As in `retire`: the broken twin of `an_unpinned_removal_is_reclaimed_only_after_readers`
            // and `an_unpinned_replacement_is_reclaimed_only_after_readers`.
            // SAFETY: none, by design (see `retire`).
            unsafe { ptr::drop_in_place(&raw mut (*link).value) };
            return;
        }
        // SAFETY: the link is unlinked, so a thread entering from now on cannot reach it, and
        // the caller does not touch it again; it was allocated by `Link::allocate`, as
        // `reclaim` expects. The collector reclaims it once every guard that could hold it is
        // gone.
        unsafe { self.collector.retire(link, reclaim::<K, V>) };
    }

    /// Unit tests only: every entry, bucket by bucket.
    #[cfg(test)]
    pub(crate) fn for_each<'g>(&self, guard: &'g TableGuard<'_>, mut f: impl FnMut(&'g K, &'g V)) {
        for bucket in self.buckets.iter() {
            let mut link = untagged(guard.protect(bucket, Ordering::Acquire));
            // SAFETY: as in `get`.
            while let Some(current) = unsafe { link.as_ref() } {
                f(&current.key, &current.value);
                link = guard.protect(&current.next, Ordering::Acquire);
            }
        }
    }
}

/// seize's reclaimer for a retired link.
///
/// # Safety
///
/// `link` came from `Link::allocate` and no thread can reach it any more (seize calls it once
/// every guard that could have loaded the link is gone).
unsafe fn reclaim<K, V>(link: *mut Link<K, V>, _collector: &Collector) {
    // SAFETY: the caller's contract.
    unsafe { Link::free(link) };
}

impl<K, V> Drop for Table<K, V> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no guard of this collector exists (guards borrow the table), so
        // every retired link can be reclaimed now.
        unsafe { self.collector.reclaim_all() };
        // Relaxed loads below: `&mut self` means every other thread's accesses to the table
        // happened before this drop (whatever handed us the last reference synchronized).
        for bucket in self.buckets.iter() {
            let mut link = untagged(bucket.load(Ordering::Relaxed));
            while !link.is_null() {
                // SAFETY: the links still in the chains are owned by the table alone (nothing
                // retired them), and each came from `Link::allocate`.
                let next = unsafe { (*link).next.load(Ordering::Relaxed) };
                // SAFETY: as above; `next` was read before the link is freed.
                unsafe { Link::free(link) };
                link = next;
            }
        }
    }
}

/// The reclamation scheme: seize, or under loom a scheme loom can instrument.
#[cfg(not(loom))]
mod epoch {
    pub(super) use crossbeam_utils::Backoff;
    pub(super) use seize::{Collector, Guard, LocalGuard};
}

/// Under loom: quiescent-state reclamation. A guard counts itself active; retired links wait
/// in a list, and the guard whose exit leaves no guard active reclaims them all. Conservative
/// (nothing is reclaimed while any guard is active, however late it entered) and plainly
/// correct, which is what a model of the table's *use* of reclamation needs: the models check
/// that the table retires only what readers can no longer reach, and reads only under a guard.
#[cfg(loom)]
mod epoch {
    use crate::sync::{spin_hint, AtomicUsize, Ordering};

    type Reclaimer = Box<dyn FnOnce(&Collector)>;

    pub(crate) struct Collector {
        active: AtomicUsize,
        retired: loom::sync::Mutex<Vec<Reclaimer>>,
    }

    pub(crate) struct LocalGuard<'a> {
        collector: &'a Collector,
    }

    pub(crate) trait Guard {
        fn collector(&self) -> &Collector;
        fn protect<T>(&self, pointer: &loom::sync::atomic::AtomicPtr<T>, order: Ordering)
            -> *mut T;
        /// # Safety
        ///
        /// As seize's: `pointer` is unreachable for threads entering from now on, and valid
        /// for `reclaim` once no guard can hold it.
        unsafe fn defer_retire<T: 'static>(
            &self,
            pointer: *mut T,
            reclaim: unsafe fn(*mut T, &Collector),
        );
    }

    impl Collector {
        pub(crate) fn new() -> Self {
            Collector {
                active: AtomicUsize::new(0),
                retired: loom::sync::Mutex::new(Vec::new()),
            }
        }

        pub(crate) fn batch_size(self, _batch: usize) -> Self {
            self
        }

        pub(crate) fn enter(&self) -> LocalGuard<'_> {
            self.active.fetch_add(1, Ordering::SeqCst);
            // seize's light barrier after marking the thread active (see `retire`).
            crate::sync::fence(Ordering::SeqCst);
            LocalGuard { collector: self }
        }

        /// Retires outside any guard, as seize's `Collector::retire`: reclaimed at once if no
        /// guard is active, else by the last guard out.
        ///
        /// # Safety
        ///
        /// As seize's: `pointer` is unreachable for threads entering from now on, the caller
        /// does not touch it again, and it is valid for `reclaim`.
        pub(crate) unsafe fn retire<T: 'static>(
            &self,
            pointer: *mut T,
            reclaim: unsafe fn(*mut T, &Collector),
        ) {
            // seize's heavy barrier before it looks for active threads: with `enter`'s fence
            // (the store-buffering pattern, fenced on both sides), either this load sees the
            // reader, or the reader's loads see the caller's unlink.
            crate::sync::fence(Ordering::SeqCst);
            let mut retired = self.retired.lock().unwrap();
            if self.active.load(Ordering::SeqCst) == 0 {
                drop(retired);
                // SAFETY: no guard is active, so no thread holds the pointer.
                return unsafe { reclaim(pointer, self) };
            }
            let pointer = pointer as usize;
            // SAFETY: the caller's contract, kept until no guard is active.
            retired.push(Box::new(move |collector| unsafe {
                reclaim(pointer as *mut T, collector)
            }));
        }

        /// # Safety
        ///
        /// No guard is active.
        pub(crate) unsafe fn reclaim_all(&self) {
            let retired = std::mem::take(&mut *self.retired.lock().unwrap());
            retired.into_iter().for_each(|reclaim| reclaim(self));
        }
    }

    impl PartialEq for Collector {
        fn eq(&self, other: &Self) -> bool {
            std::ptr::eq(self, other)
        }
    }

    impl Guard for LocalGuard<'_> {
        fn collector(&self) -> &Collector {
            self.collector
        }

        fn protect<T>(
            &self,
            pointer: &loom::sync::atomic::AtomicPtr<T>,
            order: Ordering,
        ) -> *mut T {
            let _ = order;
            pointer.load(Ordering::SeqCst)
        }

        unsafe fn defer_retire<T: 'static>(
            &self,
            pointer: *mut T,
            reclaim: unsafe fn(*mut T, &Collector),
        ) {
            let pointer = pointer as usize;
            self.collector
                .retired
                .lock()
                .unwrap()
                // SAFETY: the caller's contract, kept until no guard is active.
                .push(Box::new(move |collector| unsafe {
                    reclaim(pointer as *mut T, collector)
                }));
        }
    }

    impl Drop for LocalGuard<'_> {
        fn drop(&mut self) {
            // The last guard out reclaims. Holding the list's lock while decrementing makes
            // "no guard active" and "these links were retired before" one observation.
            let mut retired = self.collector.retired.lock().unwrap();
            if self.collector.active.fetch_sub(1, Ordering::SeqCst) == 1 {
                let batch = std::mem::take(&mut *retired);
                drop(retired);
                batch
                    .into_iter()
                    .for_each(|reclaim| reclaim(self.collector));
            }
        }
    }

    /// Under loom, waiting for a lock holder yields to loom's scheduler.
    pub(crate) struct Backoff;

    impl Backoff {
        pub(crate) fn new() -> Self {
            Backoff
        }
        pub(crate) fn snooze(&self) {
            spin_hint();
        }
    }
}

/// The loom models' handle on the table (`loom-tests/tests/table.rs`): `u64` keys, one bucket,
/// so every key shares one chain.
#[cfg(loom)]
pub mod model {
    use super::{Operation, Table};

    /// A one-bucket chained table of `u64` keys.
    pub struct ChainedTable<V>(Table<u64, V>);

    impl<V> std::fmt::Debug for ChainedTable<V> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ChainedTable")
        }
    }

    impl<V: 'static> ChainedTable<V> {
        /// An empty table of one bucket.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            ChainedTable(Table::with_buckets(1, crate::sync::random_state()))
        }

        /// Looks `key` up and hands what it found to `inspect`, under the guard.
        pub fn get<R>(&self, key: u64, inspect: impl FnOnce(Option<&V>) -> R) -> R {
            let guard = self.0.guard();
            inspect(self.0.get(&key, &guard))
        }

        /// Looks `key` up under its bucket's lock, without a guard (`Table::write_unpinned`, a
        /// write's lookup, deciding to store nothing), and hands what it found to `inspect`.
        pub fn get_locked<R>(&self, key: u64, inspect: impl FnOnce(Option<&V>) -> R) -> R {
            let hash = self.0.hash(&key);
            self.0.write_unpinned(
                &key,
                hash,
                |current| Operation::Abort(inspect(current)),
                |_, _| unreachable!("an abort stores nothing"),
            )
        }

        /// Inserts or replaces `key`'s value.
        pub fn insert(&self, key: u64, value: V) {
            let guard = self.0.guard();
            let hash = self.0.hash(&key);
            let _ = self
                .0
                .compute(key, hash, |_| Operation::<V, ()>::Insert(value), &guard);
        }

        /// Inserts or replaces `key`'s value under its bucket's lock, without a guard
        /// (`Table::write_unpinned`, the memory tier's write path).
        pub fn insert_unpinned(&self, key: u64, value: V) {
            let hash = self.0.hash(&key);
            self.0
                .write_unpinned(&key, hash, |_| Operation::Insert(value), |_, _| ());
        }

        /// Removes `key` under its bucket's lock, without a guard (`Table::remove_unpinned`);
        /// returns whether it was there.
        pub fn remove_unpinned(&self, key: u64) -> bool {
            let hash = self.0.hash(&key);
            self.0
                .remove_unpinned(&key, hash, |_| true, |_| ())
                .is_some()
        }

        /// Removes `key`; returns whether it was there.
        pub fn remove(&self, key: u64) -> bool {
            let guard = self.0.guard();
            let hash = self.0.hash(&key);
            matches!(
                self.0.remove_if(&key, hash, |_, _| true, &guard),
                Ok(Some(_))
            )
        }
    }
}
