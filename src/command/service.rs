//! The command as a Tower service.

use std::{
    fmt,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
};

use hystrix_breaker::BoxError;
use hystrix_core::{HystrixEventType as Ev, Stamp};
use tower_service::Service;

use super::{
    Command, Handling, Local, Requests,
    coalesce::Joined,
    future::{Call, Exec, ResponseFuture},
};
use crate::{CommandError, FailureKind};

/// A service wrapped by a [`Command`]; see [`CommandLayer`](super::CommandLayer).
///
/// It is ready when its inner service is. An open circuit or a full bulkhead never holds
/// `poll_ready` pending: `call` returns at once with the fallback or the error.
pub struct CommandService<S, Req, Res, K = ()> {
    inner: S,
    local: Arc<Local<Res, K>>,
    requests: Arc<Requests<Req, K>>,
}

impl<S, Req, Res, K> CommandService<S, Req, Res, K> {
    pub(crate) fn new(
        inner: S,
        command: Command,
        requests: Arc<Requests<Req, K>>,
        handling: Arc<Handling<Res, K>>,
    ) -> Self {
        Self {
            inner,
            local: Arc::new(Local { command, handling }),
            requests,
        }
    }

    /// The command.
    pub fn command(&self) -> &Command {
        &self.local.command
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, Res, K> CommandService<S, Req, Res, K>
where
    S: Service<Req, Response = Res>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    Res: Send + 'static,
    K: Send + 'static,
{
    /// The breaker, the bulkhead, then the inner service. The call is built where the future
    /// keeps it, rather than moved there.
    fn execute(
        &mut self,
        req: Req,
        start: Stamp,
        key: Option<String>,
    ) -> ResponseFuture<S::Future, Res, K> {
        let core = self.local.core();
        let view = match self.local.handling.fallback {
            Some(_) => Some((self.requests.view)(&req)),
            None => None,
        };
        let admission = match core.circuit.try_admit_at(start) {
            Ok(admission) => admission,
            Err(e) => {
                return Call::new(self.local.clone(), start, key, view, None).rejected(
                    None,
                    Ev::ShortCircuited,
                    FailureKind::ShortCircuited,
                    Arc::new(e),
                );
            }
        };
        let timeout = core.timeout();
        let (exec, semaphore) = match &core.pool {
            None => match core.semaphore.try_take() {
                Ok(running) => {
                    // The semaphore is the count of running executions (see the registry).
                    core.metrics
                        .observe_concurrency_at(u64::from(running), start);
                    let fut = self.inner.call(req);
                    (Exec::Direct { fut }, true)
                }
                Err(e) => {
                    return Call::new(self.local.clone(), start, key, view, timeout).rejected(
                        Some(admission),
                        Ev::SemaphoreRejected,
                        FailureKind::SemaphoreRejected,
                        Arc::new(e),
                    );
                }
            },
            Some(pool) => {
                let fut = self.inner.call(req);
                let clock = core.clock.clone();
                let spawned = pool.spawn(async move {
                    let start = clock.stamp();
                    let result = fut.await.map_err(Into::into);
                    (result, clock.stamp().micros_since(start))
                });
                match spawned {
                    Ok(task) => {
                        core.metrics.begin_execution_at(start);
                        (Exec::Pool { task }, false)
                    }
                    Err(e) => {
                        return Call::new(self.local.clone(), start, key, view, timeout).rejected(
                            Some(admission),
                            Ev::ThreadPoolRejected,
                            FailureKind::ThreadPoolRejected,
                            Arc::new(e),
                        );
                    }
                }
            }
        };
        ResponseFuture::running(
            exec,
            Call {
                local: self.local.clone(),
                start,
                key,
                view,
                timeout,
                admission: Some(admission),
                semaphore,
                // On a pool, the metrics count the execution.
                executing: !semaphore,
            },
        )
    }
}

impl<S, Req, Res, K> Service<Req> for CommandService<S, Req, Res, K>
where
    S: Service<Req, Response = Res>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    Res: Send + 'static,
    K: Send + 'static,
{
    type Response = Res;
    type Error = CommandError;
    type Future = ResponseFuture<S::Future, Res, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| CommandError::lost(self.local.command.key().clone(), Arc::from(e.into())))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let core = self.local.core();
        let start = core.clock.stamp();
        let key = match &self.requests.cache_key {
            Some(key) if core.cache_enabled.load(Ordering::Relaxed) => key(&req),
            _ => None,
        };
        let coalesce = match (&self.local.handling.coalescer, &key) {
            (Some(coalescer), Some(key)) => Some(coalescer.join(key)),
            _ => None,
        };
        match coalesce {
            None => self.execute(req, start, key),
            Some(Joined::Follower(result)) => {
                let command = self.local.command.clone();
                ResponseFuture::boxed(Box::pin(async move {
                    let result = result.await;
                    let metrics = &command.core.metrics;
                    metrics.mark(Ev::ResponseFromCache);
                    metrics.record_total_latency(
                        command.core.clock.stamp().saturating_duration_since(start),
                    );
                    result
                }))
            }
            Some(Joined::Leader(lead)) => {
                let execution = self.execute(req, start, key);
                let command = self.local.command.clone();
                let task = tokio::spawn(async move {
                    let result = execution.await;
                    let followers = lead.publish(&result);
                    if followers > 0 {
                        command.core.metrics.mark_n(Ev::Collapsed, followers + 1);
                    }
                    result
                });
                let key = self.local.command.key().clone();
                ResponseFuture::boxed(Box::pin(async move {
                    task.await
                        .unwrap_or_else(|e| Err(CommandError::lost(key, Arc::new(e))))
                }))
            }
        }
    }
}

impl<S: Clone, Req, Res, K> Clone for CommandService<S, Req, Res, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            local: Arc::new(Local {
                command: self.local.command.clone(),
                handling: self.local.handling.clone(),
            }),
            requests: self.requests.clone(),
        }
    }
}

impl<S: fmt::Debug, Req, Res, K> fmt::Debug for CommandService<S, Req, Res, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandService")
            .field("inner", &self.inner)
            .field("command", &self.local.command)
            .finish_non_exhaustive()
    }
}
