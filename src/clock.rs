//! The coarse clock every tier reads its "now" from.
//!
//! Reading `Instant::now()` costs a vDSO call (15–25 ns), as much as a whole map lookup, so the
//! read path must not do it. Instead a [`Clock`] is one atomic load:
//!
//! - [`Clock::system`] reads a process-wide millisecond counter that one background thread
//!   ("strata-clock") advances every millisecond. It publishes whole milliseconds elapsed,
//!   rounded down, and a busy machine can run it late, so a reader's "now" is never ahead of
//!   the real time. Expiries are computed by [`Clock::expiry`] from a precise reading rounded
//!   up (one `Instant::now()` per write with a TTL, never on a read), so an entry expires late
//!   by about a millisecond plus the ticker's delay, never early.
//! - [`Clock::manual`] is driven by hand ([`ManualClock::advance`]), so tests check TTLs
//!   without sleeping.
//!
//! Time is a [`Timestamp`]: milliseconds since the clock's origin. `Timestamp::NEVER` marks an
//! entry without expiry.

use crate::sync::{Arc, AtomicU64, Ordering};
use std::fmt;
#[cfg(not(loom))]
use std::sync::OnceLock;
use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

/// Milliseconds since a clock's origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The expiry of an entry that never expires.
    pub const NEVER: Timestamp = Timestamp(u64::MAX);

    /// `self + ttl`, the TTL rounded *up* to whole milliseconds (a 1.999 ms TTL is 2 ms: an
    /// entry never expires early), saturating just below [`Timestamp::NEVER`]. A `None` TTL
    /// means "never expires".
    #[inline]
    pub fn after(self, ttl: Option<Duration>) -> Timestamp {
        match ttl {
            None => Timestamp::NEVER,
            Some(ttl) => Timestamp(self.0.saturating_add(ceil_millis(ttl)).min(u64::MAX - 1)),
        }
    }

    /// Time left from `now` until `self`; `None` when `self` is `NEVER`.
    pub fn remaining(self, now: Timestamp) -> Option<Duration> {
        (self != Timestamp::NEVER).then(|| Duration::from_millis(self.0.saturating_sub(now.0)))
    }
}

/// A source of coarse time shared by a cache and its tiers. Cloning is cheap.
#[derive(Clone)]
pub struct Clock {
    source: Source,
}

#[derive(Clone)]
enum Source {
    #[cfg_attr(loom, allow(dead_code))]
    System(&'static AtomicU64),
    Manual(Arc<AtomicU64>),
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::System(_) => write!(f, "Clock::system({}ms)", self.now().0),
            Source::Manual(_) => write!(f, "Clock::manual({}ms)", self.now().0),
        }
    }
}

impl Clock {
    /// The process-wide coarse clock (1 ms resolution), started on first use.
    #[cfg(not(loom))]
    pub fn system() -> Clock {
        Clock {
            source: Source::System(system_ticker()),
        }
    }

    /// Under loom there are no background threads: the system clock is a manual one.
    #[cfg(loom)]
    pub fn system() -> Clock {
        Clock::manual().0
    }

    /// A clock that only moves when told to, and the handle that moves it.
    pub fn manual() -> (Clock, ManualClock) {
        let now = Arc::new(AtomicU64::new(0));
        (
            Clock {
                source: Source::Manual(now.clone()),
            },
            ManualClock { now },
        )
    }

    /// The expiry of an entry written now with `ttl` ([`Timestamp::NEVER`] for `None`): never
    /// before `ttl` has really passed (see [`Clock::write_time`]).
    pub fn expiry(&self, ttl: Option<Duration>) -> Timestamp {
        match ttl {
            None => Timestamp::NEVER,
            ttl => self.write_time().after(ttl),
        }
    }

    /// The time to compute expiries from: never earlier than the real time. The coarse
    /// reading of the system clock can lag the real time (it is rounded down, and its thread
    /// can be scheduled late), so this reads the precise time, rounded up (one `Instant::now()`,
    /// on writes with a TTL only); a manual clock is exact.
    pub fn write_time(&self) -> Timestamp {
        match &self.source {
            #[cfg(not(loom))]
            Source::System(_) => {
                Timestamp(ceil_millis(system_origin().elapsed()).min(u64::MAX - 1))
            }
            // Relaxed, as in `Clock::now`: time publishes no other memory.
            #[cfg(loom)]
            Source::System(now) => Timestamp(now.load(Ordering::Relaxed)),
            Source::Manual(now) => Timestamp(now.load(Ordering::Relaxed)),
        }
    }

    /// The current time. One atomic load.
    #[inline]
    pub fn now(&self) -> Timestamp {
        // Relaxed: time is advisory. A reader that sees a slightly old time may return an entry
        // that expired less than a tick ago, which the coarse-clock contract allows; no other
        // memory is published through this counter.
        match &self.source {
            Source::System(now) => Timestamp(now.load(Ordering::Relaxed)),
            Source::Manual(now) => Timestamp(now.load(Ordering::Relaxed)),
        }
    }
}

/// The handle that drives a [`Clock::manual`] clock.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// Moves the clock forward by `by` (whole milliseconds, rounded down), saturating just
    /// below [`Timestamp::NEVER`]: the clock never moves backwards, and never reaches the
    /// expiry of entries that never expire.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // SeqCst: a test that advances the clock and then reads on another thread must see it.
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(ms).min(u64::MAX - 1))
            });
    }

    /// The current time of this clock.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

/// `duration` in whole milliseconds, rounded up, saturating at `u64::MAX`. In `u64` arithmetic:
/// `Duration::as_nanos` is a `u128`, whose division is a library call (about 25 instructions of
/// a write with a TTL, callgrind).
#[inline]
fn ceil_millis(duration: Duration) -> u64 {
    // Whole seconds are whole milliseconds, so only the nanoseconds round.
    duration
        .as_secs()
        .saturating_mul(1_000)
        .saturating_add(u64::from(duration.subsec_nanos()).div_ceil(1_000_000))
}

/// The system clock's origin: its millisecond 0.
#[cfg(not(loom))]
fn system_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

#[cfg(not(loom))]
fn system_ticker() -> &'static AtomicU64 {
    static NOW: AtomicU64 = AtomicU64::new(0);
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let origin = system_origin();
        // A detached thread that lives as long as the process: one wake-up per millisecond.
        std::thread::Builder::new()
            .name("strata-clock".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(1));
                let ms = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
                // Relaxed: see `Clock::now`.
                NOW.store(ms, Ordering::Relaxed);
            })
            .expect("failed to spawn the strata-clock thread");
    });
    &NOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let (clock, hand) = Clock::manual();
        assert_eq!(clock.now(), Timestamp(0));
        hand.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), Timestamp(1500));
        assert_eq!(hand.now(), Timestamp(1500));
    }

    #[test]
    fn timestamps_saturate_and_never_means_never() {
        assert_eq!(Timestamp(5).after(None), Timestamp::NEVER);
        assert_eq!(
            Timestamp(5).after(Some(Duration::from_millis(10))),
            Timestamp(15)
        );
        assert!(Timestamp(u64::MAX - 3).after(Some(Duration::MAX)) < Timestamp::NEVER);
        for (duration, ms) in [
            (Duration::ZERO, 0),
            (Duration::from_nanos(1), 1),
            (Duration::from_micros(1_999), 2),
            (Duration::from_millis(2), 2),
            (Duration::new(3, 1), 3_001),
            (Duration::new(u64::MAX / 1_000, 999_999_999), u64::MAX),
            (Duration::MAX, u64::MAX),
        ] {
            assert_eq!(ceil_millis(duration), ms, "{duration:?}");
        }
        // Rounded up, never down: a TTL never expires early.
        assert_eq!(
            Timestamp(5).after(Some(Duration::from_micros(1_999))),
            Timestamp(7)
        );
        assert_eq!(
            Timestamp(5).after(Some(Duration::from_nanos(1))),
            Timestamp(6)
        );
        assert_eq!(
            Timestamp(5).after(Some(Duration::from_millis(2))),
            Timestamp(7)
        );
        assert_eq!(
            Timestamp(15).remaining(Timestamp(5)),
            Some(Duration::from_millis(10))
        );
        assert_eq!(Timestamp::NEVER.remaining(Timestamp(5)), None);
    }

    #[test]
    fn manual_clock_saturates_and_never_goes_back() {
        let (clock, hand) = Clock::manual();
        hand.advance(Duration::from_millis(10));
        hand.advance(Duration::MAX);
        assert_eq!(clock.now(), Timestamp(u64::MAX - 1));
        hand.advance(Duration::MAX);
        assert_eq!(clock.now(), Timestamp(u64::MAX - 1));
        assert!(clock.now() < Timestamp::NEVER);
    }

    #[test]
    fn expiry_is_never_before_the_ttl_has_passed() {
        let ttl = Some(Duration::from_millis(3));
        let (manual, hand) = Clock::manual();
        hand.advance(Duration::from_millis(10));
        assert_eq!(manual.expiry(ttl), Timestamp(13));
        assert_eq!(manual.expiry(None), Timestamp::NEVER);
        let system = Clock::system();
        for _ in 0..100 {
            let before = system_origin().elapsed();
            let expiry = system.expiry(ttl);
            // The precise time, rounded up: at least the TTL after the moment of the write.
            assert!(Duration::from_millis(expiry.0) >= before + Duration::from_millis(3));
            assert!(system.now() < expiry);
        }
    }

    #[test]
    fn system_clock_advances() {
        let clock = Clock::system();
        let start = clock.now();
        let deadline = Instant::now() + Duration::from_secs(5);
        while clock.now() == start && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(clock.now() > start);
    }
}
