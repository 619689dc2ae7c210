//! The seed report's scenarios, each as a closure over a freshly built cache.
//!
//! Every scenario builds its cache, pre-populates it, and then runs its operation in a loop for
//! the given duration on `threads` threads (1 for the sequential rows). Keys are `u64`.
//!
//! Rows whose seed scenario names a layer count (write-through over 3 layers, delete over 2, the
//! deepest-layer rows, the single-layer rows) keep it; the other rows run on the "embedded
//! default" of `Config::layers` in-memory tiers. The get, set and mixed rows draw their keys from
//! `Config::keys`; the delete rows and the promotion row stay uniform (a skewed delete stream
//! mostly deletes absent keys, and the promotion row is built so that every read misses L1).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use strata::{Cache, LayerSpec, Promotion, WriteMode};

use strata_bench::fixtures::{cache, fill_layer, KEYS};
use strata_bench::keys::{uniform, KeyDist, Keys};

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

/// How the generic rows are set up (`--layers`, `--keys`).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Layer count of the embedded default used by the rows that don't name one.
    pub layers: usize,
    /// Key distribution of the get, set and mixed rows.
    pub keys: KeyDist,
}

type Run = Box<dyn Fn(usize, Duration) -> Outcome>;

pub struct Scenario {
    pub name: String,
    /// The seed report's figure (ns/op).
    pub seed_ns: f64,
    pub parallel: bool,
    run: Run,
}

impl Scenario {
    fn new(
        name: impl Into<String>,
        seed_ns: f64,
        parallel: bool,
        run: impl Fn(usize, Duration) -> Outcome + 'static,
    ) -> Self {
        Scenario {
            name: name.into(),
            seed_ns,
            parallel,
            run: Box::new(run),
        }
    }

    /// Runs the scenario on `threads` threads for `duration`.
    pub fn run(&self, threads: usize, duration: Duration) -> Outcome {
        (self.run)(threads, duration)
    }
}

/// A workload for the scaling plot: run at 1, 2, 4 and 8 threads.
pub struct Curve {
    pub name: String,
    run: Run,
}

impl Curve {
    pub fn run(&self, threads: usize, duration: Duration) -> Outcome {
        (self.run)(threads, duration)
    }
}

/// Runs `op(thread, i)` on `threads` threads for `duration`; returns total ops and wall time.
///
/// The wall time runs from the first worker's start to the last worker's end, as the workers
/// clock it: the spawning thread may not get a core back for a while when the workers
/// outnumber the cores, so its own clock would undercount.
fn drive<F>(threads: usize, duration: Duration, op: F) -> Outcome
where
    F: Fn(usize, u64) + Send + Sync + 'static,
{
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

pub fn all(config: Config) -> Vec<Scenario> {
    let Config { layers, keys: dist } = config;
    vec![
        Scenario::new(
            format!("L1 hit ({layers} layers)"),
            169.0,
            false,
            move |threads, duration| {
                let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                let keys = Keys::new(dist, KEYS, threads);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&keys.get(t, i)).ok());
                })
            },
        ),
        Scenario::new(
            format!("L2 hit, no promotion ({layers} layers)"),
            141.0,
            false,
            move |threads, duration| {
                let cache = cache(layers, Promotion::Off, WriteMode::WriteThrough);
                fill_layer(&cache, 1, KEYS);
                let keys = Keys::new(dist, KEYS, threads);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&keys.get(t, i)).ok());
                })
            },
        ),
        Scenario::new(
            format!("L2 hit with promotion ({layers} layers, every op promotes)"),
            120.0,
            false,
            move |threads, duration| {
                // A small L1 over a large key set: every read misses L1, hits L2 and promotes,
                // evicting another key from L1. Uniform keys whatever --keys says: a skewed
                // stream would mostly hit L1.
                const WIDE: u64 = 200_000;
                let mut builder = Cache::builder().layer(LayerSpec::memory("l1", 1_000));
                for layer in 1..layers {
                    builder = builder.layer(LayerSpec::memory(format!("l{}", layer + 1), 400_000));
                }
                let cache: Cache<u64, u64> = builder.build().expect("valid");
                fill_layer(&cache, 1, WIDE);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&uniform(t, i, WIDE)).ok());
                })
            },
        ),
        Scenario::new(
            format!("miss through all layers ({layers})"),
            162.0,
            false,
            move |threads, duration| {
                let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
                let keys = Keys::new(dist, KEYS, threads);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&keys.get(t, i)).ok());
                })
            },
        ),
        deepest(2, 122.0, dist),
        deepest(3, 149.0, dist),
        deepest(4, 162.0, dist),
        Scenario::new(
            format!("set, L1 only ({layers} layers)"),
            285.0,
            false,
            move |threads, duration| set_l1_only(layers, dist, threads, duration),
        ),
        Scenario::new(
            format!("set, L1 only ({layers} layers)"),
            650.0,
            true,
            move |threads, duration| set_l1_only(layers, dist, threads, duration),
        ),
        Scenario::new(
            "set, write-through (3 layers)",
            707.0,
            false,
            move |threads, duration| set_through(dist, threads, duration),
        ),
        Scenario::new(
            "set, write-through (3 layers)",
            650.0,
            true,
            move |threads, duration| set_through(dist, threads, duration),
        ),
        Scenario::new("delete (2 layers)", 566.0, false, |threads, duration| {
            let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
            fill_layer(&cache, 0, KEYS);
            drive(threads, duration, move |t, i| {
                black_box(cache.delete(&uniform(t, i, KEYS)).ok());
            })
        }),
        Scenario::new(
            format!("get_many, 10 keys ({layers} layers, per batch)"),
            826.0,
            false,
            move |threads, duration| {
                let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                let keys = Keys::new(dist, KEYS, threads);
                drive(threads, duration, move |t, i| {
                    let batch: [u64; 10] = std::array::from_fn(|j| keys.get(t, i * 10 + j as u64));
                    black_box(cache.get_many(&batch));
                })
            },
        ),
        Scenario::new(
            format!("set_many, 10 items ({layers} layers, per batch)"),
            2050.0,
            false,
            move |threads, duration| {
                let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
                let keys = Keys::new(dist, KEYS, threads);
                drive(threads, duration, move |t, i| {
                    let items: Vec<(u64, u64)> =
                        (0..10).map(|j| (keys.get(t, i * 10 + j), i)).collect();
                    black_box(cache.set_many(items));
                })
            },
        ),
        Scenario::new(
            format!("delete_many, 10 keys ({layers} layers, per batch)"),
            3018.0,
            false,
            move |threads, duration| {
                let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    let batch: [u64; 10] =
                        std::array::from_fn(|j| uniform(t, i * 10 + j as u64, KEYS));
                    black_box(cache.delete_many(&batch));
                })
            },
        ),
        Scenario::new(
            format!("mixed 80/10/10 ({layers} layers)"),
            163.0,
            false,
            move |threads, duration| mixed(layers, dist, threads, duration),
        ),
        Scenario::new(
            format!("mixed 80/10/10 ({layers} layers)"),
            301.0,
            true,
            move |threads, duration| mixed(layers, dist, threads, duration),
        ),
        Scenario::new(
            format!("read-only L1 hits ({layers} layers)"),
            144.0,
            true,
            move |threads, duration| read_only(layers, dist, threads, duration),
        ),
        Scenario::new(
            format!("exists ({layers} layers)"),
            137.0,
            false,
            move |threads, duration| {
                let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                let keys = Keys::new(dist, KEYS, threads);
                drive(threads, duration, move |t, i| {
                    black_box(cache.contains_key(&keys.get(t, i)).ok());
                })
            },
        ),
        Scenario::new(
            "single layer: get",
            61.8,
            false,
            move |threads, duration| {
                let cache = cache(1, Promotion::Off, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                let keys = Keys::new(dist, KEYS, threads);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&keys.get(t, i)).ok());
                })
            },
        ),
        Scenario::new(
            "single layer: set",
            155.0,
            false,
            move |threads, duration| {
                let cache = cache(1, Promotion::Off, WriteMode::WriteThrough);
                let keys = Keys::new(dist, KEYS, threads);
                drive(threads, duration, move |t, i| {
                    black_box(cache.set(keys.get(t, i), i).ok());
                })
            },
        ),
        Scenario::new("single layer: delete", 60.0, false, |threads, duration| {
            let cache = cache(1, Promotion::Off, WriteMode::WriteThrough);
            fill_layer(&cache, 0, KEYS);
            drive(threads, duration, move |t, i| {
                black_box(cache.delete(&uniform(t, i, KEYS)).ok());
            })
        }),
    ]
}

/// The scaling plot's workloads on the embedded default: read-only hits, mixed 80/10/10 and
/// set-only (L1-only writes), the seed's "horizontal scaling" table.
pub fn curves(config: Config) -> Vec<Curve> {
    let Config { layers, keys: dist } = config;
    vec![
        Curve {
            name: format!("read-only L1 hits ({layers} layers)"),
            run: Box::new(move |threads, duration| read_only(layers, dist, threads, duration)),
        },
        Curve {
            name: format!("mixed 80/10/10 ({layers} layers)"),
            run: Box::new(move |threads, duration| mixed(layers, dist, threads, duration)),
        },
        Curve {
            name: format!("set, L1 only ({layers} layers)"),
            run: Box::new(move |threads, duration| set_l1_only(layers, dist, threads, duration)),
        },
    ]
}

fn deepest(layers: usize, seed_ns: f64, dist: KeyDist) -> Scenario {
    Scenario::new(
        format!("hit in deepest of {layers} layers"),
        seed_ns,
        false,
        move |threads, duration| {
            let cache = cache(layers, Promotion::Off, WriteMode::WriteThrough);
            fill_layer(&cache, layers - 1, KEYS);
            let keys = Keys::new(dist, KEYS, threads);
            drive(threads, duration, move |t, i| {
                black_box(cache.get(&keys.get(t, i)).ok());
            })
        },
    )
}

fn read_only(layers: usize, dist: KeyDist, threads: usize, duration: Duration) -> Outcome {
    let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
    fill_layer(&cache, 0, KEYS);
    let keys = Keys::new(dist, KEYS, threads);
    drive(threads, duration, move |t, i| {
        black_box(cache.get(&keys.get(t, i)).ok());
    })
}

fn set_l1_only(layers: usize, dist: KeyDist, threads: usize, duration: Duration) -> Outcome {
    let cache = cache(layers, Promotion::AllAbove, WriteMode::L1Only);
    let keys = Keys::new(dist, KEYS, threads);
    drive(threads, duration, move |t, i| {
        black_box(cache.set(keys.get(t, i), i).ok());
    })
}

fn set_through(dist: KeyDist, threads: usize, duration: Duration) -> Outcome {
    let cache = cache(3, Promotion::AllAbove, WriteMode::WriteThrough);
    let keys = Keys::new(dist, KEYS, threads);
    drive(threads, duration, move |t, i| {
        black_box(cache.set(keys.get(t, i), i).ok());
    })
}

fn mixed(layers: usize, dist: KeyDist, threads: usize, duration: Duration) -> Outcome {
    let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
    fill_layer(&cache, 0, KEYS);
    let keys = Keys::new(dist, KEYS, threads);
    drive(threads, duration, move |t, i| {
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
    })
}
