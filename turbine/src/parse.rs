//! Reading Hystrix event streams: SSE lines out of byte chunks, and messages out of lines.
//!
//! Everything a Hystrix or Turbine of any version sends is accepted (spec §2.5, §7.5):
//!
//! - line ends `\n`, `\r\n` or `\r`, split anywhere across chunks;
//! - heart-beats `ping: ` (Hystrix), `: ping` and `:ping` (Turbine, the dashboard's mock);
//! - `data: {json}` with or without the space; other SSE fields (`event:`, `id:`, `retry:`)
//!   are ignored;
//! - the 1.3, 1.4 (a duplicate `rollingCountEmit` key: the last value wins, as Jackson) and 1.5
//!   field sets, `-1` percentiles, `null`, floats, unknown fields and unknown `type`s.
//!
//! A line that is not a JSON object with a string `type` and `name` is refused with a
//! [`ParseError`] (the caller counts and skips it). A line longer than the reader's limit
//! makes [`LineReader::feed`] fail, and the caller drops the connection: nothing an upstream
//! sends can make the reader hold more than one line of that size.
//!
//! ```
//! use hystrix_turbine::parse::{Line, LineReader, Parser};
//!
//! let mut reader = LineReader::new(1024);
//! let mut parser = Parser::new();
//! let mut messages = Vec::new();
//! let chunks: [&[u8]; 3] = [b": ping\r\nda", b"ta: {\"type\":\"HystrixCommand\",\"name\":\"Get", b"\",\"rollingCountSuccess\":3}\n\n"];
//! for chunk in chunks {
//!     reader
//!         .feed(chunk, |line| {
//!             if let Line::Data(json) = Line::classify(line) {
//!                 messages.push(parser.parse(json).unwrap());
//!             }
//!         })
//!         .unwrap();
//! }
//! assert_eq!(messages.len(), 1);
//! assert_eq!(&*messages[0].name, "Get");
//! assert_eq!(messages[0].reporting_hosts, 1);
//! ```

use std::{collections::HashMap, fmt, sync::Arc};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The longest line a [`LineReader`] takes by default: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

// ===== LineReader =====

/// Splits a byte stream into lines, holding at most one partial line of bounded length.
#[derive(Debug)]
pub struct LineReader {
    partial: Vec<u8>,
    max_line: usize,
    /// The last chunk ended with `\r`: a `\n` that starts the next one ends no line.
    after_cr: bool,
}

/// A line longer than the [`LineReader`]'s limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit, in bytes.
    pub max: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a line is longer than {} bytes", self.max)
    }
}

impl std::error::Error for LineTooLong {}

impl LineReader {
    /// A reader refusing lines longer than `max_line` bytes (terminator excluded).
    pub fn new(max_line: usize) -> Self {
        Self {
            partial: Vec::new(),
            max_line,
            after_cr: false,
        }
    }

    /// Calls `on_line` with every line `chunk` completes, without its terminator. The
    /// unterminated end is kept for the next chunk; it fails once it is longer than the limit
    /// (the reader should then be dropped with its connection).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<(), LineTooLong> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut rest = chunk;
        if std::mem::take(&mut self.after_cr) && rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line = &rest[..end];
            if self.partial.is_empty() {
                self.check(line.len())?;
                on_line(line);
            } else {
                self.check(self.partial.len() + line.len())?;
                self.partial.extend_from_slice(line);
                on_line(&self.partial);
                self.partial.clear();
            }
            let crlf = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if crlf {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.check(self.partial.len() + rest.len())?;
        self.partial.extend_from_slice(rest);
        if self.partial.is_empty() && self.partial.capacity() > 64 * 1024 {
            // Give back what one long line grew.
            self.partial = Vec::new();
        }
        Ok(())
    }

    /// Bytes held for an unterminated line.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    fn check(&self, len: usize) -> Result<(), LineTooLong> {
        if len > self.max_line {
            Err(LineTooLong { max: self.max_line })
        } else {
            Ok(())
        }
    }
}

impl Default for LineReader {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

// ===== Line =====

/// What one SSE line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `data:`: the JSON text, from its first `{` (Turbine 1.x reads it so), or all of it
    /// when it has none (the parser will refuse it).
    Data(&'a [u8]),
    /// A heart-beat: `ping:` (Hystrix) or a comment such as `: ping` (Turbine).
    Ping,
    /// A blank line (the end of an event).
    Blank,
    /// Any other field (`event:`, `id:`, `retry:`, an empty `data:`): ignored.
    Other,
}

impl<'a> Line<'a> {
    /// Classifies `line` (without its terminator).
    pub fn classify(line: &'a [u8]) -> Self {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Self::Blank;
        }
        if line[0] == b':' || line.starts_with(b"ping:") || line == b"ping" {
            return Self::Ping;
        }
        match line.strip_prefix(b"data:") {
            Some(data) => {
                let data = data.trim_ascii_start();
                match data.iter().position(|&b| b == b'{') {
                    Some(start) => Self::Data(&data[start..]),
                    // Not an object: refused by the parser, and so counted.
                    None if !data.is_empty() => Self::Data(data),
                    None => Self::Other,
                }
            }
            None => Self::Other,
        }
    }
}

// ===== Message =====

/// A name: a field, a type, a command or a percentile. Names are shared, so a message costs
/// one reference per field, not a copy of its name.
pub type Name = Arc<str>;

/// One parsed `data:` line: its `type`, `name`, `reportingHosts` and every other field.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// `type`: `HystrixCommand`, `HystrixThreadPool`, `HystrixCollapser`, `meta`, ...
    pub kind: Name,
    /// `name`.
    pub name: Name,
    /// `reportingHosts`, 1 when absent (spec §4.3) or not a non-negative integer (a Java
    /// Turbine 1.x sends 0 for keys whose hosts have all left).
    pub reporting_hosts: i64,
    /// `currentTime`, when it is an integer.
    pub current_time: Option<i64>,
    /// The other fields, in the order of the line; the last of duplicate keys.
    pub fields: Vec<(Name, Value)>,
}

/// The value of one field.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A JSON integer within 64 bits.
    Int(i64),
    /// Any other JSON number (a float, or an integer beyond 64 bits).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A string.
    Str(Name),
    /// An object of numbers, such as a percentile map (floats truncated, as Turbine; entries
    /// that are not numbers are left out).
    Map(Box<[(Name, i64)]>),
}

impl Message {
    /// The field `key`, if the line had it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find_map(|(k, v)| (&**k == key).then_some(v))
    }

    /// Whether Turbine passes this message on: not a `meta` event, not a `deleteData` order.
    pub fn is_metrics(&self) -> bool {
        &*self.kind != "meta" && self.get("deleteData").is_none()
    }
}

/// Why a line was refused.
#[derive(Debug)]
pub struct ParseError(String);

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

// ===== Parser =====

/// Parses `data:` lines into [`Message`]s, sharing the names it has seen.
///
/// One parser per connection: it remembers up to [`MAX_NAMES`](Self::MAX_NAMES) names, so
/// that a stream's repeated keys and values cost no allocation; names past the limit (a flood
/// of distinct command names) are allocated per line and forgotten.
#[derive(Debug, Default)]
pub struct Parser {
    names: HashMap<Box<str>, (Name, u32)>,
    /// By name id: the last line the name was a key of, and its index in that line's fields.
    seen: Vec<(u32, u32)>,
    /// The number of the line being parsed (never 0, which marks "not seen").
    line: u32,
}

/// The most fields a message keeps; a line with more is refused.
pub const MAX_FIELDS: usize = 1024;

impl Parser {
    /// The most names a parser remembers.
    pub const MAX_NAMES: usize = 4096;

    /// A parser that has seen no names.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one JSON object (the text after `data:`).
    pub fn parse(&mut self, json: &[u8]) -> Result<Message, ParseError> {
        self.line = self.line.wrapping_add(1);
        if self.line == 0 {
            self.seen.iter_mut().for_each(|s| *s = (0, 0));
            self.line = 1;
        }
        // JSON is UTF-8: checked here once for the whole line, so that bytes inside values the
        // parser skips (arrays, deeper objects) are checked too.
        let json =
            std::str::from_utf8(json).map_err(|e| ParseError::new(format!("not UTF-8: {e}")))?;
        let mut de = serde_json::Deserializer::from_str(json);
        let raw = MessageSeed { parser: self }
            .deserialize(&mut de)
            .map_err(|e| ParseError::new(format!("not a Hystrix JSON object: {e}")))?;
        de.end()
            .map_err(|e| ParseError::new(format!("text after the JSON object: {e}")))?;
        let kind = raw
            .kind
            .ok_or_else(|| ParseError::new("no string `type`"))?;
        let name = raw
            .name
            .ok_or_else(|| ParseError::new("no string `name`"))?;
        Ok(Message {
            kind,
            name,
            reporting_hosts: raw.reporting_hosts,
            current_time: raw.current_time,
            fields: raw.fields,
        })
    }

    /// Names remembered.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// The shared name for `s`, and its id when remembered.
    fn intern(&mut self, s: &str) -> (Name, Option<u32>) {
        if let Some((name, id)) = self.names.get(s) {
            return (name.clone(), Some(*id));
        }
        let name: Name = Arc::from(s);
        if self.names.len() < Self::MAX_NAMES {
            let id = self.names.len() as u32;
            self.names.insert(s.into(), (name.clone(), id));
            (name, Some(id))
        } else {
            (name, None)
        }
    }

    /// Adds a field, replacing an earlier one of the same name (Jackson keeps the last).
    /// Remembered names are found through their id in O(1); others by a scan.
    fn push(&mut self, fields: &mut Vec<(Name, Value)>, key: Name, id: Option<u32>, value: Value) {
        let earlier = match id {
            Some(id) => {
                let id = id as usize;
                if self.seen.len() <= id {
                    self.seen.resize(id + 1, (0, 0));
                }
                let (line, index) = self.seen[id];
                if line == self.line {
                    Some(index as usize)
                } else {
                    self.seen[id] = (self.line, fields.len() as u32);
                    None
                }
            }
            None => fields.iter().position(|(k, _)| *k == key),
        };
        match earlier {
            Some(index) => fields[index].1 = value,
            None => fields.push((key, value)),
        }
    }
}

/// The fields of a line as they are read.
struct Raw {
    kind: Option<Name>,
    name: Option<Name>,
    reporting_hosts: i64,
    current_time: Option<i64>,
    fields: Vec<(Name, Value)>,
}

struct MessageSeed<'p> {
    parser: &'p mut Parser,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = Raw;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let parser = self.parser;
        let mut raw = Raw {
            kind: None,
            name: None,
            reporting_hosts: 1,
            current_time: None,
            fields: Vec::with_capacity(48),
        };
        while let Some(key) = map.next_key_seed(NameSeed { parser })? {
            let (key, id) = key;
            let value = map.next_value_seed(ValueSeed { parser })?;
            match &*key {
                "type" => raw.kind = value.into_name(),
                "name" => raw.name = value.into_name(),
                "reportingHosts" => {
                    raw.reporting_hosts = match value {
                        Value::Int(n) if n >= 0 => n,
                        _ => 1,
                    }
                }
                "currentTime" => {
                    raw.current_time = match value {
                        Value::Int(n) => Some(n),
                        _ => None,
                    }
                }
                _ => {
                    if raw.fields.len() >= MAX_FIELDS {
                        return Err(de::Error::custom(format_args!(
                            "more than {MAX_FIELDS} fields"
                        )));
                    }
                    parser.push(&mut raw.fields, key, id, value);
                }
            }
        }
        Ok(raw)
    }
}

impl Value {
    fn into_name(self) -> Option<Name> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Reads a key (or a string value) into a shared name.
struct NameSeed<'p> {
    parser: &'p mut Parser,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = (Name, Option<u32>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = (Name, Option<u32>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.parser.intern(v))
    }
}

/// Reads one field's value.
struct ValueSeed<'p> {
    parser: &'p mut Parser,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(self.parser.intern(v).0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // Nothing Hystrix sends is an array: kept as a null so the line still counts.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let parser = self.parser;
        let mut entries: Vec<(Name, i64)> = Vec::with_capacity(9);
        while let Some((key, _)) = map.next_key_seed(NameSeed { parser })? {
            let n = match map.next_value::<Number>()? {
                Number::Int(n) => n,
                Number::Float(f) => f as i64,
                Number::Not => continue,
            };
            if entries.len() >= MAX_FIELDS {
                return Err(de::Error::custom(format_args!(
                    "more than {MAX_FIELDS} entries in an object"
                )));
            }
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = n,
                None => entries.push((key, n)),
            }
        }
        Ok(Value::Map(entries.into_boxed_slice()))
    }
}

/// A nested map's value: a number, or anything else (skipped).
enum Number {
    Int(i64),
    Float(f64),
    Not,
}

impl<'de> de::Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(i64::try_from(v).map_or(Number::Float(v as f64), Number::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number::Float(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Number, E> {
                Ok(Number::Not)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Number, E> {
                Ok(Number::Not)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Number, E> {
                Ok(Number::Not)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Number, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Number::Not)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Number, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Number::Not)
            }
        }
        deserializer.deserialize_any(V)
    }
}
