//! Typed errors: what a layer reports, what an operation returns, what the builder refuses.

use crate::layer::LayerError;
use crate::report::{LayerFailure, WriteReport};
use std::sync::Arc;
use thiserror::Error;

/// The error of a cache operation.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum Error {
    /// The cache was closed; no operation runs after [`close`](crate::Cache::close).
    #[error("the cache is closed")]
    Closed,
    /// An option or argument named a layer the cache does not have.
    #[error("no layer named {0:?}")]
    UnknownLayer(String),
    /// A per-call TTL below the clock's resolution (1 ms): the entry would expire as written.
    #[error("a TTL must be at least 1 ms")]
    ZeroTtl,
    /// A read found no value and at least one layer that might have held it failed.
    #[error("no layer could serve the key and {} layer(s) failed: {}", .0.len(), first_failure(.0))]
    Unavailable(Vec<LayerFailure>),
    /// A write or delete did not reach every layer it had to. The report says which layers
    /// took it, which failed, and whether a failed layer was at least invalidated.
    #[error("the write did not reach every layer: {0}")]
    Incomplete(WriteReport),
    /// A layer refused an operation asked of it directly (for example iteration).
    #[error("layer {layer:?}: {error}")]
    Layer {
        /// The layer's name.
        layer: Arc<str>,
        /// What it reported.
        error: LayerError,
    },
}

fn first_failure(failures: &[LayerFailure]) -> String {
    failures
        .first()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Why a [`CacheBuilder`](crate::CacheBuilder) refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A cache needs at least one layer.
    #[error("a cache needs at least one layer")]
    NoLayers,
    /// More layers than a [`LayerSet`](crate::LayerSet) can name.
    #[error("at most {max} layers are supported, got {got}")]
    TooManyLayers {
        /// The limit.
        max: usize,
        /// What was configured.
        got: usize,
    },
    /// A layer name was empty.
    #[error("layer {index} has an empty name")]
    EmptyName {
        /// Position of the layer (0 = L1).
        index: usize,
    },
    /// Two layers share a name.
    #[error("two layers are named {0:?}")]
    DuplicateName(String),
    /// A memory layer with capacity 0 can hold nothing.
    #[error("layer {0:?} has capacity 0")]
    ZeroCapacity(String),
    /// A memory layer's capacity is beyond what a tier can address.
    #[error("layer {layer:?} has a capacity above the maximum of {max}")]
    CapacityTooLarge {
        /// The layer's name.
        layer: String,
        /// The largest accepted capacity.
        max: usize,
    },
    /// A memory layer's maximum weight is 0.
    #[error("layer {0:?} has a maximum weight of 0")]
    ZeroWeight(String),
    /// A zero TTL would make every entry expire as it is written.
    #[error("layer {0:?} has a TTL of zero")]
    ZeroTtl(String),
    /// L1 must be writable: promotions and L1-only writes go there.
    #[error("the first layer ({0:?}) is read-only; L1 must be writable")]
    ReadOnlyL1(String),
    /// A maximum weight needs a weigher to measure entries.
    #[error("layer {0:?} has a maximum weight but no weigher")]
    WeightWithoutWeigher(String),
    /// Weight bounds apply to in-memory tiers only.
    #[error("layer {0:?} is a custom layer; only memory layers take a maximum weight")]
    WeightOnCustomLayer(String),
    /// Deferred promotion needs a batch size of at least one.
    #[error("the deferred-promotion batch size must be at least 1")]
    ZeroPromotionBatch,
    /// A maintenance interval of zero would spin a core.
    #[error("the maintenance interval must be at least 1 ms")]
    ZeroMaintenanceInterval,
    /// The maintenance thread could not be started.
    #[error("the maintenance thread could not be started: {0}")]
    MaintenanceThread(String),
    /// A negative filter was asked for L1, which every lookup asks first anyway.
    #[error("layer `{0}` is L1: a negative filter there would save nothing")]
    FilterOnL1(String),
    /// A negative filter was asked for a read-only layer: others write it, so the filter would
    /// hide their keys.
    #[error("layer `{0}` is read-only: a negative filter would hide the keys its owner writes")]
    FilterOnReadOnly(String),
    /// A negative filter sized for zero keys.
    #[error("the negative filter of layer `{0}` must expect at least one key")]
    ZeroFilterItems(String),
}
