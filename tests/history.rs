//! A history checker under real threads: every operation's invocation and response is recorded,
//! and each key's history is checked, completely, against a register with delete.
//!
//! # The workload
//!
//! Four threads run a mix of operations against a real cache (1, 2 or 3 in-memory
//! layers with tiny capacities, so eviction never stops; short TTLs on the manual clock, which
//! the threads themselves advance; promotion into every layer above, applied at once or
//! deferred): `get`, `lookup`, `get_many`, `set`, `set_many`, `set_with` (L1 only, skipping
//! L2, a short TTL), `delete` and `delete_many`. A single shared `AtomicU64` stamps each call
//! at invocation and at response (`fetch_add`, SeqCst), so "A's response stamp is below B's
//! invocation stamp" means A returned before B started. A batch call is one operation per key,
//! all with the batch's stamps (a batch never names a key twice). Every value is unique —
//! `thread << 32 | counter` — so a read that returns a value names the write it read.
//!
//! Keys come in generations: the generation is the invocation stamp divided by a fixed span, so
//! every thread moves to a fresh set of keys at about the same time. A key's history is still
//! complete (every operation ever made on it is recorded), it just stays a few hundred
//! operations long, which keeps the search cheap. The cache itself is not reset: old keys are
//! evicted by the new ones.
//!
//! Two kinds of runs: with *owned* writes every key is written (set, deleted) by one thread and
//! read by all; with *shared* writes every thread writes every key, so writes of a key overlap.
//!
//! # The checks
//!
//! A read that returned `None` is always allowed — the contract lets eviction and expiry drop an
//! entry at any time — so misses constrain nothing. Expiry is treated like eviction: the
//! checkers do not model the clock, so they cannot tell that a returned value should have
//! expired.
//!
//! **Linearizability** ([`check_linearizable`]): there must be a total order of the key's sets,
//! deletes and value-returning reads, consistent with real time (A before B whenever A returned
//! before B started), in which every read that returned `Some(v)` comes after the set of `v`
//! with no other set and no delete in between (the register starts absent). The search is Wing
//! & Gong's with Lowe's improvements (WGL): events in time order in a doubly-linked list, only
//! operations invoked before the first pending response are candidates (the minimal-response
//! rule), and a memo of visited (linearized-set, register value) states, so no state is explored
//! twice. It is complete: a history fails only if no linearization exists. Linearizability is
//! local (Herlihy & Wing), so checking each key on its own decides it for the whole history.
//!
//! **The README's contract** ([`check_contract`]): weaker when writes overlap. There must be one
//! order of the key's writes, consistent with real time, such that no read returns the value of
//! a set followed in that order by a write (set or delete) that returned before the read
//! started. Reads are not ordered against each other. Decided exactly, in polynomial time.
//!
//! Every run enforces the contract. Owned-write runs also enforce linearizability, and so do the
//! runs of a cache of one layer, whose bucket locks order every write of a key. Shared-write
//! runs of several layers check it and report how many keys failed it (and one example, with
//! `--nocapture`) but do not fail on it, because a cache of several layers is *not*
//! linearizable when two sets of a key overlap: writes go
//! deepest layer first, so a read that falls through to L3 can see set B (the newer version)
//! while the overlapping, older set A still fills L2 and L1 and returns; a later read sees A,
//! and once B reaches L1, B again — B, A, B, which no order of the two sets explains, although
//! every read respects the writes that had returned (A and B overlap, and B's version wins).
//! `STRATA_HISTORY_STRICT=1` makes linearizability fatal for every run.
//!
//! On failure the report names the key and the offending read — for a stale read, the write
//! that returned between the read's set and the read — and shows the operations around it.
//! The checkers are tested below on hand-written histories, and against brute-force searches
//! over every order on small random histories.
//!
//! # Running it
//!
//! `cargo test --test history` runs 1,000,000 per-key operations in total over the five
//! configurations (a batch call counts one operation per key). `STRATA_HISTORY_OPS` scales the
//! total, e.g. `STRATA_HISTORY_OPS=10000000 cargo test --release --test history`; add
//! `-- --nocapture` to see each run's counts and timings.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};
use strata::{Cache, Clock, LayerSpec, ManualClock, PromotionGate, SetOptions};

// ===== the checker =====

/// What an operation did on its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Set(u64),
    Delete,
    /// A read that returned this value.
    Hit(u64),
    /// A read that returned nothing: always allowed, ignored by the search.
    Miss,
}

/// The API call an operation came from (for reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Get,
    Lookup,
    GetMany,
    Set,
    SetMany,
    SetL1Only,
    SetSkipL2,
    SetShortTtl,
    Delete,
    DeleteMany,
    /// Hand-written histories.
    Test,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Get => "get",
            Call::Lookup => "lookup",
            Call::GetMany => "get_many",
            Call::Set => "set",
            Call::SetMany => "set_many",
            Call::SetL1Only => "set_with(l1_only)",
            Call::SetSkipL2 => "set_with(skip l2)",
            Call::SetShortTtl => "set_with(ttl 3ms)",
            Call::Delete => "delete",
            Call::DeleteMany => "delete_many",
            Call::Test => "op",
        }
    }
}

const NO_LAYER: u8 = u8::MAX;

/// One operation on one key: what it did and its invocation and response stamps.
#[derive(Clone, Copy, Debug)]
struct Op {
    kind: Kind,
    invoke: u64,
    response: u64,
    thread: u8,
    call: Call,
    /// For `lookup` hits: the layer that served the value (L1 is 0).
    layer: u8,
}

impl Op {
    fn new(kind: Kind, invoke: u64, response: u64) -> Op {
        Op {
            kind,
            invoke,
            response,
            thread: 0,
            call: Call::Test,
            layer: NO_LAYER,
        }
    }

    fn is_write(&self) -> bool {
        matches!(self.kind, Kind::Set(_) | Kind::Delete)
    }
}

/// Values are `thread << 32 | counter`; shown as `t<thread>#<counter>`.
struct Value(u64);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}#{}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>9} ..{:>9}] thread {} ",
            self.invoke, self.response, self.thread
        )?;
        match self.kind {
            Kind::Set(v) => write!(f, "set {}", Value(v))?,
            Kind::Delete => write!(f, "delete")?,
            Kind::Hit(v) => write!(f, "read -> {}", Value(v))?,
            Kind::Miss => write!(f, "read -> miss")?,
        }
        write!(f, "  via {}", self.call.name())?;
        if self.layer != NO_LAYER {
            write!(f, " (served by L{})", self.layer + 1)?;
        }
        Ok(())
    }
}

/// Why a key's history was rejected.
#[derive(Debug)]
struct Violation {
    /// One line.
    reason: String,
    /// The operation the report centres on (an index into the checked history).
    culprit: usize,
    /// Other operations the reason names.
    related: Vec<usize>,
}

/// The register's transition: the value after `kind`, or `None` if `kind` cannot happen in
/// `state`.
fn step(state: Option<u64>, kind: Kind) -> Option<Option<u64>> {
    match kind {
        Kind::Set(v) => Some(Some(v)),
        Kind::Delete => Some(None),
        Kind::Hit(v) => (state == Some(v)).then_some(state),
        Kind::Miss => Some(state),
    }
}

const NONE: usize = usize::MAX;

/// Checks that one key's history is linearizable (see the module docs). Complete: an error
/// means no linearization exists.
fn check_linearizable(ops: &[Op]) -> Result<(), Violation> {
    // Misses constrain nothing: leave them out.
    let relevant: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].kind != Kind::Miss)
        .collect();
    let m = relevant.len();
    if m == 0 {
        return Ok(());
    }
    // Events: 2j is op j's call, 2j + 1 its return. Time order; at equal stamps calls first (a
    // tie means "not strictly before", i.e. concurrent).
    let mut order: Vec<usize> = (0..2 * m).collect();
    order.sort_by_key(|&e| {
        let op = &ops[relevant[e / 2]];
        if e % 2 == 0 {
            (op.invoke, 0)
        } else {
            (op.response, 1)
        }
    });
    // A doubly-linked list over the events, with a head node at index 2m.
    let head = 2 * m;
    let mut next = vec![NONE; 2 * m + 1];
    let mut prev = vec![NONE; 2 * m + 1];
    let mut last = head;
    for &e in &order {
        next[last] = e;
        prev[e] = last;
        last = e;
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = next[x];
        if next[x] != NONE {
            prev[next[x]] = prev[x];
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = x;
        if next[x] != NONE {
            prev[next[x]] = x;
        }
    };

    let words = m.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    // For the report: the deepest partial linearization, and the response it could not pass.
    let mut deepest = (0usize, NONE);
    let mut entry = next[head];
    while next[head] != NONE {
        if entry % 2 == 0 {
            // A call: try to linearize its operation now.
            let j = entry / 2;
            if let Some(after) = step(state, ops[relevant[j]].kind) {
                linearized[j / 64] |= 1 << (j % 64);
                if seen.insert((linearized.clone(), after)) {
                    stack.push((entry, state));
                    state = after;
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, entry + 1);
                    entry = next[head];
                    continue;
                }
                linearized[j / 64] &= !(1 << (j % 64));
            }
            entry = next[entry];
        } else {
            // A response whose operation is not linearized: everything before it has been tried.
            if deepest.1 == NONE || stack.len() > deepest.0 {
                deepest = (stack.len(), entry / 2);
            }
            let Some((call, before)) = stack.pop() else {
                return Err(explain_failure(ops, &relevant, deepest));
            };
            let j = call / 2;
            state = before;
            linearized[j / 64] &= !(1 << (j % 64));
            relink(&mut next, &mut prev, call + 1);
            relink(&mut next, &mut prev, call);
            entry = next[call];
        }
    }
    Ok(())
}

/// Finds the clearest reason for a failed search: a read of a value never written, written
/// only after the read, or overwritten by a write that completed before the read started; else
/// the operation no partial linearization gets past.
fn explain_failure(ops: &[Op], relevant: &[usize], deepest: (usize, usize)) -> Violation {
    let mut writer: HashMap<u64, usize> = HashMap::new();
    for &i in relevant {
        if let Kind::Set(v) = ops[i].kind {
            writer.insert(v, i);
        }
    }
    let mut reads: Vec<usize> = relevant
        .iter()
        .copied()
        .filter(|&i| matches!(ops[i].kind, Kind::Hit(_)))
        .collect();
    reads.sort_by_key(|&i| ops[i].invoke);
    for &r in &reads {
        let Kind::Hit(v) = ops[r].kind else {
            unreachable!()
        };
        let Some(&s) = writer.get(&v) else {
            return Violation {
                reason: format!("read returned {}, never written to this key", Value(v)),
                culprit: r,
                related: Vec::new(),
            };
        };
        if ops[s].invoke > ops[r].response {
            return Violation {
                reason: format!("read returned {} before its set started", Value(v)),
                culprit: r,
                related: vec![s],
            };
        }
        let witness = relevant.iter().copied().find(|&x| {
            x != s
                && ops[x].is_write()
                && ops[s].response < ops[x].invoke
                && ops[x].response < ops[r].invoke
        });
        if let Some(x) = witness {
            let what = if ops[x].kind == Kind::Delete {
                "a delete".to_string()
            } else {
                "a later set".to_string()
            };
            return Violation {
                reason: format!(
                    "stale read: returned {}, but {what} started after that set returned and \
                     returned before the read started",
                    Value(v)
                ),
                culprit: r,
                related: vec![s, x],
            };
        }
    }
    let stuck = relevant[deepest.1];
    Violation {
        reason: format!(
            "no linearization: the deepest partial one orders {} of {} operations and cannot \
             get past the response of the marked operation",
            deepest.0,
            relevant.len()
        ),
        culprit: stuck,
        related: Vec::new(),
    }
}

/// Checks the README's contract, which is weaker than linearizability when writes of a key
/// overlap: there must be one order of the key's writes (sets and deletes), consistent with
/// real time, such that for every read that returned `Some(v)`, the set of `v` did not start
/// after the read returned, and no write that follows that set in the order returned before the
/// read started. Reads are not ordered against each other: two overlapping sets may be seen as
/// v2, v1, v2 by three reads in a row.
///
/// Complete and polynomial: write `a` must precede write `b` iff `a` returned before `b`'s
/// *deadline* — `b`'s invocation, or the latest invocation of a read of `b`'s value. Such an
/// order exists iff that relation has no cycle, and a cycle always contains a 2-cycle (take
/// the write with the earliest response in the cycle, `m`, its predecessor `p` and `p`'s
/// predecessor `q`: `resp(m) <= resp(q) < deadline(p)`, so `m` must precede `p`, and `p`
/// precedes `m`).
fn check_contract(ops: &[Op]) -> Result<(), Violation> {
    let mut writer: HashMap<u64, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Kind::Set(v) = op.kind {
            writer.insert(v, i);
        }
    }
    // (deadline, the read that set it, if any), per write.
    let mut deadline: Vec<(u64, usize)> = ops.iter().map(|op| (op.invoke, NONE)).collect();
    let mut reads: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].kind, Kind::Hit(_)))
        .collect();
    reads.sort_by_key(|&r| ops[r].invoke);
    for &r in &reads {
        let Kind::Hit(v) = ops[r].kind else {
            unreachable!()
        };
        let Some(&s) = writer.get(&v) else {
            return Err(Violation {
                reason: format!("read returned {}, never written to this key", Value(v)),
                culprit: r,
                related: Vec::new(),
            });
        };
        if ops[s].invoke > ops[r].response {
            return Err(Violation {
                reason: format!("read returned {} before its set started", Value(v)),
                culprit: r,
                related: vec![s],
            });
        }
        if ops[r].invoke > deadline[s].0 {
            deadline[s] = (ops[r].invoke, r);
        }
    }
    let writes: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].is_write()).collect();
    for (n, &a) in writes.iter().enumerate() {
        for &b in &writes[n + 1..] {
            if ops[a].response < deadline[b].0 && ops[b].response < deadline[a].0 {
                return Err(contract_cycle(ops, a, b, &deadline));
            }
        }
    }
    Ok(())
}

/// Describes two writes that must each precede the other.
fn contract_cycle(ops: &[Op], a: usize, b: usize, deadline: &[(u64, usize)]) -> Violation {
    let what = |w: usize| match ops[w].kind {
        Kind::Set(v) => format!("set {}", Value(v)),
        _ => format!("delete [{}..{}]", ops[w].invoke, ops[w].response),
    };
    let reads_of = |w: usize| {
        (0..ops.len()).filter(move |&r| match (ops[r].kind, ops[w].kind) {
            (Kind::Hit(x), Kind::Set(v)) => x == v,
            _ => false,
        })
    };
    // One of the two constraints is real time (`old` returned before `new` started): then a
    // read of `old`'s value started after `new` returned. Report the first such read.
    let stale = match (deadline[a].1, deadline[b].1) {
        (NONE, _) => Some((b, a)),
        (_, NONE) => Some((a, b)),
        _ => None,
    };
    if let Some((old, new)) = stale {
        let read = reads_of(old)
            .filter(|&r| ops[new].response < ops[r].invoke)
            .min_by_key(|&r| ops[r].invoke)
            .unwrap();
        return Violation {
            reason: format!(
                "stale read: returned the value of {}, but {} started after that set returned \
                 and returned before this read started",
                what(old),
                what(new)
            ),
            culprit: read,
            related: vec![old, new],
        };
    }
    // Both constraints come from reads: each write returned before a read of the other's
    // value started.
    let (ra, rb) = (deadline[a].1, deadline[b].1);
    let (culprit, other) = if ops[ra].invoke > ops[rb].invoke {
        (ra, rb)
    } else {
        (rb, ra)
    };
    Violation {
        reason: format!(
            "reads disagree on the order of two writes: {a_} returned before a read of {b_}'s \
             value started, and {b_} returned before a read of {a_}'s value started",
            a_ = what(a),
            b_ = what(b),
        ),
        culprit,
        related: vec![a, b, other],
    }
}

/// A report of a violation: the reason, then the key's operations around the culprit (and the
/// related operations), in invocation order.
fn render(key: u64, ops: &[Op], violation: &Violation) -> String {
    let mut by_invoke: Vec<usize> = (0..ops.len()).collect();
    by_invoke.sort_by_key(|&i| (ops[i].invoke, ops[i].response));
    let position = |i: usize| by_invoke.iter().position(|&x| x == i).unwrap();
    let centre = position(violation.culprit);
    let mut shown: Vec<usize> = (centre.saturating_sub(12)..(centre + 6).min(ops.len())).collect();
    for &i in &violation.related {
        let p = position(i);
        let lo = p.saturating_sub(2);
        shown.extend(lo..(p + 3).min(ops.len()));
    }
    shown.sort_unstable();
    shown.dedup();
    let mut out = format!(
        "key {key}: {}\n  history of {} ops; shown: the offending op (>>), related ops (* ) and \
         their neighbours, by invocation stamp [invoke .. response]\n",
        violation.reason,
        ops.len()
    );
    let mut last = None;
    for p in shown {
        if last.is_some_and(|l: usize| l + 1 < p) {
            out.push_str("      ...\n");
        }
        last = Some(p);
        let i = by_invoke[p];
        let mark = if i == violation.culprit {
            ">>"
        } else if violation.related.contains(&i) {
            "* "
        } else {
            "  "
        };
        let _ = writeln!(out, "  {mark} {}", ops[i]);
    }
    out
}

// ===== the workload =====

/// Keys per generation (see the module docs).
const KEYS: u64 = 128;
/// Stamps per generation: two per call, so about 32,768 calls and 300 operations per key.
const GENERATION: u64 = 1 << 16;
const THREADS: usize = 4;
/// Each thread advances the clock by 1 ms every this many calls.
const TICK_EVERY: u64 = 128;

/// Who writes a key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writers {
    /// Every key has one writing thread (`key % THREADS`); every thread reads every key. The
    /// history must be linearizable.
    Owned,
    /// Every thread writes every key, so writes of a key overlap. The history must keep the
    /// README's contract ([`check_contract`]); linearizability is checked and reported, and
    /// only enforced with `STRATA_HISTORY_STRICT=1` (see the module docs).
    Shared,
}

struct Config {
    name: &'static str,
    capacities: &'static [usize],
    ttls_ms: &'static [u64],
    deferred: Option<usize>,
    gate: PromotionGate,
    /// Negative filters in front of every layer below L1 (sized small, so they are rebuilt).
    filtered: bool,
    /// Every layer bounded by weight instead of length: keys weigh 1–3 units, the bound is
    /// twice the capacity, the entry capacity four times (the policy's weight-bounded paths:
    /// small sized by weight, duels by reads per unit, the newest key spared).
    weighted: bool,
    writers: Writers,
}

/// One memory layer: single-key writes with default options take the write path's shortcut
/// (`Engine::set_alone`, `delete_alone`), the other calls the general path.
const ONE_LAYER_OWNED: Config = Config {
    name: "one layer, owned writes",
    capacities: &[16],
    ttls_ms: &[20],
    deferred: None,
    gate: PromotionGate::Always,
    filtered: false,
    weighted: false,
    writers: Writers::Owned,
};

const ONE_LAYER_SHARED: Config = Config {
    name: "one layer, shared writes",
    capacities: &[16],
    ttls_ms: &[20],
    deferred: None,
    gate: PromotionGate::Always,
    filtered: false,
    weighted: false,
    writers: Writers::Shared,
};

const TWO_LAYERS_OWNED: Config = Config {
    name: "two layers, owned writes",
    capacities: &[16, 64],
    ttls_ms: &[20, 80],
    deferred: None,
    gate: PromotionGate::Always,
    filtered: false,
    weighted: false,
    writers: Writers::Owned,
};

const TWO_LAYERS_WEIGHTED: Config = Config {
    name: "two layers, weight-bounded, owned writes",
    capacities: &[16, 64],
    ttls_ms: &[20, 80],
    deferred: None,
    gate: PromotionGate::Always,
    filtered: false,
    weighted: true,
    writers: Writers::Owned,
};

const THREE_LAYERS_OWNED: Config = Config {
    name: "three layers, filtered, owned writes",
    capacities: &[16, 64, 256],
    ttls_ms: &[20, 80, 300],
    deferred: None,
    gate: PromotionGate::Always,
    filtered: true,
    weighted: false,
    writers: Writers::Owned,
};

const THREE_LAYERS_SHARED: Config = Config {
    name: "three layers, heat-gated promotion, shared writes",
    capacities: &[16, 64, 256],
    ttls_ms: &[20, 80, 300],
    deferred: None,
    gate: PromotionGate::by_heat(),
    filtered: false,
    weighted: false,
    writers: Writers::Shared,
};

const DEFERRED_SHARED: Config = Config {
    name: "two layers, heat-gated queued promotion, shared writes",
    capacities: &[16, 64],
    ttls_ms: &[20, 80],
    deferred: Some(4),
    gate: PromotionGate::by_heat(),
    filtered: true,
    weighted: false,
    writers: Writers::Shared,
};

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `count` distinct keys of the generation starting at `base`: any key, or only those `owner`
/// writes (`key % THREADS == owner`).
fn pick_keys(rng: &mut Rng, base: u64, count: u64, owner: Option<u8>) -> Vec<u64> {
    let (slots, scale, offset) = match owner {
        None => (KEYS, 1, 0),
        Some(owner) => (KEYS / THREADS as u64, THREADS as u64, owner as u64),
    };
    let first = rng.below(slots);
    // `slots` is a power of two and the stride odd: distinct for count <= slots.
    let stride = 2 * rng.below(slots / 2) + 1;
    (0..count)
        .map(|i| base + (first + i * stride) % slots * scale + offset)
        .collect()
}

/// One thread's calls until it has made `ops` operations. Returns its (key, op) records and
/// how many calls it made.
fn worker(
    cache: &Cache<u64, u64>,
    hand: &ManualClock,
    stamps: &AtomicU64,
    thread: u8,
    config: &Config,
    ops: u64,
) -> (Vec<(u64, Op)>, u64) {
    let mut rng = Rng(0x5eed_0000 + thread as u64);
    let mut records: Vec<(u64, Op)> = Vec::with_capacity(ops as usize + 8);
    let mut counter: u64 = 0;
    let mut calls: u64 = 0;
    let owner = (config.writers == Writers::Owned).then_some(thread);
    let l1_only = SetOptions::new().l1_only();
    // A one-layer cache has no l2 to skip: that share of the calls is a plain `set` there.
    let skip_l2 = (config.capacities.len() > 1).then(|| SetOptions::new().skip("l2"));
    let short_ttl = SetOptions::new().ttl(Duration::from_millis(3));
    let fresh = |counter: &mut u64| {
        *counter += 1;
        ((thread as u64) << 32) | *counter
    };
    let op = |kind, invoke, response, call, layer| Op {
        kind,
        invoke,
        response,
        thread,
        call,
        layer,
    };
    let read = |value: Option<u64>| match value {
        Some(v) => Kind::Hit(v),
        None => Kind::Miss,
    };
    while (records.len() as u64) < ops {
        calls += 1;
        if calls % TICK_EVERY == 0 {
            hand.advance(Duration::from_millis(1));
        }
        if (config.deferred.is_some() || config.filtered) && calls % 64 == 0 {
            cache.run_pending_tasks();
        }
        if config.filtered && calls % 4096 == 0 {
            cache.rebuild_filters();
        }
        let invoke = stamps.fetch_add(1, SeqCst);
        let base = invoke / GENERATION * KEYS;
        let choice = rng.below(100);
        match choice {
            0..=29 => {
                let key = pick_keys(&mut rng, base, 1, None)[0];
                let value = cache.get(&key).unwrap();
                let response = stamps.fetch_add(1, SeqCst);
                records.push((key, op(read(value), invoke, response, Call::Get, NO_LAYER)));
            }
            30..=37 => {
                let key = pick_keys(&mut rng, base, 1, None)[0];
                let lookup = cache.lookup(&key).unwrap();
                let response = stamps.fetch_add(1, SeqCst);
                let layer = lookup.served_by.map_or(NO_LAYER, |l| l as u8);
                let kind = read(lookup.value);
                records.push((key, op(kind, invoke, response, Call::Lookup, layer)));
            }
            38..=45 => {
                let count = 2 + rng.below(3);
                let keys = pick_keys(&mut rng, base, count, None);
                let values = cache.get_many(&keys);
                let response = stamps.fetch_add(1, SeqCst);
                for (key, value) in keys.into_iter().zip(values) {
                    let kind = read(value.unwrap());
                    records.push((key, op(kind, invoke, response, Call::GetMany, NO_LAYER)));
                }
            }
            46..=76 => {
                let key = pick_keys(&mut rng, base, 1, owner)[0];
                let value = fresh(&mut counter);
                let call = match choice {
                    46..=63 => {
                        cache.set(key, value).unwrap();
                        Call::Set
                    }
                    64..=68 => {
                        cache.set_with(key, value, &l1_only).unwrap();
                        Call::SetL1Only
                    }
                    69..=73 => match &skip_l2 {
                        Some(skip_l2) => {
                            cache.set_with(key, value, skip_l2).unwrap();
                            Call::SetSkipL2
                        }
                        None => {
                            cache.set(key, value).unwrap();
                            Call::Set
                        }
                    },
                    _ => {
                        cache.set_with(key, value, &short_ttl).unwrap();
                        Call::SetShortTtl
                    }
                };
                let response = stamps.fetch_add(1, SeqCst);
                records.push((key, op(Kind::Set(value), invoke, response, call, NO_LAYER)));
            }
            77..=82 => {
                let count = 2 + rng.below(2);
                let keys = pick_keys(&mut rng, base, count, owner);
                let items: Vec<(u64, u64)> =
                    keys.iter().map(|&key| (key, fresh(&mut counter))).collect();
                for result in cache.set_many(items.clone()) {
                    result.unwrap();
                }
                let response = stamps.fetch_add(1, SeqCst);
                for (key, value) in items {
                    let kind = Kind::Set(value);
                    records.push((key, op(kind, invoke, response, Call::SetMany, NO_LAYER)));
                }
            }
            83..=93 => {
                let key = pick_keys(&mut rng, base, 1, owner)[0];
                cache.delete(&key).unwrap();
                let response = stamps.fetch_add(1, SeqCst);
                records.push((
                    key,
                    op(Kind::Delete, invoke, response, Call::Delete, NO_LAYER),
                ));
            }
            _ => {
                let count = 2 + rng.below(2);
                let keys = pick_keys(&mut rng, base, count, owner);
                for result in cache.delete_many(&keys) {
                    result.unwrap();
                }
                let response = stamps.fetch_add(1, SeqCst);
                for key in keys {
                    let kind = Kind::Delete;
                    records.push((key, op(kind, invoke, response, Call::DeleteMany, NO_LAYER)));
                }
            }
        }
    }
    (records, calls)
}

/// What checking one key found.
struct Failure {
    key: u64,
    /// Against the contract (always fatal), or only against linearizability.
    contract: bool,
    report: String,
}

/// Checks one key's history: the contract, then linearizability.
fn check_key(key: u64, history: &[Op]) -> Option<Failure> {
    if let Err(violation) = check_contract(history) {
        return Some(Failure {
            key,
            contract: true,
            report: render(key, history, &violation),
        });
    }
    check_linearizable(history).err().map(|violation| Failure {
        key,
        contract: false,
        report: render(key, history, &violation),
    })
}

/// Runs the workload on one configuration with `ops` operations in total, checks every key's
/// history and panics with a report if one fails.
fn run(config: &Config, ops: u64) {
    let started = Instant::now();
    let (clock, hand) = Clock::manual();
    let mut builder = Cache::builder().clock(clock);
    for (index, (&capacity, &ttl)) in config.capacities.iter().zip(config.ttls_ms).enumerate() {
        let name = format!("l{}", index + 1);
        let mut layer = if config.weighted {
            LayerSpec::memory(name, capacity * 4)
                .max_weight(2 * capacity as u64, |key: &u64, _: &u64| 1 + key % 3)
        } else {
            LayerSpec::memory(name, capacity)
        }
        .ttl(Duration::from_millis(ttl));
        if config.filtered && index > 0 {
            layer = layer.negative_filter(capacity / 4);
        }
        builder = builder.layer(layer);
    }
    if let Some(batch) = config.deferred {
        builder = builder.deferred_promotion(batch);
    }
    let cache: Cache<u64, u64> = builder.promotion_gate(config.gate).build().unwrap();
    let stamps = AtomicU64::new(0);
    let per_thread = ops.div_ceil(THREADS as u64);
    let outputs: Vec<(Vec<(u64, Op)>, u64)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (cache, hand, stamps) = (&cache, &hand, &stamps);
                scope.spawn(move || worker(cache, hand, stamps, t as u8, config, per_thread))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ran = started.elapsed();
    let stats = cache.stats();

    // Per-key histories (keys are dense: generation * KEYS + index).
    let max_key = outputs
        .iter()
        .flat_map(|(records, _)| records.iter().map(|&(key, _)| key))
        .max()
        .unwrap_or(0);
    let mut histories: Vec<Vec<Op>> = vec![Vec::new(); max_key as usize + 1];
    let mut calls = 0;
    for (records, thread_calls) in outputs {
        calls += thread_calls;
        for (key, op) in records {
            histories[key as usize].push(op);
        }
    }
    let all = || histories.iter().flat_map(|h| h.iter());
    let total = all().count();
    let hits = all().filter(|op| matches!(op.kind, Kind::Hit(_))).count();
    let misses = all().filter(|op| op.kind == Kind::Miss).count();
    let lower_hits = all()
        .filter(|op| matches!(op.kind, Kind::Hit(_)) && op.layer != NO_LAYER && op.layer > 0)
        .count();
    let longest = histories.iter().map(Vec::len).max().unwrap_or(0);

    // The checks, on every core.
    let checking = Instant::now();
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = histories.len().div_ceil(workers).max(1);
    let failures: Vec<Failure> = thread::scope(|scope| {
        let handles: Vec<_> = histories
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .filter_map(|(i, history)| check_key((c * chunk + i) as u64, history))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let checked = checking.elapsed();
    // A cache of one layer is linearizable with shared writes too: its bucket locks order every
    // write of a key (see "One layer" in `strata::protocol`).
    let strict = config.writers == Writers::Owned
        || config.capacities.len() == 1
        || std::env::var_os("STRATA_HISTORY_STRICT").is_some_and(|v| v != "0");
    let against_contract = failures.iter().filter(|f| f.contract).count();
    let not_linearizable = failures.len();

    let promoted: u64 = stats.layers.iter().map(|l| l.promotions_in).sum();
    let evicted: u64 = stats.layers.iter().map(|l| l.evictions).sum();
    let expired: u64 = stats.layers.iter().map(|l| l.expirations).sum();
    let filters = stats.layers.iter().filter_map(|l| l.filter.as_ref());
    let (skips, rebuilds) = filters.fold((0, 0), |(s, r), f| (s + f.skips, r + f.rebuilds));
    eprintln!(
        "history [{}]: {total} ops in {calls} calls on {} keys (longest history {longest}), \
         {hits} hits ({lower_hits} seen served below L1, seen by lookup), {misses} misses; \
         {promoted} promotions, {evicted} evictions, {expired} expirations; \
         {skips} filter skips, {rebuilds} filter rebuilds; \
         run {ran:.2?}, check {checked:.2?}; keys not linearizable: {not_linearizable}, \
         against the contract: {against_contract}",
        config.name,
        histories.iter().filter(|h| !h.is_empty()).count(),
    );
    let fatal: Vec<&Failure> = failures.iter().filter(|f| f.contract || strict).collect();
    if !fatal.is_empty() {
        let mut report = format!(
            "[{}] {} of {} keys fail{}; the first ones:\n",
            config.name,
            fatal.len(),
            histories.len(),
            if against_contract > 0 {
                " the contract"
            } else {
                " linearizability"
            },
        );
        for failure in fatal.iter().take(3) {
            let what = if failure.contract {
                "contract"
            } else {
                "linearizability"
            };
            let _ = writeln!(report, "({what}) {}", failure.report);
        }
        panic!("{report}");
    }
    if let Some(failure) = failures.first() {
        eprintln!(
            "[{}] not linearizable (allowed with overlapping writes; STRATA_HISTORY_STRICT=1 \
             makes it fatal), e.g. key {}:\n{}",
            config.name, failure.key, failure.report
        );
    }
    // The run exercised what it claims to.
    assert!(
        hits > 0
            && (config.capacities.len() == 1 || lower_hits > 0 && promoted > 0)
            && evicted > 0
            && expired > 0,
        "{stats:#?}"
    );
}

/// Total operations over the seven configurations: `STRATA_HISTORY_OPS`, or 1,000,000.
fn total_ops() -> u64 {
    std::env::var("STRATA_HISTORY_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Three-layer runs cost several times more per operation than two-layer ones (in debug
/// builds, mostly in L3's orphan reaping), so they get 20% of the total each, the two-layer
/// owned-write runs 20% and 15%, the one-layer runs 5% each, and the queued-promotion run the
/// rest.
fn share(percent: u64) -> u64 {
    total_ops() * percent / 100
}

#[test]
fn one_layer_owned_writes_are_linearizable() {
    run(&ONE_LAYER_OWNED, share(5));
}

#[test]
fn one_layer_shared_writes_are_linearizable() {
    run(&ONE_LAYER_SHARED, share(5));
}

#[test]
fn two_layers_owned_writes_are_linearizable() {
    run(&TWO_LAYERS_OWNED, share(20));
}

#[test]
fn two_weight_bounded_layers_owned_writes_are_linearizable() {
    run(&TWO_LAYERS_WEIGHTED, share(15));
}

#[test]
fn three_layers_filtered_owned_writes_are_linearizable() {
    run(&THREE_LAYERS_OWNED, share(20));
}

#[test]
fn three_layers_heat_gated_shared_writes_keep_the_contract() {
    run(&THREE_LAYERS_SHARED, share(20));
}

#[test]
fn heat_gated_queued_promotion_shared_writes_keep_the_contract() {
    run(
        &DEFERRED_SHARED,
        total_ops() - 2 * share(5) - share(20) - share(15) - 2 * share(20),
    );
}

// ===== tests of the checkers =====

fn set(v: u64, invoke: u64, response: u64) -> Op {
    Op::new(Kind::Set(v), invoke, response)
}

fn delete(invoke: u64, response: u64) -> Op {
    Op::new(Kind::Delete, invoke, response)
}

fn hit(v: u64, invoke: u64, response: u64) -> Op {
    Op::new(Kind::Hit(v), invoke, response)
}

fn miss(invoke: u64, response: u64) -> Op {
    Op::new(Kind::Miss, invoke, response)
}

/// Both checks pass.
fn passes(history: &[Op]) {
    if let Err(violation) = check_linearizable(history) {
        panic!("linearizability: {}", render(0, history, &violation));
    }
    if let Err(violation) = check_contract(history) {
        panic!("contract: {}", render(0, history, &violation));
    }
}

/// Both checks fail; the linearizability check's violation.
fn fails(history: &[Op]) -> Violation {
    assert!(check_contract(history).is_err(), "{history:#?}");
    check_linearizable(history).unwrap_err()
}

#[test]
fn checker_accepts_a_linearizable_history() {
    passes(&[
        miss(0, 1),
        set(1, 2, 3),
        hit(1, 4, 5),
        // Concurrent with set 2: either value.
        set(2, 6, 11),
        hit(1, 7, 8),
        hit(2, 9, 10),
        hit(2, 12, 13),
        // Misses are allowed anywhere, even right after a set.
        miss(14, 15),
        delete(16, 19),
        hit(2, 17, 18),
        miss(20, 21),
        set(3, 22, 23),
        hit(3, 24, 25),
    ]);
    passes(&[]);
    passes(&[miss(0, 1), miss(2, 3)]);
}

#[test]
fn checker_rejects_a_stale_read() {
    // Set 1 returns, set 2 returns, then a read returns 1: the stale-promotion bug.
    let history = [set(1, 0, 1), set(2, 2, 3), hit(1, 4, 5)];
    let violation = fails(&history);
    assert_eq!(violation.culprit, 2);
    assert!(violation.reason.contains("stale"), "{}", violation.reason);
    let violation = check_contract(&history).unwrap_err();
    assert_eq!(violation.culprit, 2);
    assert!(violation.reason.contains("stale"), "{}", violation.reason);
    // Also when a miss overlaps both.
    fails(&[set(1, 0, 1), set(2, 2, 4), miss(3, 6), hit(1, 5, 7)]);
}

#[test]
fn checker_rejects_a_read_after_a_completed_delete() {
    let history = [set(1, 0, 1), delete(2, 3), hit(1, 4, 5)];
    let violation = fails(&history);
    assert_eq!(violation.culprit, 2);
    assert!(violation.reason.contains("delete"), "{}", violation.reason);
    // A read concurrent with the delete may still see the value.
    passes(&[set(1, 0, 1), delete(2, 5), hit(1, 3, 4)]);
}

#[test]
fn checker_accepts_concurrent_sets_seen_either_way() {
    // Set 1 and set 2 overlap; a read inside both may see either.
    for seen in [1, 2] {
        passes(&[set(1, 0, 10), set(2, 1, 9), hit(seen, 2, 3)]);
    }
    // Even 2 then 1 (set 2 linearized first, then set 1).
    passes(&[set(1, 0, 10), set(2, 1, 9), hit(2, 2, 3), hit(1, 4, 5)]);
    // After both sets returned, reads must agree on the last one.
    passes(&[set(1, 0, 3), set(2, 1, 2), hit(1, 4, 5), hit(1, 6, 7)]);
    fails(&[set(1, 0, 3), set(2, 1, 2), hit(1, 4, 5), hit(2, 6, 7)]);
}

#[test]
fn reads_that_disagree_on_overlapping_writes_break_linearizability_not_the_contract() {
    // 2, 1, 2 while both sets run: set 2 cannot take effect twice, so not linearizable; the
    // contract only orders reads against writes that returned, so it holds (order 1, 2).
    let history = [
        set(1, 0, 10),
        set(2, 1, 9),
        hit(2, 2, 3),
        hit(1, 4, 5),
        hit(2, 6, 7),
    ];
    let violation = check_linearizable(&history).unwrap_err();
    assert!(
        violation.reason.contains("no linearization"),
        "{}",
        violation.reason
    );
    check_contract(&history).unwrap();
    // The shape strata shows with three layers: set 2 (started later, so the newer version)
    // reaches L3 first and a read falling through sees it; set 1 fills L2 and L1 and returns;
    // a read sees 1; set 2 overwrites them and returns; reads see 2.
    let history = [
        set(1, 0, 8),
        set(2, 1, 12),
        hit(2, 2, 3),
        hit(1, 9, 10),
        hit(2, 13, 14),
    ];
    check_linearizable(&history).unwrap_err();
    check_contract(&history).unwrap();
    // But once set 1 returned after a read saw 2, and a later read saw 1, set 1 is the newer:
    // seeing 2 after that is stale for the contract too.
    let history = [
        set(1, 0, 8),
        set(2, 1, 12),
        hit(2, 2, 3),
        hit(1, 13, 14),
        hit(2, 15, 16),
    ];
    check_linearizable(&history).unwrap_err();
    let violation = check_contract(&history).unwrap_err();
    assert!(
        violation.reason.contains("disagree"),
        "{}",
        violation.reason
    );
}

#[test]
fn checker_rejects_reads_of_values_not_yet_or_never_written() {
    let violation = fails(&[set(1, 0, 1), hit(7, 2, 3)]);
    assert!(violation.reason.contains("never written"));
    let violation = fails(&[hit(1, 0, 1), set(1, 2, 3)]);
    assert!(violation.reason.contains("before its set started"));
    // A read overlapping its set is fine.
    passes(&[set(1, 0, 3), hit(1, 1, 2)]);
}

#[test]
fn checker_backtracks_where_greedy_fails() {
    // Three overlapping sets, then reads that fix their order as 3, 1, 2: a search that
    // commits to invocation order must back up.
    passes(&[
        set(1, 0, 20),
        set(2, 1, 21),
        set(3, 2, 22),
        hit(3, 3, 4),
        hit(1, 5, 6),
        hit(2, 7, 8),
        delete(9, 23),
        miss(24, 25),
        hit(2, 10, 11),
    ]);
}

/// Linearizability by brute force: every order of the non-miss operations.
fn brute_force_linearizable(ops: &[Op]) -> bool {
    fn extend(ops: &[Op], used: &mut Vec<bool>, state: Option<u64>, left: usize) -> bool {
        if left == 0 {
            return true;
        }
        for i in 0..ops.len() {
            // Real time: no unused operation may have returned before this one started.
            let blocked =
                (0..ops.len()).any(|j| !used[j] && j != i && ops[j].response < ops[i].invoke);
            if used[i] || blocked {
                continue;
            }
            if let Some(after) = step(state, ops[i].kind) {
                used[i] = true;
                if extend(ops, used, after, left - 1) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let ops: Vec<Op> = ops
        .iter()
        .copied()
        .filter(|op| op.kind != Kind::Miss)
        .collect();
    extend(&ops, &mut vec![false; ops.len()], None, ops.len())
}

/// The contract by brute force: every order of the writes consistent with real time, each
/// checked against every read.
fn brute_force_contract(ops: &[Op]) -> bool {
    fn extend(ops: &[Op], writes: &[usize], order: &mut Vec<usize>) -> bool {
        if order.len() == writes.len() {
            let position = |w: usize| order.iter().position(|&x| x == w).unwrap();
            return ops.iter().all(|read| {
                let Kind::Hit(v) = read.kind else { return true };
                let Some(&s) = writes.iter().find(|&&w| ops[w].kind == Kind::Set(v)) else {
                    return false;
                };
                read.response >= ops[s].invoke
                    && !writes
                        .iter()
                        .any(|&x| position(x) > position(s) && ops[x].response < read.invoke)
            });
        }
        for &w in writes {
            let blocked = writes
                .iter()
                .any(|&x| x != w && !order.contains(&x) && ops[x].response < ops[w].invoke);
            if order.contains(&w) || blocked {
                continue;
            }
            order.push(w);
            if extend(ops, writes, order) {
                return true;
            }
            order.pop();
        }
        false
    }
    let writes: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].is_write()).collect();
    extend(ops, &writes, &mut Vec::new())
}

#[test]
fn checkers_agree_with_brute_force_on_small_random_histories() {
    let mut rng = Rng(42);
    let mut outcomes = [[0; 2]; 2];
    for _ in 0..6_000 {
        let n = 1 + rng.below(8) as usize;
        let mut ops = Vec::new();
        let mut next_value = 1;
        for _ in 0..n {
            let invoke = rng.below(16);
            let response = invoke + 1 + rng.below(10);
            let kind = match rng.below(7) {
                0 | 1 => {
                    next_value += 1;
                    Kind::Set(next_value - 1)
                }
                2 => Kind::Delete,
                _ => Kind::Hit(1 + rng.below(3)),
            };
            ops.push(Op::new(kind, invoke, response));
        }
        let linearizable = brute_force_linearizable(&ops);
        assert_eq!(check_linearizable(&ops).is_ok(), linearizable, "{ops:#?}");
        let contract = brute_force_contract(&ops);
        assert_eq!(check_contract(&ops).is_ok(), contract, "{ops:#?}");
        // Linearizable histories keep the contract.
        assert!(!linearizable || contract, "{ops:#?}");
        outcomes[linearizable as usize][contract as usize] += 1;
    }
    // Every possible pair of outcomes was met often.
    let [[neither, only_contract], [_, both]] = outcomes;
    assert!(
        neither > 300 && only_contract > 30 && both > 300,
        "{outcomes:?}"
    );
}

/// A history from a simulated atomic register: four threads, each operation takes effect at a
/// random point inside its interval. It must pass; with one read made stale it must fail.
#[test]
fn checkers_are_fast_on_long_concurrent_histories() {
    let mut rng = Rng(7);
    for round in 0..20 {
        // Intervals drawn per thread; (effect point, op) pairs.
        let mut ops: Vec<Op> = Vec::new();
        let mut effects: Vec<(u64, usize)> = Vec::new();
        for thread in 0..4u64 {
            let mut t = rng.below(5);
            for _ in 0..150 {
                let invoke = t * 4 + thread;
                let length = 1 + rng.below(12);
                let response = (t + length) * 4 + thread;
                let effect = invoke + 1 + rng.below(response - invoke - 1);
                effects.push((effect, ops.len()));
                let kind = match rng.below(10) {
                    0..=3 => Kind::Set(ops.len() as u64 + 1),
                    4 => Kind::Delete,
                    _ => Kind::Miss,
                };
                ops.push(Op::new(kind, invoke, response));
                t += length + rng.below(3);
            }
        }
        // Reads return what the register held at their effect point (or miss at random, as
        // eviction would).
        effects.sort_unstable();
        let mut value = None;
        for &(_, i) in &effects {
            match ops[i].kind {
                Kind::Set(v) => value = Some(v),
                Kind::Delete => value = None,
                _ => {
                    if let (Some(v), true) = (value, rng.below(4) != 0) {
                        ops[i].kind = Kind::Hit(v);
                    }
                }
            }
        }
        let started = Instant::now();
        passes(&ops);
        assert!(started.elapsed() < Duration::from_secs(5), "round {round}");
        // Make a read that started after two sets returned one after the other return the
        // older value.
        let is_set = |op: &Op| matches!(op.kind, Kind::Set(_));
        let (r, older) = (0..ops.len())
            .filter(|&r| !ops[r].is_write())
            .find_map(|r| {
                let older = ops.iter().filter(|a| is_set(a)).find(|a| {
                    ops.iter()
                        .any(|b| is_set(b) && a.response < b.invoke && b.response < ops[r].invoke)
                })?;
                Some((r, older.kind))
            })
            .unwrap();
        let Kind::Set(v) = older else { unreachable!() };
        ops[r].kind = Kind::Hit(v);
        let violation = fails(&ops);
        assert!(violation.reason.contains("stale"), "{}", violation.reason);
    }
}
