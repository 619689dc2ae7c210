//! The tier's map behind one small interface.
//!
//! Normally this is papaya's lock-free `HashMap`, with papaya's guards (seize) keeping every
//! node a reader can see alive until the reader unpins.
//!
//! Under `--cfg loom` it is a stand-in that loom can instrument: a `loom::sync::Mutex` around a
//! `HashMap` of `Arc`'d entries. It is linearizable, gives loom a preemption point at every map
//! operation, and its guard keeps a strong reference to every entry it handed out, which is what
//! papaya's reclamation guarantees. papaya itself is tested the way its authors test it (stress
//! tests, fuzzing); loom checks *our* protocol on top of a map with papaya's interface.
//!
//! The interface is papaya's: `get`, `compute` (a closure deciding insert / remove / abort from
//! the current entry, applied atomically), `remove_if`, and iteration, each under a guard
//! whose lifetime bounds the references returned.

#[cfg(not(loom))]
pub(crate) use papaya_table::*;

#[cfg(loom)]
pub(crate) use loom_table::*;

#[cfg(not(loom))]
mod papaya_table {
    use std::borrow::Borrow;
    use std::hash::Hash;

    pub(crate) use papaya::{Compute, Operation};

    /// Entries a table is presized for at most.
    const MAX_PRESIZE: usize = 1 << 22;

    /// Retired nodes (replaced or removed) that seize collects per thread before reclaiming a
    /// batch. Readers pin with a compiler fence only (seize's `fast-barrier`), so reclaiming a
    /// batch costs the writer a `membarrier` system call that interrupts every core: the default
    /// batch of 32 made it a quarter of a two-thread write workload's time. A larger batch
    /// amortizes it; the price is up to this many retired nodes per writing thread kept alive.
    const RETIRE_BATCH: usize = 512;

    /// A pinned section: references returned under it stay valid until it is dropped.
    pub(crate) type TableGuard<'a> = papaya::LocalGuard<'a>;

    pub(crate) struct Table<K, V> {
        map: papaya::HashMap<K, V, ahash::RandomState>,
    }

    impl<K: Hash + Eq + 'static, V: 'static> Table<K, V> {
        pub(crate) fn new(capacity: usize, hasher: ahash::RandomState) -> Self {
            Table {
                // Presized for the tier's capacity (up to a limit, so a huge capacity used as a
                // weight-only bound does not allocate a huge table): a bounded cache at capacity
                // then churns at a stable table size (papaya rehashes tombstones away in place
                // when the table is under half full instead of growing it).
                map: papaya::HashMap::builder()
                    .hasher(hasher)
                    .capacity(capacity.min(MAX_PRESIZE))
                    .collector(seize::Collector::new().batch_size(RETIRE_BATCH))
                    .build(),
            }
        }

        #[inline]
        pub(crate) fn guard(&self) -> TableGuard<'_> {
            self.map.guard()
        }

        #[inline]
        pub(crate) fn get<'g, Q>(&self, key: &Q, guard: &'g TableGuard<'_>) -> Option<&'g V>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.map.get(key, guard)
        }

        #[inline]
        pub(crate) fn compute<'g, F, T>(
            &self,
            key: K,
            compute: F,
            guard: &'g TableGuard<'_>,
        ) -> Compute<'g, K, V, T>
        where
            F: FnMut(Option<(&'g K, &'g V)>) -> Operation<V, T>,
        {
            self.map.compute(key, compute, guard)
        }

        #[inline]
        pub(crate) fn remove_if<'g, Q, F>(
            &self,
            key: &Q,
            should_remove: F,
            guard: &'g TableGuard<'_>,
        ) -> Result<Option<(&'g K, &'g V)>, (&'g K, &'g V)>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
            F: FnMut(&K, &V) -> bool,
        {
            self.map.remove_if(key, should_remove, guard)
        }

        /// Unit tests only: papaya's iteration never ends on a table whose keys share a hash
        /// (the tier lists its entries through the policy's queues instead; see
        /// `MemoryLayer::walk_residents`).
        #[cfg(test)]
        pub(crate) fn for_each<'g>(
            &self,
            guard: &'g TableGuard<'_>,
            mut f: impl FnMut(&'g K, &'g V),
        ) {
            for (key, value) in self.map.iter(guard) {
                f(key, value);
            }
        }
    }
}

#[cfg(loom)]
#[allow(dead_code)] // The stand-in mirrors papaya's whole interface, not only what is used.
mod loom_table {
    use loom::sync::Mutex;
    use std::any::Any;
    use std::borrow::Borrow;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::marker::PhantomData;
    use std::sync::Arc;

    /// papaya's `Operation`, for the stand-in.
    pub(crate) enum Operation<V, T> {
        Insert(V),
        Remove,
        Abort(T),
    }

    /// papaya's `Compute`, for the stand-in.
    pub(crate) enum Compute<'g, K, V, T> {
        Inserted(&'g K, &'g V),
        Updated {
            old: (&'g K, &'g V),
            new: (&'g K, &'g V),
        },
        Removed(&'g K, &'g V),
        Aborted(T),
    }

    /// Keeps every entry handed out alive until dropped (what seize does for papaya).
    pub(crate) struct TableGuard<'a> {
        retained: RefCell<Vec<Arc<dyn Any>>>,
        _table: PhantomData<&'a ()>,
    }

    pub(crate) struct Table<K, V> {
        map: Mutex<HashMap<K, Arc<(K, V)>, ahash::RandomState>>,
    }

    impl TableGuard<'_> {
        fn retain<'g, K: 'static, V: 'static>(&'g self, entry: &Arc<(K, V)>) -> (&'g K, &'g V) {
            let pointer = Arc::as_ptr(entry);
            self.retained
                .borrow_mut()
                .push(entry.clone() as Arc<dyn Any>);
            // SAFETY: the guard now owns a strong reference to the entry, and only drops it when
            // the guard itself is dropped, which the `'g` borrow of the guard outlives. The entry
            // is never mutated after creation.
            unsafe { (&(*pointer).0, &(*pointer).1) }
        }
    }

    impl<K: Hash + Eq + Clone + 'static, V: 'static> Table<K, V> {
        pub(crate) fn new(_capacity: usize, hasher: ahash::RandomState) -> Self {
            Table {
                map: Mutex::new(HashMap::with_hasher(hasher)),
            }
        }

        pub(crate) fn guard(&self) -> TableGuard<'_> {
            TableGuard {
                retained: RefCell::new(Vec::new()),
                _table: PhantomData,
            }
        }

        pub(crate) fn get<'g, Q>(&self, key: &Q, guard: &'g TableGuard<'_>) -> Option<&'g V>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            let map = self.map.lock().unwrap();
            map.get(key).map(|entry| guard.retain(entry).1)
        }

        pub(crate) fn compute<'g, F, T>(
            &self,
            key: K,
            mut compute: F,
            guard: &'g TableGuard<'_>,
        ) -> Compute<'g, K, V, T>
        where
            F: FnMut(Option<(&'g K, &'g V)>) -> Operation<V, T>,
        {
            let mut map = self.map.lock().unwrap();
            let current = map.get(&key).map(|entry| guard.retain(entry));
            match compute(current) {
                Operation::Insert(value) => {
                    let entry = Arc::new((key.clone(), value));
                    map.insert(key, entry.clone());
                    let new = guard.retain(&entry);
                    match current {
                        Some(old) => Compute::Updated { old, new },
                        None => Compute::Inserted(new.0, new.1),
                    }
                }
                Operation::Remove => match map.remove(&key) {
                    Some(entry) => {
                        let (k, v) = guard.retain(&entry);
                        Compute::Removed(k, v)
                    }
                    None => panic!("Cannot remove `None` entry."),
                },
                Operation::Abort(value) => Compute::Aborted(value),
            }
        }

        pub(crate) fn remove_if<'g, Q, F>(
            &self,
            key: &Q,
            mut should_remove: F,
            guard: &'g TableGuard<'_>,
        ) -> Result<Option<(&'g K, &'g V)>, (&'g K, &'g V)>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
            F: FnMut(&K, &V) -> bool,
        {
            let mut map = self.map.lock().unwrap();
            let Some(entry) = map.get(key).cloned() else {
                return Ok(None);
            };
            let current = guard.retain(&entry);
            if should_remove(current.0, current.1) {
                map.remove(key);
                Ok(Some(current))
            } else {
                Err(current)
            }
        }

        pub(crate) fn for_each<'g>(
            &self,
            guard: &'g TableGuard<'_>,
            mut f: impl FnMut(&'g K, &'g V),
        ) {
            let entries: Vec<_> = self.map.lock().unwrap().values().cloned().collect();
            for entry in &entries {
                let (key, value) = guard.retain(entry);
                f(key, value);
            }
        }
    }
}
