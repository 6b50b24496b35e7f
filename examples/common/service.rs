//! The example service: a storefront whose product page calls four dependencies, each through
//! a command. Shared by the `axum_service` example, the `demo` and the end-to-end tests.
//!
//! | dependency | command (group) | behaves | protected by |
//! |---|---|---|---|
//! | catalog | `GetProduct` (Catalog) | healthy, a few ms | semaphore, 500 ms timeout; no fallback: a failure is the page's 5xx |
//! | reviews | `GetReviews` (Reviews) | 10-40 ms, 3 % of calls 0.8-1.5 s | 400 ms timeout, fallback: no reviews |
//! | pricing | `GetPrice` (Pricing) | fails in waves (see [`Waves`]) | breaker, last good price (stale-if-error cache), then "price unavailable" |
//! | inventory | `CheckStock` (Inventory) | a blocking client: sleeps its thread 5-20 ms, 2 % of calls 1-2 s | its own pool of 8 threads, 300 ms timeout, fallback: stock unknown |
//!
//! Each instance has a [`Registry`] of its own, so several run in one process (the demo) as
//! they would in several.
//!
//! Routes: `GET /product/{id}`, `/hystrix.stream` (and the config and utilization streams),
//! `/metrics`, `/health`, `/`; with [`Options::control`], `GET /control` and
//! `POST /control/{dependency}/{mode}` (`normal`, `fail`, `slow`, `hang`) to break a
//! dependency by hand, for requests carrying the control token.
#![allow(dead_code, unreachable_pub)]

use std::{
    fmt,
    future::Future,
    pin::Pin,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinHandle};
use tower::{BoxError, Layer, ServiceExt, service_fn, util::BoxCloneSyncService};
use tower_hystrix::{
    BreakerConfig, Command, CommandError, ConfigError, Failure, HystrixStream, PrometheusExporter,
    Registry, ThreadPoolConfig,
    cache::{CacheValue, Stale, StaleCache},
};

/// What a simulated dependency does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Its usual behaviour (latency, occasional spikes).
    Normal,
    /// Every call fails at once.
    Fail,
    /// Every call takes 1.5 s more.
    Slow,
    /// Every call hangs (a blocking client blocks its thread for 5 s).
    Hang,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Normal, Mode::Fail, Mode::Slow, Mode::Hang];

    fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Fail => "fail",
            Mode::Slow => "slow",
            Mode::Hang => "hang",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("{s:?}: not a mode (normal, fail, slow, hang)"))
    }
}

/// The failure schedule of the pricing dependency: healthy, then failing, repeating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waves {
    /// How long it is healthy in each period.
    pub healthy: Duration,
    /// How long it then fails.
    pub failing: Duration,
}

impl Default for Waves {
    fn default() -> Self {
        Self {
            healthy: Duration::from_secs(25),
            failing: Duration::from_secs(15),
        }
    }
}

impl FromStr for Waves {
    type Err = String;

    /// `HEALTHY,FAILING` in seconds (`25,15`).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected HEALTHY,FAILING in seconds, e.g. 25,15");
        let (healthy, failing) = s.split_once(',').ok_or_else(bad)?;
        let secs = |v: &str| v.trim().parse::<u64>().map_err(|_| bad());
        let (healthy, failing) = (secs(healthy)?, secs(failing)?);
        if healthy == 0 || failing == 0 {
            return Err(format!("{s:?}: both durations must be at least 1 s"));
        }
        Ok(Self {
            healthy: Duration::from_secs(healthy),
            failing: Duration::from_secs(failing),
        })
    }
}

impl Waves {
    /// A `--waves` argument: `HEALTHY,FAILING` in seconds, or `off` (`None`).
    pub fn parse_option(s: &str) -> Result<Option<Self>, String> {
        match s {
            "off" => Ok(None),
            s => s.parse().map(Some).map_err(|e| format!("--waves {e}")),
        }
    }
}

/// How an instance is built.
#[derive(Clone, Debug)]
pub struct Options {
    /// Calls go through the commands (`false`: straight to the dependencies, the baseline of
    /// the load benchmark).
    pub commands: bool,
    /// No simulated latency, spikes or blocking (the load benchmark measures the commands).
    pub fast: bool,
    /// The pricing dependency's schedule; `None` keeps it healthy.
    pub waves: Option<Waves>,
    /// Serve `/control` to change a dependency's [`Mode`] by hand, to requests carrying
    /// `Authorization: Bearer <this token>` (others get 401). Off (`None`) by default.
    pub control: Option<String>,
    /// Isolate the inventory client in its thread pool (`false`: a semaphore, as the other
    /// commands; only sound with [`fast`](Self::fast), when the client does not block).
    pub pool: bool,
    /// Clients `/hystrix.stream` serves at once (more get 503).
    pub max_streams: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            commands: true,
            fast: false,
            waves: Some(Waves::default()),
            control: None,
            pool: true,
            max_streams: 50,
        }
    }
}

/// A simulated dependency: its [`Mode`] and how many calls reached it.
#[derive(Debug)]
pub struct Dependency {
    name: &'static str,
    mode: AtomicU8,
    calls: AtomicU64,
    fast: bool,
}

impl Dependency {
    fn new(name: &'static str, fast: bool) -> Arc<Self> {
        Arc::new(Self {
            name,
            mode: AtomicU8::new(0),
            calls: AtomicU64::new(0),
            fast,
        })
    }

    /// The dependency's name (`catalog`, `reviews`, `pricing`, `inventory`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What it does now.
    pub fn mode(&self) -> Mode {
        Mode::ALL[usize::from(self.mode.load(Ordering::Relaxed))]
    }

    /// Changes what it does.
    pub fn set_mode(&self, mode: Mode) {
        let index = Mode::ALL.iter().position(|m| *m == mode).unwrap_or(0);
        self.mode.store(index as u8, Ordering::Relaxed);
    }

    /// Calls that reached it (calls a command refused never do).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// An async call: `normal` ms of latency in the usual case, with `spike` ms
    /// `spike_percent` of the time.
    async fn call(
        &self,
        normal: (u64, u64),
        spike_percent: u8,
        spike: (u64, u64),
    ) -> Result<(), DependencyError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let latency = match self.mode() {
            Mode::Fail => return Err(DependencyError(self.name)),
            Mode::Hang => return std::future::pending().await,
            Mode::Slow => 1500 + pick(normal),
            Mode::Normal if self.fast => return Ok(()),
            Mode::Normal if fastrand::u8(0..100) < spike_percent => pick(spike),
            Mode::Normal => pick(normal),
        };
        tokio::time::sleep(Duration::from_millis(latency)).await;
        Ok(())
    }

    /// A blocking call, as a synchronous client makes: the thread sleeps.
    fn call_blocking(&self) -> Result<(), DependencyError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let latency = match self.mode() {
            Mode::Fail => return Err(DependencyError(self.name)),
            Mode::Hang => 5000,
            Mode::Slow => 1500 + pick((5, 20)),
            Mode::Normal if self.fast => return Ok(()),
            Mode::Normal if fastrand::u8(0..100) < 2 => pick((1000, 2000)),
            Mode::Normal => pick((5, 20)),
        };
        std::thread::sleep(Duration::from_millis(latency));
        Ok(())
    }
}

fn pick((low, high): (u64, u64)) -> u64 {
    fastrand::u64(low..=high)
}

/// A dependency's failure.
#[derive(Debug)]
pub struct DependencyError(&'static str);

impl fmt::Display for DependencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.0)
    }
}

impl std::error::Error for DependencyError {}

/// The four dependencies of an instance.
#[derive(Debug)]
pub struct Dependencies {
    /// Healthy.
    pub catalog: Arc<Dependency>,
    /// Slow now and then.
    pub reviews: Arc<Dependency>,
    /// Fails in waves.
    pub pricing: Arc<Dependency>,
    /// Blocks its threads.
    pub inventory: Arc<Dependency>,
}

impl Dependencies {
    fn new(fast: bool) -> Self {
        Self {
            catalog: Dependency::new("catalog", fast),
            reviews: Dependency::new("reviews", fast),
            pricing: Dependency::new("pricing", fast),
            inventory: Dependency::new("inventory", fast),
        }
    }

    /// The dependency called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Dependency>> {
        self.all().into_iter().find(|d| d.name == name)
    }

    fn all(&self) -> [&Arc<Dependency>; 4] {
        [&self.catalog, &self.reviews, &self.pricing, &self.inventory]
    }

    /// Runs the pricing dependency's schedule until the task is aborted: healthy, failing, and
    /// again.
    pub fn run_waves(self: &Arc<Self>, waves: Waves) -> JoinHandle<()> {
        let deps = self.clone();
        tokio::spawn(async move {
            loop {
                deps.pricing.set_mode(Mode::Normal);
                tokio::time::sleep(waves.healthy).await;
                deps.pricing.set_mode(Mode::Fail);
                tokio::time::sleep(waves.failing).await;
            }
        })
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The dependency, now.
    Fresh,
    /// The stale-if-error cache: the dependency's last good answer.
    Stale,
    /// The fallback.
    Fallback,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Fresh => "fresh",
            Source::Stale => "stale",
            Source::Fallback => "fallback",
        }
    }
}

/// A dependency's answer and where it came from.
#[derive(Clone, Debug)]
pub struct Answer<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Answer<T> {
    fn fresh(value: T) -> Self {
        Self {
            value,
            source: Source::Fresh,
        }
    }

    fn fallback(value: T) -> Self {
        Self {
            value,
            source: Source::Fallback,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> CacheValue for Answer<T> {
    fn mark_stale(&mut self, _: Stale) {
        self.source = Source::Stale;
    }
}

type Client<T> = BoxCloneSyncService<u64, Answer<T>, BoxError>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The clients of the four dependencies, wrapped in commands or not.
#[derive(Clone)]
struct Clients {
    catalog: Client<String>,
    reviews: Client<Vec<u8>>,
    pricing: Client<u64>,
    inventory: Client<Option<u32>>,
}

/// The raw clients: a call goes straight to the simulated dependency.
fn raw_clients(deps: &Dependencies) -> Clients {
    fn client<T, F>(dep: &Arc<Dependency>, call: F) -> Client<T>
    where
        T: Send + 'static,
        F: Fn(Arc<Dependency>, u64) -> BoxFuture<Result<T, DependencyError>>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let dep = dep.clone();
        BoxCloneSyncService::new(service_fn(move |id: u64| {
            let answer = call(dep.clone(), id);
            async move { Ok::<_, BoxError>(Answer::fresh(answer.await?)) }
        }))
    }
    Clients {
        catalog: client(&deps.catalog, |dep, id| {
            Box::pin(async move {
                dep.call((2, 8), 0, (0, 0)).await?;
                Ok(format!("Product {id}"))
            })
        }),
        reviews: client(&deps.reviews, |dep, id| {
            Box::pin(async move {
                dep.call((10, 40), 3, (800, 1500)).await?;
                Ok(vec![(id % 5 + 1) as u8; (id % 4) as usize + 1])
            })
        }),
        pricing: client(&deps.pricing, |dep, id| {
            Box::pin(async move {
                dep.call((3, 10), 0, (0, 0)).await?;
                Ok(1000 + id % 7 * 250)
            })
        }),
        // The blocking client: the work is in the future, so that under a thread pool it
        // blocks one of the pool's threads, not the caller's.
        inventory: client(&deps.inventory, |dep, id| {
            Box::pin(async move {
                dep.call_blocking()?;
                Ok(Some((id % 13) as u32))
            })
        }),
    }
}

/// The same clients, each wrapped in its command.
fn command_clients(
    deps: &Dependencies,
    registry: &Registry,
    pool: bool,
) -> Result<Clients, ConfigError> {
    let raw = raw_clients(deps);
    let catalog = Command::builder("GetProduct")
        .group("Catalog")
        .registry(registry)
        .timeout(Duration::from_millis(500))
        .semaphore(100)
        .build()?;
    let reviews = Command::builder("GetReviews")
        .group("Reviews")
        .registry(registry)
        .timeout(Duration::from_millis(400))
        .semaphore(100)
        .fallback(|(), _: Failure| async { Ok::<_, BoxError>(Answer::fallback(Vec::new())) })
        .build()?;
    let pricing = Command::builder("GetPrice")
        .group("Pricing")
        .registry(registry)
        .timeout(Duration::from_millis(300))
        .semaphore(100)
        .breaker(BreakerConfig {
            request_volume_threshold: 10,
            sleep_window: Duration::from_secs(3),
            ..BreakerConfig::default()
        })
        .cache_key(|id: &u64| Some(id.to_string()))
        .stale_cache(StaleCache::new(10_000, Duration::from_secs(600)))
        .fallback(|(), _: Failure| async { Ok::<_, BoxError>(Answer::fallback(0)) })
        .build()?;
    let inventory = Command::builder("CheckStock")
        .group("Inventory")
        .registry(registry)
        .timeout(Duration::from_millis(300))
        .fallback(|(), _: Failure| async { Ok::<_, BoxError>(Answer::fallback(None)) });
    let inventory = if pool {
        inventory.thread_pool(ThreadPoolConfig {
            core_size: 8,
            max_queue_size: 32,
            queue_size_rejection_threshold: 16,
            ..ThreadPoolConfig::default()
        })
    } else {
        inventory.semaphore(100)
    }
    .build()?;
    fn boxed<T, S>(service: S) -> Client<T>
    where
        S: tower::Service<u64, Response = Answer<T>, Error = CommandError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        BoxCloneSyncService::new(service.map_err(BoxError::from))
    }
    Ok(Clients {
        catalog: boxed(catalog.layer(raw.catalog)),
        reviews: boxed(reviews.layer(raw.reviews)),
        pricing: boxed(pricing.layer(raw.pricing)),
        inventory: boxed(inventory.layer(raw.inventory)),
    })
}

#[derive(Clone)]
struct AppState {
    clients: Clients,
    deps: Arc<Dependencies>,
    /// `Bearer <token>`, the `Authorization` a control request must carry.
    control: Option<Arc<str>>,
}

impl AppState {
    /// Whether `headers` carry the control token.
    fn may_control(&self, headers: &HeaderMap) -> bool {
        let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        matches!((&self.control, given), (Some(token), Some(given)) if token.as_bytes() == given)
    }
}

const UNAUTHORIZED: (StatusCode, &str) = (
    StatusCode::UNAUTHORIZED,
    "control needs Authorization: Bearer <token>\n",
);

/// One instance of the service: its router, its dependencies and its registry.
#[derive(Debug)]
pub struct Instance {
    /// The service's routes, the stream and the metrics.
    pub router: Router,
    /// Its simulated dependencies.
    pub deps: Arc<Dependencies>,
    /// Its commands and pools.
    pub registry: Registry,
    waves: Option<JoinHandle<()>>,
}

impl Instance {
    /// Builds an instance; starts the pricing schedule if [`Options::waves`] says so (call it
    /// within a tokio runtime).
    pub fn new(options: &Options) -> Result<Self, ConfigError> {
        let registry = Registry::new();
        let deps = Arc::new(Dependencies::new(options.fast));
        let clients = if options.commands {
            command_clients(&deps, &registry, options.pool)?
        } else {
            raw_clients(&deps)
        };
        let state = AppState {
            clients,
            deps: deps.clone(),
            control: options
                .control
                .as_ref()
                .map(|token| Arc::from(format!("Bearer {token}"))),
        };
        let mut app = Router::new()
            .route("/", get(index))
            .route("/health", get(|| async { "ok\n" }))
            .route("/product/{id}", get(product));
        if options.control.is_some() {
            app = app
                .route("/control", get(modes))
                .route("/control/{dependency}/{mode}", post(set_mode));
        }
        let metrics = registry.metrics().clone();
        let router = app
            .with_state(state)
            .merge(
                HystrixStream::new()
                    .registry(metrics.clone())
                    .max_connections(options.max_streams)
                    .router(),
            )
            .merge(PrometheusExporter::new(metrics).router());
        let waves = options.waves.map(|w| deps.run_waves(w));
        Ok(Self {
            router,
            deps,
            registry,
            waves,
        })
    }

    /// Serves the instance on `listener` until `shutdown` completes; requests in flight then
    /// have a second to finish (streams never do: they are cut).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
        let server =
            axum::serve(listener, self.router.clone()).with_graceful_shutdown(async move {
                shutdown.await;
                let _ = signalled.send(());
            });
        let grace = async move {
            match on_signal.await {
                Ok(()) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            served = server => served,
            () = grace => Ok(()),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(waves) = &self.waves {
            waves.abort();
        }
    }
}

async fn index() -> &'static str {
    "example storefront: GET /product/{id}, /hystrix.stream, /metrics, /health\n"
}

async fn product(State(state): State<AppState>, Path(id): Path<u64>) -> Response {
    let clients = state.clients;
    let (catalog, reviews, price, stock) = tokio::join!(
        clients.catalog.oneshot(id),
        clients.reviews.oneshot(id),
        clients.pricing.oneshot(id),
        clients.inventory.oneshot(id),
    );
    let name = match catalog {
        Ok(name) => name.value,
        Err(error) => {
            let status = match error.downcast_ref::<CommandError>() {
                Some(e) => e.status_code(),
                None => StatusCode::BAD_GATEWAY,
            };
            return (status, format!("catalog: {error}\n")).into_response();
        }
    };
    // Without commands, a failed call has no fallback: the page degrades here instead.
    fn part<T: Default>(answer: Result<Answer<T>, BoxError>) -> Answer<T> {
        answer.unwrap_or_else(|_| Answer::fallback(T::default()))
    }
    let (reviews, price, stock) = (part(reviews), part(price), part(stock));
    json_response(&json!({
        "id": id,
        "name": name,
        "reviews": reviews.value,
        "reviews_source": reviews.source.as_str(),
        "price_cents": price.value,
        "price_source": price.source.as_str(),
        "stock": stock.value,
        "stock_source": stock.source.as_str(),
    }))
}

fn json_response(value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{value}\n"),
    )
        .into_response()
}

async fn modes(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.may_control(&headers) {
        return UNAUTHORIZED.into_response();
    }
    let all = state.deps.all();
    json_response(&serde_json::Value::Object(
        all.iter()
            .map(|d| {
                (
                    d.name.to_owned(),
                    json!({"mode": d.mode().as_str(), "calls": d.calls()}),
                )
            })
            .collect(),
    ))
}

async fn set_mode(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((dependency, mode)): Path<(String, String)>,
) -> Response {
    if !state.may_control(&headers) {
        return UNAUTHORIZED.into_response();
    }
    let Some(dep) = state.deps.get(&dependency) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no dependency {dependency:?}\n"),
        )
            .into_response();
    };
    match mode.parse::<Mode>() {
        Ok(mode) => {
            dep.set_mode(mode);
            (StatusCode::OK, format!("{dependency}: {mode}\n")).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}
