//! The seed report's scenarios, each as a closure over a freshly built cache.
//!
//! Every scenario builds its cache, pre-populates it, and then runs its operation in a loop for
//! the given duration on `threads` threads (1 for the sequential rows). Keys are `u64`.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use strata::{Cache, LayerSpec, Promotion, SetOptions, WriteMode};

pub struct Outcome {
    pub ops: u64,
    pub elapsed: Duration,
}

pub struct Scenario {
    pub name: &'static str,
    /// The seed report's figure (ns/op).
    pub seed_ns: f64,
    pub parallel: bool,
    pub run: fn(threads: usize, duration: Duration) -> Outcome,
}

const KEYS: u64 = 10_000;
/// Room for every key with headroom, without a table so large that lookups miss the CPU caches.
const BIG: usize = 2 * KEYS as usize;

/// A cache of `layers` in-memory tiers with room for every key.
fn cache(layers: usize, promotion: Promotion, mode: WriteMode) -> Cache<u64, u64> {
    let mut builder = Cache::builder().promotion(promotion).write_mode(mode);
    for layer in 0..layers {
        builder = builder.layer(LayerSpec::memory(format!("l{}", layer + 1), BIG));
    }
    builder.build().expect("valid configuration")
}

/// Puts `keys` into layer `layer` only (by writing L1-only with the others skipped).
fn fill_layer(cache: &Cache<u64, u64>, layer: usize, keys: u64) {
    let names: Vec<String> = cache.layer_names().map(str::to_owned).collect();
    let mut options = SetOptions::new();
    for (index, name) in names.iter().enumerate() {
        if index != layer {
            options = options.skip(name.clone());
        }
    }
    for key in 0..keys {
        cache.set_with(key, key, &options).expect("fill");
    }
}

/// Runs `op(thread, i)` on `threads` threads for `duration`; returns total ops and wall time.
fn drive<F>(threads: usize, duration: Duration, op: F) -> Outcome
where
    F: Fn(usize, u64) + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(threads + 1));
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
                    if start.elapsed() >= duration {
                        return i;
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let ops = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .sum();
    Outcome {
        ops,
        elapsed: start.elapsed(),
    }
}

/// A cheap per-thread key sequence (multiplicative hash of the counter), uniform over `n`.
#[inline]
fn key(t: usize, i: u64, n: u64) -> u64 {
    (i.wrapping_add(t as u64 * 0x9E37_79B9)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        >> 20)
        % n
}

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "L1 hit (2 layers)",
            seed_ns: 169.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&key(t, i, KEYS)).ok());
                })
            },
        },
        Scenario {
            name: "L2 hit, no promotion",
            seed_ns: 141.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(2, Promotion::Off, WriteMode::WriteThrough);
                fill_layer(&cache, 1, KEYS);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&key(t, i, KEYS)).ok());
                })
            },
        },
        Scenario {
            name: "L2 hit with promotion (every op promotes)",
            seed_ns: 120.0,
            parallel: false,
            run: |threads, duration| {
                // A small L1 over a large key set: every read misses L1, hits L2 and promotes,
                // evicting another key from L1.
                let cache: Cache<u64, u64> = Cache::builder()
                    .layer(LayerSpec::memory("l1", 1_000))
                    .layer(LayerSpec::memory("l2", 400_000))
                    .build()
                    .expect("valid");
                fill_layer(&cache, 1, 200_000);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&key(t, i, 200_000)).ok());
                })
            },
        },
        Scenario {
            name: "miss through all layers (2)",
            seed_ns: 162.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&key(t, i, KEYS)).ok());
                })
            },
        },
        deepest(2, 122.0),
        deepest(3, 149.0),
        deepest(4, 162.0),
        Scenario {
            name: "set, L1 only (2 layers)",
            seed_ns: 285.0,
            parallel: false,
            run: |threads, duration| set_l1_only(threads, duration),
        },
        Scenario {
            name: "set, L1 only (2 layers)",
            seed_ns: 650.0,
            parallel: true,
            run: |threads, duration| set_l1_only(threads, duration),
        },
        Scenario {
            name: "set, write-through (3 layers)",
            seed_ns: 707.0,
            parallel: false,
            run: |threads, duration| set_through(threads, duration),
        },
        Scenario {
            name: "set, write-through (3 layers)",
            seed_ns: 650.0,
            parallel: true,
            run: |threads, duration| set_through(threads, duration),
        },
        Scenario {
            name: "delete (2 layers)",
            seed_ns: 566.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    black_box(cache.delete(&key(t, i, KEYS)).ok());
                })
            },
        },
        Scenario {
            name: "get_many, 10 keys (per batch)",
            seed_ns: 826.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    let keys: [u64; 10] = std::array::from_fn(|j| key(t, i * 10 + j as u64, KEYS));
                    black_box(cache.get_many(&keys));
                })
            },
        },
        Scenario {
            name: "set_many, 10 items (per batch)",
            seed_ns: 2050.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
                drive(threads, duration, move |t, i| {
                    let items: Vec<(u64, u64)> =
                        (0..10).map(|j| (key(t, i * 10 + j, KEYS), i)).collect();
                    black_box(cache.set_many(items));
                })
            },
        },
        Scenario {
            name: "delete_many, 10 keys (per batch)",
            seed_ns: 3018.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    let keys: [u64; 10] = std::array::from_fn(|j| key(t, i * 10 + j as u64, KEYS));
                    black_box(cache.delete_many(&keys));
                })
            },
        },
        Scenario {
            name: "mixed 80/10/10 (2 layers)",
            seed_ns: 163.0,
            parallel: false,
            run: |threads, duration| mixed(threads, duration),
        },
        Scenario {
            name: "mixed 80/10/10 (2 layers)",
            seed_ns: 301.0,
            parallel: true,
            run: |threads, duration| mixed(threads, duration),
        },
        Scenario {
            name: "read-only L1 hits (2 layers)",
            seed_ns: 144.0,
            parallel: true,
            run: |threads, duration| {
                let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&key(t, i, KEYS)).ok());
                })
            },
        },
        Scenario {
            name: "exists (2 layers)",
            seed_ns: 137.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    black_box(cache.exists(&key(t, i, KEYS)).ok());
                })
            },
        },
        Scenario {
            name: "single layer: get",
            seed_ns: 61.8,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(1, Promotion::Off, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    black_box(cache.get(&key(t, i, KEYS)).ok());
                })
            },
        },
        Scenario {
            name: "single layer: set",
            seed_ns: 155.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(1, Promotion::Off, WriteMode::WriteThrough);
                drive(threads, duration, move |t, i| {
                    black_box(cache.set(key(t, i, KEYS), i).ok());
                })
            },
        },
        Scenario {
            name: "single layer: delete",
            seed_ns: 60.0,
            parallel: false,
            run: |threads, duration| {
                let cache = cache(1, Promotion::Off, WriteMode::WriteThrough);
                fill_layer(&cache, 0, KEYS);
                drive(threads, duration, move |t, i| {
                    black_box(cache.delete(&key(t, i, KEYS)).ok());
                })
            },
        },
    ]
}

fn deepest(layers: usize, seed_ns: f64) -> Scenario {
    let name = match layers {
        2 => "hit in deepest of 2 layers",
        3 => "hit in deepest of 3 layers",
        _ => "hit in deepest of 4 layers",
    };
    let run: fn(usize, Duration) -> Outcome = match layers {
        2 => |t, d| deepest_run(2, t, d),
        3 => |t, d| deepest_run(3, t, d),
        _ => |t, d| deepest_run(4, t, d),
    };
    Scenario {
        name,
        seed_ns,
        parallel: false,
        run,
    }
}

fn deepest_run(layers: usize, threads: usize, duration: Duration) -> Outcome {
    let cache = cache(layers, Promotion::Off, WriteMode::WriteThrough);
    fill_layer(&cache, layers - 1, KEYS);
    drive(threads, duration, move |t, i| {
        black_box(cache.get(&key(t, i, KEYS)).ok());
    })
}

fn set_l1_only(threads: usize, duration: Duration) -> Outcome {
    let cache = cache(2, Promotion::AllAbove, WriteMode::L1Only);
    drive(threads, duration, move |t, i| {
        black_box(cache.set(key(t, i, KEYS), i).ok());
    })
}

fn set_through(threads: usize, duration: Duration) -> Outcome {
    let cache = cache(3, Promotion::AllAbove, WriteMode::WriteThrough);
    drive(threads, duration, move |t, i| {
        black_box(cache.set(key(t, i, KEYS), i).ok());
    })
}

fn mixed(threads: usize, duration: Duration) -> Outcome {
    let cache = cache(2, Promotion::AllAbove, WriteMode::WriteThrough);
    fill_layer(&cache, 0, KEYS);
    drive(threads, duration, move |t, i| {
        let k = key(t, i, KEYS);
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
