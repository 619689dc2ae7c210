//! The differential model of strata's public API, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, which include it with `#[path = "../model.rs"]`) and the stable
//! test `tests/fuzz_model.rs` (`#[path = "../fuzz/model.rs"]`), so both check exactly the same
//! rules.
//!
//! - [`check_ops`] builds a cache from a small arbitrary [`Config`] on a manual clock, runs
//!   arbitrary [`Op`]s against it and against a reference model, and panics on any
//!   disagreement.
//! - [`check_config`] feeds arbitrary (often invalid) builder input to `Cache::builder()` and
//!   checks that the outcome is exactly the [`BuildError`] the builder's rules predict, or a
//!   cache that serves a set/get round trip.
//!
//! # The reference model
//!
//! Single-threaded, so the contract says: a `get` returns the *latest* value written to the
//! key (values are made unique per write), or nothing. Nothing may be served for a key that was
//! deleted or never written. A miss is always allowed (eviction). For each key the model keeps,
//! per layer, an upper bound on the expiry of any copy of the latest value in that layer:
//!
//! - a `set` that returned `Ok` sets the bound of the layers it wrote to `now + ttl` (per-call
//!   TTL, else the layer's, else never) and clears it for every other layer (they were
//!   invalidated, or are read-only and never written);
//! - a hit may promote the value into upper writable layers; the copy expires at the earlier of
//!   the source's expiry and `now + target TTL`, so the target's bound becomes the max of what
//!   it was and `min(source bound, now + target TTL)` (sources a plain `get` does not name are
//!   taken as any live lower layer: an upper bound is all the oracle needs);
//! - a hit is valid only while `now < bound` in some layer (in the serving layer when the
//!   cache names it: `try_get`, `get_from_layer`, `entries`).
//!
//! Stats must match what was observed (request hits and misses), layers must stay within their
//! capacity, read-only layers must stay empty, and after `close` every operation must return
//! `Error::Closed`.

#![allow(dead_code)]

use arbitrary::Arbitrary;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use strata::{
    BuildError, Cache, Clock, Error, LayerSet, LayerSpec, ManualClock, Promotion, SetOptions,
    WriteMode, WriteReport,
};

/// Keys are drawn from `0..KEYS`, so that reads hit.
pub const KEYS: u64 = 16;
/// Longest key list of a batch operation.
pub const MAX_BATCH: usize = 8;
/// Largest capacity of a layer in [`Config`].
pub const MAX_LAYER_CAPACITY: usize = 32;
/// The largest capacity a memory layer accepts (`strata::memory::MAX_CAPACITY`).
pub const MAX_CAPACITY: usize = 1 << 40;
/// The name a skip option or a by-layer read uses for a layer the cache does not have.
pub const UNKNOWN_LAYER: &str = "no-such-layer";
const NEVER: u64 = u64::MAX;

// ===========================================================================================
// Inputs
// ===========================================================================================

/// A promotion mode.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionMode {
    Off,
    AllAbove,
    L1Only,
}

impl PromotionMode {
    fn strata(self) -> Promotion {
        match self {
            PromotionMode::Off => Promotion::Off,
            PromotionMode::AllAbove => Promotion::AllAbove,
            PromotionMode::L1Only => Promotion::L1Only,
        }
    }
}

/// A write mode.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    WriteThrough,
    L1Only,
}

impl Mode {
    fn strata(self) -> WriteMode {
        match self {
            Mode::WriteThrough => WriteMode::WriteThrough,
            Mode::L1Only => WriteMode::L1Only,
        }
    }
}

/// One memory layer of a [`Config`]. Raw numbers are mapped into small valid ranges.
#[derive(Arbitrary, Debug, Clone)]
pub struct LayerConfig {
    /// Capacity `1 + capacity % 32`.
    pub capacity: u8,
    /// Default TTL `1 + ttl_ms % 64` ms; `None`: entries do not expire.
    pub ttl_ms: Option<u8>,
    /// Read-only (ignored for L1, which must be writable). The cache never writes it, so it
    /// stays empty.
    pub read_only: bool,
    /// A weight bound `1 + max_weight % 32`, entries weighing `1 + value % 4`.
    pub max_weight: Option<u8>,
}

/// A valid cache configuration: one to three memory layers, modes, deferred promotion.
#[derive(Arbitrary, Debug, Clone)]
pub struct Config {
    pub l1: LayerConfig,
    pub l2: Option<LayerConfig>,
    pub l3: Option<LayerConfig>,
    pub promotion: PromotionMode,
    pub write_mode: Mode,
    /// Deferred promotion with batch `1 + batch % 4`.
    pub deferred: Option<u8>,
}

/// Per-call options of a `set` or `set_many`.
#[derive(Arbitrary, Debug, Clone, Default)]
pub struct Opts {
    /// Per-call TTL of `ttl_us % 64_000` µs: under 1 ms it must be refused with
    /// `Error::ZeroTtl`, otherwise it counts in whole milliseconds.
    pub ttl_us: Option<u16>,
    /// Write-mode override (`Some(Mode::L1Only)` is `SetOptions::l1_only`).
    pub mode: Option<Mode>,
    /// Layers to skip, by index; an index past the last layer names an unknown layer, which
    /// must be refused with `Error::UnknownLayer` before anything is written.
    pub skip: Vec<u8>,
}

/// One operation. Keys are mapped into `0..KEYS` (skewed towards a few hot keys), batches truncated to [`MAX_BATCH`]; values
/// are made unique per write by the harness (the byte given here is kept as the low byte).
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    Get(u8),
    TryGet(u8),
    Set {
        key: u8,
        value: u8,
        opts: Opts,
    },
    Delete(u8),
    Exists(u8),
    GetMany(Vec<u8>),
    SetMany {
        items: Vec<(u8, u8)>,
        opts: Opts,
    },
    DeleteMany(Vec<u8>),
    /// Layer index modulo `layers + 1`: the extra one is an unknown name.
    GetFromLayer {
        layer: u8,
        key: u8,
    },
    /// `entries` of layer `layer % layers`.
    Entries(u8),
    /// Advances the manual clock by `ms % 40` ms.
    AdvanceClock(u8),
    RunPendingPromotions,
    Close,
}

// ===========================================================================================
// check_ops: the differential check
// ===========================================================================================

#[derive(Debug, Clone)]
struct Layer {
    name: String,
    capacity: usize,
    ttl_ms: Option<u64>,
    read_only: bool,
    max_weight: Option<u64>,
}

#[derive(Debug, Clone)]
struct Setup {
    layers: Vec<Layer>,
    promotion: PromotionMode,
    write_mode: Mode,
    deferred: Option<usize>,
}

impl Setup {
    fn new(config: &Config) -> Self {
        let specs = [Some(&config.l1), config.l2.as_ref(), config.l3.as_ref()];
        let layers = specs
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(index, layer)| Layer {
                name: format!("l{}", index + 1),
                capacity: 1 + usize::from(layer.capacity) % MAX_LAYER_CAPACITY,
                ttl_ms: layer.ttl_ms.map(|ttl| 1 + u64::from(ttl) % 64),
                read_only: index > 0 && layer.read_only,
                max_weight: layer.max_weight.map(|weight| 1 + u64::from(weight) % 32),
            })
            .collect();
        Setup {
            layers,
            promotion: config.promotion,
            write_mode: config.write_mode,
            deferred: config.deferred.map(|batch| 1 + usize::from(batch) % 4),
        }
    }

    fn build(&self, clock: Clock) -> Cache<u64, u64> {
        let mut builder = Cache::builder()
            .clock(clock)
            .promotion(self.promotion.strata())
            .write_mode(self.write_mode.strata());
        for layer in &self.layers {
            let mut spec = LayerSpec::memory(layer.name.clone(), layer.capacity);
            if let Some(ms) = layer.ttl_ms {
                spec = spec.ttl(Duration::from_millis(ms));
            }
            if layer.read_only {
                spec = spec.read_only();
            }
            if let Some(max_weight) = layer.max_weight {
                spec = spec.max_weight(max_weight, |_, value: &u64| 1 + value % 4);
            }
            builder = builder.layer(spec);
        }
        if let Some(batch) = self.deferred {
            builder = builder.deferred_promotion(batch);
        }
        match builder.build() {
            Ok(cache) => cache,
            Err(error) => panic!("a valid configuration failed to build: {error:?} ({self:?})"),
        }
    }

    fn writable(&self, index: usize) -> bool {
        !self.layers[index].read_only
    }

    fn name_of(&self, index: usize) -> &str {
        self.layers
            .get(index)
            .map_or(UNKNOWN_LAYER, |layer| &layer.name)
    }

    /// The `SetOptions` for `opts`.
    fn options(&self, opts: &Opts) -> SetOptions {
        let mut options = SetOptions::new();
        if let Some(us) = opts.ttl_us {
            options = options.ttl(Duration::from_micros(u64::from(us) % 64_000));
        }
        match opts.mode {
            Some(Mode::L1Only) => options = options.l1_only(),
            Some(Mode::WriteThrough) => options = options.mode(WriteMode::WriteThrough),
            None => {}
        }
        for &skip in opts.skip.iter().take(3) {
            let index = usize::from(skip) % (self.layers.len() + 1);
            options = options.skip(self.name_of(index));
        }
        options
    }

    /// What a `set` with `opts` must do, from the rules of `Cache::set_with`.
    fn plan(&self, opts: &Opts) -> Result<Plan, Refusal> {
        let ttl_us = opts.ttl_us.map(|us| u64::from(us) % 64_000);
        // Under a millisecond is refused; otherwise the TTL counts rounded up (never early).
        if ttl_us.is_some_and(|us| us < 1000) {
            return Err(Refusal::ZeroTtl);
        }
        let ttl_ms = ttl_us.map(|us| us.div_ceil(1000));
        let mut skipped = vec![false; self.layers.len()];
        for &skip in opts.skip.iter().take(3) {
            match skipped.get_mut(usize::from(skip) % (self.layers.len() + 1)) {
                Some(flag) => *flag = true,
                None => return Err(Refusal::UnknownLayer),
            }
        }
        let mode = opts.mode.unwrap_or(self.write_mode);
        let mut targets = vec![false; self.layers.len()];
        let mut invalidate = vec![false; self.layers.len()];
        for index in (0..self.layers.len()).filter(|&i| self.writable(i)) {
            let wanted = mode == Mode::WriteThrough || index == 0;
            if wanted && !skipped[index] {
                targets[index] = true;
            } else {
                invalidate[index] = true;
            }
        }
        Ok(Plan {
            targets,
            invalidate,
            ttl_ms,
        })
    }

    /// Whether a hit in `source` may be promoted into `target`.
    fn promotes_into(&self, target: usize, source: usize) -> bool {
        target < source
            && self.writable(target)
            && match self.promotion {
                PromotionMode::Off => false,
                PromotionMode::AllAbove => true,
                PromotionMode::L1Only => target == 0,
            }
    }
}

#[derive(Debug)]
struct Plan {
    targets: Vec<bool>,
    invalidate: Vec<bool>,
    ttl_ms: Option<u64>,
}

/// Why a `set` must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    ZeroTtl,
    UnknownLayer,
}

fn refusal_matches(expected: Refusal, actual: &Error) -> bool {
    match (expected, actual) {
        (Refusal::ZeroTtl, Error::ZeroTtl) => true,
        (Refusal::UnknownLayer, Error::UnknownLayer(name)) => name == UNKNOWN_LAYER,
        _ => false,
    }
}

fn set_of(flags: &[bool]) -> Vec<usize> {
    (0..flags.len()).filter(|&i| flags[i]).collect()
}

fn indices(set: LayerSet) -> Vec<usize> {
    set.iter().collect()
}

/// The latest value of a key and, per layer, an upper bound on the expiry of any copy of it
/// there (`None`: the layer cannot hold it).
#[derive(Debug, Clone)]
struct Latest {
    value: u64,
    bound: Vec<Option<u64>>,
}

struct Model<'s> {
    setup: &'s Setup,
    now: u64,
    latest: HashMap<u64, Latest>,
    hits: u64,
    misses: u64,
    writes: u64,
    closed: bool,
}

/// Where a hit came from, as far as the API says.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `get`, `get_many`: some layer.
    Any,
    /// `try_get`, `get_from_layer`, `entries`: this layer.
    Layer(usize),
}

/// The key of a raw byte: half the bytes map to keys 0..4, so that operations on one key meet
/// often, the other half spread over every key, so that layers fill and evict.
fn key_of(raw: u8) -> u64 {
    if raw < 128 {
        u64::from(raw) % 4
    } else {
        u64::from(raw) % KEYS
    }
}

impl<'s> Model<'s> {
    fn new(setup: &'s Setup) -> Self {
        Model {
            setup,
            now: 0,
            latest: HashMap::new(),
            hits: 0,
            misses: 0,
            writes: 0,
            closed: false,
        }
    }

    fn layers(&self) -> usize {
        self.setup.layers.len()
    }

    /// A value no earlier write used, with `low` as its low byte.
    fn fresh_value(&mut self, low: u8) -> u64 {
        self.writes += 1;
        (self.writes << 8) | u64::from(low)
    }

    fn live(&self, bound: Option<u64>) -> bool {
        bound.is_some_and(|bound| self.now < bound)
    }

    /// Checks that `value`, served for `key` from `source`, is the latest value and live there.
    fn check_hit(&self, at: &dyn std::fmt::Debug, key: u64, value: u64, source: Source) {
        let Some(latest) = self.latest.get(&key) else {
            panic!(
                "{at:?}: key {key} served {value:#x} but it was deleted or never written \
                 (now {} ms)",
                self.now
            );
        };
        assert_eq!(
            value, latest.value,
            "{at:?}: key {key} served {value:#x}, not its latest value {:#x} (now {} ms, \
             bounds {:?})",
            latest.value, self.now, latest.bound
        );
        let live = match source {
            Source::Any => latest.bound.iter().any(|&bound| self.live(bound)),
            Source::Layer(index) => self.live(latest.bound[index]),
        };
        assert!(
            live,
            "{at:?}: key {key} served {value:#x} from {source:?} after it expired or was \
             invalidated there (now {} ms, expiry bounds per layer {:?})",
            self.now, latest.bound
        );
    }

    /// A hit of `key` from `source` may promote the value into upper layers.
    fn promote(&mut self, key: u64, source: Source) {
        if self.setup.promotion == PromotionMode::Off {
            return;
        }
        let now = self.now;
        let setup = self.setup;
        let Some(latest) = self.latest.get_mut(&key) else {
            return;
        };
        let sources: Vec<usize> = match source {
            Source::Any => (1..setup.layers.len()).collect(),
            Source::Layer(index) => vec![index],
        };
        for target in 0..setup.layers.len() {
            let source_bound = sources
                .iter()
                .filter(|&&s| setup.promotes_into(target, s))
                .filter_map(|&s| latest.bound[s])
                .filter(|&bound| now < bound)
                .max();
            if let Some(source_bound) = source_bound {
                let target_bound = setup.layers[target]
                    .ttl_ms
                    .map_or(NEVER, |ms| now.saturating_add(ms));
                let copy = source_bound.min(target_bound);
                let slot = &mut latest.bound[target];
                *slot = Some(slot.map_or(copy, |old| old.max(copy)));
            }
        }
    }

    fn write(&mut self, key: u64, value: u64, plan: &Plan) {
        let bound = (0..self.layers())
            .map(|index| {
                plan.targets[index].then(|| {
                    plan.ttl_ms
                        .or(self.setup.layers[index].ttl_ms)
                        .map_or(NEVER, |ms| self.now.saturating_add(ms))
                })
            })
            .collect();
        self.latest.insert(key, Latest { value, bound });
    }

    fn check_report(
        &self,
        at: &dyn std::fmt::Debug,
        report: &WriteReport,
        plan: &Plan,
        value: u64,
    ) {
        assert!(
            report.failures.is_empty(),
            "{at:?}: memory layers never fail, got {report}"
        );
        // An entry heavier than a layer's whole weight bound is accepted and dropped there.
        let heavy: Vec<bool> = (0..self.layers())
            .map(|index| {
                self.setup.layers[index]
                    .max_weight
                    .is_some_and(|bound| 1 + value % 4 > bound)
            })
            .collect();
        let kept: Vec<bool> = plan
            .targets
            .iter()
            .zip(&heavy)
            .map(|(&t, &h)| t && !h)
            .collect();
        let dropped: Vec<bool> = plan
            .targets
            .iter()
            .zip(&heavy)
            .map(|(&t, &h)| t && h)
            .collect();
        assert_eq!(
            indices(report.written),
            set_of(&kept),
            "{at:?}: layers written ({report})"
        );
        assert_eq!(
            indices(report.dropped),
            set_of(&dropped),
            "{at:?}: layers dropped ({report})"
        );
        assert_eq!(
            indices(report.invalidated),
            set_of(&plan.invalidate),
            "{at:?}: layers invalidated ({report})"
        );
    }

    fn check_delete_report(&self, at: &dyn std::fmt::Debug, report: &WriteReport) {
        let writable: Vec<usize> = (0..self.layers())
            .filter(|&i| self.setup.writable(i))
            .collect();
        assert!(report.failures.is_empty(), "{at:?}: {report}");
        assert!(report.written.is_empty(), "{at:?}: {report}");
        assert_eq!(indices(report.invalidated), writable, "{at:?}: {report}");
    }

    fn apply(
        &mut self,
        cache: &Cache<u64, u64>,
        hand: &ManualClock,
        at: &dyn std::fmt::Debug,
        op: &Op,
    ) {
        if self.closed {
            return self.apply_closed(cache, hand, at, op);
        }
        match op {
            Op::Get(key) => {
                let key = key_of(*key);
                match cache.get(&key) {
                    Ok(Some(value)) => {
                        self.check_hit(at, key, value, Source::Any);
                        self.hits += 1;
                        self.promote(key, Source::Any);
                    }
                    Ok(None) => self.misses += 1,
                    Err(error) => panic!("{at:?}: get failed: {error:?}"),
                }
            }
            Op::TryGet(key) => {
                let key = key_of(*key);
                let lookup = cache
                    .lookup(&key)
                    .unwrap_or_else(|error| panic!("{at:?}: try_get failed: {error:?}"));
                assert!(lookup.failures.is_empty(), "{at:?}: {lookup:?}");
                match (lookup.value, lookup.served_by) {
                    (Some(value), Some(layer)) => {
                        assert!(layer < self.layers(), "{at:?}: served by layer {layer}");
                        self.check_hit(at, key, value, Source::Layer(layer));
                        self.hits += 1;
                        self.promote(key, Source::Layer(layer));
                    }
                    (None, None) => self.misses += 1,
                    (value, served_by) => {
                        panic!("{at:?}: try_get gave value {value:?} served by {served_by:?}")
                    }
                }
            }
            Op::Set { key, value, opts } => {
                let key = key_of(*key);
                let value = self.fresh_value(*value);
                let expected = self.setup.plan(opts);
                let result = cache.set_with(key, value, &self.setup.options(opts));
                match (expected, result) {
                    (Ok(plan), Ok(report)) => {
                        self.check_report(at, &report, &plan, value);
                        self.write(key, value, &plan);
                    }
                    (Err(refusal), Err(error)) if refusal_matches(refusal, &error) => {}
                    (expected, result) => {
                        panic!("{at:?}: expected {expected:?}, set_with returned {result:?}")
                    }
                }
            }
            Op::Delete(key) => {
                let key = key_of(*key);
                match cache.delete(&key) {
                    Ok(report) => self.check_delete_report(at, &report),
                    Err(error) => panic!("{at:?}: delete failed: {error:?}"),
                }
                self.latest.remove(&key);
            }
            Op::Exists(key) => {
                let key = key_of(*key);
                let exists = cache
                    .contains_key(&key)
                    .unwrap_or_else(|error| panic!("{at:?}: exists failed: {error:?}"));
                // `exists` must agree with the layers read one by one (at the same time).
                let mut in_some_layer = false;
                for index in 0..self.layers() {
                    in_some_layer |= self.get_from_layer(cache, at, index, key);
                }
                assert_eq!(
                    exists, in_some_layer,
                    "{at:?}: exists({key}) disagrees with get_from_layer on every layer"
                );
            }
            Op::GetMany(keys) => {
                let keys: Vec<u64> = keys.iter().take(MAX_BATCH).map(|&k| key_of(k)).collect();
                let results = cache.get_many(&keys);
                assert_eq!(results.len(), keys.len(), "{at:?}: one result per key");
                let mut hit_keys = Vec::new();
                for (&key, result) in keys.iter().zip(results) {
                    match result {
                        Ok(Some(value)) => {
                            self.check_hit(at, key, value, Source::Any);
                            self.hits += 1;
                            hit_keys.push(key);
                        }
                        Ok(None) => self.misses += 1,
                        Err(error) => panic!("{at:?}: get_many failed for {key}: {error:?}"),
                    }
                }
                // Promotions run after every layer was read.
                for key in hit_keys {
                    self.promote(key, Source::Any);
                }
            }
            Op::SetMany { items, opts } => {
                let items: Vec<(u64, u64)> = items
                    .iter()
                    .take(MAX_BATCH)
                    .map(|&(key, low)| (key_of(key), self.fresh_value(low)))
                    .collect();
                let expected = self.setup.plan(opts);
                let results = cache.set_many_with(items.clone(), &self.setup.options(opts));
                assert_eq!(results.len(), items.len(), "{at:?}: one result per item");
                for (&(key, value), result) in items.iter().zip(results) {
                    match (&expected, result) {
                        (Ok(plan), Ok(report)) => {
                            self.check_report(at, &report, plan, value);
                            self.write(key, value, plan);
                        }
                        (Err(refusal), Err(error)) if refusal_matches(*refusal, &error) => {}
                        (expected, result) => panic!(
                            "{at:?}: item ({key}, {value:#x}): expected {expected:?}, got {result:?}"
                        ),
                    }
                }
            }
            Op::DeleteMany(keys) => {
                let keys: Vec<u64> = keys.iter().take(MAX_BATCH).map(|&k| key_of(k)).collect();
                let results = cache.delete_many(&keys);
                assert_eq!(results.len(), keys.len(), "{at:?}: one result per key");
                for (key, result) in keys.iter().zip(results) {
                    match result {
                        Ok(report) => self.check_delete_report(at, &report),
                        Err(error) => panic!("{at:?}: delete_many failed for {key}: {error:?}"),
                    }
                    self.latest.remove(key);
                }
            }
            Op::GetFromLayer { layer, key } => {
                let index = usize::from(*layer) % (self.layers() + 1);
                let key = key_of(*key);
                if index == self.layers() {
                    match cache.get_from_layer(UNKNOWN_LAYER, &key) {
                        Err(Error::UnknownLayer(name)) if name == UNKNOWN_LAYER => {}
                        other => panic!("{at:?}: unknown layer gave {other:?}"),
                    }
                } else {
                    self.get_from_layer(cache, at, index, key);
                }
            }
            Op::Entries(layer) => {
                let index = usize::from(*layer) % self.layers();
                let entries = cache
                    .entries(self.setup.name_of(index))
                    .unwrap_or_else(|error| panic!("{at:?}: entries failed: {error:?}"));
                let mut seen = HashSet::new();
                for &(key, value) in &entries {
                    assert!(
                        key < KEYS,
                        "{at:?}: entries listed key {key}, never written"
                    );
                    assert!(seen.insert(key), "{at:?}: entries listed key {key} twice");
                    self.check_hit(at, key, value, Source::Layer(index));
                }
                let len = cache.stats().layers[index].len;
                assert!(
                    len.is_some_and(|len| entries.len() as u64 <= len),
                    "{at:?}: {} live entries but len {len:?}",
                    entries.len()
                );
            }
            Op::AdvanceClock(ms) => {
                let ms = u64::from(*ms) % 40;
                hand.advance(Duration::from_millis(ms));
                self.now += ms;
                assert_eq!(hand.now().0, self.now, "{at:?}: manual clock");
            }
            Op::RunPendingPromotions => {
                let landed = cache.run_pending_promotions();
                if self.setup.deferred.is_none() {
                    assert_eq!(landed, 0, "{at:?}: promotions landed from an empty queue");
                }
            }
            Op::Close => {
                cache.close();
                self.closed = true;
                assert!(cache.is_closed(), "{at:?}: is_closed after close");
                for layer in cache.stats().layers {
                    assert_eq!(
                        layer.len,
                        Some(0),
                        "{at:?}: {} not emptied by close",
                        layer.name
                    );
                }
                assert_eq!(
                    cache.run_pending_promotions(),
                    0,
                    "{at:?}: queue after close"
                );
            }
        }
    }

    /// Reads one layer (no promotion, no counting) and checks a hit. Returns whether it hit.
    fn get_from_layer(
        &self,
        cache: &Cache<u64, u64>,
        at: &dyn std::fmt::Debug,
        index: usize,
        key: u64,
    ) -> bool {
        match cache.get_from_layer(self.setup.name_of(index), &key) {
            Ok(Some(value)) => {
                self.check_hit(at, key, value, Source::Layer(index));
                true
            }
            Ok(None) => false,
            Err(error) => panic!("{at:?}: get_from_layer({index}, {key}) failed: {error:?}"),
        }
    }

    /// After `close`, everything but the clock must answer `Error::Closed`.
    fn apply_closed(
        &mut self,
        cache: &Cache<u64, u64>,
        hand: &ManualClock,
        at: &dyn std::fmt::Debug,
        op: &Op,
    ) {
        fn closed<T: std::fmt::Debug>(at: &dyn std::fmt::Debug, result: Result<T, Error>) {
            assert!(
                matches!(result, Err(Error::Closed)),
                "{at:?}: expected Error::Closed after close, got {result:?}"
            );
        }
        fn all_closed<T: std::fmt::Debug>(
            at: &dyn std::fmt::Debug,
            n: usize,
            results: Vec<Result<T, Error>>,
        ) {
            assert_eq!(results.len(), n, "{at:?}: one result per key after close");
            for result in results {
                closed(at, result);
            }
        }
        match op {
            Op::Get(key) => closed(at, cache.get(&key_of(*key))),
            Op::TryGet(key) => closed(at, cache.lookup(&key_of(*key))),
            Op::Set { key, value, opts } => {
                let value = self.fresh_value(*value);
                closed(
                    at,
                    cache.set_with(key_of(*key), value, &self.setup.options(opts)),
                );
            }
            Op::Delete(key) => closed(at, cache.delete(&key_of(*key))),
            Op::Exists(key) => closed(at, cache.contains_key(&key_of(*key))),
            Op::GetMany(keys) => {
                let keys: Vec<u64> = keys.iter().take(MAX_BATCH).map(|&k| key_of(k)).collect();
                all_closed(at, keys.len(), cache.get_many(&keys));
            }
            Op::SetMany { items, opts } => {
                let items: Vec<(u64, u64)> = items
                    .iter()
                    .take(MAX_BATCH)
                    .map(|&(key, low)| (key_of(key), self.fresh_value(low)))
                    .collect();
                let n = items.len();
                all_closed(at, n, cache.set_many_with(items, &self.setup.options(opts)));
            }
            Op::DeleteMany(keys) => {
                let keys: Vec<u64> = keys.iter().take(MAX_BATCH).map(|&k| key_of(k)).collect();
                all_closed(at, keys.len(), cache.delete_many(&keys));
            }
            Op::GetFromLayer { layer, key } => {
                let index = usize::from(*layer) % (self.layers() + 1);
                closed(
                    at,
                    cache.get_from_layer(self.setup.name_of(index), &key_of(*key)),
                );
            }
            Op::Entries(layer) => {
                let index = usize::from(*layer) % self.layers();
                closed(at, cache.entries(self.setup.name_of(index)));
            }
            Op::AdvanceClock(ms) => {
                let ms = u64::from(*ms) % 40;
                hand.advance(Duration::from_millis(ms));
                self.now += ms;
            }
            Op::RunPendingPromotions => {
                assert_eq!(
                    cache.run_pending_promotions(),
                    0,
                    "{at:?}: queue after close"
                );
            }
            Op::Close => {
                cache.close();
                assert!(cache.is_closed(), "{at:?}: close is idempotent");
            }
        }
    }

    /// The counters agree with what the operations returned; layers stay within bounds.
    fn check_stats(&self, cache: &Cache<u64, u64>, at: &dyn std::fmt::Debug) {
        let stats = cache.stats();
        assert_eq!(
            stats.hits, self.hits,
            "{at:?}: stats.hits vs observed hits ({stats:?})"
        );
        assert_eq!(
            stats.misses, self.misses,
            "{at:?}: stats.misses vs observed misses ({stats:?})"
        );
        assert_eq!(stats.layers.len(), self.layers(), "{at:?}: {stats:?}");
        for (index, (layer, setup)) in stats.layers.iter().zip(&self.setup.layers).enumerate() {
            assert_eq!(layer.name, setup.name, "{at:?}: layer {index} name");
            assert_eq!(
                layer.errors, 0,
                "{at:?}: memory layer {index} counted errors"
            );
            let len = layer
                .len
                .unwrap_or_else(|| panic!("{at:?}: memory layer {index} has no len"));
            assert!(
                len <= setup.capacity as u64,
                "{at:?}: layer {index} holds {len} entries, capacity {} ({stats:?})",
                setup.capacity
            );
            if setup.read_only {
                assert_eq!(len, 0, "{at:?}: read-only layer {index} was written");
                assert_eq!(layer.hits, 0, "{at:?}: read-only layer {index} served");
                assert_eq!(
                    layer.promotions_in, 0,
                    "{at:?}: promotion into read-only {index}"
                );
            }
            if self.setup.promotion == PromotionMode::Off
                || (self.setup.promotion == PromotionMode::L1Only && index > 0)
            {
                assert_eq!(
                    layer.promotions_in, 0,
                    "{at:?}: promotion into layer {index}"
                );
            }
        }
    }
}

/// A step's context for failure messages.
struct At<'a> {
    step: usize,
    op: &'a Op,
}

impl std::fmt::Debug for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {} ({:?})", self.step, self.op)
    }
}

/// Builds the cache of `config` on a manual clock, runs `ops` against it and the reference
/// model, and panics on the first disagreement. Ends with reads of every key (at three times)
/// and a `close`.
pub fn check_ops(config: &Config, ops: &[Op]) {
    let setup = Setup::new(config);
    let (clock, hand) = Clock::manual();
    let cache = setup.build(clock);
    let names: Vec<&str> = cache.layer_names().collect();
    let expected: Vec<&str> = setup.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, expected, "layer names");
    let mut model = Model::new(&setup);
    // The final sweep: every key read (exists first: a read drops expired entries) and every
    // layer listed, three times with the clock moving in between, then reads after close.
    let pass = || {
        (0..KEYS as u8)
            .flat_map(|key| [Op::Exists(key), Op::TryGet(key), Op::Get(key)])
            .chain((0..setup.layers.len() as u8).map(Op::Entries))
    };
    let sweep: Vec<Op> = pass()
        .chain([Op::RunPendingPromotions, Op::AdvanceClock(13)])
        .chain(pass())
        .chain([Op::RunPendingPromotions, Op::AdvanceClock(39)])
        .chain(pass())
        .chain([
            Op::Close,
            Op::Get(0),
            Op::SetMany {
                items: vec![(1, 1)],
                opts: Opts::default(),
            },
        ])
        .collect();
    for (step, op) in ops.iter().chain(&sweep).enumerate() {
        let at = At { step, op };
        model.apply(&cache, &hand, &at, op);
        model.check_stats(&cache, &at);
    }
    drop(cache);
}

// ===========================================================================================
// check_config: the builder's refusals
// ===========================================================================================

/// A layer name, including the invalid and the tricky ones.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Empty,
    Blank,
    Tab,
    A,
    /// `"a "`: not blank, and not a duplicate of `"a"`.
    ASpace,
    B,
    C,
    Unicode,
}

impl Name {
    fn as_str(self) -> &'static str {
        match self {
            Name::Empty => "",
            Name::Blank => "   ",
            Name::Tab => "\t\n",
            Name::A => "a",
            Name::ASpace => "a ",
            Name::B => "b",
            Name::C => "c",
            Name::Unicode => "é\u{3000}",
        }
    }
}

/// A capacity: small ones (0 is refused), or one past the largest accepted.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// `small % 4`.
    Small(u8),
    /// `MAX_CAPACITY + 1`, or `usize::MAX` with `true`.
    TooLarge(bool),
}

impl Capacity {
    fn get(self) -> usize {
        match self {
            Capacity::Small(n) => usize::from(n % 4),
            Capacity::TooLarge(false) => MAX_CAPACITY + 1,
            Capacity::TooLarge(true) => usize::MAX,
        }
    }
}

/// One layer of arbitrary builder input.
#[derive(Arbitrary, Debug, Clone)]
pub struct LayerInput {
    pub name: Name,
    pub capacity: Capacity,
    /// A TTL of `ttl_us % 3000` µs: zero and sub-millisecond ones are refused.
    pub ttl_us: Option<u16>,
    pub read_only: bool,
    /// `max_weight(max_weight % 4)`: zero is refused.
    pub max_weight: Option<u8>,
}

/// Arbitrary builder input: up to five layers (optionally padded with valid layers to 64 or 65
/// of them), a deferred-promotion batch (0 is refused) and modes.
#[derive(Arbitrary, Debug, Clone)]
pub struct BuilderInput {
    pub layers: Vec<LayerInput>,
    /// `Some(false)`: pad to 64 layers (the most accepted); `Some(true)`: to 65.
    pub pad: Option<bool>,
    /// `deferred_promotion(batch % 3)`.
    pub deferred: Option<u8>,
    pub promotion: PromotionMode,
    pub write_mode: Mode,
}

struct LayerPlan {
    name: String,
    capacity: usize,
    ttl: Option<Duration>,
    read_only: bool,
    max_weight: Option<u64>,
}

/// The layers `input` describes, padding included.
fn layer_plans(input: &BuilderInput) -> Vec<LayerPlan> {
    let mut layers: Vec<LayerPlan> = input
        .layers
        .iter()
        .take(5)
        .map(|layer| LayerPlan {
            name: layer.name.as_str().to_owned(),
            capacity: layer.capacity.get(),
            ttl: layer
                .ttl_us
                .map(|us| Duration::from_micros(u64::from(us % 3000))),
            read_only: layer.read_only,
            max_weight: layer.max_weight.map(|w| u64::from(w % 4)),
        })
        .collect();
    if let Some(over) = input.pad {
        let wanted = if over { 65 } else { 64 };
        let mut next = 0;
        while layers.len() < wanted {
            layers.push(LayerPlan {
                name: format!("pad{next}"),
                capacity: 1,
                ttl: None,
                read_only: false,
                max_weight: None,
            });
            next += 1;
        }
    }
    layers
}

/// The outcome the builder's rules (src/builder.rs, `MemoryLayer::new`) predict, checked in
/// their order: layer count, batch size, names and TTLs layer by layer, read-only L1, then each
/// memory layer's capacity and weight bound.
fn expected_build(layers: &[LayerPlan], deferred: Option<usize>) -> Result<(), BuildError> {
    if layers.is_empty() {
        return Err(BuildError::NoLayers);
    }
    if layers.len() > 64 {
        return Err(BuildError::TooManyLayers {
            max: 64,
            got: layers.len(),
        });
    }
    if deferred == Some(0) {
        return Err(BuildError::ZeroPromotionBatch);
    }
    let mut seen = HashSet::new();
    for (index, layer) in layers.iter().enumerate() {
        if layer.name.trim().is_empty() {
            return Err(BuildError::EmptyName { index });
        }
        if !seen.insert(layer.name.as_str()) {
            return Err(BuildError::DuplicateName(layer.name.clone()));
        }
        if layer.ttl.is_some_and(|ttl| ttl.as_millis() == 0) {
            return Err(BuildError::ZeroTtl(layer.name.clone()));
        }
    }
    if layers[0].read_only {
        return Err(BuildError::ReadOnlyL1(layers[0].name.clone()));
    }
    for layer in layers {
        if layer.capacity == 0 {
            return Err(BuildError::ZeroCapacity(layer.name.clone()));
        }
        if layer.capacity > MAX_CAPACITY {
            return Err(BuildError::CapacityTooLarge {
                layer: layer.name.clone(),
                max: MAX_CAPACITY,
            });
        }
        if layer.max_weight == Some(0) {
            return Err(BuildError::ZeroWeight(layer.name.clone()));
        }
    }
    Ok(())
}

/// Builds a cache from arbitrary builder input: never panics, refuses invalid input with the
/// predicted `BuildError`, and a valid cache serves a set/get round trip.
pub fn check_config(input: &BuilderInput) {
    let layers = layer_plans(input);
    let deferred = input.deferred.map(|batch| usize::from(batch % 3));
    let expected = expected_build(&layers, deferred);

    let (clock, _hand) = Clock::manual();
    let mut builder = Cache::<u64, u64>::builder()
        .clock(clock)
        .promotion(input.promotion.strata())
        .write_mode(input.write_mode.strata());
    for layer in &layers {
        let mut spec = LayerSpec::memory(layer.name.clone(), layer.capacity);
        if let Some(ttl) = layer.ttl {
            spec = spec.ttl(ttl);
        }
        if layer.read_only {
            spec = spec.read_only();
        }
        if let Some(max_weight) = layer.max_weight {
            spec = spec.max_weight(max_weight, |_, _| 1);
        }
        builder = builder.layer(spec);
    }
    if let Some(batch) = deferred {
        builder = builder.deferred_promotion(batch);
    }
    let cache = match (expected, builder.build()) {
        (Ok(()), Ok(cache)) => cache,
        (Err(expected), Err(actual)) => {
            assert_eq!(
                actual, expected,
                "refused with another error than predicted"
            );
            return;
        }
        (expected, actual) => panic!("expected {expected:?}, build gave {actual:?}"),
    };

    let names: Vec<&str> = cache.layer_names().collect();
    let expected_names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, expected_names);
    let writable: Vec<usize> = (0..layers.len())
        .filter(|&i| !layers[i].read_only)
        .collect();
    let report = cache.set(7, 70).expect("a set on a fresh cache");
    let (written, invalidated): (Vec<usize>, Vec<usize>) = match input.write_mode {
        Mode::WriteThrough => (writable.clone(), Vec::new()),
        Mode::L1Only => (vec![0], writable[1..].to_vec()),
    };
    assert_eq!(indices(report.written), written, "{report}");
    assert_eq!(indices(report.invalidated), invalidated, "{report}");
    assert_eq!(cache.get(&7).unwrap(), Some(70), "round trip");
    assert_eq!(cache.get(&8).unwrap(), None);
    let report = cache.delete(&7).unwrap();
    assert_eq!(indices(report.invalidated), writable, "{report}");
    assert_eq!(cache.get(&7).unwrap(), None, "deleted");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2), "{stats:?}");
    cache.close();
    assert!(matches!(cache.get(&7), Err(Error::Closed)));
}
