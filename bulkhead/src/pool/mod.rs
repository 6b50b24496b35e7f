//! Thread-pool isolation: a dependency's requests run on threads of its own.
//!
//! # Shape
//!
//! A pool is a set of dedicated OS threads, each running a current-thread tokio runtime and
//! **one request at a time**, as a Hystrix thread runs one command. The caller's `call` builds
//! the inner service's future and hands it to the pool; an idle thread polls it to completion
//! while the caller awaits the result. So:
//!
//! - a client that blocks its thread (synchronous I/O, `std::thread::sleep`, a deadlock) blocks
//!   one thread of its own pool and nothing else: the caller's runtime is free, its timeout
//!   fires on time, and other pools are untouched;
//! - a blocked thread stays counted as active until it returns, so the pool's numbers (active,
//!   queued, rejected) mean what Hystrix's mean (spec §2.2);
//! - work must be in the future: `call` runs on the caller's thread, the future on the pool's.
//!
//! Why this shape rather than one multi-thread tokio runtime per pool: a multi-thread runtime
//! runs many tasks per thread, so a request that blocks its thread stalls the others queued on
//! it, and "active threads" stops meaning anything. Measured too (`benches/handoff.rs`,
//! BENCHMARKS.md): against a spawn onto a multi-thread runtime of the same size, this pool's
//! hand-off is 0.40x at p99 for back-to-back requests (an idle thread spins up to [`SPIN_FOR`]
//! before parking) and 0.95x for sparse ones.
//!
//! Admission follows Java's `ThreadPoolExecutor`, as Hystrix does: hand the request to an idle
//! thread; below `core_size` threads, start one; else queue it if the queue is below
//! `min(max_queue_size, queue_size_rejection_threshold)`; else start a thread up to the maximum
//! size; else reject at once with [`ThreadPoolRejected`]. With `max_queue_size` of -1 (the
//! default) there is no queue: a direct hand-off. Threads above `core_size` stop after
//! `keep_alive` idle. Threads start lazily and stop when the last handle of the pool is
//! dropped.
//!
//! A queued request whose caller goes away (its future dropped, e.g. by a timeout) leaves the
//! queue at once; a running one is dropped at its next `.await`.

mod future;
mod layer;
mod service;

use std::{
    collections::VecDeque,
    error::Error,
    fmt,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

pub use hystrix_core::ThreadPoolMetrics;
use hystrix_core::{
    Clock, RollingCounter, RollingWindow, ThreadPoolEventType, ThreadPoolKey, ThreadPoolReport,
    ThreadPoolSettingsReport, ThreadPoolSource,
};
use pin_project_lite::pin_project;
use tokio::sync::{Notify, oneshot};

pub use self::{
    future::ResponseFuture, layer::ThreadPoolBulkheadLayer, service::ThreadPoolBulkhead,
};
use crate::{ThreadPoolClosed, ThreadPoolRejected};

/// Settings of a thread pool, with Hystrix's defaults (spec §3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadPoolConfig {
    /// Threads kept running (`coreSize`, default 10).
    pub core_size: u32,
    /// The most threads, when `allow_maximum_size_to_diverge_from_core_size` (`maximumSize`,
    /// default 10).
    pub maximum_size: u32,
    /// Whether `maximum_size` applies; otherwise the maximum is `core_size` (default `false`).
    pub allow_maximum_size_to_diverge_from_core_size: bool,
    /// How long a thread above `core_size` may idle before it stops (`keepAliveTimeMinutes`,
    /// default 1 minute).
    pub keep_alive: Duration,
    /// The queue's capacity; -1 (the default) or 0 for none, a direct hand-off. Fixed when the
    /// pool is built (`maxQueueSize`).
    pub max_queue_size: i32,
    /// The queue length at which requests are rejected even below `max_queue_size`; can be
    /// changed at runtime (`queueSizeRejectionThreshold`, default 5).
    pub queue_size_rejection_threshold: u32,
    /// The window of the rolling counts (`metrics.rollingStats.*`, default 10 s / 10 buckets).
    pub window: RollingWindow,
}

impl Default for ThreadPoolConfig {
    fn default() -> Self {
        Self {
            core_size: 10,
            maximum_size: 10,
            allow_maximum_size_to_diverge_from_core_size: false,
            keep_alive: Duration::from_secs(60),
            max_queue_size: -1,
            queue_size_rejection_threshold: 5,
            window: RollingWindow::COUNTS,
        }
    }
}

/// The most threads a pool may have.
pub const MAX_THREADS: u32 = 4096;

/// How long an idle pool thread spins for the next request before it parks (one thread per
/// pool at a time). Costs at most this much CPU per request that is not followed by another
/// within it.
pub const SPIN_FOR: Duration = Duration::from_micros(20);

impl ThreadPoolConfig {
    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), InvalidPoolConfig> {
        let bad = |key, reason: String| Err(InvalidPoolConfig { key, reason });
        if self.core_size == 0 || self.core_size > MAX_THREADS {
            return bad(
                "core_size",
                format!("must be 1 to {MAX_THREADS}, not {}", self.core_size),
            );
        }
        if self.maximum_size > MAX_THREADS {
            return bad(
                "maximum_size",
                format!("must be at most {MAX_THREADS}, not {}", self.maximum_size),
            );
        }
        if self.max_queue_size < -1 {
            return bad(
                "max_queue_size",
                format!("must be -1 (no queue) or more, not {}", self.max_queue_size),
            );
        }
        Ok(())
    }

    /// The maximum number of threads in force: `max(core_size, maximum_size)` when allowed to
    /// diverge, else `core_size` (Hystrix's `actualMaximumSize`).
    pub fn actual_maximum_size(&self) -> u32 {
        if self.allow_maximum_size_to_diverge_from_core_size {
            self.core_size.max(self.maximum_size)
        } else {
            self.core_size
        }
    }

    fn queue_limit(&self) -> usize {
        if self.max_queue_size <= 0 {
            0
        } else {
            (self.max_queue_size as usize).min(self.queue_size_rejection_threshold as usize)
        }
    }
}

/// A thread-pool setting was refused; the previous settings, if any, stay in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPoolConfig {
    key: &'static str,
    reason: String,
}

impl InvalidPoolConfig {
    /// The setting that was refused.
    pub fn key(&self) -> &str {
        self.key
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidPoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid thread pool setting {}: {}",
            self.key, self.reason
        )
    }
}

impl Error for InvalidPoolConfig {}

/// A dependency's thread pool. Cloning shares it; when the last clone (and the last service
/// built on it) is dropped, its threads stop.
///
/// ```
/// use hystrix_bulkhead::{ThreadPool, ThreadPoolConfig};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let pool = ThreadPool::new("users", ThreadPoolConfig { core_size: 2, ..Default::default() }).unwrap();
/// let thread = pool
///     .spawn(async { std::thread::current().name().map(str::to_owned) })
///     .unwrap()
///     .await
///     .unwrap();
/// assert_eq!(thread.as_deref(), Some("hystrix-users-1"));
/// assert_eq!(pool.metrics().completed_task_count, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    handle: Arc<Handle>,
}

/// The last handle stops the threads.
struct Handle {
    shared: Arc<Shared>,
}

struct Shared {
    key: ThreadPoolKey,
    clock: Clock,
    state: Mutex<State>,
    /// Wakes a thread waiting for work.
    work: Notify,
    completed: AtomicU64,
    accepted: AtomicU64,
    counter: RollingCounter<ThreadPoolEventType>,
    /// `state.queue.len()`, for a spinning thread to watch without the lock.
    queued: AtomicUsize,
    /// Whether a thread is spinning for work (at most one does).
    spinning: AtomicBool,
}

struct State {
    config: ThreadPoolConfig,
    queue: VecDeque<Job>,
    /// Threads alive.
    threads: u32,
    largest: u32,
    active: u32,
    /// Threads started so far, for names.
    started: u64,
    next_id: u64,
    shutdown: bool,
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Job {
    id: u64,
    task: Task,
}

impl ThreadPool {
    /// A pool named `key`, reading the [default clock](Clock::default) for its rolling counts.
    pub fn new(
        key: impl Into<ThreadPoolKey>,
        config: ThreadPoolConfig,
    ) -> Result<Self, InvalidPoolConfig> {
        Self::with_clock(key, config, Clock::default())
    }

    /// A pool reading `clock` for its rolling counts.
    pub fn with_clock(
        key: impl Into<ThreadPoolKey>,
        config: ThreadPoolConfig,
        clock: Clock,
    ) -> Result<Self, InvalidPoolConfig> {
        config.validate()?;
        let shared = Arc::new(Shared {
            key: key.into(),
            counter: RollingCounter::new(config.window, clock.coarse_stamp()),
            clock,
            state: Mutex::new(State {
                config,
                queue: VecDeque::new(),
                threads: 0,
                largest: 0,
                active: 0,
                started: 0,
                next_id: 0,
                shutdown: false,
            }),
            work: Notify::new(),
            completed: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            spinning: AtomicBool::new(false),
        });
        Ok(Self {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// The pool's name.
    pub fn key(&self) -> &ThreadPoolKey {
        &self.handle.shared.key
    }

    /// Runs `future` on a thread of the pool, or rejects it at once when the pool is full.
    ///
    /// The returned [`PoolTask`] resolves to the future's output; dropping it withdraws the
    /// request from the queue, or drops the future at its next `.await` if it is running.
    pub fn spawn<F>(&self, future: F) -> Result<PoolTask<F::Output>, ThreadPoolRejected>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let shared = &self.handle.shared;
        let task: Task = Box::pin(UntilCancelled {
            future,
            tx: Some(tx),
            shared: Some(shared.clone()),
        });
        let id = shared.admit(task).inspect_err(|_| {
            shared
                .counter
                .increment(ThreadPoolEventType::Rejected, shared.clock.coarse_stamp());
        })?;
        Ok(PoolTask {
            rx,
            ticket: Some(Ticket {
                shared: Some(self.handle.shared.clone()),
                id,
            }),
        })
    }

    /// The pool's numbers now.
    pub fn metrics(&self) -> ThreadPoolMetrics {
        let shared = &self.handle.shared;
        let now = shared.clock.coarse_stamp();
        let sums = shared.counter.sums(now);
        let st = shared.lock();
        let completed = shared.completed.load(Ordering::Acquire);
        ThreadPoolMetrics {
            active_count: st.active,
            queue_size: st.waiting(),
            pool_size: st.threads,
            largest_pool_size: st.largest,
            core_pool_size: st.config.core_size,
            maximum_pool_size: st.config.actual_maximum_size(),
            completed_task_count: completed,
            task_count: shared.accepted.load(Ordering::Acquire).max(completed),
            rolling_executed: sums.get(ThreadPoolEventType::Executed),
            rolling_rejected: sums.get(ThreadPoolEventType::Rejected),
            rolling_max_active: shared.counter.max(now),
            queue_size_rejection_threshold: st.config.queue_size_rejection_threshold,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> ThreadPoolConfig {
        self.handle.shared.lock().config.clone()
    }

    /// Replaces the settings at runtime: sizes, keep-alive and the rejection threshold.
    /// Requests running or queued are kept; a smaller pool shrinks as its threads go idle.
    /// Refused, with the old settings kept, when a setting is invalid or `max_queue_size` or
    /// the window changes (both are fixed when the pool is built, as in Hystrix).
    pub fn update(&self, config: ThreadPoolConfig) -> Result<(), InvalidPoolConfig> {
        config.validate()?;
        let shared = &self.handle.shared;
        let mut st = shared.lock();
        for (key, changed) in [
            (
                "max_queue_size",
                config.max_queue_size != st.config.max_queue_size,
            ),
            ("window", config.window != st.config.window),
        ] {
            if changed {
                return Err(InvalidPoolConfig {
                    key,
                    reason: "is fixed when the pool is built".into(),
                });
            }
        }
        st.config = config;
        drop(st);
        // Idle threads re-read their keep-alive and whether they are above the core size.
        shared.work.notify_waiters();
        Ok(())
    }

    /// Sets the queue length at which requests are rejected (Hystrix's dynamic
    /// `queueSizeRejectionThreshold`).
    pub fn set_queue_size_rejection_threshold(&self, threshold: u32) {
        self.handle
            .shared
            .lock()
            .config
            .queue_size_rejection_threshold = threshold;
    }
}

impl ThreadPoolSource for ThreadPool {
    fn key(&self) -> &ThreadPoolKey {
        ThreadPool::key(self)
    }

    fn report(&self) -> ThreadPoolReport {
        let config = self.config();
        ThreadPoolReport {
            key: self.key().clone(),
            metrics: self.metrics(),
            settings: ThreadPoolSettingsReport {
                core_size: config.core_size,
                maximum_size: config.maximum_size,
                actual_maximum_size: config.actual_maximum_size(),
                allow_maximum_size_to_diverge_from_core_size: config
                    .allow_maximum_size_to_diverge_from_core_size,
                max_queue_size: config.max_queue_size,
                queue_size_rejection_threshold: config.queue_size_rejection_threshold,
                keep_alive: config.keep_alive,
                rolling_stats_window: config.window,
            },
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("key", self.key())
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let queued: Vec<Job> = {
            let mut st = self.shared.lock();
            st.shutdown = true;
            self.shared.queued.store(0, Ordering::Release);
            st.queue.drain(..).collect()
        };
        // Outside the lock: dropping a task drops its result channel, which wakes its caller.
        drop(queued);
        self.shared.work.notify_waiters();
    }
}

// ===== impl Shared =====

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a few integer and queue operations that cannot panic
        // half-way, so a poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a request for a thread, starting one if the rules allow. The pool cannot be shut
    /// down here: a handle is needed to call this, and only the last handle's drop shuts down.
    fn admit(self: &Arc<Self>, task: Task) -> Result<u64, ThreadPoolRejected> {
        let mut st = self.lock();
        let id = st.next_id;
        let spawn = if st.free() > st.queue.len() {
            false // a free thread takes it
        } else if st.threads < st.config.core_size {
            true
        } else if st.queue.len() - st.free() < st.config.queue_limit() {
            false // queued
        } else if st.threads < st.config.actual_maximum_size() {
            true
        } else {
            return Err(ThreadPoolRejected::new());
        };
        st.next_id += 1;
        st.queue.push_back(Job { id, task });
        self.queued.store(st.queue.len(), Ordering::Release);
        if spawn {
            st.threads += 1;
            st.largest = st.largest.max(st.threads);
            st.started += 1;
            let name = format!("hystrix-{}-{}", self.key, st.started);
            let shared = self.clone();
            if let Err(e) = std::thread::Builder::new()
                .name(name)
                .spawn(move || shared.work_loop())
            {
                st.threads -= 1;
                st.queue.pop_back();
                self.queued.store(st.queue.len(), Ordering::Release);
                tracing::error!(pool = %self.key, error = %e, "could not start a pool thread");
                return Err(ThreadPoolRejected::new());
            }
            self.accepted.fetch_add(1, Ordering::AcqRel);
        } else {
            self.accepted.fetch_add(1, Ordering::AcqRel);
            // Wake a thread after unlocking, or it wakes only to block on the lock.
            drop(st);
            self.work.notify_one();
        }
        Ok(id)
    }

    /// Withdraws a request from the queue if it is still there.
    fn withdraw(&self, id: u64) {
        let job = {
            let mut st = self.lock();
            let Some(i) = st.queue.iter().position(|j| j.id == id) else {
                return;
            };
            let job = st.queue.remove(i);
            self.queued.store(st.queue.len(), Ordering::Release);
            job
        };
        if job.is_some() {
            self.accepted.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn work_loop(self: Arc<Self>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(pool = %self.key, error = %e, "could not build a pool thread's runtime");
                self.lock().threads -= 1;
                return;
            }
        };
        // One `block_on` for the thread's whole life: entering the runtime once per request
        // would cost more than the hand-off itself.
        runtime.block_on(self.run());
    }

    async fn run(&self) {
        loop {
            // Registered before looking at the queue, so a request queued in between still
            // wakes this thread.
            let notified = self.work.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.next_job() {
                Next::Job(job) => {
                    // A panicking request must not take the thread down: its caller sees the
                    // result channel close. A request that completes does its own accounting
                    // (`finish`) before its result is delivered; a panicking one never got
                    // there.
                    let mut task = std::pin::pin!(CatchUnwind { future: job.task });
                    if task.as_mut().await.is_err() {
                        self.finish();
                    }
                    // `task` is dropped at the end of this block, after the accounting: its
                    // result channel must not close before the thread counts as free.
                }
                Next::Stop => return,
                Next::Wait(_) if self.spin_for_work() => {}
                Next::Wait(None) => notified.await,
                Next::Wait(Some(keep_alive)) => {
                    if tokio::time::timeout(keep_alive, notified).await.is_err() {
                        let mut st = self.lock();
                        if st.queue.is_empty() && st.threads > st.config.core_size {
                            st.threads -= 1;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Spins briefly for work before parking, as Java's `SynchronousQueue` (Hystrix's
    /// hand-off) and tokio's searching workers do: a request arriving right behind the last
    /// one then costs no wake-up. At most one thread of a pool spins, for at most
    /// [`SPIN_FOR`] of real time. True when a request is waiting.
    fn spin_for_work(&self) -> bool {
        if self.spinning.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Real time even under a paused test clock, which would never end the spin.
        let clock = Clock::system();
        let until = clock.now() + SPIN_FOR;
        let mut found = false;
        'spin: while clock.now() < until {
            for _ in 0..16 {
                if self.queued.load(Ordering::Acquire) > 0 {
                    found = true;
                    break 'spin;
                }
                std::hint::spin_loop();
            }
        }
        self.spinning.store(false, Ordering::Release);
        found
    }

    /// Accounts for a request that left its thread, before its caller can see its result.
    fn finish(&self) {
        self.lock().active -= 1;
        self.completed.fetch_add(1, Ordering::AcqRel);
        self.counter
            .increment(ThreadPoolEventType::Executed, self.clock.coarse_stamp());
    }

    /// What this thread does next.
    fn next_job(&self) -> Next {
        let mut st = self.lock();
        if let Some(job) = st.queue.pop_front() {
            self.queued.store(st.queue.len(), Ordering::Release);
            st.active += 1;
            let active = u64::from(st.active);
            drop(st);
            self.counter.update_max(active, self.clock.coarse_stamp());
            return Next::Job(job);
        }
        if st.shutdown || st.threads > st.config.actual_maximum_size() {
            st.threads -= 1;
            return Next::Stop;
        }
        Next::Wait((st.threads > st.config.core_size).then_some(st.config.keep_alive))
    }
}

enum Next {
    Job(Job),
    /// Wait for work; a thread above the core size waits at most its keep-alive.
    Wait(Option<Duration>),
    Stop,
}

pin_project! {
    /// Polls a request, turning a panic into an error.
    struct CatchUnwind<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

impl State {
    /// Threads not running a request: waiting for one, or about to. A thread counts as free
    /// from the moment its request finished (see `finish`), before its caller sees the result.
    fn free(&self) -> usize {
        self.threads.saturating_sub(self.active) as usize
    }

    /// Requests queued beyond those a free thread is about to take.
    fn waiting(&self) -> u32 {
        self.queue.len().saturating_sub(self.free()) as u32
    }
}

/// A request handed to a [`ThreadPool`]: resolves to its output.
///
/// Dropping it withdraws the request from the queue, or cancels it at its next `.await` if
/// it is running.
pub struct PoolTask<T> {
    rx: oneshot::Receiver<T>,
    ticket: Option<Ticket>,
}

/// The caller's claim on a queue slot: given back if the caller goes away first.
struct Ticket {
    /// `None` once the request has finished: nothing left to withdraw.
    shared: Option<Arc<Shared>>,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.withdraw(self.id);
        }
    }
}

impl<T> Future for PoolTask<T> {
    type Output = Result<T, ThreadPoolClosed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = std::task::ready!(Pin::new(&mut self.rx).poll(cx));
        // The request left the queue long ago: no lock to take on the way out.
        if let Some(ticket) = self.ticket.as_mut() {
            ticket.shared = None;
        }
        Poll::Ready(out.map_err(|_| ThreadPoolClosed::new()))
    }
}

impl<T> fmt::Debug for PoolTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolTask")
    }
}

pin_project! {
    /// Runs a request's future until it completes or its caller goes away.
    struct UntilCancelled<F, T> {
        #[pin]
        future: F,
        tx: Option<oneshot::Sender<T>>,
        shared: Option<Arc<Shared>>,
    }
}

impl<F: Future> Future for UntilCancelled<F, F::Output> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let Some(tx) = this.tx.as_mut() else {
            return Poll::Ready(());
        };
        if tx.poll_closed(cx).is_ready() {
            // The caller went away: drop the request.
            if let Some(shared) = this.shared.take() {
                shared.finish();
            }
            return Poll::Ready(());
        }
        let out = std::task::ready!(this.future.poll(cx));
        if let Some(shared) = this.shared.take() {
            shared.finish();
        }
        if let Some(tx) = this.tx.take() {
            let _ = tx.send(out);
        }
        Poll::Ready(())
    }
}
