//! The counting global allocators of the benches and the allocation tests, in one place.
//!
//! - [`Counting`]: per-thread counts of allocations and allocated bytes (a thread-local
//!   increment per allocation, no shared write): what an operation allocates on its own
//!   thread. The seed bench and `tests/alloc.rs` install it.
//! - [`Tracking`]: live heap bytes over all threads (a relaxed atomic add per allocation and
//!   free): what a cache holds. The bytes-per-entry bench installs it.
//!
//! A binary installs one with `#[global_allocator] static A: strata_bench::alloc::Counting =
//! strata_bench::alloc::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

/// Counts this thread's allocations and allocated bytes (see the module docs).
pub struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

/// This thread's allocations and allocated bytes so far (with [`Counting`] installed).
pub fn allocations() -> [u64; 2] {
    [ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get)]
}

// SAFETY: every method forwards to the system allocator unchanged; the counting touches only
// thread-locals and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: the thread-locals may already be gone while a thread shuts down.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = BYTES.try_with(|n| n.set(n.get() + layout.size() as u64));
        // SAFETY: forwarded unchanged to the system allocator, whose contract the caller meets.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Tracks live heap bytes over all threads (see the module docs).
pub struct Tracking;

/// Live heap bytes: requested sizes allocated minus freed, over all threads.
static LIVE: AtomicI64 = AtomicI64::new(0);

/// Live heap bytes now (with [`Tracking`] installed).
pub fn live_bytes() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

// SAFETY: every method forwards to the system allocator unchanged; the tracking is one relaxed
// atomic add (relaxed: the total is read after the threads that allocate have been joined).
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator, whose contract the caller meets.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller meets the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        new
    }
}
