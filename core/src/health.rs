//! Health counts: how many requests a circuit saw and how many failed (spec §3.6).

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::{HystrixEventType as Ev, clock::Stamp, rolling::EventCounts};

/// Requests and errors in a health window, and the error percentage derived from them.
///
/// `total` is SUCCESS + FAILURE + TIMEOUT + THREAD_POOL_REJECTED + SEMAPHORE_REJECTED and
/// `errors` is the same less SUCCESS; bad requests, short-circuits, fallbacks and cache hits are
/// not health events.
///
/// ```
/// use hystrix_core::{EventCounts, HealthCounts, HystrixEventType as Ev};
///
/// let mut counts = EventCounts::zero();
/// counts.set(Ev::Success, 2);
/// counts.set(Ev::Timeout, 1);
/// counts.set(Ev::BadRequest, 9);
/// let h = HealthCounts::from_events(&counts);
/// assert_eq!((h.total, h.errors, h.error_percentage()), (3, 1, 33));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HealthCounts {
    /// Requests that count for health.
    pub total: u64,
    /// Those that failed.
    pub errors: u64,
}

impl HealthCounts {
    /// The health counts of a window's event counts.
    pub fn from_events(counts: &EventCounts<Ev>) -> Self {
        let errors = counts.get(Ev::Failure)
            + counts.get(Ev::Timeout)
            + counts.get(Ev::ThreadPoolRejected)
            + counts.get(Ev::SemaphoreRejected);
        Self {
            total: errors + counts.get(Ev::Success),
            errors,
        }
    }

    /// `errors / total * 100`, truncated as Hystrix does; 0 when there were no requests.
    pub fn error_percentage(&self) -> u32 {
        if self.total == 0 {
            0
        } else {
            (u128::from(self.errors.min(self.total)) * 100 / u128::from(self.total)) as u32
        }
    }
}

impl fmt::Display for HealthCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} errors ({}%)",
            self.total,
            self.errors,
            self.error_percentage()
        )
    }
}

/// Health counts recomputed at most once per interval (Hystrix's
/// `metrics.healthSnapshot.intervalInMilliseconds`, 500 ms by default).
///
/// Reading the cache is two atomic loads; the computation runs only when the cached value is
/// older than the interval. Counts above 2^32 - 1 are kept as 2^32 - 1.
pub struct HealthCache {
    origin: Stamp,
    interval_ms: AtomicU64,
    /// Milliseconds since `origin` of the last computation, plus one; 0 for none.
    computed_at: AtomicU64,
    /// `total << 32 | errors`.
    counts: AtomicU64,
}

impl HealthCache {
    /// A cache that keeps a computed value for `interval`, with time measured from `origin`.
    pub fn new(interval: Duration, origin: impl Into<Stamp>) -> Self {
        let origin = origin.into();
        Self {
            origin,
            interval_ms: AtomicU64::new(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX)),
            computed_at: AtomicU64::new(0),
            counts: AtomicU64::new(0),
        }
    }

    /// The cached counts, or `compute()`'s if they are older than the interval.
    #[inline]
    pub fn get(
        &self,
        now: impl Into<Stamp>,
        compute: impl FnOnce() -> HealthCounts,
    ) -> HealthCounts {
        let now_ms = now.into().millis_since(self.origin);
        let at = self.computed_at.load(Ordering::Acquire);
        let interval_ms = self.interval_ms.load(Ordering::Relaxed);
        if at != 0 && now_ms < (at - 1).saturating_add(interval_ms) {
            let packed = self.counts.load(Ordering::Acquire);
            return HealthCounts {
                total: packed >> 32,
                errors: packed & u64::from(u32::MAX),
            };
        }
        let fresh = compute();
        let sat = |v: u64| v.min(u64::from(u32::MAX));
        self.counts.store(
            sat(fresh.total) << 32 | sat(fresh.errors),
            Ordering::Release,
        );
        self.computed_at.store(now_ms + 1, Ordering::Release);
        fresh
    }

    /// Changes the interval; the next [`get`](Self::get) computes.
    pub fn set_interval(&self, interval: Duration) {
        self.interval_ms.store(
            u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.invalidate();
    }

    /// Forgets the cached counts: the next [`get`](Self::get) computes.
    pub fn invalidate(&self) {
        self.computed_at.store(0, Ordering::Release);
    }
}

impl fmt::Debug for HealthCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCache")
            .field("interval_ms", &self.interval_ms.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn percentage_truncates_and_handles_zero() {
        let h = |total, errors| HealthCounts { total, errors }.error_percentage();
        assert_eq!(h(0, 0), 0);
        assert_eq!(h(3, 2), 66);
        assert_eq!(h(20, 10), 50);
        assert_eq!(h(u64::MAX, u64::MAX), 100);
    }

    #[test]
    fn cache_recomputes_once_per_interval() {
        let clock = ManualClock::new();
        let cache = HealthCache::new(Duration::from_millis(500), clock.now());
        let mut calls = 0;
        let mut get = |cache: &HealthCache, now| {
            cache.get(now, || {
                calls += 1;
                HealthCounts {
                    total: calls,
                    errors: 0,
                }
            })
        };
        assert_eq!(get(&cache, clock.now()).total, 1);
        clock.advance(Duration::from_millis(499));
        assert_eq!(get(&cache, clock.now()).total, 1);
        clock.advance(Duration::from_millis(1));
        assert_eq!(get(&cache, clock.now()).total, 2);
        cache.invalidate();
        assert_eq!(get(&cache, clock.now()).total, 3);
    }
}
