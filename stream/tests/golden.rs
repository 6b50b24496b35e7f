#![allow(clippy::unwrap_used)]
//! The wire format, byte for byte: golden lines written out from the spec (§2.1, §2.2, §1.6),
//! field order, what the Netflix dashboard requires (§5.3, §5.4), escaping, and the key sets of
//! real captured Hystrix lines.

use std::{collections::BTreeSet, fmt, fs, path::PathBuf, time::Duration};

use hystrix_core::{
    CircuitStatus, CommandReport, CommandSettingsReport, HystrixEventType as Ev, IsolationStrategy,
    MetricsConfig, RollingWindow, ThreadPoolReport, ThreadPoolSettingsReport,
};
use hystrix_stream::encode::{self, Encoder};
use proptest::prelude::*;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

const NOW: u64 = 1_700_000_000_123;

// ===== fixed reports =====

fn command(name: &str, group: &str, pool: &str) -> CommandReport {
    CommandReport::sample(name, group, pool)
}

fn pool(name: &str, completed: u64) -> ThreadPoolReport {
    ThreadPoolReport::sample(name, completed)
}

fn command_line(report: &CommandReport) -> String {
    let mut buf = Vec::new();
    encode::write_command(&mut buf, report, NOW);
    String::from_utf8(buf).unwrap()
}

fn pool_line(report: &ThreadPoolReport) -> String {
    let mut buf = Vec::new();
    encode::write_thread_pool(&mut buf, report, NOW);
    String::from_utf8(buf).unwrap()
}

// ===== golden lines =====

/// Spec §2.1, field by field.
const GOLDEN_COMMAND: &str = concat!(
    r#"{"type":"HystrixCommand","name":"GetUser","group":"Users","currentTime":1700000000123,"#,
    r#""isCircuitBreakerOpen":true,"errorPercentage":25,"errorCount":30,"requestCount":120,"#,
    r#""rollingCountBadRequests":1,"rollingCountCollapsedRequests":2,"rollingCountEmit":3,"#,
    r#""rollingCountExceptionsThrown":4,"rollingCountFailure":5,"rollingCountFallbackEmit":6,"#,
    r#""rollingCountFallbackFailure":7,"rollingCountFallbackMissing":8,"#,
    r#""rollingCountFallbackRejection":9,"rollingCountFallbackSuccess":10,"#,
    r#""rollingCountResponsesFromCache":11,"rollingCountSemaphoreRejected":12,"#,
    r#""rollingCountShortCircuited":13,"rollingCountSuccess":14,"#,
    r#""rollingCountThreadPoolRejected":15,"rollingCountTimeout":16,"#,
    r#""currentConcurrentExecutionCount":3,"rollingMaxConcurrentExecutionCount":7,"#,
    r#""latencyExecute_mean":12,"#,
    r#""latencyExecute":{"0":1,"25":5,"50":10,"75":15,"90":20,"95":25,"99":40,"99.5":45,"100":90},"#,
    r#""latencyTotal_mean":14,"#,
    r#""latencyTotal":{"0":2,"25":6,"50":11,"75":16,"90":22,"95":27,"99":43,"99.5":48,"100":95},"#,
    r#""propertyValue_circuitBreakerRequestVolumeThreshold":20,"#,
    r#""propertyValue_circuitBreakerSleepWindowInMilliseconds":5000,"#,
    r#""propertyValue_circuitBreakerErrorThresholdPercentage":50,"#,
    r#""propertyValue_circuitBreakerForceOpen":false,"#,
    r#""propertyValue_circuitBreakerForceClosed":true,"#,
    r#""propertyValue_circuitBreakerEnabled":true,"#,
    r#""propertyValue_executionIsolationStrategy":"THREAD","#,
    r#""propertyValue_executionIsolationThreadTimeoutInMilliseconds":1000,"#,
    r#""propertyValue_executionTimeoutInMilliseconds":1000,"#,
    r#""propertyValue_executionIsolationThreadInterruptOnTimeout":true,"#,
    r#""propertyValue_executionIsolationThreadPoolKeyOverride":"Override","#,
    r#""propertyValue_executionIsolationSemaphoreMaxConcurrentRequests":11,"#,
    r#""propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests":12,"#,
    r#""propertyValue_metricsRollingStatisticalWindowInMilliseconds":10000,"#,
    r#""propertyValue_requestCacheEnabled":false,"propertyValue_requestLogEnabled":true,"#,
    r#""reportingHosts":1,"threadPool":"UsersPool"}"#,
);

/// Spec §2.2, field by field.
const GOLDEN_POOL: &str = concat!(
    r#"{"type":"HystrixThreadPool","name":"UsersPool","currentTime":1700000000123,"#,
    r#""currentActiveCount":2,"currentCompletedTaskCount":345,"currentCorePoolSize":10,"#,
    r#""currentLargestPoolSize":9,"currentMaximumPoolSize":12,"currentPoolSize":8,"#,
    r#""currentQueueSize":1,"currentTaskCount":348,"rollingCountThreadsExecuted":40,"#,
    r#""rollingMaxActiveThreads":6,"rollingCountCommandRejections":3,"#,
    r#""propertyValue_queueSizeRejectionThreshold":5,"#,
    r#""propertyValue_metricsRollingStatisticalWindowInMilliseconds":10000,"reportingHosts":1}"#,
);

#[test]
fn golden_command_line() {
    assert_eq!(
        command_line(&command("GetUser", "Users", "UsersPool")),
        GOLDEN_COMMAND
    );
}

#[test]
fn golden_thread_pool_line() {
    assert_eq!(pool_line(&pool("UsersPool", 345)), GOLDEN_POOL);
}

#[test]
fn a_tick_is_commands_then_pools_that_completed_a_task() {
    let commands = [command("GetUser", "Users", "UsersPool")];
    let pools = [pool("Idle", 0), pool("UsersPool", 345)];
    let tick = Encoder::new().metrics_tick(&commands, &pools, NOW);
    let expected = format!("data: {GOLDEN_COMMAND}\n\ndata: {GOLDEN_POOL}\n\n");
    assert_eq!(std::str::from_utf8(&tick).unwrap(), expected);
}

#[test]
fn the_encoder_gives_the_same_bytes_tick_after_tick() {
    let commands: Vec<_> = (0..50)
        .map(|i| command(&format!("C{i}"), "G", "P"))
        .collect();
    let pools = [pool("P", 1)];
    let mut encoder = Encoder::new();
    let first = encoder.metrics_tick(&commands, &pools, NOW);
    let kept = first.clone();
    drop(first);
    for _ in 0..3 {
        // The previous tick is still held (as by a slow client): its bytes must not change.
        let next = encoder.metrics_tick(&commands, &pools, NOW);
        assert_eq!(next, kept);
    }
    assert_eq!(encoder.metrics_tick(&[], &[], NOW), "");
}

#[test]
fn a_disabled_timeout_is_zero_and_no_override_is_null() {
    let mut report = command("C", "G", "P");
    report.settings.timeout = None;
    report.settings.thread_pool_key_override = None;
    report.settings.isolation = IsolationStrategy::Semaphore;
    report.circuit = CircuitStatus::Closed;
    let v: Value = serde_json::from_str(&command_line(&report)).unwrap();
    assert_eq!(
        v["propertyValue_executionIsolationThreadTimeoutInMilliseconds"],
        0
    );
    assert_eq!(v["propertyValue_executionTimeoutInMilliseconds"], 0);
    assert_eq!(
        v["propertyValue_executionIsolationThreadPoolKeyOverride"],
        Value::Null
    );
    assert_eq!(v["propertyValue_executionIsolationStrategy"], "SEMAPHORE");
    assert_eq!(v["isCircuitBreakerOpen"], false);
    report.circuit = CircuitStatus::Open;
    let v: Value = serde_json::from_str(&command_line(&report)).unwrap();
    assert_eq!(v["isCircuitBreakerOpen"], true);
}

// ===== field order and sets =====

/// An object's keys in document order, duplicates included.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

fn keys(json: &str) -> Vec<String> {
    serde_json::from_str::<Keys>(json).unwrap().0
}

fn key_set(json: &str) -> BTreeSet<String> {
    keys(json).into_iter().collect()
}

/// Spec §2.1, the 48 fields in order.
const COMMAND_FIELDS: [&str; 48] = [
    "type",
    "name",
    "group",
    "currentTime",
    "isCircuitBreakerOpen",
    "errorPercentage",
    "errorCount",
    "requestCount",
    "rollingCountBadRequests",
    "rollingCountCollapsedRequests",
    "rollingCountEmit",
    "rollingCountExceptionsThrown",
    "rollingCountFailure",
    "rollingCountFallbackEmit",
    "rollingCountFallbackFailure",
    "rollingCountFallbackMissing",
    "rollingCountFallbackRejection",
    "rollingCountFallbackSuccess",
    "rollingCountResponsesFromCache",
    "rollingCountSemaphoreRejected",
    "rollingCountShortCircuited",
    "rollingCountSuccess",
    "rollingCountThreadPoolRejected",
    "rollingCountTimeout",
    "currentConcurrentExecutionCount",
    "rollingMaxConcurrentExecutionCount",
    "latencyExecute_mean",
    "latencyExecute",
    "latencyTotal_mean",
    "latencyTotal",
    "propertyValue_circuitBreakerRequestVolumeThreshold",
    "propertyValue_circuitBreakerSleepWindowInMilliseconds",
    "propertyValue_circuitBreakerErrorThresholdPercentage",
    "propertyValue_circuitBreakerForceOpen",
    "propertyValue_circuitBreakerForceClosed",
    "propertyValue_circuitBreakerEnabled",
    "propertyValue_executionIsolationStrategy",
    "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
    "propertyValue_executionTimeoutInMilliseconds",
    "propertyValue_executionIsolationThreadInterruptOnTimeout",
    "propertyValue_executionIsolationThreadPoolKeyOverride",
    "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "propertyValue_requestCacheEnabled",
    "propertyValue_requestLogEnabled",
    "reportingHosts",
    "threadPool",
];

/// Spec §2.2, the 17 fields in order.
const POOL_FIELDS: [&str; 17] = [
    "type",
    "name",
    "currentTime",
    "currentActiveCount",
    "currentCompletedTaskCount",
    "currentCorePoolSize",
    "currentLargestPoolSize",
    "currentMaximumPoolSize",
    "currentPoolSize",
    "currentQueueSize",
    "currentTaskCount",
    "rollingCountThreadsExecuted",
    "rollingMaxActiveThreads",
    "rollingCountCommandRejections",
    "propertyValue_queueSizeRejectionThreshold",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "reportingHosts",
];

const PERCENTILE_KEYS: [&str; 9] = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"];

#[test]
fn command_has_the_48_fields_in_order() {
    let line = command_line(&command("GetUser", "Users", "UsersPool"));
    assert_eq!(keys(&line), COMMAND_FIELDS);
    for latency in ["latencyExecute", "latencyTotal"] {
        let start = line.find(&format!("\"{latency}\":{{")).unwrap() + latency.len() + 3;
        let end = start + line[start..].find('}').unwrap() + 1;
        assert_eq!(keys(&line[start..end]), PERCENTILE_KEYS, "{latency}");
    }
}

#[test]
fn thread_pool_has_the_17_fields_in_order() {
    assert_eq!(keys(&pool_line(&pool("P", 1))), POOL_FIELDS);
}

fn all_numbers_are_integers(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_u64() || n.is_i64(),
        Value::Object(m) => m.values().all(all_numbers_are_integers),
        Value::Array(a) => a.iter().all(all_numbers_are_integers),
        _ => true,
    }
}

#[test]
fn every_number_is_an_integer() {
    let command_json: Value =
        serde_json::from_str(&command_line(&command("GetUser", "Users", "UsersPool"))).unwrap();
    let pool_json: Value = serde_json::from_str(&pool_line(&pool("P", 1))).unwrap();
    assert!(all_numbers_are_integers(&command_json));
    assert!(all_numbers_are_integers(&pool_json));
    assert_eq!(command_json["currentTime"], NOW);
}

/// Spec §5.3: the dashboard drops a command event missing any of these.
const DASHBOARD_COMMAND_FIELDS: [&str; 37] = [
    "reportingHosts",
    "type",
    "name",
    "group",
    "isCircuitBreakerOpen",
    "errorPercentage",
    "errorCount",
    "requestCount",
    "rollingCountCollapsedRequests",
    "rollingCountExceptionsThrown",
    "rollingCountFailure",
    "rollingCountFallbackFailure",
    "rollingCountFallbackRejection",
    "rollingCountFallbackSuccess",
    "rollingCountResponsesFromCache",
    "rollingCountSemaphoreRejected",
    "rollingCountShortCircuited",
    "rollingCountSuccess",
    "rollingCountThreadPoolRejected",
    "rollingCountTimeout",
    "rollingCountBadRequests",
    "currentConcurrentExecutionCount",
    "latencyExecute_mean",
    "latencyExecute",
    "propertyValue_circuitBreakerRequestVolumeThreshold",
    "propertyValue_circuitBreakerSleepWindowInMilliseconds",
    "propertyValue_circuitBreakerErrorThresholdPercentage",
    "propertyValue_circuitBreakerForceOpen",
    "propertyValue_circuitBreakerForceClosed",
    "propertyValue_executionIsolationStrategy",
    "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
    "propertyValue_executionIsolationThreadInterruptOnTimeout",
    "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_requestCacheEnabled",
    "propertyValue_requestLogEnabled",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
];

/// Spec §5.4: what the dashboard reads of a thread pool.
const DASHBOARD_POOL_FIELDS: [&str; 15] = [
    "type",
    "name",
    "currentActiveCount",
    "currentCompletedTaskCount",
    "currentCorePoolSize",
    "currentLargestPoolSize",
    "currentMaximumPoolSize",
    "currentPoolSize",
    "currentQueueSize",
    "currentTaskCount",
    "rollingCountThreadsExecuted",
    "rollingMaxActiveThreads",
    "reportingHosts",
    "propertyValue_queueSizeRejectionThreshold",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
];

#[test]
fn every_field_the_dashboard_requires_is_present() {
    let command_keys = key_set(&command_line(&command("GetUser", "Users", "UsersPool")));
    for field in DASHBOARD_COMMAND_FIELDS {
        assert!(command_keys.contains(field), "command lacks {field}");
    }
    let v: Value =
        serde_json::from_str(&command_line(&command("GetUser", "Users", "UsersPool"))).unwrap();
    for p in ["50", "90", "99", "99.5"] {
        assert!(v["latencyExecute"][p].is_u64(), "latencyExecute[{p}]");
    }
    let pool_keys = key_set(&pool_line(&pool("P", 1)));
    for field in DASHBOARD_POOL_FIELDS {
        assert!(pool_keys.contains(field), "pool lacks {field}");
    }
}

// ===== the real captured lines =====

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hystrix-stream")
}

fn fixture_line(file: &str) -> String {
    let text = fs::read_to_string(fixtures().join(file)).unwrap();
    let line = text.lines().find(|l| l.starts_with("data: ")).unwrap();
    line["data: ".len()..].to_owned()
}

#[test]
fn every_fixture_line_parses_as_json() {
    let mut files = 0;
    let mut lines = 0;
    for entry in fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        files += 1;
        for line in fs::read_to_string(&path).unwrap().lines() {
            if let Some(json) = line.strip_prefix("data:") {
                let v: Value = serde_json::from_str(json.trim_start())
                    .unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()));
                assert!(v.is_object());
                lines += 1;
            }
        }
    }
    assert!(files >= 10 && lines > 500, "{files} files, {lines} lines");
}

/// The fields Hystrix 1.4.19 added to the 1.3 command line (spec §2.5).
const ADDED_SINCE_1_3: [&str; 7] = [
    "rollingCountBadRequests",
    "rollingCountEmit",
    "rollingCountFallbackEmit",
    "rollingCountFallbackMissing",
    "rollingMaxConcurrentExecutionCount",
    "propertyValue_executionTimeoutInMilliseconds",
    "threadPool",
];

#[test]
fn command_keys_are_the_captured_1_3_keys_plus_the_1_4_19_additions() {
    // No 1.5 command line was ever captured (fixtures README): the single-host captures are
    // in the 1.3 format, with the same 41 keys.
    let s1 = key_set(&fixture_line("s1_command_dashboard_mock.txt"));
    assert_eq!(s1.len(), 41);
    assert_eq!(key_set(&fixture_line("s3_command_turbine_test.txt")), s1);
    // The README's line went through Turbine's key order and lost `currentTime` on the way.
    let mut s4b = key_set(&fixture_line("s4b_command_readme_single_host.txt"));
    assert!(s4b.insert("currentTime".to_owned()));
    assert_eq!(s4b, s1);
    let mut expected = s1;
    expected.extend(ADDED_SINCE_1_3.map(String::from));
    let ours = key_set(&command_line(&command("GetUser", "Users", "UsersPool")));
    assert_eq!(ours, expected);
}

#[test]
fn pool_keys_are_the_captured_1_5_keys() {
    let s5 = fixture_line("s5_threadpool_v15_from_issue_springcloud3005.txt");
    let ours = pool_line(&pool("FileController", 35));
    assert_eq!(keys(&ours), keys(&s5), "same keys, same order");
    // The 2012 mock line lacks only the two fields added since.
    let s2 = key_set(&fixture_line("s2_threadpool_dashboard_mock.txt"));
    let missing: Vec<_> = key_set(&ours).difference(&s2).cloned().collect();
    assert_eq!(missing, ["reportingHosts", "rollingCountCommandRejections"]);
}

// ===== escaping =====

fn assert_round_trips(name: &str) {
    let mut report = command(name, name, name);
    report.settings.thread_pool_key_override = Some(name.to_owned());
    let line = command_line(&report);
    assert!(
        !line.contains('\n') && !line.contains('\r'),
        "one SSE line: {line:?}"
    );
    let v: Value = serde_json::from_str(&line).unwrap();
    for field in [
        "name",
        "group",
        "threadPool",
        "propertyValue_executionIsolationThreadPoolKeyOverride",
    ] {
        assert_eq!(v[field], name, "{field}");
    }
    assert_eq!(keys(&line), COMMAND_FIELDS);

    let pool_report = pool(name, 1);
    let v: Value = serde_json::from_str(&pool_line(&pool_report)).unwrap();
    assert_eq!(v["name"], name);

    let mut buf = Vec::new();
    encode::write_utilization(
        &mut buf,
        std::slice::from_ref(&report),
        std::slice::from_ref(&pool_report),
    );
    let v: Value = serde_json::from_slice(&buf).unwrap();
    assert!(v["commands"][name]["activeCount"].is_u64());
    assert!(v["threadpools"][name]["queueSize"].is_u64());

    buf.clear();
    encode::write_config(&mut buf, &[report], &[pool_report]);
    let v: Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(v["commands"][name]["groupKey"], name);
    assert!(v["threadpools"][name]["coreSize"].is_u64());
}

#[test]
fn odd_names_round_trip() {
    let mut controls = String::new();
    for c in 0u8..0x20 {
        controls.push(char::from(c));
    }
    for name in [
        "",
        "with \"quotes\"",
        r"back\slash\",
        "line\nbreak\r\nand\ttab",
        &controls,
        "\u{7f}",
        "é中文🦀",
        "\u{2028}\u{2029}",
        "data: {\"type\":\"HystrixCommand\"}\n\ndata: ",
        "</script>",
    ] {
        assert_round_trips(name);
    }
}

proptest! {
    #[test]
    fn any_name_round_trips(name in any::<String>()) {
        assert_round_trips(&name);
    }
}

// ===== utilization and configuration =====

#[test]
fn golden_utilization() {
    let commands = [command("GetUser", "Users", "UsersPool")];
    let pools = [pool("Idle", 0), pool("UsersPool", 345)];
    let tick = Encoder::new().utilization_tick(&commands, &pools);
    let expected = concat!(
        r#"data: {"type":"HystrixUtilization","commands":{"GetUser":{"activeCount":3}},"#,
        r#""threadpools":{"Idle":{"activeCount":2,"queueSize":1,"corePoolSize":10,"poolSize":8},"#,
        r#""UsersPool":{"activeCount":2,"queueSize":1,"corePoolSize":10,"poolSize":8}}}"#,
        "\n\n"
    );
    assert_eq!(std::str::from_utf8(&tick).unwrap(), expected);
}

#[test]
fn golden_config() {
    let mut report = command("GetUser", "Users", "UsersPool");
    // Forced closed, not open: Hystrix would write `isForcedClosed` from forceOpen (false).
    report.settings.circuit_breaker_force_open = false;
    report.settings.circuit_breaker_force_closed = true;
    // 3 latency buckets against 10 counter buckets: Hystrix would write 10.
    report.settings.metrics = MetricsConfig {
        rolling_stats: RollingWindow::COUNTS,
        rolling_percentile: RollingWindow::new(Duration::from_secs(30), 3).unwrap(),
    };
    let pool_report = ThreadPoolReport {
        settings: ThreadPoolSettingsReport {
            core_size: 4,
            maximum_size: 8,
            actual_maximum_size: 8,
            allow_maximum_size_to_diverge_from_core_size: true,
            max_queue_size: -1,
            queue_size_rejection_threshold: 5,
            keep_alive: Duration::from_secs(120),
            rolling_stats_window: RollingWindow::new(Duration::from_secs(20), 4).unwrap(),
        },
        ..pool("UsersPool", 0)
    };
    let tick = Encoder::new().config_tick(&[report], &[pool_report]);
    let expected = concat!(
        r#"data: {"type":"HystrixConfig","commands":{"GetUser":{"threadPoolKey":"UsersPool","#,
        r#""groupKey":"Users","execution":{"isolationStrategy":"THREAD","#,
        r#""threadPoolKeyOverride":"Override","requestCacheEnabled":false,"#,
        r#""requestLogEnabled":true,"timeoutEnabled":true,"fallbackEnabled":true,"#,
        r#""timeoutInMilliseconds":1000,"semaphoreSize":11,"fallbackSemaphoreSize":12,"#,
        r#""threadInterruptOnTimeout":true},"metrics":{"healthBucketSizeInMs":500,"#,
        r#""percentileBucketSizeInMilliseconds":10000,"percentileBucketCount":3,"#,
        r#""percentileEnabled":true,"counterBucketSizeInMilliseconds":1000,"#,
        r#""counterBucketCount":10},"circuitBreaker":{"enabled":true,"isForcedOpen":false,"#,
        r#""isForcedClosed":true,"requestVolumeThreshold":20,"errorPercentageThreshold":50,"#,
        r#""sleepInMilliseconds":5000}}},"threadpools":{"UsersPool":{"coreSize":4,"#,
        r#""maximumSize":8,"actualMaximumSize":8,"maxQueueSize":-1,"#,
        r#""queueRejectionThreshold":5,"keepAliveTimeInMinutes":2,"#,
        r#""allowMaximumSizeToDivergeFromCoreSize":true,"counterBucketSizeInMilliseconds":5000,"#,
        r#""counterBucketCount":4}},"collapsers":{}}"#,
        "\n\n"
    );
    assert_eq!(std::str::from_utf8(&tick).unwrap(), expected);
}

#[test]
fn a_disabled_timeout_in_the_configuration() {
    let mut report = command("C", "G", "P");
    report.settings.timeout = None;
    report.settings.thread_pool_key_override = None;
    let mut buf = Vec::new();
    encode::write_config(&mut buf, &[report], &[]);
    let v: Value = serde_json::from_slice(&buf).unwrap();
    let execution = &v["commands"]["C"]["execution"];
    assert_eq!(execution["timeoutEnabled"], false);
    assert_eq!(execution["timeoutInMilliseconds"], 0);
    assert_eq!(execution["threadPoolKeyOverride"], Value::Null);
}

// ===== from real metrics =====

#[test]
fn a_real_command_snapshot_encodes_its_counts() {
    use hystrix_core::{CommandMetrics, ManualClock};

    let clock = ManualClock::new();
    let metrics = CommandMetrics::with_clock(
        "Real",
        "Group",
        "Pool",
        MetricsConfig::default(),
        clock.clock(),
    );
    for event in [Ev::Success, Ev::Success, Ev::Success, Ev::Timeout] {
        metrics.mark(event);
    }
    metrics.mark_n(Ev::Collapsed, 9);
    let _running = metrics.executing();
    let report = CommandReport {
        metrics: metrics.snapshot(),
        circuit: CircuitStatus::Closed,
        settings: CommandSettingsReport::default(),
    };
    let line = command_line(&report);
    assert_eq!(keys(&line), COMMAND_FIELDS);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["rollingCountSuccess"], 3);
    assert_eq!(v["rollingCountTimeout"], 1);
    assert_eq!(v["rollingCountCollapsedRequests"], 9);
    assert_eq!(
        (&v["requestCount"], &v["errorCount"], &v["errorPercentage"]),
        (&Value::from(4), &Value::from(1), &Value::from(25))
    );
    assert_eq!(v["currentConcurrentExecutionCount"], 1);
    assert_eq!(v["rollingMaxConcurrentExecutionCount"], 1);
    assert_eq!(v["threadPool"], "Pool");
    assert_eq!(
        v["propertyValue_executionIsolationStrategy"], "SEMAPHORE",
        "the project's default isolation"
    );
}
