//! The Hystrix metrics stream and Prometheus export.
//!
//! Commands and thread pools publish themselves in a [`MetricsRegistry`]; this crate turns
//! what they report into `/hystrix.stream`, byte for byte what Hystrix sends (so the Netflix
//! dashboard and Turbine read it unchanged), and into Prometheus metrics.
//!
//! # Prometheus
//!
//! [`PrometheusExporter`] serves a registry at `GET /metrics` from a recorder of its own;
//! [`PrometheusBridge`] publishes it into the application's [`metrics`] recorder instead. Both
//! update on demand (at each scrape), from cumulative counts and completed latency buckets, so
//! the request path pays nothing. Commands (labels `command`, `group`):
//! `hystrix_command_events_total` (label `event`: `success`, `failure`, `timeout`,
//! `short_circuited`, ...), the histograms `hystrix_command_latency_execute_seconds` and
//! `hystrix_command_latency_total_seconds`, and the gauges
//! `hystrix_command_concurrent_executions`, `hystrix_command_rolling_max_concurrent_executions`,
//! `hystrix_command_circuit_open`, `hystrix_command_circuit_state` (label `state`),
//! `hystrix_command_error_ratio` and `hystrix_command_health_requests`. Thread pools (label
//! `pool`): the gauges `hystrix_threadpool_active_threads`, `hystrix_threadpool_queue_size`,
//! `hystrix_threadpool_queue_rejection_threshold`, `hystrix_threadpool_pool_size`,
//! `hystrix_threadpool_largest_pool_size`, `hystrix_threadpool_core_size`,
//! `hystrix_threadpool_maximum_size`, `hystrix_threadpool_rolling_max_active_threads` and
//! `hystrix_threadpool_utilization_ratio`, and the counters
//! `hystrix_threadpool_completed_tasks_total` and `hystrix_threadpool_tasks_total`. See
//! [`prometheus`] for their meaning.
//!
//! # The Hystrix stream
//!
//! [`HystrixStream`] builds an axum router serving `/hystrix.stream` (Server-Sent Events in
//! Hystrix's framing and headers, a `HystrixCommand` event per command and a
//! `HystrixThreadPool` event per pool every 500 ms, a `ping: ` heart-beat), plus
//! `/hystrix/utilization.stream` and `/hystrix/config.stream`. Each tick is encoded once and
//! shared by every client; a slow client skips ticks instead of buffering them; `?delay=` is
//! honoured (clamped to a minimum); connections are limited (503 above the limit, 50 by
//! default) and their slots freed as soon as a client goes away; CORS and authentication are
//! optional. [`encode`] writes the JSON itself, for other transports and for tests.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod encode;
pub mod prometheus;
mod registry;
mod sse;

pub use self::prometheus::{PrometheusBridge, PrometheusExporter};
pub use self::registry::MetricsRegistry;
pub use self::sse::{ConnectionCount, ConnectionSlot, HystrixStream, StreamStats, sse_headers};
