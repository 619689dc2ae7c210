//! Allocation counts on the hot paths, measured with a counting global allocator.
//!
//! Targets: no allocation on a get hit, a miss or `exists`; none on `delete` or on a `set` of a
//! key already present (a `u64` value is stored into the key's node in place, see
//! `src/memory/value.rs`; other values get a new link from the memory of links retired earlier,
//! `src/memory/table/pool.rs`; a delete only unlinks); at most one per insert of a new key into
//! a layer, and the policy's queue block. "None" allows seize's bookkeeping on deletes: a
//! thread's batch of retired links is a buffer allocated once per 512 retirements.

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

/// What seize's batches of retired links cost per retirement: about two allocations (the batch
/// and its buffer) per 512 retired links.
const SEIZE_PER_RETIREMENT: f64 = 0.01;

#[test]
fn delete_allocates_nothing() {
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
    // A delete unlinks the key's node in each layer: two retirements per delete.
    println!("{per_op} allocations per delete");
    assert!(
        per_op <= 2.0 * SEIZE_PER_RETIREMENT,
        "{per_op} allocations per delete"
    );
    // A key no layer holds costs nothing.
    let per_op = allocations_per_op(KEYS, |key| {
        cache.delete(&(key + KEYS)).unwrap();
    });
    assert_eq!(per_op, 0.0, "delete of an absent key");
}

#[test]
fn set_of_a_present_key_allocates_nothing_and_of_a_new_key_at_most_once() {
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
    // In place: no link, no retirement.
    println!("{per_op} allocations per set of a present key");
    assert_eq!(per_op, 0.0, "{per_op} allocations per set");
    // New keys: a link each (from the pool while it has memory: here it has none, the
    // overwrites retired nothing), and the policy's queue item (one queue block per 31 keys).
    let per_op = allocations_per_op(KEYS, |key| {
        cache.set(KEYS + key, key).unwrap();
    });
    println!("{per_op} allocations per set of a new key");
    assert!(per_op <= 1.05, "{per_op} allocations per insert");
}

#[test]
fn an_insert_that_evicts_reuses_the_evicted_link() {
    // A full one-layer cache: every new key evicts one, whose link the next inserts reuse.
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", KEYS as usize))
        .build()
        .unwrap();
    for key in 0..4 * KEYS {
        cache.set(key, key).unwrap();
    }
    let per_op = allocations_per_op(OPS, |i| {
        cache.set(4 * KEYS + i, i).unwrap();
    });
    // The policy's queue blocks (one per 31 items) and seize's batches; no link.
    println!("{per_op} allocations per insert into a full cache");
    assert!(per_op <= 0.1, "{per_op} allocations per evicting insert");
}
