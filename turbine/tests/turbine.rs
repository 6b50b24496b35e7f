#![allow(clippy::unwrap_used)]
//! The turbine end to end over loopback: instances merged into `/turbine.stream`, hosts
//! leaving and falling silent, faults from upstreams, tiering, and the HTTP side. Real
//! sockets and short real intervals, with bounded waits.

mod common;

use std::time::Duration;

use common::{FAST, Response, Running, Upstream, command, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);
const EVERY: Duration = Duration::from_millis(100);

fn static_cluster(name: &str, instances: &[String]) -> String {
    let list: Vec<String> = instances.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[clusters.{name}]\ninstances = [{}]\n", list.join(", "))
}

fn is_command(v: &Value, name: &str) -> bool {
    v["type"] == "HystrixCommand" && v["name"] == name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_are_merged_as_turbine_1() {
    let mut a = Upstream::start().await;
    let mut b = Upstream::start().await;
    a.repeat(command("Get", 10, 2, false), EVERY);
    b.repeat(command("Get", 30, 0, true), EVERY);
    let config = format!(
        "{FAST}{}",
        static_cluster("default", &[a.instance(), b.instance()])
    );
    let turbine = Running::start(&config).await;

    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.headers["content-type"],
        "text/event-stream;charset=UTF-8"
    );
    assert_eq!(
        stream.headers["cache-control"],
        "no-cache, no-store, max-age=0, must-revalidate"
    );
    let merged = stream
        .event(WAIT, |v| is_command(v, "Get") && v["reportingHosts"] == 2)
        .await
        .expect("a merged event");
    assert_eq!(merged["rollingCountSuccess"], 40);
    assert_eq!(merged["rollingCountFailure"], 2);
    assert_eq!(merged["errorPercentage"], 16);
    assert_eq!(merged["latencyExecute"]["99"], 40);
    assert_eq!(
        merged["propertyValue_metricsRollingStatisticalWindowInMilliseconds"],
        20000
    );
    assert_eq!(merged["propertyValue_executionIsolationStrategy"], "THREAD");
    assert_eq!(merged["group"], "G");
    assert_eq!(
        merged["isCircuitBreakerOpen"]
            .as_str()
            .map(|s| serde_json::from_str::<Value>(s).unwrap()),
        Some(serde_json::json!({"false": 1, "true": 1}))
    );
    assert!(
        merged.get("currentTime").is_none(),
        "currentTime is dropped"
    );

    // A meta event comes too, counting both hosts.
    let meta = stream.event(WAIT, |v| v["type"] == "meta").await.unwrap();
    assert_eq!(meta["reportingHostsLast10Seconds"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turbine_2_mode_counts_properties_as_strings() {
    let mut a = Upstream::start().await;
    let mut b = Upstream::start().await;
    a.repeat(command("Get", 1, 0, false), EVERY);
    b.repeat(command("Get", 2, 0, true), EVERY);
    let config = format!(
        "{FAST}mode = \"turbine2\"\n{}",
        static_cluster("default", &[a.instance(), b.instance()])
    );
    let turbine = Running::start(&config).await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    let merged = stream
        .event(WAIT, |v| is_command(v, "Get") && v["reportingHosts"] == 2)
        .await
        .unwrap();
    assert_eq!(merged["rollingCountSuccess"], 3);
    assert_eq!(
        merged["propertyValue_metricsRollingStatisticalWindowInMilliseconds"],
        "10000"
    );
    assert_eq!(
        merged["isCircuitBreakerOpen"],
        serde_json::json!({"false": 1, "true": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_removed_from_the_file_takes_its_data_with_it() {
    let mut a = Upstream::start().await;
    let mut b = Upstream::start().await;
    a.repeat(command("Get", 1, 0, false), EVERY);
    b.repeat(command("Get", 100, 0, false), EVERY);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("instances.txt");
    std::fs::write(&file, format!("{}\n{}\n", a.instance(), b.instance())).unwrap();
    let config = format!(
        "{FAST}[clusters.api]\nfile = {:?}\n",
        file.display().to_string()
    );
    let turbine = Running::start(&config).await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream?cluster=api").await;
    stream
        .event(WAIT, |v| {
            is_command(v, "Get") && v["rollingCountSuccess"] == 101
        })
        .await
        .expect("both hosts");

    std::fs::write(&file, format!("# b is gone\n{}\n", a.instance())).unwrap();
    let alone = stream
        .event(WAIT, |v| is_command(v, "Get") && v["reportingHosts"] == 1)
        .await
        .expect("b's contribution removed");
    assert_eq!(alone["rollingCountSuccess"], 1);
    wait_until(WAIT, || b.open() == 0).await;
    assert_eq!(turbine.turbine.clusters()[0].instances.len(), 1);

    // A file that can no longer be read keeps the last good list, and /clusters says so.
    std::fs::remove_file(&file).unwrap();
    wait_until(WAIT, || {
        turbine.turbine.clusters()[0].discovery.health == "stale"
    })
    .await;
    let view = &turbine.turbine.clusters()[0];
    assert!(
        view.discovery
            .error
            .as_deref()
            .unwrap()
            .contains("instances.txt"),
        "{view:?}"
    );
    assert_eq!(view.instances.len(), 1);
    stream
        .event(WAIT, |v| {
            is_command(v, "Get") && v["rollingCountSuccess"] == 1
        })
        .await
        .expect("a still counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_host_goes_stale_and_keys_nobody_reports_disappear() {
    let mut a = Upstream::start().await;
    let mut b = Upstream::start().await;
    a.repeat(command("Get", 1, 0, false), EVERY);
    b.repeat(command("Get", 2, 0, false), EVERY);
    b.repeat(command("OnlyOnB", 5, 0, false), EVERY);
    let config = format!(
        "{FAST}{}",
        static_cluster("default", &[a.instance(), b.instance()])
    );
    let turbine = Running::start(&config).await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    stream
        .event(WAIT, |v| is_command(v, "OnlyOnB"))
        .await
        .unwrap();
    stream
        .event(WAIT, |v| is_command(v, "Get") && v["reportingHosts"] == 2)
        .await
        .unwrap();

    // b keeps its connection open with heart-beats only: its data must still go.
    b.stop_repeating();
    let pings = {
        let tx_b = &b;
        async move {
            for _ in 0..40 {
                tx_b.send("ping: \n\n");
                tokio::time::sleep(EVERY).await;
            }
        }
    };
    let check = async {
        stream
            .event(WAIT, |v| is_command(v, "Get") && v["reportingHosts"] == 1)
            .await
            .expect("b expired");
        // b's two keys were last received up to one send period apart, so they expire up to
        // one period apart: let a few ticks pass, then OnlyOnB must be gone for good.
        let settle = tokio::time::Instant::now() + 4 * EVERY;
        while tokio::time::Instant::now() < settle {
            stream.line(WAIT).await.unwrap();
        }
        let mut seen_only_on_b = false;
        for _ in 0..30 {
            let line = stream.line(WAIT).await.unwrap();
            seen_only_on_b |= line.contains("\"OnlyOnB\"");
        }
        assert!(!seen_only_on_b, "a key no host reports is removed");
    };
    tokio::join!(pings, check);
    let view = &turbine.turbine.clusters()[0];
    let b_view = view
        .instances
        .iter()
        .find(|i| i.name == b.instance())
        .unwrap();
    assert_eq!(b_view.state, "stale", "{view:?}");
    assert_eq!(view.keys, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_upstreams_do_not_stop_the_others() {
    let mut good = Upstream::start().await;
    good.repeat(command("Get", 7, 0, false), EVERY);
    let garbage = Upstream::start().await;
    let endless = Upstream::start().await;
    let binary = Upstream::start().await;
    let silent = Upstream::start().await;
    let cut = Upstream::start().await;
    let refused = Upstream::start_with("404 Not Found").await;
    let instances =
        [&good, &garbage, &endless, &binary, &silent, &cut, &refused].map(Upstream::instance);
    let config = format!(
        "{FAST}max_line_bytes = 65536\n{}",
        static_cluster("default", &instances)
    );
    let turbine = Running::start(&config).await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    for upstream in [&garbage, &endless, &binary, &silent, &cut] {
        upstream.connected().await;
    }

    garbage.send("data: {not json\n\ndata: [1,2]\n\ndata: {\"type\":\"HystrixCommand\"}\n\n");
    binary.send(
        &b"data: {\"type\":\"HystrixCommand\",\"name\":\"\xff\xfe\"}\n\n\xc3\x28\x00\n\n"[..],
    );
    cut.send("data: {\"type\":\"HystrixCommand\",\"name\":\"Cut\",\"rollingCountSuccess\":1");
    cut.close_all();
    for _ in 0..3 {
        endless.send(vec![b'x'; 40_000]);
    }

    // The good instance's data keeps flowing, alone.
    for _ in 0..3 {
        let v = stream
            .event(WAIT, |v| is_command(v, "Get"))
            .await
            .expect("good data flows");
        assert_eq!(v["reportingHosts"], 1);
        assert_eq!(v["rollingCountSuccess"], 7);
    }
    let view = turbine.turbine.clusters().remove(0);
    let by_name = |u: &Upstream| {
        view.instances
            .iter()
            .find(|i| i.name == u.instance())
            .unwrap()
            .clone()
    };
    assert_eq!(by_name(&garbage).parse_errors, 3, "{view:?}");
    assert!(by_name(&binary).parse_errors >= 1, "{view:?}");
    assert!(
        by_name(&endless).failures >= 1,
        "the endless line reset the connection"
    );
    assert!(
        by_name(&endless)
            .last_error
            .unwrap_or_default()
            .contains("longer than 65536"),
        "{view:?}"
    );
    assert!(
        by_name(&refused)
            .last_error
            .unwrap_or_default()
            .contains("404"),
        "{view:?}"
    );
    assert_eq!(view.keys, 1, "nothing but Get: {view:?}");
    // The silent one is dropped after the idle timeout and reconnected.
    wait_until(WAIT, || silent.accepted() >= 2).await;
    // The cut one reconnects promptly (first retry within 1 s).
    wait_until(Duration::from_secs(2), || cut.accepted() >= 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turbine_reads_another_turbine() {
    let mut a = Upstream::start().await;
    let mut b = Upstream::start().await;
    let mut c = Upstream::start().await;
    a.repeat(command("Get", 1, 0, false), EVERY);
    b.repeat(command("Get", 2, 0, true), EVERY);
    c.repeat(command("Get", 4, 0, false), EVERY);
    let tier1 = Running::start(&format!(
        "{FAST}{}",
        static_cluster("zone", &[a.instance(), b.instance()])
    ))
    .await;
    let tier2 = Running::start(&format!(
        "{FAST}{}",
        static_cluster(
            "default",
            &[tier1.url("/turbine.stream?cluster=zone"), c.instance()]
        )
    ))
    .await;
    let mut stream = Response::get(tier2.addr, "/turbine.stream").await;
    let merged = stream
        .event(WAIT, |v| is_command(v, "Get") && v["reportingHosts"] == 3)
        .await
        .expect("three hosts through two tiers");
    assert_eq!(merged["rollingCountSuccess"], 7);
    assert_eq!(
        merged["propertyValue_metricsRollingStatisticalWindowInMilliseconds"],
        30000
    );
    assert_eq!(
        merged["isCircuitBreakerOpen"]
            .as_str()
            .map(|s| serde_json::from_str::<Value>(s).unwrap()),
        Some(serde_json::json!({"false": 2, "true": 1})),
        "counts parsed back and composed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_an_instance_restarts() {
    let mut a = Upstream::start().await;
    a.repeat(command("Get", 1, 0, false), EVERY);
    let turbine = Running::start(&format!(
        "{FAST}{}",
        static_cluster("default", &[a.instance()])
    ))
    .await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    stream.event(WAIT, |v| is_command(v, "Get")).await.unwrap();

    let addr = a.addr;
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut again = Upstream::serve(listener, "200 OK");
    again.repeat(command("Get", 9, 0, false), EVERY);
    stream
        .event(WAIT, |v| {
            is_command(v, "Get") && v["rollingCountSuccess"] == 9
        })
        .await
        .expect("data again after the restart");
    assert!(turbine.turbine.clusters()[0].instances[0].connects >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_side() {
    let mut a = Upstream::start().await;
    a.repeat(command("Get", 1, 0, false), EVERY);
    let config = format!(
        "{FAST}allow_origin = \"http://dash.example\"\nmax_connections = 2\n{}{}",
        static_cluster("default", &[a.instance()]),
        static_cluster("other", &["127.0.0.1:1".to_owned()])
    );
    let turbine = Running::start(&config).await;

    let unknown = Response::get(turbine.addr, "/turbine.stream?cluster=nope").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().await.contains("Cluster not found: nope"));

    let mut first = Response::get(turbine.addr, "/turbine.stream?cluster=default&delay=500").await;
    assert_eq!(
        first.headers["access-control-allow-origin"],
        "http://dash.example"
    );
    first.event(WAIT, |v| is_command(v, "Get")).await.unwrap();
    // delay=500 with 100 ms ticks: events of a key at least ~500 ms apart.
    let start = tokio::time::Instant::now();
    first.event(WAIT, |v| is_command(v, "Get")).await.unwrap();
    first.event(WAIT, |v| is_command(v, "Get")).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );

    let second = Response::get(turbine.addr, "/turbine.stream?cluster=other").await;
    assert_eq!(second.status, 200);
    let third = Response::get(turbine.addr, "/turbine.stream").await;
    assert_eq!(third.status, 503);
    assert_eq!(third.text().await, "MaxConcurrentConnections reached: 2");
    drop(second);
    wait_until(WAIT, || turbine.turbine.open_connections() == 1).await;

    let clusters: Value =
        serde_json::from_str(&Response::get(turbine.addr, "/clusters").await.text().await).unwrap();
    let list = clusters["clusters"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[0]["discovery"]["kind"], "static");
    assert_eq!(list[0]["instances"][0]["state"], "connected");
    assert_eq!(list[1]["instances"][0]["state"], "retrying");
    assert!(
        list[1]["instances"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("connect")
    );

    let health = Response::get(turbine.addr, "/health").await;
    assert_eq!(health.status, 200);
    let metrics = Response::get(turbine.addr, "/metrics").await.text().await;
    assert!(
        metrics.contains("turbine_instances{cluster=\"other\",state=\"retrying\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("turbine_stream_clients 1"), "{metrics}");
    promtool_check(&metrics);
}

/// `promtool check metrics` (Debian's `prometheus`, installed by scripts/test.sh) must find
/// the exposition valid and lint-clean. Fails when promtool is missing.
fn promtool_check(text: &str) {
    use std::{
        io::Write,
        process::{Command, Stdio},
    };
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package `prometheus`, see scripts/test.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = [out.stdout, out.stderr].concat();
    assert!(
        out.status.success() && report.trim_ascii().is_empty(),
        "promtool: {}\n{text}",
        String::from_utf8_lossy(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_comes_at_least_every_3_seconds() {
    // No instance sends anything: the stream still carries heart-beats.
    let config = format!(
        "{FAST}{}",
        static_cluster("default", &["127.0.0.1:1".to_owned()])
    );
    let turbine = Running::start(&config).await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    let deadline = Duration::from_millis(3500);
    loop {
        let line = stream.line(deadline).await.expect("a ping within 3.5 s");
        if line == ": ping" {
            break;
        }
    }
}
