//! A history test of the cross-instance contract: two caches (L1 memory over one shared
//! redis-server, each subscribed to the other's writes; the second promotes through batched
//! queues gated by heat; on one server, on one server over a shared database layer, and on a
//! three-master cluster), two threads on each doing random
//! sets, deletes and gets of a few keys. Every operation is recorded with its start and end
//! time; the checker then verifies, per key, the contract stated in the crate docs:
//!
//! - a read returns a value some write wrote, and not one written only after the read ended;
//! - a read `R` on cache `c` never returns the value of a write `X` when some other write `W`
//!   of the key started after `X` ended and ended more than `delay(W, c)` before `R` started,
//!   where the delay is 0 when `W` ran on `c` itself (strata's own contract) and the
//!   invalidation bound `DELAY` when it ran on the other cache. Misses are always allowed
//!   (eviction), so deletes only constrain through this rule.
//!
//! `STRATA_REDIS_HISTORY_OPS` sets the number of operations (default 40 000).

mod common;

use common::{cluster_layer_builder, layer_builder, server};
use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use strata::layer::{Entry, Layer, LayerError, Ticket, Timestamp};
use strata::{Cache, LayerSpec, PromotionGate};
use strata_redis::server::RedisCluster;
use strata_redis::RedisLayerBuilder;

/// The invalidation bound the test holds other caches' reads to. Generous on purpose: the four
/// tests of this file run at once on a 2-core machine, each with six threads and a server, so
/// a subscription thread can wait for a core for tens of milliseconds. The delay itself is
/// measured by `cargo run --release -- redis` (PERF.md §11: p99 36–57 µs); this bound is about
/// invalidations that never come, which the broken twin shows it catches.
const DELAY: Duration = Duration::from_millis(100);
const KEYS: usize = 6;
/// Keys `0..SHARED` are written by both caches, the others by cache 0 only.
const SHARED: usize = 3;

/// A shared database stand-in: last write wins (versions of different caches are not
/// comparable), reported as the newest version (a promotion clamps it).
#[derive(Default)]
struct Database {
    rows: Mutex<HashMap<String, String>>,
}

impl Layer<String, String> for Database {
    fn get(&self, key: &String, _: Timestamp) -> Result<Option<Entry<String>>, LayerError> {
        Ok(self.rows.lock().unwrap().get(key).map(|value| Entry {
            value: value.clone(),
            version: u64::MAX,
            expires_at: Timestamp::NEVER,
        }))
    }

    fn set(&self, key: &String, entry: Entry<String>, _: &Ticket<'_>) -> Result<(), LayerError> {
        self.rows.lock().unwrap().insert(key.clone(), entry.value);
        Ok(())
    }

    fn delete(&self, key: &String, _: &Ticket<'_>) -> Result<(), LayerError> {
        self.rows.lock().unwrap().remove(key);
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Op {
    cache: usize,
    key: usize,
    start: Duration,
    end: Duration,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Set(String),
    Delete,
    Get(Option<String>),
}

/// Fails with the first violations, if any.
fn assert_clean(violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{:#?}",
        &violations[..violations.len().min(5)]
    );
}

fn ops() -> usize {
    std::env::var("STRATA_REDIS_HISTORY_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000)
}

#[test]
fn two_caches_on_one_redis_keep_the_cross_instance_contract() {
    assert_clean(run(ops(), true, false));
}

/// The same with a shared database layer below Redis and short Redis TTLs: keys fall out of
/// Redis all the time and are promoted back from the database, racing both caches' writes.
#[test]
fn two_caches_over_redis_and_a_database_keep_the_cross_instance_contract() {
    assert_clean(run(ops(), true, true));
}

/// The same on a three-master cluster: scripts per slot, invalidations across nodes.
#[test]
fn two_caches_on_a_cluster_keep_the_cross_instance_contract() {
    assert_clean(run_on(Servers::Cluster, ops(), true, false));
}

/// Where the caches' Redis runs.
enum Servers {
    One,
    Cluster,
}

/// The broken twin: caches that do not subscribe serve each other's overwritten values from
/// their L1s, and the checker must say so.
#[test]
fn the_checker_catches_caches_that_do_not_listen() {
    let violations = run(40_000, false, false);
    assert!(!violations.is_empty(), "the checker missed stale L1 reads");
}

/// Runs `ops` operations on two caches over one fresh server (and, with `database`, a shared
/// last-write-wins store below it) and returns the violations.
fn run(ops: usize, subscribe: bool, database: bool) -> Vec<String> {
    run_on(Servers::One, ops, subscribe, database)
}

fn run_on(servers: Servers, ops: usize, subscribe: bool, database: bool) -> Vec<String> {
    // Kept alive until the run ends.
    let (_server, _cluster, builder): (_, _, Box<dyn Fn() -> RedisLayerBuilder>) = match servers {
        Servers::One => {
            let server = server();
            let url = server.url();
            (Some(server), None, Box::new(move || layer_builder(&url)))
        }
        Servers::Cluster => {
            let cluster = RedisCluster::start()
                .unwrap_or_else(|e| panic!("cannot start a test Redis Cluster: {e}"));
            let urls = cluster.urls();
            (
                None,
                Some(cluster),
                Box::new(move || cluster_layer_builder(urls.clone())),
            )
        }
    };
    let db = Arc::new(Database::default());
    let caches: Vec<_> = (0..2)
        .map(|c| {
            let layer = Arc::new(builder().build().unwrap());
            let mut redis = LayerSpec::shared("redis", layer.clone());
            if database {
                redis = redis.ttl(Duration::from_millis(2));
            }
            let mut builder = Cache::builder()
                // Every key fits: a stale L1 copy would stay until overwritten. Invalidations
                // empty it and reads promote into it all the time.
                .layer(LayerSpec::memory("l1", 1_000))
                .layer(redis);
            if database {
                builder = builder.layer(LayerSpec::shared("db", db.clone()));
            }
            if c == 1 {
                // The other cache promotes through the batched queues, gated by heat: queued
                // promotions must be dropped when an invalidation overtakes them.
                builder = builder
                    .deferred_promotion(4)
                    .promotion_gate(PromotionGate::by_heat());
            }
            let cache: Cache<String, String> = builder.build().unwrap();
            let sync = subscribe.then(|| layer.keep_in_sync(&cache).unwrap());
            (cache, sync)
        })
        .collect();
    let origin = Instant::now();
    let threads_per_cache = 2;
    let barrier = Arc::new(Barrier::new(2 * threads_per_cache));
    let mut handles = Vec::new();
    for (c, (cache, _)) in caches.iter().enumerate() {
        for t in 0..threads_per_cache {
            let cache = cache.clone();
            let barrier = barrier.clone();
            let per_thread = ops / (2 * threads_per_cache);
            handles.push(std::thread::spawn(move || {
                let mut rng = (c * 7919 + t * 104_729 + 1) as u64;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut log = Vec::with_capacity(per_thread);
                barrier.wait();
                for n in 0..per_thread {
                    let key = next() as usize % KEYS;
                    let name = format!("h{key}");
                    // Keys below SHARED are written by both caches; the others only by cache 0,
                    // so cache 1 holds them in L1 until an invalidation removes them.
                    let roll = if key >= SHARED && c == 1 {
                        9
                    } else {
                        next() % 10
                    };
                    let start = origin.elapsed();
                    let kind = if roll < 3 {
                        let value = format!("c{c}t{t}n{n}");
                        cache.set(name, value.clone()).expect("set");
                        Kind::Set(value)
                    } else if roll < 4 {
                        cache.delete(&name).expect("delete");
                        Kind::Delete
                    } else {
                        Kind::Get(cache.get(&name).expect("get"))
                    };
                    let end = origin.elapsed();
                    log.push(Op {
                        cache: c,
                        key,
                        start,
                        end,
                        kind,
                    });
                }
                log
            }));
        }
    }
    let history: Vec<Op> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("no panic"))
        .collect();
    let violations = check(&history);
    let promoted_into_redis: u64 = caches
        .iter()
        .map(|(cache, _)| cache.stats().layers[1].promotions_in)
        .sum();
    let reads = history
        .iter()
        .filter(|op| matches!(op.kind, Kind::Get(Some(_))))
        .count();
    eprintln!(
        "{} operations, {reads} reads that returned a value, {} violations (subscribed: \
         {subscribe}; {promoted_into_redis} promotions into Redis)",
        history.len(),
        violations.len()
    );
    violations
}

/// The contract's violations in `history` (see the module docs).
fn check(history: &[Op]) -> Vec<String> {
    let mut violations = Vec::new();
    for key in 0..KEYS {
        let mut writes: Vec<&Op> = history
            .iter()
            .filter(|op| op.key == key && !matches!(op.kind, Kind::Get(_)))
            .collect();
        writes.sort_by_key(|op| op.start);
        let by_value: HashMap<&str, &Op> = writes
            .iter()
            .filter_map(|op| match &op.kind {
                Kind::Set(value) => Some((value.as_str(), *op)),
                _ => None,
            })
            .collect();
        // Per cache of W: the earliest end among writes that start at or after index i.
        let mut earliest_end = vec![[Duration::MAX; 2]; writes.len() + 1];
        for i in (0..writes.len()).rev() {
            earliest_end[i] = earliest_end[i + 1];
            let slot = &mut earliest_end[i][writes[i].cache];
            *slot = (*slot).min(writes[i].end);
        }
        for read in history.iter().filter(|op| op.key == key) {
            let Kind::Get(Some(value)) = &read.kind else {
                continue;
            };
            let Some(x) = by_value.get(value.as_str()) else {
                violations.push(format!("{read:?}: a value never written"));
                continue;
            };
            if x.start > read.end {
                violations.push(format!(
                    "{read:?}: read a write that started after it: {x:?}"
                ));
                continue;
            }
            let first_after = writes.partition_point(|w| w.start <= x.end);
            for (cache, end) in earliest_end[first_after].iter().enumerate() {
                let delay = if cache == read.cache {
                    Duration::ZERO
                } else {
                    DELAY
                };
                if end.saturating_add(delay) < read.start {
                    violations.push(format!(
                        "{read:?}: returned {x:?} although a later write on cache {cache} ended at \
                         {end:?}"
                    ));
                }
            }
        }
    }
    violations
}
