//! A custom layer: a key-value store behind a (simulated) network, under an in-memory L1.
//!
//! ```sh
//! cargo run --example custom_layer
//! ```
//!
//! `RemoteStore` stands for Redis, Memcached or a database: every call costs a round trip
//! (`ROUND_TRIP`, spent spinning here), and a batch call costs one round trip for the whole
//! batch, which is why it overrides the `Layer` trait's batch methods.
//!
//! # How a layer honours the write guarantees (see `strata::layer` and `strata::protocol`)
//!
//! - **Keep the higher version.** `set` replaces a held entry only with a newer version: a slow
//!   write that arrives late never overwrites a newer one.
//! - **Inserting a key it does not hold** must not let an older write land where a newer
//!   write's value was just removed. This store keeps [`Floors`]: a delete raises the stripe's
//!   floor to its version, and an insert of an absent key is admitted only above the floor.
//!   Because the store serializes its operations under one lock, "insert, then validate" is a
//!   single step here; a lock-free store inserts invisibly, validates, then publishes (see
//!   `Floors`). A store shared by several processes cannot compare versions across caches:
//!   it orders writes on the server instead.
//! - **Delete unless a newer version is held.**
//! - **Promotions** insert only an absent key, and only while the promotion's ticket is still
//!   current, checked inside the same critical section as the insert.
//! - A layer that may apply a write later (a write-behind queue, an async client) keeps the
//!   write's ticket with `ticket.owned()` and validates it when it applies the write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata::layer::{
    Entry, Floors, GetResults, Layer, LayerCounters, LayerError, Ticket, Timestamp,
};
use strata::{Cache, LayerSpec};

/// The simulated network round trip of one call (one batch call included).
const ROUND_TRIP: Duration = Duration::from_micros(200);

/// A remote key-value store, as the cache sees it.
#[derive(Default)]
struct RemoteStore {
    map: Mutex<HashMap<String, Entry<String>>>,
    floors: Floors,
    round_trips: AtomicU64,
}

impl RemoteStore {
    /// One network round trip.
    fn round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        while start.elapsed() < ROUND_TRIP {
            std::hint::spin_loop();
        }
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry<String>>>, LayerError> {
        // A poisoned lock is a failed layer, not a panic in the cache.
        self.map
            .lock()
            .map_err(|_| LayerError::Unavailable("store lock poisoned".into()))
    }

    /// The write rule, under the lock: keep the higher version; admit an absent key only above
    /// the floor.
    fn write(
        &self,
        map: &mut HashMap<String, Entry<String>>,
        key: &str,
        entry: Entry<String>,
        ticket: &Ticket<'_>,
    ) {
        match map.get(key) {
            Some(held) if held.version >= entry.version => {}
            Some(_) => {
                map.insert(key.to_owned(), entry);
            }
            None if self.floors.admits(ticket) => {
                map.insert(key.to_owned(), entry);
            }
            None => {} // dropped, as if evicted at once: a newer removal on the stripe won
        }
    }

    fn remove(&self, map: &mut HashMap<String, Entry<String>>, key: &str, ticket: &Ticket<'_>) {
        self.floors.raise(ticket.stripe(), ticket.version());
        if map
            .get(key)
            .is_some_and(|held| held.version < ticket.version())
        {
            map.remove(key);
        }
    }
}

impl Layer<String, String> for RemoteStore {
    fn get(&self, key: &String, now: Timestamp) -> Result<Option<Entry<String>>, LayerError> {
        self.round_trip();
        let map = self.lock()?;
        Ok(map.get(key).filter(|entry| entry.expires_at > now).cloned())
    }

    fn set(
        &self,
        key: &String,
        entry: Entry<String>,
        ticket: &Ticket<'_>,
    ) -> Result<(), LayerError> {
        self.round_trip();
        let mut map = self.lock()?;
        self.write(&mut map, key, entry, ticket);
        Ok(())
    }

    fn delete(&self, key: &String, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        self.round_trip();
        let mut map = self.lock()?;
        self.remove(&mut map, key, ticket);
        Ok(())
    }

    fn promote(
        &self,
        key: &String,
        entry: Entry<String>,
        ticket: &Ticket<'_>,
    ) -> Result<bool, LayerError> {
        self.round_trip();
        let mut map = self.lock()?;
        // Absent only, and the ticket checked in the same critical section as the insert.
        if map.contains_key(key) || !ticket.is_current() {
            return Ok(false);
        }
        map.insert(key.clone(), entry);
        Ok(true)
    }

    fn get_many(&self, keys: &[&String], now: Timestamp) -> GetResults<String> {
        self.round_trip(); // one round trip for the batch (an MGET)
        match self.lock() {
            Ok(map) => keys
                .iter()
                .map(|key| Ok(map.get(*key).filter(|e| e.expires_at > now).cloned()))
                .collect(),
            Err(error) => keys.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    fn set_many(
        &self,
        entries: Vec<(&String, Entry<String>, Ticket<'_>)>,
    ) -> Vec<Result<(), LayerError>> {
        self.round_trip(); // one pipeline
        match self.lock() {
            Ok(mut map) => entries
                .into_iter()
                .map(|(key, entry, ticket)| {
                    self.write(&mut map, key, entry, &ticket);
                    Ok(())
                })
                .collect(),
            Err(error) => entries.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    fn counters(&self) -> LayerCounters {
        LayerCounters {
            len: self.map.lock().ok().map(|map| map.len() as u64),
            ..LayerCounters::default()
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let remote = Arc::new(RemoteStore::default());
    let cache: Cache<String, String> = Cache::builder()
        .layer(LayerSpec::memory("memory", 1_000).ttl(Duration::from_secs(60)))
        .layer(LayerSpec::shared("remote", remote.clone()))
        .build()?;

    // Write-through: the remote store first, then L1.
    let report = cache.set("user:1".into(), "Ada".into())?;
    println!("set user:1 -> written to layers {:?}", report.written);

    // An L1 hit costs no round trip.
    let before = remote.round_trips.load(Ordering::Relaxed);
    assert_eq!(cache.get("user:1")?, Some("Ada".to_string()));
    assert_eq!(remote.round_trips.load(Ordering::Relaxed), before);

    // Only in the remote store (written there by another process, say): one round trip, then
    // promoted into L1, so the next read is local.
    cache.set_with(
        "user:2".into(),
        "Grace".into(),
        &strata::SetOptions::new().skip("memory"),
    )?;
    let lookup = cache.lookup("user:2")?;
    println!("user:2 served by layer {:?}", lookup.served_by);
    assert_eq!(cache.lookup("user:2")?.served_by, Some(0));

    // A batch: one round trip for every key L1 misses.
    for i in 3..13 {
        cache.set_with(
            format!("user:{i}"),
            format!("n{i}"),
            &strata::SetOptions::new().skip("memory"),
        )?;
    }
    let keys: Vec<String> = (3..13).map(|i| format!("user:{i}")).collect();
    let before = remote.round_trips.load(Ordering::Relaxed);
    let values = cache.get_many(&keys);
    assert!(values.iter().all(|value| matches!(value, Ok(Some(_)))));
    println!(
        "get_many of 10 keys: {} round trip(s)",
        remote.round_trips.load(Ordering::Relaxed) - before
    );

    cache.delete("user:1")?;
    assert_eq!(cache.get("user:1")?, None);
    println!("{:#?}", cache.stats());
    Ok(())
}
