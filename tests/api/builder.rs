//! Builder checks: what `build` refuses, and what it accepts.

use std::time::Duration;

use strata::{BuildError, Cache, LayerSpec, Promotion, WriteMode};

use crate::support::*;

#[test]
fn build_refuses_no_layers() {
    let err = Cache::<u64, String>::builder().build().unwrap_err();
    assert_eq!(err, BuildError::NoLayers);
}

#[test]
fn build_refuses_duplicate_names() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("a", 10))
        .layer(LayerSpec::memory("b", 10))
        .layer(LayerSpec::memory("a", 10))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::DuplicateName(s("a")));
}

#[test]
fn build_refuses_empty_name() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("", 10))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::EmptyName { index: 1 });
}

#[test]
fn build_refuses_blank_name() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("   ", 10))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::EmptyName { index: 0 });
}

#[test]
fn build_refuses_zero_capacity() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("l2", 0))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroCapacity(s("l2")));
}

#[test]
fn build_refuses_zero_ttl() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10).ttl(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroTtl(s("l1")));
}

#[test]
fn build_refuses_sub_millisecond_ttl() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::memory("l2", 10).ttl(Duration::from_micros(999)))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroTtl(s("l2")));
}

#[test]
fn build_refuses_read_only_l1() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10).read_only())
        .layer(LayerSpec::memory("l2", 10))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ReadOnlyL1(s("l1")));
}

#[test]
fn build_refuses_max_weight_on_custom_layer() {
    let (clock, _hand) = manual();
    let custom = TestLayer::<u64, String>::new("remote", 10, &clock);
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::shared("remote", custom).max_weight(100, |_, v: &String| v.len() as u64))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::WeightOnCustomLayer(s("remote")));
}

#[test]
fn build_refuses_zero_max_weight() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10).max_weight(0, |_, v: &String| v.len() as u64))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroWeight(s("l1")));
}

#[test]
fn build_refuses_zero_promotion_batch() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .deferred_promotion(0)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroPromotionBatch);
}

#[test]
fn build_refuses_a_zero_maintenance_interval() {
    let err = Cache::<u64, String>::builder()
        .layer(LayerSpec::memory("l1", 10))
        .maintenance(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroMaintenanceInterval);
}

#[test]
fn build_refuses_more_than_64_layers() {
    let mut builder = Cache::<u64, String>::builder();
    for i in 0..65 {
        builder = builder.layer(LayerSpec::memory(format!("l{i}"), 1));
    }
    assert_eq!(
        builder.build().unwrap_err(),
        BuildError::TooManyLayers { max: 64, got: 65 }
    );
}

#[test]
fn build_accepts_64_layers_and_writes_them_all() {
    let mut builder = Cache::<u64, String>::builder();
    for i in 0..64 {
        builder = builder.layer(LayerSpec::memory(format!("l{i}"), 4));
    }
    let cache = builder.build().unwrap();
    let report = cache.set(1, s("one")).unwrap();
    assert_eq!(report.written.len(), 64);
    assert!(report.written.contains(63));
    assert_eq!(in_layer(&cache, "l63", 1), Some(s("one")));
}

#[test]
fn build_accepts_valid_configurations() {
    let (clock, _hand) = manual();
    let custom = TestLayer::<u64, String>::new("remote", 10, &clock);
    let cache: C = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 10).ttl(secs(60)))
        .layer(LayerSpec::memory("l2", 100).max_weight(1000, |_, v: &String| v.len() as u64))
        .layer(LayerSpec::shared("remote", custom).ttl(secs(3600)))
        .layer(LayerSpec::custom("db", NoIterLayer::default()).read_only())
        .write_mode(WriteMode::L1Only)
        .promotion(Promotion::L1Only)
        .deferred_promotion(1)
        .build()
        .unwrap();
    assert_eq!(
        cache.layer_names().collect::<Vec<_>>(),
        ["l1", "l2", "remote", "db"]
    );
    assert!(!cache.is_closed());

    // A single memory layer with default options builds too.
    let single: C = Cache::builder()
        .layer(LayerSpec::memory("only", 1))
        .build()
        .unwrap();
    single.set(1, s("x")).unwrap();
    assert_eq!(single.get(&1).unwrap(), Some(s("x")));
}

#[test]
fn build_refuses_a_capacity_beyond_the_tier_maximum() {
    let result = Cache::<u64, u64>::builder()
        .layer(LayerSpec::memory("l1", usize::MAX))
        .build();
    assert!(
        matches!(result, Err(BuildError::CapacityTooLarge { ref layer, .. }) if layer == "l1"),
        "{result:?}"
    );
}

#[test]
fn a_huge_capacity_builds_without_allocating_it_up_front() {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", 1 << 34))
        .build()
        .unwrap();
    cache.set(1, 1).unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(1));
}
