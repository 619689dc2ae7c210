//! A circuit breaker: after `threshold` consecutive failures to reach Redis, the layer refuses
//! calls at once for `cool_down` (reads fall through to the other layers, writes report the
//! layer as failed), then lets one call through as a probe: its success closes the breaker,
//! its failure reopens it for another cool-down.
//!
//! Only failures to reach the server count (connection refused, I/O errors, timeouts); a
//! value that does not decode, or a key that is too long, says nothing about the server.
//!
//! State is four atomics. `Relaxed` throughout: the breaker is advisory (a call that slips
//! through during the change of state costs one timeout, and no other memory is published
//! through these words); each transition is a single RMW, so its own effect is exact.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use strata::layer::LayerHealth;

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    origin: Instant,
    /// Consecutive failures while closed.
    failures: AtomicU32,
    /// When the cool-down ends, in ms since `origin` plus one; 0 while closed.
    open_until: AtomicU64,
    /// A probe call is running.
    probing: AtomicBool,
    /// Times the breaker opened.
    opened: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cool_down,
            origin: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether a call may go to the server now.
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        if self.now() < until {
            return false;
        }
        // The cool-down is over: exactly one caller probes.
        self.probing
            .compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    pub(crate) fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Relaxed);
            self.probing.store(false, Ordering::Relaxed);
        }
    }

    pub(crate) fn failure(&self) {
        if self.probing.load(Ordering::Relaxed) {
            // The probe failed: another cool-down.
            self.open_until.store(
                self.now().saturating_add(duration_ms(self.cool_down)),
                Ordering::Relaxed,
            );
            self.probing.store(false, Ordering::Relaxed);
            self.opened.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.threshold
            && self
                .open_until
                .compare_exchange(
                    0,
                    self.now().saturating_add(duration_ms(self.cool_down)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn health(&self) -> LayerHealth {
        match self.open_until.load(Ordering::Relaxed) {
            0 => LayerHealth::Healthy,
            until if self.now() < until => LayerHealth::Open,
            _ => LayerHealth::Probing,
        }
    }

    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_once() {
        let breaker = Breaker::new(3, Duration::from_millis(20));
        for _ in 0..2 {
            breaker.failure();
        }
        assert!(breaker.allow());
        breaker.failure();
        assert_eq!(breaker.health(), LayerHealth::Open);
        assert!(!breaker.allow());
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.health(), LayerHealth::Probing);
        assert!(breaker.allow(), "one probe");
        assert!(!breaker.allow(), "only one probe");
        breaker.failure();
        assert_eq!(breaker.health(), LayerHealth::Open);
        assert_eq!(breaker.times_opened(), 2);
        std::thread::sleep(Duration::from_millis(25));
        assert!(breaker.allow());
        breaker.success();
        assert_eq!(breaker.health(), LayerHealth::Healthy);
        assert!(breaker.allow());
    }
}
