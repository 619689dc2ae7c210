//! Batched promotion queues: one per target tier, striped by thread, bounded and lossy.
//!
//! With deferred promotion on, a read that should promote a lower-layer hit does not insert
//! into the faster tier itself: it pushes `(key, hash, entry, ticket)` onto the target tier's
//! queue and returns. The queues are drained in batches, off the reader's critical path:
//!
//! - **Striped**: each target tier has one bounded queue per stripe, and a thread pushes onto
//!   the stripe of its counter lease (see `stats`), so readers on different cores rarely share
//!   a queue's head and tail (Caffeine's striped read buffers).
//! - **Bounded and lossy**: a push onto a full stripe drops the promotion (counted as
//!   `promotions_dropped`) instead of blocking the reader. Dropping a promotion is always safe:
//!   the value stays served by the lower layer.
//! - **Batched**: a reader whose push brings its stripe to the batch size drains the target's
//!   queues, if no other thread is draining them (a flag, never waited on): it pops every
//!   stripe once and applies the batch with one call into the tier (one pin of a memory tier's
//!   map for the whole batch). [`Cache::run_pending_tasks`](crate::Cache::run_pending_tasks)
//!   drains every queue on demand.
//!
//! # Correctness
//!
//! A queued promotion carries its read's ticket as plain data. Applying it late is exactly as
//! safe as applying it at once (stripe words never decrease, see [`crate::protocol`]): a
//! promotion overtaken by a set, a delete, an eviction or an expiry of its key fails its
//! ticket or finds a newer node, and is dropped. Each promotion is validated on its own
//! (its key's stripe); one check for a whole batch would need every key on one stripe.
//!
//! The queues are crossbeam's `ArrayQueue` (a bounded lock-free ring, no allocation on push).

use super::Deferred;
use crate::sync::{ArrayQueue, AtomicBool, Ordering};

/// The queues of every tier (index = target tier; a tier nothing promotes into gets empty
/// stripes, which cost a few words).
pub(crate) struct PromotionQueues<K, V> {
    targets: Box<[TargetQueue<K, V>]>,
    /// The stripe length at which a pusher drains.
    batch: usize,
}

struct TargetQueue<K, V> {
    stripes: Box<[ArrayQueue<Deferred<K, V>>]>,
    /// Held by the thread draining this target (never waited on: others just push).
    draining: AtomicBool,
}

/// What a push did.
pub(crate) enum Pushed {
    /// Queued; the stripe is not full enough to drain yet.
    Queued,
    /// Queued, and the stripe reached the batch size: the caller should drain this target.
    Drain,
    /// The stripe was full: the promotion was dropped.
    Dropped,
}

impl<K, V> PromotionQueues<K, V> {
    /// Queues for `tiers` tiers, drained in batches of `batch`.
    pub(crate) fn new(tiers: usize, batch: usize) -> Self {
        let stripes = stripe_count();
        // Room for a few batches per stripe: a drain in progress does not make pushes drop.
        let room = batch.saturating_mul(4).max(16);
        PromotionQueues {
            targets: (0..tiers)
                .map(|_| TargetQueue {
                    stripes: (0..stripes).map(|_| ArrayQueue::new(room)).collect(),
                    draining: AtomicBool::new(false),
                })
                .collect(),
            batch,
        }
    }

    /// Queues a promotion into `target` on the calling thread's stripe.
    pub(crate) fn push(&self, target: usize, item: Deferred<K, V>) -> Pushed {
        let queue = &self.targets[target];
        let stripe = &queue.stripes[crate::stats::thread_stripe() % queue.stripes.len()];
        match stripe.push(item) {
            Err(_) => Pushed::Dropped,
            Ok(()) if stripe.len() >= self.batch => Pushed::Drain,
            Ok(()) => Pushed::Queued,
        }
    }

    /// Takes up to `max` queued promotions for `target`, one pass over its stripes, if no other
    /// thread is draining it; `None` if one is. The drain flag is released when the returned
    /// batch is dropped, after it was applied: one thread at a time applies a target's batches.
    pub(crate) fn take(&self, target: usize, max: usize) -> Option<Batch<'_, K, V>> {
        let queue = &self.targets[target];
        // Acquire: pairs with the release in `Batch::drop`, so this drainer's batch is applied
        // after the previous drainer's.
        if queue
            .draining
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let mut items = Vec::new();
        'stripes: for stripe in queue.stripes.iter() {
            for _ in 0..stripe.len() {
                if items.len() >= max {
                    break 'stripes;
                }
                match stripe.pop() {
                    Some(item) => items.push(item),
                    None => break,
                }
            }
        }
        Some(Batch {
            items,
            flag: &queue.draining,
        })
    }

    /// Drops every queued promotion (on `close`).
    pub(crate) fn clear(&self) {
        for queue in self.targets.iter() {
            for stripe in queue.stripes.iter() {
                while stripe.pop().is_some() {}
            }
        }
    }

    pub(crate) fn tiers(&self) -> usize {
        self.targets.len()
    }
}

/// A batch taken from one target's queues; dropping it lets the next drainer in.
pub(crate) struct Batch<'a, K, V> {
    pub(crate) items: Vec<Deferred<K, V>>,
    flag: &'a AtomicBool,
}

impl<K, V> Drop for Batch<'_, K, V> {
    fn drop(&mut self) {
        // Release: see `take`.
        self.flag.store(false, Ordering::Release);
    }
}

/// Stripes per target: a few per core, a power of two, at most the counters' stripe count.
fn stripe_count() -> usize {
    #[cfg(loom)]
    return 1;
    #[cfg(not(loom))]
    {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        (cores * 2).next_power_of_two().min(32)
    }
}
