//! Rolling windows: event counts, a concurrency maximum, latency percentiles and outcome rings.

mod count;
mod counter;
mod percentile;
mod striped;

use std::{
    error::Error,
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

pub(crate) use self::percentile::{Lane, micros};
pub use self::{
    count::CountWindow,
    counter::{EventCounts, RollingCounter},
    percentile::{LatencyCursor, LatencySnapshot, PERCENTILES, RollingPercentile},
};

/// The shape of a time window: its length and the number of buckets it is cut into.
///
/// The window moves one bucket at a time. Hystrix's defaults are 10 s in 10 buckets for counts
/// ([`RollingWindow::COUNTS`]) and 60 s in 6 buckets for latency
/// ([`RollingWindow::PERCENTILES`]).
///
/// ```
/// use hystrix_core::RollingWindow;
/// use std::time::Duration;
///
/// let w = RollingWindow::new(Duration::from_secs(10), 10).unwrap();
/// assert_eq!(w.bucket(), Duration::from_secs(1));
/// assert!(RollingWindow::new(Duration::from_millis(1000), 3).is_err()); // not a whole number of ms
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RollingWindow {
    bucket_ms: u64,
    buckets: u32,
}

impl RollingWindow {
    /// Hystrix's rolling statistics window: 10 s in 10 buckets.
    pub const COUNTS: Self = Self {
        bucket_ms: 1_000,
        buckets: 10,
    };

    /// Hystrix's rolling percentile window: 60 s in 6 buckets.
    pub const PERCENTILES: Self = Self {
        bucket_ms: 10_000,
        buckets: 6,
    };

    /// The most buckets a window may have.
    pub const MAX_BUCKETS: u32 = 10_000;

    /// A window of `length` cut into `buckets` buckets.
    ///
    /// The length must divide into whole milliseconds per bucket (Hystrix requires an even
    /// split); there must be between 1 and [`MAX_BUCKETS`](Self::MAX_BUCKETS) buckets.
    pub fn new(length: Duration, buckets: u32) -> Result<Self, InvalidWindow> {
        if buckets == 0 || buckets > Self::MAX_BUCKETS {
            return Err(InvalidWindow::Buckets(buckets));
        }
        let ms = u64::try_from(length.as_millis()).map_err(|_| InvalidWindow::Length(length))?;
        if ms == 0 || Duration::from_millis(ms) != length {
            return Err(InvalidWindow::Length(length));
        }
        if ms % u64::from(buckets) != 0 {
            return Err(InvalidWindow::Uneven { length, buckets });
        }
        Ok(Self {
            bucket_ms: ms / u64::from(buckets),
            buckets,
        })
    }

    /// The window's length.
    pub const fn length(&self) -> Duration {
        Duration::from_millis(self.bucket_ms * self.buckets as u64)
    }

    /// The length of one bucket.
    pub const fn bucket(&self) -> Duration {
        Duration::from_millis(self.bucket_ms)
    }

    /// The number of buckets.
    pub const fn buckets(&self) -> u32 {
        self.buckets
    }

    pub(crate) const fn bucket_ms(&self) -> u64 {
        self.bucket_ms
    }
}

impl Default for RollingWindow {
    fn default() -> Self {
        Self::COUNTS
    }
}

/// Why a [`RollingWindow`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidWindow {
    /// The number of buckets was 0 or above [`RollingWindow::MAX_BUCKETS`].
    Buckets(u32),
    /// The length was zero, not a whole number of milliseconds, or too long.
    Length(Duration),
    /// The length does not split evenly into the buckets.
    Uneven {
        /// The window's length.
        length: Duration,
        /// The number of buckets.
        buckets: u32,
    },
}

impl fmt::Display for InvalidWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Buckets(n) => write!(
                f,
                "a rolling window needs 1 to {} buckets, not {n}",
                RollingWindow::MAX_BUCKETS
            ),
            Self::Length(d) => write!(
                f,
                "a rolling window's length must be a positive whole number of milliseconds, not {d:?}"
            ),
            Self::Uneven { length, buckets } => write!(
                f,
                "a rolling window of {length:?} does not split evenly into {buckets} buckets"
            ),
        }
    }
}

impl Error for InvalidWindow {}

/// The bucket of `ms` (milliseconds since the origin), for a window whose newest started
/// bucket is `current`: almost every event falls in that one, found with a multiplication
/// rather than a division.
#[inline]
fn bucket_at(current: &AtomicU64, bucket_ms: u64, ms: u64) -> u64 {
    let current = current.load(Ordering::Relaxed);
    match ms.checked_sub(current.wrapping_mul(bucket_ms)) {
        Some(into) if into < bucket_ms => current,
        _ => ms / bucket_ms,
    }
}
