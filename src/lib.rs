//! Hystrix-style resilience for Tower services.
//!
//! Wrap each client of a dependency (an HTTP client, a gRPC channel, a database pool) in a
//! [`Command`]: one layer that fails fast when the dependency is unhealthy, isolates it in its
//! own bulkhead, bounds every call with a timeout, serves a fallback or the last good response
//! when it fails, and records Hystrix's metrics for the stream and the dashboard.
//!
//! A real HTTP client (hyper's), in a few lines:
//!
//! ```
//! use std::time::Duration;
//! use axum::body::Body;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::{Layer, ServiceBuilder, ServiceExt};
//! use tower_hystrix::{Command, HttpClassifier};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # tokio::spawn(async move { axum::serve(listener, axum::Router::new().route("/users/7", axum::routing::get(|| async { "Ada" }))).await });
//! # let registry = tower_hystrix::Registry::new();
//! let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
//! let users = Command::builder("GetUser")
//!     .classifier(HttpClassifier) // 5xx and transport errors are failures, 4xx bad requests
//!     .timeout(Duration::from_millis(500))
//!     .fallback(|_: (), _failure| async { Ok::<_, std::io::Error>(http::Response::new(Body::from("unknown"))) })
//! #   .registry(&registry)
//!     .build()?
//!     .layer(ServiceBuilder::new().map_response(|res: http::Response<_>| res.map(Body::new)).service(client));
//!
//! let res = users.clone().oneshot(http::Request::get(format!("http://{addr}/users/7")).body(Body::empty())?).await?;
//! assert_eq!(axum::body::to_bytes(res.into_body(), 1024).await?, "Ada");
//!
//! // Nobody listens there: connection refused, a failure; the fallback answers.
//! let res = users.oneshot(http::Request::get("http://127.0.0.1:9/users/7").body(Body::empty())?).await?;
//! assert_eq!(axum::body::to_bytes(res.into_body(), 1024).await?, "unknown");
//! # Ok(()) }
//! ```
//!
//! The parts, each its own crate, are re-exported:
//!
//! - [`core`]: Hystrix's event types and keys, rolling counters, rolling latency percentiles,
//!   health counts and the injectable clock.
//! - [`breaker`]: the circuit breaker, as a [`Circuit`] state machine and a
//!   [`CircuitBreakerLayer`].
//! - [`bulkhead`]: per-dependency isolation: a [`Semaphore`] ([`SemaphoreBulkheadLayer`]) or a
//!   [`ThreadPool`] of the dependency's own threads ([`ThreadPoolBulkheadLayer`]).
//! - [`stream`]: the metrics of every command and pool of a [`MetricsRegistry`] as
//!   `/hystrix.stream` ([`HystrixStream`], Hystrix's exact wire format, for the Netflix
//!   dashboard and Turbine) and as Prometheus metrics ([`PrometheusExporter`]).
//!
//! And the facade's own: the [`Command`] builder, [`cache`] (stale-if-error), [`config`]
//! (TOML properties, hot reload, through a [`Registry`]), and, with the `axum` feature,
//! [`http`](crate#features) error responses for server-side commands.
//!
//! Publishing the metrics: commands join [`Registry::global`] unless given another, and its
//! [`MetricsRegistry`] is what the stream and the exporter serve by default.
//!
//! ```
//! use tower_hystrix::{HystrixStream, PrometheusExporter, Registry};
//!
//! # async fn serve() -> std::io::Result<()> {
//! let app = axum::Router::new()
//!     .merge(HystrixStream::new().router()) // /hystrix.stream, /hystrix/config.stream, ...
//!     .merge(PrometheusExporter::new(Registry::global().metrics().clone()).router()); // /metrics
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! The breaker alone:
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
//!
//! # Features
//!
//! - `axum`: `IntoResponse` for [`CommandError`] and the `http` module's `ErrorResponseLayer`.
//! - `redis`: a shared tier of the stale-if-error cache in Redis (`cache::RedisTier`).
//! - `test-util`: the default clock follows tokio's paused time.
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
pub use hystrix_stream::{HystrixStream, MetricsRegistry, PrometheusExporter};

pub use hystrix_breaker as breaker;
pub use hystrix_bulkhead as bulkhead;
pub use hystrix_core as core;
pub use hystrix_stream as stream;

pub use hystrix_breaker::{
    BoxError, BreakerConfig, Circuit, CircuitBreaker, CircuitBreakerLayer, Classify,
    HttpClassifier, Outcome, ShortCircuited, State,
};
pub use hystrix_bulkhead::{
    Semaphore, SemaphoreBulkheadLayer, SemaphoreRejected, ThreadPool, ThreadPoolBulkheadLayer,
    ThreadPoolConfig, ThreadPoolRejected,
};
pub use hystrix_core::{Clock, CommandKey, GroupKey, HystrixEventType, ThreadPoolKey};
