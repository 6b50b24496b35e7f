//! The cost of recording, beside the floor of one atomic add, and of reading a window.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

use std::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hystrix_core::{
    Clock, HealthCounts, HystrixEventType as Ev, ManualClock, RollingCounter, RollingPercentile,
    RollingWindow,
};

fn record(c: &mut Criterion) {
    let clock = Clock::system();
    let origin = clock.now();
    let counter = RollingCounter::new(RollingWindow::COUNTS, origin);
    let latency = RollingPercentile::new(RollingWindow::PERCENTILES, origin);
    let floor = AtomicU64::new(0);

    let mut group = c.benchmark_group("record");
    group.bench_function("atomic_fetch_add (floor)", |b| {
        b.iter(|| floor.fetch_add(black_box(1), Ordering::Relaxed))
    });
    group.bench_function("clock_now", |b| b.iter(|| black_box(clock.now())));
    group.bench_function("clock_coarse_now", |b| {
        b.iter(|| black_box(clock.coarse_now()))
    });
    group.bench_function("rolling_counter_increment", |b| {
        b.iter(|| counter.increment(black_box(Ev::Success), clock.coarse_now()))
    });
    group.bench_function("rolling_percentile_record", |b| {
        b.iter(|| latency.record(black_box(Duration::from_micros(2_345)), clock.now()))
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let manual = ManualClock::new();
    let counter = RollingCounter::new(RollingWindow::COUNTS, manual.now());
    let latency = RollingPercentile::new(RollingWindow::PERCENTILES, manual.now());
    for i in 0..60_000u64 {
        counter.increment(HEALTH_EVENTS[(i % 5) as usize], manual.now());
        latency.record(Duration::from_micros(i * 37 % 900_000), manual.now());
        manual.advance(Duration::from_millis(1));
    }
    let mut group = c.benchmark_group("read");
    group.bench_function("health_counts_of_window", |b| {
        b.iter(|| HealthCounts::from_events(&counter.sums(manual.now())))
    });
    group.bench_function("percentile_snapshot_cached", |b| {
        b.iter(|| latency.snapshot(manual.now()))
    });
    group.bench_function("percentile_snapshot_recomputed", |b| {
        // Each snapshot is one bucket later, with a bucket of 10,000 varied latencies behind it,
        // so it is computed afresh over six full buckets.
        let mut i = 0u64;
        b.iter_batched(
            || {
                for _ in 0..10_000 {
                    i += 1;
                    latency.record(Duration::from_micros(i * 7919 % 2_000_000), manual.now());
                }
                manual.advance(Duration::from_secs(10));
            },
            |()| latency.snapshot(manual.now()),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

const HEALTH_EVENTS: [Ev; 5] = [
    Ev::Success,
    Ev::Failure,
    Ev::Timeout,
    Ev::SemaphoreRejected,
    Ev::ThreadPoolRejected,
];

criterion_group!(benches, record, read);
criterion_main!(benches);
