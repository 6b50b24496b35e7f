//! Faults of real dependencies: HTTP servers on loopback TCP that hang, answer slowly, fail
//! with 500, refuse connections or reset mid-response, each behind its own command calling it
//! with hyper-util's client, alone and together beside a healthy one. Each scenario proves that
//! the healthy dependency stays fast while the others misbehave, that a hanging dependency
//! fills only its own bulkhead (further calls rejected at once), that circuits trip and
//! recover once the fault is removed, that a fallback answers every kind of failure, and that
//! nothing leaks: executions, permits, pool threads and the process's OS threads are counted
//! after each scenario.
//!
//! Real sockets need real time: small timeouts, every wait bounded. The tests run one at a
//! time (`SERIAL`), so that the process's thread count is theirs alone.
#![allow(clippy::unwrap_used)]

#[path = "common/faulty.rs"]
mod faulty;

use std::{
    convert::Infallible,
    error::Error,
    future::Future,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use tokio::time::{Instant, sleep, timeout};
use tower::{Layer, ServiceExt, util::BoxCloneSyncService};
use tower_hystrix::{
    BreakerConfig, Command, CommandError, CommandLayer, Failure, FailureKind, HttpClassifier,
    HystrixEventType as Ev, Registry, SemaphoreRejected, ShortCircuited, State, ThreadPoolConfig,
    ThreadPoolRejected,
};

use faulty::{
    BodyError, Faulty, Mode, OK_BODY, Req, Res, eventually, http_client, os_threads,
    settled_os_threads, threads_named,
};

/// Every command's execution timeout.
const TIMEOUT: Duration = Duration::from_millis(250);
/// What "at once" and "low latency" mean here: well within the timeout, on a loaded machine too.
const PROMPT: Duration = Duration::from_millis(125);
/// A timed-out call answers within `TIMEOUT + SLACK`.
const SLACK: Duration = Duration::from_millis(500);
/// The breakers: 50 % errors over at least 4 requests, 300 ms sleep windows, health computed
/// afresh on every outcome.
const VOLUME: u32 = 4;
const ERROR_PERCENTAGE: u8 = 50;
const SLEEP_WINDOW: Duration = Duration::from_millis(300);
/// A slow dependency's delay past the timeout, and one within it.
const SLOW: Duration = Duration::from_millis(800);
const SLOW_IN_TIME: Duration = Duration::from_millis(60);
/// Calls made to an open circuit in each scenario.
const SHORT_CIRCUITED: u64 = 3;
/// Calls made once a circuit closed again.
const AFTER_RECOVERY: u64 = 3;
/// The longest any call may take before the test gives up on it.
const CALL_BOUND: Duration = Duration::from_secs(5);
/// The longest pool threads and OS threads may take to wind down.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// One scenario at a time: each counts the process's OS threads.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn breaker() -> BreakerConfig {
    BreakerConfig {
        request_volume_threshold: VOLUME,
        error_threshold_percentage: ERROR_PERCENTAGE,
        sleep_window: SLEEP_WINDOW,
        health_snapshot_interval: Duration::ZERO,
        ..BreakerConfig::default()
    }
}

/// Whether a closed circuit that saw `successes` then `failures` is open (Hystrix's rule).
fn trips(successes: u64, failures: u64) -> bool {
    let total = successes + failures;
    total >= u64::from(VOLUME) && failures * 100 >= u64::from(ERROR_PERCENTAGE) * total
}

/// Why a fallback was served, as far as the fallback can tell from its [`Failure`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cause {
    /// No error: a timeout, or a response classified as a failure (the 500).
    None,
    /// Not called: short-circuited or rejected by the bulkhead.
    Rejected,
    /// The connection was refused.
    Refused,
    /// The response's body broke off with a connection reset.
    Reset,
    /// Anything else, with the error chain.
    Other(String),
}

impl Cause {
    fn of(failure: &Failure) -> Self {
        let Some(error) = failure.error() else {
            return Self::None;
        };
        let error: &(dyn Error + 'static) = error;
        if error.is::<ShortCircuited>()
            || error.is::<SemaphoreRejected>()
            || error.is::<ThreadPoolRejected>()
        {
            return Self::Rejected;
        }
        let chain: Vec<&(dyn Error + 'static)> =
            std::iter::successors(Some(error), |&e| e.source()).collect();
        let io = |kind: io::ErrorKind| {
            chain.iter().any(|e| {
                e.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == kind)
            })
        };
        let in_body = chain.iter().any(|e| e.is::<BodyError>());
        if !in_body && io(io::ErrorKind::ConnectionRefused) {
            Self::Refused
        } else if in_body && io(io::ErrorKind::ConnectionReset) {
            Self::Reset
        } else {
            let chain: Vec<String> = chain.iter().map(ToString::to_string).collect();
            Self::Other(chain.join(": "))
        }
    }
}

/// The mark a fallback puts on its responses.
#[derive(Clone, Debug)]
struct Served(FailureKind, Cause);

async fn fallback(_: (), failure: Failure) -> Result<Res, Infallible> {
    let mut res = Response::new(Bytes::from_static(b"fallback"));
    res.extensions_mut()
        .insert(Served(failure.kind(), Cause::of(&failure)));
    Ok(res)
}

/// What a caller got.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    /// The dependency's response: status and body.
    Fresh(u16, String),
    /// The fallback's, and why it was served.
    Fallback(FailureKind, Cause),
    /// The command's error (never expected here: every command has a fallback).
    Error(String),
}

impl Answer {
    fn of(result: Result<Res, CommandError>) -> Self {
        match result {
            Ok(res) => match res.extensions().get::<Served>() {
                Some(Served(kind, cause)) => Self::Fallback(*kind, cause.clone()),
                None => Self::Fresh(
                    res.status().as_u16(),
                    String::from_utf8_lossy(res.body()).into_owned(),
                ),
            },
            Err(e) => Self::Error(e.to_string()),
        }
    }

    /// The events a call that got this answer records.
    fn events(&self) -> &'static [Ev] {
        match self {
            Self::Fresh(200..=299, _) => &[Ev::Success],
            Self::Fallback(kind, _) => match kind {
                FailureKind::TimedOut => &[Ev::Timeout, Ev::FallbackSuccess],
                FailureKind::Failed => &[Ev::Failure, Ev::FallbackSuccess],
                FailureKind::SemaphoreRejected => &[Ev::SemaphoreRejected, Ev::FallbackSuccess],
                FailureKind::ThreadPoolRejected => &[Ev::ThreadPoolRejected, Ev::FallbackSuccess],
                FailureKind::ShortCircuited => &[Ev::ShortCircuited, Ev::FallbackSuccess],
                other => panic!("unexpected failure kind {other:?}"),
            },
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

fn fresh() -> Answer {
    Answer::Fresh(200, OK_BODY.into())
}

fn short_circuited() -> Answer {
    Answer::Fallback(FailureKind::ShortCircuited, Cause::Rejected)
}

fn timed_out() -> Answer {
    Answer::Fallback(FailureKind::TimedOut, Cause::None)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isolation {
    /// A semaphore of this many permits.
    Semaphore(u32),
    /// A thread pool of its own (`P<key>`) with this many core threads and no queue.
    Pool(u32),
}

impl Isolation {
    fn limit(self) -> u32 {
        match self {
            Self::Semaphore(n) | Self::Pool(n) => n,
        }
    }

    /// The failure of a call beyond the limit.
    fn rejection(self) -> Answer {
        let kind = match self {
            Self::Semaphore(_) => FailureKind::SemaphoreRejected,
            Self::Pool(_) => FailureKind::ThreadPoolRejected,
        };
        Answer::Fallback(kind, Cause::Rejected)
    }

    /// The OS threads that may stay alive with the command: a pool's core threads.
    fn threads(self) -> usize {
        match self {
            Self::Semaphore(_) => 0,
            Self::Pool(n) => n as usize,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Hang,
    Slow,
    Fail,
    Refuse,
    Reset,
}

const FAULTS: [Fault; 5] = [
    Fault::Hang,
    Fault::Slow,
    Fault::Fail,
    Fault::Refuse,
    Fault::Reset,
];

impl Fault {
    fn key(self) -> &'static str {
        match self {
            Self::Hang => "Hang",
            Self::Slow => "Slow",
            Self::Fail => "Fail",
            Self::Refuse => "Refuse",
            Self::Reset => "Reset",
        }
    }

    fn mode(self) -> Mode {
        match self {
            Self::Hang => Mode::Hang,
            Self::Slow => Mode::Slow(SLOW),
            Self::Fail => Mode::Fail,
            Self::Refuse => Mode::Refuse,
            Self::Reset => Mode::Reset,
        }
    }

    fn times_out(self) -> bool {
        matches!(self, Self::Hang | Self::Slow)
    }

    /// What a call admitted while the fault is on gets.
    fn fallback(self) -> Answer {
        match self {
            Self::Hang | Self::Slow => timed_out(),
            Self::Fail => Answer::Fallback(FailureKind::Failed, Cause::None),
            Self::Refuse => Answer::Fallback(FailureKind::Failed, Cause::Refused),
            Self::Reset => Answer::Fallback(FailureKind::Failed, Cause::Reset),
        }
    }
}

/// A dependency behind its command: the command's layer, the wrapped client, and every answer
/// its callers got.
#[derive(Clone)]
struct Dep {
    key: &'static str,
    isolation: Isolation,
    layer: CommandLayer<Req, Res>,
    svc: BoxCloneSyncService<Req, Res, CommandError>,
    uri: Uri,
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl Dep {
    fn new(
        registry: &Registry,
        key: &'static str,
        isolation: Isolation,
        breaker: BreakerConfig,
        server: &Faulty,
    ) -> Self {
        let builder = Command::builder::<Req, Res>(key)
            .classifier(HttpClassifier)
            .timeout(TIMEOUT)
            .breaker(breaker)
            .fallback(fallback)
            .registry(registry);
        let builder = match isolation {
            Isolation::Semaphore(permits) => builder.semaphore(permits),
            Isolation::Pool(threads) => {
                builder
                    .thread_pool_key(format!("P{key}"))
                    .thread_pool(ThreadPoolConfig {
                        core_size: threads,
                        ..ThreadPoolConfig::default()
                    })
            }
        };
        let layer = builder.build().unwrap();
        Self {
            key,
            isolation,
            svc: BoxCloneSyncService::new(layer.layer(http_client())),
            layer,
            uri: server.uri(key),
            answers: Arc::default(),
        }
    }

    fn command(&self) -> &Command {
        self.layer.command()
    }

    /// One call, bounded, timed from before the command's `call` to its answer.
    fn call(&self) -> impl Future<Output = (Answer, Duration)> + Send + 'static {
        let svc = self.svc.clone();
        let req = Request::get(self.uri.clone()).body(Empty::new()).unwrap();
        let answers = self.answers.clone();
        let key = self.key;
        async move {
            let start = Instant::now();
            let result = timeout(CALL_BOUND, svc.oneshot(req))
                .await
                .unwrap_or_else(|_| panic!("{key}: no answer within {CALL_BOUND:?}"));
            let took = start.elapsed();
            let answer = Answer::of(result);
            answers.lock().unwrap().push(answer.clone());
            (answer, took)
        }
    }

    /// `n` calls at once.
    async fn calls(&self, n: u32) -> Vec<(Answer, Duration)> {
        let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(self.call())).collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    }

    fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Calls holding the bulkhead now: semaphore permits, or pool threads running one.
    fn busy(&self) -> u32 {
        match self.command().thread_pool() {
            Some(pool) => pool.metrics().active_count,
            None => self.command().semaphore().in_flight(),
        }
    }

    /// The name prefix of the pool's threads.
    fn thread_prefix(&self) -> Option<String> {
        let pool = self.command().thread_pool()?;
        Some(format!("hystrix-{}-", pool.key()))
    }

    /// Nothing held once every call has answered: no execution counted as running, no permit
    /// of the execution or the fallback semaphore, no pool thread busy or request queued, and
    /// the pool's OS threads those it reports, at most its core size.
    async fn assert_no_leaks(&self) {
        let command = self.command();
        let key = self.key;
        assert_eq!(
            command.metrics().current_concurrent(),
            0,
            "{key}: executions still counted as running"
        );
        assert_eq!(
            command.snapshot().current_concurrent,
            0,
            "{key}: currentConcurrentExecutionCount"
        );
        assert_eq!(
            command.semaphore().in_flight(),
            0,
            "{key}: semaphore permits"
        );
        assert_eq!(
            command.fallback_semaphore().in_flight(),
            0,
            "{key}: fallback semaphore permits"
        );
        if let Some(pool) = command.thread_pool() {
            // A pool thread learns that its caller went away (a timeout) when it is woken:
            // soon after, not at once.
            let idle = eventually(WIND_DOWN, || {
                let m = pool.metrics();
                m.active_count == 0 && m.queue_size == 0
            })
            .await;
            let m = pool.metrics();
            assert!(idle, "{key}: pool still busy: {m:?}");
            assert_eq!(m.task_count, m.completed_task_count, "{key}: {m:?}");
            assert!(m.pool_size <= m.core_pool_size, "{key}: {m:?}");
            let prefix = self.thread_prefix().unwrap();
            assert_eq!(
                threads_named(&prefix),
                m.pool_size as usize,
                "{key}: OS threads named {prefix}*"
            );
        }
    }

    /// The command's events are exactly those of the answers its callers got.
    fn assert_events_match_answers(&self) {
        let answers = self.answers();
        let mut want: Vec<(Ev, u64)> = Vec::new();
        for answer in &answers {
            for event in answer.events() {
                match want.iter_mut().find(|(e, _)| e == event) {
                    Some((_, n)) => *n += 1,
                    None => want.push((*event, 1)),
                }
            }
        }
        let counts = self.command().snapshot().cumulative;
        for e in <Ev as tower_hystrix::core::Event>::ALL {
            let n = want.iter().find(|(ev, _)| ev == e).map_or(0, |(_, n)| *n);
            assert_eq!(
                counts.get(*e),
                n,
                "{}: {e:?}; answers {answers:?}",
                self.key
            );
        }
    }
}

/// Checks that the OS threads are back to `baseline` once `deps` and `registry` are dropped:
/// a pool's threads stop with its last handle.
async fn assert_threads_wind_down(baseline: usize, deps: Vec<Dep>, registry: Registry) {
    let prefixes: Vec<String> = deps.iter().filter_map(Dep::thread_prefix).collect();
    drop(deps);
    drop(registry);
    let back = eventually(WIND_DOWN, || os_threads() <= baseline).await;
    assert!(
        back,
        "{} OS threads {WIND_DOWN:?} after the commands were dropped, {baseline} before",
        os_threads()
    );
    for prefix in prefixes {
        assert_eq!(threads_named(&prefix), 0, "threads named {prefix}* left");
    }
}

/// One fault alone: the command falls back, its circuit trips after the calls Hystrix's rule
/// says, short-circuits without calling the dependency, and closes once the fault is removed
/// and the sleep window has passed. Nothing leaks.
async fn fault_alone(fault: Fault, isolation: Isolation) {
    let baseline = settled_os_threads().await;
    let server = Faulty::start(Mode::Healthy).await;
    let registry = Registry::new();
    let dep = Dep::new(&registry, fault.key(), isolation, breaker(), &server);
    let circuit = dep.command().circuit().clone();

    let mut successes = 0;
    assert_eq!(dep.call().await.0, fresh(), "{fault:?}: before the fault");
    successes += 1;
    if fault == Fault::Slow {
        server.set_mode(Mode::Slow(SLOW_IN_TIME)).await;
        let (answer, took) = dep.call().await;
        assert_eq!(answer, fresh(), "slow, within the timeout");
        assert!(took >= SLOW_IN_TIME, "{took:?}");
        successes += 1;
    }

    server.set_mode(fault.mode()).await;
    let mut failures = 0;
    while !trips(successes, failures) {
        assert_eq!(
            circuit.state(),
            State::Closed,
            "{fault:?}: {failures} failures"
        );
        let (answer, took) = dep.call().await;
        failures += 1;
        assert_eq!(answer, fault.fallback(), "{fault:?}: call {failures}");
        if fault.times_out() {
            assert!(
                took >= TIMEOUT && took < TIMEOUT + SLACK,
                "{fault:?}: timed out after {took:?}"
            );
        } else {
            assert!(took < PROMPT, "{fault:?}: failed after {took:?}");
        }
    }
    assert_eq!(
        circuit.state(),
        State::Open,
        "{fault:?}: {successes} successes then {failures} failures"
    );

    let called = server.requests();
    for _ in 0..SHORT_CIRCUITED {
        let (answer, took) = dep.call().await;
        assert_eq!(answer, short_circuited(), "{fault:?}");
        assert!(took < PROMPT, "{fault:?}: short-circuited after {took:?}");
    }
    assert_eq!(
        server.requests(),
        called,
        "{fault:?}: an open circuit does not call the dependency"
    );

    server.set_mode(Mode::Healthy).await;
    sleep(SLEEP_WINDOW + Duration::from_millis(50)).await;
    assert_eq!(dep.call().await.0, fresh(), "{fault:?}: the trial");
    assert_eq!(circuit.state(), State::Closed, "{fault:?}: after the trial");
    for _ in 0..AFTER_RECOVERY {
        assert_eq!(dep.call().await.0, fresh(), "{fault:?}: recovered");
    }

    let counts = dep.command().snapshot().cumulative;
    let event = if fault.times_out() {
        Ev::Timeout
    } else {
        Ev::Failure
    };
    assert_eq!(counts.get(event), failures, "{fault:?}");
    assert_eq!(counts.get(Ev::ShortCircuited), SHORT_CIRCUITED, "{fault:?}");
    assert_eq!(
        counts.get(Ev::Success),
        successes + 1 + AFTER_RECOVERY,
        "{fault:?}"
    );
    dep.assert_events_match_answers();
    dep.assert_no_leaks().await;

    let threads = os_threads();
    assert!(
        threads <= baseline + isolation.threads(),
        "{fault:?}: {threads} OS threads, {baseline} before, {} allowed to the pool",
        isolation.threads()
    );
    if let Some(prefix) = dep.thread_prefix() {
        assert!(threads_named(&prefix) >= 1, "the calls ran on {prefix}*");
    }
    drop(circuit);
    drop(server);
    assert_threads_wind_down(baseline, vec![dep], registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_alone_with_a_semaphore_trips_falls_back_and_recovers() {
    let _serial = SERIAL.lock().await;
    for fault in FAULTS {
        fault_alone(fault, Isolation::Semaphore(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_alone_in_a_thread_pool_trips_falls_back_and_recovers() {
    let _serial = SERIAL.lock().await;
    for fault in FAULTS {
        fault_alone(fault, Isolation::Pool(2)).await;
    }
}

/// A hanging dependency fills its bulkhead: further calls are rejected at once, and a healthy
/// dependency's calls stay fast meanwhile. The held calls time out and give everything back:
/// as many calls as the bulkhead holds are admitted again.
async fn hanging_beside_healthy(isolation: Isolation) {
    let baseline = settled_os_threads().await;
    let hanging_server = Faulty::start(Mode::Hang).await;
    let healthy_server = Faulty::start(Mode::Healthy).await;
    let registry = Registry::new();
    let hanging = Dep::new(
        &registry,
        "Hang",
        isolation,
        BreakerConfig::default(),
        &hanging_server,
    );
    let healthy = Dep::new(
        &registry,
        "Healthy",
        isolation,
        BreakerConfig::default(),
        &healthy_server,
    );
    let limit = isolation.limit();

    let held: Vec<_> = (0..limit).map(|_| tokio::spawn(hanging.call())).collect();
    let full = eventually(Duration::from_secs(2), || {
        hanging_server.requests() == limit as usize && hanging.busy() == limit
    })
    .await;
    assert!(
        full,
        "{} requests arrived, {} calls hold the bulkhead",
        hanging_server.requests(),
        hanging.busy()
    );

    let (answer, took) = hanging.call().await;
    assert_eq!(answer, isolation.rejection());
    assert!(took < PROMPT, "rejected after {took:?}");
    assert_eq!(
        hanging_server.requests(),
        limit as usize,
        "a rejected call does not reach the dependency"
    );

    for i in 0..10 {
        let (answer, took) = healthy.call().await;
        assert_eq!(answer, fresh(), "healthy call {i}");
        assert!(took < PROMPT, "healthy call {i} took {took:?}");
    }
    assert_eq!(
        hanging.busy(),
        limit,
        "the healthy calls ran while the hanging dependency's bulkhead was full"
    );

    for call in held {
        let (answer, took) = call.await.unwrap();
        assert_eq!(answer, timed_out());
        assert!(
            took >= TIMEOUT && took < TIMEOUT + SLACK,
            "timed out after {took:?}"
        );
    }
    hanging.assert_no_leaks().await;

    // Everything was given back: a full bulkhead's worth is admitted again (and times out).
    for (answer, _) in hanging.calls(limit).await {
        assert_eq!(answer, timed_out());
    }
    assert_eq!(hanging_server.requests(), 2 * limit as usize);

    for dep in [&hanging, &healthy] {
        dep.assert_events_match_answers();
        dep.assert_no_leaks().await;
        assert_eq!(dep.command().circuit().state(), State::Closed);
    }
    if let Some(pool) = hanging.command().thread_pool() {
        let m = pool.metrics();
        assert_eq!(
            m.largest_pool_size, limit,
            "threads are reused, not one per call: {m:?}"
        );
        assert_eq!(m.rolling_rejected, 1, "{m:?}");
    }
    let threads = os_threads();
    assert!(
        threads <= baseline + 2 * isolation.threads(),
        "{threads} OS threads, {baseline} before"
    );
    drop(hanging_server);
    drop(healthy_server);
    assert_threads_wind_down(baseline, vec![hanging, healthy], registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_dependency_fills_only_its_own_semaphore() {
    let _serial = SERIAL.lock().await;
    hanging_beside_healthy(Isolation::Semaphore(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_dependency_fills_only_its_own_thread_pool() {
    let _serial = SERIAL.lock().await;
    hanging_beside_healthy(Isolation::Pool(2)).await;
}

/// Calls `dep` in bursts of `burst` calls at once, each burst starting with its bulkhead
/// empty, until its circuit opens.
async fn drive_until_open(dep: Dep, burst: u32) {
    for _ in 0..10 {
        if dep.command().circuit().state() != State::Closed {
            return;
        }
        let idle = eventually(WIND_DOWN, || dep.busy() == 0).await;
        assert!(idle, "{}: bulkhead still busy", dep.key);
        dep.calls(burst).await;
    }
    panic!("{}: circuit still closed after 10 bursts", dep.key);
}

/// Every fault at once, each behind its own command of one registry, beside a healthy
/// dependency called throughout: the healthy one stays fast (also while the hanging one's pool
/// is full), each faulty one falls back and trips, and all recover once the faults are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_faults_together_in_one_registry() {
    let _serial = SERIAL.lock().await;
    let baseline = settled_os_threads().await;
    let registry = Registry::new();
    let healthy_server = Faulty::start(Mode::Healthy).await;
    let healthy = Dep::new(
        &registry,
        "Healthy",
        Isolation::Pool(2),
        breaker(),
        &healthy_server,
    );
    // (fault, isolation, calls at once): the calls that hold their bulkhead (hang, slow) come
    // one more than it admits.
    let plan = [
        (Fault::Hang, Isolation::Pool(2), 3),
        (Fault::Slow, Isolation::Semaphore(2), 3),
        (Fault::Fail, Isolation::Semaphore(10), 1),
        (Fault::Refuse, Isolation::Semaphore(10), 1),
        (Fault::Reset, Isolation::Pool(2), 1),
    ];
    let mut faulty = Vec::new();
    for (fault, isolation, burst) in plan {
        let server = Faulty::start(Mode::Healthy).await;
        let dep = Dep::new(&registry, fault.key(), isolation, breaker(), &server);
        assert_eq!(dep.call().await.0, fresh(), "{fault:?}: before the fault");
        faulty.push((fault, burst, server, dep));
    }
    assert_eq!(registry.commands().len(), plan.len() + 1);
    for (fault, _, server, _) in &faulty {
        server.set_mode(fault.mode()).await;
    }

    let hang_pool = faulty[0].3.command().thread_pool().unwrap().clone();
    let hang_limit = faulty[0].3.isolation.limit();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let healthy = healthy.clone();
        let done = done.clone();
        async move {
            // (answer, latency, whether the hanging pool was full before and after the call)
            let mut calls = Vec::new();
            for _ in 0..2_000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let full_before = hang_pool.metrics().active_count == hang_limit;
                let (answer, took) = healthy.call().await;
                let full = full_before && hang_pool.metrics().active_count == hang_limit;
                calls.push((answer, took, full));
                sleep(Duration::from_millis(5)).await;
            }
            calls
        }
    });
    let drivers: Vec<_> = faulty
        .iter()
        .map(|(_, burst, _, dep)| tokio::spawn(drive_until_open(dep.clone(), *burst)))
        .collect();
    for driver in drivers {
        timeout(Duration::from_secs(10), driver)
            .await
            .unwrap()
            .unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let healthy_calls = timeout(Duration::from_secs(10), watcher)
        .await
        .unwrap()
        .unwrap();

    for (fault, burst, server, dep) in &faulty {
        let answers = dep.answers();
        let during = &answers[1..];
        // Each fault's own failure, and the rejections of the calls beyond the bulkhead.
        let mut required = vec![fault.fallback()];
        if *burst > dep.isolation.limit() {
            required.push(dep.isolation.rejection());
        }
        for expected in &required {
            assert!(
                during.contains(expected),
                "{fault:?}: no {expected:?} in {during:?}"
            );
        }
        for answer in during {
            assert!(
                required.contains(answer) || *answer == short_circuited(),
                "{fault:?}: {answer:?}"
            );
        }
        assert_eq!(dep.command().circuit().state(), State::Open, "{fault:?}");
        let called = server.requests();
        let (answer, took) = dep.call().await;
        assert_eq!(answer, short_circuited(), "{fault:?}");
        assert!(took < PROMPT, "{fault:?}: short-circuited after {took:?}");
        assert_eq!(
            server.requests(),
            called,
            "{fault:?}: not called while open"
        );
    }

    assert!(
        !healthy_calls.is_empty(),
        "the healthy dependency was called"
    );
    for (answer, took, _) in &healthy_calls {
        assert_eq!(*answer, fresh());
        assert!(*took < PROMPT, "a healthy call took {took:?}");
    }
    let while_full = healthy_calls.iter().filter(|(_, _, full)| *full).count();
    assert!(
        while_full >= 1,
        "none of {} healthy calls ran while the hanging pool was full",
        healthy_calls.len()
    );
    assert_eq!(healthy.command().circuit().state(), State::Closed);

    for (_, _, server, _) in &faulty {
        server.set_mode(Mode::Healthy).await;
    }
    sleep(SLEEP_WINDOW + Duration::from_millis(50)).await;
    for (fault, _, _, dep) in &faulty {
        assert_eq!(dep.call().await.0, fresh(), "{fault:?}: the trial");
        assert_eq!(dep.command().circuit().state(), State::Closed, "{fault:?}");
        assert_eq!(dep.call().await.0, fresh(), "{fault:?}: recovered");
    }
    assert_eq!(healthy.call().await.0, fresh());

    let mut deps = vec![healthy];
    deps.extend(faulty.iter().map(|(_, _, _, dep)| dep.clone()));
    let mut pool_threads = 0;
    for dep in &deps {
        dep.assert_events_match_answers();
        dep.assert_no_leaks().await;
        pool_threads += dep.isolation.threads();
    }
    let threads = os_threads();
    assert!(
        threads <= baseline + pool_threads,
        "{threads} OS threads, {baseline} before, {pool_threads} allowed to the pools"
    );
    drop(faulty);
    drop(healthy_server);
    assert_threads_wind_down(baseline, deps, registry).await;
}
