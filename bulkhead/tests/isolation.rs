//! The bulkhead's promise: a dependency whose client blocks its threads exhausts only its own
//! pool. One test in its own binary, so that the process's thread count is this test's.
//! Real threads, so real time; every wait is bounded.
#![allow(clippy::unwrap_used)] // in a test, an unwrap is an assertion

use std::time::Duration;

use hystrix_bulkhead::{
    BoxError, ThreadPool, ThreadPoolBulkheadLayer, ThreadPoolConfig, ThreadPoolRejected,
};
use tokio::time::{Instant, timeout};
use tower::{Layer, ServiceExt, service_fn};

mod support;
use support::{Gate, eventually};

/// The process's thread count (Linux).
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

const POOL: u32 = 4;

#[test]
fn a_blocking_client_exhausts_only_its_own_pool_and_no_thread_leaks() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline = threads();
    runtime.block_on(isolation(baseline));
    runtime.block_on(async {
        eventually("every pool thread has stopped", || threads() == baseline).await;
    });

    // Pools built, used and dropped again and again leave nothing behind.
    runtime.block_on(async {
        for round in 0..20 {
            let pool = ThreadPool::new(
                format!("churn-{round}"),
                ThreadPoolConfig {
                    core_size: 3,
                    ..Default::default()
                },
            )
            .unwrap();
            let tasks: Vec<_> = (0..3)
                .map(|i| pool.spawn(async move { i * 2 }).unwrap())
                .collect();
            for (i, t) in tasks.into_iter().enumerate() {
                assert_eq!(t.await.unwrap(), i * 2);
            }
            assert!(threads() <= baseline + 3);
            drop(pool);
            eventually("this round's threads have stopped", || {
                threads() == baseline
            })
            .await;
        }
    });
}

async fn isolation(baseline: usize) {
    let config = ThreadPoolConfig {
        core_size: POOL,
        ..Default::default()
    };
    let pool_a = ThreadPool::new("A", config.clone()).unwrap();
    let pool_b = ThreadPool::new("B", config).unwrap();
    let gate = Gate::default();
    let a = ThreadPoolBulkheadLayer::new(pool_a.clone()).layer(service_fn({
        let gate = gate.clone();
        move |_: u32| {
            let gate = gate.clone();
            async move {
                gate.block(); // the client blocks its thread
                Ok::<_, std::io::Error>(())
            }
        }
    }));
    let b = ThreadPoolBulkheadLayer::new(pool_b.clone()).layer(service_fn(|n: u32| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok::<_, BoxError>(n)
    }));

    // B's latency before anything goes wrong.
    let mut base_max = Duration::ZERO;
    for n in 0..20 {
        let started = Instant::now();
        assert_eq!(b.clone().oneshot(n).await.unwrap(), n);
        base_max = base_max.max(started.elapsed());
    }

    // Flood A: every caller gives up after 100 ms.
    let flood: Vec<_> = (0..50)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let r = timeout(Duration::from_millis(100), a.oneshot(0)).await;
                (r, started.elapsed())
            })
        })
        .collect();
    eventually("A's threads are all blocked", || {
        pool_a.metrics().active_count == POOL
    })
    .await;

    // B keeps answering, about as fast as before.
    let mut max_threads = threads();
    for n in 0..50 {
        let started = Instant::now();
        assert_eq!(b.clone().oneshot(n).await.unwrap(), n);
        let took = started.elapsed();
        assert!(
            took < base_max + Duration::from_millis(50),
            "B took {took:?} with A blocked (baseline max {base_max:?})"
        );
        max_threads = max_threads.max(threads());
    }

    let (mut rejected, mut timed_out) = (0, 0);
    for f in flood {
        let (r, took) = f.await.unwrap();
        match r {
            Ok(Err(e)) if e.is::<ThreadPoolRejected>() => {
                rejected += 1;
                assert!(took < Duration::from_millis(100), "rejected at once");
            }
            Err(_elapsed) => {
                timed_out += 1;
                // The caller's timeout fires on time though the thread is blocked.
                assert!(
                    took < Duration::from_millis(600),
                    "timed out after {took:?}"
                );
            }
            other => panic!("unexpected outcome of a call to A: {other:?}"),
        }
    }
    assert_eq!((timed_out, rejected), (POOL as usize, 50 - POOL as usize));
    let m = pool_a.metrics();
    assert_eq!(m.rolling_rejected, rejected as u64, "A's excess is counted");
    assert_eq!(
        m.active_count, POOL,
        "blocked threads are not free, whatever their callers did"
    );
    assert!(
        max_threads <= baseline + 2 * POOL as usize,
        "{max_threads} threads, baseline {baseline} + 2 pools of {POOL}"
    );

    gate.open();
    eventually("A's threads return", || pool_a.metrics().active_count == 0).await;
    assert_eq!(pool_b.metrics().rolling_rejected, 0);
    drop((a, b, pool_a, pool_b));
}
