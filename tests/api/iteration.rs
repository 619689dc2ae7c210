//! Iteration: `entries`, `keys`, `for_each_in_layer`.

use strata::layer::LayerError;
use strata::{Cache, Error, LayerSpec, SetOptions};

use crate::support::*;

#[test]
fn entries_keys_and_for_each_list_a_layer() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        cache.set(1, s("a")).unwrap();
        cache.set(2, s("b")).unwrap();
        cache
            .set_with(3, s("c"), &SetOptions::new().skip("l1"))
            .unwrap();

        let mut entries = cache.entries("l1").unwrap();
        entries.sort();
        assert_eq!(entries, [(1, s("a")), (2, s("b"))]);

        let mut keys = cache.keys("l2").unwrap();
        keys.sort_unstable();
        assert_eq!(keys, [1, 2, 3]);

        let mut total = 0;
        let mut seen = Vec::new();
        cache
            .for_each_in_layer("l2", |k, v| {
                total += v.len();
                seen.push(*k);
            })
            .unwrap();
        seen.sort_unstable();
        assert_eq!((total, seen), (3, vec![1, 2, 3]));
    });
}

#[test]
fn iterating_an_unknown_layer_fails() {
    each_config(|setup| {
        let (clock, _hand) = manual();
        let cache = setup.build(&clock);
        assert!(matches!(cache.entries("l9"), Err(Error::UnknownLayer(n)) if n == "l9"));
        assert!(matches!(cache.keys("l9"), Err(Error::UnknownLayer(_))));
        assert!(matches!(
            cache.for_each_in_layer("l9", |_, _| {}),
            Err(Error::UnknownLayer(_))
        ));
    });
}

#[test]
fn iterating_a_layer_without_iteration_is_unsupported() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::custom("l2", NoIterLayer::default()))
        .build()
        .unwrap();
    cache.set(1, s("a")).unwrap();
    assert_eq!(
        in_layer(&cache, "l2", 1),
        Some(s("a")),
        "the custom layer works otherwise"
    );
    match cache.entries("l2") {
        Err(Error::Layer { layer, error }) => {
            assert_eq!(&*layer, "l2");
            assert!(matches!(error, LayerError::Unsupported));
        }
        other => panic!("expected Error::Layer(Unsupported), got {other:?}"),
    }
    assert!(matches!(
        cache.keys("l2"),
        Err(Error::Layer {
            error: LayerError::Unsupported,
            ..
        })
    ));
    assert_eq!(cache.stats().layers[1].errors, 2);
}

#[test]
fn custom_layer_without_promotion_support_is_never_promoted_into() {
    let (clock, _hand) = manual();
    let cache: C = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 10))
        .layer(LayerSpec::custom("l2", NoIterLayer::default()))
        .layer(LayerSpec::memory("l3", 10))
        .build()
        .unwrap();
    cache
        .set_with(1, s("deep"), &SetOptions::new().skip("l1").skip("l2"))
        .unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(s("deep")));
    assert_eq!(in_layer(&cache, "l1", 1), Some(s("deep")));
    assert_eq!(
        in_layer(&cache, "l2", 1),
        None,
        "the default promote declines"
    );
    let promotions: Vec<u64> = cache
        .stats()
        .layers
        .iter()
        .map(|l| l.promotions_in)
        .collect();
    assert_eq!(promotions, [1, 0, 0]);
}
