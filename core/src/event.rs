//! Hystrix event types: what can happen to one execution of a command or a thread pool.
//!
//! The names, flags and stream field names follow Hystrix's `HystrixEventType` (spec §3.5).

use std::fmt;

/// A set of events counted by a [`RollingCounter`](crate::RollingCounter).
///
/// Implemented by [`HystrixEventType`] and [`ThreadPoolEventType`]; each variant maps to a dense
/// index so a bucket is a flat array of counters.
pub trait Event: Copy + fmt::Debug + Send + Sync + 'static {
    /// The number of variants.
    const COUNT: usize;
    /// Every variant, in index order.
    const ALL: &'static [Self];
    /// This variant's dense index, below [`Self::COUNT`].
    fn index(self) -> usize;
}

/// What happened to one execution of a command (spec §3.5).
///
/// The flags mirror Hystrix: [`is_terminal`](Self::is_terminal) events end an execution,
/// [`is_health`](Self::is_health) events enter the health counts that trip a circuit, and
/// [`is_error`](Self::is_error) events count as errors in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HystrixEventType {
    /// A value was delivered (streaming commands).
    Emit,
    /// The execution completed without error.
    Success,
    /// The execution failed.
    Failure,
    /// The execution started but did not complete within its timeout.
    Timeout,
    /// The caller's request was bad: not a health problem of the dependency, no fallback.
    BadRequest,
    /// The circuit was open; the execution was not attempted.
    ShortCircuited,
    /// The thread pool and its queue were full.
    ThreadPoolRejected,
    /// The execution semaphore was full.
    SemaphoreRejected,
    /// The fallback delivered a value (streaming commands).
    FallbackEmit,
    /// The fallback completed.
    FallbackSuccess,
    /// The fallback failed.
    FallbackFailure,
    /// The fallback semaphore was full.
    FallbackRejection,
    /// Fallbacks are disabled for this command.
    FallbackDisabled,
    /// The command has no fallback.
    FallbackMissing,
    /// An error reached the caller.
    ExceptionThrown,
    /// The response came from the cache; nothing was executed.
    ResponseFromCache,
    /// The caller went away before the execution completed.
    Cancelled,
    /// The execution ran on behalf of a batch of collapsed requests.
    Collapsed,
    /// A concurrency gauge update (recorded as a maximum, not a count).
    CommandMaxActive,
}

impl HystrixEventType {
    /// Whether this event ends an execution.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Success
                | Self::BadRequest
                | Self::FallbackSuccess
                | Self::FallbackFailure
                | Self::FallbackRejection
                | Self::FallbackDisabled
                | Self::FallbackMissing
                | Self::ResponseFromCache
                | Self::Cancelled
        )
    }

    /// Whether this event sends the execution to its fallback.
    pub const fn triggers_fallback(self) -> bool {
        matches!(
            self,
            Self::Failure
                | Self::Timeout
                | Self::ShortCircuited
                | Self::ThreadPoolRejected
                | Self::SemaphoreRejected
        )
    }

    /// Whether this event enters the health counts' total (spec §3.6).
    pub const fn is_health(self) -> bool {
        matches!(
            self,
            Self::Success
                | Self::Failure
                | Self::Timeout
                | Self::ThreadPoolRejected
                | Self::SemaphoreRejected
        )
    }

    /// Whether this event counts as an error in the health counts (spec §3.6).
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            Self::Failure | Self::Timeout | Self::ThreadPoolRejected | Self::SemaphoreRejected
        )
    }

    /// Whether the caller receives an error after this event.
    pub const fn is_exception_producing(self) -> bool {
        matches!(
            self,
            Self::BadRequest
                | Self::FallbackFailure
                | Self::FallbackRejection
                | Self::FallbackDisabled
                | Self::FallbackMissing
        )
    }

    /// The event's name as Hystrix spells it, e.g. `THREAD_POOL_REJECTED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Emit => "EMIT",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Timeout => "TIMEOUT",
            Self::BadRequest => "BAD_REQUEST",
            Self::ShortCircuited => "SHORT_CIRCUITED",
            Self::ThreadPoolRejected => "THREAD_POOL_REJECTED",
            Self::SemaphoreRejected => "SEMAPHORE_REJECTED",
            Self::FallbackEmit => "FALLBACK_EMIT",
            Self::FallbackSuccess => "FALLBACK_SUCCESS",
            Self::FallbackFailure => "FALLBACK_FAILURE",
            Self::FallbackRejection => "FALLBACK_REJECTION",
            Self::FallbackDisabled => "FALLBACK_DISABLED",
            Self::FallbackMissing => "FALLBACK_MISSING",
            Self::ExceptionThrown => "EXCEPTION_THROWN",
            Self::ResponseFromCache => "RESPONSE_FROM_CACHE",
            Self::Cancelled => "CANCELLED",
            Self::Collapsed => "COLLAPSED",
            Self::CommandMaxActive => "COMMAND_MAX_ACTIVE",
        }
    }

    /// The `/hystrix.stream` field that carries this event's rolling count (spec §2.1), if any.
    ///
    /// `FALLBACK_DISABLED`, `CANCELLED` and `COMMAND_MAX_ACTIVE` are not streamed as counts.
    pub const fn stream_field(self) -> Option<&'static str> {
        Some(match self {
            Self::Emit => "rollingCountEmit",
            Self::Success => "rollingCountSuccess",
            Self::Failure => "rollingCountFailure",
            Self::Timeout => "rollingCountTimeout",
            Self::BadRequest => "rollingCountBadRequests",
            Self::ShortCircuited => "rollingCountShortCircuited",
            Self::ThreadPoolRejected => "rollingCountThreadPoolRejected",
            Self::SemaphoreRejected => "rollingCountSemaphoreRejected",
            Self::FallbackEmit => "rollingCountFallbackEmit",
            Self::FallbackSuccess => "rollingCountFallbackSuccess",
            Self::FallbackFailure => "rollingCountFallbackFailure",
            Self::FallbackRejection => "rollingCountFallbackRejection",
            Self::FallbackMissing => "rollingCountFallbackMissing",
            Self::ExceptionThrown => "rollingCountExceptionsThrown",
            Self::ResponseFromCache => "rollingCountResponsesFromCache",
            Self::Collapsed => "rollingCountCollapsedRequests",
            Self::FallbackDisabled | Self::Cancelled | Self::CommandMaxActive => return None,
        })
    }

    /// The thread-pool event a command event on a thread-isolated command maps to, if any.
    pub const fn thread_pool_event(self) -> Option<ThreadPoolEventType> {
        match self {
            Self::Success | Self::Failure | Self::Timeout | Self::BadRequest => {
                Some(ThreadPoolEventType::Executed)
            }
            Self::ThreadPoolRejected => Some(ThreadPoolEventType::Rejected),
            _ => None,
        }
    }
}

impl Event for HystrixEventType {
    const COUNT: usize = 19;
    const ALL: &'static [Self] = &[
        Self::Emit,
        Self::Success,
        Self::Failure,
        Self::Timeout,
        Self::BadRequest,
        Self::ShortCircuited,
        Self::ThreadPoolRejected,
        Self::SemaphoreRejected,
        Self::FallbackEmit,
        Self::FallbackSuccess,
        Self::FallbackFailure,
        Self::FallbackRejection,
        Self::FallbackDisabled,
        Self::FallbackMissing,
        Self::ExceptionThrown,
        Self::ResponseFromCache,
        Self::Cancelled,
        Self::Collapsed,
        Self::CommandMaxActive,
    ];

    #[inline]
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for HystrixEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one task of a thread pool (Hystrix's `HystrixEventType.ThreadPool`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThreadPoolEventType {
    /// A thread-isolated execution ran (it ended SUCCESS, FAILURE, TIMEOUT or BAD_REQUEST).
    Executed,
    /// The pool and its queue were full.
    Rejected,
}

impl ThreadPoolEventType {
    /// The event's name as Hystrix spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "EXECUTED",
            Self::Rejected => "REJECTED",
        }
    }
}

impl Event for ThreadPoolEventType {
    const COUNT: usize = 2;
    const ALL: &'static [Self] = &[Self::Executed, Self::Rejected];

    #[inline]
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ThreadPoolEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_match_all() {
        assert_eq!(HystrixEventType::ALL.len(), HystrixEventType::COUNT);
        for (i, e) in HystrixEventType::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e}");
        }
        for (i, e) in ThreadPoolEventType::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e}");
        }
    }

    #[test]
    fn health_flags_follow_spec() {
        use HystrixEventType::*;
        let health: Vec<_> = HystrixEventType::ALL
            .iter()
            .copied()
            .filter(|e| e.is_health())
            .collect();
        assert_eq!(
            health,
            [
                Success,
                Failure,
                Timeout,
                ThreadPoolRejected,
                SemaphoreRejected
            ]
        );
        let errors: Vec<_> = health.iter().copied().filter(|e| e.is_error()).collect();
        assert_eq!(
            errors,
            [Failure, Timeout, ThreadPoolRejected, SemaphoreRejected]
        );
        assert!(!BadRequest.is_health() && !ShortCircuited.is_health());
        assert!(!BadRequest.triggers_fallback());
    }

    #[test]
    fn sixteen_events_are_streamed_as_counts() {
        let streamed = HystrixEventType::ALL
            .iter()
            .filter_map(|e| e.stream_field())
            .count();
        assert_eq!(streamed, 16);
    }
}
