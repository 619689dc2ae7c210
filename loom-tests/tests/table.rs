//! loom models of the tier's chained table (`src/memory/table/chained.rs`), over the table
//! itself: the protocol's models (`contract.rs`) run over a linearizable stand-in, so the races
//! inside the table are checked here. One bucket, so every key shares one chain.
//!
//! - A link's memory is reused (the table's pool) only after every reader that could hold it is
//!   gone: a reader never sees a reclaimed link's key or value.
//! - A link removed or replaced without a guard (a delete's removal, a write's replacement) is
//!   not reclaimed while a reader may hold it.
//! - A lookup under the bucket's lock and without a guard (a write's) never sees a reclaimed
//!   link either: the lock keeps the chain's links from being retired.
//! - A reader standing on a link that a writer unlinks finishes its walk through the chain as it
//!   was: it never misses a key that stays present.
//!
//! Their broken twins are in `broken.rs`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model::{
    locked_read_scenario, reclaimed_links_scenario, unlink_scenario, unpinned_removal_scenario,
    unpinned_replacement_scenario, Checked,
};

#[test]
fn reclaimed_links_are_never_read() {
    loom::model(reclaimed_links_scenario);
}

#[test]
fn an_unpinned_removal_is_reclaimed_only_after_readers() {
    loom::model(unpinned_removal_scenario);
}

#[test]
fn an_unpinned_replacement_is_reclaimed_only_after_readers() {
    loom::model(unpinned_replacement_scenario);
}

#[test]
fn a_locked_read_never_reads_a_reclaimed_link() {
    loom::model(locked_read_scenario);
}

#[test]
fn a_walk_survives_unlinks() {
    loom::model(unlink_scenario);
}

#[test]
fn concurrent_writers_of_one_chain_lose_nothing() {
    loom::model(|| {
        let table = Arc::new(strata::ChainedTable::new());
        table.insert(1, Checked::new(10));
        let writer = {
            let table = table.clone();
            thread::spawn(move || table.insert(2, Checked::new(20)))
        };
        table.insert(3, Checked::new(30));
        assert!(table.remove(1));
        writer.join().unwrap();
        for (key, value) in [(2, Some(20)), (3, Some(30)), (1, None)] {
            assert_eq!(table.get(key, |v| v.map(Checked::get)), value, "key {key}");
        }
    });
}
