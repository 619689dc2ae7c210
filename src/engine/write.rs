//! The write path, shared by `set`, `delete` and their batch forms.
//!
//! 1. **Plan** (once per call): which writable layers get the value (`targets`) and which are
//!    invalidated (every other writable layer: skipped, below L1 in L1-only mode, or all of
//!    them for a delete).
//! 2. **Begin** (per key): take a write token from the key's stripe — its version is stored with
//!    the value in every layer — and cancel the key's pending promotions if any is publishing
//!    (see [`crate::protocol`]).
//! 3. **Apply**, deepest layer first, L1 last: a target gets the entry (the last target the
//!    value itself, the others a clone), an invalidated layer a delete. A layer that fails a
//!    write is invalidated instead if it can be; every layer's outcome goes in the key's
//!    [`WriteReport`]: written, dropped (accepted, not kept), invalidated, or failed.
//! 4. **Finish**: dropping the tokens marks the writes done (the shortcut, below, took none).
//!
//! A batch keeps at most `BATCH_CHUNK` writes in flight; each layer sees one call per chunk.
//!
//! **The shortcut.** A single-key `set` or `delete` with default options on a cache that is one
//! writable memory tier without a filter (the engine's `sole_memory`) runs the same steps with
//! nothing to plan or loop over: begin, one call into the tier, the report, finish
//! ([`set_alone`](Engine::set_alone), [`delete_alone`](Engine::delete_alone)). It calls the
//! same tier entry points as step 3; what it skips is the plan, the per-layer loop, the
//! filter, the value's clone bookkeeping and the result callbacks, about 120 of a
//! 490-instruction overwrite (PERF.md §15). It begins nothing: the cache's one tier is sole
//! (`MemoryLayer::make_sole`), ordered by its bucket locks alone, so the write takes no
//! version, no in-flight mark and no fence, and hands the tier an unconditional ticket (see
//! "One layer" in [`crate::protocol`]). Like the read path's L1 fast path, it is what a cache
//! used as a plain in-process cache pays.

use super::key::{Key, KeyRef};
use super::tier::Tier;
use super::Engine;
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::filter::NegativeFilter;
use crate::layer::{Entry, LayerError};
use crate::memory::MemoryLayer;
use crate::options::{DeleteOptions, SetOptions, WriteMode};
use crate::protocol::{Ticket, WriteToken};
use crate::report::{LayerSet, WriteReport};
use crate::sync::{broken, Broken};
use std::borrow::Borrow;
use std::cell::Cell;
use std::hash::Hash;
use std::time::Duration;

/// What a write call must do in each layer.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    targets: LayerSet,
    invalidate: LayerSet,
    ttl: Option<Duration>,
    /// Whether some written entry gets a TTL (then the write reads the precise time).
    timed: bool,
}

impl Plan {
    /// A plan that touches no layer (a placeholder while the engine is built).
    pub(super) fn nothing() -> Plan {
        Plan {
            targets: LayerSet::empty(),
            invalidate: LayerSet::empty(),
            ttl: None,
            timed: false,
        }
    }

    /// The time the write's expiries count from (see [`Clock::write_time`]); not read when no
    /// entry of the write expires.
    fn written_at(&self, clock: &Clock) -> Timestamp {
        if self.timed {
            clock.write_time()
        } else {
            Timestamp::NEVER
        }
    }
}

/// One key's write in progress: a `set` (with its value) or a delete. Its outcome goes in a
/// [`WriteReport`] kept beside it (so a layer's results can be recorded while the writes are
/// borrowed by the call into the layer).
pub(crate) struct Write<'a, K, Q: ?Sized, V> {
    key: Key<'a, K, Q>,
    /// Taken by the last layer written, cloned for the others.
    value: Cell<Option<V>>,
    token: WriteToken<'a>,
}

impl<K, V> Engine<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The plan of a `set` with `options` (the default options' plan is computed once).
    pub(crate) fn plan_set(&self, options: &SetOptions) -> Result<Plan, Error> {
        if options.is_default() {
            return Ok(self.plans.set);
        }
        self.make_set_plan(options)
    }

    pub(super) fn make_set_plan(&self, options: &SetOptions) -> Result<Plan, Error> {
        if options.ttl.is_some_and(|ttl| ttl.as_millis() == 0) {
            return Err(Error::ZeroTtl);
        }
        let skip = self.layer_set(&options.skip)?;
        let mode = options.mode.unwrap_or(self.config.write_mode);
        let mut targets = LayerSet::empty();
        let mut invalidate = LayerSet::empty();
        for index in self.writable.iter() {
            let wanted = mode == WriteMode::WriteThrough || index == 0;
            if wanted && !skip.contains(index) {
                targets.insert(index);
            } else {
                invalidate.insert(index);
            }
        }
        let timed = options.ttl.is_some() || targets.iter().any(|i| self.tiers[i].ttl.is_some());
        Ok(Plan {
            targets,
            invalidate,
            ttl: options.ttl,
            timed,
        })
    }

    /// The plan of a delete with `options`: every writable layer not skipped is invalidated
    /// (the default options' plan is computed once).
    pub(crate) fn plan_delete(&self, options: &DeleteOptions) -> Result<Plan, Error> {
        if options.is_default() {
            return Ok(self.plans.delete);
        }
        self.make_delete_plan(options)
    }

    pub(super) fn make_delete_plan(&self, options: &DeleteOptions) -> Result<Plan, Error> {
        let skip = self.layer_set(&options.skip)?;
        let mut invalidate = LayerSet::empty();
        for index in self.writable.iter() {
            let local = self.tiers[index].memory().is_some();
            if !skip.contains(index) && (local || !options.local_only) {
                invalidate.insert(index);
            }
        }
        Ok(Plan {
            targets: LayerSet::empty(),
            invalidate,
            ttl: None,
            timed: false,
        })
    }

    fn layer_set(&self, names: &[String]) -> Result<LayerSet, Error> {
        let mut set = LayerSet::empty();
        for name in names {
            set.insert(self.tier_named(name)?.index);
        }
        Ok(set)
    }

    /// Step 2 for one key: its token, with the key's pending promotions cancelled if needed.
    #[inline]
    pub(crate) fn begin<'a, Q>(&'a self, key: Key<'a, K, Q>, value: Option<V>) -> Write<'a, K, Q, V>
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let token = self.stripes.begin(key.hash());
        if token.promotions_publishing() {
            self.cancel_pending_promotions(&key);
        }
        Write {
            key,
            value: Cell::new(value),
            token,
        }
    }

    /// Cancels the key's pending promotions in the memory tiers above the deepest layer (see
    /// "Promotions that publish late" in [`crate::protocol`]).
    fn cancel_pending_promotions<Q>(&self, key: &Key<'_, K, Q>)
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        for tier in &self.tiers[..self.tiers.len() - 1] {
            if let Some(memory) = tier.memory() {
                memory.cancel_pending_promotion(key.borrowed());
            }
        }
    }

    /// Step 3 for every write of the call, deepest layer first; `reports[i]` is `writes[i]`'s.
    #[inline]
    pub(crate) fn apply_writes<Q>(
        &self,
        writes: &[Write<'_, K, Q, V>],
        reports: &mut [WriteReport],
        plan: &Plan,
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let written_at = plan.written_at(&self.clock);
        let last_target = plan.targets.iter().next();
        for tier in self.tiers.iter().rev() {
            let index = tier.index;
            if plan.targets.contains(index) {
                let last = Some(index) == last_target;
                let expires_at = written_at.after(plan.ttl.or(tier.ttl));
                // A filtered tier gets each key's bits before the key reaches it, and the
                // inserts stay announced until the tier's call returned (see `filter`).
                let inserts = tier.filter.as_deref().map(NegativeFilter::begin_inserts);
                let before = !broken(Broken::FilterInsertAfterWrite);
                let entries = writes.iter().filter_map(|write| {
                    if let (Some(inserts), true) = (&inserts, before) {
                        inserts.insert(write.key.hash());
                    }
                    let value = write.value.take()?;
                    if !last {
                        write.value.set(Some(value.clone()));
                    }
                    let version = write.token.version();
                    let entry = Entry {
                        value,
                        version,
                        expires_at,
                    };
                    Some((&write.key, entry, write.token.ticket()))
                });
                tier.set_each(entries, |i, result| {
                    self.record(index, &writes[i], &mut reports[i], result, true)
                });
                if let (Some(inserts), false) = (&inserts, before) {
                    writes
                        .iter()
                        .for_each(|write| inserts.insert(write.key.hash()));
                }
                drop(inserts);
            } else if plan.invalidate.contains(index) {
                let deletes = writes
                    .iter()
                    .map(|write| (&write.key, write.token.ticket()));
                tier.delete_each(deletes, |i, result| {
                    let result = result.map(|()| true);
                    self.record(index, &writes[i], &mut reports[i], result, false)
                });
            }
        }
    }

    /// Step 3 for a batch: as [`apply_writes`](Self::apply_writes), after prefetching the
    /// buckets of every key in every memory tier (see `Table::prefetch`), so that the batch's
    /// cache misses overlap. (Kept out of `apply_writes`: a single write has nothing to
    /// overlap, and the extra code cost it instructions.)
    pub(crate) fn apply_batch<Q>(
        &self,
        writes: &[Write<'_, K, Q, V>],
        reports: &mut [WriteReport],
        plan: &Plan,
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        for memory in self.tiers.iter().filter_map(|tier| tier.memory()) {
            writes
                .iter()
                .for_each(|write| memory.prefetch(write.key.hash()));
        }
        self.apply_writes(writes, reports, plan);
    }

    /// Records one layer's answer to a write.
    #[inline]
    fn record<Q>(
        &self,
        index: usize,
        write: &Write<'_, K, Q, V>,
        report: &mut WriteReport,
        result: Result<bool, LayerError>,
        was_set: bool,
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        match result {
            Ok(true) if was_set => report.written.insert(index),
            Ok(false) if was_set => report.dropped.insert(index),
            Ok(_) => report.invalidated.insert(index),
            Err(error) => self.record_failure(index, write, report, error, was_set),
        }
    }

    /// A layer failed a write: a failed `set` is followed by an invalidation attempt, so the
    /// layer does not keep serving an older value; the failure is reported either way.
    #[cold]
    #[inline(never)]
    fn record_failure<Q>(
        &self,
        index: usize,
        write: &Write<'_, K, Q, V>,
        report: &mut WriteReport,
        error: LayerError,
        was_set: bool,
    ) where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let tier = &self.tiers[index];
        let mut invalidated = false;
        if was_set {
            let ticket = write.token.ticket();
            tier.delete_each(std::iter::once((&write.key, ticket)), |_, result| {
                invalidated = result.is_ok()
            });
        }
        report.failures.push(self.failure(tier, error, invalidated));
    }
}

impl<K, V> Engine<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The shortcut of a `set` with default options (module docs). Only when `sole_memory`.
    #[inline]
    pub(crate) fn set_alone(&self, key: K, value: V) -> WriteReport {
        let (tier, memory) = self.sole_tier();
        let key = self.owned_key(key);
        let entry = Entry {
            value,
            // The sole tier compares no versions (see "One layer" in `protocol`).
            version: 0,
            expires_at: self.plans.set.written_at(&self.clock).after(tier.ttl),
        };
        let kept = memory.store(key.owned(), key.hash(), entry, &Ticket::unconditional());
        let mut report = WriteReport::default();
        if kept {
            report.written.insert(0);
        } else {
            report.dropped.insert(0);
        }
        report
    }

    /// The shortcut of a `delete` with default options (module docs). Only when `sole_memory`.
    #[inline]
    pub(crate) fn delete_alone<Q>(&self, key: &Q) -> WriteReport
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        let (_, memory) = self.sole_tier();
        let key = self.key(key);
        memory.remove(key.borrowed(), key.hash(), &Ticket::unconditional());
        let mut report = WriteReport::default();
        report.invalidated.insert(0);
        report
    }

    /// The one tier of a `sole_memory` cache.
    #[inline]
    fn sole_tier(&self) -> (&Tier<K, V>, &MemoryLayer<K, V>) {
        debug_assert!(self.sole_memory);
        let tier = &self.tiers[0];
        let memory = tier
            .memory()
            .expect("a sole_memory cache's tier is a memory tier");
        (tier, memory)
    }
}

/// A write's outcome as the caller sees it.
pub(crate) fn outcome(report: WriteReport) -> Result<WriteReport, Error> {
    if report.failures.is_empty() {
        Ok(report)
    } else {
        Err(Error::Incomplete(report))
    }
}
