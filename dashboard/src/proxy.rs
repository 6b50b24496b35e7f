//! `/proxy.stream`: a stream proxy for metrics streams that send no CORS headers, which
//! reaches only allow-listed origins.
//!
//! Parameters, as the Hystrix Dashboard's `proxy.stream` (spec §5.2): `origin` (the stream's
//! URL, `http://` assumed when it has no scheme), `authorization` (sent upstream as the
//! `Authorization` header), and every other parameter appended to the origin's query (the
//! Hystrix page did not encode the origin, so a turbine's `?cluster=` arrives as a parameter of
//! its own). Unlike Hystrix's:
//!
//! - only the [allow-list](crate::allow) is reached (403 otherwise), and never a link-local,
//!   unspecified, broadcast or multicast address, whatever a host name resolves to;
//! - redirects are not followed: a 3xx, like any answer but 200, is a 502 naming it;
//! - connecting (resolution, TCP, TLS) is bounded by the connect timeout, the answer's headers
//!   and every later silence by the idle timeout (10 s, as Hystrix's read timeout);
//! - the number of proxied streams is capped (503 above it);
//! - the request's own headers (cookies included) are never forwarded.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    body::Body,
    extract::State,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::stream;
use http::{
    HeaderValue, Request, StatusCode, Uri,
    header::{ACCEPT, AUTHORIZATION, HOST, LOCATION, USER_AGENT},
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hystrix_stream::{ConnectionSlot, sse_headers};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::{Instant, timeout, timeout_at},
};
use tokio_rustls::{TlsConnector, rustls::pki_types::ServerName};
use url::{Host, Url};

use crate::{
    Dashboard,
    allow::{Refused, parse_target, refused_ip},
};

/// What the proxy answers instead of a stream.
#[derive(Debug)]
pub(crate) enum ProxyError {
    Refused(Refused),
    MissingOrigin,
    TooMany(usize),
    Resolve(String),
    Connect(String),
    Timeout(&'static str, Duration),
    Upstream(String),
}

impl ProxyError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Refused(Refused::Invalid(_)) | Self::MissingOrigin => StatusCode::BAD_REQUEST,
            Self::Refused(Refused::Forbidden(_)) => StatusCode::FORBIDDEN,
            Self::TooMany(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Resolve(_) | Self::Connect(_) | Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout(..) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// The message of the answer (and of the log line).
impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "{why}"),
            Self::MissingOrigin => f.write_str(
                "Required parameter 'origin' missing. Example: \
                 http://127.0.0.1:8080/hystrix.stream",
            ),
            Self::TooMany(max) => {
                write!(f, "MaxConcurrentConnections reached: {max} proxied streams")
            }
            Self::Resolve(why) | Self::Connect(why) | Self::Upstream(why) => f.write_str(why),
            Self::Timeout(what, after) => {
                write!(f, "{what}: no answer within {} ms", after.as_millis())
            }
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        (self.status(), format!("{self}\n")).into_response()
    }
}

/// The proxy's settings, shared by every request.
pub(crate) struct ProxySettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_streams: usize,
    pub(crate) tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

/// A checked request: where to connect, what to ask.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) url: Url,
    pub(crate) authorization: Option<HeaderValue>,
}

/// Reads the proxy's parameters from a raw query string.
pub(crate) fn target(dashboard: &Dashboard, query: &str) -> Result<Target, ProxyError> {
    let mut origin = None;
    let mut authorization = None;
    let mut extra = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "origin" if origin.is_none() => origin = Some(value.into_owned()),
            "authorization" => {
                if !value.is_empty() {
                    authorization = Some(HeaderValue::from_str(&value).map_err(|_| {
                        ProxyError::Refused(Refused::Invalid(
                            "the authorization value is not a valid header value".into(),
                        ))
                    })?);
                }
            }
            _ => extra.push((key.into_owned(), value.into_owned())),
        }
    }
    let origin = origin.ok_or(ProxyError::MissingOrigin)?;
    let mut url = parse_target(&origin).map_err(ProxyError::Refused)?;
    if let Err(refused) = dashboard.inner.allow.allows(&url) {
        if !dashboard.is_own_turbine(&url) {
            return Err(ProxyError::Refused(refused));
        }
    }
    if !extra.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in &extra {
            pairs.append_pair(key, value);
        }
    }
    Ok(Target { url, authorization })
}

/// `GET /proxy.stream?origin=URL[&authorization=VALUE][&...]`.
pub(crate) async fn proxy_stream(State(dashboard): State<Dashboard>, uri: Uri) -> Response {
    match open(&dashboard, uri.query().unwrap_or("")).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "proxy.stream refused");
            error.into_response()
        }
    }
}

async fn open(dashboard: &Dashboard, query: &str) -> Result<Response, ProxyError> {
    let target = target(dashboard, query)?;
    let settings = &dashboard.inner.proxy;
    let slot = dashboard
        .inner
        .streams
        .try_acquire(settings.max_streams)
        .ok_or(ProxyError::TooMany(settings.max_streams))?;
    let body = connect(&target, settings).await?;
    let mut response = Response::new(relay(body, settings.idle_timeout, slot));
    response.headers_mut().extend(sse_headers());
    Ok(response)
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Connects to the target and sends the request; the body of a 200 answer.
async fn connect(target: &Target, settings: &ProxySettings) -> Result<Upstream, ProxyError> {
    let url = &target.url;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ProxyError::Refused(Refused::Invalid("no port".into())))?;
    let host = url
        .host()
        .ok_or_else(|| ProxyError::Refused(Refused::Invalid("no host".into())))?;
    let authority = authority(url);
    let deadline = Instant::now() + settings.connect_timeout;
    let addrs = resolve(&host, port, deadline, settings.connect_timeout).await?;
    let tcp = connect_any(&addrs, deadline, settings.connect_timeout, &authority).await?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if url.scheme() == "https" {
        let name = match host {
            Host::Domain(d) => ServerName::try_from(d.to_owned())
                .map_err(|e| ProxyError::Connect(format!("{d}: {e}")))?,
            Host::Ipv4(ip) => ServerName::IpAddress(IpAddr::V4(ip).into()),
            Host::Ipv6(ip) => ServerName::IpAddress(IpAddr::V6(ip).into()),
        };
        let tls = TlsConnector::from(settings.tls.clone());
        let stream = timeout_at(deadline, tls.connect(name, tcp))
            .await
            .map_err(|_| ProxyError::Timeout("TLS handshake", settings.connect_timeout))?
            .map_err(|e| ProxyError::Connect(format!("TLS with {authority}: {e}")))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ProxyError::Connect(format!("{authority}: {e}")))?;
    let connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut request = Request::get(path)
        .header(HOST, &authority)
        .header(ACCEPT, "text/event-stream")
        .header(
            USER_AGENT,
            concat!("hystrix-dashboard/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProxyError::Upstream(format!("request to {url}: {e}")))?;
    if let Some(value) = &target.authorization {
        request.headers_mut().insert(AUTHORIZATION, value.clone());
    }
    let response = timeout(settings.idle_timeout, sender.send_request(request))
        .await
        .map_err(|_| {
            ProxyError::Timeout("waiting for the stream's headers", settings.idle_timeout)
        })?
        .map_err(|e| ProxyError::Upstream(format!("{authority}: {e}")))?;
    let status = response.status();
    if status != StatusCode::OK {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| format!(" (Location: {l}); redirects are not followed"))
            .unwrap_or_default();
        return Err(ProxyError::Upstream(format!(
            "{authority} answered {status}{location}"
        )));
    }
    Ok(Upstream {
        body: response.into_body(),
        _connection: connection,
    })
}

/// `host[:port]` as sent in `Host` (the port left out when it is the scheme's default).
fn authority(url: &Url) -> String {
    let host = match url.host() {
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// The addresses of `host`, without those the proxy never reaches.
async fn resolve(
    host: &Host<&str>,
    port: u16,
    deadline: Instant,
    budget: Duration,
) -> Result<Vec<SocketAddr>, ProxyError> {
    let found: Vec<SocketAddr> = match *host {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Host::Domain(name) => timeout_at(deadline, tokio::net::lookup_host((name, port)))
            .await
            .map_err(|_| ProxyError::Timeout("resolving the host", budget))?
            .map_err(|e| ProxyError::Resolve(format!("cannot resolve {name}: {e}")))?
            .collect(),
    };
    let mut why = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|addr| match refused_ip(addr.ip()) {
            Some(reason) => {
                why = Some(format!("{host} is {}: {reason}", addr.ip()));
                false
            }
            None => true,
        })
        .collect();
    match (allowed.is_empty(), why) {
        (true, Some(why)) => Err(ProxyError::Refused(Refused::Forbidden(why))),
        (true, None) => Err(ProxyError::Resolve(format!("{host} has no address"))),
        (false, _) => Ok(allowed),
    }
}

async fn connect_any(
    addrs: &[SocketAddr],
    deadline: Instant,
    budget: Duration,
    authority: &str,
) -> Result<TcpStream, ProxyError> {
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some(format!("cannot connect to {authority} ({addr}): {e}")),
            Err(_) => return Err(ProxyError::Timeout("connecting", budget)),
        }
    }
    Err(ProxyError::Connect(
        last.unwrap_or_else(|| "no address".into()),
    ))
}

/// An upstream's body, and the task driving its connection (aborted with it).
struct Upstream {
    body: Incoming,
    _connection: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The upstream body, chunk by chunk as it arrives, ended by `idle` of silence. The slot is
/// held as long as the stream is.
fn relay(upstream: Upstream, idle: Duration, slot: ConnectionSlot) -> Body {
    type State = (Upstream, ConnectionSlot);
    let chunks = stream::unfold(
        Some((upstream, slot)),
        move |state: Option<State>| async move {
            let (mut upstream, slot) = state?;
            loop {
                let frame = match timeout(idle, upstream.body.frame()).await {
                    Err(_) => {
                        tracing::debug!("proxied stream silent for {idle:?}: closed");
                        return None;
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        tracing::debug!("proxied stream ended: {e}");
                        return None;
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        return Some((Ok::<_, std::io::Error>(data), Some((upstream, slot))));
                    }
                }
            }
        },
    );
    Body::from_stream(chunks)
}
