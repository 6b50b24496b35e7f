//! The turbine's configuration: a TOML file, checked whole before anything starts.
//!
//! ```toml
//! listen = "127.0.0.1:8989"      # where /turbine.stream is served
//! mode = "turbine1"              # or "turbine2": how hosts are merged
//!
//! [clusters.api]                 # /turbine.stream?cluster=api
//! srv = "_hystrix._tcp.api.example"
//! nameservers = ["127.0.0.1:5353"]
//!
//! [clusters.default]             # /turbine.stream
//! instances = ["10.0.0.1:8080", "10.0.0.2:8080"]
//! path = "/hystrix.stream"
//!
//! [clusters.edge]
//! file = "edge-instances.txt"    # re-read when it changes
//! https = true
//! authorization = "Bearer s3cr3t"
//! ```
//!
//! Every key is listed in [`HELP`]. An unknown key, a cluster with no discovery or two, a bad
//! address or an unreadable file is an error naming it.

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use http::HeaderValue;
use serde::Deserialize;

use crate::{
    aggregate::{Aggregator, Mode},
    discovery::{Discovery, Endpoint, SrvConfig},
    parse::DEFAULT_MAX_LINE,
};

/// Every key of the file, with its default: what `turbine --help` prints.
pub const HELP: &str = "\
CONFIGURATION FILE (TOML; every key optional unless said otherwise):
  listen = \"127.0.0.1:8989\"       address of /turbine.stream, /clusters, /health, /metrics
  mode = \"turbine1\"               merge as Turbine 1.x (\"turbine1\", what the Netflix dashboard
                                  expects) or 2.x (\"turbine2\")
  interval_ms = 1000              how often every key of a cluster is sent
  stale_after_ms = 15000          a host's data is dropped after this long without a message
  idle_timeout_ms = 10000         reconnect to an instance silent (no data, no ping) this long
  connect_timeout_ms = 5000       connection and TLS handshake timeout
  max_line_bytes = 1048576        a longer line from an instance resets its connection
  max_keys_per_cluster = 10000    (type, name) keys kept per cluster; more are dropped, counted
  max_connections = 100           open /turbine.stream clients; more get 503
  allow_origin = \"https://...\"    send Access-Control-Allow-Origin (off by default)

  [clusters.NAME]                 one table per cluster (`default` serves /turbine.stream
                                  without ?cluster=); exactly one of srv, instances, file:
    srv = \"_hystrix._tcp.api.example\"   DNS SRV name: every target:port of the answer
    nameservers = [\"127.0.0.1:5353\"]    name servers for srv (default: /etc/resolv.conf)
    srv_min_refresh_ms = 1000            re-resolved at the records' TTL, at least this often
    srv_max_refresh_ms = 60000           ...and at most this rarely
    srv_grace_ms = 300000                on NXDOMAIN/SERVFAIL keep the last good set this long
    instances = [\"host:port\", \"http://turbine-a:8989/turbine.stream?cluster=x\", ...]
    file = \"instances.txt\"              one instance per line (# comments); re-read on change
    path = \"/hystrix.stream\"            stream path for instances given as host:port
    https = false                        TLS (rustls, system roots) for host:port instances
    ca_file = \"ca.pem\"                  more trusted roots for TLS (PEM)
    authorization = \"Bearer ...\"        Authorization header sent to every instance
    mode = \"turbine2\"                   this cluster's merge mode, if not the global one
";

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the turbine listens.
    pub listen: SocketAddr,
    /// How hosts are merged, unless a cluster says otherwise.
    pub mode: Mode,
    /// How often every key of a cluster is sent, in ms.
    pub interval_ms: u64,
    /// A host's data is dropped after this long without a message, in ms.
    pub stale_after_ms: u64,
    /// An instance silent this long is reconnected, in ms.
    pub idle_timeout_ms: u64,
    /// Connection (and TLS handshake) timeout, in ms.
    pub connect_timeout_ms: u64,
    /// The longest line read from an instance.
    pub max_line_bytes: usize,
    /// (type, name) keys kept per cluster.
    pub max_keys_per_cluster: usize,
    /// Open `/turbine.stream` clients.
    pub max_connections: usize,
    /// `Access-Control-Allow-Origin` to send, if any.
    pub allow_origin: Option<String>,
    /// The clusters, by name.
    pub clusters: BTreeMap<String, ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8989)),
            mode: Mode::Turbine1,
            interval_ms: 1000,
            stale_after_ms: 15_000,
            idle_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            max_line_bytes: DEFAULT_MAX_LINE,
            max_keys_per_cluster: Aggregator::DEFAULT_MAX_KEYS,
            max_connections: 100,
            allow_origin: None,
            clusters: BTreeMap::new(),
        }
    }
}

/// One cluster's table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// A DNS SRV name.
    pub srv: Option<String>,
    /// Name servers for `srv`.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
    /// Shortest SRV refresh, in ms.
    pub srv_min_refresh_ms: Option<u64>,
    /// Longest SRV refresh, in ms.
    pub srv_max_refresh_ms: Option<u64>,
    /// How long the last good SRV answer is kept while look-ups fail, in ms.
    pub srv_grace_ms: Option<u64>,
    /// A static list of instances.
    pub instances: Option<Vec<String>>,
    /// A file listing instances.
    pub file: Option<PathBuf>,
    /// The stream's path for `host:port` instances.
    pub path: Option<String>,
    /// TLS for `host:port` instances.
    #[serde(default)]
    pub https: bool,
    /// Extra trusted roots (PEM).
    pub ca_file: Option<PathBuf>,
    /// `Authorization` sent upstream.
    pub authorization: Option<String>,
    /// This cluster's merge mode.
    pub mode: Option<Mode>,
}

/// A configuration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A cluster ready to run.
#[derive(Clone, Debug)]
pub struct ClusterPlan {
    /// Its name.
    pub name: String,
    /// How its instances are found.
    pub discovery: Discovery,
    /// What `/clusters` shows as the discovery's source.
    pub source: String,
    /// How it merges.
    pub mode: Mode,
    /// The stream path for `host:port` instances.
    pub path: String,
    /// TLS for `host:port` instances.
    pub https: bool,
    /// Whether some instance may use TLS.
    pub needs_tls: bool,
    /// Extra trusted roots.
    pub ca_file: Option<PathBuf>,
    /// `Authorization` sent upstream.
    pub authorization: Option<HeaderValue>,
}

impl Config {
    /// Parses a file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("{origin}: {e}")))
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Checks everything and resolves each cluster's discovery; files of instances are read
    /// once here so that an unreadable one stops start-up.
    pub fn plan(&self) -> Result<Vec<ClusterPlan>, ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.clusters.is_empty() {
            return err("no cluster is configured: add a [clusters.NAME] table".into());
        }
        for (key, value, min) in [
            ("interval_ms", self.interval_ms, 10),
            ("stale_after_ms", self.stale_after_ms, 100),
            ("idle_timeout_ms", self.idle_timeout_ms, 100),
            ("connect_timeout_ms", self.connect_timeout_ms, 1),
            ("max_line_bytes", self.max_line_bytes as u64, 1024),
            ("max_keys_per_cluster", self.max_keys_per_cluster as u64, 1),
        ] {
            if value < min {
                return err(format!("{key} = {value}: at least {min}"));
            }
        }
        if let Some(origin) = &self.allow_origin {
            if HeaderValue::from_str(origin).is_err() {
                return err(format!("allow_origin = {origin:?}: not a header value"));
            }
        }
        self.clusters
            .iter()
            .map(|(name, cluster)| cluster.plan(name, self.mode))
            .collect()
    }
}

impl ClusterConfig {
    fn plan(&self, name: &str, mode: Mode) -> Result<ClusterPlan, ConfigError> {
        let at = |m: String| ConfigError(format!("[clusters.{name}]: {m}"));
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            return Err(at("not a usable cluster name".into()));
        }
        let chosen = [
            self.srv.is_some(),
            self.instances.is_some(),
            self.file.is_some(),
        ];
        if chosen.iter().filter(|c| **c).count() != 1 {
            return Err(at(
                "needs exactly one of `srv`, `instances` or `file`".into()
            ));
        }
        if self.srv.is_none()
            && (!self.nameservers.is_empty()
                || self.srv_min_refresh_ms.is_some()
                || self.srv_max_refresh_ms.is_some()
                || self.srv_grace_ms.is_some())
        {
            return Err(at("`nameservers` and `srv_*` go with `srv`".into()));
        }
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| "/hystrix.stream".into());
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(at(format!("path = {path:?}: not a path starting with `/`")));
        }
        let authorization = match &self.authorization {
            Some(value) => Some(
                HeaderValue::from_str(value)
                    .map_err(|_| at("authorization: not a header value".into()))?,
            ),
            None => None,
        };
        let (discovery, source, endpoints) = if let Some(srv) = &self.srv {
            if srv.trim().is_empty() || srv.contains(char::is_whitespace) {
                return Err(at(format!("srv = {srv:?}: not a DNS name")));
            }
            let mut config = SrvConfig::new(srv.trim());
            config.nameservers = self.nameservers.clone();
            if let Some(ms) = self.srv_min_refresh_ms {
                config.min_refresh = Duration::from_millis(ms.max(100));
            }
            if let Some(ms) = self.srv_max_refresh_ms {
                config.max_refresh = Duration::from_millis(ms);
            }
            if config.max_refresh < config.min_refresh {
                return Err(at("srv_max_refresh_ms is below srv_min_refresh_ms".into()));
            }
            if let Some(ms) = self.srv_grace_ms {
                config.grace = Duration::from_millis(ms);
            }
            (Discovery::Srv(config), srv.clone(), Vec::new())
        } else if let Some(list) = &self.instances {
            let endpoints = list
                .iter()
                .map(|s| Endpoint::parse(s).map_err(|e| at(format!("instances: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            (
                Discovery::Static(endpoints.clone()),
                list.join(","),
                endpoints,
            )
        } else {
            let file = self.file.clone().unwrap_or_default();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| at(format!("file {}: {e}", file.display())))?;
            let endpoints = crate::discovery::read_endpoints(&text)
                .map_err(|e| at(format!("file {}: {e}", file.display())))?;
            (
                Discovery::File(file.clone()),
                file.display().to_string(),
                endpoints,
            )
        };
        if let Some(ca) = &self.ca_file {
            std::fs::metadata(ca).map_err(|e| at(format!("ca_file {}: {e}", ca.display())))?;
        }
        let needs_tls =
            self.https || self.file.is_some() || endpoints.iter().any(|e| e.https == Some(true));
        Ok(ClusterPlan {
            name: name.to_owned(),
            discovery,
            source,
            mode: self.mode.unwrap_or(mode),
            path,
            https: self.https,
            needs_tls,
            ca_file: self.ca_file.clone(),
            authorization,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Vec<ClusterPlan>, ConfigError> {
        Config::from_toml(text, "turbine.toml")?.plan()
    }

    #[test]
    fn a_full_file() {
        let config = Config::from_toml(
            r#"
            listen = "127.0.0.1:9999"
            mode = "turbine2"
            interval_ms = 500
            [clusters.api]
            srv = "_hystrix._tcp.api.example"
            nameservers = ["127.0.0.1:5353"]
            srv_grace_ms = 1000
            [clusters.default]
            instances = ["127.0.0.1:8080", "http://t:1/turbine.stream?cluster=x"]
            mode = "turbine1"
            authorization = "Bearer x"
            "#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9999".parse().unwrap());
        let plans = config.plan().unwrap();
        assert_eq!(plans.len(), 2);
        let api = &plans[0];
        assert_eq!((api.name.as_str(), api.mode), ("api", Mode::Turbine2));
        match &api.discovery {
            Discovery::Srv(srv) => {
                assert_eq!(srv.nameservers, ["127.0.0.1:5353".parse().unwrap()]);
                assert_eq!(srv.grace, Duration::from_secs(1));
            }
            other => panic!("{other:?}"),
        }
        let default = &plans[1];
        assert_eq!(default.mode, Mode::Turbine1);
        assert_eq!(default.path, "/hystrix.stream");
        assert!(default.authorization.is_some());
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let cases = [
            ("lisen = \"x\"\n[clusters.a]\ninstances=[]", "lisen"),
            ("listen = \"nope\"\n[clusters.a]\ninstances=[]", "listen"),
            (
                "mode = \"turbine3\"\n[clusters.a]\ninstances=[]",
                "turbine3",
            ),
            ("", "no cluster"),
            ("[clusters.a]\npath=\"/x\"", "exactly one"),
            ("[clusters.a]\nsrv=\"x\"\ninstances=[]", "exactly one"),
            ("[clusters.a]\ninstances=[\"nohost\"]", "nohost"),
            ("[clusters.a]\nfile=\"/does/not/exist\"", "/does/not/exist"),
            (
                "[clusters.a]\ninstances=[]\nnameservers=[\"1.1.1.1:53\"]",
                "nameservers",
            ),
            ("[clusters.a]\ninstances=[]\nbogus=1", "bogus"),
            ("[clusters.a]\ninstances=[]\npath=\"x\"", "path"),
            (
                "[clusters.a]\nsrv=\"x\"\nnameservers=[\"1.1.1.1\"]",
                "nameservers",
            ),
            ("interval_ms = 0\n[clusters.a]\ninstances=[]", "interval_ms"),
        ];
        for (text, named) in cases {
            let e = plan(text).unwrap_err().to_string();
            assert!(e.contains(named), "{text:?}: {e}");
        }
    }
}
