//! grantlog's REST API (API.md): an axum router over the event log, the
//! command handler and the projected views.
//!
//! - [`app`] builds the router from one route table ([`routes::table`]),
//!   which also generates the OpenAPI document, so the two cannot drift.
//! - [`AppState::open`] opens a data directory: the log (`events.sqlite`),
//!   the views (`views.sqlite`) and the API's own file (`api.sqlite`:
//!   tokens), and bootstraps the admin token. Idempotency is decided by the
//!   log: a key's command id and request fingerprint are stored with the
//!   events it recorded.
//! - Every error is RFC 9457 problem+json ([`error::ApiError`]).
//!
//! Only this crate knows HTTP.

pub mod apidb;
pub mod apidb_pg;
pub mod auth;
pub mod backend;
pub mod catalogue;
pub mod cors;
pub mod dashboard;
pub mod dto;
pub mod error;
mod extract;
pub mod files;
pub mod input;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod problems;
pub mod refusals;
pub mod request_id;
pub mod routes;
pub mod session;
mod state;
pub mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

pub use state::{AppState, Bootstrap, Config, OpenError};

use crate::error::ApiError;

/// The router for `state`: every route of the table, the limits, request
/// ids, metrics and logs.
pub fn app(state: AppState) -> Router {
    // Install the metrics recorder before the first request records anything.
    let _ = metrics::handle();
    let mut router = Router::new();
    for route in routes::table() {
        let meta = routes::RouteMeta { roles: route.roles, status: route.status };
        let handler = route
            .handler
            .route_layer(middleware::from_fn_with_state(state.clone(), routes::enforce_roles))
            .route_layer(axum::Extension(meta));
        router = router.route(route.path, handler);
    }
    let router = router
        .route("/", axum::routing::get(dashboard::index))
        .route("/dashboard/{*path}", axum::routing::get(dashboard::asset))
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("a handler panicked".into()).into_response()))
        .layer(middleware::from_fn_with_state(state.clone(), problems::head_limits))
        .layer(middleware::from_fn(problems::bare_errors))
        .layer(middleware::from_fn(request_id::layer))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, HeaderName::from_static("cookie")]));
    // gzip for clients that ask for it; the default predicate leaves live
    // streams (text/event-stream), images and answers under 32 bytes alone.
    let router = if state.config().compression { router.layer(CompressionLayer::new().gzip(true)) } else { router };
    // `grantlog serve` checks each origin as it parses its flags; an origin
    // that is not one is left out (and said), never widened to any.
    let router = match cors::layer(&state.config().cors_allow_origins) {
        Ok(Some(cors)) => router.layer(cors),
        Ok(None) => router,
        Err(detail) => {
            tracing::error!(%detail, "cross-origin calls stay off");
            router
        }
    };
    router.with_state(state)
}

tokio::task_local! {
    /// Set once a write has handed its command to the log.
    static WRITE_SUBMITTED: Arc<AtomicBool>;
}

/// Called by a write just before its command may reach the log: from then
/// on the request is not timed out, because an error answer could then
/// belong to a write that is recorded. The log itself bounds how long that
/// takes (its queue is bounded and it answers every append).
pub(crate) fn write_submitted() {
    let _ = WRITE_SUBMITTED.try_with(|flag| flag.store(true, Ordering::Release));
}

/// Answers 503 when producing a response takes longer than the limit
/// (a streaming body, like SSE, is not limited once it has started; a write
/// is not limited once submitted to the log, see [`write_submitted`]).
async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let timeout_ms = state.config().request_timeout_ms;
    let submitted = Arc::new(AtomicBool::new(false));
    let run = WRITE_SUBMITTED.scope(Arc::clone(&submitted), next.run(request));
    tokio::pin!(run);
    match tokio::time::timeout(Duration::from_millis(timeout_ms), &mut run).await {
        Ok(response) => response,
        Err(_) if submitted.load(Ordering::Acquire) => run.await,
        Err(_) => ApiError::Timeout { timeout_ms }.into_response(),
    }
}
