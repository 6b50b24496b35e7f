//! Fallbacks: what a command serves when its dependency cannot.

use std::future::Future;

use hystrix_breaker::BoxError;

use crate::{Failure, cache::BoxFuture};

/// An async function of (what the command kept of) the request and the [`Failure`], run when a
/// call fails: short-circuited, rejected, timed out or failed. Never run for a bad request.
///
/// Implemented by every `Fn(K, Failure) -> impl Future<Output = Result<Response, E>>`, where
/// `K` is the command's [request view](crate::CommandBuilder::request_view) (`()` unless one is
/// set). Fallbacks run under their own semaphore
/// (`fallback_isolation_semaphore_max_concurrent_requests`, default 10).
pub trait Fallback<K, Res>: Send + Sync + 'static {
    /// The fallback response for the request.
    fn call(&self, request: K, failure: Failure) -> BoxFuture<Result<Res, BoxError>>;
}

impl<F, Fut, K, Res, E> Fallback<K, Res> for F
where
    F: Fn(K, Failure) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Res, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn call(&self, request: K, failure: Failure) -> BoxFuture<Result<Res, BoxError>> {
        let fut = self(request, failure);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
