//! Every row of the seed report (`shared/seed-report.md`) as a criterion benchmark, with the
//! same scenario and layer count as the bench runner (`bench/src/bin/strata/scenarios.rs`), and a
//! table of allocations per operation at the end.
//!
//! ```sh
//! cargo bench --bench seed                                  # all rows
//! cargo bench --bench seed -- 'L1 hit'                      # rows matching a filter
//! STRATA_BENCH_THREADS=2,4 cargo bench --bench seed         # thread counts of parallel rows
//! STRATA_BENCH_KEYS=zipf cargo bench --bench seed           # Zipf keys for get/set/mixed rows
//! ```
//!
//! Keys are `u64` over 10 000 keys, values `u64`. Rows that don't name a layer count run on the
//! runner's embedded default of 2 in-memory layers (room for every key). The get, set and mixed
//! rows draw their keys from `STRATA_BENCH_KEYS` (uniform by default); the promotion row uses
//! a small L1 over 200 000 keys so that every read misses L1, hits L2 and promotes. Delete rows
//! time only deletes of present keys: the cache is refilled (untimed) each time the whole key
//! set has been deleted, so every delete really removes the key from every layer.
//!
//! Batch rows time one batch of 10 (throughput counts keys). Where the seed gives a parallel
//! figure (set, mixed, read-only hits on 8 cores), the row also runs on `STRATA_BENCH_THREADS`
//! threads (2 by default; the machine this was written on has 2 cores), timed with
//! `iter_custom` as aggregate time per operation.
//!
//! Allocations: the binary's global allocator counts allocations and bytes per thread; after
//! the criterion runs every row runs 100 000 more operations and the table gives allocations
//! and bytes per operation (per batch for batch rows), beside the seed's figure. The counting
//! costs a thread-local increment per allocation, which the timed rows pay too.

mod common;

use common::{drive, no_counter, uniform, Counter, Dist, Keys, Run};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use strata::{Cache, LayerSpec, Promotion, WriteMode};
use strata_bench::alloc::{allocations, Counting};
use strata_bench::fixtures::{cache, fill_layer, KEYS};

#[global_allocator]
static GLOBAL: Counting = Counting;

// ----- the scenarios' building blocks (the caches themselves: `strata_bench::fixtures`) -----

/// The runner's embedded default: the layer count of rows that don't name one.
const LAYERS: usize = 2;
/// Operations (batches for batch rows) per row in the allocation count.
const ALLOC_OPS: u64 = 100_000;

/// Puts keys `0..keys` into every layer (write-through).
fn fill_all(cache: &Cache<u64, u64>, keys: u64) {
    for key in 0..keys {
        cache.set(key, key).expect("fill");
    }
}

/// Runs `iters` sequential operations `op(i)`, `i` counting from 0, calling `refill` (untimed,
/// uncounted) before the first and after every `per_fill` of them.
fn refilled(
    iters: u64,
    per_fill: u64,
    refill: &impl Fn(),
    op: &(impl Fn(u64) + Sync),
    counter: Counter,
) -> Run {
    let mut total = Run::default();
    let mut done = 0;
    while done < iters {
        refill();
        let n = (iters - done).min(per_fill);
        let run = drive(1, 0, n, &|_, i| op(i), counter);
        total.elapsed += run.elapsed;
        total.counted[0] += run.counted[0];
        total.counted[1] += run.counted[1];
        done += n;
    }
    total
}

// ----- rows ----------------------------------------------------------------------------------

/// One line of the allocation table.
struct AllocRow {
    name: String,
    allocs: f64,
    bytes: f64,
    /// The seed report's allocations per operation, where it gives one.
    seed: &'static str,
}

struct Rows<'a> {
    group: BenchmarkGroup<'a, WallTime>,
    table: Vec<AllocRow>,
}

impl Rows<'_> {
    /// Benchmarks one row and counts its allocations. `run(base, iters, counter)` performs
    /// `iters` operations of `elements` keys each, starting at operation index `base`.
    fn row(
        &mut self,
        name: String,
        elements: u64,
        seed: &'static str,
        mut run: impl FnMut(u64, u64, Counter) -> Run,
    ) {
        let mut base = 0u64;
        self.group.throughput(Throughput::Elements(elements));
        self.group.bench_function(name.as_str(), |b| {
            b.iter_custom(|iters| {
                let outcome = run(base, iters, no_counter);
                base += iters;
                outcome.elapsed
            })
        });
        // Warm up (thread-local state, tables) in case criterion skipped the row, then count.
        run(base, 1_000, no_counter);
        base += 1_000;
        let counted = run(base, ALLOC_OPS, allocations).counted;
        self.table.push(AllocRow {
            name,
            allocs: counted[0] as f64 / ALLOC_OPS as f64,
            bytes: counted[1] as f64 / ALLOC_OPS as f64,
            seed,
        });
    }

    /// A row whose operation is `op(thread, i)` on `threads` threads.
    fn ops(
        &mut self,
        name: impl Into<String>,
        threads: usize,
        elements: u64,
        seed: &'static str,
        op: impl Fn(usize, u64) + Sync,
    ) {
        let mut name = name.into();
        if threads > 1 {
            name = format!("{name}, {threads} threads");
        }
        self.row(name, elements, seed, |base, iters, counter| {
            drive(threads, base, iters, &op, counter)
        });
    }
}

fn main() {
    let mut criterion = common::criterion(Duration::from_secs(1), Duration::from_secs(3), 50);
    let parallel = common::threads_from_env(&[2]);
    let max_threads = parallel.iter().copied().max().unwrap_or(1).max(1);
    let dist = Dist::from_env();
    let keys = Keys::new(dist, KEYS, max_threads);

    let table = rows(&mut criterion, &parallel, &keys);
    criterion.final_summary();
    print_table(&table, dist);
}

/// Benchmarks every row; returns the allocation table.
fn rows(criterion: &mut Criterion, parallel: &[usize], keys: &Keys) -> Vec<AllocRow> {
    let mut rows = Rows {
        group: criterion.benchmark_group("seed"),
        table: Vec::new(),
    };

    // The rows in the seed report's order; each builds its own cache.
    let l1_filled = || {
        let cache = cache(LAYERS, Promotion::AllAbove, WriteMode::WriteThrough);
        fill_layer(&cache, 0, KEYS);
        cache
    };
    let get_row = |rows: &mut Rows, name: String, threads: usize, seed, cache: Cache<u64, u64>| {
        rows.ops(name, threads, 1, seed, |t, i| {
            black_box(cache.get(&keys.get(t, i)).ok());
        });
    };
    let set_row = |rows: &mut Rows, name: String, threads: usize, seed, cache: Cache<u64, u64>| {
        rows.ops(name, threads, 1, seed, |t, i| {
            black_box(cache.set(keys.get(t, i), i).ok());
        });
    };
    let delete_row = |rows: &mut Rows, name: String, cache: Cache<u64, u64>| {
        rows.row(name, 1, "0", |_, iters, counter| {
            refilled(
                iters,
                KEYS,
                &|| fill_all(&cache, KEYS),
                &|i| {
                    black_box(cache.delete(&i).ok());
                },
                counter,
            )
        });
    };
    let mixed_row = |rows: &mut Rows, threads: usize| {
        let cache = l1_filled();
        rows.ops(
            format!("mixed 80/10/10 ({LAYERS} layers)"),
            threads,
            1,
            "2",
            |t, i| {
                let k = keys.get(t, i);
                match i % 10 {
                    0 => {
                        black_box(cache.set(k, i).ok());
                    }
                    1 => {
                        black_box(cache.delete(&k).ok());
                    }
                    _ => {
                        black_box(cache.get(&k).ok());
                    }
                }
            },
        );
    };

    // --- cache hits and misses ---
    get_row(
        &mut rows,
        format!("L1 hit ({LAYERS} layers)"),
        1,
        "1",
        l1_filled(),
    );
    {
        let cache = cache(LAYERS, Promotion::Off, WriteMode::WriteThrough);
        fill_layer(&cache, 1, KEYS);
        let name = format!("L2 hit, no promotion ({LAYERS} layers)");
        get_row(&mut rows, name, 1, "1", cache);
    }
    {
        // A small L1 over a large key set: every read misses L1, hits L2 and promotes, evicting
        // another key from L1. Uniform keys whatever STRATA_BENCH_KEYS says: a skewed stream
        // would mostly hit L1.
        const WIDE: u64 = 200_000;
        let mut builder = Cache::builder().layer(LayerSpec::memory("l1", 1_000));
        for layer in 1..LAYERS {
            builder = builder.layer(LayerSpec::memory(format!("l{}", layer + 1), 400_000));
        }
        let cache: Cache<u64, u64> = builder.build().expect("valid");
        fill_layer(&cache, 1, WIDE);
        rows.ops(
            format!("L2 hit with promotion ({LAYERS} layers, every op promotes)"),
            1,
            1,
            "1",
            |t, i| {
                black_box(cache.get(&uniform(t, i, WIDE)).ok());
            },
        );
    }
    {
        let cache = cache(LAYERS, Promotion::AllAbove, WriteMode::WriteThrough);
        let name = format!("miss through all layers ({LAYERS})");
        get_row(&mut rows, name, 1, "2", cache);
    }
    for layers in [2, 3, 4] {
        let cache = cache(layers, Promotion::Off, WriteMode::WriteThrough);
        fill_layer(&cache, layers - 1, KEYS);
        let name = format!("hit in deepest of {layers} layers");
        get_row(&mut rows, name, 1, "-", cache);
    }

    // --- writes ---
    for &threads in std::iter::once(&1).chain(parallel) {
        let cache = cache(LAYERS, Promotion::AllAbove, WriteMode::L1Only);
        let name = format!("set, L1 only ({LAYERS} layers)");
        set_row(&mut rows, name, threads, "4", cache);
    }
    for &threads in std::iter::once(&1).chain(parallel) {
        let cache = cache(3, Promotion::AllAbove, WriteMode::WriteThrough);
        let name = "set, write-through (3 layers)".to_owned();
        set_row(&mut rows, name, threads, "7", cache);
    }
    delete_row(
        &mut rows,
        "delete (2 layers, present in both)".to_owned(),
        cache(2, Promotion::AllAbove, WriteMode::WriteThrough),
    );

    // --- batches ---
    {
        let cache = l1_filled();
        rows.ops(
            format!("get_many, 10 keys ({LAYERS} layers, per batch)"),
            1,
            10,
            "7",
            |t, i| {
                let batch: [u64; 10] = std::array::from_fn(|j| keys.get(t, i * 10 + j as u64));
                black_box(cache.get_many(&batch));
            },
        );
    }
    {
        let cache = cache(LAYERS, Promotion::AllAbove, WriteMode::WriteThrough);
        rows.ops(
            format!("set_many, 10 items ({LAYERS} layers, per batch)"),
            1,
            10,
            "8",
            |t, i| {
                // The items' Vec (one allocation) is the caller's, counted with the row.
                let items: Vec<(u64, u64)> =
                    (0..10).map(|j| (keys.get(t, i * 10 + j), i)).collect();
                black_box(cache.set_many(items));
            },
        );
    }
    {
        let cache = cache(LAYERS, Promotion::AllAbove, WriteMode::WriteThrough);
        rows.row(
            format!("delete_many, 10 keys ({LAYERS} layers, per batch, present in all)"),
            10,
            "-",
            |_, iters, counter| {
                refilled(
                    iters,
                    KEYS / 10,
                    &|| fill_all(&cache, KEYS),
                    &|i| {
                        let batch: [u64; 10] = std::array::from_fn(|j| i * 10 + j as u64);
                        black_box(cache.delete_many(&batch));
                    },
                    counter,
                )
            },
        );
    }

    // --- mixed, read-only, exists ---
    for &threads in std::iter::once(&1).chain(parallel) {
        mixed_row(&mut rows, threads);
    }
    for &threads in parallel {
        let name = format!("read-only L1 hits ({LAYERS} layers)");
        get_row(&mut rows, name, threads, "-", l1_filled());
    }
    {
        let cache = l1_filled();
        rows.ops(format!("exists ({LAYERS} layers)"), 1, 1, "1", |t, i| {
            black_box(cache.contains_key(&keys.get(t, i)).ok());
        });
    }

    // --- the single-layer baseline ---
    {
        let cache = cache(1, Promotion::Off, WriteMode::WriteThrough);
        fill_layer(&cache, 0, KEYS);
        get_row(&mut rows, "single layer: get".to_owned(), 1, "-", cache);
    }
    {
        let cache = cache(1, Promotion::Off, WriteMode::WriteThrough);
        set_row(&mut rows, "single layer: set".to_owned(), 1, "-", cache);
    }
    delete_row(
        &mut rows,
        "single layer: delete (present)".to_owned(),
        cache(1, Promotion::Off, WriteMode::WriteThrough),
    );

    let Rows { group, table } = rows;
    group.finish();
    table
}

fn print_table(table: &[AllocRow], dist: Dist) {
    let width = table.iter().map(|row| row.name.len()).max().unwrap_or(0);
    println!();
    println!(
        "Allocations per operation ({ALLOC_OPS} operations per row after a warm-up; batch rows \
         per batch of 10; get/set/mixed keys: {}, {KEYS} keys)",
        dist.name()
    );
    println!(
        "{:<width$}  {:>10}  {:>10}  {:>10}",
        "row", "allocs/op", "bytes/op", "seed"
    );
    for row in table {
        println!(
            "{:<width$}  {:>10.3}  {:>10.1}  {:>10}",
            row.name, row.allocs, row.bytes, row.seed
        );
    }
}
