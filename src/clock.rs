//! The coarse clock every tier reads its "now" from.
//!
//! Reading `Instant::now()` costs a vDSO call (15–25 ns), as much as a whole map lookup, so the
//! read path must not do it. Instead a [`Clock`] is one atomic load:
//!
//! - [`Clock::system`] reads a process-wide millisecond counter that one background thread
//!   ("strata-clock") advances every millisecond. Expiry can therefore be late by about one
//!   millisecond plus scheduling delay, never early.
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

    /// `self + ttl`, saturating at [`Timestamp::NEVER`]. A `None` TTL means "never expires".
    pub fn after(self, ttl: Option<Duration>) -> Timestamp {
        match ttl {
            None => Timestamp::NEVER,
            Some(ttl) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                Timestamp(self.0.saturating_add(ms).min(u64::MAX - 1))
            }
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
    /// Moves the clock forward by `by` (millisecond resolution).
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // SeqCst: a test that advances the clock and then reads on another thread must see it.
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// The current time of this clock.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(not(loom))]
fn system_ticker() -> &'static AtomicU64 {
    static NOW: AtomicU64 = AtomicU64::new(0);
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let origin = Instant::now();
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
        assert_eq!(
            Timestamp(15).remaining(Timestamp(5)),
            Some(Duration::from_millis(10))
        );
        assert_eq!(Timestamp::NEVER.remaining(Timestamp(5)), None);
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
