#![allow(clippy::unwrap_used)]
//! The Redis shared tier of the stale-if-error cache, against a real `redis-server` started by
//! each test on a free loopback port (no persistence). A missing `redis-server` fails the tests:
//! `scripts/test.sh` installs it.
//!
//! These tests run in real time (sockets ignore tokio's paused time); every wait is bounded.

use std::{
    future::Future,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command as Process, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};
use tower_hystrix::{
    Command, CommandError, CommandLayer, ErrorKind, FallbackError, HystrixEventType, Registry,
    cache::{CacheValue, RedisTier, RedisTierConfig, SharedTier, Stale, StaleCache, Tier},
};

/// "Does not hang": far above anything the tier should take, far below a hung test.
const NO_HANG: Duration = Duration::from_secs(2);
/// How long the cache waits on the shared tier (the tier's own timeout is the same).
const SHARED_TIMEOUT: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// A real redis-server.

/// A `redis-server` on a loopback port, killed on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    fn start() -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        server.restart();
        server
    }

    /// Starts the server (again) on its port, and waits until it answers.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let child = Process::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install the Debian package redis-server \
                     (scripts/test.sh does)"
                )
            });
        self.child = Some(child);
        let deadline = std::time::Duration::from_secs(10);
        let mut waited = Duration::ZERO;
        while !ping(self.port) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server exited at start: {status}");
            }
            assert!(
                waited < deadline,
                "redis-server did not answer within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
            waited += Duration::from_millis(20);
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the server.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Process::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    /// A raw connection, for writing what the tier would not.
    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped process.
        self.stop();
    }
}

/// Whether a Redis answers `PING` on `port`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    stream.set_read_timeout(timeout).unwrap();
    stream.set_write_timeout(timeout).unwrap();
    let mut reply = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// A server that accepts connections and never answers: a hung Redis.
fn hung_redis() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Lives until the test process ends; it only holds the sockets it accepted.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// Waits (in real time, at most `limit`) until `done` holds.
async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not {what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `fut`, failing the test if it takes longer than [`NO_HANG`]; returns its output and
/// how long it took.
async fn bounded<F: Future>(what: &str, fut: F) -> (F::Output, Duration) {
    let start = Instant::now();
    let out = tokio::time::timeout(NO_HANG, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung (more than {NO_HANG:?})"));
    (out, start.elapsed())
}

// ---------------------------------------------------------------------------------------------
// An instance of a service calling a dependency through a command with a shared stale cache.

/// The dependency's response: serde, and records when it is served stale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    body: String,
    #[serde(skip)]
    stale: Option<Stale>,
}

impl CacheValue for Profile {
    fn mark_stale(&mut self, stale: Stale) {
        self.stale = Some(stale);
    }
}

fn profile(body: &str) -> Profile {
    Profile {
        body: body.to_owned(),
        stale: None,
    }
}

/// One instance of the service: its own registry (so that its command shares nothing with
/// another instance's), its own stale cache and Redis tier, and a dependency that is up or down.
struct Instance {
    layer: CommandLayer<String, Profile>,
    service: BoxCloneService<String, Profile, CommandError>,
    up: Arc<AtomicBool>,
    tier: RedisTier<Profile>,
    cache: StaleCache<Profile>,
}

impl Instance {
    fn new(url: &str, up: bool) -> Self {
        Self::with_config(url, RedisTierConfig::default(), up)
    }

    fn with_config(url: &str, config: RedisTierConfig, up: bool) -> Self {
        let tier = RedisTier::new(url, config).unwrap();
        let cache = StaleCache::new(1_000, Duration::from_secs(600))
            .with_shared(tier.clone(), SHARED_TIMEOUT);
        let layer = Command::builder::<String, Profile>("GetProfile")
            .registry(&Registry::new())
            .cache_key(|req: &String| Some(req.clone()))
            .stale_cache(cache.clone())
            .build()
            .unwrap();
        let up = Arc::new(AtomicBool::new(up));
        let dependency = {
            let up = up.clone();
            service_fn(move |req: String| {
                let up = up.load(Ordering::SeqCst);
                async move {
                    if up {
                        Ok(profile(&format!("profile of {req}")))
                    } else {
                        Err(std::io::Error::other("dependency down"))
                    }
                }
            })
        };
        let service = BoxCloneService::new(layer.layer(dependency));
        Self {
            layer,
            service,
            up,
            tier,
            cache,
        }
    }

    async fn call(&self, req: &str) -> Result<Profile, CommandError> {
        self.service.clone().oneshot(req.to_owned()).await
    }

    fn count(&self, event: HystrixEventType) -> u64 {
        self.layer.command().metrics().snapshot().counts.get(event)
    }

    async fn connected(&self) {
        wait_until("connected to redis", Duration::from_secs(5), || {
            self.tier.is_connected()
        })
        .await;
    }
}

/// The error of a call that failed with nothing to serve instead.
fn assert_failed_without_fallback(result: Result<Profile, CommandError>) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    assert!(
        matches!(err.fallback(), Some(FallbackError::Missing)),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

/// Instance A caches a response; instance B, which never saw the key, serves it when its own
/// dependency fails, marked stale and from the shared tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_across_instances() {
    let server = RedisServer::start();
    let a = Instance::new(&server.url(), true);
    let b = Instance::new(&server.url(), false);
    a.connected().await;
    b.connected().await;

    let fresh = a.call("user/1").await.unwrap();
    assert_eq!(fresh, profile("profile of user/1"));
    wait_until("written to redis", Duration::from_secs(5), || {
        a.tier.writes() == 1
    })
    .await;

    // Stored under the prefix, with the TTL, as JSON with the time it was stored.
    let mut raw = server.raw().await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg("hystrix:stale:user/1")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(0 < ttl && ttl <= 600_000, "PTTL {ttl}");
    let stored: String = redis::cmd("GET")
        .arg("hystrix:stale:user/1")
        .query_async(&mut raw)
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["value"]["body"], "profile of user/1");
    assert!(stored["stored_ms"].as_u64().unwrap() > 1_600_000_000_000);

    assert_eq!(b.cache.local_len(), 0, "B never saw the key");
    let (served, _) = bounded("B's call", b.call("user/1")).await;
    let served = served.unwrap();
    assert_eq!(served.body, "profile of user/1");
    let stale = served.stale.expect("served stale");
    assert_eq!(stale.tier(), Tier::Shared);
    assert!(stale.age() < Duration::from_secs(10), "{stale:?}");

    assert_eq!(b.count(HystrixEventType::Failure), 1);
    assert_eq!(b.count(HystrixEventType::FallbackSuccess), 1);
    assert_eq!(b.count(HystrixEventType::FallbackMissing), 0);
    assert_eq!(b.cache.served(), (0, 1));
    assert_eq!(b.tier.hits(), 1);
    assert_eq!(a.count(HystrixEventType::Success), 1);
    assert_eq!(a.tier.errors() + b.tier.errors(), 0);
    assert_eq!(a.tier.dropped_writes(), 0);
}

/// With Redis gone, an instance still serves what it cached itself; a call for a key nobody
/// cached fails with the command's error, without hanging; writes are dropped at once; and the
/// tier reconnects when Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped() {
    let mut server = RedisServer::start();
    let b = Instance::new(&server.url(), true);
    b.connected().await;
    b.call("user/2").await.unwrap();
    wait_until("written to redis", Duration::from_secs(5), || {
        b.tier.writes() == 1
    })
    .await;

    server.stop();
    b.up.store(false, Ordering::SeqCst);

    // At once, before the tier may have noticed, and again once it has.
    for round in ["just stopped", "noticed"] {
        let (served, _) = bounded("a call served locally", b.call("user/2")).await;
        let served = served.unwrap();
        assert_eq!(served.body, "profile of user/2", "{round}");
        assert_eq!(served.stale.unwrap().tier(), Tier::Local, "{round}");

        let (result, took) = bounded("a call nobody cached", b.call("user/unknown")).await;
        assert_failed_without_fallback(result);
        assert!(took < NO_HANG, "{round}: {took:?}");

        if round == "just stopped" {
            wait_until("disconnected", Duration::from_secs(5), || {
                !b.tier.is_connected()
            })
            .await;
        }
    }
    assert_eq!(b.count(HystrixEventType::FallbackSuccess), 2);
    assert_eq!(b.count(HystrixEventType::FallbackMissing), 2);

    // Disconnected: lookups answer at once, writes are dropped at once.
    let (hit, _) = bounded("a lookup", b.tier.get("user/2")).await;
    assert!(hit.is_none());
    let dropped = b.tier.dropped_writes();
    put_a_thousand_at_once(&b);
    assert_eq!(b.tier.dropped_writes(), dropped + 1_000);

    // Back: the tier reconnects in the background, and writes flow again.
    tokio::task::block_in_place(|| server.restart());
    wait_until("reconnected", Duration::from_secs(15), || {
        b.tier.is_connected()
    })
    .await;
    assert_eq!(b.tier.connects(), 2);
    b.up.store(true, Ordering::SeqCst);
    b.call("user/3").await.unwrap();
    wait_until("written after reconnecting", Duration::from_secs(5), || {
        b.tier.writes() == 2
    })
    .await;
}

/// A Redis that accepts connections and never answers: calls still complete within bounds,
/// and writes never block the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung_from_the_start() {
    let port = hung_redis();
    let b = Instance::new(&format!("redis://127.0.0.1:{port}/"), false);
    // Long enough for the tier to be connecting (its handshake will never be answered).
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (result, _) = bounded("a failing call", b.call("user/1")).await;
    assert_failed_without_fallback(result);
    let (hit, _) = bounded("a lookup", b.tier.get("user/1")).await;
    assert!(hit.is_none());

    put_a_thousand_at_once(&b);
    assert_eq!(b.tier.dropped_writes(), 1_000);

    // The connection attempt gives up (connect timeout 1 s) and is retried; never connected.
    wait_until(
        "a failed connection attempt",
        Duration::from_secs(5),
        || b.tier.errors() >= 1,
    )
    .await;
    assert!(!b.tier.is_connected());
    assert_eq!(b.tier.writes(), 0);
}

/// A Redis that stops answering on established connections (the process is frozen with
/// SIGSTOP): lookups give up at the timeout, writes beyond the in-flight bound are dropped,
/// the health check drops the connection, and the tier reconnects once Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_after_connecting() {
    let server = RedisServer::start();
    let config = RedisTierConfig {
        max_in_flight_writes: 4,
        ..RedisTierConfig::default()
    };
    let a = Instance::with_config(&server.url(), config, true);
    let b = Instance::new(&server.url(), false);
    a.connected().await;
    b.connected().await;
    a.call("user/1").await.unwrap();
    wait_until("written to redis", Duration::from_secs(5), || {
        a.tier.writes() == 1
    })
    .await;

    server.signal("-STOP");

    // B's lookup of a key that is in Redis cannot be answered: the call fails, in bounded time.
    let (result, _) = bounded("a failing call", b.call("user/1")).await;
    assert_failed_without_fallback(result);

    // Writes return at once; at most 4 wait on Redis, the others are dropped.
    let start = Instant::now();
    for i in 0..100 {
        a.tier.put(&format!("other/{i}"), &profile("x"));
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(a.tier.dropped_writes() >= 1, "{}", a.tier.dropped_writes());
    wait_until("writes timed out", Duration::from_secs(5), || {
        a.tier.errors() >= 1
    })
    .await;

    // The health check notices; lookups then miss at once.
    wait_until("disconnected", Duration::from_secs(5), || {
        !b.tier.is_connected()
    })
    .await;
    let (result, _) = bounded("a failing call", b.call("user/1")).await;
    assert_failed_without_fallback(result);

    server.signal("-CONT");
    wait_until("reconnected", Duration::from_secs(15), || {
        b.tier.is_connected()
    })
    .await;
    let (served, _) = bounded("B's call", b.call("user/1")).await;
    assert_eq!(served.unwrap().stale.unwrap().tier(), Tier::Shared);
}

/// Garbage under a key is a miss, never a panic; a value written by hand in the documented
/// format is served with its age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_a_miss() {
    let server = RedisServer::start();
    let b = Instance::new(&server.url(), false);
    b.connected().await;

    let mut raw = server.raw().await;
    let garbage: [(&str, &[u8]); 5] = [
        ("not-json", b"not json at all"),
        ("binary", b"\xff\xfe\x00{\"stored_ms\""),
        (
            "wrong-shape",
            br#"{"stored_ms": "yesterday", "value": {"body": "x"}}"#,
        ),
        ("wrong-type", br#"{"stored_ms": 1, "value": 42}"#),
        ("empty", b""),
    ];
    for (key, value) in garbage {
        redis::cmd("SET")
            .arg(format!("hystrix:stale:{key}"))
            .arg(value)
            .exec_async(&mut raw)
            .await
            .unwrap();
    }
    // Not even a string.
    redis::cmd("RPUSH")
        .arg("hystrix:stale:a-list")
        .arg("x")
        .exec_async(&mut raw)
        .await
        .unwrap();

    for key in [
        "not-json",
        "binary",
        "wrong-shape",
        "wrong-type",
        "empty",
        "a-list",
    ] {
        let (hit, _) = bounded("a lookup", b.tier.get(key)).await;
        assert!(hit.is_none(), "{key}");
        let (result, _) = bounded("a call", b.call(key)).await;
        assert_failed_without_fallback(result);
    }
    assert_eq!(b.tier.errors(), 12);
    assert_eq!(b.tier.hits(), 0);
    assert!(
        b.tier.is_connected(),
        "bad values are not connection failures"
    );

    // The documented format, written by another program, three seconds ago.
    let now_ms: Vec<String> = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
    let now_ms =
        now_ms[0].parse::<u64>().unwrap() * 1_000 + now_ms[1].parse::<u64>().unwrap() / 1_000;
    let value = format!(
        r#"{{"stored_ms": {}, "value": {{"body": "by hand"}}}}"#,
        now_ms - 3_000
    );
    redis::cmd("SET")
        .arg("hystrix:stale:by-hand")
        .arg(value)
        .exec_async(&mut raw)
        .await
        .unwrap();
    let (served, _) = bounded("a call", b.call("by-hand")).await;
    let served = served.unwrap();
    assert_eq!(served.body, "by hand");
    let stale = served.stale.unwrap();
    assert_eq!(stale.tier(), Tier::Shared);
    assert!(
        stale.age() >= Duration::from_millis(2_500) && stale.age() < Duration::from_secs(30),
        "{stale:?}"
    );
}

/// A bad URL is refused by the constructor; an unreachable Redis is not, and neither is the
/// absence of a runtime.
#[test]
fn bad_url_is_an_error_unreachable_redis_is_not() {
    for url in ["not a url", "http://127.0.0.1:6379/", "redis://"] {
        assert!(
            RedisTier::<Profile>::new(url, RedisTierConfig::default()).is_err(),
            "{url}"
        );
    }
    // No runtime here: the tier waits for one to connect from; writes are dropped meanwhile.
    let tier = RedisTier::<Profile>::new(
        &format!("redis://127.0.0.1:{}/", free_port()),
        RedisTierConfig::default(),
    )
    .unwrap();
    tier.put("k", &profile("x"));
    assert_eq!(tier.dropped_writes(), 1);
    assert!(!tier.is_connected());
}

/// Nothing listens on the port: lookups miss at once, and the tier keeps retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_misses_at_once() {
    let tier = RedisTier::<Profile>::new(
        &format!("redis://127.0.0.1:{}/", free_port()),
        RedisTierConfig::default(),
    )
    .unwrap();
    wait_until("connection refused", Duration::from_secs(5), || {
        tier.errors() >= 2
    })
    .await;
    let (hit, took) = bounded("a lookup", tier.get("k")).await;
    assert!(hit.is_none());
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(tier.misses(), 1);
    assert!(!tier.is_connected());
}

/// Puts 1000 values through `b`'s tier: none may hold the caller up (all return within 1 s).
fn put_a_thousand_at_once(b: &Instance) {
    let start = Instant::now();
    for i in 0..1_000 {
        b.tier.put(&format!("user/{i}"), &profile("x"));
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
