//! A layer with a simulated network round trip, for the rows that show what negative filters,
//! heat-gated promotion and batched promotion queues buy when a lower layer is expensive.
//!
//! [`Remote`] keeps its entries in a strata memory tier and makes every call wait `rtt` first:
//! single-key calls pay one round trip per key, batch calls one per batch (a pipelined client).
//! The wait is a spin on the clock, not a sleep: a sleep of 50 µs lasts 100 µs or more on this
//! kind of machine, and the rows compare layers by their cost.

use std::time::{Duration, Instant};

use strata::layer::{Entry, GetResults, Layer, LayerCounters, LayerError, Ticket};
use strata::memory::{MemoryConfig, MemoryLayer};
use strata::Clock;

/// A remote store stand-in: a memory tier behind a spun round trip per call.
pub struct Remote {
    inner: MemoryLayer<u64, u64>,
    rtt: Duration,
}

impl Remote {
    /// A store of `capacity` entries whose every call costs `rtt`.
    pub fn new(name: &str, capacity: usize, rtt: Duration) -> Self {
        Remote {
            inner: MemoryLayer::new(name, MemoryConfig::new(capacity), Clock::system())
                .expect("valid memory layer"),
            rtt,
        }
    }

    /// Stores `key = key` for every key, without the round trip (the store's content before
    /// the cache starts; a cache built over it rebuilds its filter from the listing).
    pub fn preload(&self, keys: impl IntoIterator<Item = u64>) {
        for key in keys {
            let entry = Entry {
                value: key,
                version: 0,
                expires_at: strata::layer::Timestamp::NEVER,
            };
            self.inner
                .set(&key, entry, &Ticket::unconditional())
                .expect("memory tier");
        }
    }

    fn round_trip(&self) {
        let start = Instant::now();
        while start.elapsed() < self.rtt {
            std::hint::spin_loop();
        }
    }
}

impl Layer<u64, u64> for Remote {
    fn get(
        &self,
        key: &u64,
        now: strata::layer::Timestamp,
    ) -> Result<Option<Entry<u64>>, LayerError> {
        self.round_trip();
        self.inner.get(key, now)
    }

    fn contains(&self, key: &u64, now: strata::layer::Timestamp) -> Result<bool, LayerError> {
        self.round_trip();
        self.inner.contains(key, now)
    }

    fn set(&self, key: &u64, entry: Entry<u64>, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        self.round_trip();
        self.inner.set(key, entry, ticket)
    }

    fn delete(&self, key: &u64, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        self.round_trip();
        self.inner.delete(key, ticket)
    }

    fn promote(
        &self,
        key: &u64,
        entry: Entry<u64>,
        ticket: &Ticket<'_>,
    ) -> Result<bool, LayerError> {
        self.round_trip();
        self.inner.promote(key, entry, ticket)
    }

    fn get_many(&self, keys: &[&u64], now: strata::layer::Timestamp) -> GetResults<u64> {
        self.round_trip();
        self.inner.get_many(keys, now)
    }

    fn set_many(
        &self,
        entries: Vec<(&u64, Entry<u64>, Ticket<'_>)>,
    ) -> Vec<Result<(), LayerError>> {
        self.round_trip();
        self.inner.set_many(entries)
    }

    fn delete_many(&self, keys: &[(&u64, Ticket<'_>)]) -> Vec<Result<(), LayerError>> {
        self.round_trip();
        self.inner.delete_many(keys)
    }

    fn promote_many(
        &self,
        entries: Vec<(&u64, Entry<u64>, Ticket<'_>)>,
    ) -> Vec<Result<bool, LayerError>> {
        self.round_trip();
        self.inner.promote_many(entries)
    }

    fn for_each(
        &self,
        now: strata::layer::Timestamp,
        f: &mut dyn FnMut(&u64, &u64),
    ) -> Result<(), LayerError> {
        self.round_trip();
        self.inner.for_each(now, f)
    }

    fn counters(&self) -> LayerCounters {
        self.inner.counters()
    }

    /// A remote store only this cache writes: a negative filter pays.
    fn wants_negative_filter(&self) -> bool {
        true
    }
}
