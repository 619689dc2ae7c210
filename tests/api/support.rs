//! What the API tests share: the test layers (`TestLayer`, an injectable failing memory layer;
//! `NoIterLayer`, a minimal custom layer; `MapLayer`, a complete custom layer on a locked map),
//! cache builders, small helpers, and [`each_config`], which runs a behaviour test under every
//! configuration a user can choose.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata::layer::{
    Entry, GetResults, Layer, LayerCounters, LayerError, Ticket, Timestamp, Version,
};
use strata::memory::{MemoryConfig, MemoryLayer};
use strata::{Cache, Clock, Error, LayerSpec, ManualClock, Promotion, WriteReport};

// ===========================================================================================
// Test layers
// ===========================================================================================

fn injected() -> LayerError {
    LayerError::Unavailable("injected".into())
}

/// A memory layer with switches that make its operations fail, shared with the cache through an
/// `Arc` so a test can flip them after building. Every `Layer` method delegates to the wrapped
/// `MemoryLayer` unless its switch is on; batch forms fail per key.
pub struct TestLayer<K, V> {
    inner: MemoryLayer<K, V>,
    pub fail_get: AtomicBool,
    pub fail_set: AtomicBool,
    pub fail_delete: AtomicBool,
    pub fail_promote: AtomicBool,
    /// While on, promotions wait inside the layer (a slow layer, for the queue tests).
    pub hold_promote: AtomicBool,
    /// Promotion calls that entered the layer.
    pub promote_calls: AtomicUsize,
    /// Keys the cache asked for (`get`, `get_many`, `contains`), one per key.
    pub lookups: AtomicUsize,
    /// How many times the cache called `close`.
    pub closes: AtomicUsize,
}

impl<K, V> TestLayer<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(name: &str, capacity: usize, clock: &Clock) -> Arc<Self> {
        Arc::new(TestLayer {
            inner: MemoryLayer::new(name, MemoryConfig::new(capacity), clock.clone())
                .expect("valid memory layer"),
            fail_get: AtomicBool::new(false),
            fail_set: AtomicBool::new(false),
            fail_delete: AtomicBool::new(false),
            fail_promote: AtomicBool::new(false),
            hold_promote: AtomicBool::new(false),
            promote_calls: AtomicUsize::new(0),
            lookups: AtomicUsize::new(0),
            closes: AtomicUsize::new(0),
        })
    }

    fn on(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }

    /// Counts a promotion call, then waits while `hold_promote` is on.
    fn enter_promote(&self) {
        self.promote_calls.fetch_add(1, Ordering::SeqCst);
        while Self::on(&self.hold_promote) {
            std::thread::yield_now();
        }
    }

    /// Reads the wrapped layer directly (ignores the switches), at time `now`.
    pub fn peek(&self, key: &K, now: Timestamp) -> Option<V> {
        Layer::get(&self.inner, key, now)
            .unwrap()
            .map(|entry| entry.value)
    }

    /// Stores a value directly (as the owner of a read-only layer would), with version 0.
    pub fn put(&self, key: K, value: V) {
        Layer::set(
            &self.inner,
            &key,
            Entry {
                value,
                version: 0,
                expires_at: Timestamp::NEVER,
            },
            &Ticket::unconditional(),
        )
        .unwrap();
    }
}

impl<K, V> Layer<K, V> for TestLayer<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get(&self, key: &K, now: Timestamp) -> Result<Option<Entry<V>>, LayerError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if Self::on(&self.fail_get) {
            return Err(injected());
        }
        Layer::get(&self.inner, key, now)
    }

    fn contains(&self, key: &K, now: Timestamp) -> Result<bool, LayerError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if Self::on(&self.fail_get) {
            return Err(injected());
        }
        Layer::contains(&self.inner, key, now)
    }

    fn set(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        if Self::on(&self.fail_set) {
            return Err(injected());
        }
        Layer::set(&self.inner, key, entry, ticket)
    }

    fn delete(&self, key: &K, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        if Self::on(&self.fail_delete) {
            return Err(injected());
        }
        Layer::delete(&self.inner, key, ticket)
    }

    fn promote(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<bool, LayerError> {
        self.enter_promote();
        if Self::on(&self.fail_promote) {
            return Err(injected());
        }
        Layer::promote(&self.inner, key, entry, ticket)
    }

    fn get_many(&self, keys: &[&K], now: Timestamp) -> GetResults<V> {
        self.lookups.fetch_add(keys.len(), Ordering::SeqCst);
        if Self::on(&self.fail_get) {
            return keys.iter().map(|_| Err(injected())).collect();
        }
        Layer::get_many(&self.inner, keys, now)
    }

    fn set_many(&self, entries: Vec<(&K, Entry<V>, Ticket<'_>)>) -> Vec<Result<(), LayerError>> {
        if Self::on(&self.fail_set) {
            return entries.iter().map(|_| Err(injected())).collect();
        }
        Layer::set_many(&self.inner, entries)
    }

    fn delete_many(&self, keys: &[(&K, Ticket<'_>)]) -> Vec<Result<(), LayerError>> {
        if Self::on(&self.fail_delete) {
            return keys.iter().map(|_| Err(injected())).collect();
        }
        Layer::delete_many(&self.inner, keys)
    }

    fn promote_many(
        &self,
        entries: Vec<(&K, Entry<V>, Ticket<'_>)>,
    ) -> Vec<Result<bool, LayerError>> {
        self.enter_promote();
        if Self::on(&self.fail_promote) {
            return entries.iter().map(|_| Err(injected())).collect();
        }
        Layer::promote_many(&self.inner, entries)
    }

    fn for_each(&self, now: Timestamp, f: &mut dyn FnMut(&K, &V)) -> Result<(), LayerError> {
        if Self::on(&self.fail_get) {
            return Err(injected());
        }
        Layer::for_each(&self.inner, now, f)
    }

    fn counters(&self) -> LayerCounters {
        Layer::counters(&self.inner)
    }

    fn close(&self) {
        self.closes.fetch_add(1, Ordering::SeqCst);
        Layer::close(&self.inner);
    }
}

/// A minimal custom layer: a locked map, no iteration, no promotion (trait defaults).
#[derive(Default)]
pub struct NoIterLayer {
    map: Mutex<HashMap<u64, Entry<String>>>,
}

impl Layer<u64, String> for NoIterLayer {
    fn get(&self, key: &u64, now: Timestamp) -> Result<Option<Entry<String>>, LayerError> {
        Ok(self
            .map
            .lock()
            .unwrap()
            .get(key)
            .filter(|e| e.expires_at > now)
            .cloned())
    }

    fn set(&self, key: &u64, entry: Entry<String>, _: &Ticket<'_>) -> Result<(), LayerError> {
        let mut map = self.map.lock().unwrap();
        if map.get(key).is_none_or(|old| old.version < entry.version) {
            map.insert(*key, entry);
        }
        Ok(())
    }

    fn delete(&self, key: &u64, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        let version = ticket.version();
        let mut map = self.map.lock().unwrap();
        if map.get(key).is_some_and(|old| old.version < version) {
            map.remove(key);
        }
        Ok(())
    }
}

/// A complete custom layer with no memory tier inside: a locked map, unbounded, that keeps the
/// `Layer` contract the simple way (per-key floors for writes of absent keys, insert-then-check
/// promotions, expired entries removed when met). The non-memory L1 of [`each_config`].
#[derive(Default)]
pub struct MapLayer {
    state: Mutex<MapState>,
}

#[derive(Default)]
struct MapState {
    entries: HashMap<u64, Entry<String>>,
    /// Per key, the highest version removed (deleted or expired): a write may insert the key
    /// while it is absent only with a newer version.
    floors: HashMap<u64, Version>,
}

impl MapState {
    /// The live entry of `key`; an expired one is removed (and its version becomes the floor).
    fn live(&mut self, key: &u64, now: Timestamp) -> Option<&Entry<String>> {
        if let Some(expired) = self.entries.get(key).filter(|e| e.expires_at <= now) {
            let version = expired.version;
            self.entries.remove(key);
            self.raise_floor(*key, version);
        }
        self.entries.get(key)
    }

    fn raise_floor(&mut self, key: u64, version: Version) {
        // An unconditional ticket (a direct call, outside a cache) carries Version::MAX.
        if version != Version::MAX {
            let floor = self.floors.entry(key).or_default();
            *floor = (*floor).max(version);
        }
    }
}

impl MapLayer {
    fn lock(&self) -> std::sync::MutexGuard<'_, MapState> {
        self.state.lock().unwrap()
    }
}

impl Layer<u64, String> for MapLayer {
    fn get(&self, key: &u64, now: Timestamp) -> Result<Option<Entry<String>>, LayerError> {
        Ok(self.lock().live(key, now).cloned())
    }

    fn set(&self, key: &u64, entry: Entry<String>, _: &Ticket<'_>) -> Result<(), LayerError> {
        let mut state = self.lock();
        let keep_old = match state.entries.get(key) {
            Some(old) => old.version >= entry.version,
            None => state
                .floors
                .get(key)
                .is_some_and(|&floor| floor >= entry.version),
        };
        if !keep_old {
            state.entries.insert(*key, entry);
        }
        Ok(())
    }

    fn delete(&self, key: &u64, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        let version = ticket.version();
        let mut state = self.lock();
        if state
            .entries
            .get(key)
            .is_none_or(|old| old.version <= version)
        {
            state.entries.remove(key);
            state.raise_floor(*key, version);
        }
        Ok(())
    }

    fn promote(
        &self,
        key: &u64,
        entry: Entry<String>,
        ticket: &Ticket<'_>,
    ) -> Result<bool, LayerError> {
        let mut state = self.lock();
        if state.entries.contains_key(key) {
            return Ok(false);
        }
        // Insert, then check the ticket (readers cannot see the entry: the lock is held).
        state.entries.insert(*key, entry);
        if ticket.is_current() {
            Ok(true)
        } else {
            state.entries.remove(key);
            Ok(false)
        }
    }

    fn for_each(&self, now: Timestamp, f: &mut dyn FnMut(&u64, &String)) -> Result<(), LayerError> {
        let live: Vec<(u64, String)> = self
            .lock()
            .entries
            .iter()
            .filter(|(_, entry)| entry.expires_at > now)
            .map(|(key, entry)| (*key, entry.value.clone()))
            .collect();
        for (key, value) in &live {
            f(key, value);
        }
        Ok(())
    }

    fn counters(&self) -> LayerCounters {
        LayerCounters {
            len: Some(self.lock().entries.len() as u64),
            ..LayerCounters::default()
        }
    }

    fn close(&self) {
        self.lock().entries.clear();
    }
}

// ===========================================================================================
// Helpers
// ===========================================================================================

pub type C = Cache<u64, String>;

pub fn s(text: &str) -> String {
    text.to_string()
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Two memory layers, l1 (capacity 100) over l2 (capacity 1000), no TTLs.
pub fn two_layers(clock: &Clock) -> C {
    Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 1000))
        .build()
        .unwrap()
}

/// Three memory layers with the given promotion mode.
pub fn three_layers(clock: &Clock, promotion: Promotion) -> C {
    Cache::builder()
        .clock(clock.clone())
        .promotion(promotion)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 100))
        .layer(LayerSpec::memory("l3", 100))
        .build()
        .unwrap()
}

/// A memory l1 over a shared test-layer l2.
pub fn memory_over_test(clock: &Clock) -> (C, Arc<TestLayer<u64, String>>) {
    let l2 = TestLayer::new("l2", 1000, clock);
    let cache = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("l2", l2.clone()))
        .build()
        .unwrap();
    (cache, l2)
}

/// A shared test-layer l1 over a memory l2.
pub fn test_over_memory(clock: &Clock) -> (C, Arc<TestLayer<u64, String>>) {
    let l1 = TestLayer::new("l1", 100, clock);
    let cache = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::shared("l1", l1.clone()))
        .layer(LayerSpec::memory("l2", 1000))
        .build()
        .unwrap();
    (cache, l1)
}

pub fn manual() -> (Clock, ManualClock) {
    Clock::manual()
}

pub fn in_layer(cache: &C, layer: &str, key: u64) -> Option<String> {
    cache.get_from_layer(layer, &key).unwrap()
}

pub fn layers_of(set: strata::LayerSet) -> Vec<usize> {
    set.iter().collect()
}

pub fn incomplete(result: Result<WriteReport, Error>) -> WriteReport {
    match result {
        Err(Error::Incomplete(report)) => report,
        other => panic!("expected Error::Incomplete, got {other:?}"),
    }
}

// ===========================================================================================
// Every configuration a user can choose
// ===========================================================================================

/// The configurations [`each_config`] runs a behaviour test under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Memory l1 (capacity 100) over memory l2 (capacity 1000): the default.
    Memory,
    /// The same with deferred promotion, in batches larger than any test fills: a promotion
    /// lands only on `run_pending_tasks`.
    Deferred,
    /// A custom l1 with no memory tier inside ([`MapLayer`]) over memory l2 (capacity 1000).
    CustomL1,
    /// Three memory layers: l1 (100), l2 (1000), l3 (1000).
    ThreeLayers,
}

/// One configuration of [`each_config`]: builds its caches. Layers are named `l1`, `l2` (and
/// `l3`), so tests address them by name whatever the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub kind: Kind,
}

/// The deferred-promotion batch of [`Kind::Deferred`].
pub const DEFERRED_BATCH: usize = 1024;

impl Setup {
    pub const ALL: [Setup; 4] = [
        Setup { kind: Kind::Memory },
        Setup {
            kind: Kind::Deferred,
        },
        Setup {
            kind: Kind::CustomL1,
        },
        Setup {
            kind: Kind::ThreeLayers,
        },
    ];

    /// How a failure message names the configuration.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Memory => "memory l1 + memory l2",
            Kind::Deferred => "memory l1 + memory l2, deferred promotion",
            Kind::CustomL1 => "custom (locked-map) l1 + memory l2",
            Kind::ThreeLayers => "three memory layers",
        }
    }

    /// The layer names, L1 first.
    pub fn layers(&self) -> Vec<&'static str> {
        match self.kind {
            Kind::ThreeLayers => vec!["l1", "l2", "l3"],
            _ => vec!["l1", "l2"],
        }
    }

    /// Every layer's position, L1 first (all are writable).
    pub fn all(&self) -> Vec<usize> {
        (0..self.layers().len()).collect()
    }

    /// The configuration's cache, no TTLs.
    pub fn build(&self, clock: &Clock) -> C {
        self.build_with_ttls(clock, None, None)
    }

    /// The configuration's cache with `l1_ttl` on l1 and `lower_ttl` on every layer below it.
    pub fn build_with_ttls(
        &self,
        clock: &Clock,
        l1_ttl: Option<Duration>,
        lower_ttl: Option<Duration>,
    ) -> C {
        let ttl = |spec: LayerSpec<u64, String>, ttl: Option<Duration>| match ttl {
            Some(ttl) => spec.ttl(ttl),
            None => spec,
        };
        let l1 = match self.kind {
            Kind::CustomL1 => LayerSpec::custom("l1", MapLayer::default()),
            _ => LayerSpec::memory("l1", 100),
        };
        let mut builder = Cache::builder()
            .clock(clock.clone())
            .layer(ttl(l1, l1_ttl))
            .layer(ttl(LayerSpec::memory("l2", 1000), lower_ttl));
        match self.kind {
            Kind::Deferred => builder = builder.deferred_promotion(DEFERRED_BATCH),
            Kind::ThreeLayers => {
                builder = builder.layer(ttl(LayerSpec::memory("l3", 1000), lower_ttl))
            }
            Kind::Memory | Kind::CustomL1 => {}
        }
        builder.build().unwrap()
    }
}

/// Runs `test` under every configuration a user can choose ([`Setup::ALL`]), the way papaya
/// runs its tests under each resize mode. Every configuration runs even if an earlier one
/// failed; the test then fails with a message naming each failing configuration and its panic.
///
/// A test run through this must hold in every configuration: it addresses layers by name
/// (`l1`, `l2`), and calls `run_pending_tasks()` before it expects a promotion to have
/// landed (in [`Kind::Deferred`] none lands before).
pub fn each_config(test: impl Fn(&Setup)) {
    let mut failed = Vec::new();
    for setup in Setup::ALL {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| test(&setup))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            failed.push(format!("under configuration `{}`: {message}", setup.name()));
        }
    }
    assert!(
        failed.is_empty(),
        "failed in {} of {} configurations:\n{}",
        failed.len(),
        Setup::ALL.len(),
        failed.join("\n")
    );
}
