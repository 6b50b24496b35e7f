//! One instance's stream: connect, read lines, parse messages, hand them to the cluster, and
//! reconnect with jittered backoff when anything goes wrong.

use std::{
    fmt, io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{
    HeaderValue, Request, StatusCode,
    header::{ACCEPT, AUTHORIZATION, HOST, USER_AGENT},
};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::mpsc,
};
use tokio_rustls::{
    TlsConnector,
    rustls::{self, pki_types::ServerName},
};

use crate::{
    aggregate::HostId,
    discovery::Endpoint,
    parse::{Line, LineReader, Message, Parser},
};

/// How a cluster's instances are read.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamSettings {
    /// The stream's path and query, for endpoints given as `host:port`.
    pub(crate) path: String,
    /// Whether endpoints given as `host:port` speak TLS.
    pub(crate) https: bool,
    /// Sent as `Authorization` to every instance.
    pub(crate) authorization: Option<HeaderValue>,
    /// The TLS client, when some instance may need it.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) connect_timeout: Duration,
    /// No line (data or heart-beat) for this long: reconnect.
    pub(crate) idle_timeout: Duration,
    pub(crate) max_line: usize,
}

/// A batch of messages from one connection's read.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) host: HostId,
    pub(crate) messages: Vec<Message>,
}

/// What one instance's reader has done, read by `/clusters` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct InstanceStatus {
    connected: AtomicBool,
    messages: AtomicU64,
    parse_errors: AtomicU64,
    connects: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl InstanceStatus {
    /// Whether the stream is open now.
    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Messages parsed so far.
    pub(crate) fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Lines refused so far.
    pub(crate) fn parse_errors(&self) -> u64 {
        self.parse_errors.load(Ordering::Relaxed)
    }

    /// Streams opened so far.
    pub(crate) fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Connections that failed or ended so far.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Why the last connection failed or ended, or the last refused line.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    Resolve(io::Error),
    Connect(io::Error),
    Timeout(&'static str, Duration),
    Tls(String),
    Http(hyper::Error),
    Status(StatusCode),
    LineTooLong(usize),
    Ended,
    Gone,
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve(e) => write!(f, "cannot resolve the host: {e}"),
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Timeout(what, after) => write!(f, "{what} for {} ms", after.as_millis()),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::Http(e) => write!(f, "HTTP: {e}"),
            Self::Status(s) => write!(f, "the stream answered {s}"),
            Self::LineTooLong(max) => write!(f, "a line is longer than {max} bytes"),
            Self::Ended => f.write_str("the stream ended"),
            Self::Gone => f.write_str("the cluster stopped"),
        }
    }
}

/// The most a connection's read buffer holds.
const READ_BUFFER: usize = 16 * 1024;

/// The first retry comes after 250–500 ms, the n-th after up to 30 s.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The pause before reconnection attempt `attempt` (0 for the first): exponential from
/// [`BACKOFF_BASE`] up to [`BACKOFF_MAX`], then a random half of it taken off, so that
/// instances restarted together are not all asked again at the same instant.
pub(crate) fn backoff(attempt: u32, jitter: f64) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    full.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0))
}

/// Reads `endpoint` until the task is aborted (or the cluster's receiver is gone).
pub(crate) async fn run(
    endpoint: Endpoint,
    host: HostId,
    settings: Arc<UpstreamSettings>,
    status: Arc<InstanceStatus>,
    tx: mpsc::Sender<Batch>,
) {
    let mut attempt = 0;
    loop {
        let mut delivered = false;
        let result = stream_once(&endpoint, host, &settings, &status, &tx, &mut delivered).await;
        status.connected.store(false, Ordering::Relaxed);
        let error = match result {
            Err(UpstreamError::Gone) => return,
            Err(error) => error,
            Ok(never) => match never {},
        };
        status.failures.fetch_add(1, Ordering::Relaxed);
        if delivered {
            attempt = 0;
        }
        let pause = backoff(attempt, fastrand::f64());
        attempt = attempt.saturating_add(1);
        tracing::debug!(instance = %endpoint, %error, retry_in_ms = pause.as_millis() as u64, "stream lost");
        status.set_error(error.to_string());
        tokio::time::sleep(pause).await;
    }
}

enum Never {}

async fn stream_once(
    endpoint: &Endpoint,
    host: HostId,
    settings: &UpstreamSettings,
    status: &InstanceStatus,
    tx: &mpsc::Sender<Batch>,
    delivered: &mut bool,
) -> Result<Never, UpstreamError> {
    let addr = match endpoint.socket_addr() {
        Some(addr) => addr,
        None => tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(UpstreamError::Resolve)?
            .next()
            .ok_or_else(|| {
                UpstreamError::Resolve(io::Error::new(io::ErrorKind::NotFound, "no address"))
            })?,
    };
    let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| UpstreamError::Timeout("no connection", settings.connect_timeout))?
        .map_err(UpstreamError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if endpoint.https.unwrap_or(settings.https) {
        let config = settings
            .tls
            .clone()
            .ok_or_else(|| UpstreamError::Tls("no TLS configuration".into()))?;
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|e| UpstreamError::Tls(format!("`{}`: {e}", endpoint.host)))?;
        let tls = tokio::time::timeout(
            settings.connect_timeout,
            TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| UpstreamError::Timeout("no TLS handshake", settings.connect_timeout))?
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    read(
        TokioIo::new(io),
        endpoint,
        host,
        settings,
        status,
        tx,
        delivered,
    )
    .await
}

/// A connection to an instance, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn read(
    io: TokioIo<Box<dyn Io>>,
    endpoint: &Endpoint,
    host: HostId,
    settings: &UpstreamSettings,
    status: &InstanceStatus,
    tx: &mpsc::Sender<Batch>,
    delivered: &mut bool,
) -> Result<Never, UpstreamError> {
    // A stream's read buffer would grow to a whole tick of the instance (hyper's default
    // allows 400 KiB); lines are split out as they come, so a small one serves as well, and a
    // thousand instances cost a thousand of them.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(READ_BUFFER)
        .handshake(io)
        .await
        .map_err(UpstreamError::Http)?;
    // Driven beside the reads; stopped with them.
    let _connection = AbortOnDrop(tokio::spawn(connection));
    let path = endpoint.path.as_deref().unwrap_or(&settings.path);
    let mut request = Request::get(path)
        .header(HOST, authority(endpoint))
        .header(ACCEPT, "text/event-stream")
        .header(
            USER_AGENT,
            concat!("hystrix-turbine/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(auth) = &settings.authorization {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| UpstreamError::Tls(format!("bad request: {e}")))?;
    let response = tokio::time::timeout(settings.idle_timeout, sender.send_request(request))
        .await
        .map_err(|_| UpstreamError::Timeout("no response", settings.idle_timeout))?
        .map_err(UpstreamError::Http)?;
    if response.status() != StatusCode::OK {
        return Err(UpstreamError::Status(response.status()));
    }
    status.connected.store(true, Ordering::Relaxed);
    status.connects.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(instance = %endpoint, "stream open");

    let mut body = response.into_body();
    let mut lines = LineReader::new(settings.max_line);
    let mut parser = Parser::new();
    loop {
        let frame = tokio::time::timeout(settings.idle_timeout, body.frame())
            .await
            .map_err(|_| UpstreamError::Timeout("nothing received", settings.idle_timeout))?;
        let frame = match frame {
            None => return Err(UpstreamError::Ended),
            Some(frame) => frame.map_err(UpstreamError::Http)?,
        };
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        let mut messages = Vec::new();
        let mut errors = 0u64;
        let mut last_error = None;
        // The lines before an over-long one still count: the error is returned after them.
        let fed = lines.feed(&chunk, |line| {
            if let Line::Data(json) = Line::classify(line) {
                match parser.parse(json) {
                    Ok(message) => messages.push(message),
                    Err(e) => {
                        errors += 1;
                        last_error = Some(e);
                    }
                }
            }
        });
        if let Some(e) = last_error {
            status.parse_errors.fetch_add(errors, Ordering::Relaxed);
            tracing::debug!(instance = %endpoint, error = %e, "line skipped");
            status.set_error(format!("line skipped: {e}"));
        }
        if !messages.is_empty() {
            status
                .messages
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            *delivered = true;
            tx.send(Batch { host, messages })
                .await
                .map_err(|_| UpstreamError::Gone)?;
        }
        fed.map_err(|e| UpstreamError::LineTooLong(e.max))?;
    }
}

/// `host:port` for the `Host` header.
fn authority(endpoint: &Endpoint) -> String {
    if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    }
}

/// Aborts a spawned task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The TLS client configuration of the turbine's upstreams (rustls with ring): the system's
/// roots, and the certificates of `ca_file` (PEM) if any. Also used by the dashboard's proxy.
pub fn tls_client_config(
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, String> {
    use tokio_rustls::rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{}: no PEM certificate", path.display()));
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(250));
        assert!(backoff(0, 0.7) < Duration::from_secs(1));
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(40, 0.0), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX, 1.0), BACKOFF_MAX / 2);
    }
}
