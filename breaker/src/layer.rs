use tower_layer::Layer;

use crate::{Circuit, CircuitBreaker, DefaultClassifier};

/// Wraps services in a [`CircuitBreaker`] on one shared [`Circuit`].
///
/// Cloning the layer, or building several services from it, shares the circuit: it is one
/// dependency's breaker, however many clients call that dependency.
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<C = DefaultClassifier> {
    circuit: Circuit,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer on `circuit` that counts every `Err` as a failure.
    pub const fn new(circuit: Circuit) -> Self {
        Self {
            circuit,
            classifier: DefaultClassifier,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Uses `classifier` to tell successes, failures and bad requests apart.
    pub fn with_classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            circuit: self.circuit,
            classifier,
        }
    }

    /// The shared circuit, the operator's handle.
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::with_classifier(inner, self.circuit.clone(), self.classifier.clone())
    }
}
