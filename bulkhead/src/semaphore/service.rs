use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tower_service::Service;

use super::{ResponseFuture, Semaphore, SemaphorePermit};
use crate::{BoxError, SemaphoreRejected};

type Acquire = Pin<Box<dyn Future<Output = Result<SemaphorePermit, SemaphoreRejected>> + Send>>;

/// A service limited to the permits of a [`Semaphore`].
///
/// By default a full semaphore rejects in `call` with a ready [`SemaphoreRejected`] error, and
/// `poll_ready` is the inner service's. With a [`max_wait`](Semaphore::set_max_wait), a full
/// semaphore is waited on in `poll_ready`, up to that long, and the permit reserved there is
/// used by the next `call` (a clone starts without one).
pub struct SemaphoreBulkhead<S> {
    inner: S,
    semaphore: Semaphore,
    reserved: Option<Result<SemaphorePermit, SemaphoreRejected>>,
    waiting: Option<Acquire>,
}

impl<S> SemaphoreBulkhead<S> {
    /// Limits `inner` to the permits of `semaphore`.
    pub const fn new(inner: S, semaphore: Semaphore) -> Self {
        Self {
            inner,
            semaphore,
            reserved: None,
            waiting: None,
        }
    }

    /// The semaphore.
    pub fn semaphore(&self) -> &Semaphore {
        &self.semaphore
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the bulkhead.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for SemaphoreBulkhead<S> {
    /// A clone starts without a reserved permit.
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.semaphore.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for SemaphoreBulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreBulkhead")
            .field("inner", &self.inner)
            .field("semaphore", &self.semaphore)
            .finish_non_exhaustive()
    }
}

impl<S, Request> Service<Request> for SemaphoreBulkhead<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.reserved.is_none() && !self.semaphore.max_wait().is_zero() {
            match self.semaphore.try_acquire() {
                Ok(permit) => self.reserved = Some(Ok(permit)),
                Err(_) => {
                    let semaphore = self.semaphore.clone();
                    let waiting = self
                        .waiting
                        .get_or_insert_with(|| Box::pin(async move { semaphore.acquire().await }));
                    let acquired = std::task::ready!(waiting.as_mut().poll(cx));
                    self.waiting = None;
                    self.reserved = Some(acquired);
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let permit = match self.reserved.take() {
            Some(reserved) => reserved,
            None => self.semaphore.try_acquire(),
        };
        match permit {
            Ok(permit) => ResponseFuture::called(self.inner.call(request), permit),
            Err(rejected) => ResponseFuture::rejected(rejected.into()),
        }
    }
}
