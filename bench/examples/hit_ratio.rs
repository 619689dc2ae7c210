//! Hit-ratio replay harness: strata's in-memory tier against quick_cache, moka and an exact LRU.
//!
//! ```text
//! cargo run --release --example hit_ratio [-- TRACE_DIR]
//! ```
//!
//! `TRACE_DIR` defaults to `shared/traces` beside the repository (see its README.md for the format,
//! the replay rule and the reference numbers). Each `*.u64.gz` file is a gzip-compressed array
//! of little-endian `u64` keys. Every cache replays the trace as "for each key: get; on a miss
//! insert it", single-threaded, and the hit ratio is hits / requests.
//!
//! Sizes per trace: the sizes the README's reference table lists for that trace, plus 0.3 %,
//! 1 %, 3 %, 10 %, 20 % and 40 % of the trace's unique keys (rounded down), deduplicated.
//!
//! The exact LRU implemented here validates the harness: where the README gives an LRU figure
//! for a (trace, size), ours must match it to 0.01 points or the run aborts.
//!
//! `HIT_RATIO_TRACES=loop,web07` restricts the run to the named traces (file stems). After the
//! shared traces come two synthetic ones (a Zipf stream with scans, a Zipf stream whose hot set
//! moves; `strata_bench::traces::synthetic`) that judge a policy change beyond the traces it was
//! measured on; `HIT_RATIO_NO_SYNTHETIC=1` skips them.

use std::time::Instant;

use strata::{Cache, LayerSpec, Promotion};
use strata_bench::traces::{self, Lru};

/// The unique-key fractions every trace is replayed at.
const FRACTIONS: [f64; 6] = [0.003, 0.01, 0.03, 0.10, 0.20, 0.40];

/// A row of the README's reference table: (trace, size, exact LRU hit ratio in %).
const REFERENCE_LRU: &[(&str, usize, f64)] = &[
    ("oltp", 1_868, 41.63),
    ("oltp", 18_688, 66.52),
    ("oltp", 74_752, 77.04),
    ("orm-busy", 3_817, 84.13),
    ("orm-busy", 4_096, 84.56),
    ("web07", 2_048, 55.66),
    ("loop", 512, 0.00),
];

/// A strata row more than this many points below the best peer counts as a loss.
const LOSS_THRESHOLD: f64 = 0.5;

fn main() {
    let dir = traces::dir_from_args();
    let only = traces::selection("HIT_RATIO_TRACES");
    let files = traces::files(&dir, only.as_deref()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!files.is_empty(), "no *.u64.gz traces in {}", dir.display());

    let started = Instant::now();
    let shared = files.iter().map(|path| {
        let keys = traces::decode(path).unwrap_or_else(|e| panic!("{e}")).keys;
        (traces::name(path), keys)
    });
    let shared: Vec<(String, Vec<u64>)> = shared.collect();
    let rows = replay_all(shared.iter().cloned(), Bound::Entries);
    print_table(&rows, true);
    if std::env::var_os("HIT_RATIO_NO_SYNTHETIC").is_none() {
        println!();
        println!("Synthetic traces (`strata_bench::traces::synthetic`, outside the target):");
        println!();
        print_table(&replay_all(traces::synthetic(), Bound::Entries), false);
    }
    if std::env::var_os("HIT_RATIO_NO_WEIGHTED").is_none() {
        println!();
        println!(
            "Weight-bounded (outside the target): each key weighs 1, 2 or 3 (`weight`), every \
             cache is bounded to 2 × size units, so about `size` entries fit:"
        );
        println!();
        print_table(&replay_all(shared, Bound::Weight), false);
    }
    eprintln!("total time {:.1?}", started.elapsed());
}

/// What bounds the caches of a replay.
#[derive(Clone, Copy, PartialEq)]
enum Bound {
    /// `size` entries.
    Entries,
    /// `2 × size` units of [`weight`] (no LRU column).
    Weight,
}

/// A key's weight in the weight-bounded replay: 1, 2 or 3, from the key's bits.
fn weight(key: u64) -> u64 {
    1 + (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) % 3
}

/// quick_cache's weigher: [`weight`] in the weight-bounded replay, 1 per entry otherwise.
#[derive(Clone)]
struct KeyWeight(Option<fn(u64) -> u64>);

impl quick_cache::Weighter<u64, u64> for KeyWeight {
    fn weight(&self, key: &u64, _: &u64) -> u64 {
        self.0.map_or(1, |weight| weight(*key))
    }
}

/// Replays every trace at its sizes through every cache.
fn replay_all(traces: impl IntoIterator<Item = (String, Vec<u64>)>, bound: Bound) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, keys) in traces {
        let unique = {
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            sorted.len()
        };
        eprintln!("{name}: {} requests, {unique} unique keys", keys.len());

        let mut sizes: Vec<usize> = REFERENCE_LRU
            .iter()
            .filter(|(t, _, _)| *t == name)
            .map(|&(_, size, _)| size)
            .chain(
                FRACTIONS
                    .iter()
                    .map(|f| ((unique as f64 * f).floor() as usize).max(1)),
            )
            .collect();
        sizes.sort_unstable();
        sizes.dedup();

        for size in sizes {
            // The exact LRU and its reference figures count entries; a weight-bounded row has
            // neither.
            let reference = REFERENCE_LRU
                .iter()
                .find(|&&(t, s, _)| t == name && s == size && bound == Bound::Entries)
                .map(|&(_, _, lru)| lru);
            let lru = if bound == Bound::Entries {
                timed(&name, size, "lru", || replay_lru(&keys, size))
            } else {
                f64::NAN
            };
            if let Some(reference) = reference {
                assert!(
                    (lru - reference).abs() < 0.01,
                    "harness check failed: {name} @ {size}: LRU {lru:.4} % vs README {reference:.2} %"
                );
            }
            let strata = timed(&name, size, "strata", || replay_strata(&keys, size, bound));
            let quick = timed(&name, size, "quick_cache", || {
                replay_quick_cache(&keys, size, bound)
            });
            let moka = timed(&name, size, "moka", || replay_moka(&keys, size, bound));
            rows.push(Row {
                trace: name.clone(),
                size,
                reference,
                lru,
                strata,
                quick,
                moka,
            });
        }
    }
    rows
}

/// Prints the rows; `summary` adds the count of rows below the best peer (the target's).
fn print_table(rows: &[Row], summary: bool) {
    println!("| trace | size | LRU (ref) | LRU (ours) | strata | quick_cache | moka | strata − best(peer) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut losses = 0;
    for row in rows {
        let delta = row.strata - row.quick.max(row.moka);
        let flag = if delta < -LOSS_THRESHOLD {
            losses += 1;
            " ⚠"
        } else {
            ""
        };
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:+.2}{} |",
            row.trace,
            row.size,
            row.reference.map_or("–".to_owned(), |r| format!("{r:.2}")),
            if row.lru.is_nan() {
                "–".to_owned()
            } else {
                format!("{:.2}", row.lru)
            },
            row.strata,
            row.quick,
            row.moka,
            delta,
            flag,
        );
    }
    if summary {
        println!();
        println!(
            "summary: strata is below the best peer by more than {LOSS_THRESHOLD} points in {losses} of {} rows",
            rows.len()
        );
    }
}

struct Row {
    trace: String,
    size: usize,
    reference: Option<f64>,
    lru: f64,
    strata: f64,
    quick: f64,
    moka: f64,
}

fn timed(trace: &str, size: usize, what: &str, run: impl FnOnce() -> f64) -> f64 {
    let start = Instant::now();
    let ratio = run();
    eprintln!(
        "  {trace} @ {size}: {what:<11} {ratio:6.2} %  ({:.2?})",
        start.elapsed()
    );
    ratio
}

fn percent(hits: u64, requests: usize) -> f64 {
    if requests == 0 {
        0.0
    } else {
        hits as f64 * 100.0 / requests as f64
    }
}

/// Replays "get; on a miss insert" through any cache given as two closures.
fn replay(keys: &[u64], mut get: impl FnMut(u64) -> bool, mut insert: impl FnMut(u64)) -> f64 {
    let mut hits = 0u64;
    for &key in keys {
        if get(key) {
            hits += 1;
        } else {
            insert(key);
        }
    }
    percent(hits, keys.len())
}

fn replay_strata(keys: &[u64], size: usize, bound: Bound) -> f64 {
    let layer = match bound {
        Bound::Entries => LayerSpec::memory("l1", size),
        // The entry capacity is not the bound: four times what the weight lets in.
        Bound::Weight => LayerSpec::memory("l1", size * 4)
            .max_weight(2 * size as u64, |key: &u64, _: &u64| weight(*key)),
    };
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(layer)
        .promotion(Promotion::Off)
        .build()
        .expect("strata cache");
    replay(
        keys,
        |k| cache.get(&k).expect("strata get").is_some(),
        |k| {
            cache.set(k, k).expect("strata set");
        },
    )
}

fn replay_quick_cache(keys: &[u64], size: usize, bound: Bound) -> f64 {
    let weigher = match bound {
        Bound::Entries => KeyWeight(None),
        Bound::Weight => KeyWeight(Some(weight)),
    };
    let units = match bound {
        Bound::Entries => size as u64,
        Bound::Weight => 2 * size as u64,
    };
    let cache =
        quick_cache::sync::Cache::<u64, u64, KeyWeight>::with_weighter(size, units, weigher);
    replay(keys, |k| cache.get(&k).is_some(), |k| cache.insert(k, k))
}

fn replay_moka(keys: &[u64], size: usize, bound: Bound) -> f64 {
    let builder = moka::sync::Cache::builder();
    let cache: moka::sync::Cache<u64, u64> = match bound {
        Bound::Entries => builder.max_capacity(size as u64).build(),
        Bound::Weight => builder
            .max_capacity(2 * size as u64)
            .weigher(|key: &u64, _: &u64| weight(*key) as u32)
            .build(),
    };
    replay(
        keys,
        |k| cache.get(&k).is_some(),
        |k| {
            cache.insert(k, k);
            // moka applies reads, writes, admission and eviction in batches on its maintenance
            // tasks; run them after every insert so the bound is enforced as each entry arrives
            // (otherwise the cache overshoots its capacity between batches).
            cache.run_pending_tasks();
        },
    )
}

fn replay_lru(keys: &[u64], size: usize) -> f64 {
    let lru = std::cell::RefCell::new(Lru::new(size));
    replay(
        keys,
        |k| lru.borrow_mut().get(k),
        |k| lru.borrow_mut().insert(k),
    )
}
