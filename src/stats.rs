//! Striped, cache-padded event counters, and the [`Stats`] snapshot built from them.
//!
//! A stripe is a block of counters on cache lines of its own. A read sums every stripe: reads
//! are rare, increments are on every operation (a read hit counts one).
//!
//! Stripes `1..STRIPES` are **owned**: a thread leases one the first time it counts and gives it
//! back when it exits, and only the owner writes it, so an increment is a plain load and store,
//! not a locked read-modify-write (which on x86 is a full barrier: it would wait for the cache
//! misses of the lookup that precedes it and keep the next lookup's from overlapping). Stripe 0
//! is **shared** by every thread that finds no stripe free (more than `STRIPES - 1` live
//! counting threads) and is incremented with atomic RMWs. Either way the counts are exact.

use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

#[cfg(not(loom))]
pub(crate) const STRIPES: usize = 32;
#[cfg(loom)]
pub(crate) const STRIPES: usize = 1;
const PER_BLOCK: usize = 16;

/// A set of `n` counters, striped by thread.
pub(crate) struct Counters {
    blocks: Box<[CachePadded<[AtomicU64; PER_BLOCK]>]>,
    blocks_per_stripe: usize,
}

/// The stripe every thread may increment with RMWs.
pub(crate) const SHARED: usize = 0;

/// The calling thread's stripe: its owned stripe, or [`SHARED`].
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn thread_stripe() -> usize {
    lease::current()
}

/// Under loom every thread counts on the shared stripe: the models need no more.
#[cfg(loom)]
#[inline(always)]
pub(crate) fn thread_stripe() -> usize {
    let _ = AtomicUsize::new(0);
    SHARED
}

/// Leases of owned stripes to threads. The lock is taken only when a thread counts for the
/// first time and when it exits, never on an increment.
#[cfg(not(loom))]
mod lease {
    use super::{AtomicUsize, Ordering, SHARED, STRIPES};
    use std::cell::Cell;
    use std::sync::Mutex;

    /// Stripes given back by exited threads.
    static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    /// The next never-leased stripe. Relaxed: only uniqueness matters (the RMW gives it).
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    /// `STRIPE` before the thread's first count.
    const UNLEASED: usize = usize::MAX;

    /// Gives the stripe back when its thread exits.
    struct Lease(usize);

    impl Drop for Lease {
        fn drop(&mut self) {
            // Counting from a later thread-local destructor goes to the shared stripe.
            // `try_with`: the cell has no destructor, but be safe during teardown.
            let _ = STRIPE.try_with(|stripe| stripe.set(SHARED));
            if self.0 != SHARED {
                // The mutex orders this thread's last increments before the next owner's first
                // load of the stripe (release here, acquire in `take`): no count is lost.
                FREE.lock().unwrap_or_else(|e| e.into_inner()).push(self.0);
            }
        }
    }

    fn take() -> usize {
        if let Some(stripe) = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return stripe;
        }
        let next = NEXT.fetch_add(1, Ordering::Relaxed);
        if next < STRIPES {
            next
        } else {
            SHARED
        }
    }

    thread_local! {
        /// The thread's stripe, read on every increment: a const-initialised cell without a
        /// destructor, so reading it is one thread-local load (no lazy-init check).
        static STRIPE: Cell<usize> = const { Cell::new(UNLEASED) };
        /// Holds the lease; its destructor gives the stripe back.
        static LEASE: Cell<Option<Lease>> = const { Cell::new(None) };
    }

    #[cold]
    fn lease() -> usize {
        let stripe = take();
        // If the thread is already tearing down its thread-locals, the lease cannot be held:
        // give it back at once and count on the shared stripe.
        match LEASE.try_with(|lease| lease.set(Some(Lease(stripe)))) {
            Ok(()) => {
                STRIPE.with(|cell| cell.set(stripe));
                stripe
            }
            Err(_) => {
                drop(Lease(stripe));
                SHARED
            }
        }
    }

    #[inline(always)]
    pub(super) fn current() -> usize {
        match STRIPE.try_with(Cell::get) {
            Ok(UNLEASED) => lease(),
            Ok(stripe) => stripe,
            Err(_) => SHARED,
        }
    }
}

impl Counters {
    pub(crate) fn new(n: usize) -> Self {
        let blocks_per_stripe = n.div_ceil(PER_BLOCK).max(1);
        Counters {
            blocks: (0..STRIPES * blocks_per_stripe)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            blocks_per_stripe,
        }
    }

    #[inline(always)]
    pub(crate) fn add(&self, counter: usize, n: u64) {
        let stripe = thread_stripe();
        let cell = &self.blocks[stripe * self.blocks_per_stripe + counter / PER_BLOCK]
            [counter % PER_BLOCK];
        // Relaxed: counters are statistics; they order nothing else.
        if stripe == SHARED {
            cell.fetch_add(n, Ordering::Relaxed);
        } else {
            // Only this thread writes its owned stripe (see `lease`), so a load and a store
            // cannot lose an increment; readers may see the old value a moment longer.
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }

    #[inline]
    pub(crate) fn incr(&self, counter: usize) {
        self.add(counter, 1);
    }

    pub(crate) fn sum(&self, counter: usize) -> u64 {
        (0..STRIPES)
            .map(|stripe| {
                let block = stripe * self.blocks_per_stripe + counter / PER_BLOCK;
                self.blocks[block][counter % PER_BLOCK].load(Ordering::Relaxed)
            })
            .sum()
    }
}

/// A layer's negative filter in a [`Stats`] snapshot (see `LayerSpec::negative_filter`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Whether the filter answers lookups (a filter over a layer that was not empty at build
    /// time lets every lookup through until its first rebuild).
    pub ready: bool,
    /// Lookups that skipped the layer: the filter said the key was absent.
    pub skips: u64,
    /// Lookups the filter let through that missed.
    pub false_positives: u64,
    /// Sampled skips (one in 65 536) that found the key after all: keys written to the layer
    /// by someone other than this cache. Zero for a layer only this cache writes.
    pub false_negatives: u64,
    /// Rebuilds completed (a new generation swapped in).
    pub rebuilds: u64,
    /// Rebuilds given up (the layer could not be listed, or writes never drained).
    pub abandoned_rebuilds: u64,
}

/// Per-layer figures in a [`Stats`] snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// The layer's name.
    pub name: String,
    /// Requests this layer served (the value came from here).
    pub hits: u64,
    /// Requests that asked this layer and did not find the key.
    pub misses: u64,
    /// Values promoted into this layer from a lower one.
    pub promotions_in: u64,
    /// Lower-layer hits not promoted into this layer because the key was not hot enough (see
    /// [`PromotionGate`](crate::PromotionGate)).
    pub promotions_declined: u64,
    /// Promotions into this layer dropped because their queue was full (deferred promotion
    /// only; the value stays served by the lower layer).
    pub promotions_dropped: u64,
    /// The layer's negative filter, if it has one.
    pub filter: Option<FilterStats>,
    /// Entries the layer evicted to stay within its bounds.
    pub evictions: u64,
    /// Entries the layer dropped because their TTL passed.
    pub expirations: u64,
    /// Writes the layer accepted but did not keep, as if evicted at once (see
    /// [`LayerCounters::dropped`](crate::layer::LayerCounters::dropped)).
    pub dropped_writes: u64,
    /// Operations on this layer that failed.
    pub errors: u64,
    /// Entries currently held, if the layer knows.
    pub len: Option<u64>,
    /// Whether the layer takes calls (its circuit breaker's state; see
    /// [`LayerHealth`](crate::layer::LayerHealth)).
    pub health: crate::layer::LayerHealth,
    /// How many times the layer's circuit breaker opened.
    pub circuit_opened: u64,
}

/// A snapshot of a cache's counters. Request-level figures count each request once: an L1 miss
/// served by L2 is one hit, not a miss and a hit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests (`get`, `lookup`, each key of `get_many`) that found a value in some layer.
    pub hits: u64,
    /// Requests that found no value in any layer.
    pub misses: u64,
    /// One entry per layer, L1 first.
    pub layers: Vec<LayerStats>,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 before any request.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_stay_exact_when_threads_come_and_go() {
        // More threads over time than stripes, a few at a time: leases are given back and
        // taken over, and threads beyond the free stripes share stripe 0.
        let counters = Arc::new(Counters::new(4));
        for _ in 0..4 {
            let threads: Vec<_> = (0..STRIPES + 8)
                .map(|_| {
                    let counters = counters.clone();
                    std::thread::spawn(move || {
                        for _ in 0..100_000 {
                            counters.incr(1);
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
        }
        assert_eq!(counters.sum(1), 4 * (STRIPES as u64 + 8) * 100_000);
    }

    #[test]
    fn counts_are_exact_across_threads() {
        let counters = Arc::new(Counters::new(20));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counters = counters.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counters.incr(3);
                        counters.add(17, 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counters.sum(3), 80_000);
        assert_eq!(counters.sum(17), 160_000);
        assert_eq!(counters.sum(0), 0);
    }
}
