//! `/hystrix.stream` and its siblings as an axum [`Router`].

mod auth;
mod connection;

pub use self::connection::{ConnectionCount, ConnectionSlot};

use std::{
    fmt,
    future::Future,
    io,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{RawQuery, State},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get},
};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, StatusCode,
    header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
        CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE,
    },
};
use tokio::{
    net::{TcpListener, ToSocketAddrs},
    time::Instant,
};

use self::{
    auth::Auth,
    connection::{Connection, Counters, FrameSource, Kind},
};
use crate::MetricsRegistry;

/// The Hystrix metrics stream: `/hystrix.stream`, `/hystrix/utilization.stream` and
/// `/hystrix/config.stream`, served by an axum [`Router`].
///
/// Each stream is Server-Sent Events in Hystrix's exact framing (spec §1): the headers of
/// Hystrix's servlet, `data: {json}\n\n` per command and thread pool at every tick (see
/// [`encode`](crate::encode) for the JSON), and a `ping: \n\n` heart-beat every
/// [`interval`](Self::interval) whether or not there is data, so that proxies, Turbine and
/// the dashboard (10 s read timeouts) never drop an idle stream.
///
/// What it does better than Hystrix's servlet:
///
/// - **One encoding per tick** whatever the number of clients: the tick's bytes are shared by
///   every connection (Hystrix ≤ 1.5.3 polled and serialised per connection).
/// - **`?delay=<ms>` is honoured** per connection, as in Hystrix ≤ 1.5.3 (1.5.4 dropped it so
///   streams could be shared; here they are shared anyway), and clamped to
///   [`min_delay`](Self::min_delay). A delay that is not a number is ignored, as Hystrix did.
/// - **Slow clients skip ticks** instead of queueing them: a body is only polled when its
///   socket can take more, so a client that never reads costs its socket buffers and nothing
///   more, and never slows the others.
/// - **Slots are never leaked**: a connection's slot is freed when its response body is
///   dropped, that is when the server sees the client gone (at the latest when the next
///   heart-beat fails to be written) or shuts down; `HEAD` requests never take one (Hystrix
///   leaked both, issues #1369 and #1430).
/// - Optional CORS and authentication (bearer token or basic), off by default.
///
/// Above [`max_connections`](Self::max_connections) open streams (the three streams share
/// the limit), a request gets `503 Service Unavailable` with the body
/// `MaxConcurrentConnections reached: N`, as from Hystrix.
///
/// Cloning shares the connection count and statistics, so a clone kept aside can report on
/// the routers and servers another clone built.
///
/// # Example
///
/// Serving a registry and reading the first event back:
///
/// ```
/// use std::sync::Arc;
/// use axum::body::Body;
/// use http::Request;
/// use http_body_util::BodyExt;
/// use hystrix_core::{
///     CircuitStatus, CommandKey, CommandMetrics, CommandReport, CommandSettingsReport,
///     CommandSource, MetricsConfig,
/// };
/// use hystrix_stream::{HystrixStream, MetricsRegistry};
/// use tower::ServiceExt;
///
/// struct Plain(CommandMetrics);
/// impl CommandSource for Plain {
///     fn key(&self) -> &CommandKey { self.0.key() }
///     fn report(&self) -> CommandReport {
///         CommandReport {
///             metrics: self.0.snapshot(),
///             circuit: CircuitStatus::Closed,
///             settings: CommandSettingsReport::default(),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = MetricsRegistry::new();
/// let metrics = CommandMetrics::new("GetUser", "Users", "Users", MetricsConfig::default());
/// registry.register_command(Arc::new(Plain(metrics)));
///
/// let stream = HystrixStream::new().registry(registry);
/// let request = Request::get("/hystrix.stream").body(Body::empty()).unwrap();
/// let response = stream.router().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["content-type"], "text/event-stream;charset=UTF-8");
/// assert_eq!(stream.open_connections(), 1);
///
/// let mut body = response.into_body();
/// let event = body.frame().await.unwrap().unwrap().into_data().unwrap();
/// assert!(event.starts_with(b"data: {\"type\":\"HystrixCommand\",\"name\":\"GetUser\""));
/// assert!(event.ends_with(b"}\n\n"));
///
/// drop(body); // the client went away
/// assert_eq!(stream.open_connections(), 0);
/// # }
/// ```
///
/// Mounted beside an application's routes, or served on a port of its own:
///
/// ```no_run
/// use hystrix_stream::HystrixStream;
///
/// # async fn app() -> std::io::Result<()> {
/// let stream = HystrixStream::new(); // the global registry
/// let app = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .merge(stream.router());
/// # let _ = app;
/// // or
/// stream.bind("0.0.0.0:8081").await
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct HystrixStream {
    registry: MetricsRegistry,
    interval: Duration,
    config_interval: Duration,
    min_delay: Duration,
    max_connections: usize,
    allow_origin: Option<HeaderValue>,
    auth: Option<Auth>,
    counters: Arc<Counters>,
}

/// What a [`HystrixStream`]'s connections have done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Streams open now.
    pub open_connections: usize,
    /// Bytes handed to the HTTP server for sending, over every connection so far.
    pub bytes_sent: u64,
    /// Ticks encoded so far (each one shared by every client that took it).
    pub frames_encoded: u64,
}

impl HystrixStream {
    /// The default tick of `/hystrix.stream` and `/hystrix/utilization.stream`, and the
    /// heart-beat period: 500 ms, as Hystrix.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);
    /// The default tick of `/hystrix/config.stream`: 5 s, as Hystrix.
    pub const DEFAULT_CONFIG_INTERVAL: Duration = Duration::from_secs(5);
    /// The default shortest `?delay=`: 100 ms.
    pub const DEFAULT_MIN_DELAY: Duration = Duration::from_millis(100);
    /// The longest tick: a longer interval or `?delay=` is taken as one hour.
    pub const MAX_DELAY: Duration = Duration::from_secs(3600);
    /// The default number of open streams: 50.
    ///
    /// Hystrix's 5 was the stream's most reported problem (users behind proxies or with
    /// refreshing dashboards hit the 503 constantly, issues #75, #1644, #1709). Here a
    /// connection costs its socket and no encoding of its own, and slots cannot leak, so the
    /// limit is a guard against runaway clients rather than a budget.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 50;

    const MIN_PERIOD: Duration = Duration::from_millis(1);

    /// A stream of the [global registry](MetricsRegistry::global), with the defaults.
    pub fn new() -> Self {
        Self {
            registry: MetricsRegistry::global().clone(),
            interval: Self::DEFAULT_INTERVAL,
            config_interval: Self::DEFAULT_CONFIG_INTERVAL,
            min_delay: Self::DEFAULT_MIN_DELAY,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            allow_origin: None,
            auth: None,
            counters: Arc::default(),
        }
    }

    /// Publishes `registry` instead of the global one.
    pub fn registry(mut self, registry: MetricsRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// The tick of `/hystrix.stream` and `/hystrix/utilization.stream` when the client asks
    /// for no `?delay=`, and the period of the `ping: ` heart-beat on every stream. Default
    /// [500 ms](Self::DEFAULT_INTERVAL); taken between 1 ms and [`MAX_DELAY`](Self::MAX_DELAY),
    /// and never under [`min_delay`](Self::min_delay) for data.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.clamp(Self::MIN_PERIOD, Self::MAX_DELAY);
        self
    }

    /// The tick of `/hystrix/config.stream` when the client asks for no `?delay=`. Default
    /// [5 s](Self::DEFAULT_CONFIG_INTERVAL).
    pub fn config_interval(mut self, interval: Duration) -> Self {
        self.config_interval = interval.clamp(Self::MIN_PERIOD, Self::MAX_DELAY);
        self
    }

    /// The shortest tick a client gets: a smaller `?delay=` is raised to it. Default
    /// [100 ms](Self::DEFAULT_MIN_DELAY); at least 1 ms.
    pub fn min_delay(mut self, min_delay: Duration) -> Self {
        self.min_delay = min_delay.clamp(Self::MIN_PERIOD, Self::MAX_DELAY);
        self
    }

    /// The most streams open at once, over the three paths; above it a request gets a 503.
    /// Default [50](Self::DEFAULT_MAX_CONNECTIONS); 0 refuses every stream.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Sends `Access-Control-Allow-Origin: <origin>` with every response (and answers CORS
    /// preflight `OPTIONS` requests), so that a dashboard served from another origin can open
    /// the stream with an `EventSource` directly, without a proxy. Off by default, as Hystrix.
    ///
    /// ```
    /// use http::HeaderValue;
    /// use hystrix_stream::HystrixStream;
    ///
    /// let stream = HystrixStream::new()
    ///     .allow_origin(HeaderValue::from_static("https://dashboard.example.com"));
    /// # let _ = stream;
    /// ```
    pub fn allow_origin(mut self, origin: HeaderValue) -> Self {
        self.allow_origin = Some(origin);
        self
    }

    /// Requires `Authorization: Bearer <token>` (the scheme in any case); other requests get
    /// `401` with a `WWW-Authenticate: Bearer` challenge. The token is compared in constant
    /// time. Replaces [`basic_auth`](Self::basic_auth). Off by default.
    pub fn bearer_token(mut self, token: impl AsRef<str>) -> Self {
        self.auth = Some(Auth::bearer(token.as_ref()));
        self
    }

    /// Requires HTTP basic authentication with `user` and `password` (what the Hystrix
    /// dashboard's *Authorization* field sends); other requests get `401` with a
    /// `WWW-Authenticate: Basic` challenge. Compared in constant time. Replaces
    /// [`bearer_token`](Self::bearer_token). Off by default.
    pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        self.auth = Some(Auth::basic(user.as_ref(), password.as_ref()));
        self
    }

    /// Streams open now, over every router built from this stream or its clones.
    pub fn open_connections(&self) -> usize {
        self.counters.open.open()
    }

    /// What the connections have done so far.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            open_connections: self.open_connections(),
            bytes_sent: self.counters.bytes_sent.load(Ordering::Relaxed),
            frames_encoded: self.counters.frames_encoded.load(Ordering::Relaxed),
        }
    }

    /// The router serving `/hystrix.stream`, `/hystrix/utilization.stream` and
    /// `/hystrix/config.stream` (`GET` and `HEAD`; `OPTIONS` too with
    /// [`allow_origin`](Self::allow_origin)). Merge it into an application's router, or serve
    /// it alone.
    ///
    /// Every router has its own frame cache; routers built from one stream share its
    /// connection limit and statistics.
    pub fn router(&self) -> Router {
        let source = |kind| {
            Arc::new(FrameSource::new(
                kind,
                self.registry.clone(),
                self.min_delay,
                self.counters.clone(),
            ))
        };
        let shared = Arc::new(Shared {
            metrics: source(Kind::Metrics),
            utilization: source(Kind::Utilization),
            config: source(Kind::Config),
            interval: self.interval,
            config_interval: self.config_interval,
            min_delay: self.min_delay,
            max_connections: self.max_connections,
            allow_origin: self.allow_origin.clone(),
            auth: self.auth.clone(),
            counters: self.counters.clone(),
            epoch: Instant::now(),
        });
        let cors = self.allow_origin.is_some();
        Router::new()
            .route("/hystrix.stream", route(Kind::Metrics, cors))
            .route(
                "/hystrix/utilization.stream",
                route(Kind::Utilization, cors),
            )
            .route("/hystrix/config.stream", route(Kind::Config, cors))
            .with_state(shared)
    }

    /// Serves the [router](Self::router) alone on `listener`, until an I/O error.
    ///
    /// ```no_run
    /// use hystrix_stream::HystrixStream;
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let stream = HystrixStream::new();
    /// tokio::spawn(stream.serve(listener));
    /// println!("http://{addr}/hystrix.stream, {} clients", stream.open_connections());
    /// # Ok(())
    /// # }
    /// ```
    pub fn serve(
        &self,
        listener: TcpListener,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static {
        let router = self.router();
        async move { axum::serve(listener, router).await }
    }

    /// Binds `addr` and serves the [router](Self::router) alone on it, until an I/O error.
    pub fn bind<A>(&self, addr: A) -> impl Future<Output = io::Result<()>> + Send + 'static
    where
        A: ToSocketAddrs + Send + 'static,
    {
        let router = self.router();
        async move {
            let listener = TcpListener::bind(addr).await?;
            axum::serve(listener, router).await
        }
    }
}

impl Default for HystrixStream {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HystrixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HystrixStream")
            .field("registry", &self.registry)
            .field("interval", &self.interval)
            .field("config_interval", &self.config_interval)
            .field("min_delay", &self.min_delay)
            .field("max_connections", &self.max_connections)
            .field("allow_origin", &self.allow_origin)
            .field("auth", &self.auth)
            .field("stats", &self.stats())
            .finish()
    }
}

/// `GET` (and so `HEAD`) of one stream, and `OPTIONS` when CORS is on.
fn route(kind: Kind, cors: bool) -> MethodRouter<Arc<Shared>> {
    let stream = get(
        move |State(shared): State<Arc<Shared>>,
              method: Method,
              RawQuery(query): RawQuery,
              headers: HeaderMap| async move {
            shared.respond(kind, &method, query.as_deref(), &headers)
        },
    );
    if cors {
        stream.options(|State(shared): State<Arc<Shared>>| async move { shared.preflight() })
    } else {
        stream
    }
}

// ===== impl Shared =====

/// What a router's handlers share.
#[derive(Debug)]
struct Shared {
    metrics: Arc<FrameSource>,
    utilization: Arc<FrameSource>,
    config: Arc<FrameSource>,
    interval: Duration,
    config_interval: Duration,
    min_delay: Duration,
    max_connections: usize,
    allow_origin: Option<HeaderValue>,
    auth: Option<Auth>,
    counters: Arc<Counters>,
    /// The instant every connection's ticks are counted from.
    epoch: Instant,
}

const CONTENT_TYPE_SSE: HeaderValue = HeaderValue::from_static("text/event-stream;charset=UTF-8");
const NO_CACHE: HeaderValue =
    HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate");

/// The headers of a Hystrix event stream (spec §1.2): `Content-Type:
/// text/event-stream;charset=UTF-8`, `Cache-Control: no-cache, no-store, max-age=0,
/// must-revalidate` and `Pragma: no-cache`, as Hystrix's servlet and Turbine send them.
pub fn sse_headers() -> [(HeaderName, HeaderValue); 3] {
    [
        (CONTENT_TYPE, CONTENT_TYPE_SSE),
        (CACHE_CONTROL, NO_CACHE),
        (PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

impl Shared {
    fn respond(
        &self,
        kind: Kind,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        let mut response = self.open(kind, method, query, headers);
        if let Some(origin) = &self.allow_origin {
            response
                .headers_mut()
                .insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        response
    }

    fn open(
        &self,
        kind: Kind,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        if let Some(auth) = &self.auth {
            if !auth.accepts(headers) {
                tracing::debug!("hystrix stream: request without valid credentials refused");
                return (
                    StatusCode::UNAUTHORIZED,
                    [(WWW_AUTHENTICATE, auth.challenge())],
                    "this stream requires authentication\n",
                )
                    .into_response();
            }
        }
        let sse_headers = sse_headers();
        if method == Method::HEAD {
            // What a GET would get, without taking a slot.
            return (StatusCode::OK, sse_headers).into_response();
        }
        let Some(slot) = self.counters.open.try_acquire(self.max_connections) else {
            tracing::debug!(
                max = self.max_connections,
                "hystrix stream: connection refused"
            );
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("MaxConcurrentConnections reached: {}", self.max_connections),
            )
                .into_response();
        };
        let (source, default_delay) = match kind {
            Kind::Metrics => (&self.metrics, self.interval),
            Kind::Utilization => (&self.utilization, self.interval),
            Kind::Config => (&self.config, self.config_interval),
        };
        let delay = requested_delay(query)
            .unwrap_or(default_delay)
            .clamp(self.min_delay, HystrixStream::MAX_DELAY);
        let connection = Connection::new(
            source.clone(),
            slot,
            self.counters.clone(),
            self.epoch,
            delay,
            self.interval,
        );
        (
            StatusCode::OK,
            sse_headers,
            Body::from_stream(connection.into_stream()),
        )
            .into_response()
    }

    fn preflight(&self) -> Response {
        let mut response = (
            StatusCode::NO_CONTENT,
            [
                (
                    ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                ),
                (
                    ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization"),
                ),
            ],
        )
            .into_response();
        if let Some(origin) = &self.allow_origin {
            response
                .headers_mut()
                .insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        response
    }
}

/// The first numeric `delay` of a query string, in ms (negative as 0); `None` when there is
/// none, as Hystrix ignored a delay that is not a number.
fn requested_delay(query: Option<&str>) -> Option<Duration> {
    query?
        .split('&')
        .filter_map(|pair| pair.strip_prefix("delay="))
        .find_map(|v| v.trim().parse::<i64>().ok())
        .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_query() {
        let ms = |q: &str| requested_delay(Some(q)).map(|d| d.as_millis());
        assert_eq!(ms("delay=250"), Some(250));
        assert_eq!(ms("cluster=x&delay=2000"), Some(2000));
        assert_eq!(ms("delay=-5"), Some(0));
        assert_eq!(ms("delay=abc"), None);
        assert_eq!(ms("delay=abc&delay=300"), Some(300));
        assert_eq!(ms("delay="), None);
        assert_eq!(ms("delay=99999999999999999999999"), None);
        assert_eq!(ms("nodelay=5"), None);
        assert_eq!(ms(""), None);
        assert_eq!(requested_delay(None), None);
    }
}
