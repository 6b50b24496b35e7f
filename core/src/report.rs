//! What a command and a thread pool report to the metrics stream and to Prometheus.
//!
//! The stream crate reads every command and pool through [`CommandSource`] and
//! [`ThreadPoolSource`], so it never depends on the crates that run them (the facade, the
//! breaker, the bulkheads). A [`CommandReport`] carries everything of a `HystrixCommand` line
//! (spec §2.1) and of the configuration stream (spec §1.6); a [`ThreadPoolReport`] the same for
//! a `HystrixThreadPool` line (spec §2.2).

use std::{fmt, time::Duration};

use crate::{
    CommandKey, CommandSnapshot, LatencyCursors, LatencyKind, MetricsConfig, RollingWindow,
    ThreadPoolKey, ThreadPoolMetrics,
};

/// How a command isolates its dependency (`execution.isolation.strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum IsolationStrategy {
    /// The dependency's future runs on the command's thread pool: a blocking or hanging client
    /// can only exhaust the pool's own threads.
    Thread,
    /// The dependency's future runs on the caller's task, at most
    /// `execution_isolation_semaphore_max_concurrent_requests` at once. The default here (Hystrix
    /// defaults to `THREAD`): an async client that never blocks is bounded as well by a
    /// semaphore, without a hand-off between threads.
    Semaphore,
}

impl IsolationStrategy {
    /// Hystrix's name: `THREAD` or `SEMAPHORE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thread => "THREAD",
            Self::Semaphore => "SEMAPHORE",
        }
    }
}

impl fmt::Display for IsolationStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a command's circuit stands, as the stream shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CircuitStatus {
    /// Calls go through.
    Closed,
    /// Calls are short-circuited.
    Open,
    /// One trial call is let through to see whether the dependency recovered.
    HalfOpen,
}

impl CircuitStatus {
    /// The stream's `isCircuitBreakerOpen`: `true` while open or half-open, as Hystrix 1.5.
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Closed)
    }
}

/// A command's settings in force, as the stream (spec §2.1, fields 31–46) and the
/// configuration stream (spec §1.6) show them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSettingsReport {
    /// `circuitBreaker.enabled`.
    pub circuit_breaker_enabled: bool,
    /// `circuitBreaker.requestVolumeThreshold`.
    pub circuit_breaker_request_volume_threshold: u32,
    /// `circuitBreaker.sleepWindowInMilliseconds`.
    pub circuit_breaker_sleep_window: Duration,
    /// `circuitBreaker.errorThresholdPercentage`.
    pub circuit_breaker_error_threshold_percentage: u32,
    /// `circuitBreaker.forceOpen` (set in configuration or by an operator).
    pub circuit_breaker_force_open: bool,
    /// `circuitBreaker.forceClosed` (set in configuration or by an operator).
    pub circuit_breaker_force_closed: bool,
    /// `circuitBreaker.metrics.healthSnapshot.intervalInMilliseconds`.
    pub health_snapshot_interval: Duration,
    /// `execution.isolation.strategy`.
    pub isolation: IsolationStrategy,
    /// `execution.timeout.enabled` and `execution.isolation.thread.timeoutInMilliseconds`:
    /// `None` when disabled.
    pub timeout: Option<Duration>,
    /// `execution.isolation.thread.interruptOnTimeout`.
    pub interrupt_on_timeout: bool,
    /// `threadPoolKeyOverride`.
    pub thread_pool_key_override: Option<String>,
    /// `execution.isolation.semaphore.maxConcurrentRequests`.
    pub max_concurrent_requests: u32,
    /// `fallback.enabled`.
    pub fallback_enabled: bool,
    /// `fallback.isolation.semaphore.maxConcurrentRequests`.
    pub fallback_max_concurrent_requests: u32,
    /// `requestCache.enabled`.
    pub request_cache_enabled: bool,
    /// `requestLog.enabled`.
    pub request_log_enabled: bool,
    /// `metrics.rollingStats.*` and `metrics.rollingPercentile.*`.
    pub metrics: MetricsConfig,
}

impl Default for CommandSettingsReport {
    /// The settings of a command built with no settings: Hystrix's defaults, but semaphore
    /// isolation.
    fn default() -> Self {
        Self {
            circuit_breaker_enabled: true,
            circuit_breaker_request_volume_threshold: 20,
            circuit_breaker_sleep_window: Duration::from_millis(5000),
            circuit_breaker_error_threshold_percentage: 50,
            circuit_breaker_force_open: false,
            circuit_breaker_force_closed: false,
            health_snapshot_interval: Duration::from_millis(500),
            isolation: IsolationStrategy::Semaphore,
            timeout: Some(Duration::from_millis(1000)),
            interrupt_on_timeout: true,
            thread_pool_key_override: None,
            max_concurrent_requests: 10,
            fallback_enabled: true,
            fallback_max_concurrent_requests: 10,
            request_cache_enabled: true,
            request_log_enabled: true,
            metrics: MetricsConfig::default(),
        }
    }
}

/// One command at one moment: its metrics, its circuit and its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandReport {
    /// Events, health, concurrency and latencies. With a circuit breaker, `health` is the
    /// breaker's.
    pub metrics: CommandSnapshot,
    /// The circuit's state.
    pub circuit: CircuitStatus,
    /// The settings in force.
    pub settings: CommandSettingsReport,
}

#[cfg(feature = "test-util")]
impl CommandReport {
    /// A report in which every field has a known value of its own, for tests of what is
    /// written from it: the events in the order of their names on the wire (bad requests,
    /// collapsed, emit, exceptions thrown, failure, fallback emit / failure / missing /
    /// rejection / success, responses from cache, semaphore rejected, short-circuited,
    /// success, thread-pool rejected, timeout, then fallback disabled, cancelled and command
    /// max active, which are not on the wire) count 1, 2, ... 19; health 30 errors of 120; concurrency 3, rolling maximum 7; execution
    /// latency mean 12, percentiles 1, 5, 10, 15, 20, 25, 40, 45, 90; total latency mean 14,
    /// percentiles 2, 6, 11, 16, 22, 27, 43, 48, 95 (100 samples each); a half-open circuit;
    /// settings at their defaults but forced closed, thread isolation with the pool override
    /// `Override`, semaphores of 11 and 12, and no request cache.
    pub fn sample(name: &str, group: &str, pool: &str) -> Self {
        use crate::{EventCounts, HealthCounts, HystrixEventType as Ev, LatencySnapshot};
        let mut counts = EventCounts::zero();
        let events = [
            Ev::BadRequest,
            Ev::Collapsed,
            Ev::Emit,
            Ev::ExceptionThrown,
            Ev::Failure,
            Ev::FallbackEmit,
            Ev::FallbackFailure,
            Ev::FallbackMissing,
            Ev::FallbackRejection,
            Ev::FallbackSuccess,
            Ev::ResponseFromCache,
            Ev::SemaphoreRejected,
            Ev::ShortCircuited,
            Ev::Success,
            Ev::ThreadPoolRejected,
            Ev::Timeout,
            Ev::FallbackDisabled,
            Ev::Cancelled,
            Ev::CommandMaxActive,
        ];
        for (n, event) in (1..).zip(events) {
            counts.set(event, n);
        }
        Self {
            metrics: CommandSnapshot {
                key: CommandKey::from(name),
                group: group.into(),
                pool: pool.into(),
                counts,
                cumulative: EventCounts::zero(),
                health: HealthCounts {
                    total: 120,
                    errors: 30,
                },
                current_concurrent: 3,
                rolling_max_concurrent: 7,
                latency_execute: LatencySnapshot {
                    count: 100,
                    mean: 12,
                    percentiles: [1, 5, 10, 15, 20, 25, 40, 45, 90],
                },
                latency_total: LatencySnapshot {
                    count: 100,
                    mean: 14,
                    percentiles: [2, 6, 11, 16, 22, 27, 43, 48, 95],
                },
                rolling_stats_window: RollingWindow::COUNTS,
            },
            circuit: CircuitStatus::HalfOpen,
            settings: CommandSettingsReport {
                circuit_breaker_force_closed: true,
                isolation: IsolationStrategy::Thread,
                thread_pool_key_override: Some("Override".into()),
                max_concurrent_requests: 11,
                fallback_max_concurrent_requests: 12,
                request_cache_enabled: false,
                ..CommandSettingsReport::default()
            },
        }
    }
}

/// A thread pool's settings in force (`hystrix.threadpool.<key>.*`, spec §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadPoolSettingsReport {
    /// `coreSize`.
    pub core_size: u32,
    /// `maximumSize`.
    pub maximum_size: u32,
    /// The maximum in force: `maximumSize` when allowed to diverge, else `coreSize`.
    pub actual_maximum_size: u32,
    /// `allowMaximumSizeToDivergeFromCoreSize`.
    pub allow_maximum_size_to_diverge_from_core_size: bool,
    /// `maxQueueSize` (-1: no queue, a hand-off).
    pub max_queue_size: i32,
    /// `queueSizeRejectionThreshold`.
    pub queue_size_rejection_threshold: u32,
    /// `keepAliveTimeMinutes`.
    pub keep_alive: Duration,
    /// `metrics.rollingStats.*`.
    pub rolling_stats_window: RollingWindow,
}

impl Default for ThreadPoolSettingsReport {
    /// Hystrix's defaults.
    fn default() -> Self {
        Self {
            core_size: 10,
            maximum_size: 10,
            actual_maximum_size: 10,
            allow_maximum_size_to_diverge_from_core_size: false,
            max_queue_size: -1,
            queue_size_rejection_threshold: 5,
            keep_alive: Duration::from_secs(60),
            rolling_stats_window: RollingWindow::COUNTS,
        }
    }
}

/// One thread pool at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadPoolReport {
    /// The pool's key (`name`).
    pub key: ThreadPoolKey,
    /// Its numbers.
    pub metrics: ThreadPoolMetrics,
    /// Its settings in force.
    pub settings: ThreadPoolSettingsReport,
}

#[cfg(feature = "test-util")]
impl ThreadPoolReport {
    /// A report in which every number has a known value of its own (active 2, queued 1, pool
    /// 8, largest 9, core 10, maximum 12, `completed` tasks of 348, 40 executed and 3 rejected
    /// in the window, rolling maximum 6, queue threshold 5), with the default settings.
    pub fn sample(name: &str, completed: u64) -> Self {
        Self {
            key: ThreadPoolKey::from(name),
            metrics: ThreadPoolMetrics {
                active_count: 2,
                queue_size: 1,
                pool_size: 8,
                largest_pool_size: 9,
                core_pool_size: 10,
                maximum_pool_size: 12,
                completed_task_count: completed,
                task_count: 348,
                rolling_executed: 40,
                rolling_rejected: 3,
                rolling_max_active: 6,
                queue_size_rejection_threshold: 5,
            },
            settings: ThreadPoolSettingsReport::default(),
        }
    }
}

/// Something that reports a command: what the stream's registry holds.
///
/// ```
/// use hystrix_core::{
///     CircuitStatus, CommandKey, CommandMetrics, CommandReport, CommandSettingsReport,
///     CommandSource, MetricsConfig,
/// };
///
/// /// A command without a circuit breaker, recording its own metrics.
/// struct Plain(CommandMetrics);
///
/// impl CommandSource for Plain {
///     fn key(&self) -> &CommandKey {
///         self.0.key()
///     }
///     fn report(&self) -> CommandReport {
///         CommandReport {
///             metrics: self.0.snapshot(),
///             circuit: CircuitStatus::Closed,
///             settings: CommandSettingsReport::default(),
///         }
///     }
/// }
///
/// let source = Plain(CommandMetrics::new("GetUser", "Users", "Users", MetricsConfig::default()));
/// assert_eq!(source.report().metrics.key.as_str(), "GetUser");
/// ```
pub trait CommandSource: Send + Sync + 'static {
    /// The command's key.
    fn key(&self) -> &CommandKey;

    /// The command now.
    fn report(&self) -> CommandReport;

    /// Visits the latencies completed since `cursors`, as
    /// [`CommandMetrics::drain_latencies`](crate::CommandMetrics::drain_latencies) does; what
    /// Prometheus histograms are fed with. The default visits nothing: a source without
    /// latencies.
    fn drain_latencies(
        &self,
        _cursors: &mut LatencyCursors,
        _visit: &mut dyn FnMut(LatencyKind, u64, u64),
    ) {
    }
}

/// Something that reports a thread pool: what the stream's registry holds.
pub trait ThreadPoolSource: Send + Sync + 'static {
    /// The pool's key.
    fn key(&self) -> &ThreadPoolKey;

    /// The pool now.
    fn report(&self) -> ThreadPoolReport;
}
