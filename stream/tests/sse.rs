#![allow(clippy::unwrap_used)]
//! The stream endpoints: framing, ticks, `?delay=`, the connection limit, slots, slow
//! clients, CORS and authentication. Timing tests run the router in tokio's paused time;
//! tests over real sockets (127.0.0.1, port 0) use short real intervals and bounded waits.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use hystrix_core::{
    CircuitStatus, CommandKey, CommandMetrics, CommandReport, CommandSettingsReport, CommandSource,
    HystrixEventType as Ev, MetricsConfig, ThreadPoolKey, ThreadPoolMetrics, ThreadPoolReport,
    ThreadPoolSettingsReport, ThreadPoolSource,
};
use hystrix_stream::{HystrixStream, MetricsRegistry};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    time::{Instant, sleep, timeout},
};
use tower::ServiceExt;

// ===== sources =====

/// A command recording into real metrics, counting how often the stream reads it.
struct Counted {
    metrics: CommandMetrics,
    reads: Arc<AtomicUsize>,
}

impl CommandSource for Counted {
    fn key(&self) -> &CommandKey {
        self.metrics.key()
    }
    fn report(&self) -> CommandReport {
        self.reads.fetch_add(1, Ordering::Relaxed);
        CommandReport {
            metrics: self.metrics.snapshot(),
            circuit: CircuitStatus::Closed,
            settings: CommandSettingsReport::default(),
        }
    }
}

struct FixedPool(ThreadPoolReport);

impl ThreadPoolSource for FixedPool {
    fn key(&self) -> &ThreadPoolKey {
        &self.0.key
    }
    fn report(&self) -> ThreadPoolReport {
        self.0.clone()
    }
}

fn pool(name: &str, completed: u64) -> Arc<FixedPool> {
    Arc::new(FixedPool(ThreadPoolReport {
        key: name.into(),
        metrics: ThreadPoolMetrics {
            completed_task_count: completed,
            core_pool_size: 10,
            ..ThreadPoolMetrics::default()
        },
        settings: ThreadPoolSettingsReport::default(),
    }))
}

/// A registry with `commands` commands named `prefix0`, `prefix1`, ... (one success each), a
/// pool that has completed tasks and one that has not; and the count of command reads.
fn registry_with(commands: usize, prefix: &str) -> (MetricsRegistry, Arc<AtomicUsize>) {
    let registry = MetricsRegistry::new();
    let reads = Arc::new(AtomicUsize::new(0));
    for i in 0..commands {
        let metrics = CommandMetrics::new(
            format!("{prefix}{i}"),
            "Group",
            "Busy",
            MetricsConfig::default(),
        );
        metrics.mark(Ev::Success);
        registry.register_command(Arc::new(Counted {
            metrics,
            reads: reads.clone(),
        }));
    }
    registry.register_pool(pool("Busy", 3));
    registry.register_pool(pool("Idle", 0));
    (registry, reads)
}

fn registry() -> MetricsRegistry {
    registry_with(1, "GetUser").0
}

// ===== in-process requests (paused time) =====

async fn get(stream: &HystrixStream, uri: &str) -> http::Response<Body> {
    send(stream, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn send(stream: &HystrixStream, request: Request<Body>) -> http::Response<Body> {
    stream.router().oneshot(request).await.unwrap()
}

async fn next_chunk(body: &mut Body) -> Bytes {
    body.frame().await.unwrap().unwrap().into_data().unwrap()
}

/// The next chunks as `(ms since start, 'D' for data or 'P' for ping)`.
async fn schedule(body: &mut Body, start: Instant, n: usize) -> Vec<(u128, char)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let chunk = next_chunk(body).await;
        let kind = if &chunk[..] == b"ping: \n\n" {
            'P'
        } else {
            assert!(chunk.starts_with(b"data: {") && chunk.ends_with(b"}\n\n"));
            'D'
        };
        out.push(((Instant::now() - start).as_millis(), kind));
    }
    out
}

/// The JSON events of a data chunk.
fn events(chunk: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(chunk).unwrap();
    assert!(text.ends_with("\n\n"));
    text.split_terminator("\n\n")
        .map(|event| serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn data_at_once_then_every_interval_and_a_ping_every_interval() {
    let stream = HystrixStream::new().registry(registry());
    let start = Instant::now();
    let response = get(&stream, "/hystrix.stream").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();

    let first = next_chunk(&mut body).await;
    let events = events(&first);
    let types: Vec<_> = events.iter().map(|e| e["type"].clone()).collect();
    assert_eq!(types, ["HystrixCommand", "HystrixThreadPool"]);
    assert_eq!(events[0]["name"], "GetUser0");
    assert_eq!(events[1]["name"], "Busy", "the idle pool is not published");
    assert!(events[0]["currentTime"].as_u64().unwrap() > 1_600_000_000_000);

    assert_eq!(
        schedule(&mut body, start, 6).await,
        [
            (500, 'D'),
            (500, 'P'),
            (1000, 'D'),
            (1000, 'P'),
            (1500, 'D'),
            (1500, 'P')
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn pings_flow_when_nothing_is_registered() {
    let stream = HystrixStream::new()
        .registry(MetricsRegistry::new())
        .interval(Duration::from_millis(300));
    let start = Instant::now();
    let mut body = get(&stream, "/hystrix.stream").await.into_body();
    assert_eq!(
        schedule(&mut body, start, 3).await,
        [(300, 'P'), (600, 'P'), (900, 'P')]
    );
}

#[tokio::test(start_paused = true)]
async fn delay_sets_the_tick_and_is_clamped_to_the_minimum() {
    let stream = HystrixStream::new().registry(registry());

    let start = Instant::now();
    let mut body = get(&stream, "/hystrix.stream?delay=200").await.into_body();
    assert_eq!(
        schedule(&mut body, start, 8).await,
        [
            (0, 'D'),
            (200, 'D'),
            (400, 'D'),
            (500, 'P'),
            (600, 'D'),
            (800, 'D'),
            (1000, 'D'),
            (1000, 'P')
        ],
        "data every 200 ms, pings every 500 ms"
    );

    let start = Instant::now();
    let mut body = get(&stream, "/hystrix.stream?delay=1").await.into_body();
    let ticks: Vec<_> = schedule(&mut body, start, 4).await;
    assert_eq!(ticks.iter().map(|t| t.1).collect::<String>(), "DDDD");
    let gaps: Vec<_> = ticks.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert_eq!(gaps, [100, 100, 100], "raised to the 100 ms minimum");

    let stream = stream.min_delay(Duration::from_millis(250));
    for query in ["delay=1", "delay=-40", "delay=0"] {
        let start = Instant::now();
        let mut body = get(&stream, &format!("/hystrix.stream?{query}"))
            .await
            .into_body();
        let ticks = schedule(&mut body, start, 3).await;
        assert_eq!(ticks.iter().map(|t| t.1).collect::<String>(), "DDD");
        assert_eq!(ticks[2].0 - ticks[1].0, 250, "{query}");
    }

    for query in [
        "delay=abc",
        "delay=",
        "delay=1.5",
        "delay=%31%30",
        "x&&=&delay",
    ] {
        let start = Instant::now();
        let response = get(&stream, &format!("/hystrix.stream?{query}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let mut body = response.into_body();
        let ticks = schedule(&mut body, start, 3).await;
        assert_eq!(
            ticks[1..],
            [(500, 'D'), (500, 'P')],
            "{query}: ignored, the default interval"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn one_encoding_per_tick_whatever_the_number_of_clients() {
    let (registry, reads) = registry_with(3, "C");
    let stream = HystrixStream::new().registry(registry);
    let router = stream.router();
    let mut clients = Vec::new();
    for _ in 0..20 {
        let request = Request::get("/hystrix.stream").body(Body::empty()).unwrap();
        let mut body = router.clone().oneshot(request).await.unwrap().into_body();
        clients.push(tokio::spawn(async move {
            let mut data = 0;
            while data < 11 {
                if next_chunk(&mut body).await.starts_with(b"data: ") {
                    data += 1;
                }
            }
            body
        }));
    }
    let mut bodies = Vec::new();
    for client in clients {
        bodies.push(client.await.unwrap());
    }
    let stats = stream.stats();
    assert_eq!(stats.open_connections, 20);
    assert_eq!(stats.frames_encoded, 11, "the first frame and 10 ticks");
    assert_eq!(reads.load(Ordering::Relaxed), 11 * 3, "3 commands a tick");
    drop(bodies);
    assert_eq!(stream.open_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn utilization_and_configuration_streams() {
    let stream = HystrixStream::new().registry(registry());

    let start = Instant::now();
    let mut body = get(&stream, "/hystrix/utilization.stream")
        .await
        .into_body();
    let event = &events(&next_chunk(&mut body).await)[0];
    assert_eq!(event["type"], "HystrixUtilization");
    assert_eq!(event["commands"]["GetUser0"]["activeCount"], 0);
    assert_eq!(event["threadpools"]["Busy"]["corePoolSize"], 10);
    assert_eq!(
        schedule(&mut body, start, 2).await,
        [(500, 'D'), (500, 'P')]
    );

    let start = Instant::now();
    let mut body = get(&stream, "/hystrix/config.stream").await.into_body();
    let event = &events(&next_chunk(&mut body).await)[0];
    assert_eq!(event["type"], "HystrixConfig");
    assert_eq!(event["commands"]["GetUser0"]["groupKey"], "Group");
    assert_eq!(event["threadpools"]["Idle"]["coreSize"], 10);
    let ticks = schedule(&mut body, start, 11).await;
    assert_eq!(ticks[9], (5000, 'D'), "every 5 s, a ping every 500 ms");
    assert_eq!(ticks.iter().map(|t| t.1).collect::<String>(), "PPPPPPPPPDP");
}

#[tokio::test(start_paused = true)]
async fn above_the_limit_a_503_and_a_dropped_body_frees_its_slot() {
    let stream = HystrixStream::new().registry(registry()).max_connections(2);
    let first = get(&stream, "/hystrix.stream").await;
    let second = get(&stream, "/hystrix/config.stream").await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(stream.open_connections(), 2);

    for path in ["/hystrix.stream", "/hystrix/utilization.stream"] {
        let refused = get(&stream, path).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = refused.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"MaxConcurrentConnections reached: 2");
    }
    assert_eq!(stream.open_connections(), 2, "a refusal takes no slot");

    drop(first);
    assert_eq!(stream.open_connections(), 1);
    let third = get(&stream, "/hystrix.stream").await;
    assert_eq!(third.status(), StatusCode::OK);

    let none = HystrixStream::new().registry(registry()).max_connections(0);
    assert_eq!(
        get(&none, "/hystrix.stream").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(start_paused = true)]
async fn head_requests_take_no_slot() {
    let stream = HystrixStream::new().registry(registry()).max_connections(1);
    let _open = get(&stream, "/hystrix.stream").await;
    for _ in 0..10 {
        let head = send(
            &stream,
            Request::head("/hystrix.stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(head.status(), StatusCode::OK, "not a 503 at the limit");
        assert_eq!(
            head.headers()[header::CONTENT_TYPE],
            "text/event-stream;charset=UTF-8"
        );
        let body = head.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
    }
    assert_eq!(stream.open_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn odd_paths_and_methods() {
    let stream = HystrixStream::new().registry(registry());
    for path in [
        "/hystrix.stream/",
        "/hystrix.stream/x",
        "/hystrix",
        "/hystrix/",
        "/Hystrix.stream",
        "/hystrix/requests.stream",
    ] {
        assert_eq!(
            get(&stream, path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let response = send(
            &stream,
            Request::builder()
                .method(method.clone())
                .uri("/hystrix.stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }
    assert_eq!(stream.open_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn cors_headers_only_when_configured() {
    let plain = HystrixStream::new().registry(registry());
    let response = get(&plain, "/hystrix.stream").await;
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let cors = HystrixStream::new()
        .registry(registry())
        .max_connections(1)
        .allow_origin(HeaderValue::from_static("https://dash.example"));
    let open = get(&cors, "/hystrix.stream").await;
    let refused = get(&cors, "/hystrix.stream").await;
    for response in [&open, &refused] {
        assert_eq!(
            response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://dash.example"
        );
    }
    let preflight = send(
        &cors,
        Request::options("/hystrix/config.stream")
            .header(header::ORIGIN, "https://dash.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://dash.example"
    );
    assert_eq!(cors.open_connections(), 1, "a preflight takes no slot");
}

#[tokio::test(start_paused = true)]
async fn authentication_401_then_200() {
    let with = |value: &[u8]| {
        Request::get("/hystrix.stream")
            .header(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).unwrap(),
            )
            .body(Body::empty())
            .unwrap()
    };

    let bearer = HystrixStream::new()
        .registry(registry())
        .bearer_token("s3cret");
    let refused = get(&bearer, "/hystrix.stream").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"hystrix.stream\""
    );
    for bad in [
        &b"Bearer s3cre"[..],
        b"Bearer s3cret2",
        b"Basic s3cret",
        b"s3cret",
        b"Bearer",
        b"",
        b"Bearer \xff\xfe",
    ] {
        let response = send(&bearer, with(bad)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    let head = send(
        &bearer,
        Request::head("/hystrix.stream")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bearer.open_connections(), 0, "a 401 takes no slot");
    let ok = send(&bearer, with(b"Bearer s3cret")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(bearer.open_connections(), 1);

    let basic = HystrixStream::new()
        .registry(registry())
        .basic_auth("foo", "bar");
    let refused = send(&basic, with(b"Basic Zm9vOmJheg==")).await; // foo:baz
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"hystrix.stream\", charset=\"UTF-8\""
    );
    let ok = send(&basic, with(b"Basic Zm9vOmJhcg==")).await; // foo:bar
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        !format!("{basic:?}").contains("Zm9v"),
        "credentials redacted"
    );
}

// ===== over real sockets =====

async fn serve(stream: &HystrixStream) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(stream.serve(listener));
    addr
}

async fn request(addr: SocketAddr, head: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
}

fn get_request(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n")
}

/// A response's status, lower-cased headers and the body bytes read with them.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    rest: Vec<u8>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn read_head(socket: &mut TcpStream) -> Head {
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 4096];
        let n = timeout(Duration::from_secs(5), socket.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let text = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Head {
        status,
        headers,
        rest: buf[end + 4..].to_vec(),
    }
}

/// Reads until `buf` holds `needle`, within `limit`.
async fn read_until(socket: &mut TcpStream, buf: &mut Vec<u8>, needle: &[u8], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut chunk = vec![0u8; 64 * 1024];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        let n = tokio::time::timeout_at(deadline, socket.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {:?} within {limit:?}", String::from_utf8_lossy(needle)))
            .unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Waits up to `limit` for `condition`.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        sleep(Duration::from_millis(10)).await;
    }
    condition()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_headers_data_and_pings() {
    let stream = HystrixStream::new()
        .registry(registry())
        .interval(Duration::from_millis(100));
    let addr = serve(&stream).await;

    let mut socket = request(addr, &get_request("/hystrix.stream", "")).await;
    let head = read_head(&mut socket).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/event-stream;charset=UTF-8")
    );
    assert_eq!(
        head.header("cache-control"),
        Some("no-cache, no-store, max-age=0, must-revalidate")
    );
    assert_eq!(head.header("pragma"), Some("no-cache"));
    assert_eq!(head.header("access-control-allow-origin"), None);

    let mut buf = head.rest;
    read_until(&mut socket, &mut buf, b"ping: \n\n", Duration::from_secs(5)).await;
    read_until(&mut socket, &mut buf, b"}\n\n", Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&buf);
    let start = text.find("data: ").unwrap() + "data: ".len();
    let end = start + text[start..].find("\n\n").unwrap();
    let event: Value = serde_json::from_str(&text[start..end]).unwrap();
    assert_eq!(event["type"], "HystrixCommand");
    assert_eq!(event["name"], "GetUser0");
    assert_eq!(stream.open_connections(), 1);
    drop(socket);
    assert!(eventually(Duration::from_secs(5), || stream.open_connections() == 0).await);
}

/// Data events received within `window` on a stream asked for with `query`.
async fn data_events_within(addr: SocketAddr, query: &str, window: Duration) -> usize {
    let mut socket = request(addr, &get_request(&format!("/hystrix.stream{query}"), "")).await;
    let head = read_head(&mut socket).await;
    assert_eq!(head.status, 200);
    let mut buf = head.rest;
    let deadline = Instant::now() + window;
    let mut chunk = vec![0u8; 64 * 1024];
    while let Ok(read) = tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
        let n = read.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    // One command and one pool per tick.
    let text = String::from_utf8_lossy(&buf);
    text.matches("data: {\"type\":\"HystrixCommand\"").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_delay_is_honoured_and_clamped() {
    let stream = HystrixStream::new()
        .registry(registry())
        .interval(Duration::from_millis(400))
        .min_delay(Duration::from_millis(100));
    let addr = serve(&stream).await;
    let window = Duration::from_millis(1200);
    let (default, fast, clamped, ignored) = tokio::join!(
        data_events_within(addr, "", window),
        data_events_within(addr, "?delay=100", window),
        data_events_within(addr, "?delay=1", window),
        data_events_within(addr, "?delay=fast", window),
    );
    // 1 at once, then about 3 (400 ms) or 12 (100 ms) ticks.
    assert!((2..=5).contains(&default), "default: {default}");
    assert!((8..=15).contains(&fast), "delay=100: {fast}");
    assert!(
        (8..=15).contains(&clamped),
        "delay=1, clamped to 100: {clamped}"
    );
    assert!((2..=5).contains(&ignored), "delay=fast, ignored: {ignored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_503_above_the_limit() {
    let stream = HystrixStream::new().registry(registry()).max_connections(2);
    let addr = serve(&stream).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut socket = request(addr, &get_request("/hystrix.stream", "")).await;
        assert_eq!(read_head(&mut socket).await.status, 200);
        open.push(socket);
    }
    let mut socket = request(addr, &get_request("/hystrix.stream", "")).await;
    let head = read_head(&mut socket).await;
    assert_eq!(head.status, 503);
    let mut body = head.rest;
    read_until(
        &mut socket,
        &mut body,
        b"MaxConcurrentConnections reached: 2",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(&body[..], b"MaxConcurrentConnections reached: 2");
    assert_eq!(stream.open_connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_connect_disconnect_cycles_leave_every_slot_free() {
    let max = 5;
    let stream = HystrixStream::new()
        .registry(registry())
        .interval(Duration::from_millis(50))
        .max_connections(max);
    let addr = serve(&stream).await;
    for cycle in 0..100 {
        // A leaked slot would make this wait fail after `max` cycles.
        assert!(
            eventually(Duration::from_secs(5), || stream.open_connections() < max).await,
            "cycle {cycle}: {} slots still taken",
            stream.open_connections()
        );
        let mut socket = request(addr, &get_request("/hystrix.stream", "")).await;
        let head = read_head(&mut socket).await;
        assert_eq!(head.status, 200, "cycle {cycle}");
        let mut buf = head.rest;
        read_until(&mut socket, &mut buf, b"}\n\n", Duration::from_secs(5)).await;
        if cycle % 2 == 0 {
            // Half of the clients leave a clean close behind, half unread data (a reset).
            socket.shutdown().await.unwrap();
        }
    }
    assert!(
        eventually(Duration::from_secs(5), || stream.open_connections() == 0).await,
        "{} slots still taken",
        stream.open_connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_client_that_never_reads_costs_bounded_memory() {
    // About 1 MB a tick, every 50 ms: 20 MB/s for whoever reads.
    let (registry, _) = registry_with(300, &"N".repeat(1000));
    let stream = HystrixStream::new()
        .registry(registry)
        .interval(Duration::from_millis(50))
        .min_delay(Duration::from_millis(50));
    let addr = serve(&stream).await;

    // A client with a tiny receive buffer that never reads a byte.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    stalled
        .write_all(get_request("/hystrix.stream", "").as_bytes())
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || stream.open_connections() == 1).await);

    // Everything handed to the server so far is the stalled client's. Without backpressure it
    // would grow by ~20 MB every second; it must stop at what its buffers hold.
    sleep(Duration::from_secs(1)).await;
    let at_1s = stream.stats().bytes_sent;
    sleep(Duration::from_millis(1500)).await;
    let at_2_5s = stream.stats().bytes_sent;
    let frame: u64 = 300 * 3_000;
    assert!(
        at_2_5s < 8 * 1024 * 1024,
        "{at_2_5s} bytes taken by a client that reads nothing"
    );
    assert!(
        at_2_5s - at_1s <= 2 * frame,
        "still growing: {at_1s} then {at_2_5s}"
    );

    // Meanwhile another client is served at full rate.
    let mut reader = request(addr, &get_request("/hystrix.stream", "")).await;
    let head = read_head(&mut reader).await;
    assert_eq!(head.status, 200);
    let mut buf = head.rest;
    let mut data = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while data < 300 * 10 {
        let n = tokio::time::timeout_at(deadline, reader.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("{data} events in 10 s"))
            .unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
        data += count_and_drain(&mut buf, b"data: {\"type\":\"HystrixCommand\"");
    }
    assert_eq!(stream.open_connections(), 2);
    let total = stream.stats().bytes_sent;
    assert!(total > at_2_5s + 9 * frame, "the reader got its ticks");

    // The stalled client leaves (with unread data: a reset): its slot frees.
    drop(stalled);
    assert!(eventually(Duration::from_secs(5), || stream.open_connections() == 1).await);
    drop(reader);
    assert!(eventually(Duration::from_secs(5), || stream.open_connections() == 0).await);
}

/// Counts `needle` in `buf` and keeps only a tail that may hold the start of the next one.
fn count_and_drain(buf: &mut Vec<u8>, needle: &[u8]) -> usize {
    let count = buf.windows(needle.len()).filter(|w| *w == needle).count();
    let keep = buf.len().min(needle.len() - 1);
    buf.drain(..buf.len() - keep);
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_cors_and_authentication() {
    let plain = serve(&HystrixStream::new().registry(registry())).await;
    let mut socket = request(plain, &get_request("/hystrix.stream", "")).await;
    assert_eq!(
        read_head(&mut socket)
            .await
            .header("access-control-allow-origin"),
        None
    );

    let stream = HystrixStream::new()
        .registry(registry())
        .allow_origin(HeaderValue::from_static("*"))
        .basic_auth("foo", "bar");
    let addr = serve(&stream).await;

    let mut socket = request(addr, &get_request("/hystrix.stream", "")).await;
    let head = read_head(&mut socket).await;
    assert_eq!(head.status, 401);
    assert_eq!(
        head.header("www-authenticate"),
        Some("Basic realm=\"hystrix.stream\", charset=\"UTF-8\"")
    );
    assert_eq!(head.header("access-control-allow-origin"), Some("*"));

    let mut socket = request(
        addr,
        &get_request("/hystrix.stream", "Authorization: Basic Zm9vOmJhcg==\r\n"),
    )
    .await;
    let head = read_head(&mut socket).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("access-control-allow-origin"), Some("*"));
    let mut buf = head.rest;
    read_until(&mut socket, &mut buf, b"}\n\n", Duration::from_secs(5)).await;
    assert_eq!(stream.open_connections(), 1);
}
