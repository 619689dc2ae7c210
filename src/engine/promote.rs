//! Promotion: a lower-layer hit is copied into the writable layers above it, deepest target
//! first, under the ticket protocol of [`crate::protocol`].
//!
//! Immediate and deferred promotion share one step, [`Engine::apply`]: one call per target
//! layer with the batch of entries bound for it. Deferred promotion queues `(key, entry,
//! target, ticket)` instead, as plain data (a detached ticket validates exactly as well later),
//! and applies a batch once the queue holds one, or on `run_pending_promotions`. A promoted
//! entry expires at the earlier of its source's expiry and the target layer's TTL from now, and
//! keeps the source's version clamped to the ticket's epoch (see `Ticket::version`).

use super::key::KeyRef;
use super::read::Read;
use super::tier::Count;
use super::{Deferred, Engine};
use crate::layer::Entry;
use crate::options::Promotion;
use crate::protocol::Ticket;
use crate::sync::Ordering;
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

    /// The entry as promoted into `target` (see the module docs).
    fn promoted(&self, entry: &Entry<V>, target: usize, ticket: &Ticket<'_>) -> Entry<V> {
        Entry {
            value: entry.value.clone(),
            version: entry.version.min(ticket.version()),
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
            let bound =
                candidates().filter(|&(_, source, _, _)| self.promotes_into(target, source));
            if self.config.deferred.is_some() {
                for (read, _, entry, ticket) in bound {
                    self.deferred.push(Deferred {
                        key: read.key.owned().clone(),
                        hash: read.key.hash(),
                        entry: self.promoted(entry, target, &ticket),
                        target,
                        ticket: self.stripes.detach(&ticket),
                    });
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
        if let Some(batch) = self.config.deferred {
            if self.deferred.len() >= batch {
                self.drain_deferred(batch);
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

    /// Pops up to `max` queued promotions and applies them, one batch per target layer,
    /// deepest target first (the order `promote_reads` queued them in for each key).
    ///
    /// After `close`, whatever is queued is dropped unapplied: a read that was running when
    /// `close` was called can still queue a promotion after `close` emptied the queue, and
    /// applying it later would call a closed layer.
    pub(crate) fn drain_deferred(&self, max: usize) -> usize {
        let mut taken = Vec::new();
        while taken.len() < max {
            match self.deferred.pop() {
                Some(item) => taken.push(item),
                None => break,
            }
        }
        // Checked after popping: an item pushed after `close` drained the queue is either
        // seen here as closed, or was popped by `close` itself.
        if self.closed.load(Ordering::SeqCst) {
            while self.deferred.pop().is_some() {}
            return 0;
        }
        (0..self.tiers.len())
            .rev()
            .map(|target| {
                self.apply(
                    target,
                    taken
                        .iter()
                        .filter(|item| item.target == target)
                        .map(|item| {
                            let ticket = self.stripes.attach(item.ticket);
                            (&item.key, item.hash, item.entry.clone(), ticket)
                        }),
                )
            })
            .sum()
    }
}
