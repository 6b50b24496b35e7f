//! End to end, every part a process of its own: three instances of the example service
//! (`examples/axum_service`), a real dnsmasq publishing their SRV records, the `turbine` binary
//! discovering them through it, the `hystrix-dashboard` binary proxying the turbine's stream,
//! and a headless Chromium showing the dashboard's page.
//!
//! The test breaks the pricing dependency of every instance and watches its circuit open on
//! the page while the pages keep their prices (stale or fallback), then mends it and watches
//! the circuit close; it kills an instance and watches the host count fall, restarts it and
//! watches it come back. Screenshots go to `target/dashboard-screenshots/`.
//!
//! The binaries must be built first (see `common/binaries.rs`); dnsmasq, Chromium and
//! ChromeDriver are installed by `scripts/test.sh`. A missing one fails the test.
#![allow(clippy::unwrap_used)]

#[path = "common/binaries.rs"]
mod binaries;
#[path = "../dashboard/tests/common/browser.rs"]
mod browser;
#[path = "../turbine/tests/common/dnsmasq.rs"]
mod dnsmasq;
#[path = "common/process.rs"]
mod process;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

use binaries::{built, example};
use browser::Browser;
use dnsmasq::Dnsmasq;
use process::Process;

/// The token of the instances' `/control`.
const CONTROL_TOKEN: &str = "e2e-control";
/// The SRV name of the cluster.
const SRV: &str = "_hystrix._tcp.storefront.test";
/// How long the page may take to show a change: a few seconds are expected (breaker health
/// every 500 ms, turbine and dashboard ticks, a 3 s sleep window before closing).
const WAIT: Duration = Duration::from_secs(30);

type HttpClient = Client<HttpConnector, Empty<bytes::Bytes>>;

/// An instance of the example service on a fixed port (the SRV records name it), with
/// `/control` on.
fn instance(port: u16) -> Process {
    Process::start(
        &example("axum_service"),
        &[
            format!("--listen=127.0.0.1:{port}"),
            "--waves=off".to_owned(),
            format!("--control-token={CONTROL_TOKEN}"),
        ],
    )
}

/// A free loopback TCP port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// `POST url`, with `authorization` if given: the status and the body.
async fn post(client: &HttpClient, url: &str, authorization: Option<&str>) -> (u16, String) {
    let mut request = http::Request::post(url);
    if let Some(value) = authorization {
        request = request.header(http::header::AUTHORIZATION, value);
    }
    let request = request.body(Empty::new()).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .unwrap_or_else(|_| panic!("{url}: no answer within 10 s"))
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sets the pricing dependency of every instance to `mode`.
async fn pricing(client: &HttpClient, ports: &[u16], mode: &str) {
    for port in ports {
        let url = format!("http://127.0.0.1:{port}/control/pricing/{mode}");
        let bearer = format!("Bearer {CONTROL_TOKEN}");
        let (status, body) = post(client, &url, Some(&bearer)).await;
        assert_eq!(status, 200, "{url}: {body}");
    }
}

/// Where the product pages' prices came from, as the load saw them.
#[derive(Default)]
struct Prices {
    fresh: AtomicU64,
    stale: AtomicU64,
    fallback: AtomicU64,
    /// Pages that were not 200.
    errors: AtomicU64,
}

impl Prices {
    fn read(&self) -> [u64; 4] {
        [&self.fresh, &self.stale, &self.fallback, &self.errors].map(|c| c.load(Ordering::Relaxed))
    }
}

/// Product pages of every instance, 25 a second each, until `stop` (at most 10 minutes).
fn drive(
    ports: Vec<u16>,
    prices: Arc<Prices>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = client();
        let mut ticks = tokio::time::interval(Duration::from_millis(40));
        for round in 0..15_000u64 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            ticks.tick().await;
            for port in &ports {
                let (client, prices) = (client.clone(), prices.clone());
                let url = format!("http://127.0.0.1:{port}/product/{}", round % 20);
                tokio::spawn(async move {
                    let Ok(Ok(response)) = tokio::time::timeout(
                        Duration::from_secs(5),
                        client.get(url.parse().unwrap()),
                    )
                    .await
                    else {
                        return; // A killed instance.
                    };
                    if response.status() != 200 {
                        prices.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    let Ok(body) = response.into_body().collect().await else {
                        return;
                    };
                    let page: Value = serde_json::from_slice(&body.to_bytes()).unwrap();
                    let counter = match page["price_source"].as_str().unwrap() {
                        "fresh" => &prices.fresh,
                        "stale" => &prices.stale,
                        "fallback" => &prices.fallback,
                        other => panic!("price_source {other:?}"),
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        }
    })
}

/// A script returning the text of `css` in the GetPrice card ("" until it is rendered).
fn price_card(css: &str) -> String {
    format!(
        "const card = document.querySelector('#circuits_0 .card[data-name=\"GetPrice\"][data-rendered]'); \
         const part = card && card.querySelector('{css}'); \
         return part ? part.textContent : ''"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dependency_opens_its_circuit_on_the_page_and_hosts_come_and_go() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut instances: Vec<Process> = ports.iter().map(|&port| instance(port)).collect();

    let records: Vec<String> = ports
        .iter()
        .enumerate()
        .flat_map(|(i, port)| {
            [
                format!("--srv-host={SRV},inst{i}.storefront.test,{port}"),
                format!("--host-record=inst{i}.storefront.test,127.0.0.1"),
            ]
        })
        .collect();
    let dns = Dnsmasq::for_domain("storefront.test", &records);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("turbine.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n\
             interval_ms = 500\n\
             stale_after_ms = 3000\n\
             connect_timeout_ms = 1000\n\
             [clusters.storefront]\n\
             srv = \"{SRV}\"\n\
             nameservers = [\"{}\"]\n\
             srv_min_refresh_ms = 1000\n\
             srv_max_refresh_ms = 2000\n",
            dns.addr()
        ),
    )
    .unwrap();
    let turbine = Process::start(
        &built("turbine", &["turbine/src"]),
        &["--config".to_owned(), config.display().to_string()],
    );
    // The first line is the cluster's stream.
    let turbine_stream = turbine
        .first_line
        .trim()
        .trim_start_matches("turbine: ")
        .to_owned();
    assert!(
        turbine_stream.ends_with("/turbine.stream?cluster=storefront"),
        "{turbine_stream}"
    );
    let turbine_origin: SocketAddr = turbine_stream
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let dashboard = Process::start(
        &built(
            "hystrix-dashboard",
            &["dashboard/src", "dashboard/assets", "turbine/src"],
        ),
        &[
            "--listen=127.0.0.1:0".to_owned(),
            format!("--allow=http://{turbine_origin}"),
        ],
    );

    let prices = Arc::new(Prices::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load = drive(ports.clone(), prices.clone(), stop.clone());
    let http = client();

    let browser = Browser::start().await;
    browser
        .goto(&format!(
            "{}/monitor?title=storefront&stream={}",
            dashboard.url(),
            url::form_urlencoded::byte_serialize(turbine_stream.as_bytes()).collect::<String>()
        ))
        .await;

    // All three hosts, the circuit closed.
    browser
        .wait_for(
            WAIT,
            "three hosts",
            &format!(
                "return ({})() === '3'",
                as_function(&price_card(".stat-hosts"))
            ),
        )
        .await;
    let status = browser.eval(&price_card(".status"), vec![]).await;
    assert!(
        status.as_str().unwrap().contains("Circuit Closed"),
        "{status}"
    );

    // Control needs the token.
    let url = format!("http://127.0.0.1:{}/control/pricing/fail", ports[0]);
    assert_eq!(post(&http, &url, None).await.0, 401);
    assert_eq!(post(&http, &url, Some("Bearer guess")).await.0, 401);

    // Pricing fails everywhere: the circuit opens on the page; the pages keep a price.
    let before = prices.read();
    pricing(&http, &ports, "fail").await;
    browser
        .wait_for(
            WAIT,
            "the circuit open",
            &format!(
                "return ({})().includes('Circuit Open')",
                as_function(&price_card(".status"))
            ),
        )
        .await;
    browser.screenshot("e2e-open").await;
    // The report that first shows the circuit open may come before any request was
    // short-circuited: wait for one that counts them (wait_for fails the test at WAIT).
    browser
        .wait_for(
            WAIT,
            "short-circuits counted while open",
            &format!(
                "const n = ({})(); return n !== '' && n !== '0'",
                as_function(&price_card(".counter-short"))
            ),
        )
        .await;
    let during = prices.read();
    assert!(
        during[1] + during[2] > before[1] + before[2],
        "stale or fallback prices served while pricing fails: {before:?} -> {during:?}"
    );
    assert_eq!(during[3], before[3], "pages kept answering 200");

    // Pricing recovers: the circuit closes on the page; fresh prices again.
    pricing(&http, &ports, "normal").await;
    browser
        .wait_for(
            WAIT,
            "the circuit closed again",
            &format!(
                "return ({})().includes('Circuit Closed')",
                as_function(&price_card(".status"))
            ),
        )
        .await;
    let recovered = prices.read();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(prices.read()[0] > recovered[0], "fresh prices once closed");

    // An instance dies: the host count falls; it comes back: the count returns.
    instances[2].kill();
    browser
        .wait_for(
            WAIT,
            "two hosts",
            &format!(
                "return ({})() === '2'",
                as_function(&price_card(".stat-hosts"))
            ),
        )
        .await;
    browser.screenshot("e2e-two-hosts").await;
    instances[2] = instance(ports[2]);
    browser
        .wait_for(
            WAIT,
            "three hosts again",
            &format!(
                "return ({})() === '3'",
                as_function(&price_card(".stat-hosts"))
            ),
        )
        .await;

    let errors = browser.console_errors(&[]).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    browser.close().await;
    drop((dashboard, turbine, dns, instances));
}

/// A script body wrapped as a function expression, to call within another script.
fn as_function(body: &str) -> String {
    format!("() => {{ {body} }}")
}

/// The demo, as the README runs it (but on a free port, with short waves and reports): it
/// finds its instances through its own DNS server, its circuits open and serve stale prices in
/// the failing waves, and Ctrl-C (SIGINT) stops it cleanly.
#[test]
fn the_demo_runs_the_whole_system_and_stops_at_ctrl_c() {
    let mut demo = Command::new(example("demo"))
        .args(["--listen=127.0.0.1:0", "--waves=3,4", "--report-secs=2"])
        .args(["--instances=3", "--rps=30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start the demo");
    let (lines, seen) = std::sync::mpsc::channel::<String>();
    let stdout = BufReader::new(demo.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let mut next_line = |within: Duration| -> Option<String> {
        let line = seen.recv_timeout(within).ok()?;
        output.push(line.clone());
        Some(line)
    };

    // Reports until one shows three hosts streamed and, later or in the same line, the
    // pricing circuits open with stale prices served (the first failing wave starts at 3 s).
    let (mut all_hosts, mut opened) = (false, false);
    for _ in 0..60 {
        let Some(line) = next_line(Duration::from_secs(10)) else {
            break;
        };
        if !line.starts_with('[') {
            continue;
        }
        all_hosts |= line.contains("turbine streams 3 hosts");
        let stale: u64 = field(&line, " stale,");
        opened |= stale > 0 && !line.contains("circuit open on 0/");
        if all_hosts && opened {
            break;
        }
    }
    assert!(
        all_hosts && opened,
        "the demo's output:\n{}",
        output.join("\n")
    );

    let pid = demo.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let mut stopped = false;
    while let Some(line) = next_line(Duration::from_secs(10)) {
        stopped |= line == "demo: stopped";
    }
    let status = demo.wait().unwrap();
    assert!(stopped, "no `demo: stopped` in:\n{}", output.join("\n"));
    assert!(status.success(), "{status}");
}

/// The number just before `after` in a report line (`... 12 stale, ...` -> 12).
fn field(line: &str, after: &str) -> u64 {
    line.split(after)
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
