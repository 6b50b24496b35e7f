//! Optional authentication of stream clients: a bearer token or basic credentials.

use std::{fmt, hint::black_box};

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

/// The credentials a client must present in its `Authorization` header.
#[derive(Clone)]
pub(crate) enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(Box<[u8]>),
    /// `Authorization: Basic <base64(user:password)>`, kept encoded.
    Basic(Box<[u8]>),
}

impl Auth {
    pub(crate) fn bearer(token: &str) -> Self {
        Self::Bearer(token.as_bytes().into())
    }

    pub(crate) fn basic(user: &str, password: &str) -> Self {
        Self::Basic(
            base64(format!("{user}:{password}").as_bytes())
                .into_bytes()
                .into(),
        )
    }

    /// Whether the request's `Authorization` header carries these credentials. The scheme is
    /// matched without regard to case; the credentials are compared in time that depends only
    /// on the expected credentials' length, never on where the first difference is.
    pub(crate) fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some(space) = value.iter().position(|b| *b == b' ') else {
            return false;
        };
        let (scheme, credentials) = (&value[..space], value[space + 1..].trim_ascii());
        let (expected_scheme, expected): (&[u8], &[u8]) = match self {
            Self::Bearer(token) => (b"Bearer", token),
            Self::Basic(encoded) => (b"Basic", encoded),
        };
        // Both comparisons run whatever the scheme, so the timing says nothing either way.
        let scheme_ok = scheme.eq_ignore_ascii_case(expected_scheme);
        let credentials_ok = constant_time_eq(credentials, expected);
        scheme_ok & credentials_ok
    }

    /// The `WWW-Authenticate` challenge of a 401 response.
    pub(crate) fn challenge(&self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Bearer(_) => "Bearer realm=\"hystrix.stream\"",
            Self::Basic(_) => "Basic realm=\"hystrix.stream\", charset=\"UTF-8\"",
        })
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bearer(_) => "Bearer(<redacted>)",
            Self::Basic(_) => "Basic(<redacted>)",
        })
    }
}

/// `provided == expected`, in a time that depends only on `expected.len()`.
fn constant_time_eq(provided: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(provided.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        let p = provided.get(i).copied().unwrap_or(0);
        diff |= black_box(p ^ e);
    }
    black_box(diff) == 0
}

/// Standard, padded base64 (RFC 4648 §4), as HTTP basic authentication uses.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.insert(AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("foo:bar", "Zm9vOmJhcg=="),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn compares_whole_values() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret2", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_and_basic_headers() {
        let bearer = Auth::bearer("t0ken");
        assert!(bearer.accepts(&headers(b"Bearer t0ken")));
        assert!(bearer.accepts(&headers(b"bearer  t0ken ")));
        for bad in [
            &b"Bearer t0ken2"[..],
            b"Bearer",
            b"Bearer ",
            b"Basic t0ken",
            b"t0ken",
            b"Bearer t0\xffken",
        ] {
            assert!(!bearer.accepts(&headers(bad)), "{bad:?}");
        }
        assert!(!bearer.accepts(&HeaderMap::new()));

        let basic = Auth::basic("foo", "bar");
        assert!(basic.accepts(&headers(b"Basic Zm9vOmJhcg==")));
        assert!(!basic.accepts(&headers(b"Basic Zm9vOmJhcw==")));
        assert!(!basic.accepts(&headers(b"Bearer Zm9vOmJhcg==")));
        assert!(!basic.accepts(&headers(b"Basic !!!not base64!!!")));
        assert_eq!(format!("{basic:?}"), "Basic(<redacted>)");
    }
}
