//! Cross-origin calls from a browser (CORS), off unless origins are listed
//! (`--cors-allow-origin`). A dashboard served from another origin calls
//! the API with a bearer token; the session cookie is never offered to
//! another origin (it is `SameSite=Strict` and credentials are not allowed
//! here).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The request headers a cross-origin page may send.
const ALLOWED_HEADERS: [HeaderName; 7] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("x-request-id"),
];

/// The answer headers a cross-origin page may read.
const EXPOSED_HEADERS: [HeaderName; 7] = [
    header::ETAG,
    header::LOCATION,
    header::LINK,
    header::RETRY_AFTER,
    HeaderName::from_static("idempotent-replayed"),
    HeaderName::from_static("x-request-id"),
    header::WWW_AUTHENTICATE,
];

/// Checks one configured origin: `*`, or `http(s)://host[:port]` exactly as
/// a browser sends it in `Origin` (no path, no trailing slash, lower case).
pub fn parse_origin(origin: &str) -> Result<Option<HeaderValue>, String> {
    if origin == "*" {
        return Ok(None);
    }
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    let Some(authority) = rest else {
        return Err(format!("CORS origin {origin:?} must start with https:// or http:// (or be *)"));
    };
    let valid = !authority.is_empty()
        && authority.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]".contains(&b));
    if !valid {
        return Err(format!(
            "CORS origin {origin:?} must be scheme://host[:port] in lower case, with no path, query or trailing slash"
        ));
    }
    HeaderValue::from_str(origin).map(Some).map_err(|_| format!("CORS origin {origin:?} is not a header value"))
}

/// The layer for the configured origins; `None` when none are listed.
pub fn layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let mut exact = Vec::new();
    let mut any = false;
    for origin in origins {
        match parse_origin(origin.trim())? {
            Some(value) => exact.push(value),
            None => any = true,
        }
    }
    let allow = if any { AllowOrigin::any() } else { AllowOrigin::list(exact) };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_taken_as_a_browser_sends_them_and_nothing_else() {
        assert!(parse_origin("https://dash.example.org").unwrap().is_some());
        assert!(parse_origin("http://127.0.0.1:5173").unwrap().is_some());
        assert!(parse_origin("http://[::1]:8080").unwrap().is_some());
        assert!(parse_origin("*").unwrap().is_none());
        for bad in [
            "dash.example.org",
            "https://dash.example.org/",
            "https://x.org/app",
            "https://X.org",
            "ftp://x.org",
            "https://",
            "https://x.org?a",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert!(layer(&[]).unwrap().is_none());
        assert!(layer(&["https://a.org".into(), "bad".into()]).is_err());
    }
}
