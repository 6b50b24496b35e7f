//! `hystrix-dashboard`: every circuit and thread pool of Hystrix metrics streams, live in the
//! browser.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use hystrix_dashboard::{Config, Dashboard, config::HELP};
use tracing_subscriber::EnvFilter;

/// Serves the Hystrix dashboard: a start page, the monitor page (which accepts the Hystrix
/// Dashboard's `?stream=` and `?streams=` links), and `/proxy.stream` for streams without
/// CORS headers, which reaches only the allowed origins. With `--turbine-config` it also
/// runs a turbine and serves its `/turbine.stream?cluster=NAME`.
#[derive(Debug, Parser)]
#[command(version, after_long_help = HELP, after_help = "See --help for every key of the configuration file.")]
struct Args {
    /// The configuration file (TOML). Flags override its keys.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Address to listen on [file: listen; default 127.0.0.1:7979].
    #[arg(short, long)]
    listen: Option<SocketAddr>,
    /// An origin the proxy may reach: `host:port`, `http://host[:port]` or
    /// `https://host[:port]` (repeatable; added to the file's `allow`).
    #[arg(long = "allow", value_name = "ORIGIN")]
    allow: Vec<String>,
    /// Run a turbine in this process with this configuration [file: turbine_config].
    #[arg(long)]
    turbine_config: Option<PathBuf>,
}

fn config(args: Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.allow.extend(args.allow);
    if let Some(path) = args.turbine_config {
        config.turbine_config = Some(path);
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
            eprintln!("hystrix-dashboard: {e}");
            return ExitCode::from(2);
        }
    };
    let dashboard = match Dashboard::from_config(&config) {
        Ok(dashboard) => dashboard,
        Err(e) => {
            eprintln!("hystrix-dashboard: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hystrix-dashboard: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(config.listen);
    println!("hystrix-dashboard: http://{addr}/");
    if let Some(turbine) = dashboard.turbine() {
        for view in turbine.clusters() {
            let stream = format!("/turbine.stream?cluster={}", view.name);
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("stream", &stream)
                .append_pair("title", &view.name)
                .finish();
            println!("hystrix-dashboard: http://{addr}/monitor?{query}");
        }
    }
    for origin in dashboard.allow_list().origins() {
        println!("hystrix-dashboard: the proxy reaches {origin}");
    }
    // Streams never end by themselves: on Ctrl-C the server is dropped, not drained.
    tokio::select! {
        served = dashboard.serve(listener) => match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hystrix-dashboard: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
