//! Semaphore isolation: at most N requests in flight, the rest rejected at once.
//!
//! Acquiring is one compare-and-swap that never takes the count past the limit, so a rejection
//! leaves no trace to undo (Hystrix's `TryableSemaphore` increments and then decrements, which
//! can reject a caller spuriously while another is backing out). The limit is an atomic too, so
//! it can change at runtime:
//! requests in flight keep their permits and release them as usual, and a lowered limit
//! rejects newcomers until enough of them have finished.

mod future;
mod layer;
mod service;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::Notify;

pub use self::{future::ResponseFuture, layer::SemaphoreBulkheadLayer, service::SemaphoreBulkhead};
use crate::SemaphoreRejected;

/// Hystrix's default limit (`execution.isolation.semaphore.maxConcurrentRequests`).
pub const DEFAULT_MAX_CONCURRENT: u32 = 10;

/// A counting semaphore that never queues: [`try_acquire`](Self::try_acquire) succeeds or fails
/// at once. Cloning shares it.
///
/// ```
/// use hystrix_bulkhead::Semaphore;
///
/// let sem = Semaphore::new(2);
/// let a = sem.try_acquire().unwrap();
/// let _b = sem.try_acquire().unwrap();
/// assert!(sem.try_acquire().is_err());
/// drop(a);
/// assert_eq!(sem.in_flight(), 1);
/// sem.set_limit(1); // at runtime; the permit in flight is kept
/// assert!(sem.try_acquire().is_err());
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Arc<Inner>,
}

struct Inner {
    in_flight: AtomicU32,
    limit: AtomicU32,
    /// The longest a request may wait for a permit, in nanoseconds; 0 to reject at once.
    max_wait_nanos: AtomicU64,
    /// Callers waiting for a permit.
    waiters: AtomicU32,
    released: Notify,
}

impl Semaphore {
    /// A semaphore of `limit` permits.
    pub fn new(limit: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                in_flight: AtomicU32::new(0),
                limit: AtomicU32::new(limit),
                max_wait_nanos: AtomicU64::new(0),
                waiters: AtomicU32::new(0),
                released: Notify::new(),
            }),
        }
    }

    /// Takes a permit, or fails at once if `limit` are in flight.
    #[inline]
    pub fn try_acquire(&self) -> Result<SemaphorePermit, SemaphoreRejected> {
        self.try_take()?;
        Ok(SemaphorePermit {
            inner: self.inner.clone(),
        })
    }

    /// Takes a permit without a guard, for an owner that keeps the semaphore itself (a
    /// command's response future holds its command, so a guard's own reference to the
    /// semaphore would be one more shared count to touch on every call). Each `Ok` must be
    /// matched by exactly one [`give_back`](Self::give_back); prefer
    /// [`try_acquire`](Self::try_acquire).
    ///
    /// `Ok` holds the number of permits in use, this one included.
    #[inline]
    pub fn try_take(&self) -> Result<u32, SemaphoreRejected> {
        let limit = self.inner.limit.load(Ordering::Relaxed);
        let mut in_flight = self.inner.in_flight.load(Ordering::Relaxed);
        loop {
            if in_flight >= limit {
                return Err(SemaphoreRejected::new(limit));
            }
            match self.inner.in_flight.compare_exchange_weak(
                in_flight,
                in_flight + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(in_flight + 1),
                Err(seen) => in_flight = seen,
            }
        }
    }

    /// Returns a permit taken with [`try_take`](Self::try_take).
    #[inline]
    pub fn give_back(&self) {
        self.inner.release();
    }

    /// Takes a permit, waiting up to the [`max_wait`](Self::set_max_wait) for one to be
    /// released; with no wait set, the same as [`try_acquire`](Self::try_acquire).
    pub async fn acquire(&self) -> Result<SemaphorePermit, SemaphoreRejected> {
        let wait = self.max_wait();
        if wait.is_zero() {
            return self.try_acquire();
        }
        let deadline = tokio::time::Instant::now() + wait;
        self.inner.waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = WaiterGuard(&self.inner);
        loop {
            let released = self.inner.released.notified();
            match self.try_acquire() {
                Ok(permit) => return Ok(permit),
                Err(rejected) => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return self.try_acquire().map_err(|_| rejected);
                    }
                }
            }
        }
    }

    /// The number of permits.
    pub fn limit(&self) -> u32 {
        self.inner.limit.load(Ordering::Acquire)
    }

    /// Changes the number of permits; permits in flight are kept.
    pub fn set_limit(&self, limit: u32) {
        self.inner.limit.store(limit, Ordering::Release);
        self.inner.released.notify_waiters();
    }

    /// How long a request may wait for a permit; zero (the default) rejects at once.
    pub fn max_wait(&self) -> Duration {
        Duration::from_nanos(self.inner.max_wait_nanos.load(Ordering::Acquire))
    }

    /// Sets how long a request may wait for a permit (at most about 584 years).
    pub fn set_max_wait(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.inner.max_wait_nanos.store(nanos, Ordering::Release);
    }

    /// Permits in flight now (above the limit only after the limit was lowered).
    pub fn in_flight(&self) -> u32 {
        self.inner.in_flight.load(Ordering::Acquire)
    }
}

impl Default for Semaphore {
    /// Hystrix's default of [`DEFAULT_MAX_CONCURRENT`] permits.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONCURRENT)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Inner {
    #[inline]
    fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.waiters.load(Ordering::Acquire) != 0 {
            self.released.notify_one();
        }
    }
}

struct WaiterGuard<'a>(&'a Inner);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One permit of a [`Semaphore`]; released when dropped.
pub struct SemaphorePermit {
    inner: Arc<Inner>,
}

impl Drop for SemaphorePermit {
    #[inline]
    fn drop(&mut self) {
        self.inner.release();
    }
}

impl fmt::Debug for SemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphorePermit")
    }
}
