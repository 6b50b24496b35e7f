//! Hystrix's JSON, byte for byte: the lines of `/hystrix.stream`, `/hystrix/utilization.stream`
//! and `/hystrix/config.stream`.
//!
//! The `write_*` functions append one compact JSON object (no `data: ` prefix) to any
//! [`BufMut`], a `Vec<u8>` or a [`BytesMut`], without allocating; an [`Encoder`] writes whole
//! SSE ticks into a buffer it reuses from one tick to the next.
//!
//! Everything follows the Hystrix 1.5 serialisers (spec §2.1, §2.2, §1.6): fields in Hystrix's
//! order, every number a JSON integer, strings escaped so that any name (quotes, backslashes,
//! control characters, line breaks, non-ASCII) stays one valid JSON string on one SSE line.
//!
//! ```
//! use hystrix_core::{
//!     CircuitStatus, CommandMetrics, CommandReport, CommandSettingsReport, MetricsConfig,
//! };
//! use hystrix_stream::encode;
//!
//! let metrics = CommandMetrics::new("GetUser", "Users", "Users", MetricsConfig::default());
//! let report = CommandReport {
//!     metrics: metrics.snapshot(),
//!     circuit: CircuitStatus::Closed,
//!     settings: CommandSettingsReport::default(),
//! };
//! let mut line = Vec::new();
//! encode::write_command(&mut line, &report, 1_700_000_000_000);
//! let line = String::from_utf8(line).unwrap();
//! assert!(line.starts_with(
//!     r#"{"type":"HystrixCommand","name":"GetUser","group":"Users","currentTime":1700000000000,"#
//! ));
//! assert!(line.ends_with(r#""reportingHosts":1,"threadPool":"Users"}"#));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use hystrix_core::{CommandReport, HystrixEventType as Ev, LatencySnapshot, ThreadPoolReport};

/// The bytes of a heart-beat: `ping: ` and a blank line, as Hystrix ≥ 1.5.9 writes it.
pub const PING: &[u8] = b"ping: \n\n";

/// The time to write in `currentTime`: milliseconds since the Unix epoch, from the wall clock.
///
/// Turbine drops lines whose `currentTime` is more than 2.5 s behind its own clock (spec §4.3),
/// so this is the real time, not the paused or manual time the state machines read. It is the
/// one place the crate reads the wall clock; a clock set before 1970 gives 0.
#[allow(clippy::disallowed_methods)] // the audited wall-clock read for `currentTime`
pub fn current_time_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// Whether `/hystrix.stream` publishes a pool: only once it has completed a task, as Hystrix
/// (the dashboard would otherwise show every pool of every semaphore-isolated command).
pub fn is_published(pool: &ThreadPoolReport) -> bool {
    pool.metrics.completed_task_count > 0
}

// ===== HystrixCommand =====

/// The `rollingCount*` fields of a command line (spec §2.1, fields 9 to 24), in order.
const ROLLING_COUNTS: [(&[u8], Ev); 16] = [
    (b",\"rollingCountBadRequests\":", Ev::BadRequest),
    (b",\"rollingCountCollapsedRequests\":", Ev::Collapsed),
    (b",\"rollingCountEmit\":", Ev::Emit),
    (b",\"rollingCountExceptionsThrown\":", Ev::ExceptionThrown),
    (b",\"rollingCountFailure\":", Ev::Failure),
    (b",\"rollingCountFallbackEmit\":", Ev::FallbackEmit),
    (b",\"rollingCountFallbackFailure\":", Ev::FallbackFailure),
    (b",\"rollingCountFallbackMissing\":", Ev::FallbackMissing),
    (
        b",\"rollingCountFallbackRejection\":",
        Ev::FallbackRejection,
    ),
    (b",\"rollingCountFallbackSuccess\":", Ev::FallbackSuccess),
    (
        b",\"rollingCountResponsesFromCache\":",
        Ev::ResponseFromCache,
    ),
    (
        b",\"rollingCountSemaphoreRejected\":",
        Ev::SemaphoreRejected,
    ),
    (b",\"rollingCountShortCircuited\":", Ev::ShortCircuited),
    (b",\"rollingCountSuccess\":", Ev::Success),
    (
        b",\"rollingCountThreadPoolRejected\":",
        Ev::ThreadPoolRejected,
    ),
    (b",\"rollingCountTimeout\":", Ev::Timeout),
];

/// Appends a command's `HystrixCommand` object: the 48 fields of spec §2.1, in Hystrix's order.
///
/// `current_time` is written as `currentTime` (epoch milliseconds: pass
/// [`current_time_millis`], or a fixed value in tests).
///
/// Where the fields come from:
///
/// - `isCircuitBreakerOpen` is [`CircuitStatus::is_open`](hystrix_core::CircuitStatus::is_open)
///   of the report's circuit (`true` while open or half-open, as Hystrix 1.5);
/// - `errorPercentage`, `errorCount` and `requestCount` are the report's health counts (the
///   breaker's, for a command with a circuit breaker);
/// - `rollingCount*` are the rolling event counts, `latencyExecute*` and `latencyTotal*` the
///   latency snapshots (mean and the percentiles `"0"` to `"100"`, in whole milliseconds);
/// - `propertyValue_metricsRollingStatisticalWindowInMilliseconds` is the length of the window
///   the counts were taken over, which the dashboard divides them by to get rates;
/// - `propertyValue_executionIsolationThreadTimeoutInMilliseconds` and
///   `propertyValue_executionTimeoutInMilliseconds` are both the timeout. Hystrix keeps a
///   configured value even when `execution.timeout.enabled` is false; a report carries none
///   then, so a disabled timeout is written as **0** (no dashboard or Turbine computes with
///   it; the configuration stream also says `"timeoutEnabled":false`);
/// - `propertyValue_executionIsolationThreadPoolKeyOverride` is a JSON string or `null`;
/// - `reportingHosts` is 1 and `threadPool` the command's pool key (even for semaphore
///   isolation, as Hystrix).
pub fn write_command<B: BufMut>(buf: &mut B, report: &CommandReport, current_time: u64) {
    let m = &report.metrics;
    let s = &report.settings;
    let c = &m.counts;

    buf.put_slice(b"{\"type\":\"HystrixCommand\",\"name\":");
    write_json_str(buf, m.key.as_str());
    buf.put_slice(b",\"group\":");
    write_json_str(buf, m.group.as_str());
    uint(buf, b",\"currentTime\":", current_time);
    boolean(buf, b",\"isCircuitBreakerOpen\":", report.circuit.is_open());
    uint(
        buf,
        b",\"errorPercentage\":",
        u64::from(m.health.error_percentage()),
    );
    uint(buf, b",\"errorCount\":", m.health.errors);
    uint(buf, b",\"requestCount\":", m.health.total);
    for (field, event) in ROLLING_COUNTS {
        uint(buf, field, c.get(event));
    }
    uint(
        buf,
        b",\"currentConcurrentExecutionCount\":",
        m.current_concurrent,
    );
    uint(
        buf,
        b",\"rollingMaxConcurrentExecutionCount\":",
        m.rolling_max_concurrent,
    );
    latency(
        buf,
        b",\"latencyExecute_mean\":",
        b",\"latencyExecute\":",
        &m.latency_execute,
    );
    latency(
        buf,
        b",\"latencyTotal_mean\":",
        b",\"latencyTotal\":",
        &m.latency_total,
    );
    uint(
        buf,
        b",\"propertyValue_circuitBreakerRequestVolumeThreshold\":",
        u64::from(s.circuit_breaker_request_volume_threshold),
    );
    uint(
        buf,
        b",\"propertyValue_circuitBreakerSleepWindowInMilliseconds\":",
        millis(s.circuit_breaker_sleep_window),
    );
    uint(
        buf,
        b",\"propertyValue_circuitBreakerErrorThresholdPercentage\":",
        u64::from(s.circuit_breaker_error_threshold_percentage),
    );
    boolean(
        buf,
        b",\"propertyValue_circuitBreakerForceOpen\":",
        s.circuit_breaker_force_open,
    );
    boolean(
        buf,
        b",\"propertyValue_circuitBreakerForceClosed\":",
        s.circuit_breaker_force_closed,
    );
    boolean(
        buf,
        b",\"propertyValue_circuitBreakerEnabled\":",
        s.circuit_breaker_enabled,
    );
    buf.put_slice(b",\"propertyValue_executionIsolationStrategy\":\"");
    buf.put_slice(s.isolation.as_str().as_bytes());
    buf.put_u8(b'"');
    let timeout = s.timeout.map_or(0, millis);
    uint(
        buf,
        b",\"propertyValue_executionIsolationThreadTimeoutInMilliseconds\":",
        timeout,
    );
    uint(
        buf,
        b",\"propertyValue_executionTimeoutInMilliseconds\":",
        timeout,
    );
    boolean(
        buf,
        b",\"propertyValue_executionIsolationThreadInterruptOnTimeout\":",
        s.interrupt_on_timeout,
    );
    buf.put_slice(b",\"propertyValue_executionIsolationThreadPoolKeyOverride\":");
    opt_str(buf, s.thread_pool_key_override.as_deref());
    uint(
        buf,
        b",\"propertyValue_executionIsolationSemaphoreMaxConcurrentRequests\":",
        u64::from(s.max_concurrent_requests),
    );
    uint(
        buf,
        b",\"propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests\":",
        u64::from(s.fallback_max_concurrent_requests),
    );
    uint(
        buf,
        b",\"propertyValue_metricsRollingStatisticalWindowInMilliseconds\":",
        millis(m.rolling_stats_window.length()),
    );
    boolean(
        buf,
        b",\"propertyValue_requestCacheEnabled\":",
        s.request_cache_enabled,
    );
    boolean(
        buf,
        b",\"propertyValue_requestLogEnabled\":",
        s.request_log_enabled,
    );
    buf.put_slice(b",\"reportingHosts\":1,\"threadPool\":");
    write_json_str(buf, m.pool.as_str());
    buf.put_u8(b'}');
}

/// The keys of a percentile object, with what precedes each (spec §2.1, field 28).
const PERCENTILE_KEYS: [&[u8]; 9] = [
    b"{\"0\":",
    b",\"25\":",
    b",\"50\":",
    b",\"75\":",
    b",\"90\":",
    b",\"95\":",
    b",\"99\":",
    b",\"99.5\":",
    b",\"100\":",
];

fn latency<B: BufMut>(buf: &mut B, mean_key: &[u8], key: &[u8], l: &LatencySnapshot) {
    uint(buf, mean_key, l.mean);
    buf.put_slice(key);
    for (k, v) in PERCENTILE_KEYS.iter().zip(l.percentiles) {
        uint(buf, k, v);
    }
    buf.put_u8(b'}');
}

// ===== HystrixThreadPool =====

/// Appends a pool's `HystrixThreadPool` object: the 17 fields of spec §2.2, in Hystrix's order.
///
/// `propertyValue_queueSizeRejectionThreshold` is the threshold in force (from the pool's
/// metrics) and `propertyValue_metricsRollingStatisticalWindowInMilliseconds` the length of the
/// pool's rolling window.
pub fn write_thread_pool<B: BufMut>(buf: &mut B, report: &ThreadPoolReport, current_time: u64) {
    let m = &report.metrics;
    buf.put_slice(b"{\"type\":\"HystrixThreadPool\",\"name\":");
    write_json_str(buf, report.key.as_str());
    uint(buf, b",\"currentTime\":", current_time);
    uint(buf, b",\"currentActiveCount\":", u64::from(m.active_count));
    uint(
        buf,
        b",\"currentCompletedTaskCount\":",
        m.completed_task_count,
    );
    uint(
        buf,
        b",\"currentCorePoolSize\":",
        u64::from(m.core_pool_size),
    );
    uint(
        buf,
        b",\"currentLargestPoolSize\":",
        u64::from(m.largest_pool_size),
    );
    uint(
        buf,
        b",\"currentMaximumPoolSize\":",
        u64::from(m.maximum_pool_size),
    );
    uint(buf, b",\"currentPoolSize\":", u64::from(m.pool_size));
    uint(buf, b",\"currentQueueSize\":", u64::from(m.queue_size));
    uint(buf, b",\"currentTaskCount\":", m.task_count);
    uint(
        buf,
        b",\"rollingCountThreadsExecuted\":",
        m.rolling_executed,
    );
    uint(buf, b",\"rollingMaxActiveThreads\":", m.rolling_max_active);
    uint(
        buf,
        b",\"rollingCountCommandRejections\":",
        m.rolling_rejected,
    );
    uint(
        buf,
        b",\"propertyValue_queueSizeRejectionThreshold\":",
        u64::from(m.queue_size_rejection_threshold),
    );
    uint(
        buf,
        b",\"propertyValue_metricsRollingStatisticalWindowInMilliseconds\":",
        millis(report.settings.rolling_stats_window.length()),
    );
    buf.put_slice(b",\"reportingHosts\":1}");
}

/// What goes before each member of a JSON object or array: nothing, then commas.
fn separators() -> impl Iterator<Item = &'static [u8]> {
    std::iter::once(&b""[..]).chain(std::iter::repeat(&b","[..]))
}

// ===== HystrixUtilization =====

/// Appends the `HystrixUtilization` object of `/hystrix/utilization.stream` (spec §1.6):
/// each command's concurrent executions, each pool's active threads, queue, core and current
/// size.
///
/// Every pool given is listed, including those that have not completed a task yet (the
/// dashboard does not read this stream, so there is no reason to hide them).
pub fn write_utilization<B: BufMut>(
    buf: &mut B,
    commands: &[CommandReport],
    pools: &[ThreadPoolReport],
) {
    buf.put_slice(b"{\"type\":\"HystrixUtilization\",\"commands\":{");
    for (c, sep) in commands.iter().zip(separators()) {
        buf.put_slice(sep);
        write_json_str(buf, c.metrics.key.as_str());
        uint(buf, b":{\"activeCount\":", c.metrics.current_concurrent);
        buf.put_u8(b'}');
    }
    buf.put_slice(b"},\"threadpools\":{");
    for (p, sep) in pools.iter().zip(separators()) {
        buf.put_slice(sep);
        write_json_str(buf, p.key.as_str());
        let m = &p.metrics;
        uint(buf, b":{\"activeCount\":", u64::from(m.active_count));
        uint(buf, b",\"queueSize\":", u64::from(m.queue_size));
        uint(buf, b",\"corePoolSize\":", u64::from(m.core_pool_size));
        uint(buf, b",\"poolSize\":", u64::from(m.pool_size));
        buf.put_u8(b'}');
    }
    buf.put_slice(b"}}");
}

// ===== HystrixConfig =====

/// Appends the `HystrixConfig` object of `/hystrix/config.stream` (spec §1.6): every command's
/// and pool's settings in force, and an empty `collapsers` object (there are no collapsers).
///
/// Two quirks of Hystrix's serialiser are *not* copied: `isForcedClosed` is written from
/// `circuitBreaker.forceClosed` (Hystrix writes `forceOpen` there), and `percentileBucketCount`
/// from the latency percentile window (Hystrix writes the counter window's bucket count).
/// `percentileEnabled` is always `true` (latencies are always kept) and `timeoutInMilliseconds`
/// is 0 when the timeout is disabled (`"timeoutEnabled":false`). Every pool given is listed.
pub fn write_config<B: BufMut>(
    buf: &mut B,
    commands: &[CommandReport],
    pools: &[ThreadPoolReport],
) {
    buf.put_slice(b"{\"type\":\"HystrixConfig\",\"commands\":{");
    for (c, sep) in commands.iter().zip(separators()) {
        buf.put_slice(sep);
        let (m, s) = (&c.metrics, &c.settings);
        write_json_str(buf, m.key.as_str());
        buf.put_slice(b":{\"threadPoolKey\":");
        write_json_str(buf, m.pool.as_str());
        buf.put_slice(b",\"groupKey\":");
        write_json_str(buf, m.group.as_str());
        buf.put_slice(b",\"execution\":{\"isolationStrategy\":\"");
        buf.put_slice(s.isolation.as_str().as_bytes());
        buf.put_slice(b"\",\"threadPoolKeyOverride\":");
        opt_str(buf, s.thread_pool_key_override.as_deref());
        boolean(buf, b",\"requestCacheEnabled\":", s.request_cache_enabled);
        boolean(buf, b",\"requestLogEnabled\":", s.request_log_enabled);
        boolean(buf, b",\"timeoutEnabled\":", s.timeout.is_some());
        boolean(buf, b",\"fallbackEnabled\":", s.fallback_enabled);
        uint(
            buf,
            b",\"timeoutInMilliseconds\":",
            s.timeout.map_or(0, millis),
        );
        uint(
            buf,
            b",\"semaphoreSize\":",
            u64::from(s.max_concurrent_requests),
        );
        uint(
            buf,
            b",\"fallbackSemaphoreSize\":",
            u64::from(s.fallback_max_concurrent_requests),
        );
        boolean(
            buf,
            b",\"threadInterruptOnTimeout\":",
            s.interrupt_on_timeout,
        );
        let (counter, percentile) = (s.metrics.rolling_stats, s.metrics.rolling_percentile);
        uint(
            buf,
            b"},\"metrics\":{\"healthBucketSizeInMs\":",
            millis(s.health_snapshot_interval),
        );
        uint(
            buf,
            b",\"percentileBucketSizeInMilliseconds\":",
            millis(percentile.bucket()),
        );
        uint(
            buf,
            b",\"percentileBucketCount\":",
            u64::from(percentile.buckets()),
        );
        buf.put_slice(b",\"percentileEnabled\":true");
        uint(
            buf,
            b",\"counterBucketSizeInMilliseconds\":",
            millis(counter.bucket()),
        );
        uint(
            buf,
            b",\"counterBucketCount\":",
            u64::from(counter.buckets()),
        );
        boolean(
            buf,
            b"},\"circuitBreaker\":{\"enabled\":",
            s.circuit_breaker_enabled,
        );
        boolean(buf, b",\"isForcedOpen\":", s.circuit_breaker_force_open);
        boolean(buf, b",\"isForcedClosed\":", s.circuit_breaker_force_closed);
        uint(
            buf,
            b",\"requestVolumeThreshold\":",
            u64::from(s.circuit_breaker_request_volume_threshold),
        );
        uint(
            buf,
            b",\"errorPercentageThreshold\":",
            u64::from(s.circuit_breaker_error_threshold_percentage),
        );
        uint(
            buf,
            b",\"sleepInMilliseconds\":",
            millis(s.circuit_breaker_sleep_window),
        );
        buf.put_slice(b"}}");
    }
    buf.put_slice(b"},\"threadpools\":{");
    for (p, sep) in pools.iter().zip(separators()) {
        buf.put_slice(sep);
        let s = &p.settings;
        write_json_str(buf, p.key.as_str());
        uint(buf, b":{\"coreSize\":", u64::from(s.core_size));
        uint(buf, b",\"maximumSize\":", u64::from(s.maximum_size));
        uint(
            buf,
            b",\"actualMaximumSize\":",
            u64::from(s.actual_maximum_size),
        );
        int(buf, b",\"maxQueueSize\":", i64::from(s.max_queue_size));
        uint(
            buf,
            b",\"queueRejectionThreshold\":",
            u64::from(s.queue_size_rejection_threshold),
        );
        uint(
            buf,
            b",\"keepAliveTimeInMinutes\":",
            s.keep_alive.as_secs() / 60,
        );
        boolean(
            buf,
            b",\"allowMaximumSizeToDivergeFromCoreSize\":",
            s.allow_maximum_size_to_diverge_from_core_size,
        );
        uint(
            buf,
            b",\"counterBucketSizeInMilliseconds\":",
            millis(s.rolling_stats_window.bucket()),
        );
        uint(
            buf,
            b",\"counterBucketCount\":",
            u64::from(s.rolling_stats_window.buckets()),
        );
        buf.put_u8(b'}');
    }
    buf.put_slice(b"},\"collapsers\":{}}");
}

// ===== Encoder =====

/// Encodes whole ticks of a stream as SSE bytes, in a buffer reused from one tick to the next.
///
/// A tick is one `data: {json}\n\n` event per object, returned as one [`Bytes`] that every
/// client of the stream can share. The buffer's allocation is reused once the previous tick's
/// `Bytes` have all been dropped (otherwise a new one is made, of the last tick's size).
///
/// ```
/// use hystrix_stream::encode::Encoder;
///
/// let mut encoder = Encoder::new();
/// let tick = encoder.metrics_tick(&[], &[], 1_700_000_000_000);
/// assert!(tick.is_empty(), "nothing registered, nothing sent");
/// let config = encoder.config_tick(&[], &[]);
/// assert_eq!(
///     &config[..],
///     &b"data: {\"type\":\"HystrixConfig\",\"commands\":{},\"threadpools\":{},\"collapsers\":{}}\n\n"[..]
/// );
/// ```
#[derive(Debug, Default)]
pub struct Encoder {
    buf: BytesMut,
    last_len: usize,
}

impl Encoder {
    /// An encoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// One tick of `/hystrix.stream`: a `HystrixCommand` event per command, then a
    /// `HystrixThreadPool` event per pool that has completed a task ([`is_published`]), all
    /// with `current_time` as `currentTime`. Empty when there is nothing to send.
    pub fn metrics_tick(
        &mut self,
        commands: &[CommandReport],
        pools: &[ThreadPoolReport],
        current_time: u64,
    ) -> Bytes {
        self.start();
        for c in commands {
            self.buf.put_slice(b"data: ");
            write_command(&mut self.buf, c, current_time);
            self.buf.put_slice(b"\n\n");
        }
        for p in pools.iter().filter(|p| is_published(p)) {
            self.buf.put_slice(b"data: ");
            write_thread_pool(&mut self.buf, p, current_time);
            self.buf.put_slice(b"\n\n");
        }
        self.finish()
    }

    /// One tick of `/hystrix/utilization.stream`: one `HystrixUtilization` event.
    pub fn utilization_tick(
        &mut self,
        commands: &[CommandReport],
        pools: &[ThreadPoolReport],
    ) -> Bytes {
        self.start();
        self.buf.put_slice(b"data: ");
        write_utilization(&mut self.buf, commands, pools);
        self.buf.put_slice(b"\n\n");
        self.finish()
    }

    /// One tick of `/hystrix/config.stream`: one `HystrixConfig` event.
    pub fn config_tick(&mut self, commands: &[CommandReport], pools: &[ThreadPoolReport]) -> Bytes {
        self.start();
        self.buf.put_slice(b"data: ");
        write_config(&mut self.buf, commands, pools);
        self.buf.put_slice(b"\n\n");
        self.finish()
    }

    fn start(&mut self) {
        self.buf.clear();
        // Reclaims the allocation when the last tick's bytes are gone, else allocates once.
        self.buf.reserve(self.last_len + self.last_len / 8);
    }

    fn finish(&mut self) -> Bytes {
        self.last_len = self.buf.len();
        self.buf.split().freeze()
    }
}

// ===== primitives =====

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[inline]
fn boolean<B: BufMut>(buf: &mut B, key: &[u8], v: bool) {
    buf.put_slice(key);
    buf.put_slice(if v { b"true" } else { b"false" });
}

#[inline]
fn uint<B: BufMut>(buf: &mut B, key: &[u8], v: u64) {
    buf.put_slice(key);
    put_u64(buf, v);
}

fn int<B: BufMut>(buf: &mut B, key: &[u8], v: i64) {
    buf.put_slice(key);
    write_i64(buf, v);
}

/// Appends `v` as a JSON integer.
pub fn write_i64<B: BufMut>(buf: &mut B, v: i64) {
    if v < 0 {
        buf.put_u8(b'-');
    }
    put_u64(buf, v.unsigned_abs());
}

const DIGITS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal.
#[inline]
fn put_u64<B: BufMut>(buf: &mut B, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    } else {
        i -= 1;
        tmp[i] = b'0' + v as u8;
    }
    buf.put_slice(&tmp[i..]);
}

fn opt_str<B: BufMut>(buf: &mut B, s: Option<&str>) {
    match s {
        Some(s) => write_json_str(buf, s),
        None => buf.put_slice(b"null"),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\r`, `\t`,
/// `\b`, `\f` or `\u00XX`, everything else (non-ASCII included) as is, as serde_json does. No
/// raw line break can reach the SSE line.
pub fn write_json_str<B: BufMut>(buf: &mut B, s: &str) {
    buf.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let unicode;
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x20.. => continue,
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => {
                unicode = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ];
                &unicode
            }
        };
        buf.put_slice(&bytes[start..i]);
        buf.put_slice(escaped);
        start = i + 1;
    }
    buf.put_slice(&bytes[start..]);
    buf.put_u8(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut v = Vec::new();
        write_json_str(&mut v, s);
        String::from_utf8(v).unwrap_or_default()
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        let mut all_controls = String::new();
        for c in 0u8..0x20 {
            all_controls.push(char::from(c));
        }
        for s in [
            "",
            "plain",
            "quote\"back\\slash",
            "line\nbreak\r\ttab",
            &all_controls,
            "\u{7f}del, é, 中文, 🦀, \u{2028}",
        ] {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap_or_default());
        }
    }

    #[test]
    fn integers_in_decimal() {
        for v in [0, 7, 10, 99, 100, 101, 12_345, 1_700_000_000_000, u64::MAX] {
            let mut out = Vec::new();
            put_u64(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
        let mut out = Vec::new();
        int(&mut out, b"", -1);
        int(&mut out, b",", i64::MIN);
        assert_eq!(out, format!("-1,{}", i64::MIN).into_bytes());
    }

    #[test]
    fn the_wall_clock_is_in_milliseconds_since_1970() {
        let now = current_time_millis();
        assert!(now > 1_600_000_000_000 && now < 10_000_000_000_000, "{now}");
    }
}
