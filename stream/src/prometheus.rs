//! Prometheus export of the commands and thread pools of a [`MetricsRegistry`].
//!
//! Two ways in:
//!
//! - [`PrometheusExporter`] owns a Prometheus recorder of its own (never installed as the
//!   process's global recorder, so several exporters, one per registry, live side by side) and
//!   answers `GET /metrics` with the text exposition, brought up to date at each scrape.
//! - [`PrometheusBridge`] publishes a registry into whatever [`metrics`] recorder is current
//!   when [`publish`](PrometheusBridge::publish) runs: for an application that already installed
//!   its own recorder and only wants the Hystrix metrics added to it.
//!
//! Nothing is recorded on the request path: each publish reads the cumulative event counts,
//! the gauges of the moment, and the latencies of the percentile buckets completed since the
//! last publish (each latency reaches the histograms exactly once, see
//! [`CommandSource::drain_latencies`]).
//!
//! # Metrics
//!
//! Commands are labelled `command` and `group`, thread pools `pool`.
//!
//! | name | type | what |
//! |---|---|---|
//! | [`hystrix_command_events_total`](COMMAND_EVENTS_TOTAL) | counter | events since start, by `event` (`success`, `failure`, `timeout`, `short_circuited`, `thread_pool_rejected`, ...) |
//! | [`hystrix_command_latency_execute_seconds`](COMMAND_LATENCY_EXECUTE_SECONDS) | histogram | latency of the inner service alone |
//! | [`hystrix_command_latency_total_seconds`](COMMAND_LATENCY_TOTAL_SECONDS) | histogram | latency seen by the caller, queueing and fallback included |
//! | [`hystrix_command_concurrent_executions`](COMMAND_CONCURRENT_EXECUTIONS) | gauge | executions running now |
//! | [`hystrix_command_rolling_max_concurrent_executions`](COMMAND_ROLLING_MAX_CONCURRENT_EXECUTIONS) | gauge | the most at once in the rolling window |
//! | [`hystrix_command_circuit_open`](COMMAND_CIRCUIT_OPEN) | gauge | 1 while the circuit is open or half-open (the stream's `isCircuitBreakerOpen`) |
//! | [`hystrix_command_circuit_state`](COMMAND_CIRCUIT_STATE) | gauge | 1 for the current `state` (`closed`, `open`, `half_open`), 0 for the others |
//! | [`hystrix_command_error_ratio`](COMMAND_ERROR_RATIO) | gauge | errors / requests in the health window, 0 to 1 (the stream's `errorPercentage`, untruncated) |
//! | [`hystrix_command_health_requests`](COMMAND_HEALTH_REQUESTS) | gauge | requests in the health window (the stream's `requestCount`) |
//! | [`hystrix_threadpool_active_threads`](THREADPOOL_ACTIVE_THREADS) | gauge | threads running a request |
//! | [`hystrix_threadpool_queue_size`](THREADPOOL_QUEUE_SIZE) | gauge | requests waiting in the queue |
//! | [`hystrix_threadpool_queue_rejection_threshold`](THREADPOOL_QUEUE_REJECTION_THRESHOLD) | gauge | queue size above which requests are rejected |
//! | [`hystrix_threadpool_pool_size`](THREADPOOL_POOL_SIZE) | gauge | threads alive |
//! | [`hystrix_threadpool_largest_pool_size`](THREADPOOL_LARGEST_POOL_SIZE) | gauge | the most threads ever alive at once |
//! | [`hystrix_threadpool_core_size`](THREADPOOL_CORE_SIZE) | gauge | core size |
//! | [`hystrix_threadpool_maximum_size`](THREADPOOL_MAXIMUM_SIZE) | gauge | maximum size in force |
//! | [`hystrix_threadpool_rolling_max_active_threads`](THREADPOOL_ROLLING_MAX_ACTIVE_THREADS) | gauge | the most threads active at once in the rolling window |
//! | [`hystrix_threadpool_utilization_ratio`](THREADPOOL_UTILIZATION_RATIO) | gauge | active threads / maximum size, 0 to 1 |
//! | [`hystrix_threadpool_completed_tasks_total`](THREADPOOL_COMPLETED_TASKS_TOTAL) | counter | requests completed since start |
//! | [`hystrix_threadpool_tasks_total`](THREADPOOL_TASKS_TOTAL) | counter | requests accepted since start (completed, running, queued) |
//!
//! Names already carry their unit and `_total` suffixes, so a recorder built with
//! `PrometheusBuilder::with_recommended_naming(true)` renders them unchanged.
//!
//! Rolling-window counts of the stream (`rollingCount*`) are not exported: `rate()` or
//! `increase()` of the counters gives them over any window. A command removed from the registry
//! keeps its last values in the recorder; counters never go down, so a command replaced by a
//! new source under the same key resumes counting once the new source's counts pass the old.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use hystrix_core::{
    CircuitStatus, CommandKey, CommandReport, CommandSource, Event, HystrixEventType,
    LatencyCursors, LatencyKind, ThreadPoolReport,
};
use metrics::{
    Label, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::MetricsRegistry;

// ===== names =====

/// Counter of a command's events since start, labelled `command`, `group` and `event` (the
/// Hystrix event in lower snake case: `success`, `short_circuited`, ...).
pub const COMMAND_EVENTS_TOTAL: &str = "hystrix_command_events_total";
/// Histogram of a command's execution latency (the inner service alone), in seconds.
pub const COMMAND_LATENCY_EXECUTE_SECONDS: &str = "hystrix_command_latency_execute_seconds";
/// Histogram of a command's total latency (from the caller's `call` to its result), in seconds.
pub const COMMAND_LATENCY_TOTAL_SECONDS: &str = "hystrix_command_latency_total_seconds";
/// Gauge of a command's executions running now.
pub const COMMAND_CONCURRENT_EXECUTIONS: &str = "hystrix_command_concurrent_executions";
/// Gauge of the most executions of a command at once in the rolling window.
pub const COMMAND_ROLLING_MAX_CONCURRENT_EXECUTIONS: &str =
    "hystrix_command_rolling_max_concurrent_executions";
/// Gauge: 1 while a command's circuit is open or half-open, else 0.
pub const COMMAND_CIRCUIT_OPEN: &str = "hystrix_command_circuit_open";
/// Gauge: 1 for a command's circuit `state` (`closed`, `open`, `half_open`), 0 for the others.
pub const COMMAND_CIRCUIT_STATE: &str = "hystrix_command_circuit_state";
/// Gauge of a command's errors / requests in its health window, from 0 to 1.
pub const COMMAND_ERROR_RATIO: &str = "hystrix_command_error_ratio";
/// Gauge of a command's requests in its health window.
pub const COMMAND_HEALTH_REQUESTS: &str = "hystrix_command_health_requests";
/// Gauge of a thread pool's threads running a request.
pub const THREADPOOL_ACTIVE_THREADS: &str = "hystrix_threadpool_active_threads";
/// Gauge of a thread pool's queued requests.
pub const THREADPOOL_QUEUE_SIZE: &str = "hystrix_threadpool_queue_size";
/// Gauge of a thread pool's queue size above which requests are rejected.
pub const THREADPOOL_QUEUE_REJECTION_THRESHOLD: &str =
    "hystrix_threadpool_queue_rejection_threshold";
/// Gauge of a thread pool's threads alive.
pub const THREADPOOL_POOL_SIZE: &str = "hystrix_threadpool_pool_size";
/// Gauge of the most threads a pool ever had alive at once.
pub const THREADPOOL_LARGEST_POOL_SIZE: &str = "hystrix_threadpool_largest_pool_size";
/// Gauge of a thread pool's core size.
pub const THREADPOOL_CORE_SIZE: &str = "hystrix_threadpool_core_size";
/// Gauge of a thread pool's maximum size in force.
pub const THREADPOOL_MAXIMUM_SIZE: &str = "hystrix_threadpool_maximum_size";
/// Gauge of the most threads of a pool active at once in the rolling window.
pub const THREADPOOL_ROLLING_MAX_ACTIVE_THREADS: &str =
    "hystrix_threadpool_rolling_max_active_threads";
/// Gauge of a thread pool's active threads / maximum size, from 0 to 1.
pub const THREADPOOL_UTILIZATION_RATIO: &str = "hystrix_threadpool_utilization_ratio";
/// Counter of a thread pool's requests completed since start.
pub const THREADPOOL_COMPLETED_TASKS_TOTAL: &str = "hystrix_threadpool_completed_tasks_total";
/// Counter of a thread pool's requests accepted since start: completed, running and queued.
pub const THREADPOOL_TASKS_TOTAL: &str = "hystrix_threadpool_tasks_total";

/// The upper bounds, in seconds, of the latency histograms' buckets: 1 ms to 60 s.
///
/// [`PrometheusExporter`] sets them on its recorder; a recorder of your own built with
/// `metrics-exporter-prometheus` gets them from [`with_latency_buckets`] (without them it renders
/// the latencies as summaries).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The content type of the Prometheus text exposition format, which `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `builder` with the two latency histograms bucketed by [`LATENCY_BUCKETS`].
///
/// ```
/// use metrics_exporter_prometheus::PrometheusBuilder;
///
/// let recorder = hystrix_stream::prometheus::with_latency_buckets(PrometheusBuilder::new())
///     .build_recorder();
/// # drop(recorder);
/// ```
pub fn with_latency_buckets(builder: PrometheusBuilder) -> PrometheusBuilder {
    [
        COMMAND_LATENCY_EXECUTE_SECONDS,
        COMMAND_LATENCY_TOTAL_SECONDS,
    ]
    .into_iter()
    .fold(builder, |builder, name| {
        builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), LATENCY_BUCKETS)
            .expect("LATENCY_BUCKETS is not empty")
    })
}

/// Describes every metric to the current recorder.
fn describe() {
    describe_counter!(
        COMMAND_EVENTS_TOTAL,
        Unit::Count,
        "Events of a Hystrix command since start, by event type."
    );
    describe_histogram!(
        COMMAND_LATENCY_EXECUTE_SECONDS,
        Unit::Seconds,
        "Execution latency of a Hystrix command: the wrapped service alone."
    );
    describe_histogram!(
        COMMAND_LATENCY_TOTAL_SECONDS,
        Unit::Seconds,
        "Total latency of a Hystrix command: from the call to its result, queueing and fallback included."
    );
    describe_gauge!(
        COMMAND_CONCURRENT_EXECUTIONS,
        Unit::Count,
        "Executions of a Hystrix command running now."
    );
    describe_gauge!(
        COMMAND_ROLLING_MAX_CONCURRENT_EXECUTIONS,
        Unit::Count,
        "The most executions of a Hystrix command at once in the rolling window."
    );
    describe_gauge!(
        COMMAND_CIRCUIT_OPEN,
        Unit::Count,
        "1 while the circuit of a Hystrix command is open or half-open, else 0."
    );
    describe_gauge!(
        COMMAND_CIRCUIT_STATE,
        Unit::Count,
        "1 for the current state of the circuit of a Hystrix command, 0 for the other states."
    );
    // metrics-exporter-prometheus spells `Unit::Percent` as `ratio`: these are from 0 to 1.
    describe_gauge!(
        COMMAND_ERROR_RATIO,
        Unit::Percent,
        "Errors over requests of a Hystrix command in its health window, from 0 to 1."
    );
    describe_gauge!(
        COMMAND_HEALTH_REQUESTS,
        Unit::Count,
        "Requests of a Hystrix command in its health window."
    );
    describe_gauge!(
        THREADPOOL_ACTIVE_THREADS,
        Unit::Count,
        "Threads of a Hystrix thread pool running a request."
    );
    describe_gauge!(
        THREADPOOL_QUEUE_SIZE,
        Unit::Count,
        "Requests waiting in the queue of a Hystrix thread pool."
    );
    describe_gauge!(
        THREADPOOL_QUEUE_REJECTION_THRESHOLD,
        Unit::Count,
        "Queue size of a Hystrix thread pool above which requests are rejected."
    );
    describe_gauge!(
        THREADPOOL_POOL_SIZE,
        Unit::Count,
        "Threads alive in a Hystrix thread pool."
    );
    describe_gauge!(
        THREADPOOL_LARGEST_POOL_SIZE,
        Unit::Count,
        "The most threads ever alive at once in a Hystrix thread pool."
    );
    describe_gauge!(
        THREADPOOL_CORE_SIZE,
        Unit::Count,
        "Core size of a Hystrix thread pool."
    );
    describe_gauge!(
        THREADPOOL_MAXIMUM_SIZE,
        Unit::Count,
        "Maximum size in force of a Hystrix thread pool."
    );
    describe_gauge!(
        THREADPOOL_ROLLING_MAX_ACTIVE_THREADS,
        Unit::Count,
        "The most threads of a Hystrix thread pool active at once in the rolling window."
    );
    describe_gauge!(
        THREADPOOL_UTILIZATION_RATIO,
        Unit::Percent,
        "Active threads over the maximum size of a Hystrix thread pool, from 0 to 1."
    );
    describe_counter!(
        THREADPOOL_COMPLETED_TASKS_TOTAL,
        Unit::Count,
        "Requests completed by a Hystrix thread pool since start."
    );
    describe_counter!(
        THREADPOOL_TASKS_TOTAL,
        Unit::Count,
        "Requests accepted by a Hystrix thread pool since start: completed, running and queued."
    );
}

// ===== impl PrometheusBridge =====

/// Publishes the commands and thread pools of a [`MetricsRegistry`] into the current
/// [`metrics`] recorder, each time [`publish`](Self::publish) runs.
///
/// The bridge keeps, per command, where it stands in the command's latencies, so each latency
/// is fed to the histograms once: publish each registry through one bridge per recorder (wrap
/// it in an `Arc` to share it). Concurrent publishes are serialized. A new bridge, or a source
/// newly registered (or replaced under its key), starts with the latencies its percentile window
/// still holds. A source that does not implement [`CommandSource::drain_latencies`] shows empty
/// histograms.
///
/// ```
/// use hystrix_stream::{MetricsRegistry, prometheus::PrometheusBridge};
///
/// let bridge = PrometheusBridge::new(MetricsRegistry::new());
/// // With a global recorder installed, e.g. every 15 s or before each scrape:
/// bridge.publish();
/// ```
pub struct PrometheusBridge {
    registry: MetricsRegistry,
    escape_backslashes: bool,
    /// Per command, the source last read and where the bridge stands in its latencies. The
    /// lock is held for a whole publish.
    cursors: Mutex<BTreeMap<CommandKey, (Arc<dyn CommandSource>, LatencyCursors)>>,
}

impl PrometheusBridge {
    /// A bridge publishing `registry`.
    pub fn new(registry: MetricsRegistry) -> Self {
        Self {
            registry,
            escape_backslashes: false,
            cursors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether to double every backslash of the label values (command, group and pool names).
    /// Default `false`.
    ///
    /// Turn it on when the current recorder is `metrics-exporter-prometheus`'s (as
    /// [`PrometheusExporter`] does): that recorder takes a backslash in a label value for the
    /// start of an escape sequence and renders `a\"b` as `a"b` and `a\\b` as `a\b`; doubled, a
    /// name reaches the exposition unchanged. Other recorders want the names as they are.
    #[must_use]
    pub fn escape_backslashes(mut self, escape: bool) -> Self {
        self.escape_backslashes = escape;
        self
    }

    /// The registry published.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }

    /// Publishes every registered command and pool into the current recorder: event counters
    /// to their cumulative counts, gauges to their values now, and the latencies completed since
    /// the last publish into the histograms.
    pub fn publish(&self) {
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        describe();
        let commands = self.registry.commands();
        // Forget removed and replaced sources: a new source starts from its own window.
        cursors.retain(|key, (held, _)| {
            commands
                .iter()
                .any(|c| c.key() == key && Arc::ptr_eq(c, held))
        });
        for source in commands {
            let report = source.report();
            let (_, cursor) = cursors
                .entry(source.key().clone())
                .or_insert_with(|| (source.clone(), LatencyCursors::default()));
            self.publish_command(&*source, &report, cursor);
        }
        for report in self.registry.pool_reports() {
            self.publish_pool(&report);
        }
    }

    fn label(&self, key: &'static str, value: &str) -> Label {
        if self.escape_backslashes && value.contains('\\') {
            Label::new(key, value.replace('\\', "\\\\"))
        } else {
            Label::new(key, value.to_owned())
        }
    }

    fn publish_command(
        &self,
        source: &dyn CommandSource,
        report: &CommandReport,
        cursors: &mut LatencyCursors,
    ) {
        let m = &report.metrics;
        let labels = vec![
            self.label("command", m.key.as_str()),
            self.label("group", m.group.as_str()),
        ];
        let with = |key: &'static str, value: String| {
            let mut labels = labels.clone();
            labels.push(Label::new(key, value));
            labels
        };

        for &event in HystrixEventType::ALL {
            // A maximum of concurrent executions, not a count: the rolling max gauge shows it.
            if event == HystrixEventType::CommandMaxActive {
                continue;
            }
            counter!(
                COMMAND_EVENTS_TOTAL,
                with("event", event.as_str().to_ascii_lowercase())
            )
            .absolute(m.cumulative.get(event));
        }

        let execute = histogram!(COMMAND_LATENCY_EXECUTE_SECONDS, labels.clone());
        let total = histogram!(COMMAND_LATENCY_TOTAL_SECONDS, labels.clone());
        source.drain_latencies(cursors, &mut |kind, ms, count| {
            let histogram = match kind {
                LatencyKind::Execute => &execute,
                LatencyKind::Total => &total,
            };
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            histogram.record_many(ms as f64 / 1000.0, count);
        });

        gauge!(COMMAND_CONCURRENT_EXECUTIONS, labels.clone()).set(m.current_concurrent as f64);
        gauge!(COMMAND_ROLLING_MAX_CONCURRENT_EXECUTIONS, labels.clone())
            .set(m.rolling_max_concurrent as f64);
        gauge!(COMMAND_CIRCUIT_OPEN, labels.clone()).set(flag(report.circuit.is_open()));
        for (state, name) in [
            (CircuitStatus::Closed, "closed"),
            (CircuitStatus::Open, "open"),
            (CircuitStatus::HalfOpen, "half_open"),
        ] {
            gauge!(COMMAND_CIRCUIT_STATE, with("state", name.to_owned()))
                .set(flag(report.circuit == state));
        }
        let health = m.health;
        let ratio = if health.total == 0 {
            0.0
        } else {
            health.errors.min(health.total) as f64 / health.total as f64
        };
        gauge!(COMMAND_ERROR_RATIO, labels.clone()).set(ratio);
        gauge!(COMMAND_HEALTH_REQUESTS, labels).set(health.total as f64);
    }

    fn publish_pool(&self, report: &ThreadPoolReport) {
        let labels = vec![self.label("pool", report.key.as_str())];
        let m = &report.metrics;
        let gauges = [
            (THREADPOOL_ACTIVE_THREADS, f64::from(m.active_count)),
            (THREADPOOL_QUEUE_SIZE, f64::from(m.queue_size)),
            (
                THREADPOOL_QUEUE_REJECTION_THRESHOLD,
                f64::from(m.queue_size_rejection_threshold),
            ),
            (THREADPOOL_POOL_SIZE, f64::from(m.pool_size)),
            (THREADPOOL_LARGEST_POOL_SIZE, f64::from(m.largest_pool_size)),
            (THREADPOOL_CORE_SIZE, f64::from(m.core_pool_size)),
            (THREADPOOL_MAXIMUM_SIZE, f64::from(m.maximum_pool_size)),
            (
                THREADPOOL_ROLLING_MAX_ACTIVE_THREADS,
                m.rolling_max_active as f64,
            ),
        ];
        for (name, value) in gauges {
            gauge!(name, labels.clone()).set(value);
        }
        let maximum = if m.maximum_pool_size > 0 {
            m.maximum_pool_size
        } else {
            report.settings.actual_maximum_size
        };
        let utilization = if maximum == 0 {
            0.0
        } else {
            f64::from(m.active_count) / f64::from(maximum)
        };
        gauge!(THREADPOOL_UTILIZATION_RATIO, labels.clone()).set(utilization);
        counter!(THREADPOOL_COMPLETED_TASKS_TOTAL, labels.clone()).absolute(m.completed_task_count);
        counter!(THREADPOOL_TASKS_TOTAL, labels).absolute(m.task_count);
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

impl fmt::Debug for PrometheusBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusBridge")
            .field("registry", &self.registry)
            .field("escape_backslashes", &self.escape_backslashes)
            .finish_non_exhaustive()
    }
}

// ===== impl PrometheusExporter =====

/// The Prometheus endpoint of a [`MetricsRegistry`]: a recorder of its own, brought up to date
/// by a [`PrometheusBridge`] at each [`render`](Self::render), and an axum [`Router`] serving it
/// at `GET /metrics`. Cloning shares it.
///
/// The recorder is not installed as the process's global recorder: each exporter shows its own
/// registry only, and the application's global recorder, if any, is left alone.
///
/// ```
/// use std::sync::Arc;
/// use hystrix_core::{
///     CircuitStatus, CommandKey, CommandMetrics, CommandReport, CommandSettingsReport,
///     CommandSource, HystrixEventType, MetricsConfig,
/// };
/// use hystrix_stream::{MetricsRegistry, PrometheusExporter};
///
/// struct Plain(CommandMetrics);
/// impl CommandSource for Plain {
///     fn key(&self) -> &CommandKey { self.0.key() }
///     fn report(&self) -> CommandReport {
///         CommandReport {
///             metrics: self.0.snapshot(),
///             circuit: CircuitStatus::Closed,
///             settings: CommandSettingsReport::default(),
///         }
///     }
/// }
///
/// let registry = MetricsRegistry::new();
/// let metrics = CommandMetrics::new("GetUser", "Users", "Users", MetricsConfig::default());
/// metrics.mark(HystrixEventType::Success);
/// registry.register_command(Arc::new(Plain(metrics)));
///
/// let exporter = PrometheusExporter::new(registry);
/// let text = exporter.render();
/// assert!(text.lines().any(|line| line
///     == r#"hystrix_command_events_total{command="GetUser",group="Users",event="success"} 1"#));
///
/// // Served with axum:
/// let app: axum::Router = exporter.router();
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct PrometheusExporter {
    inner: Arc<ExporterInner>,
}

struct ExporterInner {
    bridge: PrometheusBridge,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl PrometheusExporter {
    /// An exporter of `registry`, with a recorder of default settings and the latency
    /// histograms bucketed by [`LATENCY_BUCKETS`].
    pub fn new(registry: MetricsRegistry) -> Self {
        Self::with_builder(registry, with_latency_buckets(PrometheusBuilder::new()))
    }

    /// An exporter of `registry` whose recorder is built from `builder` as it is (global
    /// labels, buckets, ...): pass it through [`with_latency_buckets`] for the default latency
    /// buckets, else the latencies are rendered as the builder says (summaries without
    /// buckets). Listener and push-gateway settings of `builder` are ignored.
    pub fn with_builder(registry: MetricsRegistry, builder: PrometheusBuilder) -> Self {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Self {
            inner: Arc::new(ExporterInner {
                bridge: PrometheusBridge::new(registry).escape_backslashes(true),
                recorder,
                handle,
            }),
        }
    }

    /// The registry exported.
    pub fn registry(&self) -> &MetricsRegistry {
        self.inner.bridge.registry()
    }

    /// The exporter's recorder: run code under
    /// [`metrics::with_local_recorder`]`(exporter.recorder(), ..)` to add metrics of your own
    /// to the exposition.
    pub fn recorder(&self) -> &PrometheusRecorder {
        &self.inner.recorder
    }

    /// Publishes the registry into the recorder and renders the text exposition.
    pub fn render(&self) -> String {
        metrics::with_local_recorder(&self.inner.recorder, || self.inner.bridge.publish());
        self.inner.handle.render()
    }

    /// A `200 OK` response carrying [`render`](Self::render) as [`CONTENT_TYPE`]: to serve the
    /// exposition from a route of your choosing.
    pub fn response(&self) -> Response {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], self.render()).into_response()
    }

    /// A router answering `GET /metrics` with [`response`](Self::response); merge or nest it
    /// into your app.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(serve))
            .with_state(self.clone())
    }
}

async fn serve(State(exporter): State<PrometheusExporter>) -> Response {
    exporter.response()
}

impl fmt::Debug for PrometheusExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusExporter")
            .field("registry", self.registry())
            .finish_non_exhaustive()
    }
}
