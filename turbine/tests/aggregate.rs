#![allow(clippy::unwrap_used)]
//! The aggregator against a naive model of the merge rules of spec §4.3 (Turbine 1.x) and
//! §4.7 (Turbine 2.x), computed from scratch out of each host's last message as parsed by
//! serde_json (`common/model.rs`, shared with `replay.rs`): random operation sequences, the real captured streams replayed as from several
//! hosts, tiering, and the edge cases (key cap, `meta`/`deleteData`, host removal, expiry).

mod common;

use std::{collections::BTreeMap, fs, sync::Arc, time::Duration};

use common::model::{Model, counts_in, normalize};
use hystrix_turbine::{
    aggregate::{Aggregator, HostId, Key, Mode},
    parse::{Line, LineReader, Parser},
};
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use tokio::time::Instant;

macro_rules! fixture {
    ($file:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../stream/tests/fixtures/hystrix-stream/",
            $file
        )
    };
}

// ===== comparing =====

/// Splits `write`'s output into its events, checking the framing: `data: {json}\n\n` each.
fn events(buf: &[u8]) -> Vec<&[u8]> {
    let mut rest = buf;
    let mut events = Vec::new();
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(b"data: ")
            .unwrap_or_else(|| panic!("not an event: {:?}", String::from_utf8_lossy(rest)));
        let end = rest.iter().position(|&b| b == b'\n').unwrap();
        events.push(&rest[..end]);
        rest = rest[end..].strip_prefix(b"\n\n").unwrap();
    }
    events
}

fn key(kind: &str, name: &str) -> Key {
    Key {
        kind: Arc::from(kind),
        name: Arc::from(name),
    }
}

/// The aggregator's output, by key, after checking framing, order and `merged`.
fn output_of(agg: &Aggregator) -> BTreeMap<(String, String), Json> {
    let mut buf = Vec::new();
    agg.write(&mut buf);
    let mut out = BTreeMap::new();
    let mut previous: Option<(String, String)> = None;
    for event in events(&buf) {
        let value: Json = serde_json::from_slice(event).unwrap();
        let k = (
            value["type"].as_str().unwrap().to_owned(),
            value["name"].as_str().unwrap().to_owned(),
        );
        assert!(value.get("currentTime").is_none(), "currentTime is dropped");
        assert!(previous.as_ref() < Some(&k), "in key order, once each");
        assert_eq!(
            agg.merged(&key(&k.0, &k.1)).unwrap(),
            event,
            "merged() = write()"
        );
        previous = Some(k.clone());
        out.insert(k, value);
    }
    assert_eq!(out.len(), agg.len());
    assert_eq!(agg.is_empty(), out.is_empty());
    let keys: Vec<(String, String)> = agg
        .keys()
        .map(|k| (k.kind.to_string(), k.name.to_string()))
        .collect();
    assert_eq!(keys, out.keys().cloned().collect::<Vec<_>>());
    out
}

fn assert_same(agg: &Aggregator, model: &Model) {
    let got = output_of(agg);
    let expected = model.output();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "keys"
    );
    for (k, value) in &got {
        assert_eq!(
            normalize(value),
            normalize(&expected[k]),
            "{k:?} in {:?}:\n got      {value}\n expected {}",
            model.mode,
            expected[k]
        );
    }
    assert_eq!(agg.dropped(), model.dropped);
    assert_eq!(agg.mode(), model.mode);
}

/// Both, fed the same lines.
struct Pair {
    agg: Aggregator,
    model: Model,
    parsers: BTreeMap<HostId, Parser>,
    base: Instant,
}

impl Pair {
    fn new(mode: Mode, max_keys: usize) -> Self {
        Self {
            agg: Aggregator::new(mode).max_keys(max_keys),
            model: Model::new(mode, max_keys),
            parsers: BTreeMap::new(),
            base: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// One `data:` line's JSON from `host` at `ms`.
    fn update(&mut self, host: HostId, ms: u64, json: &str) {
        let message = self
            .parsers
            .entry(host)
            .or_default()
            .parse(json.as_bytes())
            .unwrap();
        let kept = self.agg.update(host, self.at(ms), message);
        assert_eq!(
            kept,
            self.model.update(host, ms, json),
            "update's result: {json}"
        );
    }

    fn remove_host(&mut self, host: HostId) {
        self.agg.remove_host(host);
        self.model.remove_host(host);
    }

    fn expire(&mut self, before: u64) {
        let removed = self.agg.expire(self.at(before));
        assert_eq!(removed, self.model.expire(before), "expire's count");
    }

    fn check(&self) {
        assert_same(&self.agg, &self.model);
    }
}

const MODES: [Mode; 2] = [Mode::Turbine1, Mode::Turbine2];

fn merged_json(agg: &Aggregator, kind: &str, name: &str) -> Json {
    serde_json::from_slice(&agg.merged(&key(kind, name)).unwrap()).unwrap()
}

fn agg_of(mode: Mode, lines: &[&str]) -> Aggregator {
    let mut agg = Aggregator::new(mode);
    let now = Instant::now();
    for (host, line) in lines.iter().enumerate() {
        let message = Parser::new().parse(line.as_bytes()).unwrap();
        assert!(agg.update(host as HostId, now, message));
    }
    agg
}

// ===== the rules, by example =====

const HOSTS_3: [&str; 3] = [
    r#"{"type":"HystrixCommand","name":"Get","currentTime":1000,"group":"G","isCircuitBreakerOpen":false,"rollingCountSuccess":5,"errorPercentage":-1,"latencyExecute_mean":-1,"latencyExecute":{"0":-1,"50":-1,"99.5":4},"propertyValue_metricsRollingStatisticalWindowInMilliseconds":10000,"propertyValue_circuitBreakerEnabled":true,"propertyValue_executionIsolationStrategy":"THREAD","propertyValue_executionIsolationThreadPoolKeyOverride":null,"ratio":12.5,"unknown":"x","reportingHosts":1}"#,
    r#"{"type":"HystrixCommand","name":"Get","currentTime":2000,"group":"G","isCircuitBreakerOpen":true,"rollingCountSuccess":7,"errorPercentage":-1,"latencyExecute_mean":3,"latencyExecute":{"0":-1,"50":2,"99.5":6},"propertyValue_metricsRollingStatisticalWindowInMilliseconds":10000,"propertyValue_circuitBreakerEnabled":true,"propertyValue_executionIsolationStrategy":"SEMAPHORE","propertyValue_executionIsolationThreadPoolKeyOverride":null,"ratio":12.5,"reportingHosts":2}"#,
    r#"{"type":"HystrixCommand","name":"Get","currentTime":3000,"group":"G","isCircuitBreakerOpen":false,"rollingCountSuccess":1,"errorPercentage":-1,"latencyExecute_mean":-1,"latencyExecute":{"0":-1,"50":5,"99.5":1},"propertyValue_metricsRollingStatisticalWindowInMilliseconds":20000,"propertyValue_circuitBreakerEnabled":true,"propertyValue_executionIsolationStrategy":"THREAD","propertyValue_executionIsolationThreadPoolKeyOverride":null,"ratio":0.25}"#,
];

#[test]
fn turbine1_rules_by_example() {
    let agg = agg_of(Mode::Turbine1, &HOSTS_3);
    let got = merged_json(&agg, "HystrixCommand", "Get");
    let expected = json!({
        "type": "HystrixCommand",
        "name": "Get",
        "group": "G",
        "isCircuitBreakerOpen": "{\"false\":2,\"true\":1}",
        "rollingCountSuccess": 13,
        "errorPercentage": 0,
        "latencyExecute_mean": 1,
        "latencyExecute": {"0": 0, "50": 6, "99.5": 11},
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": 40000,
        "propertyValue_circuitBreakerEnabled": true,
        "propertyValue_executionIsolationStrategy": "{\"SEMAPHORE\":1,\"THREAD\":2}",
        "propertyValue_executionIsolationThreadPoolKeyOverride": "null",
        "ratio": "{\"0.25\":1,\"12.5\":2}",
        "unknown": "x",
        "reportingHosts": 4,
    });
    assert_eq!(normalize(&got), normalize(&expected));
    // The counts string is compact JSON.
    let text = String::from_utf8(agg.merged(&key("HystrixCommand", "Get")).unwrap()).unwrap();
    assert!(
        text.contains(r#""isCircuitBreakerOpen":"{\"false\":2,\"true\":1}""#),
        "{text}"
    );
    assert_eq!(agg.mode(), Mode::Turbine1);
    assert_eq!(Mode::default(), Mode::Turbine1);
}

#[test]
fn turbine2_rules_by_example() {
    let agg = agg_of(Mode::Turbine2, &HOSTS_3);
    let got = merged_json(&agg, "HystrixCommand", "Get");
    let expected = json!({
        "type": "HystrixCommand",
        "name": "Get",
        "group": "G",
        "isCircuitBreakerOpen": {"false": 2, "true": 1},
        "rollingCountSuccess": 13,
        "errorPercentage": -3,
        "latencyExecute_mean": 1,
        "latencyExecute": {"0": -3, "50": 6, "99.5": 11},
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": {"10000": 2, "20000": 1},
        "propertyValue_circuitBreakerEnabled": true,
        "propertyValue_executionIsolationStrategy": {"SEMAPHORE": 1, "THREAD": 2},
        "propertyValue_executionIsolationThreadPoolKeyOverride": "null",
        "ratio": 24,
        "unknown": "x",
        "reportingHosts": 4,
    });
    assert_eq!(got, expected);
    // One value of a numeric property: a string (`"10000"`), spec §4.7.
    let agg = agg_of(Mode::Turbine2, &HOSTS_3[..2]);
    let got = merged_json(&agg, "HystrixCommand", "Get");
    assert_eq!(
        got["propertyValue_metricsRollingStatisticalWindowInMilliseconds"],
        "10000"
    );
}

#[test]
fn both_modes_match_the_model_on_the_examples() {
    for mode in MODES {
        for n in 1..=3 {
            let mut pair = Pair::new(mode, 10);
            for (host, line) in HOSTS_3[..n].iter().enumerate() {
                pair.update(host as HostId, 0, line);
                pair.check();
            }
        }
    }
}

#[test]
fn no_value_left_is_an_empty_string_in_1x() {
    // A tier-1 count string whose counts are all 0.
    for (mode, expected) in [(Mode::Turbine1, json!("")), (Mode::Turbine2, json!({}))] {
        let agg = agg_of(
            mode,
            &[r#"{"type":"HystrixCommand","name":"A","group":"{\"G\":0}","x":1}"#],
        );
        assert_eq!(merged_json(&agg, "HystrixCommand", "A")["group"], expected);
    }
}

#[test]
fn a_host_replaces_its_own_last_message() {
    for mode in MODES {
        let mut pair = Pair::new(mode, 10);
        pair.update(
            1,
            0,
            r#"{"type":"HystrixCommand","name":"A","rollingCountSuccess":5,"group":"G"}"#,
        );
        pair.update(
            1,
            1,
            r#"{"type":"HystrixCommand","name":"A","rollingCountSuccess":2}"#,
        );
        pair.check();
        let got = merged_json(&pair.agg, "HystrixCommand", "A");
        assert_eq!(got["rollingCountSuccess"], 2);
        assert_eq!(got["reportingHosts"], 1);
        assert!(got.get("group").is_none(), "the last message has no group");
    }
}

#[test]
fn sums_saturate_rather_than_overflow() {
    for mode in MODES {
        let big = r#"{"type":"T","name":"N","n":9223372036854775807,"m":{"50":9223372036854775807},"reportingHosts":9223372036854775807}"#;
        let small =
            r#"{"type":"T","name":"N","n":-9223372036854775808,"m":{"50":-9223372036854775808}}"#;
        let agg = agg_of(mode, &[big, big, big]);
        let got = merged_json(&agg, "T", "N");
        assert_eq!(got["n"], i64::MAX);
        assert_eq!(got["m"]["50"], i64::MAX);
        assert_eq!(got["reportingHosts"], i64::MAX);
        let agg = agg_of(mode, &[small, small]);
        let got = merged_json(&agg, "T", "N");
        let expected = if mode == Mode::Turbine1 { 0 } else { i64::MIN };
        assert_eq!(got["n"], expected);
        assert_eq!(got["m"]["50"], expected);
    }
}

/// Regression (`Acc::add`, the `Acc::Counts` arm): counts were once added with `+=`, so two
/// hosts relaying a tier-1 count string near `i64::MAX` overflowed: a panic in a debug build
/// (the aggregation task died on remote input), a wrapped negative count in release. Counts
/// saturate, as sums and maps do.
#[test]
fn counts_near_i64_max_saturate_rather_than_overflow() {
    for mode in MODES {
        let line = r#"{"type":"T","name":"N","group":"{\"a\":9223372036854775807,\"b\":1}"}"#;
        let result = std::panic::catch_unwind(|| {
            let agg = agg_of(mode, &[line, line]);
            merged_json(&agg, "T", "N")
        });
        let got = result.unwrap_or_else(|_| panic!("{mode:?}: the merge panicked"));
        let counts = match &got["group"] {
            Json::String(s) => counts_in(s).unwrap(),
            Json::Object(o) => o
                .iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
                .collect(),
            other => panic!("{other}"),
        };
        assert_eq!(
            counts,
            [("a".to_owned(), i64::MAX), ("b".to_owned(), 2)],
            "{mode:?}"
        );
    }
}

// ===== the edge cases =====

#[test]
fn the_key_cap_drops_new_keys_and_counts_them() {
    for mode in MODES {
        let mut pair = Pair::new(mode, 2);
        let line = |kind: &str, name: &str, n: i64| {
            format!(r#"{{"type":"{kind}","name":"{name}","rollingCountSuccess":{n}}}"#)
        };
        pair.update(1, 0, &line("HystrixCommand", "A", 1));
        pair.update(1, 0, &line("HystrixThreadPool", "A", 1));
        assert_eq!(pair.agg.dropped(), 0);
        // A third key, from any host: dropped and counted.
        pair.update(1, 0, &line("HystrixCommand", "B", 1));
        pair.update(2, 0, &line("HystrixCommand", "C", 1));
        assert_eq!(pair.agg.dropped(), 2);
        assert_eq!(pair.agg.len(), 2);
        // The keys held still update, from every host.
        pair.update(1, 1, &line("HystrixCommand", "A", 10));
        pair.update(2, 1, &line("HystrixCommand", "A", 5));
        pair.check();
        assert_eq!(
            merged_json(&pair.agg, "HystrixCommand", "A")["rollingCountSuccess"],
            15
        );
        assert!(pair.agg.merged(&key("HystrixCommand", "B")).is_none());
        // A key freed makes room.
        pair.remove_host(1);
        pair.remove_host(2);
        pair.update(2, 2, &line("HystrixThreadPool", "A", 1));
        pair.update(3, 2, &line("HystrixCommand", "B", 1));
        pair.check();
        assert_eq!(pair.agg.dropped(), 2);
        pair.update(3, 2, &line("HystrixCommand", "C", 1));
        assert_eq!(pair.agg.dropped(), 3);
        pair.check();
    }
    // A cap of zero keeps nothing.
    let mut agg = Aggregator::new(Mode::Turbine1).max_keys(0);
    let m = Parser::new().parse(br#"{"type":"T","name":"N"}"#).unwrap();
    assert!(!agg.update(1, Instant::now(), m));
    assert_eq!((agg.len(), agg.dropped()), (0, 1));
    assert_eq!(Aggregator::DEFAULT_MAX_KEYS, 10_000);
}

#[test]
fn meta_and_delete_data_are_not_aggregated() {
    let meta = r#"{"reportingHostsLast10Seconds":0,"name":"meta","type":"meta","timestamp":1477312614662}"#;
    let delete = r#"{"deleteData":"true", "type":"HystrixCommand", "name":"A"}"#;
    let data = r#"{"type":"HystrixCommand","name":"A","rollingCountSuccess":3}"#;
    for mode in MODES {
        let mut pair = Pair::new(mode, 1);
        pair.update(1, 0, meta);
        pair.update(1, 0, delete);
        assert!(pair.agg.is_empty());
        assert_eq!(pair.agg.dropped(), 0, "not counted as dropped either");
        pair.update(1, 0, data);
        // At the cap: meta events are still refused without being counted.
        pair.update(2, 0, meta);
        // A deleteData order leaves what the hosts sent alone.
        pair.update(1, 1, delete);
        pair.update(2, 1, delete);
        pair.check();
        assert_eq!(
            merged_json(&pair.agg, "HystrixCommand", "A")["rollingCountSuccess"],
            3
        );
        assert!(pair.agg.merged(&key("meta", "meta")).is_none());
        assert_eq!(pair.agg.dropped(), 0);
    }
    // The fixture's meta event.
    let s6 = fixture_jsons(fixture!("s6_turbine1_meta_from_issue_hystrix1402.txt"));
    let mut agg = Aggregator::new(Mode::Turbine1);
    let m = Parser::new().parse(s6[0].as_bytes()).unwrap();
    assert!(!agg.update(1, Instant::now(), m));
    assert!(agg.is_empty());
}

#[test]
fn a_removed_host_takes_its_contribution_and_unreported_keys_disappear() {
    for mode in MODES {
        let mut pair = Pair::new(mode, 10);
        for (host, line) in HOSTS_3.iter().enumerate() {
            pair.update(host as HostId, 0, line);
        }
        pair.update(
            2,
            0,
            r#"{"type":"HystrixThreadPool","name":"Only2","currentActiveCount":1}"#,
        );
        pair.check();
        pair.remove_host(1);
        pair.check();
        let got = merged_json(&pair.agg, "HystrixCommand", "Get");
        assert_eq!(got["rollingCountSuccess"], 6);
        assert_eq!(got["reportingHosts"], 2);
        assert_eq!(
            got["isCircuitBreakerOpen"], false,
            "host 1 was the only `true`"
        );
        pair.remove_host(2);
        pair.check();
        assert!(
            pair.agg
                .merged(&key("HystrixThreadPool", "Only2"))
                .is_none()
        );
        assert_eq!(pair.agg.len(), 1);
        // Removing an unknown host changes nothing.
        pair.remove_host(99);
        pair.check();
        pair.remove_host(0);
        pair.check();
        assert!(pair.agg.is_empty());
        let mut buf = Vec::new();
        pair.agg.write(&mut buf);
        assert!(buf.is_empty());
    }
}

#[test]
fn expire_removes_only_older_messages() {
    for mode in MODES {
        let mut pair = Pair::new(mode, 10);
        let line = |name: &str, n: i64| {
            format!(r#"{{"type":"HystrixCommand","name":"{name}","rollingCountSuccess":{n}}}"#)
        };
        pair.update(1, 100, &line("A", 1));
        pair.update(2, 200, &line("A", 2));
        pair.update(3, 300, &line("A", 4));
        pair.update(1, 150, &line("B", 8));
        pair.check();
        // Nothing is older than the oldest.
        pair.expire(100);
        assert_eq!(pair.agg.len(), 2);
        // Strictly older than `before`: the message at 200 stays.
        pair.expire(200);
        pair.check();
        assert_eq!(
            merged_json(&pair.agg, "HystrixCommand", "A")["rollingCountSuccess"],
            6
        );
        assert!(
            pair.agg.merged(&key("HystrixCommand", "B")).is_none(),
            "B's only host expired"
        );
        // A fresh message from an expired host counts again.
        pair.update(1, 400, &line("A", 16));
        pair.expire(301);
        pair.check();
        assert_eq!(
            merged_json(&pair.agg, "HystrixCommand", "A")["rollingCountSuccess"],
            16
        );
        pair.expire(10_000);
        pair.check();
        assert!(pair.agg.is_empty());
    }
}

// ===== random operations against the model =====

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Text,
    Map,
    Float,
}

const FIELDS: [(&str, Kind); 15] = [
    ("rollingCountSuccess", Kind::Int),
    ("errorPercentage", Kind::Int),
    ("latencyExecute_mean", Kind::Int),
    (
        "propertyValue_circuitBreakerRequestVolumeThreshold",
        Kind::Int,
    ),
    (
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
        Kind::Int,
    ),
    ("isCircuitBreakerOpen", Kind::Text),
    ("propertyValue_circuitBreakerForceOpen", Kind::Text),
    ("group", Kind::Text),
    (
        "propertyValue_executionIsolationThreadPoolKeyOverride",
        Kind::Text,
    ),
    ("latencyExecute", Kind::Map),
    ("latencyTotal", Kind::Map),
    ("ratio", Kind::Float),
    ("propertyValue_ratio", Kind::Float),
    // Names that need escaping.
    ("odd \"field\" é\n\\", Kind::Int),
    ("propertyValue_ \"odd\"", Kind::Text),
];

const KEYS: [(&str, &str); 4] = [
    ("HystrixCommand", "A"),
    ("HystrixCommand", "B"),
    ("HystrixThreadPool", "A"),
    ("HystrixCollapser", "é \"q\" \\"),
];

const PERCENTILES: [&str; 10] = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100", "x"];

fn int_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-3i64..=3).prop_map(|n| n.to_string()),
        4 => (0i64..100_000).prop_map(|n| n.to_string()),
        1 => Just("-1".to_owned()),
        1 => ((1i64 << 40)..(1i64 << 41)).prop_map(|n| n.to_string()),
    ]
}

/// The text of a value of `kind`.
fn value_text(kind: Kind) -> BoxedStrategy<String> {
    match kind {
        Kind::Int => int_text().boxed(),
        Kind::Float => prop::sample::select(vec!["0.5", "12.25", "-3.75", "100.5", "1e-3"])
            .prop_map(str::to_owned)
            .boxed(),
        Kind::Text => prop_oneof![
            3 => any::<bool>().prop_map(|b| b.to_string()),
            1 => Just("null".to_owned()),
            4 => prop::sample::select(vec![
                "THREAD",
                "SEMAPHORE",
                "null",
                "",
                "true",
                "é \"q\" \\",
                "{not json",
                "{\"false\":2,\"true\":1}",
                "{\"THREAD\":3}",
                "{\"a\":0}",
                "{}",
            ])
            .prop_map(|s| serde_json::to_string(s).unwrap()),
        ]
        .boxed(),
        Kind::Map => {
            let number = prop_oneof![
                6 => int_text(),
                1 => Just("1.5".to_owned()),
                1 => Just("-2.5".to_owned()),
            ];
            // Entries that are not numbers are left out; they get a key of their own (a
            // duplicate key whose last value is not a number is a case of its own: the
            // parser keeps the earlier number, serde_json the non-number).
            let other = prop::option::of(prop::sample::select(vec!["\"s\"", "null", "[1]", "{}"]));
            (
                prop::collection::vec((prop::sample::select(PERCENTILES.to_vec()), number), 0..6),
                other,
            )
                .prop_map(|(entries, other)| {
                    let mut entries: Vec<String> = entries
                        .iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    if let Some(v) = other {
                        entries.insert(entries.len() / 2, format!("\"note\":{v}"));
                    }
                    format!("{{{}}}", entries.join(","))
                })
                .boxed()
        }
    }
}

fn field() -> impl Strategy<Value = (usize, String)> {
    (0..FIELDS.len()).prop_flat_map(|i| value_text(FIELDS[i].1).prop_map(move |v| (i, v)))
}

#[derive(Clone, Debug)]
enum Op {
    /// A message (fields in random order, duplicates possible).
    Message {
        host: HostId,
        key: usize,
        fields: Vec<(usize, String)>,
        reporting_hosts: Option<i64>,
        current_time: Option<i64>,
        dt: u64,
    },
    Meta {
        host: HostId,
        dt: u64,
    },
    Delete {
        host: HostId,
        key: usize,
        dt: u64,
    },
    Remove(HostId),
    Expire {
        age: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (
            0u64..4,
            0..KEYS.len(),
            prop::collection::vec(field(), 0..10),
            prop::option::of(1i64..4),
            prop::option::of(any::<i64>()),
            0u64..20,
        )
            .prop_map(|(host, key, fields, reporting_hosts, current_time, dt)| Op::Message {
                host,
                key,
                fields,
                reporting_hosts,
                current_time,
                dt,
            }),
        1 => (0u64..4, 0u64..20).prop_map(|(host, dt)| Op::Meta { host, dt }),
        1 => (0u64..4, 0..KEYS.len(), 0u64..20).prop_map(|(host, key, dt)| Op::Delete { host, key, dt }),
        1 => (0u64..5).prop_map(Op::Remove),
        2 => (0u64..100).prop_map(|age| Op::Expire { age }),
    ]
}

fn message_text(
    key: usize,
    fields: &[(usize, String)],
    reporting_hosts: Option<i64>,
    current_time: Option<i64>,
) -> String {
    let (kind, name) = KEYS[key];
    let mut json = format!(
        "{{\"type\":{},\"name\":{}",
        serde_json::to_string(kind).unwrap(),
        serde_json::to_string(name).unwrap()
    );
    if let Some(t) = current_time {
        json.push_str(&format!(",\"currentTime\":{t}"));
    }
    for (i, value) in fields {
        json.push_str(&format!(
            ",{}:{value}",
            serde_json::to_string(FIELDS[*i].0).unwrap()
        ));
    }
    if let Some(n) = reporting_hosts {
        json.push_str(&format!(",\"reportingHosts\":{n}"));
    }
    json.push('}');
    json
}

fn run(mode: Mode, max_keys: usize, ops: &[Op]) {
    let mut pair = Pair::new(mode, max_keys);
    let mut now = 100u64;
    for op in ops {
        match op {
            Op::Message {
                host,
                key,
                fields,
                reporting_hosts,
                current_time,
                dt,
            } => {
                now += dt;
                let json = message_text(*key, fields, *reporting_hosts, *current_time);
                pair.update(*host, now, &json);
            }
            Op::Meta { host, dt } => {
                now += dt;
                pair.update(
                    *host,
                    now,
                    r#"{"type":"meta","name":"meta","reportingHostsLast10Seconds":1,"timestamp":0}"#,
                );
            }
            Op::Delete { host, key, dt } => {
                now += dt;
                let (kind, name) = KEYS[*key];
                let json = format!(
                    "{{\"deleteData\":\"true\", \"type\":{}, \"name\":{}}}",
                    serde_json::to_string(kind).unwrap(),
                    serde_json::to_string(name).unwrap()
                );
                pair.update(*host, now, &json);
            }
            Op::Remove(host) => pair.remove_host(*host),
            Op::Expire { age } => pair.expire(now - age),
        }
        pair.check();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_match_the_model(
        ops in prop::collection::vec(op(), 1..40),
        max_keys in prop::sample::select(vec![1usize, 2, 3, 10_000]),
    ) {
        for mode in MODES {
            run(mode, max_keys, &ops);
        }
    }
}

// ===== the real captured streams =====

const CINEMATCH: &str = fixture!("turbine-test-cinematch.stream");
const SUBSCRIBER: &str = fixture!("turbine-test-subscriber.stream");
const DASHBOARD_MOCK: &str = fixture!("dashboard-mock.stream");

/// The JSON of every `data:` line of a file, by a plain text scan.
fn fixture_jsons(path: &str) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|json| json.trim().to_owned())
        .collect()
}

/// Each line to one host in turn.
#[test]
fn fixtures_split_round_robin_over_hosts() {
    for path in [CINEMATCH, SUBSCRIBER, DASHBOARD_MOCK] {
        let jsons = fixture_jsons(path);
        for mode in MODES {
            for hosts in [2, 3] {
                let mut pair = Pair::new(mode, 100);
                for (i, json) in jsons.iter().enumerate() {
                    pair.update((i % hosts) as HostId, i as u64, json);
                    if i % 7 == 0 || i + 1 == jsons.len() {
                        pair.check();
                    }
                }
            }
        }
    }
}

/// Every host sends the whole stream, each from a different point of it.
#[test]
fn fixtures_sent_by_every_host() {
    for path in [CINEMATCH, SUBSCRIBER, DASHBOARD_MOCK] {
        let jsons = fixture_jsons(path);
        let n = jsons.len();
        for mode in MODES {
            let mut pair = Pair::new(mode, 100);
            for i in 0..n {
                for host in 0..3u64 {
                    let line = &jsons[(i + 11 * host as usize) % n];
                    pair.update(host, i as u64, line);
                }
                if i % 5 == 0 {
                    pair.check();
                }
            }
            pair.check();
            // Every host sent every key: reportingHosts is 3 everywhere.
            for value in output_of(&pair.agg).values() {
                assert_eq!(value["reportingHosts"], 3);
            }
            // Hosts leave one by one.
            for host in 0..3 {
                pair.remove_host(host);
                pair.check();
            }
            assert!(pair.agg.is_empty());
        }
    }
}

/// The three streams into one aggregate, read through the line reader as the bytes come.
#[test]
fn fixture_streams_through_the_line_reader() {
    for mode in MODES {
        let mut pair = Pair::new(mode, 100);
        let streams: Vec<Vec<u8>> = [CINEMATCH, SUBSCRIBER, DASHBOARD_MOCK]
            .iter()
            .map(|p| fs::read(p).unwrap())
            .collect();
        let mut readers: Vec<LineReader> = streams.iter().map(|_| LineReader::default()).collect();
        let mut lines: Vec<Vec<String>> = vec![Vec::new(); streams.len()];
        // Interleave the three connections, 997 bytes at a time.
        let mut offset = 0;
        let mut ms = 0;
        let mut last = [0u64; 3];
        while streams.iter().any(|s| offset < s.len()) {
            for (host, stream) in streams.iter().enumerate() {
                if offset >= stream.len() {
                    continue;
                }
                let chunk = &stream[offset..(offset + 997).min(stream.len())];
                readers[host]
                    .feed(chunk, |line| {
                        if let Line::Data(json) = Line::classify(line) {
                            lines[host].push(String::from_utf8(json.to_vec()).unwrap());
                        }
                    })
                    .unwrap();
                for json in lines[host].drain(..) {
                    ms += 1;
                    last[host] = ms;
                    pair.update(host as HostId, ms, &json);
                }
            }
            offset += 997;
            pair.check();
        }
        // 1 command from each service, 4 commands and 4 pools from the mock.
        assert_eq!(pair.agg.len(), 10);
        // The two services' connections (shorter) went silent long before the mock's: their
        // keys expire, the mock's stay.
        pair.expire(last[0].max(last[1]) + 1);
        pair.check();
        assert_eq!(pair.agg.len(), 8);
    }
}

// ===== tiering =====

#[test]
fn a_tier_1_turbine_line_round_trips_through_a_second_tier() {
    let s4 = fixture_jsons(fixture!("s4_command_turbine_aggregated_readme.txt")).remove(0);
    let s4_value: Json = serde_json::from_str(&s4).unwrap();
    assert_eq!(s4_value["reportingHosts"], 3);

    // S4 as the only host of a second tier: the same object back, reportingHosts 3.
    let mut pair = Pair::new(Mode::Turbine1, 100);
    pair.update(1, 0, &s4);
    pair.check();
    let out = merged_json(&pair.agg, "HystrixCommand", "CryptexDecrypt");
    assert_eq!(out, s4_value);
    assert_eq!(out["reportingHosts"], 3);
    assert_eq!(
        out["propertyValue_executionIsolationThreadPoolKeyOverride"],
        "null"
    );
    // A fixed point: tier after tier, the same bytes.
    let bytes = pair
        .agg
        .merged(&key("HystrixCommand", "CryptexDecrypt"))
        .unwrap();
    let again = agg_of(Mode::Turbine1, &[std::str::from_utf8(&bytes).unwrap()]);
    assert_eq!(
        again
            .merged(&key("HystrixCommand", "CryptexDecrypt"))
            .unwrap(),
        bytes
    );

    // Three tier-1 turbines of 3 hosts each, one with the circuit open: reportingHosts 9,
    // the circuit's counts as a string.
    let open = s4.replace(
        r#""isCircuitBreakerOpen":false"#,
        r#""isCircuitBreakerOpen":true"#,
    );
    let mut tier2 = Pair::new(Mode::Turbine1, 100);
    for (host, line) in [&s4, &s4, &open].into_iter().enumerate() {
        tier2.update(host as HostId, 0, line);
    }
    tier2.check();
    let out2 = tier2
        .agg
        .merged(&key("HystrixCommand", "CryptexDecrypt"))
        .unwrap();
    let out2 = String::from_utf8(out2).unwrap();
    let value2: Json = serde_json::from_str(&out2).unwrap();
    assert_eq!(value2["reportingHosts"], 9);
    assert_eq!(value2["isCircuitBreakerOpen"], "{\"false\":2,\"true\":1}");
    assert_eq!(value2["rollingCountSuccess"], 3);
    assert_eq!(
        value2["propertyValue_circuitBreakerRequestVolumeThreshold"],
        180
    );

    // That output as one host of a third tier, with a plain host whose circuit is open: the
    // count string is read back as counts and merged.
    let plain = r#"{"type":"HystrixCommand","name":"CryptexDecrypt","currentTime":1,"isCircuitBreakerOpen":true,"rollingCountSuccess":4,"propertyValue_circuitBreakerRequestVolumeThreshold":20,"group":"CRYPTEX"}"#;
    let mut tier3 = Pair::new(Mode::Turbine1, 100);
    tier3.update(1, 0, &out2);
    tier3.update(2, 0, plain);
    tier3.check();
    let value3 = merged_json(&tier3.agg, "HystrixCommand", "CryptexDecrypt");
    assert_eq!(value3["reportingHosts"], 10);
    assert_eq!(
        counts_in(value3["isCircuitBreakerOpen"].as_str().unwrap()).unwrap(),
        [("false".to_owned(), 2), ("true".to_owned(), 2)]
    );
    assert_eq!(value3["rollingCountSuccess"], 7);
    assert_eq!(
        value3["propertyValue_circuitBreakerRequestVolumeThreshold"],
        200
    );
    assert_eq!(value3["group"], "CRYPTEX");

    // The tier-3 host leaves: only tier 2's counts remain, as its string.
    tier3.remove_host(2);
    tier3.check();
    assert_eq!(
        merged_json(&tier3.agg, "HystrixCommand", "CryptexDecrypt")["isCircuitBreakerOpen"],
        "{\"false\":2,\"true\":1}"
    );
}

#[test]
fn tiers_of_turbine_1_sum_like_one_flat_turbine() {
    // Leaves with several values in every string field, so that no count is lost to a single
    // value written as itself.
    let leaf = |i: i64, open: bool, strategy: &str| {
        format!(
            r#"{{"type":"HystrixCommand","name":"A","rollingCountSuccess":{i},"latencyExecute":{{"50":{i},"99":{}}},"isCircuitBreakerOpen":{open},"propertyValue_executionIsolationStrategy":"{strategy}"}}"#,
            i * 10
        )
    };
    let leaves = [
        leaf(1, true, "THREAD"),
        leaf(2, false, "SEMAPHORE"),
        leaf(3, true, "SEMAPHORE"),
        leaf(4, false, "THREAD"),
        leaf(5, false, "THREAD"),
    ];
    let leaves: Vec<&str> = leaves.iter().map(String::as_str).collect();
    let flat = merged_json(&agg_of(Mode::Turbine1, &leaves), "HystrixCommand", "A");
    let t1 = agg_of(Mode::Turbine1, &leaves[..2]);
    let t2 = agg_of(Mode::Turbine1, &leaves[2..]);
    let tier1 = [t1, t2]
        .map(|agg| String::from_utf8(agg.merged(&key("HystrixCommand", "A")).unwrap()).unwrap());
    let tiered = merged_json(
        &agg_of(Mode::Turbine1, &[&tier1[0], &tier1[1]]),
        "HystrixCommand",
        "A",
    );
    assert_eq!(normalize(&tiered), normalize(&flat));
    assert_eq!(tiered["reportingHosts"], 5);
}
