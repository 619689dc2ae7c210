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
//! per layer, the values that layer may hold — without failures, at most the latest one — each
//! with an upper bound on the expiry of any copy of it there:
//!
//! - a `set` that returned `Ok` leaves in each layer it wrote only the new value, bounded by
//!   `now + ttl` (per-call TTL, else the layer's, else never), and empties every other layer
//!   (they were invalidated, or are read-only and never written);
//! - a hit may promote the value into upper writable layers; the copy expires at the earlier of
//!   the source's expiry and `now + target TTL`, so the target's bound for the value becomes
//!   the max of what it was and `min(source bound, now + target TTL)` (sources a plain `get`
//!   does not name are taken as any live lower layer whose reads work: an upper bound is all the
//!   oracle needs);
//! - a hit is valid only while `now < bound` for that value in some layer (in the serving layer
//!   when the cache names it: `lookup`, `get_from_layer`, `entries`; in a layer whose reads
//!   work for `get` and `get_many`).
//!
//! # Layers that fail on command
//!
//! A layer configured `faulty` is a [`Faulty`] wrapper around a `MemoryLayer`, reached through
//! the `Layer` trait as a custom layer (a remote store) would be, and [`Op::Fail`] sets what it
//! fails ([`Fault`]: reads, sets and promotions, deletes). The model predicts every outcome:
//!
//! - a read falls through a layer whose reads fail. If no layer served the key, every layer
//!   was asked, so `get` and `get_many` return `Error::Unavailable` naming exactly the failing
//!   layers (and count a miss); `lookup` reports the failing layers above the one that served;
//!   `contains_key` is `true` if a working layer holds the key, else `Unavailable`;
//!   `get_from_layer` and `entries` of a failing layer return `Error::Layer`;
//! - a write returns `Error::Incomplete` whose report names each failing layer, with
//!   `invalidated` true exactly when the layer's deletes still work (a failed set is followed by
//!   an invalidation); every other layer is written, dropped or invalidated as planned;
//! - a layer whose write failed but that was invalidated holds nothing older, like one written;
//!   one that could not be invalidated (or whose delete failed) keeps whatever it may have held
//!   and may serve and promote it, during the failure and after it recovers. So the contract
//!   holds after a write only where it returned `Ok` or the failing layer was invalidated; the
//!   final sweep reads every key once more with the failures left on, then after recovery;
//! - a layer that never failed counts no errors; one that failed counts at least the failures
//!   the operations reported.
//!
//! Stats must match what was observed (request hits and misses), layers must stay within their
//! capacity, read-only layers must stay empty, and after `close` every operation must return
//! `Error::Closed`.

#![allow(dead_code)]

use arbitrary::Arbitrary;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strata::layer::{
    Entry, GetResults, Layer as StrataLayer, LayerCounters, LayerError, Ticket, Timestamp,
};
use strata::memory::{MemoryConfig, MemoryLayer};
use strata::{
    BuildError, Cache, Clock, Error, LayerFailure, LayerSet, LayerSpec, ManualClock, Promotion,
    SetOptions, WriteMode, WriteReport,
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
    /// Behind a [`Faulty`] wrapper (a custom layer) that fails on command ([`Op::Fail`]).
    pub faulty: bool,
}

/// A valid cache configuration: one to three memory layers (each possibly behind a [`Faulty`]
/// wrapper), modes, deferred promotion.
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
    /// Sets what the `layer % n`-th of the `n` faulty layers fails (nothing happens if there
    /// is none). Allowed after `close` too.
    Fail {
        layer: u8,
        fault: Fault,
    },
}

/// What a [`Faulty`] layer fails. A failing operation returns `LayerError::Unavailable` and
/// leaves the wrapped layer as it was.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Nothing: the layer works (again).
    #[default]
    None,
    /// Reads: `get`, `contains`, their batch forms, iteration.
    Reads,
    /// Sets and promotions. Deletes work, so a failed set is invalidated.
    Sets,
    /// Sets, promotions and deletes: a failed write leaves the layer as it was.
    Writes,
    /// Everything.
    All,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::None,
        Fault::Reads,
        Fault::Sets,
        Fault::Writes,
        Fault::All,
    ];

    pub fn reads(self) -> bool {
        matches!(self, Fault::Reads | Fault::All)
    }

    /// Sets and promotions.
    pub fn sets(self) -> bool {
        matches!(self, Fault::Sets | Fault::Writes | Fault::All)
    }

    pub fn deletes(self) -> bool {
        matches!(self, Fault::Writes | Fault::All)
    }
}

// ===========================================================================================
// Faulty: a layer that fails on command
// ===========================================================================================

fn injected() -> LayerError {
    LayerError::Unavailable("injected by Op::Fail".into())
}

/// A `MemoryLayer` reached through the `Layer` trait (so the cache treats it as a custom layer,
/// like a remote store), with a switch that makes its operations fail ([`Fault`]). Batch forms
/// fail per key.
pub struct Faulty {
    inner: MemoryLayer<u64, u64>,
    fault: AtomicU8,
}

impl Faulty {
    fn new(layer: &Layer, clock: &Clock) -> Arc<Self> {
        let mut config = MemoryConfig::new(layer.capacity);
        if let Some(max_weight) = layer.max_weight {
            config.max_weight = max_weight;
            config.weigher = Some(Arc::new(|_: &u64, value: &u64| 1 + value % 4));
        }
        let inner = MemoryLayer::new(&layer.name, config, clock.clone())
            .unwrap_or_else(|error| panic!("a valid memory layer failed to build: {error:?}"));
        Arc::new(Faulty {
            inner,
            fault: AtomicU8::new(Fault::None as u8),
        })
    }

    pub fn set_fault(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    pub fn fault(&self) -> Fault {
        Fault::ALL[usize::from(self.fault.load(Ordering::SeqCst))]
    }

    fn each<T>(n: usize) -> Vec<Result<T, LayerError>> {
        (0..n).map(|_| Err(injected())).collect()
    }
}

impl StrataLayer<u64, u64> for Faulty {
    fn get(&self, key: &u64, now: Timestamp) -> Result<Option<Entry<u64>>, LayerError> {
        if self.fault().reads() {
            return Err(injected());
        }
        StrataLayer::get(&self.inner, key, now)
    }

    fn contains(&self, key: &u64, now: Timestamp) -> Result<bool, LayerError> {
        if self.fault().reads() {
            return Err(injected());
        }
        StrataLayer::contains(&self.inner, key, now)
    }

    fn set(&self, key: &u64, entry: Entry<u64>, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        if self.fault().sets() {
            return Err(injected());
        }
        StrataLayer::set(&self.inner, key, entry, ticket)
    }

    fn delete(&self, key: &u64, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        if self.fault().deletes() {
            return Err(injected());
        }
        StrataLayer::delete(&self.inner, key, ticket)
    }

    fn promote(
        &self,
        key: &u64,
        entry: Entry<u64>,
        ticket: &Ticket<'_>,
    ) -> Result<bool, LayerError> {
        if self.fault().sets() {
            return Err(injected());
        }
        StrataLayer::promote(&self.inner, key, entry, ticket)
    }

    fn get_many(&self, keys: &[&u64], now: Timestamp) -> GetResults<u64> {
        if self.fault().reads() {
            return Self::each(keys.len());
        }
        StrataLayer::get_many(&self.inner, keys, now)
    }

    fn set_many(
        &self,
        entries: Vec<(&u64, Entry<u64>, Ticket<'_>)>,
    ) -> Vec<Result<(), LayerError>> {
        if self.fault().sets() {
            return Self::each(entries.len());
        }
        StrataLayer::set_many(&self.inner, entries)
    }

    fn delete_many(&self, keys: &[(&u64, Ticket<'_>)]) -> Vec<Result<(), LayerError>> {
        if self.fault().deletes() {
            return Self::each(keys.len());
        }
        StrataLayer::delete_many(&self.inner, keys)
    }

    fn promote_many(
        &self,
        entries: Vec<(&u64, Entry<u64>, Ticket<'_>)>,
    ) -> Vec<Result<bool, LayerError>> {
        if self.fault().sets() {
            return Self::each(entries.len());
        }
        StrataLayer::promote_many(&self.inner, entries)
    }

    fn for_each(&self, now: Timestamp, f: &mut dyn FnMut(&u64, &u64)) -> Result<(), LayerError> {
        if self.fault().reads() {
            return Err(injected());
        }
        StrataLayer::for_each(&self.inner, now, f)
    }

    fn counters(&self) -> LayerCounters {
        StrataLayer::counters(&self.inner)
    }

    fn close(&self) {
        StrataLayer::close(&self.inner);
    }
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
    faulty: bool,
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
                faulty: layer.faulty,
            })
            .collect();
        Setup {
            layers,
            promotion: config.promotion,
            write_mode: config.write_mode,
            deferred: config.deferred.map(|batch| 1 + usize::from(batch) % 4),
        }
    }

    /// The cache, and the switch of each faulty layer.
    fn build(&self, clock: Clock) -> (Cache<u64, u64>, Vec<Option<Arc<Faulty>>>) {
        let mut builder = Cache::builder()
            .clock(clock.clone())
            .promotion(self.promotion.strata())
            .write_mode(self.write_mode.strata());
        let mut switches = Vec::new();
        for layer in &self.layers {
            let mut spec = if layer.faulty {
                let faulty = Faulty::new(layer, &clock);
                switches.push(Some(faulty.clone()));
                LayerSpec::shared(layer.name.clone(), faulty)
            } else {
                switches.push(None);
                let mut spec = LayerSpec::memory(layer.name.clone(), layer.capacity);
                if let Some(max_weight) = layer.max_weight {
                    spec = spec.max_weight(max_weight, |_, value: &u64| 1 + value % 4);
                }
                spec
            };
            if let Some(ms) = layer.ttl_ms {
                spec = spec.ttl(Duration::from_millis(ms));
            }
            if layer.read_only {
                spec = spec.read_only();
            }
            builder = builder.layer(spec);
        }
        if let Some(batch) = self.deferred {
            builder = builder.deferred_promotion(batch);
        }
        match builder.build() {
            Ok(cache) => (cache, switches),
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

    /// The positions of the faulty layers.
    fn faulty(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| self.layers[i].faulty)
            .collect()
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

fn indices(set: LayerSet) -> Vec<usize> {
    set.iter().collect()
}

/// What a write must do in one layer, from its plan and the layer's [`Fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Not touched: read-only.
    Untouched,
    Written,
    /// Accepted and not kept: heavier than a memory tier's whole weight bound.
    Dropped,
    Invalidated,
    /// Failed; `true`: the layer was invalidated instead.
    Failed(bool),
}

/// What a key may be served as.
#[derive(Debug, Clone)]
struct KeyState {
    /// The latest value written; `None` after a delete.
    latest: Option<u64>,
    /// Per layer, the values it may hold, each with an upper bound on the expiry of a copy of
    /// it there. Without failures, at most the latest value; a write that failed in a layer and
    /// could not invalidate it leaves the older values there.
    copies: Vec<Vec<(u64, u64)>>,
}

struct Model<'s> {
    setup: &'s Setup,
    /// Each faulty layer's switch.
    switches: Vec<Option<Arc<Faulty>>>,
    /// What each layer fails now.
    faults: Vec<Fault>,
    /// Whether each layer ever failed something.
    ever_failed: Vec<bool>,
    /// Failures each layer reported: a lower bound on its error count.
    failures_seen: Vec<u64>,
    now: u64,
    keys: HashMap<u64, KeyState>,
    hits: u64,
    misses: u64,
    writes: u64,
    closed: bool,
}

/// Where a hit came from, as far as the API says.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `get`, `get_many`: some layer whose reads work.
    Any,
    /// `lookup`, `get_from_layer`, `entries`: this layer.
    Layer(usize),
}

/// Per layer, the values it may hold (in hex, as served values are printed) and their bounds.
fn show(copies: &[Vec<(u64, u64)>]) -> String {
    let layers: Vec<String> = copies
        .iter()
        .map(|values| {
            let values: Vec<String> = values
                .iter()
                .map(|&(value, bound)| match bound {
                    NEVER => format!("{value:#x} (no expiry)"),
                    bound => format!("{value:#x} (until {bound} ms)"),
                })
                .collect();
            format!("[{}]", values.join(", "))
        })
        .collect();
    layers.join(" ")
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
    fn new(setup: &'s Setup, switches: Vec<Option<Arc<Faulty>>>) -> Self {
        let layers = setup.layers.len();
        Model {
            setup,
            switches,
            faults: vec![Fault::None; layers],
            ever_failed: vec![false; layers],
            failures_seen: vec![0; layers],
            now: 0,
            keys: HashMap::new(),
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

    /// The layers whose reads fail now, L1 first.
    fn failing_reads(&self) -> Vec<usize> {
        (0..self.layers())
            .filter(|&i| self.faults[i].reads())
            .collect()
    }

    /// `Op::Fail`: switches the chosen faulty layer, if there is one.
    fn fail(&mut self, layer: u8, fault: Fault) {
        let faulty = self.setup.faulty();
        if faulty.is_empty() {
            return;
        }
        let index = faulty[usize::from(layer) % faulty.len()];
        self.switches[index]
            .as_ref()
            .expect("a faulty layer has a switch")
            .set_fault(fault);
        self.faults[index] = fault;
        self.ever_failed[index] |= fault != Fault::None;
    }

    /// The expiry of a value written now into layer `index` with a per-call TTL `ttl_ms`.
    fn expiry(&self, index: usize, ttl_ms: Option<u64>) -> u64 {
        ttl_ms
            .or(self.setup.layers[index].ttl_ms)
            .map_or(NEVER, |ms| self.now.saturating_add(ms))
    }

    /// Checks that `value`, served for `key` from `source`, may be held there, live.
    fn check_hit(&self, at: &dyn std::fmt::Debug, key: u64, value: u64, source: Source) {
        let state = self.keys.get(&key);
        let Some(state) = state.filter(|state| state.copies.iter().any(|c| !c.is_empty())) else {
            panic!(
                "{at:?}: key {key} served {value:#x} but it was deleted or never written \
                 (now {} ms)",
                self.now
            );
        };
        assert!(
            state.copies.iter().flatten().any(|&(v, _)| v == value),
            "{at:?}: key {key} served {value:#x}, not its latest value {:#x?} nor one a failed \
             write left in a layer (now {} ms, values and expiry bounds per layer: {})",
            state.latest,
            self.now,
            show(&state.copies)
        );
        let layers: Vec<usize> = match source {
            Source::Any => (0..self.layers())
                .filter(|&i| !self.faults[i].reads())
                .collect(),
            Source::Layer(index) => vec![index],
        };
        let live = layers.iter().any(|&i| {
            state.copies[i]
                .iter()
                .any(|&(v, bound)| v == value && self.now < bound)
        });
        assert!(
            live,
            "{at:?}: key {key} served {value:#x} from {source:?} after it expired or was \
             invalidated there (now {} ms, values and expiry bounds per layer: {}, layers \
             failing reads {:?})",
            self.now,
            show(&state.copies),
            self.failing_reads()
        );
    }

    /// A hit of `value` for `key` from `source` may promote it into upper layers.
    fn promote(&mut self, key: u64, value: u64, source: Source) {
        if self.setup.promotion == PromotionMode::Off {
            return;
        }
        let now = self.now;
        let setup = self.setup;
        let sources: Vec<usize> = match source {
            Source::Any => (1..setup.layers.len())
                .filter(|&i| !self.faults[i].reads())
                .collect(),
            Source::Layer(index) => vec![index],
        };
        let Some(state) = self.keys.get_mut(&key) else {
            return;
        };
        for target in 0..setup.layers.len() {
            let source_bound = sources
                .iter()
                .filter(|&&s| setup.promotes_into(target, s))
                .flat_map(|&s| state.copies[s].iter())
                .filter(|&&(v, bound)| v == value && now < bound)
                .map(|&(_, bound)| bound)
                .max();
            if let Some(source_bound) = source_bound {
                let target_bound = setup.layers[target]
                    .ttl_ms
                    .map_or(NEVER, |ms| now.saturating_add(ms));
                let copy = source_bound.min(target_bound);
                let copies = &mut state.copies[target];
                match copies.iter_mut().find(|(v, _)| *v == value) {
                    Some((_, bound)) => *bound = (*bound).max(copy),
                    None => copies.push((value, copy)),
                }
            }
        }
    }

    /// What a `set` of `value` with `plan` must do in each layer, given the faults.
    fn set_outcomes(&self, plan: &Plan, value: u64) -> Vec<Outcome> {
        (0..self.layers())
            .map(|index| {
                let layer = &self.setup.layers[index];
                let fault = self.faults[index];
                // An entry heavier than a memory tier's whole weight bound is accepted and
                // dropped there (a custom layer cannot tell the cache it dropped one).
                let heavy = !layer.faulty && layer.max_weight.is_some_and(|b| 1 + value % 4 > b);
                if plan.targets[index] {
                    if fault.sets() {
                        Outcome::Failed(!fault.deletes())
                    } else if heavy {
                        Outcome::Dropped
                    } else {
                        Outcome::Written
                    }
                } else if plan.invalidate[index] {
                    if fault.deletes() {
                        Outcome::Failed(false)
                    } else {
                        Outcome::Invalidated
                    }
                } else {
                    Outcome::Untouched
                }
            })
            .collect()
    }

    /// What a delete must do in each layer, given the faults.
    fn delete_outcomes(&self) -> Vec<Outcome> {
        (0..self.layers())
            .map(|index| {
                if !self.setup.writable(index) {
                    Outcome::Untouched
                } else if self.faults[index].deletes() {
                    Outcome::Failed(false)
                } else {
                    Outcome::Invalidated
                }
            })
            .collect()
    }

    /// Records a write's outcomes: `Some(value)` for a set (its copies expire as `ttl_ms`
    /// says), `None` for a delete.
    fn write(&mut self, key: u64, value: Option<u64>, outcomes: &[Outcome], ttl_ms: Option<u64>) {
        let bounds: Vec<u64> = (0..self.layers())
            .map(|index| self.expiry(index, ttl_ms))
            .collect();
        let layers = self.layers();
        let state = self.keys.entry(key).or_insert_with(|| KeyState {
            latest: None,
            copies: vec![Vec::new(); layers],
        });
        state.latest = value;
        for (index, outcome) in outcomes.iter().enumerate() {
            match (outcome, value) {
                (Outcome::Written | Outcome::Dropped, Some(value)) => {
                    state.copies[index] = vec![(value, bounds[index])];
                }
                (Outcome::Invalidated | Outcome::Failed(true), _) => state.copies[index].clear(),
                // A failed write left the layer as it was; a read-only one is never written.
                (Outcome::Failed(false) | Outcome::Untouched, _) => {}
                (Outcome::Written | Outcome::Dropped, None) => unreachable!("a delete writes"),
            }
        }
        if state.latest.is_none() && state.copies.iter().all(Vec::is_empty) {
            self.keys.remove(&key);
        }
    }

    /// Checks a write's result against the expected outcome in each layer.
    fn check_write(
        &mut self,
        at: &dyn std::fmt::Debug,
        what: &str,
        result: Result<WriteReport, Error>,
        expected: &[Outcome],
    ) {
        let failing = expected.iter().any(|o| matches!(o, Outcome::Failed(_)));
        let report = match result {
            Ok(report) if !failing => report,
            Err(Error::Incomplete(report)) if failing => report,
            other => panic!(
                "{at:?}: {what}: expected {} (outcomes per layer {expected:?}), got {other:?}",
                if failing { "Error::Incomplete" } else { "Ok" }
            ),
        };
        let layers = |wanted: fn(&Outcome) -> bool| -> Vec<usize> {
            (0..expected.len())
                .filter(|&i| wanted(&expected[i]))
                .collect()
        };
        assert_eq!(
            indices(report.written),
            layers(|o| *o == Outcome::Written),
            "{at:?}: {what}: layers written ({report})"
        );
        assert_eq!(
            indices(report.dropped),
            layers(|o| *o == Outcome::Dropped),
            "{at:?}: {what}: layers dropped ({report})"
        );
        assert_eq!(
            indices(report.invalidated),
            layers(|o| *o == Outcome::Invalidated),
            "{at:?}: {what}: layers invalidated ({report})"
        );
        let mut failures: Vec<(usize, bool)> = report
            .failures
            .iter()
            .map(|failure| {
                self.check_failure(at, what, failure);
                (failure.index, failure.invalidated)
            })
            .collect();
        failures.sort_unstable();
        let expected_failures: Vec<(usize, bool)> = (0..expected.len())
            .filter_map(|i| match expected[i] {
                Outcome::Failed(invalidated) => Some((i, invalidated)),
                _ => None,
            })
            .collect();
        assert_eq!(
            failures, expected_failures,
            "{at:?}: {what}: failed layers and whether each was invalidated ({report})"
        );
    }

    /// One reported layer failure: names the layer, is the injected error; counts it.
    fn check_failure(&mut self, at: &dyn std::fmt::Debug, what: &str, failure: &LayerFailure) {
        assert!(
            failure.index < self.layers() && self.setup.layers[failure.index].faulty,
            "{at:?}: {what}: a layer that cannot fail failed: {failure}"
        );
        assert_eq!(
            &*failure.layer,
            self.setup.name_of(failure.index),
            "{at:?}: {what}: {failure}"
        );
        assert!(
            matches!(failure.error, LayerError::Unavailable(_)),
            "{at:?}: {what}: {failure}"
        );
        self.failures_seen[failure.index] += 1;
    }

    /// A read's failures: exactly the layers in `expected`, none invalidated.
    fn check_read_failures(
        &mut self,
        at: &dyn std::fmt::Debug,
        what: &str,
        failures: &[LayerFailure],
        expected: &[usize],
    ) {
        let layers: Vec<usize> = failures.iter().map(|failure| failure.index).collect();
        assert_eq!(
            layers, expected,
            "{at:?}: {what}: the layers that failed ({failures:?})"
        );
        for failure in failures {
            assert!(!failure.invalidated, "{at:?}: {what}: {failure}");
            self.check_failure(at, what, failure);
        }
    }

    /// The answer of `get` (or one key of `get_many`).
    fn check_get(
        &mut self,
        at: &dyn std::fmt::Debug,
        key: u64,
        result: Result<Option<u64>, Error>,
    ) -> Option<u64> {
        let failing = self.failing_reads();
        match result {
            Ok(Some(value)) => {
                self.check_hit(at, key, value, Source::Any);
                self.hits += 1;
                return Some(value);
            }
            Ok(None) => assert!(
                failing.is_empty(),
                "{at:?}: get({key}) missed although layers {failing:?} could not be read"
            ),
            Err(Error::Unavailable(failures)) => {
                assert!(
                    !failing.is_empty(),
                    "{at:?}: get({key}) unavailable with no failing layer: {failures:?}"
                );
                self.check_read_failures(at, "get", &failures, &failing);
            }
            Err(error) => panic!("{at:?}: get({key}) failed: {error:?}"),
        }
        self.misses += 1;
        None
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
                if let Some(value) = self.check_get(at, key, cache.get(&key)) {
                    self.promote(key, value, Source::Any);
                }
            }
            Op::TryGet(key) => {
                let key = key_of(*key);
                let lookup = cache
                    .lookup(&key)
                    .unwrap_or_else(|error| panic!("{at:?}: try_get failed: {error:?}"));
                // Every layer above the one that served was asked (all of them on a miss).
                let above = lookup.served_by.unwrap_or(self.layers());
                let failing: Vec<usize> = self
                    .failing_reads()
                    .into_iter()
                    .filter(|&i| i < above)
                    .collect();
                self.check_read_failures(at, "try_get", &lookup.failures, &failing);
                match (lookup.value, lookup.served_by) {
                    (Some(value), Some(layer)) => {
                        assert!(layer < self.layers(), "{at:?}: served by layer {layer}");
                        self.check_hit(at, key, value, Source::Layer(layer));
                        self.hits += 1;
                        self.promote(key, value, Source::Layer(layer));
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
                    (Ok(plan), result) => {
                        let outcomes = self.set_outcomes(&plan, value);
                        self.check_write(at, "set_with", result, &outcomes);
                        self.write(key, Some(value), &outcomes, plan.ttl_ms);
                    }
                    (Err(refusal), Err(error)) if refusal_matches(refusal, &error) => {}
                    (expected, result) => {
                        panic!("{at:?}: expected {expected:?}, set_with returned {result:?}")
                    }
                }
            }
            Op::Delete(key) => {
                let key = key_of(*key);
                let outcomes = self.delete_outcomes();
                self.check_write(at, "delete", cache.delete(&key), &outcomes);
                self.write(key, None, &outcomes, None);
            }
            Op::Exists(key) => {
                let key = key_of(*key);
                let result = cache.contains_key(&key);
                // `exists` must agree with the layers read one by one (at the same time).
                let mut in_some_layer = false;
                for index in 0..self.layers() {
                    in_some_layer |= self.get_from_layer(cache, at, index, key);
                }
                let failing = self.failing_reads();
                match result {
                    Ok(exists) => {
                        assert_eq!(
                            exists, in_some_layer,
                            "{at:?}: exists({key}) disagrees with get_from_layer on every layer"
                        );
                        assert!(
                            exists || failing.is_empty(),
                            "{at:?}: exists({key}) is false although layers {failing:?} could \
                             not be read"
                        );
                    }
                    Err(Error::Unavailable(failures)) => {
                        assert!(
                            !in_some_layer,
                            "{at:?}: exists({key}) unavailable, but a working layer holds it"
                        );
                        self.check_read_failures(at, "exists", &failures, &failing);
                    }
                    Err(error) => panic!("{at:?}: exists failed: {error:?}"),
                }
            }
            Op::GetMany(keys) => {
                let keys: Vec<u64> = keys.iter().take(MAX_BATCH).map(|&k| key_of(k)).collect();
                let results = cache.get_many(&keys);
                assert_eq!(results.len(), keys.len(), "{at:?}: one result per key");
                let mut hits = Vec::new();
                for (&key, result) in keys.iter().zip(results) {
                    if let Some(value) = self.check_get(at, key, result) {
                        hits.push((key, value));
                    }
                }
                // Promotions run after every layer was read.
                for (key, value) in hits {
                    self.promote(key, value, Source::Any);
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
                        (Ok(plan), result) => {
                            let outcomes = self.set_outcomes(plan, value);
                            self.check_write(at, "set_many_with", result, &outcomes);
                            self.write(key, Some(value), &outcomes, plan.ttl_ms);
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
                let outcomes = self.delete_outcomes();
                for (&key, result) in keys.iter().zip(results) {
                    self.check_write(at, "delete_many", result, &outcomes);
                    self.write(key, None, &outcomes, None);
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
                let result = cache.entries(self.setup.name_of(index));
                if self.faults[index].reads() {
                    self.check_layer_error(at, "entries", index, result);
                    return;
                }
                let entries =
                    result.unwrap_or_else(|error| panic!("{at:?}: entries failed: {error:?}"));
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
                let landed = cache.run_pending_tasks();
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
                assert_eq!(cache.run_pending_tasks(), 0, "{at:?}: queue after close");
            }
            Op::Fail { layer, fault } => self.fail(*layer, *fault),
        }
    }

    /// A by-name call to a layer whose reads fail: `Error::Layer` naming it.
    fn check_layer_error<T: std::fmt::Debug>(
        &mut self,
        at: &dyn std::fmt::Debug,
        what: &str,
        index: usize,
        result: Result<T, Error>,
    ) {
        match result {
            Err(Error::Layer {
                layer,
                error: LayerError::Unavailable(_),
            }) if &*layer == self.setup.name_of(index) => self.failures_seen[index] += 1,
            other => panic!(
                "{at:?}: {what} of layer {index}, whose reads fail, gave {other:?}, not \
                 Error::Layer"
            ),
        }
    }

    /// Reads one layer (no promotion, no counting) and checks a hit. Returns whether it hit.
    fn get_from_layer(
        &mut self,
        cache: &Cache<u64, u64>,
        at: &dyn std::fmt::Debug,
        index: usize,
        key: u64,
    ) -> bool {
        let result = cache.get_from_layer(self.setup.name_of(index), &key);
        if self.faults[index].reads() {
            self.check_layer_error(at, "get_from_layer", index, result);
            return false;
        }
        match result {
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
                assert_eq!(cache.run_pending_tasks(), 0, "{at:?}: queue after close");
            }
            Op::Close => {
                cache.close();
                assert!(cache.is_closed(), "{at:?}: close is idempotent");
            }
            Op::Fail { layer, fault } => self.fail(*layer, *fault),
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
            if self.ever_failed[index] {
                assert!(
                    layer.errors >= self.failures_seen[index],
                    "{at:?}: layer {index} counted {} errors, {} failures were reported",
                    layer.errors,
                    self.failures_seen[index]
                );
            } else {
                assert_eq!(
                    layer.errors, 0,
                    "{at:?}: layer {index}, which never failed, counted errors"
                );
            }
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
/// model, and panics on the first disagreement. Ends with reads of every key (with the faults
/// left on, then after every layer recovered at three times) and a `close`.
pub fn check_ops(config: &Config, ops: &[Op]) {
    let setup = Setup::new(config);
    let (clock, hand) = Clock::manual();
    let (cache, switches) = setup.build(clock);
    let names: Vec<&str> = cache.layer_names().collect();
    let expected: Vec<&str> = setup.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, expected, "layer names");
    let mut model = Model::new(&setup, switches);
    // The final sweep: every key read (exists first: a read drops expired entries) and every
    // layer listed, with the faults the ops left on, then after every layer recovered three
    // times with the clock moving in between, then reads after close.
    let pass = || {
        (0..KEYS as u8)
            .flat_map(|key| [Op::Exists(key), Op::TryGet(key), Op::Get(key)])
            .chain((0..setup.layers.len() as u8).map(Op::Entries))
    };
    let recover = (0..setup.layers.len() as u8).map(|layer| Op::Fail {
        layer,
        fault: Fault::None,
    });
    let sweep: Vec<Op> = pass()
        .chain(recover)
        .chain(pass())
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
