//! Resident memory of a service's `/hystrix.stream` and of the `turbine` binary's
//! `/turbine.stream` while 200 clients of each have stopped reading.
//!
//! Two processes are measured: an instance of the example service (`examples/axum_service`,
//! whose stream carries its four commands and its pool) and a `turbine` aggregating it. Each
//! stalled client connects with a 4 KiB receive buffer, asks for the stream at `?delay=100`
//! (ten ticks a second), reads the status line and then nothing, for the whole run. The
//! servers' resident memory (`VmRSS`) is sampled every second: before the stalled clients,
//! with them, and the growth over the second half of the run, which is zero when what a
//! server holds per stalled client is bounded. At the end a fresh client must still get data
//! from both streams.
//!
//! ```text
//! cargo build --release --example axum_service -p tower-hystrix && cargo build --release -p hystrix-turbine
//! cargo bench --bench stalled -- --bench [--seconds 60] [--clients 200]
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke test: 20 clients for
//! 3 s, failing if a stream stops serving.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/binaries.rs"]
mod binaries;
#[path = "../tests/common/process.rs"]
mod process;

use std::{net::SocketAddr, time::Duration};

use process::Process;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// A client that asks for `path`, reads the status line and stops reading. `None` if the
/// server refused it (not 200).
async fn stalled(addr: SocketAddr, path: &str) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).await.ok()?;
    (&status[9..12] == b"200").then_some(stream)
}

/// Whether a fresh client gets a `data:` line from `path` within 5 s.
async fn serves(addr: SocketAddr, path: &str) -> bool {
    let read = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        while !seen.windows(6).any(|w| w == b"data: ") {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_ok_and(|r| r.is_some())
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let (clients, seconds) = if bench {
        (arg(&args, "--clients", 200), arg(&args, "--seconds", 60))
    } else {
        (20, 3)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(clients as usize, seconds));
}

async fn run(clients: usize, seconds: u64) {
    let service = Process::start(
        &binaries::example("axum_service"),
        &[
            "--listen=127.0.0.1:0".into(),
            "--waves=off".into(),
            format!("--max-streams={}", clients + 10),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("turbine.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmax_connections = {}\n[clusters.default]\ninstances = [\"{}\"]\n",
            clients + 10,
            service.addr()
        ),
    )
    .unwrap();
    let turbine = Process::start(
        &binaries::built("turbine", &["turbine/src"]),
        &["--config".into(), config.display().to_string()],
    );
    // Every command and the pool have run, so that every tick carries all of them.
    for id in 0..20 {
        let mut s = TcpStream::connect(service.addr()).await.unwrap();
        let req = format!("GET /product/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    }
    let stream_path = "/hystrix.stream?delay=100";
    let turbine_path = "/turbine.stream?delay=100";
    assert!(
        serves(service.addr(), stream_path).await,
        "the service's stream"
    );
    assert!(
        serves(turbine.addr(), turbine_path).await,
        "the turbine's stream"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = (service.rss_kib(), turbine.rss_kib());

    let mut held = Vec::new();
    let (mut refused_service, mut refused_turbine) = (0, 0);
    for _ in 0..clients {
        match stalled(service.addr(), stream_path).await {
            Some(s) => held.push(s),
            None => refused_service += 1,
        }
        match stalled(turbine.addr(), turbine_path).await {
            Some(s) => held.push(s),
            None => refused_turbine += 1,
        }
    }
    let mut samples = Vec::new();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((service.rss_kib(), turbine.rss_kib()));
    }
    let still_serving = (
        serves(service.addr(), stream_path).await,
        serves(turbine.addr(), turbine_path).await,
    );
    println!(
        "stalled/{clients} clients per stream, {seconds} s (refused: service {refused_service}, turbine {refused_turbine})"
    );
    let half = samples.len() / 2;
    let report = |name: &str, before: u64, pick: fn(&(u64, u64)) -> u64| {
        let rss: Vec<u64> = samples.iter().map(pick).collect();
        let (end, max) = (rss[rss.len() - 1], rss.iter().copied().max().unwrap_or(0));
        let second_half = end as i64 - rss[half] as i64;
        println!(
            "  {name}: RSS {before} KiB before, {end} KiB at the end, max {max} KiB, second half {second_half:+} KiB"
        );
    };
    report("service /hystrix.stream", before.0, |s| s.0);
    report("turbine /turbine.stream", before.1, |s| s.1);
    println!(
        "  a new client still served: service {}, turbine {}",
        still_serving.0, still_serving.1
    );
    assert!(
        still_serving.0 && still_serving.1,
        "a stream stopped serving new clients"
    );
    assert_eq!(
        (refused_service, refused_turbine),
        (0, 0),
        "clients refused below the limit"
    );
    drop(held);
}
