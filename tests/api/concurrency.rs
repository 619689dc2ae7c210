//! Thread-safety: `Cache` is `Clone + Send + Sync`, and usable from several threads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use strata::{Cache, LayerSpec, SetOptions};

use crate::support::*;

const fn assert_clone_send_sync<T: Clone + Send + Sync + 'static>() {}
const _: () = assert_clone_send_sync::<Cache<u64, String>>();
const _: () = assert_clone_send_sync::<Cache<String, Vec<u8>>>();

#[test]
fn cache_is_usable_from_several_threads() {
    let (clock, _hand) = manual();
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 64))
        .layer(LayerSpec::memory("l2", 10_000))
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || {
                for i in 0..500u64 {
                    let key = t * 1000 + i;
                    cache.set(key, key * 2).unwrap();
                    assert_eq!(cache.get(&key).unwrap(), Some(key * 2));
                    let _ = cache.get(&(i % 100)).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for t in 0..4u64 {
        let keys: Vec<u64> = (0..500).map(|i| t * 1000 + i).collect();
        for (key, value) in keys.iter().zip(cache.get_many(&keys)) {
            assert_eq!(value.unwrap(), Some(key * 2), "key {key}");
        }
    }
    assert!(cache.stats().layers[0].len.unwrap() <= 64);
}

#[test]
fn readers_never_see_a_value_older_than_a_completed_write() {
    let (clock, _hand) = manual();
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(clock)
        .layer(LayerSpec::memory("l1", 16))
        .layer(LayerSpec::memory("l2", 1_000))
        .build()
        .unwrap();
    let committed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    cache.set(0, 0).unwrap();
    let writer = {
        let (cache, committed, stop) = (cache.clone(), committed.clone(), stop.clone());
        thread::spawn(move || {
            for seq in 1..=3_000u64 {
                // Alternate writes that leave L1 empty (so readers promote from L2) with
                // ordinary write-through ones.
                let options = if seq % 2 == 0 {
                    SetOptions::new().skip("l1")
                } else {
                    SetOptions::new()
                };
                cache.set_with(0, seq, &options).unwrap();
                committed.store(seq, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let reader = {
        let (cache, committed, stop) = (cache.clone(), committed.clone(), stop.clone());
        thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) || reads < 100 {
                let floor = committed.load(Ordering::SeqCst);
                let value = cache.get(&0).unwrap().expect("never evicted: one key");
                assert!(value >= floor, "read {value} after {floor} was committed");
                reads += 1;
            }
        })
    };
    writer.join().unwrap();
    reader.join().unwrap();
    assert_eq!(cache.get(&0).unwrap(), Some(3_000));
}
