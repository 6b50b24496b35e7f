//! The injectable clock every state machine reads.
//!
//! Rolling windows and the circuit breaker never read the wall clock themselves: they take an
//! [`Instant`] from a [`Clock`]. The default clock reads [`tokio::time::Instant::now`], which
//! follows tokio's paused time in tests (`#[tokio::test(start_paused = true)]` with
//! `tokio::time::advance`) and costs one monotonic clock read otherwise. A [`ManualClock`] moves
//! only when told to, for tests that run without a runtime.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

pub use tokio::time::Instant;

/// A source of monotonic time.
///
/// Cloning is cheap; clones of a manual clock share its time.
///
/// ```
/// use hystrix_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let manual = ManualClock::new();
/// let clock = manual.clock();
/// let start = clock.now();
/// manual.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now() - start, Duration::from_millis(1500));
/// ```
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

struct Manual {
    base: Instant,
    offset_nanos: AtomicU64,
}

impl Clock {
    /// The clock of the tokio runtime: real monotonic time, or paused time in tests.
    pub const fn tokio() -> Self {
        Self { manual: None }
    }

    /// The current instant.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => {
                manual.base + Duration::from_nanos(manual.offset_nanos.load(Ordering::Acquire))
            }
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::Tokio"),
            Some(m) => write!(
                f,
                "Clock::Manual(+{:?})",
                Duration::from_nanos(m.offset_nanos.load(Ordering::Acquire))
            ),
        }
    }
}

/// A clock that moves only when [`advanced`](ManualClock::advance).
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Manual>,
}

impl ManualClock {
    /// A manual clock standing at the current instant.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Manual {
                base: Instant::now(),
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// A [`Clock`] that reads this manual clock.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.inner.clone()),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.offset_nanos.fetch_add(nanos, Ordering::AcqRel);
    }

    /// The current instant of this clock.
    pub fn now(&self) -> Instant {
        self.clock().now()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.clock(), f)
    }
}

/// Whole milliseconds from `origin` to `now`, zero if `now` is earlier.
#[inline]
pub(crate) fn millis_since(origin: Instant, now: Instant) -> u64 {
    let d = now.saturating_duration_since(origin);
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = Clock::tokio();
        let start = clock.now();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.now() - start, Duration::from_secs(3));
    }

    #[test]
    fn millis_since_saturates_backwards() {
        let manual = ManualClock::new();
        let t0 = manual.now();
        manual.advance(Duration::from_micros(2_999));
        assert_eq!(millis_since(t0, manual.now()), 2);
        assert_eq!(millis_since(manual.now(), t0), 0);
    }
}
