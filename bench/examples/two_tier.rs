//! Two-tier replay: the shared traces through an L1 of 1 % and an L2 of 10 % of each trace's
//! unique keys, both in memory, priced as a deployment would pay for them.
//!
//! ```text
//! cargo run --release -p strata-bench --example two_tier [-- TRACE_DIR]
//! ```
//!
//! Each request is a `lookup`: served by L1 (free), by L2 (priced `L2_MS`, the seed report's
//! Redis figure) or by neither (a miss, priced `MISS_MS`, its database figure; the value is then
//! written through both tiers, as the application would). Reported per trace and design: L1 hit
//! ratio, overall hit ratio, promotions into L1 per request, and the mean cost per request.
//!
//! The designs:
//! - **seed**: the seed's design, replayed in the same harness: two exact LRU tiers, every L2 hit
//!   promoted into L1, misses written through both;
//! - **strata, always**: strata's tiers (S3-FIFO), every L2 hit promoted;
//! - **strata, by heat**: strata's tiers, an L2 hit promoted into L1 only once the key was read
//!   below L1 twice in the heat sketch's window (`PromotionGate::by_heat`).
//!
//! With `TWO_TIER_MORE=1`, three designs that measured worse are replayed too (PERF.md §9):
//! - **strata, misses fill L2 only**: a miss's value is written to L2 alone (`skip("l1")`), so
//!   L1 holds only keys promoted on a later L2 hit ("rare keys skip L1"), always or by heat;
//! - **strata, L1 hits read L2 too**: every L1 hit also reads L2 (`get_from_layer`), an upper
//!   bound on telling L2's policy about L1's hits.
//!
//! Single-threaded, so the replay is deterministic up to the hasher's random seed.
//! `TWO_TIER_TRACES=oltp,loop` restricts the run to the named traces.

use strata::{Cache, LayerSpec, PromotionGate, SetOptions};
use strata_bench::traces::{self, Lru};

/// The price of an L2 hit and of a miss, in milliseconds (the seed report's Redis and database
/// figures).
const L2_MS: f64 = 1.0;
const MISS_MS: f64 = 5.0;

/// What one design did on one trace.
#[derive(Clone, Copy, Default)]
struct Tally {
    requests: u64,
    l1_hits: u64,
    l2_hits: u64,
    promotions: u64,
}

impl Tally {
    fn l1_ratio(&self) -> f64 {
        100.0 * self.l1_hits as f64 / self.requests as f64
    }
    fn hit_ratio(&self) -> f64 {
        100.0 * (self.l1_hits + self.l2_hits) as f64 / self.requests as f64
    }
    fn promotions_per_request(&self) -> f64 {
        self.promotions as f64 / self.requests as f64
    }
    /// Mean cost per request, in milliseconds.
    fn cost(&self) -> f64 {
        let misses = self.requests - self.l1_hits - self.l2_hits;
        (self.l2_hits as f64 * L2_MS + misses as f64 * MISS_MS) / self.requests as f64
    }
}

fn main() {
    let dir = traces::dir_from_args();
    let only = traces::selection("TWO_TIER_TRACES");
    let files = traces::files(&dir, only.as_deref()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!files.is_empty(), "no *.u64.gz traces in {}", dir.display());

    println!(
        "Two-tier replay: L1 = 1 %, L2 = 10 % of the unique keys; L2 hit {L2_MS} ms, miss {MISS_MS} ms\n"
    );
    println!(
        "| trace | L1 / L2 | design | L1 hit % | hit % | promotions / req | cost ms / req | cost ÷ seed |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for path in &files {
        let name = traces::name(path);
        let trace = traces::decode(path).unwrap_or_else(|e| panic!("{e}"));
        let l1 = (trace.unique / 100).max(1);
        let l2 = (trace.unique / 10).max(2);
        let seed = replay_seed(&trace.keys, l1, l2);
        let always = replay_strata(&trace.keys, l1, l2, PromotionGate::Always);
        let by_heat = replay_strata(&trace.keys, l1, l2, PromotionGate::by_heat());
        let mut designs = vec![
            ("seed (LRU, always)", seed),
            ("strata, always", always),
            ("strata, by heat", by_heat),
        ];
        if std::env::var_os("TWO_TIER_MORE").is_some() {
            for (design, gate, variant) in [
                (
                    "strata, misses fill L2 only, always",
                    PromotionGate::Always,
                    Variant::FillL2Only,
                ),
                (
                    "strata, misses fill L2 only, by heat",
                    PromotionGate::by_heat(),
                    Variant::FillL2Only,
                ),
                (
                    "strata, L1 hits read L2 too",
                    PromotionGate::Always,
                    Variant::L1HitsReadL2,
                ),
            ] {
                designs.push((design, replay(&trace.keys, l1, l2, gate, variant)));
            }
        }
        for (design, tally) in designs {
            println!(
                "| {name} | {l1} / {l2} | {design} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} |",
                tally.l1_ratio(),
                tally.hit_ratio(),
                tally.promotions_per_request(),
                tally.cost(),
                tally.cost() / seed.cost(),
            );
        }
        ratios.push((by_heat.cost() / seed.cost(), always.cost() / seed.cost()));
    }
    let geomean = |f: fn(&(f64, f64)) -> f64| {
        (ratios.iter().map(|r| f(r).ln()).sum::<f64>() / ratios.len() as f64).exp()
    };
    println!(
        "\ngeometric mean of cost ÷ seed over {} traces: strata by heat {:.3}, strata always {:.3}",
        ratios.len(),
        geomean(|r| r.0),
        geomean(|r| r.1),
    );
}

/// The seed's design: two exact LRUs, every L2 hit promoted into L1, misses written through.
fn replay_seed(keys: &[u64], l1: usize, l2: usize) -> Tally {
    let (mut top, mut bottom) = (Lru::new(l1), Lru::new(l2));
    let mut tally = Tally::default();
    for &key in keys {
        tally.requests += 1;
        if top.get(key) {
            tally.l1_hits += 1;
        } else if bottom.get(key) {
            tally.l2_hits += 1;
            top.insert(key);
            tally.promotions += 1;
        } else {
            bottom.insert(key);
            top.insert(key);
        }
    }
    tally
}

/// How a strata replay departs from "lookup; on a miss, write through".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    WriteThrough,
    FillL2Only,
    L1HitsReadL2,
}

/// strata's two memory tiers with the given promotion gate.
fn replay_strata(keys: &[u64], l1: usize, l2: usize, gate: PromotionGate) -> Tally {
    replay(keys, l1, l2, gate, Variant::WriteThrough)
}

fn replay(keys: &[u64], l1: usize, l2: usize, gate: PromotionGate, variant: Variant) -> Tally {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", l1))
        .layer(LayerSpec::memory("l2", l2))
        .promotion_gate(gate)
        .build()
        .expect("valid configuration");
    let fill = match variant {
        Variant::FillL2Only => SetOptions::new().skip("l1"),
        _ => SetOptions::new(),
    };
    let mut tally = Tally::default();
    for &key in keys {
        tally.requests += 1;
        match cache.lookup(&key).expect("lookup").served_by {
            Some(0) => {
                tally.l1_hits += 1;
                if variant == Variant::L1HitsReadL2 {
                    cache.get_from_layer("l2", &key).expect("read");
                }
            }
            Some(_) => tally.l2_hits += 1,
            None => {
                cache.set_with(key, key, &fill).expect("set");
            }
        }
    }
    tally.promotions = cache.stats().layers[0].promotions_in;
    tally
}
