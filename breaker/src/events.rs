//! Where a circuit with a time window counts the events its health is computed from.

use std::sync::{Mutex, MutexGuard};

use hystrix_core::{
    CommandMetrics, Event, EventCounts, HealthCounts, HystrixEventType as Ev, RollingCounter,
    RollingWindow, Stamp,
};

/// The events health is made of (spec §3.3): successes and the four errors.
const HEALTH: [Ev; 5] = [
    Ev::Success,
    Ev::Failure,
    Ev::Timeout,
    Ev::ThreadPoolRejected,
    Ev::SemaphoreRejected,
];

/// A time window's events.
pub(crate) enum Events {
    /// The circuit's own counter: every outcome is counted here, an error as FAILURE.
    Own(RollingCounter<Ev>),
    /// The counter of a command's metrics, which the command writes with every event and the
    /// circuit only reads: Hystrix's design, where a breaker's health is its command's
    /// metrics, and one write per call fewer.
    Command(Box<FromCommand>),
}

pub(crate) struct FromCommand {
    metrics: CommandMetrics,
    /// The command's cumulative counts of the health events and short circuits when the
    /// window was last emptied: what came before does not count.
    baseline: Mutex<EventCounts<Ev>>,
    /// Successes slower than the slow-call threshold, which the circuit counts as errors and
    /// the command as successes.
    slow: RollingCounter<SlowCall>,
}

/// The one event a circuit reading its command's metrics counts itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlowCall;

impl Event for SlowCall {
    const COUNT: usize = 1;
    const ALL: &'static [Self] = &[SlowCall];

    fn index(self) -> usize {
        0
    }
}

impl Events {
    /// The circuit's own counter over `window`.
    pub(crate) fn own(window: RollingWindow, origin: Stamp) -> Self {
        Self::Own(RollingCounter::new(window, origin))
    }

    /// `metrics`' counter.
    pub(crate) fn command(metrics: &CommandMetrics, origin: Stamp) -> Self {
        Self::Command(Box::new(FromCommand {
            metrics: metrics.clone(),
            baseline: Mutex::new(EventCounts::zero()),
            slow: RollingCounter::new(metrics.config().rolling_stats, origin),
        }))
    }

    /// Counts a request's outcome: `error` if the event is an error or a slow success.
    #[inline]
    pub(crate) fn count(&self, event: Ev, error: bool, now: Stamp) {
        match self {
            Self::Own(counter) => counter.increment(if error { Ev::Failure } else { event }, now),
            Self::Command(from) => {
                // The command counts its events itself; only its slow successes are news.
                if error && !event.is_error() {
                    from.slow.increment(SlowCall, now);
                }
            }
        }
    }

    /// Counts a short-circuited request.
    #[inline]
    pub(crate) fn count_short_circuit(&self, now: Stamp) {
        if let Self::Own(counter) = self {
            counter.increment(Ev::ShortCircuited, now);
        }
    }

    /// The health of the window that ends at `now`.
    pub(crate) fn health(&self, now: Stamp) -> HealthCounts {
        match self {
            Self::Own(counter) => HealthCounts::from_events(&counter.sums(now)),
            Self::Command(from) => {
                let mut health = HealthCounts::from_events(&from.counted(&HEALTH, now));
                let slow = from.slow.sum(SlowCall, now);
                health.errors = (health.errors + slow).min(health.total);
                health
            }
        }
    }

    /// Short-circuited requests in the window that ends at `now`.
    pub(crate) fn short_circuited(&self, now: Stamp) -> u64 {
        match self {
            Self::Own(counter) => counter.sum(Ev::ShortCircuited, now),
            Self::Command(from) => from
                .counted(&[Ev::ShortCircuited], now)
                .get(Ev::ShortCircuited),
        }
    }

    /// Empties the window at `now`: later health counts only later events.
    pub(crate) fn reset(&self, now: Stamp) {
        match self {
            Self::Own(counter) => counter.reset(now),
            Self::Command(from) => {
                let counts = from.metrics.counts();
                let mut baseline = from.baseline();
                for e in HEALTH.into_iter().chain([Ev::ShortCircuited]) {
                    baseline.set(e, counts.cumulative(e));
                }
                from.slow.reset(now);
            }
        }
    }
}

impl FromCommand {
    fn baseline(&self) -> MutexGuard<'_, EventCounts<Ev>> {
        self.baseline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counts of `events` after both the start of the window that ends at `now` and the
    /// last emptying.
    fn counted(&self, events: &[Ev], now: Stamp) -> EventCounts<Ev> {
        let counts = self.metrics.counts();
        let window = counts.sums(now);
        let baseline = self.baseline();
        let mut out = EventCounts::zero();
        for &e in events {
            let after_reset = counts.cumulative(e).saturating_sub(baseline.get(e));
            out.set(e, window.get(e).min(after_reset));
        }
        out
    }
}
