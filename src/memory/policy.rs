//! S3-FIFO eviction, sharded, on lock-free queues.
//!
//! # Algorithm
//!
//! S3-FIFO (Yang et al., SOSP'23) keeps three FIFO queues per shard:
//!
//! - **small** (≈10 % of the shard): every new key enters here. When an entry reaches the head
//!   of the queue it is moved to *main* if it was read while queued (frequency > 0), otherwise it
//!   is evicted and its hash is remembered in the *ghost*.
//! - **main** (the rest): a CLOCK over a FIFO. At the head, an entry with frequency > 0 has its
//!   frequency lowered and goes back to the tail; a cold one is evicted.
//! - **ghost**: fingerprints of keys recently evicted from *small*. A new key found in the ghost
//!   skips *small* and enters *main* directly: it was wanted again soon after eviction.
//!
//! Why S3-FIFO rather than W-TinyLFU: a read hit only sets the entry's own two frequency bits
//! (and only when they change), while TinyLFU increments a shared count-min sketch on every
//! read, a write to a shared cache line on the hot path (moka buffers those writes; we need not).
//! Hit ratios on the traces in `shared/traces` are in the closing notes and PERF.md.
//!
//! # Scans: the small queue earns its share
//!
//! A fixed small queue of 10 % is what keeps S3-FIFO ahead of LRU and of the peers on traces
//! with recency (oltp, orm-busy, web07 in `shared/traces`), but it is dead weight under a scan
//! or a loop longer than the cache: no key is read again while in small, so the cache can hold
//! at most 90 % of a fixed subset where an admission filter holds all of it (the loop trace:
//! 44 % against moka's 50.5 % at 512 entries). So each shard sizes its small queue by what it
//! earns, and guards main with a frequency duel while small is cut back:
//!
//! - **Earning.** Over each window of `size` eviction steps (the shard's entry quota, or the
//!   entries it holds when a weight bound limits it) the shard counts *small hits*
//!   (items leaving small read, promoted to main) and *main hits* (main items found read when the
//!   CLOCK hand passes). If small's hits per slot are at most a quarter of main's, small's target
//!   shrinks by 1 % of the size (down to one entry); otherwise it grows back by as much, up to
//!   10 %. A window in which neither queue earned anything changes nothing (writes without
//!   reads are no reason to cut small back); if main was not even popped in it, the next step
//!   probes main's head, so that a loop whose small queue never lets the hand reach main is
//!   still judged. On every trace but the loop, small earns enough to keep its 10 %; on the loop
//!   it earns nothing and shrinks to one entry.
//! - **The duel.** While small is cut back, a key the ghost remembers does not enter main
//!   unconditionally: it must be counted more often than main's next victim (per unit of
//!   weight in a shard bounded by weight, see "Weights") in a TinyLFU frequency sketch
//!   (`crate::heat`'s count-min), else it goes through small like any newcomer and the victim
//!   keeps its place. Ties go against the newcomer, as in TinyLFU, so a loop's
//!   keys (all equally frequent) no longer churn main. The sketch is allocated by the first
//!   duel (one `u64` per four entries of capacity: 2 bytes per entry) and fed only while the
//!   key's shard is cut back (new keys, small hits, main hits): a workload that never brings a
//!   remembered key back into a cut-back shard pays neither the memory nor the increments.
//!
//! # Weights
//!
//! A shard bounded by weight (the policy's only shard, see "Concurrency") sizes small by
//! weight, not length: sized by length, a newcomer heavier than small's head needed more room
//! than the head freed, so the rest came out of main, which then churned under a loop longer
//! than the cache and kept nothing (0 % hits at 30–101 entries where moka kept 4–13 %). So:
//!
//! - small's target (counted in entries, as above) stands for a share of the *bound*:
//!   `target / (10 × share)` of `max_weight`, a tenth at full share as for entries; small is
//!   evicted from while its weight is above that, and main otherwise (besides the window's
//!   probes);
//! - a new key goes straight to main while main's weight, the key's included, is within the
//!   rest of the bound (an entry-bounded shard's "main below its share");
//! - an insert never evicts its own key to make room while main holds others and small is not
//!   cut back: a newcomer heavier than small's share would otherwise be the next candidate;
//! - small's weight is counted exactly, in *admission* weights: a weight-bounded shard keeps
//!   the key's weight, coded in one byte (`weight_code`: exact below 16, within 1/8 above),
//!   in the low byte of each birth (the shard index's byte, always 0 in a one-shard policy),
//!   so a queue item knows what it added to small when it leaves, even as an orphan; every
//!   push onto small adds it and every pop subtracts it, so the count is exact whenever no
//!   thread is between the two;
//! - the duel compares counted reads *per unit of weight*: of two keys equally hot, the lighter
//!   one costs less of the bound per hit, so a loop's main fills with lighter keys and holds
//!   more of them.
//!
//! With every weight 1 each rule is the entry-bounded one. PERF.md §3 has the weight-bounded
//! table before and after.
//!
//! A read hit is unchanged: it only sets the entry's own frequency bits; everything above runs
//! on the eviction path. All of it is a hint (`Relaxed` counters): a lost count or a window cut
//! short moves one sizing step, never an entry's value. PERF.md §10 has the measurements.
//!
//! # Concurrency
//!
//! The map is the source of truth; the queues only hold `(key, birth)` items. A key's *birth*
//! identifies one residency of the key in the map and is carried over when its value is
//! replaced in place. Removals that do not go through the policy (lazy expiry, an aborted
//! promotion) leave their item behind as an *orphan*: when popped, an item whose key is absent
//! or whose birth differs from the node's is dropped. A delete's removal leaves an orphan the
//! same way. Orphans are counted, and once they exceed half the shard's capacity a reaping pass
//! rotates the queues to drop them, so the queues stay within a constant factor of the live
//! entries.
//!
//! Shards split the policy (not the map) by key hash, so inserting threads rarely touch the same
//! queue tail or counters. Weighted tiers keep a single shard: a weight bound split over shards
//! could be smaller than one legitimate entry. An entry heavier than the whole bound is never
//! admitted (the tier treats it as evicted at once).
//!
//! # Quotas: the capacity is usable whatever the key distribution
//!
//! Each shard is bounded by its *quota*, which starts at its fair share of the capacity. The
//! quotas always sum to at most the capacity (a transfer lowers the donor's quota before it
//! raises the taker's), so the total never exceeds the configured capacity once writers are
//! quiescent; while writers run it can be exceeded by at most one entry per concurrent insert
//! (a write or a promotion).
//!
//! Keys whose hashes are skewed (a user's `Hash` that only feeds a low-cardinality field sends
//! every key to one shard) would otherwise leave most of the capacity unused. So a shard that is
//! over its quota first tries to take quota ([`Policy::rebalance`]), in chunks of 1/64 of a
//! fair share:
//!
//! 1. from a shard with at least a chunk of unused quota (free room moves to where keys are);
//! 2. if the shard is below its fair share, from a shard above its fair share even if that one
//!    is full, which then evicts (so room flows back once the skew ends).
//!
//! Only if neither is possible does it evict one of its own entries. A failed attempt is not
//! repeated before the shard has admitted another chunk of keys, so a cache at capacity with
//! well-spread keys pays one scan of the other shards' counters per chunk of inserts. The slack:
//! at most a chunk minus one of unused quota can stay in each other shard, under 1/64 of the
//! capacity in all.
//!
//! The queues are crossbeam's `SegQueue` (a lock-free, block-allocated Michael–Scott-style
//! queue: one allocation per 31 pushes). Writing our own would gain nothing here.

use crate::heat::FrequencySketch;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, SegQueue};
use crossbeam_utils::CachePadded;

/// Low bits of a birth that name the shard (in a policy of several shards; a weight-bounded
/// policy, of one shard, keeps the key's weight code there, see "Weights" in the module docs).
pub(crate) const SHARD_BITS: u32 = 8;
const MAX_SHARDS: usize = 1 << SHARD_BITS;
/// Shards are only split off when each gets at least this many entries, so small caches keep
/// one exact S3-FIFO.
const MIN_SHARD_CAPACITY: usize = 512;
/// Small is cut back while its hits per slot are at most main's divided by this (see
/// `Shard::count_step`).
const SMALL_YIELD_FACTOR: u128 = 4;
/// The duel's sketch has one word (sixteen 4-bit counters) per this many entries of capacity:
/// 2 bytes per entry. With the floor below it changes no hit ratio measurably on the traces
/// (`bench/examples/policy_sim.rs`); a sketch of a few words saturates, duels tie, and orm-busy
/// at 229 entries lost 1.4 points there.
const SKETCH_ENTRIES_PER_WORD: usize = 4;
/// The duel's sketch is never smaller than this (a tier of a few hundred entries).
const MIN_SKETCH_WORDS: usize = 64;
/// Ghost slots per shard at most (the ghost is allocated up front; a huge capacity, as used for
/// a weight-only bound, must not allocate a huge ghost).
const MAX_GHOST: usize = 1 << 20;

/// A weight's code in a birth's low byte (see "Weights" in the module docs): exact below 16,
/// then four bits of exponent and three of mantissa (`(8 + m) << e`), at most 1/8 below the
/// weight, saturating near 2^34.
fn weight_code(weight: u64) -> u8 {
    if weight < 16 {
        return weight as u8;
    }
    let exponent = (63 - weight.leading_zeros() - 3).min(30);
    let mantissa = ((weight >> exponent).min(15) - 8) as u8;
    (((exponent + 1) as u8) << 3) | mantissa
}

/// The weight a [`weight_code`] stands for.
fn code_weight(code: u8) -> u64 {
    if code < 16 {
        return u64::from(code);
    }
    (8 + u64::from(code & 7)) << ((code >> 3) - 1)
}

pub(crate) struct Item<K> {
    pub(crate) key: K,
    pub(crate) birth: u64,
}

/// Which queue an item was popped from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queue {
    Small,
    Main,
}

pub(crate) struct Shard<K> {
    small: SegQueue<Item<K>>,
    main: SegQueue<Item<K>>,
    ghost: Box<[AtomicU64]>,
    ghost_mask: u64,
    state: CachePadded<ShardState>,
    pub(crate) max_weight: u64,
    /// Whether entries have weights of their own (the tier has a weigher). Without one every
    /// entry weighs 1, the weight is the length, and the weight counter is never touched: one
    /// atomic read-modify-write less per insert and per removal.
    weighed: bool,
}

struct ShardState {
    len: AtomicUsize,
    weight: AtomicU64,
    orphans: AtomicUsize,
    next_birth: AtomicU64,
    /// The shard's bound on entries (see "Quotas" in the module docs).
    quota: AtomicUsize,
    /// The `next_birth` sequence before which the shard does not try to take quota again.
    rebalance_after: AtomicU64,
    /// The small queue's target length (see "Scans" in the module docs; for a shard bounded by
    /// weight, the numerator of small's share of the bound, see "Weights"); read clamped to
    /// between one entry and a tenth of the size (see `Shard::size`).
    small_target: AtomicUsize,
    /// This window's small hits, main hits and eviction steps.
    small_hits: AtomicU64,
    main_hits: AtomicU64,
    steps: AtomicU64,
    /// Whether main was popped in this window (else a window without hits says nothing about
    /// it), and whether the next eviction step must look at main's head (a probe).
    main_popped: AtomicBool,
    probe_main: AtomicBool,
    /// The admission weights of the items in small, for a shard bounded by weight (see
    /// "Weights" in the module docs); wraps and is read as signed, as `len`.
    small_weight: AtomicU64,
}

pub(crate) struct Policy<K> {
    shards: Box<[Shard<K>]>,
    mask: u64,
    /// Each shard's fair share of the capacity (the first shards get one more if it does not
    /// divide evenly).
    fair: usize,
    /// The unit of quota transfers.
    chunk: usize,
    /// The duel's frequency sketch, allocated by the first duel (see "Scans" in the module
    /// docs); null until then.
    sketch: AtomicPtr<FrequencySketch>,
    capacity: usize,
}

/// What [`Policy::rebalance`] did for an over-quota shard.
pub(crate) enum Rebalance {
    /// Took unused quota: no eviction needed for it.
    Took,
    /// Took quota from this shard, which must now evict down to its lowered quota.
    TookFrom(usize),
    /// Nothing to take: the shard must evict one of its own entries.
    Nothing,
}

impl<K> Policy<K> {
    /// `capacity` entries and `max_weight` units in total, split over shards; `weighed` says
    /// whether entries have weights of their own (else each weighs 1).
    pub(crate) fn new(capacity: usize, max_weight: u64, weighed: bool) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        let wanted = (parallelism * 4).next_power_of_two();
        let mut count = 1;
        // A weight bound is not split: a shard's share could be smaller than one legitimate
        // entry. Weighted tiers keep one policy shard.
        let weighted = max_weight != u64::MAX;
        while !weighted
            && count < wanted
            && count < MAX_SHARDS
            && capacity / (count * 2) >= MIN_SHARD_CAPACITY
        {
            count *= 2;
        }
        let shards = (0..count)
            .map(|i| {
                // Spread the remainder so the shard bounds sum exactly to the capacity.
                let max_len = capacity / count + usize::from(i < capacity % count);
                let max_weight = if max_weight == u64::MAX {
                    u64::MAX
                } else {
                    max_weight / count as u64 + u64::from((i as u64) < max_weight % count as u64)
                };
                Shard::new(max_len, max_weight, weighed)
            })
            .collect();
        let fair = capacity / count;
        Policy {
            shards,
            mask: count as u64 - 1,
            fair,
            chunk: (fair / 64).max(1),
            sketch: AtomicPtr::new(std::ptr::null_mut()),
            capacity,
        }
    }

    /// The duel's frequency sketch, if a duel allocated it.
    pub(crate) fn existing_sketch(&self) -> Option<&FrequencySketch> {
        // Acquire: as in `sketch`.
        let current = self.sketch.load(Ordering::Acquire);
        // SAFETY: as in `sketch`.
        (!current.is_null()).then(|| unsafe { &*current })
    }

    /// The duel's frequency sketch, allocated on first use (see "Scans" in the module docs).
    pub(crate) fn sketch(&self) -> &FrequencySketch {
        // Acquire pairs with the Release of the compare-exchange below: a thread that sees the
        // pointer sees the sketch's initialised words.
        let current = self.sketch.load(Ordering::Acquire);
        if !current.is_null() {
            // SAFETY: a non-null pointer came from `Box::into_raw` below and is freed only in
            // `drop`, which has `&mut self`: it is valid for as long as `&self` is.
            return unsafe { &*current };
        }
        let words = (self.capacity / SKETCH_ENTRIES_PER_WORD).max(MIN_SKETCH_WORDS);
        let fresh = Box::into_raw(Box::new(FrequencySketch::with_words(words, self.capacity)));
        match self.sketch.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: as above; `fresh` is now the published sketch.
            Ok(_) => unsafe { &*fresh },
            Err(winner) => {
                // SAFETY: `fresh` was never published: this thread owns it.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: as above for the winner's pointer.
                unsafe { &*winner }
            }
        }
    }

    /// Finds quota for shard `taker`, which is over its quota (see "Quotas" in the module docs).
    pub(crate) fn rebalance(&self, taker: usize) -> Rebalance {
        let shard = &self.shards[taker];
        // Relaxed: quotas and counters bound memory; they publish nothing.
        let seq = shard.state.next_birth.load(Ordering::Relaxed);
        if self.shards.len() == 1 || seq < shard.state.rebalance_after.load(Ordering::Relaxed) {
            return Rebalance::Nothing;
        }
        let count = self.shards.len();
        let others = (1..count).map(|step| (taker + step) % count);
        for donor in others.clone() {
            let room = |quota: usize, len: usize| quota >= len + self.chunk;
            if self.shards[donor].give_quota(self.chunk, room) {
                shard.state.quota.fetch_add(self.chunk, Ordering::Relaxed);
                return Rebalance::Took;
            }
        }
        if shard.quota() < self.fair {
            for donor in others {
                let above_fair = |quota: usize, _: usize| quota >= self.fair + self.chunk;
                if self.shards[donor].give_quota(self.chunk, above_fair) {
                    shard.state.quota.fetch_add(self.chunk, Ordering::Relaxed);
                    return Rebalance::TookFrom(donor);
                }
            }
        }
        shard
            .state
            .rebalance_after
            .store(seq + self.chunk as u64, Ordering::Relaxed);
        Rebalance::Nothing
    }

    #[inline]
    pub(crate) fn shard_for_hash(&self, hash: u64) -> &Shard<K> {
        &self.shards[(hash & self.mask) as usize]
    }

    #[inline]
    pub(crate) fn shard_of_birth(&self, birth: u64) -> &Shard<K> {
        &self.shards[(birth & (MAX_SHARDS as u64 - 1) & self.mask) as usize]
    }

    pub(crate) fn shards(&self) -> &[Shard<K>] {
        &self.shards
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.shards.iter().map(|s| s.weight()).sum()
    }
}

impl<K> Drop for Policy<K> {
    fn drop(&mut self) {
        // A load rather than `get_mut`, which loom's atomics lack; `&mut self` orders it anyway.
        let sketch = self.sketch.load(Ordering::Acquire);
        if !sketch.is_null() {
            // SAFETY: published by `sketch()` from `Box::into_raw`; `&mut self` means no reader
            // is left.
            drop(unsafe { Box::from_raw(sketch) });
        }
    }
}

impl<K> Shard<K> {
    fn new(max_len: usize, max_weight: u64, weighed: bool) -> Self {
        // Half the shard: a longer memory readmits keys of a loop longer than the cache into
        // main, where they only churn it (shared/traces loop at 404/512 entries: +1.3/+1.7
        // points against a full-size ghost; oltp, orm-busy, web07 move by at most 0.15).
        let ghost_len = (max_len / 2).clamp(1, MAX_GHOST).next_power_of_two();
        Shard {
            small: SegQueue::new(),
            main: SegQueue::new(),
            ghost: (0..ghost_len).map(|_| AtomicU64::new(0)).collect(),
            ghost_mask: ghost_len as u64 - 1,
            state: CachePadded::new(ShardState {
                len: AtomicUsize::new(0),
                weight: AtomicU64::new(0),
                orphans: AtomicUsize::new(0),
                next_birth: AtomicU64::new(1),
                quota: AtomicUsize::new(max_len),
                rebalance_after: AtomicU64::new(0),
                small_target: AtomicUsize::new(usize::MAX),
                small_hits: AtomicU64::new(0),
                main_hits: AtomicU64::new(0),
                steps: AtomicU64::new(0),
                main_popped: AtomicBool::new(false),
                probe_main: AtomicBool::new(false),
                small_weight: AtomicU64::new(0),
            }),
            max_weight,
            weighed,
        }
    }

    /// The shard's bound on entries (see "Quotas" in the module docs). Relaxed, as every quota
    /// access: quotas bound memory and publish nothing; a stale quota only moves an eviction or
    /// a transfer a little later.
    pub(crate) fn quota(&self) -> usize {
        self.state.quota.load(Ordering::Relaxed)
    }

    /// The small queue's largest target: a tenth of the size (see `size`).
    fn small_share(&self) -> usize {
        (self.size() / 10).max(1)
    }

    /// The shard's size in entries, of which the small queue's share and the sizing windows
    /// are fractions: its entry quota, or, for a shard bounded by weight, the entries it holds
    /// (its entry quota is then usually far above what the weight bound lets in: sized by the
    /// quota, small would never fill and every key would go straight to main, a plain CLOCK).
    fn size(&self) -> usize {
        if self.max_weight == u64::MAX {
            self.quota()
        } else {
            self.len().max(1)
        }
    }

    /// The small queue's target length (see "Scans" in the module docs).
    fn small_target(&self) -> usize {
        // Relaxed: a sizing hint.
        self.state
            .small_target
            .load(Ordering::Relaxed)
            .min(self.small_share())
    }

    /// Whether the small queue is cut back below its share: main earns more per slot, and keys
    /// the ghost remembers must win a duel to enter main.
    pub(crate) fn is_cut_back(&self) -> bool {
        self.small_target() < self.small_share()
    }

    /// Counts an item leaving small after a read (promoted to main).
    pub(crate) fn count_small_hit(&self) {
        // Relaxed: a sizing hint, as every counter of the window.
        self.state.small_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a main item found read when the CLOCK hand passed it.
    pub(crate) fn count_main_hit(&self) {
        // Relaxed: a sizing hint, as every counter of the window.
        self.state.main_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one eviction step; the step that closes a window of `size` steps resizes the
    /// small queue by what each queue earned per slot in it.
    pub(crate) fn count_step(&self) {
        let size = self.size();
        // Relaxed, as every counter of the window: a sizing hint.
        if self.state.steps.fetch_add(1, Ordering::Relaxed) + 1 < size as u64 {
            return;
        }
        // This thread closed the window. Another may close it too before the reset lands: it
        // then moves the target one more step on nearly empty counts, which is harmless.
        self.state.steps.store(0, Ordering::Relaxed);
        // Relaxed, the swaps and the target's store below: all sizing hints.
        let small_hits = self.state.small_hits.swap(0, Ordering::Relaxed);
        let main_hits = self.state.main_hits.swap(0, Ordering::Relaxed);
        let main_popped = self.state.main_popped.swap(false, Ordering::Relaxed);
        let share = self.small_share();
        let target = self.small_target();
        if small_hits == 0 && main_hits == 0 {
            // No evidence either way (writes without reads, or main never reached while small
            // runs over its target, as under a loop): keep the target, and if main went unseen
            // while small could still shrink, make the next step look at main's head so the
            // next window can judge it. (Probing a small queue already at one entry would only
            // cool main's items faster than a slow reuse can warm them: a loop through a
            // 10-entry cache lost its 0.9 % that way.)
            if !main_popped && target > 1 {
                self.state.probe_main.store(true, Ordering::Relaxed);
            }
            return;
        }
        let step = (size / 100).max(1);
        // Hits per slot, compared without division: small is cut back while it earns at most a
        // quarter of main's average (small_hits / target <= main_hits / main / 4). Main's
        // average overstates what its marginal slot earns (main holds the hottest keys): at 1×,
        // a Zipf stream whose hot set moves cut small back and lost 1.6 points of hit ratio;
        // at 4× nothing but a scan or a loop (where small earns nothing) cuts it back.
        let main = size.saturating_sub(target).max(1) as u128;
        let small_earns_little = u128::from(small_hits) * main * SMALL_YIELD_FACTOR
            <= u128::from(main_hits) * target as u128;
        let next = if small_earns_little {
            target.saturating_sub(step).max(1)
        } else {
            (target + step).min(share)
        };
        self.state.small_target.store(next, Ordering::Relaxed);
    }

    /// Lowers this shard's quota by `amount` if `allowed(quota, len)` holds. Returns whether it
    /// did.
    fn give_quota(&self, amount: usize, allowed: impl Fn(usize, usize) -> bool) -> bool {
        // Relaxed, as every quota access: a stale view only moves quota a little later.
        self.state
            .quota
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |quota| {
                (quota > amount && allowed(quota, self.len())).then(|| quota - amount)
            })
            .is_ok()
    }

    /// A fresh birth for a key of `weight` entering this shard. `index` is the shard's own
    /// index; a shard bounded by weight is the policy's only one, and keeps the weight's code
    /// in those bits instead (see "Weights" in the module docs).
    pub(crate) fn next_birth(&self, index: usize, weight: u64) -> u64 {
        // Relaxed: births only need to be unique, which the RMW guarantees (the sequence alone
        // is unique: the low bits never make two births equal or different).
        let seq = self.state.next_birth.fetch_add(1, Ordering::Relaxed);
        let low = if self.bounded_by_weight() {
            debug_assert_eq!(index, 0, "a weight-bounded policy has one shard");
            u64::from(weight_code(weight))
        } else {
            index as u64
        };
        (seq << SHARD_BITS) | low
    }

    /// Whether the shard is bounded by weight (it is then the policy's only shard).
    pub(crate) fn bounded_by_weight(&self) -> bool {
        self.max_weight != u64::MAX
    }

    /// Counts an item into or out of small's weight (a shard bounded by weight only).
    fn count_small(&self, item: &Item<K>, entering: bool) {
        if !self.bounded_by_weight() {
            return;
        }
        let weight = code_weight(item.birth as u8);
        // Relaxed: a sizing hint, as every counter of the policy.
        if entering {
            self.state.small_weight.fetch_add(weight, Ordering::Relaxed);
        } else {
            self.state.small_weight.fetch_sub(weight, Ordering::Relaxed);
        }
    }

    /// Whether an insert's eviction step that popped its own key's item from small must spare
    /// it and evict from main instead: the shard is bounded by weight, main has something to
    /// evict and small is not cut back. A length-bounded small never offers an insert its own
    /// key while main holds anything (it is popped only while over a target of at least one);
    /// a weight-bounded one does when the newcomer alone is heavier than small's share, and a
    /// key must not be evicted by its own insert while the cache holds others. (Under a loop
    /// or a scan small is cut back, and a newcomer is evicted like any other, as TinyLFU turns
    /// newcomers away.)
    pub(crate) fn spares_own_key(&self) -> bool {
        self.bounded_by_weight() && !self.main.is_empty() && !self.is_cut_back()
    }

    /// The admission weights of the items in small (a shard bounded by weight only).
    fn small_weight(&self) -> u64 {
        // Relaxed: a sizing hint. Each push is counted before its item is queued and each pop
        // after its item left, so the count does not dip below zero; it is read as signed
        // anyway, as `len` is, so a wrapped value could never pass for a huge small queue.
        (self.state.small_weight.load(Ordering::Relaxed) as i64).max(0) as u64
    }

    /// Small's share of a weight-bounded shard's bound, as the fraction `(part, whole)`: its
    /// target over ten times its largest target, so a tenth of the bound at full share, as
    /// small holds a tenth of an entry-bounded shard (see "Weights" in the module docs).
    fn small_weight_fraction(&self) -> (u128, u128) {
        (self.small_target() as u128, 10 * self.small_share() as u128)
    }

    /// Whether small holds more than its target: by length, or, for a shard bounded by weight,
    /// by weight (see "Weights" in the module docs).
    fn small_over_target(&self) -> bool {
        if !self.bounded_by_weight() {
            return self.small.len() > self.small_target();
        }
        let (part, whole) = self.small_weight_fraction();
        u128::from(self.small_weight()) * whole > part * u128::from(self.max_weight)
    }

    /// Accounts a new resident and queues it: into main if the ghost remembers its hash. While
    /// small is cut back, a key the ghost remembers is returned instead: it must win a duel
    /// against main's next victim (see "Scans" in the module docs), which needs the map.
    pub(crate) fn admit(&self, key: K, birth: u64, hash: u64, weight: u64) -> Option<Item<K>> {
        // Relaxed counters: they bound memory, they do not publish entries (the map does).
        self.state.len.fetch_add(1, Ordering::Relaxed);
        if self.weighed {
            self.state.weight.fetch_add(weight, Ordering::Relaxed);
        }
        let item = Item { key, birth };
        // While main is below its share (the cache is filling up), new keys go straight to main,
        // as quick_cache does: otherwise a cold start funnels everything through small, whose
        // FIFO evicts it all before any reuse longer than the cache can be seen (a loop larger
        // than the cache never gets a hit).
        let remembered = self.take_ghost(hash);
        let filling = if self.bounded_by_weight() {
            // Main's weight, the newcomer's included (counted above), within its share of the
            // bound (see "Weights" in the module docs).
            let (small, whole) = self.small_weight_fraction();
            let main = u128::from(self.weight().saturating_sub(self.small_weight()));
            main * whole <= u128::from(self.max_weight) * (whole - small)
        } else {
            self.main.len() + self.small_target() < self.quota()
        };
        if filling {
            self.main.push(item);
        } else if remembered && self.is_cut_back() {
            return Some(item);
        } else if remembered {
            self.main.push(item);
        } else {
            self.push(item, Queue::Small);
        }
        None
    }

    /// Accounts a resident removed by the policy (its item was consumed).
    pub(crate) fn forget(&self, weight: u64) {
        self.state.len.fetch_sub(1, Ordering::Relaxed);
        if self.weighed {
            self.state.weight.fetch_sub(weight, Ordering::Relaxed);
        }
    }

    /// Accounts a resident removed outside the policy: its item is now an orphan.
    pub(crate) fn forget_orphaned(&self, weight: u64) {
        self.forget(weight);
        self.state.orphans.fetch_add(1, Ordering::Relaxed);
    }

    /// Accounts an orphan item that was popped and dropped. The count may dip below zero for a
    /// moment (an item popped as an orphan before its remover counted it): it is read as signed.
    pub(crate) fn drop_orphan(&self) {
        self.state.orphans.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn adjust_weight(&self, old: u64, new: u64) {
        // Equal weights (every update of an unweighted tier) touch no shared counter.
        if new == old {
            return;
        }
        if new > old {
            self.state.weight.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.state.weight.fetch_sub(old - new, Ordering::Relaxed);
        }
    }

    // The counters wrap and are read as signed: a removal can be counted before the insert it
    // undoes (a delete racing the insert's `admit`), leaving a counter briefly "negative". Read
    // unsigned, that would look like a full shard and trigger a flush.

    pub(crate) fn len(&self) -> usize {
        (self.state.len.load(Ordering::Relaxed) as isize).max(0) as usize
    }

    pub(crate) fn weight(&self) -> u64 {
        if !self.weighed {
            return self.len() as u64;
        }
        (self.state.weight.load(Ordering::Relaxed) as i64).max(0) as u64
    }

    pub(crate) fn is_over_capacity(&self) -> bool {
        self.len() > self.quota() || self.weight() > self.max_weight
    }

    pub(crate) fn has_too_many_orphans(&self) -> bool {
        self.state.orphans.load(Ordering::Relaxed) as isize > (self.quota() / 2 + 16) as isize
    }

    /// The next eviction candidate: from small while it holds more than its share (by length, or
    /// by weight, see `small_over_target`), else main (and main's head when a window asked for
    /// a probe, see `count_step`).
    pub(crate) fn pop(&self) -> Option<(Item<K>, Queue)> {
        // Relaxed, as every flag of the sizing window: a lost or doubled probe moves one
        // eviction between the queues. The load first keeps the line shared when no probe is
        // asked, which is nearly always.
        let probe = self.state.probe_main.load(Ordering::Relaxed)
            && self.state.probe_main.swap(false, Ordering::Relaxed);
        let from_small = !probe && (self.small_over_target() || self.main.is_empty());
        let (first, second) = if from_small {
            ((&self.small, Queue::Small), (&self.main, Queue::Main))
        } else {
            ((&self.main, Queue::Main), (&self.small, Queue::Small))
        };
        let popped = first
            .0
            .pop()
            .map(|item| (item, first.1))
            .or_else(|| second.0.pop().map(|item| (item, second.1)));
        match &popped {
            Some((_, Queue::Main)) => self.note_main_popped(),
            Some((item, Queue::Small)) => self.count_small(item, false),
            None => {}
        }
        popped
    }

    /// Notes that main was popped in this window.
    fn note_main_popped(&self) {
        // Relaxed, as every counter of the window; a load first, so that a shard evicting from
        // main keeps the line shared instead of writing it on every step.
        if !self.state.main_popped.load(Ordering::Relaxed) {
            self.state.main_popped.store(true, Ordering::Relaxed);
        }
    }

    /// The head of one given queue (reaping walks each queue on its own).
    pub(crate) fn pop_from(&self, queue: Queue) -> Option<Item<K>> {
        match queue {
            Queue::Small => {
                let item = self.small.pop();
                if let Some(item) = &item {
                    self.count_small(item, false);
                }
                item
            }
            Queue::Main => {
                self.note_main_popped();
                self.main.pop()
            }
        }
    }

    /// Items queued in one queue (orphans included).
    pub(crate) fn queue_len(&self, queue: Queue) -> usize {
        match queue {
            Queue::Small => self.small.len(),
            Queue::Main => self.main.len(),
        }
    }

    pub(crate) fn push(&self, item: Item<K>, queue: Queue) {
        match queue {
            Queue::Small => {
                self.count_small(&item, true);
                self.small.push(item);
            }
            Queue::Main => self.main.push(item),
        }
    }

    /// The ghost slot of a hash. Not its low bits: those chose the shard, so within one shard
    /// they are the same for every key and would leave all but 1/shards of the slots unused.
    #[inline]
    fn ghost_slot(&self, hash: u64) -> usize {
        (hash.rotate_right(32) & self.ghost_mask) as usize
    }

    pub(crate) fn remember(&self, hash: u64) {
        // Relaxed: the ghost is a lossy hint; a missed or torn observation only changes which
        // queue a key enters.
        self.ghost[self.ghost_slot(hash)].store(hash | 1, Ordering::Relaxed);
    }

    fn take_ghost(&self, hash: u64) -> bool {
        let slot = &self.ghost[self.ghost_slot(hash)];
        slot.load(Ordering::Relaxed) == hash | 1
            && slot
                .compare_exchange(hash | 1, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
impl<K> Policy<K> {
    /// Whether the duel's sketch was allocated.
    pub(crate) fn has_sketch(&self) -> bool {
        !self.sketch.load(Ordering::Relaxed).is_null()
    }
}

#[cfg(test)]
impl<K> Shard<K> {
    /// Items in both queues (orphans included).
    pub(crate) fn queued(&self) -> usize {
        self.small.len() + self.main.len()
    }

    /// Small's counted weight, and the admission weights its items carry (walked once around;
    /// quiescent callers only).
    pub(crate) fn small_weight_and_items(&self) -> (u64, u64) {
        assert!(
            self.bounded_by_weight(),
            "only weight-bounded births carry weights"
        );
        let counted = self.small_weight();
        let mut carried = 0;
        for _ in 0..self.small.len() {
            let item = self.small.pop().expect("quiescent");
            carried += code_weight(item.birth as u8);
            self.small.push(item);
        }
        (counted, carried)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn weight_codes_are_exact_below_16_and_within_an_eighth_above() {
        for weight in 0..16 {
            assert_eq!(code_weight(weight_code(weight)), weight);
        }
        let mut last = 0;
        for weight in (16..1u64 << 34).step_by(9_973).chain([(1 << 34) - 1]) {
            let coded = code_weight(weight_code(weight));
            assert!(
                coded <= weight && coded * 8 >= weight * 7,
                "{weight} -> {coded}"
            );
            assert!(coded >= last, "monotone at {weight}");
            last = coded;
        }
        assert_eq!(weight_code(u64::MAX), 255);
    }

    fn quotas(policy: &Policy<u64>) -> Vec<usize> {
        policy.shards.iter().map(Shard::quota).collect()
    }

    fn fill(policy: &Policy<u64>, shard: usize, count: usize) {
        for key in 0..count as u64 {
            let birth = policy.shards[shard].next_birth(shard, 1);
            let _ = policy.shards[shard].admit(key, birth, key, 1);
        }
    }

    #[test]
    fn quota_moves_to_the_skewed_shard_and_back() {
        let policy: Policy<u64> = Policy::new(4 * 4096, u64::MAX, false);
        let count = policy.shards.len();
        if count < 2 {
            return; // one shard on this machine: nothing to rebalance
        }
        let (fair, chunk) = (policy.fair, policy.chunk);
        // Shard 0 over its quota takes unused quota; the total never grows.
        fill(&policy, 0, fair + 1);
        assert!(matches!(policy.rebalance(0), Rebalance::Took));
        assert_eq!(quotas(&policy)[0], fair + chunk);
        assert_eq!(quotas(&policy).iter().sum::<usize>(), 4 * 4096);
        // Shard 1, full and below its fair share, takes quota back from shard 0 (which must then
        // evict), even though shard 0 has no unused quota.
        fill(&policy, 0, chunk); // shard 0 now uses all of its quota
        for other in 1..count {
            let quota = policy.shards[other].quota();
            fill(&policy, other, quota);
        }
        // Lend shard 0 one more chunk of shard 1's quota, so shard 0 is above its fair share.
        assert!(policy.shards[1].give_quota(chunk, |_, _| true));
        policy.shards[0]
            .state
            .quota
            .fetch_add(chunk, Ordering::Relaxed);
        fill(&policy, 1, 1);
        let before = quotas(&policy);
        assert!(before[1] < fair);
        match policy.rebalance(1) {
            Rebalance::TookFrom(0) => {}
            _ => panic!("shard 1 below its fair share did not take quota from shard 0"),
        }
        assert_eq!(quotas(&policy)[1], before[1] + chunk);
        assert_eq!(quotas(&policy)[0], before[0] - chunk);
        assert_eq!(quotas(&policy).iter().sum::<usize>(), 4 * 4096);
        // Nothing left to take: a failed attempt is not repeated for a chunk of inserts.
        fill(&policy, 2, 1);
        assert!(matches!(policy.rebalance(2), Rebalance::Nothing));
        let after = policy.shards[2]
            .state
            .rebalance_after
            .load(Ordering::Relaxed);
        assert!(after > policy.shards[2].state.next_birth.load(Ordering::Relaxed));
    }
}
