//! Allocation counts on the hot paths, measured with a counting global allocator.
//!
//! Targets: no allocation on a get hit, a miss or `exists`; on `delete`, one per layer holding
//! the key (the dead node that keeps the key's slot, see `src/memory/node.rs`) and none for an
//! absent key; at most one per `set` of an existing key into one layer (papaya allocates the new
//! node; the old one is retired).

use strata::{Cache, LayerSpec, Promotion};
use strata_bench::alloc::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_per_op(ops: u64, mut op: impl FnMut(u64)) -> f64 {
    let before = allocations()[0];
    for i in 0..ops {
        op(i);
    }
    let after = allocations()[0];
    (after - before) as f64 / ops as f64
}

fn two_layers() -> Cache<u64, u64> {
    Cache::builder()
        .layer(LayerSpec::memory("l1", 20_000))
        .layer(LayerSpec::memory("l2", 20_000))
        .promotion(Promotion::AllAbove)
        .build()
        .unwrap()
}

const KEYS: u64 = 10_000;
const OPS: u64 = 100_000;

#[test]
fn a_get_hit_allocates_nothing() {
    let cache = two_layers();
    for key in 0..KEYS {
        cache.set(key, key).unwrap();
    }
    let _ = cache.get(&0);
    let per_op = allocations_per_op(OPS, |i| {
        assert_eq!(cache.get(&(i % KEYS)).unwrap(), Some(i % KEYS));
    });
    assert_eq!(per_op, 0.0);
    let per_op = allocations_per_op(OPS, |i| {
        assert!(cache.contains_key(&(i % KEYS)).unwrap());
    });
    assert_eq!(per_op, 0.0);
}

#[test]
fn a_miss_allocates_nothing() {
    let cache = two_layers();
    let per_op = allocations_per_op(OPS, |i| {
        assert_eq!(cache.get(&i).unwrap(), None);
    });
    assert_eq!(per_op, 0.0);
}

#[test]
fn delete_allocates_one_dead_node_per_layer_holding_the_key() {
    let cache = two_layers();
    let mut total = 0.0;
    for _round in 0..10 {
        for key in 0..KEYS {
            cache.set(key, key).unwrap();
        }
        // Every delete finds the key in both layers.
        total += allocations_per_op(KEYS, |key| {
            cache.delete(&key).unwrap();
        });
    }
    let per_op = total / 10.0;
    // One dead node per layer (it keeps the key's slot, see `src/memory/node.rs`), plus
    // papaya's reclamation (seize) collecting retired nodes in thread-local batches whose
    // buffer grows by doubling.
    println!("{per_op} allocations per delete");
    assert!(
        (2.0..=2.2).contains(&per_op),
        "{per_op} allocations per delete"
    );
    // A key no layer holds costs nothing.
    let per_op = allocations_per_op(KEYS, |key| {
        cache.delete(&(key + KEYS)).unwrap();
    });
    assert_eq!(per_op, 0.0, "delete of an absent key");
}

#[test]
fn set_of_an_existing_key_allocates_at_most_once_per_layer() {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 20_000))
        .build()
        .unwrap();
    for key in 0..KEYS {
        cache.set(key, key).unwrap();
    }
    let per_op = allocations_per_op(OPS, |i| {
        cache.set(i % KEYS, i).unwrap();
    });
    // One node per set, plus seize's amortized batch of retired nodes (one per batch).
    assert!(per_op <= 1.1, "{per_op} allocations per set");
}
