use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use super::PoolTask;
use crate::BoxError;

/// The response future of a [`ThreadPoolBulkhead`](super::ThreadPoolBulkhead): the request
/// running (or queued) on the pool, or an immediate rejection.
///
/// Dropping it withdraws a queued request and cancels a running one at its next `.await`.
pub struct ResponseFuture<T, E> {
    state: State<T, E>,
}

enum State<T, E> {
    Running(PoolTask<Result<T, E>>),
    Refused(Option<BoxError>),
}

impl<T, E> ResponseFuture<T, E> {
    pub(crate) fn running(task: PoolTask<Result<T, E>>) -> Self {
        Self {
            state: State::Running(task),
        }
    }

    pub(crate) fn refused(error: BoxError) -> Self {
        Self {
            state: State::Refused(Some(error)),
        }
    }
}

impl<T, E: Into<BoxError>> Future for ResponseFuture<T, E> {
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Running(task) => Poll::Ready(match ready!(Pin::new(task).poll(cx)) {
                Ok(result) => result.map_err(Into::into),
                Err(closed) => Err(closed.into()),
            }),
            State::Refused(error) => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "polled after completion".into()))),
        }
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}
