//! Memory per entry: 1 000 000 `u64 → u64` entries in strata (one memory layer of capacity
//! 1 000 000), quick_cache and moka of the same capacity, with the raw maps (papaya, which
//! strata's tier is built on, and dashmap) for reference.
//!
//! ```sh
//! cargo bench --bench memory
//! ```
//!
//! Measured with allocator statistics, not RSS: the binary's global allocator keeps the live
//! heap bytes (requested bytes allocated minus freed, over all threads). A cache's figure is
//! the live bytes after building it and inserting the keys `0..1 000 000`, minus the live bytes
//! before it was built, divided by the entries it holds afterwards (a cache may hold fewer than
//! it was given, if its shards fill unevenly). That figure leaves out the allocator's own
//! overhead (chunk headers, rounding up to size classes), which flatters caches that make many
//! small allocations; on glibc the table also gives malloc's own count of bytes in use
//! (`mallinfo2`: chunks in use, headers and rounding included), measured the same way.

use std::hint::black_box;
use strata::{Cache, LayerSpec};
use strata_bench::alloc::{live_bytes as live, Tracking};

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// glibc's count of heap bytes in use (small chunks plus mmapped blocks), headers and rounding
/// included. It covers the main arena, the one this single-threaded bench allocates from.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_in_use() -> Option<i64> {
    #[repr(C)]
    struct Mallinfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    extern "C" {
        fn mallinfo2() -> Mallinfo2;
    }
    // SAFETY: mallinfo2 (glibc ≥ 2.33) takes nothing and returns a plain struct of counters.
    let info = unsafe { mallinfo2() };
    Some((info.uordblks + info.hblkhd) as i64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_in_use() -> Option<i64> {
    None
}

const ENTRIES: u64 = 1_000_000;

type Hasher = ahash::RandomState;

struct Row {
    name: &'static str,
    /// Live bytes of the empty structure, just built.
    empty: i64,
    /// Live bytes after the inserts.
    full: i64,
    /// Entries held after the inserts.
    held: u64,
    /// Live bytes left after dropping it (should be about 0).
    leaked: i64,
    /// malloc's bytes in use after the inserts, minus before the build (glibc only).
    malloc_full: Option<i64>,
}

/// Builds a cache, inserts `0..ENTRIES`, lets it settle, and reads the live bytes.
fn measure<C>(
    name: &'static str,
    build: impl FnOnce() -> C,
    insert: impl Fn(&C, u64),
    settle: impl Fn(&C),
    len: impl Fn(&C) -> u64,
) -> Row {
    let before = live();
    let malloc_before = malloc_in_use();
    let cache = build();
    let empty = live() - before;
    for key in 0..ENTRIES {
        insert(&cache, key);
    }
    settle(&cache);
    let full = live() - before;
    let malloc_full = malloc_in_use()
        .zip(malloc_before)
        .map(|(after, before)| after - before);
    let held = len(&cache);
    black_box(&cache);
    drop(cache);
    Row {
        name,
        empty,
        full,
        held,
        leaked: live() - before,
        malloc_full,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` doesn't: nothing to test here.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("memory: run with `cargo bench --bench memory`");
        return;
    }
    let capacity = ENTRIES as usize;
    let rows = [
        measure(
            "strata (1 memory layer)",
            || -> Cache<u64, u64> {
                Cache::builder()
                    .layer(LayerSpec::memory("l1", capacity))
                    .build()
                    .expect("valid configuration")
            },
            |cache, key| {
                cache.set(key, key).expect("set");
            },
            |_| {},
            |cache| cache.stats().layers[0].len.unwrap_or(0),
        ),
        measure(
            "quick_cache (sync)",
            || {
                quick_cache::sync::Cache::<u64, u64, _, _, _>::with(
                    capacity,
                    capacity as u64,
                    quick_cache::UnitWeighter,
                    Hasher::new(),
                    quick_cache::sync::DefaultLifecycle::default(),
                )
            },
            |cache, key| cache.insert(key, key),
            |_| {},
            |cache| cache.len() as u64,
        ),
        measure(
            "moka (sync)",
            || {
                moka::sync::Cache::builder()
                    .max_capacity(ENTRIES)
                    .build_with_hasher(Hasher::new())
            },
            |cache, key| cache.insert(key, key),
            |cache| cache.run_pending_tasks(),
            |cache| cache.entry_count(),
        ),
        measure(
            "papaya (raw map, presized)",
            || {
                papaya::HashMap::<u64, u64, Hasher>::with_capacity_and_hasher(
                    capacity,
                    Hasher::new(),
                )
            },
            |map, key| {
                map.pin().insert(key, key);
            },
            |_| {},
            |map| map.len() as u64,
        ),
        measure(
            "dashmap (raw map, presized)",
            || {
                dashmap::DashMap::<u64, u64, Hasher>::with_capacity_and_hasher(
                    capacity,
                    Hasher::new(),
                )
            },
            |map, key| {
                map.insert(key, key);
            },
            |_| {},
            |map| map.len() as u64,
        ),
    ];

    println!(
        "Live heap bytes for {ENTRIES} u64 -> u64 entries (16 bytes of key and value each), \
         capacity {ENTRIES}; allocator statistics, not RSS"
    );
    println!(
        "{:<28}  {:>12}  {:>12}  {:>9}  {:>11}  {:>11}  {:>14}",
        "cache", "empty bytes", "full bytes", "held", "bytes/entry", "after drop", "malloc B/entry"
    );
    for row in &rows {
        let per_entry = |bytes: i64| bytes as f64 / row.held.max(1) as f64;
        println!(
            "{:<28}  {:>12}  {:>12}  {:>9}  {:>11.1}  {:>11}  {:>14}",
            row.name,
            row.empty,
            row.full,
            row.held,
            per_entry(row.full),
            row.leaked,
            row.malloc_full
                .map_or("-".to_owned(), |bytes| format!("{:.1}", per_entry(bytes)))
        );
    }
}
