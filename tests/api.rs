//! Integration tests of strata's public API: builder checks, reads and writes, write modes,
//! read-only layers, promotion (immediate and deferred) and its TTLs, expiry on a manual clock,
//! eviction bounds, failure reporting through an injectable test layer, batch operations,
//! iteration, `close`, and thread-safety.
//!
//! No test sleeps: every TTL is driven by `Clock::manual()`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use strata::layer::{
    Entry, GetResults, Layer, LayerCounters, LayerError, MemoryConfig, MemoryLayer, Ticket,
    Timestamp,
};
use strata::{
    BuildError, Cache, Clock, Error, LayerSpec, ManualClock, Promotion, SetOptions, WriteMode,
    WriteReport,
};

// ===========================================================================================
// Test layers
// ===========================================================================================

fn injected() -> LayerError {
    LayerError::Unavailable("injected".into())
}

/// A memory layer with switches that make its operations fail, shared with the cache through an
/// `Arc` so a test can flip them after building. Every `Layer` method delegates to the wrapped
/// `MemoryLayer` unless its switch is on; batch forms fail per key.
struct TestLayer<K, V> {
    inner: MemoryLayer<K, V>,
    fail_get: AtomicBool,
    fail_set: AtomicBool,
    fail_delete: AtomicBool,
    fail_promote: AtomicBool,
    /// How many times the cache called `close`.
    closes: AtomicUsize,
}

impl<K, V> TestLayer<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(name: &str, capacity: usize, clock: &Clock) -> Arc<Self> {
        Arc::new(TestLayer {
            inner: MemoryLayer::new(name, MemoryConfig::new(capacity), clock.clone())
                .expect("valid memory layer"),
            fail_get: AtomicBool::new(false),
            fail_set: AtomicBool::new(false),
            fail_delete: AtomicBool::new(false),
            fail_promote: AtomicBool::new(false),
            closes: AtomicUsize::new(0),
        })
    }

    fn on(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }

    /// Reads the wrapped layer directly (ignores the switches), at time `now`.
    fn peek(&self, key: &K, now: Timestamp) -> Option<V> {
        Layer::get(&self.inner, key, now)
            .unwrap()
            .map(|entry| entry.value)
    }

    /// Stores a value directly (as the owner of a read-only layer would), with version 0.
    fn put(&self, key: K, value: V) {
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
        if Self::on(&self.fail_get) {
            return Err(injected());
        }
        Layer::get(&self.inner, key, now)
    }

    fn contains(&self, key: &K, now: Timestamp) -> Result<bool, LayerError> {
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
        if Self::on(&self.fail_promote) {
            return Err(injected());
        }
        Layer::promote(&self.inner, key, entry, ticket)
    }

    fn get_many(&self, keys: &[&K], now: Timestamp) -> GetResults<V> {
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
struct NoIterLayer {
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

// ===========================================================================================
// Helpers
// ===========================================================================================

type C = Cache<u64, String>;

fn s(text: &str) -> String {
    text.to_string()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Two memory layers, l1 (capacity 100) over l2 (capacity 1000), no TTLs.
fn two_layers(clock: &Clock) -> C {
    Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 1000))
        .build()
        .unwrap()
}

/// Three memory layers with the given promotion mode.
fn three_layers(clock: &Clock, promotion: Promotion) -> C {
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
fn memory_over_test(clock: &Clock) -> (C, Arc<TestLayer<u64, String>>) {
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
fn test_over_memory(clock: &Clock) -> (C, Arc<TestLayer<u64, String>>) {
    let l1 = TestLayer::new("l1", 100, clock);
    let cache = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::shared("l1", l1.clone()))
        .layer(LayerSpec::memory("l2", 1000))
        .build()
        .unwrap();
    (cache, l1)
}

fn manual() -> (Clock, ManualClock) {
    Clock::manual()
}

fn in_layer(cache: &C, layer: &str, key: u64) -> Option<String> {
    cache.get_from_layer(layer, &key).unwrap()
}

fn layers_of(set: strata::LayerSet) -> Vec<usize> {
    set.iter().collect()
}

fn incomplete(result: Result<WriteReport, Error>) -> WriteReport {
    match result {
        Err(Error::Incomplete(report)) => report,
        other => panic!("expected Error::Incomplete, got {other:?}"),
    }
}

// ===========================================================================================
// 1. Builder
// ===========================================================================================

#[test]
fn build_refuses_no_layers() {
    let err = Cache::<u64, String>::builder().build().unwrap_err();
    assert_eq!(err, BuildError::NoLayers);
}

#[test]
fn build_refuses_duplicate_names() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("a", 10))
        .layer(LayerSpec::memory("b", 10))
        .layer(LayerSpec::memory("a", 10))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::DuplicateName(s("a")));
}

#[test]
fn build_refuses_empty_name() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("", 10))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::EmptyName { index: 1 });
}

#[test]
fn build_refuses_blank_name() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("   ", 10))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::EmptyName { index: 0 });
}

#[test]
fn build_refuses_zero_capacity() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("l2", 0))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroCapacity(s("l2")));
}

#[test]
fn build_refuses_zero_ttl() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10).ttl(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroTtl(s("l1")));
}

#[test]
fn build_refuses_sub_millisecond_ttl() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("l2", 10).ttl(Duration::from_micros(999)))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroTtl(s("l2")));
}

#[test]
fn build_refuses_read_only_l1() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10).read_only())
        .layer(LayerSpec::memory("l2", 10))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ReadOnlyL1(s("l1")));
}

#[test]
fn build_refuses_max_weight_on_custom_layer() {
    let (clock, _hand) = manual();
    let custom = TestLayer::<u64, String>::new("remote", 10, &clock);
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::shared("remote", custom).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::WeightOnCustomLayer(s("remote")));
}

#[test]
fn build_refuses_zero_max_weight() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10).max_weight(0, |_, v: &String| v.len() as u64))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroWeight(s("l1")));
}

#[test]
fn build_refuses_zero_promotion_batch() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .deferred_promotion(0)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroPromotionBatch);
}

#[test]
fn build_refuses_more_than_64_layers() {
    let mut builder = Cache::<u64, String>::builder();
    for i in 0..65 {
        builder = builder.layer(LayerSpec::memory(format!("l{i}"), 1));
    }
    assert_eq!(
        builder.build().unwrap_err(),
        BuildError::TooManyLayers { max: 64, got: 65 }
    );
}

#[test]
fn build_accepts_64_layers_and_writes_them_all() {
    let mut builder = Cache::<u64, String>::builder();
    for i in 0..64 {
        builder = builder.layer(LayerSpec::memory(format!("l{i}"), 4));
    }
    let cache = builder.build().unwrap();
    let report = cache.set(1, s("one")).unwrap();
    assert_eq!(report.written.len(), 64);
    assert!(report.written.contains(63));
    assert_eq!(in_layer(&cache, "l63", 1), Some(s("one")));
}

#[test]
fn build_accepts_valid_configurations() {
    let (clock, _hand) = manual();
    let custom = TestLayer::<u64, String>::new("remote", 10, &clock);
    let cache: C = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 10).ttl(secs(60)))
        .layer(LayerSpec::memory("l2", 100).max_weight(1000, |_, v: &String| v.len() as u64))
        .layer(LayerSpec::shared("remote", custom).ttl(secs(3600)))
        .layer(LayerSpec::custom("db", NoIterLayer::default()).read_only())
        .write_mode(WriteMode::L1Only)
        .promotion(Promotion::L1Only)
        .deferred_promotion(1)
        .build()
        .unwrap();
    assert_eq!(
        cache.layer_names().collect::<Vec<_>>(),
        ["l1", "l2", "remote", "db"]
    );
    assert!(!cache.is_closed());

    // A single memory layer with default options builds too.
    let single: C = Cache::builder()
        .layer(LayerSpec::memory("only", 1))
        .build()
        .unwrap();
    single.set(1, s("x")).unwrap();
    assert_eq!(single.get(&1).unwrap(), Some(s("x")));
}

// ===========================================================================================
// 2. Basic reads and writes
// ===========================================================================================

#[test]
fn get_of_missing_key_is_ok_none() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    assert_eq!(cache.get(&42).unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (0, 1));
    assert_eq!((stats.layers[0].misses, stats.layers[1].misses), (1, 1));
}

#[test]
fn set_then_get_returns_value() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("one")).unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    assert_eq!(cache.get(&2).unwrap(), None);
}

#[test]
fn set_overwrites_in_every_layer() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("old")).unwrap();
    cache.set(1, s("new")).unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("new")));
}

#[test]
fn delete_removes_from_every_layer_and_is_idempotent() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("one")).unwrap();
    let report = cache.delete(&1).unwrap();
    assert_eq!(layers_of(report.invalidated), [0, 1]);
    assert!(report.written.is_empty() && report.failures.is_empty());
    assert_eq!(cache.get(&1).unwrap(), None);
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), None);
    // Deleting again, and deleting a key never set, are fine.
    assert_eq!(layers_of(cache.delete(&1).unwrap().invalidated), [0, 1]);
    assert!(cache.delete(&999).is_ok());
}

#[test]
fn exists_reports_presence_in_any_layer() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    assert!(!cache.contains_key(&1).unwrap());
    cache.set(1, s("one")).unwrap();
    assert!(cache.contains_key(&1).unwrap());
    cache
        .set_with(2, s("two"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert!(cache.contains_key(&2).unwrap());
    cache.delete(&1).unwrap();
    assert!(!cache.contains_key(&1).unwrap());
}

#[test]
fn exists_does_not_promote() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert!(cache.contains_key(&1).unwrap());
    assert_eq!(in_layer(&cache, "l1", 1), None);
    let stats = cache.stats();
    assert_eq!(stats.layers[0].promotions_in, 0);
    // Not counted as a request either.
    assert_eq!((stats.hits, stats.misses), (0, 0));
}

#[test]
fn try_get_names_the_serving_layer() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("one")).unwrap();
    cache
        .set_with(2, s("two"), &SetOptions::new().skip("l1"))
        .unwrap();
    let hit1 = cache.lookup(&1).unwrap();
    assert_eq!((hit1.value, hit1.served_by), (Some(s("one")), Some(0)));
    let hit2 = cache.lookup(&2).unwrap();
    assert_eq!((hit2.value, hit2.served_by), (Some(s("two")), Some(1)));
    let miss = cache.lookup(&3).unwrap();
    assert_eq!((miss.value, miss.served_by), (None, None));
    assert!(miss.failures.is_empty());
}

#[test]
fn get_from_layer_does_not_count_or_promote() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("one")));
    assert_eq!(in_layer(&cache, "l1", 1), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (0, 0));
    assert_eq!(stats.layers[0].promotions_in, 0);
    assert!(
        matches!(cache.get_from_layer("nope", &1), Err(Error::UnknownLayer(name)) if name == "nope")
    );
}

// ===========================================================================================
// 3. Write modes
// ===========================================================================================

#[test]
fn write_through_writes_every_writable_layer() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::AllAbove);
    let report = cache.set(1, s("one")).unwrap();
    assert_eq!(layers_of(report.written), [0, 1, 2]);
    assert!(report.invalidated.is_empty());
    assert!(report.is_complete());
    for layer in ["l1", "l2", "l3"] {
        assert_eq!(in_layer(&cache, layer, 1), Some(s("one")), "{layer}");
    }
}

#[test]
fn l1_only_write_mode_invalidates_lower_layers() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .write_mode(WriteMode::L1Only)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 100))
        .build()
        .unwrap();
    // An older value everywhere, written with the mode overridden.
    cache
        .set_with(
            1,
            s("old"),
            &SetOptions::new().mode(WriteMode::WriteThrough),
        )
        .unwrap();
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("old")));
    let report = cache.set(1, s("new")).unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert_eq!(layers_of(report.invalidated), [1]);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
}

#[test]
fn l1_only_set_option_invalidates_lower_layers() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::AllAbove);
    cache.set(1, s("old")).unwrap();
    let report = cache
        .set_with(1, s("new"), &SetOptions::new().l1_only())
        .unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert_eq!(layers_of(report.invalidated), [1, 2]);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert_eq!(in_layer(&cache, "l3", 1), None);
}

#[test]
fn l1_only_write_never_lets_an_older_lower_value_resurface() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 1))
        .layer(LayerSpec::memory("l2", 100))
        .build()
        .unwrap();
    cache.set(1, s("old")).unwrap();
    cache
        .set_with(1, s("new"), &SetOptions::new().l1_only())
        .unwrap();
    // Evict key 1 from the one-entry L1.
    cache
        .set_with(2, s("other"), &SetOptions::new().l1_only())
        .unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(
        cache.get(&1).unwrap(),
        None,
        "the older L2 value must not come back"
    );
}

#[test]
fn skip_option_skips_and_invalidates_the_layer() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("old")).unwrap();
    let report = cache
        .set_with(1, s("new"), &SetOptions::new().skip("l2"))
        .unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert_eq!(layers_of(report.invalidated), [1]);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
    assert_eq!(in_layer(&cache, "l2", 1), None);
}

#[test]
fn skipping_l1_writes_only_lower_layers() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("old")).unwrap();
    let report = cache
        .set_with(1, s("new"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(layers_of(report.written), [1]);
    assert_eq!(layers_of(report.invalidated), [0]);
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("new")));
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
}

#[test]
fn skipping_an_unknown_layer_fails_and_writes_nothing() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("old")).unwrap();
    let result = cache.set_with(1, s("new"), &SetOptions::new().skip("l2").skip("nope"));
    assert!(matches!(result, Err(Error::UnknownLayer(name)) if name == "nope"));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("old")));
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("old")));
    let result = cache.set_with(2, s("two"), &SetOptions::new().skip("nope"));
    assert!(matches!(result, Err(Error::UnknownLayer(_))));
    assert_eq!(in_layer(&cache, "l1", 2), None);
    assert_eq!(in_layer(&cache, "l2", 2), None);
}

// ===========================================================================================
// 4. Read-only layers
// ===========================================================================================

/// l1 memory over a read-only test layer "db".
fn over_read_only(clock: &Clock) -> (C, Arc<TestLayer<u64, String>>) {
    let db = TestLayer::new("db", 1000, clock);
    let cache = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("db", db.clone()).read_only())
        .build()
        .unwrap();
    (cache, db)
}

#[test]
fn read_only_layer_is_never_written_by_set() {
    let (clock, _hand) = manual();
    let (cache, db) = over_read_only(&clock);
    let report = cache.set(1, s("one")).unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert!(report.invalidated.is_empty());
    assert_eq!(db.peek(&1, clock.now()), None);
    // Not in L1-only mode either (no invalidation).
    db.put(2, s("db-two"));
    let report = cache
        .set_with(2, s("two"), &SetOptions::new().l1_only())
        .unwrap();
    assert!(report.invalidated.is_empty());
    assert_eq!(db.peek(&2, clock.now()), Some(s("db-two")));
}

#[test]
fn read_only_layer_is_never_invalidated_by_delete() {
    let (clock, _hand) = manual();
    let (cache, db) = over_read_only(&clock);
    db.put(1, s("db-one"));
    let report = cache.delete(&1).unwrap();
    assert_eq!(layers_of(report.invalidated), [0]);
    assert_eq!(db.peek(&1, clock.now()), Some(s("db-one")));
    // Skipping it by name is allowed and does nothing to it.
    let report = cache
        .set_with(1, s("x"), &SetOptions::new().skip("db"))
        .unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert!(report.invalidated.is_empty());
    assert_eq!(db.peek(&1, clock.now()), Some(s("db-one")));
}

#[test]
fn read_only_layer_values_are_served_and_promoted_into_l1() {
    let (clock, _hand) = manual();
    let (cache, db) = over_read_only(&clock);
    db.put(1, s("from-db"));
    let lookup = cache.lookup(&1).unwrap();
    assert_eq!(
        (lookup.value, lookup.served_by),
        (Some(s("from-db")), Some(1))
    );
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("from-db")));
    assert_eq!(cache.stats().layers[0].promotions_in, 1);
    assert_eq!(cache.lookup(&1).unwrap().served_by, Some(0));
}

#[test]
fn read_only_layer_is_never_promoted_into() {
    let (clock, _hand) = manual();
    let db = TestLayer::new("db", 1000, &clock);
    let cache: C = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("db", db.clone()).read_only())
        .layer(LayerSpec::memory("l3", 100))
        .build()
        .unwrap();
    let report = cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(layers_of(report.written), [2]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(db.peek(&1, clock.now()), None);
    let stats = cache.stats();
    assert_eq!(stats.layers[0].promotions_in, 1);
    assert_eq!(stats.layers[1].promotions_in, 0);
}

// ===========================================================================================
// 5. Promotion
// ===========================================================================================

#[test]
fn promotion_off_never_copies_up() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::Off);
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(cache.lookup(&1).unwrap().served_by, Some(2));
    }
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert!(cache.stats().layers.iter().all(|l| l.promotions_in == 0));
}

#[test]
fn promotion_all_above_copies_into_every_upper_layer() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::AllAbove);
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("deep")));
    let promotions: Vec<u64> = cache
        .stats()
        .layers
        .iter()
        .map(|l| l.promotions_in)
        .collect();
    assert_eq!(promotions, [1, 1, 0]);
    assert_eq!(cache.lookup(&1).unwrap().served_by, Some(0));
}

#[test]
fn promotion_l1_only_copies_into_l1_but_not_l2() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::L1Only);
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l2", 1), None);
    let promotions: Vec<u64> = cache
        .stats()
        .layers
        .iter()
        .map(|l| l.promotions_in)
        .collect();
    assert_eq!(promotions, [1, 0, 0]);
}

#[test]
fn promotion_from_l2_with_all_above_fills_l1_only() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::AllAbove);
    cache
        .set_with(1, s("mid"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.lookup(&1).unwrap().served_by, Some(1));
    let promotions: Vec<u64> = cache
        .stats()
        .layers
        .iter()
        .map(|l| l.promotions_in)
        .collect();
    assert_eq!(promotions, [1, 0, 0]);
}

#[test]
fn lower_layer_hit_counts_once_as_a_request_hit() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 0));
    assert_eq!((stats.layers[0].hits, stats.layers[0].misses), (0, 1));
    assert_eq!((stats.layers[1].hits, stats.layers[1].misses), (1, 0));
    assert_eq!(stats.hit_ratio(), 1.0);
}

#[test]
fn lower_layer_hit_counts_once_with_a_custom_l1() {
    let (clock, _hand) = manual();
    let (cache, _l1) = test_over_memory(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    assert_eq!(cache.get(&2).unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
    assert_eq!((stats.layers[0].hits, stats.layers[0].misses), (0, 2));
    assert_eq!((stats.layers[1].hits, stats.layers[1].misses), (1, 1));
    assert_eq!(stats.layers[0].promotions_in, 1);
    assert_eq!(stats.hit_ratio(), 0.5);
}

#[test]
fn promotion_does_not_overwrite_a_present_l1_value() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("old")).unwrap();
    cache
        .set_with(1, s("new"), &SetOptions::new().l1_only())
        .unwrap();
    // L1 serves the new value; L2 no longer holds anything.
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
    assert_eq!(cache.stats().layers[0].promotions_in, 0);
}

// ===========================================================================================
// 6. Promotion TTL
// ===========================================================================================

/// l1 with `l1_ttl`, l2 with `l2_ttl`.
fn with_ttls(clock: &Clock, l1_ttl: Duration, l2_ttl: Duration) -> C {
    Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100).ttl(l1_ttl))
        .layer(LayerSpec::memory("l2", 100).ttl(l2_ttl))
        .build()
        .unwrap()
}

#[test]
fn promoted_copy_expires_with_its_source_when_that_is_sooner() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(60), secs(100));
    cache
        .set_with(1, s("v"), &SetOptions::new().skip("l1"))
        .unwrap();
    hand.advance(secs(70));
    assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")), "promoted");
    // Remaining 30 s < L1 TTL 60 s: the copy lives 30 s.
    hand.advance(secs(29));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
    hand.advance(secs(2));
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.get(&1).unwrap(), None);
}

#[test]
fn promoted_copy_expires_exactly_when_its_source_does() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(60), secs(100));
    cache
        .set_with(1, s("v"), &SetOptions::new().skip("l1"))
        .unwrap();
    hand.advance(secs(70));
    assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
    hand.advance(Duration::from_millis(29_999));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
    hand.advance(Duration::from_millis(1));
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), None);
}

#[test]
fn promoted_copy_gets_the_layer_ttl_when_that_is_sooner() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(10), secs(100));
    cache
        .set_with(1, s("v"), &SetOptions::new().skip("l1"))
        .unwrap();
    hand.advance(secs(5));
    assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
    // Remaining 95 s > L1 TTL 10 s: the copy lives 10 s.
    hand.advance(secs(9));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
    hand.advance(secs(2));
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("v")));
}

#[test]
fn promoted_copy_of_a_non_expiring_value_gets_the_layer_ttl() {
    let (clock, hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 100).ttl(secs(10)))
        .layer(LayerSpec::memory("l2", 100))
        .build()
        .unwrap();
    cache
        .set_with(1, s("v"), &SetOptions::new().skip("l1"))
        .unwrap();
    hand.advance(secs(1000));
    assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
    hand.advance(Duration::from_millis(9_999));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
    hand.advance(Duration::from_millis(1));
    assert_eq!(in_layer(&cache, "l1", 1), None);
}

#[test]
fn promoted_copy_into_a_layer_without_ttl_keeps_the_source_expiry() {
    let (clock, hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 100).ttl(secs(100)))
        .build()
        .unwrap();
    cache
        .set_with(1, s("v"), &SetOptions::new().skip("l1"))
        .unwrap();
    hand.advance(secs(50));
    assert_eq!(cache.get(&1).unwrap(), Some(s("v")));
    hand.advance(Duration::from_millis(49_999));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
    hand.advance(Duration::from_millis(1));
    assert_eq!(in_layer(&cache, "l1", 1), None);
}

// ===========================================================================================
// 7. TTL expiry
// ===========================================================================================

#[test]
fn per_layer_ttls_expire_each_layer_on_its_own() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(10), secs(60));
    cache.set(1, s("v")).unwrap();
    hand.advance(Duration::from_millis(9_999));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v")));
    hand.advance(Duration::from_millis(1));
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("v")));
    assert_eq!(cache.lookup(&1).unwrap().served_by, Some(1));
    hand.advance(secs(50));
    assert_eq!(cache.get(&1).unwrap(), None);
    assert!(!cache.contains_key(&1).unwrap());
}

#[test]
fn expirations_are_counted_per_layer() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(10), secs(60));
    cache.set(1, s("v")).unwrap();
    cache.set(2, s("w")).unwrap();
    hand.advance(secs(10));
    // Both L1 copies are now expired; reading finds and removes them.
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l1", 2), None);
    let stats = cache.stats();
    assert_eq!(stats.layers[0].expirations, 2);
    assert_eq!(stats.layers[1].expirations, 0);
    assert_eq!(stats.layers[0].len, Some(0));
    hand.advance(secs(50));
    assert_eq!(cache.get(&1).unwrap(), None);
    assert_eq!(cache.stats().layers[1].expirations, 1);
}

#[test]
fn per_call_ttl_overrides_layer_ttls() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(60), secs(600));
    cache
        .set_with(1, s("short"), &SetOptions::new().ttl(secs(5)))
        .unwrap();
    cache.set(2, s("default")).unwrap();
    hand.advance(Duration::from_millis(4_999));
    assert_eq!(cache.get(&1).unwrap(), Some(s("short")));
    hand.advance(Duration::from_millis(1));
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert_eq!(cache.get(&1).unwrap(), None);
    assert_eq!(cache.get(&2).unwrap(), Some(s("default")));
}

#[test]
fn per_call_ttl_can_be_longer_than_layer_ttls() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(60), secs(60));
    cache
        .set_with(1, s("long"), &SetOptions::new().ttl(secs(120)))
        .unwrap();
    hand.advance(secs(90));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("long")));
    hand.advance(secs(30));
    assert_eq!(cache.get(&1).unwrap(), None);
}

#[test]
fn entries_without_ttl_never_expire() {
    let (clock, hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("forever")).unwrap();
    hand.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    assert_eq!(cache.get(&1).unwrap(), Some(s("forever")));
    assert_eq!(cache.stats().layers[0].expirations, 0);
}

#[test]
fn expired_entries_are_not_iterated() {
    let (clock, hand) = manual();
    let cache = with_ttls(&clock, secs(10), secs(60));
    cache.set(1, s("a")).unwrap();
    hand.advance(secs(5));
    cache.set(2, s("b")).unwrap();
    hand.advance(secs(5));
    assert_eq!(cache.keys("l1").unwrap(), [2]);
    let mut l2 = cache.keys("l2").unwrap();
    l2.sort_unstable();
    assert_eq!(l2, [1, 2]);
}

// ===========================================================================================
// 8. Eviction bounds
// ===========================================================================================

#[test]
fn memory_layer_never_exceeds_its_capacity() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("l2", 50))
        .build()
        .unwrap();
    for i in 0..1000u64 {
        cache.set(i, format!("v{i}")).unwrap();
        // Re-read some keys so both S3-FIFO queues are exercised.
        if i % 3 == 0 {
            let _ = cache.get(&(i / 2)).unwrap();
        }
        let stats = cache.stats();
        assert!(
            stats.layers[0].len.unwrap() <= 10,
            "after {i}: {:?}",
            stats.layers[0]
        );
        assert!(
            stats.layers[1].len.unwrap() <= 50,
            "after {i}: {:?}",
            stats.layers[1]
        );
    }
    let stats = cache.stats();
    assert!(cache.keys("l1").unwrap().len() <= 10);
    assert!(cache.keys("l2").unwrap().len() <= 50);
    assert_eq!(
        stats.layers[1].evictions + stats.layers[1].len.unwrap(),
        1000,
        "{stats:?}"
    );
    // Every entry that entered L1 (1000 writes plus promotions) was evicted or is still there.
    assert_eq!(
        stats.layers[0].evictions + stats.layers[0].len.unwrap(),
        1000 + stats.layers[0].promotions_in,
        "{stats:?}"
    );
    // The most recent write is still there.
    assert_eq!(cache.get(&999).unwrap(), Some(s("v999")));
}

#[test]
fn large_memory_layer_stays_within_capacity() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 4096))
        .build()
        .unwrap();
    for i in 0..20_000u64 {
        cache.set(i, String::new()).unwrap();
    }
    let stats = cache.stats();
    let len = stats.layers[0].len.unwrap();
    assert!(len <= 4096, "{stats:?}");
    assert_eq!(len + stats.layers[0].evictions, 20_000);
    assert_eq!(cache.keys("l1").unwrap().len() as u64, len);
}

#[test]
fn weighted_memory_layer_stays_within_its_weight() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 1000).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap();
    for i in 0..500u64 {
        let value = "x".repeat((i % 20 + 1) as usize);
        cache.set(i, value).unwrap();
        let weight: usize = cache
            .entries("l1")
            .unwrap()
            .iter()
            .map(|(_, v)| v.len())
            .sum();
        assert!(weight <= 100, "after {i}: weight {weight}");
    }
    let stats = cache.stats();
    assert!(stats.layers[0].evictions > 0);
    assert!(stats.layers[0].len.unwrap() < 1000);
    assert!(cache.get(&499).unwrap().is_some());
}

#[test]
fn growing_a_value_in_place_respects_the_weight_bound() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 1000).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap();
    for i in 0..10u64 {
        cache.set(i, "x".repeat(10)).unwrap();
    }
    cache.set(0, "y".repeat(50)).unwrap();
    let weight: usize = cache
        .entries("l1")
        .unwrap()
        .iter()
        .map(|(_, v)| v.len())
        .sum();
    assert!(weight <= 100, "weight {weight}");
    // Key 0 is the oldest (FIFO head), so the policy may evict it alone (140 - 50 = 90).
    assert!(cache.stats().layers[0].evictions >= 1);
    assert_eq!(
        cache.stats().layers[0].len.unwrap(),
        cache.keys("l1").unwrap().len() as u64
    );
}

#[test]
fn oversized_entry_does_not_flush_the_layer() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 1000).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap();
    for i in 0..10u64 {
        cache.set(i, "x".repeat(5)).unwrap();
    }
    cache.set(100, "z".repeat(150)).unwrap();
    let mut kept = cache.keys("l1").unwrap();
    kept.sort_unstable();
    assert_eq!(
        kept,
        (0..10).collect::<Vec<u64>>(),
        "an entry that can never fit must not evict the entries that do"
    );
}

#[test]
fn entry_lighter_than_max_weight_is_kept_in_a_sharded_layer() {
    let (clock, _hand) = manual();
    // Capacity large enough for the policy to shard on any machine with 2+ CPUs.
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 100_000).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap();
    cache.set(1, "x".repeat(60)).unwrap();
    assert_eq!(cache.get(&1).unwrap().map(|v| v.len()), Some(60));
}

// ===========================================================================================
// 9. Failures
// ===========================================================================================

#[test]
fn failing_l1_read_is_served_by_l2() {
    let (clock, _hand) = manual();
    let (cache, l1) = test_over_memory(&clock);
    cache.set(1, s("one")).unwrap();
    l1.fail_get.store(true, Ordering::SeqCst);
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    let lookup = cache.lookup(&1).unwrap();
    assert_eq!(lookup.value, Some(s("one")));
    assert_eq!(lookup.served_by, Some(1));
    assert_eq!(lookup.failures.len(), 1);
    let failure = &lookup.failures[0];
    assert_eq!((failure.index, &*failure.layer), (0, "l1"));
    assert!(!failure.invalidated);
    assert!(matches!(&failure.error, LayerError::Unavailable(msg) if msg == "injected"));
    assert_eq!(cache.stats().layers[0].errors, 2);
}

#[test]
fn failing_l2_read_of_a_key_missing_from_l1_is_unavailable() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    cache.set(2, s("two")).unwrap();
    l2.fail_get.store(true, Ordering::SeqCst);
    match cache.get(&1) {
        Err(Error::Unavailable(failures)) => {
            assert_eq!(failures.len(), 1);
            assert_eq!((failures[0].index, &*failures[0].layer), (1, "l2"));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // A key still in L1 is served.
    assert_eq!(cache.get(&2).unwrap(), Some(s("two")));
    // try_get does not fail: it reports.
    let lookup = cache.lookup(&1).unwrap();
    assert_eq!((lookup.value, lookup.failures.len()), (None, 1));
    // exists cannot tell either.
    assert!(matches!(cache.contains_key(&1), Err(Error::Unavailable(_))));
    assert!(cache.contains_key(&2).unwrap());
    assert_eq!(cache.stats().layers[1].errors, 3);
}

#[test]
fn failing_get_from_layer_is_a_layer_error() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    l2.fail_get.store(true, Ordering::SeqCst);
    match cache.get_from_layer("l2", &1) {
        Err(Error::Layer { layer, error }) => {
            assert_eq!(&*layer, "l2");
            assert!(matches!(error, LayerError::Unavailable(_)));
        }
        other => panic!("expected Error::Layer, got {other:?}"),
    }
    assert_eq!(cache.stats().layers[1].errors, 1);
}

#[test]
fn failing_set_in_l2_is_incomplete_and_invalidates_l2() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("old")).unwrap();
    l2.fail_set.store(true, Ordering::SeqCst);
    let report = incomplete(cache.set(1, s("new")));
    assert_eq!(layers_of(report.written), [0]);
    assert!(!report.is_complete());
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert_eq!((failure.index, &*failure.layer), (1, "l2"));
    assert!(
        failure.invalidated,
        "the delete worked, so l2 was invalidated"
    );
    assert_eq!(
        l2.peek(&1, clock.now()),
        None,
        "the old value is gone from l2"
    );
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
    assert_eq!(cache.stats().layers[1].errors, 1);
}

#[test]
fn failing_set_and_delete_in_l2_is_reported_not_invalidated() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("old")).unwrap();
    l2.fail_set.store(true, Ordering::SeqCst);
    l2.fail_delete.store(true, Ordering::SeqCst);
    let report = incomplete(cache.set(1, s("new")));
    assert_eq!(layers_of(report.written), [0]);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(&*report.failures[0].layer, "l2");
    assert!(!report.failures[0].invalidated);
    assert_eq!(l2.peek(&1, clock.now()), Some(s("old")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("new")));
}

#[test]
fn failing_invalidation_of_a_skipped_layer_is_reported() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("old")).unwrap();
    l2.fail_delete.store(true, Ordering::SeqCst);
    let report = incomplete(cache.set_with(1, s("new"), &SetOptions::new().l1_only()));
    assert_eq!(layers_of(report.written), [0]);
    assert!(report.invalidated.is_empty());
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].index, 1);
    assert!(!report.failures[0].invalidated);
}

#[test]
fn failing_delete_in_l2_is_incomplete() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("one")).unwrap();
    l2.fail_delete.store(true, Ordering::SeqCst);
    let report = incomplete(cache.delete(&1));
    assert_eq!(layers_of(report.invalidated), [0]);
    assert!(report.written.is_empty());
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert_eq!((failure.index, &*failure.layer), (1, "l2"));
    assert!(!failure.invalidated);
    assert!(matches!(failure.error, LayerError::Unavailable(_)));
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.stats().layers[1].errors, 1);
}

#[test]
fn failing_l1_set_still_writes_l2() {
    let (clock, _hand) = manual();
    let (cache, l1) = test_over_memory(&clock);
    cache.set(1, s("old")).unwrap();
    l1.fail_set.store(true, Ordering::SeqCst);
    let report = incomplete(cache.set(1, s("new")));
    assert_eq!(layers_of(report.written), [1]);
    assert_eq!(report.failures[0].index, 0);
    assert!(report.failures[0].invalidated);
    // L1 was invalidated, so the new value is read from L2 (and promoted).
    assert_eq!(cache.get(&1).unwrap(), Some(s("new")));
    assert_eq!(l1.peek(&1, clock.now()), Some(s("new")));
}

#[test]
fn failing_promotion_is_counted_and_does_not_fail_the_read() {
    let (clock, _hand) = manual();
    let (cache, l1) = test_over_memory(&clock);
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    l1.fail_promote.store(true, Ordering::SeqCst);
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    let stats = cache.stats();
    assert_eq!(stats.layers[0].errors, 1);
    assert_eq!(stats.layers[0].promotions_in, 0);
    assert_eq!(l1.peek(&1, clock.now()), None);
}

#[test]
fn error_messages_name_the_layer() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    l2.fail_set.store(true, Ordering::SeqCst);
    let err = cache.set(1, s("x")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("l2") && text.contains("injected"), "{text}");
}

// ===========================================================================================
// 10. Batch operations
// ===========================================================================================

#[test]
fn get_many_returns_one_result_per_key_in_order() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("one")).unwrap();
    cache.set(3, s("three")).unwrap();
    let results = cache.get_many(&[3, 2, 1, 3]);
    let values: Vec<Option<String>> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        values,
        [Some(s("three")), None, Some(s("one")), Some(s("three"))]
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (3, 1));
    assert!(cache.get_many(&[]).is_empty());
}

#[test]
fn get_many_promotes_lower_layer_hits() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("one")).unwrap();
    cache
        .set_with(2, s("two"), &SetOptions::new().skip("l1"))
        .unwrap();
    cache
        .set_with(4, s("four"), &SetOptions::new().skip("l1"))
        .unwrap();
    let values: Vec<Option<String>> = cache
        .get_many(&[1, 2, 3, 4])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        values,
        [Some(s("one")), Some(s("two")), None, Some(s("four"))]
    );
    assert_eq!(in_layer(&cache, "l1", 2), Some(s("two")));
    assert_eq!(in_layer(&cache, "l1", 4), Some(s("four")));
    assert_eq!(in_layer(&cache, "l1", 3), None);
    let stats = cache.stats();
    assert_eq!(stats.layers[0].promotions_in, 2);
    assert_eq!((stats.hits, stats.misses), (3, 1));
    assert_eq!((stats.layers[0].hits, stats.layers[0].misses), (1, 3));
    assert_eq!((stats.layers[1].hits, stats.layers[1].misses), (2, 1));
}

#[test]
fn get_many_respects_the_promotion_mode() {
    let (clock, _hand) = manual();
    let cache = three_layers(&clock, Promotion::L1Only);
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(cache.get_many(&[1])[0].as_ref().unwrap(), &Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l2", 1), None);

    let off = three_layers(&clock, Promotion::Off);
    off.set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(off.get_many(&[1])[0].as_ref().unwrap(), &Some(s("deep")));
    assert_eq!(in_layer(&off, "l1", 1), None);
    assert_eq!(in_layer(&off, "l2", 1), None);
}

#[test]
fn get_many_reports_failures_per_key() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("one")).unwrap();
    cache
        .set_with(2, s("two"), &SetOptions::new().skip("l1"))
        .unwrap();
    l2.fail_get.store(true, Ordering::SeqCst);
    let results = cache.get_many(&[1, 2, 3]);
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap(), &Some(s("one")));
    for result in &results[1..] {
        match result {
            Err(Error::Unavailable(failures)) => assert_eq!(&*failures[0].layer, "l2"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(cache.stats().layers[1].errors, 2);
}

#[test]
fn set_many_writes_every_entry_in_every_layer() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    let results = cache.set_many(vec![(1, s("a")), (2, s("b")), (3, s("c"))]);
    assert_eq!(results.len(), 3);
    for result in results {
        assert_eq!(layers_of(result.unwrap().written), [0, 1]);
    }
    for (key, value) in [(1, "a"), (2, "b"), (3, "c")] {
        assert_eq!(in_layer(&cache, "l1", key), Some(s(value)));
        assert_eq!(in_layer(&cache, "l2", key), Some(s(value)));
    }
}

#[test]
fn set_many_with_options_applies_them_to_every_entry() {
    let (clock, hand) = manual();
    let cache = two_layers(&clock);
    cache.set_many(vec![(1, s("old1")), (2, s("old2"))]);
    let options = SetOptions::new().l1_only().ttl(secs(5));
    for result in cache.set_many_with(vec![(1, s("new1")), (2, s("new2"))], &options) {
        let report = result.unwrap();
        assert_eq!(
            (layers_of(report.written), layers_of(report.invalidated)),
            (vec![0], vec![1])
        );
    }
    assert_eq!(in_layer(&cache, "l2", 1), None);
    assert_eq!(in_layer(&cache, "l2", 2), None);
    assert_eq!(cache.get(&2).unwrap(), Some(s("new2")));
    hand.advance(secs(5));
    assert_eq!(
        cache
            .get_many(&[1, 2])
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        [None, None]
    );
}

#[test]
fn set_many_with_an_unknown_skip_fails_every_entry() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    let results = cache.set_many_with(
        vec![(1, s("a")), (2, s("b"))],
        &SetOptions::new().skip("nope"),
    );
    assert_eq!(results.len(), 2);
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::UnknownLayer(n)) if n == "nope")));
    assert_eq!(cache.get(&1).unwrap(), None);
    assert_eq!(cache.get(&2).unwrap(), None);
}

#[test]
fn set_many_with_duplicate_keys_keeps_the_last_value_everywhere() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    let results = cache.set_many(vec![(1, s("first")), (2, s("x")), (1, s("last"))]);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("last")));
    assert_eq!(in_layer(&cache, "l2", 1), Some(s("last")));
    assert_eq!(cache.get(&1).unwrap(), Some(s("last")));
}

#[test]
fn set_many_with_duplicate_keys_keeps_the_last_value_in_custom_layers() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set_many(vec![(1, s("first")), (1, s("second")), (1, s("last"))]);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("last")));
    assert_eq!(l2.peek(&1, clock.now()), Some(s("last")));
}

#[test]
fn set_many_with_failing_layer_is_incomplete_for_every_key() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set_many(vec![(1, s("old1")), (2, s("old2"))]);
    l2.fail_set.store(true, Ordering::SeqCst);
    let results = cache.set_many(vec![(1, s("a")), (2, s("b")), (3, s("c"))]);
    assert_eq!(results.len(), 3);
    for result in results {
        let report = incomplete(result);
        assert_eq!(layers_of(report.written), [0]);
        assert_eq!(report.failures.len(), 1);
        assert_eq!(&*report.failures[0].layer, "l2");
        assert!(report.failures[0].invalidated);
    }
    assert_eq!(l2.peek(&1, clock.now()), None);
    assert_eq!(l2.peek(&2, clock.now()), None);
    assert_eq!(cache.get(&2).unwrap(), Some(s("b")));
    assert_eq!(cache.stats().layers[1].errors, 3);
}

#[test]
fn delete_many_returns_one_result_per_key() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set_many(vec![(1, s("a")), (2, s("b")), (3, s("c"))]);
    let results = cache.delete_many(&[1, 99, 3]);
    assert_eq!(results.len(), 3);
    for result in results {
        assert_eq!(layers_of(result.unwrap().invalidated), [0, 1]);
    }
    let values: Vec<Option<String>> = cache
        .get_many(&[1, 2, 3])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, [None, Some(s("b")), None]);
    assert_eq!(in_layer(&cache, "l2", 1), None);
}

#[test]
fn delete_many_with_failing_layer_is_incomplete_for_every_key() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set_many(vec![(1, s("a")), (2, s("b"))]);
    l2.fail_delete.store(true, Ordering::SeqCst);
    let results = cache.delete_many(&[1, 2]);
    assert_eq!(results.len(), 2);
    for result in results {
        let report = incomplete(result);
        assert_eq!(layers_of(report.invalidated), [0]);
        assert_eq!(report.failures[0].index, 1);
        assert!(!report.failures[0].invalidated);
    }
    assert_eq!(in_layer(&cache, "l1", 1), None);
}

// ===========================================================================================
// 11. Iteration
// ===========================================================================================

#[test]
fn entries_keys_and_for_each_list_a_layer() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("a")).unwrap();
    cache.set(2, s("b")).unwrap();
    cache
        .set_with(3, s("c"), &SetOptions::new().skip("l1"))
        .unwrap();

    let mut entries = cache.entries("l1").unwrap();
    entries.sort();
    assert_eq!(entries, [(1, s("a")), (2, s("b"))]);

    let mut keys = cache.keys("l2").unwrap();
    keys.sort_unstable();
    assert_eq!(keys, [1, 2, 3]);

    let mut total = 0;
    let mut seen = Vec::new();
    cache
        .for_each_in_layer("l2", |k, v| {
            total += v.len();
            seen.push(*k);
        })
        .unwrap();
    seen.sort_unstable();
    assert_eq!((total, seen), (3, vec![1, 2, 3]));
}

#[test]
fn iterating_an_unknown_layer_fails() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    assert!(matches!(cache.entries("l9"), Err(Error::UnknownLayer(n)) if n == "l9"));
    assert!(matches!(cache.keys("l9"), Err(Error::UnknownLayer(_))));
    assert!(matches!(
        cache.for_each_in_layer("l9", |_, _| {}),
        Err(Error::UnknownLayer(_))
    ));
}

#[test]
fn iterating_a_layer_without_iteration_is_unsupported() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::custom("l2", NoIterLayer::default()))
        .build()
        .unwrap();
    cache.set(1, s("a")).unwrap();
    assert_eq!(
        in_layer(&cache, "l2", 1),
        Some(s("a")),
        "the custom layer works otherwise"
    );
    match cache.entries("l2") {
        Err(Error::Layer { layer, error }) => {
            assert_eq!(&*layer, "l2");
            assert!(matches!(error, LayerError::Unsupported));
        }
        other => panic!("expected Error::Layer(Unsupported), got {other:?}"),
    }
    assert!(matches!(
        cache.keys("l2"),
        Err(Error::Layer {
            error: LayerError::Unsupported,
            ..
        })
    ));
    assert_eq!(cache.stats().layers[1].errors, 2);
}

#[test]
fn custom_layer_without_promotion_support_is_never_promoted_into() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::custom("l2", NoIterLayer::default()))
        .layer(LayerSpec::memory("l3", 10))
        .build()
        .unwrap();
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(
        in_layer(&cache, "l2", 1),
        None,
        "the default promote declines"
    );
    let promotions: Vec<u64> = cache
        .stats()
        .layers
        .iter()
        .map(|l| l.promotions_in)
        .collect();
    assert_eq!(promotions, [1, 0, 0]);
}

// ===========================================================================================
// 12. close()
// ===========================================================================================

fn assert_closed<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::Closed)), "{what}: {result:?}");
}

#[test]
fn close_makes_every_operation_fail_with_closed() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    cache.set(1, s("one")).unwrap();
    cache.close();
    assert!(cache.is_closed());
    assert_closed("get", cache.get(&1));
    assert_closed("try_get", cache.lookup(&1));
    assert_closed("set", cache.set(2, s("two")));
    assert_closed(
        "set_with",
        cache.set_with(2, s("two"), &SetOptions::new().l1_only()),
    );
    assert_closed("delete", cache.delete(&1));
    assert_closed("exists", cache.contains_key(&1));
    assert_closed("get_from_layer", cache.get_from_layer("l1", &1));
    assert_closed("entries", cache.entries("l1"));
    assert_closed("keys", cache.keys("l2"));
    assert_closed(
        "for_each_in_layer",
        cache.for_each_in_layer("l1", |_, _| {}),
    );
    let gets = cache.get_many(&[1, 2, 3]);
    assert_eq!(gets.len(), 3);
    gets.into_iter().for_each(|r| assert_closed("get_many", r));
    let sets = cache.set_many(vec![(1, s("a")), (2, s("b"))]);
    assert_eq!(sets.len(), 2);
    sets.into_iter().for_each(|r| assert_closed("set_many", r));
    let deletes = cache.delete_many(&[1, 2, 3, 4]);
    assert_eq!(deletes.len(), 4);
    deletes
        .into_iter()
        .for_each(|r| assert_closed("delete_many", r));
    assert_eq!(cache.run_pending_promotions(), 0);
}

#[test]
fn close_is_idempotent_and_closes_each_layer_once() {
    let (clock, _hand) = manual();
    let (cache, l2) = memory_over_test(&clock);
    cache.set(1, s("one")).unwrap();
    cache.close();
    cache.close();
    cache.clone().close();
    assert!(cache.is_closed());
    assert_eq!(l2.closes.load(Ordering::SeqCst), 1);
    // The memory tiers freed their entries; stats still work.
    let stats = cache.stats();
    assert_eq!(stats.layers[0].len, Some(0));
    assert_eq!(stats.layers[1].len, Some(0));
}

#[test]
fn close_is_seen_by_every_clone() {
    let (clock, _hand) = manual();
    let cache = two_layers(&clock);
    let other = cache.clone();
    cache.set(1, s("one")).unwrap();
    assert_eq!(other.get(&1).unwrap(), Some(s("one")));
    other.close();
    assert!(cache.is_closed());
    assert_closed("get", cache.get(&1));
    assert_closed("set", cache.set(1, s("x")));
    // And from another thread.
    let remote = cache.clone();
    let result = thread::spawn(move || remote.get(&1)).join().unwrap();
    assert_closed("get on another thread", result);
}

#[test]
fn close_drops_queued_promotions() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .deferred_promotion(100)
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("l2", 10))
        .build()
        .unwrap();
    cache
        .set_with(1, s("one"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("one")));
    cache.close();
    assert_eq!(cache.run_pending_promotions(), 0);
    assert_eq!(cache.stats().layers[0].promotions_in, 0);
}

// ===========================================================================================
// 13. Deferred promotion
// ===========================================================================================

fn deferred(clock: &Clock, batch: usize) -> C {
    Cache::builder()
        .clock(clock.clone())
        .deferred_promotion(batch)
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::memory("l2", 100))
        .build()
        .unwrap()
}

fn only_in_l2(cache: &C, keys: impl IntoIterator<Item = u64>) {
    for key in keys {
        cache
            .set_with(key, format!("v{key}"), &SetOptions::new().skip("l1"))
            .unwrap();
    }
}

#[test]
fn deferred_promotion_waits_for_a_full_queue() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, 1..=4);
    for key in 1..=3 {
        assert_eq!(cache.get(&key).unwrap(), Some(format!("v{key}")));
        assert_eq!(
            in_layer(&cache, "l1", key),
            None,
            "key {key} promoted too early"
        );
    }
    assert_eq!(cache.stats().layers[0].promotions_in, 0);
    assert_eq!(cache.get(&4).unwrap(), Some(s("v4")));
    for key in 1..=4 {
        assert_eq!(
            in_layer(&cache, "l1", key),
            Some(format!("v{key}")),
            "key {key}"
        );
    }
    assert_eq!(cache.stats().layers[0].promotions_in, 4);
    assert_eq!(cache.run_pending_promotions(), 0);
}

#[test]
fn run_pending_promotions_applies_the_queue() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, 1..=2);
    cache.get(&1).unwrap();
    cache.get(&2).unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.run_pending_promotions(), 2);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")));
    assert_eq!(in_layer(&cache, "l1", 2), Some(s("v2")));
    assert_eq!(cache.stats().layers[0].promotions_in, 2);
    assert_eq!(cache.run_pending_promotions(), 0);
}

#[test]
fn queued_promotion_overtaken_by_a_set_does_not_land() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    cache.set(1, s("newer")).unwrap();
    assert_eq!(cache.run_pending_promotions(), 0);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("newer")));
    assert_eq!(cache.get(&1).unwrap(), Some(s("newer")));
}

#[test]
fn queued_promotion_overtaken_by_an_l2_only_set_does_not_land() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    cache
        .set_with(1, s("newer"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(cache.run_pending_promotions(), 0);
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.get(&1).unwrap(), Some(s("newer")));
}

#[test]
fn queued_promotion_overtaken_by_a_delete_does_not_land() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("v1")));
    cache.delete(&1).unwrap();
    assert_eq!(cache.run_pending_promotions(), 0);
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(cache.get(&1).unwrap(), None);
}

#[test]
fn queued_promotion_overtaken_by_a_delete_does_not_land_when_the_queue_fills() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 2);
    only_in_l2(&cache, [1, 2]);
    cache.get(&1).unwrap();
    cache.delete(&1).unwrap();
    // This read fills the queue and applies it on this thread.
    cache.get(&2).unwrap();
    assert_eq!(in_layer(&cache, "l1", 1), None);
    assert_eq!(in_layer(&cache, "l1", 2), Some(s("v2")));
    assert_eq!(cache.get(&1).unwrap(), None);
}

#[test]
fn deferred_promotion_also_defers_get_many_promotions() {
    let (clock, _hand) = manual();
    let cache = deferred(&clock, 4);
    only_in_l2(&cache, [1, 2]);
    let values: Vec<Option<String>> = cache
        .get_many(&[1, 2])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, [Some(s("v1")), Some(s("v2"))]);
    assert_eq!(
        in_layer(&cache, "l1", 1),
        None,
        "promoted on the reading thread"
    );
    assert_eq!(cache.run_pending_promotions(), 2);
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("v1")));
}

// ===========================================================================================
// 14. Thread-safety
// ===========================================================================================

const fn assert_clone_send_sync<T: Clone + Send + Sync + 'static>() {}
const _: () = assert_clone_send_sync::<Cache<u64, String>>();
const _: () = assert_clone_send_sync::<Cache<String, Vec<u8>>>();

#[test]
fn cache_is_usable_from_several_threads() {
    let (clock, _hand) = manual();
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 64))
        .layer(LayerSpec::memory("l2", 10_000))
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || {
                for i in 0..500u64 {
                    let key = t * 1000 + i;
                    cache.set(key, key * 2).unwrap();
                    assert_eq!(cache.get(&key).unwrap(), Some(key * 2));
                    let _ = cache.get(&(i % 100)).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for t in 0..4u64 {
        let keys: Vec<u64> = (0..500).map(|i| t * 1000 + i).collect();
        for (key, value) in keys.iter().zip(cache.get_many(&keys)) {
            assert_eq!(value.unwrap(), Some(key * 2), "key {key}");
        }
    }
    assert!(cache.stats().layers[0].len.unwrap() <= 64);
}

#[test]
fn readers_never_see_a_value_older_than_a_completed_write() {
    let (clock, _hand) = manual();
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 16))
        .layer(LayerSpec::memory("l2", 1_000))
        .build()
        .unwrap();
    let committed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    cache.set(0, 0).unwrap();
    let writer = {
        let (cache, committed, stop) = (cache.clone(), committed.clone(), stop.clone());
        thread::spawn(move || {
            for seq in 1..=3_000u64 {
                // Alternate writes that leave L1 empty (so readers promote from L2) with
                // ordinary write-through ones.
                let options = if seq % 2 == 0 {
                    SetOptions::new().skip("l1")
                } else {
                    SetOptions::new()
                };
                cache.set_with(0, seq, &options).unwrap();
                committed.store(seq, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let reader = {
        let (cache, committed, stop) = (cache.clone(), committed.clone(), stop.clone());
        thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) || reads < 100 {
                let floor = committed.load(Ordering::SeqCst);
                let value = cache.get(&0).unwrap().expect("never evicted: one key");
                assert!(value >= floor, "read {value} after {floor} was committed");
                reads += 1;
            }
        })
    };
    writer.join().unwrap();
    reader.join().unwrap();
    assert_eq!(cache.get(&0).unwrap(), Some(3_000));
}

#[test]
fn a_per_call_ttl_under_a_millisecond_is_refused() {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 10))
        .build()
        .unwrap();
    let result = cache.set_with(1, 1, &SetOptions::new().ttl(Duration::from_micros(10)));
    assert!(matches!(result, Err(Error::ZeroTtl)), "{result:?}");
    assert_eq!(cache.get(&1).unwrap(), None, "nothing was written");
}

#[test]
fn build_refuses_a_capacity_beyond_the_tier_maximum() {
    let result = Cache::<u64, u64>::builder()
        .layer(LayerSpec::memory("l1", usize::MAX))
        .build();
    assert!(
        matches!(result, Err(BuildError::CapacityTooLarge { ref layer, .. }) if layer == "l1"),
        "{result:?}"
    );
}

#[test]
fn a_huge_capacity_builds_without_allocating_it_up_front() {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 1 << 34))
        .build()
        .unwrap();
    cache.set(1, 1).unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(1));
}

/// A custom layer whose batch answers have the wrong length.
struct ShortBatches;

impl Layer<u64, u64> for ShortBatches {
    fn get(&self, _: &u64, _: Timestamp) -> Result<Option<Entry<u64>>, LayerError> {
        Ok(None)
    }
    fn set(&self, _: &u64, _: Entry<u64>, _: &Ticket<'_>) -> Result<(), LayerError> {
        Ok(())
    }
    fn delete(&self, _: &u64, _: &Ticket<'_>) -> Result<(), LayerError> {
        Ok(())
    }
    fn get_many(&self, _: &[&u64], _: Timestamp) -> GetResults<u64> {
        Vec::new()
    }
    fn set_many(
        &self,
        entries: Vec<(&u64, Entry<u64>, Ticket<'_>)>,
    ) -> Vec<Result<(), LayerError>> {
        entries
            .iter()
            .chain(entries.iter())
            .map(|_| Ok(()))
            .collect()
    }
}

#[test]
fn a_custom_layer_with_wrong_batch_lengths_is_reported_not_a_panic() {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::custom("odd", ShortBatches))
        .build()
        .unwrap();
    let results = cache.get_many(&[1, 2]);
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(Error::Unavailable(_)))),
        "{results:?}"
    );
    let results = cache.set_many(vec![(1, 1), (2, 2)]);
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

/// A read-only source of truth reporting versions of its own (timestamps) must not make later
/// writes of the cache look older once its value was promoted.
#[test]
fn foreign_versions_from_a_source_layer_do_not_block_later_writes() {
    let source = Arc::new(NoIterLayer::default());
    source
        .set(
            &7,
            Entry {
                value: "db".to_string(),
                version: 1_700_000_000_000,
                expires_at: Timestamp::NEVER,
            },
            &Ticket::unconditional(),
        )
        .unwrap();
    let cache: Cache<u64, String> = Cache::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::shared("db", source.clone()).read_only())
        .build()
        .unwrap();
    assert_eq!(cache.get(&7).unwrap().as_deref(), Some("db"));
    assert_eq!(
        cache.get_from_layer("l1", &7).unwrap().as_deref(),
        Some("db"),
        "promoted"
    );
    cache.set(7, "new".to_string()).unwrap();
    assert_eq!(cache.get(&7).unwrap().as_deref(), Some("new"));
}
