//! The circuit: a circuit breaker's shared state machine and its operator handle.
//!
//! # States (spec §3.7, Hystrix's master line)
//!
//! ```text
//!            trip: volume >= threshold and error % >= threshold
//!            (or N consecutive failures)
//!   CLOSED ───────────────────────────────▶ OPEN ◀──────────────┐
//!     ▲                                      │                  │ a trial fails or
//!     │ all trials succeed                   │ sleep window     │ is cancelled (the
//!     │ (the health window is reset)         │ elapsed: the     │ sleep window restarts,
//!     │                                      ▼ next caller      │ longer with backoff)
//!     └────────────────────────────────── HALF_OPEN ────────────┘
//! ```
//!
//! # Concurrency
//!
//! Admission never takes a lock: the state, the half-open trial slots and the trial generation
//! live in one `AtomicU64`, so a closed circuit admits with two loads and a half-open one hands
//! out exactly `half_open_probes` slots by compare-and-swap however many callers race. State
//! changes, which are rare, are made under a per-circuit mutex so that the opened-at time, the
//! sleep window and the state move together. A trial carries the generation of the half-open
//! period it was admitted in; a result arriving after that period ended is ignored.

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use hystrix_core::{
    Clock, CommandMetrics, CountWindow, HealthCache, HealthCounts, HystrixEventType as Ev, Instant,
    Stamp,
};
use tokio::sync::broadcast;

use crate::{
    config::{BreakerConfig, HealthWindow, InvalidConfig},
    error::ShortCircuited,
    events::Events,
};

/// The state of a circuit's state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Requests flow; health is watched.
    Closed,
    /// Requests are rejected until the sleep window has elapsed.
    Open,
    /// Trial requests are running; everything else is rejected.
    HalfOpen,
}

impl State {
    /// The state's name, upper case as Hystrix logs it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "CLOSED",
            Self::Open => "OPEN",
            Self::HalfOpen => "HALF_OPEN",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the state machine's decisions are applied: normally, or overridden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The state decides.
    Normal,
    /// Every request is rejected (`force_open`, or an operator).
    ForcedOpen,
    /// Every request is admitted; the state machine still moves (`force_closed`, or an operator).
    ForcedClosed,
    /// The breaker is off (`enabled = false`): every request is admitted, nothing trips.
    Disabled,
}

/// Why a circuit changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The error percentage reached the threshold with enough volume.
    Tripped(HealthCounts),
    /// This many failures in a row.
    ConsecutiveFailures(u32),
    /// The sleep window elapsed; trials are admitted.
    SleepWindowElapsed,
    /// Every trial succeeded.
    TrialsSucceeded,
    /// A trial failed.
    TrialFailed,
    /// A trial was dropped before it completed.
    TrialCancelled,
    /// An operator reset the circuit.
    Reset,
}

/// A change of state, as published to [`Circuit::subscribe`]rs and logged with `tracing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// When, by the circuit's clock.
    pub at: Instant,
}

// ===== the packed state word =====
//
// bits 0..2   state
// bits 2..18  trial slots left in this half-open period
// bits 18..34 trials that succeeded in this half-open period
// bits 34..64 generation of the half-open period

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const STATE_MASK: u64 = 0b11;
const LEFT_SHIFT: u32 = 2;
const OK_SHIFT: u32 = 18;
const GEN_SHIFT: u32 = 34;
const FIELD_MASK: u64 = 0xffff;

#[inline]
const fn pack(state: u64, left: u64, ok: u64, generation: u64) -> u64 {
    state | (left << LEFT_SHIFT) | (ok << OK_SHIFT) | (generation << GEN_SHIFT)
}

#[inline]
const fn state_of(word: u64) -> u64 {
    word & STATE_MASK
}

#[inline]
const fn left_of(word: u64) -> u64 {
    (word >> LEFT_SHIFT) & FIELD_MASK
}

#[inline]
const fn ok_of(word: u64) -> u64 {
    (word >> OK_SHIFT) & FIELD_MASK
}

#[inline]
const fn gen_of(word: u64) -> u64 {
    word >> GEN_SHIFT
}

const fn next_gen(generation: u64) -> u64 {
    (generation + 1) & ((1 << (64 - GEN_SHIFT)) - 1)
}

fn state_name(word: u64) -> State {
    match state_of(word) {
        OPEN => State::Open,
        HALF_OPEN => State::HalfOpen,
        _ => State::Closed,
    }
}

const MODE_NORMAL: u8 = 0;
const MODE_FORCED_OPEN: u8 = 1;
const MODE_FORCED_CLOSED: u8 = 2;
const MODE_DISABLED: u8 = 3;

const OVERRIDE_NONE: u8 = 0;

fn mode_name(mode: u8) -> Mode {
    match mode {
        MODE_FORCED_OPEN => Mode::ForcedOpen,
        MODE_FORCED_CLOSED => Mode::ForcedClosed,
        MODE_DISABLED => Mode::Disabled,
        _ => Mode::Normal,
    }
}

/// A circuit breaker's state machine, shared by every service built on it; cloning shares it.
///
/// It is also the operator's handle: read the [`state`](Self::state) and
/// [`health`](Self::health), [`force_open`](Self::force_open), [`force_closed`](Self::force_closed),
/// [`reset`](Self::reset), [`update`](Self::update) the settings, and
/// [`subscribe`](Self::subscribe) to transitions.
///
/// Most users wrap a service with [`CircuitBreakerLayer`](crate::CircuitBreakerLayer); the
/// permit protocol ([`try_acquire`](Self::try_acquire), then [`Permit::record`]) is for layers
/// that compose the breaker with others.
///
/// ```
/// use hystrix_breaker::{BreakerConfig, Circuit, State};
/// use hystrix_core::HystrixEventType;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let circuit = Circuit::new("GetUser", BreakerConfig {
///     request_volume_threshold: 2,
///     health_snapshot_interval: std::time::Duration::ZERO,
///     ..BreakerConfig::default()
/// }).unwrap();
///
/// for _ in 0..2 {
///     let permit = circuit.try_acquire().expect("closed");
///     permit.record(HystrixEventType::Failure);
/// }
/// assert_eq!(circuit.state(), State::Open);
/// assert!(circuit.try_acquire().is_err());
/// # }
/// ```
#[derive(Clone)]
pub struct Circuit {
    shared: Arc<Shared>,
}

struct Shared {
    /// What every call reads, on a cache line of its own: the `Arc`'s reference count, written
    /// by every call, must not share a line with it.
    hot: Hot,
    name: Arc<str>,
    clock: Clock,
    origin: Stamp,
    config: ArcSwap<BreakerConfig>,
    /// The operator's override: OVERRIDE_NONE or a MODE_FORCED_* value.
    operator: AtomicU8,
    /// Milliseconds since `origin` when the circuit last opened.
    opened_at_ms: AtomicU64,
    /// The sleep window of the current open period.
    sleep_ms: AtomicU64,
    /// Trials admitted in the current half-open period.
    probes: AtomicU32,
    failed_trials: AtomicU32,
    consecutive_failures: AtomicU32,
    health: Health,
    lock: Mutex<()>,
    transitions: broadcast::Sender<Transition>,
}

#[repr(align(128))]
struct Hot {
    /// The mode in force, derived from the operator's override and the config.
    mode: AtomicU8,
    /// `slow_call_threshold` in nanoseconds, 0 when off.
    slow_call_nanos: AtomicU64,
    /// The packed state word.
    word: AtomicU64,
}

enum Health {
    Time { events: Events, cache: HealthCache },
    Count(CountWindow),
}

impl Circuit {
    /// A closed circuit named `name` (usually the command key), reading the
    /// [default clock](Clock::default): the system's, or tokio's (pausable) with the
    /// `test-util` feature.
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Result<Self, InvalidConfig> {
        Self::with_clock(name, config, Clock::default())
    }

    /// A closed circuit reading `clock`.
    pub fn with_clock(
        name: impl Into<Arc<str>>,
        config: BreakerConfig,
        clock: Clock,
    ) -> Result<Self, InvalidConfig> {
        Self::build(name, config, clock, None)
    }

    /// A closed circuit whose health is read from a command's `metrics` (Hystrix's design),
    /// when its window is a time window of the same shape as theirs; otherwise, as
    /// [`with_clock`](Self::with_clock), it counts outcomes itself.
    ///
    /// The command records every event in its metrics, each before the circuit is given the
    /// request's outcome, and the circuit no longer counts them a second time; it counts only
    /// what the metrics cannot tell, successes slower than the slow-call threshold.
    ///
    /// ```
    /// use hystrix_breaker::{BreakerConfig, Circuit, HealthWindow};
    /// use hystrix_core::{CommandMetrics, HystrixEventType as Ev, MetricsConfig};
    ///
    /// let metrics = CommandMetrics::new("GetUser", "Users", "Users", MetricsConfig::default());
    /// let config = BreakerConfig {
    ///     window: HealthWindow::Time(metrics.config().rolling_stats),
    ///     health_snapshot_interval: std::time::Duration::ZERO,
    ///     ..BreakerConfig::default()
    /// };
    /// let circuit = Circuit::for_command("GetUser", config, &metrics).unwrap();
    /// for _ in 0..20 {
    ///     let admission = circuit.try_admit().unwrap();
    ///     metrics.mark(Ev::Failure);
    ///     circuit.record(admission, Ev::Failure);
    /// }
    /// assert_eq!(circuit.health().errors, 20);
    /// assert!(circuit.is_open());
    /// ```
    pub fn for_command(
        name: impl Into<Arc<str>>,
        config: BreakerConfig,
        metrics: &CommandMetrics,
    ) -> Result<Self, InvalidConfig> {
        let clock = metrics.clock().clone();
        let shared = config.window == HealthWindow::Time(metrics.config().rolling_stats);
        Self::build(name, config, clock, shared.then_some(metrics))
    }

    fn build(
        name: impl Into<Arc<str>>,
        config: BreakerConfig,
        clock: Clock,
        metrics: Option<&CommandMetrics>,
    ) -> Result<Self, InvalidConfig> {
        config.validate()?;
        // A precise read: the first one of the system clock calibrates it, here rather than
        // on a request.
        let origin = clock.stamp();
        let health = match config.window {
            HealthWindow::Time(window) => Health::Time {
                events: match metrics {
                    Some(metrics) => Events::command(metrics, origin),
                    None => Events::own(window, origin),
                },
                cache: HealthCache::new(config.health_snapshot_interval, origin),
            },
            HealthWindow::Count(n) => Health::Count(
                CountWindow::new(n).ok_or_else(|| InvalidConfig::new("window", "bad size"))?,
            ),
        };
        let shared = Shared {
            name: name.into(),
            clock,
            origin,
            operator: AtomicU8::new(OVERRIDE_NONE),
            hot: Hot {
                mode: AtomicU8::new(MODE_NORMAL),
                slow_call_nanos: AtomicU64::new(0),
                word: AtomicU64::new(pack(CLOSED, 0, 0, 0)),
            },
            opened_at_ms: AtomicU64::new(0),
            sleep_ms: AtomicU64::new(0),
            probes: AtomicU32::new(0),
            failed_trials: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            health,
            lock: Mutex::new(()),
            transitions: broadcast::channel(64).0,
            config: ArcSwap::from_pointee(config),
        };
        shared.apply_config(&shared.lock());
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The circuit's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Asks to run one request.
    ///
    /// A closed circuit (or a forced-closed or disabled one) admits at once. An open circuit
    /// rejects with [`ShortCircuited`] until its sleep window has elapsed; then the next callers
    /// become its trials, exactly `half_open_probes` of them. The returned [`Permit`] must be
    /// given the request's outcome; dropping it unrecorded cancels the request (a cancelled trial
    /// counts as a failed one).
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit, ShortCircuited> {
        self.try_admit().map(|admission| Permit {
            shared: self.shared.clone(),
            admission: Some(admission),
        })
    }

    /// [`try_acquire`](Self::try_acquire) without a guard, for an owner that keeps the circuit
    /// itself (a command's response future holds its command, so a permit's own reference to
    /// the circuit would be one more shared count to touch on every call). Each admission
    /// must be given to exactly one [`record`](Self::record) or [`cancel`](Self::cancel) of
    /// this circuit: a trial admission that is lost holds the circuit half-open. Prefer
    /// [`try_acquire`](Self::try_acquire).
    #[inline]
    pub fn try_admit(&self) -> Result<Admission, ShortCircuited> {
        let s = &*self.shared;
        self.admit(|| s.coarse(), || s.clock.stamp())
    }

    /// [`try_admit`](Self::try_admit) at `now`, an instant or a [`Stamp`] just read from this
    /// circuit's clock: a caller that reads the precise clock anyway (to time the request)
    /// spares the circuit its own reads.
    #[inline]
    pub fn try_admit_at(&self, now: impl Into<Stamp>) -> Result<Admission, ShortCircuited> {
        let now = now.into();
        self.admit(|| now, || now)
    }

    /// The admission, with `coarse` and `precise` read only when needed.
    #[inline]
    fn admit(
        &self,
        coarse: impl Fn() -> Stamp,
        precise: impl Fn() -> Stamp,
    ) -> Result<Admission, ShortCircuited> {
        let s = &*self.shared;
        match s.hot.mode.load(Ordering::Acquire) {
            MODE_NORMAL => {}
            MODE_FORCED_OPEN => return Err(s.short_circuit(coarse(), true)),
            _ => return Ok(self.admission(None, precise)),
        }
        let mut word = s.hot.word.load(Ordering::Acquire);
        loop {
            match state_of(word) {
                CLOSED => return Ok(self.admission(None, precise)),
                OPEN => {
                    let now = coarse();
                    let opened = s.opened_at_ms.load(Ordering::Acquire);
                    let sleep = s.sleep_ms.load(Ordering::Acquire);
                    // Hystrix admits a trial once `now > opened + sleep`.
                    if s.millis(now) <= opened.saturating_add(sleep) {
                        return Err(s.short_circuit(now, false));
                    }
                    if let Some(generation) = s.half_open(word, now) {
                        return Ok(self.admission(Some(generation), precise));
                    }
                    word = s.hot.word.load(Ordering::Acquire);
                }
                _ => {
                    if left_of(word) == 0 {
                        return Err(s.short_circuit(coarse(), false));
                    }
                    let taken = word - (1 << LEFT_SHIFT);
                    match s.hot.word.compare_exchange_weak(
                        word,
                        taken,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Ok(self.admission(Some(gen_of(word)), precise)),
                        Err(seen) => word = seen,
                    }
                }
            }
        }
    }

    #[inline]
    fn admission(&self, trial: Option<u64>, now: impl Fn() -> Stamp) -> Admission {
        let slow = self.shared.hot.slow_call_nanos.load(Ordering::Relaxed);
        Admission {
            trial,
            started: (slow != 0).then(now),
        }
    }

    /// Records the outcome of a request admitted by [`try_admit`](Self::try_admit), as
    /// [`Permit::record`] does.
    #[inline]
    pub fn record(&self, admission: Admission, event: Ev) {
        let s = &*self.shared;
        s.record(admission, event, || s.coarse(), || s.clock.stamp());
    }

    /// [`record`](Self::record) at `now`, an instant or a stamp just read from this circuit's
    /// clock (when the request ended).
    #[inline]
    pub fn record_at(&self, admission: Admission, event: Ev, now: impl Into<Stamp>) {
        let now = now.into();
        self.shared.record(admission, event, || now, || now);
    }

    /// Withdraws a request admitted by [`try_admit`](Self::try_admit) without an outcome, as
    /// dropping a [`Permit`] does: a cancelled trial counts as failed.
    pub fn cancel(&self, admission: Admission) {
        self.shared.cancel(admission);
    }

    /// The state machine's state.
    pub fn state(&self) -> State {
        state_name(self.shared.hot.word.load(Ordering::Acquire))
    }

    /// The mode in force: normal, forced open or closed, or disabled.
    pub fn mode(&self) -> Mode {
        mode_name(self.shared.hot.mode.load(Ordering::Acquire))
    }

    /// Whether the circuit rejects requests, as Hystrix streams `isCircuitBreakerOpen`:
    /// forced open is open, forced closed and disabled are not, otherwise OPEN and HALF_OPEN
    /// are.
    pub fn is_open(&self) -> bool {
        match self.mode() {
            Mode::ForcedOpen => true,
            Mode::ForcedClosed | Mode::Disabled => false,
            Mode::Normal => self.state() != State::Closed,
        }
    }

    /// The health of the window now, computed afresh.
    pub fn health(&self) -> HealthCounts {
        let s = &*self.shared;
        match &s.health {
            Health::Time { events, .. } => events.health(s.coarse()),
            Health::Count(w) => w.health(),
        }
    }

    /// How many requests the circuit short-circuited in its window (time windows only; a
    /// count window keeps no such count and reports 0).
    pub fn short_circuited(&self) -> u64 {
        match &self.shared.health {
            Health::Time { events, .. } => events.short_circuited(self.shared.coarse()),
            Health::Count(_) => 0,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<BreakerConfig> {
        self.shared.config.load_full()
    }

    /// Replaces the settings atomically; requests in flight keep their permits.
    ///
    /// Refused, with the old settings kept, when a setting is invalid or the health window's
    /// shape changes (a window cannot be resized in place).
    pub fn update(&self, config: BreakerConfig) -> Result<(), InvalidConfig> {
        config.validate()?;
        let s = &*self.shared;
        let guard = s.lock();
        if config.window != s.config.load().window {
            return Err(InvalidConfig::new(
                "window",
                "the health window's shape cannot change at runtime",
            ));
        }
        s.config.store(Arc::new(config));
        s.apply_config(&guard);
        Ok(())
    }

    /// Rejects every request until [`reset`](Self::reset) or [`clear_force`](Self::clear_force),
    /// whatever the settings say.
    pub fn force_open(&self) {
        self.set_operator(MODE_FORCED_OPEN);
    }

    /// Admits every request until [`reset`](Self::reset) or [`clear_force`](Self::clear_force),
    /// whatever the settings say.
    pub fn force_closed(&self) {
        self.set_operator(MODE_FORCED_CLOSED);
    }

    /// Removes an operator's [`force_open`](Self::force_open) or
    /// [`force_closed`](Self::force_closed); the settings decide again.
    pub fn clear_force(&self) {
        self.set_operator(OVERRIDE_NONE);
    }

    /// Closes the circuit, empties its health window, restores the base sleep window and removes
    /// an operator's override.
    pub fn reset(&self) {
        let s = &*self.shared;
        let guard = s.lock();
        s.operator.store(OVERRIDE_NONE, Ordering::Release);
        s.apply_config(&guard);
        let now = s.coarse();
        let word = s.hot.word.load(Ordering::Acquire);
        s.close(&guard, word, now, Reason::Reset);
    }

    /// A receiver of every later transition. A receiver that falls more than 64 transitions
    /// behind skips the oldest ones (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.shared.transitions.subscribe()
    }

    fn set_operator(&self, value: u8) {
        let s = &*self.shared;
        let guard = s.lock();
        s.operator.store(value, Ordering::Release);
        s.apply_config(&guard);
    }
}

impl fmt::Debug for Circuit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Circuit")
            .field("name", &self.name())
            .field("state", &self.state())
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

// ===== impl Shared =====

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data of its own, so a poisoned one is as good as a healthy one.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn millis(&self, now: Stamp) -> u64 {
        now.millis_since(self.origin)
    }

    /// The coarse clock, as a stamp.
    #[inline]
    fn coarse(&self) -> Stamp {
        self.clock.coarse_stamp()
    }

    /// Derives the mode and the hot-path copies of settings; called under the lock.
    fn apply_config(&self, _guard: &MutexGuard<'_, ()>) {
        let config = self.config.load();
        let operator = self.operator.load(Ordering::Acquire);
        let mode = if operator != OVERRIDE_NONE {
            operator
        } else if !config.enabled {
            MODE_DISABLED
        } else if config.force_open {
            MODE_FORCED_OPEN
        } else if config.force_closed {
            MODE_FORCED_CLOSED
        } else {
            MODE_NORMAL
        };
        let slow = config
            .slow_call_threshold
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.hot.slow_call_nanos.store(slow, Ordering::Relaxed);
        if let Health::Time { cache, .. } = &self.health {
            cache.set_interval(config.health_snapshot_interval);
        }
        let before = self.hot.mode.swap(mode, Ordering::AcqRel);
        if before != mode {
            tracing::info!(
                circuit = %self.name,
                from = ?mode_name(before),
                to = ?mode_name(mode),
                "circuit breaker mode changed"
            );
        }
    }

    #[cold]
    fn short_circuit(&self, now: Stamp, forced: bool) -> ShortCircuited {
        if let Health::Time { events, .. } = &self.health {
            events.count_short_circuit(now);
        }
        ShortCircuited::new(forced)
    }

    /// OPEN → HALF_OPEN when `word` is still current; the winner's generation.
    #[cold]
    fn half_open(&self, word: u64, now: Stamp) -> Option<u64> {
        let guard = self.lock();
        if self.hot.word.load(Ordering::Acquire) != word {
            return None;
        }
        let probes = self.config.load().half_open_probes;
        let generation = next_gen(gen_of(word));
        // This caller takes the first slot.
        let next = pack(HALF_OPEN, u64::from(probes) - 1, 0, generation);
        self.probes.store(probes, Ordering::Release);
        self.hot.word.store(next, Ordering::Release);
        self.publish(
            &guard,
            State::Open,
            State::HalfOpen,
            Reason::SleepWindowElapsed,
            now,
        );
        Some(generation)
    }

    fn on_outcome(&self, event: Ev, trial: Option<u64>, slow: bool, now: Stamp) {
        let error = event.is_error() || (slow && event == Ev::Success);
        let success = event == Ev::Success && !error;
        match &self.health {
            Health::Time { events, .. } => events.count(event, error, now),
            Health::Count(window) => {
                if error || success {
                    window.record(error);
                }
            }
        }
        if error {
            let in_a_row = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
            match trial {
                Some(generation) => self.trial_failed(generation, now, Reason::TrialFailed),
                None => self.maybe_trip(in_a_row, now),
            }
        } else if success {
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Release);
            }
            if let Some(generation) = trial {
                self.trial_succeeded(generation, now);
            }
        } else if let Some(generation) = trial {
            // A bad request (or another non-health event) says nothing about the dependency:
            // the trial slot goes back for another request to use.
            self.return_trial(generation);
        }
    }

    fn maybe_trip(&self, in_a_row: u32, now: Stamp) {
        if state_of(self.hot.word.load(Ordering::Acquire)) != CLOSED
            || self.hot.mode.load(Ordering::Acquire) == MODE_DISABLED
        {
            return;
        }
        let config = self.config.load();
        if let Some(limit) = config.consecutive_failures {
            if in_a_row >= limit {
                self.trip(now, Reason::ConsecutiveFailures(in_a_row));
                return;
            }
        }
        let health = match &self.health {
            Health::Time { events, cache } => cache.get(now, || events.health(now)),
            Health::Count(window) => window.health(),
        };
        if health.total >= u64::from(config.request_volume_threshold)
            && health.error_percentage() >= u32::from(config.error_threshold_percentage)
        {
            self.trip(now, Reason::Tripped(health));
        }
    }

    #[cold]
    fn trip(&self, now: Stamp, reason: Reason) {
        let guard = self.lock();
        let word = self.hot.word.load(Ordering::Acquire);
        if state_of(word) != CLOSED {
            return;
        }
        self.open(&guard, word, now);
        self.publish(&guard, State::Closed, State::Open, reason, now);
    }

    /// Sets the open period's start and sleep window, then the state; under the lock.
    fn open(&self, _guard: &MutexGuard<'_, ()>, word: u64, now: Stamp) {
        let sleep = self
            .config
            .load()
            .sleep_after(self.failed_trials.load(Ordering::Acquire));
        self.opened_at_ms.store(self.millis(now), Ordering::Release);
        self.sleep_ms.store(
            u64::try_from(sleep.as_millis()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        self.hot
            .word
            .store(pack(OPEN, 0, 0, gen_of(word)), Ordering::Release);
    }

    #[cold]
    fn trial_succeeded(&self, generation: u64, now: Stamp) {
        let guard = self.lock();
        let mut word = self.hot.word.load(Ordering::Acquire);
        loop {
            if state_of(word) != HALF_OPEN || gen_of(word) != generation {
                return;
            }
            let ok = ok_of(word) + 1;
            if ok >= u64::from(self.probes.load(Ordering::Acquire)) {
                self.close(&guard, word, now, Reason::TrialsSucceeded);
                return;
            }
            // Trial slots are taken without the lock, so only the success count is changed.
            let next = (word & !(FIELD_MASK << OK_SHIFT)) | (ok << OK_SHIFT);
            match self
                .hot
                .word
                .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(seen) => word = seen,
            }
        }
    }

    #[cold]
    fn trial_failed(&self, generation: u64, now: Stamp, reason: Reason) {
        let guard = self.lock();
        let word = self.hot.word.load(Ordering::Acquire);
        if state_of(word) != HALF_OPEN || gen_of(word) != generation {
            return;
        }
        self.failed_trials.fetch_add(1, Ordering::AcqRel);
        self.open(&guard, word, now);
        self.publish(&guard, State::HalfOpen, State::Open, reason, now);
    }

    #[cold]
    fn return_trial(&self, generation: u64) {
        let mut word = self.hot.word.load(Ordering::Acquire);
        while state_of(word) == HALF_OPEN && gen_of(word) == generation {
            match self.hot.word.compare_exchange_weak(
                word,
                word + (1 << LEFT_SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(seen) => word = seen,
            }
        }
    }

    /// Closes from any state and starts a fresh health window; under the lock.
    fn close(&self, guard: &MutexGuard<'_, ()>, word: u64, now: Stamp, reason: Reason) {
        match &self.health {
            Health::Time { events, cache } => {
                events.reset(now);
                cache.invalidate();
            }
            Health::Count(window) => window.reset(),
        }
        self.consecutive_failures.store(0, Ordering::Release);
        self.failed_trials.store(0, Ordering::Release);
        // A new generation: results of trials admitted before this point are ignored.
        self.hot.word.store(
            pack(CLOSED, 0, 0, next_gen(gen_of(word))),
            Ordering::Release,
        );
        let from = state_name(word);
        if from != State::Closed {
            self.publish(guard, from, State::Closed, reason, now);
        }
    }

    fn publish(
        &self,
        _guard: &MutexGuard<'_, ()>,
        from: State,
        to: State,
        reason: Reason,
        at: Stamp,
    ) {
        match reason {
            Reason::Tripped(health) => tracing::warn!(
                circuit = %self.name, %from, %to, %health, "circuit breaker tripped"
            ),
            Reason::ConsecutiveFailures(n) => tracing::warn!(
                circuit = %self.name, %from, %to, consecutive_failures = n,
                "circuit breaker tripped"
            ),
            _ => tracing::info!(
                circuit = %self.name, %from, %to, ?reason, "circuit breaker transition"
            ),
        }
        // No subscriber is not an error.
        let _ = self.transitions.send(Transition {
            from,
            to,
            reason,
            at: at.to_instant(),
        });
    }
}

/// Leave to run one request, owned by the request's future.
///
/// Give it the request's outcome with [`record`](Self::record). Dropped without an outcome (the
/// request was cancelled, or its future panicked), a trial counts as failed and re-opens the
/// circuit; an ordinary request is not counted.
pub struct Permit {
    shared: Arc<Shared>,
    /// `None` once recorded.
    admission: Option<Admission>,
}

impl Permit {
    /// Whether this permit is a half-open trial.
    pub fn is_trial(&self) -> bool {
        self.admission.as_ref().is_some_and(Admission::is_trial)
    }

    /// Records the request's outcome as a Hystrix event: `Success`; an error event (`Failure`,
    /// `Timeout`, `SemaphoreRejected`, `ThreadPoolRejected`); or anything else, such as
    /// `BadRequest`, which is counted but is neither a success nor a failure for the circuit.
    #[inline]
    pub fn record(mut self, event: Ev) {
        if let Some(admission) = self.admission.take() {
            let s = &*self.shared;
            s.record(admission, event, || s.coarse(), || s.clock.stamp());
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            self.shared.cancel(admission);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("circuit", &self.shared.name)
            .field("trial", &self.is_trial())
            .finish()
    }
}

/// A request's admission by [`Circuit::try_admit`]: a [`Permit`] without its reference to the
/// circuit. Give it to [`Circuit::record`] or [`Circuit::cancel`] of the same circuit.
#[must_use = "an admission must be recorded or cancelled: a lost trial holds the circuit half-open"]
#[derive(Debug)]
pub struct Admission {
    /// The generation of the half-open period, for a trial.
    trial: Option<u64>,
    /// When the request started, if slow calls are watched.
    started: Option<Stamp>,
}

impl Admission {
    /// Whether this admission is a half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial.is_some()
    }
}

impl Shared {
    #[inline]
    fn record(
        &self,
        admission: Admission,
        event: Ev,
        coarse: impl Fn() -> Stamp,
        precise: impl Fn() -> Stamp,
    ) {
        let slow = admission.started.is_some_and(|start| {
            let limit = self.hot.slow_call_nanos.load(Ordering::Relaxed);
            let took = precise().saturating_duration_since(start);
            limit != 0 && took > Duration::from_nanos(limit)
        });
        self.on_outcome(event, admission.trial, slow, coarse());
    }

    fn cancel(&self, admission: Admission) {
        if let Some(generation) = admission.trial {
            self.trial_failed(generation, self.coarse(), Reason::TrialCancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_packing_round_trips() {
        let w = pack(HALF_OPEN, 0x7fff, 0x1234, (1 << 30) - 1);
        assert_eq!(state_of(w), HALF_OPEN);
        assert_eq!(left_of(w), 0x7fff);
        assert_eq!(ok_of(w), 0x1234);
        assert_eq!(gen_of(w), (1 << 30) - 1);
        assert_eq!(next_gen((1 << 30) - 1), 0);
    }
}
