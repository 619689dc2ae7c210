//! Key distributions for the bench rows: uniform (a multiplicative hash of the op counter) or
//! Zipf with exponent 1.0 (a precomputed CDF, binary search, and a fixed-seed xorshift).
//!
//! Zipf keys are drawn before a run starts into a per-thread table that the timed loop indexes,
//! so the sampler's cost (a binary search over the CDF) stays out of the measured ns/op.

/// The key distribution of the get, set and mixed rows (`--keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyDist {
    /// Every key of the key space equally likely.
    Uniform,
    /// Zipf, exponent 1.0: key k (0-based) drawn with probability ∝ 1 / (k + 1).
    Zipf,
}

impl KeyDist {
    pub fn describe(self) -> &'static str {
        match self {
            KeyDist::Uniform => "uniform",
            KeyDist::Zipf => "Zipf (exponent 1.0)",
        }
    }
}

/// Zipf samples per thread, drawn before the run; the timed loop cycles through them.
const TABLE: usize = 1 << 16;

/// The key source of one run over keys `0..N`: `get(thread, i)` is the `i`-th key of thread
/// `thread`. `N` is a constant so that the uniform path's modulo compiles to a multiplication.
pub struct Keys<const N: u64> {
    /// One table of pre-drawn Zipf keys per thread; empty for uniform keys.
    tables: Vec<Box<[u32]>>,
}

impl<const N: u64> Keys<N> {
    /// Keys for `threads` threads.
    pub fn new(dist: KeyDist, threads: usize) -> Self {
        let tables = match dist {
            KeyDist::Uniform => Vec::new(),
            KeyDist::Zipf => {
                let zipf = Zipf::new(N as usize, 1.0);
                (0..threads)
                    .map(|t| {
                        let mut rng = XorShift64::new(0x5EED_0000 + t as u64);
                        (0..TABLE)
                            .map(|_| zipf.sample(rng.next_f64()) as u32)
                            .collect()
                    })
                    .collect()
            }
        };
        Keys { tables }
    }

    #[inline]
    pub fn get(&self, t: usize, i: u64) -> u64 {
        if self.tables.is_empty() {
            uniform(t, i, N)
        } else {
            u64::from(self.tables[t][i as usize % TABLE])
        }
    }
}

/// A cheap per-thread key sequence (multiplicative hash of the counter), uniform over `n`.
#[inline]
pub fn uniform(t: usize, i: u64, n: u64) -> u64 {
    (i.wrapping_add(t as u64 * 0x9E37_79B9)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        >> 20)
        % n
}

/// Zipf over ranks `0..n`: P(rank k) ∝ 1 / (k + 1)^s.
pub struct Zipf {
    /// `cdf[k]` = P(rank ≤ k); the last entry is exactly 1.
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        assert!(n > 0, "Zipf over an empty key space");
        let mut cdf: Vec<f64> = (1..=n)
            .scan(0.0, |sum, k| {
                *sum += 1.0 / (k as f64).powf(s);
                Some(*sum)
            })
            .collect();
        let total = cdf[n - 1];
        for c in &mut cdf {
            *c /= total;
        }
        cdf[n - 1] = 1.0;
        Zipf { cdf }
    }

    /// The rank for a uniform `u` in `[0, 1)`: the first rank whose CDF exceeds `u`.
    pub fn sample(&self, u: f64) -> usize {
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// Marsaglia's xorshift64 with a fixed seed: reproducible draws without the rand crate.
pub struct XorShift64(u64);

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        // Scramble the seed so that neighbouring seeds give unrelated streams; never zero.
        XorShift64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, 1)` from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_frequencies_follow_one_over_k() {
        let n = 1_000;
        let zipf = Zipf::new(n, 1.0);
        let harmonic: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
        let mut rng = XorShift64::new(7);
        let draws = 400_000;
        let mut counts = vec![0u32; n];
        for _ in 0..draws {
            counts[zipf.sample(rng.next_f64())] += 1;
        }
        for k in [0usize, 1, 2, 9] {
            let expected = draws as f64 / ((k + 1) as f64 * harmonic);
            let got = f64::from(counts[k]);
            assert!(
                (got - expected).abs() < 0.05 * expected,
                "rank {k}: {got} draws, expected {expected:.0}"
            );
        }
    }

    #[test]
    fn zipf_sample_edges() {
        let zipf = Zipf::new(10, 1.0);
        assert_eq!(zipf.sample(0.0), 0);
        assert_eq!(zipf.sample(0.999_999_999), 9);
        assert_eq!(Zipf::new(1, 1.0).sample(0.5), 0);
    }

    #[test]
    fn keys_stay_in_range_and_are_reproducible() {
        for dist in [KeyDist::Uniform, KeyDist::Zipf] {
            let a = Keys::<100>::new(dist, 2);
            let b = Keys::<100>::new(dist, 2);
            for i in 0..10_000 {
                for t in 0..2 {
                    assert!(a.get(t, i) < 100);
                    assert_eq!(a.get(t, i), b.get(t, i));
                }
            }
        }
    }
}
