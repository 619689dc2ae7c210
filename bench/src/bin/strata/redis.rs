//! `strata redis`: the Redis layer against a throwaway local redis-server, side by side with
//! raw redis-rs round trips, in one run (single-threaded latencies, loopback).
//!
//! Every row runs for the configured duration and reports ns per operation (per batch for the
//! batch rows). Values are `u64` (postcard), keys `u64`. Rows and their comparison:
//!
//! - the physical floor: a raw `GET` round trip (and a raw `SET`);
//! - an L2-Redis hit, without promotion and with promotion into a 100-entry L1 over 10 000 keys
//!   (nearly every read misses L1, promotes, and evicts);
//! - an L1 hit with Redis below, against an L1 hit with a memory layer below;
//! - a miss: one memory layer (the L1 miss), Redis below without a filter, with a filter;
//! - `get_many` / `set_many` of 10 and 100 keys against as many single calls;
//! - a write-through `set` (Redis, then L1);
//! - the invalidation delay between two caches: from cache A's `set` returning to cache B's L1
//!   no longer holding the key (p50 and p99 over many trials).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::{Cache, LayerSpec, Promotion};
use strata_redis::server::RedisServer;
use strata_redis::RedisLayer;

mod bare;

const KEYS: u64 = 10_000;

type Layer = Arc<RedisLayer<u64, u64>>;

fn layer(url: &str, prefix: &str) -> Result<Layer, String> {
    RedisLayer::builder(url)
        .prefix(prefix)
        .build()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Runs `op(i)` for `duration` and returns ns per call.
fn per_op(duration: Duration, mut op: impl FnMut(u64)) -> f64 {
    // A short warm-up: connections opened, scripts loaded.
    for i in 0..100 {
        op(i);
    }
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < duration {
        for _ in 0..16 {
            op(i);
            i += 1;
        }
    }
    start.elapsed().as_nanos() as f64 / i as f64
}

/// Measures `base` and `op` in alternating slices (8 of each) and returns the median ns per
/// call of each: on a noisy machine a ratio taken this way drifts far less than one taken
/// between two rows measured in turn. The target rows use it.
fn paired(duration: Duration, mut base: impl FnMut(u64), mut op: impl FnMut(u64)) -> (f64, f64) {
    let slice = duration / 8;
    let (mut bases, mut ops) = (Vec::new(), Vec::new());
    for _ in 0..8 {
        bases.push(per_op(slice, &mut base));
        ops.push(per_op(slice, &mut op));
    }
    (median(&mut bases), median(&mut ops))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One raw `GET` of key `i`'s record: the physical floor of an L2 hit.
fn raw_get(conn: &mut redis::Connection, i: u64) {
    let value: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("b:{}", key(i)))
        .query(conn)
        .unwrap();
    black_box(value);
}

/// A pseudo-random key in `0..KEYS` for call `i` (uniform, reproducible).
fn key(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % KEYS
}

struct Table {
    rows: Vec<(String, f64)>,
}

impl Table {
    /// A target row, measured in alternation with its base (see [`paired`]).
    fn paired_row(&mut self, name: &str, (base, ns): (f64, f64), base_name: &str, target: &str) {
        println!(
            "| {name:<58} | {ns:>11.0} | {:>8} | {target} (base in alternation: {base:.0} ns, {base_name})",
            format!("{:.2}x", ns / base)
        );
        self.rows.push((name.to_owned(), ns));
    }

    fn row(&mut self, name: &str, ns: f64, versus: Option<&str>, target: &str) {
        let ratio = versus
            .and_then(|base| self.rows.iter().find(|(n, _)| n == base))
            .map_or("-".to_owned(), |(_, base)| format!("{:.2}x", ns / base));
        println!("| {name:<58} | {ns:>11.0} | {ratio:>8} | {target}");
        self.rows.push((name.to_owned(), ns));
    }
}

pub fn run(duration: Duration) -> Result<(), String> {
    let server = RedisServer::start().map_err(|e| e.to_string())?;
    let url = server.url();
    println!("strata redis: a throwaway redis-server on 127.0.0.1:{} (persistence off), single-threaded, {} ms per row", server.port(), duration.as_millis());
    println!("u64 keys and values (postcard); 10,000 keys; ratios are against the row named in brackets, in this run.\n");
    println!(
        "| {:<58} | {:>11} | {:>8} | target",
        "row", "ns/op", "ratio"
    );
    println!("|{:-<60}|{:->13}|{:->10}|--------", "", "", "");
    let mut table = Table { rows: Vec::new() };

    // Fill Redis through a Redis-only cache: every key, value = key.
    let filler: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::shared("redis", layer(&url, "b:")?))
        .build()
        .map_err(|e| e.to_string())?;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(100) {
        for result in filler.set_many(chunk.iter().map(|&k| (k, k)).collect()) {
            result.map_err(|e| e.to_string())?;
        }
    }

    // The floor: raw redis-rs round trips on one connection.
    let mut raw = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .map_err(|e| e.to_string())?;
    let raw_get_row = "raw redis-rs GET (one round trip)";
    table.row(
        raw_get_row,
        per_op(duration, |i| raw_get(&mut raw, i)),
        None,
        "-",
    );
    table.row(
        "raw redis-rs SET",
        per_op(duration, |i| {
            let _: () = redis::cmd("SET")
                .arg(format!("raw:{}", key(i)))
                .arg(i)
                .query(&mut raw)
                .unwrap();
        }),
        Some(raw_get_row),
        "-",
    );
    table.row(
        "raw redis-rs MGET of 100 keys",
        per_op(duration, |i| {
            let mut mget = redis::cmd("MGET");
            for j in 0..100 {
                mget.arg(format!("b:{}", key(i * 100 + j)));
            }
            let v: Vec<Option<Vec<u8>>> = mget.query(&mut raw).unwrap();
            black_box(v);
        }),
        Some(raw_get_row),
        "-",
    );

    // Below the client library: the same MGET on a bare socket, read by a minimal RESP reader,
    // in alternation with a bare-socket GET; and redis-rs's parse of one such reply alone.
    let floor = bare::Floor::connect(server.port(), |i| format!("b:{}", key(i)))?;
    table.paired_row(
        "bare-socket MGET of 100 keys, minimal reader (no client)",
        floor.paired(duration),
        "bare-socket GET",
        "- (the floor under any client on this machine)",
    );
    let reply = floor.mget_reply()?;
    table.row(
        &format!(
            "redis-rs parse of one MGET(100) reply ({} B), no I/O",
            reply.len()
        ),
        per_op(duration / 2, |_| {
            black_box(redis::parse_redis_value(&reply).unwrap());
        }),
        None,
        "-",
    );
    table.row(
        "minimal reader's parse of the same reply, no I/O",
        per_op(duration / 2, |_| {
            black_box(bare::parse_reply(&reply).unwrap());
        }),
        None,
        "-",
    );

    // L2-Redis hits.
    let cache_over = |l1: usize, promotion: Promotion| -> Result<Cache<u64, u64>, String> {
        Cache::builder()
            .layer(LayerSpec::memory("l1", l1))
            .layer(LayerSpec::shared("redis", layer(&url, "b:")?))
            .promotion(promotion)
            .build()
            .map_err(|e| e.to_string())
    };
    let no_promotion = cache_over(100, Promotion::Off)?;
    table.paired_row(
        "L2-Redis hit, no promotion",
        paired(
            duration,
            |i| raw_get(&mut raw, i),
            |i| {
                black_box(no_promotion.get(&key(i)).unwrap());
            },
        ),
        "raw GET",
        "<= 1.2x",
    );
    let promoting = cache_over(100, Promotion::AllAbove)?;
    table.row(
        "L2-Redis hit, promoted into a 100-entry L1 [raw GET]",
        per_op(duration, |i| {
            black_box(promoting.get(&key(i)).unwrap());
        }),
        Some(raw_get_row),
        "-",
    );
    let stats = promoting.stats();
    println!(
        "|   (of those reads: {:.1} % served by Redis, {} promotions into L1)",
        stats.layers[1].hits as f64 * 100.0 / stats.hits.max(1) as f64,
        stats.layers[0].promotions_in
    );

    // L1 hits: Redis below against memory below.
    let l1_over_redis = cache_over(20_000, Promotion::AllAbove)?;
    let l1_over_memory: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 20_000))
        .layer(LayerSpec::memory("l2", 20_000))
        .build()
        .map_err(|e| e.to_string())?;
    for k in 0..1_000 {
        l1_over_redis.get(&k).map_err(|e| e.to_string())?;
        l1_over_memory.set(k, k).map_err(|e| e.to_string())?;
    }
    table.paired_row(
        "L1 hit, Redis below",
        paired(
            duration,
            |i| {
                black_box(l1_over_memory.get(&(key(i) % 1_000)).unwrap());
            },
            |i| {
                black_box(l1_over_redis.get(&(key(i) % 1_000)).unwrap());
            },
        ),
        "L1 hit, memory layer below",
        "= 1.0x",
    );

    // Misses.
    let one_layer: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 20_000))
        .build()
        .map_err(|e| e.to_string())?;
    table.row(
        "miss, Redis below, no filter",
        per_op(duration, |i| {
            black_box(l1_over_redis.get(&(KEYS + i)).unwrap());
        }),
        None,
        "-",
    );
    let filtered_layer = Arc::new(
        RedisLayer::builder(url.as_str())
            .prefix("f:")
            .sole_writer()
            .build::<u64, u64>()
            .map_err(|e| e.to_string())?,
    );
    let filtered: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 20_000))
        .layer(LayerSpec::shared("redis", filtered_layer).negative_filter(100_000))
        .build()
        .map_err(|e| e.to_string())?;
    // The layer cannot tell the cache it starts empty, so its filter waits for a first
    // rebuild (a SCAN of the prefix) before it rules keys out.
    filtered.rebuild_filters();
    for k in 0..1_000 {
        filtered.set(k, k).map_err(|e| e.to_string())?;
    }
    table.paired_row(
        "miss, Redis below, negative filter",
        paired(
            duration,
            |i| {
                black_box(one_layer.get(&(KEYS + i)).unwrap());
            },
            |i| {
                black_box(filtered.get(&(KEYS + i)).unwrap());
            },
        ),
        "L1 miss, one memory layer",
        "<= 2x",
    );

    // Batches against single calls, on a Redis-only cache.
    for n in [10u64, 100] {
        let singles = format!("{n} x get (Redis only) [raw GET]");
        table.row(
            &singles,
            per_op(duration / 2, |i| {
                for j in 0..n {
                    black_box(filler.get(&key(i * n + j)).unwrap());
                }
            }),
            Some(raw_get_row),
            "-",
        );
        let keys: Vec<Vec<u64>> = (0..64)
            .map(|i| (0..n).map(|j| key(i * n + j)).collect())
            .collect();
        table.row(
            &format!("get_many({n}) (Redis only) [{singles}]"),
            per_op(duration / 2, |i| {
                black_box(filler.get_many(keys[i as usize % 64].iter()));
            }),
            Some(&singles),
            "-",
        );
        if n == 100 {
            table.paired_row(
                "get_many(100) (Redis only)",
                paired(
                    duration,
                    |i| raw_get(&mut raw, i),
                    |i| {
                        black_box(filler.get_many(keys[i as usize % 64].iter()));
                    },
                ),
                "raw GET",
                "<= 2x (floor: raw MGET of 100 above)",
            );
        }
        let singles = format!("{n} x set (Redis only)");
        table.row(
            &singles,
            per_op(duration / 2, |i| {
                for j in 0..n {
                    filler.set(key(i * n + j), i).unwrap();
                }
            }),
            None,
            "-",
        );
        table.row(
            &format!("set_many({n}) (Redis only) [{singles}]"),
            per_op(duration / 2, |i| {
                for result in filler.set_many((0..n).map(|j| (key(i * n + j), i)).collect()) {
                    result.unwrap();
                }
            }),
            Some(&singles),
            "-",
        );
    }

    table.row(
        "set, write-through L1 + Redis [raw GET]",
        per_op(duration, |i| {
            l1_over_redis.set(key(i), i).unwrap();
        }),
        Some(raw_get_row),
        "-",
    );

    // The invalidation delay between two caches.
    let layer_a = layer(&url, "inv:")?;
    let layer_b = layer(&url, "inv:")?;
    let a: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 1_000))
        .layer(LayerSpec::shared("redis", layer_a.clone()))
        .build()
        .map_err(|e| e.to_string())?;
    let b: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 1_000))
        .layer(LayerSpec::shared("redis", layer_b.clone()))
        .build()
        .map_err(|e| e.to_string())?;
    let _sync_a = layer_a.keep_in_sync(&a).map_err(|e| e.to_string())?;
    let _sync_b = layer_b.keep_in_sync(&b).map_err(|e| e.to_string())?;
    let mut delays = Vec::new();
    let mut trial = 0u64;
    a.set(1, trial).map_err(|e| e.to_string())?;
    while b.get_from_layer("l1", &1).map_err(|e| e.to_string())? != Some(trial) {
        b.get(&1).map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + duration * 2;
    while Instant::now() < deadline || delays.len() < 200 {
        trial += 1;
        a.set(1, trial).map_err(|e| e.to_string())?;
        let returned = Instant::now();
        // Wait for B's L1 to drop its copy (the previous trial's value).
        loop {
            if b.get_from_layer("l1", &1).map_err(|e| e.to_string())? != Some(trial - 1) {
                break;
            }
            if returned.elapsed() > Duration::from_secs(1) {
                return Err("an invalidation took more than 1 s".into());
            }
            std::hint::spin_loop();
        }
        delays.push(returned.elapsed());
        // B reads the new value from Redis into its L1 for the next trial.
        while b.get_from_layer("l1", &1).map_err(|e| e.to_string())? != Some(trial) {
            b.get(&1).map_err(|e| e.to_string())?;
            if returned.elapsed() > Duration::from_secs(2) {
                return Err("B's L1 did not take the key back within 2 s".into());
            }
        }
    }
    delays.sort();
    let p = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize].as_nanos() as f64;
    table.row(
        "invalidation delay A set -> B's L1 dropped, p50",
        p(0.5),
        None,
        "-",
    );
    table.row(
        &format!("invalidation delay, p99 ({} trials)", delays.len()),
        p(0.99),
        None,
        "<= 5 ms",
    );
    Ok(())
}
