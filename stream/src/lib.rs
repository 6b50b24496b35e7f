//! The Hystrix metrics stream and Prometheus export.
//!
//! Commands and thread pools publish themselves in a [`MetricsRegistry`]; this crate turns
//! what they report into `/hystrix.stream`, byte for byte what Hystrix sends (so the Netflix
//! dashboard and Turbine read it unchanged), and into Prometheus metrics.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod registry;

pub use self::registry::MetricsRegistry;
