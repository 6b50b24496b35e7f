//! Thread-pool bulkhead behaviour. Pool threads are real threads, so these tests use real
//! time, with every wait bounded.
#![allow(clippy::unwrap_used)] // in a test, an unwrap is an assertion

use std::time::Duration;

use hystrix_bulkhead::{
    BoxError, ThreadPool, ThreadPoolBulkheadLayer, ThreadPoolClosed, ThreadPoolConfig,
    ThreadPoolRejected,
};
use tower::{Layer, ServiceExt, service_fn};

mod support;
use support::{Gate, eventually};

fn pool(config: ThreadPoolConfig) -> ThreadPool {
    ThreadPool::new("test", config).unwrap()
}

#[tokio::test]
async fn queue_threshold_withdrawal_and_counts() {
    let pool = pool(ThreadPoolConfig {
        core_size: 1,
        max_queue_size: 5,
        queue_size_rejection_threshold: 2,
        ..Default::default()
    });
    let gate = Gate::default();
    let spawn = |gate: &Gate| {
        let gate = gate.clone();
        pool.spawn(async move { gate.block() })
    };
    let running = spawn(&gate).unwrap();
    eventually("the first task runs", || pool.metrics().active_count == 1).await;
    let queued: Vec<_> = (0..2).map(|_| spawn(&gate).unwrap()).collect();
    assert!(spawn(&gate).is_err(), "the threshold of 2 is reached");
    let m = pool.metrics();
    assert_eq!((m.active_count, m.queue_size, m.pool_size), (1, 2, 1));

    pool.set_queue_size_rejection_threshold(4);
    let mut more: Vec<_> = (0..2).map(|_| spawn(&gate).unwrap()).collect();
    assert!(
        spawn(&gate).is_err(),
        "min(max_queue_size 5, threshold 4) reached"
    );
    assert_eq!(pool.metrics().queue_size, 4);

    drop(more.pop()); // a caller gives up: its slot is free at once
    assert_eq!(pool.metrics().queue_size, 3);
    let again = spawn(&gate).unwrap();

    gate.open();
    running.await.unwrap();
    for t in queued.into_iter().chain(more).chain([again]) {
        t.await.unwrap();
    }
    let m = pool.metrics();
    assert_eq!(m.completed_task_count, 5);
    assert_eq!(m.task_count, 5);
    assert_eq!(m.rolling_executed, 5);
    assert_eq!(m.rolling_rejected, 2);
    assert_eq!(m.rolling_max_active, 1);
    assert_eq!((m.active_count, m.queue_size), (0, 0));
    assert_eq!(m.queue_size_rejection_threshold, 4);
}

#[tokio::test]
async fn grows_to_the_maximum_then_shrinks_after_keep_alive() {
    let pool = pool(ThreadPoolConfig {
        core_size: 1,
        maximum_size: 3,
        allow_maximum_size_to_diverge_from_core_size: true,
        keep_alive: Duration::from_millis(100),
        ..Default::default()
    });
    let gate = Gate::default();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let gate = gate.clone();
            pool.spawn(async move { gate.block() }).unwrap()
        })
        .collect();
    eventually("3 threads run", || pool.metrics().active_count == 3).await;
    let gate2 = gate.clone();
    assert!(
        pool.spawn(async move { gate2.block() }).is_err(),
        "no queue, no 4th thread"
    );
    let m = pool.metrics();
    assert_eq!(
        (m.pool_size, m.largest_pool_size, m.maximum_pool_size),
        (3, 3, 3)
    );

    gate.open();
    for t in tasks {
        t.await.unwrap();
    }
    eventually("the extra threads stop", || pool.metrics().pool_size == 1).await;
    assert_eq!(pool.metrics().largest_pool_size, 3);
}

#[tokio::test]
async fn a_panicking_request_fails_its_caller_and_spares_the_thread() {
    let pool = pool(ThreadPoolConfig {
        core_size: 1,
        ..Default::default()
    });
    let err = pool
        .spawn(async { panic!("client bug") })
        .unwrap()
        .await
        .unwrap_err();
    let err: ThreadPoolClosed = err;
    assert!(err.to_string().contains("panicked"), "{err}");
    let name = pool
        .spawn(async { std::thread::current().name().map(str::to_owned) })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("hystrix-test-1"), "the same thread");
    let m = pool.metrics();
    assert_eq!(
        (m.pool_size, m.active_count, m.completed_task_count),
        (1, 0, 2)
    );
}

#[tokio::test]
async fn a_dropped_caller_cancels_its_running_request_at_the_next_await() {
    let pool = pool(ThreadPoolConfig {
        core_size: 1,
        ..Default::default()
    });
    let task = pool
        .spawn(async { tokio::time::sleep(Duration::from_secs(60)).await })
        .unwrap();
    eventually("the request runs", || pool.metrics().active_count == 1).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(20), task)
            .await
            .is_err()
    );
    eventually("the thread is free again", || {
        pool.metrics().active_count == 0
    })
    .await;
    pool.spawn(async {}).unwrap().await.unwrap();
}

#[tokio::test]
async fn the_layer_runs_requests_on_the_pool() {
    let pool = pool(ThreadPoolConfig {
        core_size: 2,
        ..Default::default()
    });
    let svc = ThreadPoolBulkheadLayer::new(pool.clone()).layer(service_fn(|n: u32| async move {
        if n == 0 {
            return Err::<(u32, Option<String>), BoxError>("zero".into());
        }
        Ok((n, std::thread::current().name().map(str::to_owned)))
    }));
    let (n, thread) = svc.clone().oneshot(7).await.unwrap();
    assert_eq!(n, 7);
    assert!(thread.unwrap().starts_with("hystrix-test-"));
    let err = svc.clone().oneshot(0).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "zero",
        "the dependency's own error comes through"
    );

    // Full: a ready, typed rejection.
    let gate = Gate::default();
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let gate = gate.clone();
            pool.spawn(async move { gate.block() }).unwrap()
        })
        .collect();
    eventually("both threads are busy", || pool.metrics().active_count == 2).await;
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert!(err.is::<ThreadPoolRejected>(), "{err}");
    gate.open();
    for b in blockers {
        b.await.unwrap();
    }
}

#[test]
fn settings_are_validated_and_fixed_ones_refused() {
    let err = ThreadPool::new(
        "p",
        ThreadPoolConfig {
            core_size: 0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.key(), "core_size");
    let err = ThreadPoolConfig {
        max_queue_size: -2,
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(err.key(), "max_queue_size");

    let pool = ThreadPool::new("p", ThreadPoolConfig::default()).unwrap();
    let err = pool
        .update(ThreadPoolConfig {
            max_queue_size: 10,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.key(), "max_queue_size");
    assert_eq!(pool.config(), ThreadPoolConfig::default());
    pool.update(ThreadPoolConfig {
        core_size: 4,
        queue_size_rejection_threshold: 9,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(pool.metrics().core_pool_size, 4);
    assert_eq!(pool.metrics().queue_size_rejection_threshold, 9);
}
