//! Error types.

use std::{error::Error, fmt};

/// The boxed error a [`CircuitBreaker`](crate::CircuitBreaker) service returns: the inner
/// service's error, or [`ShortCircuited`].
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The circuit was open: the request was rejected without being run.
///
/// Find it with `err.is::<ShortCircuited>()` or `err.downcast_ref::<ShortCircuited>()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortCircuited {
    forced: bool,
}

impl ShortCircuited {
    pub(crate) const fn new(forced: bool) -> Self {
        Self { forced }
    }

    /// Whether the circuit was forced open (by its settings or an operator) rather than
    /// opened by failures.
    pub const fn is_forced(&self) -> bool {
        self.forced
    }
}

impl fmt::Display for ShortCircuited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.forced {
            f.write_str("circuit forced open")
        } else {
            f.write_str("circuit open")
        }
    }
}

impl Error for ShortCircuited {}
