#![allow(clippy::unwrap_used)]
//! The real captured streams replayed byte for byte by test SSE servers on loopback (heart-beats
//! included, in chunks of awkward sizes so that lines split across TCP writes), aggregated by a
//! turbine in each mode, and checked against the naive model of `common/model.rs`: the merge
//! of each host's last message per key, computed from scratch. Then a host is removed from the
//! instances file, and the output must be the model without it.

mod common;

use std::{collections::BTreeMap, path::Path, time::Duration};

use common::{
    Response, Running, Upstream,
    model::{Model, normalize, scan},
    wait_until,
};
use hystrix_turbine::aggregate::{HostId, Mode};
use serde_json::Value as Json;
use tokio::time::Instant;

/// The bound of every wait.
const WAIT: Duration = Duration::from_secs(5);

macro_rules! fixture {
    ($file:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../stream/tests/fixtures/hystrix-stream/",
            $file
        )
    };
}

const CINEMATCH: &str = fixture!("turbine-test-cinematch.stream");
const SUBSCRIBER: &str = fixture!("turbine-test-subscriber.stream");
const DASHBOARD_MOCK: &str = fixture!("dashboard-mock.stream");

type Key = (String, String);
/// One tick's events, by key.
type Frame = BTreeMap<Key, Json>;

/// `bytes` from `offset` on, then its beginning: a replay that starts mid-line (a fragment the
/// turbine must not take for a `data:` line) and ends mid-line (never terminated, so never
/// read).
fn rotated(bytes: &[u8], offset: usize) -> Vec<u8> {
    assert!(offset > 0 && bytes[offset - 1] != b'\n' && bytes[offset] != b'\n');
    [&bytes[offset..], &bytes[..offset]].concat()
}

/// Writes `bytes` to every connection of `upstream` as they are, in chunks of 1 to 700 bytes
/// with short pauses, so that lines are split across TCP writes at random points.
async fn replay(upstream: &Upstream, bytes: Vec<u8>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let n = rng.usize(1..=700).min(rest.len());
        upstream.send(rest[..n].to_vec());
        rest = &rest[n..];
        // Every other chunk on average: far fewer chunks in flight than the test server's
        // queue holds (a lagging connection would lose chunks, and the counts below say so).
        if rng.bool() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

fn instances_file(path: &Path, upstreams: &[&Upstream]) {
    let lines: Vec<String> = upstreams.iter().map(|u| u.instance()).collect();
    std::fs::write(path, format!("# replay\n{}\n", lines.join("\n"))).unwrap();
}

/// The frames of one `/turbine.stream` client: every key's event of a tick, told apart by
/// their key order starting again (or by the `meta` event ending a tick); pings and `meta`
/// events skipped.
struct Frames {
    stream: Response,
    next: Option<(Key, Json)>,
}

impl Frames {
    async fn open(turbine: &Running) -> Self {
        let stream = Response::get(turbine.addr, "/turbine.stream?cluster=replay").await;
        assert_eq!(stream.status, 200);
        Self { stream, next: None }
    }

    async fn next(&mut self, deadline: Instant) -> Frame {
        let mut frame: Frame = self.next.take().into_iter().collect();
        loop {
            let line = self
                .stream
                .line(deadline.saturating_duration_since(Instant::now()))
                .await
                .expect("a frame in time");
            let Some(json) = line.strip_prefix("data: ") else {
                continue;
            };
            let value: Json = serde_json::from_str(json).unwrap();
            if value["type"] == "meta" {
                if frame.is_empty() {
                    continue;
                }
                return frame;
            }
            let key = (
                value["type"].as_str().unwrap().to_owned(),
                value["name"].as_str().unwrap().to_owned(),
            );
            if frame.last_key_value().is_some_and(|(last, _)| *last >= key) {
                self.next = Some((key, value));
                return frame;
            }
            frame.insert(key, value);
        }
    }
}

/// The output once it has settled: the first of two consecutive identical frames, read by a
/// fresh client (so that no frame queued from before is read).
async fn settled(turbine: &Running) -> Frame {
    let deadline = Instant::now() + WAIT;
    let mut frames = Frames::open(turbine).await;
    let mut last = frames.next(deadline).await;
    loop {
        let frame = frames.next(deadline).await;
        if frame == last {
            return frame;
        }
        last = frame;
    }
}

/// Each field of each key has values of one JSON kind over the hosts, so that the merge does
/// not depend on the order the hosts are taken in (a value of another kind than the first
/// host's is left out): the turbine numbers hosts as it finds them, the model by replay.
fn assert_one_kind_per_field(model: &Model) {
    let kind = |v: &Json| match v {
        Json::Number(n) if n.is_i64() => "integer",
        Json::Number(_) => "float",
        Json::String(_) | Json::Bool(_) | Json::Null => "text",
        Json::Object(_) => "object",
        Json::Array(_) => "array",
    };
    for (key, hosts) in &model.keys {
        let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
        for (_, message) in hosts.values() {
            for (field, value) in message {
                let k = *kinds.entry(field).or_insert(kind(value));
                assert_eq!(k, kind(value), "{key:?}.{field}: mixed kinds");
            }
        }
    }
}

/// Every key the model has, merged as the model merges it, and no other.
fn assert_matches(got: &Frame, model: &Model, when: &str) {
    let expected = model.output();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{:?}, {when}: the keys",
        model.mode
    );
    let hosts = model.hosts_per_key();
    for (key, value) in got {
        assert_eq!(
            normalize(value),
            normalize(&expected[key]),
            "{key:?} in {:?}, {when}:\n got      {value}\n expected {}",
            model.mode,
            expected[key]
        );
        assert_eq!(
            value["reportingHosts"], hosts[key],
            "{key:?} in {:?}, {when}: reportingHosts",
            model.mode
        );
        assert!(value.get("currentTime").is_none(), "currentTime is dropped");
    }
}

/// Replays `sources[i]` from host `i`, checks the settled output against the model, then
/// removes host `remove` from the instances file and checks again. Returns how many hosts
/// reported each key before the removal.
async fn replay_and_check(mode: Mode, sources: [Vec<u8>; 3], remove: usize) -> Vec<usize> {
    for source in &sources {
        assert!(!source.contains(&b'\r'), "the model splits at `\\n` only");
    }
    let upstreams = [
        Upstream::start().await,
        Upstream::start().await,
        Upstream::start().await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("instances.txt");
    instances_file(&file, &upstreams.iter().collect::<Vec<_>>());
    let mode_name = match mode {
        Mode::Turbine1 => "turbine1",
        Mode::Turbine2 => "turbine2",
    };
    let config = format!(
        "interval_ms = 100\nstale_after_ms = 600000\nidle_timeout_ms = 600000\n\
         mode = \"{mode_name}\"\n[clusters.replay]\nfile = {:?}\n",
        file.display().to_string()
    );
    let turbine = Running::start(&config).await;
    for upstream in &upstreams {
        upstream.connected().await;
    }

    // The model, fed the lines the naive scan finds in what each host sends.
    let mut model = Model::new(mode, usize::MAX);
    let mut expected_counts = Vec::new();
    for (host, source) in sources.iter().enumerate() {
        let found = scan(source);
        assert!(!found.messages.is_empty());
        for (i, json) in found.messages.iter().enumerate() {
            model.update(host as HostId, i as u64, json);
        }
        expected_counts.push((found.messages.len() as u64, found.refused as u64));
    }
    assert_one_kind_per_field(&model);

    let [a, b, c] = sources;
    tokio::join!(
        replay(&upstreams[0], a, 1),
        replay(&upstreams[1], b, 2),
        replay(&upstreams[2], c, 3),
    );

    // Every host's messages have been read, and no line refused: the turbine read the lines
    // the model did.
    let counts = || {
        let view = &turbine.turbine.clusters()[0];
        upstreams
            .iter()
            .map(|u| {
                view.instances
                    .iter()
                    .find(|i| i.name == u.instance())
                    .map_or((0, 0), |i| (i.messages, i.parse_errors))
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + WAIT;
    while counts() != expected_counts {
        assert!(
            Instant::now() < deadline,
            "{mode:?}: (messages, refused lines) per host: {:?}, expected {expected_counts:?}",
            counts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for upstream in &upstreams {
        assert_eq!(upstream.accepted(), 1, "{mode:?}: one connection each");
    }

    let reporting: Vec<usize> = model.hosts_per_key().into_values().collect();
    assert_matches(&settled(&turbine).await, &model, "all hosts");

    // The host leaves the file: the turbine closes its stream and drops its data.
    let kept: Vec<&Upstream> = (0..3)
        .filter(|i| *i != remove)
        .map(|i| &upstreams[i])
        .collect();
    instances_file(&file, &kept);
    wait_until(WAIT, || turbine.turbine.clusters()[0].instances.len() == 2).await;
    // (The test server sees a connection closed when it next writes to it.)
    wait_until(WAIT, || {
        upstreams[remove].send(":ping\n\n");
        upstreams[remove].open() == 0
    })
    .await;
    drop(upstreams);
    model.remove_host(remove as HostId);
    assert_matches(&settled(&turbine).await, &model, "a host removed");
    reporting
}

/// Host 1 replays one service, host 2 another, host 3 the dashboard's mock: ten keys, one
/// host each.
async fn three_fixtures(mode: Mode) {
    let sources = [CINEMATCH, SUBSCRIBER, DASHBOARD_MOCK].map(|p| std::fs::read(p).unwrap());
    let reporting = replay_and_check(mode, sources, 1).await;
    assert_eq!(reporting, [1; 10]);
}

/// All three hosts replay the dashboard's mock, each from another point of it (mid-line):
/// every key is reported by three hosts, then two.
async fn one_fixture_at_three_offsets(mode: Mode) {
    let mock = std::fs::read(DASHBOARD_MOCK).unwrap();
    let n = mock.len();
    let sources = [
        mock.clone(),
        rotated(&mock, n / 3 + 17),
        rotated(&mock, 2 * n / 3 + 333),
    ];
    let reporting = replay_and_check(mode, sources, 2).await;
    assert_eq!(reporting, [3; 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_fixtures_on_three_hosts_merge_as_the_model_in_turbine_1() {
    three_fixtures(Mode::Turbine1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_fixtures_on_three_hosts_merge_as_the_model_in_turbine_2() {
    three_fixtures(Mode::Turbine2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fixture_at_three_offsets_merges_as_the_model_in_turbine_1() {
    one_fixture_at_three_offsets(Mode::Turbine1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fixture_at_three_offsets_merges_as_the_model_in_turbine_2() {
    one_fixture_at_three_offsets(Mode::Turbine2).await;
}
