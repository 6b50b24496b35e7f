//! Error types.

use std::{error::Error, fmt};

/// The boxed error a bulkhead service returns: the inner service's error or a rejection.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The execution semaphore was full: the request was rejected without being run
/// (Hystrix's SEMAPHORE_REJECTED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemaphoreRejected {
    limit: u32,
}

impl SemaphoreRejected {
    pub(crate) const fn new(limit: u32) -> Self {
        Self { limit }
    }

    /// The limit in force when the request was rejected.
    pub const fn limit(&self) -> u32 {
        self.limit
    }
}

impl fmt::Display for SemaphoreRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "semaphore full ({} in flight)", self.limit)
    }
}

impl Error for SemaphoreRejected {}

/// The thread pool's threads were busy and its queue full: the request was rejected without
/// being run (Hystrix's THREAD_POOL_REJECTED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadPoolRejected {
    _p: (),
}

impl ThreadPoolRejected {
    pub(crate) const fn new() -> Self {
        Self { _p: () }
    }
}

impl fmt::Display for ThreadPoolRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("thread pool full")
    }
}

impl Error for ThreadPoolRejected {}

/// The request was dropped by its thread pool without a result: the pool was shut down, or
/// the request panicked on its thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadPoolClosed {
    _p: (),
}

impl ThreadPoolClosed {
    pub(crate) const fn new() -> Self {
        Self { _p: () }
    }
}

impl fmt::Display for ThreadPoolClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "request dropped by its thread pool (the pool shut down or the request panicked)",
        )
    }
}

impl Error for ThreadPoolClosed {}
