//! The injectable clock every state machine reads.
//!
//! Rolling windows and the circuit breaker never read the wall clock themselves: they take an
//! [`Instant`] from a [`Clock`]. A clock has two reads:
//!
//! - [`now`](Clock::now), precise, for latencies;
//! - [`coarse_now`](Clock::coarse_now), within a few milliseconds of `now` and several times
//!   cheaper, for deciding which bucket of a rolling window an event falls in and whether a
//!   sleep window has elapsed. On Linux it is `CLOCK_MONOTONIC_COARSE` (about 7 ns against
//!   28 ns for the precise clock on the project's benchmark machine, at 4 ms resolution).
//!
//! The kinds of clock:
//!
//! - [`Clock::system`]: the system's monotonic clocks. The default.
//! - [`Clock::tokio`]: [`tokio::time::Instant::now`] for both reads, so tests can pause and
//!   advance time (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`). With this
//!   crate's `test-util` feature, the default clock is this one, so every breaker and window
//!   built without an explicit clock follows paused time: enable it in dev-dependencies, as
//!   tokio's own `test-util`.
//! - [`ManualClock`]: moves only when told to, for tests that run without a runtime.

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
/// assert_eq!(clock.coarse_now(), clock.now());
/// ```
#[derive(Clone)]
pub struct Clock {
    source: Source,
}

#[derive(Clone)]
enum Source {
    System,
    Tokio,
    Manual(Arc<Manual>),
}

struct Manual {
    base: Instant,
    offset_nanos: AtomicU64,
}

impl Clock {
    /// The system's monotonic clocks: precise for [`now`](Self::now), coarse (a few ms) for
    /// [`coarse_now`](Self::coarse_now).
    pub const fn system() -> Self {
        Self {
            source: Source::System,
        }
    }

    /// tokio's clock for both reads: real time, or paused time in tests.
    pub const fn tokio() -> Self {
        Self {
            source: Source::Tokio,
        }
    }

    /// The current instant.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.source {
            Source::System => system_now(),
            Source::Tokio => Instant::now(),
            Source::Manual(manual) => manual.now(),
        }
    }

    /// The current instant give or take a few milliseconds, read more cheaply than
    /// [`now`](Self::now) where the system allows. Instants from the two reads can be compared
    /// but a latency should be measured with `now` at both ends.
    #[inline]
    pub fn coarse_now(&self) -> Instant {
        match &self.source {
            Source::System => coarse::now(),
            Source::Tokio => Instant::now(),
            Source::Manual(manual) => manual.now(),
        }
    }
}

impl Clock {
    /// The instant of tokio's timer at which `after` will have passed since `start`, an
    /// instant read from this clock: what to give [`tokio::time::sleep_until`] so that a
    /// timeout armed late still ends when it should. System and tokio clocks share tokio's
    /// timeline; a manual clock's remaining time is counted from tokio's now.
    pub fn deadline(&self, start: Instant, after: Duration) -> Instant {
        match &self.source {
            Source::System | Source::Tokio => start + after,
            Source::Manual(manual) => {
                let remaining = after.saturating_sub(manual.now().saturating_duration_since(start));
                Instant::now() + remaining
            }
        }
    }
}

impl Default for Clock {
    /// [`Clock::tokio`] with the `test-util` feature, [`Clock::system`] without.
    fn default() -> Self {
        if cfg!(feature = "test-util") {
            Self::tokio()
        } else {
            Self::system()
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::System => f.write_str("Clock::System"),
            Source::Tokio => f.write_str("Clock::Tokio"),
            Source::Manual(m) => write!(
                f,
                "Clock::Manual(+{:?})",
                Duration::from_nanos(m.offset_nanos.load(Ordering::Acquire))
            ),
        }
    }
}

impl Manual {
    #[inline]
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_nanos.load(Ordering::Acquire))
    }
}

#[inline]
#[allow(clippy::disallowed_methods)] // the one place the system clock is read
fn system_now() -> Instant {
    Instant::from_std(std::time::Instant::now())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod coarse {
    use std::{sync::OnceLock, time::Duration};

    use rustix::time::{ClockId, clock_gettime};

    use super::{Instant, system_now};

    /// A precise instant and the coarse clock's reading taken with it.
    static BASE: OnceLock<(Instant, Duration)> = OnceLock::new();

    #[inline]
    fn read() -> Duration {
        let t = clock_gettime(ClockId::MonotonicCoarse);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }

    /// The coarse clock, placed on the precise clock's timeline.
    #[inline]
    pub(super) fn now() -> Instant {
        let (base, base_coarse) = *BASE.get_or_init(|| (system_now(), read()));
        base + read().saturating_sub(base_coarse)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod coarse {
    pub(super) use super::system_now as now;
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
                base: system_now(),
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// A [`Clock`] that reads this manual clock.
    pub fn clock(&self) -> Clock {
        Clock {
            source: Source::Manual(self.inner.clone()),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.offset_nanos.fetch_add(nanos, Ordering::AcqRel);
    }

    /// The current instant of this clock.
    pub fn now(&self) -> Instant {
        self.inner.now()
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

/// Whole milliseconds from `origin` to `now`, zero if `now` is earlier (saturating far in the
/// future): how every rolling window and state machine here places an instant.
#[inline]
pub fn millis_since(origin: Instant, now: Instant) -> u64 {
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
    fn system_clock_reads_agree_within_the_coarse_resolution() {
        let clock = Clock::system();
        for _ in 0..1000 {
            let precise = clock.now();
            let coarse = clock.coarse_now();
            let apart = if coarse > precise {
                coarse - precise
            } else {
                precise - coarse
            };
            assert!(apart < Duration::from_millis(20), "{apart:?}");
        }
        let a = clock.coarse_now();
        std::thread::sleep(Duration::from_millis(30));
        assert!(clock.coarse_now() - a >= Duration::from_millis(20));
    }

    #[test]
    fn default_clock_follows_the_test_util_feature() {
        // The crate's own tests enable `test-util`.
        assert_eq!(format!("{:?}", Clock::default()), "Clock::Tokio");
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
