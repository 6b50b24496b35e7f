//! Rolling latency percentiles.
//!
//! # How it works
//!
//! Recording is lock-free: each time bucket is a log-linear histogram of atomic counters in
//! whole milliseconds (exact below 64 ms, within 1/32 above, up to about 70 minutes), plus the
//! exact maximum (in microseconds). A sample costs one atomic add where every caller's samples
//! meet (the maximum is written only when it grows); the count and the mean are read from the
//! bins. A bucket's slot is zeroed one bucket ahead of
//! use, by whoever starts the bucket before it, so no writer races a reset on the regular path.
//!
//! Each bin holds two counts side by side, the low and high halves of one 64-bit word: two
//! series of latencies over the same window (a command's execution and total latency), so that
//! a pair of samples that fall in the same bin, as a call's two latencies almost always do, costs
//! one atomic add for both. The public methods read and write the first series.
//!
//! Percentiles are computed as Hystrix 1.5 computes them: over the *completed* buckets of the
//! window (the bucket still filling is not read), once per bucket, by merging the buckets into an
//! [`hdrhistogram::Histogram`] and reading its quantiles. Between two bucket boundaries a
//! snapshot is a cached copy.

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;

use super::RollingWindow;
use crate::clock::Stamp;

/// The percentiles Hystrix streams (`"0"` … `"100"`, spec §2.1), in order.
pub const PERCENTILES: [f64; 9] = [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 100.0];

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS; // 64 exact values
const HALF: u64 = SUB / 2; // 32 sub-buckets per power of two above that
/// The largest latency kept distinct, in ms (about 70 minutes); longer ones count as this.
const MAX_MS: u64 = (1 << 22) - 1;
const LEVELS: u64 = 22 - SUB_BITS as u64; // powers of two above the exact range
const LEN: usize = (SUB + LEVELS * HALF) as usize;

/// Slot metadata: the bucket it holds, then each series' max µs (the count and the sum are
/// read from the bins).
const META: usize = 3;
/// What one sample of each series adds to a bin.
const ONE_EACH: u64 = 1 | 1 << 32;

/// One of the two series a [`RollingPercentile`] keeps in each bin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// The low half of a bin; what the public methods read and write.
    First = 0,
    /// The high half.
    Second = 1,
}

impl Lane {
    /// What one sample adds to a bin.
    #[inline]
    fn one(self) -> u64 {
        1 << (32 * self as u32)
    }

    /// This series' count in a bin.
    #[inline]
    fn count(self, bin: u64) -> u64 {
        (bin >> (32 * self as u32)) & u64::from(u32::MAX)
    }

    /// Where this series' maximum is in a slot's metadata.
    #[inline]
    fn max_at(self) -> usize {
        1 + self as usize
    }
}

/// Whole microseconds, saturating, without `as_micros`' 128-bit arithmetic.
#[inline]
pub(crate) fn micros(latency: Duration) -> u64 {
    latency
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(latency.subsec_micros()))
}
/// Tag of a slot another thread is zeroing.
const ZEROING: u64 = u64::MAX;
/// Tag of a slot that is zero and holds no bucket yet.
const FRESH: u64 = u64::MAX - 1;

#[inline]
fn index_of(ms: u64) -> usize {
    let v = ms.min(MAX_MS);
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as u64; // >= SUB_BITS
    let shift = msb - (SUB_BITS as u64 - 1);
    (SUB + (shift - 1) * HALF + ((v >> shift) - HALF)) as usize
}

/// The middle of the range of values counted at `index`.
fn value_of(index: usize) -> u64 {
    let i = index as u64;
    if i < SUB {
        return i;
    }
    let shift = (i - SUB) / HALF + 1;
    let low = (HALF + (i - SUB) % HALF) << shift;
    low + ((1 << shift) - 1) / 2
}

/// Where a reader of [`RollingPercentile::drain_completed`] stands: the first bucket it has
/// not read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyCursor {
    next: u64,
}

/// Mean and percentiles of latency over a window, in whole milliseconds, as the stream wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// The number of latencies in the window.
    pub count: u64,
    /// The mean of the latencies as recorded (whole milliseconds, within the histogram's
    /// precision: see [`RollingPercentile::recorded_as`]), truncated to whole ms; this is
    /// Hystrix's mean too, of whole-millisecond latencies in an HdrHistogram.
    pub mean: u64,
    /// The values at [`PERCENTILES`], in ms.
    pub percentiles: [u64; 9],
}

impl LatencySnapshot {
    /// The value at one of the [`PERCENTILES`] (e.g. `99.5`), or `None` for another percentile.
    pub fn at(&self, percentile: f64) -> Option<u64> {
        PERCENTILES
            .iter()
            .position(|p| *p == percentile)
            .map(|i| self.percentiles[i])
    }
}

/// Latency percentiles over a rolling window of completed buckets.
///
/// ```
/// use hystrix_core::{ManualClock, RollingPercentile, RollingWindow};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let latency = RollingPercentile::new(RollingWindow::PERCENTILES, clock.now());
/// for ms in 1..=100 {
///     latency.record(Duration::from_millis(ms), clock.now());
/// }
/// // Only completed buckets are read: nothing yet.
/// assert_eq!(latency.snapshot(clock.now()).count, 0);
///
/// clock.advance(Duration::from_secs(10));
/// let s = latency.snapshot(clock.now());
/// assert_eq!(s.count, 100);
/// assert_eq!(s.mean, 50);
/// assert_eq!(s.at(100.0), Some(100));
/// ```
pub struct RollingPercentile {
    origin: Stamp,
    window: RollingWindow,
    current: AtomicU64,
    /// The slot of the newest bucket, written by the thread that rolled to it: a hint, checked
    /// against the slot's tag before use, that spares each sample a division (a hint left
    /// stale by a race between two rolls costs the division until the next roll).
    current_slot: AtomicUsize,
    meta: Box<[AtomicU64]>,
    /// `LEN` bins per slot, each two counts (see [`Lane`]).
    counts: Box<[AtomicU64]>,
    /// Each series' last snapshot, with the bucket it was computed at.
    cache: Mutex<[Option<(u64, LatencySnapshot)>; 2]>,
}

impl RollingPercentile {
    /// Bytes of memory one instance takes for `window` (the heap it allocates and itself).
    pub fn memory_bytes(window: RollingWindow) -> usize {
        let slots = window.buckets() as usize + 2;
        std::mem::size_of::<Self>() + slots * (META * 8 + LEN * 8)
    }

    /// Percentiles over `window`, with time measured from `origin`.
    pub fn new(window: RollingWindow, origin: impl Into<Stamp>) -> Self {
        let origin = origin.into();
        // Completed buckets in the window, the current one, and the next one being prepared.
        let slots = window.buckets() as usize + 2;
        let this = Self {
            origin,
            window,
            current: AtomicU64::new(0),
            current_slot: AtomicUsize::new(0),
            meta: (0..slots * META).map(|_| AtomicU64::new(0)).collect(),
            counts: (0..slots * LEN).map(|_| AtomicU64::new(0)).collect(),
            cache: Mutex::new([None; 2]),
        };
        // Slot 0 holds bucket 0; the others are zero and unassigned.
        for s in 1..slots {
            this.meta[s * META].store(FRESH, Ordering::Relaxed);
        }
        this
    }

    /// The window's shape.
    pub fn window(&self) -> RollingWindow {
        self.window
    }

    /// The value, in whole milliseconds, that a latency of `ms` milliseconds is counted as:
    /// itself below 64 ms, within 1/32 of it above, at most about 70 minutes. Percentiles and
    /// the mean are of these values.
    ///
    /// ```
    /// use hystrix_core::RollingPercentile;
    ///
    /// assert_eq!(RollingPercentile::recorded_as(63), 63);
    /// let v = RollingPercentile::recorded_as(1_000);
    /// assert!(v.abs_diff(1_000) <= 1_000 / 32);
    /// ```
    pub fn recorded_as(ms: u64) -> u64 {
        value_of(index_of(ms))
    }

    /// Records one latency at `now`.
    #[inline]
    pub fn record(&self, latency: Duration, now: impl Into<Stamp>) {
        self.record_at_ms(Lane::First, latency, now.into().millis_since(self.origin));
    }

    /// One latency of `lane`, at `ms` milliseconds since the origin.
    #[inline]
    pub(crate) fn record_at_ms(&self, lane: Lane, latency: Duration, ms: u64) {
        let Some(s) = self.slot_for(ms) else {
            return;
        };
        let us = micros(latency);
        self.raise_max(s, lane, us);
        self.counts[s * LEN + index_of(us / 1000)].fetch_add(lane.one(), Ordering::Relaxed);
    }

    /// One latency of each series, at `ms` milliseconds since the origin: one atomic add
    /// when both fall in the same bin.
    #[inline]
    pub(crate) fn record_pair_at_ms(&self, first: Duration, second: Duration, ms: u64) {
        self.record_pair_us_at_ms(micros(first), micros(second), ms);
    }

    /// [`record_pair_at_ms`](Self::record_pair_at_ms) of latencies in whole microseconds.
    #[inline]
    pub(crate) fn record_pair_us_at_ms(&self, a: u64, b: u64, ms: u64) {
        let Some(s) = self.slot_for(ms) else {
            return;
        };
        self.raise_max(s, Lane::First, a);
        self.raise_max(s, Lane::Second, b);
        let (i, j) = (index_of(a / 1000), index_of(b / 1000));
        let bins = &self.counts[s * LEN..(s + 1) * LEN];
        if i == j {
            bins[i].fetch_add(ONE_EACH, Ordering::Relaxed);
        } else {
            bins[i].fetch_add(Lane::First.one(), Ordering::Relaxed);
            bins[j].fetch_add(Lane::Second.one(), Ordering::Relaxed);
        }
    }

    /// The slot that takes samples at `ms`, or `None` to drop them: another thread is
    /// zeroing that slot after a quiet gap.
    #[inline]
    fn slot_for(&self, ms: u64) -> Option<usize> {
        let bucket = super::bucket_at(&self.current, self.window.bucket_ms(), ms);
        self.roll(bucket);
        // Only the slot of `bucket` is ever tagged with it: a stale hint fails the check.
        let hint = self.current_slot.load(Ordering::Relaxed);
        if self.meta[hint * META].load(Ordering::Acquire) == bucket {
            return Some(hint);
        }
        let s = self.slot_index(bucket);
        if self.meta[s * META].load(Ordering::Acquire) != bucket && !self.prepare(s, bucket) {
            return None;
        }
        Some(s)
    }

    /// The maximum is written only when it grows: one write per sample where every caller's
    /// samples meet, the bin's.
    #[inline]
    fn raise_max(&self, s: usize, lane: Lane, us: u64) {
        let max = &self.meta[s * META + lane.max_at()];
        if us > max.load(Ordering::Relaxed) {
            max.fetch_max(us, Ordering::Relaxed);
        }
    }

    /// Mean and percentiles over the completed buckets of the window that ends at `now`.
    pub fn snapshot(&self, now: impl Into<Stamp>) -> LatencySnapshot {
        self.snapshot_of(Lane::First, now.into())
    }

    /// [`snapshot`](Self::snapshot) of `lane`.
    pub(crate) fn snapshot_of(&self, lane: Lane, now: Stamp) -> LatencySnapshot {
        let bucket = now.millis_since(self.origin) / self.window.bucket_ms();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((b, snap)) = cache[lane as usize] {
            if b == bucket {
                return snap;
            }
        }
        let snap = self.compute(lane, bucket);
        cache[lane as usize] = Some((bucket, snap));
        snap
    }

    /// Visits every latency of the buckets completed since `cursor` (and still in the
    /// window at `now`) as `(milliseconds, count)` pairs, values within the histogram's
    /// precision, then moves `cursor` past them. Each completed bucket is visited once, so a
    /// reader that calls this more often than once per window sees every latency once:
    /// this is how latencies reach Prometheus histograms without costing the recording path.
    /// A new cursor ([`LatencyCursor::default`]) starts with the buckets in the window.
    pub fn drain_completed(
        &self,
        cursor: &mut LatencyCursor,
        now: impl Into<Stamp>,
        visit: impl FnMut(u64, u64),
    ) {
        self.drain_completed_of(Lane::First, cursor, now.into(), visit);
    }

    /// [`drain_completed`](Self::drain_completed) of `lane`.
    pub(crate) fn drain_completed_of(
        &self,
        lane: Lane,
        cursor: &mut LatencyCursor,
        now: Stamp,
        mut visit: impl FnMut(u64, u64),
    ) {
        let now = now.millis_since(self.origin) / self.window.bucket_ms();
        let first = now
            .saturating_sub(u64::from(self.window.buckets()))
            .max(cursor.next);
        for bucket in first..now {
            let s = self.slot_index(bucket);
            if self.meta[s * META].load(Ordering::Acquire) != bucket {
                continue;
            }
            for (i, c) in self.counts[s * LEN..(s + 1) * LEN].iter().enumerate() {
                let c = lane.count(c.load(Ordering::Relaxed));
                if c > 0 {
                    visit(value_of(i), c);
                }
            }
        }
        cursor.next = cursor.next.max(now);
    }

    fn compute(&self, lane: Lane, now: u64) -> LatencySnapshot {
        let first = now.saturating_sub(u64::from(self.window.buckets()));
        let Ok(mut hist) = Histogram::<u64>::new_with_bounds(1, MAX_MS, 2) else {
            return LatencySnapshot::default();
        };
        hist.auto(true);
        let (mut count, mut sum_ms, mut max_us) = (0u64, 0u64, 0u64);
        for bucket in first..now {
            let s = self.slot_index(bucket);
            let meta = &self.meta[s * META..(s + 1) * META];
            if meta[0].load(Ordering::Acquire) != bucket {
                continue;
            }
            max_us = max_us.max(meta[lane.max_at()].load(Ordering::Relaxed));
            for (i, c) in self.counts[s * LEN..(s + 1) * LEN].iter().enumerate() {
                let c = lane.count(c.load(Ordering::Relaxed));
                if c > 0 {
                    count += c;
                    sum_ms = sum_ms.saturating_add(value_of(i).saturating_mul(c));
                    let _ = hist.record_n(value_of(i), c);
                }
            }
        }
        if count == 0 {
            return LatencySnapshot::default();
        }
        let max_ms = max_us / 1000;
        let mut percentiles = [0; 9];
        for (out, p) in percentiles.iter_mut().zip(PERCENTILES) {
            *out = if p >= 100.0 {
                max_ms
            } else {
                hist.value_at_percentile(p).min(max_ms)
            };
        }
        LatencySnapshot {
            count,
            mean: sum_ms / count,
            percentiles,
        }
    }

    #[inline]
    fn slot_index(&self, bucket: u64) -> usize {
        (bucket % (u64::from(self.window.buckets()) + 2)) as usize
    }

    /// When the first recording of a new bucket arrives, zero the slot after it.
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
                    self.current_slot
                        .store(self.slot_index(bucket), Ordering::Relaxed);
                    self.prepare(self.slot_index(bucket + 1), bucket + 1);
                    return;
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Makes slot `s` hold `bucket`, zeroing what an older bucket left there. False when the
    /// slot cannot take samples of `bucket`: another thread is zeroing it, or it already holds
    /// a newer bucket (a writer that was delayed across a whole window).
    #[cold]
    fn prepare(&self, s: usize, bucket: u64) -> bool {
        let tag = &self.meta[s * META];
        let seen = tag.load(Ordering::Acquire);
        if seen == bucket {
            return true;
        }
        if seen == ZEROING || (seen != FRESH && seen > bucket) {
            return false;
        }
        let claim = if seen == FRESH { bucket } else { ZEROING };
        if tag
            .compare_exchange(seen, claim, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return tag.load(Ordering::Acquire) == bucket;
        }
        if claim == ZEROING {
            for m in &self.meta[s * META + 1..(s + 1) * META] {
                m.store(0, Ordering::Relaxed);
            }
            for c in &self.counts[s * LEN..(s + 1) * LEN] {
                c.store(0, Ordering::Relaxed);
            }
            tag.store(bucket, Ordering::Release);
        }
        true
    }
}

impl fmt::Debug for RollingPercentile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingPercentile")
            .field("window", &self.window)
            .field("current_bucket", &self.current.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn index_round_trips_within_precision() {
        let mut last = 0;
        for ms in 0..=MAX_MS {
            let i = index_of(ms);
            assert!(i >= last && i < LEN, "{ms} -> {i}");
            last = i;
            let v = value_of(i);
            let err = v.abs_diff(ms) as f64;
            assert!(err <= (ms as f64 / HALF as f64).max(0.0), "{ms} -> {v}");
        }
        assert_eq!(index_of(MAX_MS), LEN - 1);
        assert_eq!(index_of(u64::MAX), LEN - 1);
    }

    #[test]
    fn exact_below_64ms() {
        for ms in 0..SUB {
            assert_eq!(value_of(index_of(ms)), ms);
        }
    }

    /// Two series recorded as pairs (in the same bin or not) and alone read back exactly as
    /// two separate histograms fed the same samples.
    #[test]
    fn paired_series_read_as_separate_histograms() {
        let clock = ManualClock::new();
        let paired = RollingPercentile::new(RollingWindow::PERCENTILES, clock.now());
        let first = RollingPercentile::new(RollingWindow::PERCENTILES, clock.now());
        let second = RollingPercentile::new(RollingWindow::PERCENTILES, clock.now());
        let ms = |n: u64| Duration::from_millis(n);
        let mut cursors = [LatencyCursor::default(); 2];
        let mut alone = [LatencyCursor::default(); 2];
        for round in 0..3u64 {
            let at = clock.clock().stamp().millis_since(paired.origin);
            for i in 0..200u64 {
                let (a, b) = (ms(i % 70 + round), ms(i % 70 + round + i % 3 * 40));
                paired.record_pair_at_ms(a, b, at);
                first.record(a, clock.now());
                second.record(b, clock.now());
            }
            // A total alone, as a rejected call records it, and a huge one in each.
            paired.record_at_ms(Lane::Second, ms(5_000), at);
            second.record(ms(5_000), clock.now());
            paired.record_pair_at_ms(ms(90_000_000), ms(2), at);
            first.record(ms(90_000_000), clock.now());
            second.record(ms(2), clock.now());
            clock.advance(Duration::from_secs(10));
            let now = clock.clock().stamp();
            assert_eq!(paired.snapshot_of(Lane::First, now), first.snapshot(now));
            assert_eq!(paired.snapshot_of(Lane::Second, now), second.snapshot(now));
            assert_ne!(first.snapshot(now), second.snapshot(now));
            for (lane, (one, cursor)) in [Lane::First, Lane::Second]
                .into_iter()
                .zip([&first, &second].into_iter().zip(&mut alone))
            {
                let (mut got, mut want) = (Vec::new(), Vec::new());
                paired.drain_completed_of(lane, &mut cursors[lane as usize], now, |v, n| {
                    got.push((v, n))
                });
                one.drain_completed(cursor, now, |v, n| want.push((v, n)));
                assert_eq!(got, want, "{lane:?}");
                assert!(!got.is_empty());
            }
        }
    }

    #[test]
    fn window_of_completed_buckets() {
        let clock = ManualClock::new();
        let p = RollingPercentile::new(RollingWindow::PERCENTILES, clock.now());
        p.record(Duration::from_millis(10), clock.now());
        clock.advance(Duration::from_secs(10));
        p.record(Duration::from_millis(30), clock.now());
        let s = p.snapshot(clock.now());
        assert_eq!((s.count, s.mean, s.at(100.0)), (1, 10, Some(10)));
        clock.advance(Duration::from_secs(10));
        let s = p.snapshot(clock.now());
        assert_eq!((s.count, s.mean, s.at(0.0)), (2, 20, Some(10)));
        clock.advance(Duration::from_secs(50)); // t = 70 s: completed buckets 10..70 s hold one
        assert_eq!(p.snapshot(clock.now()).count, 1);
        clock.advance(Duration::from_secs(10)); // t = 80 s: both have left the window
        assert_eq!(p.snapshot(clock.now()).count, 0);
    }

    #[test]
    fn quiet_gaps_do_not_resurrect_old_samples() {
        let clock = ManualClock::new();
        let p = RollingPercentile::new(RollingWindow::PERCENTILES, clock.now());
        for gap in [0u64, 10, 70, 80, 700, 7] {
            clock.advance(Duration::from_secs(gap * 10));
            p.record(Duration::from_millis(5), clock.now());
            clock.advance(Duration::from_secs(10));
            let s = p.snapshot(clock.now());
            assert_eq!(s.count, 1, "gap {gap}");
        }
    }

    #[test]
    fn a_stale_slot_hint_is_not_followed() {
        let clock = ManualClock::new();
        let p = RollingPercentile::new(RollingWindow::PERCENTILES, clock.now());
        let slots = RollingWindow::PERCENTILES.buckets() as usize + 2;
        p.record(Duration::from_millis(4), clock.now());
        let right = p.current_slot.load(Ordering::Relaxed);
        for wrong in (0..slots).filter(|s| *s != right) {
            // As a race between two rolls can leave it.
            p.current_slot.store(wrong, Ordering::Relaxed);
            p.record(Duration::from_millis(4), clock.now());
        }
        clock.advance(Duration::from_secs(10));
        let s = p.snapshot(clock.now());
        assert_eq!((s.count, s.at(100.0)), (slots as u64, Some(4)));
    }

    #[test]
    fn drain_visits_each_completed_bucket_once() {
        let clock = ManualClock::new();
        let p = RollingPercentile::new(RollingWindow::PERCENTILES, clock.now());
        let mut cursor = LatencyCursor::default();
        let drain = |cursor: &mut LatencyCursor| {
            let mut seen = Vec::new();
            p.drain_completed(cursor, clock.now(), |ms, n| seen.push((ms, n)));
            seen
        };
        p.record(Duration::from_millis(3), clock.now());
        p.record(Duration::from_millis(3), clock.now());
        p.record(Duration::from_millis(200), clock.now());
        assert_eq!(drain(&mut cursor), vec![], "bucket still filling");
        clock.advance(Duration::from_secs(10));
        p.record(Duration::from_millis(7), clock.now());
        let first = drain(&mut cursor);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0], (3, 2));
        assert!(first[1].0.abs_diff(200) <= 200 / HALF && first[1].1 == 1);
        assert_eq!(drain(&mut cursor), vec![], "read once");
        clock.advance(Duration::from_secs(10));
        assert_eq!(drain(&mut cursor), vec![(7, 1)]);
        // A reader away longer than the window reads what the window still holds.
        p.record(Duration::from_millis(9), clock.now());
        clock.advance(Duration::from_secs(600));
        assert_eq!(drain(&mut cursor), vec![]);
        // A new reader starts with the window.
        p.record(Duration::from_millis(11), clock.now());
        clock.advance(Duration::from_secs(10));
        assert_eq!(drain(&mut LatencyCursor::default()), vec![(11, 1)]);
    }
}
