//! The engine: ordered layers behind one API, with promotion, write-through and failure
//! reporting.
//!
//! # Order of layer operations
//!
//! - **Reads** go L1 → Ln and stop at the first hit. A failing layer is counted, remembered and
//!   skipped: the next layer may still serve the key.
//! - **Writes** (`set`, `delete`, invalidations) go **deepest first, L1 last**, under one
//!   [`WriteToken`](crate::protocol) whose version every layer stores. So a value appears in a
//!   faster layer only after every slower writable layer holds it (or something newer): if L1
//!   evicts it a moment later, the next read finds it below, never an older value. A layer the
//!   write does not target (skipped, or below L1 in L1-only mode) is invalidated in the same
//!   pass. A layer whose write fails is invalidated instead if it can be, and reported either
//!   way; the layers above it are still written, so the cache keeps serving the new value.
//! - **Promotions** copy a lower-layer hit into the writable layers above it, deepest target
//!   first, under the ticket protocol of [`crate::protocol`], with the smaller of the entry's
//!   remaining TTL and the target layer's TTL.

use crate::builder::CacheBuilder;
use crate::clock::{Clock, Timestamp};
use crate::error::{Error, LayerError};
use crate::layer::{Entry, Layer};
use crate::memory::{broken_read_recheck, MemoryLayer};
use crate::options::{Promotion, SetOptions, WriteMode};
use crate::protocol::{RawTicket, Ticket, WriteStripes, WriteToken};
use crate::report::{LayerFailure, LayerSet, Lookup, WriteReport};
use crate::stats::{Counters, LayerStats, Stats};
use crate::sync::{random_state, Arc, AtomicBool, Ordering, SegQueue};
use std::fmt;
use std::hash::Hash;
use std::time::Duration;

/// Largest number of writes a batch call keeps in flight at once (see `set_many_with`).
const BATCH_CHUNK: usize = 4096;

/// Counter indices: one request-level counter, then four per layer.
const REQUEST_MISSES: usize = 0;
const PER_LAYER: usize = 4;
const fn hits(layer: usize) -> usize {
    1 + layer * PER_LAYER
}
const fn misses(layer: usize) -> usize {
    2 + layer * PER_LAYER
}
const fn promotions(layer: usize) -> usize {
    3 + layer * PER_LAYER
}
const fn errors(layer: usize) -> usize {
    4 + layer * PER_LAYER
}

/// A layer as the engine holds it: strata's own tier is called without dynamic dispatch.
// The tiers live in one boxed slice, built once: boxing the memory tier to even the variants out
// would add a pointer chase to every L1 hit.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Tier<K, V> {
    Memory(MemoryLayer<K, V>),
    Custom(Arc<dyn Layer<K, V>>),
}

impl<K, V> Tier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    #[inline]
    fn layer(&self) -> &dyn Layer<K, V> {
        match self {
            Tier::Memory(memory) => memory,
            Tier::Custom(custom) => custom.as_ref(),
        }
    }

    #[inline]
    fn get(&self, key: &K, now: Timestamp) -> Result<Option<Entry<V>>, LayerError> {
        match self {
            Tier::Memory(memory) => memory.get(key, now),
            Tier::Custom(custom) => custom.get(key, now),
        }
    }

    /// A write; `Ok(false)` when the layer accepted it but did not keep it (only strata's
    /// memory tier can tell; see `MemoryLayer::store`).
    fn set(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<bool, LayerError> {
        match self {
            Tier::Memory(memory) => Ok(memory.store(key, entry, ticket)),
            Tier::Custom(custom) => custom.set(key, entry, ticket).map(|()| true),
        }
    }

    /// Batch writes, as [`Tier::set`] for each entry, one result per entry.
    fn set_many(&self, entries: Vec<(&K, Entry<V>, Ticket<'_>)>) -> Vec<Result<bool, LayerError>> {
        let expected = entries.len();
        match self {
            Tier::Memory(memory) => memory.store_many(entries).into_iter().map(Ok).collect(),
            Tier::Custom(custom) => fit(custom.set_many(entries), expected)
                .into_iter()
                .map(|result| result.map(|()| true))
                .collect(),
        }
    }
}

/// A promotion waiting in the deferred queue.
struct Deferred<K, V> {
    key: K,
    entry: Entry<V>,
    target: usize,
    ticket: RawTicket,
}

pub(crate) struct Parts<K, V> {
    pub(crate) tiers: Vec<Tier<K, V>>,
    pub(crate) names: Vec<Arc<str>>,
    pub(crate) ttls: Vec<Option<Duration>>,
    pub(crate) read_only: LayerSet,
    pub(crate) write_mode: WriteMode,
    pub(crate) promotion: Promotion,
    pub(crate) deferred: Option<usize>,
    pub(crate) clock: Clock,
}

struct Inner<K, V> {
    tiers: Box<[Tier<K, V>]>,
    names: Box<[Arc<str>]>,
    ttls: Box<[Option<Duration>]>,
    writable: LayerSet,
    write_mode: WriteMode,
    promotion: Promotion,
    deferred_batch: Option<usize>,
    deferred: SegQueue<Deferred<K, V>>,
    stripes: WriteStripes,
    hasher: ahash::RandomState,
    clock: Clock,
    counters: Counters,
    closed: AtomicBool,
}

/// A multi-layer cache. Cloning is cheap (a shared handle); every clone sees the same cache.
///
/// See the [crate docs](crate) for a guide and [`crate::protocol`] for the concurrency contract.
pub struct Cache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("layers", &self.inner.names)
            .field("write_mode", &self.inner.write_mode)
            .field("promotion", &self.inner.promotion)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// What a `set` must do in each layer.
struct Plan {
    targets: LayerSet,
    invalidate: LayerSet,
    ttl: Option<Duration>,
    /// Whether some written entry gets a TTL (then the write reads the precise time).
    timed: bool,
}

impl Plan {
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

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts building a cache.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }

    pub(crate) fn from_parts(parts: Parts<K, V>) -> Self {
        let layers = parts.tiers.len();
        let mut writable = LayerSet::empty();
        for index in (0..layers).filter(|&i| !parts.read_only.contains(i)) {
            writable.insert(index);
        }
        Cache {
            inner: Arc::new(Inner {
                tiers: parts.tiers.into(),
                names: parts.names.into(),
                ttls: parts.ttls.into(),
                writable,
                write_mode: parts.write_mode,
                promotion: parts.promotion,
                deferred_batch: parts.deferred,
                deferred: SegQueue::new(),
                stripes: WriteStripes::new(),
                hasher: random_state(),
                clock: parts.clock,
                counters: Counters::new(1 + layers * PER_LAYER),
                closed: AtomicBool::new(false),
            }),
        }
    }

    // ----- reads -------------------------------------------------------------------------

    /// The value of `key`, from the first layer that has it; `Ok(None)` on a miss.
    ///
    /// A failing layer does not fail the read if another layer serves the key. If no layer
    /// served it and some layer failed, the answer is [`Error::Unavailable`]: the key may exist
    /// in the layer that could not be asked. [`Cache::try_get`] reports failures even on a hit.
    #[inline]
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        // The L1 hit fast path: no clock read unless the entry can expire, one counter bump on
        // this thread's own stripe.
        if let Tier::Memory(l1) = &inner.tiers[0] {
            if let Some(value) = l1.get_value(key) {
                inner.counters.incr(hits(0));
                return Ok(Some(value));
            }
            inner.counters.incr(misses(0));
            return inner.lookup(key, 1).into_result();
        }
        inner.lookup(key, 0).into_result()
    }

    /// Like [`get`](Cache::get), with the layer that served the value and every layer failure.
    pub fn try_get(&self, key: &K) -> Result<Lookup<V>, Error> {
        self.inner.check_open()?;
        Ok(self.inner.lookup(key, 0))
    }

    /// Reads one layer by name: no promotion, no request-level counting.
    pub fn get_from_layer(&self, layer: &str, key: &K) -> Result<Option<V>, Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        let index = inner.index_of(layer)?;
        match inner.tiers[index].get(key, inner.clock.now()) {
            Ok(entry) => Ok(entry.map(|entry| entry.value)),
            Err(error) => {
                inner.counters.incr(errors(index));
                Err(Error::Layer {
                    layer: inner.names[index].clone(),
                    error,
                })
            }
        }
    }

    /// Whether some layer holds `key`. No promotion, no value clone.
    pub fn exists(&self, key: &K) -> Result<bool, Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        let now = inner.clock.now();
        let mut failures = Vec::new();
        for (index, tier) in inner.tiers.iter().enumerate() {
            match tier.layer().contains(key, now) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(error) => failures.push(inner.failure(index, error, false)),
            }
        }
        if failures.is_empty() {
            Ok(false)
        } else {
            Err(Error::Unavailable(failures))
        }
    }

    /// Looks up several keys with one pass per layer (one guard pin per in-memory tier).
    /// One result per key, in order, each what [`get`](Cache::get) would have returned.
    pub fn get_many(&self, keys: &[K]) -> Vec<Result<Option<V>, Error>> {
        let inner = &*self.inner;
        if inner.check_open().is_err() {
            return keys.iter().map(|_| Err(Error::Closed)).collect();
        }
        let now = inner.clock.now();
        let mut values: Vec<Option<V>> = keys.iter().map(|_| None).collect();
        let mut failures: Vec<(usize, LayerFailure)> = Vec::new();
        let mut tickets: Vec<Option<Ticket<'_>>> = Vec::new();
        let mut hits_found: Vec<(usize, usize, Entry<V>)> = Vec::new();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        for (index, tier) in inner.tiers.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            if index == 1 {
                // Before the first lower-layer read, as in `lookup`.
                tickets = keys.iter().map(|_| None).collect();
                for &k in &pending {
                    tickets[k] = inner.stripes.ticket(inner.hash(&keys[k]));
                }
            }
            let asked: Vec<&K> = pending.iter().map(|&k| &keys[k]).collect();
            let results = fit(tier.layer().get_many(&asked, now), asked.len());
            let mut missing = Vec::new();
            for (&k, result) in pending.iter().zip(results) {
                match result {
                    // Lower-layer hits are counted once `recheck_above` has had its say.
                    Ok(Some(entry)) if index > 0 => hits_found.push((k, index, entry)),
                    Ok(Some(entry)) => {
                        inner.counters.incr(hits(index));
                        values[k] = Some(entry.value);
                    }
                    Ok(None) => {
                        inner.counters.incr(misses(index));
                        missing.push(k);
                    }
                    Err(error) => {
                        failures.push((k, inner.failure(index, error, false)));
                        missing.push(k);
                    }
                }
            }
            pending = missing;
        }
        inner.counters.add(REQUEST_MISSES, pending.len() as u64);
        // As in `lookup`: a lower-layer hit that overlapped a write reads the layers above
        // again, and is then served without promotion (its ticket is stale anyway).
        hits_found.retain_mut(|(k, source, entry)| {
            let current = tickets
                .get(*k)
                .copied()
                .flatten()
                .is_some_and(|t| t.is_current());
            if !current {
                let (index, served) = inner.recheck_above(&keys[*k], *source, entry.clone(), now);
                inner.counters.incr(hits(index));
                values[*k] = Some(served.value);
                return false;
            }
            inner.counters.incr(hits(*source));
            values[*k] = Some(entry.value.clone());
            true
        });
        // Promotions: queued when deferred, else one batch per target layer, deepest first.
        if inner.deferred_batch.is_some() {
            for (k, source, entry) in &hits_found {
                if let Some(ticket) = tickets.get(*k).copied().flatten() {
                    for target in (0..*source)
                        .rev()
                        .filter(|&t| inner.promotes_into(t, *source))
                    {
                        inner.defer(
                            &keys[*k],
                            inner.promoted_entry(entry, target, &ticket),
                            target,
                            &ticket,
                        );
                    }
                }
            }
        } else if inner.promotion != Promotion::Off && !hits_found.is_empty() {
            for target in (0..inner.tiers.len() - 1).rev() {
                let batch: Vec<(&K, Entry<V>, Ticket<'_>)> = hits_found
                    .iter()
                    .filter(|(_, source, _)| inner.promotes_into(target, *source))
                    .filter_map(|(k, _, entry)| {
                        let ticket = tickets.get(*k).copied().flatten()?;
                        Some((
                            &keys[*k],
                            inner.promoted_entry(entry, target, &ticket),
                            ticket,
                        ))
                    })
                    .collect();
                inner.apply_promotions(target, batch);
            }
        }
        let mut results: Vec<Result<Option<V>, Error>> = values.into_iter().map(Ok).collect();
        for (k, failure) in failures {
            if let Ok(None) = &results[k] {
                results[k] = Err(Error::Unavailable(vec![failure]));
            } else if let Err(Error::Unavailable(list)) = &mut results[k] {
                list.push(failure);
            }
        }
        results
    }

    // ----- writes ------------------------------------------------------------------------

    /// Stores `value` under `key` with the cache's write mode and each layer's TTL.
    ///
    /// Returns which layers were written and invalidated; if any layer failed, the same report
    /// comes back as [`Error::Incomplete`].
    pub fn set(&self, key: K, value: V) -> Result<WriteReport, Error> {
        self.set_with(key, value, &SetOptions::default())
    }

    /// Stores `value` under `key` with per-call options (TTL, L1 only, skipped layers).
    pub fn set_with(&self, key: K, value: V, options: &SetOptions) -> Result<WriteReport, Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        let plan = inner.plan(options)?;
        let token = inner.stripes.begin(inner.hash(&key));
        inner.cancel_pending_promotions(&key, &token);
        let written = plan.written_at(&inner.clock);
        let mut report = WriteReport::default();
        let mut value = Some(value);
        // Deepest first, L1 last (see the module docs); the last layer written gets the value
        // itself, the others a clone.
        let last_target = plan.targets.iter().next();
        for index in (0..inner.tiers.len()).rev() {
            if plan.targets.contains(index) {
                let value = if Some(index) == last_target {
                    value.take()
                } else {
                    value.clone()
                };
                if let Some(value) = value {
                    let entry = inner.entry(value, &token, written, plan.ttl, index);
                    let result = inner.tiers[index].set(&key, entry, &token.ticket());
                    inner.record_write(index, &key, &token, result, &mut report, true);
                }
            } else if plan.invalidate.contains(index) {
                let result = inner.tiers[index].layer().delete(&key, &token.ticket());
                inner.record_write(
                    index,
                    &key,
                    &token,
                    result.map(|()| true),
                    &mut report,
                    false,
                );
            }
        }
        drop(token);
        report.into_result()
    }

    /// Removes `key` from every writable layer, deepest first. Idempotent.
    pub fn delete(&self, key: &K) -> Result<WriteReport, Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        let token = inner.stripes.begin(inner.hash(key));
        inner.cancel_pending_promotions(key, &token);
        let mut report = WriteReport::default();
        for index in (0..inner.tiers.len())
            .rev()
            .filter(|&i| inner.writable.contains(i))
        {
            let result = inner.tiers[index].layer().delete(key, &token.ticket());
            inner.record_write(
                index,
                key,
                &token,
                result.map(|()| true),
                &mut report,
                false,
            );
        }
        drop(token);
        report.into_result()
    }

    /// Stores several entries with one pass per layer. One result per entry, in order, each
    /// what [`set`](Cache::set) would have returned.
    pub fn set_many(&self, items: Vec<(K, V)>) -> Vec<Result<WriteReport, Error>> {
        self.set_many_with(items, &SetOptions::default())
    }

    /// [`set_many`](Cache::set_many) with per-call options applied to every entry.
    pub fn set_many_with(
        &self,
        mut items: Vec<(K, V)>,
        options: &SetOptions,
    ) -> Vec<Result<WriteReport, Error>> {
        // Each write of a batch holds a write token until the batch is done; chunks keep the
        // tokens of one stripe far below the in-flight field's capacity (see `protocol`).
        let mut results = Vec::with_capacity(items.len());
        while items.len() > BATCH_CHUNK {
            let rest = items.split_off(BATCH_CHUNK);
            results.extend(self.set_chunk(items, options));
            items = rest;
        }
        results.extend(self.set_chunk(items, options));
        results
    }

    fn set_chunk(
        &self,
        items: Vec<(K, V)>,
        options: &SetOptions,
    ) -> Vec<Result<WriteReport, Error>> {
        let inner = &*self.inner;
        let plan = match inner.check_open().and_then(|()| inner.plan(options)) {
            Ok(plan) => plan,
            Err(error) => return items.iter().map(|_| Err(error.clone())).collect(),
        };
        let tokens: Vec<WriteToken<'_>> = items
            .iter()
            .map(|(key, _)| {
                let token = inner.stripes.begin(inner.hash(key));
                inner.cancel_pending_promotions(key, &token);
                token
            })
            .collect();
        let written = plan.written_at(&inner.clock);
        let mut reports: Vec<WriteReport> = items.iter().map(|_| WriteReport::default()).collect();
        let (keys, mut values): (Vec<K>, Vec<Option<V>>) =
            items.into_iter().map(|(k, v)| (k, Some(v))).unzip();
        let last_target = plan.targets.iter().next();
        for index in (0..inner.tiers.len()).rev() {
            let layer = inner.tiers[index].layer();
            if plan.targets.contains(index) {
                let last = Some(index) == last_target;
                let entries: Vec<(&K, Entry<V>, Ticket<'_>)> = keys
                    .iter()
                    .zip(values.iter_mut())
                    .zip(&tokens)
                    .filter_map(|((key, value), token)| {
                        let value = if last { value.take() } else { value.clone() }?;
                        Some((
                            key,
                            inner.entry(value, token, written, plan.ttl, index),
                            token.ticket(),
                        ))
                    })
                    .collect();
                let results = fit(inner.tiers[index].set_many(entries), keys.len());
                for (k, result) in results.into_iter().enumerate() {
                    inner.record_write(index, &keys[k], &tokens[k], result, &mut reports[k], true);
                }
            } else if plan.invalidate.contains(index) {
                let deletes: Vec<(&K, Ticket<'_>)> = keys
                    .iter()
                    .zip(&tokens)
                    .map(|(k, t)| (k, t.ticket()))
                    .collect();
                let results = fit(layer.delete_many(&deletes), keys.len());
                for (k, result) in results.into_iter().enumerate() {
                    inner.record_write(
                        index,
                        &keys[k],
                        &tokens[k],
                        result.map(|()| true),
                        &mut reports[k],
                        false,
                    );
                }
            }
        }
        drop(tokens);
        reports.into_iter().map(WriteReport::into_result).collect()
    }

    /// Deletes several keys with one pass per layer. One result per key, in order.
    pub fn delete_many(&self, keys: &[K]) -> Vec<Result<WriteReport, Error>> {
        keys.chunks(BATCH_CHUNK.max(1))
            .flat_map(|chunk| self.delete_chunk(chunk))
            .collect()
    }

    fn delete_chunk(&self, keys: &[K]) -> Vec<Result<WriteReport, Error>> {
        let inner = &*self.inner;
        if inner.check_open().is_err() {
            return keys.iter().map(|_| Err(Error::Closed)).collect();
        }
        let tokens: Vec<WriteToken<'_>> = keys
            .iter()
            .map(|key| {
                let token = inner.stripes.begin(inner.hash(key));
                inner.cancel_pending_promotions(key, &token);
                token
            })
            .collect();
        let deletes: Vec<(&K, Ticket<'_>)> = keys
            .iter()
            .zip(&tokens)
            .map(|(k, t)| (k, t.ticket()))
            .collect();
        let mut reports: Vec<WriteReport> = keys.iter().map(|_| WriteReport::default()).collect();
        for index in (0..inner.tiers.len())
            .rev()
            .filter(|&i| inner.writable.contains(i))
        {
            let results = fit(inner.tiers[index].layer().delete_many(&deletes), keys.len());
            for (k, result) in results.into_iter().enumerate() {
                inner.record_write(
                    index,
                    &keys[k],
                    &tokens[k],
                    result.map(|()| true),
                    &mut reports[k],
                    false,
                );
            }
        }
        drop(tokens);
        reports.into_iter().map(WriteReport::into_result).collect()
    }

    // ----- promotion queue ---------------------------------------------------------------

    /// Applies every queued promotion now (with [`deferred_promotion`]). Returns how many were
    /// promoted; queued promotions overtaken by a write are dropped, as the protocol requires.
    ///
    /// [`deferred_promotion`]: CacheBuilder::deferred_promotion
    pub fn run_pending_promotions(&self) -> usize {
        if self.inner.check_open().is_err() {
            return 0;
        }
        self.inner.drain_deferred(usize::MAX)
    }

    // ----- iteration, stats, lifecycle ---------------------------------------------------

    /// Calls `f` for every live entry of the named layer (if the layer can enumerate).
    pub fn for_each_in_layer(&self, layer: &str, mut f: impl FnMut(&K, &V)) -> Result<(), Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        let index = inner.index_of(layer)?;
        inner.tiers[index]
            .layer()
            .for_each(inner.clock.now(), &mut f)
            .map_err(|error| {
                inner.counters.incr(errors(index));
                Error::Layer {
                    layer: inner.names[index].clone(),
                    error,
                }
            })
    }

    /// The live entries of the named layer, cloned.
    pub fn entries(&self, layer: &str) -> Result<Vec<(K, V)>, Error> {
        let mut out = Vec::new();
        self.for_each_in_layer(layer, |k, v| out.push((k.clone(), v.clone())))?;
        Ok(out)
    }

    /// The keys of the named layer.
    pub fn keys(&self, layer: &str) -> Result<Vec<K>, Error> {
        let mut out = Vec::new();
        self.for_each_in_layer(layer, |k, _| out.push(k.clone()))?;
        Ok(out)
    }

    /// The layers' names, L1 first.
    pub fn layer_names(&self) -> impl Iterator<Item = &str> {
        self.inner.names.iter().map(|name| &**name)
    }

    /// A snapshot of the counters (summed over stripes; concurrent operations may or may not
    /// be included).
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let layers: Vec<LayerStats> = inner
            .tiers
            .iter()
            .enumerate()
            .map(|(index, tier)| {
                let own = tier.layer().counters();
                LayerStats {
                    name: inner.names[index].to_string(),
                    hits: inner.counters.sum(hits(index)),
                    misses: inner.counters.sum(misses(index)),
                    promotions_in: inner.counters.sum(promotions(index)),
                    evictions: own.evictions,
                    expirations: own.expirations,
                    dropped_writes: own.dropped,
                    errors: inner.counters.sum(errors(index)),
                    len: own.len,
                }
            })
            .collect();
        Stats {
            hits: layers.iter().map(|layer| layer.hits).sum(),
            misses: inner.counters.sum(REQUEST_MISSES),
            layers,
        }
    }

    /// Closes the cache: every later operation returns [`Error::Closed`], each layer's `close`
    /// is called once, and in-memory tiers free their entries. Idempotent.
    pub fn close(&self) {
        let inner = &*self.inner;
        // SeqCst: an operation that starts after `close` returns must see the flag.
        if inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        while inner.deferred.pop().is_some() {}
        for tier in inner.tiers.iter() {
            tier.layer().close();
        }
    }

    /// Whether [`close`](Cache::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    #[inline]
    fn check_open(&self) -> Result<(), Error> {
        // Acquire: pairs with the SeqCst swap in `close`; an operation ordered after `close`
        // returned sees the flag.
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    fn index_of(&self, name: &str) -> Result<usize, Error> {
        self.names
            .iter()
            .position(|n| &**n == name)
            .ok_or_else(|| Error::UnknownLayer(name.to_owned()))
    }

    fn failure(&self, index: usize, error: LayerError, invalidated: bool) -> LayerFailure {
        self.counters.incr(errors(index));
        LayerFailure {
            index,
            layer: self.names[index].clone(),
            error,
            invalidated,
        }
    }

    /// Reads layers from `from` on; counts each layer's hit or miss and the request's miss.
    ///
    /// A ticket is taken just before the first lower-layer read: promotions need it, and so does
    /// linearizability. If a lower layer served the value and a write of the stripe was in
    /// flight or began during the read, the layers above are read once more (see
    /// [`Inner::recheck_above`]).
    fn lookup(&self, key: &K, from: usize) -> Lookup<V> {
        let now = self.clock.now();
        let mut failures = Vec::new();
        let mut ticket = None;
        for index in from..self.tiers.len() {
            if index == from.max(1) {
                ticket = self.stripes.ticket(self.hash(key));
            }
            match self.tiers[index].get(key, now) {
                Ok(Some(entry)) => {
                    let (index, entry) = if index > 0 && !ticket.is_some_and(|t| t.is_current()) {
                        self.recheck_above(key, index, entry, now)
                    } else {
                        (index, entry)
                    };
                    self.counters.incr(hits(index));
                    if let (true, Some(ticket)) = (index > 0, ticket) {
                        self.promote(key, &entry, index, ticket);
                    }
                    return Lookup {
                        value: Some(entry.value),
                        served_by: Some(index),
                        failures,
                    };
                }
                Ok(None) => self.counters.incr(misses(index)),
                Err(error) => failures.push(self.failure(index, error, false)),
            }
        }
        self.counters.incr(REQUEST_MISSES);
        Lookup {
            value: None,
            served_by: None,
            failures,
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
    fn recheck_above(
        &self,
        key: &K,
        source: usize,
        entry: Entry<V>,
        now: Timestamp,
    ) -> (usize, Entry<V>) {
        if broken_read_recheck() {
            return (source, entry);
        }
        for index in 0..source {
            if let Ok(Some(above)) = self.tiers[index].get(key, now) {
                return (index, above);
            }
        }
        (source, entry)
    }

    /// Called right after a write's `begin`, before it touches any layer: cancels the key's
    /// pending promotions in the in-memory tiers above the deepest layer, if a promotion of
    /// the stripe is between its insert and its publication (see "Promotions that publish
    /// late" in [`crate::protocol`]). The common case is one load of the stripe's own line.
    fn cancel_pending_promotions(&self, key: &K, token: &WriteToken<'_>) {
        if !token.promotions_publishing() {
            return;
        }
        for tier in &self.tiers[..self.tiers.len() - 1] {
            if let Tier::Memory(memory) = tier {
                memory.cancel_pending_promotion(key);
            }
        }
    }

    fn promotes_into(&self, target: usize, source: usize) -> bool {
        target < source
            && self.writable.contains(target)
            && match self.promotion {
                Promotion::Off => false,
                Promotion::AllAbove => true,
                Promotion::L1Only => target == 0,
            }
    }

    /// The entry as promoted into `target`: expiry is the earlier of the source entry's and the
    /// target layer's TTL from now.
    fn promoted_entry(&self, entry: &Entry<V>, target: usize, ticket: &Ticket<'_>) -> Entry<V> {
        Entry {
            value: entry.value.clone(),
            // Clamped: a layer reporting versions of its own must not make later writes of this
            // cache look older (see `Ticket::version`).
            version: entry.version.min(ticket.version()),
            expires_at: entry.expires_at.min(self.clock.expiry(self.ttls[target])),
        }
    }

    fn promote(&self, key: &K, entry: &Entry<V>, source: usize, ticket: Ticket<'_>) {
        for target in (0..source).rev().filter(|&t| self.promotes_into(t, source)) {
            let promoted = self.promoted_entry(entry, target, &ticket);
            if self.deferred_batch.is_some() {
                self.defer(key, promoted, target, &ticket);
            } else {
                match self.tiers[target].layer().promote(key, promoted, &ticket) {
                    Ok(true) => self.counters.incr(promotions(target)),
                    Ok(false) => {}
                    Err(_) => self.counters.incr(errors(target)),
                }
            }
        }
    }

    /// Queues a promotion with its ticket; applies a batch once the queue holds one.
    fn defer(&self, key: &K, entry: Entry<V>, target: usize, ticket: &Ticket<'_>) {
        self.deferred.push(Deferred {
            key: key.clone(),
            entry,
            target,
            ticket: self.stripes.detach(ticket),
        });
        if let Some(batch) = self.deferred_batch {
            if self.deferred.len() >= batch {
                self.drain_deferred(batch);
            }
        }
    }

    /// Applies a batch of promotions into one layer; returns how many landed.
    fn apply_promotions(&self, target: usize, batch: Vec<(&K, Entry<V>, Ticket<'_>)>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let mut landed = 0;
        let expected = batch.len();
        for result in fit(self.tiers[target].layer().promote_many(batch), expected) {
            match result {
                Ok(true) => {
                    self.counters.incr(promotions(target));
                    landed += 1;
                }
                Ok(false) => {}
                Err(_) => self.counters.incr(errors(target)),
            }
        }
        landed
    }

    /// Pops up to `max` queued promotions and applies them, one batch per target layer,
    /// deepest target first (the order `promote` queued them in for each key).
    ///
    /// After `close`, whatever is queued is dropped unapplied: a read that was running when
    /// `close` was called can still queue a promotion after `close` emptied the queue, and
    /// applying it later would call a closed layer.
    fn drain_deferred(&self, max: usize) -> usize {
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
        let mut landed = 0;
        for target in (0..self.tiers.len()).rev() {
            let batch: Vec<(&K, Entry<V>, Ticket<'_>)> = taken
                .iter()
                .filter(|item| item.target == target)
                .map(|item| {
                    (
                        &item.key,
                        item.entry.clone(),
                        self.stripes.attach(item.ticket),
                    )
                })
                .collect();
            landed += self.apply_promotions(target, batch);
        }
        landed
    }

    fn plan(&self, options: &SetOptions) -> Result<Plan, Error> {
        if options.ttl.is_some_and(|ttl| ttl.as_millis() == 0) {
            return Err(Error::ZeroTtl);
        }
        let mut skip = LayerSet::empty();
        for name in &options.skip {
            skip.insert(self.index_of(name)?);
        }
        let mut targets = LayerSet::empty();
        let mut invalidate = LayerSet::empty();
        let mode = options.mode.unwrap_or(self.write_mode);
        for index in self.writable.iter() {
            let wanted = match mode {
                WriteMode::WriteThrough => true,
                WriteMode::L1Only => index == 0,
            };
            if wanted && !skip.contains(index) {
                targets.insert(index);
            } else {
                invalidate.insert(index);
            }
        }
        let timed = options.ttl.is_some() || targets.iter().any(|i| self.ttls[i].is_some());
        Ok(Plan {
            targets,
            invalidate,
            ttl: options.ttl,
            timed,
        })
    }

    fn entry(
        &self,
        value: V,
        token: &WriteToken<'_>,
        written: Timestamp,
        ttl: Option<Duration>,
        index: usize,
    ) -> Entry<V> {
        Entry {
            value,
            version: token.version(),
            expires_at: written.after(ttl.or(self.ttls[index])),
        }
    }

    /// Records one layer's answer to a write. A failed `set` is followed by an invalidation
    /// attempt, so the layer does not keep serving an older value.
    fn record_write(
        &self,
        index: usize,
        key: &K,
        token: &WriteToken<'_>,
        result: Result<bool, LayerError>,
        report: &mut WriteReport,
        was_set: bool,
    ) {
        match result {
            Ok(true) if was_set => report.written.insert(index),
            Ok(false) if was_set => report.dropped.insert(index),
            Ok(_) => report.invalidated.insert(index),
            Err(error) => {
                let invalidated = was_set
                    && self.tiers[index]
                        .layer()
                        .delete(key, &token.ticket())
                        .is_ok();
                let failure = self.failure(index, error, invalidated);
                report.failures.push(failure);
            }
        }
    }
}

/// A custom layer's batch answer, made to have exactly one result per key: missing results
/// become errors, extra ones are dropped (a layer must not be able to panic the engine).
fn fit<T>(mut results: Vec<Result<T, LayerError>>, expected: usize) -> Vec<Result<T, LayerError>> {
    if results.len() != expected {
        let got = results.len();
        results.truncate(expected);
        results.resize_with(expected, || {
            Err(LayerError::Unavailable(format!(
                "the layer returned {got} results for a batch of {expected}"
            )))
        });
    }
    results
}

impl<V> Lookup<V> {
    fn into_result(self) -> Result<Option<V>, Error> {
        match self.value {
            Some(value) => Ok(Some(value)),
            None if self.failures.is_empty() => Ok(None),
            None => Err(Error::Unavailable(self.failures)),
        }
    }
}

impl WriteReport {
    fn into_result(self) -> Result<WriteReport, Error> {
        if self.failures.is_empty() {
            Ok(self)
        } else {
            Err(Error::Incomplete(self))
        }
    }
}
