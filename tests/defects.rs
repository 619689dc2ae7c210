//! Regression tests for defects found by longer history runs and a user-level test suite. Each
//! test names the defect it guards against and failed on the code before its fix.
//!
//! Tests that could hang on a regression run their body on a watchdog thread and fail with a
//! message after a deadline instead of hanging the suite.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use strata::layer::{Entry, Layer, LayerCounters, LayerError, Ticket, Timestamp};
use strata::memory::{MemoryConfig, MemoryLayer};
use strata::{Cache, Clock, LayerSpec};

/// Runs `body` on its own thread; fails the test if it does not return within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(body());
    });
    match result.recv_timeout(limit) {
        Ok(value) => value,
        Err(_) => panic!("{what} did not return within {limit:?}"),
    }
}

// ===========================================================================================
// A promotion applied after close()
// ===========================================================================================

/// An in-memory layer that records every call the cache makes after `close`.
struct Recorder {
    inner: MemoryLayer<u64, u64>,
    closed: AtomicBool,
    calls_after_close: AtomicUsize,
}

impl Recorder {
    fn new(clock: &Clock) -> Arc<Self> {
        Arc::new(Recorder {
            inner: MemoryLayer::new("recorder", MemoryConfig::new(100), clock.clone()).unwrap(),
            closed: AtomicBool::new(false),
            calls_after_close: AtomicUsize::new(0),
        })
    }

    fn called(&self) {
        if self.closed.load(Ordering::SeqCst) {
            self.calls_after_close.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Layer<u64, u64> for Recorder {
    fn get(&self, key: &u64, now: Timestamp) -> Result<Option<Entry<u64>>, LayerError> {
        self.called();
        self.inner.get(key, now)
    }
    fn set(&self, key: &u64, entry: Entry<u64>, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        self.called();
        self.inner.set(key, entry, ticket)
    }
    fn delete(&self, key: &u64, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        self.called();
        self.inner.delete(key, ticket)
    }
    fn promote(
        &self,
        key: &u64,
        entry: Entry<u64>,
        ticket: &Ticket<'_>,
    ) -> Result<bool, LayerError> {
        self.called();
        self.inner.promote(key, entry, ticket)
    }
    fn counters(&self) -> LayerCounters {
        self.inner.counters()
    }
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

/// A layer holding one value whose `get` waits at a barrier when armed: the read is held
/// inside the cache while the test closes it.
struct Stalling {
    armed: AtomicBool,
    inside: Barrier,
    release: Barrier,
}

impl Layer<u64, u64> for Stalling {
    fn get(&self, _key: &u64, _now: Timestamp) -> Result<Option<Entry<u64>>, LayerError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.inside.wait();
            self.release.wait();
        }
        Ok(Some(Entry {
            value: 7,
            version: 0,
            expires_at: Timestamp::NEVER,
        }))
    }
    fn set(&self, _: &u64, _: Entry<u64>, _: &Ticket<'_>) -> Result<(), LayerError> {
        Ok(())
    }
    fn delete(&self, _: &u64, _: &Ticket<'_>) -> Result<(), LayerError> {
        Ok(())
    }
}

/// A read still running when `close` is called queues its deferred promotion after `close`
/// emptied the queue; `run_pending_tasks` after `close` must not apply it (the `Layer::close`
/// promise: operations started after `close` returned never call the layer).
#[test]
fn promotion_queued_during_close_is_never_applied() {
    let (clock, _) = Clock::manual();
    let l1 = Recorder::new(&clock);
    let l2 = Arc::new(Stalling {
        armed: AtomicBool::new(true),
        inside: Barrier::new(2),
        release: Barrier::new(2),
    });
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::shared("l1", l1.clone()))
        .layer(LayerSpec::shared("l2", l2.clone()))
        .deferred_promotion(64)
        .build()
        .unwrap();
    let reader = {
        let cache = cache.clone();
        thread::spawn(move || cache.get(&1))
    };
    l2.inside.wait(); // the read is inside L2
    cache.close();
    l2.release.wait();
    assert_eq!(
        reader.join().unwrap().unwrap(),
        Some(7),
        "the read started before close"
    );
    assert_eq!(cache.run_pending_tasks(), 0);
    assert_eq!(
        l1.calls_after_close.load(Ordering::SeqCst),
        0,
        "a promotion reached L1 after close returned"
    );
}

// ===========================================================================================
// Keys that share a hash
// ===========================================================================================

/// A key whose `Hash` only feeds `group`: every key of a group hashes alike under any hasher.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Colliding {
    id: u64,
    group: u64,
}

impl Hash for Colliding {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.group.hash(state);
    }
}

fn colliding_cache(capacity: usize) -> Cache<Colliding, u64> {
    Cache::builder()
        .layer(LayerSpec::memory("l1", capacity))
        .build()
        .unwrap()
}

/// Listing and closing a tier whose keys share a hash: papaya's iterator spins forever from
/// about 60 such keys, so the tier must list and clear without it.
fn list_and_close(keys: u64, groups: u64) {
    within(Duration::from_secs(60), "listing and closing", move || {
        let cache = colliding_cache(1_000);
        for id in 0..keys {
            cache
                .set(
                    Colliding {
                        id,
                        group: id % groups,
                    },
                    id,
                )
                .unwrap();
        }
        let mut listed = cache.keys("l1").unwrap();
        listed.sort();
        listed.dedup();
        assert_eq!(
            listed.len(),
            cache.keys("l1").unwrap().len(),
            "a key was listed twice"
        );
        assert!(listed
            .iter()
            .all(|key| key.id < keys && key.group == key.id % groups));
        assert!(
            listed.len() >= (keys as usize).min(1_000) / 2,
            "only {} listed",
            listed.len()
        );
        let entries = cache.entries("l1").unwrap();
        assert_eq!(entries.len(), listed.len());
        assert!(entries.iter().all(|(key, value)| key.id == *value));
        let mut visited = 0;
        cache.for_each_in_layer("l1", |_, _| visited += 1).unwrap();
        assert_eq!(visited, listed.len());
        assert_eq!(cache.stats().layers[0].len, Some(listed.len() as u64));
        cache.close();
        listed.len()
    });
}

#[test]
fn a_hundred_keys_with_one_hash_list_and_close() {
    list_and_close(100, 1);
}

#[test]
fn two_thousand_keys_over_sixteen_hashes_list_and_close() {
    list_and_close(2_000, 16);
}

#[test]
fn keys_with_one_hash_are_all_listed() {
    within(Duration::from_secs(60), "listing", || {
        let cache = colliding_cache(1_000);
        for id in 0..100 {
            cache.set(Colliding { id, group: 0 }, id).unwrap();
        }
        let mut ids: Vec<u64> = cache.keys("l1").unwrap().iter().map(|k| k.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
    });
}

// ===========================================================================================
// Time arithmetic
// ===========================================================================================

/// `ManualClock::advance(Duration::MAX)` wrapped and moved the clock back by 1 ms, so an entry
/// that had expired was served again.
#[test]
fn advancing_the_manual_clock_by_the_maximum_never_revives_an_entry() {
    let (clock, hand) = Clock::manual();
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100).ttl(Duration::from_millis(10)))
        .build()
        .unwrap();
    cache.set(1, 1).unwrap();
    hand.advance(Duration::from_millis(10)); // expired now (not read yet, so not removed)
    let before = clock.now();
    hand.advance(Duration::MAX);
    assert!(clock.now() >= before, "the clock went back");
    assert_eq!(
        cache.get(&1).unwrap(),
        None,
        "an expired entry was served again"
    );
}

/// A TTL of 1.999 ms was truncated to 1 ms, so the entry expired early.
#[test]
fn a_fractional_ttl_is_rounded_up_never_down() {
    let (clock, hand) = Clock::manual();
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 100))
        .build()
        .unwrap();
    let options = strata::SetOptions::new().ttl(Duration::from_micros(1_999));
    cache.set_with(1, 1, &options).unwrap();
    hand.advance(Duration::from_millis(1));
    assert_eq!(
        cache.get(&1).unwrap(),
        Some(1),
        "expired after 1 ms of a 1.999 ms TTL"
    );
    hand.advance(Duration::from_millis(1));
    assert_eq!(cache.get(&1).unwrap(), None);
}

/// On the real clock (whole milliseconds, rounded down) an entry must not expire before its TTL
/// has really passed: a write at 5.9 ms reads the clock as 5.
#[test]
fn the_system_clock_never_expires_an_entry_early() {
    let ttl = Duration::from_millis(2);
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 100).ttl(ttl))
        .build()
        .unwrap();
    for key in 0..200 {
        let written = std::time::Instant::now();
        cache.set(key, key).unwrap();
        while cache.get(&key).unwrap().is_some() {
            std::hint::spin_loop();
        }
        let lived = written.elapsed();
        assert!(
            lived >= ttl,
            "key {key} expired after {lived:?} of a {ttl:?} TTL"
        );
    }
}

// ===========================================================================================
// Capacity under skewed hashes
// ===========================================================================================

/// A 20 000-entry tier given 10 000 distinct keys that share a hash kept only 2 500 of them:
/// the policy's shards were each capped at capacity ÷ shards. Now the quota follows the keys.
#[test]
fn keys_sharing_a_hash_can_use_the_whole_capacity() {
    within(Duration::from_secs(120), "filling the tier", || {
        let cache = colliding_cache(20_000);
        for id in 0..10_000 {
            cache.set(Colliding { id, group: 0 }, id).unwrap();
        }
        let len = cache.stats().layers[0].len.unwrap();
        assert_eq!(
            len, 10_000,
            "only {len} of 10 000 keys kept in a 20 000-entry tier"
        );
        let missing = (0..10_000)
            .filter(|&id| cache.get(&Colliding { id, group: 0 }).unwrap().is_none())
            .count();
        assert_eq!(missing, 0);
    });
}

/// Skewed keys, then well-spread ones: the bound holds and the capacity stays usable (within
/// the documented slack of 1/64).
#[test]
fn capacity_holds_after_the_skew_ends() {
    within(Duration::from_secs(120), "skew, then spread", || {
        let cache = colliding_cache(20_000);
        for id in 0..5_000 {
            cache.set(Colliding { id, group: 0 }, id).unwrap();
        }
        for i in 0..100_000 {
            let key = Colliding {
                id: 1_000_000 + i,
                group: i,
            };
            cache.set(key, i).unwrap();
        }
        let len = cache.stats().layers[0].len.unwrap();
        assert!(len <= 20_000, "over capacity: {len}");
        assert!(
            len >= 20_000 - 20_000 / 64,
            "capacity lost: {len} of 20 000"
        );
    });
}

// ===========================================================================================
// Writes reported as written that are not kept
// ===========================================================================================

/// Under contention a write into an empty slot can lose its floor check to a newer removal of
/// another key on the same write stripe: the value is dropped as if evicted at once. Such a
/// write used to be reported as written to L1, and counted nowhere. Now a layer is listed as
/// written only if it kept the value, and every drop is listed and counted.
#[test]
fn a_write_listed_as_written_is_kept_and_every_drop_is_counted() {
    const SETS: u64 = 100_000;
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 1 << 21)) // no eviction: only the race can drop
        .layer(LayerSpec::memory("l2", 1 << 21))
        .build()
        .unwrap();
    let reported: Vec<(u64, u64)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..2u64)
            .map(|thread| {
                let cache = &cache;
                scope.spawn(move || {
                    let (mut dropped, mut lost) = (0, 0);
                    for i in 0..SETS {
                        // Fresh keys (an empty slot each time); the other thread deletes its own
                        // keys, raising the floors of the stripes they share.
                        let key = thread << 40 | i;
                        let report = cache.set(key, i).unwrap();
                        dropped += report.dropped.iter().count() as u64;
                        if report.written.contains(0)
                            && cache.get_from_layer("l1", &key).unwrap().is_none()
                        {
                            lost += 1;
                        }
                        cache.delete(&key).unwrap();
                    }
                    (dropped, lost)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let dropped: u64 = reported.iter().map(|(d, _)| d).sum();
    let lost: u64 = reported.iter().map(|(_, l)| l).sum();
    assert_eq!(
        lost, 0,
        "{lost} writes were listed as written to L1 but not kept"
    );
    let stats = cache.stats();
    let counted: u64 = stats.layers.iter().map(|l| l.dropped_writes).sum();
    assert_eq!(
        counted, dropped,
        "drops reported {dropped}, counted {counted}"
    );
    eprintln!("{dropped} of {} layer writes dropped", 2 * 2 * SETS);
}
