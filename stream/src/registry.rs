//! The commands and thread pools one stream publishes.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use hystrix_core::{
    CommandKey, CommandReport, CommandSource, ThreadPoolKey, ThreadPoolReport, ThreadPoolSource,
};

/// Every command and thread pool a stream publishes. Cloning shares it.
///
/// [`MetricsRegistry::global`] is the process's, where commands register unless told
/// otherwise; a test, or a process hosting several apps, makes its own with
/// [`MetricsRegistry::new`]. Registering a second source under a key replaces the first. As in
/// Hystrix, a command stays published once registered: the dashboard keeps showing a command
/// that has gone quiet, with zero counts.
///
/// ```
/// use std::sync::Arc;
/// use hystrix_core::{
///     CircuitStatus, CommandKey, CommandMetrics, CommandReport, CommandSettingsReport,
///     CommandSource, MetricsConfig,
/// };
/// use hystrix_stream::MetricsRegistry;
///
/// struct Plain(CommandMetrics);
/// impl CommandSource for Plain {
///     fn key(&self) -> &CommandKey { self.0.key() }
///     fn report(&self) -> CommandReport {
///         CommandReport {
///             metrics: self.0.snapshot(),
///             circuit: CircuitStatus::Closed,
///             settings: CommandSettingsReport::default(),
///         }
///     }
/// }
///
/// let registry = MetricsRegistry::new();
/// let metrics = CommandMetrics::new("GetUser", "Users", "Users", MetricsConfig::default());
/// registry.register_command(Arc::new(Plain(metrics)));
/// assert_eq!(registry.command_reports()[0].metrics.key.as_str(), "GetUser");
/// ```
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    commands: RwLock<BTreeMap<CommandKey, Arc<dyn CommandSource>>>,
    pools: RwLock<BTreeMap<ThreadPoolKey, Arc<dyn ThreadPoolSource>>>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's registry.
    pub fn global() -> &'static MetricsRegistry {
        static GLOBAL: OnceLock<MetricsRegistry> = OnceLock::new();
        GLOBAL.get_or_init(MetricsRegistry::new)
    }

    /// Publishes a command, replacing any of the same key.
    pub fn register_command(&self, source: Arc<dyn CommandSource>) {
        write(&self.inner.commands).insert(source.key().clone(), source);
    }

    /// Publishes a thread pool, replacing any of the same key.
    pub fn register_pool(&self, source: Arc<dyn ThreadPoolSource>) {
        write(&self.inner.pools).insert(source.key().clone(), source);
    }

    /// Stops publishing the command `key`; whether it was published.
    pub fn remove_command(&self, key: &str) -> bool {
        write(&self.inner.commands).remove(key).is_some()
    }

    /// Stops publishing the pool `key`; whether it was published.
    pub fn remove_pool(&self, key: &str) -> bool {
        write(&self.inner.pools).remove(key).is_some()
    }

    /// Whether nothing is published.
    pub fn is_empty(&self) -> bool {
        read(&self.inner.commands).is_empty() && read(&self.inner.pools).is_empty()
    }

    /// The published commands, by key.
    pub fn commands(&self) -> Vec<Arc<dyn CommandSource>> {
        read(&self.inner.commands).values().cloned().collect()
    }

    /// The published thread pools, by key.
    pub fn pools(&self) -> Vec<Arc<dyn ThreadPoolSource>> {
        read(&self.inner.pools).values().cloned().collect()
    }

    /// Every command now, by key. The sources are read outside the registry's lock.
    pub fn command_reports(&self) -> Vec<CommandReport> {
        self.commands().iter().map(|c| c.report()).collect()
    }

    /// Every thread pool now, by key.
    pub fn pool_reports(&self) -> Vec<ThreadPoolReport> {
        self.pools().iter().map(|p| p.report()).collect()
    }

    /// Whether two handles are the same registry.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsRegistry")
            .field(
                "commands",
                &read(&self.inner.commands).keys().collect::<Vec<_>>(),
            )
            .field("pools", &read(&self.inner.pools).keys().collect::<Vec<_>>())
            .finish()
    }
}
