#![allow(clippy::unwrap_used)]
//! The `turbine` binary: a bad configuration stops start-up with a message naming what is
//! wrong; `--help` documents the file; a good one serves `/clusters` with flags over the file.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

const TURBINE: &str = env!("CARGO_BIN_EXE_turbine");

fn refused(args: &[&str], named: &str) {
    let out = Command::new(TURBINE).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(named),
        "{args:?}: {stderr:?} does not name {named:?}"
    );
}

#[test]
fn bad_configurations_stop_start_up_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let unknown = write(
        "unknown.toml",
        "[clusters.a]\ninstances = [\"h:1\"]\ntimeout = 3\n",
    );
    refused(&["--config", &unknown], "timeout");
    let bad_addr = write("addr.toml", "[clusters.a]\ninstances = [\"no-port\"]\n");
    refused(&["--config", &bad_addr], "no-port");
    let bad_listen = write(
        "listen.toml",
        "listen = \"localhost\"\n[clusters.a]\ninstances = []\n",
    );
    refused(&["--config", &bad_listen], "listen");
    let no_file = write(
        "file.toml",
        "[clusters.a]\nfile = \"/nonexistent/instances.txt\"\n",
    );
    refused(&["--config", &no_file], "/nonexistent/instances.txt");
    refused(
        &["--config", "/nonexistent/turbine.toml"],
        "/nonexistent/turbine.toml",
    );
    refused(&["--cluster", "a=127.0.0.1"], "127.0.0.1");
    refused(&[], "--config");
    let out = Command::new(TURBINE)
        .args(["--listen", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_lists_every_key_of_the_file() {
    let out = Command::new(TURBINE).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for key in [
        "listen",
        "mode",
        "interval_ms",
        "stale_after_ms",
        "idle_timeout_ms",
        "connect_timeout_ms",
        "max_line_bytes",
        "max_keys_per_cluster",
        "max_connections",
        "allow_origin",
        "srv =",
        "nameservers",
        "srv_min_refresh_ms",
        "srv_max_refresh_ms",
        "srv_grace_ms",
        "instances =",
        "file =",
        "path =",
        "https",
        "ca_file",
        "authorization",
    ] {
        assert!(help.contains(key), "--help does not explain {key}");
    }
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:1\"\n[clusters.a]\ninstances = [\"127.0.0.1:9\"]\n",
    )
    .unwrap();
    let mut child = Command::new(TURBINE)
        .args([
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--cluster", "b=127.0.0.1:10,127.0.0.1:11"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for _ in 0..3 {
        printed.push(lines.next().unwrap().unwrap());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Listening on a free port (the flag), not port 1 (the file); both clusters served.
    assert!(
        printed[0].contains("/turbine.stream?cluster=a"),
        "{printed:?}"
    );
    assert!(
        printed[1].contains("/turbine.stream?cluster=b"),
        "{printed:?}"
    );
    assert!(!printed[0].contains("127.0.0.1:1/"), "{printed:?}");
}
