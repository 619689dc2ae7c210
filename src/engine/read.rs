//! The read path, shared by `get`, `lookup` and `get_many`: layers L1 → Ln, the first hit wins.
//!
//! 1. For each layer from the first one asked, read every key not yet found (a custom layer
//!    gets one batch call for several keys). A miss is counted for the layer; a failure is
//!    counted, remembered for the key, and the next layer is asked: it may still serve it.
//! 2. Just before the first lower-layer read, each key takes its write stripe's [`Ticket`]:
//!    promotions need it, and so does linearizability. When promotion into L1 is gated by heat,
//!    the key's count in the heat sketch goes up here too (an L1 hit never touches it). If a lower layer served a key while a
//!    write of its stripe was in flight or began during the read, the layers above are read
//!    once more and the first value found there is served instead (see "reads that span a
//!    write" in [`crate::protocol`]); such a read is not promoted.
//! 3. Hits are counted for the layer that served them, misses of every layer for the request;
//!    then lower-layer hits are promoted (`promote.rs`).
//!
//! The L1 hit of a single `get` never gets here: `Cache::get` serves it from the memory tier
//! directly (one map probe, no hash of ours, no allocation).

use super::key::{Key, KeyRef};
use super::tier::{Count, GetResult, Tier, REQUEST_MISSES, RULED_OUT_BELOW_L1};
use super::Engine;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::filter::Probe;
use crate::layer::Entry;
use crate::protocol::Ticket;
use crate::report::{LayerFailure, Lookup};
use crate::stats::Counters;
use crate::sync::{broken, Broken};
use std::borrow::Borrow;
use std::hash::Hash;

/// One key's read in progress.
pub(crate) struct Read<'a, K, Q: ?Sized, V> {
    pub(crate) key: Key<'a, K, Q>,
    /// Taken before the first lower-layer read; `None` if a write was in flight then, or once
    /// the read has been served from above after a recheck.
    pub(crate) ticket: Option<Ticket<'a>>,
    /// The layer that served the key, and its entry.
    pub(crate) found: Option<(usize, Entry<V>)>,
    pub(crate) failures: Vec<LayerFailure>,
}

impl<'a, K, Q, V> Read<'a, K, Q, V>
where
    K: Borrow<Q>,
    Q: KeyRef<K> + ?Sized,
{
    #[inline]
    pub(crate) fn new(key: Key<'a, K, Q>) -> Self {
        Read {
            key,
            ticket: None,
            found: None,
            failures: Vec::new(),
        }
    }

    /// What `get` returns (the value, or the failures if no layer served it), taken out of
    /// the read in place.
    #[inline]
    pub(crate) fn take_result(&mut self) -> Result<Option<V>, Error> {
        match self.found.take() {
            Some((_, entry)) => Ok(Some(entry.value)),
            None if self.failures.is_empty() => Ok(None),
            None => Err(Error::Unavailable(std::mem::take(&mut self.failures))),
        }
    }

    #[inline]
    pub(crate) fn into_lookup(self) -> Lookup<V> {
        let (served_by, value) = match self.found {
            Some((index, entry)) => (Some(index), Some(entry.value)),
            None => (None, None),
        };
        Lookup {
            value,
            served_by,
            failures: self.failures,
        }
    }
}

impl<K, V> Engine<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The read path (see the module docs), from layer `from` on: `Cache::get` starts at 1 when
    /// it already missed L1 itself.
    #[inline]
    pub(crate) fn read<'a, Q>(&'a self, reads: &mut [Read<'a, K, Q, V>], from: usize)
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let now = self.clock.now();
        for tier in &self.tiers[from..] {
            if tier.index == from.max(1) {
                for read in reads.iter_mut().filter(|read| read.found.is_none()) {
                    let hash = read.key.hash();
                    read.ticket = self.stripes.ticket(hash);
                    if let Some(heat) = &self.heat {
                        heat.increment(hash);
                    }
                }
            }
            self.read_tier(tier, reads, now);
        }
        let mut promotable = false;
        // Counted in runs of one slot: a batch served by one layer bumps its counter once.
        let mut tally = Tally::new(&self.counters);
        for read in reads.iter_mut() {
            let served = match &read.found {
                None => {
                    tally.add(REQUEST_MISSES);
                    continue;
                }
                Some((index, _)) if *index > 0 && !read.ticket.is_some_and(|t| t.is_current()) => {
                    read.ticket = None;
                    let rechecked = read
                        .found
                        .take()
                        .map(|(index, entry)| self.recheck_above(&read.key, index, entry, now));
                    read.found = rechecked;
                    read.found.as_ref().map_or(0, |(index, _)| *index)
                }
                // The common case: nothing moves.
                Some((index, _)) => *index,
            };
            promotable |= served > 0 && read.ticket.is_some();
            tally.add(self.tiers[served].slot(Count::Hits));
        }
        drop(tally);
        if promotable {
            self.promote_reads(reads);
        }
    }

    /// One layer's reads of the keys not found yet (and not ruled out by its filter).
    #[inline]
    fn read_tier<'a, Q>(&self, tier: &Tier<K, V>, reads: &mut [Read<'a, K, Q, V>], now: Timestamp)
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        if tier.filter.is_some() {
            return self.read_filtered_tier(tier, reads, now);
        }
        // A single key: one call.
        if let [read] = reads {
            if read.found.is_none() {
                let result = tier.get(&read.key, now);
                self.take(tier, read, result);
            }
            return;
        }
        // A memory tier: one pin of its map for all the keys, no batch to build; every key's
        // bucket is prefetched first, so that the cache misses of a batch overlap.
        if let Some(memory) = tier.memory() {
            reads
                .iter()
                .filter(|read| read.found.is_none())
                .for_each(|read| memory.prefetch(read.key.hash()));
            let reader = memory.pinned();
            let mut misses = 0;
            for read in reads.iter_mut().filter(|read| read.found.is_none()) {
                match reader.get_entry(read.key.borrowed(), read.key.known_hash()) {
                    Some(entry) => read.found = Some((tier.index, entry)),
                    None => misses += 1,
                }
            }
            if misses > 0 {
                self.counters.add(tier.slot(Count::Misses), misses);
            }
            return;
        }
        let asked: Vec<(usize, Probe)> = (0..reads.len())
            .filter(|&i| reads[i].found.is_none())
            .map(|i| (i, Probe::Ask))
            .collect();
        self.read_custom(tier, reads, asked, now);
    }

    /// [`read_tier`](Self::read_tier) for a tier behind a negative filter: keys the filter rules
    /// out are skipped (counted), the others asked as usual, and what the layer answered is
    /// checked against what the filter said (false positives, sampled false negatives). Out of
    /// line: an unfiltered read pays nothing for it.
    #[inline(never)]
    fn read_filtered_tier<'a, Q>(
        &self,
        tier: &Tier<K, V>,
        reads: &mut [Read<'a, K, Q, V>],
        now: Timestamp,
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let asked: Vec<(usize, Probe)> = (0..reads.len())
            .filter(|&i| reads[i].found.is_none())
            .filter_map(|i| Some((i, self.probe(tier, &reads[i].key)?)))
            .collect();
        match (tier.memory(), asked.as_slice()) {
            (_, []) => {}
            (Some(memory), _) => {
                let reader = memory.pinned();
                for &(i, probe) in &asked {
                    let result =
                        Ok(reader.get_entry(reads[i].key.borrowed(), reads[i].key.known_hash()));
                    self.take_probed(tier, &mut reads[i], result, probe);
                }
            }
            (None, [(i, probe)]) => {
                let result = tier.get(&reads[*i].key, now);
                self.take_probed(tier, &mut reads[*i], result, *probe);
            }
            (None, _) => self.read_custom(tier, reads, asked, now),
        }
    }

    /// A custom tier's batch read of the `asked` reads (index, probe): one call.
    fn read_custom<'a, Q>(
        &self,
        tier: &Tier<K, V>,
        reads: &mut [Read<'a, K, Q, V>],
        asked: Vec<(usize, Probe)>,
        now: Timestamp,
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        if asked.is_empty() {
            return;
        }
        let mut results = Vec::with_capacity(asked.len());
        {
            let keys: Vec<&Key<'a, K, Q>> = asked.iter().map(|&(i, _)| &reads[i].key).collect();
            tier.get_each(&keys, now, |_, result| results.push(result));
        }
        for (&(i, probe), result) in asked.iter().zip(results) {
            self.take_probed(tier, &mut reads[i], result, probe);
        }
    }

    /// Whether a lookup asks `tier` for `key`, by the tier's filter: `None` to skip it (counted).
    #[inline]
    pub(crate) fn probe<Q>(&self, tier: &Tier<K, V>, key: &Key<'_, K, Q>) -> Option<Probe>
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let Some(filter) = &tier.filter else {
            return Some(Probe::Ask);
        };
        match filter.probe(key.hash()) {
            Probe::Skip => {
                self.count(tier, Count::FilterSkips);
                None
            }
            probe => Some(probe),
        }
    }

    /// Records what `tier` answered for `read`: the value, a miss, or a failure.
    #[inline]
    fn take<Q>(&self, tier: &Tier<K, V>, read: &mut Read<'_, K, Q, V>, result: GetResult<V>)
    where
        Q: ?Sized,
    {
        match result {
            Ok(Some(entry)) => read.found = Some((tier.index, entry)),
            Ok(None) => self.count(tier, Count::Misses),
            Err(error) => read.failures.push(self.failure(tier, error, false)),
        }
    }

    /// [`take`](Self::take) after a probe of a filtered tier: also the filter's accounting.
    fn take_probed<Q>(
        &self,
        tier: &Tier<K, V>,
        read: &mut Read<'_, K, Q, V>,
        result: GetResult<V>,
        probe: Probe,
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        self.filter_outcome(
            tier,
            &read.key,
            probe,
            matches!(result, Ok(Some(_))),
            &result,
        );
        self.take(tier, read, result);
    }

    /// Filter accounting after a probe of `tier` that `found` the key or not.
    #[cold]
    pub(crate) fn filter_outcome<Q, T>(
        &self,
        tier: &Tier<K, V>,
        key: &Key<'_, K, Q>,
        probe: Probe,
        found: bool,
        result: &Result<T, crate::layer::LayerError>,
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let Some(filter) = &tier.filter else {
            return;
        };
        match (probe, found, result.is_ok()) {
            (Probe::Ask, false, true) => self.count(tier, Count::FilterFalsePositives),
            (Probe::Verify, true, _) => {
                self.count(tier, Count::FilterFalseNegatives);
                filter.false_negative(key.hash());
            }
            (Probe::Verify, false, true) => self.count(tier, Count::FilterSkips),
            _ => {}
        }
    }

    /// A lower layer (`source`) served `entry` while a write of the key's stripe was in flight
    /// or began during the read. The layers above were read before that write's cancellation
    /// point and may have gained a value since (an older write's copy that landed after our
    /// read of the layer, or a promotion that published before the write began): returning
    /// the lower, possibly newer value would let a later reader see the older one above it,
    /// which no linearization explains. So the layers above are read again, top down, and the
    /// first value found is served instead. Once the write has begun, no older value can
    /// appear above any more (promotions are cancelled or fail their tickets, see
    /// [`crate::protocol`]), so one more pass is enough. Failures of this pass are not
    /// reported again (the first pass did).
    fn recheck_above<Q>(
        &self,
        key: &Key<'_, K, Q>,
        source: usize,
        entry: Entry<V>,
        now: Timestamp,
    ) -> (usize, Entry<V>)
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        if broken(Broken::ReadRecheck) {
            return (source, entry);
        }
        for tier in &self.tiers[..source] {
            if let Ok(Some(above)) = tier.get(key, now) {
                return (tier.index, above);
            }
        }
        (source, entry)
    }

    /// The miss fast path of `get`: true (the miss counted) when every layer below L1 has a
    /// filter and each rules the key out, so the read needs no per-key state, no ticket and no
    /// layer call. Returns false, counting nothing, as soon as one filter cannot rule it out, or
    /// when this skip is the one to sample for false negatives: the read path then probes the
    /// filters again (its first probe draws the sample) and asks the layers.
    /// The same decisions as the read path, in the same top-down order, so a miss served here
    /// is one the read path would have served.
    #[inline]
    pub(crate) fn ruled_out_below_l1<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        if !self.filtered_below_l1 {
            return false;
        }
        let hash = self.hasher.hash_one(key);
        // One pin for every filter probed.
        let pin = crate::filter::pin();
        let all_absent = self.tiers[1..].iter().all(|tier| {
            tier.filter
                .as_ref()
                .is_some_and(|filter| filter.rules_out(&pin, hash))
        }) && crate::filter::skip_unsampled();
        if all_absent {
            self.counters.incr(RULED_OUT_BELOW_L1);
        }
        all_absent
    }

    /// Whether some layer from `from` on holds the key (no promotion, no value clone). `Err`
    /// lists the layers that failed when none held it.
    pub(crate) fn contains<Q>(
        &self,
        key: &Key<'_, K, Q>,
        from: usize,
    ) -> Result<bool, Vec<LayerFailure>>
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let now = self.clock.now();
        let mut failures = Vec::new();
        for tier in &self.tiers[from..] {
            let result = if tier.filter.is_none() {
                tier.contains(key, now)
            } else {
                let Some(probe) = self.probe(tier, key) else {
                    continue;
                };
                let result = tier.contains(key, now);
                self.filter_outcome(tier, key, probe, matches!(result, Ok(true)), &result);
                result
            };
            match result {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(error) => failures.push(self.failure(tier, error, false)),
            }
        }
        if failures.is_empty() {
            Ok(false)
        } else {
            Err(failures)
        }
    }
}

/// Counter increments gathered while consecutive ones hit the same slot, added once per run.
struct Tally<'a> {
    counters: &'a Counters,
    slot: usize,
    n: u64,
}

impl<'a> Tally<'a> {
    #[inline]
    fn new(counters: &'a Counters) -> Self {
        Tally {
            counters,
            slot: 0,
            n: 0,
        }
    }

    #[inline]
    fn add(&mut self, slot: usize) {
        if self.n > 0 && slot != self.slot {
            self.counters.add(self.slot, self.n);
            self.n = 0;
        }
        self.slot = slot;
        self.n += 1;
    }
}

impl Drop for Tally<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.n > 0 {
            self.counters.add(self.slot, self.n);
        }
    }
}
