//! One cluster's aggregate: the last message of each host per (type, name), merged as
//! Turbine 1.x or 2.x merged them.
//!
//! The merge is recomputed from the hosts' last messages each time it is written, so that it
//! is exactly the sum over the hosts reporting now: a host removed, or expired for silence,
//! takes its whole contribution with it, and a key no host reports any more is gone.
//! (Turbine 1.x kept running sums updated by deltas, which drift when a host restarts its
//! counters out of order, and kept departed keys forever with zeros.)
//!
//! # The merge rules
//!
//! [`Mode::Turbine1`] (spec §4.3), what the Netflix dashboard was written for:
//!
//! - every JSON integer is summed over the hosts, `propertyValue_*` included (a negative sum
//!   is written as 0, as Turbine reset it);
//! - objects of numbers (the percentile maps) are summed key by key;
//! - strings, booleans, `null` and floats count their values: one value among the hosts is
//!   written as itself (`"true"`/`"false"` as JSON booleans), several as a JSON *string*
//!   holding an object of counts (`"{\"false\":2,\"true\":1}"`), none as `""`;
//! - `reportingHosts` is the sum of the hosts' `reportingHosts`, and `currentTime` is dropped.
//!
//! [`Mode::Turbine2`] (spec §4.7): integers and floats (truncated) summed except
//! `propertyValue_*`, which count their values like strings; counts of several values are
//! written as a real JSON object with sorted keys.
//!
//! In both modes a string that holds an object of counts (a tier-1 Turbine 1.x's output) is
//! read back as those counts, so turbines tier (Turbine's `MULTI_ZONE`); `reportingHosts`
//! composes by its sum.
//!
//! ```
//! use hystrix_turbine::aggregate::{Aggregator, Mode};
//! use hystrix_turbine::parse::Parser;
//! use tokio::time::Instant;
//!
//! let mut parser = Parser::new();
//! let mut agg = Aggregator::new(Mode::Turbine1);
//! let now = Instant::now();
//! for (host, success, open) in [(1, 5, false), (2, 7, true)] {
//!     let line = format!(
//!         r#"{{"type":"HystrixCommand","name":"Get","rollingCountSuccess":{success},"isCircuitBreakerOpen":{open}}}"#
//!     );
//!     agg.update(host, now, parser.parse(line.as_bytes()).unwrap());
//! }
//! let mut out = Vec::new();
//! agg.write(&mut out);
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "data: {\"type\":\"HystrixCommand\",\"name\":\"Get\",\"rollingCountSuccess\":12,\
//!      \"isCircuitBreakerOpen\":\"{\\\"false\\\":1,\\\"true\\\":1}\",\"reportingHosts\":2}\n\n"
//! );
//! ```

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

use bytes::BufMut;
use hystrix_stream::encode::{write_i64, write_json_str};
use serde::Deserialize;
use tokio::time::Instant;

use crate::parse::{Message, Name, Value};

/// How hosts' values are merged and written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// As Turbine 1.x (the default): properties summed, several string values as a JSON string
    /// of counts. What the Netflix dashboard expects.
    #[default]
    Turbine1,
    /// As Turbine 2.x: properties counted as strings, several values as a JSON object.
    Turbine2,
}

/// Identifies a host within a cluster.
pub type HostId = u64;

/// (type, name): what Turbine aggregates by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The message's `type`.
    pub kind: Name,
    /// The message's `name`.
    pub name: Name,
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    message: Message,
}

/// One cluster's last message per host and key, merged on demand.
#[derive(Debug)]
pub struct Aggregator {
    mode: Mode,
    max_keys: usize,
    keys: BTreeMap<Key, BTreeMap<HostId, Entry>>,
    dropped: u64,
}

impl Aggregator {
    /// The default cap on keys: 10,000 (type, name) pairs per cluster.
    pub const DEFAULT_MAX_KEYS: usize = 10_000;

    /// An empty aggregate merging as `mode`.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            max_keys: Self::DEFAULT_MAX_KEYS,
            keys: BTreeMap::new(),
            dropped: 0,
        }
    }

    /// Caps the number of keys: a message for a new key beyond `max` is dropped (and counted
    /// in [`dropped`](Self::dropped)), so a flood of distinct names cannot grow memory
    /// without bound.
    #[must_use]
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    /// The merge mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Keeps `message` as `host`'s last for its key, received at `at`. Returns false when it
    /// was not kept: a `meta` or `deleteData` event, or a new key beyond the cap.
    pub fn update(&mut self, host: HostId, at: Instant, message: Message) -> bool {
        if !message.is_metrics() {
            return false;
        }
        let key = Key {
            kind: message.kind.clone(),
            name: message.name.clone(),
        };
        if !self.keys.contains_key(&key) && self.keys.len() >= self.max_keys {
            self.dropped += 1;
            return false;
        }
        self.keys
            .entry(key)
            .or_default()
            .insert(host, Entry { at, message });
        true
    }

    /// Removes everything `host` contributed.
    pub fn remove_host(&mut self, host: HostId) {
        self.keys.retain(|_, hosts| {
            hosts.remove(&host);
            !hosts.is_empty()
        });
    }

    /// Removes every message received before `before`; returns how many.
    pub fn expire(&mut self, before: Instant) -> usize {
        let mut removed = 0;
        self.keys.retain(|_, hosts| {
            let n = hosts.len();
            hosts.retain(|_, entry| entry.at >= before);
            removed += n - hosts.len();
            !hosts.is_empty()
        });
        removed
    }

    /// The (type, name) keys some host reports.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.keys()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no host reports anything.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Messages dropped because of the key cap, so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends one `data: {json}\n\n` event per key, in key order.
    pub fn write<B: BufMut>(&self, buf: &mut B) {
        let mut merge = Merge::default();
        for (key, hosts) in &self.keys {
            self.merge_into(&mut merge, hosts);
            buf.put_slice(b"data: ");
            merge.write(self.mode, key, buf);
            buf.put_slice(b"\n\n");
        }
    }

    /// The merged JSON object of one key, if some host reports it.
    pub fn merged(&self, key: &Key) -> Option<Vec<u8>> {
        let mut merge = Merge::default();
        self.merge_into(&mut merge, self.keys.get(key)?);
        let mut out = Vec::new();
        merge.write(self.mode, key, &mut out);
        Some(out)
    }

    /// Resets `merge` to the merge of `hosts`' last messages.
    fn merge_into<'a>(&self, merge: &mut Merge<'a>, hosts: &'a BTreeMap<HostId, Entry>) {
        merge.clear();
        for entry in hosts.values() {
            merge.add(self.mode, &entry.message);
        }
    }
}

// ===== Merge =====

/// The accumulators of one key, in the order fields were first seen.
#[derive(Debug, Default)]
struct Merge<'a> {
    fields: Vec<(&'a str, Acc<'a>)>,
    index: HashMap<&'a str, usize>,
    reporting_hosts: i64,
}

#[derive(Debug)]
enum Acc<'a> {
    Sum(i64),
    Map(Vec<(&'a str, i64)>),
    Counts(Vec<(Cow<'a, str>, i64)>),
}

/// How one host's value adds to an accumulator.
enum Class<'a> {
    Int(i64),
    Map(&'a [(Name, i64)]),
    Counts(Vec<(Cow<'a, str>, i64)>),
}

impl<'a> Merge<'a> {
    fn clear(&mut self) {
        self.fields.clear();
        self.index.clear();
        self.reporting_hosts = 0;
    }

    fn add(&mut self, mode: Mode, message: &'a Message) {
        self.reporting_hosts = self.reporting_hosts.saturating_add(message.reporting_hosts);
        for (position, (name, value)) in message.fields.iter().enumerate() {
            let class = classify(mode, name, value);
            // Hosts of one version send their fields in one order: try the same position first.
            let slot = match self.fields.get(position) {
                Some((n, _)) if *n == &**name => Some(position),
                _ => self.index.get(&**name).copied(),
            };
            match slot {
                Some(i) => self.fields[i].1.add(class),
                None => {
                    self.index.insert(name, self.fields.len());
                    self.fields.push((name, Acc::new(class)));
                }
            }
        }
    }

    fn write<B: BufMut>(&self, mode: Mode, key: &Key, buf: &mut B) {
        buf.put_slice(b"{\"type\":");
        write_json_str(buf, &key.kind);
        buf.put_slice(b",\"name\":");
        write_json_str(buf, &key.name);
        for (name, acc) in &self.fields {
            buf.put_u8(b',');
            write_json_str(buf, name);
            buf.put_u8(b':');
            acc.write(mode, buf);
        }
        buf.put_slice(b",\"reportingHosts\":");
        write_i64(buf, self.reporting_hosts);
        buf.put_u8(b'}');
    }
}

fn classify<'a>(mode: Mode, name: &str, value: &'a Value) -> Class<'a> {
    let property = mode == Mode::Turbine2 && name.starts_with("propertyValue_");
    let text = |s: Cow<'a, str>| Class::Counts(vec![(s, 1)]);
    match value {
        Value::Int(n) if property => text(Cow::Owned(n.to_string())),
        Value::Int(n) => Class::Int(*n),
        Value::Float(f) if property || mode == Mode::Turbine1 => text(Cow::Owned(f.to_string())),
        Value::Float(f) => Class::Int(*f as i64),
        Value::Bool(b) => text(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null => text(Cow::Borrowed("null")),
        Value::Str(s) => match counts_in(s) {
            Some(counts) => Class::Counts(counts),
            None => text(Cow::Borrowed(s)),
        },
        Value::Map(entries) if property => Class::Counts(
            entries
                .iter()
                .map(|(k, n)| (Cow::Borrowed(&**k), *n))
                .collect(),
        ),
        Value::Map(entries) => Class::Map(entries),
    }
}

/// The counts a tier-1 Turbine 1.x wrote as a string: `{"false":2,"true":1}`.
fn counts_in(s: &str) -> Option<Vec<(Cow<'_, str>, i64)>> {
    if !s.starts_with('{') {
        return None;
    }
    let counts: BTreeMap<String, i64> = serde_json::from_str(s).ok()?;
    Some(
        counts
            .into_iter()
            .map(|(k, n)| (Cow::Owned(k), n))
            .collect(),
    )
}

impl<'a> Acc<'a> {
    fn new(class: Class<'a>) -> Self {
        match class {
            Class::Int(n) => Acc::Sum(n),
            Class::Map(entries) => Acc::Map(entries.iter().map(|(k, n)| (&**k, *n)).collect()),
            Class::Counts(counts) => Acc::Counts(counts),
        }
    }

    /// Adds a host's value. A value of another kind than the field's first (a number where
    /// the first host sent a string) is left out, except that anything adds to counts.
    fn add(&mut self, class: Class<'a>) {
        match (self, class) {
            (Acc::Sum(sum), Class::Int(n)) => *sum = sum.saturating_add(n),
            (Acc::Map(sums), Class::Map(entries)) => {
                for (i, (k, n)) in entries.iter().enumerate() {
                    let slot = match sums.get(i) {
                        Some((key, _)) if *key == &**k => Some(i),
                        _ => sums.iter().position(|(key, _)| *key == &**k),
                    };
                    match slot {
                        Some(j) => sums[j].1 = sums[j].1.saturating_add(*n),
                        None => sums.push((k, *n)),
                    }
                }
            }
            (Acc::Counts(counts), class) => {
                let more = match class {
                    Class::Counts(more) => more,
                    Class::Int(n) => vec![(Cow::Owned(n.to_string()), 1)],
                    Class::Map(entries) => entries
                        .iter()
                        .map(|(k, n)| (Cow::Borrowed(&**k), *n))
                        .collect(),
                };
                for (value, n) in more {
                    match counts.iter_mut().find(|(v, _)| *v == value) {
                        Some(entry) => entry.1 = entry.1.saturating_add(n),
                        None => counts.push((value, n)),
                    }
                }
            }
            _ => {}
        }
    }

    fn write<B: BufMut>(&self, mode: Mode, buf: &mut B) {
        let clamp = |n: i64| if mode == Mode::Turbine1 { n.max(0) } else { n };
        match self {
            Acc::Sum(n) => write_i64(buf, clamp(*n)),
            Acc::Map(sums) => {
                buf.put_u8(b'{');
                for (i, (k, n)) in sums.iter().enumerate() {
                    if i > 0 {
                        buf.put_u8(b',');
                    }
                    write_json_str(buf, k);
                    buf.put_u8(b':');
                    write_i64(buf, clamp(*n));
                }
                buf.put_u8(b'}');
            }
            Acc::Counts(counts) => {
                let mut present: Vec<(&str, i64)> = counts
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(v, n)| (&**v, *n))
                    .collect();
                present.sort_unstable();
                match (present.as_slice(), mode) {
                    ([], Mode::Turbine1) => buf.put_slice(b"\"\""),
                    ([], Mode::Turbine2) => buf.put_slice(b"{}"),
                    ([(v, _)], _) => match *v {
                        "true" => buf.put_slice(b"true"),
                        "false" => buf.put_slice(b"false"),
                        v => write_json_str(buf, v),
                    },
                    (several, Mode::Turbine1) => {
                        let mut object = Vec::with_capacity(16 * several.len());
                        write_counts(&mut object, several);
                        // The object's text as a JSON string, as Turbine 1.x wrote it.
                        write_json_str(buf, &String::from_utf8_lossy(&object));
                    }
                    (several, Mode::Turbine2) => write_counts(buf, several),
                }
            }
        }
    }
}

fn write_counts<B: BufMut>(buf: &mut B, counts: &[(&str, i64)]) {
    buf.put_u8(b'{');
    for (i, (v, n)) in counts.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        write_json_str(buf, v);
        buf.put_u8(b':');
        write_i64(buf, *n);
    }
    buf.put_u8(b'}');
}
