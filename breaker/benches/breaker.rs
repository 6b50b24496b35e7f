//! The breaker layer's success path next to tower's `ConcurrencyLimit`, in one group.
//!
//! Each service wraps the same ready inner service and is driven by hand (poll_ready, call,
//! one poll of the future with a no-op waker), so the figures are the layers' own cost.
//! "2 callers" runs two threads, each on its own clone of the service, and reports the wall
//! time of one call on each thread at once.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

use std::{
    future::{Future, Ready, ready},
    hint::black_box,
    pin::pin,
    sync::Barrier,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use hystrix_breaker::{BreakerConfig, Circuit, CircuitBreakerLayer};
use hystrix_core::Clock;
use tower::{Layer, Service, limit::ConcurrencyLimitLayer, service_fn, util::ServiceFn};

type Inner = ServiceFn<fn(u64) -> Ready<Result<u64, std::io::Error>>>;

fn inner() -> Inner {
    service_fn((|x| ready(Ok(x))) as fn(u64) -> Ready<Result<u64, std::io::Error>>)
}

#[inline]
fn drive<S>(svc: &mut S, cx: &mut Context<'_>, x: u64) -> u64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    match svc.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("service not ready"),
    }
    let fut = pin!(svc.call(x));
    match fut.poll(cx) {
        Poll::Ready(Ok(v)) => v,
        _ => panic!("call did not complete"),
    }
}

/// Two threads, each making `iters` calls on its own clone; the wall time of the slower one.
fn two_callers<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let mut svc = svc.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut cx = Context::from_waker(Waker::noop());
                    barrier.wait();
                    #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
                    let start = Instant::now();
                    for i in 0..iters {
                        black_box(drive(&mut svc, &mut cx, i));
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("caller thread"))
            .max()
            .unwrap_or_default()
    })
}

fn bench(c: &mut Criterion) {
    // The production clock, named: the benchmark is built with `test-util`, whose default
    // clock is tokio's.
    let circuit =
        Circuit::with_clock("bench", BreakerConfig::default(), Clock::system()).expect("config");
    let breaker = CircuitBreakerLayer::new(circuit.clone()).layer(inner());
    let limit = ConcurrencyLimitLayer::new(1_000).layer(inner());

    let mut group = c.benchmark_group("success_path");
    group.bench_function("concurrency_limit/1_caller", |b| {
        let mut svc = limit.clone();
        let mut cx = Context::from_waker(Waker::noop());
        let mut i = 0;
        b.iter(|| {
            i += 1;
            drive(&mut svc, &mut cx, black_box(i))
        })
    });
    group.bench_function("circuit_breaker/1_caller", |b| {
        let mut svc = breaker.clone();
        let mut cx = Context::from_waker(Waker::noop());
        let mut i = 0;
        b.iter(|| {
            i += 1;
            drive(&mut svc, &mut cx, black_box(i))
        })
    });
    group.bench_function("concurrency_limit/2_callers", |b| {
        b.iter_custom(|iters| two_callers(&limit, iters))
    });
    group.bench_function("circuit_breaker/2_callers", |b| {
        b.iter_custom(|iters| two_callers(&breaker, iters))
    });
    group.finish();

    // The breaker must have counted every call as a success and stayed closed.
    assert_eq!(circuit.state(), hystrix_breaker::State::Closed);
}

criterion_group!(benches, bench);
criterion_main!(benches);
