//! The `hystrix-dashboard` binary: bad configurations stop start-up naming what is wrong;
//! `--help` documents the file; `--turbine-config` runs a turbine in the process, whose
//! clusters the page reads on the dashboard's own origin and the proxy allows (and nothing
//! else of the dashboard's own).
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use bytes::Bytes;
use http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::io::{AsyncBufReadExt, BufReader};

use common::{command, feed::Feed};

const DASHBOARD: &str = env!("CARGO_BIN_EXE_hystrix-dashboard");

fn refused(args: &[&str], named: &str) {
    let out = Command::new(DASHBOARD).args(args).output().unwrap();
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
    refused(&["--config", &write("u.toml", "alow = []\n")], "alow");
    refused(&["--allow", "ftp://10.0.0.1:21"], "ftp://10.0.0.1:21");
    refused(&["--allow", "169.254.169.254:80"], "link-local");
    refused(&["--allow", "10.0.0.1:8080/hystrix.stream"], "no path");
    refused(
        &["--turbine-config", "/nonexistent/turbine.toml"],
        "/nonexistent/turbine.toml",
    );
    let bad_turbine = write("t.toml", "[clusters.a]\ninstances = [\"no-port\"]\n");
    refused(&["--turbine-config", &bad_turbine], "no-port");
    let out = Command::new(DASHBOARD)
        .args(["--listen", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_lists_every_key_of_the_file() {
    let out = Command::new(DASHBOARD).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for key in [
        "listen",
        "allow",
        "turbine_config",
        "connect_timeout_ms",
        "idle_timeout_ms",
        "max_streams",
        "ca_file",
        "--turbine-config",
        "--allow",
    ] {
        assert!(help.contains(key), "--help does not mention {key}");
    }
}

/// A GET; a stream is read until its text contains `until`.
async fn get_until(url: &str, until: &str) -> (http::StatusCode, http::HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(5), client.get(url.parse().unwrap()))
        .await
        .unwrap()
        .unwrap();
    let (parts, mut body) = response.into_parts();
    let mut text = String::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
            if !until.is_empty() && text.contains(until) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap();
    (parts.status, parts.headers, text)
}

async fn get(url: &str) -> (http::StatusCode, http::HeaderMap, String) {
    get_until(url, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_turbine_is_served_and_read_on_the_dashboards_origin() {
    let feed = Feed::start(Duration::from_millis(200), false).await;
    feed.set(vec![command("Checkout", 4, 1, false).to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("turbine.toml");
    std::fs::write(
        &config,
        format!(
            "interval_ms = 200\n[clusters.shop]\ninstances = [\"{}\"]\n",
            feed.addr
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(DASHBOARD)
        .args(["--listen", "127.0.0.1:0", "--turbine-config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let base = first
        .strip_prefix("hystrix-dashboard: ")
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let monitor_link = lines.next_line().await.unwrap().unwrap();
    assert!(
        monitor_link.contains("/monitor?stream=%2Fturbine.stream%3Fcluster%3Dshop"),
        "{monitor_link}"
    );

    let (status, headers, page) = get(&format!("{base}/monitor")).await;
    assert_eq!(status, 200);
    assert!(page.contains("/assets/monitor.js"));
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(
        headers[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );

    let (_, _, info) = get(&format!("{base}/dashboard.json")).await;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["clusters"][0]["name"], "shop");
    assert_eq!(
        info["clusters"][0]["stream"],
        "/turbine.stream?cluster=shop"
    );

    let (status, _, events) =
        get_until(&format!("{base}/turbine.stream?cluster=shop"), "Checkout").await;
    assert_eq!(status, 200);
    assert!(events.contains("\"name\":\"Checkout\""), "{events}");

    // The proxy allows the embedded turbine's stream on the dashboard's own port...
    let origin = format!("{base}/turbine.stream?cluster=shop");
    let (status, _, proxied) = get_until(
        &format!(
            "{base}/proxy.stream?origin={}",
            url::form_urlencoded::byte_serialize(origin.as_bytes()).collect::<String>()
        ),
        "Checkout",
    )
    .await;
    assert_eq!(status, 200, "{proxied}");
    assert!(proxied.contains("\"name\":\"Checkout\""), "{proxied}");
    // ... and nothing else of its own: not the other routes, not the proxy itself.
    for path in [
        "/clusters",
        "/metrics",
        "/proxy.stream?origin=x",
        "/turbine.stream/",
    ] {
        let origin = format!("{base}{path}");
        let (status, _, why) = get(&format!(
            "{base}/proxy.stream?origin={}",
            url::form_urlencoded::byte_serialize(origin.as_bytes()).collect::<String>()
        ))
        .await;
        assert_eq!(status, 403, "{path}: {why}");
    }
    child.kill().await.unwrap();
}
