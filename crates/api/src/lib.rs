//! grantlog's REST API (API.md): an axum router over the event log, the
//! command handler and the projected views.
//!
//! - [`app`] builds the router from one route table ([`routes::table`]),
//!   which also generates the OpenAPI document, so the two cannot drift.
//! - [`AppState::open`] opens a data directory: the log (`events.sqlite`),
//!   the views (`views.sqlite`) and the API's own file (`api.sqlite`:
//!   tokens and idempotency records), and bootstraps the admin token.
//! - Every error is RFC 9457 problem+json ([`error::ApiError`]).
//!
//! Only this crate knows HTTP.

pub mod apidb;
pub mod auth;
pub mod dto;
pub mod error;
mod extract;
pub mod input;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod routes;
mod state;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

pub use state::{AppState, Bootstrap, Config};

use crate::error::ApiError;

/// The router for `state`: every route of the table, the limits, request
/// ids, metrics and logs.
pub fn app(state: AppState) -> Router {
    // Install the metrics recorder before the first request records anything.
    let _ = metrics::handle();
    let mut router = Router::new();
    for route in routes::table() {
        router = router.route(route.path, route.handler);
    }
    router
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("a handler panicked".into()).into_response()))
        .layer(middleware::from_fn(request_id::layer))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, HeaderName::from_static("cookie")]))
        .with_state(state)
}

/// Answers 503 when producing a response takes longer than the limit
/// (a streaming body, like SSE, is not limited once it has started).
async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let timeout_ms = state.config().request_timeout_ms;
    match tokio::time::timeout(Duration::from_millis(timeout_ms), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout { timeout_ms }.into_response(),
    }
}
