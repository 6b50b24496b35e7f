//! Thread-pool hand-off latency: a request's round trip from the caller's runtime to a pool
//! thread and back, next to its floor, a plain spawn onto another tokio runtime (one worker
//! thread, the same thread count as the pool) awaited from the caller.
//!
//! Round trips are sequential and timed one by one into an HdrHistogram, in three phases: the
//! floor alone before the pool has started a thread; the pool, by `ThreadPool::spawn` and
//! through the service, in alternating blocks; the floor again. The floor is measured twice
//! because the pool's idle thread spins briefly for the next request (see `SPIN_FOR`), and on
//! two vCPUs interleaving that with the floor was seen to slow the floor down (3.3 -> 7.7 us at
//! p50), which would flatter the pool. Back-to-back requests always catch the spinning thread,
//! so a fourth phase spaces requests 100 us apart (both sides then wake a parked thread every
//! time). Prints p50 / p90 / p99 / p99.9 and the ratios. `cargo bench -p hystrix-bulkhead --bench handoff`; without `--bench`
//! (as `cargo test` runs it) it makes a short run as a smoke test.
#![allow(missing_docs)]

use std::{future::Future, time::Duration};

use hdrhistogram::Histogram;
use hystrix_bulkhead::{ThreadPool, ThreadPoolBulkheadLayer, ThreadPoolConfig};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

/// Before each request of a spaced run: long enough for an idle pool thread to have stopped
/// spinning and parked, so every request pays a wake-up.
const GAP: Duration = Duration::from_micros(100);

async fn time_block<F, Fut>(hist: &mut Histogram<u64>, n: u64, mut f: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = u64>,
{
    time_spaced(hist, n, Duration::ZERO, &mut f).await;
}

/// Like `time_block`, with `gap` of busy waiting (not timed) before each request.
async fn time_spaced<F, Fut>(hist: &mut Histogram<u64>, n: u64, gap: Duration, mut f: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = u64>,
{
    let clock = hystrix_core::Clock::system();
    for i in 0..n {
        let until = clock.now() + gap;
        while clock.now() < until {
            std::hint::spin_loop();
        }
        let start = Instant::now();
        let out = std::hint::black_box(f(i).await);
        let ns = start.elapsed().as_nanos() as u64;
        assert_eq!(out, i);
        hist.record(ns.max(1)).expect("in range");
    }
}

/// Round trips of a plain spawn onto `other`, awaited here.
async fn floor_block(other: &tokio::runtime::Runtime, hist: &mut Histogram<u64>, n: u64) {
    time_block(hist, n, |i| {
        let h = other.spawn(async move { i });
        async move { h.await.expect("join") }
    })
    .await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (blocks, per_block) = if full { (20, 5_000) } else { (2, 100) };

    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("caller runtime");
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("other runtime");
    let pool = ThreadPool::with_clock(
        "bench",
        ThreadPoolConfig {
            core_size: 1,
            ..Default::default()
        },
        hystrix_core::Clock::system(),
    )
    .expect("pool");
    let service =
        ThreadPoolBulkheadLayer::new(pool.clone()).layer(service_fn(|x: u64| async move {
            Ok::<_, std::io::Error>(x)
        }));

    let new = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let (mut floor, mut floor_after, mut spawn, mut layer) = (new(), new(), new(), new());
    let (mut floor_spaced, mut spawn_spaced) = (new(), new());
    caller.block_on(async {
        // Phase 1, the floor alone: the pool has not started a thread yet.
        floor_block(&other, &mut new(), per_block).await; // warm-up
        for _ in 0..blocks {
            floor_block(&other, &mut floor, per_block).await;
        }
        // Phase 2, the pool, by `spawn` and through the service, alternating.
        time_block(&mut new(), per_block, |i| {
            let t = pool.spawn(async move { i }).expect("pool");
            async move { t.await.expect("pool task") }
        })
        .await; // warm-up
        for _ in 0..blocks {
            time_block(&mut spawn, per_block, |i| {
                let t = pool.spawn(async move { i }).expect("pool");
                async move { t.await.expect("pool task") }
            })
            .await;
            time_block(&mut layer, per_block, |i| {
                let svc = service.clone();
                async move { svc.oneshot(i).await.expect("service") }
            })
            .await;
        }
        // Phase 3, the floor again, with the pool's thread idle (parked) beside it.
        for _ in 0..blocks {
            floor_block(&other, &mut floor_after, per_block).await;
        }
        // Phase 4, sparse traffic: every request after a gap, so both sides wake a thread.
        for _ in 0..blocks {
            time_spaced(&mut floor_spaced, per_block / 5, GAP, |i| {
                let h = other.spawn(async move { i });
                async move { h.await.expect("join") }
            })
            .await;
            time_spaced(&mut spawn_spaced, per_block / 5, GAP, |i| {
                let t = pool.spawn(async move { i }).expect("pool");
                async move { t.await.expect("pool task") }
            })
            .await;
        }
    });

    let row = |name: &str, h: &Histogram<u64>| {
        let q = |p: f64| Duration::from_nanos(h.value_at_quantile(p)).as_secs_f64() * 1e6;
        println!(
            "{name:<42} n={:>7}  p50 {:>8.1} us  p90 {:>8.1} us  p99 {:>8.1} us  p99.9 {:>8.1} us",
            h.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999)
        );
    };
    println!("hand-off round trip, caller on a current-thread runtime:");
    row("1. floor: spawn onto another runtime", &floor);
    row("2. ThreadPool::spawn (core_size 1)", &spawn);
    row("2. ThreadPoolBulkhead service", &layer);
    row("3. floor again, after the pool ran", &floor_after);
    row("4. floor, spaced 100 us", &floor_spaced);
    row("4. ThreadPool::spawn, spaced 100 us", &spawn_spaced);
    let pools = [
        ("ThreadPool::spawn", &spawn),
        ("ThreadPoolBulkhead", &layer),
    ];
    let spaced = [("spaced spawn", &spawn_spaced)];
    let comparisons: [(&str, &Histogram<u64>, &[(&str, &Histogram<u64>)]); 3] = [
        ("floor 1", &floor, &pools),
        ("floor 3", &floor_after, &pools),
        ("spaced floor 4", &floor_spaced, &spaced),
    ];
    for (fname, f, series) in comparisons {
        for (name, h) in series {
            let ratio = |q: f64| h.value_at_quantile(q) as f64 / f.value_at_quantile(q) as f64;
            println!(
                "ratio {name:<18} / {fname}: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}",
                ratio(0.5),
                ratio(0.9),
                ratio(0.99),
                ratio(0.999),
            );
        }
    }
}
