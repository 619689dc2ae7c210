//! The Redis layer against a real redis-server: wire format, the write guarantees on the
//! server, batches as one round trip, bad input, and two caches sharing one server.

mod common;

use common::{eventually, layer_builder, raw, server, two_level, two_subscribed};
use redis::Commands;
use std::sync::Arc;
use std::time::Duration;
use strata::layer::{Entry, Layer, LayerError, Ticket, Timestamp};
use strata::{Cache, Error, LayerSpec, SetOptions};
use strata_redis::{ConfigError, Raw, RedisLayer, RedisLayerError, SyncState};

fn entry(value: &str, version: u64) -> Entry<String> {
    Entry {
        value: value.to_string(),
        version,
        expires_at: Timestamp::NEVER,
    }
}

#[test]
fn values_round_trip_through_redis_with_their_ttl() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer.clone());
    let report = cache
        .set_with(
            "user:1".into(),
            "Ada".into(),
            &SetOptions::new().ttl(Duration::from_secs(60)),
        )
        .unwrap();
    assert_eq!(report.written.len(), 2);

    let mut conn = raw(&server);
    let ttl: i64 = conn.pttl("t:user:1").unwrap();
    assert!(
        (59_000..=60_000).contains(&ttl),
        "PX set from the TTL: {ttl}"
    );

    // Served from Redis after L1 forgot it, and promoted back.
    cache
        .delete_with("user:1", &strata::DeleteOptions::new().local_only())
        .unwrap();
    assert_eq!(cache.get("user:1").unwrap().as_deref(), Some("Ada"));
    assert_eq!(cache.stats().layers[1].hits, 1);

    cache.delete("user:1").unwrap();
    assert_eq!(cache.get("user:1").unwrap(), None);
    let held: Option<Vec<u8>> = conn.get("t:user:1").unwrap();
    assert_eq!(held.unwrap()[0], b'T', "a delete leaves a tombstone");
}

#[test]
fn the_server_keeps_the_higher_version_of_one_cache() {
    let server = server();
    let layer: RedisLayer<String, String> = layer_builder(&server.url()).build().unwrap();
    let key = "k".to_string();
    let now = Timestamp(0);
    let ticket = Ticket::unconditional();
    layer.set(&key, entry("v5", 5), &ticket).unwrap();
    layer.set(&key, entry("v3", 3), &ticket).unwrap();
    assert_eq!(layer.get(&key, now).unwrap().unwrap().value, "v5");
    layer.set(&key, entry("v6", 6), &ticket).unwrap();
    assert_eq!(layer.get(&key, now).unwrap().unwrap().value, "v6");
    assert_eq!(layer.get(&key, now).unwrap().unwrap().version, 6);

    // Another instance (another origin) is ordered by arrival, and its versions are not
    // reported as this cache's: they read as the newest possible (a promotion clamps them).
    let other: RedisLayer<String, String> = layer_builder(&server.url()).build().unwrap();
    other.set(&key, entry("other", 1), &ticket).unwrap();
    let seen = layer.get(&key, now).unwrap().unwrap();
    assert_eq!((seen.value.as_str(), seen.version), ("other", u64::MAX));

    // A delete outside any cache (unconditional ticket) wins whatever the key holds, and
    // refuses no later write.
    layer.set(&key, entry("v9", 9), &ticket).unwrap();
    layer.delete(&key, &ticket).unwrap();
    assert_eq!(layer.get(&key, now).unwrap(), None);
    layer.set(&key, entry("v2", 2), &ticket).unwrap();
    assert_eq!(layer.get(&key, now).unwrap().unwrap().value, "v2");
}

#[test]
fn a_ttl_beyond_what_px_takes_is_stored_without_expiry() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer);
    let report = cache
        .set_with(
            "forever".into(),
            "v".into(),
            &SetOptions::new().ttl(Duration::MAX),
        )
        .unwrap();
    assert!(report.is_complete());
    let ttl: i64 = raw(&server).pttl("t:forever").unwrap();
    assert_eq!(ttl, -1, "no expiry");
}

#[test]
fn a_delete_refuses_an_older_write_of_the_same_cache_that_arrives_later() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer.clone());
    // Two versions from the cache's own stripes: write v1, then delete, then replay the
    // first write's entry as if it had been slow.
    cache.set("k".into(), "v1".into()).unwrap();
    let old = layer.get(&"k".to_string(), Timestamp(0)).unwrap().unwrap();
    cache.delete("k").unwrap();
    layer
        .set(&"k".to_string(), old, &Ticket::unconditional())
        .unwrap();
    assert_eq!(layer.get(&"k".to_string(), Timestamp(0)).unwrap(), None);
    assert_eq!(cache.get("k").unwrap(), None);
}

#[test]
fn batches_are_one_round_trip() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer.clone());
    cache
        .set("warm".into(), "the script is loaded".into())
        .unwrap();
    let mut conn = raw(&server);
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut conn)
        .unwrap();
    let items: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    for result in cache.set_many(items) {
        assert!(result.unwrap().is_complete());
    }
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    cache.delete_many_with(keys.iter(), &strata::DeleteOptions::new().local_only());
    let values = cache.get_many(keys.iter());
    assert_eq!(values.len(), 100);
    assert_eq!(values[42].as_ref().unwrap().as_deref(), Some("v42"));
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    let calls = |command: &str| -> u64 {
        stats
            .lines()
            .find(|line| line.starts_with(&format!("cmdstat_{command}:")))
            .and_then(|line| line.split("calls=").nth(1))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        calls("evalsha") + calls("eval"),
        1,
        "set_many(100): {stats}"
    );
    assert_eq!(calls("mget"), 1, "get_many(100): {stats}");
}

#[test]
fn the_script_is_reloaded_after_a_flush() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer);
    cache.set("a".into(), "1".into()).unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut raw(&server))
        .unwrap();
    assert!(cache.set("b".into(), "2".into()).unwrap().is_complete());
}

#[test]
fn garbage_under_a_key_is_an_error_for_that_key_only() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    let cache = two_level(layer.clone());
    let mut conn = raw(&server);
    let _: () = conn.set("t:bad", "not a strata record").unwrap();
    let _: () = conn.rpush("t:list", "a list, not a string").unwrap();
    cache.set("good".into(), "fine".into()).unwrap();
    cache
        .delete_with("good", &strata::DeleteOptions::new().local_only())
        .unwrap();

    match cache.get("bad") {
        Err(Error::Unavailable(failures)) => {
            let LayerError::Other(source) = &failures[0].error else {
                panic!("{failures:?}");
            };
            let typed = source.downcast_ref::<RedisLayerError>().unwrap();
            assert!(matches!(typed, RedisLayerError::Decode { .. }), "{typed}");
        }
        other => panic!("expected a decode failure, got {other:?}"),
    }
    let keys = ["bad", "good", "list"].map(String::from);
    let results = cache.get_many(keys.iter());
    assert!(results[0].is_err());
    assert_eq!(results[1].as_ref().unwrap().as_deref(), Some("fine"));
    assert_eq!(
        results[2].as_ref().unwrap(),
        &None,
        "another type under a key reads as a miss (MGET's answer), and is overwritten by a write"
    );
    assert_eq!(layer.redis_stats().decode_errors, 2); // `get` and `get_many` of "bad"

    // Writing the key replaces the garbage.
    assert!(cache
        .set("bad".into(), "now ok".into())
        .unwrap()
        .is_complete());
    assert!(cache
        .set("list".into(), "now ok".into())
        .unwrap()
        .is_complete());
    cache.delete_many_with(keys.iter(), &strata::DeleteOptions::new().local_only());
    assert_eq!(cache.get("list").unwrap().as_deref(), Some("now ok"));
}

#[test]
fn oversized_keys_and_values_are_refused_and_nothing_is_lost() {
    let server = server();
    let layer = Arc::new(
        layer_builder(&server.url())
            .max_key_bytes(64)
            .max_value_bytes(100)
            .build()
            .unwrap(),
    );
    let cache = two_level(layer.clone());
    cache.set("k".into(), "small".into()).unwrap();

    // Too large: Redis is invalidated (the old value must not come back), L1 holds the new one.
    let big = "x".repeat(1_000);
    let Err(Error::Incomplete(report)) = cache.set("k".into(), big.clone()) else {
        panic!("an oversized value must be reported");
    };
    assert_eq!(report.failures.len(), 1);
    let LayerError::Other(source) = &report.failures[0].error else {
        panic!("{report:?}");
    };
    assert!(matches!(
        source.downcast_ref::<RedisLayerError>(),
        Some(RedisLayerError::ValueTooLarge { max: 100, .. })
    ));
    assert_eq!(cache.get("k").unwrap(), Some(big));
    assert_eq!(layer.get(&"k".to_string(), Timestamp(0)).unwrap(), None);

    let long = "k".repeat(100);
    assert!(matches!(
        cache.set(long.clone(), "v".into()),
        Err(Error::Incomplete(_))
    ));
    let Err(LayerError::Other(source)) = layer.get(&long, Timestamp(0)) else {
        panic!("a long key is refused");
    };
    assert!(matches!(
        source.downcast_ref::<RedisLayerError>(),
        Some(RedisLayerError::KeyTooLong { len: 102, max: 64 })
    ));
}

#[test]
fn the_builder_refuses_bad_configuration() {
    let bad = |b: strata_redis::RedisLayerBuilder| b.build::<String, String>().unwrap_err();
    assert!(matches!(
        bad(RedisLayer::builder("nonsense://")),
        ConfigError::InvalidUrl { .. }
    ));
    assert_eq!(
        bad(RedisLayer::builder("redis://127.0.0.1/").read_timeout(Duration::ZERO)),
        ConfigError::ZeroTimeout("read")
    );
    assert_eq!(
        bad(RedisLayer::builder("redis://127.0.0.1/").pool_size(0)),
        ConfigError::Zero("the pool size")
    );
    assert_eq!(
        bad(RedisLayer::builder("redis://127.0.0.1/").tombstone_ttl(Duration::ZERO)),
        ConfigError::TombstoneTtl
    );
    assert_eq!(
        bad(RedisLayer::builder("redis://127.0.0.1/").tombstone_ttl(Duration::MAX)),
        ConfigError::TombstoneTtl
    );
    assert_eq!(
        bad(RedisLayer::cluster_builder(Vec::<String>::new())),
        ConfigError::NoClusterNodes
    );
}

#[test]
fn raw_codec_stores_bytes_as_they_are() {
    let server = server();
    let layer = Arc::new(
        layer_builder(&server.url())
            .codec(Raw)
            .build::<String, Vec<u8>>()
            .unwrap(),
    );
    let cache: Cache<String, Vec<u8>> = Cache::builder()
        .layer(LayerSpec::shared("redis", layer))
        .build()
        .unwrap();
    cache.set("bin".into(), vec![0, 255, 7]).unwrap();
    let held: Vec<u8> = raw(&server).get("t:bin").unwrap();
    assert_eq!(&held[50..], &[0, 255, 7]);
    assert_eq!(cache.get("bin").unwrap(), Some(vec![0, 255, 7]));
}

#[test]
fn a_sole_writer_gets_a_negative_filter_that_is_rebuilt_from_a_scan() {
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).sole_writer().build().unwrap());
    let cache = two_level(layer.clone());
    cache.set("present".into(), "yes".into()).unwrap();
    assert_eq!(cache.rebuild_filters(), 1);
    assert_eq!(cache.get("absent").unwrap(), None);
    cache
        .delete_with("present", &strata::DeleteOptions::new().local_only())
        .unwrap();
    assert_eq!(cache.get("present").unwrap().as_deref(), Some("yes"));
    let filter = cache.stats().layers[1].filter.clone().unwrap();
    assert!(filter.ready && filter.skips >= 1, "{filter:?}");
}

#[test]
fn another_cache_s_write_invalidates_this_cache_s_l1() {
    let server = server();
    let (one, mut two) = two_subscribed(&server);
    let (a, b, layer_b) = (&one.cache, &two.cache, two.layer.clone());
    assert_eq!(layer_b.redis_stats().sync, SyncState::InSync);

    a.set("k".into(), "v1".into()).unwrap();
    // B hears of the write (its L1 had nothing to drop) before it reads: a read racing the
    // invalidation may find its promotion undone, which is the point of the ticket.
    assert!(eventually(Duration::from_secs(1), || layer_b
        .redis_stats()
        .invalidations
        == 1));
    assert_eq!(b.get("k").unwrap().as_deref(), Some("v1")); // now in b's L1
    assert_eq!(b.get_from_layer("l1", "k").unwrap().as_deref(), Some("v1"));
    a.set("k".into(), "v2".into()).unwrap();
    assert!(
        eventually(Duration::from_secs(1), || b.get("k").unwrap().as_deref()
            == Some("v2")),
        "b still serves its old copy"
    );
    a.delete("k").unwrap();
    assert!(eventually(Duration::from_secs(1), || b
        .get("k")
        .unwrap()
        .is_none()));
    assert!(layer_b.redis_stats().invalidations >= 2);
    // A's own writes do not invalidate A.
    a.set("mine".into(), "x".into()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        a.get_from_layer("l1", "mine").unwrap().as_deref(),
        Some("x")
    );
    // Dropping the subscription says so.
    drop(two.sync.take());
    assert_eq!(layer_b.redis_stats().sync, SyncState::NotSubscribed);
}

#[test]
fn after_an_invalidation_the_key_is_promoted_again() {
    // Regression: values of other caches once read as version 0, older than the local delete
    // an invalidation leaves in L1, so L1 refused to take the key again.
    let server = server();
    let (one, two) = two_subscribed(&server);
    let (a, b) = (&one.cache, &two.cache);
    for trial in 0..20 {
        let value = format!("v{trial}");
        a.set("k".into(), value.clone()).unwrap();
        assert!(
            eventually(Duration::from_secs(1), || {
                b.get("k").unwrap();
                b.get_from_layer("l1", "k").unwrap().as_deref() == Some(value.as_str())
            }),
            "trial {trial}: {:?}",
            b.stats().layers[0]
        );
    }
}

#[test]
fn a_deeper_layer_s_hit_is_promoted_into_redis() {
    use strata::memory::{MemoryConfig, MemoryLayer};
    let server = server();
    let layer = Arc::new(layer_builder(&server.url()).build().unwrap());
    // A stand-in for a database below Redis, filled behind the cache's back.
    let db = Arc::new(
        MemoryLayer::<String, String>::new("db", MemoryConfig::new(1_000), strata::Clock::system())
            .unwrap(),
    );
    db.set(
        &"k".to_string(),
        entry("from the db", 1),
        &Ticket::unconditional(),
    )
    .unwrap();
    let cache: Cache<String, String> = Cache::builder()
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("redis", layer.clone()))
        .layer(LayerSpec::shared("db", db))
        .build()
        .unwrap();
    assert_eq!(cache.get("k").unwrap().as_deref(), Some("from the db"));
    let stats = cache.stats();
    assert_eq!(stats.layers[1].promotions_in, 1, "{stats:?}");
    let held: Vec<u8> = raw(&server).get("t:k").unwrap();
    assert_eq!(held[0], b'V', "published, not left pending");
    assert_eq!(
        layer
            .get(&"k".to_string(), Timestamp(0))
            .unwrap()
            .unwrap()
            .value,
        "from the db"
    );

    // A promotion never replaces what Redis holds, a tombstone included.
    let ticket = Ticket::unconditional();
    assert!(!layer
        .promote(&"k".to_string(), entry("older", 0), &ticket)
        .unwrap());
    layer.delete(&"gone".to_string(), &ticket).unwrap();
    assert!(!layer
        .promote(&"gone".to_string(), entry("stale", 0), &ticket)
        .unwrap());
    assert!(layer
        .promote(&"new".to_string(), entry("fresh", 0), &ticket)
        .unwrap());
    assert_eq!(
        layer
            .get(&"new".to_string(), Timestamp(0))
            .unwrap()
            .unwrap()
            .value,
        "fresh"
    );
}

#[test]
fn the_pool_opens_at_most_max_connections() {
    let server = server();
    let layer = Arc::new(
        layer_builder(&server.url())
            .max_connections(2)
            .build()
            .unwrap(),
    );
    let cache = two_level(layer);
    cache.set("k".into(), "v".into()).unwrap();
    let local = strata::DeleteOptions::new().local_only();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, local) = (cache.clone(), local.clone());
            std::thread::spawn(move || {
                for _ in 0..200 {
                    cache.delete_with("k", &local).unwrap();
                    assert_eq!(cache.get("k").unwrap().as_deref(), Some("v"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic, no pool timeout");
    }
    let clients = server.cli(&["client", "list"]).unwrap();
    let ours = clients
        .lines()
        .filter(|line| !line.contains("cmd=client"))
        .count();
    assert!(
        ours <= 2,
        "{ours} connections open besides redis-cli:\n{clients}"
    );
}
