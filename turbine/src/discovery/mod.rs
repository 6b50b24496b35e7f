//! Where a cluster's instances are: a static list, a file re-read when it changes, or DNS SRV
//! records.
//!
//! A [`Discovery`] runs as a task and publishes what it found as a [`Discovered`] in a
//! [`watch`] channel: the cluster starts a stream client for each endpoint that appears and
//! stops the one of each endpoint that goes.
//!
//! ```
//! use hystrix_turbine::discovery::{Discovery, Endpoint};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let endpoints = vec![Endpoint::parse("127.0.0.1:8080").unwrap()];
//! let found = Discovery::Static(endpoints).spawn();
//! assert_eq!(found.borrow().endpoints[0].name, "127.0.0.1:8080");
//! # }
//! ```

mod file;
mod srv;

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
};

use http::Uri;
use tokio::{sync::watch, time::Instant};

pub use self::{file::read_endpoints, srv::SrvConfig};

/// One instance to read a stream from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// How the instance is known (in `/clusters` and logs): `host:port`, or the URL it was
    /// given as. Two endpoints with one name are one instance.
    pub name: String,
    /// The host name or address, sent in `Host` (and as the TLS server name).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The address to connect to when discovery resolved it already (SRV targets); otherwise
    /// `host` is resolved at each connection.
    pub addr: Option<IpAddr>,
    /// The path and query of the stream, when the instance was given as a URL; otherwise the
    /// cluster's `path`.
    pub path: Option<String>,
    /// `https`, when the instance was given as a URL; otherwise the cluster's setting.
    pub https: Option<bool>,
}

impl Endpoint {
    /// An endpoint from `host:port` (a name, an IPv4 address or a bracketed IPv6 address), or
    /// from an `http://` or `https://` URL with a path (such as another turbine's
    /// `http://turbine-a:8989/turbine.stream?cluster=api`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.contains("://") {
            return Self::parse_url(s);
        }
        let uri: Uri = format!("http://{s}/")
            .parse()
            .map_err(|_| format!("`{s}` is not host:port"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{s}` is not host:port"))?;
        if authority.as_str() != s || authority.as_str().contains('@') {
            return Err(format!("`{s}` is not host:port"));
        }
        let port = authority
            .port_u16()
            .ok_or_else(|| format!("`{s}` has no port (host:port)"))?;
        Ok(Self {
            name: s.to_owned(),
            host: bare_host(authority.host()).to_owned(),
            port,
            addr: None,
            path: None,
            https: None,
        })
    }

    fn parse_url(s: &str) -> Result<Self, String> {
        let uri: Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("`{s}`: only http:// and https:// URLs are streams")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{s}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "`{s}`: credentials in URLs are not taken; use the cluster's `authorization`"
            ));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Self {
            name: s.to_owned(),
            host: bare_host(authority.host()).to_owned(),
            port,
            addr: None,
            path: Some(path),
            https: Some(https),
        })
    }

    /// An endpoint found by SRV: `target:port`, connected to at `addr` when known.
    pub fn resolved(target: &str, port: u16, addr: Option<IpAddr>) -> Self {
        let host = target.trim_end_matches('.');
        Self {
            name: format!("{host}:{port}"),
            host: host.to_owned(),
            port,
            addr,
            path: None,
            https: None,
        }
    }

    /// The address to connect to, when known without a lookup.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.addr
            .or_else(|| self.host.parse().ok())
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// `[::1]` as `::1`.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// What a discovery found last, and how it is going.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The endpoints, sorted by name, without duplicates.
    pub endpoints: Arc<[Endpoint]>,
    /// Whether the last look-up worked.
    pub health: Health,
    /// When the endpoints were last found.
    pub refreshed: Option<Instant>,
}

impl Default for Discovered {
    fn default() -> Self {
        Self {
            endpoints: Arc::from(Vec::new()),
            health: Health::Pending,
            refreshed: None,
        }
    }
}

impl Discovered {
    /// A successful look-up that found `endpoints`.
    pub fn found(mut endpoints: Vec<Endpoint>, at: Instant) -> Self {
        endpoints.sort();
        endpoints.dedup_by(|a, b| a.name == b.name);
        Self {
            endpoints: endpoints.into(),
            health: Health::Ok,
            refreshed: Some(at),
        }
    }
}

/// How a discovery is going.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// No look-up has finished yet.
    Pending,
    /// The last look-up worked.
    Ok,
    /// The last look-up failed; the endpoints are the last good ones, kept for a grace
    /// period.
    Stale {
        /// Why the look-up failed.
        error: String,
    },
    /// Look-ups fail and the grace period is over (or there never was a good answer): no
    /// endpoints.
    Failed {
        /// Why the look-up failed.
        error: String,
    },
}

impl Health {
    /// `ok`, `pending`, `stale` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Pending => "pending",
            Health::Ok => "ok",
            Health::Stale { .. } => "stale",
            Health::Failed { .. } => "failed",
        }
    }

    /// The error of a failed look-up.
    pub fn error(&self) -> Option<&str> {
        match self {
            Health::Stale { error } | Health::Failed { error } => Some(error),
            Health::Pending | Health::Ok => None,
        }
    }
}

/// How a cluster finds its instances.
#[derive(Clone, Debug)]
pub enum Discovery {
    /// A fixed list.
    Static(Vec<Endpoint>),
    /// A file of endpoints, one per line (`#` starts a comment), re-read when it changes.
    File(PathBuf),
    /// DNS SRV records.
    Srv(SrvConfig),
}

impl Discovery {
    /// Starts discovering (on the current tokio runtime) and returns what it finds. The task
    /// ends when every receiver is dropped.
    pub fn spawn(self) -> watch::Receiver<Discovered> {
        match self {
            Discovery::Static(endpoints) => {
                let (tx, rx) = watch::channel(Discovered::found(endpoints, Instant::now()));
                // Nothing changes: the sender lives as long as a receiver does.
                tokio::spawn(async move { tx.closed().await });
                rx
            }
            Discovery::File(path) => {
                let (tx, rx) = watch::channel(Discovered::default());
                tokio::spawn(file::run(path, tx));
                rx
            }
            Discovery::Srv(config) => {
                let (tx, rx) = watch::channel(Discovered::default());
                tokio::spawn(srv::run(config, tx));
                rx
            }
        }
    }

    /// What kind of discovery: `static`, `file` or `srv`.
    pub fn kind(&self) -> &'static str {
        match self {
            Discovery::Static(_) => "static",
            Discovery::File(_) => "file",
            Discovery::Srv(_) => "srv",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_host_port_and_urls() {
        let e = Endpoint::parse("api-1.example:8080").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path, e.https),
            ("api-1.example", 8080, None, None)
        );
        let e = Endpoint::parse("[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.socket_addr(), Some("[::1]:9000".parse().unwrap()));
        let e = Endpoint::parse("http://t1:8989/turbine.stream?cluster=api").unwrap();
        assert_eq!(e.path.as_deref(), Some("/turbine.stream?cluster=api"));
        assert_eq!((e.port, e.https), (8989, Some(false)));
        let e = Endpoint::parse("https://secure.example/hystrix.stream").unwrap();
        assert_eq!((e.port, e.https), (443, Some(true)));
        for bad in [
            "",
            "host",
            "host:",
            "host:99999",
            "host:80/path",
            "user@host:80",
            "ftp://host/x",
            "http://user:pw@host/x",
            "http:// bad",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn srv_names_lose_the_trailing_dot() {
        let e = Endpoint::resolved("api-1.example.", 8080, Some([127, 0, 0, 1].into()));
        assert_eq!(e.name, "api-1.example:8080");
        assert_eq!(e.socket_addr(), Some("127.0.0.1:8080".parse().unwrap()));
    }
}
