//! Key streams of the seed scenarios and the benchmarks: uniform (a multiplicative hash of the
//! op counter) or Zipf with exponent 1.0 (a precomputed CDF, binary search, a fixed-seed
//! xorshift).
//!
//! Shared by the bench runner and the criterion benches, so both measure the same key streams.
//!
//! Zipf keys are drawn before a run starts into a per-thread table that the timed loop indexes,
//! so the sampler's cost (a binary search over the CDF) stays out of the measured ns/op.

/// The key distribution of a workload (the runner's `--keys`, the benches' `STRATA_BENCH_KEYS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyDist {
    /// Every key of the key space equally likely.
    Uniform,
    /// Zipf, exponent 1.0: key k (0-based) drawn with probability ∝ 1 / (k + 1).
    Zipf,
}

impl KeyDist {
    /// The benches' `STRATA_BENCH_KEYS`: uniform by default.
    pub fn from_env() -> KeyDist {
        match std::env::var("STRATA_BENCH_KEYS").as_deref() {
            Err(_) | Ok("uniform") => KeyDist::Uniform,
            Ok("zipf") => KeyDist::Zipf,
            Ok(other) => panic!("STRATA_BENCH_KEYS: uniform or zipf, not {other:?}"),
        }
    }
}

impl KeyDist {
    /// The distribution's name in tables and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            KeyDist::Uniform => "uniform",
            KeyDist::Zipf => "zipf",
        }
    }

    /// The distribution in words, for report headers.
    pub fn describe(self) -> &'static str {
        match self {
            KeyDist::Uniform => "uniform",
            KeyDist::Zipf => "Zipf (exponent 1.0)",
        }
    }
}

/// Zipf samples per thread, drawn before the run; the timed loop cycles through them, so the
/// sampler's binary search stays out of the measured time.
const TABLE: usize = 1 << 16;

/// The key source of a workload over keys `0..n`: `get(thread, i)` is the `i`-th key of thread
/// `thread`. Every cache of a comparison draws from the same `Keys`, so they see the same keys
/// in the same order.
pub struct Keys {
    n: u64,
    /// One table of pre-drawn Zipf keys per thread; empty for uniform keys.
    tables: Vec<Box<[u32]>>,
}

impl Keys {
    /// Keys for up to `threads` threads.
    pub fn new(dist: KeyDist, n: u64, threads: usize) -> Keys {
        assert!(n > 0 && n <= u64::from(u32::MAX));
        let tables = match dist {
            KeyDist::Uniform => Vec::new(),
            KeyDist::Zipf => {
                let zipf = Zipf::new(n as usize, 1.0);
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
        Keys { n, tables }
    }

    /// The size of the key space: keys are `0..count()`.
    pub fn count(&self) -> u64 {
        self.n
    }

    #[inline]
    pub fn get(&self, t: usize, i: u64) -> u64 {
        if self.tables.is_empty() {
            uniform(t, i, self.n)
        } else {
            u64::from(self.tables[t][i as usize % TABLE])
        }
    }
}

/// A cheap per-thread key sequence, uniform over `0..n`: a multiplicative hash of the counter,
/// reduced to the range by a multiply-shift (no division on the timed path).
#[inline]
pub fn uniform(t: usize, i: u64, n: u64) -> u64 {
    let h = i
        .wrapping_add((t as u64).wrapping_mul(0x9E37_79B9))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((u128::from(h) * u128::from(n)) >> 64) as u64
}

/// Zipf over ranks `0..n`: P(rank k) ∝ 1 / (k + 1)^s, by inversion of a precomputed CDF.
pub struct Zipf {
    /// `cdf[k]` = P(rank ≤ k); the last entry is exactly 1.
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        assert!(n > 0, "Zipf over an empty key space");
        let mut sum = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                sum += 1.0 / (k as f64).powf(s);
                sum
            })
            .collect();
        for c in &mut cdf {
            *c /= sum;
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
    pub fn new(seed: u64) -> XorShift64 {
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
    #[test]
    fn zipf_frequencies_follow_one_over_k() {
        let n = 1_000;
        let zipf = super::Zipf::new(n, 1.0);
        let harmonic: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
        let mut rng = super::XorShift64::new(7);
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
        let zipf = super::Zipf::new(10, 1.0);
        assert_eq!(zipf.sample(0.0), 0);
        assert_eq!(zipf.sample(0.999_999_999), 9);
        assert_eq!(super::Zipf::new(1, 1.0).sample(0.5), 0);
    }

    #[test]
    fn keys_stay_in_range_and_are_reproducible() {
        for dist in [super::KeyDist::Uniform, super::KeyDist::Zipf] {
            let a = super::Keys::new(dist, 100, 2);
            let b = super::Keys::new(dist, 100, 2);
            for i in 0..10_000 {
                for t in 0..2 {
                    assert!(a.get(t, i) < 100);
                    assert_eq!(a.get(t, i), b.get(t, i));
                }
            }
        }
    }
}
