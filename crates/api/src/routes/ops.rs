//! Operational endpoints: liveness, readiness, the operator's summary,
//! metrics, the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use projections::Status;

use store::{Head, StoreError};

use super::{AUDITORS, Route};
use crate::AppState;
use crate::dto::{HeadOut, Health, Operator};

/// Views further behind the log than this are "catching up": not ready.
pub const READY_LAG_EVENTS_MAX: u64 = 10_000;

async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        head: None,
        projection_position: None,
        lag_events: None,
        backend: None,
        detail: None,
    })
}

/// What `/readyz` says of the log (as read just now) and the views: its
/// status word, HTTP status and why.
fn readiness(state: &AppState, head: &Result<Option<Head>, StoreError>) -> (&'static str, StatusCode, Option<String>) {
    let projector = state.projector();
    match (head, projector.status()) {
        (Err(e), _) => ("failed", StatusCode::SERVICE_UNAVAILABLE, Some(format!("log: {e}"))),
        (_, Status::Failed { position, error }) => {
            ("failed", StatusCode::SERVICE_UNAVAILABLE, Some(format!("views stopped at {position}: {error}")))
        }
        (_, Status::Running | Status::Degraded { .. } | Status::Damaged { .. })
            if projector.lag() > READY_LAG_EVENTS_MAX =>
        {
            ("catching_up", StatusCode::SERVICE_UNAVAILABLE, Some(format!("{} events behind", projector.lag())))
        }
        // The views in memory are current, so reads and writes are served;
        // only the file (what a restart starts from) is behind.
        (_, Status::Degraded { committed, error, attempts }) => (
            "degraded",
            StatusCode::OK,
            Some(format!(
                "the read model file is at position {committed} and its writes fail ({error}); \
                 retried {attempts} times, the views in memory are current"
            )),
        ),
        (_, Status::Damaged { error }) => ("degraded", StatusCode::OK, Some(error)),
        _ => ("ok", StatusCode::OK, None),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let head = state.store().head().await;
    let position = state.projector().position();
    let (status, code, detail) = readiness(&state, &head);
    let head = head.ok().map(|h| h.map_or(0, |h| h.position.0));
    let body = Health {
        status: status.into(),
        head: Some(head.unwrap_or(0)),
        projection_position: Some(position),
        lag_events: head.map(|h| h.saturating_sub(position)),
        backend: Some(state.backend().to_owned()),
        detail,
    };
    (code, Json(body)).into_response()
}

async fn operator(State(state): State<AppState>) -> Json<Operator> {
    let head = state.store().head().await;
    let position = state.projector().position();
    let (status, _, _) = readiness(&state, &head);
    let head = head.ok().flatten();
    let head_position = head.as_ref().map_or(0, |h| h.position.0);
    Json(Operator {
        head: head.map(|h| HeadOut { position: h.position.0, hash: hex::encode(h.hash) }),
        backend: state.backend().to_owned(),
        projection_position: position,
        lag_events: head_position.saturating_sub(position),
        status: status.to_owned(),
        last_verification: state.last_verification(),
    })
}

async fn metrics(State(state): State<AppState>) -> Response {
    let head = state.store().head().await.ok().map(|h| h.map_or(0, |h| h.position.0));
    crate::metrics::grant_cache(state.handler().cache_stats());
    crate::metrics::ledger_cache(state.projector().cache_stats());
    let text = crate::metrics::render(state.projector().lag(), state.projector().position(), head);
    let mut r = text.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

async fn openapi() -> Response {
    let mut r = Json(crate::openapi::document()).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The operational routes (no token needed, but for the operator's summary).
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/healthz", "healthz", get(healthz))
            .summary("The process is alive")
            .response::<Health>(200),
        Route::new(Method::GET, "/readyz", "readyz", get(readyz))
            .summary(
                "The log answers and the views are caught up (503 otherwise); `degraded` (200) while the \
                 read-model file's writes are being retried, or after damage was found in it (the views \
                 are folded from the log meanwhile)",
            )
            .response::<Health>(200)
            .also(503),
        Route::new(Method::GET, "/api/v1/operator", "get_operator", get(operator))
            .summary("The log's head, the views' lag and status, and this server's last chain verification")
            .roles(AUDITORS)
            .response::<Operator>(200),
        Route::new(Method::GET, "/metrics", "metrics", get(metrics))
            .summary("Prometheus metrics")
            .content("text/plain"),
        Route::new(Method::GET, "/openapi.json", "openapi", get(openapi))
            .summary("This document")
            .content("application/json"),
    ]
}
