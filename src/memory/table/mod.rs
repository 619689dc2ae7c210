//! The tier's map behind one small interface.
//!
//! Normally this is [`chained`]: buckets of linked entries, read without locks, written under a
//! per-bucket lock, with seize (papaya's reclamation scheme) keeping every entry a reader can
//! see alive until the reader unpins, and retired entries' memory reused for the next inserts.
//!
//! Under `--cfg loom` it is a stand-in that loom can instrument: a `loom::sync::Mutex` around a
//! `HashMap` of `Arc`'d entries. It is linearizable, gives loom a preemption point at every map
//! operation, and its guard keeps a strong reference to every entry it handed out, which is what
//! seize's reclamation guarantees. The chained table's own races (a reader walking a chain that
//! a writer changes, an entry's memory reused) have their own loom models over the table itself
//! (`chained::model`, `loom-tests/tests/table.rs`); the protocol's models run over the
//! stand-in, and again over the chained table itself with `--cfg strata_loom_chained` (CI runs
//! both: the stand-in's small state space lets loom explore the protocol's interleavings
//! deeply; the chained table's run checks them against the table that ships, its bucket locks,
//! floors raised under them and unpinned writes included).
//!
//! The interface: `get`, `compute` (a closure deciding to insert, remove or abort from the
//! current entry, applied atomically), `remove_if`, and iteration in tests, each under a guard
//! whose lifetime bounds the references returned; and the writes that need no guard because
//! they keep no reference past the bucket lock: `write_unpinned` and `remove_unpinned`.

// Under loom the chained table is built for its own models (`chained::model`), and with
// `--cfg strata_loom_chained` it is the tier's map in the protocol's models too (see above).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod chained;
mod pool;
#[cfg(any(not(loom), strata_loom_chained))]
pub(crate) use chained::{Table, TableGuard};

#[cfg(all(loom, not(strata_loom_chained)))]
mod stand_in;
#[cfg(all(loom, not(strata_loom_chained)))]
pub(crate) use stand_in::{Table, TableGuard};

/// What a `compute` or `write_unpinned` closure decides for the key's current entry.
pub(crate) enum Operation<V, T> {
    /// Store this value: replaces the current entry, or inserts one.
    Insert(V),
    /// Leave the map as it is and return this.
    Abort(T),
    /// Unlink the current entry (if there is one) and return this.
    Remove(T),
}

/// What a `compute` did, with references valid for the guard's lifetime.
pub(crate) enum Compute<'g, K, V, T> {
    Inserted(&'g K, &'g V),
    Updated {
        old: (&'g K, &'g V),
        new: (&'g K, &'g V),
    },
    /// The closure aborted, or removed the entry (`Operation::Remove`).
    Aborted(T),
}
