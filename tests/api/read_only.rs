//! Read-only layers: served and promoted from, never written, invalidated or promoted into.

use std::sync::Arc;

use strata::layer::{Entry, Layer, Ticket, Timestamp};
use strata::{Cache, Clock, LayerSpec, SetOptions};

use crate::support::*;

/// l1 memory over a read-only test layer "db".
fn over_read_only(clock: &Clock) -> (C, Arc<TestLayer<u64, String>>) {
    let db = TestLayer::new("db", 1000, clock);
    let cache = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("db", db.clone()).read_only())
        .build()
        .unwrap();
    (cache, db)
}

#[test]
fn read_only_layer_is_never_written_by_set() {
    let (clock, _hand) = manual();
    let (cache, db) = over_read_only(&clock);
    let report = cache.set(1, s("one")).unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert!(report.invalidated.is_empty());
    assert_eq!(db.peek(&1, clock.now()), None);
    // Not in L1-only mode either (no invalidation).
    db.put(2, s("db-two"));
    let report = cache
        .set_with(2, s("two"), &SetOptions::new().l1_only())
        .unwrap();
    assert!(report.invalidated.is_empty());
    assert_eq!(db.peek(&2, clock.now()), Some(s("db-two")));
}

#[test]
fn read_only_layer_is_never_invalidated_by_delete() {
    let (clock, _hand) = manual();
    let (cache, db) = over_read_only(&clock);
    db.put(1, s("db-one"));
    let report = cache.delete(&1).unwrap();
    assert_eq!(layers_of(report.invalidated), [0]);
    assert_eq!(db.peek(&1, clock.now()), Some(s("db-one")));
    // Skipping it by name is allowed and does nothing to it.
    let report = cache
        .set_with(1, s("x"), &SetOptions::new().skip("db"))
        .unwrap();
    assert_eq!(layers_of(report.written), [0]);
    assert!(report.invalidated.is_empty());
    assert_eq!(db.peek(&1, clock.now()), Some(s("db-one")));
}

#[test]
fn read_only_layer_values_are_served_and_promoted_into_l1() {
    let (clock, _hand) = manual();
    let (cache, db) = over_read_only(&clock);
    db.put(1, s("from-db"));
    let lookup = cache.lookup(&1).unwrap();
    assert_eq!(
        (lookup.value, lookup.served_by),
        (Some(s("from-db")), Some(1))
    );
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("from-db")));
    assert_eq!(cache.stats().layers[0].promotions_in, 1);
    assert_eq!(cache.lookup(&1).unwrap().served_by, Some(0));
}

#[test]
fn read_only_layer_is_never_promoted_into() {
    let (clock, _hand) = manual();
    let db = TestLayer::new("db", 1000, &clock);
    let cache: C = Cache::builder()
        .clock(clock.clone())
        .layer(LayerSpec::memory("l1", 100))
        .layer(LayerSpec::shared("db", db.clone()).read_only())
        .layer(LayerSpec::memory("l3", 100))
        .build()
        .unwrap();
    let report = cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1"))
        .unwrap();
    assert_eq!(layers_of(report.written), [2]);
    assert_eq!(cache.get(&1).unwrap(), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(db.peek(&1, clock.now()), None);
    let stats = cache.stats();
    assert_eq!(stats.layers[0].promotions_in, 1);
    assert_eq!(stats.layers[1].promotions_in, 0);
}

/// A read-only source of truth reporting versions of its own (timestamps) must not make later
/// writes of the cache look older once its value was promoted.
#[test]
fn foreign_versions_from_a_source_layer_do_not_block_later_writes() {
    let source = Arc::new(NoIterLayer::default());
    source
        .set(
            &7,
            Entry {
                value: "db".to_string(),
                version: 1_700_000_000_000,
                expires_at: Timestamp::NEVER,
            },
            &Ticket::unconditional(),
        )
        .unwrap();
    let cache: Cache<u64, String> = Cache::builder()
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::shared("db", source.clone()).read_only())
        .build()
        .unwrap();
    assert_eq!(cache.get(&7).unwrap().as_deref(), Some("db"));
    assert_eq!(
        cache.get_from_layer("l1", &7).unwrap().as_deref(),
        Some("db"),
        "promoted"
    );
    cache.set(7, "new".to_string()).unwrap();
    assert_eq!(cache.get(&7).unwrap().as_deref(), Some("new"));
}
