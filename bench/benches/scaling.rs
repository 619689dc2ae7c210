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
//! nothing is evicted (`STRATA_BENCH_CAPACITY` sets another capacity: below the key space,
//! sets insert and evict, and reads miss); every map and cache is presized where it can be and hashes with `ahash`
//! (what strata uses internally), so the hash function is not what's compared. Values are `u64`.
//! Every store is built and filled even when a filter skips its benchmarks.
//!
//! Candidates: `strata-1L` (a cache of one memory layer), `strata-2L` (the 2-layer engine, its
//! reads hitting L1; read workload only), `papaya` (the raw map strata's tier is built on:
//! `pin().get/insert/remove`), `papaya-56B` (papaya with entries as large as strata's, 56 bytes;
//! read workload only), `quick_cache` (`sync::Cache`), `moka` (`sync::Cache`), `tinyufo`
//! (pingora's TinyUFO: lock-free S3-FIFO with TinyLFU admission, the published design closest to
//! strata's tier; every entry weighs 1, it hashes with its own ahash), `dashmap` (raw) and
//! `mutex-lru` (`Mutex<lru::LruCache>`).
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
use std::collections::BTreeMap;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;
use strata::{Cache, LayerSpec};

/// The key space of every workload, unless `STRATA_BENCH_KEY_SPACE` says otherwise.
const KEYS: u64 = 100_000;

type Hasher = ahash::RandomState;

/// Default criterion samples per benchmark.
const SAMPLES: usize = 20;

/// Every `iter_custom` call of every benchmark: `(group, candidate, threads)` → the calls'
/// `(iterations, elapsed)`, in order. The last `sample_count` calls of a benchmark are
/// criterion's measured samples (the earlier ones are its warm-up); the summary tables at the end
/// are computed from those, so that the ratios between caches come from one run.
type Calls = BTreeMap<(String, String, usize), Vec<(u64, Duration)>>;
static CALLS: Mutex<Calls> = Mutex::new(BTreeMap::new());

fn record(group: &str, name: &str, threads: usize, iters: u64, elapsed: Duration) {
    CALLS
        .lock()
        .expect("calls")
        .entry((group.to_owned(), name.to_owned(), threads))
        .or_default()
        .push((iters, elapsed));
}

/// What a workload needs from a cache or map.
trait Store: Send + Sync {
    fn get(&self, key: u64) -> Option<u64>;
    fn set(&self, key: u64, value: u64);
    fn delete(&self, key: u64);
    /// Finishes work left over from filling (moka's pending maintenance).
    fn settle(&self) {}
    /// Writes the cache accepted but did not keep (strata's `dropped_writes`), if it counts them.
    fn dropped_writes(&self) -> Option<u64> {
        None
    }
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
    fn dropped_writes(&self) -> Option<u64> {
        Some(self.stats().layers.iter().map(|l| l.dropped_writes).sum())
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

/// papaya storing a 48-byte value per key: its entries are as large as a strata tier's (key plus
/// a 48-byte node: value, expiry, access bits, write stripe, version, policy identity, weight).
/// Beside raw papaya it separates what the engine's code costs from what the larger entries
/// cost in cache misses once the table outgrows the CPU caches.
struct PapayaWide(papaya::HashMap<u64, [u64; 6], Hasher>);

impl Store for PapayaWide {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.pin().get(&key).map(|value| value[0])
    }
    #[inline]
    fn set(&self, key: u64, value: u64) {
        self.0.pin().insert(key, [value; 6]);
    }
    #[inline]
    fn delete(&self, key: u64) {
        self.0.pin().remove(&key);
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

impl Store for tinyufo::TinyUfo<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        tinyufo::TinyUfo::get(self, &key)
    }
    #[inline]
    fn set(&self, key: u64, value: u64) {
        black_box(self.put(key, value, 1));
    }
    #[inline]
    fn delete(&self, key: u64) {
        black_box(self.remove(&key));
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
    group_name: &str,
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
    let dropped_before = store.dropped_writes();
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
                record(group_name, name, t, iters, run.elapsed);
                run.elapsed
            })
        });
    }
    // How often a write is dropped (accepted, not kept: see `WriteReport::dropped`).
    if let (Some(before), Some(after)) = (dropped_before, store.dropped_writes()) {
        let sets = match workload {
            Workload::ReadHit => 0,
            Workload::Mixed => base / 10,
            Workload::Set => base,
        };
        if sets > 0 {
            println!(
                "{group_name} {name}: {} dropped writes in {sets} sets ({:.2} per 100 000)",
                after - before,
                (after - before) as f64 * 1e5 / sets as f64
            );
        }
    }
}

fn main() {
    let mut criterion: Criterion =
        common::criterion(Duration::from_secs(1), Duration::from_secs(2), SAMPLES);
    let threads = common::threads_from_env(&[1, 2, 4, 8]);
    let max_threads = threads.iter().copied().max().unwrap_or(1);
    let key_space: u64 = std::env::var("STRATA_BENCH_KEY_SPACE").map_or(KEYS, |n| {
        n.trim()
            .parse()
            .expect("STRATA_BENCH_KEY_SPACE: a key count")
    });
    // Every cache's capacity: the whole key space with room to spare, unless
    // `STRATA_BENCH_CAPACITY` sets one (below the key space, sets insert and evict: the
    // in-process tier issue's setup is 200 000 keys over a capacity of 100 000).
    let capacity = std::env::var("STRATA_BENCH_CAPACITY").map_or(2 * key_space as usize, |n| {
        n.trim()
            .parse()
            .expect("STRATA_BENCH_CAPACITY: an entry count")
    });

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
                    record("calibration", "cpu-only", t, iters, run.elapsed);
                    run.elapsed
                })
            });
        }
        group.finish();
    }

    for dist in [Dist::Uniform, Dist::Zipf] {
        let keys = Keys::new(dist, key_space, max_threads);
        for workload in [Workload::ReadHit, Workload::Mixed, Workload::Set] {
            let group_name = format!("{}/{}", workload.name(), dist.name());
            let mut group = criterion.benchmark_group(group_name.as_str());
            group.throughput(Throughput::Elements(1));
            let threads = threads.as_slice();
            if workload == Workload::ReadHit {
                bench_store(
                    &mut group,
                    &group_name,
                    "strata-2L",
                    strata(2, capacity),
                    workload,
                    &keys,
                    threads,
                );
            }
            bench_store(
                &mut group,
                &group_name,
                "strata-1L",
                strata(1, capacity),
                workload,
                &keys,
                threads,
            );
            let papaya: papaya::HashMap<u64, u64, Hasher> =
                papaya::HashMap::with_capacity_and_hasher(capacity, Hasher::new());
            bench_store(
                &mut group,
                &group_name,
                "papaya",
                papaya,
                workload,
                &keys,
                threads,
            );
            if workload == Workload::ReadHit {
                let wide = PapayaWide(papaya::HashMap::with_capacity_and_hasher(
                    capacity,
                    Hasher::new(),
                ));
                bench_store(
                    &mut group,
                    &group_name,
                    "papaya-56B",
                    wide,
                    workload,
                    &keys,
                    threads,
                );
            }
            let quick: QuickCache = QuickCache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                Hasher::new(),
                quick_cache::sync::DefaultLifecycle::default(),
            );
            bench_store(
                &mut group,
                &group_name,
                "quick_cache",
                quick,
                workload,
                &keys,
                threads,
            );
            let moka = moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .initial_capacity(capacity)
                .build_with_hasher(Hasher::new());
            bench_store(
                &mut group,
                &group_name,
                "moka",
                moka,
                workload,
                &keys,
                threads,
            );
            bench_store(
                &mut group,
                &group_name,
                "tinyufo",
                tinyufo::TinyUfo::new(capacity, capacity),
                workload,
                &keys,
                threads,
            );
            let dash = dashmap::DashMap::with_capacity_and_hasher(capacity, Hasher::new());
            bench_store(
                &mut group,
                &group_name,
                "dashmap",
                dash,
                workload,
                &keys,
                threads,
            );
            let lru = MutexLru(Mutex::new(lru::LruCache::with_hasher(
                NonZeroUsize::new(capacity).expect("nonzero"),
                Hasher::new(),
            )));
            bench_store(
                &mut group,
                &group_name,
                "mutex-lru",
                lru,
                workload,
                &keys,
                threads,
            );
            group.finish();
        }
    }
    criterion.final_summary();
    print_summary(&threads, common::sample_count(SAMPLES));
}

/// Median time per operation of a benchmark's measured samples, in nanoseconds.
fn median_ns(calls: &[(u64, Duration)], samples: usize) -> f64 {
    let measured = &calls[calls.len().saturating_sub(samples)..];
    let mut per_op: Vec<f64> = measured
        .iter()
        .map(|&(iters, elapsed)| elapsed.as_nanos() as f64 / iters.max(1) as f64)
        .collect();
    per_op.sort_by(f64::total_cmp);
    per_op[per_op.len() / 2]
}

/// One table per group: aggregate Mops/s (median sample) per candidate and thread count, the
/// scaling over one thread, and the ratio to papaya raw and to quick_cache at each thread count.
fn print_summary(threads: &[usize], samples: usize) {
    let calls = CALLS.lock().expect("calls");
    let mut groups: Vec<&str> = calls.keys().map(|(group, _, _)| group.as_str()).collect();
    groups.dedup();
    println!();
    println!(
        "Summary: aggregate M ops/s (median of {samples} samples); `xN/1` = throughput at N \
         threads over 1 thread; `/ref N` = ratio to that reference (papaya raw, papaya with \
         56-byte entries, quick_cache) at N threads. Threads beyond the machine's cores are \
         oversubscribed."
    );
    for group in groups {
        let mops = |name: &str, t: usize| {
            calls
                .get(&(group.to_owned(), name.to_owned(), t))
                .filter(|calls| !calls.is_empty())
                .map(|calls| 1e3 / median_ns(calls, samples))
        };
        let mut names: Vec<&str> = calls
            .keys()
            .filter(|(g, _, _)| g == group)
            .map(|(_, name, _)| name.as_str())
            .collect();
        names.dedup();
        let references: Vec<&str> = ["papaya", "papaya-56B", "quick_cache"]
            .into_iter()
            .filter(|reference| names.contains(reference))
            .collect();
        println!();
        println!("{group}");
        let mut header = format!("{:<12}", "");
        for t in threads {
            header += &format!(" {:>7}", format!("{t}T"));
        }
        for t in threads.iter().filter(|&&t| t > 1) {
            header += &format!(" {:>6}", format!("x{t}/1"));
        }
        for reference in &references {
            for t in threads {
                header += &format!(" {:>14}", format!("/{reference} {t}"));
            }
        }
        println!("{header}");
        let cell = |value: Option<f64>, width: usize| match value {
            Some(v) => format!(" {v:>width$.2}"),
            None => format!(" {:>width$}", "-"),
        };
        for name in names {
            let mut line = format!("{name:<12}");
            for &t in threads {
                line += &cell(mops(name, t), 7);
            }
            for &t in threads.iter().filter(|&&t| t > 1) {
                line += &cell(mops(name, t).zip(mops(name, 1)).map(|(n, one)| n / one), 6);
            }
            for reference in &references {
                for &t in threads {
                    let ratio = mops(name, t).zip(mops(reference, t)).map(|(a, b)| a / b);
                    line += &cell(ratio, 14);
                }
            }
            println!("{line}");
        }
    }
}
