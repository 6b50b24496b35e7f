//! Semaphore bulkhead behaviour, under tokio's paused time.
#![allow(clippy::unwrap_used)] // in a test, an unwrap is an assertion

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hystrix_bulkhead::{BoxError, Semaphore, SemaphoreBulkheadLayer, SemaphoreRejected};
use tokio::time::{Instant, advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A dependency that takes `ms` milliseconds (forever for `u64::MAX`), panics on 0, and counts
/// the calls it sees.
fn dependency(
    calls: Arc<AtomicUsize>,
) -> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone {
    service_fn(move |ms: u64| {
        calls.fetch_add(1, Ordering::Relaxed);
        async move {
            match ms {
                0 => panic!("dependency panicked"),
                u64::MAX => std::future::pending().await,
                ms => sleep(Duration::from_millis(ms)).await,
            }
            Ok::<_, BoxError>(ms)
        }
    })
}

fn is_rejected(r: &Result<u64, BoxError>) -> bool {
    matches!(r, Err(e) if e.is::<SemaphoreRejected>())
}

#[tokio::test(start_paused = true)]
async fn rejects_above_the_limit_without_calling_the_dependency() {
    let calls = Arc::new(AtomicUsize::new(0));
    let semaphore = Semaphore::new(3);
    let svc = SemaphoreBulkheadLayer::new(semaphore.clone()).layer(dependency(calls.clone()));

    let running: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(100)))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(semaphore.in_flight(), 3);

    let started = Instant::now();
    let r = svc.clone().oneshot(100).await;
    assert!(is_rejected(&r), "{r:?}");
    assert_eq!(started.elapsed(), Duration::ZERO, "rejected at once");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "the 4th never reached the dependency"
    );
    let err = r.unwrap_err();
    assert_eq!(err.downcast_ref::<SemaphoreRejected>().unwrap().limit(), 3);

    for r in running {
        assert_eq!(r.await.unwrap().unwrap(), 100);
    }
    assert_eq!(semaphore.in_flight(), 0);
    assert_eq!(svc.oneshot(5).await.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn permits_are_released_on_drop_and_panic() {
    let semaphore = Semaphore::new(2);
    let mut svc = SemaphoreBulkheadLayer::new(semaphore.clone())
        .layer(dependency(Arc::new(AtomicUsize::new(0))));

    let fut = svc.ready().await.unwrap().call(1_000);
    assert_eq!(semaphore.in_flight(), 1);
    drop(fut); // cancelled before completion
    assert_eq!(semaphore.in_flight(), 0);

    let fut = svc.ready().await.unwrap().call(0);
    assert!(tokio::spawn(fut).await.unwrap_err().is_panic());
    assert_eq!(semaphore.in_flight(), 0);

    // A timeout around the call cancels it, and the permit comes back.
    let fut = svc.ready().await.unwrap().call(u64::MAX);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), fut)
            .await
            .is_err()
    );
    assert_eq!(semaphore.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn resizing_under_load_keeps_every_permit_accounted() {
    let semaphore = Semaphore::new(5);
    let svc = SemaphoreBulkheadLayer::new(semaphore.clone())
        .layer(dependency(Arc::new(AtomicUsize::new(0))));
    let running: Vec<_> = (0..5)
        .map(|i| tokio::spawn(svc.clone().oneshot(100 + i * 10)))
        .collect();
    tokio::task::yield_now().await;

    semaphore.set_limit(2);
    assert_eq!(
        semaphore.in_flight(),
        5,
        "in-flight calls keep their permits"
    );
    assert!(is_rejected(&svc.clone().oneshot(1).await));

    // 3 of 5 finish (100, 110, 120 ms): 2 left in flight, still at the new limit.
    advance(Duration::from_millis(125)).await;
    tokio::task::yield_now().await;
    assert_eq!(semaphore.in_flight(), 2);
    assert!(is_rejected(&svc.clone().oneshot(1).await));
    advance(Duration::from_millis(10)).await; // the 130 ms one finishes
    tokio::task::yield_now().await;
    assert_eq!(semaphore.in_flight(), 1);
    let one_more = tokio::spawn(svc.clone().oneshot(100));
    tokio::task::yield_now().await;
    assert_eq!(semaphore.in_flight(), 2);

    semaphore.set_limit(8);
    let more: Vec<_> = (0..6)
        .map(|_| tokio::spawn(svc.clone().oneshot(50)))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(semaphore.in_flight(), 8);
    assert!(is_rejected(&svc.clone().oneshot(1).await));

    for r in running.into_iter().chain(more).chain([one_more]) {
        r.await.unwrap().unwrap();
    }
    assert_eq!(
        semaphore.in_flight(),
        0,
        "nothing lost, nothing counted twice"
    );
}

#[tokio::test(start_paused = true)]
async fn bounded_wait_is_off_by_default_and_bounded_when_on() {
    let semaphore = Semaphore::new(1);
    semaphore.set_max_wait(Duration::from_millis(100));
    let svc = SemaphoreBulkheadLayer::new(semaphore.clone())
        .layer(dependency(Arc::new(AtomicUsize::new(0))));

    // The holder finishes after 60 ms: a waiter gets the permit then.
    let holder = tokio::spawn(svc.clone().oneshot(60));
    tokio::task::yield_now().await;
    let started = Instant::now();
    assert_eq!(svc.clone().oneshot(10).await.unwrap(), 10);
    assert_eq!(started.elapsed(), Duration::from_millis(70));
    holder.await.unwrap().unwrap();

    // The holder takes 500 ms: the waiter gives up after 100 ms.
    let holder = tokio::spawn(svc.clone().oneshot(500));
    tokio::task::yield_now().await;
    let started = Instant::now();
    assert!(is_rejected(&svc.clone().oneshot(10).await));
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    holder.await.unwrap().unwrap();

    semaphore.set_max_wait(Duration::ZERO);
    let holder = tokio::spawn(svc.clone().oneshot(500));
    tokio::task::yield_now().await;
    let started = Instant::now();
    assert!(is_rejected(&svc.clone().oneshot(10).await));
    assert_eq!(started.elapsed(), Duration::ZERO);
    holder.await.unwrap().unwrap();
    assert_eq!(semaphore.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_clone_starts_without_the_reserved_permit() {
    let semaphore = Semaphore::new(1);
    semaphore.set_max_wait(Duration::from_millis(10));
    let mut svc = SemaphoreBulkheadLayer::new(semaphore.clone())
        .layer(dependency(Arc::new(AtomicUsize::new(0))));
    svc.ready().await.unwrap(); // reserves the only permit
    assert_eq!(semaphore.in_flight(), 1);
    let clone = svc.clone();
    assert!(is_rejected(&clone.oneshot(1).await));
    assert_eq!(svc.call(3).await.unwrap(), 3, "the reserved permit is used");
    drop(svc);
    assert_eq!(semaphore.in_flight(), 0);
}

/// Dependency A hangs forever; A's share is exhausted and the excess rejected, while B, with its
/// own semaphore, answers as fast as before.
#[tokio::test(start_paused = true)]
async fn an_async_hang_exhausts_only_its_own_semaphore() {
    let (a_sem, b_sem) = (Semaphore::new(4), Semaphore::new(4));
    let a =
        SemaphoreBulkheadLayer::new(a_sem.clone()).layer(dependency(Arc::new(AtomicUsize::new(0))));
    let b =
        SemaphoreBulkheadLayer::new(b_sem.clone()).layer(dependency(Arc::new(AtomicUsize::new(0))));

    let started = Instant::now();
    b.clone().oneshot(5).await.unwrap();
    let baseline = started.elapsed();

    let flood: Vec<_> = (0..100)
        .map(|_| tokio::spawn(a.clone().oneshot(u64::MAX)))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(a_sem.in_flight(), 4);

    for _ in 0..50 {
        let started = Instant::now();
        assert_eq!(b.clone().oneshot(5).await.unwrap(), 5);
        assert_eq!(started.elapsed(), baseline);
    }

    let mut rejected = 0;
    for f in flood {
        if f.is_finished() {
            assert!(is_rejected(&f.await.unwrap()));
            rejected += 1;
        } else {
            f.abort();
        }
    }
    assert_eq!(rejected, 96);
    tokio::task::yield_now().await;
    assert_eq!(
        a_sem.in_flight(),
        0,
        "aborted callers gave their permits back"
    );
}
