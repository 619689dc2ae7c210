//! Negative filters: a Bloom filter in front of a layer, so a lookup skips a layer that
//! certainly does not hold the key.
//!
//! # What a filter promises
//!
//! A filter answers "absent" only for keys this cache never wrote or promoted into the layer
//! since the filter's generation began, so for a layer that **only this cache writes**, a
//! lookup never skips a key the layer holds (no false negative). It may answer "present" for an
//! absent key (a false positive, about `target_fp` of absent keys, more as stale bits pile up):
//! that only costs the probe the filter did not save.
//!
//! A layer that other writers share (another process, a database loaded by someone else) can
//! hold keys this cache never saw: the filter would skip them (a false negative). That costs a
//! spurious miss, never a stale value: a skipped layer is as if it had evicted the key, which
//! the contract already allows. Every `FN_SAMPLE`-th skip is verified by asking the layer
//! anyway: a key found there is counted as a false negative (`filter_false_negatives` in
//! [`Stats`](crate::Stats)) and its bits are set. Turn the filter off for such a layer
//! (`LayerSpec::without_negative_filter`) unless those misses are acceptable.
//!
//! # The invariants
//!
//! 1. **Bits before visibility.** Every write and promotion into a filtered layer sets the key's
//!    bits before the layer can hold the value: the engine inserts into the filter, then calls
//!    the layer. A reader that could see the entry (through the layer's own synchronization)
//!    also sees the bits, which were set before it.
//! 2. **Stale bits only.** Deletes, evictions and expiry never clear bits. They raise the false
//!    positive rate, which the rebuild brings back down.
//! 3. **Never clear what readers use.** A rebuild builds a new generation beside the live one
//!    and swaps it in; the old one is freed once no reader can hold it (seize, the reclamation
//!    scheme of the memory tier's map too: a probe enters it with a compiler fence only). A generation is never
//!    cleared in place.
//!
//! # Rebuilding without losing a key
//!
//! A rebuild fills the new generation from the layer's own listing (`Layer::for_each`). A write
//! that inserted its bits into the old generation only, and reached the layer after the listing
//! passed its key, would be missing from the new generation. So inserts announce themselves: an
//! inserting call increments an in-flight counter (striped by thread) before it loads the
//! generations, and decrements it after the layer call returned. The rebuild:
//!
//! 1. publishes the new generation as `next`;
//! 2. waits until each in-flight stripe has been seen at zero once (SeqCst loads; it gives up,
//!    keeping the old generation, if a stripe never drains);
//! 3. lists the layer into `next`;
//! 4. makes `next` the current generation, then clears `next`.
//!
//! An insert loads `next` first, then `current`, and inserts into both (SeqCst loads after its
//! SeqCst increment). If its increment is ordered after the rebuild's zero observation of its
//! stripe, its load of `next` is ordered after step 1 and sees the new generation (or, after
//! step 4, finds `next` cleared and `current` already new). Otherwise it was not in flight at
//! that observation, so it had already finished: its layer call returned before step 3's
//! listing began, and the listing sees the key. Either way the new generation holds the key.
//!
//! # When a rebuild happens
//!
//! A filter wants a rebuild when more keys were inserted into its generation than it was sized
//! for (its false-positive rate estimate passes twice the target), or when the measured rate
//! (probes the filter let through that missed, over all probes of absent keys) passes twice the
//! target over at least `MIN_SAMPLE` probes. Rebuilds run in
//! [`Cache::run_pending_tasks`](crate::Cache::run_pending_tasks) or
//! [`Cache::rebuild_filters`](crate::Cache::rebuild_filters), never on a request: listing a
//! remote layer can take seconds. A filter over a layer that was not empty when the cache was
//! built starts *unready* (it lets every probe through) until its first rebuild.
//!
//! The Bloom filter is fastbloom's `AtomicBloomFilter` (inserts through `&self`, relaxed atomic
//! words), fed with the engine's hash of the key; under loom, an exact set loom can instrument.

use crate::sync::{spin_hint, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;
use generation::Slot;
pub(crate) use generation::{pin, Pin};

/// In-flight stripes of a filter's inserts.
const INSERT_STRIPES: usize = 16;
/// A rebuild gives up if a stripe is not seen drained after this many looks.
#[cfg(not(loom))]
const DRAIN_LOOKS: usize = 1 << 20;
#[cfg(loom)]
const DRAIN_LOOKS: usize = 4;
/// One skip in this many is verified by asking the layer anyway (false negative sampling). A
/// verification of a remote layer costs its round trip: a 50 µs round trip every 65 536 skips
/// is 0.8 ns per skip on average, every 1 024 skips 49 ns, more than the rest of a filtered
/// miss (the runner's filtered-miss row measured 7× an L1 miss at 1 in 1 024).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const FN_SAMPLE: u32 = 1 << 16;
/// Probes of absent keys needed before the measured false-positive rate can ask for a rebuild.
const MIN_SAMPLE: u64 = 1000;

/// A filter's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct FilterConfig {
    /// Keys a generation is sized for at first (later generations: twice the keys listed).
    pub(crate) expected_items: usize,
    pub(crate) target_fp: f64,
}

/// What a lookup should do with a layer, by its filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The key may be there: ask.
    Ask,
    /// Certainly absent: skip the layer.
    Skip,
    /// The filter said absent, but this skip is sampled: ask, and report a hit as a false
    /// negative ([`NegativeFilter::false_negative`]).
    Verify,
}

pub(crate) struct NegativeFilter {
    config: FilterConfig,
    generations: generation::Slots,
    inflight: Box<[CachePadded<AtomicUsize>]>,
    rebuild_wanted: AtomicBool,
    rebuilding: AtomicBool,
    rebuilds: AtomicU64,
    abandoned: AtomicU64,
    /// Skips and false positives at the last rate check.
    checked: CachePadded<(AtomicU64, AtomicU64)>,
}

/// One generation's bits, and how many inserts it took.
pub(crate) struct Generation {
    bits: bits::Bits,
    capacity: usize,
    inserted: AtomicUsize,
}

impl Generation {
    fn new(config: FilterConfig, capacity: usize) -> Self {
        Generation {
            bits: bits::Bits::new(capacity, config.target_fp),
            capacity,
            inserted: AtomicUsize::new(0),
        }
    }

    /// Returns whether the generation now holds more keys than it was sized for.
    fn insert(&self, hash: u64) -> bool {
        self.bits.insert(hash);
        // Relaxed: a size estimate.
        self.inserted.fetch_add(1, Ordering::Relaxed) >= self.capacity
    }
}

impl NegativeFilter {
    /// A filter for a layer that is empty now (`ready`) or may hold keys already (unready until
    /// its first rebuild).
    pub(crate) fn new(config: FilterConfig, ready: bool) -> Self {
        let filter = NegativeFilter {
            config,
            generations: generation::Slots::empty(),
            inflight: (0..INSERT_STRIPES)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            rebuild_wanted: AtomicBool::new(!ready),
            rebuilding: AtomicBool::new(false),
            rebuilds: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            checked: CachePadded::new((AtomicU64::new(0), AtomicU64::new(0))),
        };
        if ready {
            filter.generations.replace(
                Slot::Current,
                Some(Generation::new(config, config.expected_items)),
            );
        }
        filter
    }

    /// What a lookup of `hash` should do with the layer.
    #[inline]
    pub(crate) fn probe(&self, hash: u64) -> Probe {
        self.probe_pinned(&generation::pin(), hash)
    }

    /// Whether the filter rules `hash` out (certainly absent), under a pin the caller holds
    /// (one pin for several filters). No sampling: see [`skip_unsampled`].
    #[inline]
    pub(crate) fn rules_out(&self, pin: &Pin, hash: u64) -> bool {
        self.generations.with_current(pin, |generation| {
            generation.is_some_and(|g| !g.bits.contains(hash))
        })
    }

    #[inline]
    fn probe_pinned(&self, pin: &Pin, hash: u64) -> Probe {
        if !self.rules_out(pin, hash) {
            Probe::Ask
        } else if sampled() {
            Probe::Verify
        } else {
            Probe::Skip
        }
    }

    /// A sampled skip found the key in the layer: its bits are set so it is not skipped again.
    pub(crate) fn false_negative(&self, hash: u64) {
        let inserts = self.begin_inserts();
        inserts.insert(hash);
    }

    /// Starts a call that writes or promotes into the layer: every key it will hand the layer
    /// must go through [`Inserts::insert`] first, and the returned value must live until the
    /// layer call returned (see "Rebuilding without losing a key").
    pub(crate) fn begin_inserts(&self) -> Inserts<'_> {
        let stripe = &self.inflight[crate::stats::thread_stripe() % INSERT_STRIPES];
        // SeqCst: ordered before the loads of `next` and `current` below, against the
        // rebuild's SeqCst store of `next` and its SeqCst loads of this counter.
        stripe.fetch_add(1, Ordering::SeqCst);
        Inserts {
            filter: self,
            stripe,
            loaded: self.generations.load(),
        }
    }

    /// Whether the filter asks for a rebuild, by its insert count or, given the layer's skip and
    /// false-positive counts so far, by its measured false-positive rate.
    pub(crate) fn wants_rebuild(&self, skips: u64, false_positives: u64) -> bool {
        // Relaxed: these decide when to rebuild, nothing else.
        let (last_skips, last_fps) = (&self.checked.0, &self.checked.1);
        let probes = (skips + false_positives)
            .saturating_sub(last_skips.load(Ordering::Relaxed) + last_fps.load(Ordering::Relaxed));
        if probes >= MIN_SAMPLE {
            let fps = false_positives.saturating_sub(last_fps.load(Ordering::Relaxed));
            last_skips.store(skips, Ordering::Relaxed);
            last_fps.store(false_positives, Ordering::Relaxed);
            if fps as f64 / probes as f64 > 2.0 * self.config.target_fp {
                self.rebuild_wanted.store(true, Ordering::Relaxed);
            }
        }
        self.rebuild_wanted.load(Ordering::Relaxed)
    }

    /// Rebuilds the filter from the layer's listing (`list` calls its argument with the hash of
    /// every key the layer holds; `live` is the layer's own count, if it keeps one). Returns
    /// whether a new generation was swapped in; false if another rebuild was running, the
    /// layer could not be listed, or an insert stripe never drained.
    pub(crate) fn rebuild(
        &self,
        live: Option<usize>,
        list: impl FnOnce(&mut dyn FnMut(u64)) -> bool,
    ) -> bool {
        // Acquire/Release: one rebuild at a time; the flag orders nothing else.
        if self.rebuilding.swap(true, Ordering::Acquire) {
            return false;
        }
        let built = self.build_and_swap(live, list);
        // Relaxed: statistics and the rebuild hint; the generation swap itself is ordered by
        // the SeqCst stores of `build_and_swap`.
        if built {
            self.rebuilds.fetch_add(1, Ordering::Relaxed);
            self.rebuild_wanted.store(false, Ordering::Relaxed);
        } else {
            self.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        self.rebuilding.store(false, Ordering::Release);
        built
    }

    fn build_and_swap(
        &self,
        live: Option<usize>,
        list: impl FnOnce(&mut dyn FnMut(u64)) -> bool,
    ) -> bool {
        // Relaxed: a size estimate for the new generation.
        let inserted = self.generations.with_current(&generation::pin(), |g| {
            g.map_or(0, |g| g.inserted.load(Ordering::Relaxed))
        });
        let capacity = live
            .unwrap_or(inserted)
            .saturating_mul(2)
            .max(self.config.expected_items);
        // Step 1 (SeqCst store, see the module docs).
        self.generations
            .replace(Slot::Next, Some(Generation::new(self.config, capacity)));
        // Step 2.
        for stripe in self.inflight.iter() {
            let mut looks = 0;
            while stripe.load(Ordering::SeqCst) != 0
                && !crate::sync::broken(crate::sync::Broken::FilterRebuildWithoutDrain)
            {
                looks += 1;
                if looks >= DRAIN_LOOKS {
                    self.generations.replace(Slot::Next, None);
                    return false;
                }
                // A writer holding the stripe may be descheduled: give it the core now and
                // then rather than spinning against it.
                if looks % 64 == 0 {
                    yield_now();
                } else {
                    spin_hint();
                }
            }
        }
        // Step 3.
        let loaded = self.generations.load();
        let listed = list(&mut |hash| {
            if let Some(generation) = loaded.get(Slot::Next) {
                generation.insert(hash);
            }
        });
        drop(loaded);
        if !listed {
            self.generations.replace(Slot::Next, None);
            return false;
        }
        // Step 4: `current` first, then `next` (inserts load them in the other order).
        self.generations.promote_next();
        true
    }

    /// The filter's own figures: whether it is ready, its rebuilds and abandoned rebuilds.
    pub(crate) fn figures(&self) -> (bool, u64, u64) {
        // Relaxed: statistics.
        (
            self.generations
                .with_current(&generation::pin(), |g| g.is_some()),
            self.rebuilds.load(Ordering::Relaxed),
            self.abandoned.load(Ordering::Relaxed),
        )
    }
}

/// An inserting call in flight (see [`NegativeFilter::begin_inserts`]).
pub(crate) struct Inserts<'a> {
    filter: &'a NegativeFilter,
    stripe: &'a AtomicUsize,
    loaded: generation::Loaded<'a>,
}

impl Inserts<'_> {
    /// Sets the bits of `hash` in the current generation and in the one being built.
    pub(crate) fn insert(&self, hash: u64) {
        let mut full = false;
        if let Some(next) = self.loaded.get(Slot::Next) {
            next.insert(hash);
        }
        if let Some(current) = self.loaded.get(Slot::Current) {
            full = current.insert(hash);
        }
        if full {
            // Relaxed: a hint read by the next maintenance pass; it publishes nothing.
            self.filter.rebuild_wanted.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Inserts<'_> {
    fn drop(&mut self) {
        // SeqCst: the layer call returned before this; a rebuild that sees the stripe at zero
        // lists the layer after it.
        self.stripe.fetch_sub(1, Ordering::SeqCst);
    }
}

fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Whether this skip is one of the sampled ones (a per-thread counter: no shared write).
fn sampled() -> bool {
    next_skip(true)
}

/// For a request whose every filter ruled the key out: counts it as one skip and returns true,
/// unless that skip is the one to sample; then returns false and counts nothing, so that the
/// read path's first probe draws the sample and verifies it.
pub(crate) fn skip_unsampled() -> bool {
    !next_skip(false)
}

/// Whether the thread's next skip is sampled; consumes it if `always`, or if it is not.
#[inline]
fn next_skip(always: bool) -> bool {
    #[cfg(loom)]
    {
        let _ = always;
        false
    }
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        thread_local! {
            static SKIPS: Cell<u32> = const { Cell::new(0) };
        }
        SKIPS
            .try_with(|skips| {
                let n = skips.get().wrapping_add(1);
                let sampled = n % FN_SAMPLE == 0;
                if always || !sampled {
                    skips.set(n);
                }
                sampled
            })
            .unwrap_or(false)
    }
}

/// The bits: fastbloom's atomic Bloom filter, or under loom an exact set loom can instrument.
mod bits {
    #[cfg(not(loom))]
    pub(crate) struct Bits(fastbloom::AtomicBloomFilter);

    #[cfg(not(loom))]
    impl Bits {
        pub(crate) fn new(capacity: usize, target_fp: f64) -> Self {
            Bits(
                fastbloom::AtomicBloomFilter::with_false_pos(target_fp)
                    .expected_items(capacity.max(1)),
            )
        }
        #[inline]
        pub(crate) fn insert(&self, hash: u64) {
            self.0.insert_hash(hash);
        }
        #[inline]
        pub(crate) fn contains(&self, hash: u64) -> bool {
            self.0.contains_hash(hash)
        }
    }

    #[cfg(loom)]
    pub(crate) struct Bits(loom::sync::Mutex<std::collections::HashSet<u64>>);

    #[cfg(loom)]
    impl Bits {
        pub(crate) fn new(_capacity: usize, _target_fp: f64) -> Self {
            Bits(loom::sync::Mutex::new(std::collections::HashSet::new()))
        }
        pub(crate) fn insert(&self, hash: u64) {
            self.0.lock().unwrap().insert(hash);
        }
        pub(crate) fn contains(&self, hash: u64) -> bool {
            self.0.lock().unwrap().contains(&hash)
        }
    }
}

/// The current generation and the one being built, swappable while readers probe them: two
/// pointers under seize (one collector for every filter; readers enter it with a compiler fence
/// only, so a probe costs no barrier; a replaced generation is freed once no pin that could
/// have loaded it is left), or under loom two mutexes around `Arc`s loom can instrument.
mod generation {
    use super::Generation;

    /// Which of the two slots.
    #[derive(Clone, Copy)]
    pub(crate) enum Slot {
        Current,
        Next,
    }

    /// The collector every filter retires its generations to: one for the process, so that a
    /// lookup pins once for all the filters it probes. A batch of one: a retired generation
    /// (kilobytes of bits) is freed as soon as no pin can hold it, not after 31 more.
    #[cfg(not(loom))]
    static COLLECTOR: std::sync::LazyLock<seize::Collector> =
        std::sync::LazyLock::new(|| seize::Collector::new().batch_size(1));

    /// A pin of every filter's generations: what it loads stays alive until it is dropped.
    #[cfg(not(loom))]
    pub(crate) struct Pin(seize::LocalGuard<'static>);

    #[cfg(loom)]
    pub(crate) struct Pin;

    /// Pins the filters' generations (a thread-local mark and a compiler fence).
    #[inline]
    pub(crate) fn pin() -> Pin {
        #[cfg(not(loom))]
        return Pin(COLLECTOR.enter());
        #[cfg(loom)]
        Pin
    }

    #[cfg(not(loom))]
    pub(crate) struct Slots {
        current: std::sync::atomic::AtomicPtr<Generation>,
        next: std::sync::atomic::AtomicPtr<Generation>,
    }

    /// The generations loaded for the length of a call (they stay alive until it is dropped).
    #[cfg(not(loom))]
    pub(crate) struct Loaded<'a> {
        _pin: Pin,
        next: *const Generation,
        current: *const Generation,
        _slots: std::marker::PhantomData<&'a Slots>,
    }

    #[cfg(not(loom))]
    impl Loaded<'_> {
        pub(crate) fn get(&self, slot: Slot) -> Option<&Generation> {
            let pointer = match slot {
                Slot::Current => self.current,
                Slot::Next => self.next,
            };
            // SAFETY: loaded with `protect` under `self._pin`, which is still entered: a
            // generation retired since is only freed after every guard that could have loaded
            // it is dropped. Null means no generation.
            unsafe { pointer.as_ref() }
        }
    }

    #[cfg(not(loom))]
    impl Slots {
        pub(crate) fn empty() -> Self {
            Slots {
                current: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
                next: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            }
        }

        fn slot(&self, slot: Slot) -> &std::sync::atomic::AtomicPtr<Generation> {
            match slot {
                Slot::Current => &self.current,
                Slot::Next => &self.next,
            }
        }

        /// Runs `f` on the current generation, protected by `pin` for the call.
        #[inline]
        pub(crate) fn with_current<R>(
            &self,
            pin: &Pin,
            f: impl FnOnce(Option<&Generation>) -> R,
        ) -> R {
            use seize::Guard;
            // SeqCst (seize strengthens it as its barrier needs): see the module docs of
            // `filter`.
            let pointer = pin
                .0
                .protect(&self.current, std::sync::atomic::Ordering::SeqCst);
            // SAFETY: protected by `pin`, which outlives `f` (see `Loaded::get`).
            f(unsafe { pointer.as_ref() })
        }

        /// Loads `next`, then `current` (the order the insert protocol needs), protected until
        /// the returned value is dropped.
        pub(crate) fn load(&self) -> Loaded<'_> {
            use seize::Guard;
            let pin = pin();
            let next = pin
                .0
                .protect(&self.next, std::sync::atomic::Ordering::SeqCst);
            let current = pin
                .0
                .protect(&self.current, std::sync::atomic::Ordering::SeqCst);
            Loaded {
                _pin: pin,
                next,
                current,
                _slots: std::marker::PhantomData,
            }
        }

        /// Replaces one slot's generation; the old one is freed once no reader can hold it.
        pub(crate) fn replace(&self, slot: Slot, new: Option<Generation>) {
            let new = new.map_or(std::ptr::null_mut(), |g| Box::into_raw(Box::new(g)));
            let old = self
                .slot(slot)
                .swap(new, std::sync::atomic::Ordering::SeqCst);
            self.retire(old);
        }

        /// Moves `next` into `current` (whose old generation is retired), then empties `next`:
        /// `current` is written first.
        pub(crate) fn promote_next(&self) {
            let moving = self.next.load(std::sync::atomic::Ordering::SeqCst);
            let old = self
                .current
                .swap(moving, std::sync::atomic::Ordering::SeqCst);
            self.next
                .store(std::ptr::null_mut(), std::sync::atomic::Ordering::SeqCst);
            self.retire(old);
        }

        fn retire(&self, old: *mut Generation) {
            if !old.is_null() {
                // SAFETY: `old` came from `Box::into_raw` and is no longer reachable from either
                // slot (a generation is in one slot at a time, except `moving` above, which
                // leaves `next` before anything retires it); readers that loaded it are
                // protected by their guards, and seize frees it only after them.
                unsafe { COLLECTOR.retire(old, seize::reclaim::boxed) };
            }
        }
    }

    #[cfg(not(loom))]
    impl Drop for Slots {
        fn drop(&mut self) {
            for slot in [&self.current, &self.next] {
                let pointer = slot.swap(std::ptr::null_mut(), std::sync::atomic::Ordering::SeqCst);
                if !pointer.is_null() {
                    // SAFETY: `&mut self`: no reader can still reach this filter's generations
                    // (a pin protects only what was loaded through a live `&Slots`), and each
                    // generation is in one slot only at rest.
                    drop(unsafe { Box::from_raw(pointer) });
                }
            }
        }
    }

    #[cfg(loom)]
    pub(crate) struct Slots {
        current: loom::sync::Mutex<Option<std::sync::Arc<Generation>>>,
        next: loom::sync::Mutex<Option<std::sync::Arc<Generation>>>,
    }

    #[cfg(loom)]
    pub(crate) struct Loaded<'a> {
        next: Option<std::sync::Arc<Generation>>,
        current: Option<std::sync::Arc<Generation>>,
        _slots: std::marker::PhantomData<&'a ()>,
    }

    #[cfg(loom)]
    impl Loaded<'_> {
        pub(crate) fn get(&self, slot: Slot) -> Option<&Generation> {
            match slot {
                Slot::Current => self.current.as_deref(),
                Slot::Next => self.next.as_deref(),
            }
        }
    }

    #[cfg(loom)]
    impl Slots {
        pub(crate) fn empty() -> Self {
            Slots {
                current: loom::sync::Mutex::new(None),
                next: loom::sync::Mutex::new(None),
            }
        }
        fn slot(&self, slot: Slot) -> &loom::sync::Mutex<Option<std::sync::Arc<Generation>>> {
            match slot {
                Slot::Current => &self.current,
                Slot::Next => &self.next,
            }
        }
        pub(crate) fn with_current<R>(
            &self,
            _pin: &Pin,
            f: impl FnOnce(Option<&Generation>) -> R,
        ) -> R {
            let current = self.current.lock().unwrap().clone();
            f(current.as_deref())
        }
        pub(crate) fn load(&self) -> Loaded<'_> {
            let next = self.next.lock().unwrap().clone();
            let current = self.current.lock().unwrap().clone();
            Loaded {
                next,
                current,
                _slots: std::marker::PhantomData,
            }
        }
        pub(crate) fn replace(&self, slot: Slot, new: Option<Generation>) {
            *self.slot(slot).lock().unwrap() = new.map(std::sync::Arc::new);
        }
        pub(crate) fn promote_next(&self) {
            let moving = self.next.lock().unwrap().clone();
            *self.current.lock().unwrap() = moving;
            *self.next.lock().unwrap() = None;
        }
    }
}
