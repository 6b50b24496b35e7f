//! Faulty dependencies on loopback for the fault tests: a raw HTTP/1.1 server whose fault can be
//! switched at runtime (healthy, hanging, slow, failing, refusing connections, resetting
//! mid-response), hyper-util's legacy client as the service a command wraps, and the process's
//! OS threads counted from `/proc`.
#![allow(dead_code)]

use std::{
    error::Error,
    fmt, io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
    time::{Instant, sleep, timeout},
};
use tower::{Service, service_fn};
use tower_hystrix::BoxError;

/// What a faulty dependency does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Answers `200 ok` at once.
    Healthy,
    /// Reads the request and never answers (it holds the connection until the client goes).
    Hang,
    /// Answers `200 ok` after the delay.
    Slow(Duration),
    /// Answers `500`.
    Fail,
    /// Nobody listens: the port is closed, so a connect gets ECONNREFUSED.
    Refuse,
    /// Sends the head of a 200 and part of its body, then resets the connection (RST).
    Reset,
}

/// The body a healthy dependency answers.
pub(crate) const OK_BODY: &str = "ok";
/// The length a resetting dependency announces, and how much of it it sends.
pub(crate) const RESET_ANNOUNCED: usize = 1000;
pub(crate) const RESET_SENT: usize = 100;

/// A dependency on 127.0.0.1 whose fault is switched with [`set_mode`](Self::set_mode). Its
/// address stays the same across modes (refusing closes the port, recovering binds it again).
/// Dropping it stops the server and every connection it holds.
pub(crate) struct Faulty {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    listening: watch::Receiver<bool>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Faulty {
    pub(crate) async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode_tx, mode_rx) = watch::channel(mode);
        let (listening_tx, listening_rx) = watch::channel(true);
        let requests = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(
            listener,
            addr,
            mode_rx,
            listening_tx,
            requests.clone(),
        ));
        let server = Self {
            addr,
            mode: mode_tx,
            listening: listening_rx,
            requests,
            task,
        };
        server.settle(mode).await;
        server
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn uri(&self, path: &str) -> Uri {
        format!("http://{}/{path}", self.addr).parse().unwrap()
    }

    /// Requests read so far (whatever was answered): how often the dependency was called.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Switches the fault; returns once the port is open or closed as the mode wants.
    pub(crate) async fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
        self.settle(mode).await;
    }

    async fn settle(&self, mode: Mode) {
        let want = mode != Mode::Refuse;
        let mut listening = self.listening.clone();
        timeout(Duration::from_secs(2), listening.wait_for(|l| *l == want))
            .await
            .unwrap_or_else(|_| panic!("{}: still listening = {}", self.addr, !want))
            .unwrap();
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    listening: watch::Sender<bool>,
    requests: Arc<AtomicUsize>,
) {
    let mut listener = Some(listener);
    // Aborted with the server.
    let mut connections = JoinSet::new();
    loop {
        if *mode.borrow_and_update() == Mode::Refuse {
            listener = None;
        } else if listener.is_none() {
            listener = Some(bind_again(addr).await);
        }
        listening.send_replace(listener.is_some());
        tokio::select! {
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = accept(listener.as_ref()) => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(answer(stream, mode.clone(), requests.clone()));
                }
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// The same port again (tokio sets SO_REUSEADDR on listeners).
async fn bind_again(addr: SocketAddr) -> TcpListener {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => last = Some(e),
        }
        sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot listen on {addr} again: {last:?}");
}

async fn answer(mut stream: TcpStream, mode: watch::Receiver<Mode>, requests: Arc<AtomicUsize>) {
    if !read_head(&mut stream).await {
        return;
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let mode = *mode.borrow();
    match mode {
        Mode::Healthy => respond(&mut stream, "200 OK", OK_BODY).await,
        Mode::Slow(delay) => {
            sleep(delay).await;
            respond(&mut stream, "200 OK", OK_BODY).await;
        }
        Mode::Fail => respond(&mut stream, "500 Internal Server Error", "down").await,
        Mode::Hang => {
            // Never answers; returns when the client closes the connection.
            let mut buf = [0u8; 1024];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
        // Accepted just before the port closed: closed without an answer.
        Mode::Refuse => {}
        Mode::Reset => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {RESET_ANNOUNCED}\r\n\r\n");
            let mut partial = head.into_bytes();
            partial.extend_from_slice(&[b'x'; RESET_SENT]);
            if stream.write_all(&partial).await.is_err() || stream.flush().await.is_err() {
                return;
            }
            // Let the client read the head and start on the body, then abort: SO_LINGER 0
            // makes the close send an RST instead of a FIN.
            sleep(Duration::from_millis(30)).await;
            stream.set_zero_linger().unwrap();
            drop(stream);
        }
    }
}

/// Reads up to the end of a request head (GET requests: no body). False if the client closed
/// first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return false;
        }
    }
    true
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

pub(crate) type Req = Request<Empty<Bytes>>;
pub(crate) type Res = Response<Bytes>;

/// A response whose body broke off after its head arrived.
#[derive(Debug)]
pub(crate) struct BodyError {
    pub(crate) status: StatusCode,
    source: BoxError,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the body of a {} response broke off", self.status)
    }
}

impl Error for BodyError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// hyper-util's legacy client as a service that answers with the whole body, collected: a
/// body that breaks off is a failed call ([`BodyError`]). No connection is kept idle, so that
/// every call connects (a refused port refuses every call) and none outlives its call.
pub(crate) fn http_client()
-> impl Service<Req, Response = Res, Error = BoxError, Future: Send + 'static> + Clone + Send + 'static
{
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    service_fn(move |req: Req| {
        let client = client.clone();
        async move {
            let res = client.request(req).await?;
            let (parts, body) = res.into_parts();
            match body.collect().await {
                Ok(body) => Ok(Response::from_parts(parts, body.to_bytes())),
                Err(e) => Err(Box::new(BodyError {
                    status: parts.status,
                    source: e.into(),
                }) as BoxError),
            }
        }
    })
}

/// The process's OS threads (`Threads:` of /proc/self/status).
pub(crate) fn os_threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// The process's threads whose name starts with `prefix` (the kernel keeps 15 bytes of a name).
pub(crate) fn threads_named(prefix: &str) -> usize {
    let prefix = &prefix.as_bytes()[..prefix.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read(task.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// The OS thread count once it has held still for 100 ms (threads of a test that just ended
/// or just started come and go), reading for at most 2 s.
pub(crate) async fn settled_os_threads() -> usize {
    let mut last = os_threads();
    let mut still = 0;
    for _ in 0..100 {
        sleep(Duration::from_millis(20)).await;
        let now = os_threads();
        if now == last {
            still += 1;
            if still == 5 {
                break;
            }
        } else {
            (last, still) = (now, 0);
        }
    }
    last
}

/// Polls `check` every 10 ms until it holds or `bound` has passed; whether it held.
pub(crate) async fn eventually(bound: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
}
