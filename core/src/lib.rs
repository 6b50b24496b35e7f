//! The foundation of tower-hystrix: Hystrix's event types and keys, rolling counters, rolling
//! latency percentiles, health counts and the injectable clock.
//!
//! Everything here records from any number of threads without a lock and takes the current
//! time as an argument, so the breaker, the bulkheads and the metrics stream share one model of
//! a command's recent history and tests can drive it with paused or manual time.
//!
//! ```
//! use hystrix_core::{HealthCounts, HystrixEventType as Ev, ManualClock, RollingCounter, RollingWindow};
//!
//! let clock = ManualClock::new();
//! let counts = RollingCounter::new(RollingWindow::COUNTS, clock.now());
//! counts.increment(Ev::Success, clock.now());
//! counts.increment(Ev::Timeout, clock.now());
//! let health = HealthCounts::from_events(&counts.sums(clock.now()));
//! assert_eq!(health.error_percentage(), 50);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
pub mod event;
mod health;
mod key;
pub mod metrics;
pub mod report;
pub mod rolling;

pub use self::{
    clock::{Clock, Instant, ManualClock, Stamp},
    event::{Event, HystrixEventType, ThreadPoolEventType},
    health::{HealthCache, HealthCounts},
    key::{CommandKey, GroupKey, ThreadPoolKey},
    metrics::{
        CommandMetrics, CommandSnapshot, Executing, LatencyCursors, LatencyKind, MetricsConfig,
        ThreadPoolMetrics,
    },
    report::{
        CircuitStatus, CommandReport, CommandSettingsReport, CommandSource, IsolationStrategy,
        ThreadPoolReport, ThreadPoolSettingsReport, ThreadPoolSource,
    },
    rolling::{
        CountWindow, EventCounts, InvalidWindow, LatencyCursor, LatencySnapshot, PERCENTILES,
        RollingCounter, RollingPercentile, RollingWindow,
    },
};
