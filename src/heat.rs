//! Heat hints: an atomic, aging frequency sketch of the keys read below L1.
//!
//! # Algorithm
//!
//! A count-min sketch of 4-bit counters, as in Caffeine's and moka's TinyLFU: sixteen counters
//! are packed in each `u64` word, and a key owns four counters, one in each of four words of one
//! 64-byte block (so an increment or an estimate touches one cache line). A key's estimate is
//! the smallest of its four counters: hash collisions can only raise a count, never lower it.
//! Counters saturate at 15.
//!
//! **Aging.** After `window` increments the sketch halves every counter, so counts describe
//! the recent past: a key that was hot an hour ago is not promoted forever on its old fame.
//! The window is ten times the capacity the sketch was sized for (Caffeine's choice).
//!
//! # What feeds it, and what it decides
//!
//! The engine increments a key's counters on every read that goes below L1 (an L1 miss), and
//! only when the cache gates promotion by heat. An L1 hit never touches the sketch: the read
//! hit path stays free of shared writes. A lower-layer hit is promoted into L1 only when the
//! key's estimate reaches the gate's threshold (see [`crate::PromotionGate`]), so keys read
//! once below L1 (one-hit wonders, scans) no longer churn L1.
//!
//! # Concurrency
//!
//! The sketch is a hint, so every access is `Relaxed`: a lost increment (two threads raising
//! the same counter at once keep one raise, never a torn word, since each raise is a
//! compare-exchange of the whole word) or an estimate read during a halving only shifts one
//! promotion decision. Deciding not to promote is always safe: promotion only copies a value
//! that a lower layer already serves. Halving is done by the thread whose increment crosses
//! the window, one word at a time; increments that race it are kept or halved, either is fine.
//!
//! Written by hand rather than taken from a crate: this sketch is part of the product (its
//! layout, its feed and its aging are the engine's policy), and it is short.

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Words per block: 8 × 8 bytes, one cache line.
const BLOCK_WORDS: usize = 8;
/// Every counter's low three bits, for halving a whole word at once.
const HALVING_MASK: u64 = 0x7777_7777_7777_7777;

/// A frequency sketch (see the module docs).
pub(crate) struct FrequencySketch {
    words: Box<[AtomicU64]>,
    /// Blocks − 1 (a power of two minus one).
    block_mask: usize,
    /// Increments since the last halving.
    additions: AtomicUsize,
    window: usize,
}

impl FrequencySketch {
    /// A sketch sized for about `capacity` distinct hot keys: one word (sixteen counters) per
    /// key, at least one block, at most 2^24 words (128 MiB would be absurd for a hint).
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_words(capacity, capacity)
    }

    /// A sketch of about `words` words (rounded up to a power of two, within the same bounds)
    /// that ages as one sized for `capacity` keys.
    pub(crate) fn with_words(words: usize, capacity: usize) -> Self {
        let words = words
            .clamp(BLOCK_WORDS, 1 << 24)
            .next_power_of_two()
            .max(BLOCK_WORDS);
        FrequencySketch {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            block_mask: words / BLOCK_WORDS - 1,
            additions: AtomicUsize::new(0),
            window: capacity.max(1).saturating_mul(10),
        }
    }

    /// The four `(word, shift)` counters of a hash: the block from the low bits, each counter's
    /// word and nibble from four more bytes of the hash.
    #[inline]
    fn counters(&self, hash: u64) -> [(usize, u32); 4] {
        let block = (hash as usize & self.block_mask) * BLOCK_WORDS;
        let spread = hash.rotate_right(32);
        std::array::from_fn(|i| {
            let bits = (spread >> (i * 8)) as usize;
            // Two of the block's words per row, so the four rows stay in different words.
            let word = block + i * 2 + (bits & 1);
            let shift = ((bits >> 1) & 15) as u32 * 4;
            (word, shift)
        })
    }

    /// Counts one access of the key with this hash.
    pub(crate) fn increment(&self, hash: u64) {
        let mut added = false;
        for (word, shift) in self.counters(hash) {
            // Relaxed: a hint (see the module docs). The update is a compare-exchange so that a
            // counter at 15 is never carried into its neighbour.
            added |= self.words[word]
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                    ((w >> shift) & 15 != 15).then(|| w + (1 << shift))
                })
                .is_ok();
        }
        // Saturated keys do not count towards the window: a few very hot keys must not age
        // everyone else's counts faster.
        // Relaxed: the count only times the aging; the RMW makes exactly one thread see the
        // window filled.
        if added && self.additions.fetch_add(1, Ordering::Relaxed) + 1 == self.window {
            self.halve();
        }
    }

    /// The key's estimated count (0–15) in the current window.
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        self.counters(hash)
            .into_iter()
            // Relaxed: a hint (see the module docs).
            .map(|(word, shift)| (self.words[word].load(Ordering::Relaxed) >> shift) & 15)
            .min()
            .unwrap_or(0) as u8
    }

    /// Halves every counter and the addition count (the thread that filled the window).
    fn halve(&self) {
        for word in self.words.iter() {
            // Relaxed: a hint; an increment racing the halving is kept or halved, either is fine.
            let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                Some((w >> 1) & HALVING_MASK)
            });
        }
        // Relaxed: as in `increment`. Halving the count with the counters keeps the next aging a
        // half window away, as Caffeine does.
        self.additions.fetch_sub(self.window / 2, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_age() {
        let sketch = FrequencySketch::new(1024);
        let hash = 0x1234_5678_9abc_def0;
        assert_eq!(sketch.estimate(hash), 0);
        for expected in 1..=15 {
            sketch.increment(hash);
            assert_eq!(sketch.estimate(hash), expected);
        }
        sketch.increment(hash);
        assert_eq!(sketch.estimate(hash), 15, "saturates");
        // Fill the window with other keys: the count halves.
        let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
        for i in 0..10 * 1024 {
            sketch.increment(hasher.hash_one(i));
        }
        assert!(sketch.estimate(hash) <= 8, "{}", sketch.estimate(hash));
    }

    #[test]
    fn cold_keys_stay_low() {
        let sketch = FrequencySketch::new(4096);
        let hasher = ahash::RandomState::with_seeds(5, 6, 7, 8);
        for i in 0..4096u64 {
            sketch.increment(hasher.hash_one(i));
        }
        // Each key was counted once; collisions raise few estimates above that.
        let high = (0..4096u64)
            .filter(|i| sketch.estimate(hasher.hash_one(i)) > 1)
            .count();
        assert!(high < 4096 / 20, "{high} of 4096 keys look hot");
    }
}
