//! Thread-pool hand-off latency: a request's round trip from the caller's runtime to a pool
//! thread and back, next to its floor, a plain spawn onto another tokio runtime (one worker
//! thread, the same thread count as the pool) awaited from the caller.
//!
//! Round trips are sequential and timed one by one into an HdrHistogram; the two are measured
//! in alternating blocks so drift of the machine hits both alike. Prints p50 / p90 / p99 /
//! p99.9 and the ratios. `cargo bench -p hystrix-bulkhead --bench handoff`; without `--bench`
//! (as `cargo test` runs it) it makes a short run as a smoke test.
#![allow(missing_docs)]

use std::{future::Future, time::Duration};

use hdrhistogram::Histogram;
use hystrix_bulkhead::{ThreadPool, ThreadPoolBulkheadLayer, ThreadPoolConfig};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

async fn time_block<F, Fut>(hist: &mut Histogram<u64>, n: u64, mut f: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = u64>,
{
    for i in 0..n {
        let start = Instant::now();
        let out = std::hint::black_box(f(i).await);
        let ns = start.elapsed().as_nanos() as u64;
        assert_eq!(out, i);
        hist.record(ns.max(1)).expect("in range");
    }
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
    let (mut floor, mut spawn, mut layer) = (new(), new(), new());
    caller.block_on(async {
        // Warm up: threads started, caches and allocator warm.
        time_block(&mut new(), per_block, |i| {
            let h = other.spawn(async move { i });
            async move { h.await.expect("join") }
        })
        .await;
        time_block(&mut new(), per_block, |i| {
            let t = pool.spawn(async move { i }).expect("pool");
            async move { t.await.expect("pool task") }
        })
        .await;
        for _ in 0..blocks {
            time_block(&mut floor, per_block, |i| {
                let h = other.spawn(async move { i });
                async move { h.await.expect("join") }
            })
            .await;
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
    row("floor: spawn onto another runtime (1 worker)", &floor);
    row("ThreadPool::spawn (core_size 1)", &spawn);
    row("ThreadPoolBulkhead service (core_size 1)", &layer);
    for (name, h) in [
        ("ThreadPool::spawn", &spawn),
        ("ThreadPoolBulkhead", &layer),
    ] {
        println!(
            "ratio to floor, {name:<20} p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}",
            h.value_at_quantile(0.5) as f64 / floor.value_at_quantile(0.5) as f64,
            h.value_at_quantile(0.9) as f64 / floor.value_at_quantile(0.9) as f64,
            h.value_at_quantile(0.99) as f64 / floor.value_at_quantile(0.99) as f64,
            h.value_at_quantile(0.999) as f64 / floor.value_at_quantile(0.999) as f64,
        );
    }
}
