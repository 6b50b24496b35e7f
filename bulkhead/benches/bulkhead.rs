//! The semaphore bulkhead's success path next to tower's `ConcurrencyLimit`, in one group,
//! driven by hand as in `benches/tower_harness.rs`: one caller, and two threads each calling
//! their own clone at once.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

#[path = "../../benches/tower_harness.rs"]
mod harness;

use criterion::{Criterion, criterion_group, criterion_main};
use hystrix_bulkhead::{Semaphore, SemaphoreBulkheadLayer};
use tower::{Layer, limit::ConcurrencyLimitLayer};

fn bench(c: &mut Criterion) {
    let semaphore = Semaphore::new(1_000);
    let bulkhead = SemaphoreBulkheadLayer::new(semaphore.clone()).layer(harness::inner());
    let limit = ConcurrencyLimitLayer::new(1_000).layer(harness::inner());

    let mut group = c.benchmark_group("semaphore_success_path");
    group.bench_function("concurrency_limit/1_caller", |b| {
        b.iter_custom(|iters| harness::one_caller(&limit, iters))
    });
    group.bench_function("semaphore_bulkhead/1_caller", |b| {
        b.iter_custom(|iters| harness::one_caller(&bulkhead, iters))
    });
    group.bench_function("concurrency_limit/2_callers", |b| {
        b.iter_custom(|iters| harness::two_callers(&limit, iters))
    });
    group.bench_function("semaphore_bulkhead/2_callers", |b| {
        b.iter_custom(|iters| harness::two_callers(&bulkhead, iters))
    });
    group.finish();
    assert_eq!(semaphore.in_flight(), 0, "every permit came back");
}

criterion_group!(benches, bench);
criterion_main!(benches);
