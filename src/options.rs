//! Per-cache modes and per-call options.

use std::time::Duration;

/// Which layers a `set` writes by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Every writable layer, deepest first, L1 last (the default).
    #[default]
    WriteThrough,
    /// L1 only. The other writable layers are *invalidated* (the key is deleted there), so they
    /// cannot serve an older value once L1 evicts the new one.
    L1Only,
}

/// Where a value found in a lower layer is copied on a read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Promotion {
    /// Never copy values up.
    Off,
    /// Into every writable layer above the one that served the value (the default).
    #[default]
    AllAbove,
    /// Into L1 only.
    L1Only,
}

/// Which lower-layer hits are promoted into L1 (the layers between L1 and the source follow
/// [`Promotion`] alone).
///
/// ```
/// use strata::{Cache, LayerSpec, PromotionGate};
///
/// let cache: Cache<u64, u64> = Cache::builder()
///     .layer(LayerSpec::memory("l1", 1_000))
///     .layer(LayerSpec::memory("l2", 100_000))
///     .promotion_gate(PromotionGate::by_heat())
///     .build()
///     .expect("a valid configuration");
/// cache.set_with(1, 10, &strata::SetOptions::new().skip("l1")).unwrap();
/// cache.get(&1).unwrap(); // first read below L1: served from l2, not promoted
/// cache.get(&1).unwrap(); // second: hot enough, promoted into l1
/// assert_eq!(cache.get_from_layer("l1", &1).unwrap(), Some(10));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PromotionGate {
    /// Every lower-layer hit (the default).
    #[default]
    Always,
    /// Only keys read below L1 at least `min_reads` times in the recent past, as counted by the
    /// cache's frequency sketch (see the `heat` notes in the README): a key read once below L1
    /// (a one-hit wonder, a scan) is served from the lower layer and not copied into L1, where
    /// it would evict a hotter key. `min_reads` of 0 or 1 promotes every hit, like `Always`.
    Hot {
        /// Reads below L1 (this one included) a key needs before it is promoted into L1.
        min_reads: u8,
    },
}

impl PromotionGate {
    /// [`PromotionGate::Hot`] with `min_reads: 2`: a key is promoted into L1 on its second
    /// read below L1 within the sketch's window (ten times L1's capacity in reads below L1).
    /// Two is TinyLFU's doorkeeper rule: it turns away one-hit wonders and nothing else.
    pub const fn by_heat() -> Self {
        PromotionGate::Hot { min_reads: 2 }
    }
}

/// Options of one `set`: TTL override, write mode override, layers to skip.
///
/// A layer that a `set` does not write (skipped, or below L1 in L1-only mode) is invalidated
/// instead, so the contract holds whatever the options.
///
/// ```
/// use std::time::Duration;
/// use strata::SetOptions;
///
/// let options = SetOptions::new().ttl(Duration::from_secs(5)).skip("redis");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    pub(crate) ttl: Option<Duration>,
    pub(crate) mode: Option<WriteMode>,
    pub(crate) skip: Vec<String>,
}

impl SetOptions {
    /// Whether these are the defaults (the engine keeps their plan ready).
    pub(crate) fn is_default(&self) -> bool {
        self.ttl.is_none() && self.mode.is_none() && self.skip.is_empty()
    }

    /// The defaults: each layer's own TTL, the cache's write mode, no layer skipped.
    pub fn new() -> Self {
        SetOptions::default()
    }

    /// Use this TTL in every layer written, instead of each layer's default. A TTL under 1 ms
    /// makes the `set` fail with [`Error::ZeroTtl`](crate::Error::ZeroTtl).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Write to L1 only (see [`WriteMode::L1Only`]).
    pub fn l1_only(mut self) -> Self {
        self.mode = Some(WriteMode::L1Only);
        self
    }

    /// Override the cache's write mode for this call.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Do not write the named layer (it is invalidated instead). An unknown name makes the
    /// `set` fail with [`Error::UnknownLayer`](crate::Error::UnknownLayer) before anything is
    /// written.
    pub fn skip(mut self, layer: impl Into<String>) -> Self {
        self.skip.push(layer.into());
        self
    }
}

/// Options of one `delete`: layers to leave alone.
///
/// A delete normally removes the key from every writable layer. Leaving a layer out is for a
/// layer whose copy is invalidated some other way (another process's delete of a shared
/// remote store, a database trigger): the contract then covers only the layers deleted, and a
/// later read may find the value again in a layer left out (and promote it).
///
/// ```
/// use strata::DeleteOptions;
///
/// let local = DeleteOptions::new().local_only(); // in-process tiers only
/// let keep_l2 = DeleteOptions::new().skip("l2");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub(crate) skip: Vec<String>,
    pub(crate) local_only: bool,
}

impl DeleteOptions {
    /// Whether these are the defaults (the engine keeps their plan ready).
    pub(crate) fn is_default(&self) -> bool {
        self.skip.is_empty() && !self.local_only
    }

    /// The default: every writable layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leave the named layer alone. An unknown name makes the delete fail with
    /// [`Error::UnknownLayer`](crate::Error::UnknownLayer) before anything is deleted.
    pub fn skip(mut self, layer: impl Into<String>) -> Self {
        self.skip.push(layer.into());
        self
    }

    /// Delete from strata's in-process memory tiers only, leaving every custom layer (a remote
    /// store, a database) alone.
    pub fn local_only(mut self) -> Self {
        self.local_only = true;
        self
    }
}
