//! Building a command.

use std::{fmt, sync::Arc, time::Duration};

use hystrix_breaker::{BoxError, BreakerConfig, Classify};
use hystrix_bulkhead::ThreadPoolConfig;
use hystrix_core::{Clock, CommandKey, GroupKey, ThreadPoolKey};

use super::{CommandLayer, Handling, Requests, coalesce::Coalescer};
use crate::{
    CommandProperties, ConfigError, Fallback, IsolationStrategy, Registry, ThreadPoolProperties,
    cache::{CacheValue, StaleCache},
};

/// Builds a [`Command`](crate::Command) and the [`CommandLayer`] that applies it; see
/// [`Command::builder`](crate::Command::builder).
///
/// Settings made here are Hystrix's "instance defaults set in code": a configuration file's
/// `[command.<key>]` table overrides them, and they override its `[command.default]` table
/// (see [`config`](crate::config)).
///
/// `Req` and `Res` are the request and response types of the services the command wraps; `K`
/// is what the fallback is given of each request ([`request_view`](Self::request_view)).
pub struct CommandBuilder<Req, Res, K = ()> {
    key: CommandKey,
    group: Option<GroupKey>,
    pool_key: Option<ThreadPoolKey>,
    props: CommandProperties,
    pool_props: ThreadPoolProperties,
    registry: Option<Registry>,
    clock: Option<Clock>,
    /// `None` for [`DefaultClassifier`](hystrix_breaker::DefaultClassifier), which is then
    /// applied without a dynamic call.
    classifier: Option<Box<dyn Classify<Res, BoxError> + Send + Sync>>,
    view: Box<dyn Fn(&Req) -> K + Send + Sync>,
    fallback: Option<Box<dyn Fallback<K, Res>>>,
    cache_key: Option<Box<dyn Fn(&Req) -> Option<String> + Send + Sync>>,
    cache: Option<Box<dyn super::ErasedCache<Res>>>,
    coalesce: Option<Box<dyn super::coalesce::Coalesce<Res>>>,
}

impl<Req, Res> CommandBuilder<Req, Res> {
    pub(crate) fn new(key: CommandKey) -> Self {
        Self {
            key,
            group: None,
            pool_key: None,
            props: CommandProperties::default(),
            pool_props: ThreadPoolProperties::default(),
            registry: None,
            clock: None,
            classifier: None,
            view: Box::new(|_: &Req| ()),
            fallback: None,
            cache_key: None,
            cache: None,
            coalesce: None,
        }
    }
}

impl<Req, Res, K> CommandBuilder<Req, Res, K> {
    /// The command's group (Hystrix's `HystrixCommandGroupKey`); defaults to the command key.
    pub fn group(mut self, group: impl Into<GroupKey>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The thread pool to run on with [thread isolation](Self::thread_pool); defaults to the
    /// group, so that the commands of one group share a pool, as in Hystrix.
    pub fn thread_pool_key(mut self, key: impl Into<ThreadPoolKey>) -> Self {
        self.pool_key = Some(key.into());
        self
    }

    /// The execution timeout (default 1000 ms), for both isolation strategies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.props.execution_timeout_enabled = Some(true);
        self.props
            .execution_isolation_thread_timeout_in_milliseconds =
            Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// No execution timeout.
    pub fn no_timeout(mut self) -> Self {
        self.props.execution_timeout_enabled = Some(false);
        self
    }

    /// Semaphore isolation (the default) admitting `max_concurrent` calls at once (default 10).
    pub fn semaphore(mut self, max_concurrent: u32) -> Self {
        self.props.execution_isolation_strategy = Some(IsolationStrategy::Semaphore);
        self.props
            .execution_isolation_semaphore_max_concurrent_requests = Some(max_concurrent);
        self
    }

    /// Thread isolation: calls run on the threads of the command's pool, sized by `config`
    /// (Hystrix's defaults: 10 threads, no queue). The fields that differ from the defaults
    /// are the pool's settings in code (the others stay open to `[threadpool.default]`); the
    /// first command to create a pool sets them.
    pub fn thread_pool(mut self, config: ThreadPoolConfig) -> Self {
        self.props.execution_isolation_strategy = Some(IsolationStrategy::Thread);
        self.pool_props = ThreadPoolProperties::from_config(&config);
        self
    }

    /// The circuit breaker's settings (default Hystrix's: 20 requests, 50 % errors, 5 s). The
    /// fields that differ from the defaults are set in code; the others stay open to the
    /// file's `[command.default]`.
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.props.set_breaker(&config);
        self
    }

    /// The fallback semaphore's size (default 10).
    pub fn fallback_max_concurrent(mut self, max_concurrent: u32) -> Self {
        self.props
            .fallback_isolation_semaphore_max_concurrent_requests = Some(max_concurrent);
        self
    }

    /// Any properties, by their Hystrix names; those set here win over those set before.
    pub fn properties(mut self, props: CommandProperties) -> Self {
        self.props = props.or(&self.props);
        self
    }

    /// Decides which results are successes, failures and bad requests (default: every `Ok`
    /// succeeds, every `Err` fails; [`HttpClassifier`](crate::HttpClassifier) for HTTP).
    /// The classifier sees errors boxed.
    pub fn classifier(
        mut self,
        classifier: impl Classify<Res, BoxError> + Send + Sync + 'static,
    ) -> Self {
        self.classifier = Some(Box::new(classifier));
        self
    }

    /// What the fallback is given of each request, taken before the request is sent (say its
    /// URI, or the whole request with `Clone::clone`). Replaces any fallback set before.
    pub fn request_view<K2>(
        self,
        view: impl Fn(&Req) -> K2 + Send + Sync + 'static,
    ) -> CommandBuilder<Req, Res, K2> {
        CommandBuilder {
            key: self.key,
            group: self.group,
            pool_key: self.pool_key,
            props: self.props,
            pool_props: self.pool_props,
            registry: self.registry,
            clock: self.clock,
            classifier: self.classifier,
            view: Box::new(view),
            fallback: None,
            cache_key: self.cache_key,
            cache: self.cache,
            coalesce: self.coalesce,
        }
    }

    /// The fallback: an async function of the [request view](Self::request_view) and the
    /// [`Failure`](crate::Failure).
    pub fn fallback(mut self, fallback: impl Fallback<K, Res>) -> Self {
        self.fallback = Some(Box::new(fallback));
        self
    }

    /// The request's cache key (Hystrix's `getCacheKey`): the key of the stale cache and of
    /// coalescing. `None` for a request that is not to be cached.
    pub fn cache_key(
        mut self,
        key: impl Fn(&Req) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.cache_key = Some(Box::new(key));
        self
    }

    /// Keeps the last good response per [cache key](Self::cache_key) in `cache`, and serves
    /// it, marked stale, when a call fails.
    pub fn stale_cache(mut self, cache: StaleCache<Res>) -> Self
    where
        Res: CacheValue,
    {
        self.cache = Some(Box::new(cache));
        self
    }

    /// Coalesces concurrent requests with the same [cache key](Self::cache_key): the first
    /// executes, the others wait for its result and record RESPONSE_FROM_CACHE; the one that
    /// executed records COLLAPSED with the number of requests it answered. Off by default.
    /// The execution runs on its own task, so that it completes for the others even if its
    /// first caller goes away.
    pub fn coalesce(mut self) -> Self
    where
        Res: Clone + Send + Sync + 'static,
    {
        self.coalesce = Some(Box::new(Coalescer::<Res>::new(self.key.clone())));
        self
    }

    /// The registry the command joins (default [`Registry::global`]): where its thread pool and
    /// configuration come from.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The clock for latencies and rolling windows (default [`Clock::default`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Builds the command, or joins the one of the same key in the registry, and returns its
    /// layer. Fails when the settings are invalid, naming the property.
    pub fn build(self) -> Result<CommandLayer<Req, Res, K>, ConfigError> {
        let registry = self.registry.unwrap_or_else(|| Registry::global().clone());
        let group = self
            .group
            .unwrap_or_else(|| GroupKey::from(self.key.as_str()));
        let command = registry.command(
            self.key,
            group,
            self.pool_key,
            self.props,
            self.pool_props,
            self.clock.unwrap_or_default(),
        )?;
        Ok(CommandLayer::new(
            command,
            Arc::new(Requests {
                view: self.view,
                cache_key: self.cache_key,
            }),
            Arc::new(Handling {
                classifier: self.classifier,
                fallback: self.fallback,
                cache: self.cache,
                coalescer: self.coalesce,
            }),
        ))
    }
}

impl<Req, Res, K> fmt::Debug for CommandBuilder<Req, Res, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandBuilder")
            .field("key", &self.key)
            .field("group", &self.group)
            .field("properties", &self.props)
            .field("fallback", &self.fallback.is_some())
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}
