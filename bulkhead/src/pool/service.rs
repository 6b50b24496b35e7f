use std::task::{Context, Poll};

use tower_service::Service;

use super::{ResponseFuture, ThreadPool};
use crate::BoxError;

/// A service whose requests run on a [`ThreadPool`].
///
/// `call` builds the inner service's future on the caller's thread and hands it to the pool; a
/// full pool rejects at once with a ready
/// [`ThreadPoolRejected`](crate::ThreadPoolRejected) error. `poll_ready` is the inner service's.
#[derive(Clone, Debug)]
pub struct ThreadPoolBulkhead<S> {
    inner: S,
    pool: ThreadPool,
}

impl<S> ThreadPoolBulkhead<S> {
    /// Runs `inner`'s requests on `pool`.
    pub const fn new(inner: S, pool: ThreadPool) -> Self {
        Self { inner, pool }
    }

    /// The pool.
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
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

impl<S, Request> Service<Request> for ThreadPoolBulkhead<S>
where
    S: Service<Request>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.pool.spawn(self.inner.call(request)) {
            Ok(task) => ResponseFuture::running(task),
            Err(rejected) => ResponseFuture::refused(rejected.into()),
        }
    }
}
