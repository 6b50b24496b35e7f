use tower_layer::Layer;

use super::{ThreadPool, ThreadPoolBulkhead};

/// Wraps services in a [`ThreadPoolBulkhead`] on one shared [`ThreadPool`].
#[derive(Clone, Debug)]
pub struct ThreadPoolBulkheadLayer {
    pool: ThreadPool,
}

impl ThreadPoolBulkheadLayer {
    /// A layer running requests on `pool`.
    pub const fn new(pool: ThreadPool) -> Self {
        Self { pool }
    }

    /// The shared pool.
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }
}

impl<S> Layer<S> for ThreadPoolBulkheadLayer {
    type Service = ThreadPoolBulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ThreadPoolBulkhead::new(inner, self.pool.clone())
    }
}
