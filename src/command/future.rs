//! The future of one command call: execution under the timeout, classification, fallback.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use hystrix_breaker::{Admission, BoxError, Outcome};
use hystrix_bulkhead::PoolTask;
use hystrix_core::{HystrixEventType as Ev, Stamp};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::{Command, CommandCore, Handling, Local};
use crate::{CommandError, Failure, FailureKind, FallbackError, SharedError, cache::BoxFuture};

pin_project! {
    /// The response future of a [`CommandService`](super::CommandService).
    pub struct ResponseFuture<F, Res, K> {
        #[pin]
        state: State<F, Res>,
        call: Option<Call<Res, K>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, Res> {
        Running {
            #[pin]
            exec: Exec<F, Res>,
            #[pin]
            sleep: Option<Sleep>,
        },
        Boxed {
            fut: BoxFuture<Result<Res, CommandError>>,
        },
        Ready {
            result: Option<Result<Res, CommandError>>,
        },
    }
}

pin_project! {
    /// The inner service's future, on the caller's task or on the command's thread pool.
    #[project = ExecProj]
    pub(crate) enum Exec<F, Res> {
        Direct {
            #[pin]
            fut: F,
        },
        Pool {
            // With how long the execution ran on the pool, in whole microseconds.
            task: PoolTask<(Result<Res, BoxError>, u64)>,
        },
    }
}

/// One call in flight: what it holds and what it needs to finish.
///
/// Its admissions (the circuit's, the semaphore's, the count of executions) are plain values
/// given back through the command it holds, rather than guards that each hold the command's
/// shared state: a guard's reference count is one more write to a cache line every caller
/// shares. `Drop` gives back whatever a call still holds when it is dropped unfinished.
pub(crate) struct Call<Res, K> {
    pub(crate) local: Arc<Local<Res, K>>,
    pub(crate) start: Stamp,
    pub(crate) key: Option<String>,
    pub(crate) view: Option<K>,
    pub(crate) timeout: Option<Duration>,
    /// The circuit's admission, until the outcome is recorded.
    pub(crate) admission: Option<Admission>,
    /// Whether the call holds a permit of the execution semaphore.
    pub(crate) semaphore: bool,
    /// Whether the call is counted as executing.
    pub(crate) executing: bool,
}

/// What is left to do when an execution ends.
enum Finish<Res> {
    /// Nothing: the call is over, with this result.
    Done(Result<Res, CommandError>),
    /// The execution failed after running for `exec_us` microseconds: the call falls back.
    FallBack {
        failure: Failure,
        response: Option<Res>,
        exec_us: u64,
    },
}

impl<Res, K> Call<Res, K> {
    /// A call that holds nothing yet.
    pub(crate) fn new(
        local: Arc<Local<Res, K>>,
        start: Stamp,
        key: Option<String>,
        view: Option<K>,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            local,
            start,
            key,
            view,
            timeout,
            admission: None,
            semaphore: false,
            executing: false,
        }
    }

    fn core(&self) -> &CommandCore {
        self.local.core()
    }

    /// The execution is over: gives back the semaphore's permit and the execution count.
    #[inline]
    fn stop_running(&mut self) {
        let core = self.local.core();
        if std::mem::take(&mut self.semaphore) {
            core.semaphore.give_back();
        }
        if std::mem::take(&mut self.executing) {
            core.metrics.end_execution();
        }
    }
}

impl<Res, K> Drop for Call<Res, K> {
    fn drop(&mut self) {
        self.stop_running();
        if let Some(admission) = self.admission.take() {
            // Dropped while executing: the caller went away.
            let core = self.local.core();
            core.metrics.mark(Ev::Cancelled);
            core.circuit.cancel(admission);
        }
    }
}

impl<Res: Send + 'static, K: Send + 'static> Call<Res, K> {
    fn command(&self) -> &Command {
        &self.local.command
    }

    fn handling(&self) -> &Handling<Res, K> {
        &self.local.handling
    }

    /// Records the latencies of a call that ends now, after its fallback (a call answered by
    /// its dependency records them in `finish`, at the stamp it already read); `exec_us` is
    /// how long the execution ran, if it did.
    fn record_latency(&self, exec_us: Option<u64>) {
        let metrics = &self.core().metrics;
        let end = self.core().clock.stamp();
        let total = end.saturating_duration_since(self.start);
        match exec_us {
            Some(exec) => metrics.record_latencies_at(Duration::from_micros(exec), total, end),
            None => metrics.record_total_latency(total),
        }
    }

    /// Records the circuit's outcome and the command's event, which happened at `now` (a
    /// stamp the call has read: the clock is read once per call at each end), with the
    /// execution's and the call's latencies (in microseconds) when the call is over.
    #[inline]
    fn outcome(&mut self, event: Ev, now: Stamp, latencies_us: Option<(u64, u64)>) {
        self.stop_running();
        let core = self.local.core();
        // The metrics first: the circuit reads its health from them.
        match latencies_us {
            Some((exec, total)) => core.metrics.record_execution_us_at(event, exec, total, now),
            None => core.metrics.mark_at(event, now),
        }
        if let Some(admission) = self.admission.take() {
            core.circuit.record_at(admission, event, now);
        }
    }

    /// The inner service answered at `end`, after running for `exec_us` microseconds on a
    /// thread pool (on the caller's task the execution is the whole call): records the
    /// outcome, in place (the call moves only if it falls back).
    fn finish(
        &mut self,
        result: Result<Res, BoxError>,
        exec_us: Option<u64>,
        end: Stamp,
    ) -> Finish<Res> {
        let outcome = self.handling().classify(result.as_ref());
        let total = end.micros_since(self.start);
        let exec_us = exec_us.unwrap_or(total);
        if outcome == Outcome::Failure {
            // A failure's latencies are recorded once its fallback is over.
            self.outcome(outcome.event(), end, None);
            let (response, error) = match result {
                Ok(response) => (Some(response), None),
                Err(e) => (None, Some(Arc::from(e))),
            };
            return Finish::FallBack {
                failure: Failure::new(FailureKind::Failed, error),
                response,
                exec_us,
            };
        }
        self.outcome(outcome.event(), end, Some((exec_us, total)));
        Finish::Done(match (outcome, result) {
            (Outcome::Success, Ok(response)) => {
                if let (Some(cache), Some(key)) = (&self.local.handling.cache, self.key.take()) {
                    cache.put(key, &response);
                }
                Ok(response)
            }
            (_, Ok(response)) => Ok(response),
            (outcome, Err(e)) => {
                self.core().metrics.mark_at(Ev::ExceptionThrown, end);
                let key = self.command().key().clone();
                Err(if outcome == Outcome::BadRequest {
                    CommandError::bad_request(key, Arc::from(e))
                } else {
                    CommandError::inner_error(key, Arc::from(e))
                })
            }
        })
    }

    /// The timeout fired first.
    fn timed_out<F>(mut self) -> State<F, Res> {
        let now = self.core().clock.stamp();
        self.outcome(Ev::Timeout, now, None);
        let exec_us = now.micros_since(self.start);
        self.fall_back_state(
            Failure::new(FailureKind::TimedOut, None),
            None,
            Some(exec_us),
        )
    }

    /// A call refused before it ran (open circuit, full bulkhead): records `event` for the
    /// command and, when the circuit admitted the call, for the circuit; then falls back.
    pub(crate) fn rejected<F>(
        mut self,
        admission: Option<Admission>,
        event: Ev,
        kind: FailureKind,
        error: SharedError,
    ) -> ResponseFuture<F, Res, K> {
        self.admission = admission;
        self.outcome(event, self.start, None);
        ResponseFuture {
            state: self.fall_back_state(Failure::new(kind, Some(error)), None, None),
            call: None,
        }
    }

    /// Serves the last good response, else the fallback, else the failure. `response` is the
    /// dependency's own response when it was one classified as a failure: the caller gets it
    /// back when nothing better can be served.
    fn fall_back_state<F>(
        mut self,
        failure: Failure,
        response: Option<Res>,
        exec_us: Option<u64>,
    ) -> State<F, Res> {
        if !self.core().fallback_enabled.load(Ordering::Relaxed) {
            return State::ready(self.give_up(failure, response, FallbackError::Disabled, exec_us));
        }
        let cached = match (&self.handling().cache, &self.key) {
            (Some(cache), Some(key)) => Some(cache.get(key)),
            _ => None,
        };
        if cached.is_none() && self.handling().fallback.is_none() {
            return State::ready(self.give_up(failure, response, FallbackError::Missing, exec_us));
        }
        State::Boxed {
            fut: Box::pin(async move {
                if let Some(cached) = cached {
                    if let Some((value, _stale)) = cached.await {
                        self.core().metrics.mark(Ev::FallbackSuccess);
                        self.record_latency(exec_us);
                        return Ok(value);
                    }
                }
                let Some(fallback) = &self.local.handling.fallback else {
                    return self.give_up(failure, response, FallbackError::Missing, exec_us);
                };
                let Ok(_permit) = self.local.core().fallback_semaphore.try_acquire() else {
                    return self.give_up(failure, response, FallbackError::Rejected, exec_us);
                };
                let view = self.view.take();
                let result = match view {
                    Some(view) => fallback.call(view, failure.clone()).await,
                    // A view is taken whenever there is a fallback.
                    None => {
                        return self.give_up(failure, response, FallbackError::Missing, exec_us);
                    }
                };
                match result {
                    Ok(value) => {
                        self.core().metrics.mark(Ev::FallbackSuccess);
                        self.record_latency(exec_us);
                        Ok(value)
                    }
                    Err(e) => {
                        self.give_up(failure, None, FallbackError::Failed(Arc::from(e)), exec_us)
                    }
                }
            }),
        }
    }

    /// Nothing could be served in place of the dependency's response: the caller gets the
    /// dependency's failed response if there was one, else the error.
    fn give_up(
        &self,
        failure: Failure,
        response: Option<Res>,
        fallback: FallbackError,
        exec_us: Option<u64>,
    ) -> Result<Res, CommandError> {
        let metrics = &self.core().metrics;
        metrics.mark(match fallback {
            FallbackError::Missing => Ev::FallbackMissing,
            FallbackError::Disabled => Ev::FallbackDisabled,
            FallbackError::Rejected => Ev::FallbackRejection,
            FallbackError::Failed(_) => Ev::FallbackFailure,
        });
        self.record_latency(exec_us);
        match response {
            Some(response) => Ok(response),
            None => {
                metrics.mark(Ev::ExceptionThrown);
                Err(CommandError::failed(
                    self.command().key().clone(),
                    failure,
                    fallback,
                    self.timeout,
                ))
            }
        }
    }
}

impl<F, Res> State<F, Res> {
    fn ready(result: Result<Res, CommandError>) -> Self {
        Self::Ready {
            result: Some(result),
        }
    }
}

impl<F, Res, K> ResponseFuture<F, Res, K> {
    /// The timer is armed only if the execution does not finish on its first poll: most
    /// calls of a healthy dependency never pay for one.
    #[inline]
    pub(crate) fn running(exec: Exec<F, Res>, call: Call<Res, K>) -> Self {
        Self {
            state: State::Running { exec, sleep: None },
            call: Some(call),
        }
    }

    pub(crate) fn boxed(fut: BoxFuture<Result<Res, CommandError>>) -> Self {
        Self {
            state: State::Boxed { fut },
            call: None,
        }
    }
}

impl<F, Res, K, E> Future for ResponseFuture<F, Res, K>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    Res: Send + 'static,
    K: Send + 'static,
{
    type Output = Result<Res, CommandError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Running { exec, mut sleep } => {
                    // The call is taken out only when it falls back: a call that succeeds is
                    // finished where it lies, and the future is over once it is gone.
                    let Some(call) = this.call.as_mut() else {
                        return Poll::Ready(Err(CommandError::polled_after_completion()));
                    };
                    let done = match exec.project() {
                        ExecProj::Direct { fut } => {
                            fut.poll(cx).map(|r| (r.map_err(Into::into), None))
                        }
                        ExecProj::Pool { task } => Pin::new(task).poll(cx).map(|r| match r {
                            Ok((result, exec)) => (result, Some(exec)),
                            Err(closed) => (Err(closed.into()), None),
                        }),
                    };
                    match done {
                        Poll::Ready((result, exec)) => {
                            let end = call.core().clock.stamp();
                            match call.finish(result, exec, end) {
                                Finish::Done(result) => {
                                    *this.call = None;
                                    return Poll::Ready(result);
                                }
                                Finish::FallBack {
                                    failure,
                                    response,
                                    exec_us,
                                } => match this.call.take() {
                                    Some(call) => {
                                        call.fall_back_state(failure, response, Some(exec_us))
                                    }
                                    None => {
                                        State::ready(Err(CommandError::polled_after_completion()))
                                    }
                                },
                            }
                        }
                        Poll::Pending => {
                            if let (None, Some(timeout)) =
                                (sleep.as_ref().as_pin_ref(), call.timeout)
                            {
                                let start = call.start.to_instant();
                                let deadline = call.core().clock.deadline(start, timeout);
                                sleep.set(Some(tokio::time::sleep_until(deadline)));
                            }
                            let Some(Poll::Ready(())) = sleep.as_pin_mut().map(|s| s.poll(cx))
                            else {
                                return Poll::Pending;
                            };
                            match this.call.take() {
                                Some(call) => call.timed_out(),
                                None => State::ready(Err(CommandError::polled_after_completion())),
                            }
                        }
                    }
                }
                StateProj::Boxed { fut } => return fut.as_mut().poll(cx),
                StateProj::Ready { result } => {
                    return Poll::Ready(
                        result
                            .take()
                            .unwrap_or_else(|| Err(CommandError::polled_after_completion())),
                    );
                }
            };
            this.state.set(next);
        }
    }
}

impl<F, Res, K> fmt::Debug for ResponseFuture<F, Res, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}
