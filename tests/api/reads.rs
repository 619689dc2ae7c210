//! Reads: `get`, `lookup`, `contains_key` and `get_from_layer`.

use strata::{Error, SetOptions};

use crate::support::*;

#[test]
fn get_of_missing_key_is_ok_none() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        assert_eq!(cache.get(&42).unwrap(), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (0, 1));
        assert_eq!((stats.layers[0].misses, stats.layers[1].misses), (1, 1));
    });
}

#[test]
fn exists_reports_presence_in_any_layer() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        assert!(!cache.contains_key(&1).unwrap());
        cache.set(1, s("one")).unwrap();
        assert!(cache.contains_key(&1).unwrap());
        cache
            .set_with(2, s("two"), &SetOptions::new().skip("l1"))
            .unwrap();
        assert!(cache.contains_key(&2).unwrap());
        cache.delete(&1).unwrap();
        assert!(!cache.contains_key(&1).unwrap());
    });
}

#[test]
fn exists_does_not_promote() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache
            .set_with(1, s("one"), &SetOptions::new().skip("l1"))
            .unwrap();
        assert_eq!(in_layer(&cache, "l1", 1), None);
        assert!(cache.contains_key(&1).unwrap());
        assert_eq!(in_layer(&cache, "l1", 1), None);
        let stats = cache.stats();
        assert_eq!(stats.layers[0].promotions_in, 0);
        // Not counted as a request either.
        assert_eq!((stats.hits, stats.misses), (0, 0));
    });
}

#[test]
fn try_get_names_the_serving_layer() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("one")).unwrap();
        cache
            .set_with(2, s("two"), &SetOptions::new().skip("l1"))
            .unwrap();
        let hit1 = cache.lookup(&1).unwrap();
        assert_eq!((hit1.value, hit1.served_by), (Some(s("one")), Some(0)));
        let hit2 = cache.lookup(&2).unwrap();
        assert_eq!((hit2.value, hit2.served_by), (Some(s("two")), Some(1)));
        let miss = cache.lookup(&3).unwrap();
        assert_eq!((miss.value, miss.served_by), (None, None));
        assert!(miss.failures.is_empty());
    });
}

#[test]
fn get_from_layer_does_not_count_or_promote() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache
            .set_with(1, s("one"), &SetOptions::new().skip("l1"))
            .unwrap();
        assert_eq!(in_layer(&cache, "l2", 1), Some(s("one")));
        assert_eq!(in_layer(&cache, "l1", 1), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (0, 0));
        assert_eq!(stats.layers[0].promotions_in, 0);
        assert!(
            matches!(cache.get_from_layer("nope", &1), Err(Error::UnknownLayer(name)) if name == "nope")
        );
    });
}

/// A cache of one memory layer answers a miss without the read path (`Cache::get`'s one-tier
/// shortcut): the request's miss and the layer's are counted as the read path counts them.
#[test]
fn a_one_layer_cache_counts_its_misses_and_hits() {
    let cache: strata::Cache<u64, u64> = strata::Cache::builder()
        .layer(strata::LayerSpec::memory("l1", 16))
        .build()
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), None);
    cache.set(1, 10).unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(10));
    assert_eq!(cache.get(&2).unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
    assert_eq!((stats.layers[0].hits, stats.layers[0].misses), (1, 2));
}
