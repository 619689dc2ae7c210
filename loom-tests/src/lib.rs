//! Shared helpers of the loom models. The models themselves are in `tests/`, compiled only with
//! `RUSTFLAGS="--cfg loom"` (strata then swaps every atomic, its map and its queues for loom's
//! instrumented versions).
//!
//! Run (about what CI runs):
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p loom-tests`
//!
//! Under loom the tier's map is a stand-in (one lock around a `HashMap`: few states, so loom
//! explores the protocol deeply). CI runs the models a second time over the chained table that
//! ships, its bucket locks, lock-free reads and reclamation modelled too:
//! `RUSTFLAGS="--cfg loom --cfg strata_loom_chained" LOOM_MAX_PREEMPTIONS=2
//! CARGO_TARGET_DIR=target/loomc cargo test --release -p loom-tests`. Four models are too large
//! for that run and are ignored there, with the reason (they run over the stand-in).

#[cfg(loom)]
pub mod model {
    use loom::sync::Arc;
    use std::time::Duration;
    use strata::layer::{Entry, Layer, LayerError, Ticket, Timestamp};
    use strata::{Cache, ChainedTable, Clock, LayerSpec, ManualClock, SetOptions};

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

    /// A promotion races a `delete` of key 1, held below L1: once the delete has returned, L1
    /// must not hold the old value. The scenario of the contract's promotion models and of the
    /// twins that break ticket validation or the in-flight mark.
    pub fn promotion_racing_delete_scenario() {
        let (cache, _) = cache(&[4, 4], None);
        below_l1(&cache, 1, 1);
        let reader = {
            let cache = cache.clone();
            loom::thread::spawn(move || cache.get(&1).unwrap())
        };
        cache.delete(&1).unwrap();
        reader.join().unwrap();
        assert_eq!(
            in_layer(&cache, "l1", 1),
            None,
            "stale value after delete returned"
        );
    }

    /// Two writes of key 1 race across two layers: once both returned, every layer agrees with
    /// the same (last) writer, and a read returns it. The scenario of the contract model
    /// `two_sets_across_layers_agree` and of the twin that makes L1 sole above L2.
    pub fn two_sets_across_layers_scenario() {
        let (cache, _) = cache(&[4, 4], None);
        let other = {
            let cache = cache.clone();
            loom::thread::spawn(move || {
                cache.set(1, 1).unwrap();
            })
        };
        cache.set(1, 2).unwrap();
        other.join().unwrap();
        let l1 = in_layer(&cache, "l1", 1);
        let l2 = in_layer(&cache, "l2", 1);
        assert!(l1.is_some(), "both writes landed in L1");
        assert_eq!(l1, l2, "layers disagree on the last writer");
        assert_eq!(cache.get(&1).unwrap(), l1);
    }

    /// Three writes of key 1: a delete empties both layers; a `set` begins; a second `delete`
    /// of the absent key only raises L1's floor and returns. Once both have returned the layers
    /// agree on the last writer, and a read returns what they hold.
    pub fn set_racing_a_second_delete_scenario() {
        let (cache, _) = cache(&[4, 4], None);
        cache.set(1, 1).unwrap();
        cache.delete(&1).unwrap(); // both layers empty
        let writer = {
            let cache = cache.clone();
            loom::thread::spawn(move || cache.set(1, 2).unwrap())
        };
        cache.delete(&1).unwrap();
        writer.join().unwrap();
        let l1 = in_layer(&cache, "l1", 1);
        let l2 = in_layer(&cache, "l2", 1);
        assert_eq!(l1, l2, "layers disagree on the last writer");
        assert_eq!(cache.get(&1).unwrap(), l1);
    }

    /// A promoter of key 1 (held below L1) validates its ticket just before `set(1, 2)` begins
    /// and publishes after a reader returned the set's value from L2: the reader's next read
    /// must not return the promoted older value (new, then old). The set cancels the pending
    /// promotion before touching any layer. Needs three preemptions.
    pub fn promotion_publishing_late_scenario() {
        let (cache, _) = cache(&[4, 4], None);
        below_l1(&cache, 1, 1);
        let promoter = {
            let cache = cache.clone();
            loom::thread::spawn(move || cache.get(&1).unwrap())
        };
        let reader = two_reads_around(&cache, 1, promoter);
        cache.set(1, 2).unwrap();
        let (first, second) = reader.join().unwrap();
        assert!(
            !(first == Some(2) && second == Some(1)),
            "new then old: {first:?} then {second:?}"
        );
        assert_eq!(cache.get(&1).unwrap(), Some(2));
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

    /// In-place overwrites (a `u64` value is stored into the key's node under the bucket lock;
    /// see strata's `memory/value.rs`) against a removal. L1 holds one entry: a third thread's
    /// insert evicts K's node, raising the floor to the version it holds, while two writes of K
    /// race, one of them overwriting in place. Once all are done L2 holds the newer write's
    /// value, and L1 the same or nothing: an overwrite that landed on the unlinked node would
    /// leave the floor at the node's old version and let the slower, older write into the
    /// emptied place.
    pub fn in_place_write_racing_an_eviction() {
        const K: u64 = 1;
        let (cache, _) = cache(&[1, 4], None);
        cache.set(K, 0).expect("setup write");
        let spawn_set = |key: u64, value: u64| {
            let cache = cache.clone();
            loom::thread::spawn(move || {
                cache.set(key, value).expect("write");
            })
        };
        let older = spawn_set(K, 1);
        let evicting = spawn_set(K + 1, 9);
        cache.set(K, 2).expect("write");
        older.join().expect("writer");
        evicting.join().expect("writer");
        let l1 = in_layer(&cache, "l1", K);
        let l2 = in_layer(&cache, "l2", K);
        assert!(
            matches!(l2, Some(1) | Some(2)),
            "L2 lost both writes: {l2:?}"
        );
        assert!(
            l1.is_none() || l1 == l2,
            "L1 went back to an older write: L1 {l1:?}, L2 {l2:?}"
        );
    }

    /// A reader races in-place overwrites of a `u64` value: it sees one written value (the word
    /// is one atomic), and once the writes returned, the last one.
    pub fn in_place_writes_racing_a_reader() {
        const K: u64 = 1;
        let (cache, _) = cache(&[4], None);
        cache.set(K, 0).expect("setup write");
        let writer = {
            let cache = cache.clone();
            loom::thread::spawn(move || {
                cache.set(K, 1).expect("write");
                cache.set(K, 2).expect("write");
            })
        };
        let (first, second) = two_reads_around(&cache, K, writer).join().expect("reader");
        assert!(matches!(first, Some(0..=2)), "{first:?}");
        assert_eq!(second, Some(2), "a read after the writes returned");
    }

    /// An in-place overwrite that moves the expiry later, racing a reader that moves the clock.
    /// K = 1 expires at 10 ms; a writer sets K = 2 with a 20 ms TTL (in place while K's node is
    /// live); the reader moves the clock to 15 ms and reads K. It must not get 1, which has
    /// expired (the new expiry must not be seen beside the old value); and once both are done K
    /// must hold 2 (a reader that judged the old expiry must not remove the node the write
    /// extended meanwhile). The reader moves the clock itself so that the interleaving where the
    /// writer read the clock before the move and stores after the reader's lookup costs three
    /// preemptions, not four.
    pub fn in_place_expiry_extension_racing_a_reader() {
        const K: u64 = 1;
        let ttl = |ms| SetOptions::new().ttl(Duration::from_millis(ms));
        let (clock, hand) = Clock::manual();
        let cache: Cache<u64, u64> = Cache::builder()
            .clock(clock)
            .layer(LayerSpec::memory("l1", 4))
            .build()
            .expect("valid configuration");
        cache.set_with(K, 1, &ttl(10)).expect("setup write");
        let writer = {
            let cache = cache.clone();
            loom::thread::spawn(move || {
                cache.set_with(K, 2, &ttl(20)).expect("write");
            })
        };
        let reader = {
            let cache = cache.clone();
            loom::thread::spawn(move || {
                hand.advance(Duration::from_millis(15));
                cache.get(&K).expect("read")
            })
        };
        writer.join().expect("writer");
        let seen = reader.join().expect("reader");
        assert_ne!(seen, Some(1), "a value was read after its expiry");
        assert_eq!(
            cache.get(&K).expect("read"),
            Some(2),
            "the write's value was lost"
        );
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

    /// A table value that knows whether it was dropped: its drop overwrites it with
    /// [`DROPPED`], so a reader of a reclaimed link reads a value no writer stored. A std
    /// atomic (not modelled state) so that the compiler does not assume a shared reference's
    /// target cannot change, which is exactly what a reclaim without grace breaks.
    pub struct Checked(std::sync::atomic::AtomicU64);

    /// What a dropped [`Checked`] holds.
    pub const DROPPED: u64 = 0xdead;

    impl Checked {
        pub fn new(value: u64) -> Self {
            Checked(std::sync::atomic::AtomicU64::new(value))
        }

        pub fn get(&self) -> u64 {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    impl Drop for Checked {
        fn drop(&mut self) {
            self.0.store(DROPPED, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A reader of key 1 that, holding what it found, yields (a slow reader: a large value's
    /// clone), then returns the value it read. It looks under its guard, or, `locked`, under the
    /// bucket's lock without a guard (`Table::write_unpinned`, deciding to store nothing).
    fn spawn_slow_reader(
        table: &Arc<ChainedTable<Checked>>,
        locked: bool,
    ) -> loom::thread::JoinHandle<Option<u64>> {
        let table = table.clone();
        loom::thread::spawn(move || {
            let read = |value: Option<&Checked>| {
                loom::thread::yield_now();
                value.map(Checked::get)
            };
            if locked {
                table.get_locked(1, read)
            } else {
                table.get(1, read)
            }
        })
    }

    /// Key 1 = 10 in a one-bucket table; a reader looks it up and, holding the reference,
    /// yields (a slow reader: a large value's clone), while the writer replaces it with 11 (the
    /// old link is retired) and inserts key 2 (whose link may take reclaimed memory), under a
    /// guard (`Table::compute`, a promotion's write). The reader must read 10 or 11, never a
    /// reclaimed link's value.
    pub fn reclaimed_links_scenario() {
        replaced_while_read(false);
    }

    /// As [`reclaimed_links_scenario`], with the writer's replacement and insert made without a
    /// guard (`Table::write_unpinned`, the memory tier's write path): the replaced link goes
    /// straight to the collector, which must still keep it for the reader.
    pub fn unpinned_replacement_scenario() {
        replaced_while_read(true);
    }

    fn replaced_while_read(unpinned: bool) {
        let table = Arc::new(ChainedTable::new());
        table.insert(1, Checked::new(10));
        let reader = spawn_slow_reader(&table, false);
        let write = |key, value| {
            if unpinned {
                table.insert_unpinned(key, Checked::new(value));
            } else {
                table.insert(key, Checked::new(value));
            }
        };
        write(1, 11);
        write(2, 20);
        let seen = reader.join().unwrap();
        assert!(
            matches!(seen, Some(10) | Some(11)),
            "a reader saw a reclaimed link: {seen:?}"
        );
    }

    /// A reader looks up key 1 (under its guard) while the writer removes key 1 without a guard
    /// (`Table::remove_unpinned`, a delete's removal) and inserts key 2, which may take the
    /// removed link's memory. The reader must find 10 or nothing: the removed link stays intact
    /// while the reader may hold it.
    pub fn unpinned_removal_scenario() {
        let table = Arc::new(ChainedTable::new());
        table.insert(1, Checked::new(10));
        let reader = spawn_slow_reader(&table, false);
        assert!(table.remove_unpinned(1));
        table.insert(2, Checked::new(20));
        let seen = reader.join().unwrap();
        assert!(
            matches!(seen, Some(10) | None),
            "a reader saw a reclaimed link: {seen:?}"
        );
    }

    /// As [`reclaimed_links_scenario`], with the reader's lookup made under the bucket's lock
    /// and without a guard (`Table::write_unpinned`, a write's lookup): the lock alone
    /// must keep the link it reads from being retired, hence reclaimed: it reads 10 or 11.
    pub fn locked_read_scenario() {
        let table = Arc::new(ChainedTable::new());
        table.insert(1, Checked::new(10));
        let reader = spawn_slow_reader(&table, true);
        table.insert(1, Checked::new(11));
        table.insert(2, Checked::new(20));
        let seen = reader.join().unwrap();
        assert!(
            matches!(seen, Some(10) | Some(11)),
            "a locked read saw a reclaimed link: {seen:?}"
        );
    }

    /// Keys 2 and 1 in one chain (2 first); a reader looks up key 1 while the writer removes
    /// key 2 (the link the reader may stand on) and replaces key 1. The reader must find
    /// key 1, which is present throughout (10 or 11).
    pub fn unlink_scenario() {
        let table = Arc::new(ChainedTable::new());
        table.insert(1, Checked::new(10));
        table.insert(2, Checked::new(20));
        let reader = {
            let table = table.clone();
            loom::thread::spawn(move || table.get(1, |value| value.map(Checked::get)))
        };
        assert!(table.remove(2));
        table.insert(1, Checked::new(11));
        let seen = reader.join().unwrap();
        assert!(
            matches!(seen, Some(10) | Some(11)),
            "a present key was missed: {seen:?}"
        );
    }
}
