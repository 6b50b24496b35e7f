//! The command: one dependency's breaker, bulkhead, timeout, metrics and fallback, composed
//! into one Tower layer.

mod builder;
mod coalesce;
mod future;
mod layer;
mod service;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use hystrix_breaker::{BoxError, Circuit, Classify, DefaultClassifier, Mode, Outcome, State};
use hystrix_bulkhead::{Semaphore, ThreadPool};
use hystrix_core::{
    CircuitStatus, Clock, CommandKey, CommandMetrics, CommandReport, CommandSettingsReport,
    CommandSnapshot, CommandSource, GroupKey, LatencyCursors, LatencyKind, ThreadPoolKey,
};

use self::coalesce::Coalesce;
pub use self::{
    builder::CommandBuilder, future::ResponseFuture, layer::CommandLayer, service::CommandService,
};
use crate::{
    CommandProperties, CommandSettings, Fallback,
    cache::{BoxFuture, CacheValue, Stale, StaleCache},
};

/// A Hystrix command: the shared state of one dependency's calls. Cloning shares it.
///
/// Build one with [`Command::builder`]; the [`CommandLayer`] it yields wraps any Tower service,
/// and every service it wraps shares this command's circuit, bulkhead and metrics. Two commands
/// built with the same key in the same [`Registry`](crate::Registry) share them too, as in
/// Hystrix: a command key names one dependency.
///
/// A call goes through the steps of Hystrix (spec §3.8): the stale cache's key is taken, the
/// circuit admits or short-circuits, the bulkhead (semaphore or thread pool) admits or
/// rejects, the timeout is armed, the inner service runs, its result is classified, and on any
/// failure the last good response (if cached) or the fallback is served. Every step records
/// its Hystrix event in the command's [`CommandMetrics`].
#[derive(Clone)]
pub struct Command {
    pub(crate) core: Arc<CommandCore>,
}

pub(crate) struct CommandCore {
    pub(crate) circuit: Circuit,
    /// Also holds the command's key, group and pool key.
    pub(crate) metrics: CommandMetrics,
    pub(crate) semaphore: Semaphore,
    pub(crate) fallback_semaphore: Semaphore,
    pub(crate) pool: Option<ThreadPool>,
    /// The timeout in milliseconds; 0 when disabled.
    pub(crate) timeout_ms: AtomicU64,
    pub(crate) fallback_enabled: AtomicBool,
    pub(crate) cache_enabled: AtomicBool,
    pub(crate) settings: ArcSwap<CommandSettings>,
    /// The properties set in code, re-resolved against every new file.
    pub(crate) code: CommandProperties,
    pub(crate) clock: Clock,
}

impl Command {
    /// Starts building the command `key`. Its group defaults to the key, and its thread pool
    /// (for [`IsolationStrategy::Thread`](crate::IsolationStrategy::Thread)) to the group, as in Hystrix.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    /// use tower_hystrix::{Command, ErrorKind, Registry};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = Command::builder("GetUser")
    ///     .group("Users")
    ///     .timeout(Duration::from_millis(300))
    ///     .semaphore(20)
    ///     .fallback(|_: (), _failure| async { Ok::<_, std::io::Error>("anonymous".to_string()) })
    ///     .registry(&Registry::new())
    ///     .build()?;
    /// let mut users = layer.layer(service_fn(|id: u64| async move {
    ///     if id == 0 { Err(std::io::Error::other("no such user")) } else { Ok(format!("user {id}")) }
    /// }));
    ///
    /// assert_eq!(users.ready().await?.call(7).await?, "user 7");
    /// assert_eq!(users.ready().await?.call(0).await?, "anonymous"); // failed: the fallback answered
    /// layer.command().circuit().force_open();
    /// assert_eq!(users.ready().await?.call(7).await?, "anonymous"); // short-circuited
    /// # Ok(()) }
    /// ```
    pub fn builder<Req, Res>(key: impl Into<CommandKey>) -> CommandBuilder<Req, Res> {
        CommandBuilder::new(key.into())
    }

    /// The command's key.
    pub fn key(&self) -> &CommandKey {
        self.core.metrics.key()
    }

    /// The command's group.
    pub fn group(&self) -> &GroupKey {
        self.core.metrics.group()
    }

    /// The thread pool the command runs on (or reports, with semaphore isolation).
    pub fn thread_pool_key(&self) -> &ThreadPoolKey {
        self.core.metrics.pool()
    }

    /// The command's circuit: its state, and the operator's force open / closed.
    pub fn circuit(&self) -> &Circuit {
        &self.core.circuit
    }

    /// The command's metrics.
    pub fn metrics(&self) -> &CommandMetrics {
        &self.core.metrics
    }

    /// The command's thread pool, with thread isolation.
    pub fn thread_pool(&self) -> Option<&ThreadPool> {
        self.core.pool.as_ref()
    }

    /// The execution semaphore (used with semaphore isolation).
    pub fn semaphore(&self) -> &Semaphore {
        &self.core.semaphore
    }

    /// The fallback semaphore.
    pub fn fallback_semaphore(&self) -> &Semaphore {
        &self.core.fallback_semaphore
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<CommandSettings> {
        self.core.settings.load_full()
    }

    /// Everything the metrics stream needs of the command now.
    pub fn snapshot(&self) -> CommandSnapshot {
        self.core.metrics.snapshot()
    }

    /// Whether two handles are the same command.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }
}

impl CommandCore {
    #[inline]
    pub(crate) fn timeout(&self) -> Option<Duration> {
        match self.timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Puts new settings in force; what is fixed once built keeps its value.
    pub(crate) fn apply(&self, mut settings: CommandSettings) {
        let old = self.settings.load();
        if settings.isolation != old.isolation
            || settings.metrics != old.metrics
            || settings.thread_pool_key_override != old.thread_pool_key_override
        {
            tracing::warn!(
                command = %self.metrics.key(),
                "isolation strategy, metrics windows and thread pool override are fixed once a command is built; restart to change them"
            );
            settings.isolation = old.isolation;
            settings.metrics = old.metrics;
            settings.thread_pool_key_override = old.thread_pool_key_override.clone();
        }
        settings.breaker.window = old.breaker.window;
        if let Err(e) = self.circuit.update(settings.breaker.clone()) {
            // Resolved settings were validated; keep the old breaker settings if not.
            tracing::warn!(command = %self.metrics.key(), error = %e, "circuit breaker settings refused");
            settings.breaker = old.breaker.clone();
        }
        self.semaphore.set_limit(settings.max_concurrent_requests);
        self.fallback_semaphore
            .set_limit(settings.fallback_max_concurrent_requests);
        self.timeout_ms.store(
            settings.timeout.map_or(0, |t| {
                u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
            }),
            Ordering::Relaxed,
        );
        self.fallback_enabled
            .store(settings.fallback_enabled, Ordering::Relaxed);
        self.cache_enabled
            .store(settings.request_cache_enabled, Ordering::Relaxed);
        self.settings.store(Arc::new(settings));
    }
}

impl CommandSource for Command {
    fn key(&self) -> &CommandKey {
        self.core.metrics.key()
    }

    /// The command's metrics, with the circuit's health, state and settings. Two settings
    /// have no property here and are reported as what this crate does: a timed-out future is
    /// dropped (`interruptOnTimeout` true; a thread blocked in synchronous code finishes on
    /// its own), and there is no request log (`requestLogEnabled` false).
    fn report(&self) -> CommandReport {
        let core = &*self.core;
        let settings = core.settings.load();
        let mode = core.circuit.mode();
        let circuit = match mode {
            Mode::ForcedOpen => CircuitStatus::Open,
            Mode::ForcedClosed | Mode::Disabled => CircuitStatus::Closed,
            Mode::Normal => match core.circuit.state() {
                State::Closed => CircuitStatus::Closed,
                State::Open => CircuitStatus::Open,
                State::HalfOpen => CircuitStatus::HalfOpen,
            },
        };
        let mut metrics = core.metrics.snapshot();
        if mode != Mode::Disabled {
            metrics.health = core.circuit.health();
        }
        let breaker = &settings.breaker;
        CommandReport {
            metrics,
            circuit,
            settings: CommandSettingsReport {
                circuit_breaker_enabled: breaker.enabled,
                circuit_breaker_request_volume_threshold: breaker.request_volume_threshold,
                circuit_breaker_sleep_window: breaker.sleep_window,
                circuit_breaker_error_threshold_percentage: u32::from(
                    breaker.error_threshold_percentage,
                ),
                circuit_breaker_force_open: mode == Mode::ForcedOpen,
                circuit_breaker_force_closed: mode == Mode::ForcedClosed,
                health_snapshot_interval: breaker.health_snapshot_interval,
                isolation: settings.isolation,
                timeout: core.timeout(),
                interrupt_on_timeout: true,
                thread_pool_key_override: settings.thread_pool_key_override.clone(),
                max_concurrent_requests: settings.max_concurrent_requests,
                fallback_enabled: settings.fallback_enabled,
                fallback_max_concurrent_requests: settings.fallback_max_concurrent_requests,
                request_cache_enabled: settings.request_cache_enabled,
                request_log_enabled: false,
                metrics: settings.metrics,
            },
        }
    }

    fn drain_latencies(
        &self,
        cursors: &mut LatencyCursors,
        visit: &mut dyn FnMut(LatencyKind, u64, u64),
    ) {
        self.core.metrics.drain_latencies(cursors, visit);
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("key", self.key())
            .field("group", self.group())
            .field("pool", self.thread_pool_key())
            .field("circuit", &self.core.circuit.state())
            .finish_non_exhaustive()
    }
}

/// What a service's calls share: the command and what it does with results. Each service
/// (each clone) has its own, so the one reference a call takes is counted on a cache line of
/// its caller's, not on the command's, which every caller of every thread shares.
pub(crate) struct Local<Res, K> {
    pub(crate) command: Command,
    pub(crate) handling: Arc<Handling<Res, K>>,
}

impl<Res, K> Handling<Res, K> {
    /// What the command's classifier makes of `result`.
    #[inline]
    pub(crate) fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome {
        match &self.classifier {
            None => DefaultClassifier.classify(result),
            Some(classifier) => classifier.classify(result),
        }
    }
}

impl<Res, K> Local<Res, K> {
    pub(crate) fn core(&self) -> &CommandCore {
        &self.command.core
    }
}

/// What a command does with results: the parts of a command that know the response type.
pub(crate) struct Handling<Res, K> {
    /// `None` for [`DefaultClassifier`], the usual case, applied without a dynamic call.
    pub(crate) classifier: Option<Box<dyn Classify<Res, BoxError> + Send + Sync>>,
    pub(crate) fallback: Option<Box<dyn Fallback<K, Res>>>,
    pub(crate) cache: Option<Box<dyn ErasedCache<Res>>>,
    pub(crate) coalescer: Option<Box<dyn Coalesce<Res>>>,
}

/// What a command takes from each request: the parts that know the request type.
pub(crate) struct Requests<Req, K> {
    pub(crate) view: Box<dyn Fn(&Req) -> K + Send + Sync>,
    pub(crate) cache_key: Option<Box<dyn Fn(&Req) -> Option<String> + Send + Sync>>,
}

/// A [`StaleCache`] without its `Clone` bound, so that commands of responses that are not
/// `Clone` can exist.
pub(crate) trait ErasedCache<Res>: Send + Sync {
    fn put(&self, key: String, value: &Res);
    fn get(&self, key: &str) -> BoxFuture<Option<(Res, Stale)>>;
}

impl<Res: CacheValue> ErasedCache<Res> for StaleCache<Res> {
    fn put(&self, key: String, value: &Res) {
        StaleCache::put(self, key, value);
    }

    fn get(&self, key: &str) -> BoxFuture<Option<(Res, Stale)>> {
        StaleCache::get(self, key)
    }
}
