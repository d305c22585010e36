//! Every answer is problem+json: the limits on a request's head (URI and
//! header fields), checked before routing so that their refusals carry a
//! problem body, and a last layer that gives a problem body to any error
//! answer the framework produced bare (405 from the method router, a
//! rejection's plain text).
//!
//! The HTTP server in front (hyper) still answers a head it cannot buffer
//! at all (past its own, larger, buffer) with a bare 431 and closes the
//! connection: those limits are set well above the ones here.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// Longest request target (path and query) accepted.
pub const REQUEST_URI_BYTES_MAX: usize = 8 * 1024;
/// Most bytes of header fields (names and values) accepted.
pub const REQUEST_HEADERS_BYTES_MAX: usize = 32 * 1024;
/// Most header fields accepted.
pub const REQUEST_HEADERS_MAX: usize = 100;

/// Middleware: 414 and 431 problem answers for heads past the limits.
pub async fn head_limits(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.config();
    let uri_bytes = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_bytes > config.request_uri_bytes_max {
        return ApiError::UriTooLong { bytes_max: config.request_uri_bytes_max }.into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if header_bytes > config.request_headers_bytes_max || headers.len() > config.request_headers_max {
        return ApiError::HeadersTooLarge {
            bytes_max: config.request_headers_bytes_max,
            count_max: config.request_headers_max,
        }
        .into_response();
    }
    next.run(request).await
}

/// Middleware: an error answer (4xx, 5xx) that is neither problem+json nor
/// a documented JSON body gets a problem body for its status; its other
/// headers (`Allow` on a 405) are kept.
pub async fn bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json") || v.starts_with("application/json"));
    if json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        other => ApiError::Status(other),
    };
    let problem = error.into_response();
    let (problem_parts, body) = problem.into_parts();
    for (name, value) in &problem_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    Response::from_parts(parts, body)
}
