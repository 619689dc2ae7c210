//! The models have teeth: with ticket validation switched off (a loom-only test switch in
//! strata), loom must find the interleavings where a stale promotion outlives a `delete`, or a
//! `set` whose L1 copy was evicted or expired meanwhile (the ABA case), immediate or queued;
//! and with each other protection switched off, the interleaving it exists for.
//!
//! A separate test binary, so no switch can reach the real models; within it `break_for_test`
//! runs one twin at a time, with its switch alone.
#![cfg(loom)]

use loom::thread;
use loom_tests::model::{
    below_l1, cache, in_layer, promotion_racing_delete_scenario, reclaimed_links_scenario,
    set_racing_a_second_delete_scenario, shared_cache, unlink_scenario, unpinned_removal_scenario,
    unpinned_replacement_scenario,
};

#[test]
#[should_panic(expected = "stale value after delete returned")]
fn unvalidated_promotion_racing_delete_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::PromotionValidation);
    loom::model(promotion_racing_delete_scenario);
}

#[test]
#[should_panic(expected = "stale value after set returned")]
fn unvalidated_promotion_racing_eviction_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::PromotionValidation);
    loom::model(|| {
        let (cache, _) = cache(&[1, 4], None);
        below_l1(&cache, 1, 1);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1).unwrap())
        };
        cache.set(1, 2).unwrap();
        cache.set(2, 9).unwrap(); // evicts key 1 from L1
        reader.join().unwrap();
        assert_eq!(
            cache.get(&1).unwrap(),
            Some(2),
            "stale value after set returned"
        );
    });
}

#[test]
#[should_panic(expected = "stale value after the set's value expired")]
fn unvalidated_queued_promotion_applied_late_is_caught() {
    use std::time::Duration;
    use strata::SetOptions;
    let _broken = strata::break_for_test(strata::Broken::PromotionValidation);
    loom::model(|| {
        let (cache, hand) = cache(&[4, 4], Some(64));
        below_l1(&cache, 1, 1);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1).unwrap())
        };
        cache
            .set_with(1, 2, &SetOptions::new().ttl(Duration::from_millis(10)))
            .unwrap();
        hand.advance(Duration::from_millis(10)); // the new value expires in every layer
        assert_eq!(cache.get(&1).unwrap(), None); // and this read removes it
        reader.join().unwrap();
        cache.run_pending_tasks();
        assert_eq!(
            cache.get(&1).unwrap(),
            None,
            "stale value after the set's value expired"
        );
    });
}

#[test]
#[should_panic(expected = "the filter hid a value the layer holds")]
#[cfg_attr(
    strata_loom_chained,
    ignore = "over the chained table loom's bounded search does not reach this interleaving; \
              the filter's order does not depend on the map, and this twin runs over the stand-in"
)]
fn filter_bits_set_after_the_write_are_caught() {
    use loom_tests::model::{filtered_cache, spawn_write_below_l1};
    let _broken = strata::break_for_test(strata::Broken::FilterInsertAfterWrite);
    loom::model(|| {
        let cache = filtered_cache();
        let writer = spawn_write_below_l1(&cache, 1, 2);
        if in_layer(&cache, "l2", 1) == Some(2) {
            assert_eq!(
                cache.get(&1).unwrap(),
                Some(2),
                "the filter hid a value the layer holds"
            );
        }
        writer.join().unwrap();
    });
}

#[test]
#[should_panic(expected = "the rebuilt filter lost a key")]
fn filter_rebuild_without_draining_inserts_is_caught() {
    use loom_tests::model::{filtered_cache, spawn_write_below_l1};
    let _broken = strata::break_for_test(strata::Broken::FilterRebuildWithoutDrain);
    loom::model(|| {
        let cache = filtered_cache();
        let writer = spawn_write_below_l1(&cache, 1, 2);
        cache.rebuild_filters();
        writer.join().unwrap();
        assert_eq!(
            cache.get(&1).unwrap(),
            Some(2),
            "the rebuilt filter lost a key"
        );
    });
}

#[test]
#[should_panic(expected = "went back in time")]
fn unvalidated_late_write_after_invalidation_is_caught() {
    use std::time::Duration;
    use strata::{Cache, Clock, LayerSpec, SetOptions};
    let _broken = strata::break_for_test(strata::Broken::PromotionValidation);
    loom::model(|| {
        let (clock, hand) = Clock::manual();
        let cache: Cache<u64, u64> = Cache::builder()
            .clock(clock)
            .layer(LayerSpec::memory("l1", 4).ttl(Duration::from_secs(1)))
            .layer(LayerSpec::memory("l2", 4).ttl(Duration::from_secs(60)))
            .build()
            .unwrap();
        let other = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.set(1, 1).unwrap();
            })
        };
        cache.set_with(1, 2, &SetOptions::new().l1_only()).unwrap();
        other.join().unwrap();
        let first = cache.get(&1).unwrap();
        hand.advance(Duration::from_secs(2));
        let second = cache.get(&1).unwrap();
        assert!(
            second.is_none() || second == first,
            "went back in time: {first:?} then {second:?}"
        );
    });
}

#[test]
#[should_panic(expected = "new then old")]
fn read_without_recheck_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::ReadRecheck);
    loom::model(|| {
        let (cache, _) = cache(&[4, 4], None);
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.set(1, 1).unwrap();
                cache.set(1, 2).unwrap();
            })
        };
        let first = cache.get(&1).unwrap();
        let second = cache.get(&1).unwrap();
        writer.join().unwrap();
        assert!(
            !(first == Some(2) && second == Some(1)),
            "new then old: {first:?} then {second:?}"
        );
    });
}

/// The twin of `set_racing_a_second_delete`: the set's insert into the place the first delete
/// emptied must validate against the floor the second delete raised.
#[test]
#[should_panic(expected = "layers disagree")]
fn insert_after_a_second_delete_without_validation_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::PromotionValidation);
    loom::model(set_racing_a_second_delete_scenario);
}

#[test]
#[should_panic(expected = "stale value after invalidation")]
fn unclamped_promotion_of_a_foreign_version_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::PromotionUnclamped);
    loom::model(|| {
        let (cache, store) = shared_cache(1);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1).unwrap())
        };
        store.overwrite(2);
        cache
            .delete_with(&1, &strata::DeleteOptions::new().local_only())
            .unwrap();
        reader.join().unwrap();
        assert_ne!(
            in_layer(&cache, "l1", 1),
            Some(1),
            "stale value after invalidation"
        );
    });
}

#[test]
#[should_panic(expected = "a reader saw a reclaimed link")]
fn links_reclaimed_without_grace_are_caught() {
    let _broken = strata::break_for_test(strata::Broken::TableReclaimWithoutGrace);
    loom::model(reclaimed_links_scenario);
}

#[test]
#[should_panic(expected = "a reader saw a reclaimed link")]
fn unpinned_removals_reclaimed_without_grace_are_caught() {
    let _broken = strata::break_for_test(strata::Broken::TableReclaimWithoutGrace);
    loom::model(unpinned_removal_scenario);
}

#[test]
#[should_panic(expected = "a reader saw a reclaimed link")]
fn unpinned_replacements_reclaimed_without_grace_are_caught() {
    let _broken = strata::break_for_test(strata::Broken::TableReclaimWithoutGrace);
    loom::model(unpinned_replacement_scenario);
}

#[test]
#[should_panic(expected = "a present key was missed")]
fn unlinks_that_cut_a_walk_are_caught() {
    let _broken = strata::break_for_test(strata::Broken::TableUnlinkClearsNext);
    loom::model(unlink_scenario);
}
