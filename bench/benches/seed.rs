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

use common::{drive, no_counter, Counter, Dist, Keys, Run};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use std::sync::Arc;
use std::time::Duration;
use strata_bench::alloc::{allocations, Counting};
use strata_bench::fixtures::KEYS;
use strata_bench::scenarios::{self, Config, Prepared};

#[global_allocator]
static GLOBAL: Counting = Counting;

// ----- the scenarios' building blocks (the caches themselves: `strata_bench::fixtures`) -----

/// The runner's embedded default: the layer count of rows that don't name one.
const LAYERS: usize = 2;
/// Operations (batches for batch rows) per row in the allocation count.
const ALLOC_OPS: u64 = 100_000;

/// Runs `iters` sequential operations `op(i)`, `i` counting from 0, calling `refill` (untimed,
/// uncounted) before the first and after every `per_fill` of them.
fn refilled(
    iters: u64,
    per_fill: u64,
    refill: &(dyn Fn() + Send + Sync),
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
    let keys = Arc::new(Keys::new(dist, KEYS, max_threads));

    let table = rows(&mut criterion, &parallel, dist, &keys);
    criterion.final_summary();
    print_table(&table, dist);
}

/// Benchmarks every row of the shared scenario list; returns the allocation table.
fn rows(
    criterion: &mut Criterion,
    parallel: &[usize],
    dist: Dist,
    keys: &Arc<Keys>,
) -> Vec<AllocRow> {
    let mut rows = Rows {
        group: criterion.benchmark_group("seed"),
        table: Vec::new(),
    };
    let config = Config {
        layers: LAYERS,
        keys: dist,
    };
    for scenario in scenarios::all(config) {
        let thread_counts: &[usize] = if scenario.parallel { parallel } else { &[1] };
        for &threads in thread_counts {
            let Prepared { op, refill } = scenario.prepare(keys.clone());
            let name = if threads > 1 {
                format!("{}, {threads} threads", scenario.name)
            } else {
                scenario.name.clone()
            };
            let (elements, seed) = (scenario.keys_per_op, scenario.seed_allocs);
            match refill {
                None => rows.ops(name, threads, elements, seed, &op),
                Some(refill) => rows.row(name, elements, seed, |_, iters, counter| {
                    refilled(iters, refill.every, &*refill.fill, &|i| op(0, i), counter)
                }),
            }
        }
    }
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
