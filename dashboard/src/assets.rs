//! The web UI, embedded in the binary: plain HTML, CSS and JavaScript, no build step.

use axum::response::{IntoResponse, Response};
use http::{
    HeaderName, HeaderValue,
    header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS},
};

/// One embedded file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asset {
    pub(crate) body: &'static str,
    content_type: &'static str,
}

pub(crate) const INDEX: Asset = html(include_str!("../assets/index.html"));
pub(crate) const MONITOR: Asset = html(include_str!("../assets/monitor.html"));
pub(crate) const STYLE: Asset = Asset {
    body: include_str!("../assets/dashboard.css"),
    content_type: "text/css; charset=utf-8",
};
pub(crate) const START_JS: Asset = js(include_str!("../assets/start.js"));
pub(crate) const MONITOR_JS: Asset = js(include_str!("../assets/monitor.js"));
pub(crate) const FAVICON: Asset = Asset {
    body: include_str!("../assets/favicon.svg"),
    content_type: "image/svg+xml",
};

const fn html(body: &'static str) -> Asset {
    Asset {
        body,
        content_type: "text/html; charset=utf-8",
    }
}

const fn js(body: &'static str) -> Asset {
    Asset {
        body,
        content_type: "text/javascript; charset=utf-8",
    }
}

/// Scripts and styles only from the dashboard itself, no inline script; streams may be read
/// from any origin (those that send CORS headers are read directly).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src *; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

impl IntoResponse for Asset {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        // Small files, revalidated each time so that an upgrade shows at once.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        );
        if self.content_type.starts_with("text/html") {
            headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        }
        response
    }
}
