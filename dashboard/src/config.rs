//! The dashboard's configuration file (TOML), which the binary's flags override.
//!
//! ```toml
//! listen = "127.0.0.1:7979"
//! allow = ["10.0.0.5:8080", "https://turbine.internal"]   # what /proxy.stream may reach
//! turbine_config = "turbine.toml"                          # run a turbine in this process
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

/// A configuration that cannot be used, and why: the turbine's error, as the dashboard's
/// configuration names the turbine's file too.
pub use hystrix_turbine::ConfigError;

/// Every key of the file, with its default: what `hystrix-dashboard --help` prints.
pub const HELP: &str = "\
CONFIGURATION FILE (TOML; every key optional):
  listen = \"127.0.0.1:7979\"       address of the UI, /proxy.stream (and the embedded turbine)
  allow = [\"10.0.0.5:8080\", \"https://turbine.internal\"]
                                  origins /proxy.stream may reach (scheme, host, port; a port
                                  left out is the scheme's default); nothing else is reached
  turbine_config = \"turbine.toml\" run a turbine in this process with that file (its `listen`
                                  is ignored: /turbine.stream and /clusters are served here)
  connect_timeout_ms = 5000       proxy: resolving, connecting and the TLS handshake
  idle_timeout_ms = 10000         proxy: a stream silent this long is closed
  max_streams = 100               proxy: open proxied streams; more get 503
  ca_file = \"ca.pem\"              proxy: extra CA certificates for https streams
";

/// The dashboard's settings. Every field has the default listed in [`HELP`].
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the UI is served.
    pub listen: SocketAddr,
    /// Origins the proxy may reach.
    pub allow: Vec<String>,
    /// A turbine configuration to run in this process.
    pub turbine_config: Option<PathBuf>,
    /// Proxy: resolving, connecting and the TLS handshake, in ms.
    pub connect_timeout_ms: u64,
    /// Proxy: a stream silent this long is closed, in ms.
    pub idle_timeout_ms: u64,
    /// Proxy: open proxied streams.
    pub max_streams: usize,
    /// Proxy: extra CA certificates (PEM) for https streams.
    pub ca_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7979)),
            allow: Vec::new(),
            turbine_config: None,
            connect_timeout_ms: 5_000,
            idle_timeout_ms: 10_000,
            max_streams: 100,
            ca_file: None,
        }
    }
}

impl Config {
    /// Parses a file's text; `origin` names it in errors. Relative paths in it are taken
    /// from the directory of `origin`.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Self =
            toml::from_str(text).map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        let base = Path::new(origin).parent().unwrap_or(Path::new(""));
        for path in [&mut config.turbine_config, &mut config.ca_file]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_keys() {
        assert_eq!(Config::from_toml("", "x.toml").unwrap(), Config::default());
        let config = Config::from_toml(
            "listen = \"127.0.0.1:1\"\nallow = [\"a:1\"]\nturbine_config = \"t.toml\"\n\
             max_streams = 3",
            "/etc/hd/d.toml",
        )
        .unwrap();
        assert_eq!(config.allow, ["a:1"]);
        assert_eq!(config.max_streams, 3);
        assert_eq!(
            config.turbine_config.as_deref(),
            Some(Path::new("/etc/hd/t.toml"))
        );
        let error = Config::from_toml("alow = []", "d.toml").unwrap_err();
        assert!(error.0.contains("alow"), "{error}");
        let error = Config::from_toml("listen = \"nowhere\"", "d.toml").unwrap_err();
        assert!(error.0.contains("listen"), "{error}");
    }
}
