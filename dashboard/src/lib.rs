//! hystrix-dashboard: every circuit and thread pool of Hystrix metrics streams, live in the
//! browser.
//!
//! - **The UI** (embedded: HTML, CSS and JavaScript, no build step): a start page to enter
//!   streams, and the monitor page, which takes Hystrix's `?stream=` and `?streams=` query
//!   forms (spec §5.1), so links made for the Hystrix Dashboard keep working. It shows what
//!   the Hystrix Dashboard showed per circuit and pool (spec §5.3, §5.4), with correct rates
//!   for Turbine 1.x and 2.x aggregates alike, a filter, a connection indicator per stream with
//!   automatic reconnection, and ten-minute charts of a circuit on click.
//! - **The stream proxy** (`/proxy.stream`, see [`allow`]), for streams that send no CORS
//!   headers. It reaches only allow-listed origins: the Hystrix Dashboard's open proxy was a
//!   server-side request forgery hole (spec §5.2).
//! - **An embedded turbine** (optional): its `/turbine.stream?cluster=`, `/clusters`,
//!   `/health` and `/metrics` are served next to the UI, which reads them directly.
//!
//! ```
//! use hystrix_dashboard::{Dashboard, allow::AllowList};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dashboard = Dashboard::builder()
//!     .allow(AllowList::parse(["127.0.0.1:8080"])?)
//!     .build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // The UI at /, /monitor?stream=..., /proxy.stream?origin=...
//! tokio::spawn(dashboard.serve(listener));
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod allow;
mod assets;
pub mod config;
mod proxy;

use std::{
    fmt, io,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use hystrix_stream::ConnectionCount;
use hystrix_turbine::Turbine;
use serde::Serialize;
use tokio::net::TcpListener;
use url::Url;

use crate::{
    allow::{AllowList, Origin},
    assets::Asset,
    proxy::ProxySettings,
};

pub use self::config::{Config, ConfigError};

/// The dashboard: its UI, its proxy and, optionally, a turbine.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    allow: AllowList,
    turbine: Option<Turbine>,
    proxy: ProxySettings,
    streams: ConnectionCount,
    /// The port the dashboard listens on, once [`Dashboard::serve`] knows it (0 before).
    port: AtomicU16,
}

/// Builds a [`Dashboard`].
#[derive(Debug)]
pub struct Builder {
    allow: AllowList,
    turbine: Option<Turbine>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_streams: usize,
    ca_file: Option<PathBuf>,
}

impl Dashboard {
    /// A builder with the defaults of [`Config`]: an empty allow-list (the proxy reaches
    /// nothing), no turbine.
    pub fn builder() -> Builder {
        let defaults = Config::default();
        Builder {
            allow: AllowList::default(),
            turbine: None,
            connect_timeout: Duration::from_millis(defaults.connect_timeout_ms),
            idle_timeout: Duration::from_millis(defaults.idle_timeout_ms),
            max_streams: defaults.max_streams,
            ca_file: None,
        }
    }

    /// A dashboard as `config` says, starting its turbine (on the current runtime) if it
    /// names one. Everything is checked before anything starts.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let allow = AllowList::parse(&config.allow).map_err(ConfigError)?;
        let turbine = match &config.turbine_config {
            None => None,
            Some(path) => {
                let turbine_config = hystrix_turbine::Config::load(path)
                    .map_err(|e| ConfigError(format!("turbine_config: {e}")))?;
                Some(
                    Turbine::start(&turbine_config)
                        .map_err(|e| ConfigError(format!("turbine_config: {e}")))?,
                )
            }
        };
        let mut builder = Self::builder()
            .allow(allow)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .idle_timeout(Duration::from_millis(config.idle_timeout_ms))
            .max_streams(config.max_streams);
        if let Some(turbine) = turbine {
            builder = builder.turbine(turbine);
        }
        if let Some(ca) = &config.ca_file {
            builder = builder.ca_file(ca.clone());
        }
        builder.build()
    }

    /// The router: the UI (`/`, `/monitor`, and the paths of the Hystrix Dashboard's pages),
    /// `/proxy.stream`, `/dashboard.json` (what the start page offers), and the turbine's
    /// routes when there is one (else `/health`).
    pub fn router(&self) -> Router {
        let page = |asset: Asset| get(move || async move { asset });
        let ui = Router::new()
            .route("/", page(assets::INDEX))
            .route("/index.html", page(assets::INDEX))
            .route("/hystrix", page(assets::INDEX))
            .route("/hystrix-dashboard/", page(assets::INDEX))
            .route("/monitor", page(assets::MONITOR))
            .route("/monitor.html", page(assets::MONITOR))
            .route("/monitor/monitor.html", page(assets::MONITOR))
            .route("/hystrix/monitor", page(assets::MONITOR))
            .route(
                "/hystrix-dashboard/monitor/monitor.html",
                page(assets::MONITOR),
            )
            .route("/assets/dashboard.css", page(assets::STYLE))
            .route("/assets/start.js", page(assets::START_JS))
            .route("/assets/monitor.js", page(assets::MONITOR_JS))
            .route("/favicon.ico", page(assets::FAVICON))
            .route("/assets/favicon.svg", page(assets::FAVICON))
            .route("/proxy.stream", get(proxy::proxy_stream))
            .route("/dashboard.json", get(info))
            .with_state(self.clone());
        match &self.inner.turbine {
            Some(turbine) => ui.merge(turbine.router()),
            None => ui.route("/health", get(|| async { "ok\n" })),
        }
    }

    /// Serves the [router](Self::router) on `listener` until an I/O error.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            self.inner.port.store(addr.port(), Ordering::Relaxed);
        }
        axum::serve(listener, self.router()).await
    }

    /// The embedded turbine, if any.
    pub fn turbine(&self) -> Option<&Turbine> {
        self.inner.turbine.as_ref()
    }

    /// The proxy's allow-list.
    pub fn allow_list(&self) -> &AllowList {
        &self.inner.allow
    }

    /// Streams being proxied now.
    pub fn proxied_streams(&self) -> usize {
        self.inner.streams.open()
    }

    /// Whether `url` is the embedded turbine's `/turbine.stream` on this dashboard's own
    /// loopback port, which the proxy allows.
    fn is_own_turbine(&self, url: &Url) -> bool {
        let port = self.inner.port.load(Ordering::Relaxed);
        self.inner.turbine.is_some()
            && port != 0
            && url.scheme() == "http"
            && url.path() == "/turbine.stream"
            && Origin::of(url).is_some_and(|o| o.is_loopback() && o.port == port)
    }
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("allow", &self.inner.allow)
            .field("turbine", &self.inner.turbine)
            .field("proxied_streams", &self.proxied_streams())
            .finish()
    }
}

impl Builder {
    /// The origins the proxy may reach.
    pub fn allow(mut self, allow: AllowList) -> Self {
        self.allow = allow;
        self
    }

    /// Serves this turbine's routes next to the UI.
    pub fn turbine(mut self, turbine: Turbine) -> Self {
        self.turbine = Some(turbine);
        self
    }

    /// Bounds resolving, connecting and the TLS handshake of a proxied stream (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Closes a proxied stream silent this long, and bounds the wait for its headers
    /// (default 10 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most streams proxied at once; more get 503 (default 100).
    pub fn max_streams(mut self, max: usize) -> Self {
        self.max_streams = max;
        self
    }

    /// Extra CA certificates (PEM) trusted for https streams, besides the system's.
    pub fn ca_file(mut self, path: PathBuf) -> Self {
        self.ca_file = Some(path);
        self
    }

    /// The dashboard; an error if the CA file cannot be read.
    pub fn build(self) -> Result<Dashboard, ConfigError> {
        let tls = hystrix_turbine::tls_client_config(self.ca_file.as_deref())
            .map_err(|e| ConfigError(format!("ca_file: {e}")))?;
        Ok(Dashboard {
            inner: Arc::new(Inner {
                allow: self.allow,
                turbine: self.turbine,
                proxy: ProxySettings {
                    connect_timeout: self.connect_timeout,
                    idle_timeout: self.idle_timeout,
                    max_streams: self.max_streams,
                    tls: Arc::new(tls),
                },
                streams: ConnectionCount::new(),
                port: AtomicU16::new(0),
            }),
        })
    }
}

#[derive(Serialize)]
struct Info {
    /// The embedded turbine's clusters, as stream URLs relative to the dashboard.
    clusters: Vec<ClusterInfo>,
    /// The origins the proxy reaches.
    allow: Vec<String>,
}

#[derive(Serialize)]
struct ClusterInfo {
    name: String,
    stream: String,
    instances: usize,
}

async fn info(State(dashboard): State<Dashboard>) -> Response {
    let clusters = dashboard
        .turbine()
        .map(|t| {
            t.clusters()
                .into_iter()
                .map(|view| ClusterInfo {
                    stream: format!(
                        "/turbine.stream?cluster={}",
                        url::form_urlencoded::byte_serialize(view.name.as_bytes())
                            .collect::<String>()
                    ),
                    instances: view.instances.len(),
                    name: view.name,
                })
                .collect()
        })
        .unwrap_or_default();
    let allow = dashboard
        .allow_list()
        .origins()
        .iter()
        .map(ToString::to_string)
        .collect();
    let body = serde_json::to_string(&Info { clusters, allow }).unwrap_or_default();
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}
