use tower_layer::Layer;

use super::{Semaphore, SemaphoreBulkhead};

/// Wraps services in a [`SemaphoreBulkhead`] sharing one [`Semaphore`]: one dependency's share
/// of concurrency, however many clients call it.
#[derive(Clone, Debug)]
pub struct SemaphoreBulkheadLayer {
    semaphore: Semaphore,
}

impl SemaphoreBulkheadLayer {
    /// A layer on `semaphore`.
    pub const fn new(semaphore: Semaphore) -> Self {
        Self { semaphore }
    }

    /// The shared semaphore: resize it at runtime with [`Semaphore::set_limit`].
    pub fn semaphore(&self) -> &Semaphore {
        &self.semaphore
    }
}

impl<S> Layer<S> for SemaphoreBulkheadLayer {
    type Service = SemaphoreBulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SemaphoreBulkhead::new(inner, self.semaphore.clone())
    }
}
