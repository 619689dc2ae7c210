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
//! entry. strata's memory tier uses this type; a remote layer that wants the same guarantee for
//! racing writes of one key keeps one beside its client (for a store shared by several caches,
//! versions of different caches are not comparable: the Redis layer orders writes on the
//! server instead).

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
