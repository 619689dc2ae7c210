//! The caches the seed scenarios run on and how they are filled. Shared by the bench runner
//! (`scenarios.rs`) and `benches/seed.rs`, so that the criterion rows measure the same setups as
//! the runner's table.

use strata::{Cache, LayerSpec, Promotion, SetOptions, WriteMode};

/// The key space of the seed scenarios: keys `0..KEYS`.
pub const KEYS: u64 = 10_000;
/// Room for every key with headroom, without a table so large that lookups miss the CPU caches.
pub const BIG: usize = 2 * KEYS as usize;

/// A cache of `layers` in-memory tiers with room for every key.
pub fn cache(layers: usize, promotion: Promotion, mode: WriteMode) -> Cache<u64, u64> {
    let mut builder = Cache::builder().promotion(promotion).write_mode(mode);
    for layer in 0..layers {
        builder = builder.layer(LayerSpec::memory(format!("l{}", layer + 1), BIG));
    }
    builder.build().expect("valid configuration")
}

/// Puts keys `0..keys` into layer `layer` only (an L1-only write with the others skipped).
pub fn fill_layer(cache: &Cache<u64, u64>, layer: usize, keys: u64) {
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
