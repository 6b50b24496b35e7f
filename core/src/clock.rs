//! The injectable clock every state machine reads.
//!
//! Rolling windows and the circuit breaker never read the wall clock themselves: they take an
//! [`Instant`] from a [`Clock`]. A clock has two reads:
//!
//! - [`now`](Clock::now), precise, for latencies; [`stamp`](Clock::stamp) is the same instant as
//!   a [`Stamp`], read from the CPU's invariant counter where there is one (about half the cost
//!   of the system's precise clock), for the hot paths that record every request;
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
            Source::System => coarse::stamp().to_instant(),
            // Their coarse reads are their precise ones.
            Source::Tokio | Source::Manual(_) => self.now(),
        }
    }

    /// [`coarse_now`](Self::coarse_now) as a [`Stamp`], read without building an instant:
    /// how the windows are placed when the caller has no stamp of its own.
    #[inline]
    pub fn coarse_stamp(&self) -> Stamp {
        match &self.source {
            Source::System => coarse::stamp(),
            // Their coarse reads are their precise ones.
            Source::Tokio | Source::Manual(_) => Stamp::from_instant(self.now()),
        }
    }
}

impl Clock {
    /// The current instant as a [`Stamp`], as precise as [`now`](Self::now).
    ///
    /// The system clock reads the CPU's invariant time-stamp counter (through `quanta`, which
    /// falls back to the monotonic clock where there is none) and puts it back on the monotonic
    /// clock's timeline every 50 ms, so that a stamp stays within microseconds of `now` however
    /// the two drift apart. The first read calibrates the counter, once per process (under a
    /// millisecond here, at most 200 ms).
    ///
    /// ```
    /// use hystrix_core::{Clock, Stamp};
    /// use std::time::Duration;
    ///
    /// let clock = Clock::system();
    /// let (a, b) = (clock.stamp(), Stamp::from_instant(clock.now()));
    /// let apart = if a > b { a.saturating_duration_since(b) } else { b.saturating_duration_since(a) };
    /// assert!(apart < Duration::from_millis(5));
    /// ```
    #[inline]
    pub fn stamp(&self) -> Stamp {
        match &self.source {
            Source::System => counter::stamp(),
            Source::Tokio | Source::Manual(_) => Stamp::from_instant(self.now()),
        }
    }

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
    use std::sync::OnceLock;

    use rustix::time::{ClockId, clock_gettime};

    use super::{Stamp, system_now};

    /// A precise stamp and the coarse clock's reading (ns) taken with it.
    static BASE: OnceLock<(u64, u64)> = OnceLock::new();

    #[inline]
    fn read() -> u64 {
        let t = clock_gettime(ClockId::MonotonicCoarse);
        (t.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec as u64)
    }

    /// The coarse clock, placed on the precise clock's timeline.
    #[inline]
    pub(super) fn stamp() -> Stamp {
        let (base, base_coarse) =
            *BASE.get_or_init(|| (Stamp::from_instant(system_now()).0, read()));
        Stamp(base + read().saturating_sub(base_coarse))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod coarse {
    use super::{Stamp, system_now};

    #[inline]
    pub(super) fn stamp() -> Stamp {
        Stamp::from_instant(system_now())
    }
}

/// An instant as whole nanoseconds on the process's timeline: what the paths that run on every
/// request pass around, where a [`tokio::time::Instant`] would cost a `timespec` subtraction
/// each time one is placed in a window or measured against another.
///
/// Stamps and instants convert both ways without loss ([`from_instant`](Self::from_instant),
/// [`to_instant`](Self::to_instant)); the timeline starts a year before the first conversion,
/// and an instant earlier than that is placed at its start.
///
/// ```
/// use hystrix_core::{ManualClock, Stamp};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let start = clock.clock().stamp();
/// clock.advance(Duration::from_micros(2_500));
/// let end = clock.clock().stamp();
/// assert_eq!(end.saturating_duration_since(start), Duration::from_micros(2_500));
/// assert_eq!(end.millis_since(start), 2);
/// assert_eq!(Stamp::from_instant(end.to_instant()), end);
/// assert_eq!(end.to_instant(), clock.now());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(u64);

impl Stamp {
    /// The stamp of `instant`.
    #[inline]
    pub fn from_instant(instant: Instant) -> Self {
        let since = instant.saturating_duration_since(timeline::base());
        Self(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The instant of this stamp.
    pub fn to_instant(self) -> Instant {
        timeline::base() + Duration::from_nanos(self.0)
    }

    /// The time from `earlier` to this stamp, zero if `earlier` is later.
    #[inline]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Whole microseconds since `earlier`, zero if `earlier` is later: a latency as the
    /// percentiles record it, without building a [`Duration`].
    #[inline]
    pub fn micros_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0) / 1_000
    }

    /// Whole milliseconds from `origin` to this stamp, zero if `origin` is later: how the
    /// rolling windows place a stamp.
    #[inline]
    pub fn millis_since(self, origin: Self) -> u64 {
        self.0.saturating_sub(origin.0) / 1_000_000
    }
}

impl From<Instant> for Stamp {
    fn from(instant: Instant) -> Self {
        Self::from_instant(instant)
    }
}

impl fmt::Debug for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stamp({:?})", Duration::from_nanos(self.0))
    }
}

mod timeline {
    use std::{sync::OnceLock, time::Duration};

    use super::{Instant, system_now};

    static BASE: OnceLock<Instant> = OnceLock::new();

    /// The instant stamps count from: a year before the first call, so that instants read
    /// earlier (a manual clock's start, tokio's paused time) still fall after it.
    #[inline]
    pub(super) fn base() -> Instant {
        *BASE.get_or_init(|| {
            let now = system_now();
            now.checked_sub(Duration::from_secs(365 * 86_400))
                .unwrap_or(now)
        })
    }
}

/// The precise system clock, read from the CPU's counter.
mod counter {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    };

    use super::{Stamp, system_now};

    /// How long the counter runs on its own before it is put back on the monotonic clock's
    /// timeline. The two drift apart by NTP's slewing (at most 500 ppm, 25 µs in this time)
    /// and the calibration's error.
    const REANCHOR_NS: u64 = 50_000_000;

    struct Counter {
        clock: quanta::Clock,
        /// The counter's reading when it was calibrated.
        raw0: u64,
        /// Nanoseconds per tick of the counter, in 32.32 fixed point (quanta's calibration):
        /// a multiplication and a constant shift turn ticks into nanoseconds.
        nanos_per_tick: u64,
        /// The stamp, in nanoseconds, of the last time the counter was put on the timeline.
        anchor: AtomicU64,
        /// Added (wrapping) to the counter's nanoseconds since `raw0`, it gives the stamp.
        offset: AtomicU64,
    }

    static COUNTER: OnceLock<Counter> = OnceLock::new();

    #[inline]
    pub(super) fn stamp() -> Stamp {
        COUNTER.get_or_init(Counter::new).stamp()
    }

    impl Counter {
        fn new() -> Self {
            let clock = quanta::Clock::new();
            let raw0 = clock.raw();
            let now = Stamp::from_instant(system_now()).0;
            Self {
                nanos_per_tick: clock.delta_as_nanos(0, 1 << 32),
                clock,
                raw0,
                anchor: AtomicU64::new(now),
                offset: AtomicU64::new(now),
            }
        }

        /// Nanoseconds from `raw0` to `raw`.
        #[inline]
        fn since(&self, raw: u64) -> u64 {
            let ticks = raw.wrapping_sub(self.raw0);
            ((u128::from(ticks) * u128::from(self.nanos_per_tick)) >> 32) as u64
        }

        #[inline]
        fn stamp(&self) -> Stamp {
            let since = self.since(self.clock.raw());
            let ns = since.wrapping_add(self.offset.load(Ordering::Relaxed));
            let anchor = self.anchor.load(Ordering::Relaxed);
            // Also true when `ns` is before the anchor.
            if ns.wrapping_sub(anchor) >= REANCHOR_NS {
                return self.reanchor(anchor);
            }
            Stamp(ns)
        }

        /// Puts the counter back on the monotonic clock's timeline: one thread does it, the
        /// others go on with the previous offset meanwhile.
        #[cold]
        fn reanchor(&self, seen: u64) -> Stamp {
            let raw = self.clock.raw();
            let now = Stamp::from_instant(system_now()).0;
            if self
                .anchor
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                self.offset
                    .store(now.wrapping_sub(self.since(raw)), Ordering::Relaxed);
            }
            Stamp(now)
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
    fn system_stamps_follow_the_precise_clock_across_reanchors() {
        let clock = Clock::system();
        let mut last = clock.stamp();
        for round in 0..4 {
            for _ in 0..1000 {
                let stamp = clock.stamp();
                let precise = Stamp::from_instant(clock.now());
                let apart = precise.0.abs_diff(stamp.0);
                assert!(apart < 1_000_000, "round {round}: {apart} ns apart");
                assert!(
                    stamp.0 + 1_000_000 > last.0,
                    "backwards: {stamp:?} after {last:?}"
                );
                last = stamp;
            }
            // Past the counter's re-anchoring period.
            std::thread::sleep(Duration::from_millis(60));
            let slept = clock.stamp().saturating_duration_since(last);
            assert!(slept >= Duration::from_millis(59), "{slept:?}");
            assert!(slept < Duration::from_millis(1_000), "{slept:?}");
        }
    }

    #[test]
    fn stamps_convert_to_instants_and_back() {
        let manual = ManualClock::new();
        let before = manual.now();
        let stamp = manual.clock().stamp();
        assert_eq!(stamp.to_instant(), before);
        manual.advance(Duration::from_nanos(1_234_567_891));
        let later = manual.clock().stamp();
        assert_eq!(
            later.saturating_duration_since(stamp),
            Duration::from_nanos(1_234_567_891)
        );
        assert_eq!(stamp.saturating_duration_since(later), Duration::ZERO);
        assert_eq!(later.millis_since(stamp), 1_234);
        assert_eq!(stamp.millis_since(later), 0);
        assert_eq!(Stamp::from(later.to_instant()), later);
    }
}
