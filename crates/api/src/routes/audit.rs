//! Audit views (auditor and admin): every change of every budget line with
//! before and after figures, the corrections register, the approvals log,
//! and the funder statement per reporting period as CSV. Computed from the
//! grant's recorded history by `projections::audit`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use events::GrantId;
use projections::audit::{Approval, Correction, LineHistory};
use projections::ledger::Projected;
use serde::Deserialize;

use super::{AUDITORS, Param, Route, Values};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{Ids, Params};

/// The grant's decoded history, for auditors; 404 for an unknown grant.
async fn history(state: &AppState, principal: &Principal, grant: &GrantId) -> Result<Arc<Vec<Projected>>, ApiError> {
    super::readable_grant(state, principal, grant).await?;
    Ok(state.history().history(grant).await?)
}

async fn line_history(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
) -> Result<Json<Vec<LineHistory>>, ApiError> {
    let events = history(&state, &principal, &grant).await?;
    projections::audit::line_history(&events).map(Json).map_err(|e| ApiError::Internal(e.to_string()))
}

async fn corrections(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
) -> Result<Json<Vec<Correction>>, ApiError> {
    Ok(Json(projections::audit::corrections(&history(&state, &principal, &grant).await?)))
}

async fn approvals(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
) -> Result<Json<Vec<Approval>>, ApiError> {
    Ok(Json(projections::audit::approvals(&history(&state, &principal, &grant).await?)))
}

/// Query of the statement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// Facts effective on or before this date.
    #[serde(default, deserialize_with = "crate::input::opt_date")]
    pub as_of: Option<NaiveDate>,
}

async fn statement_csv(
    State(state): State<AppState>,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<StatementQuery>,
) -> Result<Response, ApiError> {
    let ledger = state.projector().ledger(&grant).await?.ok_or_else(|| ApiError::NotFound(format!("grant {grant}")))?;
    let statement = projections::statement(&ledger, q.as_of).map_err(|e| match e {
        projections::ViewError::NotAwarded => ApiError::NotFound(format!("grant {grant}")),
        other => ApiError::Internal(other.to_string()),
    })?;
    let csv = projections::audit::statement_csv(&statement);
    let mut r = csv.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{grant}-statement.csv\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// The audit routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/v1/grants/{grant}/audit/line-history", "get_line_history", get(line_history))
            .summary("Every change of every budget line, with before and after figures, who, when and why")
            .roles(AUDITORS)
            .response::<Vec<LineHistory>>(200),
        Route::new(Method::GET, "/api/v1/grants/{grant}/audit/corrections", "get_corrections", get(corrections))
            .summary("The corrections register: original, reversal, replacement")
            .roles(AUDITORS)
            .response::<Vec<Correction>>(200),
        Route::new(Method::GET, "/api/v1/grants/{grant}/audit/approvals", "get_approvals", get(approvals))
            .summary("The approvals log: requests, decisions, period closes and reopens")
            .roles(AUDITORS)
            .response::<Vec<Approval>>(200),
        Route::new(Method::GET, "/api/v1/grants/{grant}/audit/statement.csv", "get_statement_csv", get(statement_csv))
            .summary("The funder statement per reporting period, as CSV")
            .roles(AUDITORS)
            .query(&[Param {
                name: "as_of",
                format: Values::Date,
                description: "facts effective on or before this date",
            }])
            .content("text/csv"),
    ]
}
