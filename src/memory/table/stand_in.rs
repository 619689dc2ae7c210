//! The map under `--cfg loom`: a `loom::sync::Mutex` around a `HashMap` of `Arc`'d entries, with
//! the chained table's interface (see the parent module). Its guard keeps a strong reference to
//! every entry it handed out, which is what the chained table's reclamation guarantees.

use super::{Compute, Operation};
use loom::sync::Mutex;
use std::any::Any;
use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

/// Keeps every entry handed out alive until dropped (what seize does for the chained table).
pub(crate) struct TableGuard<'a> {
    retained: RefCell<Vec<Arc<dyn Any>>>,
    _table: PhantomData<&'a ()>,
}

/// The entries, each shared with the guards that handed it out.
type Entries<K, V> = HashMap<K, Arc<(K, V)>, ahash::RandomState>;

pub(crate) struct Table<K, V> {
    map: Mutex<Entries<K, V>>,
    hasher: ahash::RandomState,
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
            map: Mutex::new(HashMap::with_hasher(hasher.clone())),
            hasher,
        }
    }

    pub(crate) fn guard(&self) -> TableGuard<'_> {
        TableGuard {
            retained: RefCell::new(Vec::new()),
            _table: PhantomData,
        }
    }

    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn prefetch(&self, _hash: u64) {}

    pub(crate) fn get_hashed<'g, Q>(
        &self,
        key: &Q,
        _hash: u64,
        guard: &'g TableGuard<'_>,
    ) -> Option<&'g V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key, guard)
    }

    pub(crate) fn get<'g, Q>(&self, key: &Q, guard: &'g TableGuard<'_>) -> Option<&'g V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.lock().unwrap();
        map.get(key).map(|entry| guard.retain(entry).1)
    }

    pub(crate) fn remove_unpinned<Q, R>(
        &self,
        key: &Q,
        _hash: u64,
        should_remove: impl FnOnce(&V) -> bool,
        removed: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.map.lock().unwrap();
        let entry = map.get(key)?.clone();
        if !should_remove(&entry.1) {
            return None;
        }
        map.remove(key);
        Some(removed(&entry.1))
    }

    pub(crate) fn compute<'g, F, T>(
        &self,
        key: K,
        _hash: u64,
        compute: F,
        guard: &'g TableGuard<'_>,
    ) -> Compute<'g, K, V, T>
    where
        F: FnOnce(Option<(&'g K, &'g V)>) -> Operation<V, T>,
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
            Operation::Abort(value) => Compute::Aborted(value),
            Operation::Remove(value) => {
                map.remove(&key);
                Compute::Aborted(value)
            }
        }
    }

    pub(crate) fn write_unpinned<T>(
        &self,
        key: &K,
        _hash: u64,
        decide: impl FnOnce(Option<&V>) -> Operation<V, T>,
        stored: impl FnOnce(Option<&V>, &V) -> T,
    ) -> T {
        let mut map = self.map.lock().unwrap();
        let current = map.get(key).cloned();
        match decide(current.as_deref().map(|entry| &entry.1)) {
            Operation::Abort(result) => result,
            Operation::Remove(result) => {
                map.remove(key);
                result
            }
            Operation::Insert(value) => {
                let entry = Arc::new((key.clone(), value));
                let result = stored(current.as_deref().map(|entry| &entry.1), &entry.1);
                map.insert(key.clone(), entry);
                result
            }
        }
    }

    pub(crate) fn remove_if<'g, Q, F>(
        &self,
        key: &Q,
        _hash: u64,
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

    #[allow(dead_code)] // the chained table's test-only iteration, mirrored
    pub(crate) fn for_each<'g>(&self, guard: &'g TableGuard<'_>, mut f: impl FnMut(&'g K, &'g V)) {
        let entries: Vec<_> = self.map.lock().unwrap().values().cloned().collect();
        for entry in &entries {
            let (key, value) = guard.retain(entry);
            f(key, value);
        }
    }
}
