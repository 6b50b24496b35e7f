//! Test peers on loopback: SSE upstreams that send what a test tells them (garbage included),
//! a turbine served on a free port, and a client of its stream.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]
pub mod model;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use hystrix_turbine::{Config, Turbine};
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{broadcast, mpsc},
    task::JoinHandle,
    time::{Instant, timeout},
};

/// Reads a request's head (up to its blank line); `None` if the peer goes away first.
pub async fn read_head<S: AsyncRead + Unpin>(socket: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

/// What an upstream connection is told to do.
#[derive(Clone, Debug)]
pub enum Chunk {
    /// Write these bytes.
    Bytes(Bytes),
    /// Close the connection.
    Close,
}

/// An instance's `/hystrix.stream`, written by hand over TCP so a test can send anything.
pub struct Upstream {
    pub addr: SocketAddr,
    tx: broadcast::Sender<Chunk>,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    required: Arc<std::sync::Mutex<Option<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Upstream {
    /// A stream answering 200 with Hystrix's headers.
    pub async fn start() -> Self {
        Self::start_with("200 OK").await
    }

    /// A stream answering with `status` (such as `404 Not Found`).
    pub async fn start_with(status: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, status)
    }

    /// Serves on `listener` (to restart an upstream on the same port).
    pub fn serve(listener: TcpListener, status: &'static str) -> Self {
        Self::serve_with(listener, status, None)
    }

    /// A stream answering 200 over TLS.
    pub async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_with(listener, "200 OK", Some(acceptor))
    }

    fn serve_with(
        listener: TcpListener,
        status: &'static str,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let (tx, _) = broadcast::channel(1024);
        let open = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let required = Arc::new(std::sync::Mutex::new(None::<String>));
        let task = {
            let (tx, open, accepted) = (tx.clone(), open.clone(), accepted.clone());
            let required = required.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let rx = tx.subscribe();
                    let open = open.clone();
                    let required = required.lock().unwrap().clone();
                    match tls.clone() {
                        None => drop(tokio::spawn(connection(socket, rx, status, open, required))),
                        Some(acceptor) => drop(tokio::spawn(async move {
                            if let Ok(socket) = acceptor.accept(socket).await {
                                connection(socket, rx, status, open, required).await;
                            }
                        })),
                    }
                }
            })
        };
        Self {
            addr,
            tx,
            open,
            accepted,
            required,
            tasks: vec![task],
        }
    }

    /// Answers 401 to requests without this header line (`name: value`, any case).
    pub fn require_header(&self, line: &str) {
        *self.required.lock().unwrap() = Some(line.to_ascii_lowercase());
    }

    /// `host:port`.
    pub fn instance(&self) -> String {
        self.addr.to_string()
    }

    /// Writes `bytes` to every open connection.
    pub fn send(&self, bytes: impl Into<Bytes>) {
        let _ = self.tx.send(Chunk::Bytes(bytes.into()));
    }

    /// Closes every open connection.
    pub fn close_all(&self) {
        let _ = self.tx.send(Chunk::Close);
    }

    /// Sends `line` as a `data:` event, and a `ping: `, every `every`, until dropped.
    pub fn repeat(&mut self, line: String, every: Duration) {
        let tx = self.tx.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                let _ = tx.send(Chunk::Bytes(format!("data: {line}\n\nping: \n\n").into()));
                tokio::time::sleep(every).await;
            }
        }));
    }

    /// Stops what `repeat` started.
    pub fn stop_repeating(&mut self) {
        for task in self.tasks.drain(1..) {
            task.abort();
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits until a connection is open.
    pub async fn connected(&self) {
        wait_until(Duration::from_secs(5), || self.open() > 0).await;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.close_all();
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    mut rx: broadcast::Receiver<Chunk>,
    status: &'static str,
    open: Arc<AtomicUsize>,
    required: Option<String>,
) {
    let Some(head) = read_head(&mut socket).await else {
        return;
    };
    if let Some(required) = required {
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if !head.lines().any(|l| l.trim() == required) {
            let _ = socket
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
    }
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/event-stream;charset=UTF-8\r\n\
         Cache-Control: no-cache, no-store, max-age=0, must-revalidate\r\nPragma: no-cache\r\n\
         Connection: close\r\n\r\n"
    );
    if socket.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    open.fetch_add(1, Ordering::SeqCst);
    loop {
        match rx.recv().await {
            Ok(Chunk::Bytes(bytes)) => {
                if socket.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Ok(Chunk::Close) | Err(broadcast::error::RecvError::Closed) => break,
            Err(broadcast::error::RecvError::Lagged(_)) => {}
        }
    }
    open.fetch_sub(1, Ordering::SeqCst);
}

/// A turbine of `config`, served on a free loopback port.
pub struct Running {
    pub turbine: Turbine,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn start(config: &str) -> Self {
        let config = Config::from_toml(config, "test").unwrap();
        let turbine = Turbine::start(&config).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn({
            let turbine = turbine.clone();
            async move {
                let _ = turbine.serve(listener).await;
            }
        });
        Self {
            turbine,
            addr,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fast timings for tests: ticks every 100 ms, data stale after 1.5 s, silent upstreams
/// dropped after 1 s.
pub const FAST: &str = "interval_ms = 100\nstale_after_ms = 1500\nidle_timeout_ms = 1000\n";

/// A GET over one fresh connection: status, headers and the body as it comes.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: mpsc::Receiver<Bytes>,
    pending: Vec<u8>,
    _conn: JoinHandle<()>,
}

impl Response {
    pub async fn get(addr: SocketAddr, path: &str) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::get(path)
            .header("host", addr.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let (parts, mut body) = response.into_parts();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    if tx.send(data).await.is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            status: parts.status,
            headers: parts.headers,
            body: rx,
            pending: Vec::new(),
            _conn: conn,
        }
    }

    /// The next complete line, within `within`.
    pub async fn line(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let chunk = timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.body.recv(),
            )
            .await
            .ok()??;
            self.pending.extend_from_slice(&chunk);
        }
    }

    /// The whole body (for non-stream answers).
    pub async fn text(mut self) -> String {
        let mut all = std::mem::take(&mut self.pending);
        while let Ok(Some(chunk)) = timeout(Duration::from_secs(5), self.body.recv()).await {
            all.extend_from_slice(&chunk);
        }
        String::from_utf8(all).unwrap()
    }

    /// The first `data:` event satisfying `pred`, within `within`.
    pub async fn event(
        &mut self,
        within: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let line = self
                .line(deadline.saturating_duration_since(Instant::now()))
                .await?;
            if let Some(json) = line.strip_prefix("data: ") {
                let value: Value = serde_json::from_str(json).unwrap();
                if pred(&value) {
                    return Some(value);
                }
            }
        }
    }
}

/// Polls `cond` every 20 ms until it holds; panics after `within`.
pub async fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A 1.5-format `HystrixCommand` line with the given counts.
pub fn command(name: &str, success: i64, failure: i64, open: bool) -> String {
    format!(
        concat!(
            r#"{{"type":"HystrixCommand","name":"{name}","group":"G","currentTime":1700000000000,"#,
            r#""isCircuitBreakerOpen":{open},"errorPercentage":{pct},"errorCount":{failure},"#,
            r#""requestCount":{total},"rollingCountSuccess":{success},"rollingCountFailure":{failure},"#,
            r#""latencyExecute_mean":5,"latencyExecute":{{"0":1,"25":2,"50":5,"75":7,"90":9,"95":10,"99":20,"99.5":30,"100":40}},"#,
            r#""propertyValue_metricsRollingStatisticalWindowInMilliseconds":10000,"#,
            r#""propertyValue_executionIsolationStrategy":"THREAD","reportingHosts":1}}"#
        ),
        name = name,
        open = open,
        pct = if success + failure > 0 {
            failure * 100 / (success + failure)
        } else {
            0
        },
        failure = failure,
        total = success + failure,
        success = success,
    )
}
