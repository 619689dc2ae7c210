//! Eviction: the policy's decisions (`policy.rs`) carried out on the map.
//!
//! The policy owns the queues and counters; this file is where they meet the table: an
//! eviction step pops the head of a queue, finds the key's node (same birth, or the item is an
//! orphan), and either re-queues it (read since its last pass: small promotes it to main, main's
//! CLOCK hand cools it) or removes it, raising the key's stripe floor as every removal does (see
//! `protocol`). The duel of a key the ghost remembers (see "Scans" in `policy.rs`) and the
//! reaping of orphans run here too, for the same reason: they need the map.
//!
//! # Invariants
//!
//! - An item is consumed exactly once: re-queued, dropped as an orphan (counted), or its node
//!   removed (the shard's length and weight lowered).
//! - A removal here only takes the node whose birth the item carries: a key re-inserted since is
//!   never evicted by its old residency's item.

use super::node::{Node, FREQ_MASK};
use super::policy::{Item, Queue, Rebalance, Shard};
use super::table::TableGuard;
use super::{MemoryLayer, EVICTIONS, EXPIRATIONS};
use crate::sync::spin_hint;
use std::hash::Hash;

/// How many times an insert retries eviction when the queues are momentarily empty (their items
/// are held by other evicting threads) before leaving the bound to those threads.
const EVICTION_RETRIES: u32 = 16;

/// How many of main's items a duel's CLOCK hand passes at most looking for a cold victim.
const DUEL_SEARCH: usize = 64;

impl<K, V> MemoryLayer<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Removes the node `item` stands for (same birth; `hash` is its key's) and consumes the
    /// item. Returns the removed node.
    pub(super) fn remove_item<'g>(
        &self,
        shard: &Shard<K>,
        item: &Item<K>,
        hash: u64,
        guard: &'g TableGuard<'_>,
    ) -> Option<&'g Node<V>> {
        let birth = item.birth;
        let removed = self.map.remove_if(
            &item.key,
            hash,
            |_, current| {
                let ours = current.birth == birth;
                if ours {
                    self.raise_floor_for(current);
                }
                ours
            },
            guard,
        );
        match removed {
            Ok(Some((_, removed))) => {
                shard.forget(removed.weight());
                Some(removed)
            }
            // Removed or re-inserted meanwhile: the item is stale.
            _ => {
                shard.drop_orphan();
                None
            }
        }
    }

    /// Whether [`enforce`](Self::enforce) on shard `index` would find anything to do now: a
    /// shard over its quota or bounds, or with too many orphans. A write that holds no guard
    /// pins one only then (`set_in`).
    pub(super) fn needs_enforcing(&self, index: usize) -> bool {
        let shard = &self.policy.shards()[index];
        shard.is_over_capacity() || shard.has_too_many_orphans()
    }

    /// Brings shard `index` within its bounds (taking quota from other shards where it can, see
    /// "Quotas" in [`super::policy`], else evicting), then reaps orphans if there are too many.
    /// `own` is the birth of the key whose write or promotion asks for the room (see
    /// `Shard::spares_own_key`).
    ///
    /// Every insert into an empty place calls it afterwards: a write's (visible at once; unless
    /// `needs_enforcing` says it would do nothing, since a write pins a guard only for it) and
    /// a promotion's, published or undone. A racing write may replace a promotion's pending node
    /// (a replacement that weighs no more enforces nothing), and the undone promotion, which
    /// cannot remove a node that is no longer its own, is then the one left to evict for the
    /// residency it admitted. An undone promotion whose node it removed again only evicts if
    /// the shard is over its bounds for others.
    pub(super) fn enforce(&self, index: usize, own: u64, guard: &TableGuard<'_>) {
        let shard = &self.policy.shards()[index];
        while shard.len() > shard.quota() {
            match self.policy.rebalance(index) {
                Rebalance::Took => {}
                Rebalance::TookFrom(donor) => self.evict_within(donor, own, guard),
                Rebalance::Nothing => break,
            }
        }
        self.evict_within(index, own, guard);
    }

    /// Evicts until shard `index` is within its bounds, then reaps orphans if there are too
    /// many, and evicts again if the shard is over its bounds after the reap.
    ///
    /// An evicting thread that finds both queues empty retries a few times, then leaves the
    /// bounds to whoever holds the items: another evicting thread (its loop re-checks the
    /// bounds after each step), a duel (its insert enforces next), a reap (re-checked here,
    /// after it) or a walk (`walk_residents` re-checks after it).
    pub(super) fn evict_within(&self, index: usize, own: u64, guard: &TableGuard<'_>) {
        let shard = &self.policy.shards()[index];
        self.evict_steps(shard, own, guard);
        if shard.has_too_many_orphans() {
            self.reap(shard, guard);
            self.evict_steps(shard, own, guard);
        }
    }

    /// Eviction steps while the shard is over its bounds (see `evict_within`).
    fn evict_steps(&self, shard: &Shard<K>, own: u64, guard: &TableGuard<'_>) {
        let mut retries = 0;
        while shard.is_over_capacity() {
            if !self.evict_step(shard, own, guard) {
                retries += 1;
                if retries > EVICTION_RETRIES {
                    break;
                }
                spin_hint();
            }
        }
    }

    /// One S3-FIFO step on the item at the head of a queue. Returns false if both queues were
    /// empty. `own` is the birth of the key the room is made for, which small's head is not
    /// evicted as while main holds others (see `Shard::spares_own_key`).
    fn evict_step(&self, shard: &Shard<K>, own: u64, guard: &TableGuard<'_>) -> bool {
        let Some((mut item, mut queue)) = shard.pop() else {
            return false;
        };
        shard.count_step();
        let (hash, node) = loop {
            // Hashed once: the lookup, the removal and the ghost all need it.
            let hash = self.hash(&item.key);
            let node = match self.map.get_hashed(&item.key, hash, guard) {
                Some(node) if node.birth == item.birth => node,
                _ => {
                    shard.drop_orphan();
                    return true;
                }
            };
            if queue == Queue::Small && item.birth == own && shard.spares_own_key() {
                // The inserting key itself, live: back to small's tail, where a newcomer
                // belongs; main's head is the candidate instead (looked at once: it is not
                // small's).
                shard.push(item, Queue::Small);
                let Some(head) = shard.pop_from(Queue::Main) else {
                    return false;
                };
                (item, queue) = (head, Queue::Main);
                continue;
            }
            break (hash, node);
        };
        let now = self.clock.now();
        let expired = node.is_expired(now);
        if !expired {
            match queue {
                Queue::Small if node.meta() & FREQ_MASK > 0 => {
                    node.reset_freq();
                    shard.count_small_hit();
                    self.count_access(shard, hash);
                    shard.push(item, Queue::Main);
                    return true;
                }
                Queue::Main if self.passes_hot(shard, hash, node) => {
                    shard.push(item, Queue::Main);
                    return true;
                }
                _ => {}
            }
        }
        if let Some(removed) = self.remove_item(shard, &item, hash, guard) {
            // Counted by the removed node's expiry: an in-place overwrite may have moved it
            // later since `expired` was read (none can after the removal, which took the lock).
            if removed.is_expired(now) {
                self.counters.incr(EXPIRATIONS);
            } else {
                self.counters.incr(EVICTIONS);
                if queue == Queue::Small {
                    shard.remember(hash);
                }
            }
        }
        true
    }

    /// Main's CLOCK hand on one live item (`hash` is its key's): true, and the item one step
    /// cooler and counted as a main hit, if it was read since the hand last passed it.
    fn passes_hot(&self, shard: &Shard<K>, hash: u64, node: &Node<V>) -> bool {
        if node.cool() == 0 {
            return false;
        }
        shard.count_main_hit();
        self.count_access(shard, hash);
        true
    }

    /// Feeds the duel's sketch, once a duel allocated it, while the shard's small queue is cut
    /// back (see "Scans" in [`super::policy`]); otherwise nothing is counted.
    pub(super) fn count_access(&self, shard: &Shard<K>, hash: u64) {
        if shard.is_cut_back() {
            if let Some(sketch) = self.policy.existing_sketch() {
                sketch.increment(hash);
            }
        }
    }

    /// The duel of a key the ghost remembers (`weight` is its node's), admitted while small is
    /// cut back (see "Scans" in [`super::policy`]): it enters main only if the sketch counts it
    /// more often than main's next victim, per unit of weight, and the victim is then evicted
    /// (an expired victim always loses); otherwise it enters small and the victim goes back to
    /// main.
    pub(super) fn duel(
        &self,
        shard: &Shard<K>,
        newcomer: Item<K>,
        hash: u64,
        weight: u64,
        guard: &TableGuard<'_>,
    ) {
        let now = self.clock.now();
        // Main's next victim: the CLOCK hand passes hot items (cooling them) and drops orphans.
        // Bounded, as readers may re-heat what the hand cooled: past the bound the newcomer
        // enters main as it would without the duel.
        let mut victim = None;
        for _ in 0..DUEL_SEARCH {
            let Some(item) = shard.pop_from(Queue::Main) else {
                break;
            };
            let item_hash = self.hash(&item.key);
            match self.map.get_hashed(&item.key, item_hash, guard) {
                Some(node) if node.birth == item.birth => {
                    let expired = node.is_expired(now);
                    if !expired && self.passes_hot(shard, item_hash, node) {
                        shard.push(item, Queue::Main);
                    } else {
                        victim = Some((item, item_hash, expired, node.weight()));
                        break;
                    }
                }
                _ => shard.drop_orphan(),
            }
        }
        let Some((victim, victim_hash, expired, victim_weight)) = victim else {
            shard.push(newcomer, Queue::Main);
            return;
        };
        let sketch = self.policy.sketch();
        // Counted reads per unit of weight (each side's count times the other's weight) where
        // weight is what the shard is bounded by: a lighter key of equal heat wins, as it costs
        // less of the bound per hit. Bounded by entries, TinyLFU's rule.
        let (weight, victim_weight) = if shard.bounded_by_weight() {
            (weight, victim_weight)
        } else {
            (1, 1)
        };
        let newcomer_loses = u64::from(sketch.estimate(hash)) * victim_weight
            <= u64::from(sketch.estimate(victim_hash)) * weight;
        if !expired && newcomer_loses {
            shard.push(victim, Queue::Main);
            shard.push(newcomer, Queue::Small);
            return;
        }
        shard.push(newcomer, Queue::Main);
        // The eviction this insert makes room with (enforce finds the shard within bounds). If
        // the newcomer's insert (a promotion's) is then undone, one entry was evicted early: a
        // policy cost only.
        if let Some(removed) = self.remove_item(shard, &victim, victim_hash, guard) {
            // Counted by the removed node's expiry (see `evict_steps`).
            let expired = removed.is_expired(now);
            self.counters
                .incr(if expired { EXPIRATIONS } else { EVICTIONS });
        }
    }

    /// Walks each queue once around, dropping orphan items and putting live ones back at the
    /// tail of the queue they came from. Each queue is walked on its own: popping by the
    /// eviction order would keep rotating the small queue and never reach main's orphans.
    fn reap(&self, shard: &Shard<K>, guard: &TableGuard<'_>) {
        for queue in [Queue::Small, Queue::Main] {
            for _ in 0..shard.queue_len(queue) {
                if !shard.has_too_many_orphans() {
                    return;
                }
                let Some(item) = shard.pop_from(queue) else {
                    break;
                };
                match self.map.get(&item.key, guard) {
                    Some(node) if node.birth == item.birth => shard.push(item, queue),
                    _ => shard.drop_orphan(),
                }
            }
        }
    }
}
