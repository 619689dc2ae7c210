//! Promotion: a lower-layer hit is copied into the writable layers above it, deepest target
//! first, under the ticket protocol of [`crate::protocol`].
//!
//! Immediate and queued promotion share one step, [`Engine::apply`]: one call per target
//! layer with the batch of entries bound for it. Queued (deferred) promotion pushes `(key,
//! hash, entry, ticket)` onto the target's promotion queue instead (`queue.rs`), as plain data
//! (a detached ticket validates exactly as well later). Promotion into L1 may be gated by heat
//! (see [`PromotionGate`]): a key not read below L1 often enough is served, not promoted. A
//! promoted entry expires at the earlier of its source's expiry and the target layer's TTL
//! from now, and keeps the source's version clamped to the ticket's epoch (see `Ticket::version`).

use super::key::KeyRef;
use super::queue::{PromotionQueues, Pushed};
use super::read::Read;
use super::tier::Count;
use super::{Deferred, Engine};
use crate::filter::NegativeFilter;
use crate::layer::Entry;
use crate::options::{Promotion, PromotionGate};
use crate::protocol::Ticket;
use crate::sync::{broken, Broken, Ordering};
use std::borrow::Borrow;
use std::hash::Hash;

impl<K, V> Engine<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Whether a hit in layer `source` is promoted into layer `target`.
    fn promotes_into(&self, target: usize, source: usize) -> bool {
        target < source
            && self.tiers[target].writable
            && match self.config.promotion {
                Promotion::Off => false,
                Promotion::AllAbove => true,
                Promotion::L1Only => target == 0,
            }
    }

    /// Whether a key is hot enough to be promoted into `target` (see [`PromotionGate`]): only
    /// L1 is gated; a declined promotion is counted.
    #[inline]
    fn hot_enough(&self, target: usize, hash: u64) -> bool {
        let (0, Some(heat), PromotionGate::Hot { min_reads }) =
            (target, &self.heat, self.config.gate)
        else {
            return true;
        };
        let hot = heat.estimate(hash) >= min_reads;
        if !hot {
            self.count(&self.tiers[0], Count::PromotionsDeclined);
        }
        hot
    }

    /// The entry as promoted into `target` (see the module docs).
    fn promoted(&self, entry: &Entry<V>, target: usize, ticket: &Ticket<'_>) -> Entry<V> {
        Entry {
            value: entry.value.clone(),
            version: if broken(Broken::PromotionUnclamped) {
                entry.version
            } else {
                entry.version.min(ticket.version())
            },
            expires_at: entry
                .expires_at
                .min(self.clock.expiry(self.tiers[target].ttl)),
        }
    }

    /// Promotes the reads a lower layer served with a valid ticket.
    #[inline]
    pub(crate) fn promote_reads<Q>(&self, reads: &[Read<'_, K, Q, V>])
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let candidates = || {
            reads
                .iter()
                .filter_map(|read| match (&read.found, read.ticket) {
                    (Some((source, entry)), Some(ticket)) if *source > 0 => {
                        Some((read, *source, entry, ticket))
                    }
                    _ => None,
                })
        };
        if self.config.promotion == Promotion::Off {
            return;
        }
        // Deepest target first, as writes go.
        for target in (0..self.tiers.len() - 1).rev() {
            let bound = candidates().filter(|&(read, source, _, _)| {
                self.promotes_into(target, source) && self.hot_enough(target, read.key.hash())
            });
            if let Some(queues) = &self.queues {
                let mut drain = false;
                for (read, _, entry, ticket) in bound {
                    let item = Deferred {
                        key: read.key.owned().clone(),
                        hash: read.key.hash(),
                        entry: self.promoted(entry, target, &ticket),
                        ticket: self.stripes.detach(&ticket),
                    };
                    match queues.push(target, item) {
                        Pushed::Queued => {}
                        Pushed::Drain => drain = true,
                        Pushed::Dropped => {
                            self.count(&self.tiers[target], Count::PromotionsDropped)
                        }
                    }
                }
                if drain {
                    self.drain_target(queues, target, usize::MAX);
                }
            } else {
                self.apply(
                    target,
                    bound.map(|(read, _, entry, ticket)| {
                        let promoted = self.promoted(entry, target, &ticket);
                        (read.key.owned(), read.key.hash(), promoted, ticket)
                    }),
                );
            }
        }
    }

    /// Applies a batch of promotions into one layer; returns how many landed.
    fn apply<'k>(
        &self,
        target: usize,
        batch: impl Iterator<Item = (&'k K, u64, Entry<V>, Ticket<'k>)>,
    ) -> usize
    where
        K: 'k,
    {
        let tier = &self.tiers[target];
        let mut landed = 0;
        // A filtered tier gets each key's bits before the key can land (see `filter`).
        let inserts = tier.filter.as_deref().map(NegativeFilter::begin_inserts);
        let batch = batch.inspect(|(_, hash, _, _)| {
            if let Some(inserts) = &inserts {
                inserts.insert(*hash);
            }
        });
        tier.promote_each(batch, |_, result| match result {
            Ok(true) => {
                self.count(tier, Count::PromotionsIn);
                landed += 1;
            }
            Ok(false) => {}
            Err(_) => self.count(tier, Count::Errors),
        });
        landed
    }

    /// Applies every queued promotion, deepest target first (the order `promote_reads` queues
    /// a key's promotions in). A target another thread is draining is skipped: that thread
    /// applies what is queued. Returns how many landed.
    pub(crate) fn drain_queues(&self) -> usize {
        let Some(queues) = &self.queues else {
            return 0;
        };
        (0..queues.tiers())
            .rev()
            .map(|target| self.drain_target(queues, target, usize::MAX))
            .sum()
    }

    /// Takes up to `max` of `target`'s queued promotions and applies them as one batch, unless
    /// another thread is draining `target`.
    ///
    /// After `close`, whatever is taken is dropped unapplied: a read that was running when
    /// `close` was called can still queue a promotion after `close` emptied the queues, and
    /// applying it later would call a closed layer.
    fn drain_target(&self, queues: &PromotionQueues<K, V>, target: usize, max: usize) -> usize {
        let Some(batch) = queues.take(target, max) else {
            return 0;
        };
        // Checked after taking: an item pushed after `close` cleared the queues is either seen
        // here as closed, or was cleared by `close` itself.
        if self.closed.load(Ordering::SeqCst) {
            queues.clear();
            return 0;
        }
        self.apply(
            target,
            batch.items.iter().map(|item| {
                let ticket = self.stripes.attach(item.ticket);
                (&item.key, item.hash, item.entry.clone(), ticket)
            }),
        )
    }
}
