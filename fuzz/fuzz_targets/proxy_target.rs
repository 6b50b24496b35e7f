//! What the dashboard's proxy makes of a target and an allow-list: `Origin::parse` of every
//! entry, `AllowList::parse`, `parse_target`, `AllowList::allows` and `check`.
//!
//! Input: UTF-8; its first line holds the allow-list entries (separated by spaces), the rest
//! is the target.
//!
//! Checked: no panic; an origin's text parses back to it; a parsed target has an http(s)
//! scheme, a host, no credentials and no fragment, and parses back to itself; `check` is
//! `parse_target` then `allows`; an allowed target's origin is on the list and its address,
//! when it is one, is not one the proxy never reaches; an allowed origin's own URL passes.
#![no_main]

use std::net::IpAddr;

use hystrix_dashboard::allow::{AllowList, Origin, parse_target, refused_ip};
use libfuzzer_sys::fuzz_target;
use url::Host;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (entries, target) = text.split_once('\n').unwrap_or(("", text));
    let entries: Vec<&str> = entries
        .split(' ')
        .filter(|e| !e.is_empty())
        .take(8)
        .collect();
    let mut list = AllowList::default();
    for entry in &entries {
        if let Ok(origin) = Origin::parse(entry) {
            let shown = origin.to_string();
            assert_eq!(
                Origin::parse(&shown).as_ref(),
                Ok(&origin),
                "{entry:?} shown as {shown:?}"
            );
            list.push(origin);
        }
    }
    let all_ok = entries.iter().all(|e| Origin::parse(e).is_ok());
    assert_eq!(AllowList::parse(&entries).is_ok(), all_ok);
    for origin in list.origins() {
        let own = format!("{origin}/hystrix.stream");
        if let Err(e) = list.check(&own) {
            panic!("{own} of an allowed origin refused: {e}");
        }
    }

    let parsed = parse_target(target);
    if let Ok(url) = &parsed {
        assert!(matches!(url.scheme(), "http" | "https"), "{url}");
        assert!(url.host().is_some(), "{url}");
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "{url}"
        );
        assert!(url.fragment().is_none(), "{url}");
        assert_eq!(
            parse_target(url.as_str()).as_ref(),
            Ok(url),
            "{url} parsed again"
        );
        if list.allows(url).is_ok() {
            let origin = Origin::of(url).expect("an allowed URL has an origin");
            assert!(list.origins().contains(&origin));
            let ip = match &origin.host {
                Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
                Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
                Host::Domain(_) => None,
            };
            if let Some(why) = ip.and_then(refused_ip) {
                panic!("{url} allowed: {why}");
            }
        }
    }
    let checked = list.check(target);
    match (&parsed, &checked) {
        (Ok(url), Ok(same)) => {
            assert_eq!(url, same);
            assert!(list.allows(url).is_ok());
        }
        (Ok(url), Err(e)) => assert_eq!(list.allows(url).as_ref(), Err(e)),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Err(_), Ok(_)) => panic!("check passed a target parse_target refused"),
    }
});
