#![allow(clippy::unwrap_used)]
//! `/proxy.stream` over real HTTP on loopback: what reaches an allow-listed upstream (and how),
//! what is refused without any connection being made (server-side request forgery attempts),
//! redirects, non-200 answers, timeouts and the cap on proxied streams.
//!
//! Every peer is written by hand here: upstreams are small TCP servers that record the request
//! heads they receive, a "trap" server counts any connection that reaches it, and the client
//! speaks raw HTTP/1.1 so a test controls every byte of the request.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hystrix_dashboard::{Dashboard, allow::AllowList};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::{Instant, sleep, timeout, timeout_at},
};

/// The proxy's idle timeout in these tests.
const IDLE: Duration = Duration::from_millis(300);
/// The longest any single wait of a test may take.
const LIMIT: Duration = Duration::from_secs(3);
/// How long an upstream keeps a connection at most.
const UPSTREAM_LIFE: Duration = Duration::from_secs(5);

// ===== upstreams =====

/// What an upstream does once it has read a request head.
#[derive(Clone, Debug)]
enum Behavior {
    /// 200 with SSE headers, a `data:` event per line, then silence (the connection is held
    /// until the peer closes it).
    Sse(Vec<String>),
    /// 200 with SSE headers, then a `data:` event every 50 ms until the peer is gone.
    Ticking,
    /// This status line (`302 Found`) and these header lines, no body.
    Status(&'static str, Vec<String>),
    /// Reads the request and never answers.
    Silent,
}

/// A loopback HTTP server that counts connections and records the request heads it reads.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, heads) = (accepted.clone(), requests.clone());
        // Ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(socket, behavior.clone(), heads.clone()));
            }
        });
        Self {
            addr,
            accepted,
            requests,
        }
    }

    /// A server no test may reach: it would answer a stream, so a leak would show.
    async fn trap() -> Self {
        Self::start(Behavior::Sse(vec![r#"{"type":"trap"}"#.into()])).await
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The last request head received.
    fn last_request(&self) -> String {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

async fn answer(mut socket: TcpStream, behavior: Behavior, requests: Arc<Mutex<Vec<String>>>) {
    let deadline = Instant::now() + UPSTREAM_LIFE;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    requests
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    let sse_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n\
                    Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    match behavior {
        Behavior::Sse(lines) => {
            let mut out = sse_head.to_owned();
            for line in lines {
                out.push_str(&format!("data: {line}\n\n"));
            }
            if socket.write_all(out.as_bytes()).await.is_ok() {
                hold(&mut socket, deadline).await;
            }
        }
        Behavior::Ticking => {
            if socket.write_all(sse_head.as_bytes()).await.is_err() {
                return;
            }
            for n in 0..100 {
                let event = format!("data: {{\"type\":\"tick\",\"n\":{n}}}\n\n");
                if Instant::now() >= deadline || socket.write_all(event.as_bytes()).await.is_err() {
                    return;
                }
                sleep(Duration::from_millis(50)).await;
            }
        }
        Behavior::Status(status, headers) => {
            let mut out = format!("HTTP/1.1 {status}\r\n");
            for header in headers {
                out.push_str(&header);
                out.push_str("\r\n");
            }
            out.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = socket.write_all(out.as_bytes()).await;
        }
        Behavior::Silent => hold(&mut socket, deadline).await,
    }
}

/// Keeps a connection open, silent, until the peer closes it (or the deadline).
async fn hold(socket: &mut TcpStream, deadline: Instant) {
    let mut buf = [0u8; 256];
    let _ = timeout_at(deadline, async {
        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// The value of every `name:` header line of a request head (the name in any case).
fn request_header(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

fn request_line(head: &str) -> &str {
    head.lines().next().unwrap_or_default()
}

/// A free loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

// ===== the dashboard =====

struct Running {
    dashboard: Dashboard,
    addr: SocketAddr,
}

async fn serve(dashboard: Dashboard) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(dashboard.clone().serve(listener));
    Running { dashboard, addr }
}

/// A dashboard allowing `allow`, with the test timeouts and at most `max_streams`.
async fn dashboard(allow: &[String], max_streams: usize) -> Running {
    let dashboard = Dashboard::builder()
        .allow(AllowList::parse(allow).unwrap())
        .idle_timeout(IDLE)
        .connect_timeout(Duration::from_secs(1))
        .max_streams(max_streams)
        .build()
        .unwrap();
    serve(dashboard).await
}

/// `/proxy.stream?origin=` with `origin` URL-encoded.
fn proxied(origin: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(origin.as_bytes()).collect();
    format!("/proxy.stream?origin={encoded}")
}

// ===== the client =====

/// An answer of the dashboard, read over raw HTTP/1.1.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    socket: TcpStream,
    /// The body bytes received so far, as sent (chunked encoding included).
    raw: Vec<u8>,
    eof: bool,
}

/// `GET target` with `extra` header lines, on a fresh connection; `None` if the connection
/// closes before a whole response head.
async fn try_get(addr: SocketAddr, target: &str, extra: &[&str]) -> Option<Response> {
    let mut socket = timeout(LIMIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let deadline = Instant::now() + LIMIT;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buf[..n]),
            Ok(_) => return None,
            Err(_) => panic!("no response head within {LIMIT:?} for {target}"),
        }
    };
    let head = String::from_utf8(received[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Response {
        status,
        headers,
        socket,
        raw: received[end + 4..].to_vec(),
        eof: false,
    })
}

async fn get_with(addr: SocketAddr, target: &str, extra: &[&str]) -> Response {
    try_get(addr, target, extra)
        .await
        .unwrap_or_else(|| panic!("connection closed before a response head for {target}"))
}

async fn get(addr: SocketAddr, target: &str) -> Response {
    get_with(addr, target, &[]).await
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }

    /// The body received so far, decoded, and whether it is complete (the last chunk of a
    /// chunked body, or the end of the connection).
    fn body(&self) -> (String, bool) {
        if !self.chunked() {
            return (String::from_utf8_lossy(&self.raw).into_owned(), self.eof);
        }
        let mut out = Vec::new();
        let mut rest = &self.raw[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_line = std::str::from_utf8(&rest[..eol]).unwrap();
            let size = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).unwrap();
            if size == 0 {
                return (String::from_utf8_lossy(&out).into_owned(), true);
            }
            let start = eol + 2;
            if rest.len() < start + size + 2 {
                break;
            }
            out.extend_from_slice(&rest[start..start + size]);
            rest = &rest[start + size + 2..];
        }
        (String::from_utf8_lossy(&out).into_owned(), self.eof)
    }

    /// Reads once more, until `deadline`; false at the end of the connection or the deadline.
    async fn fill(&mut self, deadline: Instant) -> bool {
        let mut buf = [0u8; 4096];
        match timeout_at(deadline, self.socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            Ok(_) => {
                self.eof = true;
                false
            }
            Err(_) => false,
        }
    }

    /// Reads until the body contains `needle`; whether it did within `within`.
    async fn wait_for(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.body().0.contains(needle) {
            if !self.fill(deadline).await {
                return self.body().0.contains(needle);
            }
        }
        true
    }

    /// Reads until the body is complete; whether it was within `within`.
    async fn wait_end(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.body().1 {
            if !self.fill(deadline).await {
                return self.body().1;
            }
        }
        true
    }

    /// The whole body (for answers that are not streams).
    async fn text(mut self) -> String {
        assert!(self.wait_end(LIMIT).await, "the body did not end");
        self.body().0
    }
}

/// Asserts that `target` is answered `status` with a body containing `reason`.
async fn assert_refused(addr: SocketAddr, target: &str, status: u16, reason: &str) {
    let response = get(addr, target).await;
    let got = response.status;
    let body = response.text().await;
    assert_eq!(got, status, "{target}: {body}");
    assert!(
        body.contains(reason),
        "{target}: the body `{body}` does not say `{reason}`"
    );
}

/// Polls `cond` every 20 ms; whether it held within `within`.
async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20)).await;
    }
}

const EVENT_1: &str = r#"{"type":"HystrixCommand","name":"GetUser","requestCount":7}"#;
const EVENT_2: &str = r#"{"type":"HystrixThreadPool","name":"Users","currentActiveCount":1}"#;

// ===== 1. what passes =====

#[tokio::test]
async fn allowed_origin_is_proxied_with_hystrix_headers_and_events() {
    let upstream = Server::start(Behavior::Sse(vec![EVENT_1.into(), EVENT_2.into()])).await;
    let trap = Server::trap().await;
    let a = upstream.port();
    let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;

    // The encoded form of the origin.
    let mut response = get(
        running.addr,
        &format!("/proxy.stream?origin=http%3A%2F%2F127.0.0.1%3A{a}%2Fhystrix.stream"),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/event-stream;charset=UTF-8")
    );
    assert_eq!(
        response.header("cache-control"),
        Some("no-cache, no-store, max-age=0, must-revalidate")
    );
    assert_eq!(response.header("pragma"), Some("no-cache"));
    assert!(
        response.wait_for(EVENT_2, LIMIT).await,
        "{:?}",
        response.body()
    );
    assert_eq!(
        response.body().0,
        format!("data: {EVENT_1}\n\ndata: {EVENT_2}\n\n")
    );
    let head = upstream.last_request();
    assert_eq!(request_line(&head), "GET /hystrix.stream HTTP/1.1");
    assert_eq!(request_header(&head, "host"), [format!("127.0.0.1:{a}")]);
    assert_eq!(request_header(&head, "accept"), ["text/event-stream"]);
    assert!(request_header(&head, "authorization").is_empty(), "{head}");
    drop(response);

    // An encoded origin with a query of its own, and a parameter the proxy appends to it.
    let mut response = get(
        running.addr,
        &format!(
            "{}&delay=500",
            proxied(&format!("http://127.0.0.1:{a}/turbine.stream?cluster=api"))
        ),
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(response.wait_for(EVENT_1, LIMIT).await);
    assert_eq!(
        request_line(&upstream.last_request()),
        "GET /turbine.stream?cluster=api&delay=500 HTTP/1.1"
    );
    drop(response);

    assert_eq!(upstream.accepted(), 2);
    assert_eq!(trap.accepted(), 0);
}

#[tokio::test]
async fn hystrix_unencoded_form_authorization_and_no_client_headers_upstream() {
    let upstream = Server::start(Behavior::Sse(vec![EVENT_1.into()])).await;
    let a = upstream.port();
    let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;

    // What the Hystrix Dashboard's page sends: the origin not encoded, so the turbine's own
    // `delay` becomes a parameter of the proxy; the client's own headers must stay here.
    let target = format!(
        "/proxy.stream?origin=http://127.0.0.1:{a}/turbine.stream?cluster=api&delay=500\
         &authorization=Basic%20Zm9vOmJhcg%3D%3D"
    );
    let mut response = get_with(
        running.addr,
        &target,
        &[
            "Cookie: JSESSIONID=secret-cookie",
            "Authorization: Bearer client-token",
            "X-Forwarded-For: 10.9.9.9",
            "X-Api-Key: client-key",
        ],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/event-stream;charset=UTF-8")
    );
    assert!(
        response.wait_for(EVENT_1, LIMIT).await,
        "{:?}",
        response.body()
    );

    let head = upstream.last_request();
    assert_eq!(
        request_line(&head),
        "GET /turbine.stream?cluster=api&delay=500 HTTP/1.1"
    );
    assert_eq!(
        request_header(&head, "authorization"),
        ["Basic Zm9vOmJhcg=="]
    );
    assert!(!request_line(&head).contains("authorization"), "{head}");
    assert!(!request_line(&head).contains("Zm9v"), "{head}");
    assert!(request_header(&head, "cookie").is_empty(), "{head}");
    assert!(
        request_header(&head, "x-forwarded-for").is_empty(),
        "{head}"
    );
    for secret in ["secret-cookie", "client-token", "10.9.9.9", "client-key"] {
        assert!(!head.contains(secret), "`{secret}` was forwarded: {head}");
    }
    drop(response);

    // Without the authorization parameter, the client's Authorization header is not sent
    // either.
    let response = get_with(
        running.addr,
        &proxied(&format!("http://127.0.0.1:{a}/hystrix.stream")),
        &["Authorization: Bearer client-token"],
    )
    .await;
    assert_eq!(response.status, 200);
    drop(response);
    let head = upstream.last_request();
    assert_eq!(request_line(&head), "GET /hystrix.stream HTTP/1.1");
    assert!(request_header(&head, "authorization").is_empty(), "{head}");
}

#[tokio::test]
async fn normalised_forms_of_the_allowed_origin_reach_it() {
    let upstream = Server::start(Behavior::Sse(vec![EVENT_1.into()])).await;
    let trap = Server::trap().await;
    let (a, t) = (upstream.port(), trap.port());
    let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;

    // Each is the allow-listed origin to the WHATWG URL parser (and to a browser).
    let cases = [
        (
            format!("http://2130706433:{a}/hystrix.stream"),
            "/hystrix.stream",
        ),
        (
            format!("http://0x7f.0.0.1:{a}/hystrix.stream"),
            "/hystrix.stream",
        ),
        (
            format!("http://127.1:{a}/hystrix.stream"),
            "/hystrix.stream",
        ),
        (
            format!("HTTP://127.0.0.1:{a}/hystrix.stream"),
            "/hystrix.stream",
        ),
        (format!("127.0.0.1:{a}/hystrix.stream"), "/hystrix.stream"),
        (
            format!(" http://127.0.0.1:{a}/hystrix.stream\t"),
            "/hystrix.stream",
        ),
        (
            format!("http://127.0.0.1:{a}/hystrix.stream#frag"),
            "/hystrix.stream",
        ),
        // A backslash is a slash: the host is the allowed one, the rest is the path.
        (
            format!("http://127.0.0.1:{a}\\@127.0.0.1:{t}/"),
            &*format!("/@127.0.0.1:{t}/"),
        ),
    ];
    for (n, (origin, path)) in cases.iter().enumerate() {
        let mut response = get(running.addr, &proxied(origin)).await;
        assert_eq!(response.status, 200, "{origin}: {:?}", response.body());
        assert!(response.wait_for(EVENT_1, LIMIT).await, "{origin}");
        drop(response);
        assert_eq!(upstream.accepted(), n + 1, "{origin}");
        let head = upstream.last_request();
        assert_eq!(
            request_line(&head),
            format!("GET {path} HTTP/1.1"),
            "{origin}"
        );
        assert_eq!(
            request_header(&head, "host"),
            [format!("127.0.0.1:{a}")],
            "{origin}"
        );
    }
    sleep(Duration::from_millis(50)).await;
    assert_eq!(trap.accepted(), 0);
}

#[tokio::test]
async fn only_the_first_origin_parameter_counts() {
    let upstream = Server::start(Behavior::Sse(vec![EVENT_1.into()])).await;
    let trap = Server::trap().await;
    let (a, t) = (upstream.port(), trap.port());
    let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;

    // The allowed one first: the second is only a parameter passed on to the upstream.
    let target = format!(
        "{}&origin=http%3A%2F%2F127.0.0.1%3A{t}%2F",
        proxied(&format!("http://127.0.0.1:{a}/hystrix.stream"))
    );
    let mut response = get(running.addr, &target).await;
    assert_eq!(response.status, 200);
    assert!(response.wait_for(EVENT_1, LIMIT).await);
    drop(response);
    assert_eq!(
        request_line(&upstream.last_request()),
        format!("GET /hystrix.stream?origin=http%3A%2F%2F127.0.0.1%3A{t}%2F HTTP/1.1")
    );

    // The trap first: refused, whatever follows.
    let target = format!(
        "{}&origin=http%3A%2F%2F127.0.0.1%3A{a}%2Fhystrix.stream",
        proxied(&format!("http://127.0.0.1:{t}/"))
    );
    assert_refused(
        running.addr,
        &target,
        403,
        &format!("http://127.0.0.1:{t} is not an allowed origin"),
    )
    .await;

    sleep(Duration::from_millis(50)).await;
    assert_eq!(upstream.accepted(), 1);
    assert_eq!(trap.accepted(), 0);
}

// ===== 2. what is refused =====

#[tokio::test]
async fn ssrf_attempts_are_refused_before_any_connection() {
    let upstream = Server::start(Behavior::Sse(vec![EVENT_1.into()])).await;
    let trap = Server::trap().await;
    let (a, t) = (upstream.port(), trap.port());
    let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;

    let not_allowed = |origin: &str| format!("{origin} is not an allowed origin");
    let credentials = "a user name or password in the URL is refused";
    let trap_origin = not_allowed(&format!("http://127.0.0.1:{t}"));
    // (origin as the proxy receives it, status, what the body says)
    let cases: Vec<(String, u16, String)> = vec![
        // Another port of the allowed host, other hosts.
        (format!("http://127.0.0.1:{t}/"), 403, trap_origin.clone()),
        (
            format!("http://127.0.0.1:{t}/hystrix.stream"),
            403,
            trap_origin.clone(),
        ),
        (
            "http://127.0.0.1/".into(),
            403,
            not_allowed("http://127.0.0.1:80"),
        ),
        (
            format!("http://127.0.0.2:{a}/"),
            403,
            not_allowed(&format!("http://127.0.0.2:{a}")),
        ),
        (
            format!("http://localhost:{a}/"),
            403,
            not_allowed(&format!("http://localhost:{a}")),
        ),
        (
            format!("http://0.0.0.0:{a}/"),
            403,
            not_allowed(&format!("http://0.0.0.0:{a}")),
        ),
        (
            format!("http://0:{t}/"),
            403,
            not_allowed(&format!("http://0.0.0.0:{t}")),
        ),
        (
            format!("http://[::1]:{t}/"),
            403,
            not_allowed(&format!("http://[::1]:{t}")),
        ),
        (
            format!("http://[::1]:{a}/"),
            403,
            not_allowed(&format!("http://[::1]:{a}")),
        ),
        (
            format!("http://[::]:{a}/"),
            403,
            not_allowed(&format!("http://[::]:{a}")),
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{t}/"),
            403,
            not_allowed(&format!("http://[::ffff:127.0.0.1]:{t}")),
        ),
        // Link-local: cloud metadata.
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            403,
            not_allowed("http://169.254.169.254:80"),
        ),
        (
            format!("http://[fe80::1]:{a}/"),
            403,
            not_allowed(&format!("http://[fe80::1]:{a}")),
        ),
        (
            "http://[::ffff:169.254.169.254]/".into(),
            403,
            not_allowed("http://[::ffff:169.254.169.254]:80"),
        ),
        // User-info tricks.
        (
            format!("http://127.0.0.1:{a}@127.0.0.1:{t}/"),
            403,
            credentials.into(),
        ),
        (
            format!("http://user:pass@127.0.0.1:{a}/"),
            403,
            credentials.into(),
        ),
        (
            format!("http://user@127.0.0.1:{a}/"),
            403,
            credentials.into(),
        ),
        (
            format!("http://:pass@127.0.0.1:{a}/"),
            403,
            credentials.into(),
        ),
        (
            format!("http://127.0.0.1:{a}@169.254.169.254/"),
            403,
            credentials.into(),
        ),
        (
            format!("http://127.0.0.1:{t}#@127.0.0.1:{a}/"),
            403,
            trap_origin.clone(),
        ),
        (
            format!("http://127.0.0.1:{t}?@127.0.0.1:{a}/"),
            403,
            trap_origin.clone(),
        ),
        // Schemes: https is another origin; the others are not proxied at all.
        (
            format!("https://127.0.0.1:{a}/"),
            403,
            not_allowed(&format!("https://127.0.0.1:{a}")),
        ),
        (
            "file:///etc/passwd".into(),
            403,
            not_allowed("http://file:80"),
        ),
        (
            format!("gopher://127.0.0.1:{a}/"),
            403,
            not_allowed("http://gopher:80"),
        ),
        (
            format!("ftp://127.0.0.1:{a}/"),
            403,
            not_allowed("http://ftp:80"),
        ),
        (
            format!("httpx://127.0.0.1:{a}/"),
            400,
            "only http and https".into(),
        ),
        (
            "javascript:alert(1)".into(),
            400,
            "javascript:alert(1)".into(),
        ),
        // Odd forms the URL parser normalises to 127.0.0.1, on the trap's port.
        (format!("http://2130706433:{t}/"), 403, trap_origin.clone()),
        (format!("http://0x7f.0.0.1:{t}/"), 403, trap_origin.clone()),
        (format!("http://0177.0.0.1:{t}/"), 403, trap_origin.clone()),
        (format!("http://127.1:{t}/"), 403, trap_origin.clone()),
        (
            format!("http://%31%32%37.0.0.1:{t}/"),
            403,
            trap_origin.clone(),
        ),
        (format!("HTTP://127.0.0.1:{t}/"), 403, trap_origin.clone()),
        (format!("hTtP://127.0.0.1:{t}/"), 403, trap_origin.clone()),
        (format!("http:127.0.0.1:{t}/"), 403, trap_origin.clone()),
        (format!("http:/\\127.0.0.1:{t}/"), 403, trap_origin.clone()),
        (format!("//127.0.0.1:{t}/"), 403, trap_origin.clone()),
        (format!("127.0.0.1:{t}"), 403, trap_origin.clone()),
        // Tabs and newlines are removed by the parser: still the trap's port.
        (format!("http://127.0.0.1:{t}\n/"), 403, trap_origin.clone()),
        (format!("http://127.0.0.1:\t{t}/"), 403, trap_origin.clone()),
        (
            format!("http://127.0.\r\n0.1:{t}/"),
            403,
            trap_origin.clone(),
        ),
        // A percent-encoded newline in the port or the host does not parse.
        (
            format!("http://127.0.0.1:{t}%0a/"),
            400,
            "invalid port number".into(),
        ),
        (
            format!("http://127.0.0.1%0a:{a}/"),
            400,
            "127.0.0.1%0a".into(),
        ),
        (
            "http://127.0.0.1:65536/".into(),
            400,
            "invalid port number".into(),
        ),
        // Nothing to reach.
        (String::new(), 400, "the origin is empty".into()),
        ("   ".into(), 400, "the origin is empty".into()),
        ("http://".into(), 400, "http://".into()),
    ];
    for (origin, status, reason) in &cases {
        assert_refused(running.addr, &proxied(origin), *status, reason).await;
    }

    // Missing or unusable parameters.
    let missing = "Required parameter 'origin' missing";
    assert_refused(running.addr, "/proxy.stream", 400, missing).await;
    assert_refused(running.addr, "/proxy.stream?", 400, missing).await;
    assert_refused(
        running.addr,
        &format!("/proxy.stream?stream=http://127.0.0.1:{a}/hystrix.stream"),
        400,
        missing,
    )
    .await;
    assert_refused(
        running.addr,
        "/proxy.stream?origin",
        400,
        "the origin is empty",
    )
    .await;
    // A header injection through the authorization parameter.
    assert_refused(
        running.addr,
        &format!(
            "{}&authorization=Basic%20x%0d%0aX-Injected:%201",
            proxied(&format!("http://127.0.0.1:{a}/hystrix.stream"))
        ),
        400,
        "the authorization value is not a valid header value",
    )
    .await;

    sleep(Duration::from_millis(50)).await;
    assert_eq!(trap.accepted(), 0, "the trap was reached");
    assert_eq!(
        upstream.accepted(),
        0,
        "a refused request reached the upstream"
    );
    assert_eq!(running.dashboard.proxied_streams(), 0);
}

#[tokio::test]
async fn without_an_allow_list_even_loopback_is_refused() {
    let upstream = Server::start(Behavior::Sse(vec![EVENT_1.into()])).await;
    let a = upstream.port();
    let running = serve(Dashboard::builder().build().unwrap()).await;
    assert!(running.dashboard.allow_list().origins().is_empty());
    for origin in [
        format!("http://127.0.0.1:{a}/"),
        format!("http://127.0.0.1:{a}/hystrix.stream"),
        format!("http://localhost:{a}/hystrix.stream"),
        format!("http://[::1]:{a}/hystrix.stream"),
    ] {
        assert_refused(
            running.addr,
            &proxied(&origin),
            403,
            "is not an allowed origin",
        )
        .await;
    }
    sleep(Duration::from_millis(50)).await;
    assert_eq!(upstream.accepted(), 0);
}

/// A non-ASCII origin whose fourth byte falls inside a character (which once made the
/// scheme check panic, dropping the connection without an answer).
#[tokio::test]
async fn non_ascii_origin_is_a_400_not_a_panic() {
    let upstream = Server::start(Behavior::Sse(vec![EVENT_1.into()])).await;
    let a = upstream.port();
    let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;
    for origin in ["aéé", "htté://127.0.0.1/", "é"] {
        let target = proxied(origin);
        let response = try_get(running.addr, &target, &[])
            .await
            .unwrap_or_else(|| panic!("{origin:?}: the connection closed without an answer"));
        let status = response.status;
        let body = response.text().await;
        assert!(matches!(status, 400 | 403), "{origin:?}: {status} {body}");
    }
    // The dashboard still answers.
    let response = get(running.addr, &proxied(&format!("http://127.0.0.1:{a}/"))).await;
    assert_eq!(response.status, 200);
}

// ===== 3, 4. what the upstream answers =====

#[tokio::test]
async fn redirects_are_not_followed() {
    let trap = Server::trap().await;
    let t = trap.port();
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let location = format!("http://127.0.0.1:{t}/hystrix.stream");
        let upstream = Server::start(Behavior::Status(
            status,
            vec![format!("Location: {location}")],
        ))
        .await;
        let a = upstream.port();
        let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;
        let response = get(
            running.addr,
            &proxied(&format!("http://127.0.0.1:{a}/hystrix.stream")),
        )
        .await;
        assert_eq!(response.status, 502, "{status}");
        let body = response.text().await;
        assert!(body.contains(&format!("answered {status}")), "{body}");
        assert!(body.contains(&format!("Location: {location}")), "{body}");
        assert!(body.contains("redirects are not followed"), "{body}");
        assert_eq!(upstream.accepted(), 1);
        assert_eq!(running.dashboard.proxied_streams(), 0);
    }
    sleep(Duration::from_millis(50)).await;
    assert_eq!(trap.accepted(), 0, "a redirect was followed");
}

#[tokio::test]
async fn non_200_upstream_is_a_502_naming_the_status() {
    for status in [
        "404 Not Found",
        "401 Unauthorized",
        "500 Internal Server Error",
        "204 No Content",
    ] {
        let upstream = Server::start(Behavior::Status(status, Vec::new())).await;
        let a = upstream.port();
        let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;
        let response = get(
            running.addr,
            &proxied(&format!("http://127.0.0.1:{a}/hystrix.stream")),
        )
        .await;
        assert_eq!(response.status, 502, "{status}");
        let body = response.text().await;
        assert!(
            body.contains(&format!("127.0.0.1:{a} answered {status}")),
            "{body}"
        );
        assert!(!body.contains("redirects"), "{body}");
        assert_eq!(running.dashboard.proxied_streams(), 0);
    }
}

// ===== 5. timeouts and unreachable upstreams =====

#[tokio::test]
async fn silent_upstream_is_a_504_after_the_idle_timeout() {
    let upstream = Server::start(Behavior::Silent).await;
    let a = upstream.port();
    let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;
    let start = Instant::now();
    let response = get(
        running.addr,
        &proxied(&format!("http://127.0.0.1:{a}/hystrix.stream")),
    )
    .await;
    let elapsed = start.elapsed();
    assert_eq!(response.status, 504);
    assert!(
        elapsed >= IDLE - Duration::from_millis(50) && elapsed < IDLE * 4,
        "answered after {elapsed:?}"
    );
    let body = response.text().await;
    assert!(
        body.contains("waiting for the stream's headers: no answer within 300 ms"),
        "{body}"
    );
    assert_eq!(upstream.accepted(), 1);
    assert_eq!(running.dashboard.proxied_streams(), 0);
}

#[tokio::test]
async fn stream_that_goes_silent_ends_after_the_idle_timeout() {
    let upstream = Server::start(Behavior::Sse(vec![EVENT_1.into()])).await;
    let a = upstream.port();
    let running = dashboard(&[format!("127.0.0.1:{a}")], 10).await;
    let mut response = get(
        running.addr,
        &proxied(&format!("http://127.0.0.1:{a}/hystrix.stream")),
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(response.wait_for(EVENT_1, LIMIT).await);
    let start = Instant::now();
    assert_eq!(running.dashboard.proxied_streams(), 1);
    assert!(response.wait_end(LIMIT).await, "the stream did not end");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= IDLE - Duration::from_millis(100) && elapsed < IDLE * 4,
        "ended after {elapsed:?}"
    );
    assert_eq!(response.body().0, format!("data: {EVENT_1}\n\n"));
    assert!(
        eventually(LIMIT, || running.dashboard.proxied_streams() == 0).await,
        "the slot of the ended stream was not released"
    );
}

#[tokio::test]
async fn allowed_but_closed_port_is_a_502() {
    let port = closed_port().await;
    let running = dashboard(&[format!("127.0.0.1:{port}")], 10).await;
    let response = get(
        running.addr,
        &proxied(&format!("http://127.0.0.1:{port}/hystrix.stream")),
    )
    .await;
    assert_eq!(response.status, 502);
    let body = response.text().await;
    assert!(
        body.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{body}"
    );
    assert_eq!(running.dashboard.proxied_streams(), 0);
}

// ===== 6. the cap on proxied streams =====

#[tokio::test]
async fn max_streams_caps_proxied_streams_and_frees_slots() {
    let upstream = Server::start(Behavior::Ticking).await;
    let a = upstream.port();
    let running = dashboard(&[format!("127.0.0.1:{a}")], 2).await;
    let target = proxied(&format!("http://127.0.0.1:{a}/hystrix.stream"));

    let mut first = get(running.addr, &target).await;
    let mut second = get(running.addr, &target).await;
    for response in [&mut first, &mut second] {
        assert_eq!(response.status, 200);
        assert!(response.wait_for(r#""type":"tick""#, LIMIT).await);
    }
    assert_eq!(running.dashboard.proxied_streams(), 2);

    let third = get(running.addr, &target).await;
    assert_eq!(third.status, 503);
    let body = third.text().await;
    assert!(
        body.contains("MaxConcurrentConnections reached: 2 proxied streams"),
        "{body}"
    );
    assert_eq!(
        upstream.accepted(),
        2,
        "the refused stream reached the upstream"
    );

    // The client goes away: its slot is freed.
    drop(first);
    assert!(
        eventually(Duration::from_secs(2), || running
            .dashboard
            .proxied_streams()
            == 1)
        .await,
        "still {} proxied streams",
        running.dashboard.proxied_streams()
    );
    let mut fourth = get(running.addr, &target).await;
    assert_eq!(fourth.status, 200);
    assert!(fourth.wait_for(r#""type":"tick""#, LIMIT).await);
    assert_eq!(running.dashboard.proxied_streams(), 2);
    assert_eq!(upstream.accepted(), 3);
    // The stream kept open still flows.
    assert!(
        second.fill(Instant::now() + LIMIT).await,
        "the second stream stopped"
    );
}
