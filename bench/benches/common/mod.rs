//! What the criterion benches share: key streams (uniform and Zipf), a multi-threaded driver for
//! `iter_custom`, and the environment knobs.
//!
//! The key streams (`Keys`, the Zipf sampler) are the bench runner's own (`strata_bench::keys`),
//! so that the runner and the benches measure the same streams.
//!
//! Environment:
//! - `STRATA_BENCH_THREADS` — thread counts of the parallel benchmarks, e.g. `1,2,4,8`.
//! - `STRATA_BENCH_KEYS` — `uniform` or `zipf`: keys of the seed bench's get/set/mixed rows.
//! - `STRATA_BENCH_KEY_SPACE` — the scaling bench's key count (100 000 by default).
//! - `STRATA_BENCH_WARMUP`, `STRATA_BENCH_SECS` (seconds, fractional allowed) and
//!   `STRATA_BENCH_SAMPLES` — criterion's warm-up time, measurement time and sample size.
//!   criterion's own `--warm-up-time`, `--measurement-time` and `--sample-size` flags win over
//!   them.

// Each bench binary uses part of this module.
#![allow(dead_code)]

use criterion::Criterion;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Thread counts from `STRATA_BENCH_THREADS` (comma-separated), or `default`.
pub fn threads_from_env(default: &[usize]) -> Vec<usize> {
    match std::env::var("STRATA_BENCH_THREADS") {
        Ok(list) => {
            let threads: Vec<usize> = list
                .split(',')
                .map(|t| {
                    t.trim()
                        .parse()
                        .expect("STRATA_BENCH_THREADS: comma-separated thread counts")
                })
                .collect();
            assert!(
                threads.iter().all(|&t| t > 0),
                "STRATA_BENCH_THREADS: thread counts must be positive"
            );
            threads
        }
        Err(_) => default.to_vec(),
    }
}

fn secs_from_env(name: &str) -> Option<Duration> {
    let value = std::env::var(name).ok()?;
    let secs: f64 = value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: seconds, e.g. 0.5"));
    Some(Duration::from_secs_f64(secs))
}

/// The number of samples criterion takes per benchmark: `--sample-size` on the command line,
/// else `STRATA_BENCH_SAMPLES`, else `default`.
pub fn sample_count(default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().enumerate().find_map(|(at, arg)| {
        if arg == "--sample-size" {
            args.get(at + 1).map(String::as_str)
        } else {
            arg.strip_prefix("--sample-size=")
        }
    });
    from_args
        .map(|n| n.trim().parse().expect("--sample-size: a count ≥ 10"))
        .or_else(|| {
            std::env::var("STRATA_BENCH_SAMPLES").ok().map(|n| {
                n.trim()
                    .parse()
                    .expect("STRATA_BENCH_SAMPLES: a count ≥ 10")
            })
        })
        .unwrap_or(default)
}

/// A criterion with the given defaults, overridden by the environment, then by the command line.
pub fn criterion(warm_up: Duration, measurement: Duration, samples: usize) -> Criterion {
    Criterion::default()
        .warm_up_time(secs_from_env("STRATA_BENCH_WARMUP").unwrap_or(warm_up))
        .measurement_time(secs_from_env("STRATA_BENCH_SECS").unwrap_or(measurement))
        .sample_size(sample_count(samples))
        .configure_from_args()
}

pub use strata_bench::keys::{KeyDist as Dist, Keys};

/// A thread's counters read before and after its share of a run (the seed bench counts
/// allocations and bytes; the others pass [`no_counter`]).
pub type Counter = fn() -> [u64; 2];

pub fn no_counter() -> [u64; 2] {
    [0, 0]
}

/// The outcome of one [`drive`] call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    /// Wall time of the run (see [`drive`]).
    pub elapsed: Duration,
    /// What the counter advanced by, summed over the threads.
    pub counted: [u64; 2],
}

/// Runs `iters` operations in all, split evenly over `threads` threads: thread `t` calls
/// `op(t, i)` for `i` in `base..base + its share`. The wall time runs from the first worker's
/// start to the last worker's end, as the workers clock it, so thread spawning and the start
/// barrier stay outside it. (When threads outnumber cores the spawning thread may not get a
/// core back for a while, so its own clock would overcount.)
///
/// With one thread the operations run on the calling thread: no spawn, nothing between
/// criterion and the loop.
pub fn drive<F>(threads: usize, base: u64, iters: u64, op: &F, counter: Counter) -> Run
where
    F: Fn(usize, u64) + Sync,
{
    if threads == 1 {
        let before = counter();
        let start = Instant::now();
        for i in base..base + iters {
            op(0, i);
        }
        let elapsed = start.elapsed();
        let after = counter();
        return Run {
            elapsed,
            counted: [after[0] - before[0], after[1] - before[1]],
        };
    }
    let barrier = Barrier::new(threads);
    let per_thread: Vec<(Instant, Instant, [u64; 2])> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let before = counter();
                    let start = Instant::now();
                    for i in base..base + share {
                        op(t, i);
                    }
                    let end = Instant::now();
                    let after = counter();
                    (start, end, [after[0] - before[0], after[1] - before[1]])
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let first = per_thread.iter().map(|r| r.0).min().expect("a thread");
    let last = per_thread.iter().map(|r| r.1).max().expect("a thread");
    Run {
        elapsed: last - first,
        counted: per_thread
            .iter()
            .fold([0, 0], |sum, r| [sum[0] + r.2[0], sum[1] + r.2[1]]),
    }
}
