//! Drives Tower services by hand for benchmarks: `poll_ready`, `call`, one poll of the future
//! with a no-op waker, so a figure is the middleware's own cost. Included by the benchmarks of
//! several crates with `#[path]`, so that every comparison measures the same way.

use std::{
    future::{Future, Ready, ready},
    hint::black_box,
    pin::pin,
    sync::Barrier,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use tower::{Service, service_fn, util::ServiceFn};

/// An always-ready service that echoes its request.
pub(crate) type Inner = ServiceFn<fn(u64) -> Ready<Result<u64, std::io::Error>>>;

/// The inner service every middleware wraps.
pub(crate) fn inner() -> Inner {
    service_fn((|x| ready(Ok(x))) as fn(u64) -> Ready<Result<u64, std::io::Error>>)
}

/// One request through `svc`, which must complete on its first poll.
#[inline]
pub(crate) fn drive<S>(svc: &mut S, cx: &mut Context<'_>, x: u64) -> u64
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

/// `iters` requests through `svc` on this thread.
pub(crate) fn one_caller<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut svc = svc.clone();
    let mut cx = Context::from_waker(Waker::noop());
    #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
    let start = Instant::now();
    for i in 0..iters {
        black_box(drive(&mut svc, &mut cx, black_box(i)));
    }
    start.elapsed()
}

/// Two threads, each making `iters` requests on its own clone; the wall time of the slower.
#[allow(dead_code)] // not every benchmark that includes the harness uses it
pub(crate) fn two_callers<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    two_callers_with(svc, iters, || ())
}

/// [`two_callers`], each thread first calling `setup` and keeping what it returns (say, a
/// runtime's enter guard) while it measures.
pub(crate) fn two_callers_with<S, G>(svc: &S, iters: u64, setup: impl Fn() -> G + Sync) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    on_two_threads([svc.clone(), svc.clone()], |svc, start| {
        let _guard = setup();
        start();
        one_caller(&svc, iters)
    })
}

/// Runs `run` on two threads at once, one per input; the wall time of the slower. Each run
/// calls the `start` it is given when its set-up is done: both measure from the same moment.
pub(crate) fn on_two_threads<T: Send>(
    inputs: [T; 2],
    run: impl Fn(T, &dyn Fn()) -> Duration + Sync,
) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        inputs
            .map(|input| {
                let (barrier, run) = (&barrier, &run);
                scope.spawn(move || {
                    run(input, &|| {
                        barrier.wait();
                    })
                })
            })
            .into_iter()
            .map(|h| h.join().expect("caller thread"))
            .max()
            .unwrap_or_default()
    })
}
