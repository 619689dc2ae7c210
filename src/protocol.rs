//! The write/promotion protocol: how strata keeps its per-key contract while values move
//! between layers.
//!
//! # The contract
//!
//! Per key, within one cache:
//! 1. after `set(k, v)` returns, a `get(k)` that starts afterwards returns `v`, a value written
//!    later, or a miss (evicted or expired) — never an older value;
//! 2. after `delete(k)` returns, a `get(k)` that starts afterwards returns no value written
//!    before the delete;
//! 3. both hold while promotions, evictions and expirations run.
//!
//! # The race it must rule out
//!
//! A reader misses L1, reads an old value `v0` from L2 and decides to promote it. Meanwhile a
//! `set(k, v1)` (or a `delete`) writes both layers and returns. Then the reader inserts `v0`
//! into L1, where it lives for a whole TTL: contract 1 broken. The seed, gocache, JetCache and
//! EasyCaching all have this bug. Its ABA variant: the writer's trace in L1 (its value, a
//! tombstone) is evicted or expires before the promotion lands, so "insert only if absent"
//! alone does not help.
//!
//! # Write stripes
//!
//! Every key hashes to one of [`STRIPES`] cache-padded `AtomicU64` words. A word holds
//!
//! ```text
//!   bits 63..20: epoch      — bumped by every write (set, delete) that starts on the stripe
//!   bits 19..0 : in flight  — writes on the stripe that have started and not finished
//! ```
//!
//! - A write (`set`, `delete`, an invalidation) calls `WriteStripes::begin` before touching
//!   any layer: one `fetch_add(EPOCH_ONE + 1)` followed by `fence(SeqCst)`. The new epoch is the
//!   write's **version**; it is stored with the value in every layer and is monotonic per key.
//!   When the write has touched every layer, dropping the `WriteToken` does `fetch_sub(1)`.
//!   (A single-key write of a one-layer cache takes no token at all: see "One layer" below.)
//! - A promotion first takes a [`Ticket`]: it loads the word *before* reading the lower layer and
//!   gives up if any write is in flight. The ticket is valid while the word still equals what
//!   was loaded: no write has started since, and none was running.
//! - A write gives each layer a *write ticket*: its version and stripe. `is_current()` on it
//!   means "no later write of the stripe has begun" — a strict rule a custom layer may use.
//!   strata's memory tier uses a finer one: per-stripe **floors**, the highest version it
//!   removed (evicted, expired, deleted, invalidated) for any key of the stripe. A write may
//!   insert a key the tier does not hold only if its version is above the floor.
//!
//! # Inserting a key a layer does not hold (promotions, and writes)
//!
//! 1. **Insert pending.** Insert the value only if the key is absent there (or holds an expired
//!    node of an older version), with the `PENDING` bit set. Readers treat a pending node as
//!    absent and fall through to the next layer, which is always allowed.
//! 2. **Validate.** `fence(SeqCst)`, then check the ticket: for a promotion, that it is still
//!    current; for a write, that its version is above the stripe's floor.
//! 3. **Publish or undo.** If valid, clear `PENDING`; otherwise remove exactly the node we
//!    inserted.
//!
//! strata's memory tier runs these three steps for promotions only. A write into a place its
//! key left checks the floor while it holds the key's bucket lock, which every removal of the
//! key takes after raising the floor, and links a node that is visible at once: the lock
//! orders the check against the removal, as the fences below do for a layer without one
//! (`floors.rs`, "Under a lock of the key").
//!
//! Replacing a node that is present needs none of this: the version comparison decides. The
//! memory tier may also overwrite a present word value in place (`memory/value.rs`); it does so
//! under the key's bucket lock, which every removal takes too, so a removal either sees the
//! overwrite's version (and raises the floor to it) or the overwrite does not find the node.
//! A version read without that lock beside an overwritten value may be the other write's;
//! only promotions read versions so, and a read that overlapped a write yields no valid ticket.
//!
//! A delete raises the floor, then removes the key's node (the memory tier unlinks it from its
//! map): the next write or promotion of the key is an insert into an emptied place, a
//! promotion's through the three steps above, a memory tier's write through its floor check
//! under the bucket lock. Comparing versions is not possible there, and not enough anyway: a
//! later delete that finds the key already gone only raises the floor.
//!
//! # Why this is enough
//!
//! Let `W` be a write of the key that *completed* before some reader `R` started, and `P` an
//! insert (a promotion, or a slower write) of a value older than `W`'s. We show `R` cannot read
//! `P`'s value.
//!
//! - If `P`'s ticket was taken after `W` began: a promotion ticket either saw `W` in flight (no
//!   ticket) or saw `W` finished; the ticket load reads from `W`'s SeqCst `fetch_sub`, so `W`'s
//!   lower-layer write happened before `P`'s read, and `P` read `W`'s value or a newer one. A
//!   write ticket is never taken after a newer write began (versions are taken in order).
//! - Otherwise `P`'s ticket predates `W`'s `begin`. Consider `W`'s operation on the layer `P`
//!   inserts into (a replace, a removal, or a load that found the key absent) and `P`'s insert:
//!   - `W`'s operation reads or replaces `P`'s node: a replace or removal makes it unreachable
//!     (its version is older than `W`'s; a delete removes anything older), so `R`, whose load is
//!     ordered after `W`'s operation, cannot return it. In the memory tier a write whose floor
//!     check refuses it in a place holding `P`'s pending node removes that node too
//!     (`MemoryLayer::set_in`), so it is a removal, not a read. A plain load cannot have seen it
//!     published before `W` completed without `P`'s validation running first, which is the next
//!     case.
//!   - `W`'s operation does not see `P`'s node. For a promotion, `P` (insert; fence; load
//!     stripe) and `W` (RMW stripe; fence; operate on the slot) run the store-buffering pattern
//!     with SeqCst fences on both sides: they cannot both miss each other, so `P`'s validation
//!     load sees `W`'s `begin` and `P` undoes its insert. For a slower write `P`, the pattern is
//!     between `P` (insert; fence; load floor) and whoever emptied the slot after `W` (raise the
//!     floor to at least `W`'s version; fence; remove — an eviction or expiry of `W`'s node, or
//!     `W`'s own delete or invalidation): `P` sees the raised floor and undoes, and a reader may
//!     meet the pending node meanwhile, never a published one. (In the memory tier both sides
//!     hold the key's bucket lock instead: `P` checks before it links, the remover raises
//!     before it unlocks, and whichever locks second sees the other.) This covers the ABA
//!     case: `W`'s trace in the layer may be evicted or expire before `P` lands, but neither
//!     the epoch nor a floor goes back.
//! - Deletes are writes too, so contract 2 follows in the same way.
//!
//! A ticket is plain data (stripe index and the value seen, one bit marking its kind), so a promotion can be
//! **deferred**: queued with its ticket and applied later by another thread. The argument never
//! uses the time between the lower-layer read and the insert, so it holds unchanged; a deferred
//! promotion that waited past a write is simply undone.
//!
//! # Promotions that publish late, and reads that span a write (linearizability)
//!
//! The argument above is about writes that *completed* before a read started: the contract.
//! With one writer per key at a time strata promises more, linearizability: reads never see a
//! new value and then, later, an older one. A write in flight makes two gaps visible, both
//! found by the long history runs (`STRATA_HISTORY_OPS=10000000`, about one run in twenty):
//!
//! 1. **A promotion that validated just before a write began, and publishes after.**
//!    Validation (a load of the stripe word) and publication (clearing `PENDING`) are two
//!    steps. A promoter `P` validates; the write `W` begins and writes L2; a reader skips `P`'s
//!    still-pending L1 node and returns `W`'s value from L2; `P` publishes the old value into
//!    L1; a later reader returns it: new, then old. So a promoter *announces* itself on the
//!    stripe (`Ticket::announce`, a counter beside the word) before its insert, and withdraws
//!    after publishing or undoing; a write, right after `begin` and before touching any
//!    layer, loads that counter and, if it is not zero, marks the key's pending node in each
//!    in-memory tier above the deepest layer *cancelled* (a bit in the node's `meta`). A
//!    promotion publishes with a compare-exchange that fails on a cancelled node, and then
//!    undoes. Either the write's load sees the announcement (then its probe of the slot either
//!    sees the pending node and cancels it, or misses it, and by the store-buffering argument
//!    above the promoter's validation sees the write's `begin`), or it does not (then the
//!    announcement, and the insert after it, come later in the SeqCst order than the write's
//!    `begin`, and validation fails). A promotion that published before the cancellation
//!    published before the write touched any layer, which is a linearizable order.
//! 2. **A read that spans a write.** A reader misses L1 just before the previous write's copy
//!    lands there, then finds the next write's value in L2 while that write is in flight; a
//!    later reader sees the previous value in L1. The read's ticket (taken after its L1 read,
//!    before its first lower-layer read; promotions take the same one) tells it whether a
//!    write was in flight or began meanwhile. If so and a lower layer served the value, the
//!    layers above are read once more, top down, and the first value found is returned
//!    (`recheck_above` in `engine/read.rs`). After the write's `begin`, no value older than
//!    what those layers hold can appear in them (promotions are cancelled or fail their
//!    tickets, and the one writer is busy), so one more pass is enough.
//!
//! A custom layer that accepts promotions gets the contract, not linearizability, unless it
//! makes its validation and publication one atomic step. Misses constrain nothing here: a
//! miss is always allowed, since eviction can drop any entry at any time.
//!
//! Promoted entries keep the source entry's version, clamped to the ticket's epoch
//! ([`Ticket::version`]): a layer that reports versions of its own cannot make later writes of this
//! cache look older.
//!
//! # Writes across layers
//!
//! Writes touch layers **deepest first, L1 last** (see `engine/write.rs`), and every layer keeps the
//! highest version it holds for a key. So a value is visible in a faster layer only once every
//! slower writable layer holds it or something newer, and two concurrent writes of a key leave
//! every layer agreeing with the higher version once both return — also when one layer dropped
//! the newer value meanwhile, because the older write's insert into the emptied slot fails its
//! write ticket (in the memory tier, the floor the removal raised, checked under the bucket
//! lock).
//!
//! # What the argument assumes
//!
//! - Of the map (the chained table, `memory/table/chained.rs`; the loom stand-in trivially):
//!   an insert, replace or removal of one key is a single atomic step (under the key's bucket
//!   lock, so the writes of a key are totally ordered); a read that returns a node
//!   synchronizes with the write that stored it, and a read that starts after a write of its
//!   key returned sees that write or a later one; a node's memory is not reused while a reader
//!   that could hold it is pinned, so a node's address names it under a guard; `compute`
//!   calls its closure exactly once. The table's own loom models check the last two
//!   (`loom-tests/tests/table.rs`).
//! - Of layers: a custom [`Layer`](crate::layer::Layer) that cannot insert-then-validate may accept
//!   writes without a ticket; racing writes of one key may then leave it holding an older value.
//! - Of overlapping writes: the contract is weaker than linearizability when two writes of one
//!   key overlap in time. Writes go deepest layer first, so while both are in flight a reader
//!   falling through to a lower layer can see the newer one, and a later reader the older one
//!   in an upper layer, before the newer one overwrites it there. Once both have returned every
//!   layer agrees on the newer one, and no reader sees a value older than one whose write had
//!   returned before the read started — which is the contract. `tests/history.rs` checks full
//!   linearizability for histories with one writer per key at a time (see "Promotions that
//!   publish late" above), the contract otherwise.
//! - Of writes: the contract covers writes that returned `Ok`. A write that returned
//!   `Error::Incomplete` with a layer that could be neither written nor invalidated may leave
//!   that layer serving an older value once the faster layers drop the new one; the error says
//!   which layer.
//! - Of versions: they are per cache instance, from 0 at construction. A layer shared by several
//!   caches (or surviving a restart) must not compare versions across instances. The epoch has
//!   44 bits per stripe: at ten million writes per second on one single stripe it wraps after
//!   about 20 days; with writes spread over the stripes, after decades.
//!
//! # One layer: the bucket lock orders everything
//!
//! A cache of one memory layer has nowhere to promote from. The read path takes its ticket
//! just before its first read below L1, and there is none; no promotion is queued, announced
//! or validated, and no read spans layers. And no other layer holds a copy that must agree
//! with the tier's. Everything the stripe word orders a write against is a promoter's ticket,
//! validation or announcement; everything versions and floors order is a write's effects
//! across layers, or a late insert into a place a newer removal emptied, which matters only
//! because another layer may hold the newer state.
//!
//! In such a cache every write and removal of a key takes the key's bucket lock, and reads
//! load the chain that the last lock holder left (see `memory/table/chained.rs`). So the
//! lock alone orders a key's writes, deletes and removals, and a read sees the state after
//! the last of them before its load: each operation takes effect at one instant inside its
//! call. Two writes of a key that overlap are ordered by who takes the lock last, and the
//! value left is the later one's; a set that returned before a read began is in place or
//! overwritten by a later write; a delete that returned left the key absent until a later
//! write. That is the contract (and per-key linearizability, which the history checker's
//! one-layer runs enforce), with no version compared.
//!
//! So the engine makes the tier of such a cache *sole* (`MemoryLayer::make_sole`): it
//! compares no versions and keeps no floors, and a single-key write of the cache (the write
//! path's shortcut, `Engine::set_alone`, `delete_alone`) takes no write token at all: no
//! version, no in-flight mark, no fence. A one-tier overwrite is then one locked instruction,
//! the bucket lock; a delete is the bucket lock and the shard's counters. Writes with options
//! still begin on the stripes (their tokens carry versions the sole tier ignores), and mix
//! with the shortcut's on one key, since the lock orders them all.
//!
//! The loom contract models `one_layer_shortcut_set_racing_delete` and
//! `one_layer_shortcut_and_general_writes_mix` run this path, and the history checker's
//! one-layer configurations enforce linearizability on it, shared writes included. Two broken twins put its halves where they do not belong,
//! a cache of two layers: `Broken::WriteWithoutInFlight` (writes that mark nothing in flight)
//! lets loom find a promotion racing a delete publishing the deleted value, and
//! `Broken::SoleTierWithLayersBelow` (an L1 that compares no versions) lets it find two racing
//! sets leaving L1 and L2 with different values.
//!
//! Other keys on the same stripe only cost spurious ticket failures: a skipped promotion or a
//! write that is not cached in a layer (as if evicted at once), never a wrong value. Such a
//! write is reported in `WriteReport::dropped`, not `written`, and counted in
//! `LayerStats::dropped_writes` (a few in 100 000 writes under two-thread contention with
//! deletes, `tests/defects.rs`).

use crate::sync::{broken, fence, Arc, AtomicU64, Broken, Ordering};
use crossbeam_utils::CachePadded;

/// Number of write stripes per cache (a power of two; a handful under loom, whose models
/// need few objects and where sharing a stripe only makes tickets stricter).
#[cfg(not(loom))]
pub const STRIPES: usize = 1024;
/// Number of write stripes per cache (a power of two).
#[cfg(loom)]
pub const STRIPES: usize = 4;
// A write token keeps its stripe's index in a `u32`.
const _: () = assert!(STRIPES <= u32::MAX as usize);
const IN_FLIGHT_BITS: u32 = 20;
const IN_FLIGHT_MASK: u64 = (1 << IN_FLIGHT_BITS) - 1;
const EPOCH_ONE: u64 = 1 << IN_FLIGHT_BITS;
/// The bit of a ticket's `seen` that marks a write ticket (see [`Ticket`]).
const WRITE_TICKET: u64 = 1;

/// A ticket's version from its `seen` field: the epoch for a ticket on a stripe, the field
/// itself for one on none.
#[inline]
fn version_of(on_stripe: bool, seen: u64) -> Version {
    if on_stripe {
        seen >> IN_FLIGHT_BITS
    } else {
        seen
    }
}

/// The write versions of a key: higher is later.
pub type Version = u64;

/// One write stripe: the epoch/in-flight word, and the number of promotions of the stripe that
/// are between their insert and their publication (see "Promotions that publish late" in the
/// module docs). Both on one padded line: a write that bumped the word owns the line when it
/// loads the count.
pub(crate) struct Stripe {
    word: AtomicU64,
    publishing: AtomicU64,
}

/// The stripes of one cache, shared with every [`OwnedTicket`] that outlives a call.
type StripeArray = Arc<[CachePadded<Stripe>]>;

/// The per-cache array of stripes.
pub(crate) struct WriteStripes {
    words: StripeArray,
}

impl WriteStripes {
    pub(crate) fn new() -> Self {
        WriteStripes {
            words: (0..STRIPES)
                .map(|_| {
                    CachePadded::new(Stripe {
                        word: AtomicU64::new(0),
                        publishing: AtomicU64::new(0),
                    })
                })
                .collect(),
        }
    }

    #[inline]
    fn index(hash: u64) -> usize {
        // The high bits: the low ones pick the policy shard and the ghost slot.
        (hash >> 40) as usize & (STRIPES - 1)
    }

    /// Starts a write of the key with this hash; the token carries its version.
    pub(crate) fn begin(&self, hash: u64) -> WriteToken<'_> {
        let index = Self::index(hash);
        let stripe = &*self.words[index];
        let owner = &self.words;
        if broken(Broken::WriteWithoutInFlight) {
            // The broken twin of the sole tier's writes, which mark nothing in flight (see
            // "One layer" in the module docs), in a cache with a layer to promote from: a
            // version, no in-flight mark, no fence.
            let before = stripe.word.fetch_add(EPOCH_ONE, Ordering::SeqCst);
            return WriteToken {
                stripe,
                owner,
                index: index as u32,
                version: (before >> IN_FLIGHT_BITS) + 1,
                in_flight: false,
            };
        }
        let before = stripe.word.fetch_add(EPOCH_ONE + 1, Ordering::SeqCst);
        // The increment must be ordered before *every* layer operation of the write, including
        // plain loads (a delete that finds the key absent only loads). A SeqCst RMW orders later
        // SeqCst operations, not later acquire loads, so a fence completes the store-buffering
        // pattern with the promoter's fence (see the module docs).
        fence(Ordering::SeqCst);
        debug_assert!(
            before & IN_FLIGHT_MASK < IN_FLIGHT_MASK,
            "in-flight field overflow"
        );
        WriteToken {
            stripe,
            owner,
            index: index as u32,
            version: (before >> IN_FLIGHT_BITS) + 1,
            in_flight: true,
        }
    }

    /// A ticket for promoting the key with this hash, or `None` while a write of a key on the
    /// same stripe is in flight.
    pub(crate) fn ticket(&self, hash: u64) -> Option<Ticket<'_>> {
        let index = Self::index(hash);
        let stripe = &*self.words[index];
        // SeqCst: synchronizes with the `fetch_sub` of every write that finished, so the lower
        // layer read that follows sees those writes.
        let seen = stripe.word.load(Ordering::SeqCst);
        (seen & IN_FLIGHT_MASK == 0).then_some(Ticket {
            stripe: Some(stripe),
            owner: Some(&self.words),
            index,
            seen,
        })
    }

    /// A ticket as plain data, for a promotion that is queued and applied later.
    pub(crate) fn detach(&self, ticket: &Ticket<'_>) -> RawTicket {
        RawTicket {
            index: ticket.index,
            seen: ticket.seen,
        }
    }

    /// The ticket a [`RawTicket`] stands for.
    pub(crate) fn attach(&self, raw: RawTicket) -> Ticket<'_> {
        let index = raw.index & (STRIPES - 1);
        Ticket {
            stripe: Some(&self.words[index]),
            owner: Some(&self.words),
            index,
            seen: raw.seen,
        }
    }
}

/// A detached [`Ticket`]: the stripe and the word value seen. Validating it later is exactly as
/// safe as validating it at once, because stripe words never decrease.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawTicket {
    index: usize,
    seen: u64,
}

/// An in-flight write. Dropping a token from [`WriteStripes::begin`] marks the write finished
/// (also on unwinding, so a panicking custom layer cannot disable promotion on its stripe
/// forever).
///
/// 32 bytes: a batch keeps one per key in flight.
pub(crate) struct WriteToken<'a> {
    stripe: &'a Stripe,
    owner: &'a StripeArray,
    version: Version,
    /// The stripe's index (below [`STRIPES`]).
    index: u32,
    /// Whether the write is counted in the stripe's in-flight field: always, but in the broken
    /// twin `Broken::WriteWithoutInFlight`.
    in_flight: bool,
}

impl WriteToken<'_> {
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    /// Whether a promotion of this stripe may be between its insert and its publication. When
    /// it is, the write must cancel pending promotions of its key in the layers above the
    /// deepest one it touches before it touches any layer (see "Promotions that publish late").
    /// SeqCst, after `begin`'s fence: either this load sees the promotion's announcement, or
    /// the promotion's validation sees this write's `begin`.
    pub(crate) fn promotions_publishing(&self) -> bool {
        self.stripe.publishing.load(Ordering::SeqCst) != 0
    }

    /// The ticket a layer validates a write's insert of an *absent* key with: current while no
    /// later write of the stripe has begun (the epoch is still this write's version; writes that
    /// began earlier may still be in flight).
    pub(crate) fn ticket(&self) -> Ticket<'_> {
        Ticket {
            stripe: Some(self.stripe),
            owner: Some(self.owner),
            index: self.index as usize,
            seen: (self.version << IN_FLIGHT_BITS) | WRITE_TICKET,
        }
    }
}

impl Drop for WriteToken<'_> {
    fn drop(&mut self) {
        if self.in_flight {
            // SeqCst: publishes the write's layer operations to the next ticket taker.
            self.stripe.word.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Permission to make an inserted value visible, valid while no conflicting write of the key's
/// stripe has begun since it was taken:
///
/// - a **promotion** ticket: no write of the stripe began, and none was in flight, since the
///   lower layer was read;
/// - a **write** ticket (passed to [`Layer::set`](crate::layer::Layer::set)): no *later* write of the
///   stripe began since this write did.
///
/// A layer that inserts a key it did not hold must do so in a state readers ignore, then check
/// [`Ticket::is_current`], and only then make the value visible, or else remove exactly what it
/// inserted (see the module docs).
#[derive(Clone, Copy)]
pub struct Ticket<'a> {
    /// `None`: a ticket that is always current (direct use of a layer, outside any cache).
    stripe: Option<&'a Stripe>,
    /// The array `stripe` lives in, for [`Ticket::owned`].
    owner: Option<&'a StripeArray>,
    index: usize,
    /// With a stripe: the stripe word seen, its lowest bit replaced by [`WRITE_TICKET`] for a
    /// write ticket (the in-flight field of a seen word is zero for a promotion ticket, and
    /// ignored for a write ticket, so the bit is free). Without one: the ticket's version.
    seen: u64,
}

impl Ticket<'_> {
    /// A ticket that is always current: for using a layer directly, outside a cache, where no
    /// concurrent write has to be ordered against (and the write shortcut's for a cache's sole
    /// tier, which orders its writes by its bucket locks; see "One layer" above).
    pub const fn unconditional() -> Ticket<'static> {
        Ticket {
            stripe: None,
            owner: None,
            index: 0,
            seen: Version::MAX,
        }
    }

    /// A write ticket of the given version on no stripe, for unit tests of layers.
    #[cfg(test)]
    pub(crate) const fn detached_write(version: Version) -> Ticket<'static> {
        Ticket {
            stripe: None,
            owner: None,
            index: 0,
            seen: version,
        }
    }

    /// Whether no conflicting write of this key's stripe has begun since the ticket was taken.
    #[inline]
    pub fn is_current(&self) -> bool {
        match self.stripe {
            // SeqCst: see the module docs; callers issue `fence(SeqCst)` after their insert.
            Some(stripe) => {
                // A promotion ticket: the whole word, in-flight field included, is unchanged.
                // A write ticket: the epoch is unchanged (writes that began earlier may still
                // be in flight).
                let mask = if self.seen & WRITE_TICKET != 0 {
                    !IN_FLIGHT_MASK
                } else {
                    u64::MAX
                };
                stripe.word.load(Ordering::SeqCst) & mask == self.seen & !WRITE_TICKET
            }
            None => true,
        }
    }

    /// Announces a promotion that is about to insert a pending entry, until the returned guard
    /// is dropped (after the entry was published or removed). Writes that begin meanwhile on
    /// the stripe cancel the key's pending promotions before touching any layer, so a promotion
    /// that validated its ticket just before a write began cannot publish after the write's
    /// new value became visible below (see "Promotions that publish late" in the module docs).
    pub(crate) fn announce(&self) -> Announcement<'_> {
        if let Some(stripe) = self.stripe {
            // SeqCst: before the insert; pairs with `WriteToken::promotions_publishing`.
            stripe.publishing.fetch_add(1, Ordering::SeqCst);
        }
        Announcement {
            stripe: self.stripe,
        }
    }

    /// For a write ticket, the write's version. For a promotion ticket, the highest version the
    /// promoted value may carry: the stripe's epoch when the ticket was taken (a promotion clamps
    /// the source entry's version to it, so a layer that reports versions of its own, such as a
    /// database's timestamps, cannot make later writes of this cache look older).
    /// [`Version::MAX`] for an unconditional ticket.
    pub fn version(&self) -> Version {
        version_of(self.stripe.is_some(), self.seen)
    }
}

impl Ticket<'_> {
    /// The write stripe of the key (`None` for an unconditional ticket). Versions are only
    /// comparable within one stripe: a layer that keeps per-stripe state (the memory tier's
    /// floors) indexes it with this.
    pub fn stripe(&self) -> Option<usize> {
        self.stripe.map(|_| self.index)
    }
}

impl Ticket<'_> {
    /// The ticket as an owned value that can outlive the call it was given to: for a layer that
    /// applies a write later (a write-behind queue, an async client) and must still validate
    /// it then. Validating it later is exactly as safe as validating it at once, because stripe
    /// words never decrease. Costs a reference count increment on the cache's stripe array.
    pub fn owned(&self) -> OwnedTicket {
        OwnedTicket {
            owner: self.owner.cloned(),
            index: self.index,
            seen: self.seen,
        }
    }
}

/// A [`Ticket`] that owns a share of its cache's stripes, so it can be kept beyond the call
/// (see [`Ticket::owned`]).
#[derive(Clone)]
pub struct OwnedTicket {
    owner: Option<StripeArray>,
    index: usize,
    /// As in [`Ticket`].
    seen: u64,
}

impl OwnedTicket {
    /// The ticket, borrowed back: what a layer's validation steps take.
    pub fn ticket(&self) -> Ticket<'_> {
        Ticket {
            stripe: self.owner.as_ref().map(|owner| &*owner[self.index]),
            owner: self.owner.as_ref(),
            index: self.index,
            seen: self.seen,
        }
    }

    /// See [`Ticket::is_current`].
    pub fn is_current(&self) -> bool {
        self.ticket().is_current()
    }

    /// See [`Ticket::version`].
    pub fn version(&self) -> Version {
        version_of(self.owner.is_some(), self.seen)
    }
}

impl std::fmt::Debug for OwnedTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnedTicket(epoch {})", self.seen >> IN_FLIGHT_BITS)
    }
}

/// A promotion between its insert and its publication (see [`Ticket::announce`]).
pub(crate) struct Announcement<'a> {
    stripe: Option<&'a Stripe>,
}

impl Drop for Announcement<'_> {
    fn drop(&mut self) {
        if let Some(stripe) = self.stripe {
            // SeqCst: after the publication or the undo; a write that reads the count at zero
            // is ordered after it.
            stripe.publishing.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for Ticket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket(epoch {})", self.seen >> IN_FLIGHT_BITS)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_tickets_see_writes() {
        let stripes = WriteStripes::new();
        let ticket = stripes.ticket(7).expect("no write in flight");
        assert!(ticket.is_current());
        let first = stripes.begin(7);
        assert!(stripes.ticket(7).is_none(), "a write is in flight");
        assert!(!ticket.is_current());
        let v1 = first.version();
        drop(first);
        let second = stripes.begin(7);
        assert!(second.version() > v1);
        drop(second);
        let later = stripes.ticket(7).expect("writes finished");
        assert!(later.is_current());
        assert!(
            !ticket.is_current(),
            "an old ticket never becomes valid again"
        );
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_write_token_stays_four_words() {
        assert_eq!(std::mem::size_of::<WriteToken<'_>>(), 32);
    }

    #[test]
    fn an_owned_ticket_validates_like_the_borrowed_one_after_the_stripes_are_gone() {
        let stripes = WriteStripes::new();
        let owned = stripes.ticket(9).expect("no write in flight").owned();
        let token = stripes.begin(9);
        let write = token.ticket().owned();
        assert!(!owned.is_current(), "a write began");
        assert!(write.is_current(), "no later write began");
        assert_eq!(write.version(), token.version());
        drop(token);
        drop(stripes);
        // The tickets keep the stripes alive.
        assert!(!owned.ticket().is_current());
        assert!(write.is_current());
        assert!(Ticket::unconditional().owned().is_current());
    }
}
