//! An axum service that calls its dependencies through commands and publishes their metrics.
//!
//! `GET /product/{id}` calls four simulated dependencies concurrently, each through a command
//! (see `examples/common/service.rs`): a healthy catalog, reviews that are slow now and then, a
//! pricing service that fails in waves (its circuit opens, the last good price is served stale,
//! the circuit closes when it is back) and an inventory client that blocks threads, isolated in
//! a pool of its own. The same app serves `/hystrix.stream` (for the dashboard and turbine) and
//! `/metrics` (Prometheus).
//!
//! ```text
//! cargo run --example axum_service
//! cargo run --example axum_service -- --listen 127.0.0.1:8081 --waves 20,10
//! curl http://127.0.0.1:8080/product/7
//! curl -N http://127.0.0.1:8080/hystrix.stream
//! ```
//!
//! The first line printed is `axum_service: http://ADDR/`, so a script that asked for port 0
//! can read the port. `--control-token TOKEN` serves
//! `POST /control/{dependency}/{normal|fail|slow|hang}` to requests bearing the token;
//! `--fast`, with `--no-commands` or `--no-pool`, are the sides of the load benchmark
//! (`scripts/load.sh`).

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use tokio::net::TcpListener;

#[path = "common/service.rs"]
mod service;

use service::{Instance, Options, Waves};

/// The example service.
#[derive(Parser)]
#[command(about = "The example storefront: four dependencies behind commands.")]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The pricing dependency's schedule: healthy,failing in seconds, or `off`.
    #[arg(long, default_value = "25,15")]
    waves: String,
    /// Serve /control, to requests with `Authorization: Bearer TOKEN`, to change a
    /// dependency's behaviour by hand (off by default).
    #[arg(long, value_name = "TOKEN")]
    control_token: Option<String>,
    /// No simulated latency (for load tests).
    #[arg(long)]
    fast: bool,
    /// Call the dependencies directly, without commands (the load test's baseline).
    #[arg(long)]
    no_commands: bool,
    /// Isolate the inventory client by a semaphore instead of its thread pool (only with
    /// --fast: the simulated client blocks its thread otherwise).
    #[arg(long, requires = "fast")]
    no_pool: bool,
    /// Clients /hystrix.stream serves at once (more get 503).
    #[arg(long, default_value_t = 50)]
    max_streams: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum_service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let waves = Waves::parse_option(&args.waves)?;
    let instance = Instance::new(&Options {
        commands: !args.no_commands,
        fast: args.fast,
        waves,
        control: args.control_token,
        pool: !args.no_pool,
        max_streams: args.max_streams,
    })?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("axum_service: http://{addr}/");
    println!("  product page   http://{addr}/product/7");
    println!("  metrics stream http://{addr}/hystrix.stream");
    println!("  prometheus     http://{addr}/metrics");
    instance.serve(listener, shutdown()).await?;
    println!("axum_service: stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
