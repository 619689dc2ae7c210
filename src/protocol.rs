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
//! - A write (`set`, `delete`, an invalidation) calls [`WriteStripes::begin`] before touching
//!   any layer: one `fetch_add(EPOCH_ONE + 1)`. The new epoch is the write's **version**; it is
//!   stored with the value in every layer and is monotonic per key. When the write has touched
//!   every layer, dropping the [`WriteToken`] does `fetch_sub(1)`.
//! - A promotion first takes a [`Ticket`]: it loads the word *before* reading the lower layer and
//!   gives up if any write is in flight. The ticket is valid while the word still equals what
//!   was loaded: no write has started since, and none was running.
//!
//! # The promotion itself (three steps, in the target tier)
//!
//! 1. **Insert pending.** Insert the value into the upper layer only if the key is absent there
//!    (or holds an expired node), with the `PENDING` bit set. Readers treat a pending node as
//!    absent and fall through to the lower layer, which is always allowed.
//! 2. **Validate.** After the insert, check that the ticket is still valid.
//! 3. **Publish or undo.** If valid, clear `PENDING`; otherwise remove exactly the node we
//!    inserted.
//!
//! # Why this is enough
//!
//! Let `W` be a write of the same key that *completed* before some reader `R` started, and `P` a
//! promotion whose value is older than `W`'s. We show `R` cannot read `P`'s value.
//!
//! - If `P`'s ticket was taken after `W` began, `P` either saw `W` in flight (no ticket) or saw
//!   `W` already finished; then `W`'s lower-layer write happened before `P`'s read (the ticket
//!   load reads `W`'s `fetch_sub`, which is SeqCst, so it synchronizes with it), and `P` read
//!   `W`'s value or a newer one, not an older one.
//! - Otherwise `P`'s ticket predates `W`'s `begin`. Look at the modification order of the upper
//!   layer's slot for the key, where both `P`'s insert and `W`'s upper-layer write (or removal)
//!   are read-modify-writes:
//!   - `W`'s slot operation comes first. Then `P`'s insert found `W`'s node (and aborted) or found
//!     the slot emptied by an eviction or expiry that came after `W`. Either way `P`'s insert
//!     reads from a release sequence that `W`'s slot write began, so `W`'s `begin` happens
//!     before `P`'s validation load (`fence(SeqCst)` after the insert makes the slot read an
//!     acquire even where papaya's ordering would not), and `P` sees the epoch moved: undo. A
//!     reader can meet the pending node in between, but never a published one. This is the
//!     ABA case: the invalidation marker may disappear, but the epoch cannot go back.
//!   - `P`'s insert comes first. Then `W`'s slot operation replaces or removes `P`'s node (its
//!     version is older than `W`'s, and a delete removes anything older), so after `W` the node
//!     is unreachable from the map. `R` starts after `W` completed, so its load of the slot
//!     is coherence-ordered after `W`'s operation and cannot return `P`'s node, published or not.
//! - Deletes are writes too, so contract 2 follows in the same way.
//!
//! A ticket is plain data (stripe index and the value seen), so a promotion can be **deferred**:
//! queued with its ticket and applied later by another thread. The argument above never uses
//! the time between the lower-layer read and the insert, so it holds unchanged; a deferred
//! promotion that waited past a write is simply undone. Because epochs never decrease, a ticket
//! cannot become valid again (no ABA on the stripe word: 44 bits of epoch per stripe).
//!
//! # Writes across layers
//!
//! Writes touch layers **deepest first, L1 last** (see `cache.rs`), and every layer keeps the
//! highest version it has seen for a key. So a value is visible in a faster layer only once
//! every slower writable layer holds it or something newer, and two concurrent writes of a key
//! leave every layer agreeing with the higher version once both return.
//!
//! Other keys on the same stripe only cost spurious ticket failures: a skipped promotion, never
//! a wrong value.

use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// Number of write stripes per cache (a power of two; a handful under loom, whose models
/// need few objects and where sharing a stripe only makes tickets stricter).
#[cfg(not(loom))]
pub const STRIPES: usize = 1024;
/// Number of write stripes per cache (a power of two).
#[cfg(loom)]
pub const STRIPES: usize = 4;
const IN_FLIGHT_BITS: u32 = 20;
const IN_FLIGHT_MASK: u64 = (1 << IN_FLIGHT_BITS) - 1;
const EPOCH_ONE: u64 = 1 << IN_FLIGHT_BITS;

/// The write versions of a key: higher is later.
pub type Version = u64;

/// The per-cache array of stripe words.
pub(crate) struct WriteStripes {
    words: Box<[CachePadded<AtomicU64>]>,
}

impl WriteStripes {
    pub(crate) fn new() -> Self {
        WriteStripes {
            words: (0..STRIPES)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
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
        let word = &self.words[Self::index(hash)];
        // SeqCst: the increment must be ordered before the write's layer operations for every
        // promotion that validates later (see the module docs).
        let before = word.fetch_add(EPOCH_ONE + 1, Ordering::SeqCst);
        WriteToken {
            word,
            version: (before >> IN_FLIGHT_BITS) + 1,
        }
    }

    /// A ticket for promoting the key with this hash, or `None` while a write of a key on the
    /// same stripe is in flight.
    pub(crate) fn ticket(&self, hash: u64) -> Option<Ticket<'_>> {
        let index = Self::index(hash);
        let word = &self.words[index];
        // SeqCst: synchronizes with the `fetch_sub` of every write that finished, so the lower
        // layer read that follows sees those writes.
        let seen = word.load(Ordering::SeqCst);
        (seen & IN_FLIGHT_MASK == 0).then_some(Ticket { word, index, seen })
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
            word: &self.words[index],
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

/// An in-flight write. Dropping it marks the write finished (also on unwinding, so a panicking
/// custom layer cannot disable promotion on its stripe forever).
pub(crate) struct WriteToken<'a> {
    word: &'a AtomicU64,
    version: Version,
}

impl WriteToken<'_> {
    pub(crate) fn version(&self) -> Version {
        self.version
    }
}

impl Drop for WriteToken<'_> {
    fn drop(&mut self) {
        // SeqCst: publishes the write's layer operations to the next ticket taker.
        self.word.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Permission to promote one key, valid while no write of the key's stripe has started since it
/// was taken. Layers that accept promotions must check [`Ticket::is_current`] after inserting the
/// promoted value in a state readers ignore, and only then make it visible (see the module docs).
#[derive(Clone, Copy)]
pub struct Ticket<'a> {
    word: &'a AtomicU64,
    index: usize,
    seen: u64,
}

impl Ticket<'_> {
    /// Whether no write of this key's stripe has started since the ticket was taken.
    #[inline]
    pub fn is_current(&self) -> bool {
        // SeqCst: see the module docs; callers issue `fence(SeqCst)` after their insert.
        self.word.load(Ordering::SeqCst) == self.seen
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
}
