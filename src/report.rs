//! What an operation tells its caller beyond the value: which layers served, took or failed it.

use crate::layer::LayerError;
use std::fmt;
use std::sync::Arc;

/// A set of layers, by position (bit `i` is layer `i`; L1 is bit 0).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LayerSet(u64);

impl LayerSet {
    /// The largest number of layers a cache may have.
    pub const MAX_LAYERS: usize = 64;

    /// The empty set.
    pub const fn empty() -> Self {
        LayerSet(0)
    }

    /// Whether layer `index` is in the set.
    pub const fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    pub(crate) fn insert(&mut self, index: usize) {
        self.0 |= 1 << index;
    }

    /// Number of layers in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The layer positions in the set, L1 first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let index = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                index
            })
        })
    }
}

impl fmt::Debug for LayerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// One layer's failure during an operation.
#[derive(Debug, Clone)]
pub struct LayerFailure {
    /// Position of the layer (0 = L1).
    pub index: usize,
    /// Name of the layer.
    pub layer: Arc<str>,
    /// What the layer reported.
    pub error: LayerError,
    /// For a failed write: whether the layer was then invalidated (the key deleted there), so
    /// it cannot serve an older value later. Always `false` for reads.
    pub invalidated: bool,
}

impl fmt::Display for LayerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {:?} failed: {}", self.layer, self.error)?;
        if self.invalidated {
            write!(f, " (invalidated instead)")?;
        }
        Ok(())
    }
}

/// The outcome of a `set` or `delete` across the layers.
///
/// Every writable layer is either written, dropped (accepted, but not kept: as if evicted at
/// once), invalidated (the key removed there so that it cannot serve an older value), or failed.
/// Read-only layers are never touched.
#[derive(Debug, Clone, Default)]
pub struct WriteReport {
    /// Layers that now hold the new value (or a newer one).
    pub written: LayerSet,
    /// Layers that accepted the write but did not keep it, as if evicted at once (counted in
    /// [`LayerStats::dropped_writes`](crate::LayerStats::dropped_writes)). They hold no older
    /// value either.
    pub dropped: LayerSet,
    /// Layers from which the key was removed: by a delete, or because a write skipped them.
    pub invalidated: LayerSet,
    /// Layers that failed. Empty when the operation returned `Ok`.
    pub failures: Vec<LayerFailure>,
}

impl WriteReport {
    /// Whether every layer did what it was asked.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for WriteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "written {:?}, dropped {:?}, invalidated {:?}",
            self.written, self.dropped, self.invalidated
        )?;
        for failure in &self.failures {
            write!(f, "; {failure}")?;
        }
        Ok(())
    }
}

/// The full answer of [`Cache::lookup`](crate::Cache::lookup).
#[derive(Debug, Clone)]
pub struct Lookup<V> {
    /// The value, if a layer had it.
    pub value: Option<V>,
    /// The position of the layer that served it.
    pub served_by: Option<usize>,
    /// Layers that failed while looking (the value may still have been served by another).
    pub failures: Vec<LayerFailure>,
}
