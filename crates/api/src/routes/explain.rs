//! Why a line shows its figures: the events behind each budget line's
//! current budget, open commitments and spending, with their signed
//! contributions (`projections::explain`), as of a date and as known at an
//! instant.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use events::{GrantId, LineId};
use projections::ViewError;
use serde::Deserialize;

use super::views::{AS_OF, KNOWN_AT};
use super::{HISTORY_READERS, Route};
use crate::AppState;
use crate::auth::Principal;
use crate::dto::Explained;
use crate::error::ApiError;
use crate::extract::{Ids, Params};

/// Query of an explanation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    /// Facts effective on or before this business date.
    #[serde(default, deserialize_with = "crate::input::opt_date")]
    pub as_of: Option<NaiveDate>,
    /// Only what had been recorded by this instant.
    pub known_at: Option<DateTime<Utc>>,
}

async fn explained(
    state: &AppState,
    principal: &Principal,
    grant: GrantId,
    line: Option<LineId>,
    q: ExplainQuery,
) -> Result<Json<Explained>, ApiError> {
    super::readable_grant(state, principal, &grant).await?;
    let history = state.history().history(&grant).await?;
    let known = history.iter().take_while(|p| projections::fold::known(p.recorded_at, q.known_at)).count();
    let events = history.get(..known).unwrap_or_default();
    let lines = projections::explain(events, line.as_ref(), q.as_of).map_err(|e| match e {
        ViewError::NotAwarded => ApiError::NotFound(format!("grant {grant} as known then")),
        other => ApiError::Internal(other.to_string()),
    })?;
    if let Some(line) = &line
        && lines.is_empty()
    {
        return Err(ApiError::NotFound(format!("line {line} of grant {grant}")));
    }
    let position = events.last().map_or(0, |p| p.position);
    Ok(Json(Explained { grant, as_of: q.as_of, known_at: q.known_at, position, lines }))
}

async fn explain_grant(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<ExplainQuery>,
) -> Result<Json<Explained>, ApiError> {
    explained(&state, &principal, grant, None, q).await
}

async fn explain_line(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids((grant, line)): Ids<(GrantId, LineId)>,
    Params(q): Params<ExplainQuery>,
) -> Result<Json<Explained>, ApiError> {
    explained(&state, &principal, grant, Some(line), q).await
}

/// The explanation routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/v1/grants/{grant}/explain", "explain_grant", get(explain_grant))
            .summary("Every budget line's current, committed and spent, as the events that sum to them")
            .roles(HISTORY_READERS)
            .query(&[AS_OF, KNOWN_AT])
            .response::<Explained>(200),
        Route::new(Method::GET, "/api/v1/grants/{grant}/lines/{line}/explain", "explain_line", get(explain_line))
            .summary("One budget line's current, committed and spent, as the events that sum to them")
            .roles(HISTORY_READERS)
            .query(&[AS_OF, KNOWN_AT])
            .response::<Explained>(200),
    ]
}
