//! The shared tier of the stale-if-error cache in Redis.
//!
//! Every instance of a service writes its last good responses to Redis in the background, and
//! reads them back only when a call fails and its own memory has nothing: an instance that has
//! never seen a key can serve what another one cached.
//!
//! The tier never makes a call slower or less available than it would be without it:
//! connecting happens in the background (with a backoff between attempts), a lookup waits at
//! most [`RedisTierConfig::timeout`], and while Redis is unreachable a lookup answers "nothing"
//! at once and writes are dropped.

use std::{
    fmt,
    hash::{BuildHasher, Hasher},
    marker::PhantomData,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use redis::{AsyncConnectionConfig, Client, RedisError, aio::MultiplexedConnection};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::{runtime::Handle, sync::Notify};

use super::{BoxFuture, SharedTier};

/// The settings of a [`RedisTier`]. Every field has a default; set those you need with
/// `..RedisTierConfig::default()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTierConfig {
    /// Prepended to every cache key to form the Redis key (default `"hystrix:stale:"`), so that
    /// the tier's keys do not collide with other data in the same database. Give each
    /// response type its own prefix: a value of another type under the same key is read as a
    /// miss.
    pub key_prefix: String,
    /// How long Redis keeps a response (`SET ... PX`; default 10 minutes). The
    /// [`StaleCache`](super::StaleCache)'s own time to live also applies to what is read back.
    pub ttl: Duration,
    /// The longest a lookup or a write waits for Redis (default 50 ms). A lookup that takes
    /// longer is a miss; a write that takes longer counts as an error.
    pub timeout: Duration,
    /// The most writes in flight at once (default 64). Writes beyond it are dropped and
    /// counted ([`RedisTier::dropped_writes`]): a slow Redis never grows memory or tasks.
    pub max_in_flight_writes: usize,
    /// The longest a connection attempt (TCP connect and handshake) may take (default 1 s).
    pub connect_timeout: Duration,
    /// The delay before the first reconnection attempt after a failure (default 100 ms); it
    /// doubles with every failed attempt, up to [`reconnect_max_delay`](Self::reconnect_max_delay).
    /// Each delay is randomised between half and all of its value, so that a fleet does not
    /// reconnect in lockstep.
    pub reconnect_min_delay: Duration,
    /// The longest delay between reconnection attempts (default 5 s).
    pub reconnect_max_delay: Duration,
    /// How often an idle connection is checked with a `PING` (default 1 s). A connection whose
    /// check fails or takes longer than [`connect_timeout`](Self::connect_timeout) is dropped
    /// and replaced, so that a hung or vanished Redis is noticed without a failed lookup.
    pub health_check_interval: Duration,
}

impl Default for RedisTierConfig {
    fn default() -> Self {
        Self {
            key_prefix: "hystrix:stale:".to_owned(),
            ttl: Duration::from_secs(600),
            timeout: Duration::from_millis(50),
            max_in_flight_writes: 64,
            connect_timeout: Duration::from_secs(1),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(1),
        }
    }
}

/// A [`SharedTier`] in Redis: responses stored as JSON, with the time they were stored.
/// Cloning shares the connection and the counters.
///
/// Construction never waits for Redis and never fails because Redis is down: the connection is
/// made in the background, on the Tokio runtime the tier is created in (or, if created outside
/// one, first used in), and remade with a backoff whenever it is lost. Until it is up, lookups
/// miss at once and writes are dropped; sharing is best-effort. The background task ends when
/// the last handle is dropped. Its timeouts are tokio's timers: with tokio's paused time
/// (tests), every lookup that waits on the socket times out.
///
/// Values are written as `{"stored_ms": <unix ms>, "value": <the value as JSON>}`; a value's age
/// is the time since `stored_ms` by the wall clock, so instances sharing a tier need
/// roughly synchronised clocks (a value stored "in the future" has age zero). A value that
/// cannot be decoded (garbage, another type, another format) is a miss.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_hystrix::cache::{RedisTier, RedisTierConfig, StaleCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis::RedisError> {
/// let tier = RedisTier::new("redis://127.0.0.1:6379/0", RedisTierConfig {
///     key_prefix: "users:stale:".into(),
///     ..RedisTierConfig::default()
/// })?;
/// let cache: StaleCache<String> = StaleCache::new(10_000, Duration::from_secs(600))
///     .with_shared(tier.clone(), Duration::from_millis(50));
/// // ... `Command::builder(..).cache_key(..).stale_cache(cache)`; later, for the metrics:
/// println!("{} writes, {} dropped, {} errors", tier.writes(), tier.dropped_writes(), tier.errors());
/// # Ok(()) }
/// ```
pub struct RedisTier<T> {
    state: Arc<State>,
    _values: PhantomData<fn(T) -> T>,
}

impl<T> Clone for RedisTier<T> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            _values: PhantomData,
        }
    }
}

/// What the tier's handles and its background tasks share.
struct State {
    client: Client,
    connection_config: AsyncConnectionConfig,
    config: RedisTierConfig,
    /// `PX` in milliseconds, at least 1.
    ttl_ms: u64,
    /// The connection, while it is up.
    conn: ArcSwapOption<MultiplexedConnection>,
    /// Wakes the supervisor: the connection was found broken, or the tier was dropped.
    wake: Arc<Notify>,
    supervisor_started: AtomicBool,
    in_flight: AtomicUsize,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    dropped_writes: AtomicU64,
    errors: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    connects: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What is written under a key.
#[derive(Serialize)]
struct Stored<'a, T> {
    stored_ms: u64,
    value: &'a T,
}

/// What is read back from a key.
#[derive(Deserialize)]
struct Loaded<T> {
    stored_ms: u64,
    value: T,
}

/// Milliseconds since the Unix epoch by the wall clock; 0 if the clock is before 1970.
#[allow(clippy::disallowed_methods)] // ages in a store shared between hosts need the wall clock
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl<T> RedisTier<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A tier in the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `redis+unix:///path`), set up with `config`.
    ///
    /// Returns at once: the connection is made in the background.
    ///
    /// # Errors
    ///
    /// When `url` is not a valid Redis URL. Never because Redis is unreachable.
    pub fn new(url: &str, config: RedisTierConfig) -> Result<Self, RedisError> {
        let client = Client::open(url)?;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            // Every operation is bounded by the tier's own timeouts.
            .set_response_timeout(None);
        let ttl_ms = u64::try_from(config.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let tier = Self {
            state: Arc::new(State {
                client,
                connection_config,
                config,
                ttl_ms,
                conn: ArcSwapOption::empty(),
                wake: Arc::new(Notify::new()),
                supervisor_started: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                counters: Counters::default(),
            }),
            _values: PhantomData,
        };
        tier.state.start_supervisor();
        Ok(tier)
    }
}

impl<T> RedisTier<T> {
    /// Whether the tier holds a working connection now.
    pub fn is_connected(&self) -> bool {
        self.state.conn.load().is_some()
    }

    /// Writes Redis acknowledged.
    pub fn writes(&self) -> u64 {
        self.state.counters.writes.load(Ordering::Relaxed)
    }

    /// Writes not attempted: Redis was not connected, or
    /// [`max_in_flight_writes`](RedisTierConfig::max_in_flight_writes) were already in flight,
    /// or there was no Tokio runtime to write from.
    pub fn dropped_writes(&self) -> u64 {
        self.state.counters.dropped_writes.load(Ordering::Relaxed)
    }

    /// Operations that failed: lookups and writes that Redis refused or did not answer in
    /// time, values that could not be encoded or decoded, failed connection attempts and
    /// health checks.
    pub fn errors(&self) -> u64 {
        self.state.counters.errors.load(Ordering::Relaxed)
    }

    /// Lookups that found a value.
    pub fn hits(&self) -> u64 {
        self.state.counters.hits.load(Ordering::Relaxed)
    }

    /// Lookups that found nothing: the key was absent, or Redis was not connected.
    pub fn misses(&self) -> u64 {
        self.state.counters.misses.load(Ordering::Relaxed)
    }

    /// Connections made so far (the first, and every reconnection).
    pub fn connects(&self) -> u64 {
        self.state.counters.connects.load(Ordering::Relaxed)
    }

    /// The connection, starting the background connection first if it has not started yet.
    fn connection(&self) -> Option<Arc<MultiplexedConnection>> {
        self.state.start_supervisor();
        self.state.conn.load_full()
    }

    fn redis_key(&self, key: &str) -> String {
        let prefix = &self.state.config.key_prefix;
        let mut full = String::with_capacity(prefix.len() + key.len());
        full.push_str(prefix);
        full.push_str(key);
        full
    }
}

impl<T> SharedTier<T> for RedisTier<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn get(&self, key: &str) -> BoxFuture<Option<(T, Duration)>> {
        let Some(conn) = self.connection() else {
            bump(&self.state.counters.misses);
            return Box::pin(std::future::ready(None));
        };
        let state = self.state.clone();
        let key = self.redis_key(key);
        Box::pin(async move {
            let mut handle = MultiplexedConnection::clone(&conn);
            let mut get = redis::cmd("GET");
            get.arg(&key);
            let query = get.query_async::<Option<Vec<u8>>>(&mut handle);
            let bytes = match tokio::time::timeout(state.config.timeout, query).await {
                Ok(Ok(Some(bytes))) => bytes,
                Ok(Ok(None)) => {
                    bump(&state.counters.misses);
                    return None;
                }
                Ok(Err(e)) => {
                    state.failed(&conn, &e, "lookup");
                    return None;
                }
                Err(_elapsed) => {
                    bump(&state.counters.errors);
                    tracing::debug!(key, "redis stale-cache lookup timed out");
                    return None;
                }
            };
            match serde_json::from_slice::<Loaded<T>>(&bytes) {
                Ok(loaded) => {
                    bump(&state.counters.hits);
                    let age = unix_millis().saturating_sub(loaded.stored_ms);
                    Some((loaded.value, Duration::from_millis(age)))
                }
                Err(e) => {
                    bump(&state.counters.errors);
                    tracing::debug!(key, error = %e, "undecodable value in the redis stale cache");
                    None
                }
            }
        })
    }

    fn put(&self, key: &str, value: &T) {
        let counters = &self.state.counters;
        let Some(conn) = self.connection() else {
            bump(&counters.dropped_writes);
            return;
        };
        let Ok(runtime) = Handle::try_current() else {
            bump(&counters.dropped_writes);
            return;
        };
        let Some(slot) = InFlight::acquire(&self.state) else {
            bump(&counters.dropped_writes);
            return;
        };
        let payload = match serde_json::to_vec(&Stored {
            stored_ms: unix_millis(),
            value,
        }) {
            Ok(payload) => payload,
            Err(e) => {
                bump(&counters.errors);
                tracing::debug!(key, error = %e, "value not encodable for the redis stale cache");
                return;
            }
        };
        let key = self.redis_key(key);
        runtime.spawn(async move {
            let state = &slot.state;
            let mut handle = MultiplexedConnection::clone(&conn);
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(payload).arg("PX").arg(state.ttl_ms);
            let query = set.query_async::<()>(&mut handle);
            match tokio::time::timeout(state.config.timeout, query).await {
                Ok(Ok(())) => bump(&state.counters.writes),
                Ok(Err(e)) => state.failed(&conn, &e, "write"),
                Err(_elapsed) => {
                    bump(&state.counters.errors);
                    tracing::debug!(key, "redis stale-cache write timed out");
                }
            }
        });
    }
}

/// A write in flight, counted against the bound until dropped.
struct InFlight {
    state: Arc<State>,
}

impl InFlight {
    fn acquire(state: &Arc<State>) -> Option<Self> {
        let max = state.config.max_in_flight_writes;
        state
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Self {
            state: state.clone(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl State {
    /// Starts the task that keeps the connection up, once, if there is a runtime to run it on.
    fn start_supervisor(self: &Arc<Self>) {
        if self.supervisor_started.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        if self.supervisor_started.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(supervise(Arc::downgrade(self), self.wake.clone()));
    }

    /// An operation on `conn` failed with `e`: counts it, and if the connection is broken,
    /// drops it (unless it was already replaced) and wakes the supervisor to reconnect.
    fn failed(&self, conn: &Arc<MultiplexedConnection>, e: &RedisError, what: &str) {
        bump(&self.counters.errors);
        tracing::debug!(error = %e, "redis stale-cache {what} failed");
        if e.is_unrecoverable_error() || e.is_connection_dropped() {
            self.lost(conn);
        }
    }

    fn lost(&self, conn: &Arc<MultiplexedConnection>) {
        if self.detach(conn) {
            tracing::warn!(
                redis = %self.client.get_connection_info().addr(),
                "connection to the redis stale cache lost; reconnecting in the background"
            );
            self.wake.notify_one();
        }
    }

    /// Drops `conn` if it is still the tier's connection; whether it was.
    fn detach(&self, conn: &Arc<MultiplexedConnection>) -> bool {
        let previous = self.conn.compare_and_swap(Arc::as_ptr(conn), None);
        previous
            .as_ref()
            .is_some_and(|previous| Arc::ptr_eq(previous, conn))
    }

    /// The delay after `delay`: doubled, at most the maximum.
    fn next_delay(&self, delay: Duration) -> Duration {
        delay
            .saturating_mul(2)
            .min(self.config.reconnect_max_delay)
            .max(self.config.reconnect_min_delay)
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Lets the supervisor notice that the tier is gone, even while it waits.
        self.wake.notify_one();
    }
}

/// Keeps the connection up until the tier is dropped: connects, checks the connection while it
/// is idle, and after every failure waits (with a growing, randomised delay) before trying again.
async fn supervise(state: Weak<State>, wake: Arc<Notify>) {
    let mut delay = Duration::ZERO;
    loop {
        if !delay.is_zero() {
            tokio::time::sleep(jitter(delay)).await;
        }
        let Some(tier) = state.upgrade() else { return };
        let (client, config) = (tier.client.clone(), tier.connection_config.clone());
        let addr = tier.client.get_connection_info().addr().to_string();
        let (health_interval, ping_timeout) = (
            tier.config.health_check_interval,
            tier.config.connect_timeout,
        );
        // The tier may be dropped while this task waits: it holds no strong reference then.
        drop(tier);

        // Bounded by the connection timeout set in `config`.
        let attempt = client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        let Some(tier) = state.upgrade() else { return };
        match attempt {
            Ok(conn) => {
                let conn = Arc::new(conn);
                tier.conn.store(Some(conn.clone()));
                bump(&tier.counters.connects);
                tracing::info!(redis = %addr, "connected to the redis stale cache");
                // Lost after working: try again soon, but not in a tight loop.
                delay = tier.config.reconnect_min_delay;
                drop(tier);
                if !watch(&state, &wake, conn, health_interval, ping_timeout).await {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(redis = %addr, error = %e, "cannot connect to the redis stale cache");
                bump(&tier.counters.errors);
                delay = tier.next_delay(delay);
            }
        }
    }
}

/// Watches a working connection until it breaks (`true`: reconnect) or the tier is dropped
/// (`false`).
async fn watch(
    state: &Weak<State>,
    wake: &Notify,
    conn: Arc<MultiplexedConnection>,
    health_interval: Duration,
    ping_timeout: Duration,
) -> bool {
    loop {
        let woken = tokio::time::timeout(health_interval, wake.notified())
            .await
            .is_ok();
        let Some(tier) = state.upgrade() else {
            return false;
        };
        if woken {
            // Woken by `lost`, which has dropped the connection already.
            if tier.conn.load().is_none() {
                return true;
            }
            continue;
        }
        let mut handle = MultiplexedConnection::clone(&conn);
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<()>(&mut handle);
        if !matches!(tokio::time::timeout(ping_timeout, ping).await, Ok(Ok(()))) {
            bump(&tier.counters.errors);
            if tier.detach(&conn) {
                tracing::warn!(
                    redis = %tier.client.get_connection_info().addr(),
                    "the redis stale cache stopped answering; reconnecting in the background"
                );
            }
            return true;
        }
    }
}

/// A delay between half and all of `delay`, at random.
fn jitter(delay: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = delay / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random.checked_rem(nanos.max(1)).unwrap_or(0))
}

impl<T> fmt::Debug for RedisTier<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address only: the URL may hold a password.
        f.debug_struct("RedisTier")
            .field("redis", &self.state.client.get_connection_info().addr())
            .field("config", &self.state.config)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}
