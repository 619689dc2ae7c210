//! Striped, cache-padded event counters, and the [`Stats`] snapshot built from them.
//!
//! Each thread is given a stripe the first time it counts; a stripe is a block of counters on
//! cache lines of its own, so threads increment different lines and never serialize on one. A
//! read sums every stripe: reads are rare, increments are on every operation.
//!
//! With at most [`STRIPES`] counting threads no two share a stripe; beyond that they share
//! lines but stay exact (the increments are atomic RMWs).

use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

#[cfg(not(loom))]
const STRIPES: usize = 32;
#[cfg(loom)]
const STRIPES: usize = 1;
const PER_BLOCK: usize = 16;

/// A set of `n` counters, striped by thread.
pub(crate) struct Counters {
    blocks: Box<[CachePadded<[AtomicU64; PER_BLOCK]>]>,
    blocks_per_stripe: usize,
}

#[cfg(not(loom))]
fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Relaxed: only uniqueness matters.
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

#[cfg(loom)]
fn thread_stripe() -> usize {
    let _ = AtomicUsize::new(0);
    0
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

    #[inline]
    pub(crate) fn add(&self, counter: usize, n: u64) {
        let block = thread_stripe() * self.blocks_per_stripe + counter / PER_BLOCK;
        // Relaxed: counters are statistics; they order nothing else.
        self.blocks[block][counter % PER_BLOCK].fetch_add(n, Ordering::Relaxed);
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
    /// Entries the layer evicted to stay within its bounds.
    pub evictions: u64,
    /// Entries the layer dropped because their TTL passed.
    pub expirations: u64,
    /// Operations on this layer that failed.
    pub errors: u64,
    /// Entries currently held, if the layer knows.
    pub len: Option<u64>,
}

/// A snapshot of a cache's counters. Request-level figures count each request once: an L1 miss
/// served by L2 is one hit, not a miss and a hit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests (`get`, `try_get`, each key of `get_many`) that found a value in some layer.
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
