//! Per-stripe *floors*: what a layer remembers of its removals so that a slow, older write
//! cannot land where a newer write's value was just removed.
//!
//! A write into a key the layer does not hold is valid only if no removal (delete,
//! invalidation, eviction, expiry) of a *newer* version happened meanwhile — for that key, but
//! a layer cannot remember every removed key, so it remembers, per write stripe, the highest
//! version it removed for any key of the stripe (versions are comparable within a stripe only).
//! The price is a spurious refusal when another key of the stripe was removed with a newer
//! version: the write is then dropped as if evicted at once, never a wrong value.
//!
//! # The protocol (see [`crate::protocol`] for the argument)
//!
//! - A remover calls [`Floors::raise`] with the version it removes **before** the removal.
//! - An inserter inserts the key in a state readers ignore, then calls [`Floors::admits`], and
//!   makes the value visible only if it returns true (otherwise removes exactly what it
//!   inserted).
//!
//! Both sides issue `fence(SeqCst)` between their two steps (store buffering): either the
//! inserter sees the raised floor, or the remover's removal sees (and removes) the inserted
//! entry. A remote layer that wants the same guarantee for racing writes of one key keeps one
//! beside its client (for a store shared by several caches, versions of different caches are
//! not comparable: the Redis layer orders writes on the server instead).
//!
//! # Under a lock of the key
//!
//! strata's memory tier has a lock per bucket, and a key's writes and removals all take its
//! bucket's lock, which makes the store-buffering pattern unnecessary there: a remover raises
//! the floor before or while it holds the lock for its removal (or, for a delete of an absent
//! key, its look for the key), and an inserter checks the floor while it holds the lock, before
//! it links its entry, which is then visible at once. Whichever takes the lock second sees the
//! other: the inserter sees the raised floor (the raise happens before the remover's unlock,
//! which synchronizes with the inserter's lock), or the remover finds the inserted entry and
//! removes it. [`Floors::raise_locked`] and [`Floors::admits_locked`] are that variant: no
//! fences, and no pending state for the insert. A lock-free path into the same floors (a lookup
//! that skips the lock when it finds an empty bucket) would need the fenced variant on both
//! sides again.

use crate::protocol::{Ticket, Version, STRIPES};
use crate::sync::{fence, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// The floors of one layer, one per write stripe.
pub struct Floors {
    floors: Box<[CachePadded<AtomicU64>]>,
}

impl Default for Floors {
    fn default() -> Self {
        Floors {
            floors: (0..STRIPES)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        }
    }
}

impl std::fmt::Debug for Floors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Floors").finish_non_exhaustive()
    }
}

impl Floors {
    /// Floors at 0 for every stripe.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the floor of `stripe` (from [`Ticket::stripe`]) to `version`, before the removal
    /// that follows. `None` (a write outside any cache) does nothing. SeqCst, then a fence: the
    /// raise must be ordered before the removal (or the absence check) that follows, for every
    /// inserter that checks the floor afterwards.
    #[inline]
    pub fn raise(&self, stripe: Option<usize>, version: Version) {
        if let Some(stripe) = stripe {
            self.floors[stripe % STRIPES].fetch_max(version, Ordering::SeqCst);
            fence(Ordering::SeqCst);
        }
    }

    /// [`Floors::raise`] for a remover that then removes the key (or looks for it) under the
    /// key's lock, against inserters that check with [`Floors::admits_locked`] under the same
    /// lock (see "Under a lock of the key" in the module docs).
    #[inline]
    pub(crate) fn raise_locked(&self, stripe: Option<usize>, version: Version) {
        if let Some(stripe) = stripe {
            // Relaxed: the key's lock orders this raise before any insert of the key that
            // checks the floor after the remover's critical section (module docs); the RMW
            // keeps the floor the maximum of every raise, whatever their order.
            self.floors[stripe % STRIPES].fetch_max(version, Ordering::Relaxed);
        }
    }

    /// [`Floors::admits`] for an inserter that holds the key's lock and links its entry, visible
    /// at once, only if this returns true (see "Under a lock of the key" in the module docs).
    #[inline]
    pub(crate) fn admits_locked(&self, ticket: &Ticket<'_>) -> bool {
        match ticket.stripe() {
            // Relaxed: the lock this caller holds was released by every remover of the key
            // that raised the floor before it; their raises happen before this load.
            Some(stripe) => {
                self.floors[stripe % STRIPES].load(Ordering::Relaxed) < ticket.version()
            }
            None => true,
        }
    }

    /// Whether a write with `ticket` may make its entry, inserted into a slot the key had left,
    /// visible: its version is above the stripe's floor. Call it after the insert; it issues the
    /// fence that pairs with [`Floors::raise`].
    #[inline]
    pub fn admits(&self, ticket: &Ticket<'_>) -> bool {
        fence(Ordering::SeqCst);
        match ticket.stripe() {
            Some(stripe) => self.floors[stripe % STRIPES].load(Ordering::SeqCst) < ticket.version(),
            None => true,
        }
    }
}
