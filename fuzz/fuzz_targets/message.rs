//! Messages parsed as an upstream's reader parses them, then aggregated as a cluster does:
//! each host's last message per key, hosts removed, messages expired, the merge written.
//!
//! Input: a first byte choosing the mode (bit 0) and the key cap (bits 1..3: 0 to 6 keys, or
//! 7: the default), then one operation per line:
//!
//! - `-` and a byte: the host (byte % 4) is removed;
//! - `~` and a byte: messages older than that many ms after the start expire;
//! - `!`: the merge is written and checked;
//! - anything else: the first byte picks the host (% 4), the rest is a `data:` JSON text,
//!   parsed by that host's parser and, when it parses, given to the aggregate.
//!
//! Checked: no panic; the key cap holds and every refused new key is counted; every merged
//! event is one JSON object naming its key, with a non-negative `reportingHosts`, and
//! `merged` agrees with `write`; removing every host, or expiring everything, leaves nothing.
#![no_main]

use std::time::Duration;

use hystrix_turbine::{
    aggregate::{Aggregator, Key, Mode},
    parse::Parser,
};
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;

const HOSTS: u64 = 4;

fn check(agg: &Aggregator, max_keys: usize) {
    assert!(
        agg.len() <= max_keys,
        "{} keys over a cap of {max_keys}",
        agg.len()
    );
    assert_eq!(agg.is_empty(), agg.keys().next().is_none());
    let mut out = Vec::new();
    agg.write(&mut out);
    let keys: Vec<Key> = agg.keys().cloned().collect();
    assert_eq!(keys.len(), agg.len());
    let mut rest = &out[..];
    for key in &keys {
        let event = rest
            .strip_prefix(b"data: ")
            .unwrap_or_else(|| panic!("no `data: ` for {key:?}"));
        let end = event
            .windows(2)
            .position(|w| w == b"\n\n")
            .unwrap_or_else(|| panic!("no event end for {key:?}"));
        let json = &event[..end];
        rest = &event[end + 2..];
        let value: serde_json::Value = serde_json::from_slice(json).unwrap_or_else(|e| {
            panic!(
                "merged event is not JSON ({e}): {}",
                String::from_utf8_lossy(json)
            )
        });
        let object = value.as_object().expect("merged event is an object");
        assert_eq!(object["type"].as_str(), Some(&*key.kind));
        assert_eq!(object["name"].as_str(), Some(&*key.name));
        let hosts = object["reportingHosts"]
            .as_i64()
            .expect("reportingHosts is an integer");
        assert!(hosts >= 0, "reportingHosts {hosts}");
        assert_eq!(
            agg.merged(key).as_deref(),
            Some(json),
            "merged differs from write"
        );
    }
    assert!(rest.is_empty(), "bytes after the last event");
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, ops)) = data.split_first() else {
        return;
    };
    let mode = if head & 1 == 0 {
        Mode::Turbine1
    } else {
        Mode::Turbine2
    };
    let max_keys = match (head >> 1) & 7 {
        7 => Aggregator::DEFAULT_MAX_KEYS,
        n => usize::from(n),
    };
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let mut agg = Aggregator::new(mode).max_keys(max_keys);
    let mut parsers: Vec<Parser> = (0..HOSTS).map(|_| Parser::new()).collect();
    let mut clock = 0u64;
    for op in ops.split(|&b| b == b'\n') {
        clock += 1;
        match op {
            [] => {}
            [b'-', host, ..] => agg.remove_host(u64::from(*host) % HOSTS),
            [b'~', ms, ..] => {
                let before = agg.len();
                agg.expire(at(u64::from(*ms)));
                assert!(agg.len() <= before);
            }
            [b'!', ..] => check(&agg, max_keys),
            [host, json @ ..] => {
                let host = u64::from(*host) % HOSTS;
                let Ok(message) = parsers[host as usize].parse(json) else {
                    continue;
                };
                let key = Key {
                    kind: message.kind.clone(),
                    name: message.name.clone(),
                };
                let known = agg.keys().any(|k| *k == key);
                let metrics = message.is_metrics();
                let (len, dropped) = (agg.len(), agg.dropped());
                let kept = agg.update(host, at(clock), message);
                if !metrics {
                    assert!(!kept);
                    assert_eq!((agg.len(), agg.dropped()), (len, dropped));
                } else if known || len < max_keys {
                    assert!(kept);
                    assert_eq!(agg.dropped(), dropped);
                    assert_eq!(agg.len(), len + usize::from(!known));
                } else {
                    assert!(!kept);
                    assert_eq!((agg.len(), agg.dropped()), (len, dropped + 1));
                }
            }
        }
    }
    check(&agg, max_keys);
    let dropped = agg.dropped();
    for host in 0..HOSTS {
        agg.remove_host(host);
    }
    assert!(agg.is_empty(), "keys left with no host");
    assert_eq!(agg.dropped(), dropped);
    check(&agg, max_keys);
});
