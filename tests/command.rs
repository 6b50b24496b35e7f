//! The command layer, event by event: each test proves an event is recorded (spec §3.5, §3.8)
//! and that the right value or error reaches the caller. Paused time unless a thread pool runs.
#![allow(clippy::unwrap_used)]

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::Semaphore as Gate;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_hystrix::{
    BoxError, BreakerConfig, Command, CommandError, CommandLayer, ErrorKind, FailureKind,
    FallbackError, HttpClassifier, HystrixEventType as Ev, Outcome, Registry, ThreadPoolConfig,
    cache::{STALE_HEADER, Stale, StaleCache, Tier},
    core::EventCounts,
};

/// Every event counted since the command was built.
fn counts<Req, Res, K>(layer: &CommandLayer<Req, Res, K>) -> EventCounts<Ev> {
    layer.command().metrics().snapshot().cumulative
}

/// Latency snapshots read completed buckets only (as Hystrix's): move past the current one.
async fn complete_latency_buckets() {
    tokio::time::advance(Duration::from_secs(10)).await;
}

/// Asserts the events counted: those listed with their counts, every other zero.
fn assert_events<Req, Res, K>(layer: &CommandLayer<Req, Res, K>, expected: &[(Ev, u64)]) {
    let counts = counts(layer);
    for e in <Ev as tower_hystrix::core::Event>::ALL {
        let want = expected
            .iter()
            .find(|(ev, _)| ev == e)
            .map_or(0, |(_, n)| *n);
        assert_eq!(counts.get(*e), want, "{e:?}");
    }
}

/// Lets spawned tasks run up to their next wait.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn echo() -> impl Service<u64, Response = String, Error = io::Error, Future: Send> + Clone {
    service_fn(|x: u64| async move { Ok::<_, io::Error>(format!("v{x}")) })
}

fn failing() -> impl Service<u64, Response = String, Error = io::Error, Future: Send> + Clone {
    service_fn(|_: u64| async move { Err::<String, _>(io::Error::other("down")) })
}

/// A service whose calls wait until the gate gives them a permit.
fn gated(
    gate: Arc<Gate>,
) -> impl Service<u64, Response = String, Error = io::Error, Future: Send> + Clone {
    service_fn(move |x: u64| {
        let gate = gate.clone();
        async move {
            gate.acquire().await.unwrap().forget();
            Ok::<_, io::Error>(format!("v{x}"))
        }
    })
}

async fn fallback_value(_: (), failure: tower_hystrix::Failure) -> Result<String, io::Error> {
    Ok(format!("fallback after {:?}", failure.kind()))
}

#[tokio::test(start_paused = true)]
async fn success_records_success_latency_and_concurrency() {
    let layer = Command::builder("Ok")
        .registry(&Registry::new())
        .build()
        .unwrap();
    let slow = service_fn(|x: u64| async move {
        tokio::time::sleep(Duration::from_millis(40)).await;
        Ok::<_, io::Error>(x * 2)
    });
    let svc = layer.layer(slow);
    let (a, b) = tokio::join!(svc.clone().oneshot(1), svc.clone().oneshot(2));
    assert_eq!((a.unwrap(), b.unwrap()), (2, 4));
    assert_events(&layer, &[(Ev::Success, 2)]);
    let s = layer.command().snapshot();
    assert_eq!((s.current_concurrent, s.rolling_max_concurrent), (0, 2));
    assert_eq!(s.health.total, 2);
    complete_latency_buckets().await;
    let s = layer.command().snapshot();
    assert_eq!(s.latency_execute.count, 2);
    assert_eq!(s.latency_execute.mean, 40);
    assert_eq!(s.latency_total.mean, 40);
}

/// A finished call's future answers a later poll with an error: it never polls the inner
/// future again (an `async` block panics when resumed after completion), nor records twice.
#[tokio::test(start_paused = true)]
async fn a_finished_future_polled_again_is_an_error_not_a_panic() {
    let layer = Command::builder("Again")
        .registry(&Registry::new())
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    let mut fut = std::pin::pin!(svc.ready().await.unwrap().call(7));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert_eq!(
        fut.as_mut().poll(&mut cx).map(Result::unwrap),
        std::task::Poll::Ready("v7".into())
    );
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(e)) => {
            assert!(e.to_string().contains("polled after completion"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_events(&layer, &[(Ev::Success, 1)]);
}

#[tokio::test(start_paused = true)]
async fn failure_runs_the_fallback() {
    let layer = Command::builder("Fails")
        .registry(&Registry::new())
        .fallback(fallback_value)
        .build()
        .unwrap();
    let out = layer.layer(failing()).oneshot(1).await.unwrap();
    assert_eq!(out, "fallback after Failed");
    assert_events(&layer, &[(Ev::Failure, 1), (Ev::FallbackSuccess, 1)]);
    assert_eq!(layer.command().snapshot().health.errors, 1);
}

#[tokio::test(start_paused = true)]
async fn failure_without_fallback_is_the_inner_error() {
    let layer = Command::builder("NoFallback")
        .registry(&Registry::new())
        .build()
        .unwrap();
    let err = layer.layer(failing()).oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(matches!(err.fallback(), Some(FallbackError::Missing)));
    assert_eq!(
        err.downcast_inner::<io::Error>().unwrap().to_string(),
        "down"
    );
    assert_eq!(err.status_code(), http::StatusCode::BAD_GATEWAY);
    assert_events(
        &layer,
        &[
            (Ev::Failure, 1),
            (Ev::FallbackMissing, 1),
            (Ev::ExceptionThrown, 1),
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_failure_is_reported_with_its_error() {
    let layer = Command::builder("FallbackFails")
        .registry(&Registry::new())
        .fallback(|_: (), _| async { Err::<String, _>(io::Error::other("fallback down too")) })
        .build()
        .unwrap();
    let err = layer.layer(failing()).oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    match err.fallback() {
        Some(FallbackError::Failed(e)) => assert_eq!(e.to_string(), "fallback down too"),
        other => panic!("{other:?}"),
    }
    assert_events(
        &layer,
        &[
            (Ev::Failure, 1),
            (Ev::FallbackFailure, 1),
            (Ev::ExceptionThrown, 1),
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_drops_the_call_and_falls_back() {
    let layer = Command::builder("Slow")
        .registry(&Registry::new())
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let inner = {
        let dropped = dropped.clone();
        service_fn(move |x: u64| {
            let guard = DropCounter(dropped.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, io::Error>(x)
            }
        })
    };
    let start = tokio::time::Instant::now();
    let err = layer.layer(inner).oneshot(1).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert!(err.is_timeout());
    assert_eq!(err.status_code(), http::StatusCode::GATEWAY_TIMEOUT);
    assert!(err.to_string().contains("timed out after 100 ms"), "{err}");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the inner call is dropped"
    );
    assert_events(
        &layer,
        &[
            (Ev::Timeout, 1),
            (Ev::FallbackMissing, 1),
            (Ev::ExceptionThrown, 1),
        ],
    );
    assert_eq!(layer.command().snapshot().health.errors, 1);
    complete_latency_buckets().await;
    assert_eq!(layer.command().snapshot().latency_execute.mean, 100);
}

struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn timeout_can_be_disabled() {
    let layer = Command::builder("NoTimeout")
        .registry(&Registry::new())
        .no_timeout()
        .build()
        .unwrap();
    let inner = service_fn(|x: u64| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, io::Error>(x)
    });
    assert_eq!(layer.layer(inner).oneshot(3).await.unwrap(), 3);
    assert_events(&layer, &[(Ev::Success, 1)]);
}

#[tokio::test(start_paused = true)]
async fn bad_request_is_returned_without_fallback_or_health() {
    let fallbacks = Arc::new(AtomicUsize::new(0));
    let layer = Command::builder("Bad")
        .registry(&Registry::new())
        .classifier(|r: Result<&String, &BoxError>| match r {
            Err(e) if e.to_string() == "invalid id" => Outcome::BadRequest,
            Err(_) => Outcome::Failure,
            Ok(_) => Outcome::Success,
        })
        .fallback({
            let fallbacks = fallbacks.clone();
            move |_: (), _| {
                fallbacks.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, io::Error>("fallback".to_string()) }
            }
        })
        .build()
        .unwrap();
    let inner = service_fn(|_: u64| async { Err::<String, _>(io::Error::other("invalid id")) });
    let err = layer.layer(inner).oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.fallback().is_none());
    assert_eq!(err.status_code(), http::StatusCode::BAD_REQUEST);
    assert_eq!(
        fallbacks.load(Ordering::SeqCst),
        0,
        "never a fallback for a bad request"
    );
    assert_events(&layer, &[(Ev::BadRequest, 1), (Ev::ExceptionThrown, 1)]);
    assert_eq!(layer.command().snapshot().health.total, 0);
}

#[tokio::test(start_paused = true)]
async fn short_circuited_calls_skip_the_dependency() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |x: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, io::Error>(format!("v{x}")) }
        })
    };
    let registry = Registry::new();
    let with_fallback = Command::builder("Open")
        .registry(&registry)
        .fallback(fallback_value)
        .build()
        .unwrap();
    with_fallback.command().circuit().force_open();
    let svc = with_fallback.layer(inner.clone());
    assert_eq!(
        svc.oneshot(1).await.unwrap(),
        "fallback after ShortCircuited"
    );

    let without = Command::builder("OpenNoFallback")
        .registry(&registry)
        .build()
        .unwrap();
    without.command().circuit().force_open();
    let err = without.layer(inner).oneshot(1).await.unwrap_err();
    assert!(err.is_short_circuited());
    assert_eq!(err.status_code(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        err.downcast_inner::<tower_hystrix::ShortCircuited>()
            .unwrap()
            .is_forced()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_events(
        &with_fallback,
        &[(Ev::ShortCircuited, 1), (Ev::FallbackSuccess, 1)],
    );
    assert_events(
        &without,
        &[
            (Ev::ShortCircuited, 1),
            (Ev::FallbackMissing, 1),
            (Ev::ExceptionThrown, 1),
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn failures_trip_the_circuit() {
    let layer = Command::builder("Trips")
        .registry(&Registry::new())
        .breaker(BreakerConfig {
            request_volume_threshold: 5,
            ..BreakerConfig::default()
        })
        .build()
        .unwrap();
    let mut svc = layer.layer(failing());
    for _ in 0..5 {
        let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed);
    }
    // Health is recomputed at most every 500 ms (metrics.healthSnapshot.intervalInMilliseconds).
    tokio::time::advance(Duration::from_millis(600)).await;
    let _ = svc.ready().await.unwrap().call(1).await;
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(err.is_short_circuited(), "{err}");
    assert!(layer.command().circuit().is_open());
}

#[tokio::test(start_paused = true)]
async fn semaphore_rejects_beyond_its_limit() {
    let gate = Arc::new(Gate::new(0));
    let layer = Command::builder("Sem")
        .registry(&Registry::new())
        .semaphore(1)
        .no_timeout()
        .fallback(fallback_value)
        .build()
        .unwrap();
    let svc = layer.layer(gated(gate.clone()));
    let first = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    assert_eq!(layer.command().metrics().current_concurrent(), 1);
    assert_eq!(
        svc.clone().oneshot(2).await.unwrap(),
        "fallback after SemaphoreRejected"
    );
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().unwrap(), "v1");
    assert_events(
        &layer,
        &[
            (Ev::Success, 1),
            (Ev::SemaphoreRejected, 1),
            (Ev::FallbackSuccess, 1),
        ],
    );
    assert_eq!(layer.command().snapshot().health.errors, 1);
    assert_eq!(layer.command().semaphore().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn fallback_semaphore_rejects_beyond_its_limit() {
    let gate = Arc::new(Gate::new(0));
    let layer = Command::builder("FallbackSem")
        .registry(&Registry::new())
        .fallback_max_concurrent(1)
        .fallback({
            let gate = gate.clone();
            move |_: (), _| {
                let gate = gate.clone();
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok::<_, io::Error>("slow fallback".to_string())
                }
            }
        })
        .build()
        .unwrap();
    let svc = layer.layer(failing());
    let first = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    let err = svc.clone().oneshot(2).await.unwrap_err();
    assert!(
        matches!(err.fallback(), Some(FallbackError::Rejected)),
        "{err}"
    );
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().unwrap(), "slow fallback");
    assert_events(
        &layer,
        &[
            (Ev::Failure, 2),
            (Ev::FallbackRejection, 1),
            (Ev::FallbackSuccess, 1),
            (Ev::ExceptionThrown, 1),
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_disabled_by_configuration() {
    let registry = Registry::new();
    registry
        .load_str("[command.Disabled]\nfallback_enabled = false\n")
        .unwrap();
    let layer = Command::builder("Disabled")
        .registry(&registry)
        .fallback(fallback_value)
        .build()
        .unwrap();
    let err = layer.layer(failing()).oneshot(1).await.unwrap_err();
    assert!(matches!(err.fallback(), Some(FallbackError::Disabled)));
    assert_events(
        &layer,
        &[
            (Ev::Failure, 1),
            (Ev::FallbackDisabled, 1),
            (Ev::ExceptionThrown, 1),
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn the_fallback_gets_the_request_view_and_the_failure() {
    let layer = Command::builder("View")
        .registry(&Registry::new())
        .request_view(|x: &u64| *x)
        .fallback(|x: u64, failure: tower_hystrix::Failure| async move {
            let error = failure.error().map(ToString::to_string);
            Ok::<_, io::Error>(format!("{x}: {:?} {error:?}", failure.kind()))
        })
        .build()
        .unwrap();
    let out = layer.layer(failing()).oneshot(42).await.unwrap();
    assert_eq!(out, "42: Failed Some(\"down\")");
}

#[tokio::test]
async fn thread_pool_rejects_when_busy_and_runs_on_its_threads() {
    let registry = Registry::new();
    let layer = Command::builder("Pooled")
        .group("PoolGroup")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig {
            core_size: 1,
            ..ThreadPoolConfig::default()
        })
        .no_timeout()
        .build()
        .unwrap();
    assert_eq!(layer.command().thread_pool_key().as_str(), "PoolGroup");
    let gate = Arc::new(Gate::new(0));
    let inner = {
        let gate = gate.clone();
        service_fn(move |_: u64| {
            let gate = gate.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, io::Error>(std::thread::current().name().map(str::to_owned))
            }
        })
    };
    let svc = layer.layer(inner);
    let first = tokio::spawn(svc.clone().oneshot(1));
    let pool = layer.command().thread_pool().unwrap().clone();
    for _ in 0..500 {
        if pool.metrics().active_count == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = svc.clone().oneshot(2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ThreadPoolRejected);
    assert!(err.is_rejected());
    gate.add_permits(1);
    let thread = first.await.unwrap().unwrap().unwrap_or_default();
    assert!(thread.contains("PoolGroup"), "ran on {thread:?}");
    assert_events(
        &layer,
        &[
            (Ev::Success, 1),
            (Ev::ThreadPoolRejected, 1),
            (Ev::FallbackMissing, 1),
            (Ev::ExceptionThrown, 1),
        ],
    );
    // A second command of the same group shares the pool.
    let other = Command::builder::<u64, String>("PooledToo")
        .group("PoolGroup")
        .registry(&registry)
        .thread_pool(ThreadPoolConfig::default())
        .build()
        .unwrap();
    assert_eq!(
        other.command().thread_pool().unwrap().key().as_str(),
        "PoolGroup"
    );
    assert_eq!(registry.thread_pools().len(), 1);
}

#[tokio::test]
async fn thread_pool_latency_includes_the_hand_off() {
    let layer = Command::builder("PooledLatency")
        .registry(&Registry::new())
        .thread_pool(ThreadPoolConfig::default())
        .timeout(Duration::from_secs(5))
        // Latency buckets of 100 ms, so that one completes soon in real time.
        .properties(tower_hystrix::CommandProperties {
            metrics_rolling_percentile_time_in_milliseconds: Some(600),
            ..Default::default()
        })
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|x: u64| async move {
        std::thread::sleep(Duration::from_millis(20)); // a blocking client
        Ok::<_, io::Error>(x)
    }));
    assert_eq!(svc.oneshot(9).await.unwrap(), 9);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let s = layer.command().snapshot();
    assert_eq!(s.counts.get(Ev::Success), 1);
    assert!(s.latency_execute.mean >= 20, "{:?}", s.latency_execute);
    assert!(s.latency_total.mean >= s.latency_execute.mean);
    assert_eq!(
        layer
            .command()
            .thread_pool()
            .unwrap()
            .metrics()
            .completed_task_count,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_calls_are_cancelled() {
    let gate = Arc::new(Gate::new(0));
    let layer = Command::builder("Cancel")
        .registry(&Registry::new())
        .semaphore(1)
        .build()
        .unwrap();
    let svc = layer.layer(gated(gate));
    let call = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    assert_eq!(layer.command().semaphore().in_flight(), 1);
    call.abort();
    let _ = call.await;
    assert_eq!(
        layer.command().semaphore().in_flight(),
        0,
        "permit released"
    );
    assert_eq!(layer.command().metrics().current_concurrent(), 0);
    assert_events(&layer, &[(Ev::Cancelled, 1)]);
}

#[tokio::test(start_paused = true)]
async fn coalesced_requests_execute_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Gate::new(0));
    let inner = {
        let (calls, gate) = (calls.clone(), gate.clone());
        service_fn(move |x: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, io::Error>(format!("v{x}"))
            }
        })
    };
    let layer = Command::builder("Coalesce")
        .registry(&Registry::new())
        .no_timeout()
        .cache_key(|x: &u64| Some(x.to_string()))
        .coalesce()
        .build()
        .unwrap();
    let svc = layer.layer(inner);
    let calls_in = [7, 7, 7, 8].map(|x| tokio::spawn(svc.clone().oneshot(x)));
    settle().await;
    gate.add_permits(2);
    let mut out = Vec::new();
    for c in calls_in {
        out.push(c.await.unwrap().unwrap());
    }
    assert_eq!(out, ["v7", "v7", "v7", "v8"]);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one execution per key");
    assert_events(
        &layer,
        &[
            (Ev::Success, 2),
            (Ev::ResponseFromCache, 2),
            (Ev::Collapsed, 3),
        ],
    );
    // Later requests execute again.
    gate.add_permits(1);
    assert_eq!(svc.oneshot(7).await.unwrap(), "v7");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn coalesced_errors_reach_every_caller() {
    let layer = Command::builder("CoalesceErr")
        .registry(&Registry::new())
        .cache_key(|x: &u64| Some(x.to_string()))
        .coalesce()
        .build()
        .unwrap();
    let slow_failure = service_fn(|_: u64| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err::<String, _>(io::Error::other("down"))
    });
    let svc = layer.layer(slow_failure);
    let (a, b) = tokio::join!(svc.clone().oneshot(1), svc.clone().oneshot(1));
    let (a, b): (CommandError, CommandError) = (a.unwrap_err(), b.unwrap_err());
    assert_eq!((a.kind(), b.kind()), (ErrorKind::Failed, ErrorKind::Failed));
    assert_events(
        &layer,
        &[
            (Ev::Failure, 1),
            (Ev::FallbackMissing, 1),
            (Ev::ExceptionThrown, 1),
            (Ev::ResponseFromCache, 1),
            (Ev::Collapsed, 2),
        ],
    );
}

fn http_ok(body: &str) -> http::Response<String> {
    http::Response::new(body.to_string())
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_the_last_good_response() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let inner = {
        let healthy = healthy.clone();
        service_fn(move |req: http::Request<()>| {
            let healthy = healthy.load(Ordering::SeqCst);
            async move {
                if healthy {
                    Ok::<_, io::Error>(http_ok(&format!("fresh {}", req.uri().path())))
                } else {
                    let mut res = http_ok("upstream error");
                    *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    Ok(res)
                }
            }
        })
    };
    let cache = StaleCache::new(100, Duration::from_secs(60));
    let layer = Command::builder("Stale")
        .registry(&Registry::new())
        .classifier(HttpClassifier)
        .cache_key(|req: &http::Request<()>| Some(req.uri().path().to_string()))
        .stale_cache(cache.clone())
        .build()
        .unwrap();
    let svc = layer.layer(inner);
    let req = |path: &str| http::Request::get(path).body(()).unwrap();

    let fresh = svc.clone().oneshot(req("/a")).await.unwrap();
    assert_eq!(fresh.body(), "fresh /a");
    assert!(fresh.headers().get(STALE_HEADER).is_none());

    healthy.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(3)).await;
    let stale = svc.clone().oneshot(req("/a")).await.unwrap();
    assert_eq!(stale.body(), "fresh /a");
    assert_eq!(stale.headers()[STALE_HEADER], "3");
    let marker = stale.extensions().get::<Stale>().unwrap();
    assert_eq!(
        (marker.age(), marker.tier()),
        (Duration::from_secs(3), Tier::Local)
    );

    // Nothing cached for this key: the dependency's own failed response comes back.
    let uncached = svc.clone().oneshot(req("/b")).await.unwrap();
    assert_eq!(uncached.status(), http::StatusCode::SERVICE_UNAVAILABLE);

    // Past its time to live, a response is no longer served.
    tokio::time::advance(Duration::from_secs(60)).await;
    let expired = svc.clone().oneshot(req("/a")).await.unwrap();
    assert_eq!(expired.status(), http::StatusCode::SERVICE_UNAVAILABLE);

    assert_events(
        &layer,
        &[
            (Ev::Success, 1),
            (Ev::Failure, 3),
            (Ev::FallbackSuccess, 1),
            (Ev::FallbackMissing, 2),
        ],
    );
    assert_eq!(cache.served(), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn stale_cache_answers_short_circuits_before_the_fallback() {
    let layer = Command::builder("StaleOpen")
        .registry(&Registry::new())
        .cache_key(|x: &u64| Some(x.to_string()))
        .stale_cache(StaleCache::new(100, Duration::from_secs(60)))
        .fallback(fallback_value)
        .build()
        .unwrap();
    let svc = layer.layer(echo());
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), "v1");
    layer.command().circuit().force_open();
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), "v1", "stale");
    assert_eq!(
        svc.oneshot(2).await.unwrap(),
        "fallback after ShortCircuited",
        "no stale entry: the fallback"
    );
    assert_events(
        &layer,
        &[
            (Ev::Success, 1),
            (Ev::ShortCircuited, 2),
            (Ev::FallbackSuccess, 2),
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn services_of_one_command_share_it() {
    let registry = Registry::new();
    let layer = Command::builder("Shared")
        .registry(&registry)
        .build()
        .unwrap();
    let again = Command::builder::<u64, String>("Shared")
        .registry(&registry)
        .build()
        .unwrap();
    assert!(
        layer.command().ptr_eq(again.command()),
        "one command per key"
    );
    let (a, b) = (layer.layer(echo()), again.layer(echo()));
    a.oneshot(1).await.unwrap();
    b.oneshot(2).await.unwrap();
    assert_events(&layer, &[(Ev::Success, 2)]);
    layer.command().circuit().force_open();
    let err = layer.layer(echo()).oneshot(3).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShortCircuited);
    assert_eq!(registry.commands().len(), 1);
    assert_eq!(registry.get("Shared").unwrap().key().as_str(), "Shared");
}

#[tokio::test(start_paused = true)]
async fn failure_kinds_reach_the_fallback() {
    // One fallback sees every class of failure, and only those.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = Arc::new(Gate::new(0));
    let layer = Command::builder("Kinds")
        .registry(&Registry::new())
        .semaphore(1)
        .timeout(Duration::from_millis(50))
        .fallback({
            let seen = seen.clone();
            move |_: (), f: tower_hystrix::Failure| {
                seen.lock().unwrap().push(f.kind());
                async { Ok::<_, io::Error>(String::new()) }
            }
        })
        .build()
        .unwrap();
    let svc = layer.layer(gated(gate));
    let held = tokio::spawn(svc.clone().oneshot(1)); // times out after 50 ms
    settle().await;
    svc.clone().oneshot(2).await.unwrap(); // rejected meanwhile
    held.await.unwrap().unwrap();
    layer.command().circuit().force_open();
    svc.oneshot(3).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            FailureKind::SemaphoreRejected,
            FailureKind::TimedOut,
            FailureKind::ShortCircuited
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_timeout_counts_from_the_call_not_the_first_poll() {
    let layer = Command::builder("LatePoll")
        .registry(&Registry::new())
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut svc = layer.layer(gated(Arc::new(Gate::new(0))));
    let start = tokio::time::Instant::now();
    let call = svc.ready().await.unwrap().call(1);
    // The timer is armed lazily, on the first pending poll: it must still end 100 ms after
    // the call began.
    tokio::time::advance(Duration::from_millis(80)).await;
    let err = call.await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(layer.command().semaphore().in_flight(), 0);
    assert_eq!(layer.command().metrics().current_concurrent(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_trial_reopens_the_circuit() {
    let layer = Command::builder("CancelledTrial")
        .registry(&Registry::new())
        .breaker(BreakerConfig {
            request_volume_threshold: 1,
            ..BreakerConfig::default()
        })
        .build()
        .unwrap();
    let mut failing = layer.layer(failing());
    let _ = failing.ready().await.unwrap().call(1).await;
    tokio::time::advance(Duration::from_millis(600)).await; // the health snapshot's interval
    let _ = failing.ready().await.unwrap().call(1).await;
    let circuit = layer.command().circuit();
    assert!(circuit.is_open());
    tokio::time::advance(Duration::from_secs(6)).await; // past the sleep window
    // The next call is the half-open trial; its caller goes away before it ends.
    let trial = tokio::spawn(layer.layer(gated(Arc::new(Gate::new(0)))).oneshot(1));
    settle().await;
    assert_eq!(circuit.state(), tower_hystrix::State::HalfOpen);
    trial.abort();
    let _ = trial.await;
    assert_eq!(
        circuit.state(),
        tower_hystrix::State::Open,
        "a cancelled trial counts as failed"
    );
    assert_eq!(layer.command().semaphore().in_flight(), 0);
    assert_eq!(layer.command().metrics().current_concurrent(), 0);
    assert_eq!(counts(&layer).get(Ev::Cancelled), 1);
}
