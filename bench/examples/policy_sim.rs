//! A single-threaded model of the memory tier's eviction policy, for choosing among policy
//! variants quickly (PERF.md §10): S3-FIFO as `src/memory/policy.rs` runs it for one shard
//! (small queue, CLOCK main, ghost of half the capacity, the "filling" rule), plus the variants
//! that were measured against it.
//!
//! ```text
//! cargo run --release -p strata-bench --example policy_sim [-- TRACE_DIR]
//! ```
//!
//! It replays `shared/traces` and the synthetic traces of `strata_bench::traces` ("get; on a
//! miss insert") at the hit-ratio harness's sizes and prints, per variant, the loop trace at
//! 101, 404 and 512 entries and the worst change against the first variant (today's S3-FIFO
//! with a fixed 10 % small queue) on the other shared traces and on the synthetic ones. The
//! model tracks the tier's column of `hit_ratio` to within about 0.3 points (the tier shards
//! larger caches and hashes with a random seed; the model does neither). Variants are built
//! in the tier only after they win here; the tier's own numbers come from `hit_ratio`.

use std::collections::{HashMap, VecDeque};

use strata_bench::traces;

/// How the small queue's target moves.
#[derive(Clone, Copy, PartialEq)]
enum Sizing {
    /// Always 10 % of the capacity.
    Fixed,
    /// −`eps` entries per cold eviction from small, +1 per small hit (a yield threshold).
    Yield { eps: f64 },
    /// Per window of `capacity` eviction steps: shrink by 1 % while small's hits per slot are
    /// at most main's divided by `factor`, else grow; `evidence`: a window without hits
    /// changes nothing and probes main if main went unseen (the tier's rule).
    PerSlot { factor: f64, evidence: bool },
}

/// What a key the ghost remembers meets while small is cut back.
#[derive(Clone, Copy, PartialEq)]
enum Duel {
    /// It enters main (S3-FIFO).
    Never,
    /// A TinyLFU duel against main's next victim, whatever small's size.
    Always,
    /// The duel only while small is cut back (the tier's rule).
    WhileCutBack,
    /// While small is cut back it is refused (enters small): no sketch at all.
    RefuseWhileCutBack,
}

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    sizing: Sizing,
    duel: Duel,
    /// Sketch words = capacity / this, at least `min_words` (the tier: 4 and 64).
    entries_per_word: usize,
    min_words: usize,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The tier's count-min sketch (`src/heat.rs`), single-threaded.
struct Sketch {
    words: Vec<u64>,
    block_mask: usize,
    additions: usize,
    window: usize,
}

impl Sketch {
    fn new(words: usize, min_words: usize, capacity: usize) -> Self {
        let words = words.clamp(min_words.max(8), 1 << 24).next_power_of_two();
        Sketch {
            words: vec![0; words],
            block_mask: words / 8 - 1,
            additions: 0,
            window: capacity.max(1) * 10,
        }
    }

    fn counters(&self, hash: u64) -> [(usize, u32); 4] {
        let block = (hash as usize & self.block_mask) * 8;
        let spread = hash.rotate_right(32);
        std::array::from_fn(|i| {
            let bits = (spread >> (i * 8)) as usize;
            (block + i * 2 + (bits & 1), ((bits >> 1) & 15) as u32 * 4)
        })
    }

    fn increment(&mut self, hash: u64) {
        let mut added = false;
        for (word, shift) in self.counters(hash) {
            if (self.words[word] >> shift) & 15 != 15 {
                self.words[word] += 1 << shift;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions == self.window {
                for word in &mut self.words {
                    *word = (*word >> 1) & 0x7777_7777_7777_7777;
                }
                self.additions -= self.window / 2;
            }
        }
    }

    fn estimate(&self, hash: u64) -> u64 {
        let counters = self.counters(hash);
        counters
            .iter()
            .map(|&(word, shift)| (self.words[word] >> shift) & 15)
            .min()
            .unwrap_or(0)
    }
}

/// One shard of the policy. Entries: key → (frequency 0–3, birth).
struct Model {
    v: Variant,
    capacity: usize,
    map: HashMap<u64, (u8, u64)>,
    small: VecDeque<(u64, u64)>,
    main: VecDeque<(u64, u64)>,
    ghost: Vec<u64>,
    ghost_mask: u64,
    births: u64,
    sketch: Sketch,
    target: f64,
    small_hits: u64,
    main_hits: u64,
    steps: usize,
    main_popped: bool,
    probe: bool,
}

impl Model {
    fn new(capacity: usize, v: Variant) -> Self {
        let ghost = (capacity / 2).max(1).next_power_of_two();
        Model {
            v,
            capacity,
            map: HashMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: vec![0; ghost],
            ghost_mask: ghost as u64 - 1,
            births: 0,
            sketch: Sketch::new(capacity / v.entries_per_word, v.min_words, capacity),
            target: f64::MAX,
            small_hits: 0,
            main_hits: 0,
            steps: 0,
            main_popped: false,
            probe: false,
        }
    }

    fn share(&self) -> f64 {
        (self.capacity as f64 / 10.0).floor().max(1.0)
    }

    fn small_target(&self) -> usize {
        self.target.min(self.share()) as usize
    }

    fn cut_back(&self) -> bool {
        (self.small_target() as f64) < self.share()
    }

    /// The sketch is fed only while cut back (the tier's rule), except for `Duel::Always`.
    fn count(&mut self, key: u64) {
        if self.v.duel == Duel::Always || self.cut_back() {
            self.sketch.increment(mix(key));
        }
    }

    fn get(&mut self, key: u64) -> bool {
        match self.map.get_mut(&key) {
            Some(entry) => {
                entry.0 = (entry.0 + 1).min(3);
                true
            }
            None => false,
        }
    }

    fn ghost_slot(&self, hash: u64) -> usize {
        (hash.rotate_right(32) & self.ghost_mask) as usize
    }

    fn insert(&mut self, key: u64) {
        let hash = mix(key);
        self.count(key);
        self.births += 1;
        let birth = self.births;
        self.map.insert(key, (0, birth));
        let slot = self.ghost_slot(hash);
        let remembered = self.ghost[slot] == hash | 1;
        if remembered {
            self.ghost[slot] = 0;
        }
        let duel = match self.v.duel {
            Duel::Never => false,
            Duel::Always => true,
            Duel::WhileCutBack | Duel::RefuseWhileCutBack => self.cut_back(),
        };
        if self.main.len() + self.small_target() < self.capacity {
            self.main.push_back((key, birth));
        } else if remembered && duel && self.v.duel == Duel::RefuseWhileCutBack {
            self.small.push_back((key, birth));
        } else if remembered && duel {
            self.duel(key, birth, hash);
        } else if remembered {
            self.main.push_back((key, birth));
        } else {
            self.small.push_back((key, birth));
        }
        while self.map.len() > self.capacity {
            self.evict_step();
        }
    }

    /// Main's CLOCK hand: the next cold live item, popped; hot ones cool and go round.
    fn main_victim(&mut self) -> Option<(u64, u64)> {
        while let Some((key, birth)) = self.main.pop_front() {
            self.main_popped = true;
            let Some(entry) = self.map.get_mut(&key) else {
                continue;
            };
            if entry.1 != birth {
                continue;
            }
            if entry.0 == 0 {
                return Some((key, birth));
            }
            entry.0 -= 1;
            self.main_hits += 1;
            self.count(key);
            self.main.push_back((key, birth));
        }
        None
    }

    fn duel(&mut self, key: u64, birth: u64, hash: u64) {
        match self.main_victim() {
            Some((victim, victim_birth)) => {
                if self.sketch.estimate(hash) > self.sketch.estimate(mix(victim)) {
                    self.map.remove(&victim);
                    self.main.push_back((key, birth));
                } else {
                    self.main.push_back((victim, victim_birth));
                    self.small.push_back((key, birth));
                }
            }
            None => self.main.push_back((key, birth)),
        }
    }

    fn evict_step(&mut self) {
        self.window();
        let from_small = !std::mem::take(&mut self.probe)
            && (self.small.len() > self.small_target() || self.main.is_empty());
        if !from_small {
            if let Some((key, _)) = self.main_victim() {
                self.map.remove(&key);
            }
            return;
        }
        let Some((key, birth)) = self.small.pop_front() else {
            return;
        };
        match self.map.get(&key).copied() {
            Some((freq, b)) if b == birth && freq > 0 => {
                self.map.get_mut(&key).expect("present").0 = 0;
                self.small_hits += 1;
                if let Sizing::Yield { .. } = self.v.sizing {
                    self.target = (self.target.min(self.share()) + 1.0).min(self.share());
                }
                self.count(key);
                self.main.push_back((key, birth));
            }
            Some((_, b)) if b == birth => {
                if let Sizing::Yield { eps } = self.v.sizing {
                    self.target = (self.target.min(self.share()) - eps).max(1.0);
                }
                self.map.remove(&key);
                let hash = mix(key);
                let slot = self.ghost_slot(hash);
                self.ghost[slot] = hash | 1;
            }
            _ => {}
        }
    }

    fn window(&mut self) {
        let Sizing::PerSlot { factor, evidence } = self.v.sizing else {
            return;
        };
        self.steps += 1;
        if self.steps < self.capacity {
            return;
        }
        self.steps = 0;
        let (small_hits, main_hits) = (self.small_hits, self.main_hits);
        let main_popped = std::mem::take(&mut self.main_popped);
        self.small_hits = 0;
        self.main_hits = 0;
        let target = self.small_target().max(1);
        if evidence && small_hits == 0 && main_hits == 0 {
            self.probe = !main_popped && target > 1;
            return;
        }
        let step = (self.capacity / 100).max(1);
        let main = self.capacity.saturating_sub(target).max(1) as f64;
        let next = if small_hits as f64 * main * factor <= main_hits as f64 * target as f64 {
            target.saturating_sub(step).max(1)
        } else {
            (target + step).min(self.share() as usize)
        };
        self.target = next as f64;
    }
}

fn replay(keys: &[u64], capacity: usize, v: Variant) -> f64 {
    let mut model = Model::new(capacity, v);
    let hits = keys
        .iter()
        .filter(|&&key| {
            let hit = model.get(key);
            if !hit {
                model.insert(key);
            }
            hit
        })
        .count();
    hits as f64 * 100.0 / keys.len() as f64
}

/// The hit-ratio harness's sizes: 0.3 %, 1 %, 3 %, 10 %, 20 %, 40 % of the unique keys, and
/// the loop's 512.
fn sizes(keys: &[u64], extra: &[usize]) -> Vec<usize> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut sizes: Vec<usize> = [0.003, 0.01, 0.03, 0.10, 0.20, 0.40]
        .iter()
        .map(|f| ((sorted.len() as f64 * f).floor() as usize).max(1))
        .chain(extra.iter().copied())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

fn main() {
    let cut = |factor, evidence| Sizing::PerSlot { factor, evidence };
    let variant = |name, sizing, duel| Variant {
        name,
        sizing,
        duel,
        entries_per_word: 4,
        min_words: 64,
    };
    let landed = variant(
        "… and a window without hits changes nothing, probing main if unseen (landed)",
        cut(4.0, true),
        Duel::WhileCutBack,
    );
    let variants = [
        variant("today (small 10 %)", Sizing::Fixed, Duel::Never),
        variant("duel only (small stays 10 %)", Sizing::Fixed, Duel::Always),
        variant(
            "small sized by a yield threshold (−0.05 per cold exit)",
            Sizing::Yield { eps: 0.05 },
            Duel::Never,
        ),
        variant(
            "small cut back at ≤ 1× main's hits per slot, no duel",
            cut(1.0, false),
            Duel::Never,
        ),
        variant("… with the duel always on", cut(1.0, false), Duel::Always),
        variant(
            "… with the duel only while cut back",
            cut(1.0, false),
            Duel::WhileCutBack,
        ),
        variant(
            "… while cut back, ghost hits refused (no sketch)",
            cut(1.0, false),
            Duel::RefuseWhileCutBack,
        ),
        variant(
            "… at ≤ ¼ of main's hits per slot",
            cut(4.0, false),
            Duel::WhileCutBack,
        ),
        landed,
        Variant {
            name: "landed, with a sketch of one word per 16 entries and no 64-word floor",
            entries_per_word: 16,
            min_words: 8,
            ..landed
        },
    ];

    let dir = traces::dir_from_args();
    let files = traces::files(&dir, None).unwrap_or_else(|e| panic!("{e}"));
    let shared: Vec<(String, Vec<u64>)> = files
        .iter()
        .map(|path| {
            let keys = traces::decode(path).unwrap_or_else(|e| panic!("{e}")).keys;
            (traces::name(path), keys)
        })
        .collect();
    let synthetic = traces::synthetic();

    // Every (trace, size) of a set, replayed under every variant.
    let run = |set: &[(String, Vec<u64>)]| -> Vec<(String, usize, Vec<f64>)> {
        set.iter()
            .flat_map(|(name, keys)| {
                let extra: &[usize] = if name == "loop" { &[512] } else { &[] };
                sizes(keys, extra).into_iter().map(move |size| {
                    let ratios = variants.iter().map(|&v| replay(keys, size, v)).collect();
                    (name.clone(), size, ratios)
                })
            })
            .collect()
    };
    let shared_rows = run(&shared);
    let synthetic_rows = run(&synthetic);

    // The worst change against the first variant, over rows that `keep`.
    let worst = |rows: &[(String, usize, Vec<f64>)], i: usize, keep: &dyn Fn(&str) -> bool| {
        rows.iter()
            .filter(|(name, _, _)| keep(name))
            .map(|(name, size, r)| (r[i] - r[0], format!("{name} {size}")))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("rows")
    };
    let show = |(change, at): (f64, String)| {
        if change > -0.05 {
            format!("{change:+.2}")
        } else {
            format!("{change:+.2} ({at})")
        }
    };
    let loop_at = |i: usize, size: usize| {
        shared_rows
            .iter()
            .find(|(name, s, _)| name == "loop" && *s == size)
            .map_or(f64::NAN, |r| r.2[i])
    };
    println!(
        "| variant (simulator) | loop 101 / 404 / 512 | worst change on oltp, orm-busy, web07 | worst change, synthetic |"
    );
    println!("|---|---|---|---|");
    for (i, v) in variants.iter().enumerate() {
        println!(
            "| {} | {:.2} / {:.2} / {:.2} | {} | {} |",
            v.name,
            loop_at(i, 101),
            loop_at(i, 404),
            loop_at(i, 512),
            show(worst(&shared_rows, i, &|name| name != "loop")),
            show(worst(&synthetic_rows, i, &|_| true)),
        );
    }
}
