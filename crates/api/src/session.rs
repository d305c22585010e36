//! Browser sessions for the dashboard: the user pastes a token once
//! (`POST /api/v1/session`) and the server answers with a cookie that
//! stands for the token from then on, so neither the page nor its live
//! streams carry an `Authorization` header and the page never keeps the
//! token.
//!
//! - The cookie (`grantlog_session`) is 32 random bytes, `HttpOnly`,
//!   `SameSite=Strict`, `Path=/`, and `Secure` when the server is told it is
//!   behind TLS (`--secure-cookies`, or `X-Forwarded-Proto: https`). Only its
//!   SHA-256 is stored (`sessions` in `api.sqlite`, `api_sessions` on
//!   PostgreSQL), so every server of a shared database knows every session
//!   and a sign-out on one ends it on all.
//! - A session belongs to its token: a revoked or expired token ends its
//!   sessions at once, and the token's role and programmes govern it.
//! - Writes made with the cookie are CSRF-safe twice over: they must carry
//!   the session's own `X-CSRF-Token` (given at sign-in, never in a cookie),
//!   and an `Origin` header, when sent, must be the server's own.
//! - A session lasts [`SESSION_LIFETIME`] at most; `DELETE /api/v1/session`
//!   ends it on the server.

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::apidb::SessionRow;
use crate::auth::{Principal, digest};
use crate::error::ApiError;

/// The cookie's name.
pub const COOKIE: &str = "grantlog_session";
/// The header a cookie-authenticated write carries.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts at most.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(12);

/// A time as sessions store it: UTC, microseconds, `Z`, so that stored
/// times compare as text.
pub fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The session cookie's secret in a request, if it sent one.
pub fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new session for the token whose digest is `token_digest`: its cookie
/// secret and its stored row.
pub fn new_session(token_digest: [u8; 32], now: DateTime<Utc>) -> (String, SessionRow) {
    let secret = format!("gls_{}", random_hex());
    let row = SessionRow {
        digest: digest(&secret),
        token_digest,
        csrf: random_hex(),
        created_at: stamp(now),
        expires_at: stamp(now + SESSION_LIFETIME),
    };
    (secret, row)
}

/// Whether the response should mark the cookie `Secure`.
pub fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config().secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that gives the browser `secret`.
pub fn set_cookie(secret: &str, secure: bool) -> Result<HeaderValue, ApiError> {
    let max_age = SESSION_LIFETIME.num_seconds();
    let flags = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{flags}"))
        .map_err(|e| ApiError::Internal(format!("session cookie: {e}")))
}

/// The `Set-Cookie` value that makes the browser forget the cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static("grantlog_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure")
    } else {
        HeaderValue::from_static("grantlog_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }
}

/// Refuses a request whose `Origin` names another site than the one it was
/// sent to (`Host`). Browsers send `Origin` on every cross-origin request
/// and on same-origin writes; a request without one (curl, a script) is
/// not a browser's cross-site request.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().map_err(|_| ApiError::Csrf("the Origin header is not text"))?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    match origin_host {
        Some(h) if !host.is_empty() && h.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(ApiError::Csrf("the request comes from another origin")),
    }
}

fn unsafe_method(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The stored session a request's cookie names, if it is current.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<SessionRow>, ApiError> {
    let Some(secret) = cookie_secret(headers) else { return Ok(None) };
    state.tokens().data().session(digest(secret), stamp(Utc::now())).await
}

/// Checks a cookie-authenticated write's CSRF token and origin.
pub fn check_csrf(session: &SessionRow, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if !unsafe_method(method) {
        return Ok(());
    }
    same_origin(headers)?;
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    if presented.is_empty() {
        return Err(ApiError::Csrf("a write made with the session cookie needs its X-CSRF-Token header"));
    }
    if bool::from(presented.as_bytes().ct_eq(session.csrf.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Csrf("the X-CSRF-Token header is not this session's"))
    }
}

/// The principal of a request authenticated by its session cookie; `None`
/// when it sent no cookie. A cookie that names no current session, or a
/// session whose token is no longer accepted, is 401; a write without the
/// session's CSRF token is 403.
pub async fn principal(state: &AppState, parts: &Parts) -> Result<Option<Arc<Principal>>, ApiError> {
    if cookie_secret(&parts.headers).is_none() {
        return Ok(None);
    }
    let session = current(state, &parts.headers).await?.ok_or(ApiError::Unauthorized)?;
    let principal =
        state.tokens().authenticate_digest_fresh(&session.token_digest).await.ok_or(ApiError::Unauthorized)?;
    check_csrf(&session, &parts.method, &parts.headers)?;
    Ok(Some(principal))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; grantlog_session=gls_abc ; b=2")]);
        assert_eq!(cookie_secret(&h), Some("gls_abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "grantlog_session=gls_x")]);
        assert_eq!(cookie_secret(&h), Some("gls_x"));
        assert_eq!(cookie_secret(&headers(&[("cookie", "grantlog_session=")])), None);
        assert_eq!(cookie_secret(&headers(&[("cookie", "xgrantlog_session=1")])), None);
    }

    #[test]
    fn another_origin_is_refused_and_none_is_not_a_browser() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])).is_err());
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "null")])).is_err());
        assert!(same_origin(&headers(&[("origin", "http://127.0.0.1:8080")])).is_err(), "no Host");
    }

    #[test]
    fn a_write_needs_the_sessions_own_csrf_token() {
        let (_, row) = new_session([7; 32], Utc::now());
        let post = Method::POST;
        assert!(check_csrf(&row, &Method::GET, &headers(&[])).is_ok(), "reads need none");
        assert!(matches!(check_csrf(&row, &post, &headers(&[])), Err(ApiError::Csrf(_))));
        assert!(check_csrf(&row, &post, &headers(&[("x-csrf-token", "nope")])).is_err());
        assert!(check_csrf(&row, &post, &headers(&[("x-csrf-token", &row.csrf)])).is_ok());
        let cross = headers(&[("x-csrf-token", &row.csrf), ("host", "a:1"), ("origin", "http://b:1")]);
        assert!(check_csrf(&row, &post, &cross).is_err(), "the right token from another origin");
    }

    #[test]
    fn stamps_compare_as_times() {
        let a = Utc::now();
        let b = a + chrono::Duration::microseconds(1);
        assert!(stamp(a) < stamp(b));
        assert!(stamp(a) < stamp(a + SESSION_LIFETIME));
        let (secret, row) = new_session([1; 32], a);
        assert!(secret.starts_with("gls_") && row.digest == digest(&secret) && row.csrf.len() == 64);
    }
}
