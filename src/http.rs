//! Commands on the server side, with axum: failures become 503 and 504 responses.
//!
//! [`CommandError`] implements axum's `IntoResponse`: 503 Service Unavailable when the work was
//! not attempted (open circuit, full bulkhead), 504 Gateway Timeout when it timed out, 502 when
//! it failed, 400 for a bad request; the body is the error's message. [`ErrorResponseLayer`]
//! turns a command into a service axum accepts (`Error = Infallible`):
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, body::Body, routing::get};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_hystrix::{Command, HttpClassifier, Registry, http::ErrorResponseLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let report = Command::builder("Report")
//!     .classifier(HttpClassifier)
//!     .timeout(Duration::from_millis(50))
//!     .semaphore(4)
//!     .registry(&Registry::new())
//!     .build()?;
//! let app = Router::new()
//!     .route("/report", get(|| async { tokio::time::sleep(Duration::from_secs(1)).await; "done" }))
//!     .layer(ServiceBuilder::new().layer(ErrorResponseLayer::new()).layer(report.clone()));
//!
//! let res = app.clone().oneshot(http::Request::get("/report").body(Body::empty())?).await?;
//! assert_eq!(res.status(), http::StatusCode::GATEWAY_TIMEOUT);
//! report.command().circuit().force_open();
//! let res = app.oneshot(http::Request::get("/report").body(Body::empty())?).await?;
//! assert_eq!(res.status(), http::StatusCode::SERVICE_UNAVAILABLE);
//! # Ok(()) }
//! ```

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum_core::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{CommandError, ErrorKind};

impl IntoResponse for CommandError {
    fn into_response(self) -> Response {
        let mut res = (self.status_code(), self.to_string()).into_response();
        if self.kind() == ErrorKind::ShortCircuited {
            // Clients and proxies that honour it back off instead of retrying at once.
            res.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        res
    }
}

/// Answers a command's errors with their responses, so that the command can wrap axum routes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorResponseLayer {
    _p: (),
}

impl ErrorResponseLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponse {
            inner,
            unready: None,
        }
    }
}

/// A service whose [`CommandError`]s are answered as responses; see [`ErrorResponseLayer`].
pub struct ErrorResponse<S> {
    inner: S,
    /// An error from the inner service's `poll_ready`, answered to the next call.
    unready: Option<CommandError>,
}

impl<S: Clone> Clone for ErrorResponse<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            unready: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ErrorResponse<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorResponse")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for ErrorResponse<S>
where
    S: Service<Req, Error = CommandError>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ErrorResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.unready.is_none() {
            if let Err(e) = ready!(self.inner.poll_ready(cx)) {
                self.unready = Some(e);
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.unready.take() {
            Some(e) => ErrorResponseFuture {
                state: State::Failed { error: Some(e) },
            },
            None => ErrorResponseFuture {
                state: State::Called {
                    fut: self.inner.call(req),
                },
            },
        }
    }
}

pin_project! {
    /// The response future of [`ErrorResponse`].
    pub struct ErrorResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] fut: F },
        Failed { error: Option<CommandError> },
    }
}

impl<F, T> Future for ErrorResponseFuture<F>
where
    F: Future<Output = Result<T, CommandError>>,
    T: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match self.project().state.project() {
            StateProj::Called { fut } => match ready!(fut.poll(cx)) {
                Ok(res) => res.into_response(),
                Err(e) => e.into_response(),
            },
            StateProj::Failed { error } => match error.take() {
                Some(e) => e.into_response(),
                None => CommandError::polled_after_completion().into_response(),
            },
        }))
    }
}

impl<F> fmt::Debug for ErrorResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorResponseFuture")
    }
}
