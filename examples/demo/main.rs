//! The whole system on one machine, with one command.
//!
//! ```text
//! cargo run --release --example demo
//! cargo run --release --example demo -- --instances 5 --waves 20,10 --rps 50
//! ```
//!
//! - Instances of the example storefront (`examples/common/service.rs`), each calling four
//!   simulated dependencies through commands, each serving `/hystrix.stream` and `/metrics` on
//!   a loopback port of its own. Pricing fails in waves (`--waves HEALTHY,FAILING` seconds):
//!   its circuit opens, stays open while trial requests fail, and closes when it is back; the
//!   pages meanwhile carry the last good price, marked stale.
//! - A DNS server (hickory-server, on a loopback port) publishing the instances as SRV records.
//! - A turbine that discovers them through it and merges their streams into the cluster
//!   `storefront`, and the dashboard, at http://127.0.0.1:7979, showing it.
//! - A load generator driving every instance.
//!
//! Every URL is printed at start, and a line of figures every 10 s (`--report-secs`); Ctrl-C
//! stops it all (`--seconds N` stops it after N seconds).

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use hystrix_dashboard::Dashboard;
use hystrix_turbine::{Config as TurbineConfig, Turbine};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tower_hystrix::State;

mod dns;
mod load;
#[path = "../common/service.rs"]
mod service;

use service::{Instance, Options, Waves};

/// The demo of tower-hystrix.
#[derive(Parser)]
#[command(about = "Instances, DNS discovery, turbine, dashboard and load, on loopback.")]
struct Args {
    /// Instances of the storefront.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    instances: u16,
    /// The pricing dependency's schedule: healthy,failing in seconds, or `off`.
    #[arg(long, default_value = "25,15")]
    waves: String,
    /// Product pages per second, per instance.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=5000))]
    rps: u32,
    /// The dashboard's address.
    #[arg(long, default_value = "127.0.0.1:7979")]
    listen: SocketAddr,
    /// The DNS server's port on 127.0.0.1 (0 picks one).
    #[arg(long, default_value_t = 0)]
    dns_port: u16,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
    /// Print a line of figures this often, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    report_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let waves = Waves::parse_option(&args.waves)?;
    // Bind the dashboard first: a taken port is the likeliest failure.
    let dashboard_listener = TcpListener::bind(args.listen).await.map_err(|e| {
        format!(
            "cannot listen on {} ({e}); pick another address with --listen 127.0.0.1:PORT",
            args.listen
        )
    })?;
    let dashboard_addr = dashboard_listener.local_addr()?;

    // The instances' /control takes a token made for this run, printed below.
    let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let (stop, stopped) = watch::channel(false);
    let mut serving: Vec<JoinHandle<()>> = Vec::new();
    let mut instances = Vec::new();
    for _ in 0..args.instances {
        let instance = Instance::new(&Options {
            waves,
            control: Some(token.clone()),
            ..Options::default()
        })?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let registry = instance.registry.clone();
        let mut stopped = stopped.clone();
        serving.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(e) = instance.serve(listener, shutdown).await {
                eprintln!("demo: instance {addr}: {e}");
            }
        }));
        instances.push((addr, registry));
    }
    let addrs: Vec<SocketAddr> = instances.iter().map(|(addr, _)| *addr).collect();

    let ports: Vec<u16> = addrs.iter().map(SocketAddr::port).collect();
    let dns = dns::Dns::start(args.dns_port, &ports).await?;
    let turbine = Turbine::start(&TurbineConfig::from_toml(
        &format!(
            "interval_ms = 500\n\
             stale_after_ms = 5000\n\
             [clusters.storefront]\n\
             srv = \"{}\"\n\
             nameservers = [\"{}\"]\n\
             srv_min_refresh_ms = 1000\n",
            dns::SRV_NAME,
            dns.addr()
        ),
        "the demo's turbine configuration",
    )?)?;
    let dashboard = Dashboard::builder().turbine(turbine.clone()).build()?;
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = dashboard.serve(dashboard_listener).await {
            eprintln!("demo: dashboard: {e}");
        }
    })];

    let tally = Arc::new(load::Tally::default());
    tasks.extend(load::start(&addrs, args.rps, tally.clone()));

    print_urls(&args, waves, dashboard_addr, dns.addr(), &addrs, &token);

    let report = report_every(
        Duration::from_secs(args.report_secs),
        tally,
        turbine,
        instances,
    );
    let until = async {
        match args.seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::select! {
        () = until => {}
        () = report => {}
    }

    println!("demo: stopping");
    // The load stops first; the instances finish what they have in flight (their streams
    // are cut after a second); the dashboard and the turbine go with the runtime.
    for task in tasks {
        task.abort();
    }
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    for instance in serving {
        let _ = tokio::time::timeout_at(deadline, instance).await;
    }
    dns.stop().await;
    println!("demo: stopped");
    Ok(())
}

fn print_urls(
    args: &Args,
    waves: Option<Waves>,
    dashboard: SocketAddr,
    dns: SocketAddr,
    instances: &[SocketAddr],
    token: &str,
) {
    let turbine_stream = format!("http://{dashboard}/turbine.stream?cluster=storefront");
    let monitor = format!(
        "http://{dashboard}/monitor?title=storefront&stream={}",
        url::form_urlencoded::byte_serialize(turbine_stream.as_bytes()).collect::<String>()
    );
    let schedule = match waves {
        Some(w) => format!(
            "pricing fails {} s of every {} s",
            w.failing.as_secs(),
            (w.healthy + w.failing).as_secs()
        ),
        None => "pricing stays healthy".to_owned(),
    };
    println!(
        "tower-hystrix demo: {} instances of the storefront, {} pages/s each, {schedule}",
        args.instances, args.rps
    );
    println!();
    println!("  dashboard        http://{dashboard}/");
    println!("  the cluster      {monitor}");
    println!("  turbine stream   {turbine_stream}");
    println!("  turbine status   http://{dashboard}/clusters");
    println!(
        "  DNS (SRV)        dig @{} -p {} SRV {}",
        dns.ip(),
        dns.port(),
        dns::SRV_NAME
    );
    for (i, addr) in instances.iter().enumerate() {
        println!(
            "  storefront-{:<3}  http://{addr}/product/7  http://{addr}/hystrix.stream  http://{addr}/metrics",
            i + 1
        );
    }
    println!();
    println!(
        "  break a dependency by hand:\n    curl -X POST -H 'Authorization: Bearer {token}' http://{}/control/reviews/slow\n    (catalog, reviews, pricing, inventory; normal, fail, slow, hang)",
        instances[0]
    );
    println!("Ctrl-C stops everything.");
    println!();
}

/// Prints a line of figures every `period`: the load's tally since the last line, the pricing
/// circuits of the instances and the hosts the turbine streams.
async fn report_every(
    period: Duration,
    tally: Arc<load::Tally>,
    turbine: Turbine,
    instances: Vec<(SocketAddr, tower_hystrix::Registry)>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last = tally.read();
    let mut elapsed = Duration::ZERO;
    loop {
        ticks.tick().await;
        elapsed += period;
        let now = tally.read();
        let d: Vec<u64> = now.iter().zip(last).map(|(n, l)| n - l).collect();
        last = now;
        let open = instances
            .iter()
            .filter(|(_, registry)| {
                registry
                    .get("GetPrice")
                    .is_some_and(|c| c.circuit().state() != State::Closed)
            })
            .count();
        let hosts = turbine
            .clusters()
            .iter()
            .find(|c| c.name == "storefront")
            .map_or(0, |c| {
                c.instances
                    .iter()
                    .filter(|i| i.state == "connected")
                    .count()
            });
        println!(
            "[{:>4}s] pages {} ok, {} 5xx, {} unanswered | prices {} fresh, {} stale, {} fallback | other fallbacks {} | GetPrice circuit open on {open}/{} | turbine streams {hosts} hosts",
            elapsed.as_secs(),
            d[0],
            d[1],
            d[2],
            d[4],
            d[5],
            d[6],
            d[7],
            instances.len()
        );
    }
}
