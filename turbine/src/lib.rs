//! turbine: aggregates the Hystrix metrics streams of a fleet into one `/turbine.stream` per
//! cluster, as Netflix Turbine did, for Rust services and Java Hystrix apps alike.
//!
//! - **Discovery** ([`discovery`]): DNS SRV records (re-resolved at their TTL, the last good
//!   answer kept through failures for a grace period), a static list, or a file re-read when
//!   it changes.
//! - **Upstreams**: one reader per instance, accepting every Hystrix and Turbine stream
//!   format ([`parse`]); a bad line is skipped and counted, an over-long line or 10 s of
//!   silence resets the connection, and reconnection backs off with jitter (first retry
//!   within 1 s).
//! - **Aggregation** ([`aggregate`]): per cluster and (type, name), the last message of each
//!   host, merged exactly as Turbine 1.x (the default) or 2.x; a host's contribution goes
//!   when it leaves discovery or falls silent; another turbine can be an instance, so turbines
//!   tier.
//! - **Serving** ([`Turbine::router`]): `/turbine.stream?cluster=NAME&delay=MS` with every
//!   key about once a second and a `: ping` every 3 s, `/clusters` (instances and their
//!   state as JSON), `/health`, and `/metrics` for Prometheus.
//!
//! The `turbine` binary reads a TOML [`Config`]; see [`config::HELP`] for every key.

#![forbid(unsafe_code)]

pub mod aggregate;
mod cluster;
pub mod config;
pub mod discovery;
pub mod parse;
mod server;
mod upstream;

pub use self::{
    cluster::{ClusterView, DiscoveryView, InstanceView, Totals},
    config::{Config, ConfigError},
    server::Turbine,
    upstream::tls_client_config,
};
