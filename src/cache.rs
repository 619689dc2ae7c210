//! [`Cache`]: the public face of the engine (`engine/`), a cheap handle that clones share.
//!
//! Every call checks that the cache is open, hashes its key once, and runs the engine's one read
//! path or one write path (`engine/read.rs`, `engine/write.rs`) over a slice of one key or of a
//! batch. Lookups take the key borrowed (`cache.get("user:1")` on a `Cache<String, _>`), like a
//! `HashMap`; writes take it by value. The L1 hit of `get` is served here directly: one map
//! probe, no lock, no allocation.

use crate::engine::read::Read;
use crate::engine::tier::{L1_HITS, L1_MISSES, REQUEST_MISSES};
use crate::engine::write::{outcome, Write};
use crate::engine::{Engine, BATCH_CHUNK};
use crate::error::Error;
use crate::options::{DeleteOptions, SetOptions};
use crate::report::{Lookup, WriteReport};
use crate::stats::Stats;
use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

/// A multi-layer cache. Cloning is cheap (a shared handle); every clone sees the same cache.
///
/// Build one with [`Cache::builder`]. See the [crate docs](crate) for a guide and
/// [`crate::protocol`] for the concurrency contract.
pub struct Cache<K, V> {
    engine: Arc<Engine<K, V>>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache {
            engine: self.engine.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.engine.tiers.iter().map(|t| &*t.name).collect();
        f.debug_struct("Cache")
            .field("layers", &names)
            .field("write_mode", &self.engine.config.write_mode)
            .field("promotion", &self.engine.config.promotion)
            .finish()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn from_engine(engine: Engine<K, V>) -> Self {
        Cache {
            engine: Arc::new(engine),
        }
    }

    /// Starts the maintenance thread (see `maintenance.rs`).
    #[cfg(not(loom))]
    pub(crate) fn start_maintenance(&self, every: std::time::Duration) -> std::io::Result<()> {
        crate::maintenance::spawn(&self.engine, every)
    }

    // ----- reads -------------------------------------------------------------------------

    /// The value of `key`, from the first layer that has it; `Ok(None)` on a miss.
    ///
    /// A failing layer does not fail the read if another layer serves the key. If no layer
    /// served it and some layer failed, the answer is [`Error::Unavailable`]: the key may exist
    /// in the layer that could not be asked. [`Cache::lookup`] reports failures even on a hit.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let engine = &*self.engine;
        engine.check_open()?;
        let l1 = &engine.tiers[0];
        let from = match l1.memory() {
            // The L1 hit fast path: no clock read unless the entry can expire, one counter bump
            // on this thread's own stripe.
            Some(memory) => match memory.get_value(key) {
                Some(value) => {
                    engine.counters.incr(L1_HITS);
                    return Ok(Some(value));
                }
                None => {
                    engine.counters.incr(L1_MISSES);
                    if engine.tiers.len() == 1 {
                        // Nothing below L1: the read path would only count the request's miss.
                        engine.counters.incr(REQUEST_MISSES);
                        return Ok(None);
                    }
                    if engine.ruled_out_below_l1(key) {
                        return Ok(None);
                    }
                    1
                }
            },
            None => 0,
        };
        self.get_from(key, from)
    }

    /// `get` past the L1 fast path: the read path from layer `from` on. A function of its own
    /// for reading's sake; inlined, because kept out of line (`#[inline(never)]`) it cost an L1
    /// hit 4 more instructions and a miss 62 more (`bench/examples/opcount.rs`, callgrind).
    #[inline]
    fn get_from<Q>(&self, key: &Q, from: usize) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let engine = &*self.engine;
        let mut reads = [Read::new(engine.key(key))];
        engine.read(&mut reads, from);
        reads[0].take_result()
    }

    /// Like [`get`](Cache::get), with the layer that served the value and every layer failure
    /// met on the way.
    pub fn lookup<Q>(&self, key: &Q) -> Result<Lookup<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let engine = &*self.engine;
        engine.check_open()?;
        let mut reads = [Read::new(engine.key(key))];
        engine.read(&mut reads, 0);
        let [read] = reads;
        Ok(read.into_lookup())
    }

    /// Reads one layer by name: no promotion, no request-level counting.
    pub fn get_from_layer<Q>(&self, layer: &str, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let engine = &*self.engine;
        engine.check_open()?;
        let tier = engine.tier_named(layer)?;
        match tier.get(&engine.key(key), engine.clock.now()) {
            Ok(entry) => Ok(entry.map(|entry| entry.value)),
            Err(error) => Err(engine.layer_error(tier, error)),
        }
    }

    /// Whether some layer holds `key`. No promotion, no value clone.
    #[doc(alias = "exists")]
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let engine = &*self.engine;
        engine.check_open()?;
        // As in `get`: a memory L1 that holds the key answers without the engine's key state.
        let from = match engine.tiers[0].memory() {
            Some(memory) if memory.contains_key(key) => return Ok(true),
            Some(_) => 1,
            None => 0,
        };
        engine
            .contains(&engine.key(key), from)
            .map_err(Error::Unavailable)
    }

    /// Looks up several keys with one pass per layer (one batch call per custom layer). One
    /// result per key, in order, each what [`get`](Cache::get) would have returned.
    pub fn get_many<'q, Q>(
        &self,
        keys: impl IntoIterator<Item = &'q Q>,
    ) -> Vec<Result<Option<V>, Error>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized + 'q,
    {
        let engine = &*self.engine;
        let keys = keys.into_iter();
        if engine.check_open().is_err() {
            return keys.map(|_| Err(Error::Closed)).collect();
        }
        let mut reads: Vec<Read<'_, K, Q, V>> =
            keys.map(|key| Read::new(engine.key(key))).collect();
        engine.read(&mut reads, 0);
        let mut results = Vec::with_capacity(reads.len());
        results.extend(reads.iter_mut().map(Read::take_result));
        results
    }

    // ----- writes ------------------------------------------------------------------------

    /// Stores `value` under `key` with the cache's write mode and each layer's TTL.
    ///
    /// Returns which layers were written, dropped and invalidated; if any layer failed, the same
    /// report comes back as [`Error::Incomplete`].
    pub fn set(&self, key: K, value: V) -> Result<WriteReport, Error> {
        self.set_with(key, value, &SetOptions::default())
    }

    /// Stores `value` under `key` with per-call options (TTL, L1 only, skipped layers).
    pub fn set_with(&self, key: K, value: V, options: &SetOptions) -> Result<WriteReport, Error> {
        let engine = &*self.engine;
        engine.check_open()?;
        if engine.sole_memory && options.is_default() {
            return Ok(engine.set_alone(key, value));
        }
        let plan = engine.plan_set(options)?;
        let writes = [engine.begin(engine.owned_key(key), Some(value))];
        let mut reports = [WriteReport::default()];
        engine.apply_writes(&writes, &mut reports, &plan);
        drop(writes);
        let [report] = reports;
        outcome(report)
    }

    /// Stores several entries with one pass per layer. One result per entry, in order, each
    /// what [`set`](Cache::set) would have returned.
    pub fn set_many(&self, items: Vec<(K, V)>) -> Vec<Result<WriteReport, Error>> {
        self.set_many_with(items, &SetOptions::default())
    }

    /// [`set_many`](Cache::set_many) with per-call options applied to every entry.
    pub fn set_many_with(
        &self,
        items: Vec<(K, V)>,
        options: &SetOptions,
    ) -> Vec<Result<WriteReport, Error>> {
        let engine = &*self.engine;
        let plan = match engine.check_open().and_then(|()| engine.plan_set(options)) {
            Ok(plan) => plan,
            Err(error) => return items.iter().map(|_| Err(error.clone())).collect(),
        };
        let mut results = Vec::with_capacity(items.len());
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let writes: Vec<Write<'_, K, K, V>> = items
                .by_ref()
                .take(BATCH_CHUNK)
                .map(|(key, value)| engine.begin(engine.owned_key(key), Some(value)))
                .collect();
            let mut reports: Vec<WriteReport> =
                (0..writes.len()).map(|_| WriteReport::default()).collect();
            engine.apply_batch(&writes, &mut reports, &plan);
            drop(writes);
            results.extend(reports.into_iter().map(outcome));
        }
        results
    }

    /// Removes `key` from every writable layer, deepest first. Idempotent.
    pub fn delete<Q>(&self, key: &Q) -> Result<WriteReport, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.delete_with(key, &DeleteOptions::default())
    }

    /// Removes `key` with per-call options (skipped layers, local layers only).
    pub fn delete_with<Q>(&self, key: &Q, options: &DeleteOptions) -> Result<WriteReport, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let engine = &*self.engine;
        engine.check_open()?;
        if engine.sole_memory && options.is_default() {
            return Ok(engine.delete_alone(key));
        }
        let plan = engine.plan_delete(options)?;
        let writes = [engine.begin(engine.key(key), None)];
        let mut reports = [WriteReport::default()];
        engine.apply_writes(&writes, &mut reports, &plan);
        drop(writes);
        let [report] = reports;
        outcome(report)
    }

    /// Deletes several keys with one pass per layer. One result per key, in order.
    pub fn delete_many<'q, Q>(
        &self,
        keys: impl IntoIterator<Item = &'q Q>,
    ) -> Vec<Result<WriteReport, Error>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized + 'q,
    {
        self.delete_many_with(keys, &DeleteOptions::default())
    }

    /// [`delete_many`](Cache::delete_many) with per-call options applied to every key.
    pub fn delete_many_with<'q, Q>(
        &self,
        keys: impl IntoIterator<Item = &'q Q>,
        options: &DeleteOptions,
    ) -> Vec<Result<WriteReport, Error>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized + 'q,
    {
        let engine = &*self.engine;
        let mut keys = keys.into_iter().peekable();
        let plan = match engine
            .check_open()
            .and_then(|()| engine.plan_delete(options))
        {
            Ok(plan) => plan,
            Err(error) => return keys.map(|_| Err(error.clone())).collect(),
        };
        let mut results = Vec::new();
        while keys.peek().is_some() {
            let writes: Vec<Write<'_, K, Q, V>> = keys
                .by_ref()
                .take(BATCH_CHUNK)
                .map(|key| engine.begin(engine.key(key), None))
                .collect();
            let mut reports: Vec<WriteReport> =
                (0..writes.len()).map(|_| WriteReport::default()).collect();
            engine.apply_batch(&writes, &mut reports, &plan);
            drop(writes);
            results.extend(reports.into_iter().map(outcome));
        }
        results
    }

    /// Removes every entry of the in-process memory tiers, leaving custom layers (a remote
    /// store, a database) alone: moka's `invalidate_all`, for the local tiers. Each key goes
    /// through a [`local_only`](DeleteOptions::local_only) delete, so a promotion racing the
    /// clear cannot bring a removed value back; entries written while the clear runs may
    /// survive it. Returns how many keys it found and deleted.
    ///
    /// A remote layer shared by several caches calls this when it can no longer tell this
    /// cache of other caches' writes (its invalidation connection dropped).
    pub fn clear_local(&self) -> Result<usize, Error> {
        let engine = &*self.engine;
        engine.check_open()?;
        let now = engine.clock.now();
        let mut keys = std::collections::HashSet::new();
        for tier in engine.tiers.iter().filter(|tier| tier.memory().is_some()) {
            tier.layer()
                .for_each(now, &mut |key, _| {
                    keys.insert(key.clone());
                })
                .map_err(|error| engine.layer_error(tier, error))?;
        }
        let local = DeleteOptions::new().local_only();
        let deleted = keys.len();
        for result in self.delete_many_with(keys.iter(), &local) {
            result?;
        }
        Ok(deleted)
    }

    // ----- pending work ------------------------------------------------------------------

    /// Runs the cache's pending maintenance now: applies every queued promotion (with
    /// [`deferred_promotion`](crate::CacheBuilder::deferred_promotion); moka's name for the
    /// same idea). Queues are also drained on their own, by the reads that fill them, so a
    /// cache that never calls this still promotes. Then rebuilds the negative filters that ask
    /// for it (too full, too many false positives, or not ready yet), never on a request.
    /// Returns how many were promoted; queued promotions overtaken by a write are dropped, as
    /// the protocol requires. After [`close`](Cache::close), does nothing. A builder can have a
    /// thread call it every interval ([`CacheBuilder::maintenance`](crate::CacheBuilder::maintenance)).
    pub fn run_pending_tasks(&self) -> usize {
        if self.engine.check_open().is_err() {
            return 0;
        }
        self.engine.run_pending_tasks()
    }

    /// Rebuilds every negative filter now from its layer's listing (for example after loading
    /// a layer from outside the cache). Returns how many filters were rebuilt; a layer that
    /// cannot list its keys keeps its filter (counted as an error of the layer).
    pub fn rebuild_filters(&self) -> usize {
        if self.engine.check_open().is_err() {
            return 0;
        }
        self.engine.maintain_filters(true)
    }

    // ----- iteration, stats, lifecycle ---------------------------------------------------

    /// Calls `f` for every live entry of the named layer (if the layer can enumerate). `f` may
    /// use the cache, writes included: a memory tier hands it a copy of each value, not a
    /// reference into its map.
    pub fn for_each_in_layer(&self, layer: &str, mut f: impl FnMut(&K, &V)) -> Result<(), Error> {
        let engine = &*self.engine;
        engine.check_open()?;
        let tier = engine.tier_named(layer)?;
        tier.layer()
            .for_each(engine.clock.now(), &mut f)
            .map_err(|error| engine.layer_error(tier, error))
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
        self.engine.tiers.iter().map(|tier| &*tier.name)
    }

    /// A snapshot of the counters (summed over stripes; concurrent operations may or may not
    /// be included).
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Closes the cache: every later operation returns [`Error::Closed`], each layer's `close`
    /// is called once, and in-memory tiers free their entries. Idempotent.
    pub fn close(&self) {
        self.engine.close();
    }

    /// Whether [`close`](Cache::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.engine.is_closed()
    }
}
