//! `turbine`: aggregates the Hystrix metrics streams of a fleet into `/turbine.stream`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use hystrix_turbine::{
    Config, Turbine,
    aggregate::Mode,
    config::{ClusterConfig, HELP},
};
use tracing_subscriber::EnvFilter;

/// Aggregates the Hystrix metrics streams (`/hystrix.stream`) of a fleet, found through DNS
/// SRV records, a list or a file, into one `/turbine.stream?cluster=NAME` per cluster, in
/// Netflix Turbine's format. Also serves `/clusters` (instances and their state, JSON),
/// `/health` and `/metrics` (Prometheus).
#[derive(Debug, Parser)]
#[command(version, after_long_help = HELP, after_help = "See --help for every key of the configuration file.")]
struct Args {
    /// The configuration file (TOML). Flags override its keys.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Address to listen on [file: listen; default 127.0.0.1:8989].
    #[arg(short, long)]
    listen: Option<SocketAddr>,
    /// How hosts are merged: turbine1 or turbine2 [file: mode; default turbine1].
    #[arg(long, value_parser = parse_mode)]
    mode: Option<Mode>,
    /// How often every key is sent, in ms [file: interval_ms; default 1000].
    #[arg(long)]
    interval_ms: Option<u64>,
    /// Drop a host's data after this long without a message, in ms [file: stale_after_ms;
    /// default 15000].
    #[arg(long)]
    stale_after_ms: Option<u64>,
    /// Send `Access-Control-Allow-Origin: ORIGIN` [file: allow_origin].
    #[arg(long)]
    allow_origin: Option<String>,
    /// A cluster of fixed instances, `NAME=host:port,host:port` (repeatable); replaces the
    /// file's cluster of that name.
    #[arg(long = "cluster", value_name = "NAME=INSTANCES")]
    clusters: Vec<String>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "turbine1" => Ok(Mode::Turbine1),
        "turbine2" => Ok(Mode::Turbine2),
        _ => Err(format!("`{s}`: expected turbine1 or turbine2")),
    }
}

fn config(args: Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(mode) = args.mode {
        config.mode = mode;
    }
    if let Some(ms) = args.interval_ms {
        config.interval_ms = ms;
    }
    if let Some(ms) = args.stale_after_ms {
        config.stale_after_ms = ms;
    }
    if let Some(origin) = args.allow_origin {
        config.allow_origin = Some(origin);
    }
    for cluster in args.clusters {
        let (name, list) = cluster
            .split_once('=')
            .ok_or_else(|| format!("--cluster {cluster}: expected NAME=host:port,..."))?;
        let instances = list.split(',').map(str::trim).filter(|s| !s.is_empty());
        config.clusters.insert(
            name.trim().to_owned(),
            ClusterConfig {
                instances: Some(instances.map(str::to_owned).collect()),
                ..ClusterConfig::default()
            },
        );
    }
    if args.config.is_none() && config.clusters.is_empty() {
        return Err("nothing to aggregate: give --config FILE or --cluster NAME=host:port".into());
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match config(Args::parse()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("turbine: {e}");
            return ExitCode::from(2);
        }
    };
    let turbine = match Turbine::start(&config) {
        Ok(turbine) => turbine,
        Err(e) => {
            eprintln!("turbine: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("turbine: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(config.listen);
    for view in turbine.clusters() {
        println!(
            "turbine: http://{addr}/turbine.stream?cluster={}",
            view.name
        );
    }
    println!("turbine: http://{addr}/clusters");
    // Streams never end by themselves: on Ctrl-C the server is dropped, not drained.
    tokio::select! {
        served = axum::serve(listener, turbine.router()) => match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("turbine: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
