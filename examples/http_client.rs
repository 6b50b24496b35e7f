//! An HTTP client wrapped in a command, with a stale-if-error cache in front of its fallback.
//!
//! The example starts its own upstream, a quote server on 127.0.0.1 (any free port), and
//! calls it through hyper's client wrapped as the command `GetQuote`: 5xx answers and transport
//! errors are failures (`HttpClassifier`), calls time out after 250 ms, and every good answer is
//! kept in a `StaleCache` under the request's URI. The upstream answers for the first 30% of
//! the run, then answers 500 for 20%, then hangs for 20% (past the timeout), then recovers.
//!
//! Each call prints what the caller got:
//!
//! - `fresh`: the upstream's answer;
//! - `stale`: the last good answer for that URI, served by the cache when the call failed
//!   (marked with the `x-hystrix-stale` header, its age in seconds);
//! - `fallback`: nothing was cached for that URI (the symbol joined the watchlist during the
//!   outage), so the fallback answered with yesterday's closing price;
//! - `error`: nothing cached and the fallback had nothing either, with the error's kind.
//!
//! The circuit opens during the outage (half of the last 2 s of requests failed), after which
//! the upstream is not even called while the cache and the fallback keep answering, and closes
//! once a trial succeeds after the upstream recovers. A summary of the counts ends the run.
//!
//! ```text
//! cargo run --example http_client                 # 10 seconds
//! cargo run --example http_client -- --seconds 20
//! ```

#[path = "common/cli.rs"]
mod cli;

use clap::Parser as _;

use std::{
    collections::BTreeMap,
    error::Error,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{Path, State},
    routing::get,
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_hystrix::{
    BoxError, BreakerConfig, Command, ErrorKind, Failure, FailureKind, HttpClassifier, Registry,
    State as CircuitState,
    breaker::HealthWindow,
    cache::{STALE_HEADER, StaleCache},
    core::RollingWindow,
};

/// A request for a quote. The legacy client sends any body type; these have none.
type QuoteRequest = Request<Empty<Bytes>>;

/// The header the fallback's answers carry, so that the caller can tell them apart.
const SOURCE_HEADER: HeaderName = HeaderName::from_static("x-quote-source");

/// What the upstream does at a given moment of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upstream {
    Healthy,
    /// Answers 500 Internal Server Error.
    Failing,
    /// Accepts the request and never answers in time.
    Hanging,
}

impl Upstream {
    fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Failing => "500s",
            Self::Hanging => "hanging",
        }
    }
}

/// The run's timeline, as fractions of its length.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    length: Duration,
}

impl Schedule {
    fn fraction(&self) -> f64 {
        self.start.elapsed().as_secs_f64() / self.length.as_secs_f64()
    }

    fn upstream(&self) -> Upstream {
        match self.fraction() {
            f if f < 0.3 => Upstream::Healthy,
            f if f < 0.5 => Upstream::Failing,
            f if f < 0.7 => Upstream::Hanging,
            _ => Upstream::Healthy,
        }
    }

    /// When the symbols no call has fetched yet join the watchlist: during the outage.
    fn watchlist_grows(&self) -> bool {
        self.fraction() >= 0.4
    }

    fn secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// The upstream: a quote server whose prices move a cent with every quote it serves.
#[derive(Clone)]
struct QuoteServer {
    schedule: Schedule,
    served: Arc<AtomicU64>,
}

async fn quote(
    State(server): State<QuoteServer>,
    Path(symbol): Path<String>,
) -> (StatusCode, String) {
    let base_cents = match symbol.as_str() {
        "AAPL" => 18_700,
        "MSFT" => 41_100,
        "NVDA" => 13_100,
        "ACME" => 1_200,
        _ => return (StatusCode::NOT_FOUND, format!("no such symbol: {symbol}")),
    };
    match server.schedule.upstream() {
        Upstream::Healthy => {
            let n = server.served.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::OK,
                format!("{symbol} {}", dollars(base_cents + n)),
            )
        }
        Upstream::Failing => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "quote feed unavailable".into(),
        ),
        Upstream::Hanging => {
            sleep(Duration::from_secs(30)).await;
            (StatusCode::OK, format!("{symbol} (too late)"))
        }
    }
}

fn dollars(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The symbol a quote request is for: the last segment of its path.
fn symbol_of(uri: &Uri) -> String {
    uri.path().rsplit('/').next().unwrap_or_default().to_owned()
}

/// The fallback: yesterday's closing price, known for some symbols only. For the others it
/// fails, and the caller gets the command's error.
async fn yesterdays_close(symbol: String, failure: Failure) -> Result<Response<Bytes>, BoxError> {
    let closes = BTreeMap::from([("AAPL", 18_650), ("MSFT", 40_980), ("NVDA", 13_020)]);
    let Some(&cents) = closes.get(symbol.as_str()) else {
        return Err(format!("no closing price for {symbol} either").into());
    };
    let body = format!(
        "{symbol} {}, yesterday's close (the call {})",
        dollars(cents),
        match failure.kind() {
            FailureKind::ShortCircuited => "was short-circuited",
            FailureKind::TimedOut => "timed out",
            FailureKind::Failed => "failed",
            _ => "was rejected",
        }
    );
    let mut res = Response::new(Bytes::from(body));
    res.headers_mut()
        .insert(SOURCE_HEADER, HeaderValue::from_static("fallback"));
    Ok(res)
}

#[derive(Default)]
struct Counts {
    fresh: u64,
    stale: u64,
    fallback: u64,
    errors: BTreeMap<&'static str, u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let seconds = cli::Seconds::parse().seconds.unwrap_or(10);
    cli::log_warnings();

    let schedule = Schedule {
        start: Instant::now(),
        length: Duration::from_secs(seconds),
    };

    // The upstream.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/quotes/{symbol}", get(quote))
        .with_state(QuoteServer {
            schedule,
            served: Arc::default(),
        });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("http_client: the upstream stopped: {e}");
        }
    });

    // The client. hyper's client answers with a streaming body (`Incoming`), which cannot be
    // cloned into the stale cache (a cached response must be `Clone`): the wrapped service
    // collects each body into `Bytes` first, within the command's timeout.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let upstream = service_fn(move |req: QuoteRequest| {
        let client = client.clone();
        async move {
            let res = client.request(req).await?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, BoxError>(Response::from_parts(parts, body))
        }
    });

    // An explicit registry, so that nothing depends on the process's global one.
    let registry = Registry::new();
    let cache = StaleCache::new(1_000, Duration::from_secs(600));
    let quotes = Command::builder("GetQuote")
        .group("Quotes")
        .classifier(HttpClassifier) // 5xx and transport errors fail, 4xx are bad requests
        .timeout(Duration::from_millis(250))
        // Hystrix's 50% of errors, but over the last 2 s (Hystrix: 10 s) and 10 requests
        // (Hystrix: 20), with 1 s sleep windows (Hystrix: 5 s), so that this short run shows
        // the circuit open and close.
        .breaker(BreakerConfig {
            request_volume_threshold: 10,
            window: HealthWindow::Time(RollingWindow::new(Duration::from_secs(2), 10)?),
            sleep_window: Duration::from_secs(1),
            ..BreakerConfig::default()
        })
        .cache_key(|req: &QuoteRequest| Some(req.uri().to_string()))
        .stale_cache(cache.clone())
        .request_view(|req: &QuoteRequest| symbol_of(req.uri()))
        .fallback(yesterdays_close)
        .registry(&registry)
        .build()?;
    let circuit = quotes.command().circuit().clone();
    let mut client = quotes.layer(upstream);

    let opened = Arc::new(AtomicU64::new(0));
    let mut transitions = circuit.subscribe();
    tokio::spawn({
        let opened = opened.clone();
        async move {
            while let Ok(t) = transitions.recv().await {
                if t.to == CircuitState::Open && t.from == CircuitState::Closed {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                println!(
                    "{:>6.2}s  circuit {} -> {} ({:?})",
                    schedule.secs(),
                    t.from,
                    t.to,
                    t.reason
                );
            }
        }
    });

    println!(
        "Quotes from http://{addr} for {seconds} s: the upstream answers, fails with 500s, hangs, then recovers."
    );
    let mut watchlist = vec!["AAPL", "MSFT"];
    let mut counts = Counts::default();
    let mut tick = interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for n in 0.. {
        tick.tick().await;
        if schedule.start.elapsed() >= schedule.length {
            break;
        }
        if watchlist.len() == 2 && schedule.watchlist_grows() {
            watchlist.extend(["NVDA", "ACME"]);
            println!(
                "{:>6.2}s  NVDA and ACME join the watchlist: never fetched, nothing cached for them",
                schedule.secs()
            );
        }
        let symbol = watchlist[n % watchlist.len()];
        let upstream_was = schedule.upstream();
        let req = Request::get(format!("http://{addr}/quotes/{symbol}")).body(Empty::new())?;
        let result = client.ready().await?.call(req).await;
        let (outcome, detail) = match result {
            Ok(res) if res.headers().contains_key(STALE_HEADER) => {
                counts.stale += 1;
                let age = res.headers()[STALE_HEADER].to_str().unwrap_or("?");
                let body = String::from_utf8_lossy(res.body());
                ("stale", format!("{body} (cached {age} s ago)"))
            }
            Ok(res) if res.headers().contains_key(SOURCE_HEADER) => {
                counts.fallback += 1;
                ("fallback", String::from_utf8_lossy(res.body()).into_owned())
            }
            Ok(res) => {
                counts.fresh += 1;
                let body = String::from_utf8_lossy(res.body());
                ("fresh", format!("{body} ({})", res.status()))
            }
            Err(e) => {
                let kind = match e.kind() {
                    ErrorKind::ShortCircuited => "short-circuited",
                    ErrorKind::TimedOut => "timed out",
                    ErrorKind::Failed => "failed",
                    ErrorKind::SemaphoreRejected | ErrorKind::ThreadPoolRejected => "rejected",
                    _ => "other",
                };
                *counts.errors.entry(kind).or_default() += 1;
                ("error", format!("{kind}: {e}"))
            }
        };
        println!(
            "{:>6.2}s  upstream {:<8} circuit {:<9} {symbol:<5} {outcome:<8} {detail}",
            schedule.secs(),
            upstream_was.as_str(),
            circuit.state().as_str(),
        );
    }

    let errors: u64 = counts.errors.values().sum();
    let kinds: Vec<String> = counts
        .errors
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!(
        "summary: {} fresh, {} stale, {} fallback, {errors} errors ({}); the stale cache served {}; the circuit tripped {} time(s)",
        counts.fresh,
        counts.stale,
        counts.fallback,
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        },
        cache.served().0,
        opened.load(Ordering::Relaxed),
    );
    Ok(())
}
