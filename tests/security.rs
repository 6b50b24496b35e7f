//! Everything listens on loopback unless told otherwise: the turbine's and the dashboard's
//! configuration defaults (empty file or none), and the addresses the example programs use
//! when given no `--listen`.
#![allow(clippy::unwrap_used)]

#[path = "common/binaries.rs"]
mod binaries;

use std::{net::SocketAddr, process::Command};

#[test]
fn the_turbine_and_the_dashboard_listen_on_loopback_by_default() {
    let listens = [
        hystrix_turbine::Config::default().listen,
        hystrix_turbine::Config::from_toml("", "an empty file")
            .unwrap()
            .listen,
        hystrix_dashboard::Config::default().listen,
        hystrix_dashboard::Config::from_toml("", "an empty file")
            .unwrap()
            .listen,
    ];
    for listen in listens {
        assert!(listen.ip().is_loopback(), "{listen}");
    }
}

/// The `[default: ADDR]` of `--listen` in a program's `--help`.
fn default_listen(binary: &std::path::Path) -> SocketAddr {
    let help = Command::new(binary).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    let after = text
        .split("--listen")
        .nth(1)
        .unwrap_or_else(|| panic!("no --listen in:\n{text}"));
    let default = after
        .split("[default: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no default for --listen in:\n{text}"));
    default.parse().unwrap()
}

#[test]
fn the_example_service_and_the_demo_listen_on_loopback_by_default() {
    for name in ["axum_service", "demo"] {
        let listen = default_listen(&binaries::example(name));
        assert!(listen.ip().is_loopback(), "{name}: {listen}");
    }
}
