//! Future types.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;

use crate::{BoxError, Classify, Permit, ShortCircuited};

pin_project! {
    /// The response future of a [`CircuitBreaker`](crate::CircuitBreaker): the inner future,
    /// which owns the circuit's permit, or an immediate [`ShortCircuited`] error.
    ///
    /// Dropping it before it completes cancels the request: a half-open trial counts as failed.
    pub struct ResponseFuture<F, C> {
        #[pin]
        state: ResponseState<F, C>,
    }
}

pin_project! {
    #[project = ResponseStateProj]
    enum ResponseState<F, C> {
        Called {
            #[pin]
            fut: F,
            permit: Option<Permit>,
            classifier: C,
        },
        ShortCircuited {
            error: Option<ShortCircuited>,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(fut: F, permit: Permit, classifier: C) -> Self {
        Self {
            state: ResponseState::Called {
                fut,
                permit: Some(permit),
                classifier,
            },
        }
    }

    pub(crate) fn short_circuited(error: ShortCircuited) -> Self {
        Self {
            state: ResponseState::ShortCircuited { error: Some(error) },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ResponseStateProj::Called {
                fut,
                permit,
                classifier,
            } => {
                let result = ready!(fut.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classifier.classify(result.as_ref()).event());
                }
                Poll::Ready(result.map_err(Into::into))
            }
            ResponseStateProj::ShortCircuited { error } => Poll::Ready(Err(error
                .take()
                .map_or_else(|| "polled after completion".into(), Into::into))),
        }
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}
