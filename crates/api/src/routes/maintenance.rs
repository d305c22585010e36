//! Maintenance calls: rebuilding the read models from the log on a running
//! server, with progress and the live-vs-rebuilt comparison.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use chrono::{DateTime, Utc};
use projections::{Opened, RebuildState};
use schemars::JsonSchema;
use serde::Serialize;

use super::{ADMINS, Route};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// A rebuild of the read models, and how the read-model file was found
/// when the server started.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RebuildStatus {
    /// `idle` (none since the start), `running`, `done` or `failed`.
    pub state: String,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Events folded so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// Progress towards `target`: the log is folded grant by grant, so
    /// while running this counts the events folded (positions have no
    /// gaps, so it reaches `target` when the rebuild is done); once done,
    /// the position the rebuilt views reflect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// The position it rebuilds up to (where the live views stood).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
    /// Digest of the live views before the swap (SHA-256 over every
    /// grant's budget, timeline and statement and the programme names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_digest: Option<String>,
    /// Digest of the views rebuilt from the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuilt_digest: Option<String>,
    /// Whether the live views were what the log says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equal: Option<bool>,
    /// Why it failed (the live views were kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the read-model file found untrustworthy at start was moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_aside_at_start: Option<String>,
}

fn status_of(state: &AppState) -> RebuildStatus {
    let projector = state.projector();
    let moved_aside_at_start = match projector.opened() {
        Opened::MovedAside { moved_to, reason } => Some(format!("{} ({reason})", moved_to.display())),
        Opened::Loaded { .. } => None,
    };
    let mut s = RebuildStatus {
        state: String::new(),
        started_at: None,
        finished_at: None,
        events: None,
        position: None,
        target: None,
        live_digest: None,
        rebuilt_digest: None,
        equal: None,
        error: None,
        moved_aside_at_start,
    };
    match projector.rebuild_state() {
        RebuildState::Idle => s.state = "idle".into(),
        RebuildState::Running { started_at, events, position, target } => {
            s.state = "running".into();
            (s.started_at, s.events, s.position, s.target) =
                (Some(started_at), Some(events), Some(position), Some(target));
        }
        RebuildState::Done { started_at, finished_at, report } => {
            s.state = "done".into();
            (s.started_at, s.finished_at) = (Some(started_at), Some(finished_at));
            (s.events, s.position, s.target) = (Some(report.events), Some(report.position), Some(report.position));
            s.equal = Some(report.equal());
            (s.live_digest, s.rebuilt_digest) = (Some(report.live_digest), Some(report.rebuilt_digest));
        }
        RebuildState::Failed { started_at, finished_at, error } => {
            s.state = "failed".into();
            (s.started_at, s.finished_at, s.error) = (Some(started_at), Some(finished_at), Some(error));
        }
    }
    s
}

async fn start_rebuild(State(state): State<AppState>, principal: Arc<Principal>) -> Result<Response, ApiError> {
    state.projector().start_rebuild(Utc::now().date_naive());
    tracing::info!(by = %principal.name, "views rebuild requested");
    Ok((StatusCode::ACCEPTED, Json(status_of(&state))).into_response())
}

async fn rebuild_status(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(status_of(&state)).into_response())
}

/// The maintenance routes.
pub(super) fn routes() -> Vec<Route> {
    const PATH: &str = "/api/v1/admin/rebuild-views";
    vec![
        Route::new(Method::POST, PATH, "rebuild_views", MethodRouter::new().post(start_rebuild))
            .summary(
                "Rebuild the read models from the log in the background (unless a rebuild is running) and \
                 swap them in; answers the rebuild's status. Poll GET for progress and the live-vs-rebuilt \
                 digest comparison",
            )
            .roles(ADMINS)
            .response::<RebuildStatus>(202),
        Route::new(Method::GET, PATH, "rebuild_views_status", MethodRouter::new().get(rebuild_status))
            .summary("The last rebuild of the read models: progress, or the live-vs-rebuilt digest comparison")
            .roles(ADMINS)
            .response::<RebuildStatus>(200),
    ]
}
