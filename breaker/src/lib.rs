//! A Hystrix circuit breaker as a Tower layer.
//!
//! A [`Circuit`] watches the health of one dependency over a rolling window. When enough
//! requests fail it opens, and every request is rejected at once with [`ShortCircuited`]
//! instead of waiting on a dependency that is down; after a sleep window it lets trial
//! requests through, and closes again when they succeed. The semantics and defaults are
//! Hystrix's (spec §3.7); what goes beyond Hystrix is off by default: several half-open trials,
//! a growing sleep window, a count-based window, a consecutive-failures trip and a slow-call
//! rule.
//!
//! The breaker never holds `poll_ready` pending: an open circuit fails in `call` with a ready
//! future, so an axum server never queues requests behind it.
//!
//! ```
//! use hystrix_breaker::{BreakerConfig, Circuit, CircuitBreakerLayer, ShortCircuited};
//! use tower::{service_fn, Layer, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let circuit = Circuit::new("flaky", BreakerConfig::default()).unwrap();
//! let mut svc = CircuitBreakerLayer::new(circuit.clone())
//!     .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
//!
//! assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
//!
//! circuit.force_open(); // an operator's action
//! let err = svc.ready().await.unwrap().call(21).await.unwrap_err();
//! assert!(err.is::<ShortCircuited>());
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod circuit;
mod classify;
mod config;
pub mod error;
mod events;
pub mod future;
mod layer;
mod service;

pub use self::{
    circuit::{Admission, Circuit, Mode, Permit, Reason, State, Transition},
    classify::{Classify, DefaultClassifier, HttpClassifier, Outcome},
    config::{BreakerConfig, HealthWindow, InvalidConfig, MAX_HALF_OPEN_PROBES, SleepBackoff},
    error::{BoxError, ShortCircuited},
    layer::CircuitBreakerLayer,
    service::CircuitBreaker,
};
