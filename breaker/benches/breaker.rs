//! The breaker layer's success path next to tower's `ConcurrencyLimit`, in one group.
//!
//! Each service wraps the same ready inner service and is driven by hand (see
//! `benches/tower_harness.rs`). "2 callers" runs two threads, each on its own clone of the
//! service, and reports the wall time of one call on each thread at once.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

#[path = "../../benches/tower_harness.rs"]
mod harness;

use criterion::{Criterion, criterion_group, criterion_main};
use hystrix_breaker::{BreakerConfig, Circuit, CircuitBreakerLayer, State};
use hystrix_core::Clock;
use tower::{Layer, limit::ConcurrencyLimitLayer};

fn bench(c: &mut Criterion) {
    // The production clock, named: the benchmark is built with `test-util`, whose default
    // clock is tokio's.
    let circuit =
        Circuit::with_clock("bench", BreakerConfig::default(), Clock::system()).expect("config");
    let breaker = CircuitBreakerLayer::new(circuit.clone()).layer(harness::inner());
    let limit = ConcurrencyLimitLayer::new(1_000).layer(harness::inner());

    let mut group = c.benchmark_group("success_path");
    group.bench_function("concurrency_limit/1_caller", |b| {
        b.iter_custom(|iters| harness::one_caller(&limit, iters))
    });
    group.bench_function("circuit_breaker/1_caller", |b| {
        b.iter_custom(|iters| harness::one_caller(&breaker, iters))
    });
    group.bench_function("concurrency_limit/2_callers", |b| {
        b.iter_custom(|iters| harness::two_callers(&limit, iters))
    });
    group.bench_function("circuit_breaker/2_callers", |b| {
        b.iter_custom(|iters| harness::two_callers(&breaker, iters))
    });
    group.finish();

    // The breaker counted every call as a success and stayed closed.
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(circuit.health().errors, 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
