//! Building a cache: layers in order (L1 first), modes, and the checks that refuse
//! configurations that cannot work.

use crate::cache::Cache;
use crate::clock::Clock;
use crate::engine::tier::{Store, Tier};
use crate::engine::{Config, Engine};
use crate::error::BuildError;
use crate::filter::{FilterConfig, NegativeFilter};
use crate::heat::FrequencySketch;
use crate::layer::Layer;
use crate::memory::{MemoryConfig, MemoryLayer};
use crate::options::{Promotion, PromotionGate, WriteMode};
use crate::report::LayerSet;
use crate::sync::random_state;
use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// One layer of a cache under construction: a name, a default TTL, a read-only flag, and either
/// strata's in-memory tier or a user's [`Layer`].
pub struct LayerSpec<K, V> {
    pub(crate) name: String,
    pub(crate) ttl: Option<Duration>,
    pub(crate) read_only: bool,
    kind: Kind<K, V>,
    filter: FilterChoice,
}

/// Whether a layer gets a negative filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FilterChoice {
    /// On for a custom layer that asks for one (`Layer::wants_negative_filter`), off otherwise.
    Default,
    /// On, sized for this many keys at first.
    On(usize),
    Off,
}

enum Kind<K, V> {
    Memory(MemoryConfig<K, V>),
    Custom(Arc<dyn Layer<K, V>>),
    /// `max_weight` was asked of a custom layer; `build` refuses it.
    WeightOnCustom,
}

impl<K, V> fmt::Debug for LayerSpec<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("LayerSpec");
        s.field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("read_only", &self.read_only)
            .field("filter", &self.filter);
        match &self.kind {
            Kind::Memory(config) => s.field("memory", config),
            Kind::Custom(_) | Kind::WeightOnCustom => s.field("custom", &true),
        };
        s.finish()
    }
}

impl<K, V> LayerSpec<K, V> {
    /// An in-memory tier holding at most `capacity` entries.
    pub fn memory(name: impl Into<String>, capacity: usize) -> Self {
        LayerSpec {
            name: name.into(),
            ttl: None,
            read_only: false,
            kind: Kind::Memory(MemoryConfig::new(capacity)),
            filter: FilterChoice::Default,
        }
    }

    /// A user-provided layer (a remote store, a database).
    pub fn custom(name: impl Into<String>, layer: impl Layer<K, V> + 'static) -> Self {
        Self::shared(name, Arc::new(layer))
    }

    /// A user-provided layer the caller keeps a handle to.
    pub fn shared(name: impl Into<String>, layer: Arc<dyn Layer<K, V>>) -> Self {
        LayerSpec {
            name: name.into(),
            ttl: None,
            read_only: false,
            kind: Kind::Custom(layer),
            filter: FilterChoice::Default,
        }
    }

    /// Default TTL of entries written to this layer (none: entries do not expire).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The cache only reads this layer: no set, delete, invalidation or promotion touches it.
    /// Keeping it current is the owner's job (a database the cache fronts, for example).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Puts a negative filter (a Bloom filter, see the README's "Negative filters") in front of
    /// this layer, sized for `expected_items` keys at first: a lookup skips the layer when the
    /// filter says the key is certainly absent. On by default for custom layers that ask for
    /// one ([`Layer::wants_negative_filter`], a remote store), off for memory tiers. Not for
    /// L1 (always asked first) nor a read-only layer (others write it, so the filter would
    /// hide their keys).
    pub fn negative_filter(mut self, expected_items: usize) -> Self {
        self.filter = FilterChoice::On(expected_items);
        self
    }

    /// No negative filter in front of this layer, even if the layer asks for one (a layer
    /// other processes write too: a filter would hide their keys until its next rebuild).
    pub fn without_negative_filter(mut self) -> Self {
        self.filter = FilterChoice::Off;
        self
    }

    /// Bounds an in-memory tier by total weight as measured by `weigher` (a byte budget, as
    /// moka's `weigher` or quick_cache's weighter), besides its entry capacity: whichever bound
    /// is reached first evicts.
    ///
    /// - An entry counts at most `u32::MAX` units; one heavier than the whole bound is not
    ///   kept (the `set` succeeds, any older value is removed, and it counts as an eviction).
    /// - The eviction policy sizes its queues by weight (PERF.md §3): a scan or a loop longer
    ///   than the tier leaves the tier's read keys in place, lighter ones first, and a key is
    ///   not evicted by its own insert while the tier holds others.
    /// - `max_weight` 0 makes `build` fail with [`BuildError::ZeroWeight`]; a weight bound on a
    ///   custom layer, with [`BuildError::WeightOnCustomLayer`].
    ///
    /// ```
    /// use strata::{Cache, LayerSpec};
    ///
    /// // At most 1 MiB of values, and at most 100 000 entries.
    /// let bytes = |_: &u64, value: &Vec<u8>| value.len() as u64;
    /// let cache: Cache<u64, Vec<u8>> = Cache::builder()
    ///     .layer(LayerSpec::memory("l1", 100_000).max_weight(1 << 20, bytes))
    ///     .build()
    ///     .expect("a valid configuration");
    /// cache.set(1, vec![0; 4096]).unwrap();
    /// assert_eq!(cache.get(&1).unwrap().map(|v| v.len()), Some(4096));
    /// cache.set(2, vec![0; 2 << 20]).unwrap(); // heavier than the whole bound: not kept
    /// assert_eq!(cache.get(&2).unwrap(), None);
    /// assert_eq!(cache.stats().layers[0].evictions, 1);
    /// ```
    pub fn max_weight(
        mut self,
        max_weight: u64,
        weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static,
    ) -> Self {
        if let Kind::Memory(config) = &mut self.kind {
            config.max_weight = max_weight;
            config.weigher = Some(Arc::new(weigher));
        } else {
            // Recorded so that `build` can refuse it with a clear error.
            self.kind = Kind::WeightOnCustom;
        }
        self
    }
}

/// Builds a [`Cache`]. Layers are given in order: the first is L1, the fastest.
///
/// ```
/// use std::time::Duration;
/// use strata::{Cache, LayerSpec, Promotion, WriteMode};
///
/// let cache: Cache<String, String> = Cache::builder()
///     .layer(LayerSpec::memory("l1", 1_000).ttl(Duration::from_secs(60)))
///     .layer(LayerSpec::memory("l2", 100_000).ttl(Duration::from_secs(3600)))
///     .write_mode(WriteMode::WriteThrough)
///     .promotion(Promotion::AllAbove)
///     .build()
///     .expect("a valid configuration");
/// # drop(cache);
/// ```
pub struct CacheBuilder<K, V> {
    layers: Vec<LayerSpec<K, V>>,
    write_mode: WriteMode,
    promotion: Promotion,
    gate: PromotionGate,
    deferred: Option<usize>,
    clock: Option<Clock>,
    maintenance: Option<Duration>,
}

/// Keys a default negative filter is sized for at first (about 160 KB of bits at 1 %, small
/// enough to stay in a core's cache); a rebuild resizes it to twice the keys the layer holds.
const DEFAULT_FILTER_ITEMS: usize = 1 << 17;
/// The false-positive rate every filter is sized for.
const FILTER_FALSE_POSITIVE_RATE: f64 = 0.01;

/// The heat sketch's capacity when L1 is not a memory tier (whose capacity sizes it otherwise).
const DEFAULT_HEAT_CAPACITY: usize = 65_536;

impl<K, V> fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("layers", &self.layers)
            .field("write_mode", &self.write_mode)
            .field("promotion", &self.promotion)
            .field("gate", &self.gate)
            .field("deferred", &self.deferred)
            .field("maintenance", &self.maintenance)
            .finish()
    }
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        CacheBuilder {
            layers: Vec::new(),
            write_mode: WriteMode::default(),
            promotion: Promotion::default(),
            gate: PromotionGate::default(),
            deferred: None,
            clock: None,
            maintenance: None,
        }
    }
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Adds the next layer (the first one added is L1).
    pub fn layer(mut self, layer: LayerSpec<K, V>) -> Self {
        self.layers.push(layer);
        self
    }

    /// The default write mode of `set` (write-through unless told otherwise).
    pub fn write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = mode;
        self
    }

    /// Where lower-layer hits are promoted (all writable layers above, unless told otherwise).
    pub fn promotion(mut self, promotion: Promotion) -> Self {
        self.promotion = promotion;
        self
    }

    /// Which lower-layer hits are promoted into L1: all of them (the default), or only keys hot
    /// enough (see [`PromotionGate`]).
    pub fn promotion_gate(mut self, gate: PromotionGate) -> Self {
        self.gate = gate;
        self
    }

    /// Queue promotions instead of applying them on the reading thread: each target layer gets
    /// striped, bounded queues that a reader fills without waiting and that are applied in
    /// batches (one call into the layer per batch) by the reader whose push brings a stripe to
    /// `batch` items, or by [`Cache::run_pending_tasks`]. A push onto a full stripe is dropped
    /// (`promotions_dropped` in [`Stats`](crate::Stats)): the value stays served by the lower
    /// layer. Correctness is unchanged (see [`protocol`](crate::protocol)): a queued promotion
    /// overtaken by a write is dropped.
    pub fn deferred_promotion(mut self, batch: usize) -> Self {
        self.deferred = Some(batch);
        self
    }

    /// Starts a background thread ("strata-maintenance") that does
    /// [`run_pending_tasks`](Cache::run_pending_tasks)'s work every `every`: queued promotions
    /// applied, negative filters rebuilt when they ask for it (including the first rebuild that
    /// makes a filter over a layer with unknown contents ready). Off by default: queues are
    /// drained by the readers that fill them either way. The thread holds the cache weakly and
    /// exits at its next tick once the last handle is dropped or the cache is closed. Ignored
    /// in loom builds (no background threads there).
    ///
    /// ```
    /// use std::time::Duration;
    /// use strata::{Cache, LayerSpec};
    ///
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .layer(LayerSpec::memory("l1", 1_000))
    ///     .layer(LayerSpec::memory("l2", 100_000))
    ///     .deferred_promotion(64)
    ///     .maintenance(Duration::from_millis(100))
    ///     .build()
    ///     .expect("a valid configuration");
    /// # drop(cache);
    /// ```
    pub fn maintenance(mut self, every: Duration) -> Self {
        self.maintenance = Some(every);
        self
    }

    /// The clock for TTLs (the process-wide coarse clock unless told otherwise). Tests pass a
    /// [`Clock::manual`] clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the configuration and builds the cache.
    pub fn build(self) -> Result<Cache<K, V>, BuildError> {
        if self.layers.is_empty() {
            return Err(BuildError::NoLayers);
        }
        if self.layers.len() > LayerSet::MAX_LAYERS {
            return Err(BuildError::TooManyLayers {
                max: LayerSet::MAX_LAYERS,
                got: self.layers.len(),
            });
        }
        if self.deferred == Some(0) {
            return Err(BuildError::ZeroPromotionBatch);
        }
        if self
            .maintenance
            .is_some_and(|every| every < Duration::from_millis(1))
        {
            return Err(BuildError::ZeroMaintenanceInterval);
        }
        let mut seen = HashSet::new();
        for (index, spec) in self.layers.iter().enumerate() {
            if spec.name.trim().is_empty() {
                return Err(BuildError::EmptyName { index });
            }
            if !seen.insert(spec.name.as_str()) {
                return Err(BuildError::DuplicateName(spec.name.clone()));
            }
            if spec.ttl == Some(Duration::ZERO) || spec.ttl.is_some_and(|ttl| ttl.as_millis() == 0)
            {
                return Err(BuildError::ZeroTtl(spec.name.clone()));
            }
        }
        if self.layers[0].read_only {
            return Err(BuildError::ReadOnlyL1(self.layers[0].name.clone()));
        }
        let clock = self.clock.unwrap_or_else(Clock::system);
        // One hasher for the engine and its memory tiers: a key is hashed once per operation.
        let hasher = random_state();
        // The heat sketch is sized for L1: it must tell L1-worthy keys from the rest.
        let heat = match self.gate {
            PromotionGate::Hot { min_reads } if min_reads > 1 => {
                Some(FrequencySketch::for_gate(match &self.layers[0].kind {
                    Kind::Memory(config) => config.capacity,
                    _ => DEFAULT_HEAT_CAPACITY,
                }))
            }
            _ => None,
        };
        let mut tiers = Vec::with_capacity(self.layers.len());
        for (index, spec) in self.layers.into_iter().enumerate() {
            let filter = filter_for(index, &spec)?;
            let store = match spec.kind {
                Kind::Memory(config) => Store::Memory(MemoryLayer::with_hasher(
                    &spec.name,
                    config,
                    clock.clone(),
                    hasher.clone(),
                )?),
                Kind::Custom(layer) => Store::Custom(layer),
                Kind::WeightOnCustom => return Err(BuildError::WeightOnCustomLayer(spec.name)),
            };
            tiers.push(Tier {
                index,
                name: Arc::<str>::from(spec.name),
                ttl: spec.ttl,
                writable: !spec.read_only,
                store,
                filter: None,
            });
            let tier = tiers.last_mut().expect("just pushed");
            tier.filter = filter.map(|config| {
                // A layer known to be empty starts with a ready filter; any other waits for
                // its first rebuild (it lets every lookup through until then).
                let empty = tier.layer().counters().len == Some(0);
                Box::new(NegativeFilter::new(config, empty))
            });
        }
        let config = Config {
            write_mode: self.write_mode,
            promotion: self.promotion,
            gate: self.gate,
            deferred: self.deferred,
        };
        let cache = Cache::from_engine(Engine::new(tiers, config, heat, hasher, clock));
        #[cfg(not(loom))]
        if let Some(every) = self.maintenance {
            cache
                .start_maintenance(every)
                .map_err(|e| BuildError::MaintenanceThread(e.to_string()))?;
        }
        Ok(cache)
    }
}

/// The filter a layer gets, or the error that refuses it (see [`LayerSpec::negative_filter`]).
fn filter_for<K, V>(
    index: usize,
    spec: &LayerSpec<K, V>,
) -> Result<Option<FilterConfig>, BuildError> {
    let wanted = match (spec.filter, &spec.kind) {
        (FilterChoice::Off, _) => None,
        (FilterChoice::On(items), _) => Some(items),
        (FilterChoice::Default, Kind::Custom(layer))
            if index > 0 && !spec.read_only && layer.wants_negative_filter() =>
        {
            Some(DEFAULT_FILTER_ITEMS)
        }
        (FilterChoice::Default, _) => None,
    };
    let Some(expected_items) = wanted else {
        return Ok(None);
    };
    if index == 0 {
        return Err(BuildError::FilterOnL1(spec.name.clone()));
    }
    if spec.read_only {
        return Err(BuildError::FilterOnReadOnly(spec.name.clone()));
    }
    if expected_items == 0 {
        return Err(BuildError::ZeroFilterItems(spec.name.clone()));
    }
    Ok(Some(FilterConfig {
        expected_items,
        target_fp: FILTER_FALSE_POSITIVE_RATE,
    }))
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts building a cache.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }
}
