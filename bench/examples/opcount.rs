//! Runs `N` operations of one kind on a prepared cache, for counting instructions per operation
//! with callgrind (stable from run to run, unlike time on a shared VM):
//!
//! ```sh
//! cargo build --release -p strata-bench --example opcount
//! for n in 0 100000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/opcount set $n 2>&1 | grep refs
//! done   # (refs at 100000 − refs at 0) / 100000 = instructions per operation
//! ```
//!
//! Kinds: `get-hit` (L1 hit), `get-promote` (L1 miss, L2 hit, promotion into a full L1), `miss`
//! (through both layers), `set` (write-through over two layers, keys present), `delete` (keys
//! present in both layers; at most 10 000, so run it with N = 10000), `delete-1l` (the same in one
//! memory layer: the seed's "single layer: delete" row), `get-many` (batches of 10
//! L1 hits), `set-many` (batches of 10 present keys), `exists` (`contains_key` of present keys), `filtered-miss` (a miss through L1 and
//! two lower layers whose negative filters rule the key out), `deepest-2`, `deepest-3`,
//! `deepest-4` (a hit in the last of 2, 3 or 4 memory layers, the others empty, promotion off:
//! the seed's "hit in deepest of N layers" rows), `set-1l` and `set-evict` (one memory layer of
//! 100 000 entries, as the scaling bench's strata-1L: overwrites of 10 000 present keys, or
//! writes over 200 000 keys, half of them inserts that evict), `set-1l-ttl` (as `set-1l`, the
//! layer with a one-minute TTL: each write reads the precise clock and moves the key's expiry
//! later, in place), `miss-1l` (a miss in a cache of one memory layer), `mixed-1l` (the
//! scaling bench's mixed 80/10/10 on strata-1L in its evicting setup: one memory layer of
//! 100 000 entries, keys uniform over 200 000; per operation, one set, one delete or eight
//! gets in ten), `qc-set-1l`, `qc-set-evict` and `qc-mixed`
//! (quick_cache in the same setups), `papaya-get`, `qc-get` and `moka-get` (the read-hit peers
//! on the `get-hit` keys).
//! Every other cache has two memory layers (`filtered-miss`: three); keys and values are `u64`.

use std::hint::black_box;
use strata::{Cache, LayerSpec, SetOptions};

const KEYS: u64 = 10_000;
/// The key space of the evicting kinds: twice a 100 000-entry cache.
const WIDE: u64 = 200_000;

fn spread(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn cache(l1: usize) -> Cache<u64, u64> {
    Cache::builder()
        .layer(LayerSpec::memory("l1", l1))
        .layer(LayerSpec::memory("l2", 400_000))
        .build()
        .expect("valid")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().expect("kind");
    let n: u64 = args.next().expect("N").parse().expect("N");
    let key = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % KEYS;
    match kind.as_str() {
        "get-hit" | "miss" | "get-many" | "exists" => {
            let cache = cache(20_000);
            if kind != "miss" {
                (0..KEYS).for_each(|k| drop(cache.set(k, k)));
            }
            for i in 0..n {
                if kind == "exists" {
                    black_box(cache.contains_key(&key(i)).ok());
                } else if kind == "get-many" {
                    let batch: [u64; 10] = std::array::from_fn(|j| key(i * 10 + j as u64));
                    black_box(cache.get_many(&batch));
                } else {
                    black_box(cache.get(&key(i)).ok());
                }
            }
        }
        "miss-1l" => {
            let cache: Cache<u64, u64> = Cache::builder()
                .layer(LayerSpec::memory("l1", 20_000))
                .build()
                .expect("valid");
            for i in 0..n {
                black_box(cache.get(&key(i)).ok());
            }
        }
        "filtered-miss" => {
            // Through L1 and two filtered lower layers, every filter saying "absent".
            let cache: Cache<u64, u64> = Cache::builder()
                .layer(LayerSpec::memory("l1", 20_000))
                .layer(LayerSpec::memory("l2", 20_000).negative_filter(1 << 20))
                .layer(LayerSpec::memory("l3", 20_000).negative_filter(1 << 20))
                .build()
                .expect("valid");
            for i in 0..n {
                black_box(cache.get(&key(i)).ok());
            }
        }
        "get-promote" => {
            let cache = cache(1_000);
            let lower = SetOptions::new().skip("l1");
            (0..WIDE).for_each(|k| drop(cache.set_with(k, k, &lower)));
            for i in 0..n {
                black_box(
                    cache
                        .get(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % WIDE))
                        .ok(),
                );
            }
        }
        "set" => {
            let cache = cache(20_000);
            (0..KEYS).for_each(|k| drop(cache.set(k, k)));
            for i in 0..n {
                black_box(cache.set(key(i), i).ok());
            }
        }
        "delete" => {
            // Present keys only: at most KEYS deletes.
            let cache = cache(20_000);
            (0..KEYS).for_each(|k| drop(cache.set(k, k)));
            for k in 0..n.min(KEYS) {
                black_box(cache.delete(&k).ok());
            }
        }
        "delete-1l" => {
            // The seed's "single layer: delete (present)": one memory layer, present keys only
            // (at most KEYS deletes).
            let cache: Cache<u64, u64> = Cache::builder()
                .layer(LayerSpec::memory("l1", 20_000))
                .build()
                .expect("valid");
            (0..KEYS).for_each(|k| drop(cache.set(k, k)));
            for k in 0..n.min(KEYS) {
                black_box(cache.delete(&k).ok());
            }
        }
        deepest if deepest.starts_with("deepest-") => {
            let layers: usize = deepest["deepest-".len()..].parse().expect("deepest-N");
            let mut builder = Cache::builder().promotion(strata::Promotion::Off);
            let mut above = SetOptions::new();
            for layer in 1..=layers {
                builder = builder.layer(LayerSpec::memory(format!("l{layer}"), 20_000));
                if layer < layers {
                    above = above.skip(format!("l{layer}"));
                }
            }
            let cache: Cache<u64, u64> = builder.build().expect("valid");
            (0..KEYS).for_each(|k| drop(cache.set_with(k, k, &above)));
            for i in 0..n {
                black_box(cache.get(&key(i)).ok());
            }
        }
        "set-many" => {
            // The seed row: batches of 10 present keys, write-through over both layers.
            let cache = cache(20_000);
            (0..KEYS).for_each(|k| drop(cache.set(k, k)));
            for i in 0..n {
                let items: Vec<(u64, u64)> = (0..10).map(|j| (key(i * 10 + j), i)).collect();
                black_box(cache.set_many(items));
            }
        }
        "set-1l" | "set-1l-ttl" | "set-evict" => {
            // One memory layer (the scaling bench's strata-1L): overwrites of 10 000 present
            // keys (with a TTL: the layer's entries expire after a minute), or inserts over
            // twice the capacity (each evicts).
            let mut layer = LayerSpec::memory("l1", WIDE as usize / 2);
            if kind == "set-1l-ttl" {
                layer = layer.ttl(std::time::Duration::from_secs(60));
            }
            let cache: Cache<u64, u64> = Cache::builder().layer(layer).build().expect("valid");
            let space = if kind == "set-evict" { WIDE } else { KEYS };
            (0..space).for_each(|k| drop(cache.set(k, k)));
            for i in 0..n {
                black_box(cache.set(spread(i) % space, i).ok());
            }
        }
        "mixed-1l" => {
            // The scaling bench's mixed 80/10/10 on strata-1L, in its evicting setup's shape:
            // capacity 100 000 over 200 000 keys (uniform here), sets, deletes and gets.
            let cache: Cache<u64, u64> = Cache::builder()
                .layer(LayerSpec::memory("l1", WIDE as usize / 2))
                .build()
                .expect("valid");
            (0..WIDE).for_each(|k| drop(cache.set(k, k)));
            for i in 0..n {
                let k = spread(i) % WIDE;
                match i % 10 {
                    0 => drop(black_box(cache.set(k, i))),
                    1 => drop(black_box(cache.delete(&k))),
                    _ => drop(black_box(cache.get(&k))),
                }
            }
        }
        "papaya-get" | "qc-get" => {
            // The read-hit peers on the same 10 000 present keys.
            // The scaling bench's hasher (ahash), as strata's.
            let map: papaya::HashMap<u64, u64, ahash::RandomState> =
                papaya::HashMap::with_capacity_and_hasher(20_000, ahash::RandomState::new());
            let quick = quick_cache::sync::Cache::<u64, u64, _, ahash::RandomState>::with(
                20_000,
                20_000,
                quick_cache::UnitWeighter,
                ahash::RandomState::new(),
                quick_cache::sync::DefaultLifecycle::default(),
            );
            (0..KEYS).for_each(|k| {
                map.pin().insert(k, k);
                quick.insert(k, k);
            });
            for i in 0..n {
                if kind == "papaya-get" {
                    black_box(map.pin().get(&key(i)).copied());
                } else {
                    black_box(quick.get(&key(i)));
                }
            }
        }
        "moka-get" => {
            // moka on the same keys, hashed with ahash, maintenance run before the reads.
            let moka: moka::sync::Cache<u64, u64, ahash::RandomState> =
                moka::sync::Cache::builder()
                    .max_capacity(20_000)
                    .initial_capacity(20_000)
                    .build_with_hasher(ahash::RandomState::new());
            (0..KEYS).for_each(|k| moka.insert(k, k));
            moka.run_pending_tasks();
            for i in 0..n {
                black_box(moka.get(&key(i)));
            }
        }
        "qc-mixed" => {
            // quick_cache in `mixed-1l`'s setup and stream.
            let cache = quick_cache::sync::Cache::<u64, u64>::new(WIDE as usize / 2);
            (0..WIDE).for_each(|k| cache.insert(k, k));
            for i in 0..n {
                let k = spread(i) % WIDE;
                match i % 10 {
                    0 => cache.insert(k, i),
                    1 => drop(black_box(cache.remove(&k))),
                    _ => drop(black_box(cache.get(&k))),
                }
            }
        }
        "qc-set-1l" | "qc-set-evict" => {
            // quick_cache in the same two setups, for scale.
            let cache = quick_cache::sync::Cache::<u64, u64>::new(WIDE as usize / 2);
            let space = if kind == "qc-set-1l" { KEYS } else { WIDE };
            (0..space).for_each(|k| cache.insert(k, k));
            for i in 0..n {
                cache.insert(spread(i) % space, i);
            }
        }
        other => panic!("unknown kind {other:?}"),
    }
}
