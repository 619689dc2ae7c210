//! How papaya behaves under a cache's churn, and which table setup the memory tier uses.
//!
//! `cargo run --release --example churn [-- THREADS]`
//!
//! Workload per thread: a sliding window of 50 000 live keys of its own; each op is a get of a
//! random live key (80 %), an insert of a new key at the window's head (10 %) or a removal at
//! its tail (10 %) — what a bounded cache does when every insert evicts. On strata the mix is
//! 90 % get and 10 % set of a new key, each of which evicts one entry. Compared, in one run:
//! read-only gets, and the churn mix on papaya with the default table, a presized table with
//! incremental resizing, a presized table with blocking resizing, and on strata's memory tier
//! (which evicts by itself, so its "removal" is the eviction the insert triggers).

use papaya::{HashMap, ResizeMode};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use strata::{Cache, LayerSpec, Promotion};

const WINDOW: u64 = 50_000;
const DURATION: Duration = Duration::from_millis(1500);

/// Runs `op(thread, state)` on each thread for `DURATION`; `state` is `[rng, lo, hi]`, private
/// to the thread. Returns aggregate Mops/s.
fn run<F: Fn(usize, &mut [u64; 3]) + Send + Sync + 'static>(threads: usize, op: F) -> f64 {
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (op, barrier) = (op.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut state = [0x9E37_79B9_7F4A_7C15u64 ^ t as u64, 0, WINDOW];
                barrier.wait();
                let start = Instant::now();
                let mut ops = 0u64;
                while start.elapsed() < DURATION {
                    for _ in 0..1024 {
                        op(t, &mut state);
                    }
                    ops += 1024;
                }
                ops as f64 / start.elapsed().as_secs_f64()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum::<f64>() / 1e6
}

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn churn_papaya(threads: usize, map: HashMap<u64, u64>, read_only: bool) -> f64 {
    let map = Arc::new(map);
    for t in 0..threads as u64 {
        let pinned = map.pin();
        for n in 0..WINDOW {
            pinned.insert(t << 40 | n, n);
        }
    }
    run(threads, move |t, state| {
        // Keys are `thread << 40 | n`; the thread's live window is [lo, hi).
        let (lo, hi) = (state[1], state[2]);
        let r = rng(&mut state[0]);
        let pinned = map.pin();
        match (read_only, r % 10) {
            (false, 0) => {
                pinned.insert((t as u64) << 40 | hi, hi);
                state[2] += 1;
            }
            (false, 1) => {
                pinned.remove(&((t as u64) << 40 | lo));
                state[1] += 1;
            }
            _ => {
                let key = (t as u64) << 40 | (lo + (r >> 8) % (hi - lo).max(1));
                std::hint::black_box(pinned.get(&key));
            }
        }
    })
}

fn churn_strata(threads: usize) -> f64 {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", WINDOW as usize * threads))
        .promotion(Promotion::Off)
        .build()
        .unwrap();
    for t in 0..threads as u64 {
        for n in 0..WINDOW {
            cache.set(t << 40 | n, n).unwrap();
        }
    }
    run(threads, move |t, state| {
        let hi = state[2];
        let r = rng(&mut state[0]);
        if r % 10 == 0 {
            // An insert of a new key: the tier evicts one to stay within capacity.
            cache.set((t as u64) << 40 | hi, hi).unwrap();
            state[2] += 1;
        } else {
            let key = (t as u64) << 40 | (hi - 1 - (r >> 8) % WINDOW);
            std::hint::black_box(cache.get(&key).ok());
        }
    })
}

fn main() {
    let max_threads: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2);
    let presized = |threads: usize, mode| {
        HashMap::builder()
            .capacity(WINDOW as usize * threads)
            .resize_mode(mode)
            .build()
    };
    println!("| threads | papaya read-only | papaya churn (default) | presized, incremental | presized, blocking | strata tier churn |");
    println!("|---|---|---|---|---|---|");
    for threads in 1..=max_threads {
        let read = churn_papaya(threads, presized(threads, ResizeMode::Blocking), true);
        let default = churn_papaya(threads, HashMap::new(), false);
        let incremental = churn_papaya(
            threads,
            presized(threads, ResizeMode::Incremental(64)),
            false,
        );
        let blocking = churn_papaya(threads, presized(threads, ResizeMode::Blocking), false);
        let strata = churn_strata(threads);
        println!("| {threads} | {read:.1} | {default:.1} | {incremental:.1} | {blocking:.1} | {strata:.1} |");
    }
    println!("(Mops/s, aggregate. papaya churn: 80 % get, 10 % insert, 10 % remove. strata: 90 % get, 10 % set of a new key, each evicting one: the same inserts and removals per op.)");
}
