//! Shared helpers of the loom models. The models themselves are in `tests/`, compiled only with
//! `RUSTFLAGS="--cfg loom"` (strata then swaps every atomic, its map and its queues for loom's
//! instrumented versions).
//!
//! Run (about what CI runs):
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p loom-tests`

#[cfg(loom)]
pub mod model {
    use std::time::Duration;
    use strata::layer::{Entry, Layer, LayerError, Ticket, Timestamp};
    use strata::{Cache, Clock, LayerSpec, ManualClock, SetOptions};

    /// A cache of in-memory tiers with the given capacities (L1 first), on a manual clock.
    pub fn cache(capacities: &[usize], deferred: Option<usize>) -> (Cache<u64, u64>, ManualClock) {
        let (clock, hand) = Clock::manual();
        let mut builder = Cache::builder().clock(clock);
        for (index, capacity) in capacities.iter().enumerate() {
            builder = builder.layer(
                LayerSpec::memory(format!("l{}", index + 1), *capacity)
                    .ttl(Duration::from_secs(60)),
            );
        }
        if let Some(batch) = deferred {
            builder = builder.deferred_promotion(batch);
        }
        (builder.build().expect("valid configuration"), hand)
    }

    /// Two memory tiers, L2 behind a negative filter, on a manual clock.
    pub fn filtered_cache() -> Cache<u64, u64> {
        let (clock, _) = Clock::manual();
        Cache::builder()
            .clock(clock)
            .layer(LayerSpec::memory("l1", 4))
            .layer(LayerSpec::memory("l2", 4).negative_filter(16))
            .build()
            .expect("valid configuration")
    }

    /// A thread that sets `key = value` in every layer but L1 (L1 is invalidated).
    pub fn spawn_write_below_l1(
        cache: &Cache<u64, u64>,
        key: u64,
        value: u64,
    ) -> loom::thread::JoinHandle<()> {
        let cache = cache.clone();
        loom::thread::spawn(move || {
            cache
                .set_with(key, value, &SetOptions::new().skip("l1"))
                .expect("write");
        })
    }

    /// Puts `key = value` in every layer but L1 (L1 is invalidated, so a read must promote).
    pub fn below_l1(cache: &Cache<u64, u64>, key: u64, value: u64) {
        cache
            .set_with(key, value, &SetOptions::new().skip("l1"))
            .expect("setup write");
    }

    /// A reader that reads `key` twice, waiting for `between` to finish in between (a join
    /// blocks, so loom switches threads there without spending a preemption). Returns what the
    /// two reads saw.
    pub fn two_reads_around<T: 'static>(
        cache: &Cache<u64, u64>,
        key: u64,
        between: loom::thread::JoinHandle<T>,
    ) -> loom::thread::JoinHandle<(Option<u64>, Option<u64>)> {
        let cache = cache.clone();
        loom::thread::spawn(move || {
            let first = cache.get(&key).expect("read");
            between.join().expect("the other thread");
            let second = cache.get(&key).expect("read");
            (first, second)
        })
    }

    /// Runs a model with at least `preemptions` preemptions (more if `LOOM_MAX_PREEMPTIONS`
    /// asks for more): for the interleavings that need three threads each stopped once.
    pub fn check_with_preemptions(preemptions: usize, model: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(0).max(preemptions));
        builder.check(model);
    }

    /// A store another cache writes too (a shared Redis, as `strata-redis` sees it): one key,
    /// whose entries are reported with `Version::MAX` (another cache's versions mean nothing
    /// here; a promotion clamps them to its ticket). `overwrite` is the other cache's write.
    #[derive(Clone, Default)]
    pub struct SharedStore {
        value: std::sync::Arc<loom::sync::Mutex<Option<u64>>>,
    }

    impl SharedStore {
        /// Another cache writes `value`.
        pub fn overwrite(&self, value: u64) {
            *self.value.lock().unwrap() = Some(value);
        }
    }

    impl Layer<u64, u64> for SharedStore {
        fn get(&self, _: &u64, _: Timestamp) -> Result<Option<Entry<u64>>, LayerError> {
            Ok(self.value.lock().unwrap().map(|value| Entry {
                value,
                version: u64::MAX,
                expires_at: Timestamp::NEVER,
            }))
        }

        fn set(&self, _: &u64, entry: Entry<u64>, _: &Ticket<'_>) -> Result<(), LayerError> {
            *self.value.lock().unwrap() = Some(entry.value);
            Ok(())
        }

        fn delete(&self, _: &u64, _: &Ticket<'_>) -> Result<(), LayerError> {
            *self.value.lock().unwrap() = None;
            Ok(())
        }
    }

    /// L1 memory over a [`SharedStore`] holding `key = value`.
    pub fn shared_cache(value: u64) -> (Cache<u64, u64>, SharedStore) {
        let (clock, _) = Clock::manual();
        let store = SharedStore::default();
        store.overwrite(value);
        let cache = Cache::builder()
            .clock(clock)
            .layer(LayerSpec::memory("l1", 4))
            .layer(LayerSpec::custom("shared", store.clone()))
            .build()
            .expect("valid configuration");
        (cache, store)
    }

    /// The value of `key` in one layer.
    pub fn in_layer(cache: &Cache<u64, u64>, layer: &str, key: u64) -> Option<u64> {
        cache.get_from_layer(layer, &key).expect("layer read")
    }
}
