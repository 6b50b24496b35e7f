//! The turbine's HTTP side: `/turbine.stream`, `/clusters`, `/health` and `/metrics`.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    fmt, io,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Query, State},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use futures_util::{Stream, stream};
use http::{
    HeaderValue, StatusCode,
    header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE},
};
use hystrix_stream::{ConnectionCount, ConnectionSlot};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::{
    net::TcpListener,
    sync::watch,
    time::{Instant, MissedTickBehavior},
};

use crate::{
    cluster::{ClusterHandle, ClusterSpec, ClusterView},
    config::{Config, ConfigError},
    upstream::{UpstreamSettings, tls_client_config},
};

/// The heart-beat of `/turbine.stream`: an SSE comment, as Turbine 1.x.
const PING: &[u8] = b": ping\n\n";
/// How often it is sent: at least every 3 s (spec §4.2, §7 item 8).
const PING_EVERY: Duration = Duration::from_secs(3);
/// The shortest `?delay=`.
const MIN_DELAY: Duration = Duration::from_millis(100);

/// A running turbine: its clusters, and the router that serves them.
///
/// ```
/// use hystrix_turbine::{Config, Turbine};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = Config::from_toml(
///     r#"
///     [clusters.default]
///     instances = ["127.0.0.1:1"]
///     "#,
///     "inline",
/// )
/// .unwrap();
/// let turbine = Turbine::start(&config).unwrap();
/// let app = turbine.router(); // /turbine.stream, /clusters, /health, /metrics
/// # let _ = app;
/// assert_eq!(turbine.clusters()[0].name, "default");
/// # }
/// ```
#[derive(Clone)]
pub struct Turbine {
    inner: Arc<Inner>,
}

struct Inner {
    clusters: BTreeMap<String, ClusterHandle>,
    allow_origin: Option<HeaderValue>,
    max_connections: usize,
    open: ConnectionCount,
    prometheus: Mutex<(PrometheusRecorder, PrometheusHandle)>,
}

impl Turbine {
    /// Checks `config` and starts every cluster on the current tokio runtime: discovery,
    /// one reader per instance, the aggregate. The clusters stop when the last clone of the
    /// turbine (and of its routers) is dropped.
    pub fn start(config: &Config) -> Result<Self, ConfigError> {
        let plans = config.plan()?;
        let mut clusters = BTreeMap::new();
        for plan in plans {
            let tls = if plan.needs_tls {
                Some(Arc::new(
                    tls_client_config(plan.ca_file.as_deref())
                        .map_err(|e| ConfigError(format!("[clusters.{}]: TLS: {e}", plan.name)))?,
                ))
            } else {
                None
            };
            let upstream = Arc::new(UpstreamSettings {
                path: plan.path,
                https: plan.https,
                authorization: plan.authorization,
                tls,
                connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                idle_timeout: Duration::from_millis(config.idle_timeout_ms),
                max_line: config.max_line_bytes,
            });
            let handle = ClusterHandle::spawn(ClusterSpec {
                name: plan.name.clone(),
                discovery: plan.discovery,
                source: plan.source,
                mode: plan.mode,
                upstream,
                interval: Duration::from_millis(config.interval_ms),
                stale_after: Duration::from_millis(config.stale_after_ms),
                max_keys: config.max_keys_per_cluster,
            });
            clusters.insert(plan.name, handle);
        }
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Ok(Self {
            inner: Arc::new(Inner {
                clusters,
                allow_origin: config
                    .allow_origin
                    .as_deref()
                    .and_then(|o| HeaderValue::from_str(o).ok()),
                max_connections: config.max_connections,
                open: ConnectionCount::new(),
                prometheus: Mutex::new((recorder, handle)),
            }),
        })
    }

    /// The router: `/turbine.stream?cluster=NAME&delay=MS`, `/clusters`, `/health`,
    /// `/metrics`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/turbine.stream", get(turbine_stream))
            .route("/clusters", get(clusters))
            .route("/health", get(health))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// Serves the [router](Self::router) on `listener` until an I/O error.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Every cluster's state as of its last tick.
    pub fn clusters(&self) -> Vec<ClusterView> {
        self.inner
            .clusters
            .values()
            .map(ClusterHandle::view)
            .collect()
    }

    /// `/turbine.stream` clients connected now.
    pub fn open_connections(&self) -> usize {
        self.inner.open.open()
    }

    fn with_cors(&self, mut response: Response) -> Response {
        if let Some(origin) = &self.inner.allow_origin {
            response
                .headers_mut()
                .insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        response
    }
}

impl fmt::Debug for Turbine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turbine")
            .field("clusters", &self.inner.clusters.keys().collect::<Vec<_>>())
            .field("open_connections", &self.open_connections())
            .finish()
    }
}

async fn turbine_stream(
    State(turbine): State<Turbine>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let name = query.get("cluster").map_or("default", String::as_str);
    let response = match turbine.inner.clusters.get(name) {
        None => (
            StatusCode::NOT_FOUND,
            format!("Cluster not found: {name}\n"),
        )
            .into_response(),
        Some(cluster) => match turbine
            .inner
            .open
            .try_acquire(turbine.inner.max_connections)
        {
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "MaxConcurrentConnections reached: {}",
                    turbine.inner.max_connections
                ),
            )
                .into_response(),
            Some(slot) => {
                let delay = query
                    .get("delay")
                    .and_then(|d| d.trim().parse::<u64>().ok())
                    .map(|ms| Duration::from_millis(ms).max(MIN_DELAY));
                let body = Body::from_stream(connection(cluster.frames.clone(), delay, slot));
                (StatusCode::OK, hystrix_stream::sse_headers(), body).into_response()
            }
        },
    };
    turbine.with_cors(response)
}

/// One `/turbine.stream` client: the cluster's frame at once and at each tick (no more often
/// than `delay`), a ping every 3 s. A client that does not read is not polled, and misses
/// frames rather than queueing them.
fn connection(
    frames: watch::Receiver<Bytes>,
    delay: Option<Duration>,
    slot: ConnectionSlot,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let state = (frames, ping, None::<Instant>, true, slot);
    stream::unfold(
        state,
        move |(mut frames, mut ping, mut last, mut first, slot)| async move {
            loop {
                let bytes = if std::mem::take(&mut first) {
                    frames.borrow_and_update().clone()
                } else {
                    tokio::select! {
                        changed = frames.changed() => {
                            changed.ok()?;
                            let now = Instant::now();
                            if delay.zip(last).is_some_and(|(d, at)| now < at + d) {
                                continue;
                            }
                            last = Some(now);
                            frames.borrow_and_update().clone()
                        }
                        _ = ping.tick() => Bytes::from_static(PING),
                    }
                };
                if !bytes.is_empty() {
                    return Some((Ok(bytes), (frames, ping, last, first, slot)));
                }
            }
        },
    )
}

async fn clusters(State(turbine): State<Turbine>) -> Response {
    #[derive(serde::Serialize)]
    struct Clusters {
        clusters: Vec<ClusterView>,
    }
    let body = Clusters {
        clusters: turbine.clusters(),
    };
    let response = (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        serde_json::to_string(&body).unwrap_or_default(),
    )
        .into_response();
    turbine.with_cors(response)
}

async fn health() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        "{\"status\":\"ok\"}",
    )
        .into_response()
}

async fn metrics(State(turbine): State<Turbine>) -> Response {
    let views = turbine.clusters();
    let open = turbine.open_connections();
    let text = {
        let guard = turbine
            .inner
            .prometheus
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (recorder, handle) = &*guard;
        metrics::with_local_recorder(recorder, || publish(&views, open));
        handle.render()
    };
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(hystrix_stream::prometheus::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

/// What each of the turbine's own metrics is.
const DESCRIPTIONS: &[(&str, &str)] = &[
    ("turbine_stream_clients", "Open /turbine.stream clients."),
    (
        "turbine_keys",
        "(type, name) keys some host of the cluster reports.",
    ),
    (
        "turbine_keys_dropped_total",
        "Messages dropped because the cluster had max_keys_per_cluster keys.",
    ),
    (
        "turbine_instances",
        "Instances by state: connected, retrying, or stale (data no longer counted).",
    ),
    (
        "turbine_messages_total",
        "Messages read from the cluster's instances.",
    ),
    (
        "turbine_parse_errors_total",
        "Lines from the cluster's instances refused as invalid.",
    ),
    (
        "turbine_connects_total",
        "Streams opened to the cluster's instances.",
    ),
    (
        "turbine_connection_failures_total",
        "Connections to the cluster's instances that failed or ended.",
    ),
    (
        "turbine_discovery_ok",
        "1 when the cluster's last discovery look-up worked, else 0.",
    ),
];

/// The turbine's own metrics, from the clusters' views.
fn publish(views: &[ClusterView], open: usize) {
    for (name, help) in DESCRIPTIONS {
        if name.ends_with("_total") {
            metrics::describe_counter!(*name, *help);
        } else {
            metrics::describe_gauge!(*name, *help);
        }
    }
    metrics::gauge!("turbine_stream_clients").set(open as f64);
    for view in views {
        let cluster = view.name.clone();
        metrics::gauge!("turbine_keys", "cluster" => cluster.clone()).set(view.keys as f64);
        metrics::counter!("turbine_keys_dropped_total", "cluster" => cluster.clone())
            .absolute(view.keys_dropped);
        for state in ["connected", "retrying", "stale"] {
            let n = view.instances.iter().filter(|i| i.state == state).count();
            metrics::gauge!("turbine_instances", "cluster" => cluster.clone(), "state" => state)
                .set(n as f64);
        }
        let totals = view.totals;
        for (name, value) in [
            ("turbine_messages_total", totals.messages),
            ("turbine_parse_errors_total", totals.parse_errors),
            ("turbine_connects_total", totals.connects),
            ("turbine_connection_failures_total", totals.failures),
        ] {
            metrics::counter!(name, "cluster" => cluster.clone()).absolute(value);
        }
        metrics::gauge!("turbine_discovery_ok", "cluster" => cluster).set(
            if view.discovery.health == "ok" {
                1.0
            } else {
                0.0
            },
        );
    }
}
