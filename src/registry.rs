//! The registry: every command and thread pool of a process, and the configuration in force.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicBool, AtomicU64},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use hystrix_breaker::Circuit;
use hystrix_bulkhead::{Semaphore, ThreadPool};
use hystrix_core::{Clock, CommandKey, CommandMetrics, GroupKey, ThreadPoolKey};
use hystrix_stream::MetricsRegistry;

use crate::{
    Command, CommandProperties, ConfigError, IsolationStrategy, ThreadPoolProperties,
    command::CommandCore, config::ConfigFile,
};

/// Every command and thread pool of a process (or of a test), and the configuration they
/// resolve their settings from. Cloning shares it.
///
/// Commands join [`Registry::global`] unless built with
/// [`CommandBuilder::registry`](crate::CommandBuilder::registry). Commands of one key share
/// one circuit, bulkhead and metrics; commands whose thread pool key is the same share the
/// pool.
///
/// ```
/// use tower_hystrix::{Command, Registry};
///
/// # fn main() -> Result<(), tower_hystrix::ConfigError> {
/// let registry = Registry::new();
/// registry.load_str("[command.GetUser]\ncircuit_breaker_force_open = true\n")?;
/// let layer = Command::builder::<u64, String>("GetUser").registry(&registry).build()?;
/// assert!(layer.command().circuit().is_open());
///
/// // A bad value is refused, naming it, and the configuration in force stays.
/// let err = registry.load_str("[command.GetUser]\ncircuit_breaker_error_threshold_percentage = 150\n").unwrap_err();
/// assert_eq!(err.key(), Some("command.GetUser.circuit_breaker_error_threshold_percentage"));
/// assert!(layer.command().circuit().is_open());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the commands and pools are published for the stream and Prometheus.
    metrics: MetricsRegistry,
    file: ArcSwap<ConfigFile>,
    /// The file given to `load_file`, and the text of it in force.
    source: Mutex<Option<(PathBuf, String)>>,
    /// Commands and pools, locked in this order.
    commands: Mutex<BTreeMap<CommandKey, Command>>,
    pools: Mutex<BTreeMap<ThreadPoolKey, PoolEntry>>,
}

struct PoolEntry {
    pool: ThreadPool,
    code: ThreadPoolProperties,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry with no configuration file: every setting is the builder's or the
    /// built-in default. Its commands and pools are published in a [`MetricsRegistry`] of its
    /// own.
    pub fn new() -> Self {
        Self::with_metrics(MetricsRegistry::new())
    }

    /// An empty registry publishing its commands and pools in `metrics`.
    pub fn with_metrics(metrics: MetricsRegistry) -> Self {
        Self {
            inner: Arc::new(Inner {
                metrics,
                file: ArcSwap::from_pointee(ConfigFile::default()),
                source: Mutex::new(None),
                commands: Mutex::default(),
                pools: Mutex::default(),
            }),
        }
    }

    /// The process's registry, publishing in [`MetricsRegistry::global`], which
    /// [`HystrixStream`](crate::stream::HystrixStream) and
    /// [`PrometheusExporter`](crate::stream::PrometheusExporter) serve by default.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| Registry::with_metrics(MetricsRegistry::global().clone()))
    }

    /// Where this registry's commands and pools are published: give it to
    /// [`HystrixStream`](crate::stream::HystrixStream) or
    /// [`PrometheusExporter`](crate::stream::PrometheusExporter).
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.inner.metrics
    }

    /// Reads the configuration file at `path`, puts it in force, and remembers it for
    /// [`reload`](Self::reload) and [`watch`](Self::watch).
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::io(path.clone(), &e))?;
        self.load_text(&text, Some(path.clone()))?;
        *lock(&self.inner.source) = Some((path, text));
        Ok(())
    }

    /// Puts the configuration `text` (TOML) in force.
    pub fn load_str(&self, text: &str) -> Result<(), ConfigError> {
        self.load_text(text, None)
    }

    /// Reads the file given to [`load_file`](Self::load_file) again and puts it in force; an
    /// invalid file is refused and the configuration in force stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let Some(path) = self.source() else {
            return Err(ConfigError::invalid(
                "file",
                "none was loaded: call load_file first",
            ));
        };
        self.load_file(path)
    }

    /// The file given to [`load_file`](Self::load_file), if any.
    pub fn source(&self) -> Option<PathBuf> {
        lock(&self.inner.source)
            .as_ref()
            .map(|(path, _)| path.clone())
    }

    /// Whether `text` is that of the file in force.
    fn in_force(&self, text: &str) -> bool {
        lock(&self.inner.source)
            .as_ref()
            .is_some_and(|(_, applied)| applied == text)
    }

    fn load_text(&self, text: &str, path: Option<PathBuf>) -> Result<(), ConfigError> {
        let file = ConfigFile::parse(text).map_err(|e| e.in_file(path.clone()))?;
        self.apply(file).map_err(|e| e.in_file(path))
    }

    /// Checks `file` against every command and pool, then puts it in force.
    fn apply(&self, file: ConfigFile) -> Result<(), ConfigError> {
        let commands = lock(&self.inner.commands);
        let pools = lock(&self.inner.pools);
        let mut resolved = Vec::with_capacity(commands.len());
        for (key, command) in commands.iter() {
            let props = file.command(key.as_str(), &command.core.code);
            resolved.push((command, props.resolve(&format!("command.{key}"))?));
        }
        // Tables of commands and pools not built yet are checked too, so that a bad value is
        // refused when the file is loaded, not when the command is first built.
        let none = CommandProperties::default();
        for key in file.command.keys() {
            if !commands.contains_key(key.as_str()) {
                file.command(key, &none)
                    .resolve(&format!("command.{key}"))?;
            }
        }
        let no_pool = ThreadPoolProperties::default();
        for key in file.threadpool.keys() {
            if !pools.contains_key(key.as_str()) {
                file.pool(key, &no_pool)
                    .resolve(&format!("threadpool.{key}"))?;
            }
        }
        let mut pool_configs = Vec::with_capacity(pools.len());
        for (key, entry) in pools.iter() {
            let props = file.pool(key.as_str(), &entry.code);
            pool_configs.push((
                key,
                &entry.pool,
                props.resolve(&format!("threadpool.{key}"))?,
            ));
        }
        for (command, settings) in resolved {
            command.core.apply(settings);
        }
        for (key, pool, mut config) in pool_configs {
            let old = pool.config();
            if config.max_queue_size != old.max_queue_size || config.window != old.window {
                tracing::warn!(
                    pool = %key,
                    "max_queue_size and the metrics window are fixed once a pool is built; restart to change them"
                );
                config.max_queue_size = old.max_queue_size;
                config.window = old.window;
            }
            if let Err(e) = pool.update(config) {
                tracing::warn!(pool = %key, error = %e, "thread pool settings refused");
            }
        }
        self.inner.file.store(Arc::new(file));
        Ok(())
    }

    /// The command `key`, if one was built.
    pub fn get(&self, key: &str) -> Option<Command> {
        lock(&self.inner.commands).get(key).cloned()
    }

    /// Every command, by key.
    pub fn commands(&self) -> Vec<Command> {
        lock(&self.inner.commands).values().cloned().collect()
    }

    /// Every thread pool, by key.
    pub fn thread_pools(&self) -> Vec<ThreadPool> {
        lock(&self.inner.pools)
            .values()
            .map(|e| e.pool.clone())
            .collect()
    }

    /// The command `key`, built with these settings unless it exists.
    pub(crate) fn command(
        &self,
        key: CommandKey,
        group: GroupKey,
        pool_key: Option<ThreadPoolKey>,
        code: CommandProperties,
        pool_code: ThreadPoolProperties,
        clock: Clock,
    ) -> Result<Command, ConfigError> {
        let mut commands = lock(&self.inner.commands);
        if let Some(command) = commands.get(&key) {
            return Ok(command.clone());
        }
        let file = self.inner.file.load();
        let settings = file
            .command(key.as_str(), &code)
            .resolve(&format!("command.{key}"))?;
        let pool_key = match &settings.thread_pool_key_override {
            Some(name) => ThreadPoolKey::from(name.as_str()),
            None => pool_key.unwrap_or_else(|| ThreadPoolKey::from(&group)),
        };
        let pool = match settings.isolation {
            IsolationStrategy::Thread => {
                Some(self.pool(&pool_key, pool_code, &file, clock.clone())?)
            }
            IsolationStrategy::Semaphore => None,
        };
        let metrics = CommandMetrics::with_clock(
            key.clone(),
            group,
            pool_key,
            settings.metrics,
            clock.clone(),
        );
        // The circuit reads its health from the metrics: the command counts each event once.
        let circuit = Circuit::for_command(key.as_str(), settings.breaker.clone(), &metrics)
            .map_err(|e| {
                ConfigError::invalid(format!("command.{key}.circuit_breaker"), e.to_string())
            })?;
        let semaphore = Semaphore::new(settings.max_concurrent_requests);
        if pool.is_none() {
            // With semaphore isolation the semaphore counts exactly the running executions.
            let permits = semaphore.clone();
            metrics.count_running_with(move || u64::from(permits.in_flight()));
        }
        let core = CommandCore {
            circuit,
            metrics,
            semaphore,
            fallback_semaphore: Semaphore::new(settings.fallback_max_concurrent_requests),
            pool,
            timeout_ms: AtomicU64::new(0),
            fallback_enabled: AtomicBool::new(true),
            cache_enabled: AtomicBool::new(true),
            settings: ArcSwap::from_pointee(settings.clone()),
            code,
            clock,
        };
        core.apply(settings);
        let command = Command {
            core: Arc::new(core),
        };
        commands.insert(key, command.clone());
        self.inner
            .metrics
            .register_command(Arc::new(command.clone()));
        Ok(command)
    }

    fn pool(
        &self,
        key: &ThreadPoolKey,
        code: ThreadPoolProperties,
        file: &ConfigFile,
        clock: Clock,
    ) -> Result<ThreadPool, ConfigError> {
        let mut pools = lock(&self.inner.pools);
        if let Some(entry) = pools.get(key) {
            return Ok(entry.pool.clone());
        }
        let config = file
            .pool(key.as_str(), &code)
            .resolve(&format!("threadpool.{key}"))?;
        let pool = ThreadPool::with_clock(key.clone(), config, clock).map_err(|e| {
            ConfigError::invalid(format!("threadpool.{key}.{}", e.key()), e.reason())
        })?;
        pools.insert(
            key.clone(),
            PoolEntry {
                pool: pool.clone(),
                code,
            },
        );
        self.inner.metrics.register_pool(Arc::new(pool.clone()));
        Ok(pool)
    }

    /// Watches the file given to [`load_file`](Self::load_file): every `interval` it is read
    /// again and, when its contents changed, put in force. An invalid version is logged
    /// (`tracing`, at `warn`) and skipped; the configuration in force stays until a valid one
    /// appears. Polling, rather than file-system events, also sees files replaced by rename
    /// (editors) and by symlink swaps (Kubernetes config maps). Write a new version to a
    /// sibling file and rename it over the old one: a file read while half-written may be
    /// valid and applied until the next interval. The watch stops when the returned handle
    /// is dropped. Needs a tokio runtime.
    pub fn watch(&self, interval: Duration) -> WatchHandle {
        let registry = self.clone();
        let interval = interval.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            // The last version refused, so that it is not refused (and logged) again.
            let mut refused: Option<String> = None;
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(path) = registry.source() else {
                    continue;
                };
                let read = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || std::fs::read_to_string(path)
                });
                let text = match read.await {
                    Ok(Ok(text)) => text,
                    Ok(Err(e)) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot read the Hystrix configuration");
                        continue;
                    }
                    Err(_) => continue,
                };
                if registry.in_force(&text) || refused.as_deref() == Some(text.as_str()) {
                    continue;
                }
                match registry.load_text(&text, Some(path.clone())) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "Hystrix configuration reloaded");
                        *lock(&registry.inner.source) = Some((path, text));
                        refused = None;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Hystrix configuration refused; the previous one stays in force");
                        refused = Some(text);
                    }
                }
            }
        });
        WatchHandle { task }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("commands", &lock(&self.inner.commands).len())
            .field("pools", &lock(&self.inner.pools).len())
            .field("source", &self.source())
            .finish()
    }
}

/// Stops watching the configuration file when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
