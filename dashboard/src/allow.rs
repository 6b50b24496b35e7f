//! What the stream proxy may reach: an allow-list of origins, and the checks every target
//! passes before a connection is made.
//!
//! The Hystrix Dashboard's `proxy.stream` fetched any URL it was given, which made every
//! dashboard a server-side request forgery hole (Netflix advisory nflx-2018-001). Here a
//! target is parsed with the WHATWG URL parser (the one browsers use, so `http://2130706433`,
//! `http://0x7f.1` and `HTTP://LOCALHOST.` mean what they mean to a browser), then refused
//! unless all of these hold:
//!
//! - the scheme is `http` or `https`, and the URL carries no user name or password;
//! - its scheme, host and port are those of an allow-listed [`Origin`] (a port left out means
//!   the scheme's default; an entry never matches another port or another host);
//! - the addresses the host resolves to are not link-local (`169.254.0.0/16`, where cloud
//!   metadata services answer, and `fe80::/10`), unspecified, broadcast or multicast, even
//!   when the host is allowed: a name can be re-pointed after it was allowed.
//!
//! ```
//! use hystrix_dashboard::allow::AllowList;
//!
//! let allow = AllowList::parse(["10.0.0.5:8080", "https://turbine.internal"]).unwrap();
//! assert!(allow.check("http://10.0.0.5:8080/hystrix.stream").is_ok());
//! assert!(allow.check("https://turbine.internal/turbine.stream?cluster=api").is_ok());
//! // Another port, another host, credentials, or another scheme are refused.
//! assert!(allow.check("http://10.0.0.5:8081/hystrix.stream").is_err());
//! assert!(allow.check("http://10.0.0.5:8080@169.254.169.254/").is_err());
//! assert!(allow.check("http://turbine.internal/turbine.stream").is_err());
//! ```

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use url::{Host, Url};

/// One allowed origin: a scheme, a host and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host, as the URL parser normalised it.
    pub host: Host<String>,
    /// The port (the scheme's default when the entry gave none).
    pub port: u16,
}

impl Origin {
    /// An origin from `host:port` (plain HTTP), `http://host[:port]` or `https://host[:port]`.
    /// A path, query, user name or password is an error: an entry allows a whole origin.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let text = if entry.contains("://") {
            entry.to_owned()
        } else {
            format!("http://{entry}")
        };
        let url = Url::parse(&text).map_err(|e| format!("allow-list entry `{entry}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "allow-list entry `{entry}`: the scheme must be http or https"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "allow-list entry `{entry}`: no user name or password"
            ));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "allow-list entry `{entry}`: an origin only (scheme, host, port), no path"
            ));
        }
        let origin =
            Self::of(&url).ok_or_else(|| format!("allow-list entry `{entry}`: no host"))?;
        let ip = match origin.host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if let Some(why) = ip.and_then(refused_ip) {
            return Err(format!("allow-list entry `{entry}`: {why}"));
        }
        Ok(origin)
    }

    /// The origin of `url` (`None` without a host or a known port).
    pub fn of(url: &Url) -> Option<Self> {
        Some(Self {
            scheme: url.scheme().to_owned(),
            host: url.host()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }

    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        match &self.host {
            Host::Domain(d) => d == "localhost",
            Host::Ipv4(ip) => ip.is_loopback(),
            Host::Ipv6(ip) => ip.is_loopback(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ipv6(ip) => write!(f, "{}://[{ip}]:{}", self.scheme, self.port),
            host => write!(f, "{}://{host}:{}", self.scheme, self.port),
        }
    }
}

/// The origins the proxy may reach.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    origins: Vec<Origin>,
}

/// Why a target was refused: the answer is 400 for a URL that does not parse and 403 for
/// one that is not allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a URL, or not an HTTP one.
    Invalid(String),
    /// A well-formed URL the proxy may not reach.
    Forbidden(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(why) | Self::Forbidden(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Refused {}

impl AllowList {
    /// An allow-list from entries (see [`Origin::parse`]).
    pub fn parse<I, S>(entries: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self::default();
        for entry in entries {
            list.push(Origin::parse(entry.as_ref())?);
        }
        Ok(list)
    }

    /// Adds an origin.
    pub fn push(&mut self, origin: Origin) {
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
    }

    /// The allowed origins.
    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// Parses a stream URL as the Hystrix Dashboard did (`http://` is prefixed when it does
    /// not start with `http`) and checks it against the list. The URL's fragment is removed.
    pub fn check(&self, target: &str) -> Result<Url, Refused> {
        let url = parse_target(target)?;
        self.allows(&url)?;
        Ok(url)
    }

    /// Whether the origin of a [parsed](parse_target) URL is on the list.
    pub fn allows(&self, url: &Url) -> Result<(), Refused> {
        let origin = Origin::of(url).ok_or_else(|| Refused::Invalid("no host".into()))?;
        if self.origins.contains(&origin) {
            Ok(())
        } else {
            Err(Refused::Forbidden(format!(
                "{origin} is not an allowed origin of this dashboard's proxy \
                 (add it with --allow, or read the stream directly if it sends CORS headers)"
            )))
        }
    }
}

/// A proxy target parsed and checked for form, but not against a list.
pub fn parse_target(target: &str) -> Result<Url, Refused> {
    let target = target.trim();
    if target.is_empty() {
        return Err(Refused::Invalid("the origin is empty".into()));
    }
    let http = target
        .as_bytes()
        .get(..4)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"http"));
    let text = if http {
        target.to_owned()
    } else {
        format!("http://{target}")
    };
    let mut url = Url::parse(&text).map_err(|e| Refused::Invalid(format!("`{target}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Invalid(format!(
            "`{target}`: only http and https streams can be proxied"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Forbidden(format!(
            "`{target}`: a user name or password in the URL is refused (use the authorization \
             parameter)"
        )));
    }
    if url.host().is_none() {
        return Err(Refused::Invalid(format!("`{target}`: no host")));
    }
    url.set_fragment(None);
    Ok(url)
}

/// Why the proxy never connects to `ip`, if it does not.
pub fn refused_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => refused_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => refused_v4(v4),
            None => refused_v6(ip),
        },
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_link_local() {
        Some("link-local addresses (169.254.0.0/16) are never proxied")
    } else if ip.is_unspecified() || ip.octets()[0] == 0 {
        Some("the unspecified network 0.0.0.0/8 is never proxied")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("broadcast and multicast addresses are never proxied")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if first & 0xffc0 == 0xfe80 {
        Some("link-local addresses (fe80::/10) are never proxied")
    } else if ip.is_unspecified() {
        Some("the unspecified address :: is never proxied")
    } else if ip.is_multicast() {
        Some("multicast addresses are never proxied")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> AllowList {
        AllowList::parse(["127.0.0.1:8080", "https://turbine.example", "[::1]:9000"]).unwrap()
    }

    #[test]
    fn entries_are_origins() {
        let list = allow();
        let shown: Vec<String> = list.origins().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "http://127.0.0.1:8080",
                "https://turbine.example:443",
                "http://[::1]:9000"
            ]
        );
        for bad in [
            "ftp://a:1",
            "http://u:p@a:1",
            "a:1/hystrix.stream",
            "http://a:1/?x",
            "http://169.254.169.254",
            "http://[fe80::1]:80",
            "0.0.0.0:80",
            "a:99999",
            "",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn allowed_targets_pass_and_keep_their_path_and_query() {
        let url = allow()
            .check("127.0.0.1:8080/turbine.stream?cluster=a#frag")
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/turbine.stream?cluster=a"
        );
        assert!(allow().check("HTTPS://TURBINE.EXAMPLE/x").is_ok());
        assert!(allow().check("https://turbine.example:443/x").is_ok());
        assert!(allow().check("http://[0:0::1]:9000/").is_ok());
        // The same address written as the URL parser normalises it.
        assert!(allow().check("http://2130706433:8080/").is_ok());
        assert!(allow().check("http://0x7f.0.0.1:8080/").is_ok());
        // A backslash is a slash to the URL parser (and to browsers): the host is the first.
        let url = allow().check("http://127.0.0.1:8080\\@evil.test/").unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
    }

    #[test]
    fn everything_else_is_refused() {
        let forbidden = [
            "http://127.0.0.1:8081/hystrix.stream",
            "http://127.0.0.2:8080/",
            "http://localhost:8080/",
            "https://127.0.0.1:8080/",
            "http://turbine.example/",
            "https://turbine.example.evil.test/",
            "https://turbine.example:8443/",
            "http://127.0.0.1:8080@169.254.169.254/",
            "http://user@127.0.0.1:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
        ];
        for target in forbidden {
            match allow().check(target) {
                Err(Refused::Forbidden(_)) => {}
                other => panic!("{target}: {other:?}"),
            }
        }
        for target in [
            "",
            "file:///etc/passwd",
            "gopher://127.0.0.1:8080/",
            "http://",
            "aéé",
            "htté://x/",
        ] {
            assert!(allow().check(target).is_err(), "{target}");
        }
    }

    #[test]
    fn link_local_and_unspecified_addresses_are_never_reached() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "febf::1",
            "::",
            "ff02::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused_ip(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "fec0::1", "192.168.1.1"] {
            assert!(refused_ip(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }
}
