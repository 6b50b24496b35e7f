//! Hystrix's command and thread-pool properties, in snake_case, and how they resolve.

use std::{collections::BTreeMap, time::Duration};

use hystrix_breaker::{BreakerConfig, HealthWindow};
use hystrix_bulkhead::ThreadPoolConfig;
use hystrix_core::{IsolationStrategy, MetricsConfig, RollingWindow};
use serde::Deserialize;

use super::ConfigError;

macro_rules! properties {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: Option<$ty>, )*
        }

        impl $name {
            /// Each property set in `self`, else the one in `fallback`.
            pub fn or(&self, fallback: &Self) -> Self {
                Self { $( $field: self.$field.clone().or_else(|| fallback.$field.clone()), )* }
            }
        }
    };
}

properties! {
    /// A command's properties, each `None` when not set. The names are Hystrix's
    /// (`hystrix.command.<key>.*`, spec §3.2) in snake_case, plus this crate's extensions; a
    /// `[command.<key>]` table of the configuration file deserializes into one.
    CommandProperties {
        /// `execution.isolation.strategy`: `THREAD` or `SEMAPHORE` (default `SEMAPHORE`, see
        /// [`IsolationStrategy::Semaphore`]). Fixed once the command is built.
        execution_isolation_strategy: IsolationStrategy,
        /// `execution.isolation.thread.timeoutInMilliseconds` (default 1000), for both strategies.
        execution_isolation_thread_timeout_in_milliseconds: u64,
        /// `execution.timeout.enabled` (default `true`).
        execution_timeout_enabled: bool,
        /// `execution.isolation.semaphore.maxConcurrentRequests` (default 10).
        execution_isolation_semaphore_max_concurrent_requests: u32,
        /// `fallback.isolation.semaphore.maxConcurrentRequests` (default 10).
        fallback_isolation_semaphore_max_concurrent_requests: u32,
        /// `fallback.enabled` (default `true`).
        fallback_enabled: bool,
        /// `circuitBreaker.enabled` (default `true`).
        circuit_breaker_enabled: bool,
        /// `circuitBreaker.requestVolumeThreshold` (default 20).
        circuit_breaker_request_volume_threshold: u32,
        /// `circuitBreaker.sleepWindowInMilliseconds` (default 5000).
        circuit_breaker_sleep_window_in_milliseconds: u64,
        /// `circuitBreaker.errorThresholdPercentage` (default 50).
        circuit_breaker_error_threshold_percentage: u8,
        /// `circuitBreaker.forceOpen` (default `false`).
        circuit_breaker_force_open: bool,
        /// `circuitBreaker.forceClosed` (default `false`).
        circuit_breaker_force_closed: bool,
        /// Extension: trials a half-open circuit admits (default 1).
        circuit_breaker_half_open_probes: u32,
        /// Extension: trip after this many failures in a row (default off).
        circuit_breaker_consecutive_failures: u32,
        /// Extension: a success slower than this counts as a failure (default off).
        circuit_breaker_slow_call_threshold_in_milliseconds: u64,
        /// `metrics.rollingStats.timeInMilliseconds` (default 10000). Fixed once built.
        metrics_rolling_stats_time_in_milliseconds: u64,
        /// `metrics.rollingStats.numBuckets` (default 10). Fixed once built.
        metrics_rolling_stats_num_buckets: u32,
        /// `metrics.rollingPercentile.timeInMilliseconds` (default 60000). Fixed once built.
        metrics_rolling_percentile_time_in_milliseconds: u64,
        /// `metrics.rollingPercentile.numBuckets` (default 6). Fixed once built.
        metrics_rolling_percentile_num_buckets: u32,
        /// `metrics.healthSnapshot.intervalInMilliseconds` (default 500).
        metrics_health_snapshot_interval_in_milliseconds: u64,
        /// `requestCache.enabled` (default `true`): the stale-if-error cache and coalescing
        /// apply only when enabled and the command has a cache key.
        request_cache_enabled: bool,
        /// `threadPoolKeyOverride`: the pool a `THREAD` command runs on instead of its group's.
        thread_pool_key_override: String,
    }
}

properties! {
    /// A thread pool's properties, each `None` when not set: Hystrix's
    /// `hystrix.threadpool.<key>.*` (spec §3.3) in snake_case; a `[threadpool.<key>]` table of
    /// the configuration file deserializes into one.
    ThreadPoolProperties {
        /// `coreSize` (default 10).
        core_size: u32,
        /// `maximumSize` (default 10).
        maximum_size: u32,
        /// `allowMaximumSizeToDivergeFromCoreSize` (default `false`).
        allow_maximum_size_to_diverge_from_core_size: bool,
        /// `keepAliveTimeMinutes` (default 1).
        keep_alive_time_minutes: u64,
        /// `maxQueueSize` (default -1: no queue). Fixed once the pool is built.
        max_queue_size: i32,
        /// `queueSizeRejectionThreshold` (default 5).
        queue_size_rejection_threshold: u32,
        /// `metrics.rollingStats.timeInMilliseconds` (default 10000). Fixed once built.
        metrics_rolling_stats_time_in_milliseconds: u64,
        /// `metrics.rollingStats.numBuckets` (default 10). Fixed once built.
        metrics_rolling_stats_num_buckets: u32,
    }
}

/// A command's settings, resolved from its properties: what the command runs with.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CommandSettings {
    /// The isolation strategy.
    pub isolation: IsolationStrategy,
    /// The execution timeout; `None` when disabled.
    pub timeout: Option<Duration>,
    /// The execution semaphore's size (semaphore isolation).
    pub max_concurrent_requests: u32,
    /// Whether fallbacks (and the stale cache) are tried.
    pub fallback_enabled: bool,
    /// The fallback semaphore's size.
    pub fallback_max_concurrent_requests: u32,
    /// The circuit breaker's settings.
    pub breaker: BreakerConfig,
    /// The rolling windows of the command's metrics.
    pub metrics: MetricsConfig,
    /// Whether the cache and coalescing apply.
    pub request_cache_enabled: bool,
    /// The thread pool to use instead of the group's.
    pub thread_pool_key_override: Option<String>,
}

/// Hystrix's default execution timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

impl CommandProperties {
    /// The settings these properties give, unset ones taking the built-in defaults.
    /// `prefix` names where they came from in errors (e.g. `command.GetUser`).
    pub fn resolve(&self, prefix: &str) -> Result<CommandSettings, ConfigError> {
        let bad =
            |key: &str, reason: String| ConfigError::invalid(format!("{prefix}.{key}"), reason);
        let d = BreakerConfig::default();
        let window = |time: Option<u64>, buckets: Option<u32>, default: RollingWindow, key| {
            let time = time.map_or(default.length(), Duration::from_millis);
            let buckets = buckets.unwrap_or(default.buckets());
            RollingWindow::new(time, buckets).map_err(|e| bad(key, e.to_string()))
        };
        let rolling_stats = window(
            self.metrics_rolling_stats_time_in_milliseconds,
            self.metrics_rolling_stats_num_buckets,
            RollingWindow::COUNTS,
            "metrics_rolling_stats_num_buckets",
        )?;
        let rolling_percentile = window(
            self.metrics_rolling_percentile_time_in_milliseconds,
            self.metrics_rolling_percentile_num_buckets,
            RollingWindow::PERCENTILES,
            "metrics_rolling_percentile_num_buckets",
        )?;
        let timeout_ms = self
            .execution_isolation_thread_timeout_in_milliseconds
            .unwrap_or(DEFAULT_TIMEOUT.as_millis() as u64);
        if timeout_ms == 0 {
            return Err(bad(
                "execution_isolation_thread_timeout_in_milliseconds",
                "must be at least 1 (disable timeouts with execution_timeout_enabled = false)"
                    .into(),
            ));
        }
        let breaker = BreakerConfig {
            enabled: self.circuit_breaker_enabled.unwrap_or(d.enabled),
            request_volume_threshold: self
                .circuit_breaker_request_volume_threshold
                .unwrap_or(d.request_volume_threshold),
            error_threshold_percentage: self
                .circuit_breaker_error_threshold_percentage
                .unwrap_or(d.error_threshold_percentage),
            sleep_window: self
                .circuit_breaker_sleep_window_in_milliseconds
                .map_or(d.sleep_window, Duration::from_millis),
            force_open: self.circuit_breaker_force_open.unwrap_or(d.force_open),
            force_closed: self.circuit_breaker_force_closed.unwrap_or(d.force_closed),
            window: HealthWindow::Time(rolling_stats),
            health_snapshot_interval: self
                .metrics_health_snapshot_interval_in_milliseconds
                .map_or(d.health_snapshot_interval, Duration::from_millis),
            half_open_probes: self
                .circuit_breaker_half_open_probes
                .unwrap_or(d.half_open_probes),
            sleep_backoff: d.sleep_backoff,
            consecutive_failures: self.circuit_breaker_consecutive_failures,
            slow_call_threshold: self
                .circuit_breaker_slow_call_threshold_in_milliseconds
                .map(Duration::from_millis),
        };
        breaker
            .validate()
            .map_err(|e| bad(breaker_property(e.key()), e.reason().to_string()))?;
        let semaphore = |value: Option<u32>, key| match value.unwrap_or(10) {
            0 => Err(bad(key, "must be at least 1".into())),
            n => Ok(n),
        };
        Ok(CommandSettings {
            isolation: self
                .execution_isolation_strategy
                .unwrap_or(IsolationStrategy::Semaphore),
            timeout: self
                .execution_timeout_enabled
                .unwrap_or(true)
                .then(|| Duration::from_millis(timeout_ms)),
            max_concurrent_requests: semaphore(
                self.execution_isolation_semaphore_max_concurrent_requests,
                "execution_isolation_semaphore_max_concurrent_requests",
            )?,
            fallback_enabled: self.fallback_enabled.unwrap_or(true),
            fallback_max_concurrent_requests: semaphore(
                self.fallback_isolation_semaphore_max_concurrent_requests,
                "fallback_isolation_semaphore_max_concurrent_requests",
            )?,
            breaker,
            metrics: MetricsConfig {
                rolling_stats,
                rolling_percentile,
            },
            request_cache_enabled: self.request_cache_enabled.unwrap_or(true),
            thread_pool_key_override: self.thread_pool_key_override.clone(),
        })
    }

    /// Records the breaker settings of `config` that differ from the defaults, as set in code
    /// (what [`CommandBuilder::breaker`](crate::CommandBuilder::breaker) does): the fields left
    /// at their defaults stay open to the file's `[command.default]`.
    pub(crate) fn set_breaker(&mut self, config: &BreakerConfig) {
        let d = BreakerConfig::default();
        fn set<T: PartialEq>(slot: &mut Option<T>, value: T, default: T) {
            if value != default {
                *slot = Some(value);
            }
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        set(&mut self.circuit_breaker_enabled, config.enabled, d.enabled);
        set(
            &mut self.circuit_breaker_request_volume_threshold,
            config.request_volume_threshold,
            d.request_volume_threshold,
        );
        set(
            &mut self.circuit_breaker_error_threshold_percentage,
            config.error_threshold_percentage,
            d.error_threshold_percentage,
        );
        set(
            &mut self.circuit_breaker_sleep_window_in_milliseconds,
            ms(config.sleep_window),
            ms(d.sleep_window),
        );
        set(
            &mut self.circuit_breaker_force_open,
            config.force_open,
            d.force_open,
        );
        set(
            &mut self.circuit_breaker_force_closed,
            config.force_closed,
            d.force_closed,
        );
        set(
            &mut self.circuit_breaker_half_open_probes,
            config.half_open_probes,
            d.half_open_probes,
        );
        if config.consecutive_failures.is_some() {
            self.circuit_breaker_consecutive_failures = config.consecutive_failures;
        }
        if let Some(slow) = config.slow_call_threshold {
            self.circuit_breaker_slow_call_threshold_in_milliseconds = Some(ms(slow));
        }
        set(
            &mut self.metrics_health_snapshot_interval_in_milliseconds,
            ms(config.health_snapshot_interval),
            ms(d.health_snapshot_interval),
        );
        if let HealthWindow::Time(w) = config.window {
            if config.window != d.window {
                self.metrics_rolling_stats_time_in_milliseconds = Some(ms(w.length()));
                self.metrics_rolling_stats_num_buckets = Some(w.buckets());
            }
        }
    }
}

/// The property that holds a [`BreakerConfig`] field.
fn breaker_property(field: &str) -> &'static str {
    match field {
        "request_volume_threshold" => "circuit_breaker_request_volume_threshold",
        "error_threshold_percentage" => "circuit_breaker_error_threshold_percentage",
        "sleep_window" => "circuit_breaker_sleep_window_in_milliseconds",
        "half_open_probes" => "circuit_breaker_half_open_probes",
        "consecutive_failures" => "circuit_breaker_consecutive_failures",
        "slow_call_threshold" => "circuit_breaker_slow_call_threshold_in_milliseconds",
        "health_snapshot_interval" => "metrics_health_snapshot_interval_in_milliseconds",
        _ => "metrics_rolling_stats_num_buckets",
    }
}

impl ThreadPoolProperties {
    /// The pool settings these properties give, unset ones taking Hystrix's defaults.
    pub fn resolve(&self, prefix: &str) -> Result<ThreadPoolConfig, ConfigError> {
        let d = ThreadPoolConfig::default();
        let time = self
            .metrics_rolling_stats_time_in_milliseconds
            .map_or(d.window.length(), Duration::from_millis);
        let buckets = self
            .metrics_rolling_stats_num_buckets
            .unwrap_or(d.window.buckets());
        let window = RollingWindow::new(time, buckets).map_err(|e| {
            ConfigError::invalid(
                format!("{prefix}.metrics_rolling_stats_num_buckets"),
                e.to_string(),
            )
        })?;
        let config = ThreadPoolConfig {
            core_size: self.core_size.unwrap_or(d.core_size),
            maximum_size: self.maximum_size.unwrap_or(d.maximum_size),
            allow_maximum_size_to_diverge_from_core_size: self
                .allow_maximum_size_to_diverge_from_core_size
                .unwrap_or(d.allow_maximum_size_to_diverge_from_core_size),
            keep_alive: self
                .keep_alive_time_minutes
                .map_or(d.keep_alive, |m| Duration::from_secs(m.saturating_mul(60))),
            max_queue_size: self.max_queue_size.unwrap_or(d.max_queue_size),
            queue_size_rejection_threshold: self
                .queue_size_rejection_threshold
                .unwrap_or(d.queue_size_rejection_threshold),
            window,
        };
        config.validate().map_err(|e| {
            ConfigError::invalid(format!("{prefix}.{}", e.key()), e.reason().to_string())
        })?;
        Ok(config)
    }

    /// Properties recording the settings of `config` that differ from Hystrix's defaults,
    /// as set in code: the fields left at their defaults stay open to `[threadpool.default]`.
    pub(crate) fn from_config(config: &ThreadPoolConfig) -> Self {
        let d = ThreadPoolConfig::default();
        fn changed<T: PartialEq>(value: T, default: T) -> Option<T> {
            (value != default).then_some(value)
        }
        let window = config.window != d.window;
        Self {
            core_size: changed(config.core_size, d.core_size),
            maximum_size: changed(config.maximum_size, d.maximum_size),
            allow_maximum_size_to_diverge_from_core_size: changed(
                config.allow_maximum_size_to_diverge_from_core_size,
                d.allow_maximum_size_to_diverge_from_core_size,
            ),
            keep_alive_time_minutes: changed(
                config.keep_alive.as_secs().div_ceil(60),
                d.keep_alive.as_secs().div_ceil(60),
            ),
            max_queue_size: changed(config.max_queue_size, d.max_queue_size),
            queue_size_rejection_threshold: changed(
                config.queue_size_rejection_threshold,
                d.queue_size_rejection_threshold,
            ),
            metrics_rolling_stats_time_in_milliseconds: window
                .then(|| u64::try_from(config.window.length().as_millis()).unwrap_or(u64::MAX)),
            metrics_rolling_stats_num_buckets: window.then(|| config.window.buckets()),
        }
    }
}

/// The configuration file: `[command.<key>]` and `[threadpool.<key>]` tables, `default` being
/// the global defaults.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) command: BTreeMap<String, CommandProperties>,
    #[serde(default)]
    pub(crate) threadpool: BTreeMap<String, ThreadPoolProperties>,
}

impl ConfigFile {
    pub(crate) fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(ConfigError::parse)
    }

    /// A command's properties by Hystrix's precedence: the file's per-command value, then the
    /// value set in code, then the file's default.
    pub(crate) fn command(&self, key: &str, code: &CommandProperties) -> CommandProperties {
        let empty = CommandProperties::default();
        let own = self.command.get(key).unwrap_or(&empty);
        let default = self.command.get("default").unwrap_or(&empty);
        own.or(code).or(default)
    }

    /// A pool's properties by the same precedence.
    pub(crate) fn pool(&self, key: &str, code: &ThreadPoolProperties) -> ThreadPoolProperties {
        let empty = ThreadPoolProperties::default();
        let own = self.threadpool.get(key).unwrap_or(&empty);
        let default = self.threadpool.get("default").unwrap_or(&empty);
        own.or(code).or(default)
    }
}
