//! Free memory for the chained table's links, reused before the allocator is asked.
//!
//! # Why
//!
//! Every update of a key (but for word values overwritten in place, `memory/value.rs`), every
//! eviction and every delete retires a link, and every insert needs one; seize hands retired
//! links back in batches of hundreds (one batch per `RETIRE_BATCH` retirements per thread).
//! Freed that way, glibc's per-thread cache (seven chunks per size) overflows into its slower bins,
//! and the next batch's allocation (a large request) consolidates them: under callgrind that
//! was about 40 % of a write's instructions. Kept here instead, the memory of a reclaimed link
//! is the next insert's, without a call to the allocator.
//!
//! # Design
//!
//! One pool per link *layout* (size and alignment), shared by every table whose links have
//! it: seize's reclaimer receives the link and the collector but no table, so the pool must be
//! found from the link's type alone. Up to [`POOLS`] layouts get a pool; links of any other
//! layout go to the allocator as before. A pool is striped by thread ([`thread_stripe`], the
//! counters' stripes): each stripe is an intrusive list of free blocks (the first word of a
//! free block points to the next one). A thread owns its stripe while it lives, so it takes
//! and gives blocks with plain loads and stores; the threads without a stripe of their own
//! share stripe [`SHARED`] behind a mutex.
//!
//! # Invariants
//!
//! - A block in a list is memory of one pool's layout, allocated by the global allocator, not
//!   in use by anyone: its previous link was dropped after seize reclaimed it.
//! - A stripe holds at most [`STRIPE_LIMIT`] blocks; beyond that blocks go back to the
//!   allocator, so a pool keeps at most `STRIPES * STRIPE_LIMIT` blocks of memory idle.
//! - Blocks are never returned to the allocator while listed; a pool lives for the process.

use crate::stats::{thread_stripe, SHARED, STRIPES};
use crossbeam_utils::CachePadded;
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::{Mutex, OnceLock};

/// Layouts that get a pool; links of other layouts use the allocator directly.
const POOLS: usize = 8;
/// Free blocks a stripe keeps at most (for `u64 → u64` links, 56 bytes each: 0.9 MB per thread
/// at most, memory the tier held as entries before). Far more than a retire batch, so a thread
/// that deletes or evicts in bursts keeps what it frees for the inserts after: at 1 024 (two
/// batches) a run of 10 000 deletes sent most links back to glibc, whose `free` of each (115
/// instructions) and the consolidation its fastbins then cost seize's next batch allocation
/// made a delete 437 instructions instead of 274 (`opcount delete-1l`, callgrind,
/// `Cache::delete` inclusive), and the runner's "single layer: delete" row 73–77 ns instead of
/// 55–57 (PERF.md §18). Like quick_cache's slab, which keeps a removed entry's slot for the
/// next insert, the pool gives memory back to the allocator only past this bound.
const STRIPE_LIMIT: usize = 16384;

static REGISTRY: [OnceLock<Pool>; POOLS] = [const { OnceLock::new() }; POOLS];

/// Free blocks of one layout.
pub(super) struct Pool {
    layout: Layout,
    /// The list of the threads without a stripe of their own.
    shared: CachePadded<Mutex<FreeList>>,
    /// Stripe `s`'s list, `s` in `1..STRIPES` (index 0 unused): only its owner touches it.
    owned: Box<[CachePadded<UnsafeCell<FreeList>>]>,
}

// SAFETY: the shared list is behind a mutex; an owned list is only ever accessed by the thread
// that owns its stripe (`thread_stripe` leases each owned stripe to one live thread at a time,
// and hands it over through a mutex, which orders the old owner's accesses before the new
// owner's).
unsafe impl Sync for Pool {}

/// An intrusive list of free blocks.
struct FreeList {
    head: *mut u8,
    len: usize,
}

// SAFETY: the list only holds pointers to free blocks nobody else references; moving it to
// another thread (inside its mutex) moves nothing but those pointers.
unsafe impl Send for FreeList {}

impl Pool {
    /// The pool of `layout`, made on first use; `None` if every pool serves another layout.
    /// `layout` must be at least one pointer in size and alignment (a free block's first word
    /// is the list's link).
    #[inline]
    pub(super) fn of(layout: Layout) -> Option<&'static Pool> {
        debug_assert!(
            layout.size() >= size_of::<*mut u8>() && layout.align() >= align_of::<*mut u8>()
        );
        for slot in &REGISTRY {
            let pool = slot.get_or_init(|| Pool {
                layout,
                shared: CachePadded::new(Mutex::new(FreeList::new())),
                owned: (0..STRIPES)
                    .map(|_| CachePadded::new(UnsafeCell::new(FreeList::new())))
                    .collect(),
            });
            if pool.layout == layout {
                return Some(pool);
            }
        }
        None
    }

    /// Runs `f` on the calling thread's list.
    #[inline]
    fn with_list<T>(&self, f: impl FnOnce(&mut FreeList) -> T) -> T {
        let stripe = thread_stripe();
        if stripe == SHARED {
            return f(&mut self.shared.lock().unwrap_or_else(|e| e.into_inner()));
        }
        // SAFETY: this thread owns `stripe` (see the `Sync` impl), and `f` cannot reach the
        // pool again (it only edits the list), so this is the one reference to the list.
        f(unsafe { &mut *self.owned[stripe].get() })
    }

    /// A free block of the pool's layout, if the calling thread's stripe has one.
    #[inline]
    pub(super) fn take(&self) -> Option<*mut u8> {
        self.with_list(FreeList::pop)
    }

    /// Keeps `block` (free memory of the pool's layout) for a later `take`; returns false,
    /// keeping nothing, if the stripe is full (the caller frees it).
    #[inline]
    pub(super) fn give(&self, block: *mut u8) -> bool {
        self.with_list(|list| list.push(block))
    }
}

impl FreeList {
    const fn new() -> Self {
        FreeList {
            head: ptr::null_mut(),
            len: 0,
        }
    }

    fn pop(&mut self) -> Option<*mut u8> {
        let block = self.head;
        if block.is_null() {
            return None;
        }
        // SAFETY: a listed block is free memory whose first word holds the next block
        // (written by `push`); the list's owner is its only user.
        self.head = unsafe { block.cast::<*mut u8>().read() };
        self.len -= 1;
        Some(block)
    }

    fn push(&mut self, block: *mut u8) -> bool {
        if self.len >= STRIPE_LIMIT {
            return false;
        }
        // SAFETY: the caller gives up a free block of the pool's layout (at least a pointer in
        // size and alignment); its first word becomes the list's link.
        unsafe { block.cast::<*mut u8>().write(self.head) };
        self.head = block;
        self.len += 1;
        true
    }
}

/// Memory for one value of `layout`: a block of `pool` (the pool of `layout`), or the
/// allocator's.
#[inline]
pub(super) fn allocate(layout: Layout, pool: Option<&Pool>) -> *mut u8 {
    debug_assert!(pool.is_none_or(|pool| pool.layout == layout));
    if let Some(block) = pool.and_then(Pool::take) {
        return block;
    }
    // SAFETY: `layout` has a non-zero size (at least a pointer, see `Pool::of`).
    let block = unsafe { std::alloc::alloc(layout) };
    if block.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    block
}

/// Gives back memory from [`allocate`] whose value was dropped.
///
/// # Safety
///
/// `block` came from `allocate(layout)` and nothing uses it any more.
#[inline]
pub(super) unsafe fn free(block: *mut u8, layout: Layout) {
    if Pool::of(layout).is_some_and(|pool| pool.give(block)) {
        return;
    }
    // SAFETY: the caller's contract: the global allocator's block of this layout, unused.
    unsafe { std::alloc::dealloc(block, layout) };
}
