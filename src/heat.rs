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
//! **Width.** TinyLFU compares two keys' estimates, so the counts that hash collisions add to
//! both cancel out; the gate compares one estimate with an absolute threshold, so they do not.
//! A sketch of one word per key of capacity (TinyLFU's width) gets ten increments per word in
//! a window, 2.5 per counter, and under a stream of keys each read once below L1 (every read
//! of a key set much larger than L1, the case the gate is for) 38 % of them estimated at 2
//! and passed a gate of two reads. The gate's sketch has four words per key of capacity
//! ([`GATE_WORDS_PER_KEY`]), 0.6 increments per counter in a window: 0.4 % of such keys pass
//! (`keys_read_once_stay_cold_after_many_windows`; eight words: 0.03 %, two: 4 %). That is
//! 32 bytes per L1 entry, paid only by a cache that gates promotion by heat.
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
/// Words of the promotion gate's sketch per key of L1's capacity (see "Width" in the module
/// docs).
pub(crate) const GATE_WORDS_PER_KEY: usize = 4;
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
    /// The promotion gate's sketch for an L1 of `capacity` keys: [`GATE_WORDS_PER_KEY`] words
    /// per key (see "Width" in the module docs), at least one block, at most 2^24 words (128 MiB
    /// would be absurd for a hint), aging every ten times `capacity` increments.
    pub(crate) fn for_gate(capacity: usize) -> Self {
        Self::with_words(capacity.saturating_mul(GATE_WORDS_PER_KEY), capacity)
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
        let sketch = FrequencySketch::for_gate(1024);
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

    /// The gate's worst case (see "Width" in the module docs): a stream below L1 of keys each
    /// read once, far more of them than a window holds, as when every read of a key set much
    /// larger than L1 misses it. Once the window has turned over a few times, a key read once
    /// must still look cold. A sketch of TinyLFU's width (one word per key) fails this: 38 % of
    /// the keys look read twice.
    #[test]
    fn keys_read_once_stay_cold_after_many_windows() {
        let capacity = 1_000;
        let sketch = FrequencySketch::for_gate(capacity);
        let hasher = ahash::RandomState::with_seeds(9, 10, 11, 12);
        for i in 0..50 * capacity as u64 {
            sketch.increment(hasher.hash_one(i));
        }
        let passed = (1_000_000..1_010_000u64)
            .filter(|&i| {
                let hash = hasher.hash_one(i);
                sketch.increment(hash);
                sketch.estimate(hash) >= 2
            })
            .count();
        assert!(
            passed < 10_000 / 100,
            "{passed} of 10 000 keys read once look read twice"
        );
    }

    #[test]
    fn cold_keys_stay_low() {
        let sketch = FrequencySketch::for_gate(4096);
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
