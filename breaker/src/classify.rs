//! Deciding whether a response or an error is a success, a failure or a bad request.

use hystrix_core::HystrixEventType;

/// What a request's result means for the circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency failed; counts against its health.
    Failure,
    /// The caller's request was at fault (Hystrix's BAD_REQUEST): not counted for health.
    BadRequest,
}

impl Outcome {
    /// The Hystrix event this outcome records.
    pub const fn event(self) -> HystrixEventType {
        match self {
            Self::Success => HystrixEventType::Success,
            Self::Failure => HystrixEventType::Failure,
            Self::BadRequest => HystrixEventType::BadRequest,
        }
    }
}

/// Classifies every result of a service: each `Ok` response and each `Err`.
///
/// Implemented by [`DefaultClassifier`], [`HttpClassifier`] and any
/// `Fn(Result<&T, &E>) -> Outcome`:
///
/// ```
/// use hystrix_breaker::{Classify, Outcome};
///
/// #[derive(Debug)]
/// enum DbError { NotFound, Unavailable }
///
/// let classify = |r: Result<&String, &DbError>| match r {
///     Ok(_) | Err(DbError::NotFound) => Outcome::Success,
///     Err(DbError::Unavailable) => Outcome::Failure,
/// };
/// assert_eq!(classify.classify(Err(&DbError::NotFound)), Outcome::Success);
/// ```
pub trait Classify<T, E> {
    /// The outcome of one result.
    fn classify(&self, result: Result<&T, &E>) -> Outcome;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(Result<&T, &E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: Result<&T, &E>) -> Outcome {
        self(result)
    }
}

/// Every `Ok` is a success, every `Err` a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClassifier;

impl<T, E> Classify<T, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: Result<&T, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// For `http::Response`s: a 5xx status is a failure, a 4xx one a bad request (the caller's
/// fault, not a sign of the dependency's health), anything else a success; an `Err` (no
/// response at all) is a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpClassifier;

impl<B, E> Classify<http::Response<B>, E> for HttpClassifier {
    #[inline]
    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Outcome {
        match result {
            Ok(res) if res.status().is_server_error() => Outcome::Failure,
            Ok(res) if res.status().is_client_error() => Outcome::BadRequest,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Response, StatusCode};

    fn status(code: u16) -> Response<()> {
        let mut res = Response::new(());
        *res.status_mut() = StatusCode::from_u16(code).unwrap();
        res
    }

    #[test]
    fn http_statuses() {
        let c = HttpClassifier;
        let of = |code| Classify::<_, ()>::classify(&c, Ok(&status(code)));
        assert_eq!(of(200), Outcome::Success);
        assert_eq!(of(204), Outcome::Success);
        assert_eq!(of(302), Outcome::Success);
        assert_eq!(of(400), Outcome::BadRequest);
        assert_eq!(of(404), Outcome::BadRequest);
        assert_eq!(of(500), Outcome::Failure);
        assert_eq!(of(503), Outcome::Failure);
        assert_eq!(of(599), Outcome::Failure);
        let err: Result<&Response<()>, &&str> = Err(&"connection refused");
        assert_eq!(c.classify(err), Outcome::Failure);
    }

    #[test]
    fn default_is_ok_or_err() {
        let ok: Result<&u8, &u8> = Ok(&1);
        let err: Result<&u8, &u8> = Err(&1);
        assert_eq!(DefaultClassifier.classify(ok), Outcome::Success);
        assert_eq!(DefaultClassifier.classify(err), Outcome::Failure);
    }

    #[test]
    fn outcomes_map_to_events() {
        assert_eq!(Outcome::BadRequest.event(), HystrixEventType::BadRequest);
        assert!(Outcome::Failure.event().is_error());
        assert!(!Outcome::BadRequest.event().is_health());
    }
}
