#![allow(clippy::unwrap_used)]
//! The reading half of turbine: SSE lines out of byte chunks (`LineReader`, `Line::classify`)
//! and messages out of `data:` lines (`Parser`), against every format of spec §2.5 / §7.5,
//! the real captured fixtures, hostile input, and a round trip through hystrix-stream's
//! encoder.

use std::{fmt, fs, sync::Arc, time::Duration};

use hystrix_core::{
    CircuitStatus, CommandReport, CommandSettingsReport, HealthCounts, HystrixEventType as Ev,
    IsolationStrategy, ThreadPoolReport,
};
use hystrix_stream::encode::{self, Encoder};
use hystrix_turbine::parse::{
    Line, LineReader, LineTooLong, MAX_FIELDS, Message, Name, ParseError, Parser, Value,
};
use proptest::prelude::*;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

// ===== helpers =====

macro_rules! fixture {
    ($file:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../stream/tests/fixtures/hystrix-stream/",
            $file
        )
    };
}

/// Every fixture file with `data:` lines.
const FIXTURES: [&str; 10] = [
    fixture!("dashboard-mock.stream"),
    fixture!("turbine-test-cinematch.stream"),
    fixture!("turbine-test-subscriber.stream"),
    fixture!("s1_command_dashboard_mock.txt"),
    fixture!("s2_threadpool_dashboard_mock.txt"),
    fixture!("s3_command_turbine_test.txt"),
    fixture!("s4_command_turbine_aggregated_readme.txt"),
    fixture!("s4b_command_readme_single_host.txt"),
    fixture!("s5_threadpool_v15_from_issue_springcloud3005.txt"),
    fixture!("s6_turbine1_meta_from_issue_hystrix1402.txt"),
];

/// The JSON of a one-line fixture (after `data: `).
fn fixture_json(path: &str) -> String {
    let text = fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.starts_with("data:")).unwrap();
    line["data:".len()..].trim_start().to_owned()
}

/// Feeds `stream` in chunks of `size` bytes (0: all at once); returns the lines and what the
/// reader still holds.
fn lines_in_chunks(stream: &[u8], size: usize, max: usize) -> (Vec<Vec<u8>>, usize) {
    let mut reader = LineReader::new(max);
    let mut lines = Vec::new();
    let size = if size == 0 { stream.len().max(1) } else { size };
    for chunk in stream.chunks(size) {
        reader
            .feed(chunk, |line| lines.push(line.to_vec()))
            .unwrap();
        assert!(reader.pending() <= max);
    }
    (lines, reader.pending())
}

fn lines(stream: &[u8]) -> Vec<Vec<u8>> {
    lines_in_chunks(stream, 0, 1 << 20).0
}

fn parse(json: &str) -> Result<Message, ParseError> {
    Parser::new().parse(json.as_bytes())
}

fn name(s: &str) -> Name {
    Arc::from(s)
}

fn field_names(message: &Message) -> Vec<&str> {
    message.fields.iter().map(|(k, _)| &**k).collect()
}

fn map(entries: &[(&str, i64)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, n)| (name(k), *n))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

// ===== an order-preserving JSON reading, to compute what the parser must give =====

/// A JSON value as serde_json reads it, with objects in document order (duplicates kept).
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<J, E> {
                Ok(J::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<J, E> {
                Ok(J::Num(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<J, E> {
                Ok(J::Num(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<J, E> {
                Ok(J::Num(serde_json::Number::from_f64(v).unwrap()))
            }
            fn visit_str<E>(self, v: &str) -> Result<J, E> {
                Ok(J::Str(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(J::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<J, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = m.next_entry::<String, J>()? {
                    entries.push(entry);
                }
                Ok(J::Obj(entries))
            }
        }
        d.deserialize_any(V)
    }
}

impl J {
    /// The same value as a `serde_json::Value` (the last of duplicate keys).
    fn to_value(&self) -> serde_json::Value {
        match self {
            J::Null => serde_json::Value::Null,
            J::Bool(b) => (*b).into(),
            J::Num(n) => serde_json::Value::Number(n.clone()),
            J::Str(s) => s.as_str().into(),
            J::Arr(items) => items.iter().map(J::to_value).collect(),
            J::Obj(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

/// Keeps the last value of duplicate keys at the position of the first.
fn dedup<T>(entries: impl IntoIterator<Item = (String, T)>) -> Vec<(String, T)> {
    let mut out: Vec<(String, T)> = Vec::new();
    for (k, v) in entries {
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// What `Parser` must make of one value (its documented rules).
fn expected_value(j: &J) -> Value {
    match j {
        J::Null | J::Arr(_) => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Num(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap()),
        },
        J::Str(s) => Value::Str(name(s)),
        J::Obj(entries) => {
            let numbers = entries.iter().filter_map(|(k, v)| match v {
                J::Num(n) => Some((
                    k.clone(),
                    n.as_i64().unwrap_or_else(|| n.as_f64().unwrap() as i64),
                )),
                _ => None,
            });
            Value::Map(
                dedup(numbers)
                    .into_iter()
                    .map(|(k, n)| (name(&k), n))
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            )
        }
    }
}

/// Checks `message` against serde_json's reading of `json`: type, name, reportingHosts,
/// currentTime, and every other field with its value, in document order.
fn assert_matches_json(message: &Message, json: &str) {
    let J::Obj(entries) = serde_json::from_str::<J>(json).unwrap() else {
        panic!("not an object: {json}");
    };
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let top = dedup(entries);
    let get = |k: &str| top.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    // The order-preserving reading agrees with serde_json::Value's.
    for (k, v) in &top {
        assert_eq!(v.to_value(), value[k], "{k}");
    }
    assert_eq!(&*message.kind, value["type"].as_str().unwrap());
    assert_eq!(&*message.name, value["name"].as_str().unwrap());
    let hosts = value
        .get("reportingHosts")
        .and_then(serde_json::Value::as_i64)
        .filter(|n| *n >= 0)
        .unwrap_or(1);
    assert_eq!(message.reporting_hosts, hosts);
    assert_eq!(
        message.current_time,
        get("currentTime").and_then(|v| match v {
            J::Num(n) => n.as_i64(),
            _ => None,
        })
    );
    let expected: Vec<(Name, Value)> = top
        .iter()
        .filter(|(k, _)| !matches!(&**k, "type" | "name" | "reportingHosts" | "currentTime"))
        .map(|(k, v)| (name(k), expected_value(v)))
        .collect();
    assert_eq!(message.fields, expected, "{json}");
}

// ===== lines =====

#[test]
fn heart_beats_of_every_version_are_pings() {
    // Hystrix (`ping: `), Turbine 1.x (`: ping`), the dashboard's mock (`:ping`).
    for line in [
        &b"ping:"[..],
        b"ping: ",
        b": ping",
        b":ping",
        b":",
        b": anything",
        b"ping",
        b"  ping: \t",
    ] {
        assert_eq!(
            Line::classify(line),
            Line::Ping,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    let stream = b"ping: \n\n: ping\n:ping\r\n\r\nping: \r\n\r\n";
    let kinds: Vec<_> = lines(stream)
        .iter()
        .map(|l| format!("{:?}", Line::classify(l)))
        .collect();
    assert_eq!(
        kinds,
        ["Ping", "Blank", "Ping", "Ping", "Blank", "Ping", "Blank"]
    );
}

#[test]
fn data_with_or_without_the_space() {
    let json = br#"{"type":"HystrixCommand","name":"A"}"#;
    for line in [
        [&b"data: "[..], json].concat(),
        [&b"data:"[..], json].concat(),
        [&b"data:   "[..], json, b"  "].concat(),
        [&b"data:\t"[..], json].concat(),
    ] {
        assert_eq!(Line::classify(&line), Line::Data(json));
        parse(std::str::from_utf8(json).unwrap()).unwrap();
    }
    // An empty `data:` is nothing; one with no object is data the parser refuses (so it is
    // counted).
    assert_eq!(Line::classify(b"data:"), Line::Other);
    assert_eq!(Line::classify(b"data: "), Line::Other);
    assert_eq!(Line::classify(b"data: 42"), Line::Data(b"42"));
    assert_eq!(Line::classify(b"data: [1]"), Line::Data(b"[1]"));
    assert!(Parser::new().parse(b"42").is_err());
    // Turbine 1.x reads from the first `{`.
    assert_eq!(
        Line::classify(b"data: x{\"a\":1}"),
        Line::Data(b"{\"a\":1}")
    );
}

#[test]
fn other_fields_and_blank_lines() {
    for line in [
        &b"event: message"[..],
        b"event:",
        b"id: 7",
        b"id:",
        b"retry: 1000",
        b"retry:",
        b"pingpong",
        b"whatever",
    ] {
        assert_eq!(
            Line::classify(line),
            Line::Other,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    for line in [&b""[..], b" ", b"\t \t"] {
        assert_eq!(Line::classify(line), Line::Blank);
    }
}

#[test]
fn lf_crlf_and_lone_cr_end_lines() {
    let stream = b"a\nb\r\nc\rd\r\r\ne\n\nf\r\rg";
    let (got, pending) = lines_in_chunks(stream, 0, 100);
    let expected: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"", b"e", b"", b"f", b""];
    assert_eq!(got, expected);
    assert_eq!(pending, 1, "`g` waits for its end");
}

/// A stream with every line end, heart-beat and SSE field, split in chunks of every size.
#[test]
fn lines_split_anywhere_across_chunks_are_the_same_lines() {
    let mut stream = Vec::new();
    stream.extend_from_slice(b"ping: \n\n: ping\n:ping\r\n\r\n");
    stream.extend_from_slice(b"event: message\rid: 1\r\nretry: 10\n");
    stream.extend_from_slice(b"data:{\"type\":\"HystrixCommand\",\"name\":\"A\"}\r\n\r\n");
    stream.extend_from_slice(b"data: {\"type\":\"HystrixCommand\",\"name\":\"B\"}\r\r");
    stream.extend_from_slice(b"data: {\"type\":\"HystrixThreadPool\",\"name\":\"C\"}\n\n");
    stream.extend_from_slice(b"\r\n\r\r\n\n\r");
    stream.extend_from_slice(fixture_json(FIXTURES[3]).as_bytes());
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(&fs::read(FIXTURES[0]).unwrap()[..20_000]);
    let whole = lines_in_chunks(&stream, 0, 1 << 20);
    assert!(whole.0.len() > 30);
    for size in 1..=16 {
        assert_eq!(
            lines_in_chunks(&stream, size, 1 << 20),
            whole,
            "chunks of {size}"
        );
    }
    // Every split of the short head into two chunks, at every byte.
    let head = &stream[..200];
    let expected = lines_in_chunks(head, 0, 1 << 20);
    for cut in 0..=head.len() {
        let mut reader = LineReader::new(1 << 20);
        let mut got = Vec::new();
        for chunk in [&head[..cut], &head[cut..]] {
            reader.feed(chunk, |l| got.push(l.to_vec())).unwrap();
        }
        assert_eq!((got, reader.pending()), expected, "cut at {cut}");
    }
}

#[test]
fn fixture_streams_give_the_same_lines_in_chunks_of_1_2_3_7() {
    for path in &FIXTURES[..3] {
        let bytes = fs::read(path).unwrap();
        let whole = lines_in_chunks(&bytes, 0, 1 << 20);
        for size in [1, 2, 3, 7] {
            assert_eq!(
                lines_in_chunks(&bytes, size, 1 << 20),
                whole,
                "{path}: {size}"
            );
        }
        // The same stream with CRLF, and with lone CR, gives the same lines.
        let crlf: Vec<u8> = bytes
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        let cr: Vec<u8> = bytes
            .iter()
            .map(|&b| if b == b'\n' { b'\r' } else { b })
            .collect();
        for size in [0, 1, 2, 3, 7] {
            assert_eq!(
                lines_in_chunks(&crlf, size, 1 << 20),
                whole,
                "{path} CRLF {size}"
            );
            assert_eq!(
                lines_in_chunks(&cr, size, 1 << 20),
                whole,
                "{path} CR {size}"
            );
        }
    }
}

/// Regression: an empty chunk between the `\r` and the `\n` of a CRLF once cleared
/// `after_cr`, so the `\n` then ended an extra, empty line. An empty
/// chunk is an ordinary thing for a body stream to yield.
#[test]
fn an_empty_chunk_between_cr_and_lf_adds_no_line() {
    let mut reader = LineReader::new(100);
    let mut got = Vec::new();
    for chunk in [&b"data: {}\r"[..], b"", b"\nping: \r", b"", b"", b"\n"] {
        reader.feed(chunk, |l| got.push(l.to_vec())).unwrap();
    }
    let expected: Vec<&[u8]> = vec![b"data: {}", b"ping: "];
    assert_eq!(got, expected);
}

// ===== line length =====

#[test]
fn a_line_over_the_limit_fails_even_in_small_chunks() {
    let max = 100;
    for size in [1, 2, 3, 7, 50, 99, 100, 101, 1000] {
        let line = vec![b'x'; max + 1];
        let mut reader = LineReader::new(max);
        let mut error = None;
        for chunk in line.chunks(size) {
            if let Err(e) = reader.feed(chunk, |_| panic!("no line ends")) {
                error = Some(e);
                break;
            }
            assert!(reader.pending() <= max);
        }
        assert_eq!(error, Some(LineTooLong { max }), "chunks of {size}");
        assert!(reader.pending() <= max);
    }
    // The error comes as soon as the limit is passed, not at the line's end.
    let mut reader = LineReader::new(max);
    reader.feed(&[b'x'; 100], |_| {}).unwrap();
    assert_eq!(reader.pending(), 100);
    assert_eq!(reader.feed(b"x", |_| {}), Err(LineTooLong { max }));
    assert!(reader.pending() <= max);
    assert!(LineTooLong { max }.to_string().contains("100"));
}

#[test]
fn a_terminated_line_over_the_limit_fails() {
    let max = 10;
    for end in [&b"\n"[..], b"\r\n", b"\r"] {
        for len in [11, 12, 1000] {
            // Complete lines before it are delivered; then the long one fails.
            let mut stream = b"ok\n0123456789\r\n".to_vec();
            stream.extend(std::iter::repeat_n(b'y', len));
            stream.extend_from_slice(end);
            stream.extend_from_slice(b"never\n");
            for size in [0, 1, 4] {
                let size = if size == 0 { stream.len() } else { size };
                let mut reader = LineReader::new(max);
                let mut got = Vec::new();
                let mut result = Ok(());
                for chunk in stream.chunks(size) {
                    result = reader.feed(chunk, |l| got.push(l.to_vec()));
                    assert!(reader.pending() <= max);
                    if result.is_err() {
                        break;
                    }
                }
                assert_eq!(result, Err(LineTooLong { max }), "{len} {size}");
                assert_eq!(got, [b"ok".to_vec(), b"0123456789".to_vec()]);
            }
        }
    }
}

#[test]
fn a_line_exactly_at_the_limit_is_accepted() {
    let max = 64;
    let line = vec![b'z'; max];
    for end in [&b"\n"[..], b"\r\n", b"\r"] {
        let mut stream = line.clone();
        stream.extend_from_slice(end);
        stream.extend_from_slice(&line);
        stream.extend_from_slice(end);
        for size in [0, 1, 2, 3, 7, 64, 65] {
            let (got, pending) = lines_in_chunks(&stream, size, max);
            assert_eq!(got, [line.clone(), line.clone()], "{end:?} {size}");
            assert_eq!(pending, 0);
        }
    }
    // An unterminated line at the limit is held, complete.
    let mut reader = LineReader::new(max);
    for chunk in line.chunks(5) {
        reader.feed(chunk, |_| panic!()).unwrap();
    }
    assert_eq!(reader.pending(), max);
    let mut got = Vec::new();
    reader.feed(b"\n", |l| got.push(l.to_vec())).unwrap();
    assert_eq!(got, [line]);
    assert_eq!(reader.pending(), 0);
}

#[test]
fn a_limit_of_zero_takes_only_empty_lines() {
    let mut reader = LineReader::new(0);
    let mut count = 0;
    reader
        .feed(b"\n\r\n\r\n", |l| {
            assert!(l.is_empty());
            count += 1;
        })
        .unwrap();
    assert_eq!(count, 3);
    assert_eq!(reader.feed(b"x", |_| {}), Err(LineTooLong { max: 0 }));
    assert_eq!(reader.pending(), 0);
}

#[test]
fn the_default_limit_is_one_mebibyte() {
    assert_eq!(hystrix_turbine::parse::DEFAULT_MAX_LINE, 1 << 20);
    let mut reader = LineReader::default();
    let big = vec![b'a'; 1 << 20];
    reader.feed(&big, |_| panic!()).unwrap();
    assert_eq!(reader.pending(), 1 << 20);
    assert!(reader.feed(b"a", |_| {}).is_err());
}

// ===== the field sets of every version =====

/// Spec §2.1 (1.4.19 – 1.5.x), what hystrix-stream writes (its golden line).
const LINE_1_5: &str = concat!(
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

/// The 44 fields of §2.1 that are not type, name, currentTime or reportingHosts, in order.
const COMMAND_FIELDS_1_5: [&str; 44] = [
    "group",
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
    "threadPool",
];

/// The fields 1.4.19 added to the 1.3 command line (spec §2.5).
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
fn the_1_5_field_set() {
    let m = parse(LINE_1_5).unwrap();
    assert_eq!((&*m.kind, &*m.name), ("HystrixCommand", "GetUser"));
    assert_eq!(m.current_time, Some(1_700_000_000_123));
    assert_eq!(m.reporting_hosts, 1);
    assert_eq!(field_names(&m), COMMAND_FIELDS_1_5);
    assert_eq!(m.get("group"), Some(&Value::Str(name("Users"))));
    assert_eq!(m.get("isCircuitBreakerOpen"), Some(&Value::Bool(true)));
    assert_eq!(m.get("rollingCountTimeout"), Some(&Value::Int(16)));
    assert_eq!(
        m.get("latencyTotal"),
        Some(&map(&[
            ("0", 2),
            ("25", 6),
            ("50", 11),
            ("75", 16),
            ("90", 22),
            ("95", 27),
            ("99", 43),
            ("99.5", 48),
            ("100", 95)
        ]))
    );
    assert_eq!(
        m.get("propertyValue_executionIsolationThreadPoolKeyOverride"),
        Some(&Value::Str(name("Override")))
    );
    assert_eq!(m.get("threadPool"), Some(&Value::Str(name("UsersPool"))));
    assert_eq!(m.get("currentTime"), None, "kept apart");
    assert_eq!(m.get("reportingHosts"), None, "kept apart");
    assert!(m.is_metrics());
    assert_matches_json(&m, LINE_1_5);

    // §2.2, the 1.5 thread pool (fixture s5): 17 fields, 13 of them in `fields`.
    let s5 = fixture_json(fixture!("s5_threadpool_v15_from_issue_springcloud3005.txt"));
    let m = parse(&s5).unwrap();
    assert_eq!(
        (&*m.kind, &*m.name),
        ("HystrixThreadPool", "FileController")
    );
    assert_eq!(m.fields.len(), 13);
    assert_eq!(m.get("rollingCountCommandRejections"), Some(&Value::Int(0)));
    assert_eq!(m.get("currentCompletedTaskCount"), Some(&Value::Int(35)));
    assert_eq!(m.current_time, Some(1_528_897_452_342));
    assert_matches_json(&m, &s5);
}

#[test]
fn the_1_3_field_set() {
    let s1 = fixture_json(fixture!("s1_command_dashboard_mock.txt"));
    let m = parse(&s1).unwrap();
    assert_eq!(
        (&*m.kind, &*m.name),
        ("HystrixCommand", "CreditCardCommand")
    );
    assert_eq!(m.current_time, Some(1_354_860_557_473));
    assert_eq!(m.reporting_hosts, 1);
    // 41 keys, minus type, name, currentTime and reportingHosts.
    assert_eq!(m.fields.len(), 37);
    let expected: Vec<&str> = COMMAND_FIELDS_1_5
        .into_iter()
        .filter(|f| !ADDED_SINCE_1_3.contains(f))
        .collect();
    assert_eq!(field_names(&m), expected);
    assert_eq!(m.get("isCircuitBreakerOpen"), Some(&Value::Bool(false)));
    assert_eq!(m.get("latencyExecute_mean"), Some(&Value::Int(1346)));
    assert_eq!(
        m.get("propertyValue_executionIsolationThreadPoolKeyOverride"),
        Some(&Value::Null)
    );
    let Some(Value::Map(latency)) = m.get("latencyExecute") else {
        panic!("a map");
    };
    let keys: Vec<&str> = latency.iter().map(|(k, _)| &**k).collect();
    assert_eq!(
        keys,
        ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"]
    );
    assert!(latency.iter().all(|(_, n)| *n == 1346));
    assert_matches_json(&m, &s1);

    // The 2012 thread pool line (s2): no reportingHosts (so 1), no rollingCountCommandRejections.
    let s2 = fixture_json(fixture!("s2_threadpool_dashboard_mock.txt"));
    let m = parse(&s2).unwrap();
    assert_eq!(m.reporting_hosts, 1);
    assert_eq!(m.get("rollingCountCommandRejections"), None);
    assert_eq!(m.fields.len(), 12);
    assert_matches_json(&m, &s2);
}

/// Hystrix 1.4.0 – 1.4.18 wrote FALLBACK_EMIT under a second `rollingCountEmit` key.
#[test]
fn the_1_4_duplicate_rolling_count_emit_keeps_the_last_value_once() {
    let line = LINE_1_5
        .replace(
            r#""rollingCountFallbackEmit":6"#,
            r#""rollingCountEmit":66"#,
        )
        .replace(r#""rollingCountFallbackMissing":8,"#, "");
    assert_eq!(line.matches("\"rollingCountEmit\"").count(), 2);
    let mut parser = Parser::new();
    // Twice with one parser (its name cache), then a 1.5 line, then the 1.4 line again.
    for json in [&*line, &*line, LINE_1_5, &*line] {
        let m = parser.parse(json.as_bytes()).unwrap();
        let emits = m
            .fields
            .iter()
            .filter(|(k, _)| &**k == "rollingCountEmit")
            .count();
        assert_eq!(emits, 1);
        if json == LINE_1_5 {
            assert_eq!(m.get("rollingCountEmit"), Some(&Value::Int(3)));
            assert_eq!(m.fields.len(), 44);
        } else {
            assert_eq!(m.get("rollingCountEmit"), Some(&Value::Int(66)));
            assert_eq!(m.get("rollingCountFallbackEmit"), None);
            assert_eq!(m.fields.len(), 42);
            // At the place of its first occurrence, as Jackson's map.
            assert_eq!(&*m.fields[7].0, "rollingCountEmit");
        }
        assert_matches_json(&m, json);
    }
}

#[test]
fn duplicate_keys_past_the_parsers_name_cache() {
    let mut parser = Parser::new();
    // Fill the cache with distinct names.
    for batch in 0..5 {
        let mut json = String::from(r#"{"type":"T","name":"N""#);
        for i in 0..1000 {
            json.push_str(&format!(r#","f{batch}_{i}":{i}"#));
        }
        json.push('}');
        assert_eq!(parser.parse(json.as_bytes()).unwrap().fields.len(), 1000);
    }
    assert!(parser.names() <= Parser::MAX_NAMES);
    // New names now go uncached: duplicates are still found.
    let json = r#"{"type":"T","name":"N","new1":1,"new2":2,"new1":3,"f0_0":4,"f0_0":5,"new2":{"a":1,"a":2}}"#;
    let m = parser.parse(json.as_bytes()).unwrap();
    assert_eq!(
        m.fields,
        [
            (name("new1"), Value::Int(3)),
            (name("new2"), map(&[("a", 2)])),
            (name("f0_0"), Value::Int(5)),
        ]
    );
    assert_matches_json(&m, json);
}

#[test]
fn minus_one_percentiles_and_means() {
    // 1.4 with `metrics.rollingPercentile.enabled=false`.
    let json = r#"{"type":"HystrixCommand","name":"A","latencyExecute_mean":-1,"latencyExecute":{"0":-1,"25":-1,"50":-1,"75":-1,"90":-1,"95":-1,"99":-1,"99.5":-1,"100":-1}}"#;
    let m = parse(json).unwrap();
    assert_eq!(m.get("latencyExecute_mean"), Some(&Value::Int(-1)));
    let Some(Value::Map(latency)) = m.get("latencyExecute") else {
        panic!()
    };
    assert_eq!(latency.len(), 9);
    assert!(latency.iter().all(|(_, n)| *n == -1));
    assert_matches_json(&m, json);
}

#[test]
fn nulls_floats_and_integers_beyond_64_bits() {
    let json = concat!(
        r#"{"type":"HystrixCommand","name":"A","override":null,"ratio":12.5,"exp":1e3,"#,
        r#""neg":-0.25,"max":9223372036854775807,"min":-9223372036854775808,"#,
        r#""u64":18446744073709551615,"huge":123456789012345678901234567890,"#,
        r#""tiny":-123456789012345678901234567890,"#,
        r#""pct":{"50":1.9,"99":-1.9,"big":123456789012345678901234567890,"neg":-99999999999999999999}}"#
    );
    let m = parse(json).unwrap();
    assert_eq!(m.get("override"), Some(&Value::Null));
    assert_eq!(m.get("ratio"), Some(&Value::Float(12.5)));
    assert_eq!(m.get("exp"), Some(&Value::Float(1000.0)));
    assert_eq!(m.get("neg"), Some(&Value::Float(-0.25)));
    assert_eq!(m.get("max"), Some(&Value::Int(i64::MAX)));
    assert_eq!(m.get("min"), Some(&Value::Int(i64::MIN)));
    assert_eq!(
        m.get("u64"),
        Some(&Value::Float(18_446_744_073_709_551_615.0))
    );
    assert_eq!(
        m.get("huge"),
        Some(&Value::Float(1.234_567_890_123_456_8e29))
    );
    assert_eq!(
        m.get("tiny"),
        Some(&Value::Float(-1.234_567_890_123_456_8e29))
    );
    // Map values are truncated (saturating) to integers.
    assert_eq!(
        m.get("pct"),
        Some(&map(&[
            ("50", 1),
            ("99", -1),
            ("big", i64::MAX),
            ("neg", i64::MIN)
        ]))
    );
    assert_matches_json(&m, json);
    // A number out of any range is an error, not a panic.
    assert!(parse(r#"{"type":"A","name":"B","x":1e999}"#).is_err());
}

#[test]
fn unknown_types_and_fields_are_kept() {
    let json = concat!(
        r#"{"type":"HystrixSomethingNew","name":"X","weird":"yes","list":[1,[2],{"a":3}],"#,
        r#""obj":{"n":1,"s":"text","b":true,"z":null,"l":[1],"o":{"deep":1},"m":2},"empty":{},"#,
        r#""InstanceKey":"InstanceKey=>http://h:8080/hystrix.stream","TypeAndName":"TypeAndName=>X"}"#
    );
    let m = parse(json).unwrap();
    assert_eq!(&*m.kind, "HystrixSomethingNew");
    assert!(m.is_metrics());
    assert_eq!(m.get("weird"), Some(&Value::Str(name("yes"))));
    assert_eq!(m.get("list"), Some(&Value::Null), "arrays are kept as null");
    assert_eq!(m.get("obj"), Some(&map(&[("n", 1), ("m", 2)])));
    assert_eq!(m.get("empty"), Some(&map(&[])));
    assert_eq!(
        field_names(&m),
        [
            "weird",
            "list",
            "obj",
            "empty",
            "InstanceKey",
            "TypeAndName"
        ]
    );
    assert_matches_json(&m, json);

    // The Turbine 1.x `meta` event (s6) and a `deleteData` order parse, and are not metrics.
    let s6 = fixture_json(fixture!("s6_turbine1_meta_from_issue_hystrix1402.txt"));
    let m = parse(&s6).unwrap();
    assert_eq!((&*m.kind, &*m.name), ("meta", "meta"));
    assert!(!m.is_metrics());
    assert_matches_json(&m, &s6);
    let delete = r#"{"deleteData":"true", "type":"HystrixCommand", "name":"A"}"#;
    let m = parse(delete).unwrap();
    assert!(!m.is_metrics());
    assert_matches_json(&m, delete);
}

#[test]
fn reporting_hosts_and_current_time() {
    let with = |extra: &str| parse(&format!(r#"{{"type":"T","name":"N"{extra}}}"#)).unwrap();
    assert_eq!(with("").reporting_hosts, 1, "absent: 1 (spec §4.3)");
    assert_eq!(with(r#","reportingHosts":3"#).reporting_hosts, 3);
    assert_eq!(
        with(r#","reportingHosts":1,"reportingHosts":7"#).reporting_hosts,
        7
    );
    // 0 is kept (a Java Turbine 1.x sends it for keys whose hosts have all left).
    assert_eq!(with(r#","reportingHosts":0"#).reporting_hosts, 0);
    // Not a non-negative integer: 1, as documented.
    for odd in ["-2", "2.5", "\"3\"", "null", "true", "{}", "[]", "1e30"] {
        let m = with(&format!(r#","reportingHosts":{odd}"#));
        assert_eq!(m.reporting_hosts, 1, "{odd}");
        assert!(m.fields.is_empty());
    }
    assert_eq!(with("").current_time, None);
    assert_eq!(
        with(r#","currentTime":1354860557473"#).current_time,
        Some(1_354_860_557_473)
    );
    for odd in ["1.5", "\"1354860557473\"", "null", "99999999999999999999"] {
        let m = with(&format!(r#","currentTime":{odd}"#));
        assert_eq!(m.current_time, None, "{odd}");
        assert!(m.fields.is_empty());
    }
}

#[test]
fn a_missing_or_non_string_type_or_name_is_an_error() {
    for json in [
        r#"{}"#,
        r#"{"name":"A","rollingCountSuccess":1}"#,
        r#"{"type":"HystrixCommand","rollingCountSuccess":1}"#,
        r#"{"type":1,"name":"A"}"#,
        r#"{"type":"HystrixCommand","name":null}"#,
        r#"{"type":"HystrixCommand","name":{"a":1}}"#,
        r#"{"type":["HystrixCommand"],"name":"A"}"#,
        r#"{"type":"HystrixCommand","name":"A","name":5}"#,
    ] {
        let error = parse(json).unwrap_err();
        assert!(!error.to_string().is_empty(), "{json}");
    }
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    let mut cases: Vec<Vec<u8>> = [
        "",
        " ",
        "hello",
        "{",
        "}",
        "null",
        "true",
        "42",
        "\"string\"",
        r#"[{"type":"HystrixCommand","name":"A"}]"#,
        r#"[]"#,
        r#"{"type":"HystrixCommand","name":"A""#,
        r#"{"type":"HystrixCommand","name":"A","#,
        r#"{"type":"HystrixCommand","name":"A","x":"#,
        r#"{"type":"HystrixCommand","name":"A","x":{"50":1"#,
        r#"{"type":"HystrixCommand","name":"A","x":"unterminated}"#,
        r#"{"type":"HystrixCommand" "name":"A"}"#,
        r#"{"type":"HystrixCommand",,"name":"A"}"#,
        r#"{'type':'HystrixCommand','name':'A'}"#,
        r#"{type:"HystrixCommand",name:"A"}"#,
        r#"{"type":"HystrixCommand","name":"A","x":NaN}"#,
        r#"{"type":"HystrixCommand","name":"A","x":01}"#,
        r#"{"type":"HystrixCommand","name":"A","x":"\u12"}"#,
        r#"{"type":"HystrixCommand","name":"A","x":"\ud800"}"#,
        "{\"type\":\"HystrixCommand\",\"name\":\"A\",\"x\":\"tab\there\"}",
        // Trailing text after the object.
        r#"{"type":"HystrixCommand","name":"A"} x"#,
        r#"{"type":"HystrixCommand","name":"A"}}"#,
        r#"{"type":"HystrixCommand","name":"A"},"#,
        r#"{"type":"HystrixCommand","name":"A"}{"type":"HystrixCommand","name":"B"}"#,
        r#"{"type":"HystrixCommand","name":"A"}data: {"type":"HystrixCommand","name":"B"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Invalid UTF-8: in a value, in a key, in a nested key, outside strings, a lone
    // continuation byte, an overlong encoding, a surrogate encoded in UTF-8.
    for bad in [
        &b"\xff"[..],
        b"\x80",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xe2\x82",
    ] {
        for template in [
            &br#"{"type":"HystrixCommand","name":"@"}"#[..],
            br#"{"type":"HystrixCommand","name":"A","@":1}"#,
            br#"{"type":"HystrixCommand","name":"A","x":{"@":1}}"#,
            br#"{"type":"HystrixCommand","name":"A","x":{"50":"@"}}"#,
            br#"{"type":"HystrixCommand","name":"A","x":"@"}"#,
            br#"{"type":"HystrixCommand","name":"A"}@"#,
            br#"@{"type":"HystrixCommand","name":"A"}"#,
        ] {
            let at = template.iter().position(|&b| b == b'@').unwrap();
            cases.push([&template[..at], bad, &template[at + 1..]].concat());
        }
    }
    let mut parser = Parser::new();
    for json in &cases {
        assert!(
            parser.parse(json).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(json)
        );
    }
    // Trailing white space is no trailing text.
    parser
        .parse(b"{\"type\":\"HystrixCommand\",\"name\":\"A\"} \t\r\n")
        .unwrap();
    // The parser is still fine after all those errors.
    assert_matches_json(&parser.parse(LINE_1_5.as_bytes()).unwrap(), LINE_1_5);
}

/// Regression: invalid UTF-8 inside a value the parser skips (an array, or an object nested
/// in an object) was once not noticed, so a line that is not JSON (RFC 8259 text is UTF-8;
/// Jackson refuses it) was accepted. It is refused and counted like any other garbage.
#[test]
fn invalid_utf8_in_skipped_values_is_an_error() {
    let mut accepted = Vec::new();
    for template in [
        &br#"{"type":"HystrixCommand","name":"A","x":["@"]}"#[..],
        br#"{"type":"HystrixCommand","name":"A","x":{"50":{"deep":"@"}}}"#,
        br#"{"type":"HystrixCommand","name":"A","x":{"50":["@"]}}"#,
        br#"{"type":"HystrixCommand","name":"A","x":[{"@":1}]}"#,
    ] {
        let at = template.iter().position(|&b| b == b'@').unwrap();
        let json = [&template[..at], b"\xff\xfe", &template[at + 1..]].concat();
        if Parser::new().parse(&json).is_ok() {
            accepted.push(String::from_utf8_lossy(&json).into_owned());
        }
    }
    assert!(accepted.is_empty(), "accepted {accepted:#?}");
}

#[test]
fn deeply_nested_json_is_an_error_or_skipped_never_a_stack_overflow() {
    let mut parser = Parser::new();
    for depth in [10_000, 200_000] {
        let arrays = "[".repeat(depth);
        let objects = r#"{"a":"#.repeat(depth);
        let closed_arrays = format!("{arrays}{}", "]".repeat(depth));
        let closed_objects = format!("{objects}1{}", "}".repeat(depth));
        // Not an object, or never closed: refused.
        for json in [
            arrays.clone(),
            objects.clone(),
            closed_arrays.clone(),
            format!(r#"{{"type":"T","name":"N","x":{arrays}"#),
            format!(r#"{{"type":"T","name":"N","x":{objects}"#),
            format!(r#"{{"type":"T","name":"N","x":{{"50":{arrays}"#),
            format!(r#"{{"type":"T","name":"N","x":{closed_arrays}"#),
            format!(r#"{{"type":"T","name":"N","x":{closed_arrays}]}}"#),
        ] {
            assert!(parser.parse(json.as_bytes()).is_err(), "depth {depth}");
        }
        // Valid JSON, deep where nothing is read: skipped (an array is a null; a nested
        // object's entries that are not numbers are left out).
        for (json, expected) in [
            (
                format!(r#"{{"type":"T","name":"N","x":{closed_arrays}}}"#),
                Value::Null,
            ),
            (
                format!(r#"{{"type":"T","name":"N","x":{closed_objects}}}"#),
                map(&[]),
            ),
            (
                format!(r#"{{"type":"T","name":"N","x":{{"50":{closed_arrays},"99":7}}}}"#),
                map(&[("99", 7)]),
            ),
        ] {
            let m = parser.parse(json.as_bytes()).unwrap();
            assert_eq!(m.fields, [(name("x"), expected)], "depth {depth}");
        }
    }
    let json = r#"{"type":"T","name":"N","x":[[[[1]]]],"m":{"a":{"b":{"c":1}},"n":2}}"#;
    let m = parser.parse(json.as_bytes()).unwrap();
    assert_eq!(m.get("x"), Some(&Value::Null));
    assert_eq!(m.get("m"), Some(&map(&[("n", 2)])));
}

#[test]
fn at_most_max_fields_per_line() {
    let line = |n: usize| {
        let mut json = String::from(r#"{"type":"T","name":"N","reportingHosts":2,"currentTime":5"#);
        for i in 0..n {
            json.push_str(&format!(r#","f{i}":{i}"#));
        }
        json.push('}');
        json
    };
    let m = parse(&line(MAX_FIELDS)).unwrap();
    assert_eq!(m.fields.len(), MAX_FIELDS);
    assert_eq!(m.reporting_hosts, 2);
    assert!(parse(&line(MAX_FIELDS + 1)).is_err());
    // And per nested object.
    let mut inner = String::new();
    for i in 0..=MAX_FIELDS {
        if i > 0 {
            inner.push(',');
        }
        inner.push_str(&format!(r#""k{i}":{i}"#));
    }
    assert!(parse(&format!(r#"{{"type":"T","name":"N","m":{{{inner}}}}}"#)).is_err());
}

// ===== every fixture line =====

#[test]
fn every_data_line_of_every_fixture_parses() {
    let mut total = 0;
    for path in FIXTURES {
        let bytes = fs::read(path).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        // Counted independently: a plain text scan.
        let data_lines = text.lines().filter(|l| l.starts_with("data:")).count();
        let ping_lines = text
            .lines()
            .filter(|l| l.starts_with(':') || l.starts_with("ping"))
            .count();
        let jsons: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        assert!(data_lines > 0, "{path}");

        for size in [0, 1, 7] {
            let mut reader = LineReader::new(1 << 20);
            let mut parser = Parser::new();
            let mut messages = Vec::new();
            let mut pings = 0;
            let chunk_size = if size == 0 { bytes.len() } else { size };
            for chunk in bytes.chunks(chunk_size) {
                reader
                    .feed(chunk, |line| match Line::classify(line) {
                        Line::Data(json) => messages
                            .push(parser.parse(json).unwrap_or_else(|e| panic!("{path}: {e}"))),
                        Line::Ping => pings += 1,
                        Line::Blank => {}
                        Line::Other => panic!("{path}: {:?}", String::from_utf8_lossy(line)),
                    })
                    .unwrap();
            }
            assert_eq!(reader.pending(), 0, "{path}");
            assert_eq!(messages.len(), data_lines, "{path}");
            assert_eq!(pings, ping_lines, "{path}");
            for (message, json) in messages.iter().zip(&jsons) {
                assert_matches_json(message, json);
            }
        }
        total += data_lines;
    }
    let mock = fs::read_to_string(FIXTURES[0]).unwrap();
    assert!(
        mock.lines().any(|l| l == ":ping"),
        "the mock has heart-beats"
    );
    assert!(total > 500);
}

// ===== round trip through hystrix-stream's encoder =====

const NOW: u64 = 1_700_000_000_123;

fn command(name: &str, group: &str, pool: &str) -> CommandReport {
    CommandReport::sample(name, group, pool)
}

fn pool(name: &str, completed: u64) -> ThreadPoolReport {
    ThreadPoolReport::sample(name, completed)
}

/// Reports of every shape: the golden one, semaphore with no override and no timeout, a
/// closed and an open circuit, counts beyond `i64::MAX`, odd names, a real snapshot.
fn reports() -> (Vec<CommandReport>, Vec<ThreadPoolReport>) {
    let mut commands = vec![command("GetUser", "Users", "UsersPool")];

    let mut semaphore = command("Semaphore", "G", "P");
    semaphore.settings.isolation = IsolationStrategy::Semaphore;
    semaphore.settings.thread_pool_key_override = None;
    semaphore.settings.timeout = None;
    semaphore.circuit = CircuitStatus::Closed;
    commands.push(semaphore);

    let mut open = command("Open", "G", "P");
    open.circuit = CircuitStatus::Open;
    open.settings.timeout = Some(Duration::from_millis(2500));
    open.settings.circuit_breaker_force_open = true;
    commands.push(open);

    let mut huge = command("Huge", "G", "P");
    huge.metrics.counts.set(Ev::Success, u64::MAX);
    huge.metrics.counts.set(Ev::Failure, i64::MAX as u64);
    huge.metrics.counts.set(Ev::Timeout, i64::MAX as u64 + 1);
    huge.metrics.health = HealthCounts {
        total: u64::MAX,
        errors: u64::MAX / 2,
    };
    huge.metrics.latency_execute.percentiles = [0, 0, 0, 0, 0, 0, 0, 0, u64::MAX as _];
    commands.push(huge);

    let mut controls = String::new();
    for c in 0u8..0x20 {
        controls.push(char::from(c));
    }
    for odd in [
        "",
        "with \"quotes\"",
        r"back\slash\",
        "line\nbreak\r\nand\ttab",
        &controls,
        "\u{7f}",
        "é中文🦀",
        "\u{2028}\u{2029}",
        "data: {\"type\":\"HystrixCommand\"}\n\ndata: ",
        "{\"false\":1}",
    ] {
        let mut report = command(odd, odd, odd);
        report.settings.thread_pool_key_override = Some(odd.to_owned());
        commands.push(report);
    }

    {
        use hystrix_core::{CommandMetrics, ManualClock, MetricsConfig};
        let clock = ManualClock::new();
        let metrics = CommandMetrics::with_clock(
            "Real",
            "Group",
            "Pool",
            MetricsConfig::default(),
            clock.clock(),
        );
        for event in [Ev::Success, Ev::Success, Ev::Timeout, Ev::Failure] {
            metrics.mark(event);
        }
        commands.push(CommandReport {
            metrics: metrics.snapshot(),
            circuit: CircuitStatus::Closed,
            settings: CommandSettingsReport::default(),
        });
    }

    let mut pools = vec![pool("UsersPool", 345), pool("Idle", 0), pool("é \"q\"", 1)];
    let mut big = pool("Big", u64::MAX);
    big.metrics.task_count = u64::MAX;
    big.metrics.rolling_executed = i64::MAX as u64;
    pools.push(big);
    (commands, pools)
}

/// Every message read back from `bytes` (an SSE stream), fed in chunks of `size`.
fn read_back(bytes: &[u8], size: usize) -> (Vec<Message>, Vec<String>) {
    let mut reader = LineReader::default();
    let mut parser = Parser::new();
    let mut messages = Vec::new();
    let mut jsons = Vec::new();
    for chunk in bytes.chunks(size.max(1)) {
        reader
            .feed(chunk, |line| match Line::classify(line) {
                Line::Data(json) => {
                    messages.push(parser.parse(json).unwrap());
                    jsons.push(String::from_utf8(json.to_vec()).unwrap());
                }
                Line::Blank | Line::Ping => {}
                Line::Other => panic!("{:?}", String::from_utf8_lossy(line)),
            })
            .unwrap();
    }
    assert_eq!(reader.pending(), 0);
    (messages, jsons)
}

#[test]
fn encoded_reports_round_trip_field_by_field() {
    let (commands, pools) = reports();
    let mut stream = encode::PING.to_vec();
    stream.extend_from_slice(&Encoder::new().metrics_tick(&commands, &pools, NOW));
    stream.extend_from_slice(encode::PING);
    // A second tick, in the ≤ 1.5.3 framing (CRLF), and a later time.
    let later = Encoder::new().metrics_tick(&commands, &pools, NOW + 500);
    stream.extend_from_slice(
        &String::from_utf8(later.to_vec())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes(),
    );

    let published = pools.iter().filter(|p| encode::is_published(p)).count();
    assert_eq!(published, pools.len() - 1, "the idle pool is not sent");
    let per_tick = commands.len() + published;

    for size in [usize::MAX, 1, 3, 7, 4096] {
        let (messages, jsons) = read_back(&stream, size);
        assert_eq!(messages.len(), 2 * per_tick);
        for (i, (message, json)) in messages.iter().zip(&jsons).enumerate() {
            assert_matches_json(message, json);
            let tick = i / per_tick;
            let i = i % per_tick;
            assert_eq!(message.current_time, Some(NOW as i64 + 500 * tick as i64));
            assert_eq!(message.reporting_hosts, 1);
            if i < commands.len() {
                let report = &commands[i];
                assert_eq!(&*message.kind, "HystrixCommand");
                assert_eq!(&*message.name, report.metrics.key.as_str());
                // 48 fields: type, name, currentTime, reportingHosts and these 44.
                assert_eq!(field_names(message), COMMAND_FIELDS_1_5);
                assert_eq!(
                    message.get("group"),
                    Some(&Value::Str(name(report.metrics.group.as_str())))
                );
                assert_eq!(
                    message.get("threadPool"),
                    Some(&Value::Str(name(report.metrics.pool.as_str())))
                );
                let expected_override = match &report.settings.thread_pool_key_override {
                    Some(s) => Value::Str(name(s)),
                    None => Value::Null,
                };
                assert_eq!(
                    message.get("propertyValue_executionIsolationThreadPoolKeyOverride"),
                    Some(&expected_override)
                );
                assert_eq!(
                    message.get("isCircuitBreakerOpen"),
                    Some(&Value::Bool(report.circuit.is_open()))
                );
                let success = report.metrics.counts.get(Ev::Success);
                let expected_success =
                    i64::try_from(success).map_or(Value::Float(success as f64), Value::Int);
                assert_eq!(message.get("rollingCountSuccess"), Some(&expected_success));
            } else {
                assert_eq!(&*message.kind, "HystrixThreadPool");
                // 17 fields: type, name, currentTime, reportingHosts and these 13.
                assert_eq!(message.fields.len(), 13);
                assert_eq!(
                    message.get("rollingCountCommandRejections"),
                    Some(&Value::Int(3))
                );
            }
        }
    }
    // Names with line breaks and quotes come back as they were.
    let (messages, _) = read_back(&stream, usize::MAX);
    let names: Vec<&str> = messages[..commands.len()]
        .iter()
        .map(|m| &*m.name)
        .collect();
    let expected: Vec<&str> = commands.iter().map(|c| c.metrics.key.as_str()).collect();
    assert_eq!(names, expected);
    assert!(names.contains(&"line\nbreak\r\nand\ttab"));
}

#[test]
fn single_encoded_lines_round_trip() {
    let (commands, pools) = reports();
    for report in &commands {
        let mut buf = Vec::new();
        encode::write_command(&mut buf, report, NOW);
        let json = String::from_utf8(buf).unwrap();
        let m = parse(&json).unwrap();
        assert_eq!(m.fields.len(), 44);
        assert_matches_json(&m, &json);
    }
    for report in &pools {
        let mut buf = Vec::new();
        encode::write_thread_pool(&mut buf, report, NOW);
        let json = String::from_utf8(buf).unwrap();
        let m = parse(&json).unwrap();
        assert_eq!(m.fields.len(), 13);
        assert_eq!(&*m.name, report.key.as_str());
        assert_matches_json(&m, &json);
    }
}

// ===== properties =====

/// Bytes that look like a Hystrix stream often enough to reach the parser.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => any::<u8>().prop_map(|b| vec![b]),
        2 => Just(b"\n".to_vec()),
        2 => Just(b"\r".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        2 => Just(b"data: ".to_vec()),
        1 => Just(b"data:".to_vec()),
        1 => Just(b"ping: ".to_vec()),
        1 => Just(b": ping".to_vec()),
        3 => Just(br#"{"type":"HystrixCommand","name":"A""#.to_vec()),
        2 => Just(br#","rollingCountSuccess":1"#.to_vec()),
        2 => Just(br#","latencyExecute":{"50":1,"99.5":-1}"#.to_vec()),
        1 => Just(br#","x":[[[["#.to_vec()),
        1 => Just(br#","n":1e999"#.to_vec()),
        1 => Just(br#","s":"\u00e9\n""#.to_vec()),
        1 => Just(b"\xff\xfe".to_vec()),
        3 => Just(b"}".to_vec()),
        1 => Just(b"{".to_vec()),
        1 => Just(b",".to_vec()),
        1 => Just(b"\"".to_vec()),
    ];
    proptest::collection::vec(token, 0..80).prop_map(|t| t.concat())
}

/// Cut points turning `len` bytes into chunks (empty chunks included).
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..2048, 0..24)
}

fn chunked<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Anything, in any chunking, with any limit: no panic, never more than the limit held,
    /// no line longer than the limit or holding a line end.
    #[test]
    fn byte_soup_never_panics_and_holds_at_most_the_limit(
        bytes in soup(),
        cuts in cuts(),
        max in prop_oneof![0usize..8, 8usize..200, Just(1 << 20)],
    ) {
        let mut reader = LineReader::new(max);
        let mut parser = Parser::new();
        for chunk in chunked(&bytes, &cuts) {
            let result = reader.feed(chunk, |line| {
                assert!(line.len() <= max);
                assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
                if let Line::Data(json) = Line::classify(line) {
                    if let Ok(m) = parser.parse(json) {
                        assert!(m.reporting_hosts >= 1);
                        assert!(m.fields.len() <= MAX_FIELDS);
                    }
                }
            });
            prop_assert!(reader.pending() <= max);
            if result.is_err() {
                break;
            }
        }
    }

    /// Without a limit in the way, how the bytes are cut (into non-empty chunks) changes
    /// nothing.
    #[test]
    fn chunking_changes_no_line(bytes in soup(), cuts in cuts()) {
        let whole = lines_in_chunks(&bytes, 0, 1 << 20);
        let mut reader = LineReader::new(1 << 20);
        let mut got = Vec::new();
        for chunk in chunked(&bytes, &cuts) {
            if chunk.is_empty() {
                continue; // See an_empty_chunk_between_cr_and_lf_adds_no_line.
            }
            reader.feed(chunk, |l| got.push(l.to_vec())).unwrap();
        }
        prop_assert_eq!((got, reader.pending()), whole);
    }

    /// Any JSON object with string type and name parses to what serde_json reads.
    #[test]
    fn any_hystrix_like_object_parses_as_serde_json_reads_it(
        fields in proptest::collection::vec((field_name(), json_value()), 0..12),
        reporting_hosts in proptest::option::of(-2i64..5),
        current_time in proptest::option::of(any::<i64>()),
    ) {
        let mut json = String::from(r#"{"type":"HystrixCommand","name":"N""#);
        if let Some(n) = reporting_hosts {
            json.push_str(&format!(r#","reportingHosts":{n}"#));
        }
        for (k, v) in &fields {
            json.push(',');
            json.push_str(&serde_json::to_string(k).unwrap());
            json.push(':');
            json.push_str(v);
        }
        if let Some(t) = current_time {
            json.push_str(&format!(r#","currentTime":{t}"#));
        }
        json.push('}');
        let m = parse(&json).unwrap();
        assert_matches_json(&m, &json);
    }
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("rollingCountSuccess".to_owned()),
        Just("latencyExecute".to_owned()),
        Just("group".to_owned()),
        Just("propertyValue_x".to_owned()),
        "[a-zé\"\\\\ ]{0,6}",
    ]
}

fn json_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| format!("{f:?}")),
        Just("-1".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("123456789012345678901234567890".to_owned()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    scalar.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec(("[0-9a-z.]{0,4}", inner), 0..5).prop_map(|v| {
                let entries: Vec<String> = v
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                    .collect();
                format!("{{{}}}", entries.join(","))
            }),
        ]
    })
}
