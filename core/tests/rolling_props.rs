//! Property tests of the rolling structures against naive models.
//!
//! Every model keeps a plain list of timestamped records and recomputes its answer from scratch,
//! so it shares no code and no cleverness with the lock-free implementations it checks. Time is
//! driven by a [`ManualClock`]; nothing sleeps.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use hystrix_core::{
    CountWindow, EventCounts, HealthCache, HealthCounts, HystrixEventType as Ev, Instant,
    LatencySnapshot, ManualClock, PERCENTILES, RollingCounter, RollingPercentile, RollingWindow,
    event::Event,
};
use proptest::prelude::*;

const CASES: u32 = 256;

/// The largest latency the percentile histogram keeps distinct, in ms (documented clamp).
const MAX_HIST_MS: u64 = (1 << 22) - 1;
/// The largest gauge value a rolling maximum keeps (documented clamp).
const MAX_GAUGE: u64 = (1 << 24) - 1;

/// The health events of the spec (§3.6), the ones worth generating most often.
const HEALTH_EVENTS: [Ev; 5] = [
    Ev::Success,
    Ev::Failure,
    Ev::Timeout,
    Ev::ThreadPoolRejected,
    Ev::SemaphoreRejected,
];

/// Whole milliseconds since the origin, as every structure measures time.
fn ms(elapsed: Duration) -> u64 {
    elapsed.as_millis() as u64
}

/// A random window shape: `n` buckets of `bucket_ms`.
fn window_shape() -> impl Strategy<Value = (u64, u32)> {
    prop_oneof![
        3 => (1u64..2000, 1u32..20),
        1 => (1u64..50, 1u32..20),
    ]
}

fn window(bucket_ms: u64, buckets: u32) -> RollingWindow {
    RollingWindow::new(
        Duration::from_millis(bucket_ms * u64::from(buckets)),
        buckets,
    )
    .expect("a whole number of ms per bucket")
}

/// How far the clock moves in one step.
#[derive(Clone, Copy, Debug)]
enum Advance {
    /// An absolute step.
    By(Duration),
    /// `quarters / 4` buckets of the window under test, give or take a millisecond, to land on
    /// and around bucket boundaries whatever the bucket length.
    Buckets { quarters: u64, jitter_ms: i64 },
}

impl Advance {
    fn duration(self, bucket_ms: u64) -> Duration {
        match self {
            Self::By(d) => d,
            Self::Buckets {
                quarters,
                jitter_ms,
            } => Duration::from_millis((bucket_ms * quarters / 4).saturating_add_signed(jitter_ms)),
        }
    }
}

/// Steps of 0..3 s, sub-millisecond steps, jumps of 10-100 s, and bucket-relative steps.
fn advance() -> impl Strategy<Value = Advance> {
    prop_oneof![
        4 => (0u64..3_000).prop_map(|v| Advance::By(Duration::from_millis(v))),
        2 => (0u64..1_000_000).prop_map(|v| Advance::By(Duration::from_nanos(v))),
        1 => (10_000u64..100_000).prop_map(|v| Advance::By(Duration::from_millis(v))),
        3 => (0u64..100, -1i64..=1).prop_map(|(quarters, jitter_ms)| Advance::Buckets {
            quarters,
            jitter_ms
        }),
    ]
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => prop::sample::select(&HEALTH_EVENTS[..]),
        1 => prop::sample::select(Ev::ALL),
    ]
}

/// The spec's health formula, computed independently of `HealthCounts::from_events`.
fn model_health(counts: &[u64]) -> (HealthCounts, u32) {
    let get = |e: Ev| u128::from(counts[e.index()]);
    let total: u128 = HEALTH_EVENTS.iter().map(|e| get(*e)).sum();
    let errors = total - get(Ev::Success);
    // 0 when there were no requests.
    let percentage = (errors * 100).checked_div(total).unwrap_or(0) as u32;
    let health = HealthCounts {
        total: u64::try_from(total).expect("test counts fit in u64"),
        errors: u64::try_from(errors).expect("test counts fit in u64"),
    };
    (health, percentage)
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: RollingCounter (and the health of its sums)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum CounterOp {
    Advance(Advance),
    Add(Ev, u64),
    UpdateMax(u64),
    Reset,
}

fn counter_op() -> impl Strategy<Value = CounterOp> {
    prop_oneof![
        5 => advance().prop_map(CounterOp::Advance),
        6 => (event(), 1u64..5).prop_map(|(e, n)| CounterOp::Add(e, n)),
        2 => (0u64..100).prop_map(CounterOp::UpdateMax),
        1 => (MAX_GAUGE - 2..MAX_GAUGE + 100).prop_map(CounterOp::UpdateMax),
        1 => Just(CounterOp::Reset),
    ]
}

#[derive(Clone, Copy, Debug)]
enum CounterRecord {
    Add(Ev, u64),
    Max(u64),
}

/// A counter as a list of `(bucket, record)`; `reset` only moves the line below which records
/// no longer count for the window.
struct CounterModel {
    bucket_ms: u64,
    buckets: u64,
    elapsed: Duration,
    records: Vec<(u64, CounterRecord)>,
    reset_at: usize,
}

impl CounterModel {
    fn bucket(&self) -> u64 {
        ms(self.elapsed) / self.bucket_ms
    }

    fn apply(&mut self, op: CounterOp) {
        let bucket = self.bucket();
        match op {
            CounterOp::Advance(a) => self.elapsed += a.duration(self.bucket_ms),
            CounterOp::Add(e, n) => self.records.push((bucket, CounterRecord::Add(e, n))),
            CounterOp::UpdateMax(v) => self.records.push((bucket, CounterRecord::Max(v))),
            CounterOp::Reset => self.reset_at = self.records.len(),
        }
    }

    /// Records since the last reset whose bucket is in `(bucket(now) - buckets, bucket(now)]`.
    fn window(&self) -> impl Iterator<Item = CounterRecord> + '_ {
        let now = self.bucket();
        self.records[self.reset_at..]
            .iter()
            .filter(move |(b, _)| *b <= now && b + self.buckets > now)
            .map(|(_, r)| *r)
    }

    fn sums(&self) -> Vec<u64> {
        let mut sums = vec![0; Ev::COUNT];
        for r in self.window() {
            if let CounterRecord::Add(e, n) = r {
                sums[e.index()] += n;
            }
        }
        sums
    }

    fn max(&self) -> u64 {
        self.window()
            .filter_map(|r| match r {
                CounterRecord::Max(v) => Some(v.min(MAX_GAUGE)),
                CounterRecord::Add(..) => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn cumulative(&self, event: Ev) -> u64 {
        self.records
            .iter()
            .filter_map(|(_, r)| match r {
                CounterRecord::Add(e, n) if *e == event => Some(*n),
                _ => None,
            })
            .sum()
    }
}

fn check_counter(
    counter: &RollingCounter<Ev>,
    model: &CounterModel,
    now: Instant,
) -> Result<(), TestCaseError> {
    let want = model.sums();
    let sums = counter.sums(now);
    for e in Ev::ALL {
        let w = want[e.index()];
        prop_assert_eq!(counter.sum(*e, now), w, "sum({:?})", e);
        prop_assert_eq!(sums.get(*e), w, "sums()[{:?}]", e);
        prop_assert_eq!(
            counter.cumulative(*e),
            model.cumulative(*e),
            "cumulative({:?})",
            e
        );
    }
    prop_assert_eq!(counter.max(now), model.max(), "max");
    // Property 2 on live data: the health of the window equals the spec's formula.
    let (health, percentage) = model_health(&want);
    let got = HealthCounts::from_events(&sums);
    prop_assert_eq!(got, health);
    prop_assert_eq!(got.error_percentage(), percentage);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Sums, sums(), max and cumulative equal the model after every operation.
    #[test]
    fn rolling_counter_matches_model(
        (bucket_ms, buckets) in window_shape(),
        ops in prop::collection::vec(counter_op(), 1..200),
    ) {
        let clock = ManualClock::new();
        let counter = RollingCounter::<Ev>::new(window(bucket_ms, buckets), clock.now());
        let mut model = CounterModel {
            bucket_ms,
            buckets: u64::from(buckets),
            elapsed: Duration::ZERO,
            records: Vec::new(),
            reset_at: 0,
        };
        check_counter(&counter, &model, clock.now())?;
        for op in ops {
            match op {
                CounterOp::Advance(a) => clock.advance(a.duration(bucket_ms)),
                CounterOp::Add(e, n) => counter.add(e, n, clock.now()),
                CounterOp::UpdateMax(v) => counter.update_max(v, clock.now()),
                CounterOp::Reset => counter.reset(clock.now()),
            }
            model.apply(op);
            check_counter(&counter, &model, clock.now())?;
        }
    }

    /// `from_events` and `error_percentage` follow the spec's formula for any counts.
    #[test]
    fn health_counts_follow_the_formula(
        counts in prop::collection::vec(
            prop_oneof![3 => 0u64..1_000, 1 => 0u64..(1 << 60)],
            Ev::COUNT,
        ),
    ) {
        let mut events = EventCounts::zero();
        for e in Ev::ALL {
            events.set(*e, counts[e.index()]);
        }
        let (health, percentage) = model_health(&counts);
        let got = HealthCounts::from_events(&events);
        prop_assert_eq!(got, health);
        prop_assert_eq!(got.error_percentage(), percentage);
    }
}

// ---------------------------------------------------------------------------------------------
// 3: HealthCache
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum CacheOp {
    /// Whole milliseconds, so "n ms old" is unambiguous.
    AdvanceMs(u64),
    /// The cache's interval plus -1, 0 or +1 ms.
    AdvanceInterval(i64),
    /// A `get` whose computation, if it runs, returns these counts.
    Get(HealthCounts),
    Invalidate,
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    let counts = prop_oneof![
        4 => (0u64..1_000, 0u64..1_000),
        1 => (0u64..1 << 40, 0u64..1 << 40),
    ]
    .prop_map(|(total, errors)| HealthCounts { total, errors });
    prop_oneof![
        3 => (0u64..1_500).prop_map(CacheOp::AdvanceMs),
        1 => (10_000u64..100_000).prop_map(CacheOp::AdvanceMs),
        2 => (-1i64..=1).prop_map(CacheOp::AdvanceInterval),
        5 => counts.prop_map(CacheOp::Get),
        1 => Just(CacheOp::Invalidate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The computation runs exactly when nothing is cached or the cached value is at least
    /// `interval` old; otherwise the last computed value comes back (counts kept up to 2^32 - 1,
    /// as documented).
    #[test]
    fn health_cache_recomputes_exactly_when_stale(
        interval_ms in prop_oneof![1 => Just(0u64), 6 => 1u64..1_000],
        ops in prop::collection::vec(cache_op(), 1..100),
    ) {
        let clock = ManualClock::new();
        let cache = HealthCache::new(Duration::from_millis(interval_ms), clock.now());
        let sat = |v: u64| v.min(u64::from(u32::MAX));
        let mut now_ms = 0u64;
        // The model: when the last computation ran and what it stored.
        let mut last: Option<(u64, HealthCounts)> = None;
        for op in ops {
            match op {
                CacheOp::AdvanceMs(d) => {
                    clock.advance(Duration::from_millis(d));
                    now_ms += d;
                }
                CacheOp::AdvanceInterval(k) => {
                    let d = interval_ms.saturating_add_signed(k);
                    clock.advance(Duration::from_millis(d));
                    now_ms += d;
                }
                CacheOp::Invalidate => {
                    cache.invalidate();
                    last = None;
                }
                CacheOp::Get(fresh) => {
                    let mut ran = 0;
                    let got = cache.get(clock.now(), || {
                        ran += 1;
                        fresh
                    });
                    match last {
                        Some((at, cached)) if now_ms - at < interval_ms => {
                            prop_assert_eq!(ran, 0, "computed {} ms after the last one", now_ms - at);
                            prop_assert_eq!(got, cached);
                        }
                        _ => {
                            prop_assert_eq!(ran, 1, "stale or empty cache not recomputed");
                            prop_assert_eq!(got, fresh);
                            let stored = HealthCounts {
                                total: sat(fresh.total),
                                errors: sat(fresh.errors),
                            };
                            last = Some((now_ms, stored));
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4: CountWindow
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum CountOp {
    Record(bool),
    Reset,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The health of a count window equals that of the last `size` outcomes since the last
    /// reset.
    #[test]
    fn count_window_matches_last_outcomes(
        size in prop_oneof![1u32..8, 1u32..64],
        ops in prop::collection::vec(
            prop_oneof![20 => any::<bool>().prop_map(CountOp::Record), 1 => Just(CountOp::Reset)],
            1..300,
        ),
    ) {
        let w = CountWindow::new(size).expect("valid size");
        let mut model: VecDeque<bool> = VecDeque::new();
        for op in ops {
            match op {
                CountOp::Record(error) => {
                    w.record(error);
                    model.push_back(error);
                    if model.len() > size as usize {
                        model.pop_front();
                    }
                }
                CountOp::Reset => {
                    w.reset();
                    model.clear();
                }
            }
            let want = HealthCounts {
                total: model.len() as u64,
                errors: model.iter().filter(|e| **e).count() as u64,
            };
            prop_assert_eq!(w.health(), want);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5: RollingPercentile
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum LatencyOp {
    Advance(Advance),
    Record(Duration),
    Snapshot,
}

/// Latencies up to 5 s (whole ms, µs and ns resolutions), below 1 ms, and above the
/// histogram's ~70 minute ceiling.
fn latency() -> impl Strategy<Value = Duration> {
    prop_oneof![
        6 => (0u64..5_000_000).prop_map(Duration::from_micros),
        2 => (0u64..5_000).prop_map(Duration::from_millis),
        1 => (0u64..5_000_000_000).prop_map(Duration::from_nanos),
        2 => (0u64..1_000).prop_map(Duration::from_micros),
        1 => (MAX_HIST_MS - 100..40_000_000).prop_map(Duration::from_millis),
    ]
}

fn latency_op() -> impl Strategy<Value = LatencyOp> {
    prop_oneof![
        2 => advance().prop_map(LatencyOp::Advance),
        5 => latency().prop_map(LatencyOp::Record),
        2 => Just(LatencyOp::Snapshot),
    ]
}

/// Latencies as `(bucket, µs)`.
struct PercentileModel {
    bucket_ms: u64,
    buckets: u64,
    elapsed: Duration,
    records: Vec<(u64, u64)>,
}

impl PercentileModel {
    /// The µs of the records in the completed buckets `[bucket(now) - buckets, bucket(now) - 1]`.
    fn window(&self) -> Vec<u64> {
        let now = ms(self.elapsed) / self.bucket_ms;
        self.records
            .iter()
            .filter(|(b, _)| *b < now && b + self.buckets >= now)
            .map(|(_, us)| *us)
            .collect()
    }
}

fn check_percentile(
    latency: &RollingPercentile,
    model: &PercentileModel,
    now: Instant,
) -> Result<(), TestCaseError> {
    let got = latency.snapshot(now);
    let us = model.window();
    if us.is_empty() {
        prop_assert_eq!(got, LatencySnapshot::default());
        return Ok(());
    }
    let count = us.len() as u64;
    prop_assert_eq!(got.count, count, "count");
    // The mean of the values as recorded: whole milliseconds, within the histogram's
    // precision (the identity below 64 ms).
    let recorded: u128 = us
        .iter()
        .map(|v| u128::from(RollingPercentile::recorded_as(v / 1000)))
        .sum();
    prop_assert_eq!(u128::from(got.mean), recorded / u128::from(count), "mean");
    // Within the histogram's precision of the exact mean (latencies past its range count as
    // its largest value), less what whole milliseconds lose: under 1 ms per sample, and under
    // 1 ms more in the mean's own division.
    let exact_ms = us
        .iter()
        .map(|v| (*v as f64 / 1000.0).min(MAX_HIST_MS as f64))
        .sum::<f64>()
        / count as f64;
    prop_assert!(
        (got.mean as f64 - exact_ms).abs() < 2.0 + exact_ms / 32.0,
        "mean {} against the exact {exact_ms}",
        got.mean
    );
    let max_ms = us.iter().max().copied().unwrap_or(0) / 1000;
    prop_assert_eq!(got.at(100.0), Some(max_ms), "p100");

    let mut sorted: Vec<u64> = us.iter().map(|v| (v / 1000).min(MAX_HIST_MS)).collect();
    sorted.sort_unstable();
    for (p, have) in PERCENTILES.iter().zip(got.percentiles) {
        if *p >= 100.0 {
            continue;
        }
        let rank = ((p / 100.0 * count as f64).ceil() as usize).max(1);
        let want = sorted[rank - 1];
        prop_assert!(
            have.abs_diff(want) <= want / 16 + 1,
            "p{}: got {} ms, nearest rank {} of {} is {} ms",
            p,
            have,
            rank,
            count,
            want
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Count, mean and maximum are exact over the completed buckets of the window; other
    /// percentiles are within the histogram's precision of the nearest-rank value.
    ///
    /// Snapshots are taken at random points only (not after every step) so that a bucket's
    /// first snapshot often comes after recordings in it: a snapshot is cached until the next
    /// bucket boundary and would otherwise hide damage those recordings do to the window.
    #[test]
    fn rolling_percentile_matches_model(
        (bucket_ms, buckets) in window_shape(),
        ops in prop::collection::vec(latency_op(), 1..120),
    ) {
        let clock = ManualClock::new();
        let latency = RollingPercentile::new(window(bucket_ms, buckets), clock.now());
        let mut model = PercentileModel {
            bucket_ms,
            buckets: u64::from(buckets),
            elapsed: Duration::ZERO,
            records: Vec::new(),
        };
        for op in ops {
            match op {
                LatencyOp::Advance(a) => {
                    let d = a.duration(bucket_ms);
                    clock.advance(d);
                    model.elapsed += d;
                }
                LatencyOp::Record(d) => {
                    latency.record(d, clock.now());
                    let bucket = ms(model.elapsed) / bucket_ms;
                    model.records.push((bucket, d.as_micros() as u64));
                }
                LatencyOp::Snapshot => check_percentile(&latency, &model, clock.now())?,
            }
        }
        check_percentile(&latency, &model, clock.now())?;
    }
}

// ---------------------------------------------------------------------------------------------
// 6: RollingCounter under concurrency
// ---------------------------------------------------------------------------------------------

/// Four threads: three increment a counter while the fourth moves the shared clock across
/// bucket boundaries.
///
/// Every increment remembers the bucket of the instant it passed to `increment`. That bucket
/// is not always the one it is counted in: an increment racing with the snapshot that starts a
/// new bucket (or made with an instant read just before another thread rolled the window) can be
/// counted in the neighbouring bucket. So the window sum is only exact when no such race can
/// move an increment across the window's edge. The test arranges that:
///
/// * each concurrent phase spans fewer buckets than the window, so at its end every bucket it
///   touched is inside the window;
/// * the first bucket of a phase is started by the main thread before the workers run, so the
///   oldest snapshot inside the window (the one the sum subtracts) is taken without a race;
/// * phases are separated by a quiet gap, and the final window starts between them: every
///   increment of the first phase is out, every one of the second is in, wherever inside its
///   phase a race put it.
#[test]
fn concurrent_increments_are_exact_inside_the_window() {
    const BUCKET_MS: u64 = 10;
    const BUCKETS: u32 = 10;
    const WORKERS: usize = 3;
    /// Increments per phase.
    const TOTAL: u64 = 60_000;
    /// Clock steps of 1 ms per phase: 7 buckets, fewer than the window's 10.
    const STEPS: u64 = 70;
    /// Tickets per clock step; the last steps' tickets are made in the last bucket.
    const PER_STEP: u64 = TOTAL / (STEPS + 2);

    let clock = ManualClock::new();
    let origin = clock.now();
    let window = window(BUCKET_MS, BUCKETS);
    let counter = Arc::new(RollingCounter::<Ev>::new(window, origin));
    let bucket_of = move |t: Instant| ms(t - origin) / BUCKET_MS;

    // Runs one concurrent phase; returns the increments made per bucket.
    //
    // The workers take numbered tickets; ticket `t` belongs to clock step `t / PER_STEP`. The
    // clock takes step `s` once every ticket of the steps before it is done, and a worker may
    // run one step ahead of the clock, so increments are in flight while the clock crosses
    // a bucket boundary, and every bucket of the phase gets increments. All waits end: tickets
    // are handed out in order, and each one only waits for steps that tickets below it release.
    let phase = || -> BTreeMap<u64, u64> {
        let tickets = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let steps = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (counter, clock) = (counter.clone(), clock.clone());
                let (tickets, done, steps) = (tickets.clone(), done.clone(), steps.clone());
                thread::spawn(move || {
                    let mut per_bucket = BTreeMap::<u64, u64>::new();
                    loop {
                        let t = tickets.fetch_add(1, Ordering::Relaxed);
                        if t >= TOTAL {
                            return per_bucket;
                        }
                        let step = (t / PER_STEP).min(STEPS + 1);
                        while steps.load(Ordering::Acquire) + 1 < step {
                            thread::yield_now();
                        }
                        let now = clock.now();
                        counter.increment(Ev::Success, now);
                        *per_bucket.entry(bucket_of(now)).or_default() += 1;
                        done.fetch_add(1, Ordering::Release);
                    }
                })
            })
            .collect();
        let ticker = {
            let clock = clock.clone();
            thread::spawn(move || {
                for step in 1..=STEPS {
                    while done.load(Ordering::Acquire) < step * PER_STEP {
                        thread::yield_now();
                    }
                    clock.advance(Duration::from_millis(1));
                    steps.store(step, Ordering::Release);
                }
            })
        };
        ticker.join().expect("clock thread");
        let mut all = BTreeMap::new();
        for w in workers {
            for (b, n) in w.join().expect("worker thread") {
                *all.entry(b).or_default() += n;
            }
        }
        all
    };

    // Phase 1 starts in bucket 0, whose zero snapshot the constructor wrote.
    let first = phase();
    let made: u64 = first.values().sum();
    assert_eq!(made, TOTAL);
    let end_of_first = bucket_of(clock.now());
    assert!(end_of_first < u64::from(BUCKETS));
    assert_eq!(
        first.keys().copied().collect::<Vec<_>>(),
        (0..=7).collect::<Vec<_>>()
    );
    assert_eq!(counter.cumulative(Ev::Success), made);
    assert_eq!(counter.sum(Ev::Success, clock.now()), made);

    // A quiet gap, then phase 2 in a bucket the main thread starts.
    clock.advance(Duration::from_millis(5 * BUCKET_MS));
    let primed_at = clock.now();
    counter.increment(Ev::Success, primed_at);
    let mut second = phase();
    assert_eq!(second.len(), 8, "phase 2 spans buckets 12..=19: {second:?}");
    *second.entry(bucket_of(primed_at)).or_default() += 1;

    let now = clock.now();
    let last = bucket_of(now);
    let oldest = last + 1 - u64::from(BUCKETS);
    // The design's preconditions: phase 1 entirely out of the window, phase 2 entirely in.
    assert!(end_of_first < oldest, "phase 1 reaches into the window");
    assert!(
        bucket_of(primed_at) >= oldest,
        "phase 2 starts outside the window"
    );
    assert!(second.keys().all(|b| (oldest..=last).contains(b)));

    let tracked = first.iter().chain(second.iter());
    let in_window: u64 = tracked
        .filter(|(b, _)| (oldest..=last).contains(*b))
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(in_window, TOTAL + 1);
    assert_eq!(counter.cumulative(Ev::Success), 2 * made + 1);
    assert_eq!(counter.sum(Ev::Success, now), in_window);
    assert_eq!(counter.sums(now).get(Ev::Success), in_window);
    assert_eq!(counter.sums(now).get(Ev::Failure), 0);
}
