//! A naive model of the merge rules of spec §4.3 (Turbine 1.x) and §4.7 (Turbine 2.x),
//! computed from scratch out of each host's last message as parsed by serde_json, and a naive
//! scan of the lines of a stream that the turbine reads as messages. Written independently of
//! the aggregator and the parser, to check them.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;

use hystrix_turbine::aggregate::{HostId, Mode};
use serde_json::{Map, Value as Json, json};

/// How one host's value adds up.
#[derive(Clone, Debug)]
pub enum Class {
    Int(i64),
    Map(Vec<(String, i64)>),
    Counts(Vec<(String, i64)>),
}

/// A string holding a tier-1 Turbine 1.x's counts (`{"false":2,"true":1}`), as counts.
pub fn counts_in(s: &str) -> Option<Vec<(String, i64)>> {
    if !s.starts_with('{') {
        return None;
    }
    let counts: BTreeMap<String, i64> = serde_json::from_str(s).ok()?;
    Some(counts.into_iter().collect())
}

/// A JSON number as an integer, floats truncated (saturating).
pub fn truncated(n: &serde_json::Number) -> i64 {
    n.as_i64().unwrap_or_else(|| n.as_f64().unwrap() as i64)
}

pub fn classify(mode: Mode, field: &str, value: &Json) -> Class {
    // §4.7: Turbine 2.x counts every propertyValue_* as a string, even numbers.
    let property = mode == Mode::Turbine2 && field.starts_with("propertyValue_");
    let one = |s: String| Class::Counts(vec![(s, 1)]);
    match value {
        Json::Number(n) => match n.as_i64() {
            Some(i) if property => one(i.to_string()),
            Some(i) => Class::Int(i),
            // §4.3: a float is a string attribute in 1.x; §4.7: truncated and summed in 2.x.
            None if property || mode == Mode::Turbine1 => one(n.as_f64().unwrap().to_string()),
            None => Class::Int(truncated(n)),
        },
        Json::Bool(b) => one(b.to_string()),
        // The parser reads an array as null.
        Json::Null | Json::Array(_) => one("null".to_owned()),
        Json::String(s) => counts_in(s).map_or_else(|| one(s.clone()), Class::Counts),
        Json::Object(o) => {
            // Objects of numbers; what is not a number is left out.
            let entries: Vec<(String, i64)> = o
                .iter()
                .filter_map(|(k, v)| v.as_number().map(|n| (k.clone(), truncated(n))))
                .collect();
            if property {
                Class::Counts(entries)
            } else {
                Class::Map(entries)
            }
        }
    }
}

#[derive(Debug)]
pub enum Acc {
    Sum(i64),
    Map(BTreeMap<String, i64>),
    Counts(BTreeMap<String, i64>),
}

impl Acc {
    pub fn new(class: Class) -> Self {
        match class {
            Class::Int(n) => Acc::Sum(n),
            Class::Map(entries) => Acc::Map(entries.into_iter().collect()),
            Class::Counts(counts) => {
                let mut acc = BTreeMap::new();
                for (v, n) in counts {
                    *acc.entry(v).or_insert(0i64) += n;
                }
                Acc::Counts(acc)
            }
        }
    }

    /// A value of another kind than the field's first host's is left out, except that
    /// anything adds to counts (the aggregator's documented rule for mixed kinds).
    pub fn add(&mut self, class: Class) {
        match (self, class) {
            (Acc::Sum(sum), Class::Int(n)) => *sum = sum.saturating_add(n),
            (Acc::Map(sums), Class::Map(entries)) => {
                for (k, n) in entries {
                    let slot = sums.entry(k).or_insert(0);
                    *slot = slot.saturating_add(n);
                }
            }
            (Acc::Counts(counts), class) => {
                let more = match class {
                    Class::Int(n) => vec![(n.to_string(), 1)],
                    Class::Map(entries) | Class::Counts(entries) => entries,
                };
                for (v, n) in more {
                    let slot = counts.entry(v).or_insert(0);
                    *slot = slot.saturating_add(n);
                }
            }
            _ => {}
        }
    }

    pub fn output(&self, mode: Mode) -> Json {
        // §4.3: negative sums are written as 0 by 1.x; §4.7: 2.x does not clamp.
        let clamp = |n: i64| if mode == Mode::Turbine1 { n.max(0) } else { n };
        match self {
            Acc::Sum(n) => clamp(*n).into(),
            Acc::Map(sums) => sums
                .iter()
                .map(|(k, n)| (k.clone(), Json::from(clamp(*n))))
                .collect::<Map<_, _>>()
                .into(),
            Acc::Counts(counts) => {
                let present: BTreeMap<&str, i64> = counts
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(v, n)| (v.as_str(), *n))
                    .collect();
                match present.len() {
                    0 if mode == Mode::Turbine1 => "".into(),
                    0 => json!({}),
                    1 => match *present.keys().next().unwrap() {
                        "true" => true.into(),
                        "false" => false.into(),
                        v => v.into(),
                    },
                    // 1.x: a JSON string holding the compact object of counts; 2.x: the object.
                    _ if mode == Mode::Turbine1 => serde_json::to_string(&present).unwrap().into(),
                    _ => serde_json::to_value(&present).unwrap(),
                }
            }
        }
    }
}

/// The merge of the hosts' last messages of one key, from scratch.
pub fn merge<'a>(
    mode: Mode,
    kind: &str,
    name: &str,
    hosts: impl Iterator<Item = &'a Map<String, Json>>,
) -> Json {
    let mut accs: BTreeMap<String, Acc> = BTreeMap::new();
    let mut reporting_hosts = 0i64;
    for message in hosts {
        // §4.3: reportingHosts is summed, 1 when absent (the parser also takes a value that
        // is not a non-negative integer as 1).
        let rh = message
            .get("reportingHosts")
            .and_then(Json::as_i64)
            .filter(|n| *n >= 0)
            .unwrap_or(1);
        reporting_hosts = reporting_hosts.saturating_add(rh);
        for (field, value) in message {
            if matches!(
                field.as_str(),
                "type" | "name" | "reportingHosts" | "currentTime"
            ) {
                continue;
            }
            let class = classify(mode, field, value);
            match accs.get_mut(field) {
                Some(acc) => acc.add(class),
                None => {
                    accs.insert(field.clone(), Acc::new(class));
                }
            }
        }
    }
    let mut out: Map<String, Json> = accs
        .iter()
        .map(|(field, acc)| (field.clone(), acc.output(mode)))
        .collect();
    out.insert("type".into(), kind.into());
    out.insert("name".into(), name.into());
    out.insert("reportingHosts".into(), reporting_hosts.into());
    out.into()
}

/// The last message of each host per key, as serde_json reads them.
#[derive(Debug)]
pub struct Model {
    pub mode: Mode,
    pub max_keys: usize,
    /// (type, name) → host → (when, its last message).
    pub keys: BTreeMap<(String, String), BTreeMap<HostId, (u64, Map<String, Json>)>>,
    pub dropped: u64,
}

impl Model {
    pub fn new(mode: Mode, max_keys: usize) -> Self {
        Self {
            mode,
            max_keys,
            keys: BTreeMap::new(),
            dropped: 0,
        }
    }

    /// `json` is the text of a `data:` line the parser accepts.
    pub fn update(&mut self, host: HostId, at: u64, json: &str) -> bool {
        let Json::Object(message) = serde_json::from_str::<Json>(json).unwrap() else {
            panic!("not an object")
        };
        let kind = message["type"].as_str().unwrap().to_owned();
        let name = message["name"].as_str().unwrap().to_owned();
        // §4.4, §4.5: not metrics.
        if kind == "meta" || message.contains_key("deleteData") {
            return false;
        }
        let key = (kind, name);
        if !self.keys.contains_key(&key) && self.keys.len() >= self.max_keys {
            self.dropped += 1;
            return false;
        }
        self.keys
            .entry(key)
            .or_default()
            .insert(host, (at, message));
        true
    }

    pub fn remove_host(&mut self, host: HostId) {
        for hosts in self.keys.values_mut() {
            hosts.remove(&host);
        }
        self.keys.retain(|_, hosts| !hosts.is_empty());
    }

    pub fn expire(&mut self, before: u64) -> usize {
        let mut removed = 0;
        for hosts in self.keys.values_mut() {
            let n = hosts.len();
            hosts.retain(|_, (at, _)| *at >= before);
            removed += n - hosts.len();
        }
        self.keys.retain(|_, hosts| !hosts.is_empty());
        removed
    }

    /// How many hosts report each key.
    pub fn hosts_per_key(&self) -> BTreeMap<(String, String), usize> {
        self.keys
            .iter()
            .map(|(key, hosts)| (key.clone(), hosts.len()))
            .collect()
    }

    pub fn output(&self) -> BTreeMap<(String, String), Json> {
        self.keys
            .iter()
            .map(|((kind, name), hosts)| {
                let merged = merge(self.mode, kind, name, hosts.values().map(|(_, m)| m));
                ((kind.clone(), name.clone()), merged)
            })
            .collect()
    }
}

/// 1.x writes several values as a string holding an object of counts: compare the counts,
/// not the text (the order of its keys is free).
pub fn normalize(value: &Json) -> Json {
    let Json::Object(fields) = value else {
        panic!("not an object: {value}")
    };
    fields
        .iter()
        .map(|(k, v)| {
            let v = match v.as_str().and_then(counts_in) {
                Some(counts) => {
                    json!({ "$counts": counts.into_iter().collect::<BTreeMap<_, _>>() })
                }
                None => v.clone(),
            };
            (k.clone(), v)
        })
        .collect::<Map<_, _>>()
        .into()
}

// ===== the lines of a stream =====

/// What a naive reading of a byte stream finds, as the turbine should read it (spec §2.5).
#[derive(Debug, Default)]
pub struct Scan {
    /// The JSON text of every message, in order: `data:` lines holding, from their first
    /// `{`, a JSON object with a string `type` and `name` (meta events included).
    pub messages: Vec<String>,
    /// `data:` lines with something that is not such an object.
    pub refused: usize,
}

/// Scans the complete lines of `bytes` (ended by `\n`, `\r\n` or `\r`; an unterminated tail
/// is not a line). Heart-beats (`:ping`, `: ping`, `ping:`), blank lines and other fields
/// are skipped; `data:` lines are read from their first `{`.
pub fn scan(bytes: &[u8]) -> Scan {
    let text = String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();
    // What follows the last line end is not a line (yet).
    lines.pop();
    let mut scan = Scan::default();
    for line in lines {
        let line = line.trim();
        if line.starts_with(':') || line.starts_with("ping:") {
            continue;
        }
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim_start();
        if data.is_empty() {
            continue;
        }
        let json = data.find('{').map_or(data, |start| &data[start..]);
        match serde_json::from_str::<Json>(json) {
            Ok(Json::Object(o))
                if o.get("type").is_some_and(Json::is_string)
                    && o.get("name").is_some_and(Json::is_string) =>
            {
                scan.messages.push(json.to_owned());
            }
            _ => scan.refused += 1,
        }
    }
    scan
}
