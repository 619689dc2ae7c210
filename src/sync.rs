//! The one place strata imports atomics and cells from.
//!
//! Every atomic that the promotion protocol, the policy and the counters rely on comes from
//! here, so a `--cfg loom` build swaps them all for loom's instrumented versions at once (the
//! pattern of tokio's `loom` module and sharded-slab's `sync.rs`). Code elsewhere in the crate
//! must not name `std::sync::atomic` directly.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

pub(crate) use std::sync::Arc;

/// The unbounded lock-free FIFO of the policy: crossbeam's
/// `SegQueue`, or under loom a mutex-protected `VecDeque` loom can instrument.
#[cfg(not(loom))]
pub(crate) use crossbeam_queue::SegQueue;

#[cfg(loom)]
pub(crate) struct SegQueue<T>(loom::sync::Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> SegQueue<T> {
    pub(crate) fn new() -> Self {
        SegQueue(loom::sync::Mutex::new(std::collections::VecDeque::new()))
    }
    pub(crate) fn push(&self, value: T) {
        self.0.lock().unwrap().push_back(value);
    }
    pub(crate) fn pop(&self) -> Option<T> {
        self.0.lock().unwrap().pop_front()
    }
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bounded lock-free queue of the promotion queues: crossbeam's `ArrayQueue`, or under
/// loom a mutex-protected `VecDeque` with the same capacity rule.
#[cfg(not(loom))]
pub(crate) use crossbeam_queue::ArrayQueue;

#[cfg(loom)]
pub(crate) struct ArrayQueue<T> {
    queue: loom::sync::Mutex<std::collections::VecDeque<T>>,
    capacity: usize,
}

#[cfg(loom)]
impl<T> ArrayQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        ArrayQueue {
            queue: loom::sync::Mutex::new(std::collections::VecDeque::new()),
            capacity,
        }
    }
    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let mut queue = self.queue.lock().unwrap();
        if queue.len() >= self.capacity {
            return Err(value);
        }
        queue.push_back(value);
        Ok(())
    }
    pub(crate) fn pop(&self) -> Option<T> {
        self.queue.lock().unwrap().pop_front()
    }
    pub(crate) fn len(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
}

/// A hint to the processor inside a bounded retry loop.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// The hasher for stripes, shards and ghost fingerprints. Random per cache normally; fixed
/// under loom, whose exploration must be deterministic.
#[cfg(not(loom))]
pub(crate) fn random_state() -> ahash::RandomState {
    ahash::RandomState::new()
}

#[cfg(loom)]
pub(crate) fn random_state() -> ahash::RandomState {
    ahash::RandomState::with_seeds(0x5eed, 0x57a7a, 0xcafe, 0xf00d)
}

/// Deliberately broken variants of the protocol, for the loom models' broken twins
/// (`loom-tests/tests/broken.rs` and the `broken_*.rs` binaries beside it): each must make loom
/// find a violation. They exist only to show that the models have teeth; in a normal build
/// [`broken`] is a constant `false`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Broken {
    /// A promotion publishes without validating its ticket, and a write's insert into an empty
    /// place without validating against its stripe's floor.
    PromotionValidation = 1,
    /// A write does not cancel pending promotions of its key.
    PromotionCancellation = 2,
    /// A read does not re-read the layers above a lower-layer hit that overlapped a write.
    ReadRecheck = 4,
    /// A write sets a negative filter's bits after the layer call instead of before.
    FilterInsertAfterWrite = 16,
    /// A filter rebuild lists the layer without waiting for in-flight inserts to drain.
    FilterRebuildWithoutDrain = 32,
    /// A promotion keeps the source entry's version instead of clamping it to its ticket.
    PromotionUnclamped = 64,
    /// The chained table reclaims a link as soon as it is retired, without waiting for the
    /// readers that may hold it.
    TableReclaimWithoutGrace = 128,
    /// The chained table clears an unlinked link's `next`, cutting off readers standing on it.
    TableUnlinkClearsNext = 256,
    /// A promotion's insert into an empty place that is undone does not enforce
    /// the tier's bounds, though a racing write may have replaced its node and taken over the
    /// residency it admitted.
    UndoneInsertSkipsBounds = 512,
    /// A write overwrites a word value in place on a node it found without the bucket lock,
    /// which a removal may have unlinked meanwhile.
    InPlaceOutsideLock = 1024,
    /// A write overwrites a word value in place with a plain store instead of an atomic one.
    InPlacePlainWrite = 2048,
    /// The chained table's guard-free write (`write_unpinned`) walks the chain without the lock.
    TableLockedReadUnlocked = 4096,
    /// An in-place overwrite stores the new expiry before the new value.
    InPlaceExpiryFirst = 8192,
    /// A reader that found a node expired removes it without checking, under the bucket lock,
    /// that it is still expired (an in-place overwrite may have extended it).
    ExpiryRemovalUnchecked = 16384,
    /// Every write marks nothing in flight (as a sole tier's writes, which take no token at
    /// all) though the cache has a layer to promote from: a version, no in-flight mark, no
    /// fence.
    WriteWithoutInFlight = 32768,
    /// A write into a place its key had left checks the stripe's floor before taking the bucket
    /// lock, not under it.
    FloorCheckedBeforeLock = 65536,
    /// The engine makes L1 sole (`MemoryLayer::make_sole`: no versions compared, no floors)
    /// though the cache has layers below it.
    SoleTierWithLayersBelow = 131072,
}

/// Loom builds only: places where a thread may yield to loom's scheduler, switched on per test
/// binary with [`yield_for_test`]. A yield lets loom switch threads there without spending a
/// preemption of its bounded search, so a model reaches an interleaving that needs a thread to
/// stop at that exact place. Outside loom builds [`yield_point`] is empty.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum YieldPoint {
    /// A read of a memory tier, between finding the key's node and loading its fields. Under
    /// the loom stand-in a lookup takes the table's lock, which the real table's lookup does
    /// not, and loom's bounded search then rarely stops a reader right after it: a model that
    /// needs a reader standing on a node while a writer changes it turns this on.
    AfterReadLookup = 1,
    /// A promotion, between validating its ticket and publishing its node: a model that needs
    /// a write to begin in that window (a promotion that publishes late) turns this on.
    BeforePromotionPublish = 2,
}

/// The yield points switched on, a std atomic for the same reason as [`BROKEN`].
#[cfg(loom)]
static YIELDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Loom builds only: makes every thread yield at `point`, for the rest of the process (so in a
/// test binary of its own, as the broken twins' switches).
#[cfg(loom)]
#[doc(hidden)]
pub fn yield_for_test(point: YieldPoint) {
    // Relaxed: set before the model runs, and test configuration only (not modelled state).
    YIELDS.fetch_or(point as u32, std::sync::atomic::Ordering::Relaxed);
}

/// A yield point (see [`YieldPoint`]); nothing outside loom builds.
#[inline(always)]
pub(crate) fn yield_point(point: YieldPoint) {
    #[cfg(loom)]
    // Relaxed: see `yield_for_test`.
    if YIELDS.load(std::sync::atomic::Ordering::Relaxed) & point as u32 != 0 {
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    let _ = point;
}

/// The switches, a std atomic on purpose: test configuration, not modelled state.
#[cfg(loom)]
static BROKEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Loom builds only: switches `which` on, and every other variant off, until the returned
/// guard drops.
///
/// The switches are process-wide and the test harness runs a binary's tests on parallel
/// threads, so the guard also holds a process-wide lock: a second caller waits until the first
/// caller's model has finished and its guard dropped (on success, or during the unwinding of
/// the panic a twin expects). No model sees a switch flip while loom explores it (which loom
/// reports as a non-deterministic model), and no twin fails for another twin's switch.
#[cfg(loom)]
#[doc(hidden)]
pub fn break_for_test(which: Broken) -> BrokenGuard {
    static EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A twin panics while holding the lock, by design: the poison carries no meaning here.
    let lock = EXCLUSIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    BROKEN.store(which as u32, std::sync::atomic::Ordering::Relaxed);
    BrokenGuard { _lock: lock }
}

/// Keeps one broken variant on (see [`break_for_test`]); dropping it switches the variant off
/// and lets the next twin in.
#[cfg(loom)]
#[doc(hidden)]
#[must_use = "the variant is switched off again when the guard drops"]
#[derive(Debug)]
pub struct BrokenGuard {
    _lock: std::sync::MutexGuard<'static, ()>,
}

#[cfg(loom)]
impl Drop for BrokenGuard {
    fn drop(&mut self) {
        // Before the lock is released (fields drop after this body).
        BROKEN.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether a broken variant is on (never, outside loom builds).
#[inline(always)]
pub(crate) fn broken(which: Broken) -> bool {
    #[cfg(loom)]
    return BROKEN.load(std::sync::atomic::Ordering::Relaxed) & which as u32 != 0;
    #[cfg(not(loom))]
    {
        let _ = which;
        false
    }
}
