#![allow(clippy::unwrap_used)]
//! The Prometheus export: every rendered exposition is checked by Prometheus' own parser and
//! linter (`promtool check metrics`, Debian package `prometheus`, installed by
//! `scripts/test.sh`), and its samples are read back to compare with what was recorded.

use std::{
    io::Write,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use hystrix_core::{
    CircuitStatus, CommandKey, CommandMetrics, CommandReport, CommandSettingsReport, CommandSource,
    HystrixEventType as Ev, LatencyCursors, LatencyKind, ManualClock, MetricsConfig, ThreadPoolKey,
    ThreadPoolMetrics, ThreadPoolReport, ThreadPoolSettingsReport, ThreadPoolSource,
};
use hystrix_stream::{
    MetricsRegistry, PrometheusBridge, PrometheusExporter,
    prometheus::{CONTENT_TYPE, with_latency_buckets},
};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::ServiceExt;

// ===== sources =====

/// A command recording into real `CommandMetrics`, with a circuit the test sets.
struct Source {
    metrics: CommandMetrics,
    circuit: Mutex<CircuitStatus>,
}

impl Source {
    fn new(key: &str, group: &str, clock: &ManualClock) -> Arc<Self> {
        Arc::new(Self {
            metrics: CommandMetrics::with_clock(
                key,
                group,
                "pool",
                MetricsConfig::default(),
                clock.clock(),
            ),
            circuit: Mutex::new(CircuitStatus::Closed),
        })
    }

    fn set_circuit(&self, status: CircuitStatus) {
        *self.circuit.lock().unwrap() = status;
    }
}

impl CommandSource for Source {
    fn key(&self) -> &CommandKey {
        self.metrics.key()
    }

    fn report(&self) -> CommandReport {
        CommandReport {
            metrics: self.metrics.snapshot(),
            circuit: *self.circuit.lock().unwrap(),
            settings: CommandSettingsReport::default(),
        }
    }

    fn drain_latencies(
        &self,
        cursors: &mut LatencyCursors,
        visit: &mut dyn FnMut(LatencyKind, u64, u64),
    ) {
        self.metrics.drain_latencies(cursors, visit);
    }
}

/// A thread pool reporting a fixed report.
struct Pool(ThreadPoolReport);

impl ThreadPoolSource for Pool {
    fn key(&self) -> &ThreadPoolKey {
        &self.0.key
    }

    fn report(&self) -> ThreadPoolReport {
        self.0.clone()
    }
}

// ===== the exposition, checked and parsed =====

/// Runs `promtool check metrics` on `text`: it must parse and be lint-clean. Fails when
/// promtool is missing.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is needed (Debian package `prometheus`, see scripts/test.sh): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty() && stdout.trim().is_empty(),
        "promtool check metrics: {}\nstdout: {stdout}\nstderr: {stderr}\nexposition:\n{text}",
        out.status,
    );
}

/// Renders, and checks the exposition with promtool.
fn render(exporter: &PrometheusExporter) -> Exposition {
    let text = exporter.render();
    promtool_check(&text);
    Exposition::parse(&text)
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

#[derive(Debug)]
struct Exposition {
    text: String,
    samples: Vec<Sample>,
}

impl Exposition {
    /// A parser of the sample lines of the text format, unescaping label values.
    fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap();
            let name = line[..end].to_owned();
            let mut rest = &line[end..];
            let mut labels = Vec::new();
            if let Some(r) = rest.strip_prefix('{') {
                rest = r;
                loop {
                    if let Some(r) = rest.strip_prefix('}') {
                        rest = r;
                        break;
                    }
                    if let Some(r) = rest.strip_prefix(',') {
                        rest = r;
                    }
                    let eq = rest.find('=').unwrap();
                    let key = rest[..eq].to_owned();
                    let quoted = rest[eq + 1..].strip_prefix('"').unwrap();
                    let mut value = String::new();
                    let mut chars = quoted.char_indices();
                    let close = loop {
                        match chars.next().unwrap() {
                            (_, '\\') => value.push(match chars.next().unwrap().1 {
                                'n' => '\n',
                                '\\' => '\\',
                                '"' => '"',
                                other => panic!("bad escape \\{other} in {line}"),
                            }),
                            (i, '"') => break i,
                            (_, c) => value.push(c),
                        }
                    };
                    rest = &quoted[close + 1..];
                    labels.push((key, value));
                }
            }
            let value = rest.trim().parse().unwrap();
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The value of the sample `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(k2, v2)| k == k2 && v == v2))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} twice: {found:?}");
        found.first().map(|s| s.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }

    fn event(&self, command: &str, group: &str, event: &str) -> f64 {
        self.value(
            "hystrix_command_events_total",
            &[("command", command), ("group", group), ("event", event)],
        )
    }

    fn command(&self, name: &str, command: &str, group: &str) -> f64 {
        self.value(name, &[("command", command), ("group", group)])
    }

    fn pool(&self, name: &str, pool: &str) -> f64 {
        self.value(name, &[("pool", pool)])
    }
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{actual} is not {expected}"
    );
}

// ===== tests =====

#[test]
fn counters_match_the_marked_events() {
    let clock = ManualClock::new();
    let source = Source::new("GetUser", "Users", &clock);
    for event in [
        Ev::Success,
        Ev::Success,
        Ev::Success,
        Ev::Failure,
        Ev::Timeout,
    ] {
        source.metrics.mark(event);
    }
    source.metrics.mark_n(Ev::ThreadPoolRejected, 2);
    source.metrics.mark(Ev::FallbackSuccess);
    let registry = MetricsRegistry::new();
    registry.register_command(source.clone());
    let exporter = PrometheusExporter::new(registry);

    let e = render(&exporter);
    for (event, n) in [
        ("success", 3.0),
        ("failure", 1.0),
        ("timeout", 1.0),
        ("thread_pool_rejected", 2.0),
        ("fallback_success", 1.0),
        ("short_circuited", 0.0),
        ("semaphore_rejected", 0.0),
        ("bad_request", 0.0),
        ("response_from_cache", 0.0),
    ] {
        assert_eq!(e.event("GetUser", "Users", event), n, "{event}");
    }
    assert_eq!(
        e.get(
            "hystrix_command_events_total",
            &[
                ("command", "GetUser"),
                ("group", "Users"),
                ("event", "command_max_active")
            ]
        ),
        None,
        "a maximum, not a count"
    );
    assert!(
        e.text
            .contains("# TYPE hystrix_command_events_total counter")
    );

    // Cumulative: the counts stay after the rolling window has moved on, and keep growing.
    clock.advance(Duration::from_secs(30));
    source.metrics.mark(Ev::Success);
    source.metrics.mark(Ev::ShortCircuited);
    let e = render(&exporter);
    assert_eq!(e.event("GetUser", "Users", "success"), 4.0);
    assert_eq!(e.event("GetUser", "Users", "short_circuited"), 1.0);
    assert_eq!(e.event("GetUser", "Users", "failure"), 1.0);
}

const EXECUTE: &str = "hystrix_command_latency_execute_seconds";
const TOTAL: &str = "hystrix_command_latency_total_seconds";

#[test]
fn latency_histograms_count_each_latency_once_after_its_bucket_completes() {
    let clock = ManualClock::new();
    let source = Source::new("GetUser", "Users", &clock);
    let registry = MetricsRegistry::new();
    registry.register_command(source.clone());
    let exporter = PrometheusExporter::new(registry);
    let count =
        |e: &Exposition, name: &str| e.command(&format!("{name}_count"), "GetUser", "Users");
    let sum = |e: &Exposition, name: &str| e.command(&format!("{name}_sum"), "GetUser", "Users");

    let e = render(&exporter);
    assert!(e.text.contains(&format!("# TYPE {EXECUTE} histogram")));
    assert_eq!(count(&e, EXECUTE), 0.0, "present before any latency");

    let m = &source.metrics;
    m.record_latencies(Duration::from_millis(10), Duration::from_millis(15));
    m.record_latencies(Duration::from_millis(20), Duration::from_millis(30));
    m.record_total_latency(Duration::from_millis(5));
    let e = render(&exporter);
    assert_eq!(count(&e, EXECUTE), 0.0, "bucket still filling");
    assert_eq!(count(&e, TOTAL), 0.0, "bucket still filling");

    // The 10 s percentile bucket completes.
    clock.advance(Duration::from_secs(10));
    let e = render(&exporter);
    assert_eq!(count(&e, EXECUTE), 2.0);
    assert_close(sum(&e, EXECUTE), 0.030);
    assert_eq!(count(&e, TOTAL), 3.0);
    assert_close(sum(&e, TOTAL), 0.050);
    let bucket = |e: &Exposition, name: &str, le: &str| {
        e.value(
            &format!("{name}_bucket"),
            &[("command", "GetUser"), ("group", "Users"), ("le", le)],
        )
    };
    assert_eq!(bucket(&e, EXECUTE, "0.005"), 0.0);
    assert_eq!(bucket(&e, EXECUTE, "0.01"), 1.0);
    assert_eq!(bucket(&e, EXECUTE, "0.025"), 2.0);
    assert_eq!(bucket(&e, TOTAL, "0.005"), 1.0);
    assert_eq!(bucket(&e, TOTAL, "0.025"), 2.0);
    assert_eq!(bucket(&e, TOTAL, "0.05"), 3.0);
    assert_eq!(bucket(&e, TOTAL, "+Inf"), 3.0);

    // Scraped again, later buckets, the same latencies: nothing is fed twice.
    let e = render(&exporter);
    assert_eq!((count(&e, EXECUTE), count(&e, TOTAL)), (2.0, 3.0));
    clock.advance(Duration::from_secs(30));
    let e = render(&exporter);
    assert_eq!((count(&e, EXECUTE), count(&e, TOTAL)), (2.0, 3.0));

    // Two scrapes at once: the new latencies reach the histograms once.
    m.record_latencies(Duration::from_millis(40), Duration::from_millis(41));
    clock.advance(Duration::from_secs(10));
    let texts: Vec<String> = std::thread::scope(|scope| {
        let scrapes: Vec<_> = (0..2).map(|_| scope.spawn(|| exporter.render())).collect();
        scrapes.into_iter().map(|s| s.join().unwrap()).collect()
    });
    for text in &texts {
        promtool_check(text);
    }
    let e = render(&exporter);
    assert_eq!((count(&e, EXECUTE), count(&e, TOTAL)), (3.0, 4.0));
    assert_close(sum(&e, EXECUTE), 0.070);
    assert_close(sum(&e, TOTAL), 0.091);
}

#[test]
fn a_replaced_source_is_read_from_its_own_start() {
    let clock = ManualClock::new();
    let registry = MetricsRegistry::new();
    let exporter = PrometheusExporter::new(registry.clone());
    let first = Source::new("GetUser", "Users", &clock);
    registry.register_command(first.clone());
    first
        .metrics
        .record_latencies(Duration::from_millis(3), Duration::from_millis(3));
    clock.advance(Duration::from_secs(35));
    let e = render(&exporter);
    assert_eq!(
        e.command(&format!("{EXECUTE}_count"), "GetUser", "Users"),
        1.0
    );

    // A new source under the same key has its own origin: the bridge's cursor of the old one
    // would skip its first buckets.
    let second = Source::new("GetUser", "Users", &clock);
    registry.register_command(second.clone());
    second
        .metrics
        .record_latencies(Duration::from_millis(4), Duration::from_millis(4));
    clock.advance(Duration::from_secs(10));
    let e = render(&exporter);
    assert_eq!(
        e.command(&format!("{EXECUTE}_count"), "GetUser", "Users"),
        2.0
    );
    assert_close(
        e.command(&format!("{EXECUTE}_sum"), "GetUser", "Users"),
        0.007,
    );
}

#[test]
fn gauges_show_the_circuit_concurrency_and_health() {
    let clock = ManualClock::new();
    let source = Source::new("GetUser", "Users", &clock);
    let registry = MetricsRegistry::new();
    registry.register_command(source.clone());
    let exporter = PrometheusExporter::new(registry);
    let state = |e: &Exposition, state: &str| {
        e.value(
            "hystrix_command_circuit_state",
            &[("command", "GetUser"), ("group", "Users"), ("state", state)],
        )
    };

    let e = render(&exporter);
    assert_eq!(
        e.command("hystrix_command_circuit_open", "GetUser", "Users"),
        0.0
    );
    assert_eq!(
        (
            state(&e, "closed"),
            state(&e, "open"),
            state(&e, "half_open")
        ),
        (1.0, 0.0, 0.0)
    );
    assert_eq!(
        e.command("hystrix_command_error_ratio", "GetUser", "Users"),
        0.0
    );
    assert_eq!(
        e.command("hystrix_command_concurrent_executions", "GetUser", "Users"),
        0.0
    );

    let m = &source.metrics;
    let running: Vec<_> = (0..3).map(|_| m.executing()).collect();
    for event in [Ev::Success, Ev::Success, Ev::Success, Ev::Failure] {
        m.mark(event);
    }
    source.set_circuit(CircuitStatus::Open);
    let e = render(&exporter);
    assert_eq!(
        e.command("hystrix_command_circuit_open", "GetUser", "Users"),
        1.0
    );
    assert_eq!(
        (
            state(&e, "closed"),
            state(&e, "open"),
            state(&e, "half_open")
        ),
        (0.0, 1.0, 0.0)
    );
    assert_eq!(
        e.command("hystrix_command_concurrent_executions", "GetUser", "Users"),
        3.0
    );
    assert_close(
        e.command("hystrix_command_error_ratio", "GetUser", "Users"),
        0.25,
    );
    assert_eq!(
        e.command("hystrix_command_health_requests", "GetUser", "Users"),
        4.0
    );

    drop(running);
    source.set_circuit(CircuitStatus::HalfOpen);
    let e = render(&exporter);
    assert_eq!(
        e.command("hystrix_command_circuit_open", "GetUser", "Users"),
        1.0,
        "half-open counts as open, as isCircuitBreakerOpen"
    );
    assert_eq!(
        (
            state(&e, "closed"),
            state(&e, "open"),
            state(&e, "half_open")
        ),
        (0.0, 0.0, 1.0)
    );
    assert_eq!(
        e.command("hystrix_command_concurrent_executions", "GetUser", "Users"),
        0.0
    );
    assert_eq!(
        e.command(
            "hystrix_command_rolling_max_concurrent_executions",
            "GetUser",
            "Users"
        ),
        3.0
    );
}

fn pool_report(key: &str) -> ThreadPoolReport {
    ThreadPoolReport {
        key: ThreadPoolKey::new(key),
        metrics: ThreadPoolMetrics {
            active_count: 3,
            queue_size: 2,
            pool_size: 5,
            largest_pool_size: 7,
            core_pool_size: 5,
            maximum_pool_size: 10,
            completed_task_count: 100,
            task_count: 105,
            rolling_executed: 9,
            rolling_rejected: 1,
            rolling_max_active: 4,
            queue_size_rejection_threshold: 6,
        },
        settings: ThreadPoolSettingsReport {
            core_size: 5,
            maximum_size: 10,
            actual_maximum_size: 10,
            allow_maximum_size_to_diverge_from_core_size: true,
            max_queue_size: 20,
            queue_size_rejection_threshold: 6,
            ..ThreadPoolSettingsReport::default()
        },
    }
}

#[test]
fn pool_metrics_come_from_the_report() {
    let registry = MetricsRegistry::new();
    registry.register_pool(Arc::new(Pool(pool_report("Users"))));
    let exporter = PrometheusExporter::new(registry);
    let e = render(&exporter);
    for (name, value) in [
        ("hystrix_threadpool_active_threads", 3.0),
        ("hystrix_threadpool_queue_size", 2.0),
        ("hystrix_threadpool_queue_rejection_threshold", 6.0),
        ("hystrix_threadpool_pool_size", 5.0),
        ("hystrix_threadpool_largest_pool_size", 7.0),
        ("hystrix_threadpool_core_size", 5.0),
        ("hystrix_threadpool_maximum_size", 10.0),
        ("hystrix_threadpool_rolling_max_active_threads", 4.0),
        ("hystrix_threadpool_completed_tasks_total", 100.0),
        ("hystrix_threadpool_tasks_total", 105.0),
    ] {
        assert_eq!(e.pool(name, "Users"), value, "{name}");
    }
    assert_close(e.pool("hystrix_threadpool_utilization_ratio", "Users"), 0.3);
    assert!(
        e.text
            .contains("# TYPE hystrix_threadpool_tasks_total counter")
    );
    assert!(
        e.text
            .contains("# TYPE hystrix_threadpool_utilization_ratio gauge")
    );
}

#[test]
fn odd_characters_in_names_reach_the_labels_unchanged() {
    let clock = ManualClock::new();
    let command = "Get \"User\"\n\\n {id=1,x} é\\";
    let group = "a\\\"b\\\\c";
    let pool = "p\"\\";
    let source = Source::new(command, group, &clock);
    source.metrics.mark(Ev::Success);
    source
        .metrics
        .record_latencies(Duration::from_millis(1), Duration::from_millis(2));
    clock.advance(Duration::from_secs(10));
    let registry = MetricsRegistry::new();
    registry.register_command(source);
    registry.register_pool(Arc::new(Pool(pool_report(pool))));
    let exporter = PrometheusExporter::new(registry);

    let e = render(&exporter);
    assert_eq!(e.event(command, group, "success"), 1.0, "{}", e.text);
    assert_eq!(e.command(&format!("{TOTAL}_count"), command, group), 1.0);
    assert_eq!(e.pool("hystrix_threadpool_active_threads", pool), 3.0);
    assert!(
        e.text
            .contains(r#"command="Get \"User\"\n\\n {id=1,x} é\\""#),
        "{}",
        e.text
    );
}

#[test]
fn two_exporters_show_only_their_own_registry() {
    let clock = ManualClock::new();
    let (one, two) = (MetricsRegistry::new(), MetricsRegistry::new());
    let a = Source::new("A", "G", &clock);
    let b = Source::new("B", "G", &clock);
    a.metrics.mark(Ev::Success);
    b.metrics.mark_n(Ev::Success, 5);
    one.register_command(a);
    two.register_command(b);
    two.register_pool(Arc::new(Pool(pool_report("PoolB"))));
    let (x, y) = (
        PrometheusExporter::new(one.clone()),
        PrometheusExporter::new(two),
    );

    let (ex, ey) = (render(&x), render(&y));
    assert_eq!(ex.event("A", "G", "success"), 1.0);
    assert_eq!(ey.event("B", "G", "success"), 5.0);
    assert!(!ex.text.contains("command=\"B\"") && !ex.text.contains("PoolB"));
    assert!(!ey.text.contains("command=\"A\""));
    assert!(x.registry().ptr_eq(&one));

    // An empty registry renders an empty, valid exposition.
    let empty = render(&PrometheusExporter::new(MetricsRegistry::new()));
    assert!(empty.samples.is_empty(), "{}", empty.text);
}

#[test]
fn the_bridge_publishes_into_the_current_recorder() {
    let clock = ManualClock::new();
    let source = Source::new("GetUser", "Users", &clock);
    source.metrics.mark(Ev::Timeout);
    let registry = MetricsRegistry::new();
    registry.register_command(source);
    let bridge = PrometheusBridge::new(registry);
    let recorder = with_latency_buckets(PrometheusBuilder::new())
        .with_recommended_naming(true)
        .build_recorder();
    let handle = recorder.handle();

    metrics::with_local_recorder(&recorder, || {
        metrics::describe_counter!("app_requests_total", "Requests of the app.");
        metrics::counter!("app_requests_total").increment(7);
        bridge.publish();
    });
    let text = handle.render();
    promtool_check(&text);
    let e = Exposition::parse(&text);
    assert_eq!(e.event("GetUser", "Users", "timeout"), 1.0);
    assert_eq!(e.value("app_requests_total", &[]), 7.0);
    // Recommended naming leaves the names as they are: they carry their suffixes already.
    assert!(text.contains("# TYPE hystrix_command_latency_total_seconds histogram"));
    assert!(!text.contains("_total_total") && !text.contains("seconds_seconds"));
    assert!(!text.contains("ratio_ratio"));
}

#[tokio::test]
async fn the_metrics_route_answers_with_the_exposition() {
    let clock = ManualClock::new();
    let source = Source::new("GetUser", "Users", &clock);
    source.metrics.mark(Ev::Success);
    let registry = MetricsRegistry::new();
    registry.register_command(source);
    let app = PrometheusExporter::new(registry).router();

    let response = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&body).unwrap();
    promtool_check(text);
    assert_eq!(
        Exposition::parse(text).event("GetUser", "Users", "success"),
        1.0
    );

    let response = app
        .oneshot(Request::post("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
