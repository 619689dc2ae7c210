//! `strata replay`: hit ratios of strata's memory tier on a cache trace.
//!
//! A trace is a gzip-compressed array of little-endian `u64` keys, one per request (the format of
//! `shared/traces`, see its README). The replay rule is the README's: for each key `get`; on a
//! miss insert it; hit ratio = hits / requests. The cache is a single `LayerSpec::memory` layer
//! with promotion off, replayed single-threaded.

use std::fmt;
use std::str::FromStr;

use strata::{Cache, LayerSpec, Promotion};
pub use strata_bench::traces::decode;

/// A cache size: an entry count, or a fraction of the trace's unique keys (`0.3%`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Size {
    Entries(usize),
    /// Percent of the unique keys.
    Percent(f64),
}

/// The traces README's sizes: 0.3 %, 1 %, 3 %, 10 %, 20 % and 40 % of the unique keys.
pub const DEFAULT_SIZES: &str = "0.3%,1%,3%,10%,20%,40%";

impl Size {
    /// Entries for a trace with `unique` distinct keys (fractions round down, at least 1).
    pub fn entries(self, unique: usize) -> usize {
        match self {
            Size::Entries(n) => n,
            Size::Percent(p) => ((unique as f64 * p / 100.0).floor() as usize).max(1),
        }
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(percent) = s.strip_suffix('%') {
            let p: f64 = percent
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage"))?;
            if p.is_finite() && p > 0.0 {
                Ok(Size::Percent(p))
            } else {
                Err(format!("{s:?}: the percentage must be above 0"))
            }
        } else {
            let n: usize = s
                .replace('_', "")
                .parse()
                .map_err(|_| format!("{s:?} is neither an entry count nor a percentage"))?;
            if n > 0 {
                Ok(Size::Entries(n))
            } else {
                Err(format!("{s:?}: a cache needs at least one entry"))
            }
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Entries(n) => write!(f, "{n}"),
            Size::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Replays `keys` through a single memory tier of `size` entries; returns the hit count.
pub fn replay(keys: &[u64], size: usize) -> u64 {
    let cache: Cache<u64, u64> = Cache::builder()
        .layer(LayerSpec::memory("l1", size))
        .promotion(Promotion::Off)
        .build()
        .expect("strata cache");
    let mut hits = 0;
    for &key in keys {
        if cache.get(&key).expect("strata get").is_some() {
            hits += 1;
        } else {
            cache.set(key, key).expect("strata set");
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!("1000".parse::<Size>(), Ok(Size::Entries(1000)));
        assert_eq!("18_688".parse::<Size>(), Ok(Size::Entries(18_688)));
        assert_eq!(" 0.3% ".parse::<Size>(), Ok(Size::Percent(0.3)));
        assert!("0".parse::<Size>().is_err());
        assert!("0%".parse::<Size>().is_err());
        assert!("abc".parse::<Size>().is_err());
        assert!("-1%".parse::<Size>().is_err());
    }

    #[test]
    fn percent_sizes_round_down_to_at_least_one() {
        assert_eq!(Size::Percent(1.0).entries(186_880), 1_868);
        assert_eq!(Size::Percent(0.3).entries(100), 1);
        assert_eq!(Size::Entries(5).entries(100), 5);
    }

    #[test]
    fn replay_counts_hits() {
        // 1 2 1 2 with room for both: the second pass hits.
        assert_eq!(replay(&[1, 2, 1, 2], 16), 2);
    }
}
