//! Hystrix bulkheads as Tower layers: each dependency gets its own bounded share of
//! concurrency, and what exceeds it is rejected at once, so one slow or hanging dependency
//! cannot take the whole service down.
//!
//! - [`SemaphoreBulkheadLayer`]: at most N requests in flight, counted with one compare-and-swap
//!   per request; the rest get [`SemaphoreRejected`] at once (optionally after a bounded wait).
//! - [`ThreadPoolBulkheadLayer`]: requests run on a [`ThreadPool`] of the dependency's own,
//!   dedicated OS threads, with a bounded queue; a client that blocks its thread only exhausts
//!   its own pool, and the caller's timeout still fires. A full pool means
//!   [`ThreadPoolRejected`] at once.
//!
//! Both fail fast in `call` with a ready error, never by holding `poll_ready` pending, and the
//! permit or queue slot is owned by the response future: released on completion, drop,
//! cancellation and panic.
//!
//! ```
//! use hystrix_bulkhead::{Semaphore, SemaphoreBulkheadLayer, SemaphoreRejected};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let semaphore = Semaphore::new(1);
//! let mut svc = SemaphoreBulkheadLayer::new(semaphore.clone())
//!     .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
//!
//! let first = svc.ready().await.unwrap().call(1); // holds the only permit
//! let second = svc.ready().await.unwrap().call(2).await;
//! assert!(second.unwrap_err().is::<SemaphoreRejected>());
//! assert_eq!(first.await.unwrap(), 1);
//! assert_eq!(semaphore.in_flight(), 0);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod pool;
pub mod semaphore;

pub use self::{
    error::{BoxError, SemaphoreRejected, ThreadPoolClosed, ThreadPoolRejected},
    pool::{
        InvalidPoolConfig, PoolTask, ThreadPool, ThreadPoolBulkheadLayer, ThreadPoolConfig,
        ThreadPoolMetrics,
    },
    semaphore::{Semaphore, SemaphoreBulkheadLayer, SemaphorePermit},
};
