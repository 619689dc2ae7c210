//! A node's value: immutable once published, except for plain machine words, which a write of
//! an existing key overwrites in place.
//!
//! # Why
//!
//! A write of a key the tier holds used to link a new node in place of the old one and retire
//! the old one through seize: allocation from the pool, retirement, reclamation and the pool's
//! free cost about 230 of an overwrite's ~800 instructions, and seize's batch buffers made an
//! overwrite allocate 0.009 times on average (PERF.md §12, §13). For a value that is one
//! machine word, the new value can simply be stored into the node.
//!
//! # Which values
//!
//! `u64`, `i64`, `f64`, `usize` and `isize` (8 bytes, aligned to 8), recognised by `TypeId`:
//! no trait bound and no API change, and the choice is a constant per monomorphised cache, so
//! it costs no branch. Every other type keeps immutable values (`V: Clone` cannot be updated in
//! place in general: a reader may be cloning it).
//!
//! # Invariants (what makes the word path sound)
//!
//! - A value of another type is written once, when the node is made, before the table publishes
//!   the node (a release store of the link pointer), and only read after that.
//! - A word is written plainly when the node is made, before publication, and afterwards only
//!   by [`overwrite`](Value::overwrite), under the key's bucket lock (see `MemoryLayer::set_in`).
//!   Every read of a published word is an atomic load of the same 8 bytes. So no two accesses
//!   that can overlap are non-atomic, and a reader returns the bits of exactly one write.
//! - The lock is what keeps an overwrite off a node a removal has unlinked: every removal
//!   (delete, eviction, expiry, undo) unlinks under the same bucket lock and raises the stripe's
//!   floor to at least the version it finds there (a delete, to its own newer one), so it sees
//!   the overwrite's version, or the overwrite does not find the node. An overwrite outside
//!   the lock could land on an unlinked node after the floor was raised to the node's *old*
//!   version, and a slower, older write could then pass the floor into the emptied place: the
//!   broken twin `in_place_write_outside_the_lock_is_caught`
//!   (`loom-tests/tests/broken_overwrite_lock.rs`) shows loom finding exactly that.
//!
//! Under `--cfg loom` the word lives in a loom `AtomicU64` beside the value, so loom sees every
//! access to it, and the value's cell is loom's, which reports any two unordered accesses to
//! it: the broken twin `plain_in_place_write_racing_a_reader_is_caught` overwrites through the
//! cell instead of the atomic, and loom finds the reader it races.

use crate::sync::{broken, AtomicU64, Broken, Ordering};
use std::any::TypeId;
use std::mem::{align_of, size_of, transmute_copy};

#[cfg(loom)]
use loom::cell::UnsafeCell;
#[cfg(not(loom))]
use std::cell::UnsafeCell;

/// Whether `V` is a plain word the tier overwrites in place (see the module docs).
#[inline(always)]
pub(crate) fn is_word<V: 'static>() -> bool {
    let id = TypeId::of::<V>();
    size_of::<V>() == 8
        && align_of::<V>() == 8
        && (id == TypeId::of::<u64>()
            || id == TypeId::of::<i64>()
            || id == TypeId::of::<f64>()
            || id == TypeId::of::<usize>()
            || id == TypeId::of::<isize>())
}

/// Whether this cache's values take the word path (the broken twin of the reader model turns
/// it off, so that its overwrites go through the plain cell).
#[inline(always)]
fn word_path<V: 'static>() -> bool {
    is_word::<V>() && !broken(Broken::InPlacePlainWrite)
}

pub(crate) struct Value<V> {
    cell: UnsafeCell<V>,
    /// Loom builds: the word's instrumented home (see the module docs).
    #[cfg(loom)]
    word: AtomicU64,
}

// SAFETY: a `Value` hands out clones of its value and references to it (`V: Sync` lets several
// threads read it) and moves values in only for word types, which are `Send + Sync` plain
// data; every concurrent access to a word is atomic (module docs). Sending it sends the `V` it
// owns.
unsafe impl<V: Send + Sync> Sync for Value<V> {}
// SAFETY: as above: it owns a `V`, which is `Send`.
unsafe impl<V: Send> Send for Value<V> {}

impl<V: Clone + 'static> Value<V> {
    pub(crate) fn new(value: V) -> Self {
        Value {
            #[cfg(loom)]
            word: AtomicU64::new(if is_word::<V>() {
                // SAFETY: `V` is one of the word types (checked just above): 8 bytes, all of
                // them a `u64`'s.
                unsafe { transmute_copy::<V, u64>(&value) }
            } else {
                0
            }),
            cell: UnsafeCell::new(value),
        }
    }

    /// The word's atomic view. Only called for word types.
    #[cfg(not(loom))]
    #[inline(always)]
    fn word(&self) -> &AtomicU64 {
        debug_assert!(is_word::<V>());
        // SAFETY: `V` is a word type, so the cell holds 8 bytes aligned to 8 (checked by
        // `is_word`), the size, alignment and representation of an `AtomicU64`; after
        // publication the cell is only accessed through this view (module docs), and the view
        // lives no longer than `&self`.
        unsafe { AtomicU64::from_ptr(self.cell.get().cast::<u64>()) }
    }

    #[cfg(loom)]
    fn word(&self) -> &AtomicU64 {
        &self.word
    }

    /// Calls `f` on the value in the cell: for a value that is not a word, the only value
    /// (module docs: never written after publication).
    #[cfg(not(loom))]
    #[inline(always)]
    fn read_cell<R>(&self, f: impl FnOnce(&V) -> R) -> R {
        // SAFETY: only called for a value that is never written after publication (or, in the
        // loom twin, one that is on purpose): shared reads only.
        f(unsafe { &*self.cell.get() })
    }

    #[cfg(loom)]
    fn read_cell<R>(&self, f: impl FnOnce(&V) -> R) -> R {
        // SAFETY: as above; loom checks it.
        self.cell.with(|value| f(unsafe { &*value }))
    }

    /// The value, cloned (a word: one atomic load).
    ///
    /// Acquire on the word pairs with `overwrite`'s release store; the word publishes nothing
    /// beyond itself, so this is only for symmetry with the node pointer's load (both are plain
    /// moves on x86). A read that overlaps an overwrite returns the old or the new word.
    #[inline]
    pub(crate) fn get(&self) -> V {
        if word_path::<V>() {
            let bits = self.word().load(Ordering::Acquire);
            // SAFETY: `V` is a word type: every `u64` bit pattern is a valid `V`.
            unsafe { transmute_copy::<u64, V>(&bits) }
        } else {
            self.read_cell(V::clone)
        }
    }

    /// Stores `value` in place of the current one. Only for word types (see [`is_word`]), and
    /// only under the bucket lock of the node's key (module docs).
    ///
    /// Release: a reader that loads this word (acquire) sees a complete value; ordered after
    /// the version store the caller made before it.
    #[inline]
    pub(crate) fn overwrite(&self, value: V) {
        debug_assert!(is_word::<V>());
        #[cfg(loom)]
        if broken(Broken::InPlacePlainWrite) {
            // The broken twin: a plain store into the cell that readers read.
            // SAFETY: none, by design; loom reports the race before any reader reads.
            return self.cell.with_mut(|cell| unsafe { *cell = value });
        }
        // SAFETY: `V` is a word type: its 8 bytes are a `u64`.
        let bits = unsafe { transmute_copy::<V, u64>(&value) };
        self.word().store(bits, Ordering::Release);
    }
}
