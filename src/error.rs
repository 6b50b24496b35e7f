//! The errors a command returns, told apart by kind rather than by message.

use std::{error::Error, fmt, sync::Arc, time::Duration};

use hystrix_core::CommandKey;

/// An error shared between the callers that waited on one execution (coalescing) and the
/// fallback that was told about it.
pub type SharedError = Arc<dyn Error + Send + Sync>;

/// Why a command did not produce its dependency's response: the failure class a fallback is
/// told about (Hystrix's events that trigger a fallback, spec §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The circuit was open: the dependency was not called (SHORT_CIRCUITED).
    ShortCircuited,
    /// The command's execution semaphore was full (SEMAPHORE_REJECTED).
    SemaphoreRejected,
    /// The command's thread pool and its queue were full (THREAD_POOL_REJECTED).
    ThreadPoolRejected,
    /// The dependency did not answer within the timeout (TIMEOUT).
    TimedOut,
    /// The dependency answered with an error, or a response classified as a failure (FAILURE).
    Failed,
}

impl FailureKind {
    /// Whether the dependency was called at all.
    pub const fn executed(self) -> bool {
        matches!(self, Self::TimedOut | Self::Failed)
    }
}

/// What a fallback is given besides the request: the class of failure, and the dependency's
/// error when there was one.
#[derive(Clone, Debug)]
pub struct Failure {
    kind: FailureKind,
    error: Option<SharedError>,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, error: Option<SharedError>) -> Self {
        Self { kind, error }
    }

    /// The class of failure.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The dependency's error (or the rejection), if any; `None` when the dependency answered
    /// with a response classified as a failure.
    pub fn error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.error.as_deref()
    }
}

/// Why the fallback did not serve a response either.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum FallbackError {
    /// The command has no fallback and no cached response for the request (FALLBACK_MISSING).
    Missing,
    /// Fallbacks are disabled by configuration (`fallback_enabled = false`).
    Disabled,
    /// The fallback semaphore was full (FALLBACK_REJECTION).
    Rejected,
    /// The fallback itself failed (FALLBACK_FAILURE).
    Failed(SharedError),
}

impl fmt::Display for FallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no fallback"),
            Self::Disabled => f.write_str("fallback disabled"),
            Self::Rejected => f.write_str("fallback rejected (fallback semaphore full)"),
            Self::Failed(e) => write!(f, "fallback failed: {e}"),
        }
    }
}

/// What the caller of a command gets instead of a response.
///
/// [`kind`](Self::kind) says what happened to the request, [`fallback`](Self::fallback) why no
/// fallback answered instead; no string matching needed:
///
/// ```
/// use tower_hystrix::{CommandError, ErrorKind, FallbackError};
///
/// fn retry_later(err: &CommandError) -> bool {
///     matches!(err.kind(), ErrorKind::ShortCircuited | ErrorKind::SemaphoreRejected | ErrorKind::ThreadPoolRejected)
/// }
/// # let _ = retry_later;
/// ```
///
/// Cloning is cheap: the sources are shared.
#[derive(Clone, Debug)]
pub struct CommandError {
    command: CommandKey,
    kind: ErrorKind,
    source: Option<SharedError>,
    fallback: Option<FallbackError>,
    timeout: Option<Duration>,
}

/// What happened to a request that ended in a [`CommandError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request was at fault (BAD_REQUEST): the dependency's error is returned as it is, no
    /// fallback is tried and the circuit's health is untouched.
    BadRequest,
    /// The circuit was open; the dependency was not called.
    ShortCircuited,
    /// The execution semaphore was full; the dependency was not called.
    SemaphoreRejected,
    /// The thread pool was full; the dependency was not called.
    ThreadPoolRejected,
    /// The dependency did not answer in time; the call was dropped.
    TimedOut,
    /// The dependency returned an error, or the command's execution was lost (its thread
    /// panicked).
    Failed,
    /// The dependency returned an error that the classifier counts as a success (not a sign of
    /// ill health, say "not found"): returned as it is, without a fallback.
    Inner,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::BadRequest => "bad request",
            Self::ShortCircuited => "short-circuited (circuit open)",
            Self::SemaphoreRejected => "rejected (execution semaphore full)",
            Self::ThreadPoolRejected => "rejected (thread pool full)",
            Self::TimedOut => "timed out",
            Self::Failed => "failed",
            Self::Inner => "error",
        }
    }
}

impl From<FailureKind> for ErrorKind {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::ShortCircuited => Self::ShortCircuited,
            FailureKind::SemaphoreRejected => Self::SemaphoreRejected,
            FailureKind::ThreadPoolRejected => Self::ThreadPoolRejected,
            FailureKind::TimedOut => Self::TimedOut,
            FailureKind::Failed => Self::Failed,
        }
    }
}

impl CommandError {
    pub(crate) fn bad_request(command: CommandKey, source: SharedError) -> Self {
        Self {
            command,
            kind: ErrorKind::BadRequest,
            source: Some(source),
            fallback: None,
            timeout: None,
        }
    }

    pub(crate) fn inner_error(command: CommandKey, source: SharedError) -> Self {
        Self {
            kind: ErrorKind::Inner,
            ..Self::bad_request(command, source)
        }
    }

    /// A coalesced request whose leader's execution ended without a result (it panicked).
    pub(crate) fn coalesced_lost(command: CommandKey) -> Self {
        Self {
            command,
            kind: ErrorKind::Failed,
            source: Some(Arc::new(Internal(
                "the execution this request was coalesced with ended without a result",
            ))),
            fallback: None,
            timeout: None,
        }
    }

    /// A response future polled again after it completed.
    pub(crate) fn polled_after_completion() -> Self {
        Self {
            command: CommandKey::from("?"),
            kind: ErrorKind::Failed,
            source: Some(Arc::new(Internal("command future polled after completion"))),
            fallback: None,
            timeout: None,
        }
    }

    /// An execution that ended without a result (its task panicked).
    pub(crate) fn lost(command: CommandKey, source: SharedError) -> Self {
        Self {
            command,
            kind: ErrorKind::Failed,
            source: Some(source),
            fallback: None,
            timeout: None,
        }
    }

    pub(crate) fn failed(
        command: CommandKey,
        failure: Failure,
        fallback: FallbackError,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            command,
            kind: failure.kind.into(),
            source: failure.error,
            fallback: Some(fallback),
            timeout,
        }
    }

    /// The command that failed.
    pub fn command(&self) -> &CommandKey {
        &self.command
    }

    /// What happened to the request.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Why no fallback answered; `None` for a bad request, which never falls back.
    pub fn fallback(&self) -> Option<&FallbackError> {
        self.fallback.as_ref()
    }

    /// The dependency's error, or the rejection ([`ShortCircuited`](crate::ShortCircuited),
    /// [`SemaphoreRejected`](crate::SemaphoreRejected), ...), if any.
    pub fn inner(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    /// The dependency's error, if it is an `E`.
    pub fn downcast_inner<E: Error + 'static>(&self) -> Option<&E> {
        self.inner()?.downcast_ref()
    }

    /// The circuit was open.
    pub fn is_short_circuited(&self) -> bool {
        self.kind == ErrorKind::ShortCircuited
    }

    /// The semaphore or the thread pool was full.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::SemaphoreRejected | ErrorKind::ThreadPoolRejected
        )
    }

    /// The dependency did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::TimedOut
    }

    /// The HTTP status a server answers with when it fails this way: 503 when the dependency
    /// was not called (open circuit, full bulkhead), 504 when it timed out, 502 when it failed,
    /// 400 for a bad request.
    pub fn status_code(&self) -> http::StatusCode {
        match self.kind {
            ErrorKind::BadRequest => http::StatusCode::BAD_REQUEST,
            ErrorKind::ShortCircuited
            | ErrorKind::SemaphoreRejected
            | ErrorKind::ThreadPoolRejected => http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::TimedOut => http::StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Failed | ErrorKind::Inner => http::StatusCode::BAD_GATEWAY,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.command)?;
        f.write_str(self.kind.describe())?;
        if let (ErrorKind::TimedOut, Some(t)) = (self.kind, self.timeout) {
            write!(f, " after {} ms", t.as_millis())?;
        }
        if let (ErrorKind::BadRequest | ErrorKind::Failed | ErrorKind::Inner, Some(e)) =
            (self.kind, &self.source)
        {
            write!(f, ": {e}")?;
        }
        if let Some(fallback) = &self.fallback {
            write!(f, "; {fallback}")?;
        }
        Ok(())
    }
}

impl Error for CommandError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.fallback {
            Some(FallbackError::Failed(e)) => Some(&**e),
            _ => self.source.as_deref().map(|e| e as &(dyn Error + 'static)),
        }
    }
}

/// A source of errors of the command itself.
#[derive(Debug)]
struct Internal(&'static str);

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for Internal {}
