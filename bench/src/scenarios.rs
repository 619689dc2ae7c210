//! The seed report's scenarios, written once: the bench runner's table (`strata` binary) and the
//! criterion rows of `benches/seed.rs` both run this list.
//!
//! A [`Scenario`] is a name, the seed's figures and a `prepare` step that builds and fills a
//! fresh cache and returns the timed operation `op(thread, i)` (and, for rows that use up the
//! keys they need, an untimed refill). Each harness times the operation its own way: the runner
//! for a duration, criterion for a number of iterations, and the seed bench also counts
//! allocations.
//!
//! Rows whose seed scenario names a layer count (write-through over 3 layers, delete over 2, the
//! deepest-layer rows, the single-layer rows) keep it; the other rows run on the "embedded
//! default" of [`Config::layers`] in-memory tiers. The get, set and mixed rows draw their keys
//! from [`Config::keys`]; the delete rows and the promotion row stay uniform (a skewed delete
//! stream mostly deletes absent keys, and the promotion row is built so that every read misses
//! L1). Delete rows delete present keys only: the cache is refilled (untimed) each time the
//! whole key set has been deleted.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;

use std::time::Duration;

use strata::{Cache, LayerSpec, Promotion, PromotionGate, WriteMode};

use crate::fixtures::{cache, fill_layer, KEYS};
use crate::keys::{uniform, KeyDist, Keys};
use crate::remote::Remote;

/// How the generic rows are set up (the runner's `--layers` and `--keys`).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Layer count of the embedded default used by the rows that don't name one.
    pub layers: usize,
    /// Key distribution of the get, set and mixed rows.
    pub keys: KeyDist,
}

/// The timed operation of a prepared scenario: `op(thread, i)`, `i` counting operations.
pub type Op = Box<dyn Fn(usize, u64) + Send + Sync>;

/// A scenario's cache, built and filled, and what to time on it.
pub struct Prepared {
    pub op: Op,
    /// Rows that use up their keys (deletes of present keys): put them back every `every`
    /// operations, untimed.
    pub refill: Option<Refill>,
}

pub struct Refill {
    pub every: u64,
    pub fill: Box<dyn Fn() + Send + Sync>,
}

/// One row of the seed report.
pub struct Scenario {
    pub name: String,
    /// The seed report's figure (ns per operation, per batch for batch rows).
    pub seed_ns: f64,
    /// The seed report's allocations per operation, where it gives one.
    pub seed_allocs: &'static str,
    /// The seed's parallel figure: run on more than one thread.
    pub parallel: bool,
    /// Keys per operation (10 for the batch rows).
    pub keys_per_op: u64,
    prepare: Box<dyn Fn(Arc<Keys>) -> Prepared>,
}

impl Scenario {
    fn new(
        name: impl Into<String>,
        seed_ns: f64,
        seed_allocs: &'static str,
        prepare: impl Fn(Arc<Keys>) -> Prepared + 'static,
    ) -> Self {
        Scenario {
            name: name.into(),
            seed_ns,
            seed_allocs,
            parallel: false,
            keys_per_op: 1,
            prepare: Box::new(prepare),
        }
    }

    fn parallel(mut self) -> Self {
        self.parallel = true;
        self
    }

    fn batch(mut self) -> Self {
        self.keys_per_op = 10;
        self
    }

    /// Builds and fills a fresh cache; `keys` must have a stream for every thread that will run.
    pub fn prepare(&self, keys: Arc<Keys>) -> Prepared {
        (self.prepare)(keys)
    }
}

fn timed(op: impl Fn(usize, u64) + Send + Sync + 'static) -> Prepared {
    Prepared {
        op: Box::new(op),
        refill: None,
    }
}

fn gets(cache: Cache<u64, u64>, keys: Arc<Keys>) -> Prepared {
    timed(move |t, i| {
        black_box(cache.get(&keys.get(t, i)).ok());
    })
}

fn sets(cache: Cache<u64, u64>, keys: Arc<Keys>) -> Prepared {
    timed(move |t, i| {
        black_box(cache.set(keys.get(t, i), i).ok());
    })
}

/// Deletes of present keys: `keys_per_op` consecutive keys per operation, refilled (untimed)
/// each time the key set is used up.
fn deletes(cache: Cache<u64, u64>, keys_per_op: u64) -> Prepared {
    let cache = Arc::new(cache);
    let filler = cache.clone();
    let fill = move || {
        for key in 0..KEYS {
            filler.set(key, key).expect("fill");
        }
    };
    fill();
    let op: Op = if keys_per_op == 1 {
        Box::new(move |_, i| {
            black_box(cache.delete(&(i % KEYS)).ok());
        })
    } else {
        Box::new(move |_, i| {
            let first = i * keys_per_op % KEYS;
            let batch: [u64; 10] = std::array::from_fn(|j| first + j as u64);
            black_box(cache.delete_many(&batch));
        })
    };
    Prepared {
        op,
        refill: Some(Refill {
            every: KEYS / keys_per_op,
            fill: Box::new(fill),
        }),
    }
}

fn mixed(cache: Cache<u64, u64>, keys: Arc<Keys>) -> Prepared {
    timed(move |t, i| {
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

fn filled(layers: usize, promotion: Promotion, layer: usize) -> Cache<u64, u64> {
    let cache = cache(layers, promotion, WriteMode::WriteThrough);
    fill_layer(&cache, layer, KEYS);
    cache
}

/// Every row, in the seed report's order.
pub fn all(config: Config) -> Vec<Scenario> {
    let Config { layers, .. } = config;
    let mut rows = vec![
        Scenario::new(
            format!("L1 hit ({layers} layers)"),
            169.0,
            "1",
            move |keys| gets(filled(layers, Promotion::AllAbove, 0), keys),
        ),
        Scenario::new(
            format!("L2 hit, no promotion ({layers} layers)"),
            141.0,
            "1",
            move |keys| gets(filled(layers, Promotion::Off, 1), keys),
        ),
        Scenario::new(
            format!("L2 hit with promotion ({layers} layers, every op promotes)"),
            120.0,
            "1",
            // A small L1 over a large key set: every read misses L1, hits L2 and promotes,
            // evicting another key from L1. Uniform keys whatever the key distribution: a
            // skewed stream would mostly hit L1.
            move |_| l2_hits(layers, Some(PromotionGate::Always), false),
        ),
        Scenario::new(
            format!("miss through all layers ({layers})"),
            162.0,
            "2",
            move |keys| {
                gets(
                    cache(layers, Promotion::AllAbove, WriteMode::WriteThrough),
                    keys,
                )
            },
        ),
    ];
    for (deepest, seed_ns) in [(2, 122.0), (3, 149.0), (4, 162.0)] {
        rows.push(Scenario::new(
            format!("hit in deepest of {deepest} layers"),
            seed_ns,
            "-",
            move |keys| gets(filled(deepest, Promotion::Off, deepest - 1), keys),
        ));
    }
    let l1_only = move |keys| sets(cache(layers, Promotion::AllAbove, WriteMode::L1Only), keys);
    let through = |keys| sets(cache(3, Promotion::AllAbove, WriteMode::WriteThrough), keys);
    let mixed_row = move |keys| mixed(filled(layers, Promotion::AllAbove, 0), keys);
    rows.extend([
        Scenario::new(
            format!("set, L1 only ({layers} layers)"),
            285.0,
            "4",
            l1_only,
        ),
        Scenario::new(
            format!("set, L1 only ({layers} layers)"),
            650.0,
            "4",
            l1_only,
        )
        .parallel(),
        Scenario::new("set, write-through (3 layers)", 707.0, "7", through),
        Scenario::new("set, write-through (3 layers)", 650.0, "7", through).parallel(),
        Scenario::new("delete (2 layers, present in both)", 566.0, "0", |_| {
            deletes(cache(2, Promotion::AllAbove, WriteMode::WriteThrough), 1)
        }),
        Scenario::new(
            format!("get_many, 10 keys ({layers} layers, per batch)"),
            826.0,
            "7",
            move |keys: Arc<Keys>| {
                let cache = filled(layers, Promotion::AllAbove, 0);
                timed(move |t, i| {
                    let batch: [u64; 10] = std::array::from_fn(|j| keys.get(t, i * 10 + j as u64));
                    black_box(cache.get_many(&batch));
                })
            },
        )
        .batch(),
        Scenario::new(
            format!("set_many, 10 items ({layers} layers, per batch)"),
            2050.0,
            "8",
            move |keys: Arc<Keys>| {
                let cache = cache(layers, Promotion::AllAbove, WriteMode::WriteThrough);
                timed(move |t, i| {
                    // The items' Vec (one allocation) is the caller's, counted with the row.
                    let items: Vec<(u64, u64)> =
                        (0..10).map(|j| (keys.get(t, i * 10 + j), i)).collect();
                    black_box(cache.set_many(items));
                })
            },
        )
        .batch(),
        Scenario::new(
            format!("delete_many, 10 keys ({layers} layers, per batch, present in all)"),
            3018.0,
            "-",
            move |_| {
                deletes(
                    cache(layers, Promotion::AllAbove, WriteMode::WriteThrough),
                    10,
                )
            },
        )
        .batch(),
        Scenario::new(
            format!("mixed 80/10/10 ({layers} layers)"),
            163.0,
            "2",
            mixed_row,
        ),
        Scenario::new(
            format!("mixed 80/10/10 ({layers} layers)"),
            301.0,
            "2",
            mixed_row,
        )
        .parallel(),
        Scenario::new(
            format!("read-only L1 hits ({layers} layers)"),
            144.0,
            "-",
            move |keys| gets(filled(layers, Promotion::AllAbove, 0), keys),
        )
        .parallel(),
        Scenario::new(
            format!("exists ({layers} layers)"),
            137.0,
            "1",
            move |keys: Arc<Keys>| {
                let cache = filled(layers, Promotion::AllAbove, 0);
                timed(move |t, i| {
                    black_box(cache.contains_key(&keys.get(t, i)).ok());
                })
            },
        ),
        Scenario::new("single layer: get", 61.8, "-", |keys| {
            gets(filled(1, Promotion::Off, 0), keys)
        }),
        Scenario::new("single layer: set", 155.0, "-", |keys| {
            sets(cache(1, Promotion::Off, WriteMode::WriteThrough), keys)
        }),
        Scenario::new("single layer: delete (present)", 60.0, "-", |_| {
            deletes(cache(1, Promotion::Off, WriteMode::WriteThrough), 1)
        }),
    ]);
    rows
}

/// The scaling plot's workloads on the embedded default (the seed's "horizontal scaling"
/// table): read-only hits, mixed 80/10/10 and set-only (L1-only writes), at several thread
/// counts.
pub fn curves(config: Config) -> Vec<Scenario> {
    all(config)
        .into_iter()
        .filter(|row| row.parallel)
        .filter(|row| !row.name.starts_with("set, write-through"))
        .collect()
}

/// A row of the design-card table: what a filter, heat-gated promotion or a promotion queue
/// buys, measured against a `baseline` row of the same table where the target is a ratio.
pub struct DesignRow {
    pub scenario: Scenario,
    /// The row this one is compared with (its name), if any.
    pub baseline: Option<&'static str>,
    /// The target, in words.
    pub target: &'static str,
}

/// The round trip of the simulated remote layers.
pub const REMOTE_RTT: Duration = Duration::from_micros(50);

const PROMOTION_KEYS: u64 = 200_000;

/// The "L2 hit with promotion" workload: an L1 of 1 000 entries over 200 000 keys in L2 (of
/// `layers` memory tiers), read uniformly, so every read misses L1 and hits L2.
/// Uniform reads of `PROMOTION_KEYS` keys held by the second of `layers` layers, below a small
/// L1 that every read misses: promoted through `gate`, or not promoted at all (`None`). With
/// one layer, the same keys read from the one tier that holds them all.
fn l2_hits(layers: usize, gate: Option<PromotionGate>, queued: bool) -> Prepared {
    let mut builder = Cache::builder();
    if layers > 1 {
        builder = builder.layer(LayerSpec::memory("l1", 1_000));
    }
    builder = match gate {
        Some(gate) => builder.promotion_gate(gate),
        None => builder.promotion(Promotion::Off),
    };
    for layer in 1..layers.max(2) {
        builder = builder.layer(LayerSpec::memory(format!("l{}", layer + 1), 400_000));
    }
    if queued {
        builder = builder.deferred_promotion(64);
    }
    let cache: Cache<u64, u64> = builder.build().expect("valid");
    fill_layer(&cache, layers.min(2) - 1, PROMOTION_KEYS);
    timed(move |t, i| {
        black_box(cache.get(&uniform(t, i, PROMOTION_KEYS)).ok());
    })
}

/// The one-layer read of `l2_hits(1, ..)` with each key chosen from the value read before it,
/// so that no read's cache misses overlap with the next one's: a read's latency, not its
/// throughput, over a table larger than the CPU's private caches.
fn dependent_hits() -> Prepared {
    thread_local! {
        static LAST: Cell<u64> = const { Cell::new(0) };
    }
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 400_000))
        .build()
        .expect("valid");
    fill_layer(&cache, 0, PROMOTION_KEYS);
    timed(move |t, i| {
        let key = uniform(t, i ^ (LAST.get() & 1), PROMOTION_KEYS);
        LAST.set(cache.get(&key).ok().flatten().unwrap_or(0));
    })
}

/// Misses through L1 (memory) and two remote layers, with or without their filters.
fn remote_misses(filters: bool) -> Prepared {
    let remote = |name: &str| {
        let spec = LayerSpec::custom(name, Remote::new(name, 100_000, REMOTE_RTT));
        if filters {
            // Sized for the layer's capacity (the default is sized for 2^17 keys).
            spec.negative_filter(100_000)
        } else {
            spec.without_negative_filter()
        }
    };
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 10_000))
        .layer(remote("l2"))
        .layer(remote("l3"))
        .build()
        .expect("valid");
    // Keys 0..1000 were written through the cache (their bits are set); the reads ask for
    // keys above them, which no layer holds.
    for key in 0..1_000u64 {
        cache.set(key, key).expect("fill");
    }
    timed(move |_, i| {
        black_box(cache.get(&(1_000_000 + i)).ok());
    })
}

/// The design card's rows (issue: filters, heat, queues), in the order the runner prints them.
pub fn design() -> Vec<DesignRow> {
    vec![
        DesignRow {
            scenario: Scenario::new(
                "L2 hit, every read promotes (2 memory layers)",
                120.0,
                "-",
                |_| l2_hits(2, Some(PromotionGate::Always), false),
            ),
            baseline: None,
            target: "-",
        },
        DesignRow {
            scenario: Scenario::new(
                "L2 hit, heat-gated queued promotion (same reads)",
                120.0,
                "-",
                |_| l2_hits(2, Some(PromotionGate::by_heat()), true),
            ),
            baseline: None,
            target: "<= 120 ns (not met: the next row, which promotes nothing, is the floor)",
        },
        DesignRow {
            scenario: Scenario::new(
                "L2 hit, no promotion (same reads): the floor",
                0.0,
                "-",
                |_| l2_hits(2, None, false),
            ),
            baseline: None,
            target: "-",
        },
        DesignRow {
            scenario: Scenario::new(
                "one layer, get hit over the same 200 000 keys",
                0.0,
                "-",
                |_| l2_hits(1, None, false),
            ),
            baseline: None,
            target: "-",
        },
        DesignRow {
            scenario: Scenario::new(
                "one layer, same keys, each read waiting for the last",
                0.0,
                "-",
                |_| dependent_hits(),
            ),
            baseline: None,
            target: "-",
        },
        DesignRow {
            scenario: Scenario::new(
                "L2 hit, promoted, then read from L1 (the seed's setup)",
                120.0,
                "-",
                |keys| gets(filled(2, Promotion::AllAbove, 1), keys),
            ),
            baseline: None,
            target: "<= 120 ns (the seed measured this: \"then L1 cached\")",
        },
        DesignRow {
            scenario: Scenario::new(
                "L2 hit, heat-gated queued promotion, then L1 (seed's setup)",
                120.0,
                "-",
                |keys| {
                    let cache = Cache::builder()
                        .layer(LayerSpec::memory("l1", crate::fixtures::BIG))
                        .layer(LayerSpec::memory("l2", crate::fixtures::BIG))
                        .promotion_gate(PromotionGate::by_heat())
                        .deferred_promotion(64)
                        .build()
                        .expect("valid");
                    fill_layer(&cache, 1, KEYS);
                    gets(cache, keys)
                },
            ),
            baseline: None,
            target: "<= 120 ns",
        },
        DesignRow {
            scenario: Scenario::new("miss, one memory layer", 0.0, "-", |_| {
                let cache = cache(1, Promotion::AllAbove, WriteMode::WriteThrough);
                timed(move |_, i| {
                    black_box(cache.get(&(1_000_000 + i)).ok());
                })
            }),
            baseline: None,
            target: "-",
        },
        DesignRow {
            scenario: Scenario::new(
                "miss, 3 layers (L2, L3 remote 50 us), no filters",
                0.0,
                "-",
                |_| remote_misses(false),
            ),
            baseline: Some("miss, one memory layer"),
            target: "-",
        },
        DesignRow {
            scenario: Scenario::new(
                "miss, 3 layers (L2, L3 remote 50 us), negative filters",
                0.0,
                "-",
                |_| remote_misses(true),
            ),
            baseline: Some("miss, one memory layer"),
            target: "<= 2x the one-layer miss",
        },
    ]
}
