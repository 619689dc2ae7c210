//! The Redis layer against a three-master Redis Cluster started by the test.

mod common;

use common::eventually;
use std::sync::Arc;
use std::time::Duration;
use strata::{Cache, DeleteOptions, LayerSpec};
use strata_redis::server::RedisCluster;
use strata_redis::RedisLayer;

fn cluster_cache(
    cluster: &RedisCluster,
) -> (Cache<String, String>, Arc<RedisLayer<String, String>>) {
    let layer = Arc::new(
        RedisLayer::cluster_builder(cluster.urls())
            .prefix("c:")
            .connect_timeout(Duration::from_millis(500))
            .read_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let cache = Cache::builder()
        .layer(LayerSpec::memory("l1", 10_000))
        .layer(LayerSpec::shared("redis", layer.clone()))
        .build()
        .unwrap();
    (cache, layer)
}

#[test]
fn a_cluster_serves_single_keys_batches_across_slots_and_invalidations() {
    let cluster =
        RedisCluster::start().unwrap_or_else(|e| panic!("cannot start a test Redis Cluster: {e}"));
    let (a, layer_a) = cluster_cache(&cluster);
    let (b, layer_b) = cluster_cache(&cluster);
    let _sync_a = layer_a.keep_in_sync(&a).unwrap();
    let _sync_b = layer_b.keep_in_sync(&b).unwrap();

    a.set("user:1".into(), "Ada".into()).unwrap();
    assert_eq!(b.get("user:1").unwrap().as_deref(), Some("Ada"));

    // 100 keys land on every master: the batch is split by hash slot.
    let items: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    for result in a.set_many(items) {
        assert!(result.unwrap().is_complete());
    }
    let mut per_node = Vec::new();
    for node in cluster.nodes() {
        per_node.push(
            node.cli(&["dbsize"])
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap(),
        );
    }
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys on every master: {per_node:?}"
    );
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let values = b.get_many(keys.iter());
    for (i, value) in values.iter().enumerate() {
        assert_eq!(
            value.as_ref().unwrap().as_deref(),
            Some(format!("v{i}").as_str())
        );
    }

    // Every node forgets the scripts (as after a restart): the batch loads them again.
    for node in cluster.nodes() {
        node.cli(&["script", "flush"]).unwrap();
    }
    let again: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    for result in a.set_many(again) {
        assert!(result.unwrap().is_complete());
    }

    // An invalidation published on one node reaches a subscriber on another.
    a.set("k7".into(), "new".into()).unwrap();
    assert!(eventually(Duration::from_secs(2), || b
        .get("k7")
        .unwrap()
        .as_deref()
        == Some("new")));
    for result in a.delete_many(keys.iter()) {
        assert!(result.unwrap().is_complete());
    }
    b.delete_many_with(keys.iter(), &DeleteOptions::new().local_only());
    assert!(b
        .get_many(keys.iter())
        .iter()
        .all(|v| v.as_ref().unwrap().is_none()));

    // Keys with one hash tag share a slot: their batch is one script call, isolated on the node.
    let tagged: Vec<(String, String)> = (0..10)
        .map(|i| (format!("{{order:17}}:line{i}"), format!("{i}")))
        .collect();
    for result in a.set_many(tagged) {
        assert!(result.unwrap().is_complete());
    }
    assert_eq!(a.get("{order:17}:line3").unwrap().as_deref(), Some("3"));
}
