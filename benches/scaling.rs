//! Aggregate throughput at 1, 2, 4 and 8 threads, strata beside the usual peers, on the same
//! workloads and the same key streams.
//!
//! ```sh
//! cargo bench --bench scaling                               # everything (about 10 minutes)
//! STRATA_BENCH_THREADS=1,2 cargo bench --bench scaling -- --warm-up-time 0.5 --measurement-time 1
//! cargo bench --bench scaling -- 'read-hit/zipf'            # one group
//! ```
//!
//! Workloads, each with uniform and Zipf (exponent 1.0) keys over 100 000 `u64` keys
//! (`STRATA_BENCH_KEY_SPACE` changes the count):
//! - `read-hit`: gets of present keys (every get hits);
//! - `mixed`: 80 % get, 10 % set, 10 % delete (by operation index, as in the seed bench);
//! - `set`: sets only, over the same key space (the caches start full, so sets replace).
//!
//! Every cache can hold twice the key space (200 000 entries by default), so reads hit and
//! nothing is evicted; every map and cache is presized where it can be and hashes with `ahash`
//! (what strata uses internally), so the hash function is not what's compared. Values are `u64`.
//! Every store is built and filled even when a filter skips its benchmarks.
//!
//! Candidates: `strata-1L` (a cache of one memory layer), `strata-2L` (the 2-layer engine, its
//! reads hitting L1; read workload only), `papaya` (the raw map strata's tier is built on:
//! `pin().get/insert/remove`), `quick_cache` (`sync::Cache`), `moka` (`sync::Cache`), `dashmap`
//! (raw) and `mutex-lru` (`Mutex<lru::LruCache>`).
//!
//! Timing: `iter_custom`; one iteration is one operation, the iterations of a sample are split
//! evenly over the threads, and the time is the wall time from the first thread's start to the
//! last thread's end, so criterion's time per iteration is aggregate time per operation and its
//! throughput (`Throughput::Elements(1)`) is aggregate operations per second.
//!
//! The `calibration/cpu-only` group runs an operation that touches no shared memory at the same
//! thread counts: its scaling is the most any cache can show on the machine at that moment.
//!
//! Thread counts: `STRATA_BENCH_THREADS` (default `1,2,4,8`). On a machine with fewer cores
//! than threads (the 2-core machine this was written on, at 4 and 8 threads) the threads are
//! oversubscribed: the figures then show how a cache copes with preemption (a lock holder
//! descheduled), not parallel speed-up. Durations: `STRATA_BENCH_WARMUP`, `STRATA_BENCH_SECS`,
//! `STRATA_BENCH_SAMPLES` or criterion's flags (see `benches/common/mod.rs`).

mod common;

use common::{drive, no_counter, Dist, Keys};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;
use strata::{Cache, LayerSpec};

/// The key space of every workload, unless `STRATA_BENCH_KEY_SPACE` says otherwise.
const KEYS: u64 = 100_000;

type Hasher = ahash::RandomState;

/// What a workload needs from a cache or map.
trait Store: Send + Sync {
    fn get(&self, key: u64) -> Option<u64>;
    fn set(&self, key: u64, value: u64);
    fn delete(&self, key: u64);
    /// Finishes work left over from filling (moka's pending maintenance).
    fn settle(&self) {}
}

/// strata with `layers` memory layers (reads hit L1; writes go through every layer).
fn strata(layers: usize, capacity: usize) -> Cache<u64, u64> {
    let mut builder = Cache::builder();
    for layer in 0..layers {
        builder = builder.layer(LayerSpec::memory(format!("l{}", layer + 1), capacity));
    }
    builder.build().expect("valid configuration")
}

impl Store for Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        Cache::get(self, &key).ok().flatten()
    }
    #[inline]
    fn set(&self, key: u64, value: u64) {
        black_box(Cache::set(self, key, value).ok());
    }
    #[inline]
    fn delete(&self, key: u64) {
        black_box(Cache::delete(self, &key).ok());
    }
}

impl Store for papaya::HashMap<u64, u64, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.pin().get(&key).copied()
    }
    #[inline]
    fn set(&self, key: u64, value: u64) {
        self.pin().insert(key, value);
    }
    #[inline]
    fn delete(&self, key: u64) {
        self.pin().remove(&key);
    }
}

type QuickCache = quick_cache::sync::Cache<
    u64,
    u64,
    quick_cache::UnitWeighter,
    Hasher,
    quick_cache::sync::DefaultLifecycle<u64, u64>,
>;

impl Store for QuickCache {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        QuickCache::get(self, &key)
    }
    #[inline]
    fn set(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
    #[inline]
    fn delete(&self, key: u64) {
        self.remove(&key);
    }
}

impl Store for moka::sync::Cache<u64, u64, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
    #[inline]
    fn set(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
    #[inline]
    fn delete(&self, key: u64) {
        self.invalidate(&key);
    }
    fn settle(&self) {
        self.run_pending_tasks();
    }
}

impl Store for dashmap::DashMap<u64, u64, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        dashmap::DashMap::get(self, &key).map(|value| *value)
    }
    #[inline]
    fn set(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
    #[inline]
    fn delete(&self, key: u64) {
        self.remove(&key);
    }
}

/// `Mutex<LruCache>`: every operation, a get too (it reorders the list), takes the lock.
struct MutexLru(Mutex<lru::LruCache<u64, u64, Hasher>>);

impl Store for MutexLru {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.lock().expect("lock").get(&key).copied()
    }
    #[inline]
    fn set(&self, key: u64, value: u64) {
        self.0.lock().expect("lock").put(key, value);
    }
    #[inline]
    fn delete(&self, key: u64) {
        self.0.lock().expect("lock").pop(&key);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    ReadHit,
    Mixed,
    Set,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::ReadHit => "read-hit",
            Workload::Mixed => "mixed",
            Workload::Set => "set",
        }
    }
}

/// One workload on one store at every thread count, as benchmarks `name/threads` of `group`.
fn bench_store<S: Store>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    store: S,
    workload: Workload,
    keys: &Keys,
    threads: &[usize],
) {
    // Start full: reads hit, sets replace.
    for key in 0..keys.count() {
        store.set(key, key);
    }
    store.settle();
    let store = &store;
    let mut base = 0u64;
    for &t in threads {
        group.bench_with_input(BenchmarkId::new(name, t), &t, |b, &t| {
            b.iter_custom(|iters| {
                let run = match workload {
                    Workload::ReadHit => drive(
                        t,
                        base,
                        iters,
                        &|thread, i| {
                            black_box(store.get(keys.get(thread, i)));
                        },
                        no_counter,
                    ),
                    Workload::Mixed => drive(
                        t,
                        base,
                        iters,
                        &|thread, i| {
                            let key = keys.get(thread, i);
                            match i % 10 {
                                0 => store.set(key, i),
                                1 => store.delete(key),
                                _ => {
                                    black_box(store.get(key));
                                }
                            }
                        },
                        no_counter,
                    ),
                    Workload::Set => drive(
                        t,
                        base,
                        iters,
                        &|thread, i| store.set(keys.get(thread, i), i),
                        no_counter,
                    ),
                };
                base += iters;
                run.elapsed
            })
        });
    }
}

fn main() {
    let mut criterion: Criterion =
        common::criterion(Duration::from_secs(1), Duration::from_secs(2), 20);
    let threads = common::threads_from_env(&[1, 2, 4, 8]);
    let max_threads = threads.iter().copied().max().unwrap_or(1);
    let key_space: u64 = std::env::var("STRATA_BENCH_KEY_SPACE").map_or(KEYS, |n| {
        n.trim()
            .parse()
            .expect("STRATA_BENCH_KEY_SPACE: a key count")
    });
    // Every cache's capacity: the whole key space with room to spare.
    let capacity = 2 * key_space as usize;

    // How much parallelism the machine gives right now: an operation that touches no shared
    // memory (a few rounds of a multiplicative hash) should scale with the thread count up to
    // the number of free cores. On a shared machine it is the ceiling the others' ratios
    // should be read against.
    {
        let mut group = criterion.benchmark_group("calibration");
        group.throughput(Throughput::Elements(1));
        let mut base = 0u64;
        for &t in &threads {
            group.bench_with_input(BenchmarkId::new("cpu-only", t), &t, |b, &t| {
                b.iter_custom(|iters| {
                    let run = drive(
                        t,
                        base,
                        iters,
                        &|thread, i| {
                            let mut x = i ^ ((thread as u64) << 56);
                            for _ in 0..8 {
                                x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                            }
                            black_box(x);
                        },
                        no_counter,
                    );
                    base += iters;
                    run.elapsed
                })
            });
        }
        group.finish();
    }

    for dist in [Dist::Uniform, Dist::Zipf] {
        let keys = Keys::new(dist, key_space, max_threads);
        for workload in [Workload::ReadHit, Workload::Mixed, Workload::Set] {
            let mut group =
                criterion.benchmark_group(format!("{}/{}", workload.name(), dist.name()));
            group.throughput(Throughput::Elements(1));
            let threads = threads.as_slice();
            if workload == Workload::ReadHit {
                bench_store(
                    &mut group,
                    "strata-2L",
                    strata(2, capacity),
                    workload,
                    &keys,
                    threads,
                );
            }
            bench_store(
                &mut group,
                "strata-1L",
                strata(1, capacity),
                workload,
                &keys,
                threads,
            );
            let papaya: papaya::HashMap<u64, u64, Hasher> =
                papaya::HashMap::with_capacity_and_hasher(capacity, Hasher::new());
            bench_store(&mut group, "papaya", papaya, workload, &keys, threads);
            let quick: QuickCache = QuickCache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                Hasher::new(),
                quick_cache::sync::DefaultLifecycle::default(),
            );
            bench_store(&mut group, "quick_cache", quick, workload, &keys, threads);
            let moka = moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .initial_capacity(capacity)
                .build_with_hasher(Hasher::new());
            bench_store(&mut group, "moka", moka, workload, &keys, threads);
            let dash = dashmap::DashMap::with_capacity_and_hasher(capacity, Hasher::new());
            bench_store(&mut group, "dashmap", dash, workload, &keys, threads);
            let lru = MutexLru(Mutex::new(lru::LruCache::with_hasher(
                NonZeroUsize::new(capacity).expect("nonzero"),
                Hasher::new(),
            )));
            bench_store(&mut group, "mutex-lru", lru, workload, &keys, threads);
            group.finish();
        }
    }
    criterion.final_summary();
}
