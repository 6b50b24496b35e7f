//! Configuration: Hystrix's properties from a TOML file, with Hystrix's precedence, reloaded
//! while the service runs.
//!
//! The file mirrors Hystrix's property names in snake_case (spec §3.1 to §3.3):
//!
//! ```toml
//! [command.default]                       # every command (hystrix.command.default.*)
//! execution_isolation_thread_timeout_in_milliseconds = 800
//!
//! [command.GetUser]                       # one command (hystrix.command.GetUser.*)
//! circuit_breaker_error_threshold_percentage = 25
//! circuit_breaker_force_open = false
//!
//! [threadpool.default]
//! core_size = 10
//!
//! [threadpool.Users]
//! max_queue_size = 100
//! queue_size_rejection_threshold = 20
//! ```
//!
//! A command's value is, in order of precedence: its own table's, then the one its
//! [builder](crate::CommandBuilder) set in code, then `[command.default]`'s, then the built-in
//! default. Thread pools resolve the same way. Unknown tables and properties are errors, so a
//! typo never silently does nothing.
//!
//! A [`Registry`](crate::Registry) holds the file in force: [`load_file`](crate::Registry::load_file),
//! [`reload`](crate::Registry::reload) and [`watch`](crate::Registry::watch) replace it. A new
//! file is checked whole (every command and pool resolved) before any of it takes effect; an
//! invalid one is refused with an error naming the property, and the previous one stays in
//! force. What can change at runtime: timeouts, thresholds, sleep windows, semaphore sizes,
//! pool sizes and queue rejection thresholds, force open / closed. What is fixed once a command
//! or pool is built (isolation strategy, metrics windows, `max_queue_size`) keeps its value
//! until the process restarts, with a warning.

mod properties;

use std::{error::Error, fmt, path::PathBuf};

pub(crate) use self::properties::ConfigFile;
pub use self::properties::{
    CommandProperties, CommandSettings, DEFAULT_TIMEOUT, ThreadPoolProperties,
};
pub use hystrix_core::IsolationStrategy;

/// A configuration was refused: a file that does not parse, a property with a bad value, a
/// command built with bad settings. Whatever was in force before stays in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    key: Option<String>,
    message: String,
    path: Option<PathBuf>,
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            message: reason.into(),
            path: None,
        }
    }

    pub(crate) fn parse(err: toml::de::Error) -> Self {
        // toml's message already says where, and names unknown properties.
        Self {
            key: None,
            message: err.to_string().trim_end().to_string(),
            path: None,
        }
    }

    pub(crate) fn io(path: PathBuf, err: &std::io::Error) -> Self {
        Self {
            key: None,
            message: format!("cannot read the file: {err}"),
            path: Some(path),
        }
    }

    pub(crate) fn in_file(mut self, path: Option<PathBuf>) -> Self {
        self.path = self.path.or(path);
        self
    }

    /// The property at fault, as `command.<key>.<property>` or `threadpool.<key>.<property>`,
    /// when one is.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The file at fault, when the configuration came from one.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid Hystrix configuration")?;
        if let Some(path) = &self.path {
            write!(f, " in {}", path.display())?;
        }
        match &self.key {
            Some(key) => write!(f, ": {key} {}", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

impl Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn precedence_is_own_then_code_then_default_then_builtin() {
        let file = ConfigFile::parse(
            r#"
            [command.default]
            execution_isolation_thread_timeout_in_milliseconds = 800
            circuit_breaker_request_volume_threshold = 30
            circuit_breaker_error_threshold_percentage = 40

            [command.GetUser]
            circuit_breaker_error_threshold_percentage = 25
            "#,
        )
        .unwrap();
        let code = CommandProperties {
            circuit_breaker_error_threshold_percentage: Some(60),
            circuit_breaker_request_volume_threshold: Some(5),
            ..CommandProperties::default()
        };
        let own = file
            .command("GetUser", &code)
            .resolve("command.GetUser")
            .unwrap();
        assert_eq!(
            own.breaker.error_threshold_percentage, 25,
            "own file value wins"
        );
        assert_eq!(
            own.breaker.request_volume_threshold, 5,
            "code beats the file default"
        );
        assert_eq!(
            own.timeout,
            Some(Duration::from_millis(800)),
            "file default beats built-in"
        );
        assert_eq!(
            own.breaker.sleep_window,
            Duration::from_secs(5),
            "built-in default"
        );

        let other = file
            .command("Other", &CommandProperties::default())
            .resolve("x")
            .unwrap();
        assert_eq!(other.breaker.error_threshold_percentage, 40);
        assert_eq!(other.breaker.request_volume_threshold, 30);
        assert_eq!(other.isolation, IsolationStrategy::Semaphore);
        assert_eq!(other.max_concurrent_requests, 10);
        assert_eq!(other.fallback_max_concurrent_requests, 10);
    }

    #[test]
    fn errors_name_the_property() {
        let typo =
            ConfigFile::parse("[command.GetUser]\ncircuit_breaker_sleep_windw = 1\n").unwrap_err();
        assert!(
            typo.to_string().contains("circuit_breaker_sleep_windw"),
            "{typo}"
        );

        let file = ConfigFile::parse(
            "[command.GetUser]\ncircuit_breaker_error_threshold_percentage = 101\n",
        )
        .unwrap();
        let err = file
            .command("GetUser", &CommandProperties::default())
            .resolve("command.GetUser")
            .unwrap_err();
        assert_eq!(
            err.key(),
            Some("command.GetUser.circuit_breaker_error_threshold_percentage")
        );

        let wrong_type =
            ConfigFile::parse("[threadpool.Users]\ncore_size = \"ten\"\n").unwrap_err();
        assert!(wrong_type.to_string().contains("core_size"), "{wrong_type}");

        let file = ConfigFile::parse("[threadpool.Users]\ncore_size = 0\n").unwrap();
        let err = file
            .pool("Users", &ThreadPoolProperties::default())
            .resolve("threadpool.Users")
            .unwrap_err();
        assert_eq!(err.key(), Some("threadpool.Users.core_size"));

        let file = ConfigFile::parse(
            "[command.X]\nmetrics_rolling_stats_time_in_milliseconds = 10000\nmetrics_rolling_stats_num_buckets = 7\n",
        )
        .unwrap();
        let err = file
            .command("X", &CommandProperties::default())
            .resolve("command.X")
            .unwrap_err();
        assert_eq!(
            err.key(),
            Some("command.X.metrics_rolling_stats_num_buckets")
        );
    }

    #[test]
    fn timeouts_can_be_disabled_not_zeroed() {
        let file =
            ConfigFile::parse("[command.default]\nexecution_timeout_enabled = false\n").unwrap();
        let s = file
            .command("A", &CommandProperties::default())
            .resolve("a")
            .unwrap();
        assert_eq!(s.timeout, None);
        let file = ConfigFile::parse(
            "[command.A]\nexecution_isolation_thread_timeout_in_milliseconds = 0\n",
        )
        .unwrap();
        assert!(
            file.command("A", &CommandProperties::default())
                .resolve("a")
                .is_err()
        );
    }

    #[test]
    fn pools_resolve_with_hystrix_defaults() {
        let file = ConfigFile::parse(
            "[threadpool.default]\ncore_size = 4\n[threadpool.Users]\nmax_queue_size = 100\n",
        )
        .unwrap();
        let users = file
            .pool("Users", &ThreadPoolProperties::default())
            .resolve("threadpool.Users")
            .unwrap();
        assert_eq!((users.core_size, users.max_queue_size), (4, 100));
        assert_eq!(users.queue_size_rejection_threshold, 5);
    }
}
