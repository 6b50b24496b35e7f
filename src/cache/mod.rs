//! The stale-if-error cache: the last good response for each request key, served when the
//! dependency fails.
//!
//! A [`StaleCache`] keeps every successful response of a command under the request's cache key
//! (see [`CommandBuilder::cache_key`](crate::CommandBuilder::cache_key)) in a bounded local
//! tier (moka), each for at most its time to live. When a call fails (an open circuit, a full
//! bulkhead, a timeout, an error), the command serves the last good response for the key,
//! [marked stale](CacheValue::mark_stale), before trying its fallback.
//!
//! A shared tier ([`SharedTier`]; Redis with the `redis` feature) lets an instance that has
//! never seen a key serve what another instance cached. The shared tier is written in the
//! background and read only on failures, within a bounded time: a slow or stopped store never
//! fails a call, and never slows one by more than [`StaleCache::shared_timeout`].

#[cfg(feature = "redis")]
mod redis;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hystrix_core::{Clock, Instant};

#[cfg(feature = "redis")]
pub use self::redis::{RedisTier, RedisTierConfig};

/// A boxed future that can cross threads.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A response a [`StaleCache`] can keep: cloned into the cache on success and out of it on
/// failure.
pub trait CacheValue: Clone + Send + Sync + 'static {
    /// Marks a response served from the cache, so that its caller can tell it is stale. Does
    /// nothing by default.
    fn mark_stale(&mut self, stale: Stale) {
        let _ = stale;
    }
}

/// For HTTP responses, a stale one carries a [`Stale`] extension and a
/// [`STALE_HEADER`] header whose value is its age in whole seconds.
impl<B: Clone + Send + Sync + 'static> CacheValue for http::Response<B> {
    fn mark_stale(&mut self, stale: Stale) {
        self.headers_mut()
            .insert(STALE_HEADER, http::HeaderValue::from(stale.age().as_secs()));
        self.extensions_mut().insert(stale);
    }
}

impl CacheValue for String {}
impl CacheValue for Vec<u8> {}
impl CacheValue for bytes::Bytes {}
impl<T: ?Sized + Send + Sync + 'static> CacheValue for Arc<T> {}

/// The header a stale HTTP response carries: its age in seconds.
pub const STALE_HEADER: http::HeaderName = http::HeaderName::from_static("x-hystrix-stale");

/// Which tier a stale response came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// This instance's memory.
    Local,
    /// The shared store (another instance may have cached it).
    Shared,
}

/// How stale a response served from the cache is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stale {
    age: Duration,
    tier: Tier,
}

impl Stale {
    /// A response of `age`, from `tier`.
    pub fn new(age: Duration, tier: Tier) -> Self {
        Self { age, tier }
    }

    /// How long ago the response was cached.
    pub fn age(&self) -> Duration {
        self.age
    }

    /// The tier it came from.
    pub fn tier(&self) -> Tier {
        self.tier
    }
}

/// A tier of the cache shared between instances.
///
/// Implementations bound their own latency: [`get`](Self::get) gives up (returns `None`) rather
/// than wait on a slow store, and [`put`](Self::put) returns at once, writing in the background
/// (dropping writes when the store cannot keep up).
pub trait SharedTier<T>: Send + Sync + 'static {
    /// The value cached under `key`, with its age; `None` when absent, expired, undecodable or
    /// unreachable.
    fn get(&self, key: &str) -> BoxFuture<Option<(T, Duration)>>;

    /// Caches `value` under `key` in the background.
    fn put(&self, key: &str, value: &T);
}

#[derive(Clone)]
struct Entry<T> {
    value: T,
    stored: Instant,
}

/// The last good response per request key: a local tier (moka) and, optionally, a shared one.
/// Cloning shares it.
///
/// ```
/// use std::time::Duration;
/// use tower_hystrix::cache::StaleCache;
///
/// let cache: StaleCache<String> = StaleCache::new(10_000, Duration::from_secs(600));
/// cache.put("user/7".into(), &"Ada".to_string());
/// let (value, stale) = cache.get_local("user/7").unwrap();
/// assert_eq!(value, "Ada");
/// assert!(stale.age() < Duration::from_secs(1));
/// ```
pub struct StaleCache<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    local: moka::sync::Cache<String, Entry<T>>,
    ttl: Duration,
    shared: Option<Arc<dyn SharedTier<T>>>,
    shared_timeout: Duration,
    clock: Clock,
    served_local: AtomicU64,
    served_shared: AtomicU64,
}

impl<T> Clone for StaleCache<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// How long the command waits on the shared tier by default before serving without it.
pub const DEFAULT_SHARED_TIMEOUT: Duration = Duration::from_millis(50);

impl<T: CacheValue> StaleCache<T> {
    /// A cache of at most `max_entries` responses, each kept for `ttl`, reading the
    /// [default clock](Clock::default).
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        Self::with_clock(max_entries, ttl, Clock::default())
    }

    /// The same, reading `clock` for ages and expiry.
    pub fn with_clock(max_entries: u64, ttl: Duration, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                // moka expires on its own clock; entries are also checked against `clock`, so
                // that ages and expiry follow paused time in tests.
                local: moka::sync::Cache::builder()
                    .max_capacity(max_entries)
                    .time_to_live(ttl)
                    .build(),
                ttl,
                shared: None,
                shared_timeout: DEFAULT_SHARED_TIMEOUT,
                clock,
                served_local: AtomicU64::new(0),
                served_shared: AtomicU64::new(0),
            }),
        }
    }

    /// Adds a shared tier, waited on for at most `timeout` per lookup. Clones made before
    /// keep the same local tier but not the shared one.
    pub fn with_shared(self, tier: impl SharedTier<T>, timeout: Duration) -> Self {
        let inner = &*self.inner;
        Self {
            inner: Arc::new(Inner {
                local: inner.local.clone(),
                ttl: inner.ttl,
                shared: Some(Arc::new(tier)),
                shared_timeout: timeout,
                clock: inner.clock.clone(),
                served_local: AtomicU64::new(inner.served_local.load(Ordering::Relaxed)),
                served_shared: AtomicU64::new(inner.served_shared.load(Ordering::Relaxed)),
            }),
        }
    }

    /// How long a lookup waits on the shared tier at most.
    pub fn shared_timeout(&self) -> Duration {
        self.inner.shared_timeout
    }

    /// Keeps `value` as the last good response for `key`, locally and in the shared tier.
    pub fn put(&self, key: String, value: &T) {
        if let Some(shared) = &self.inner.shared {
            shared.put(&key, value);
        }
        let entry = Entry {
            value: value.clone(),
            stored: self.inner.clock.now(),
        };
        self.inner.local.insert(key, entry);
    }

    /// The last good response for `key` in the local tier, marked stale, if it is younger
    /// than the time to live.
    pub fn get_local(&self, key: &str) -> Option<(T, Stale)> {
        let entry = self.inner.local.get(key)?;
        let age = self
            .inner
            .clock
            .now()
            .saturating_duration_since(entry.stored);
        if age >= self.inner.ttl {
            self.inner.local.invalidate(key);
            return None;
        }
        let stale = Stale::new(age, Tier::Local);
        let mut value = entry.value;
        value.mark_stale(stale);
        self.inner.served_local.fetch_add(1, Ordering::Relaxed);
        Some((value, stale))
    }

    /// The last good response for `key`: the local tier's, else the shared tier's (waiting
    /// at most [`shared_timeout`](Self::shared_timeout)), marked stale.
    pub fn get(&self, key: &str) -> BoxFuture<Option<(T, Stale)>> {
        if let Some(hit) = self.get_local(key) {
            return Box::pin(std::future::ready(Some(hit)));
        }
        let Some(shared) = self.inner.shared.clone() else {
            return Box::pin(std::future::ready(None));
        };
        let inner = self.inner.clone();
        let lookup = shared.get(key);
        let key = key.to_owned();
        Box::pin(async move {
            let (mut value, age) = tokio::time::timeout(inner.shared_timeout, lookup)
                .await
                .ok()
                .flatten()?;
            if age >= inner.ttl {
                return None;
            }
            // Kept locally too, with its age, so that the next failures need not ask again.
            if let Some(stored) = inner.clock.now().checked_sub(age) {
                inner.local.insert(
                    key,
                    Entry {
                        value: value.clone(),
                        stored,
                    },
                );
            }
            let stale = Stale::new(age, Tier::Shared);
            value.mark_stale(stale);
            inner.served_shared.fetch_add(1, Ordering::Relaxed);
            Some((value, stale))
        })
    }

    /// Responses served so far from the local and from the shared tier.
    pub fn served(&self) -> (u64, u64) {
        (
            self.inner.served_local.load(Ordering::Relaxed),
            self.inner.served_shared.load(Ordering::Relaxed),
        )
    }

    /// Entries in the local tier (approximate, as moka counts them).
    pub fn local_len(&self) -> u64 {
        self.inner.local.run_pending_tasks();
        self.inner.local.entry_count()
    }
}

impl<T> fmt::Debug for StaleCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleCache")
            .field("ttl", &self.inner.ttl)
            .field("shared", &self.inner.shared.is_some())
            .finish_non_exhaustive()
    }
}
