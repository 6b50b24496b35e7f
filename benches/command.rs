#![allow(missing_docs)] // criterion's macros generate undocumented public functions
//! The full command (circuit breaker, bulkhead, timeout, classification, metrics with
//! latencies) next to the nearest tower stack, `load_shed` + `concurrency_limit` + `timeout`,
//! in one group.
//!
//! Two ways of driving the services:
//!
//! - by hand (`benches/tower_harness.rs`, as the breaker and bulkhead benchmarks): `poll_ready`,
//!   `call`, one poll of the future with a no-op waker, so a figure is the middleware's own
//!   cost. One caller, and two threads each calling their own clone at once. Both stacks
//!   create a `tokio::time::Sleep` in `call`, so every measuring thread enters a runtime.
//! - `rt/...`: a full round trip, `svc.ready().await?.call(x).await?`, on a current-thread
//!   tokio runtime per caller thread. A call isolated on a thread pool cannot complete on its
//!   first poll, so the thread-pool command is measured this way only, and the semaphore
//!   command and the tower stack are measured the same way beside it.
//!
//! A second group, `parts`, prices the command's pieces the same way (this project's layers
//! stacked one by one, the command without its timeout, each operation of a call alone), so
//! that an optimization can be checked against its part. `BENCHMARKS.md` has the figures.
//!
//! `cargo bench --bench command` (`-- '^command/'` for the comparison alone);
//! `cargo test --bench command` runs each once.

#[allow(dead_code)] // `two_callers`: its copy below enters a runtime on each thread
#[path = "tower_harness.rs"]
mod harness;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::{Builder, Handle, Runtime};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, timeout::TimeoutLayer};
use tower_hystrix::{
    BreakerConfig, Circuit, CircuitBreakerLayer, Clock, Command, HystrixEventType, Registry,
    Semaphore, SemaphoreBulkheadLayer, State, ThreadPoolConfig,
};

/// Large enough that neither the command's semaphore nor the tower limit ever rejects.
const LIMIT: u32 = 1_000;
const TIMEOUT: Duration = Duration::from_secs(1);

/// `harness::two_callers`, with each caller thread inside `handle`'s runtime (the timeouts
/// create a `Sleep` in `call`).
fn two_callers_in<S>(handle: &Handle, svc: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    harness::two_callers_with(svc, iters, || handle.enter())
}

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `iters` round trips through `svc` on `rt`, one after another.
fn rt_one_caller<S>(rt: &Runtime, svc: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut svc = svc.clone();
    rt.block_on(async {
        #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
        let start = Instant::now();
        for i in 0..iters {
            let ready = svc.ready().await.expect("ready");
            black_box(ready.call(black_box(i)).await.expect("call"));
        }
        start.elapsed()
    })
}

/// `rt_one_caller` on `rts[0]`, or `rt_two_callers`.
fn rt_callers<S>(rts: &[Runtime; 2], two: bool, svc: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    if two {
        rt_two_callers(rts, svc, iters)
    } else {
        rt_one_caller(&rts[0], svc, iters)
    }
}

/// Two threads, each with its own current-thread runtime, making `iters` round trips on its
/// own clone; the wall time of the slower.
fn rt_two_callers<S>(rts: &[Runtime; 2], svc: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let [a, b] = rts;
    harness::on_two_threads([(a, svc.clone()), (b, svc.clone())], |(rt, svc), start| {
        start();
        rt_one_caller(rt, &svc, iters)
    })
}

fn bench(c: &mut Criterion) {
    // The timeouts need a runtime with a timer in `call`; nothing runs on it.
    let rt = current_thread();
    let _runtime = rt.enter();

    // The production clock, named: benchmarks are built with `hystrix-core/test-util`, whose
    // default clock is tokio's.
    let semaphore_layer = Command::builder::<u64, u64>("Bench")
        .registry(&Registry::new())
        .clock(Clock::system())
        .semaphore(LIMIT)
        .timeout(TIMEOUT)
        .build()
        .expect("command");
    let command = semaphore_layer.layer(harness::inner());
    let pool_layer = Command::builder::<u64, u64>("BenchPool")
        .registry(&Registry::new())
        .clock(Clock::system())
        .thread_pool(ThreadPoolConfig::default())
        .timeout(TIMEOUT)
        .build()
        .expect("command");
    let pooled = pool_layer.layer(harness::inner());
    let tower = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(LIMIT as usize)
        .timeout(TIMEOUT)
        .service(harness::inner());

    let mut group = c.benchmark_group("command");
    group.bench_function("tower/loadshed+concurrencylimit+timeout/1_caller", |b| {
        b.iter_custom(|iters| harness::one_caller(&tower, iters))
    });
    group.bench_function("command/semaphore/1_caller", |b| {
        b.iter_custom(|iters| harness::one_caller(&command, iters))
    });
    group.bench_function("tower/loadshed+concurrencylimit+timeout/2_callers", |b| {
        b.iter_custom(|iters| two_callers_in(rt.handle(), &tower, iters))
    });
    group.bench_function("command/semaphore/2_callers", |b| {
        b.iter_custom(|iters| two_callers_in(rt.handle(), &command, iters))
    });

    let rts = [current_thread(), current_thread()];
    // The floor of any thread isolation: the tower stack around a spawn onto another runtime
    // (two worker threads, so that two callers' requests can run at once), awaited.
    let other = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let spawner = other.handle().clone();
    let tower_spawn = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(LIMIT as usize)
        .timeout(TIMEOUT)
        .service(tower::service_fn(move |x: u64| {
            spawner.spawn(async move { x })
        }));
    for (callers, two) in [("1_caller", false), ("2_callers", true)] {
        let services: [(&str, &dyn Fn(u64) -> Duration); 4] = [
            ("rt/tower/loadshed+concurrencylimit+timeout", &|iters| {
                rt_callers(&rts, two, &tower, iters)
            }),
            ("rt/command/semaphore", &|iters| {
                rt_callers(&rts, two, &command, iters)
            }),
            (
                "rt/tower/loadshed+concurrencylimit+timeout+spawn",
                &|iters| rt_callers(&rts, two, &tower_spawn, iters),
            ),
            ("rt/command/thread_pool", &|iters| {
                rt_callers(&rts, two, &pooled, iters)
            }),
        ];
        for (name, run) in services {
            group.bench_function(format!("{name}/{callers}"), |b| b.iter_custom(run));
        }
    }
    group.finish();

    // Every call succeeded, and every permit came back.
    for layer in [&semaphore_layer, &pool_layer] {
        let command = layer.command();
        assert_eq!(command.circuit().state(), State::Closed);
        assert_eq!(command.circuit().health().errors, 0);
        assert_eq!(command.metrics().current_concurrent(), 0);
    }
    assert_eq!(semaphore_layer.command().semaphore().in_flight(), 0);
}

/// `iters` calls of `op` on this thread, timed as `harness::one_caller` times requests.
fn op_one_caller(op: &(impl Fn(u64) -> u64 + Sync), iters: u64) -> Duration {
    #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
    let start = Instant::now();
    for i in 0..iters {
        black_box(op(black_box(i)));
    }
    start.elapsed()
}

/// `op_one_caller` on two threads at once, inside `handle`'s runtime; the wall time of the
/// slower.
fn op_two_callers(handle: &Handle, op: &(impl Fn(u64) -> u64 + Sync), iters: u64) -> Duration {
    harness::on_two_threads([(), ()], |(), start| {
        let _runtime = handle.enter();
        start();
        op_one_caller(op, iters)
    })
}

/// Where the command's time goes: this project's layers stacked one by one (with tower's
/// timeout), the command without its timeout, and each operation of a command call on its
/// own. Driven as the "command" group, so the figures add up against it.
fn parts(c: &mut Criterion) {
    let rt = current_thread();
    let _runtime = rt.enter();
    let handle = rt.handle();

    let circuit =
        Circuit::with_clock("parts", BreakerConfig::default(), Clock::system()).expect("config");
    let semaphore = Semaphore::new(LIMIT);
    let breaker = CircuitBreakerLayer::new(circuit.clone()).layer(harness::inner());
    let breaker_semaphore = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(circuit.clone()))
        .layer(SemaphoreBulkheadLayer::new(semaphore.clone()))
        .service(harness::inner());
    let breaker_semaphore_timeout = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(circuit.clone()))
        .layer(SemaphoreBulkheadLayer::new(semaphore.clone()))
        .layer(TimeoutLayer::new(TIMEOUT))
        .service(harness::inner());
    let no_timeout_layer = Command::builder::<u64, u64>("BenchNoTimeout")
        .registry(&Registry::new())
        .clock(Clock::system())
        .semaphore(LIMIT)
        .no_timeout()
        .build()
        .expect("command");
    let no_timeout = no_timeout_layer.layer(harness::inner());

    let mut group = c.benchmark_group("parts");
    macro_rules! service {
        ($name:literal, $svc:expr) => {
            group.bench_function(concat!($name, "/1_caller"), |b| {
                b.iter_custom(|iters| harness::one_caller($svc, iters))
            });
            group.bench_function(concat!($name, "/2_callers"), |b| {
                b.iter_custom(|iters| two_callers_in(handle, $svc, iters))
            });
        };
    }
    service!("stack/breaker", &breaker);
    service!("stack/breaker+semaphore", &breaker_semaphore);
    service!(
        "stack/breaker+semaphore+tower_timeout",
        &breaker_semaphore_timeout
    );
    service!("stack/command_without_timeout", &no_timeout);

    // The operations of one command call, each on the command's own state.
    let command = no_timeout_layer.command().clone();
    let metrics = command.metrics();
    let clock = Clock::system();
    macro_rules! op {
        ($name:literal, $op:expr) => {
            let op = $op;
            group.bench_function(concat!($name, "/1_caller"), |b| {
                b.iter_custom(|iters| op_one_caller(&op, iters))
            });
            group.bench_function(concat!($name, "/2_callers"), |b| {
                b.iter_custom(|iters| op_two_callers(handle, &op, iters))
            });
        };
    }
    op!("op/Clock::now", |i| {
        black_box(clock.now());
        i
    });
    op!("op/Clock::stamp", |i| {
        black_box(clock.stamp());
        i
    });
    op!("op/Clock::coarse_now", |i| {
        black_box(clock.coarse_now());
        i
    });
    op!("op/tokio::time::sleep(1s),dropped", |i| {
        drop(black_box(tokio::time::sleep(TIMEOUT)));
        i
    });
    op!("op/Arc<CommandCore>::clone,dropped", |i| {
        drop(black_box(command.clone()));
        i
    });
    // As a command call does them: the circuit and the metrics are given the stamps the
    // call read, and the semaphore is the count of running executions.
    let now = clock.stamp();
    op!("op/Circuit::try_admit_at,record_at", |i| {
        let circuit = command.circuit();
        let admission = circuit.try_admit_at(now).expect("closed");
        circuit.record_at(admission, HystrixEventType::Success, now);
        i
    });
    op!(
        "op/Semaphore::try_take,give_back+observe_concurrency_at",
        |i| {
            let running = command.semaphore().try_take().expect("room");
            metrics.observe_concurrency_at(u64::from(running), now);
            command.semaphore().give_back();
            i
        }
    );
    op!("op/CommandMetrics::mark_at", |i| {
        metrics.mark_at(HystrixEventType::Success, now);
        i
    });
    op!("op/CommandMetrics::record_latencies_at", |i| {
        let latency = Duration::from_nanos(i & 1023);
        metrics.record_latencies_at(latency, latency, now);
        i
    });
    // Everything above that one call does, with its two clock reads, and nothing else: the
    // bookkeeping a command cannot skip, without the service and future around it.
    op!("op/bookkeeping_of_one_call", |i| {
        let start = clock.stamp();
        let circuit = command.circuit();
        let admission = circuit.try_admit_at(start).expect("closed");
        let running = command.semaphore().try_take().expect("room");
        metrics.observe_concurrency_at(u64::from(running), start);
        let end = clock.stamp();
        command.semaphore().give_back();
        circuit.record_at(admission, HystrixEventType::Success, end);
        metrics.mark_at(HystrixEventType::Success, end);
        let latency = end.saturating_duration_since(start);
        metrics.record_latencies_at(latency, latency, end);
        i
    });
    group.finish();

    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(command.circuit().state(), State::Closed);
    assert_eq!(semaphore.in_flight(), 0);
    assert_eq!(command.semaphore().in_flight(), 0);
}

criterion_group!(benches, bench, parts);
criterion_main!(benches);
