use std::task::{Context, Poll};

use tower_service::Service;

use crate::{BoxError, Circuit, Classify, DefaultClassifier, future::ResponseFuture};

/// A service guarded by a circuit breaker.
///
/// `poll_ready` is the inner service's. `call` asks the [`Circuit`]: when it is open the
/// returned future is ready at once with [`ShortCircuited`](crate::ShortCircuited), and the
/// inner service is not called (its readiness stays reserved for the next call). Otherwise the
/// request runs and its result, once classified, is recorded.
#[derive(Clone, Debug)]
pub struct CircuitBreaker<S, C = DefaultClassifier> {
    inner: S,
    circuit: Circuit,
    classifier: C,
}

impl<S> CircuitBreaker<S> {
    /// Guards `inner` with `circuit`, counting every `Err` as a failure.
    pub const fn new(inner: S, circuit: Circuit) -> Self {
        Self::with_classifier(inner, circuit, DefaultClassifier)
    }
}

impl<S, C> CircuitBreaker<S, C> {
    /// Guards `inner` with `circuit`, classifying results with `classifier`.
    pub const fn with_classifier(inner: S, circuit: Circuit, classifier: C) -> Self {
        Self {
            inner,
            circuit,
            classifier,
        }
    }

    /// The circuit.
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the breaker.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Request> Service<Request> for CircuitBreaker<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        match self.circuit.try_acquire() {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(request), permit, self.classifier.clone())
            }
            Err(rejected) => ResponseFuture::short_circuited(rejected),
        }
    }
}
