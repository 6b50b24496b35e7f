//! Hystrix-style resilience for Tower services.
//!
//! Wrap each client of a dependency (an HTTP client, a gRPC channel, a database pool) in a
//! layer that fails fast when the dependency is unhealthy, and watch every dependency's health
//! live. This crate is the facade: it re-exports the parts, each of which is its own crate.
//!
//! - [`core`]: Hystrix's event types and keys, rolling counters, rolling latency percentiles,
//!   health counts and the injectable clock.
//! - [`breaker`]: the circuit breaker, as a [`Circuit`] state machine and a
//!   [`CircuitBreakerLayer`].
//! - [`bulkhead`]: per-dependency isolation: a [`Semaphore`] ([`SemaphoreBulkheadLayer`]) or a
//!   [`ThreadPool`] of the dependency's own threads ([`ThreadPoolBulkheadLayer`]).
//!
//! ```
//! use std::time::Duration;
//! use tower::{Layer, Service, ServiceExt, service_fn};
//! use tower_hystrix::{BreakerConfig, Circuit, CircuitBreakerLayer, ShortCircuited};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_hystrix::BoxError> {
//! // One circuit per dependency; every service built on it shares it.
//! let circuit = Circuit::new("GetUser", BreakerConfig {
//!     sleep_window: Duration::from_secs(2),
//!     ..BreakerConfig::default() // Hystrix's defaults: 20 requests, 50% errors
//! })?;
//! let client = service_fn(|id: u64| async move { Ok::<_, std::io::Error>(format!("user {id}")) });
//! let mut users = CircuitBreakerLayer::new(circuit.clone()).layer(client);
//!
//! assert_eq!(users.ready().await?.call(7).await?, "user 7");
//!
//! circuit.force_open(); // or: twenty failures in ten seconds
//! let err = users.ready().await?.call(7).await.unwrap_err();
//! assert!(err.is::<ShortCircuited>()); // rejected at once; the client was not called
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cache;
mod command;
pub mod config;
mod error;
mod fallback;
#[cfg(feature = "axum")]
pub mod http;
mod registry;

pub use self::{
    command::{Command, CommandBuilder, CommandLayer, CommandService, ResponseFuture},
    config::{
        CommandProperties, CommandSettings, ConfigError, IsolationStrategy, ThreadPoolProperties,
    },
    error::{CommandError, ErrorKind, Failure, FailureKind, FallbackError, SharedError},
    fallback::Fallback,
    registry::{Registry, WatchHandle},
};

pub use hystrix_breaker as breaker;
pub use hystrix_bulkhead as bulkhead;
pub use hystrix_core as core;

pub use hystrix_breaker::{
    BoxError, BreakerConfig, Circuit, CircuitBreaker, CircuitBreakerLayer, Classify,
    HttpClassifier, Outcome, ShortCircuited, State,
};
pub use hystrix_bulkhead::{
    Semaphore, SemaphoreBulkheadLayer, SemaphoreRejected, ThreadPool, ThreadPoolBulkheadLayer,
    ThreadPoolConfig, ThreadPoolRejected,
};
pub use hystrix_core::{Clock, CommandKey, GroupKey, HystrixEventType, ThreadPoolKey};
