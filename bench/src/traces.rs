//! Cache traces (the `shared/traces` format) and an exact LRU, shared by the runner's
//! `strata replay`, the hit-ratio harness and the two-tier replay.
//!
//! A trace is a gzip-compressed array of little-endian `u64` keys, one per request.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::keys::{XorShift64, Zipf};

/// A decoded trace.
pub struct Trace {
    pub keys: Vec<u64>,
    pub unique: usize,
}

/// Decodes a `*.u64.gz` trace.
pub fn decode(path: &Path) -> Result<Trace, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    GzDecoder::new(BufReader::new(file))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot gunzip {}: {e}", path.display()))?;
    if bytes.len() % 8 != 0 {
        return Err(format!(
            "{}: {} bytes decoded, not a whole number of u64 keys",
            path.display(),
            bytes.len()
        ));
    }
    let keys: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
        .collect();
    let unique = {
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        sorted.len()
    };
    Ok(Trace { keys, unique })
}

/// The trace folder a harness reads: its first argument, or `shared/traces` beside the
/// repository.
pub fn dir_from_args() -> PathBuf {
    std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces"))
        })
}

/// The trace names listed in the environment variable `var` (comma-separated), if it is set.
pub fn selection(var: &str) -> Option<Vec<String>> {
    std::env::var(var).ok().map(|s| {
        s.split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    })
}

/// The `*.u64.gz` files of `dir` whose stem is in `only` (all of them if `None`), sorted.
pub fn files(dir: &Path, only: Option<&[String]>) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read trace dir {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_str().is_some_and(|p| p.ends_with(".u64.gz")))
        .filter(|path| only.is_none_or(|only| only.iter().any(|t| *t == name(path))))
        .collect();
    files.sort();
    Ok(files)
}

/// A trace's name: its file name without `.u64.gz`.
pub fn name(path: &Path) -> String {
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    file.strip_suffix(".u64.gz").unwrap_or(file).to_owned()
}

/// Two synthetic traces, generated (fixed seeds), that judge a policy beyond `shared/traces`:
///
/// - `zipf-scans`: 600 000 Zipf(1.0) requests over 50 000 keys, with a one-pass scan of 20 000
///   fresh keys after every 100 000 (a scan-resistant policy keeps the Zipf head through them);
/// - `moving-zipf`: five phases of 150 000 Zipf(0.9) requests over 20 000 keys each, every phase
///   on a fresh key set ranked in a fresh random order (a policy that clings to the old hot set
///   loses after each change).
pub fn synthetic() -> Vec<(String, Vec<u64>)> {
    let mut rng = XorShift64::new(7);
    let zipf = Zipf::new(50_000, 1.0);
    let mut scans = Vec::with_capacity(700_000);
    let mut fresh = 1u64 << 40;
    for i in 1..=600_000u64 {
        scans.push(zipf.sample(rng.next_f64()) as u64);
        if i % 100_000 == 0 {
            scans.extend(fresh..fresh + 20_000);
            fresh += 20_000;
        }
    }
    let zipf = Zipf::new(20_000, 0.9);
    let mut moving = Vec::with_capacity(750_000);
    for phase in 0..5u64 {
        // A Fisher-Yates shuffle of the phase's keys: rank r is key `order[r]`.
        let mut order: Vec<u64> = (phase * 20_000..(phase + 1) * 20_000).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        moving.extend((0..150_000).map(|_| order[zipf.sample(rng.next_f64())]));
    }
    vec![
        ("zipf-scans".to_owned(), scans),
        ("moving-zipf".to_owned(), moving),
    ]
}

/// Exact LRU: a hash map of slot indices into a doubly linked list kept in a vector.
pub struct Lru {
    map: HashMap<u64, u32>,
    nodes: Vec<LruNode>,
    head: u32, // most recently used
    tail: u32, // least recently used
    capacity: usize,
}

#[derive(Clone, Copy)]
struct LruNode {
    key: u64,
    prev: u32,
    next: u32,
}

const NIL: u32 = u32::MAX;

impl Lru {
    /// An empty LRU of `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0 && capacity < NIL as usize);
        Lru {
            map: HashMap::with_capacity(capacity + 1),
            nodes: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    fn unlink(&mut self, i: u32) {
        let LruNode { prev, next, .. } = self.nodes[i as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        self.nodes[i as usize].prev = NIL;
        self.nodes[i as usize].next = self.head;
        if self.head != NIL {
            self.nodes[self.head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// A hit moves the key to the front.
    pub fn get(&mut self, key: u64) -> bool {
        match self.map.get(&key) {
            Some(&i) => {
                if self.head != i {
                    self.unlink(i);
                    self.push_front(i);
                }
                true
            }
            None => false,
        }
    }

    /// Inserts an absent key at the front, evicting the least recently used when full.
    pub fn insert(&mut self, key: u64) {
        let i = if self.nodes.len() < self.capacity {
            self.nodes.push(LruNode {
                key,
                prev: NIL,
                next: NIL,
            });
            (self.nodes.len() - 1) as u32
        } else {
            let victim = self.tail;
            self.unlink(victim);
            self.map.remove(&self.nodes[victim as usize].key);
            self.nodes[victim as usize].key = key;
            victim
        };
        self.map.insert(key, i);
        self.push_front(i);
    }
}
