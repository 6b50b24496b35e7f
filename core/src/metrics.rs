//! Per-command and per-pool metrics, and the snapshots the metrics stream reads.
//!
//! A [`CommandMetrics`] is where a command records what happens to it: every event (spec §3.5),
//! the execution and total latency of each request, and how many run at once. A
//! [`CommandSnapshot`] is everything `/hystrix.stream` and Prometheus need of one command at one
//! moment (spec §2.1); a [`ThreadPoolMetrics`] is the same for a pool (spec §2.2). The
//! snapshot types live here so that the stream depends on this crate only, never on the crates
//! that produce them.

use std::{
    fmt,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{
    Clock, CommandKey, EventCounts, GroupKey, HealthCounts, HystrixEventType, LatencyCursor,
    LatencySnapshot, RollingCounter, RollingPercentile, RollingWindow, Stamp, ThreadPoolKey,
    rolling::{Lane, micros},
};

/// The windows a command's metrics keep (Hystrix's `metrics.rollingStats.*` and
/// `metrics.rollingPercentile.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The window of event counts and concurrency (default 10 s in 10 buckets).
    pub rolling_stats: RollingWindow,
    /// The window of latency percentiles (default 60 s in 6 buckets).
    pub rolling_percentile: RollingWindow,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            rolling_stats: RollingWindow::COUNTS,
            rolling_percentile: RollingWindow::PERCENTILES,
        }
    }
}

/// One command's metrics: recorded from any number of threads without a lock. Cloning shares
/// them.
///
/// ```
/// use hystrix_core::{CommandMetrics, HystrixEventType as Ev, ManualClock, MetricsConfig};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let metrics = CommandMetrics::with_clock("GetUser", "Users", "Users", MetricsConfig::default(), clock.clock());
/// {
///     let _running = metrics.executing(); // counted as concurrent until dropped
///     metrics.mark(Ev::Success);
///     metrics.record_latencies(Duration::from_millis(12), Duration::from_millis(13));
/// }
/// let s = metrics.snapshot();
/// assert_eq!(s.counts.get(Ev::Success), 1);
/// assert_eq!((s.current_concurrent, s.rolling_max_concurrent), (0, 1));
/// assert_eq!(s.health.total, 1);
/// ```
#[derive(Clone)]
pub struct CommandMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    key: CommandKey,
    group: GroupKey,
    pool: ThreadPoolKey,
    clock: Clock,
    /// The origin of every window below, so that one subtraction places a stamp in all.
    origin: Stamp,
    config: MetricsConfig,
    counts: RollingCounter<HystrixEventType>,
    /// Execution latency in the first series, total latency in the second: a call's two
    /// latencies usually fall in the same bin, and then cost one write.
    latency: RollingPercentile,
    concurrent: AtomicU64,
    /// Reads the count of running executions when another part counts them (see
    /// [`CommandMetrics::count_running_with`]); `concurrent` is not used then.
    running: OnceLock<Box<dyn Fn() -> u64 + Send + Sync>>,
}

impl CommandMetrics {
    /// Metrics of the command `key`, in `group`, running on (or reporting) `pool`, reading the
    /// [default clock](Clock::default).
    pub fn new(
        key: impl Into<CommandKey>,
        group: impl Into<GroupKey>,
        pool: impl Into<ThreadPoolKey>,
        config: MetricsConfig,
    ) -> Self {
        Self::with_clock(key, group, pool, config, Clock::default())
    }

    /// Metrics reading `clock`.
    pub fn with_clock(
        key: impl Into<CommandKey>,
        group: impl Into<GroupKey>,
        pool: impl Into<ThreadPoolKey>,
        config: MetricsConfig,
        clock: Clock,
    ) -> Self {
        // A precise read: the first one of the system clock calibrates it, here rather than
        // on a request.
        let origin = clock.stamp();
        Self {
            inner: Arc::new(Inner {
                key: key.into(),
                group: group.into(),
                pool: pool.into(),
                counts: RollingCounter::new(config.rolling_stats, origin),
                latency: RollingPercentile::new(config.rolling_percentile, origin),
                concurrent: AtomicU64::new(0),
                running: OnceLock::new(),
                origin,
                clock,
                config,
            }),
        }
    }

    /// The command's key.
    pub fn key(&self) -> &CommandKey {
        &self.inner.key
    }

    /// The command's group.
    pub fn group(&self) -> &GroupKey {
        &self.inner.group
    }

    /// The command's thread pool key (Hystrix streams it even for semaphore commands).
    pub fn pool(&self) -> &ThreadPoolKey {
        &self.inner.pool
    }

    /// The windows kept.
    pub fn config(&self) -> MetricsConfig {
        self.inner.config
    }

    /// The clock the metrics read.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The rolling counter of the command's events, for a reader that derives something from
    /// them, as a circuit breaker derives its health (Hystrix's breakers read their command's
    /// metrics); the command is the one writer.
    pub fn counts(&self) -> &RollingCounter<HystrixEventType> {
        &self.inner.counts
    }

    /// Records one event.
    #[inline]
    pub fn mark(&self, event: HystrixEventType) {
        self.mark_n(event, 1);
    }

    /// Records `n` events (e.g. COLLAPSED with the batch size).
    #[inline]
    pub fn mark_n(&self, event: HystrixEventType, n: u64) {
        self.inner
            .counts
            .add(event, n, self.inner.clock.coarse_stamp());
    }

    /// [`mark`](Self::mark) at `now`, an instant or a [`Stamp`] just read from these metrics'
    /// clock: a caller that has read the clock anyway spares the metrics a read of their own.
    #[inline]
    pub fn mark_at(&self, event: HystrixEventType, now: impl Into<Stamp>) {
        self.inner.counts.add_at_ms(event, 1, self.ms(now));
    }

    #[inline]
    fn ms(&self, now: impl Into<Stamp>) -> u64 {
        now.into().millis_since(self.inner.origin)
    }

    /// Records a request's execution latency (the inner service alone) and total latency
    /// (from the caller's `call` to its result, queueing and hand-off included).
    #[inline]
    pub fn record_latencies(&self, execute: Duration, total: Duration) {
        self.record_latencies_at(execute, total, self.inner.clock.coarse_stamp());
    }

    /// [`record_latencies`](Self::record_latencies) at `now`, an instant or a stamp just read
    /// from these metrics' clock (when the request ended).
    #[inline]
    pub fn record_latencies_at(&self, execute: Duration, total: Duration, now: impl Into<Stamp>) {
        let ms = self.ms(now);
        self.inner.latency.record_pair_at_ms(execute, total, ms);
    }

    /// [`mark_at`](Self::mark_at) and [`record_latencies_at`](Self::record_latencies_at) in
    /// one, for an execution that ended at `now` with `event`: the stamp is placed in the
    /// windows once.
    ///
    /// ```
    /// use hystrix_core::{CommandMetrics, HystrixEventType as Ev, ManualClock, MetricsConfig};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let metrics = CommandMetrics::with_clock("Get", "Store", "Store", MetricsConfig::default(), clock.clock());
    /// let ms = Duration::from_millis;
    /// metrics.record_execution_at(Ev::Success, ms(3), ms(4), clock.clock().stamp());
    /// clock.advance(Duration::from_secs(60)); // latencies are read from completed buckets
    /// let s = metrics.snapshot();
    /// assert_eq!(s.cumulative.get(Ev::Success), 1);
    /// assert_eq!((s.latency_execute.mean, s.latency_total.mean), (3, 4));
    /// ```
    #[inline]
    pub fn record_execution_at(
        &self,
        event: HystrixEventType,
        execute: Duration,
        total: Duration,
        now: impl Into<Stamp>,
    ) {
        self.record_execution_us_at(event, micros(execute), micros(total), now);
    }

    /// [`record_execution_at`](Self::record_execution_at) with the latencies in whole
    /// microseconds, as [`Stamp::micros_since`] measures them: what a caller that times with
    /// stamps records without building [`Duration`]s.
    ///
    /// ```
    /// use hystrix_core::{CommandMetrics, HystrixEventType as Ev, ManualClock, MetricsConfig};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let metrics = CommandMetrics::with_clock("Get", "Store", "Store", MetricsConfig::default(), clock.clock());
    /// let start = clock.clock().stamp();
    /// clock.advance(Duration::from_micros(2_500));
    /// let end = clock.clock().stamp();
    /// metrics.record_execution_us_at(Ev::Success, end.micros_since(start), 4_000, end);
    /// clock.advance(Duration::from_secs(60)); // latencies are read from completed buckets
    /// let s = metrics.snapshot();
    /// assert_eq!((s.latency_execute.mean, s.latency_total.mean), (2, 4));
    /// ```
    #[inline]
    pub fn record_execution_us_at(
        &self,
        event: HystrixEventType,
        execute_us: u64,
        total_us: u64,
        now: impl Into<Stamp>,
    ) {
        let ms = self.ms(now);
        self.inner.counts.add_at_ms(event, 1, ms);
        self.inner
            .latency
            .record_pair_us_at_ms(execute_us, total_us, ms);
    }

    /// Records a total latency for a request that never executed (rejected, short-circuited,
    /// served from a fallback or the cache).
    #[inline]
    pub fn record_total_latency(&self, total: Duration) {
        let ms = self.ms(self.inner.clock.coarse_stamp());
        self.inner.latency.record_at_ms(Lane::Second, total, ms);
    }

    /// Visits the execution and total latencies of the buckets completed since `cursors`, as
    /// `(latency, milliseconds, count)`; see [`RollingPercentile::drain_completed`].
    pub fn drain_latencies(
        &self,
        cursors: &mut LatencyCursors,
        mut visit: impl FnMut(LatencyKind, u64, u64),
    ) {
        let now = self.inner.clock.coarse_stamp();
        let latency = &self.inner.latency;
        latency.drain_completed_of(Lane::First, &mut cursors.execute, now, |ms, n| {
            visit(LatencyKind::Execute, ms, n)
        });
        latency.drain_completed_of(Lane::Second, &mut cursors.total, now, |ms, n| {
            visit(LatencyKind::Total, ms, n)
        });
    }

    /// Counts one execution as running until the guard is dropped, and raises the rolling
    /// maximum of concurrent executions.
    #[inline]
    pub fn executing(&self) -> Executing {
        self.begin_execution();
        Executing {
            inner: self.inner.clone(),
        }
    }

    /// Counts one execution as running without a guard, for an owner that keeps the metrics
    /// itself; each call must be matched by one [`end_execution`](Self::end_execution).
    /// Prefer [`executing`](Self::executing).
    #[inline]
    pub fn begin_execution(&self) {
        self.begin_execution_at(self.inner.clock.coarse_stamp());
    }

    /// [`begin_execution`](Self::begin_execution) at `now`, an instant or a stamp just read
    /// from these metrics' clock.
    #[inline]
    pub fn begin_execution_at(&self, now: impl Into<Stamp>) {
        let running = self.inner.concurrent.fetch_add(1, Ordering::AcqRel) + 1;
        self.observe_concurrency_at(running, now);
    }

    /// Ends an execution counted with [`begin_execution`](Self::begin_execution).
    #[inline]
    pub fn end_execution(&self) {
        self.inner.concurrent.fetch_sub(1, Ordering::AcqRel);
    }

    /// Executions running now.
    pub fn current_concurrent(&self) -> u64 {
        match self.inner.running.get() {
            Some(read) => read(),
            None => self.inner.concurrent.load(Ordering::Acquire),
        }
    }

    /// Leaves the count of running executions to a part that keeps it anyway, such as a
    /// semaphore that admits exactly the command's executions: `read` returns it, and the
    /// owner reports each admission's count with
    /// [`observe_concurrency_at`](Self::observe_concurrency_at) instead of calling
    /// [`begin_execution`](Self::begin_execution). This spares every call two writes to a
    /// count all callers share. False, with nothing changed, when a reader was already set.
    ///
    /// ```
    /// use hystrix_core::{CommandMetrics, MetricsConfig};
    /// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
    ///
    /// let in_flight = Arc::new(AtomicU64::new(0));
    /// let metrics = CommandMetrics::new("Get", "Store", "Store", MetricsConfig::default());
    /// let read = in_flight.clone();
    /// assert!(metrics.count_running_with(move || read.load(Ordering::Relaxed)));
    ///
    /// let running = in_flight.fetch_add(1, Ordering::Relaxed) + 1; // an admission
    /// metrics.observe_concurrency_at(running, metrics.clock().now());
    /// assert_eq!(metrics.current_concurrent(), 1);
    /// assert_eq!(metrics.snapshot().rolling_max_concurrent, 1);
    /// ```
    pub fn count_running_with(&self, read: impl Fn() -> u64 + Send + Sync + 'static) -> bool {
        self.inner.running.set(Box::new(read)).is_ok()
    }

    /// Raises the rolling maximum of concurrent executions to `running`, the count an
    /// admission left running at `now` (see [`count_running_with`](Self::count_running_with)).
    #[inline]
    pub fn observe_concurrency_at(&self, running: u64, now: impl Into<Stamp>) {
        self.inner.counts.update_max_at_ms(running, self.ms(now));
    }

    /// Everything the stream needs of this command now.
    pub fn snapshot(&self) -> CommandSnapshot {
        let inner = &*self.inner;
        let now = inner.clock.coarse_stamp();
        let counts = inner.counts.sums(now);
        let mut cumulative = EventCounts::zero();
        for e in <HystrixEventType as crate::Event>::ALL {
            cumulative.set(*e, inner.counts.cumulative(*e));
        }
        CommandSnapshot {
            key: inner.key.clone(),
            group: inner.group.clone(),
            pool: inner.pool.clone(),
            counts,
            cumulative,
            health: HealthCounts::from_events(&counts),
            current_concurrent: self.current_concurrent(),
            rolling_max_concurrent: inner.counts.max(now),
            latency_execute: inner.latency.snapshot_of(Lane::First, now),
            latency_total: inner.latency.snapshot_of(Lane::Second, now),
            rolling_stats_window: inner.config.rolling_stats,
        }
    }
}

impl fmt::Debug for CommandMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandMetrics")
            .field("key", &self.inner.key)
            .field("group", &self.inner.group)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

/// Which latency of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LatencyKind {
    /// The inner service alone (`latencyExecute`).
    Execute,
    /// From the caller's `call` to its result (`latencyTotal`).
    Total,
}

/// Where a reader of [`CommandMetrics::drain_latencies`] stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyCursors {
    execute: LatencyCursor,
    total: LatencyCursor,
}

/// A running execution, counted as concurrent until dropped (completion, cancellation or
/// panic alike).
#[must_use = "the execution counts as running only while this guard lives"]
pub struct Executing {
    inner: Arc<Inner>,
}

impl Drop for Executing {
    #[inline]
    fn drop(&mut self) {
        self.inner.concurrent.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for Executing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executing")
            .field("command", &self.inner.key)
            .finish()
    }
}

/// One command's metrics at one moment: what a `HystrixCommand` line of the stream carries
/// (spec §2.1), less the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSnapshot {
    /// The command's key (`name`).
    pub key: CommandKey,
    /// Its group (`group`).
    pub group: GroupKey,
    /// Its thread pool key (`threadPool`).
    pub pool: ThreadPoolKey,
    /// Every event's count in the rolling window (`rollingCount*`).
    pub counts: EventCounts<HystrixEventType>,
    /// Every event's count since the metrics were created (for Prometheus counters).
    pub cumulative: EventCounts<HystrixEventType>,
    /// Health of the rolling window (`errorPercentage`, `errorCount`, `requestCount`), from
    /// the event counts; a command with a circuit breaker reports the breaker's instead.
    pub health: HealthCounts,
    /// Executions running now (`currentConcurrentExecutionCount`).
    pub current_concurrent: u64,
    /// The most at once in the rolling window (`rollingMaxConcurrentExecutionCount`).
    pub rolling_max_concurrent: u64,
    /// Execution latency (`latencyExecute_mean`, `latencyExecute`).
    pub latency_execute: LatencySnapshot,
    /// Total latency (`latencyTotal_mean`, `latencyTotal`).
    pub latency_total: LatencySnapshot,
    /// The rolling window, whose length the dashboard needs to turn counts into rates
    /// (`propertyValue_metricsRollingStatisticalWindowInMilliseconds`).
    pub rolling_stats_window: RollingWindow,
}

/// A thread pool's numbers, with the meaning of Hystrix's `HystrixThreadPool` stream line
/// (spec §2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadPoolMetrics {
    /// Threads running a request now (`currentActiveCount`).
    pub active_count: u32,
    /// Requests waiting in the queue (`currentQueueSize`).
    pub queue_size: u32,
    /// Threads alive (`currentPoolSize`).
    pub pool_size: u32,
    /// The most threads ever alive at once (`currentLargestPoolSize`).
    pub largest_pool_size: u32,
    /// The core size (`currentCorePoolSize`).
    pub core_pool_size: u32,
    /// The maximum in force (`currentMaximumPoolSize`).
    pub maximum_pool_size: u32,
    /// Requests completed since the pool started (`currentCompletedTaskCount`).
    pub completed_task_count: u64,
    /// Requests ever accepted: completed, running and queued (`currentTaskCount`).
    pub task_count: u64,
    /// Requests run in the rolling window (`rollingCountThreadsExecuted`).
    pub rolling_executed: u64,
    /// Requests rejected in the rolling window (`rollingCountCommandRejections`).
    pub rolling_rejected: u64,
    /// The most threads active at once in the rolling window (`rollingMaxActiveThreads`).
    pub rolling_max_active: u64,
    /// The rejection threshold in force (`propertyValue_queueSizeRejectionThreshold`).
    pub queue_size_rejection_threshold: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HystrixEventType as Ev, ManualClock};

    fn metrics(clock: &ManualClock) -> CommandMetrics {
        CommandMetrics::with_clock("c", "g", "p", MetricsConfig::default(), clock.clock())
    }

    #[test]
    fn events_health_and_cumulative() {
        let clock = ManualClock::new();
        let m = metrics(&clock);
        for e in [Ev::Success, Ev::Success, Ev::Timeout, Ev::BadRequest] {
            m.mark(e);
        }
        m.mark_n(Ev::Collapsed, 7);
        let s = m.snapshot();
        assert_eq!(s.counts.get(Ev::Success), 2);
        assert_eq!(s.counts.get(Ev::Collapsed), 7);
        assert_eq!((s.health.total, s.health.errors), (3, 1));
        clock.advance(Duration::from_secs(10));
        let s = m.snapshot();
        assert_eq!(s.counts.get(Ev::Success), 0, "out of the 10 s window");
        assert_eq!(s.cumulative.get(Ev::Success), 2, "but counted for ever");
        assert_eq!(
            (s.key.as_str(), s.group.as_str(), s.pool.as_str()),
            ("c", "g", "p")
        );
    }

    #[test]
    fn concurrency_is_counted_while_guards_live() {
        let clock = ManualClock::new();
        let m = metrics(&clock);
        let guards: Vec<_> = (0..3).map(|_| m.executing()).collect();
        assert_eq!(m.current_concurrent(), 3);
        drop(guards);
        let _one = m.executing();
        let s = m.snapshot();
        assert_eq!((s.current_concurrent, s.rolling_max_concurrent), (1, 3));
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            m.snapshot().rolling_max_concurrent,
            0,
            "the peak left the window"
        );
    }

    #[test]
    fn latencies_reach_the_snapshot_after_their_bucket_completes() {
        let clock = ManualClock::new();
        let m = metrics(&clock);
        m.record_latencies(Duration::from_millis(10), Duration::from_millis(15));
        m.record_total_latency(Duration::from_millis(1));
        assert_eq!(m.snapshot().latency_total.count, 0, "bucket still filling");
        clock.advance(Duration::from_secs(10));
        let s = m.snapshot();
        assert_eq!((s.latency_execute.count, s.latency_execute.mean), (1, 10));
        assert_eq!((s.latency_total.count, s.latency_total.mean), (2, 8));
        assert_eq!(s.latency_total.at(100.0), Some(15));
    }
}
