//! The shared frame cache and one client's body stream.
//!
//! # How ticks are shared
//!
//! Every connection schedules its data ticks at whole multiples of its delay from one instant
//! shared by the whole router (the *epoch*), so clients that asked for the same delay wake at
//! the same instants, and a longer delay that is a multiple of a shorter one falls on the
//! shorter one's ticks. At a tick, a connection asks its stream's [`FrameSource`] for a frame
//! *no older than the tick*: the first connection to ask takes the source's lock, reads the
//! registry and encodes; the others wait on the lock (asynchronously) and take a clone of the
//! same [`Bytes`]. Whatever the number of clients, a stream encodes once per distinct tick
//! instant, and at most once per half of the minimum delay (a frame that recent is served even
//! to a tick that is later, so that many different delays cannot make it encode continually).
//!
//! # Why a slow client costs nothing
//!
//! A connection's body is a stream that the HTTP server polls only when it can take more: a
//! client that stops reading fills its socket and the server's write buffer, the body is no
//! longer polled, and the ticks it misses are skipped ([`MissedTickBehavior::Skip`]). Nothing is
//! queued per connection; what such a client pins is the frames already handed to the server.

use std::{
    convert::Infallible,
    future::poll_fn,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::Poll,
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Stream, stream};
use tokio::{
    sync::Mutex,
    time::{Instant, Interval, MissedTickBehavior, interval_at},
};

use crate::{
    MetricsRegistry,
    encode::{Encoder, PING, current_time_millis},
};

/// Which stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/hystrix.stream`.
    Metrics,
    /// `/hystrix/utilization.stream`.
    Utilization,
    /// `/hystrix/config.stream`.
    Config,
}

/// What every connection of a router adds to.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) open: ConnectionCount,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) frames_encoded: AtomicU64,
}

// ===== impl ConnectionCount =====

/// Open streaming connections, counted against a maximum: what `/hystrix.stream` and
/// `/turbine.stream` answer 503 on.
///
/// ```
/// use hystrix_stream::ConnectionCount;
///
/// let count = ConnectionCount::new();
/// let first = count.try_acquire(1).unwrap();
/// assert!(count.try_acquire(1).is_none(), "at the maximum");
/// drop(first); // the client went away
/// assert_eq!(count.open(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConnectionCount(Arc<AtomicUsize>);

impl ConnectionCount {
    /// No connection open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// A slot if fewer than `max` are taken. Never counts past `max`, even for a moment.
    pub fn try_acquire(&self, max: usize) -> Option<ConnectionSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionSlot(self.0.clone()))
    }
}

/// One open connection, counted until dropped (with the response body, when the client goes
/// away or the server shuts down).
#[derive(Debug)]
#[must_use = "the slot is freed when dropped"]
pub struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

// ===== impl FrameSource =====

/// One stream's last encoded frame, re-encoded when a tick asks for a newer one.
#[derive(Debug)]
pub(crate) struct FrameSource {
    kind: Kind,
    registry: MetricsRegistry,
    /// A frame younger than this is served to any tick.
    reuse_within: Duration,
    counters: Arc<Counters>,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    encoded_at: Option<Instant>,
    frame: Bytes,
    encoder: Encoder,
}

impl FrameSource {
    pub(crate) fn new(
        kind: Kind,
        registry: MetricsRegistry,
        min_delay: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            kind,
            registry,
            reuse_within: min_delay / 2,
            counters,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// A frame encoded at or after `tick` (or within the reuse window), encoding it if there
    /// is none. Empty when there is nothing to send.
    pub(crate) async fn frame(&self, tick: Instant) -> Bytes {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(at) = cache.encoded_at {
            if at >= tick || now.saturating_duration_since(at) < self.reuse_within {
                return cache.frame.clone();
            }
        }
        // Drop our reference first so the encoder can reuse the allocation.
        cache.frame = Bytes::new();
        let commands = self.registry.command_reports();
        let pools = self.registry.pool_reports();
        let frame = match self.kind {
            Kind::Metrics => cache
                .encoder
                .metrics_tick(&commands, &pools, current_time_millis()),
            Kind::Utilization => cache.encoder.utilization_tick(&commands, &pools),
            Kind::Config => cache.encoder.config_tick(&commands, &pools),
        };
        cache.frame = frame.clone();
        cache.encoded_at = Some(now);
        self.counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
        frame
    }
}

// ===== impl Connection =====

/// One client: its slot, its data and ping schedules.
#[derive(Debug)]
pub(crate) struct Connection {
    source: Arc<FrameSource>,
    counters: Arc<Counters>,
    data: Interval,
    ping: Interval,
    first: bool,
    _slot: ConnectionSlot,
}

enum Tick {
    Data(Instant),
    Ping,
}

impl Connection {
    /// A connection sending a frame at once, then one every `delay` and a ping every
    /// `ping_every`, both on the router's schedule from `epoch`.
    pub(crate) fn new(
        source: Arc<FrameSource>,
        slot: ConnectionSlot,
        counters: Arc<Counters>,
        epoch: Instant,
        delay: Duration,
        ping_every: Duration,
    ) -> Self {
        let now = Instant::now();
        Self {
            source,
            counters,
            data: aligned(epoch, now, delay),
            ping: aligned(epoch, now, ping_every),
            first: true,
            _slot: slot,
        }
    }

    /// The response body: the connection's bytes, for as long as the client reads.
    pub(crate) fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        stream::unfold(self, |mut conn| async move {
            let bytes = conn.next().await;
            Some((Ok(bytes), conn))
        })
    }

    async fn next(&mut self) -> Bytes {
        loop {
            let tick = if std::mem::take(&mut self.first) {
                Tick::Data(Instant::now())
            } else {
                let (data, ping) = (&mut self.data, &mut self.ping);
                poll_fn(|cx| {
                    if let Poll::Ready(at) = data.poll_tick(cx) {
                        return Poll::Ready(Tick::Data(at));
                    }
                    ping.poll_tick(cx).map(|_| Tick::Ping)
                })
                .await
            };
            let bytes = match tick {
                Tick::Data(at) => self.source.frame(at).await,
                Tick::Ping => Bytes::from_static(PING),
            };
            if !bytes.is_empty() {
                self.counters
                    .bytes_sent
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                return bytes;
            }
        }
    }
}

/// An interval of `period` whose ticks fall on `epoch + k * period`, the first strictly after
/// `now`, skipping the ticks missed while the body is not polled.
fn aligned(epoch: Instant, now: Instant, period: Duration) -> Interval {
    let period_ns = period.as_nanos().max(1);
    let elapsed_ns = now.saturating_duration_since(epoch).as_nanos();
    let next_ns = (elapsed_ns / period_ns + 1) * period_ns;
    let start = u64::try_from(next_ns)
        .ok()
        .and_then(|ns| epoch.checked_add(Duration::from_nanos(ns)))
        .unwrap_or(now + period);
    let mut interval = interval_at(start, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    interval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_never_exceed_the_maximum_and_free_on_drop() {
        let count = ConnectionCount::new();
        let a = count.try_acquire(2);
        let b = count.try_acquire(2);
        assert!(a.is_some() && b.is_some());
        assert!(count.try_acquire(2).is_none());
        assert_eq!(count.open(), 2);
        drop(a);
        assert!(count.try_acquire(2).is_some(), "freed, then dropped again");
        drop(b);
        assert_eq!(count.open(), 0);
        assert!(count.try_acquire(0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_fall_on_multiples_of_the_period_from_the_epoch() {
        let epoch = Instant::now();
        tokio::time::advance(Duration::from_millis(730)).await;
        let mut every_500 = aligned(epoch, Instant::now(), Duration::from_millis(500));
        assert_eq!(every_500.tick().await - epoch, Duration::from_millis(1000));
        assert_eq!(every_500.tick().await - epoch, Duration::from_millis(1500));
        let mut every_250 = aligned(epoch, Instant::now(), Duration::from_millis(250));
        assert_eq!(every_250.tick().await - epoch, Duration::from_millis(1750));
        // Exactly on a tick: the next one, not this one (the first frame is sent at once).
        let mut again = aligned(epoch, Instant::now(), Duration::from_millis(250));
        assert_eq!(again.tick().await - epoch, Duration::from_millis(2000));
    }
}
