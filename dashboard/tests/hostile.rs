#![allow(clippy::unwrap_used)]
//! Hostile input to the dashboard beyond what `tests/proxy.rs` sends its proxy: targets of
//! many KiB, a request head past the HTTP server's limit, and configuration files nested
//! 100,000 deep or holding numbers beyond 64 bits. Whatever comes, an answer (or a closed
//! connection for a head too large to read), no connection to any upstream, and the
//! dashboard still serving.
//!
//! Regressions of crashes found by the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) go here too.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hystrix_dashboard::{Config, Dashboard, allow::AllowList};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::timeout,
};

const WAIT: Duration = Duration::from_secs(5);

/// A listener that counts the connections reaching it and answers none.
async fn trap() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, accepted)
}

async fn serve(allow: &[String]) -> SocketAddr {
    let dashboard = Dashboard::builder()
        .allow(AllowList::parse(allow).unwrap())
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(dashboard.serve(listener));
    addr
}

/// Sends `GET {target}` on a fresh connection; the status of the answer, or `None` when
/// the connection closed without one. Panics when nothing happens within `WAIT`.
async fn status_of(addr: SocketAddr, target: &str) -> Option<u16> {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // A head the server refuses may be cut off while it is written.
    let _ = socket.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = timeout(WAIT, async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer and no close within {WAIT:?}");
    let line = String::from_utf8_lossy(&answer);
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn proxied(origin: &str) -> String {
    format!(
        "/proxy.stream?origin={}",
        url::form_urlencoded::byte_serialize(origin.as_bytes()).collect::<String>()
    )
}

/// Targets of many KiB are refused by the proxy (400 or 403), a head beyond what the HTTP
/// server reads with a client error or a closed connection; nothing is connected to, and the
/// dashboard serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_targets_and_heads_are_refused_and_the_dashboard_serves_on() {
    let (port, accepted) = trap().await;
    let allowed = format!("127.0.0.1:{port}");
    let addr = serve(std::slice::from_ref(&allowed)).await;

    // Long, but within the URI length the HTTP server takes (64 KiB once encoded), so that
    // the proxy's own parsing is what refuses them.
    let long = 12 * 1024;
    let targets = [
        // A host of 12 KiB, then the allowed port.
        format!("http://{}:{port}/hystrix.stream", "a".repeat(long)),
        // An IPv6 literal that never closes.
        format!("http://[{}", "1:".repeat(long / 2)),
        format!("{}{allowed}", "[".repeat(long)),
        // The allowed origin behind 12 KiB of credentials.
        format!("http://{}@{allowed}/", "u".repeat(long)),
        // 2,000 ports.
        format!("http://127.0.0.1{}/", format!(":{port}").repeat(2_000)),
    ];
    for target in &targets {
        let status = status_of(addr, &proxied(target)).await;
        assert!(
            matches!(status, Some(400 | 403)),
            "{}...: {status:?}",
            &target[..40]
        );
    }

    // A query of 1 MiB: more than the HTTP server reads of a head.
    let huge = proxied(&format!("http://{allowed}/{}", "x".repeat(1 << 20)));
    let status = status_of(addr, &huge).await;
    assert!(
        status.is_none_or(|s| (400..500).contains(&s)),
        "a 1 MiB head: {status:?}"
    );

    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "an upstream was reached"
    );
    assert_eq!(
        status_of(addr, "/").await,
        Some(200),
        "the dashboard serves on"
    );
}

/// Configuration files nested 100,000 deep, with numbers beyond 64 bits or below zero, or
/// not UTF-8: an error naming what is wrong, never a panic or a stack overflow (on a 2 MiB
/// stack).
#[test]
fn hostile_configuration_files_are_refused_with_an_error() {
    const DEPTH: usize = 100_000;
    let cases: Vec<(String, &str)> = vec![
        (format!("allow = {}", "[".repeat(DEPTH)), "d.toml"),
        (
            format!("allow = {}{}", "[".repeat(DEPTH), "]".repeat(DEPTH)),
            "allow",
        ),
        (format!("ca_file = {}", "{ a = ".repeat(DEPTH)), "d.toml"),
        (format!("[{}a]", "a.".repeat(DEPTH)), "d.toml"),
        ("max_streams = 18446744073709551616".into(), "max_streams"),
        ("max_streams = -1".into(), "max_streams"),
        ("connect_timeout_ms = 1e400".into(), "connect_timeout_ms"),
        (
            "idle_timeout_ms = -9223372036854775809".into(),
            "idle_timeout_ms",
        ),
        ("listen = \"127.0.0.1:65536\"".into(), "listen"),
    ];
    let results = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            cases
                .into_iter()
                .map(|(text, named)| {
                    let result = Config::from_toml(&text, "/etc/hystrix/d.toml");
                    (text.chars().take(60).collect::<String>(), named, result)
                })
                .collect::<Vec<_>>()
        })
        .unwrap()
        .join()
        .expect("no panic, no stack overflow");
    for (text, named, result) in results {
        match result {
            Err(e) => assert!(e.0.contains(named), "{text:?}: {e}"),
            Ok(config) => panic!("{text:?} accepted: {config:?}"),
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.toml");
    std::fs::write(&path, b"allow = [\"127.0.0.1:1\xff\"]\n").unwrap();
    let e = Config::load(&path).unwrap_err();
    assert!(e.0.contains("dashboard.toml"), "{e}");
}
