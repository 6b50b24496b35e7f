#![allow(clippy::unwrap_used)]
//! Hostile upstreams against a real in-process turbine over loopback: JSON nested 100,000
//! deep, numbers beyond 64 bits, a line that never ends, invalid UTF-8, and a flood of
//! distinct command names. What `tests/parse.rs` checks of the parser alone is checked here
//! where it matters: on the turbine's worker threads (2 MiB stacks, not the test's main
//! thread), in what `/turbine.stream` and `/clusters` show, and in what the connection does.
//!
//! Regressions of crashes found by the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) go at the
//! end.

mod common;

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Response, Running, Upstream, command, wait_until};
use hystrix_turbine::{ClusterView, InstanceView};
use serde_json::Value;
use tokio::{io::AsyncWriteExt, net::TcpListener, task::JoinHandle};

const WAIT: Duration = Duration::from_secs(10);

/// Ticks every 100 ms; nothing goes stale or idle within a test.
const SLOW_TO_FORGET: &str = "interval_ms = 100\nstale_after_ms = 60000\nidle_timeout_ms = 30000\n";

fn cluster(name: &str, mode: &str, instances: &[String]) -> String {
    let list: Vec<String> = instances.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        "[clusters.{name}]\nmode = \"{mode}\"\ninstances = [{}]\n",
        list.join(", ")
    )
}

fn view(turbine: &Running, name: &str) -> ClusterView {
    turbine
        .turbine
        .clusters()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap()
}

fn instance(view: &ClusterView, upstream: &str) -> InstanceView {
    view.instances
        .iter()
        .find(|i| i.name == upstream)
        .unwrap_or_else(|| panic!("no instance {upstream} in {view:?}"))
        .clone()
}

/// Whether `upstream`'s instance in `cluster` satisfies `pred` (false before it is shown).
fn instance_is(
    turbine: &Running,
    cluster: &str,
    upstream: &str,
    pred: impl Fn(&InstanceView) -> bool,
) -> bool {
    view(turbine, cluster)
        .instances
        .iter()
        .any(|i| i.name == upstream && pred(i))
}

fn is_command(v: &Value, name: &str) -> bool {
    v["type"] == "HystrixCommand" && v["name"] == name
}

/// `data: {json}\n\n` for each line, as one chunk.
fn events(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\n\n");
    }
    out
}

// ===== deep nesting =====

/// A line nested 100,000 deep is refused (or, where the parser skips it, read) on the
/// turbine's own worker threads: no stack overflow, every refused line counted, the
/// connection kept, and the host's data still flowing.
/// A turbine reading one upstream (cluster `default`, Turbine 1.x), connected.
async fn one_upstream() -> (Upstream, Running) {
    let upstream = Upstream::start().await;
    let config = format!(
        "{SLOW_TO_FORGET}{}",
        cluster("default", "turbine1", &[upstream.instance()])
    );
    let turbine = Running::start(&config).await;
    upstream.connected().await;
    (upstream, turbine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_100000_deep_is_refused_and_counted_without_a_stack_overflow() {
    const DEPTH: usize = 100_000;
    let (upstream, turbine) = one_upstream().await;

    let arrays = "[".repeat(DEPTH);
    let objects = r#"{"a":"#.repeat(DEPTH);
    let head = r#"{"type":"HystrixCommand","name":"Deep""#;
    let refused: Vec<Vec<u8>> = [
        arrays.clone(),
        format!("{arrays}{}", "]".repeat(DEPTH)),
        objects.clone(),
        format!("{head},\"x\":{arrays}"),
        format!("{head},\"x\":{objects}"),
        format!("{head},\"x\":{{\"50\":{arrays}}}}}"),
        format!("{head},\"x\":{arrays}{}}}", "]".repeat(DEPTH - 1)),
    ]
    .map(String::into_bytes)
    .to_vec();
    // Deep only where the parser skips (an array, a nested object's non-number entries):
    // read like any other line.
    let skipped: Vec<Vec<u8>> = [
        format!(
            "{head},\"rollingCountSuccess\":1,\"x\":{arrays}{}}}",
            "]".repeat(DEPTH)
        ),
        format!(
            "{head},\"rollingCountSuccess\":2,\"x\":{{\"50\":{objects}1{}}}}}",
            "}".repeat(DEPTH)
        ),
    ]
    .map(String::into_bytes)
    .to_vec();
    assert!(
        refused.iter().chain(&skipped).all(|l| l.len() < 1 << 20),
        "every line is within the default max_line_bytes, so it reaches the parser"
    );
    upstream.send(events(&refused));
    upstream.send(events(&skipped));
    upstream.send(events(&[command("After", 3, 0, false).into_bytes()]));

    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    let after = stream
        .event(WAIT, |v| is_command(v, "After"))
        .await
        .expect("the host's data flows after the deep lines");
    assert_eq!(after["rollingCountSuccess"], 3);
    let deep = stream
        .event(WAIT, |v| is_command(v, "Deep"))
        .await
        .expect("the deep but skipped lines were read");
    // The last line read for the key is the second skipped one.
    assert_eq!(deep["rollingCountSuccess"], 2);

    let expected_messages = (skipped.len() + 1) as u64;
    wait_until(WAIT, || {
        view(&turbine, "default").totals.messages == expected_messages
    })
    .await;
    let view = view(&turbine, "default");
    let up = instance(&view, &upstream.instance());
    assert_eq!(up.parse_errors, refused.len() as u64, "{view:?}");
    assert_eq!(up.failures, 0, "the connection was kept: {view:?}");
    assert_eq!(upstream.accepted(), 1, "no reconnection");
    assert_eq!(view.keys, 2, "{view:?}");
}

// ===== numbers beyond 64 bits =====

/// Integers beyond 64 bits from two hosts, merged as Turbine 1.x and 2.x: sums saturate
/// instead of wrapping, floats are counted (1.x) or truncated (2.x), and a number beyond any
/// float (`1e400`) refuses its line, counted, without losing the host's last message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_beyond_64_bits_saturate_or_are_refused_never_wrap() {
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let instances = [a.instance(), b.instance()];
    let config = format!(
        "{SLOW_TO_FORGET}{}{}",
        cluster("t1", "turbine1", &instances),
        cluster("t2", "turbine2", &instances)
    );
    let turbine = Running::start(&config).await;
    // One connection per cluster to each upstream.
    wait_until(WAIT, || a.open() == 2 && b.open() == 2).await;

    let line = concat!(
        r#"{"type":"HystrixCommand","name":"Big","#,
        r#""max":9223372036854775807,"min":-9223372036854775808,"#,
        r#""u64":18446744073709551616,"below":-9223372036854775809,"#,
        r#""pct":{"50":18446744073709551616,"99":-9223372036854775809}}"#
    );
    let out_of_range: Vec<Vec<u8>> = [
        r#"{"type":"HystrixCommand","name":"Big","max":1e400}"#,
        r#"{"type":"HystrixCommand","name":"Big","max":-1e400}"#,
        r#"{"type":"HystrixCommand","name":"Big","pct":{"50":1e400}}"#,
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec();
    for upstream in [&a, &b] {
        upstream.send(events(&[line.as_bytes().to_vec()]));
        upstream.send(events(&out_of_range));
    }
    let refused = out_of_range.len() as u64;
    wait_until(WAIT, || {
        ["t1", "t2"].iter().all(|c| {
            let v = view(&turbine, c);
            v.totals.messages == 2 && v.totals.parse_errors == 2 * refused
        })
    })
    .await;

    let two_to_the_64 = 2f64.powi(64);
    let minus_two_to_the_63 = -(2f64.powi(63));

    let mut t1 = Response::get(turbine.addr, "/turbine.stream?cluster=t1").await;
    let big = t1
        .event(WAIT, |v| is_command(v, "Big") && v["reportingHosts"] == 2)
        .await
        .unwrap();
    // Integers: summed, saturating; a negative sum is written as 0 (Turbine 1.x).
    assert_eq!(big["max"].as_i64(), Some(i64::MAX), "{big}");
    assert_eq!(big["min"].as_i64(), Some(0), "{big}");
    // Beyond 64 bits a number is a float; Turbine 1.x counts floats' values, and both hosts
    // sent the same one: written as itself, a string.
    let float_text = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    assert_eq!(float_text(&big["u64"]), Some(two_to_the_64), "{big}");
    assert_eq!(
        float_text(&big["below"]),
        Some(minus_two_to_the_63),
        "{big}"
    );
    // Percentile maps are integers: each value saturates, then the sum.
    assert_eq!(big["pct"]["50"].as_i64(), Some(i64::MAX), "{big}");
    assert_eq!(big["pct"]["99"].as_i64(), Some(0), "{big}");

    let mut t2 = Response::get(turbine.addr, "/turbine.stream?cluster=t2").await;
    let big = t2
        .event(WAIT, |v| is_command(v, "Big") && v["reportingHosts"] == 2)
        .await
        .unwrap();
    // Turbine 2.x truncates floats to integers and sums everything, saturating both ways.
    assert_eq!(big["max"].as_i64(), Some(i64::MAX), "{big}");
    assert_eq!(big["min"].as_i64(), Some(i64::MIN), "{big}");
    assert_eq!(big["u64"].as_i64(), Some(i64::MAX), "{big}");
    assert_eq!(big["below"].as_i64(), Some(i64::MIN), "{big}");
    assert_eq!(big["pct"]["50"].as_i64(), Some(i64::MAX), "{big}");
    assert_eq!(big["pct"]["99"].as_i64(), Some(i64::MIN), "{big}");

    for c in ["t1", "t2"] {
        let v = view(&turbine, c);
        for upstream in [&a, &b] {
            let i = instance(&v, &upstream.instance());
            assert_eq!(i.parse_errors, refused, "{v:?}");
            assert_eq!(i.failures, 0, "{v:?}");
            assert!(
                i.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("line skipped")),
                "{v:?}"
            );
        }
    }
}

// ===== a line that never ends =====

/// An upstream whose every connection gets one good event, then one line that never ends,
/// written until the connection fails or `LIMIT` bytes went; it records how many bytes each
/// connection took. With a `pause`, the event and the line go in separate writes that far
/// apart (so the turbine reads them apart); without, in one write.
struct Endless {
    addr: std::net::SocketAddr,
    taken: Arc<Mutex<Vec<u64>>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Endless {
    const LIMIT: u64 = 256 << 20;

    async fn start(good: String, pause: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (taken, accepted) = (taken.clone(), accepted.clone());
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (taken, good) = (taken.clone(), good.clone());
                    tokio::spawn(Self::connection(socket, good, pause, taken));
                }
            }
        });
        Self {
            addr,
            taken,
            accepted,
            task,
        }
    }

    async fn connection(
        mut socket: tokio::net::TcpStream,
        good: String,
        pause: Option<Duration>,
        taken: Arc<Mutex<Vec<u64>>>,
    ) {
        if common::read_head(&mut socket).await.is_none() {
            return;
        }
        let mut start = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
             Connection: close\r\n\r\ndata: {good}\n\n"
        )
        .into_bytes();
        if let Some(pause) = pause {
            if socket.write_all(&start).await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
            start.clear();
        }
        // The long line's start, with the event when there is no pause: one write.
        start.extend_from_slice(b"data: ");
        start.resize(start.len() + 4096, b'x');
        if socket.write_all(&start).await.is_err() {
            taken.lock().unwrap().push(0);
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 4096u64;
        while sent < Self::LIMIT {
            if socket.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        taken.lock().unwrap().push(sent);
    }

    fn taken(&self) -> Vec<u64> {
        self.taken.lock().unwrap().clone()
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A line longer than `max_line_bytes` resets the connection as soon as the limit is passed:
/// the turbine stops reading, so what the upstream could push before the reset is bounded
/// by the sockets' buffers, not by the line (a reader holding the line would take all
/// `LIMIT` bytes). The reset is counted, the good event read before it kept, and the
/// instance reconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_past_max_line_bytes_resets_the_connection_and_is_not_held() {
    const MAX_LINE: usize = 1024;
    let upstream = Endless::start(
        command("Before", 4, 0, false),
        Some(Duration::from_millis(200)),
    )
    .await;
    let name = upstream.addr.to_string();
    let config = format!(
        "{SLOW_TO_FORGET}max_line_bytes = {MAX_LINE}\n{}",
        cluster("default", "turbine1", std::slice::from_ref(&name))
    );
    let turbine = Running::start(&config).await;

    wait_until(WAIT, || upstream.taken().len() >= 2).await;
    // Loopback's buffers (tcp_rmem at most 32 MiB here, tcp_wmem 4 MiB) bound what a
    // connection can take without being read; a quarter of LIMIT is well above them.
    let bound = Endless::LIMIT / 4;
    for taken in upstream.taken() {
        assert!(
            taken < bound,
            "a connection took {taken} bytes of one line (limit {MAX_LINE})"
        );
    }
    assert!(upstream.accepted.load(Ordering::SeqCst) >= 2, "reconnected");

    wait_until(WAIT, || {
        instance_is(&turbine, "default", &name, |up| {
            up.failures >= 2 && up.messages >= 2
        })
    })
    .await;
    let view = view(&turbine, "default");
    let up = instance(&view, &name);
    assert!(
        up.last_error
            .as_deref()
            .is_some_and(|e| e.contains(&format!("longer than {MAX_LINE} bytes"))),
        "{view:?}"
    );
    assert_eq!(
        up.parse_errors, 0,
        "an over-long line is no parse error: {view:?}"
    );
    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    let before = stream
        .event(WAIT, |v| is_command(v, "Before"))
        .await
        .expect("the event before the long line is kept");
    assert_eq!(before["rollingCountSuccess"], 4);
}

/// A complete event read in the same chunk as the start of an over-long line is delivered
/// before the connection is reset, as `LineReader::feed` hands it over before failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_the_same_chunk_as_an_over_long_line_is_not_lost() {
    const MAX_LINE: usize = 1024;
    let upstream = Endless::start(command("SameChunk", 4, 0, false), None).await;
    let name = upstream.addr.to_string();
    let config = format!(
        "{SLOW_TO_FORGET}max_line_bytes = {MAX_LINE}\n{}",
        cluster("default", "turbine1", std::slice::from_ref(&name))
    );
    let turbine = Running::start(&config).await;
    wait_until(WAIT, || {
        instance_is(&turbine, "default", &name, |up| up.failures >= 3)
    })
    .await;
    let view = view(&turbine, "default");
    let up = instance(&view, &name);
    assert!(
        up.messages >= 1,
        "{} connections each sent a complete event before the long line, none was \
         delivered: {view:?}",
        up.failures
    );
    assert_eq!(view.keys, 1, "{view:?}");
}

// ===== invalid UTF-8 =====

/// Invalid UTF-8 anywhere in a data line refuses the line, counted, without touching what
/// the host sent before and without resetting the connection; nothing of it reaches the
/// stream (no U+FFFD in a name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_data_line_is_refused_and_counted() {
    let (upstream, turbine) = one_upstream().await;

    let templates: [&[u8]; 6] = [
        br#"{"type":"HystrixCommand","name":"Get@","rollingCountSuccess":100}"#,
        br#"{"type":"HystrixCommand","name":"Get","rollingCountSuccess":100,"k@":1}"#,
        br#"{"type":"HystrixCommand","name":"Get","rollingCountSuccess":100,"s":"@"}"#,
        br#"{"type":"HystrixCommand","name":"Get","rollingCountSuccess":100,"x":["@"]}"#,
        br#"{"type":"HystrixCommand","name":"Get","rollingCountSuccess":100,"p":{"@":1}}"#,
        br#"{"type":"HystrixCommand@","name":"Get","rollingCountSuccess":100}"#,
    ];
    // A lone continuation byte, an overlong `/`, a UTF-8 surrogate, a cut sequence, 0xff.
    let bad: [&[u8]; 5] = [
        b"\x80",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xe2\x82",
        b"\xff\xfe",
    ];
    let mut lines = Vec::new();
    for template in templates {
        let at = template.iter().position(|&b| b == b'@').unwrap();
        for bytes in bad {
            lines.push([&template[..at], bytes, &template[at + 1..]].concat());
        }
    }
    upstream.send(events(&[command("Get", 5, 0, false).into_bytes()]));
    upstream.send(events(&lines));

    let refused = lines.len() as u64;
    wait_until(WAIT, || {
        let v = view(&turbine, "default");
        v.totals.messages == 1 && v.totals.parse_errors == refused
    })
    .await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    let mut names = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let Some(line) = stream.line(Duration::from_millis(500)).await else {
            continue;
        };
        assert!(!line.contains('\u{fffd}'), "{line}");
        if let Some(json) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(json).unwrap();
            if v["type"] != "meta" {
                // The refused lines claimed 100 successes of Get: the host's last good
                // message stands.
                assert_eq!(v["rollingCountSuccess"], 5, "{v}");
                names.insert(format!("{}/{}", v["type"], v["name"]));
            }
        }
    }
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["\"HystrixCommand\"/\"Get\""]
    );
    let view = view(&turbine, "default");
    assert_eq!(view.keys, 1, "{view:?}");
    assert_eq!(
        instance(&view, &upstream.instance()).failures,
        0,
        "{view:?}"
    );
    assert_eq!(upstream.accepted(), 1);

    // Still read: a later good line replaces the first.
    upstream.send(events(&[command("Get", 6, 0, false).into_bytes()]));
    stream
        .event(WAIT, |v| {
            is_command(v, "Get") && v["rollingCountSuccess"] == 6
        })
        .await
        .expect("the connection still delivers");
}

// ===== a flood of command names =====

/// The HystrixCommand names of one whole frame of `/turbine.stream` (each key once).
async fn one_frame(turbine: &Running, cluster: &str) -> BTreeSet<String> {
    let mut stream =
        Response::get(turbine.addr, &format!("/turbine.stream?cluster={cluster}")).await;
    let mut names = BTreeSet::new();
    loop {
        let Some(v) = stream.event(WAIT, |v| v["type"] == "HystrixCommand").await else {
            panic!("the stream stopped; {} names so far", names.len());
        };
        let name = v["name"].as_str().unwrap().to_owned();
        if !names.insert(name) {
            return names;
        }
    }
}

/// Distinct command names past `max_keys_per_cluster`: the cluster keeps the first ones up
/// to the cap, drops the rest, and counts every dropped message, in `Turbine::clusters()` and
/// in `/clusters`; the keys it holds still update; another cluster is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_command_names_stops_at_the_key_cap_and_is_counted() {
    const CAP: usize = 50;
    const SENT: usize = 2_000;
    let flood = Upstream::start().await;
    let calm = Upstream::start().await;
    let config = format!(
        "{SLOW_TO_FORGET}max_keys_per_cluster = {CAP}\n{}{}",
        cluster("flooded", "turbine1", &[flood.instance()]),
        cluster("calm", "turbine1", &[calm.instance()])
    );
    let turbine = Running::start(&config).await;
    flood.connected().await;
    calm.connected().await;

    let names: Vec<String> = (0..SENT).map(|i| format!("Flood-{i:05}")).collect();
    let lines: Vec<Vec<u8>> = names
        .iter()
        .map(|n| command(n, 1, 0, false).into_bytes())
        .collect();
    flood.send(events(&lines));
    calm.send(events(&[command("Calm", 1, 0, false).into_bytes()]));

    // Every message is either a key kept or a message dropped.
    wait_until(WAIT, || {
        let v = view(&turbine, "flooded");
        v.keys + v.keys_dropped as usize == SENT
    })
    .await;
    let flooded = view(&turbine, "flooded");
    assert_eq!(flooded.keys, CAP, "{:?}", flooded.totals);
    assert_eq!(flooded.keys_dropped, (SENT - CAP) as u64);
    assert_eq!(flooded.totals.messages, SENT as u64);
    assert_eq!(flooded.totals.parse_errors, 0);
    // The first names in are the ones kept.
    let kept: BTreeSet<String> = names[..CAP].iter().cloned().collect();
    assert_eq!(one_frame(&turbine, "flooded").await, kept);

    let clusters: Value =
        serde_json::from_str(&Response::get(turbine.addr, "/clusters").await.text().await).unwrap();
    let shown = clusters["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "flooded")
        .unwrap();
    assert_eq!(shown["keys"], CAP);
    assert_eq!(shown["keys_dropped"], SENT - CAP);

    // The flood again: the kept keys update (not dropped), the others are dropped again.
    let again: Vec<Vec<u8>> = names
        .iter()
        .map(|n| command(n, 2, 0, false).into_bytes())
        .collect();
    flood.send(events(&again));
    wait_until(WAIT, || {
        view(&turbine, "flooded").totals.messages == 2 * SENT as u64
    })
    .await;
    wait_until(WAIT, || {
        view(&turbine, "flooded").keys_dropped >= 2 * (SENT - CAP) as u64
    })
    .await;
    let flooded = view(&turbine, "flooded");
    assert_eq!(flooded.keys, CAP);
    assert_eq!(flooded.keys_dropped, 2 * (SENT - CAP) as u64);
    let mut stream = Response::get(turbine.addr, "/turbine.stream?cluster=flooded").await;
    let first = stream
        .event(WAIT, |v| is_command(v, &names[0]))
        .await
        .unwrap();
    assert_eq!(first["rollingCountSuccess"], 2, "{first}");

    let calm_view = view(&turbine, "calm");
    assert_eq!((calm_view.keys, calm_view.keys_dropped), (1, 0));
}

// ===== hostile configuration files =====

/// Configuration files an attacker (or a broken generator) could write: nesting 100,000
/// deep, integers beyond 64 bits or below zero, floats beyond any range, invalid UTF-8. Each
/// is an error naming what is wrong, never a panic or a stack overflow (on a 2 MiB stack,
/// as a reload in a task would have).
#[test]
fn hostile_configuration_files_are_refused_with_an_error() {
    const DEPTH: usize = 100_000;
    let cluster = "[clusters.default]\ninstances = [\"127.0.0.1:1\"]\n";
    let cases: Vec<(String, &str)> = vec![
        (format!("instances = {}", "[".repeat(DEPTH)), "fuzz.toml"),
        (
            format!(
                "[clusters.default]\ninstances = {}{}",
                "[".repeat(DEPTH),
                "]".repeat(DEPTH)
            ),
            "instances",
        ),
        (
            format!("[clusters.default]\npath = {}", "{ a = ".repeat(DEPTH)),
            "fuzz.toml",
        ),
        (format!("[{}a]", "a.".repeat(DEPTH)), "fuzz.toml"),
        (
            format!("max_keys_per_cluster = 18446744073709551616\n{cluster}"),
            "max_keys_per_cluster",
        ),
        (format!("max_line_bytes = -1\n{cluster}"), "max_line_bytes"),
        (format!("interval_ms = 1e400\n{cluster}"), "interval_ms"),
        (
            format!("stale_after_ms = -9223372036854775809\n{cluster}"),
            "stale_after_ms",
        ),
    ];
    let results = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            cases
                .into_iter()
                .map(|(text, named)| {
                    let result = hystrix_turbine::Config::from_toml(&text, "fuzz.toml")
                        .and_then(|c| c.plan().map(|_| ()));
                    (text.chars().take(60).collect::<String>(), named, result)
                })
                .collect::<Vec<_>>()
        })
        .unwrap()
        .join()
        .expect("no panic, no stack overflow");
    for (text, named, result) in results {
        match result {
            Err(e) => assert!(e.0.contains(named), "{text:?}: {e}"),
            Ok(()) => panic!("{text:?} accepted"),
        }
    }

    // Invalid UTF-8 in a file: an error naming the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turbine.toml");
    std::fs::write(&path, b"listen = \"127.0.0.1:1\xff\"\n[clusters.default]\n").unwrap();
    let e = hystrix_turbine::Config::load(&path).unwrap_err();
    assert!(e.0.contains("turbine.toml"), "{e}");
}
