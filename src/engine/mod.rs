//! The engine behind [`Cache`](crate::Cache): ordered tiers, one read path, one write path,
//! promotion.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`Engine`]: the tiers, write stripes, hasher, clock, counters; open/close, stats |
//! | `key.rs` | a key as an operation carries it: borrowed, hashed once, owned on demand |
//! | `tier.rs` | one layer as the engine holds it, and the calls into it (single and batch) |
//! | `read.rs` | the read path (`get`, `lookup`, `get_many`): L1 → Ln, first hit wins |
//! | `write.rs` | the write path (`set`, `delete` and their batches): deepest layer first |
//! | `promote.rs` | promotion of lower-layer hits, immediate or queued, gated by heat |
//! | `queue.rs` | the batched promotion queues: per target tier, striped, bounded, lossy |
//!
//! # Invariants
//!
//! - Every operation hashes its key once ([`Engine::hash`]); the stripes and the memory tiers
//!   use that hash (the tiers were built with the engine's hasher).
//! - Single-key and batch calls run the same path over a slice of one or more items; a
//!   single-key call allocates nothing on the engine's side for an in-memory stack.
//! - Reads go L1 → Ln; writes go deepest first, L1 last, and every writable layer a write does
//!   not target is invalidated in the same pass; a failing layer is reported, never skipped
//!   silently. The concurrency argument is in [`crate::protocol`].

pub(crate) mod key;
mod promote;
mod queue;
pub(crate) mod read;
pub(crate) mod tier;
pub(crate) mod write;

use crate::clock::Clock;
use crate::error::Error;
use crate::heat::FrequencySketch;
use crate::layer::{Entry, LayerError};
use crate::options::{DeleteOptions, Promotion, PromotionGate, SetOptions, WriteMode};
use crate::protocol::{RawTicket, WriteStripes};
use crate::report::{LayerFailure, LayerSet};
use crate::stats::{Counters, FilterStats, LayerStats, Stats};
use crate::sync::{broken, AtomicBool, Broken, Ordering};
use key::{Key, KeyRef};
use queue::PromotionQueues;
use std::borrow::Borrow;
use std::hash::Hash;
use tier::{counter_slots, Count, Tier, REQUEST_MISSES, RULED_OUT_BELOW_L1};
use write::Plan;

/// Largest number of writes a batch call keeps in flight at once (see `protocol`: the tokens of
/// one stripe must stay far below the in-flight field's capacity).
pub(crate) const BATCH_CHUNK: usize = 4096;

/// A promotion waiting in a promotion queue.
pub(crate) struct Deferred<K, V> {
    key: K,
    hash: u64,
    entry: Entry<V>,
    ticket: RawTicket,
}

struct DefaultPlans {
    set: Plan,
    delete: Plan,
}

/// How the builder configures an engine.
pub(crate) struct Config {
    pub(crate) write_mode: WriteMode,
    pub(crate) promotion: Promotion,
    pub(crate) gate: PromotionGate,
    /// `Some(batch)`: promotions are queued and applied in batches of this size.
    pub(crate) deferred: Option<usize>,
}

pub(crate) struct Engine<K, V> {
    pub(crate) tiers: Box<[Tier<K, V>]>,
    pub(crate) config: Config,
    /// The layers that accept writes.
    pub(crate) writable: LayerSet,
    /// The plans of a `set` and a `delete` with default options, computed once.
    plans: DefaultPlans,
    pub(crate) stripes: WriteStripes,
    /// Whether every layer below L1 has a negative filter (and there is one): `get`'s miss can
    /// then be ruled out without the read path (`Engine::ruled_out_below_l1`).
    pub(crate) filtered_below_l1: bool,
    /// Whether the cache is one writable memory tier without a filter: its tier is sole
    /// (`MemoryLayer::make_sole`: its bucket locks alone order its writes), and a single-key
    /// write with default options takes the write path's shortcut (`Engine::set_alone`).
    pub(crate) sole_memory: bool,
    /// Heat of the keys read below L1, when promotion into L1 is gated by heat.
    pub(crate) heat: Option<FrequencySketch>,
    pub(crate) hasher: ahash::RandomState,
    pub(crate) clock: Clock,
    pub(crate) counters: Counters,
    /// The promotion queues, when promotions are deferred.
    queues: Option<PromotionQueues<K, V>>,
    closed: AtomicBool,
}

impl<K, V> Engine<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `hasher` must be the one the memory tiers were built with.
    pub(crate) fn new(
        tiers: Vec<Tier<K, V>>,
        config: Config,
        heat: Option<FrequencySketch>,
        hasher: ahash::RandomState,
        clock: Clock,
    ) -> Self {
        let slots = counter_slots(tiers.len());
        let queues = config
            .deferred
            .map(|batch| PromotionQueues::new(tiers.len(), batch));
        let mut writable = LayerSet::empty();
        for tier in tiers.iter().filter(|tier| tier.writable) {
            writable.insert(tier.index);
        }
        let placeholder = Plan::nothing();
        let filtered_below_l1 =
            tiers.len() > 1 && tiers[1..].iter().all(|tier| tier.filter.is_some());
        let mut tiers = tiers;
        let sole_memory = matches!(
            tiers.as_slice(),
            [tier] if tier.memory().is_some() && tier.writable && tier.filter.is_none()
        );
        // The sole tier's bucket locks alone order its writes (see "One layer" in `protocol`);
        // the broken twin makes L1 sole above other layers.
        if sole_memory || broken(Broken::SoleTierWithLayersBelow) {
            if let Some(memory) = tiers[0].memory_mut() {
                memory.make_sole();
            }
        }
        let mut engine = Engine {
            filtered_below_l1,
            sole_memory,
            tiers: tiers.into(),
            config,
            writable,
            plans: DefaultPlans {
                set: placeholder,
                delete: placeholder,
            },
            stripes: WriteStripes::new(),
            heat,
            hasher,
            clock,
            counters: Counters::new(slots),
            queues,
            closed: AtomicBool::new(false),
        };
        engine.plans = DefaultPlans {
            set: engine
                .make_set_plan(&SetOptions::default())
                .expect("the default options name no layer"),
            delete: engine
                .make_delete_plan(&DeleteOptions::default())
                .expect("the default options name no layer"),
        };
        engine
    }

    #[inline]
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        // Acquire: pairs with the SeqCst swap in `close`; an operation ordered after `close`
        // returned sees the flag.
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// An operation's key, lent by the caller (hashed on first use, see `key.rs`).
    #[inline]
    pub(crate) fn key<'a, Q>(&'a self, key: &'a Q) -> Key<'a, K, Q>
    where
        K: Borrow<Q>,
        Q: KeyRef<K> + ?Sized,
    {
        Key::new(key, &self.hasher)
    }

    /// An operation's key, handed over by the caller (a `set`).
    #[inline]
    pub(crate) fn owned_key(&self, key: K) -> Key<'_, K, K> {
        Key::from_owned(key, &self.hasher)
    }

    pub(crate) fn tier_named(&self, name: &str) -> Result<&Tier<K, V>, Error> {
        self.tiers
            .iter()
            .find(|tier| &*tier.name == name)
            .ok_or_else(|| Error::UnknownLayer(name.to_owned()))
    }

    #[inline]
    pub(crate) fn count(&self, tier: &Tier<K, V>, count: Count) {
        self.counters.incr(tier.slot(count));
    }

    /// Counts a layer failure and describes it.
    pub(crate) fn failure(
        &self,
        tier: &Tier<K, V>,
        error: LayerError,
        invalidated: bool,
    ) -> LayerFailure {
        self.count(tier, Count::Errors);
        LayerFailure {
            index: tier.index,
            layer: tier.name.clone(),
            error,
            invalidated,
        }
    }

    /// A layer's failure on a call made to it directly (iteration, `get_from_layer`).
    pub(crate) fn layer_error(&self, tier: &Tier<K, V>, error: LayerError) -> Error {
        self.count(tier, Count::Errors);
        Error::Layer {
            layer: tier.name.clone(),
            error,
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        // Misses `get` ruled out below L1 by the filters alone: a request miss, and a skip of
        // every layer below L1 (each of which has a filter, or there are none).
        let ruled_out = self.counters.sum(RULED_OUT_BELOW_L1);
        let layers: Vec<LayerStats> = self
            .tiers
            .iter()
            .map(|tier| {
                let own = tier.layer().counters();
                LayerStats {
                    name: tier.name.to_string(),
                    hits: self.counters.sum(tier.slot(Count::Hits)),
                    misses: self.counters.sum(tier.slot(Count::Misses)),
                    promotions_in: self.counters.sum(tier.slot(Count::PromotionsIn)),
                    promotions_declined: self.counters.sum(tier.slot(Count::PromotionsDeclined)),
                    promotions_dropped: self.counters.sum(tier.slot(Count::PromotionsDropped)),
                    filter: tier.filter.as_ref().map(|filter| {
                        let (ready, rebuilds, abandoned_rebuilds) = filter.figures();
                        FilterStats {
                            ready,
                            skips: self.counters.sum(tier.slot(Count::FilterSkips)) + ruled_out,
                            false_positives: self
                                .counters
                                .sum(tier.slot(Count::FilterFalsePositives)),
                            false_negatives: self
                                .counters
                                .sum(tier.slot(Count::FilterFalseNegatives)),
                            rebuilds,
                            abandoned_rebuilds,
                        }
                    }),
                    evictions: own.evictions,
                    expirations: own.expirations,
                    dropped_writes: own.dropped,
                    errors: self.counters.sum(tier.slot(Count::Errors)),
                    len: own.len,
                    health: own.health,
                    circuit_opened: own.circuit_opened,
                }
            })
            .collect();
        Stats {
            hits: layers.iter().map(|layer| layer.hits).sum(),
            misses: self.counters.sum(REQUEST_MISSES) + ruled_out,
            layers,
        }
    }

    /// [`Cache::run_pending_tasks`](crate::Cache::run_pending_tasks)'s work: applies queued
    /// promotions, then rebuilds the filters that ask for it (too full, too many false
    /// positives, or unready), never on a request: listing a remote layer can take long.
    /// Returns how many promotions were applied.
    pub(crate) fn run_pending_tasks(&self) -> usize {
        let promoted = self.drain_queues();
        self.maintain_filters(false);
        promoted
    }

    /// Rebuilds the negative filters that ask for it (see [`crate::filter`]), or all of them if
    /// `force`, from their layers' listings. Returns how many were rebuilt.
    pub(crate) fn maintain_filters(&self, force: bool) -> usize {
        let now = self.clock.now();
        let mut rebuilt = 0;
        for tier in self.tiers.iter() {
            let Some(filter) = &tier.filter else {
                continue;
            };
            let skips = self.counters.sum(tier.slot(Count::FilterSkips))
                + self.counters.sum(RULED_OUT_BELOW_L1);
            let false_positives = self.counters.sum(tier.slot(Count::FilterFalsePositives));
            if !filter.wants_rebuild(skips, false_positives) && !force {
                continue;
            }
            let layer = tier.layer();
            let live = layer.counters().len.and_then(|n| usize::try_from(n).ok());
            let swapped = filter.rebuild(live, |insert| {
                // Keys hash as the engine hashes their borrowed form (`Borrow` guarantees the
                // same hash), so the bits match the lookups' probes.
                match layer.for_each(now, &mut |key, _| insert(self.hasher.hash_one(key))) {
                    Ok(()) => true,
                    Err(_) => {
                        // A layer that cannot list its keys keeps its filter as it is.
                        self.count(tier, Count::Errors);
                        false
                    }
                }
            });
            rebuilt += usize::from(swapped);
        }
        rebuilt
    }

    /// Every later operation returns [`Error::Closed`]; each layer's `close` is called once;
    /// queued promotions are dropped. Idempotent.
    pub(crate) fn close(&self) {
        // SeqCst: an operation that starts after `close` returns must see the flag.
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(queues) = &self.queues {
            queues.clear();
        }
        for tier in self.tiers.iter() {
            tier.layer().close();
        }
    }
}
