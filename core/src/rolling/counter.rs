//! A rolling counter of events, recorded from any number of threads without a lock.
//!
//! # How it works
//!
//! Every event type has one cumulative total that only ever grows (`fetch_add`). The window is a
//! ring of buckets; the first recording in a new bucket takes a snapshot of all totals into that
//! bucket's slot. The sum over the window is then `total - snapshot(oldest bucket in the window)`.
//!
//! This keeps the hot path to a relaxed load of the current bucket number and one `fetch_add`
//! (on a cache line of the thread's own: the totals are striped per thread, see `striped.rs`),
//! and never resets a counter that another thread might be adding to, so no increment is lost at
//! a bucket boundary: an increment racing with the snapshot lands in one of the two buckets.
//!
//! A bucket with no events gets no snapshot. That is exact: with no events between the start of
//! bucket `x` and the start of the next bucket `y` that has a snapshot, the totals at both starts
//! are equal, so the oldest snapshot inside the window stands for the window's start.
//!
//! The gauge maximum (Hystrix's `rollingMaxConcurrentExecutionCount`) is kept per bucket, packed
//! with the bucket number as `bucket << 24 | value`, so one `fetch_max` both starts a new bucket
//! and raises the maximum.
//!
//! The current, still-filling bucket is part of the window (as Hystrix 1.4's rolling numbers).

use std::{
    fmt,
    marker::PhantomData,
    sync::atomic::{AtomicU64, Ordering},
};

use super::{RollingWindow, striped::Totals};
use crate::{clock::Stamp, event::Event};

/// Marks a slot whose snapshot is being written or was never written.
const INVALID: u64 = u64::MAX;
/// Bits of a packed maximum that hold the value.
const MAX_VALUE_BITS: u32 = 24;
const MAX_VALUE_MASK: u64 = (1 << MAX_VALUE_BITS) - 1;

/// The most event types an [`EventCounts`] holds.
const MAX_EVENTS: usize = 24;

/// Counts of every event type of an [`Event`] set, e.g. a window's sums.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EventCounts<E> {
    counts: [u64; MAX_EVENTS],
    _e: PhantomData<fn(E)>,
}

impl<E: Event> EventCounts<E> {
    /// All counts zero.
    pub const fn zero() -> Self {
        Self {
            counts: [0; MAX_EVENTS],
            _e: PhantomData,
        }
    }

    /// The count of one event type.
    #[inline]
    pub fn get(&self, event: E) -> u64 {
        self.counts[event.index()]
    }

    /// Sets the count of one event type.
    pub fn set(&mut self, event: E, count: u64) {
        self.counts[event.index()] = count;
    }

    /// Every event type with its count, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (E, u64)> + '_ {
        E::ALL.iter().map(move |e| (*e, self.get(*e)))
    }
}

impl<E: Event> Default for EventCounts<E> {
    fn default() -> Self {
        Self::zero()
    }
}

impl<E: Event> fmt::Debug for EventCounts<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().filter(|(_, n)| *n > 0))
            .finish()
    }
}

/// Counts of events over a rolling time window, plus a rolling maximum of one gauge.
///
/// ```
/// use hystrix_core::{HystrixEventType, ManualClock, RollingCounter, RollingWindow};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let counter = RollingCounter::new(RollingWindow::COUNTS, clock.now());
/// counter.increment(HystrixEventType::Success, clock.now());
/// counter.increment(HystrixEventType::Failure, clock.now());
/// clock.advance(Duration::from_secs(5));
/// counter.increment(HystrixEventType::Success, clock.now());
/// assert_eq!(counter.sum(HystrixEventType::Success, clock.now()), 2);
///
/// clock.advance(Duration::from_secs(5)); // the first bucket leaves the 10 s window
/// assert_eq!(counter.sum(HystrixEventType::Success, clock.now()), 1);
/// assert_eq!(counter.sum(HystrixEventType::Failure, clock.now()), 0);
/// assert_eq!(counter.cumulative(HystrixEventType::Success), 2);
/// ```
pub struct RollingCounter<E> {
    origin: Stamp,
    window: RollingWindow,
    /// The newest bucket that has a snapshot.
    current: AtomicU64,
    /// Milliseconds since `origin` at which the bucket after `current` starts: an event
    /// before it needs no roll, and no division to find its bucket.
    current_end_ms: AtomicU64,
    /// Cumulative totals, one per event type, striped per thread.
    totals: Totals,
    /// `window.buckets + 1` slots of `[bucket, max, snapshot of E::COUNT totals]`.
    slots: Box<[AtomicU64]>,
    _e: PhantomData<fn(E)>,
}

impl<E: Event> RollingCounter<E> {
    const SLOT_LEN: usize = 2 + E::COUNT;

    /// A counter over `window`, with time measured from `origin`.
    pub fn new(window: RollingWindow, origin: impl Into<Stamp>) -> Self {
        let origin = origin.into();
        assert!(E::COUNT <= MAX_EVENTS, "event sets hold at most 24 types");
        let slots = (window.buckets() as usize + 1) * Self::SLOT_LEN;
        let counter = Self {
            origin,
            window,
            current: AtomicU64::new(0),
            current_end_ms: AtomicU64::new(window.bucket_ms()),
            totals: Totals::new(E::COUNT),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            _e: PhantomData,
        };
        for i in 0..=window.buckets() as usize {
            counter.slots[i * Self::SLOT_LEN].store(INVALID, Ordering::Relaxed);
        }
        counter.slots[0].store(0, Ordering::Relaxed); // bucket 0 starts at zero totals
        counter
    }

    /// The window's shape.
    pub fn window(&self) -> RollingWindow {
        self.window
    }

    /// Bytes of memory one counter takes for `window` (the heap it allocates and itself).
    pub fn memory_bytes(window: RollingWindow) -> usize {
        let slots = (window.buckets() as usize + 1) * Self::SLOT_LEN;
        std::mem::size_of::<Self>()
            + Totals::heap_bytes(E::COUNT)
            + slots * std::mem::size_of::<AtomicU64>()
    }

    /// Records one `event` at `now`.
    #[inline]
    pub fn increment(&self, event: E, now: impl Into<Stamp>) {
        self.add(event, 1, now);
    }

    /// Records `n` events at `now`.
    #[inline]
    pub fn add(&self, event: E, n: u64, now: impl Into<Stamp>) {
        self.add_at_ms(event, n, now.into().millis_since(self.origin));
    }

    /// [`add`](Self::add) at `ms` milliseconds since the origin.
    #[inline]
    pub(crate) fn add_at_ms(&self, event: E, n: u64, ms: u64) {
        if ms >= self.current_end_ms.load(Ordering::Acquire) {
            self.roll(ms / self.window.bucket_ms());
        }
        self.totals.add(event.index(), n);
    }

    /// Raises the current bucket's maximum of the gauge to `value` if it is higher.
    ///
    /// Values above 2^24 - 1 are recorded as 2^24 - 1.
    #[inline]
    pub fn update_max(&self, value: u64, now: impl Into<Stamp>) {
        self.update_max_at_ms(value, now.into().millis_since(self.origin));
    }

    /// [`update_max`](Self::update_max) at `ms` milliseconds since the origin.
    #[inline]
    pub(crate) fn update_max_at_ms(&self, value: u64, ms: u64) {
        let bucket = super::bucket_at(&self.current, self.window.bucket_ms(), ms);
        self.roll(bucket);
        let packed = (bucket << MAX_VALUE_BITS) | value.min(MAX_VALUE_MASK);
        let max = &self.slot(bucket)[1];
        // Written only when it grows: at a steady concurrency, a load.
        if packed > max.load(Ordering::Relaxed) {
            max.fetch_max(packed, Ordering::Relaxed);
        }
    }

    /// The count of `event` in the window that ends at `now`.
    pub fn sum(&self, event: E, now: impl Into<Stamp>) -> u64 {
        let total = self.totals.load(event.index());
        match self.window_start(self.bucket_of(now)) {
            Some(start) => total.saturating_sub(start.get(event)),
            None => 0,
        }
    }

    /// The counts of every event type in the window that ends at `now`.
    pub fn sums(&self, now: impl Into<Stamp>) -> EventCounts<E> {
        let mut out = EventCounts::zero();
        let Some(start) = self.window_start(self.bucket_of(now)) else {
            return out;
        };
        for i in 0..E::COUNT {
            out.counts[i] = self.totals.load(i).saturating_sub(start.counts[i]);
        }
        out
    }

    /// The highest gauge value recorded in the window that ends at `now`.
    pub fn max(&self, now: impl Into<Stamp>) -> u64 {
        let now = self.bucket_of(now);
        let oldest = now.saturating_sub(u64::from(self.window.buckets()) - 1);
        (oldest..=now)
            .map(|b| {
                let packed = self.slot(b)[1].load(Ordering::Acquire);
                if packed >> MAX_VALUE_BITS == b {
                    packed & MAX_VALUE_MASK
                } else {
                    0
                }
            })
            .max()
            .unwrap_or(0)
    }

    /// The count of `event` since the counter was created (never decreases; resets do not
    /// touch it). This is what a Prometheus counter wants.
    pub fn cumulative(&self, event: E) -> u64 {
        self.totals.load(event.index())
    }

    /// Empties the window at `now`: later sums count only events recorded after this call.
    ///
    /// Cumulative totals are kept. Hystrix resets a circuit's health window this way when a
    /// trial closes the circuit.
    pub fn reset(&self, now: impl Into<Stamp>) {
        let bucket = self.bucket_of(now);
        for i in 0..=self.window.buckets() as usize {
            let slot = &self.slots[i * Self::SLOT_LEN..(i + 1) * Self::SLOT_LEN];
            slot[0].store(INVALID, Ordering::Release);
            slot[1].store(0, Ordering::Release);
        }
        self.snapshot_into(bucket);
        self.current.fetch_max(bucket, Ordering::AcqRel);
        self.current_end_ms
            .fetch_max((bucket + 1) * self.window.bucket_ms(), Ordering::AcqRel);
    }

    #[inline]
    fn bucket_of(&self, now: impl Into<Stamp>) -> u64 {
        now.into().millis_since(self.origin) / self.window.bucket_ms()
    }

    #[inline]
    fn slot(&self, bucket: u64) -> &[AtomicU64] {
        let i = (bucket % (u64::from(self.window.buckets()) + 1)) as usize;
        &self.slots[i * Self::SLOT_LEN..(i + 1) * Self::SLOT_LEN]
    }

    /// Makes sure `bucket` has its snapshot before anything is counted in it.
    #[inline]
    fn roll(&self, bucket: u64) {
        let mut current = self.current.load(Ordering::Relaxed);
        while current < bucket {
            match self.current.compare_exchange_weak(
                current,
                bucket,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.snapshot_into(bucket);
                    self.current_end_ms
                        .fetch_max((bucket + 1) * self.window.bucket_ms(), Ordering::AcqRel);
                    return;
                }
                Err(seen) => current = seen,
            }
        }
    }

    #[cold]
    fn snapshot_into(&self, bucket: u64) {
        let slot = self.slot(bucket);
        slot[0].store(INVALID, Ordering::Release);
        for (i, dst) in slot[2..].iter().enumerate() {
            dst.store(self.totals.load(i), Ordering::Relaxed);
        }
        slot[0].store(bucket, Ordering::Release);
    }

    /// The totals at the start of the window that ends with bucket `now`, or `None` if nothing
    /// was recorded in that window.
    fn window_start(&self, now: u64) -> Option<EventCounts<E>> {
        let oldest = now.saturating_sub(u64::from(self.window.buckets()) - 1);
        for bucket in oldest..=now {
            let slot = self.slot(bucket);
            if slot[0].load(Ordering::Acquire) != bucket {
                continue;
            }
            let mut start = EventCounts::zero();
            for (i, v) in slot[2..].iter().enumerate() {
                start.counts[i] = v.load(Ordering::Relaxed);
            }
            // A snapshot being rewritten for a newer bucket is not this bucket's any more.
            if slot[0].load(Ordering::Acquire) == bucket {
                return Some(start);
            }
        }
        None
    }
}

impl<E: Event> fmt::Debug for RollingCounter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingCounter")
            .field("window", &self.window)
            .field("current_bucket", &self.current.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HystrixEventType as Ev, ManualClock};
    use std::{sync::Arc, time::Duration};

    #[test]
    fn sums_move_with_the_window() {
        let clock = ManualClock::new();
        let c = RollingCounter::new(RollingWindow::COUNTS, clock.now());
        for _ in 0..3 {
            c.increment(Ev::Success, clock.now());
            clock.advance(Duration::from_secs(1));
        }
        // buckets 0, 1, 2 hold one each; now in bucket 3
        assert_eq!(c.sum(Ev::Success, clock.now()), 3);
        clock.advance(Duration::from_secs(7)); // bucket 10: window is buckets 1..=10
        assert_eq!(c.sum(Ev::Success, clock.now()), 2);
        clock.advance(Duration::from_secs(2)); // bucket 12: window 3..=12
        assert_eq!(c.sum(Ev::Success, clock.now()), 0);
        assert_eq!(c.cumulative(Ev::Success), 3);
    }

    #[test]
    fn quiet_gap_longer_than_the_ring() {
        let clock = ManualClock::new();
        let c = RollingCounter::new(RollingWindow::COUNTS, clock.now());
        c.add(Ev::Failure, 5, clock.now());
        clock.advance(Duration::from_secs(3600));
        assert_eq!(c.sum(Ev::Failure, clock.now()), 0);
        c.increment(Ev::Failure, clock.now());
        assert_eq!(c.sum(Ev::Failure, clock.now()), 1);
    }

    #[test]
    fn max_is_per_window() {
        let clock = ManualClock::new();
        let c = RollingCounter::<Ev>::new(RollingWindow::COUNTS, clock.now());
        c.update_max(7, clock.now());
        c.update_max(3, clock.now());
        clock.advance(Duration::from_secs(4));
        c.update_max(5, clock.now());
        assert_eq!(c.max(clock.now()), 7);
        clock.advance(Duration::from_secs(6)); // bucket 0 leaves
        assert_eq!(c.max(clock.now()), 5);
        clock.advance(Duration::from_secs(10));
        assert_eq!(c.max(clock.now()), 0);
    }

    #[test]
    fn reset_empties_the_window_but_not_cumulative() {
        let clock = ManualClock::new();
        let c = RollingCounter::new(RollingWindow::COUNTS, clock.now());
        c.add(Ev::Failure, 10, clock.now());
        clock.advance(Duration::from_millis(300));
        c.reset(clock.now());
        assert_eq!(c.sum(Ev::Failure, clock.now()), 0);
        c.increment(Ev::Failure, clock.now());
        clock.advance(Duration::from_secs(2));
        c.increment(Ev::Failure, clock.now());
        assert_eq!(c.sum(Ev::Failure, clock.now()), 2);
        assert_eq!(c.cumulative(Ev::Failure), 12);
    }

    #[test]
    fn concurrent_increments_are_not_lost() {
        let clock = ManualClock::new();
        let c = Arc::new(RollingCounter::new(RollingWindow::COUNTS, clock.now()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, clock) = (c.clone(), clock.clone());
                std::thread::spawn(move || {
                    for i in 0..20_000u32 {
                        if i % 1000 == 0 {
                            clock.advance(Duration::from_millis(10)); // cross buckets mid-flight
                        }
                        c.increment(Ev::Success, clock.now());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.cumulative(Ev::Success), 80_000);
        // 80 advances of 10 ms: 800 ms, still inside the first 10 s window
        assert_eq!(c.sum(Ev::Success, clock.now()), 80_000);
    }
}
