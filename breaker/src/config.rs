//! Circuit breaker settings, with Hystrix's defaults.

use std::{error::Error, fmt, time::Duration};

use hystrix_core::{CountWindow, RollingWindow};

/// What a circuit's health is computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthWindow {
    /// The requests of a rolling time window (Hystrix: `metrics.rollingStats.*`, 10 s in 10
    /// buckets by default). The bucket still filling counts.
    Time(RollingWindow),
    /// The last N requests, whatever their age.
    Count(u32),
}

impl Default for HealthWindow {
    fn default() -> Self {
        Self::Time(RollingWindow::COUNTS)
    }
}

/// A sleep window that grows after each failed trial: `sleep_window * multiplier^failures`,
/// capped at `max`, back to `sleep_window` once the circuit closes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SleepBackoff {
    /// The factor applied per consecutive failed trial (at least 1).
    pub multiplier: f64,
    /// The longest sleep window.
    pub max: Duration,
}

/// Settings of a circuit breaker.
///
/// [`Default`] gives Hystrix's defaults (spec §3.2); every setting beyond Hystrix is off by
/// default. Settings can be replaced at runtime with
/// [`Circuit::update`](crate::Circuit::update), except the health window's shape.
///
/// ```
/// use hystrix_breaker::BreakerConfig;
/// use std::time::Duration;
///
/// let config = BreakerConfig {
///     request_volume_threshold: 10,
///     sleep_window: Duration::from_secs(2),
///     half_open_probes: 3,
///     ..BreakerConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// assert_eq!(config.error_threshold_percentage, 50);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Whether the breaker acts at all; a disabled breaker admits everything and never opens
    /// (`circuitBreaker.enabled`, default `true`).
    pub enabled: bool,
    /// The fewest requests in the window before the error percentage can trip the circuit
    /// (`circuitBreaker.requestVolumeThreshold`, default 20).
    pub request_volume_threshold: u32,
    /// The error percentage at or above which the circuit trips, 0 to 100
    /// (`circuitBreaker.errorThresholdPercentage`, default 50).
    pub error_threshold_percentage: u8,
    /// How long an open circuit rejects before it lets a trial through
    /// (`circuitBreaker.sleepWindowInMilliseconds`, default 5 s).
    pub sleep_window: Duration,
    /// Reject every request (`circuitBreaker.forceOpen`, default `false`). Wins over
    /// `force_closed`, as in Hystrix.
    pub force_open: bool,
    /// Admit every request whatever the health; health is still computed and the state
    /// machine still moves (`circuitBreaker.forceClosed`, default `false`).
    pub force_closed: bool,
    /// What health is computed over; default the last 10 s in 10 buckets.
    pub window: HealthWindow,
    /// How often, at most, health is recomputed for the trip decision
    /// (`metrics.healthSnapshot.intervalInMilliseconds`, default 500 ms).
    pub health_snapshot_interval: Duration,
    /// How many trials a half-open circuit admits; all must succeed to close it
    /// (default 1, as Hystrix; at most 32767).
    pub half_open_probes: u32,
    /// Grow the sleep window after repeated failed trials (default off).
    pub sleep_backoff: Option<SleepBackoff>,
    /// Trip after this many failures in a row, whatever the window says (default off).
    pub consecutive_failures: Option<u32>,
    /// Count a successful call slower than this as a failure (default off).
    pub slow_call_threshold: Option<Duration>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            request_volume_threshold: 20,
            error_threshold_percentage: 50,
            sleep_window: Duration::from_secs(5),
            force_open: false,
            force_closed: false,
            window: HealthWindow::default(),
            health_snapshot_interval: Duration::from_millis(500),
            half_open_probes: 1,
            sleep_backoff: None,
            consecutive_failures: None,
            slow_call_threshold: None,
        }
    }
}

/// The most trials a half-open circuit can admit at once.
pub const MAX_HALF_OPEN_PROBES: u32 = 0x7fff;

/// The longest duration a setting takes (about 11.5 days).
const MAX_DURATION: Duration = Duration::from_secs(1_000_000);

impl BreakerConfig {
    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let bad = |key, reason: String| Err(InvalidConfig { key, reason });
        if self.error_threshold_percentage > 100 {
            return bad(
                "error_threshold_percentage",
                format!("must be 0 to 100, not {}", self.error_threshold_percentage),
            );
        }
        for (key, d) in [
            ("sleep_window", self.sleep_window),
            ("health_snapshot_interval", self.health_snapshot_interval),
        ] {
            if d > MAX_DURATION {
                return bad(key, format!("must be at most {MAX_DURATION:?}, not {d:?}"));
            }
        }
        if self.half_open_probes == 0 || self.half_open_probes > MAX_HALF_OPEN_PROBES {
            return bad(
                "half_open_probes",
                format!(
                    "must be 1 to {MAX_HALF_OPEN_PROBES}, not {}",
                    self.half_open_probes
                ),
            );
        }
        if let HealthWindow::Count(n) = self.window {
            if n == 0 || n > CountWindow::MAX_SIZE {
                return bad(
                    "window",
                    format!(
                        "a count window holds 1 to {} requests, not {n}",
                        CountWindow::MAX_SIZE
                    ),
                );
            }
        }
        if let Some(b) = self.sleep_backoff {
            if !b.multiplier.is_finite() || b.multiplier < 1.0 {
                return bad(
                    "sleep_backoff.multiplier",
                    format!(
                        "must be a finite number of at least 1, not {}",
                        b.multiplier
                    ),
                );
            }
            if b.max < self.sleep_window || b.max > MAX_DURATION {
                return bad(
                    "sleep_backoff.max",
                    format!(
                        "must be between sleep_window ({:?}) and {MAX_DURATION:?}, not {:?}",
                        self.sleep_window, b.max
                    ),
                );
            }
        }
        if self.consecutive_failures == Some(0) {
            return bad("consecutive_failures", "must be at least 1".into());
        }
        if let Some(d) = self.slow_call_threshold {
            if d.is_zero() || d > MAX_DURATION {
                return bad(
                    "slow_call_threshold",
                    format!("must be above zero and at most {MAX_DURATION:?}, not {d:?}"),
                );
            }
        }
        Ok(())
    }

    /// The sleep window after `failed_trials` failed trials in a row.
    pub(crate) fn sleep_after(&self, failed_trials: u32) -> Duration {
        match self.sleep_backoff {
            None => self.sleep_window,
            Some(b) => {
                let factor = b.multiplier.powi(failed_trials.min(1024) as i32);
                let secs = self.sleep_window.as_secs_f64() * factor;
                if secs.is_finite() && secs < b.max.as_secs_f64() {
                    Duration::from_secs_f64(secs)
                } else {
                    b.max
                }
            }
        }
    }
}

/// A setting was refused; the previous settings, if any, stay in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidConfig {
    key: &'static str,
    reason: String,
}

impl InvalidConfig {
    pub(crate) fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }

    /// The setting that was refused, e.g. `half_open_probes`.
    pub fn key(&self) -> &str {
        self.key
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid circuit breaker setting {}: {}",
            self.key, self.reason
        )
    }
}

impl Error for InvalidConfig {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_hystrix() {
        let c = BreakerConfig::default();
        assert!(c.enabled && !c.force_open && !c.force_closed);
        assert_eq!(c.request_volume_threshold, 20);
        assert_eq!(c.error_threshold_percentage, 50);
        assert_eq!(c.sleep_window, Duration::from_secs(5));
        assert_eq!(c.window, HealthWindow::Time(RollingWindow::COUNTS));
        assert_eq!(c.health_snapshot_interval, Duration::from_millis(500));
        assert_eq!(c.half_open_probes, 1);
        assert!(c.sleep_backoff.is_none() && c.consecutive_failures.is_none());
        assert!(c.slow_call_threshold.is_none());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn each_bad_setting_is_named() {
        let cases: Vec<(&str, BreakerConfig)> = vec![
            (
                "error_threshold_percentage",
                BreakerConfig {
                    error_threshold_percentage: 101,
                    ..Default::default()
                },
            ),
            (
                "half_open_probes",
                BreakerConfig {
                    half_open_probes: 0,
                    ..Default::default()
                },
            ),
            (
                "window",
                BreakerConfig {
                    window: HealthWindow::Count(0),
                    ..Default::default()
                },
            ),
            (
                "sleep_backoff.multiplier",
                BreakerConfig {
                    sleep_backoff: Some(SleepBackoff {
                        multiplier: f64::NAN,
                        max: Duration::from_secs(60),
                    }),
                    ..Default::default()
                },
            ),
            (
                "sleep_backoff.max",
                BreakerConfig {
                    sleep_backoff: Some(SleepBackoff {
                        multiplier: 2.0,
                        max: Duration::from_secs(1),
                    }),
                    ..Default::default()
                },
            ),
            (
                "consecutive_failures",
                BreakerConfig {
                    consecutive_failures: Some(0),
                    ..Default::default()
                },
            ),
            (
                "slow_call_threshold",
                BreakerConfig {
                    slow_call_threshold: Some(Duration::ZERO),
                    ..Default::default()
                },
            ),
            (
                "sleep_window",
                BreakerConfig {
                    sleep_window: Duration::from_secs(u64::MAX),
                    ..Default::default()
                },
            ),
        ];
        for (key, config) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.key(), key);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let c = BreakerConfig {
            sleep_backoff: Some(SleepBackoff {
                multiplier: 2.0,
                max: Duration::from_secs(30),
            }),
            ..Default::default()
        };
        let s: Vec<_> = (0..5).map(|n| c.sleep_after(n).as_secs()).collect();
        assert_eq!(s, [5, 10, 20, 30, 30]);
        assert_eq!(c.sleep_after(u32::MAX), Duration::from_secs(30));
        assert_eq!(
            BreakerConfig::default().sleep_after(7),
            Duration::from_secs(5)
        );
    }
}
