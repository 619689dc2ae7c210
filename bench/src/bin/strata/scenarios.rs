//! How the runner times the seed scenarios (`strata_bench::scenarios`, the one list the criterion
//! rows of `benches/seed.rs` share): each runs for a duration on `threads` threads.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use strata_bench::fixtures::KEYS;
use strata_bench::keys::{KeyDist, Keys};
use strata_bench::scenarios::Op;
pub use strata_bench::scenarios::{all, curves, design, Config, Scenario, REMOTE_RTT};

pub struct Outcome {
    pub ops: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.max(1) as f64
    }

    pub fn mops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Runs `scenario` on a fresh cache, on `threads` threads, for `duration`.
pub fn run(scenario: &Scenario, dist: KeyDist, threads: usize, duration: Duration) -> Outcome {
    let prepared = scenario.prepare(Arc::new(Keys::new(dist, KEYS, threads)));
    let Some(refill) = prepared.refill else {
        return drive(threads, duration, prepared.op);
    };
    // Rows that use up their keys run on one thread, in chunks, refilled between them (untimed).
    let mut outcome = Outcome {
        ops: 0,
        elapsed: Duration::ZERO,
    };
    while outcome.elapsed < duration {
        let start = Instant::now();
        for i in outcome.ops..outcome.ops + refill.every {
            (prepared.op)(0, i);
        }
        outcome.elapsed += start.elapsed();
        outcome.ops += refill.every;
        (refill.fill)();
    }
    outcome
}

/// Runs `op(thread, i)` on `threads` threads for `duration`; returns total ops and wall time.
///
/// The wall time runs from the first worker's start to the last worker's end, as the workers
/// clock it: the spawning thread may not get a core back for a while when the workers
/// outnumber the cores, so its own clock would undercount.
fn drive(threads: usize, duration: Duration, op: Op) -> Outcome {
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (op, barrier) = (op.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut i = 0u64;
                loop {
                    for _ in 0..256 {
                        op(t, i);
                        i += 1;
                    }
                    let end = Instant::now();
                    if end - start >= duration {
                        return (i, start, end);
                    }
                }
            })
        })
        .collect();
    let runs: Vec<(u64, Instant, Instant)> = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .collect();
    let first = runs.iter().map(|r| r.1).min().expect("at least one thread");
    let last = runs.iter().map(|r| r.2).max().expect("at least one thread");
    Outcome {
        ops: runs.iter().map(|r| r.0).sum(),
        elapsed: last - first,
    }
}
