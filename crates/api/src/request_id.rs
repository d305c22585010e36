//! A request id for every request: taken from `X-Request-Id` when the
//! caller sends a sane one, generated otherwise; set on the response, on
//! the request's tracing span (so every log line carries it) and in every
//! problem body.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

/// The header carrying the id both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-supplied id kept.
pub const REQUEST_ID_BYTES_MAX: usize = 64;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The current request's id, inside a request.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn sane(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= REQUEST_ID_BYTES_MAX
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// Middleware: assigns the id, opens the span, logs one line per request and
/// records its duration by route template.
pub async fn layer(request: Request, next: Next) -> Response {
    let id = request.headers().get(&X_REQUEST_ID).and_then(sane).unwrap_or_else(|| Uuid::now_v7().to_string());
    let route =
        request.extensions().get::<MatchedPath>().map_or(crate::metrics::ROUTE_UNMATCHED, |p| p.as_str()).to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let started = Instant::now();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request).instrument(span.clone())).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.in_scope(|| tracing::info!(status, micros = elapsed.as_micros() as u64, "served"));
    crate::metrics::request_served(&method, &route, status, elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}
