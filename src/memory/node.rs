//! One entry of the in-memory tier, as stored in the map.
//!
//! A node is immutable once published except for its `meta` byte and, for values that are one
//! machine word, its value, version and expiry: a new value for a key is either stored into the
//! node in place (a word, the same weight and stripe, an expiry no earlier than the node's,
//! under the bucket lock; see `value.rs`) or a new node that replaces the old one in the map
//! (the table links it in the old one's place).
//!
//! # Expiry and value, read together
//!
//! An in-place overwrite stores the version (relaxed), then the value and then the expiry (each
//! release); a reader loads the expiry (acquire), decides liveness from it, and only then loads the value.
//! So a reader that sees the new expiry sees the new value, and one that sees the old expiry
//! holds the old value or the new one. The new expiry is never earlier than the old
//! (`MemoryLayer::in_place` requires it), so the pair a reader acts on never makes a value
//! live past its own expiry: at worst the new value is judged by the old, earlier expiry, a
//! miss while the write is in flight, which linearises before the write. The broken twin
//! `in_place_expiry_stored_first_is_caught` stores the expiry first and loom finds a reader
//! returning the old value after its expiry. A reader that finds the node expired removes it
//! only if it is still expired under the bucket lock (an overwrite may have extended it
//! meanwhile; `MemoryLayer::remove_expired`). A version read beside an overwritten word may be
//! the previous write's, which only a promotion reads, and its ticket fails whenever a write
//! overlapped its read (see [`Node::version`]).
//!
//! A delete unlinks the key's node (the tier once left a *dead* node in its place for papaya,
//! which never reused a removed key's slot; the chained table leaves nothing behind a removal,
//! PERF.md §7 and §12).
//!
//! `meta` encoding (one byte, the entry's own access bits):
//!
//! | bits | meaning |
//! |------|---------|
//! | 0–1  | S3-FIFO access frequency, saturating at 3 |
//! | 6    | `CANCELLED`: a write of the key began while the node was pending; a promotion's node so marked is never published |
//! | 7    | `PENDING`: inserted by a promotion that has not been validated yet; readers treat it as absent |

use super::value::Value;
use crate::clock::Timestamp;
use crate::sync::{broken, AtomicU64, AtomicU8, Broken, Ordering};

pub(crate) const FREQ_MASK: u8 = 0b0000_0011;
pub(crate) const PENDING: u8 = 0b1000_0000;
pub(crate) const CANCELLED: u8 = 0b0100_0000;

/// `repr(C)` keeps what a read hit touches (the value, the expiry and the access bits) right
/// after the key, which the table's link holds just before the node: with the default field
/// order the access byte landed at the far end of the entry, so a hit could touch two cache
/// lines. (The effect on the read benchmarks was within this machine's noise; the order costs
/// nothing.)
///
/// 40 bytes for a `u64` value: `meta`, `stripe` and the `u32` weight share one word.
#[repr(C)]
pub(crate) struct Node<V> {
    value: Value<V>,
    /// The expiry's milliseconds ([`Timestamp::NEVER`]'s for none). Atomic because an in-place
    /// overwrite may move it later (see the module docs and [`Node::expires_at`]).
    expires_at: AtomicU64,
    pub(crate) meta: AtomicU8,
    /// The write stripe of the key ([`NO_STRIPE`] for a node written outside a cache), which
    /// indexes the tier's floors when the node is removed.
    pub(crate) stripe: u16,
    /// The entry's weight, saturated at `u32::MAX` (see [`clamp_weight`]).
    weight: u32,
    /// The write version this value carries (see `protocol`). Per key, a higher version is a
    /// later write. Atomic because an in-place overwrite changes it (see [`Node::version`]).
    version: AtomicU64,
    /// The policy's identity of this key's residency: `(sequence << SHARD_BITS) | shard`, or
    /// `| weight code` in a weight-bounded policy (see "Weights" in `policy.rs`).
    /// Carried over when a value is replaced in place; a queue item whose birth differs from
    /// the node's is stale.
    pub(crate) birth: u64,
}

/// The weight a node records: the weigher's figure, saturated at `u32::MAX`. The tier accounts
/// every node with the weight it records, so the totals stay exact; an entry heavier than
/// `u32::MAX` units counts as `u32::MAX` against the bound.
pub(crate) fn clamp_weight(weight: u64) -> u64 {
    weight.min(u64::from(u32::MAX))
}

/// The stripe of a node written with an unconditional ticket.
pub(crate) const NO_STRIPE: u16 = u16::MAX;

/// A write stripe as a node records it.
#[inline]
pub(crate) fn stripe_code(stripe: Option<usize>) -> u16 {
    stripe.map_or(NO_STRIPE, |s| s as u16)
}

impl<V: Clone + 'static> Node<V> {
    pub(crate) fn new(
        value: V,
        version: u64,
        expires_at: Timestamp,
        birth: u64,
        weight: u64,
        stripe: Option<usize>,
        meta: u8,
    ) -> Self {
        Node {
            value: Value::new(value),
            version: AtomicU64::new(version),
            expires_at: AtomicU64::new(expires_at.0),
            birth,
            weight: clamp_weight(weight) as u32,
            stripe: stripe_code(stripe),
            meta: AtomicU8::new(meta),
        }
    }

    /// The value, whatever the node's state (a clone; a word value: one atomic load).
    #[inline]
    pub(crate) fn value(&self) -> V {
        self.value.get()
    }

    /// The write version of the value.
    ///
    /// Relaxed. Under the key's bucket lock (writes, promotions, removals and their floors) the
    /// lock orders it. Read without the lock, beside the value, only by reads that may promote
    /// the entry: an in-place overwrite stores the version and then the word, so such a read
    /// may pair a word with the other write's version only while a write of the key is in
    /// flight, and a promotion made from a read that overlapped a write never publishes (its
    /// ticket was refused or is no longer current; see `protocol`).
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// When the value expires.
    ///
    /// Acquire, paired with [`overwrite`](Self::overwrite)'s release store: a reader that sees
    /// an overwrite's expiry then loads that overwrite's value or a later one (module docs).
    /// Every reader decides liveness from this load before it loads the value.
    #[inline]
    pub(crate) fn expires_at(&self) -> Timestamp {
        Timestamp(self.expires_at.load(Ordering::Acquire))
    }

    /// Stores a newer write's value, version and expiry in place (newer: of a higher version,
    /// or in a sole tier the one that took the lock later). Only for a word value, under the
    /// key's bucket lock, on a live node whose weight (and, but in a sole tier, stripe) the
    /// write keeps and whose expiry is no later than `expires_at` (`MemoryLayer::in_place`
    /// checks all of it).
    ///
    /// The expiry goes last (release), after the value's own release store: a reader loads the
    /// expiry first (module docs).
    #[inline]
    pub(crate) fn overwrite(&self, value: V, version: u64, expires_at: Timestamp) {
        self.version.store(version, Ordering::Relaxed);
        if broken(Broken::InPlaceExpiryFirst) {
            // The broken twin: the expiry published before the value it belongs to.
            self.expires_at.store(expires_at.0, Ordering::Release);
            return self.value.overwrite(value);
        }
        self.value.overwrite(value);
        if self.expires_at.load(Ordering::Relaxed) != expires_at.0 {
            // Release: orders the value's store before this one (module docs). Relaxed load
            // above: under the bucket lock, no other thread stores this expiry.
            self.expires_at.store(expires_at.0, Ordering::Release);
        }
    }

    /// The weight accounted for this node.
    #[inline]
    pub(crate) fn weight(&self) -> u64 {
        u64::from(self.weight)
    }

    /// Whether a reader may return the value: the node is published and not expired. `now` is
    /// only called for a node that can expire.
    #[inline]
    pub(crate) fn is_live_with(&self, now: impl FnOnce() -> Timestamp) -> bool {
        !self.is_pending() && !self.is_expired_with(now)
    }

    #[inline]
    pub(crate) fn is_live(&self, now: Timestamp) -> bool {
        self.is_live_with(|| now)
    }

    #[inline]
    pub(crate) fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at() <= now
    }

    /// The expiry check of the read path: only reads the clock when the node can expire.
    #[inline]
    pub(crate) fn is_expired_with(&self, now: impl FnOnce() -> Timestamp) -> bool {
        let expires_at = self.expires_at();
        expires_at != Timestamp::NEVER && expires_at <= now()
    }

    /// Relaxed: the meta byte publishes no other memory. The value, version and expiry were
    /// published by the table's release store of the pointer to the node's link and read
    /// through its acquire load (a word node's value, version and expiry may change later, in
    /// place; see "Expiry and value, read together" above); `PENDING` is only ever cleared, and why a relaxed read of it
    /// is enough is argued in `protocol` (a reader can only reach a pending node through the
    /// map, and the coherence of the pointer it loaded orders it against every completed
    /// write).
    #[inline]
    pub(crate) fn meta(&self) -> u8 {
        self.meta.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        self.meta() & PENDING != 0
    }

    /// Records an access: bumps the frequency unless it is already saturated, so a hot entry's
    /// cache line is not written on every hit. A lost race loses one increment, which the
    /// policy tolerates (frequencies are hints). Relaxed for the same reason as `meta`.
    #[inline]
    pub(crate) fn touch(&self, meta: u8) {
        if meta & FREQ_MASK != FREQ_MASK {
            let _ = self.meta.compare_exchange_weak(
                meta,
                meta + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Lowers the frequency by one (CLOCK hand of the main queue). Returns the frequency seen.
    pub(crate) fn cool(&self) -> u8 {
        let mut meta = self.meta();
        loop {
            let freq = meta & FREQ_MASK;
            if freq == 0 {
                return 0;
            }
            match self.meta.compare_exchange_weak(
                meta,
                meta - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return freq,
                Err(seen) => meta = seen,
            }
        }
    }

    /// Clears the frequency (an entry moving from the small to the main queue starts cold).
    pub(crate) fn reset_freq(&self) {
        self.meta.fetch_and(!FREQ_MASK, Ordering::Relaxed);
    }

    /// Makes a promotion's pending node visible, unless a write cancelled it meanwhile: the
    /// publication and the cancellation are two read-modify-writes of this byte, so exactly one
    /// of them is first. Returns whether the node was published. Release pairs with nothing the
    /// reader needs (see `meta`); it orders the publication after the ticket's validation load
    /// in every model, which keeps the argument in `protocol` local.
    pub(crate) fn publish_promotion(&self) -> bool {
        let mut meta = self.meta();
        loop {
            if meta & CANCELLED != 0 {
                return false;
            }
            match self.meta.compare_exchange_weak(
                meta,
                meta & !PENDING,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => meta = seen,
            }
        }
    }

    /// Marks a pending node cancelled (a write of its key began). No effect on a published
    /// node. Relaxed: the byte itself decides the race with `publish_promotion`, and the write
    /// that cancels publishes nothing through it.
    pub(crate) fn cancel_if_pending(&self) {
        if self.is_pending() {
            self.meta.fetch_or(CANCELLED, Ordering::Relaxed);
        }
    }
}
