//! The turbine's configuration file (`Config::from_toml`, then `plan`, which checks every
//! value), and the same text read as a file of instances (`read_endpoints`).
//!
//! `plan` reads the files a cluster's `file` names, so a text naming one is only parsed:
//! a fuzzer could otherwise name `/dev/zero` or a FIFO.
#![no_main]

use hystrix_turbine::{Config, discovery::read_endpoints};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(endpoints) = read_endpoints(text) {
        for endpoint in endpoints {
            assert!(!endpoint.name.is_empty());
            let _ = endpoint.socket_addr();
        }
    }
    let Ok(config) = Config::from_toml(text, "fuzz.toml") else {
        return;
    };
    if config.clusters.values().any(|c| c.file.is_some()) {
        return;
    }
    if let Ok(plans) = config.plan() {
        assert_eq!(plans.len(), config.clusters.len());
        for plan in plans {
            assert!(plan.path.starts_with('/'), "path {:?}", plan.path);
        }
    }
});
