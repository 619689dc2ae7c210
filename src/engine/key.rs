//! A key as one operation carries it: borrowed from the caller (or owned, for a `set`), hashed
//! once, owned on demand.
//!
//! The engine hashes a key at most once per operation (with the cache's hasher), on first use,
//! and hands the hash to the write stripes and to strata's memory tiers, which use the same
//! hasher for their policy shards and ghost. A memory tier's map hashes the key again, with
//! the same hasher, to find its bucket. A read served by a memory tier needs no hash of ours
//! at all, and computes none. An owned key is made
//! (`ToOwned`) only where one is needed, at most once per operation: a custom layer's `&K`
//! argument, or an insert into a memory tier's map. A lookup served by a memory tier never
//! makes one.

use std::borrow::Borrow;
use std::cell::{Cell, OnceCell};
use std::hash::Hash;

/// The key bounds of every lookup: `Q` is how the caller names the key (`str` for a `String`
/// key), and an owned `K` can be made from it.
pub(crate) trait KeyRef<K>: Hash + Eq + ToOwned<Owned = K> {}

impl<K, Q> KeyRef<K> for Q
where
    K: Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
}

/// One operation's key.
pub(crate) struct Key<'a, K, Q: ?Sized> {
    /// `None` when the operation was handed the owned key (then `owned` holds it).
    borrowed: Option<&'a Q>,
    hasher: &'a ahash::RandomState,
    /// The hash once computed. A `Cell<Option<u64>>` rather than a `OnceCell`: the check and the
    /// store inline into the caller, where `OnceCell::get_or_init` calls an out-of-line
    /// initializer (about 50 instructions per miss, callgrind).
    hash: Cell<Option<u64>>,
    owned: OnceCell<K>,
}

impl<'a, K, Q> Key<'a, K, Q>
where
    K: Borrow<Q>,
    Q: KeyRef<K> + ?Sized,
{
    /// A key the caller lent.
    #[inline]
    pub(crate) fn new(borrowed: &'a Q, hasher: &'a ahash::RandomState) -> Self {
        Key {
            borrowed: Some(borrowed),
            hasher,
            hash: Cell::new(None),
            owned: OnceCell::new(),
        }
    }

    /// A key the caller handed over (a `set`): no clone is made to own it.
    #[inline]
    pub(crate) fn from_owned(owned: K, hasher: &'a ahash::RandomState) -> Self {
        // A write needs the hash at once (its stripe).
        let hash = Cell::new(Some(hasher.hash_one(owned.borrow())));
        Key {
            borrowed: None,
            hasher,
            hash,
            owned: OnceCell::from(owned),
        }
    }

    #[inline]
    pub(crate) fn borrowed(&self) -> &Q {
        match self.borrowed {
            Some(borrowed) => borrowed,
            None => self.owned().borrow(),
        }
    }

    /// The key's hash under the cache's hasher, computed on first use.
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        match self.hash.get() {
            Some(hash) => hash,
            None => {
                let hash = self.hasher.hash_one(self.borrowed());
                self.hash.set(Some(hash));
                hash
            }
        }
    }

    /// The key's hash if something already computed it: a memory tier hashes the key itself
    /// otherwise, without caching it here (an L1 hit needs it nowhere else).
    #[inline]
    pub(crate) fn known_hash(&self) -> Option<u64> {
        self.hash.get()
    }

    /// The owned key, made on first use.
    pub(crate) fn owned(&self) -> &K {
        self.owned.get_or_init(|| match self.borrowed {
            Some(borrowed) => borrowed.to_owned(),
            None => unreachable!("a key without a borrowed form is created owned"),
        })
    }
}
