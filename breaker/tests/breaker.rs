//! Behaviour of the circuit breaker layer, under tokio's paused time.

use std::{
    sync::{
        Arc, Barrier,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hystrix_breaker::{
    BoxError, BreakerConfig, Circuit, CircuitBreakerLayer, HealthWindow, HttpClassifier, Mode,
    Outcome, Reason, ShortCircuited, SleepBackoff, State, Transition,
};
use hystrix_core::{HystrixEventType as Ev, ManualClock};
use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};

/// What the test dependency does with a request.
#[derive(Clone, Copy, Debug)]
enum Req {
    Ok,
    Fail,
    /// Succeeds after this many milliseconds.
    Slow(u64),
    Panic,
}

/// The test dependency's response future.
type Reply = std::pin::Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

type Svc = hystrix_breaker::CircuitBreaker<tower::util::ServiceFn<fn(Req) -> Reply>>;

fn dependency(req: Req) -> Reply {
    Box::pin(async move {
        match req {
            Req::Ok => Ok("ok"),
            Req::Fail => Err("dependency failed".into()),
            Req::Slow(ms) => {
                sleep(Duration::from_millis(ms)).await;
                Ok("slow")
            }
            Req::Panic => panic!("dependency panicked"),
        }
    })
}

fn breaker(config: BreakerConfig) -> (Svc, Circuit) {
    let circuit = Circuit::new("test", config).expect("valid config");
    let svc =
        CircuitBreakerLayer::new(circuit.clone()).layer(service_fn(dependency as fn(Req) -> Reply));
    (svc, circuit)
}

async fn call(svc: &mut Svc, req: Req) -> Result<&'static str, BoxError> {
    svc.ready().await?.call(req).await
}

async fn calls(svc: &mut Svc, req: Req, n: usize) {
    for _ in 0..n {
        let _ = call(svc, req).await;
    }
}

fn is_short_circuited(r: &Result<&'static str, BoxError>) -> bool {
    matches!(r, Err(e) if e.is::<ShortCircuited>())
}

/// Trips a default-configured breaker: 20 failures, then one more after the health snapshot
/// interval so that the trip decision sees fresh counts.
async fn trip(svc: &mut Svc, circuit: &Circuit) {
    calls(svc, Req::Fail, 20).await;
    advance(Duration::from_millis(500)).await;
    calls(svc, Req::Fail, 1).await;
    assert_eq!(circuit.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn stays_closed_below_the_request_volume() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    for _ in 0..19 {
        assert!(call(&mut svc, Req::Fail).await.is_err());
        advance(Duration::from_millis(500)).await;
    }
    // 19 requests, 100% errors, but under the volume threshold of 20.
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(circuit.health().errors, 19);
}

#[tokio::test(start_paused = true)]
async fn trips_at_the_threshold_once_health_is_recomputed() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    calls(&mut svc, Req::Ok, 10).await;
    calls(&mut svc, Req::Fail, 10).await;
    // 20 requests at 50%, but the health seen by the trip decision was computed at the first
    // failure (11 requests, 9%) and is kept for the 500 ms snapshot interval.
    assert_eq!(circuit.state(), State::Closed);
    advance(Duration::from_millis(499)).await;
    calls(&mut svc, Req::Ok, 1).await;
    calls(&mut svc, Req::Fail, 1).await; // 22 requests, 11 errors: 50%, cache still fresh
    assert_eq!(circuit.state(), State::Closed);
    advance(Duration::from_millis(1)).await;
    calls(&mut svc, Req::Fail, 1).await; // 23 requests, 12 errors: 52%
    assert_eq!(circuit.state(), State::Open);
    assert!(circuit.is_open());
}

#[tokio::test(start_paused = true)]
async fn does_not_trip_below_the_error_percentage() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    calls(&mut svc, Req::Ok, 12).await;
    calls(&mut svc, Req::Fail, 10).await;
    advance(Duration::from_millis(500)).await;
    calls(&mut svc, Req::Fail, 1).await; // 11 of 23: 47%
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(circuit.health().error_percentage(), 47);
}

#[tokio::test(start_paused = true)]
async fn old_failures_leave_the_window() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    calls(&mut svc, Req::Fail, 20).await;
    advance(Duration::from_secs(10)).await;
    calls(&mut svc, Req::Fail, 1).await; // the first 20 left the 10 s window
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(circuit.health().total, 1);
}

#[tokio::test(start_paused = true)]
async fn open_rejects_at_once_without_calling_the_dependency() {
    let circuit = Circuit::new("mock", BreakerConfig::default()).unwrap();
    let (mut svc, mut handle) =
        tower_test::mock::spawn_layer::<&str, &str, _>(CircuitBreakerLayer::new(circuit.clone()));
    handle.allow(1);
    circuit.force_open();
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call("hello"));
    let err = tokio_test::assert_ready_err!(fut.poll());
    let short = err
        .downcast_ref::<ShortCircuited>()
        .expect("short-circuited");
    assert!(short.is_forced());
    // The dependency never saw the request.
    assert!(handle.poll_request().is_pending());

    // Its readiness was not consumed: once closed, the next call goes through.
    circuit.clear_force();
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call("hello"));
    let (req, send) = handle.next_request().await.expect("request");
    assert_eq!(req, "hello");
    send.send_response("world");
    assert_eq!(tokio_test::assert_ready_ok!(fut.poll()), "world");
}

#[tokio::test(start_paused = true)]
async fn sleep_window_then_a_single_trial_that_closes() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    let mut transitions = circuit.subscribe();
    trip(&mut svc, &circuit).await;

    advance(Duration::from_millis(5000)).await;
    // Hystrix admits a trial only once `now > opened + sleep`.
    assert!(is_short_circuited(&call(&mut svc, Req::Ok).await));
    advance(Duration::from_millis(1)).await;

    // The trial is slow; while it runs, everyone else is rejected.
    let mut trial_svc = svc.clone();
    let trial = tokio::spawn(async move { call(&mut trial_svc, Req::Slow(100)).await });
    tokio::task::yield_now().await;
    assert_eq!(circuit.state(), State::HalfOpen);
    assert!(circuit.is_open(), "Hystrix streams HALF_OPEN as open");
    assert!(is_short_circuited(&call(&mut svc, Req::Ok).await));

    assert_eq!(trial.await.unwrap().unwrap(), "slow");
    assert_eq!(circuit.state(), State::Closed);
    // Closing resets the health window.
    assert_eq!(circuit.health().total, 0);
    assert_eq!(call(&mut svc, Req::Ok).await.unwrap(), "ok");

    let seen: Vec<(State, State)> = std::iter::from_fn(|| transitions.try_recv().ok())
        .map(|t: Transition| (t.from, t.to))
        .collect();
    assert_eq!(
        seen,
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn failed_trial_reopens_and_restarts_the_sleep_window() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    let mut transitions = circuit.subscribe();
    trip(&mut svc, &circuit).await;
    advance(Duration::from_millis(5001)).await;
    assert!(call(&mut svc, Req::Fail).await.is_err());
    assert_eq!(circuit.state(), State::Open);

    advance(Duration::from_millis(5000)).await;
    assert!(is_short_circuited(&call(&mut svc, Req::Ok).await));
    advance(Duration::from_millis(1)).await;
    assert_eq!(call(&mut svc, Req::Ok).await.unwrap(), "ok");
    assert_eq!(circuit.state(), State::Closed);

    let reasons: Vec<Reason> = std::iter::from_fn(|| transitions.try_recv().ok())
        .map(|t| t.reason)
        .collect();
    assert!(matches!(reasons[0], Reason::Tripped(h) if h.total == 21 && h.errors == 21));
    assert_eq!(
        reasons[1..],
        [
            Reason::SleepWindowElapsed,
            Reason::TrialFailed,
            Reason::SleepWindowElapsed,
            Reason::TrialsSucceeded
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_trial_reopens() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    let mut transitions = circuit.subscribe();
    trip(&mut svc, &circuit).await;
    advance(Duration::from_millis(5001)).await;

    let fut = svc.ready().await.unwrap().call(Req::Slow(1000));
    assert_eq!(circuit.state(), State::HalfOpen);
    drop(fut);
    assert_eq!(circuit.state(), State::Open);
    let last = std::iter::from_fn(|| transitions.try_recv().ok()).last();
    assert_eq!(last.map(|t| t.reason), Some(Reason::TrialCancelled));

    // The sleep window restarted at the cancellation.
    advance(Duration::from_millis(5000)).await;
    assert!(is_short_circuited(&call(&mut svc, Req::Ok).await));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_trial_reopens() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    trip(&mut svc, &circuit).await;
    advance(Duration::from_millis(5001)).await;
    let fut = svc.ready().await.unwrap().call(Req::Panic);
    assert!(tokio::spawn(fut).await.unwrap_err().is_panic());
    assert_eq!(circuit.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn an_ordinary_dropped_call_is_not_counted() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    let fut = svc.ready().await.unwrap().call(Req::Slow(10));
    drop(fut);
    assert_eq!(circuit.health().total, 0);
    assert_eq!(circuit.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn several_trials_must_all_succeed() {
    let (mut svc, circuit) = breaker(BreakerConfig {
        half_open_probes: 3,
        ..BreakerConfig::default()
    });
    trip(&mut svc, &circuit).await;
    advance(Duration::from_millis(5001)).await;

    let trials: Vec<_> = (0..3)
        .map(|_| {
            let mut s = svc.clone();
            tokio::spawn(async move { call(&mut s, Req::Slow(50)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    assert!(
        is_short_circuited(&call(&mut svc, Req::Ok).await),
        "a 4th is rejected"
    );
    advance(Duration::from_millis(10)).await;
    assert_eq!(circuit.state(), State::HalfOpen);
    for t in trials {
        assert_eq!(t.await.unwrap().unwrap(), "slow");
    }
    assert_eq!(circuit.state(), State::Closed);

    // One failure among the trials re-opens.
    trip(&mut svc, &circuit).await;
    advance(Duration::from_millis(5001)).await;
    assert!(call(&mut svc, Req::Ok).await.is_ok());
    assert_eq!(circuit.state(), State::HalfOpen);
    assert!(call(&mut svc, Req::Fail).await.is_err());
    assert_eq!(circuit.state(), State::Open);
}

/// A breaker with the HTTP classifier over a dependency that answers with the requested status.
fn http_breaker() -> (
    impl Service<u16, Response = http::Response<()>, Error = BoxError> + Clone,
    Circuit,
) {
    let circuit = Circuit::new("http", BreakerConfig::default()).expect("valid config");
    let svc = CircuitBreakerLayer::new(circuit.clone())
        .with_classifier(HttpClassifier)
        .layer(service_fn(|code: u16| async move {
            let mut res = http::Response::new(());
            *res.status_mut() = http::StatusCode::from_u16(code)?;
            Ok::<_, BoxError>(res)
        }));
    (svc, circuit)
}

#[tokio::test(start_paused = true)]
async fn a_bad_request_trial_gives_its_slot_back() {
    let (mut svc, circuit) = http_breaker();
    for _ in 0..20 {
        svc.ready().await.unwrap().call(503).await.unwrap();
    }
    advance(Duration::from_millis(500)).await;
    svc.ready().await.unwrap().call(503).await.unwrap();
    assert_eq!(circuit.state(), State::Open);
    advance(Duration::from_millis(5001)).await;

    // A 404 trial says nothing about the dependency: still half-open, and the slot is free.
    assert_eq!(
        svc.ready().await.unwrap().call(404).await.unwrap().status(),
        404
    );
    assert_eq!(circuit.state(), State::HalfOpen);
    assert_eq!(
        svc.ready().await.unwrap().call(200).await.unwrap().status(),
        200
    );
    assert_eq!(circuit.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn http_classifier_counts_5xx_and_ignores_4xx() {
    let (mut svc, circuit) = http_breaker();
    for code in [200, 201, 404, 400, 500, 503, 302] {
        svc.ready().await.unwrap().call(code).await.unwrap();
    }
    let h = circuit.health();
    assert_eq!((h.total, h.errors), (5, 2));
}

#[tokio::test(start_paused = true)]
async fn custom_classifier_decides() {
    let circuit = Circuit::new("custom", BreakerConfig::default()).unwrap();
    let classify = |r: Result<&u32, &BoxError>| match r {
        Ok(n) if *n >= 100 => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::BadRequest,
    };
    let mut svc = CircuitBreakerLayer::new(circuit.clone())
        .with_classifier(classify)
        .layer(service_fn(|n: u32| async move {
            if n == 0 {
                Err::<u32, BoxError>("zero".into())
            } else {
                Ok(n)
            }
        }));
    for n in [1, 100, 0, 5] {
        let _ = svc.ready().await.unwrap().call(n).await;
    }
    let h = circuit.health();
    assert_eq!((h.total, h.errors), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn forced_states_and_reset() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    circuit.force_open();
    assert_eq!(circuit.mode(), Mode::ForcedOpen);
    assert!(circuit.is_open());
    assert!(is_short_circuited(&call(&mut svc, Req::Ok).await));
    assert_eq!(circuit.short_circuited(), 1);

    circuit.force_closed();
    assert!(!circuit.is_open());
    trip_while_forced_closed(&mut svc, &circuit).await;

    // Reset closes, empties the window and removes the override.
    circuit.reset();
    assert_eq!(circuit.mode(), Mode::Normal);
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(circuit.health().total, 0);
    assert_eq!(call(&mut svc, Req::Ok).await.unwrap(), "ok");
}

/// Forced closed admits everything while the state machine still trips behind it.
async fn trip_while_forced_closed(svc: &mut Svc, circuit: &Circuit) {
    calls(svc, Req::Fail, 20).await;
    advance(Duration::from_millis(500)).await;
    calls(svc, Req::Fail, 1).await;
    assert_eq!(circuit.state(), State::Open);
    assert!(!circuit.is_open());
    assert_eq!(
        call(svc, Req::Ok).await.expect("forced closed admits"),
        "ok"
    );
}

#[tokio::test(start_paused = true)]
async fn config_flags_force_and_disable() {
    let (mut svc, circuit) = breaker(BreakerConfig {
        force_open: true,
        force_closed: true,
        ..BreakerConfig::default()
    });
    assert_eq!(
        circuit.mode(),
        Mode::ForcedOpen,
        "force_open wins, as in Hystrix"
    );
    assert!(is_short_circuited(&call(&mut svc, Req::Ok).await));

    circuit
        .update(BreakerConfig {
            enabled: false,
            ..BreakerConfig::default()
        })
        .unwrap();
    assert_eq!(circuit.mode(), Mode::Disabled);
    calls(&mut svc, Req::Fail, 40).await;
    advance(Duration::from_millis(500)).await;
    calls(&mut svc, Req::Fail, 1).await;
    assert_eq!(
        circuit.state(),
        State::Closed,
        "a disabled breaker never trips"
    );
    assert!(!circuit.is_open());

    // An operator's override wins over the settings.
    circuit.force_open();
    assert!(is_short_circuited(&call(&mut svc, Req::Ok).await));
    circuit.clear_force();
    assert_eq!(circuit.mode(), Mode::Disabled);
}

#[tokio::test(start_paused = true)]
async fn hot_update_changes_thresholds_and_bad_updates_are_refused() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    let tighter = BreakerConfig {
        request_volume_threshold: 4,
        error_threshold_percentage: 25,
        ..BreakerConfig::default()
    };
    circuit.update(tighter.clone()).unwrap();
    calls(&mut svc, Req::Ok, 3).await;
    calls(&mut svc, Req::Fail, 1).await; // 1 of 4 = 25%
    assert_eq!(circuit.state(), State::Open);

    let err = circuit
        .update(BreakerConfig {
            half_open_probes: 0,
            ..tighter.clone()
        })
        .unwrap_err();
    assert_eq!(err.key(), "half_open_probes");
    let err = circuit
        .update(BreakerConfig {
            window: HealthWindow::Count(10),
            ..tighter.clone()
        })
        .unwrap_err();
    assert_eq!(err.key(), "window");
    assert_eq!(
        *circuit.config(),
        tighter,
        "the previous settings stay in force"
    );
}

#[tokio::test(start_paused = true)]
async fn sleep_window_grows_after_failed_trials_and_resets_on_close() {
    let (mut svc, circuit) = breaker(BreakerConfig {
        sleep_backoff: Some(SleepBackoff {
            multiplier: 2.0,
            max: Duration::from_secs(20),
        }),
        ..BreakerConfig::default()
    });
    trip(&mut svc, &circuit).await;
    for sleep_ms in [5_000, 10_000, 20_000, 20_000] {
        advance(Duration::from_millis(sleep_ms)).await;
        assert!(
            is_short_circuited(&call(&mut svc, Req::Ok).await),
            "{sleep_ms}"
        );
        advance(Duration::from_millis(1)).await;
        assert!(call(&mut svc, Req::Fail).await.is_err());
        assert_eq!(circuit.state(), State::Open);
    }
    advance(Duration::from_millis(20_001)).await;
    assert!(call(&mut svc, Req::Ok).await.is_ok());
    assert_eq!(circuit.state(), State::Closed);
    trip(&mut svc, &circuit).await;
    advance(Duration::from_millis(5_001)).await;
    assert!(
        call(&mut svc, Req::Ok).await.is_ok(),
        "back to the base window"
    );
}

#[tokio::test(start_paused = true)]
async fn count_window_trips_on_the_last_n_calls() {
    let (mut svc, circuit) = breaker(BreakerConfig {
        window: HealthWindow::Count(10),
        request_volume_threshold: 10,
        ..BreakerConfig::default()
    });
    calls(&mut svc, Req::Fail, 4).await;
    calls(&mut svc, Req::Ok, 6).await;
    advance(Duration::from_secs(3600)).await; // age does not matter
    assert_eq!(circuit.health().total, 10);
    calls(&mut svc, Req::Ok, 4).await; // the 4 failures are pushed out
    assert_eq!(circuit.health().errors, 0);
    calls(&mut svc, Req::Fail, 4).await;
    assert_eq!(circuit.state(), State::Closed, "4 of 10");
    calls(&mut svc, Req::Fail, 1).await;
    assert_eq!(circuit.state(), State::Open, "5 of 10, no snapshot delay");
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_without_volume() {
    let (mut svc, circuit) = breaker(BreakerConfig {
        consecutive_failures: Some(3),
        ..BreakerConfig::default()
    });
    calls(&mut svc, Req::Fail, 2).await;
    calls(&mut svc, Req::Ok, 1).await;
    calls(&mut svc, Req::Fail, 2).await;
    assert_eq!(circuit.state(), State::Closed);
    calls(&mut svc, Req::Fail, 1).await;
    assert_eq!(circuit.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_successes_count_as_failures() {
    let (mut svc, circuit) = breaker(BreakerConfig {
        slow_call_threshold: Some(Duration::from_millis(100)),
        request_volume_threshold: 4,
        health_snapshot_interval: Duration::ZERO,
        ..BreakerConfig::default()
    });
    assert_eq!(call(&mut svc, Req::Slow(100)).await.unwrap(), "slow");
    assert_eq!(circuit.health().errors, 0, "at the threshold is not slow");
    calls(&mut svc, Req::Slow(101), 1).await;
    assert_eq!(circuit.health().errors, 1);
    calls(&mut svc, Req::Ok, 1).await;
    calls(&mut svc, Req::Slow(250), 1).await;
    assert_eq!(circuit.state(), State::Open, "2 slow of 4");
}

#[tokio::test(start_paused = true)]
async fn short_circuits_are_counted_but_not_health() {
    let (mut svc, circuit) = breaker(BreakerConfig::default());
    trip(&mut svc, &circuit).await;
    calls(&mut svc, Req::Ok, 7).await;
    assert_eq!(circuit.short_circuited(), 7);
    assert_eq!(circuit.health().total, 21);
}

/// Many threads race for the trial slots of each half-open period: exactly
/// `half_open_probes` win, every time.
#[test]
fn exactly_n_trials_however_many_race() {
    const THREADS: usize = 8;
    for probes in [1u32, 3] {
        let clock = ManualClock::new();
        let circuit = Circuit::with_clock(
            "race",
            BreakerConfig {
                request_volume_threshold: 1,
                half_open_probes: probes,
                health_snapshot_interval: Duration::ZERO,
                ..BreakerConfig::default()
            },
            clock.clock(),
        )
        .unwrap();
        circuit.try_acquire().unwrap().record(Ev::Failure);
        assert_eq!(circuit.state(), State::Open);

        for round in 0..200 {
            clock.advance(Duration::from_millis(5001));
            let barrier = Arc::new(Barrier::new(THREADS));
            let admitted = Arc::new(AtomicUsize::new(0));
            let permits: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (circuit, barrier, admitted) =
                        (circuit.clone(), barrier.clone(), admitted.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        // Each thread tries several times, as a busy caller would.
                        (0..4)
                            .filter_map(|_| circuit.try_acquire().ok())
                            .inspect(|_| {
                                admitted.fetch_add(1, Ordering::Relaxed);
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut permits: Vec<_> = permits
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect();
            assert_eq!(
                admitted.load(Ordering::Relaxed),
                probes as usize,
                "round {round}"
            );
            assert!(permits.iter().all(|p| p.is_trial()));
            // Fail one trial: re-open for the next round; the rest are ignored.
            permits.pop().unwrap().record(Ev::Failure);
            assert_eq!(circuit.state(), State::Open);
            for p in permits {
                p.record(Ev::Success);
            }
            assert_eq!(circuit.state(), State::Open, "late trials are ignored");
        }
    }
}

/// `try_admit_at` and `record_at` take the caller's instants: the slowness of a call is
/// measured between them, not by the circuit's own reads of its clock.
#[test]
fn admissions_at_given_instants_measure_slowness_between_them() {
    let manual = ManualClock::new();
    let circuit = Circuit::with_clock(
        "At",
        BreakerConfig {
            slow_call_threshold: Some(Duration::from_millis(100)),
            health_snapshot_interval: Duration::ZERO,
            ..BreakerConfig::default()
        },
        manual.clock(),
    )
    .unwrap();
    let t0 = manual.now();
    // Both instants are given: the clock itself does not move.
    let admission = circuit.try_admit_at(t0).unwrap();
    circuit.record_at(admission, Ev::Success, t0 + Duration::from_millis(150));
    assert_eq!(
        circuit.health().errors,
        1,
        "150 ms between the two instants"
    );

    let admission = circuit.try_admit_at(t0).unwrap();
    circuit.record_at(admission, Ev::Success, t0 + Duration::from_millis(50));
    assert_eq!(circuit.health().errors, 1, "50 ms: not slow");
    assert_eq!(circuit.health().total, 2);

    // The clock's own reads are what `record` uses: unmoved, the call took no time.
    let admission = circuit.try_admit().unwrap();
    manual.advance(Duration::from_millis(101));
    circuit.record(admission, Ev::Success);
    assert_eq!(circuit.health().errors, 2, "101 ms on the clock");
}

/// A circuit built for a command and one that counts for itself, given the same outcomes
/// (the command marking each in its metrics first), agree on health at every step: through a
/// trip, the sleep window, a trial that closes the circuit and empties the window, and later
/// failures; a slow success is an error to both.
#[test]
fn a_circuit_reading_its_commands_metrics_agrees_with_one_that_counts_itself() {
    use hystrix_core::{CommandMetrics, MetricsConfig};

    let manual = ManualClock::new();
    let metrics =
        CommandMetrics::with_clock("Shared", "G", "G", MetricsConfig::default(), manual.clock());
    let config = BreakerConfig {
        window: HealthWindow::Time(metrics.config().rolling_stats),
        health_snapshot_interval: Duration::ZERO,
        request_volume_threshold: 4,
        slow_call_threshold: Some(Duration::from_millis(100)),
        ..BreakerConfig::default()
    };
    let shared = Circuit::for_command("Shared", config.clone(), &metrics).unwrap();
    let own = Circuit::with_clock("Own", config, manual.clock()).unwrap();

    // (event, how long the call took in ms, then how far the clock moves in ms)
    let steps: &[(Ev, u64, u64)] = &[
        (Ev::Success, 1, 300),
        (Ev::BadRequest, 1, 0),
        (Ev::Success, 150, 0), // slow: an error for the circuit, a success for the command
        (Ev::Timeout, 1, 0),
        (Ev::SemaphoreRejected, 0, 0),
        (Ev::Failure, 1, 0), // 3 errors of 5: trips
        (Ev::Success, 1, 5_100),
        (Ev::Success, 1, 0), // the trial closes the circuit and empties the window
        (Ev::Failure, 1, 200),
        (Ev::Success, 1, 11_000), // the window moves past everything before
        (Ev::ThreadPoolRejected, 0, 0),
    ];
    let mut states = Vec::new();
    for (i, &(event, took, then)) in steps.iter().enumerate() {
        let start = manual.now();
        let end = start + Duration::from_millis(took);
        let admitted = (shared.try_admit_at(end), own.try_admit_at(end));
        match admitted {
            (Ok(a), Ok(b)) => {
                metrics.mark_at(event, end);
                shared.record_at(a, event, end);
                own.record_at(b, event, end);
            }
            (Err(_), Err(_)) => metrics.mark_at(Ev::ShortCircuited, end),
            other => panic!("step {i}: the circuits disagree on admission: {other:?}"),
        }
        assert_eq!(shared.health(), own.health(), "step {i}: {event:?}");
        assert_eq!(shared.state(), own.state(), "step {i}");
        assert_eq!(shared.short_circuited(), own.short_circuited(), "step {i}");
        states.push(shared.state());
        manual.advance(Duration::from_millis(then));
    }
    assert_eq!(states[5], State::Open, "tripped at 3 errors of 5");
    assert_eq!(states[7], State::Closed, "closed by the trial");
    let health = shared.health();
    assert_eq!(
        (health.total, health.errors),
        (1, 1),
        "only the last, after the window moved"
    );
}

/// A window of another shape than the metrics' cannot be read from them: the circuit counts
/// for itself.
#[test]
fn a_circuit_for_a_command_with_its_own_window_counts_itself() {
    use hystrix_core::{CommandMetrics, MetricsConfig, RollingWindow};

    let manual = ManualClock::new();
    let metrics =
        CommandMetrics::with_clock("W", "G", "G", MetricsConfig::default(), manual.clock());
    let config = BreakerConfig {
        window: HealthWindow::Time(RollingWindow::new(Duration::from_secs(5), 5).unwrap()),
        health_snapshot_interval: Duration::ZERO,
        ..BreakerConfig::default()
    };
    let circuit = Circuit::for_command("W", config, &metrics).unwrap();
    let admission = circuit.try_admit().unwrap();
    circuit.record(admission, Ev::Failure);
    assert_eq!((circuit.health().total, circuit.health().errors), (1, 1));
    assert_eq!(
        metrics.snapshot().cumulative.get(Ev::Failure),
        0,
        "not the metrics'"
    );
}
