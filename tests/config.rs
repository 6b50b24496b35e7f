//! Configuration files and hot reload, through built commands: Hystrix's precedence (spec §3.1
//! to §3.3), what a reload changes at runtime, what it must never break (calls in flight, the
//! settings in force when a file is refused), and `watch`. Each test has its own registry and
//! temporary file; paused time unless a thread pool or the multi-thread runtime runs.
#![allow(clippy::unwrap_used)]

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::Semaphore as Gate;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_hystrix::{
    Command, CommandError, CommandLayer, CommandProperties, ConfigError, ErrorKind,
    HystrixEventType as Ev, IsolationStrategy, Registry, State, ThreadPoolConfig,
    breaker::{HealthWindow, Mode},
    core::{MetricsConfig, RollingWindow},
};

// ===== helpers =====

/// A configuration file in a temporary directory of its own.
struct TempConfig {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl TempConfig {
    fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hystrix.toml");
        let file = Self { dir, path };
        file.write(text);
        file
    }

    /// Replaces the file whole (write a sibling, rename over), as editors and config maps do, so
    /// that a reader never sees it half-written.
    fn write(&self, text: &str) {
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir.path()).unwrap();
        tmp.write_all(text.as_bytes()).unwrap();
        tmp.persist(&self.path).unwrap();
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// A registry with `text` loaded from a file.
fn loaded(text: &str) -> (Registry, TempConfig) {
    let file = TempConfig::new(text);
    let registry = Registry::new();
    registry.load_file(file.path()).unwrap();
    (registry, file)
}

/// Properties set in code (the struct is `#[non_exhaustive]`: no literal outside its crate).
fn props(set: impl FnOnce(&mut CommandProperties)) -> CommandProperties {
    let mut props = CommandProperties::default();
    set(&mut props);
    props
}

/// Answers `ms` after sleeping `ms` milliseconds.
fn sleeper() -> impl Service<u64, Response = u64, Error = io::Error, Future: Send> + Clone {
    service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, io::Error>(ms)
    })
}

/// Fails request 0, answers every other at once.
fn flaky() -> impl Service<u64, Response = u64, Error = io::Error, Future: Send> + Clone {
    service_fn(|x: u64| async move {
        if x == 0 {
            Err(io::Error::other("down"))
        } else {
            Ok(x)
        }
    })
}

/// Waits for a permit of `gate`, then answers `x` (on whatever runtime polls it: the caller's
/// or a pool thread's).
fn gated(
    gate: Arc<Gate>,
) -> impl Service<u64, Response = u64, Error = io::Error, Future: Send> + Clone {
    service_fn(move |x: u64| {
        let gate = gate.clone();
        async move {
            gate.acquire().await.unwrap().forget();
            Ok::<_, io::Error>(x)
        }
    })
}

/// Answers the name of the thread that ran the call.
fn thread_name() -> impl Service<u64, Response = String, Error = io::Error, Future: Send> + Clone {
    service_fn(|_: u64| async {
        Ok::<_, io::Error>(std::thread::current().name().unwrap_or("").to_string())
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn kind<T>(result: &Result<T, CommandError>) -> Option<ErrorKind> {
    result.as_ref().err().map(CommandError::kind)
}

fn event<Req, Res, K>(layer: &CommandLayer<Req, Res, K>, ev: Ev) -> u64 {
    layer.command().metrics().snapshot().counts.get(ev)
}

/// Bounds a wait on real work (pool threads, other tasks) to 30 s: a safety net against a hang,
/// not a measure of speed.
async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits (real time, 10 ms steps, at most 5 s) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(ms(10)).await;
    }
    panic!("timed out waiting until {what}");
}

// ===== 1. precedence =====

#[tokio::test(start_paused = true)]
async fn command_precedence_is_own_table_then_builder_then_default_table_then_builtin() {
    let (registry, _file) = loaded(
        r#"
        [command.default]
        execution_isolation_thread_timeout_in_milliseconds = 800
        execution_isolation_semaphore_max_concurrent_requests = 7
        circuit_breaker_request_volume_threshold = 30
        circuit_breaker_sleep_window_in_milliseconds = 3000

        [command.Own]
        execution_isolation_thread_timeout_in_milliseconds = 250
        circuit_breaker_error_threshold_percentage = 25
        "#,
    );
    let code = props(|p| {
        p.circuit_breaker_error_threshold_percentage = Some(60);
        p.circuit_breaker_request_volume_threshold = Some(5);
    });
    let own = Command::builder("Own")
        .registry(&registry)
        .timeout(ms(400))
        .semaphore(12)
        .properties(code)
        .build()
        .unwrap();
    let c = own.command();
    let s = c.settings();
    assert_eq!(s.timeout, Some(ms(250)), "own table beats the builder");
    assert_eq!(c.circuit().config().error_threshold_percentage, 25);
    assert_eq!(c.semaphore().limit(), 12, "builder beats the default table");
    assert_eq!(c.circuit().config().request_volume_threshold, 5);
    assert_eq!(
        c.circuit().config().sleep_window,
        ms(3000),
        "default table beats built-in"
    );
    assert_eq!(s.fallback_max_concurrent_requests, 10, "built-in");
    assert_eq!(c.circuit().config().half_open_probes, 1, "built-in");
    assert_eq!(s.isolation, IsolationStrategy::Semaphore);

    // The settings are the ones calls run with.
    let svc = own.layer(sleeper());
    assert_eq!(svc.clone().oneshot(200).await.unwrap(), 200);
    let err = svc.clone().oneshot(300).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::TimedOut,
        "250 ms, not the builder's 400"
    );

    let coded = Command::builder("Coded")
        .registry(&registry)
        .timeout(ms(400))
        .build()
        .unwrap();
    assert_eq!(
        coded.command().settings().timeout,
        Some(ms(400)),
        "builder beats default table"
    );
    let svc = coded.layer(sleeper());
    assert_eq!(svc.clone().oneshot(300).await.unwrap(), 300);

    let plain = Command::builder("Plain")
        .registry(&registry)
        .build()
        .unwrap();
    let c = plain.command();
    assert_eq!(
        c.settings().timeout,
        Some(ms(800)),
        "default table beats built-in"
    );
    assert_eq!(c.semaphore().limit(), 7);
    assert_eq!(c.circuit().config().request_volume_threshold, 30);
    assert_eq!(
        c.circuit().config().error_threshold_percentage,
        50,
        "built-in"
    );
    let svc = plain.layer(sleeper());
    assert_eq!(svc.clone().oneshot(700).await.unwrap(), 700);
    assert!(svc.clone().oneshot(900).await.unwrap_err().is_timeout());
}

#[tokio::test]
async fn pool_precedence_and_pool_keys() {
    let (registry, _file) = loaded(
        r#"
        [command.ViaFile]
        execution_isolation_strategy = "THREAD"

        [command.Moved]
        thread_pool_key_override = "Elsewhere"

        [threadpool.default]
        core_size = 4
        queue_size_rejection_threshold = 7

        [threadpool.Users]
        core_size = 2
        "#,
    );
    // Group Users: the pool defaults to the group; its own table beats the builder.
    let users = Command::builder::<u64, String>("GetUser")
        .group("Users")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig {
            core_size: 6,
            max_queue_size: 20,
            ..ThreadPoolConfig::default()
        })
        .build()
        .unwrap();
    assert_eq!(users.command().thread_pool_key().as_str(), "Users");
    let pool = users.command().thread_pool().unwrap();
    assert_eq!(pool.key().as_str(), "Users");
    assert_eq!(pool.config().core_size, 2, "own table beats the builder");
    assert_eq!(
        pool.config().max_queue_size,
        20,
        "builder beats the built-in"
    );

    // THREAD from the file, no pool settings in code: the default table beats the built-in.
    let via_file = Command::builder::<u64, u64>("ViaFile")
        .group("Files")
        .registry(&registry)
        .build()
        .unwrap();
    assert_eq!(
        via_file.command().settings().isolation,
        IsolationStrategy::Thread
    );
    let pool = via_file.command().thread_pool().unwrap();
    assert_eq!(pool.key().as_str(), "Files");
    let config = pool.config();
    assert_eq!(config.core_size, 4, "default table");
    assert_eq!(config.queue_size_rejection_threshold, 7, "default table");
    assert_eq!(config.max_queue_size, -1, "built-in");
    assert_eq!(config.keep_alive, Duration::from_secs(60), "built-in");

    // A pool key set in code beats the group.
    let explicit = Command::builder::<u64, u64>("Explicit")
        .group("Users")
        .thread_pool_key("Special")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig::default())
        .build()
        .unwrap();
    assert_eq!(explicit.command().thread_pool_key().as_str(), "Special");
    assert_eq!(
        explicit.command().thread_pool().unwrap().key().as_str(),
        "Special"
    );

    // The file's override moves a command of group Users to another pool.
    let moved = Command::builder::<u64, String>("Moved")
        .group("Users")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig::default())
        .build()
        .unwrap();
    assert_eq!(moved.command().thread_pool_key().as_str(), "Elsewhere");
    let pool = moved.command().thread_pool().unwrap();
    assert_eq!(pool.key().as_str(), "Elsewhere");
    assert_eq!(
        moved.command().metrics().pool().as_str(),
        "Elsewhere",
        "the metrics report the pool it runs on"
    );

    // Another command of group Users shares the Users pool.
    let other = Command::builder::<u64, u64>("ListUsers")
        .group("Users")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig::default())
        .build()
        .unwrap();
    assert_eq!(
        other.command().thread_pool().unwrap().key().as_str(),
        "Users"
    );
    let mut keys: Vec<String> = registry
        .thread_pools()
        .iter()
        .map(|p| p.key().as_str().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["Elsewhere", "Files", "Special", "Users"]);

    // A semaphore command has no pool, but reports its group's key.
    let sem = Command::builder::<u64, u64>("Sem")
        .group("Users")
        .registry(&registry)
        .build()
        .unwrap();
    assert!(sem.command().thread_pool().is_none());
    assert_eq!(sem.command().thread_pool_key().as_str(), "Users");

    // The calls really run on the pools (threads named after them).
    for (layer, key) in [(&users, "Users"), (&moved, "Elsewhere")] {
        let name = layer.layer(thread_name()).oneshot(0);
        let name = bounded("a pool call", name).await.unwrap();
        assert!(name.starts_with(&format!("hystrix-{key}-")), "{name}");
    }
}

/// Spec §3.1: settings made in code are Hystrix's Setter, "instance defaults": a field the
/// builder did not set is still the file's `[threadpool.default]` one (and `[command.default]`
/// for the breaker's fields), as in Hystrix, where `withCoreSize(3)` leaves the queue to the
/// dynamic default.
#[tokio::test]
async fn builder_structs_leave_fields_they_do_not_set_to_the_default_tables() {
    let (registry, _file) = loaded(
        r#"
        [command.default]
        circuit_breaker_error_threshold_percentage = 30

        [threadpool.default]
        queue_size_rejection_threshold = 7
        "#,
    );
    let pooled = Command::builder::<u64, u64>("Pooled")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig {
            core_size: 3,
            ..ThreadPoolConfig::default()
        })
        .build()
        .unwrap();
    let config = pooled.command().thread_pool().unwrap().config();
    assert_eq!(config.core_size, 3, "set by the builder");
    let breaker = Command::builder::<u64, u64>("Breaker")
        .registry(&registry)
        .breaker(tower_hystrix::BreakerConfig {
            sleep_window: ms(2000),
            ..tower_hystrix::BreakerConfig::default()
        })
        .build()
        .unwrap();
    let c = breaker.command().circuit().config();
    assert_eq!(c.sleep_window, ms(2000), "set by the builder");
    assert_eq!(
        (
            config.queue_size_rejection_threshold,
            c.error_threshold_percentage
        ),
        (7, 30),
        "fields the builder left at their default come from [threadpool.default] and \
         [command.default]"
    );
}

// ===== 2. hot reload takes effect =====

#[tokio::test(start_paused = true)]
async fn reload_changes_the_timeout_both_ways() {
    let (registry, file) =
        loaded("[command.T]\nexecution_isolation_thread_timeout_in_milliseconds = 100\n");
    let layer = Command::builder("T").registry(&registry).build().unwrap();
    let svc = layer.layer(sleeper());
    let start = tokio::time::Instant::now();
    assert!(svc.clone().oneshot(200).await.unwrap_err().is_timeout());
    assert_eq!(start.elapsed(), ms(100));

    file.write("[command.T]\nexecution_isolation_thread_timeout_in_milliseconds = 300\n");
    registry.reload().unwrap();
    assert_eq!(layer.command().settings().timeout, Some(ms(300)));
    assert_eq!(svc.clone().oneshot(200).await.unwrap(), 200);
    let err = svc.clone().oneshot(400).await.unwrap_err();
    assert!(err.is_timeout());
    assert!(err.to_string().contains("300 ms"), "{err}");

    file.write("[command.T]\nexecution_isolation_thread_timeout_in_milliseconds = 100\n");
    registry.reload().unwrap();
    assert!(svc.clone().oneshot(200).await.unwrap_err().is_timeout());

    file.write("[command.T]\nexecution_timeout_enabled = false\n");
    registry.reload().unwrap();
    assert_eq!(layer.command().settings().timeout, None);
    assert_eq!(svc.clone().oneshot(60_000).await.unwrap(), 60_000);

    // Removing the table goes back to the built-in 1000 ms.
    file.write("");
    registry.reload().unwrap();
    assert_eq!(layer.command().settings().timeout, Some(ms(1000)));
    assert_eq!(svc.clone().oneshot(900).await.unwrap(), 900);
    assert!(svc.clone().oneshot(1100).await.unwrap_err().is_timeout());
}

#[tokio::test(start_paused = true)]
async fn reload_resizes_the_execution_semaphore() {
    let sem = |n: u32| {
        format!(
            "[command.S]\nexecution_isolation_semaphore_max_concurrent_requests = {n}\n\
             execution_isolation_thread_timeout_in_milliseconds = 10000\n"
        )
    };
    let (registry, file) = loaded(&sem(2));
    let layer = Command::builder("S").registry(&registry).build().unwrap();
    let mut svc = layer.layer(sleeper());
    let c = layer.command().clone();
    assert_eq!(c.semaphore().limit(), 2);

    // The semaphore admits (or not) in `call`.
    let a = svc.ready().await.unwrap().call(1000);
    let b = svc.ready().await.unwrap().call(1000);
    let rejected = svc.ready().await.unwrap().call(1000).await;
    assert_eq!(kind(&rejected), Some(ErrorKind::SemaphoreRejected));
    assert_eq!(c.semaphore().in_flight(), 2);

    file.write(&sem(3));
    registry.reload().unwrap();
    assert_eq!(c.semaphore().limit(), 3);
    assert_eq!(c.settings().max_concurrent_requests, 3);
    let third = svc.ready().await.unwrap().call(1000);
    let rejected = svc.ready().await.unwrap().call(1000).await;
    assert_eq!(kind(&rejected), Some(ErrorKind::SemaphoreRejected));
    assert_eq!(c.semaphore().in_flight(), 3);

    // Lowered below the calls in flight: they keep their permits, newcomers are rejected.
    file.write(&sem(1));
    registry.reload().unwrap();
    assert_eq!(c.semaphore().limit(), 1);
    let rejected = svc.ready().await.unwrap().call(10).await;
    assert_eq!(kind(&rejected), Some(ErrorKind::SemaphoreRejected));
    let (a, b, third) = tokio::join!(a, b, third);
    assert_eq!((a.unwrap(), b.unwrap(), third.unwrap()), (1000, 1000, 1000));
    assert_eq!(c.semaphore().in_flight(), 0);

    let one = svc.ready().await.unwrap().call(50);
    let rejected = svc.ready().await.unwrap().call(50).await;
    assert_eq!(kind(&rejected), Some(ErrorKind::SemaphoreRejected));
    assert_eq!(one.await.unwrap(), 50);
    assert_eq!(event(&layer, Ev::SemaphoreRejected), 4);
    assert_eq!(event(&layer, Ev::Success), 4);
}

#[tokio::test(start_paused = true)]
async fn reload_forces_the_circuit_open_and_closed() {
    let base = "[command.F]\ncircuit_breaker_request_volume_threshold = 2\n\
                metrics_health_snapshot_interval_in_milliseconds = 0\n";
    let (registry, file) = loaded(base);
    let layer = Command::builder("F").registry(&registry).build().unwrap();
    let svc = layer.layer(flaky());
    let c = layer.command().clone();
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);

    file.write(&format!("{base}circuit_breaker_force_open = true\n"));
    registry.reload().unwrap();
    assert!(c.circuit().config().force_open);
    assert_eq!(c.circuit().mode(), Mode::ForcedOpen);
    assert!(c.circuit().is_open());
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShortCircuited);

    file.write(base);
    registry.reload().unwrap();
    assert_eq!(c.circuit().mode(), Mode::Normal);
    assert!(!c.circuit().is_open());
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);

    // Trip it for real, then force it closed: calls reach the dependency again.
    for _ in 0..3 {
        let _ = svc.clone().oneshot(0).await;
    }
    assert_eq!(c.circuit().state(), State::Open);
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap_err().kind(),
        ErrorKind::ShortCircuited
    );
    file.write(&format!("{base}circuit_breaker_force_closed = true\n"));
    registry.reload().unwrap();
    assert_eq!(c.circuit().mode(), Mode::ForcedClosed);
    assert!(!c.circuit().is_open());
    assert_eq!(
        svc.clone().oneshot(0).await.unwrap_err().kind(),
        ErrorKind::Failed
    );
    assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);

    // force_open wins over force_closed, as in Hystrix.
    file.write(&format!(
        "{base}circuit_breaker_force_closed = true\ncircuit_breaker_force_open = true\n"
    ));
    registry.reload().unwrap();
    assert_eq!(c.circuit().mode(), Mode::ForcedOpen);
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap_err().kind(),
        ErrorKind::ShortCircuited
    );

    // Both removed: the state machine decides again; the circuit still sits in its sleep window.
    file.write(base);
    registry.reload().unwrap();
    assert_eq!(c.circuit().mode(), Mode::Normal);
    assert_eq!(c.circuit().state(), State::Open);
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap_err().kind(),
        ErrorKind::ShortCircuited
    );

    // Disabled: every call admitted, nothing trips.
    file.write(&format!("{base}circuit_breaker_enabled = false\n"));
    registry.reload().unwrap();
    assert_eq!(c.circuit().mode(), Mode::Disabled);
    for _ in 0..5 {
        assert_eq!(
            svc.clone().oneshot(0).await.unwrap_err().kind(),
            ErrorKind::Failed
        );
    }
}

#[tokio::test(start_paused = true)]
async fn reload_changes_sleep_window_and_error_threshold() {
    let text = |threshold: u8, sleep_ms: u64| {
        format!(
            "[command.B]\ncircuit_breaker_request_volume_threshold = 4\n\
             metrics_health_snapshot_interval_in_milliseconds = 0\n\
             circuit_breaker_error_threshold_percentage = {threshold}\n\
             circuit_breaker_sleep_window_in_milliseconds = {sleep_ms}\n"
        )
    };
    let (registry, file) = loaded(&text(100, 5000));
    let layer = Command::builder("B").registry(&registry).build().unwrap();
    let svc = layer.layer(flaky());
    let c = layer.command().clone();

    // 3 failures in 4: 75 %, below 100 %.
    for x in [0, 0, 0, 1] {
        let _ = svc.clone().oneshot(x).await;
    }
    assert_eq!(c.circuit().state(), State::Closed);

    file.write(&text(75, 1000));
    registry.reload().unwrap();
    let config = c.circuit().config();
    assert_eq!(config.error_threshold_percentage, 75);
    assert_eq!(config.sleep_window, ms(1000));
    assert_eq!(c.settings().breaker.error_threshold_percentage, 75);

    // One more failure: 80 %, at or above the new 75 %.
    let _ = svc.clone().oneshot(0).await;
    assert_eq!(c.circuit().state(), State::Open);
    let opened = tokio::time::Instant::now();
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap_err().kind(),
        ErrorKind::ShortCircuited
    );

    // The new sleep window (1 s, not 5 s) decides when a trial goes through.
    tokio::time::sleep_until(opened + ms(900)).await;
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap_err().kind(),
        ErrorKind::ShortCircuited
    );
    tokio::time::sleep_until(opened + ms(1100)).await;
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap(),
        1,
        "the trial succeeds"
    );
    assert_eq!(c.circuit().state(), State::Closed);
}

/// `metrics_health_snapshot_interval_in_milliseconds` is not among the fixed properties, and
/// `circuit().config()` reports the reloaded value: the trip decision must use it too.
#[tokio::test(start_paused = true)]
async fn reload_changes_the_health_snapshot_interval() {
    let text = |interval: u64| {
        format!(
            "[command.H]\ncircuit_breaker_request_volume_threshold = 2\n\
             metrics_health_snapshot_interval_in_milliseconds = {interval}\n"
        )
    };
    let (registry, file) = loaded(&text(10_000));
    let layer = Command::builder("H").registry(&registry).build().unwrap();
    let svc = layer.layer(flaky());
    let c = layer.command().clone();
    // The first failure's health (1 of 1) is kept for 10 s: the second does not trip.
    for _ in 0..2 {
        let _ = svc.clone().oneshot(0).await;
    }
    assert_eq!(c.circuit().state(), State::Closed, "health cached for 10 s");

    file.write(&text(0));
    registry.reload().unwrap();
    assert_eq!(
        c.circuit().config().health_snapshot_interval,
        Duration::ZERO
    );
    // Health is now recomputed at every decision: 3 failures of 3 trip the circuit.
    let _ = svc.clone().oneshot(0).await;
    assert_eq!(
        c.circuit().state(),
        State::Open,
        "the reloaded interval (0 ms) is reported by config() but the 10 s one is still used"
    );
}

#[tokio::test(start_paused = true)]
async fn reload_toggles_fallbacks_and_resizes_their_semaphore() {
    let text = |enabled: bool, size: u32| {
        format!(
            "[command.Fb]\nfallback_enabled = {enabled}\n\
             fallback_isolation_semaphore_max_concurrent_requests = {size}\n"
        )
    };
    let (registry, file) = loaded(&text(true, 1));
    let gate = Arc::new(Gate::new(0));
    let layer = Command::builder("Fb")
        .registry(&registry)
        .fallback({
            let gate = gate.clone();
            move |_: (), _| {
                let gate = gate.clone();
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok::<_, io::Error>(99)
                }
            }
        })
        .build()
        .unwrap();
    let svc = layer.layer(flaky());
    let c = layer.command().clone();

    // One fallback at a time: a second one is rejected.
    let first = tokio::spawn(svc.clone().oneshot(0));
    tokio::task::yield_now().await;
    assert_eq!(c.fallback_semaphore().in_flight(), 1);
    let err = svc.clone().oneshot(0).await.unwrap_err();
    assert!(
        matches!(err.fallback(), Some(tower_hystrix::FallbackError::Rejected)),
        "{err}"
    );

    // Two at a time.
    file.write(&text(true, 2));
    registry.reload().unwrap();
    assert_eq!(c.fallback_semaphore().limit(), 2);
    let second = tokio::spawn(svc.clone().oneshot(0));
    tokio::task::yield_now().await;
    assert_eq!(c.fallback_semaphore().in_flight(), 2);
    gate.add_permits(2);
    assert_eq!(first.await.unwrap().unwrap(), 99);
    assert_eq!(second.await.unwrap().unwrap(), 99);

    // Disabled: the failure itself.
    file.write(&text(false, 2));
    registry.reload().unwrap();
    let err = svc.clone().oneshot(0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(
        matches!(err.fallback(), Some(tower_hystrix::FallbackError::Disabled)),
        "{err}"
    );

    file.write(&text(true, 2));
    registry.reload().unwrap();
    gate.add_permits(1);
    assert_eq!(svc.clone().oneshot(0).await.unwrap(), 99);
}

#[tokio::test]
async fn reload_changes_a_pools_queue_rejection_threshold_and_size() {
    let text = |threshold: u32, core: u32| {
        format!(
            "[threadpool.Q]\nqueue_size_rejection_threshold = {threshold}\ncore_size = {core}\n"
        )
    };
    let (registry, file) = loaded(&text(1, 1));
    let layer = Command::builder::<u64, u64>("Q")
        .registry(&registry)
        .no_timeout()
        .thread_pool(ThreadPoolConfig {
            max_queue_size: 10,
            ..ThreadPoolConfig::default()
        })
        .build()
        .unwrap();
    let gate = Arc::new(Gate::new(0));
    let mut svc = layer.layer(gated(gate.clone()));
    let pool = layer.command().thread_pool().unwrap().clone();
    assert_eq!(pool.config().queue_size_rejection_threshold, 1);

    // One thread runs, one request queues, the next is rejected.
    let mut admitted = vec![
        svc.ready().await.unwrap().call(1),
        svc.ready().await.unwrap().call(2),
    ];
    let rejected = svc.ready().await.unwrap().call(3).await;
    assert_eq!(kind(&rejected), Some(ErrorKind::ThreadPoolRejected));

    file.write(&text(3, 1));
    registry.reload().unwrap();
    assert_eq!(pool.config().queue_size_rejection_threshold, 3);
    assert_eq!(pool.metrics().queue_size_rejection_threshold, 3);
    admitted.push(svc.ready().await.unwrap().call(3));
    admitted.push(svc.ready().await.unwrap().call(4));
    let rejected = svc.ready().await.unwrap().call(5).await;
    assert_eq!(kind(&rejected), Some(ErrorKind::ThreadPoolRejected));
    eventually("one running, three queued", || {
        let m = pool.metrics();
        (m.active_count, m.queue_size) == (1, 3)
    })
    .await;

    // A bigger pool: a second thread takes a queued request.
    file.write(&text(3, 2));
    registry.reload().unwrap();
    assert_eq!(pool.config().core_size, 2);
    admitted.push(svc.ready().await.unwrap().call(5));
    eventually("two running", || pool.metrics().active_count == 2).await;

    gate.add_permits(100);
    let results = bounded("the admitted calls", futures_join(admitted)).await;
    assert_eq!(results, [1, 2, 3, 4, 5]);
    assert_eq!(event(&layer, Ev::ThreadPoolRejected), 2);
}

/// Awaits every future, in order.
async fn futures_join<F, T>(futures: Vec<F>) -> Vec<T>
where
    F: Future<Output = Result<T, CommandError>>,
    T: std::fmt::Debug,
{
    let mut out = Vec::with_capacity(futures.len());
    for f in futures {
        out.push(f.await.unwrap());
    }
    out
}

// ===== 3. calls in flight survive a reload =====

#[tokio::test(start_paused = true)]
async fn reload_keeps_calls_in_flight_with_their_results() {
    let before = r#"
        [command.InFlight]
        execution_isolation_thread_timeout_in_milliseconds = 1000
        execution_isolation_semaphore_max_concurrent_requests = 10
        circuit_breaker_error_threshold_percentage = 50
        circuit_breaker_request_volume_threshold = 20
        "#;
    let after = r#"
        [command.InFlight]
        execution_isolation_thread_timeout_in_milliseconds = 200
        execution_isolation_semaphore_max_concurrent_requests = 2
        circuit_breaker_error_threshold_percentage = 90
        circuit_breaker_request_volume_threshold = 5
        "#;
    let (registry, file) = loaded(before);
    let layer = Command::builder("InFlight")
        .registry(&registry)
        .build()
        .unwrap();
    let svc = layer.layer(sleeper());
    let c = layer.command().clone();
    let calls: Vec<_> = (0..6)
        .map(|_| tokio::spawn(svc.clone().oneshot(600)))
        .collect();
    tokio::time::sleep(ms(100)).await;
    assert_eq!(c.semaphore().in_flight(), 6);

    // Shorter timeout, a semaphore below the calls in flight, other thresholds.
    file.write(after);
    registry.reload().unwrap();
    assert_eq!(c.settings().timeout, Some(ms(200)));
    let b = c.circuit().config();
    assert_eq!(
        (b.error_threshold_percentage, b.request_volume_threshold),
        (90, 5)
    );
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::SemaphoreRejected,
        "the new size applies to newcomers"
    );

    // Forced open on top: newcomers short-circuit, calls in flight still finish.
    file.write(&format!("{after}circuit_breaker_force_open = true\n"));
    registry.reload().unwrap();
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShortCircuited);

    let start = tokio::time::Instant::now();
    for call in calls {
        assert_eq!(
            call.await.unwrap().unwrap(),
            600,
            "armed with 1000 ms, not 200 ms"
        );
    }
    assert_eq!(start.elapsed(), ms(500));
    assert_eq!(c.semaphore().in_flight(), 0);
    assert_eq!(event(&layer, Ev::Success), 6);
    assert_eq!(event(&layer, Ev::Timeout), 0);
    assert_eq!(event(&layer, Ev::Cancelled), 0);

    // Once the force is lifted, newcomers run under the new timeout.
    file.write(after);
    registry.reload().unwrap();
    assert!(svc.clone().oneshot(300).await.unwrap_err().is_timeout());
}

#[tokio::test]
async fn reload_keeps_pool_calls_running_and_queued() {
    let (registry, file) = loaded(
        "[threadpool.Busy]\ncore_size = 2\nqueue_size_rejection_threshold = 5\n\
         [command.Busy]\nexecution_isolation_thread_timeout_in_milliseconds = 10000\n",
    );
    let layer = Command::builder::<u64, u64>("Busy")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig {
            max_queue_size: 5,
            ..ThreadPoolConfig::default()
        })
        .build()
        .unwrap();
    let gate = Arc::new(Gate::new(0));
    let svc = layer.layer(gated(gate.clone()));
    let pool = layer.command().thread_pool().unwrap().clone();
    let calls: Vec<_> = (0..4u64)
        .map(|x| tokio::spawn(svc.clone().oneshot(x)))
        .collect();
    eventually("two running, two queued", || {
        let m = pool.metrics();
        (m.active_count, m.queue_size) == (2, 2)
    })
    .await;

    file.write(
        "[threadpool.Busy]\ncore_size = 1\nqueue_size_rejection_threshold = 0\n\
         [command.Busy]\nexecution_isolation_thread_timeout_in_milliseconds = 50\n\
         circuit_breaker_force_open = true\n",
    );
    registry.reload().unwrap();
    assert_eq!(pool.config().core_size, 1);
    let err = svc.clone().oneshot(9).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShortCircuited);
    // Well past the new 50 ms timeout.
    tokio::time::sleep(ms(200)).await;

    gate.add_permits(100);
    for (x, call) in calls.into_iter().enumerate() {
        let out = bounded("a call in flight", call).await.unwrap().unwrap();
        assert_eq!(out, x as u64);
    }
    assert_eq!(event(&layer, Ev::Success), 4);
    assert_eq!(event(&layer, Ev::Timeout), 0);
}

// ===== 4. reload under load =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_never_fails_a_call_the_files_do_not_allow() {
    const OPEN: &str = r#"
        [command.Load]
        execution_isolation_semaphore_max_concurrent_requests = 8
        execution_isolation_thread_timeout_in_milliseconds = 3000
        circuit_breaker_force_open = true
        circuit_breaker_error_threshold_percentage = 60
        circuit_breaker_sleep_window_in_milliseconds = 1000
        "#;
    const CLOSED: &str = r#"
        [command.Load]
        execution_isolation_semaphore_max_concurrent_requests = 16
        execution_isolation_thread_timeout_in_milliseconds = 2000
        circuit_breaker_error_threshold_percentage = 40
        circuit_breaker_sleep_window_in_milliseconds = 4000
        "#;
    const TASKS: usize = 4;
    const RELOADS: usize = 100;
    let (registry, file) = loaded(CLOSED);
    let layer = Command::builder("Load")
        .registry(&registry)
        .build()
        .unwrap();
    let inner = service_fn(|x: u64| async move {
        tokio::task::yield_now().await;
        Ok::<_, io::Error>(x)
    });
    let svc = layer.layer(inner);
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let short = Arc::new(AtomicU64::new(0));

    let callers: Vec<_> = (0..TASKS)
        .map(|t| {
            let (svc, done, ok, short) = (svc.clone(), done.clone(), ok.clone(), short.clone());
            tokio::spawn(async move {
                // Bounded whatever happens to the reloader.
                for i in 0..200_000u64 {
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    let x = i * TASKS as u64 + t as u64;
                    match svc.clone().oneshot(x).await {
                        Ok(y) => {
                            assert_eq!(y, x);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == ErrorKind::ShortCircuited => {
                            short.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("a failure no file allows: {e}"),
                    }
                }
            })
        })
        .collect();

    let reloader = {
        let (registry, c) = (registry.clone(), layer.command().clone());
        tokio::spawn(async move {
            for i in 0..RELOADS {
                let (text, open) = if i % 2 == 0 {
                    (OPEN, true)
                } else {
                    (CLOSED, false)
                };
                file.write(text);
                registry.reload().unwrap();
                // Only this task reloads: what is in force is what was just loaded.
                assert_eq!(c.circuit().config().force_open, open);
                assert_eq!(c.semaphore().limit(), if open { 8 } else { 16 });
                // Let the callers run under this file for a while.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
            file
        })
    };
    let file = bounded("the reloads", reloader).await.unwrap();
    done.store(true, Ordering::Release);
    for caller in callers {
        bounded("a caller", caller).await.unwrap();
    }

    let (ok, short) = (ok.load(Ordering::Relaxed), short.load(Ordering::Relaxed));
    assert!(ok > 0, "calls went through while closed");
    assert!(short > 0, "calls short-circuited while forced open");
    assert_eq!(event(&layer, Ev::SemaphoreRejected), 0);
    assert_eq!(event(&layer, Ev::Timeout), 0);

    // The last file (CLOSED) is in force.
    let c = layer.command();
    let s = c.settings();
    assert_eq!(s.timeout, Some(ms(2000)));
    assert_eq!(s.max_concurrent_requests, 16);
    assert_eq!(c.semaphore().limit(), 16);
    let b = c.circuit().config();
    assert!(!b.force_open);
    assert_eq!(
        (b.error_threshold_percentage, b.sleep_window),
        (40, ms(4000))
    );
    assert_eq!(c.circuit().mode(), Mode::Normal);
    assert_eq!(c.semaphore().in_flight(), 0);
    assert_eq!(svc.clone().oneshot(5).await.unwrap(), 5);
    drop(file);
}

// ===== 5. invalid reloads are refused whole =====

/// What a refused file must say: the property (as `key()`), or a message naming it.
enum Names {
    Key(&'static str),
    Message(&'static str),
}

#[tokio::test(start_paused = true)]
async fn invalid_reload_is_refused_naming_the_property_and_nothing_changes() {
    let good = r#"
        [command.Guard]
        circuit_breaker_force_open = true
        execution_isolation_thread_timeout_in_milliseconds = 100
        execution_isolation_semaphore_max_concurrent_requests = 3

        [threadpool.Pool]
        core_size = 2
        queue_size_rejection_threshold = 4
        "#;
    let (registry, file) = loaded(good);
    let guard = Command::builder("Guard")
        .registry(&registry)
        .build()
        .unwrap();
    let pooled = Command::builder::<u64, u64>("Pooled")
        .group("Pool")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig {
            max_queue_size: 10,
            ..ThreadPoolConfig::default()
        })
        .build()
        .unwrap();
    let svc = guard.layer(sleeper());
    let settings = guard.command().settings();
    let pool_config = pooled.command().thread_pool().unwrap().config();

    // Every bad file also carries changes that would show if any of it were applied.
    let changes = "circuit_breaker_force_open = false\n\
                   execution_isolation_thread_timeout_in_milliseconds = 900\n\
                   execution_isolation_semaphore_max_concurrent_requests = 30\n";
    let pool_changes = "[threadpool.Pool]\ncore_size = 8\nqueue_size_rejection_threshold = 9\n";
    let guard_with = |bad: &str| format!("[command.Guard]\n{changes}{bad}\n{pool_changes}");
    let cases: Vec<(String, Names)> = vec![
        (
            guard_with("circuit_breaker_error_threshold_percentage = 150"),
            Names::Key("command.Guard.circuit_breaker_error_threshold_percentage"),
        ),
        (
            format!("[command.Guard]\n{changes}\n[threadpool.Pool]\ncore_size = 0\n"),
            Names::Key("threadpool.Pool.core_size"),
        ),
        (
            format!("[command.Guard]\n{changes}\n[threadpool.Pool]\nmax_queue_size = -5\n"),
            Names::Key("threadpool.Pool.max_queue_size"),
        ),
        (
            guard_with("fallback_isolation_semaphore_max_concurrent_requests = 0"),
            Names::Key("command.Guard.fallback_isolation_semaphore_max_concurrent_requests"),
        ),
        (
            "[command.Guard]\ncircuit_breaker_force_open = false\n\
             execution_isolation_semaphore_max_concurrent_requests = 0\n"
                .to_string(),
            Names::Key("command.Guard.execution_isolation_semaphore_max_concurrent_requests"),
        ),
        (
            "[command.Guard]\ncircuit_breaker_force_open = false\n\
             execution_isolation_semaphore_max_concurrent_requests = -1\n"
                .to_string(),
            Names::Message("execution_isolation_semaphore_max_concurrent_requests"),
        ),
        (
            "[command.Guard]\ncircuit_breaker_force_open = false\n\
             execution_isolation_thread_timeout_in_milliseconds = 0\n"
                .to_string(),
            Names::Key("command.Guard.execution_isolation_thread_timeout_in_milliseconds"),
        ),
        (
            guard_with("circuit_breaker_sleep_windw_in_milliseconds = 10"),
            Names::Message("circuit_breaker_sleep_windw_in_milliseconds"),
        ),
        (
            "[command.Guard]\ncircuit_breaker_force_open = \"no\"\n".to_string(),
            Names::Message("circuit_breaker_force_open"),
        ),
        (
            guard_with("execution_isolation_strategy = \"FIBER\""),
            Names::Message("execution_isolation_strategy"),
        ),
        (
            guard_with(
                "metrics_rolling_stats_time_in_milliseconds = 10000\n\
                 metrics_rolling_stats_num_buckets = 3",
            ),
            Names::Key("command.Guard.metrics_rolling_stats_num_buckets"),
        ),
        (
            guard_with("circuit_breaker_half_open_probes = 0"),
            Names::Key("command.Guard.circuit_breaker_half_open_probes"),
        ),
        (
            format!(
                "[command.default]\ncircuit_breaker_error_threshold_percentage = 101\n{}",
                guard_with("")
            ),
            Names::Key("command.Guard.circuit_breaker_error_threshold_percentage"),
        ),
        (
            format!("[commands.Guard]\n{changes}"),
            Names::Message("commands"),
        ),
        (
            format!("[command.Guard]\n{changes}execution_isolation_thread_timeout_in_milliseconds"),
            Names::Message("line"),
        ),
        (format!("[command.Guard\n{changes}"), Names::Message("line")),
    ];

    for (text, names) in cases {
        file.write(&text);
        let err: ConfigError = registry.reload().unwrap_err();
        match names {
            Names::Key(key) => assert_eq!(err.key(), Some(key), "{err}\n--- for ---\n{text}"),
            Names::Message(word) => {
                assert!(err.to_string().contains(word), "{err}\n--- for ---\n{text}")
            }
        }
        assert_eq!(err.path(), Some(file.path()), "{err}");
        assert!(err.to_string().contains("hystrix.toml"), "{err}");

        // Nothing of it applied: settings, pool, and behaviour.
        assert_eq!(guard.command().settings(), settings, "for:\n{text}");
        assert_eq!(guard.command().semaphore().limit(), 3);
        assert!(guard.command().circuit().config().force_open);
        assert_eq!(
            pooled.command().thread_pool().unwrap().config(),
            pool_config,
            "for:\n{text}"
        );
        let err = svc.clone().oneshot(1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ShortCircuited, "still forced open");
    }

    // Nothing loaded: nothing to reload.
    let err = Registry::new().reload().unwrap_err();
    assert!(err.to_string().contains("load_file"), "{err}");

    // A file that cannot be read is refused too.
    std::fs::remove_file(file.path()).unwrap();
    let err = registry.reload().unwrap_err();
    assert_eq!(err.key(), None);
    assert_eq!(err.path(), Some(file.path()));
    assert!(err.to_string().contains("cannot read"), "{err}");
    assert_eq!(guard.command().settings(), settings);

    // And the next valid file applies.
    file.write(&format!("[command.Guard]\n{changes}\n{pool_changes}"));
    registry.reload().unwrap();
    assert!(!guard.command().circuit().config().force_open);
    assert_eq!(guard.command().semaphore().limit(), 30);
    assert_eq!(guard.command().settings().timeout, Some(ms(900)));
    assert_eq!(
        pooled.command().thread_pool().unwrap().config().core_size,
        8
    );
    assert_eq!(svc.clone().oneshot(500).await.unwrap(), 500);
}

#[tokio::test(start_paused = true)]
async fn a_file_valid_for_one_command_but_not_another_is_refused_whole() {
    // [command.default] is fine for A and Z (7 buckets of 1 s) but not for M (10 s / 7).
    let (registry, file) = loaded(
        "[command.A]\ncircuit_breaker_force_open = true\n\
         [command.Z]\ncircuit_breaker_force_open = true\n",
    );
    let seven_seconds = props(|p| {
        p.metrics_rolling_stats_time_in_milliseconds = Some(7000);
        p.metrics_rolling_stats_num_buckets = Some(7);
    });
    let build = |key: &str, props: CommandProperties| {
        Command::builder::<u64, u64>(key)
            .registry(&registry)
            .properties(props)
            .build()
            .unwrap()
    };
    let a = build("A", seven_seconds.clone());
    let m = build("M", CommandProperties::default());
    let z = build("Z", seven_seconds);
    let before = [&a, &m, &z].map(|l| l.command().settings());

    file.write(
        "[command.default]\nmetrics_rolling_stats_num_buckets = 7\n\
         execution_isolation_thread_timeout_in_milliseconds = 300\n\
         [command.A]\ncircuit_breaker_force_open = false\n\
         [command.Z]\ncircuit_breaker_force_open = false\n",
    );
    let err = registry.reload().unwrap_err();
    assert_eq!(
        err.key(),
        Some("command.M.metrics_rolling_stats_num_buckets"),
        "{err}"
    );
    let after = [&a, &m, &z].map(|l| l.command().settings());
    assert_eq!(
        after, before,
        "nothing applied, before or after M in key order"
    );
    for layer in [&a, &z] {
        assert!(layer.command().circuit().is_open());
        let err = layer.layer(flaky()).oneshot(1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ShortCircuited);
    }

    // Two bad commands: refused, naming one of them.
    file.write(
        "[command.A]\ncircuit_breaker_force_open = false\n\
         [command.M]\ncircuit_breaker_error_threshold_percentage = 200\n\
         [command.Z]\ncircuit_breaker_half_open_probes = 0\n",
    );
    let err = registry.reload().unwrap_err();
    assert!(
        matches!(
            err.key(),
            Some(
                "command.M.circuit_breaker_error_threshold_percentage"
                    | "command.Z.circuit_breaker_half_open_probes"
            )
        ),
        "{err}"
    );
    assert!(a.command().circuit().is_open());
}

/// A bad value in a table of a command (or pool) not built yet is as invalid as any other:
/// the file must be refused at load, not accepted and then fail the command's `build()` later.
#[tokio::test(start_paused = true)]
async fn invalid_values_for_commands_not_built_yet_are_refused() {
    let (registry, file) = loaded("[command.Live]\ncircuit_breaker_force_open = true\n");
    let live = Command::builder::<u64, u64>("Live")
        .registry(&registry)
        .build()
        .unwrap();
    file.write(
        "[command.Live]\ncircuit_breaker_force_open = false\n\
         [command.Later]\ncircuit_breaker_error_threshold_percentage = 150\n",
    );
    let refused = registry.reload();
    let later = Command::builder::<u64, u64>("Later")
        .registry(&registry)
        .build()
        .map(|_| ());
    assert!(
        refused.is_err(),
        "a file with circuit_breaker_error_threshold_percentage = 150 was accepted \
         (force_open now {}), and building the command it names then fails: {later:?}",
        live.command().circuit().config().force_open,
    );
    let err = refused.unwrap_err();
    assert_eq!(
        err.key(),
        Some("command.Later.circuit_breaker_error_threshold_percentage")
    );
    assert!(live.command().circuit().is_open());

    // The same for a fresh registry whose file is loaded before any command is built.
    let fresh = Registry::new();
    assert!(
        fresh
            .load_str("[threadpool.Later]\ncore_size = 0\n")
            .is_err(),
        "core_size = 0 accepted"
    );
}

// ===== 6. watch =====

#[tokio::test(start_paused = true)]
async fn watch_applies_changes_skips_invalid_files_and_stops_when_dropped() {
    let timeout = |ms: u64| {
        format!("[command.W]\nexecution_isolation_thread_timeout_in_milliseconds = {ms}\n")
    };
    let (registry, file) = loaded(&timeout(100));
    let layer = Command::builder("W").registry(&registry).build().unwrap();
    let svc = layer.layer(sleeper());
    let c = layer.command().clone();
    let interval = ms(50);
    let watch = registry.watch(interval);

    /// Waits at most `n` intervals for the timeout in force to be `want`.
    async fn within(c: &Command, interval: Duration, n: u32, want: u64) -> bool {
        for _ in 0..n {
            if c.settings().timeout == Some(ms(want)) {
                return true;
            }
            tokio::time::sleep(interval).await;
        }
        c.settings().timeout == Some(ms(want))
    }

    file.write(&timeout(300));
    assert!(
        within(&c, interval, 5, 300).await,
        "{:?}",
        c.settings().timeout
    );
    assert_eq!(svc.clone().oneshot(200).await.unwrap(), 200);

    // Invalid: skipped, the 300 ms stay through many intervals.
    file.write(&format!(
        "{}circuit_breaker_error_threshold_percentage = 150\n",
        timeout(500)
    ));
    for _ in 0..10 {
        tokio::time::sleep(interval).await;
        assert_eq!(c.settings().timeout, Some(ms(300)));
    }
    assert!(svc.clone().oneshot(400).await.unwrap_err().is_timeout());
    // Unparsable: skipped too.
    file.write("[command.W\n");
    for _ in 0..10 {
        tokio::time::sleep(interval).await;
        assert_eq!(c.settings().timeout, Some(ms(300)));
    }

    // The next valid version is picked up.
    file.write(&timeout(700));
    assert!(
        within(&c, interval, 5, 700).await,
        "{:?}",
        c.settings().timeout
    );
    assert_eq!(svc.clone().oneshot(600).await.unwrap(), 600);

    // A file briefly missing is skipped, then picked up when back.
    std::fs::remove_file(file.path()).unwrap();
    for _ in 0..5 {
        tokio::time::sleep(interval).await;
    }
    assert_eq!(c.settings().timeout, Some(ms(700)));
    file.write(&timeout(800));
    assert!(
        within(&c, interval, 5, 800).await,
        "{:?}",
        c.settings().timeout
    );

    // Dropped: no more reloads.
    drop(watch);
    file.write(&timeout(900));
    for _ in 0..10 {
        tokio::time::sleep(interval).await;
    }
    assert_eq!(c.settings().timeout, Some(ms(800)));
    registry.reload().unwrap();
    assert_eq!(c.settings().timeout, Some(ms(900)));
}

// ===== 7. fixed properties =====

#[tokio::test]
async fn fixed_properties_keep_their_built_values_and_the_rest_applies() {
    let (registry, file) = loaded(
        "[command.Sem]\nexecution_isolation_semaphore_max_concurrent_requests = 1\n\
         execution_isolation_thread_timeout_in_milliseconds = 5000\n",
    );
    let sem = Command::builder::<u64, u64>("Sem")
        .registry(&registry)
        .build()
        .unwrap();
    let threaded = Command::builder::<u64, String>("Threaded")
        .group("Fixed")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig {
            core_size: 1,
            max_queue_size: 10,
            ..ThreadPoolConfig::default()
        })
        .build()
        .unwrap();
    let pool = threaded.command().thread_pool().unwrap().clone();

    file.write(
        r#"
        [command.Sem]
        execution_isolation_strategy = "THREAD"
        metrics_rolling_stats_time_in_milliseconds = 20000
        metrics_rolling_stats_num_buckets = 20
        metrics_rolling_percentile_time_in_milliseconds = 30000
        metrics_rolling_percentile_num_buckets = 3
        thread_pool_key_override = "Elsewhere"
        execution_isolation_semaphore_max_concurrent_requests = 2
        execution_isolation_thread_timeout_in_milliseconds = 250
        circuit_breaker_error_threshold_percentage = 30

        [command.Threaded]
        execution_isolation_strategy = "SEMAPHORE"
        circuit_breaker_sleep_window_in_milliseconds = 1234

        [threadpool.Fixed]
        max_queue_size = 50
        metrics_rolling_stats_time_in_milliseconds = 20000
        metrics_rolling_stats_num_buckets = 20
        queue_size_rejection_threshold = 9
        core_size = 3
        "#,
    );
    registry.reload().unwrap();

    // Fixed: kept.
    let c = sem.command();
    let s = c.settings();
    assert_eq!(s.isolation, IsolationStrategy::Semaphore);
    assert!(c.thread_pool().is_none());
    assert_eq!(s.metrics, MetricsConfig::default());
    assert_eq!(c.metrics().config(), MetricsConfig::default());
    assert_eq!(
        c.circuit().config().window,
        HealthWindow::Time(RollingWindow::COUNTS)
    );
    assert_eq!(s.thread_pool_key_override, None);
    assert_eq!(c.thread_pool_key().as_str(), "Sem");
    assert_eq!(
        threaded.command().settings().isolation,
        IsolationStrategy::Thread
    );
    assert!(threaded.command().thread_pool().is_some());
    let config = pool.config();
    assert_eq!(config.max_queue_size, 10);
    assert_eq!(config.window, RollingWindow::COUNTS);
    assert_eq!(
        registry.thread_pools().len(),
        1,
        "no pool built for the override"
    );

    // The rest: applied.
    assert_eq!(s.timeout, Some(ms(250)));
    assert_eq!(c.semaphore().limit(), 2);
    assert_eq!(c.circuit().config().error_threshold_percentage, 30);
    assert_eq!(threaded.command().circuit().config().sleep_window, ms(1234));
    assert_eq!(
        (config.core_size, config.queue_size_rejection_threshold),
        (3, 9)
    );

    // And calls behave as built: Sem still admits by its semaphore, on the caller's thread.
    let gate = Arc::new(Gate::new(0));
    let mut svc = sem.layer(gated(gate.clone()));
    let a = svc.ready().await.unwrap().call(1);
    let b = svc.ready().await.unwrap().call(2);
    let rejected = svc.ready().await.unwrap().call(3).await;
    assert_eq!(kind(&rejected), Some(ErrorKind::SemaphoreRejected));
    gate.add_permits(2);
    let (a, b) = bounded("two calls", async { (a.await, b.await) }).await;
    assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
    // Threaded still runs on its pool.
    let name = threaded.layer(thread_name()).oneshot(0);
    let name = bounded("a pool call", name).await.unwrap();
    assert!(name.starts_with("hystrix-Fixed-"), "{name}");
    assert_eq!(pool.metrics().completed_task_count, 1);

    // A second reload with the same fixed changes still succeeds.
    registry.reload().unwrap();
    assert_eq!(
        sem.command().settings().isolation,
        IsolationStrategy::Semaphore
    );
}
