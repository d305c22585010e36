//! View reads: budget, timeline, portfolio. Each is computed from a grant's
//! ledger (the live one, or one folded as known at an instant) and a
//! business date, by the same functions the projector and rebuilds use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use events::{GrantId, ProgrammeId};
use projections::{BudgetView, GrantLedger, PortfolioView, TimelineView, ViewError};
use serde::Deserialize;

use super::{Param, Route, VIEW_READERS};
use crate::AppState;
use crate::auth::Principal;
use crate::dto::Positioned;
use crate::error::ApiError;
use crate::extract::{Ids, Params};

/// Query of the grant views.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewQuery {
    /// Facts effective on or before this business date.
    #[serde(default, deserialize_with = "crate::input::opt_date")]
    pub as_of: Option<NaiveDate>,
    /// Only what had been recorded by this instant.
    pub known_at: Option<DateTime<Utc>>,
    /// Wait until the views have applied this log position.
    pub min_position: Option<u64>,
    /// The day statuses are relative to (timeline).
    #[serde(default, deserialize_with = "crate::input::opt_date")]
    pub today: Option<NaiveDate>,
}

const AS_OF: Param = Param { name: "as_of", format: "date", description: "facts effective on or before this date" };
const KNOWN_AT: Param =
    Param { name: "known_at", format: "date-time", description: "only what had been recorded by this instant" };
const MIN_POSITION: Param = Param {
    name: "min_position",
    format: "integer",
    description: "wait (bounded) until the view has applied this log position, else 503",
};
const TODAY: Param = Param { name: "today", format: "date", description: "the day statuses are relative to" };

/// Waits for `min_position`, bounded.
async fn caught_up(state: &AppState, min_position: Option<u64>) -> Result<(), ApiError> {
    let Some(min_position) = min_position else { return Ok(()) };
    let wait = Duration::from_millis(state.config().min_position_wait_ms);
    state
        .projector()
        .wait_for(min_position, wait)
        .await
        .map_err(|_| ApiError::NotReady { min_position, applied: state.projector().position() })
}

/// The grant's ledger for a view (which carries the position it reflects);
/// 404 when the grant does not exist or is outside the caller's programmes.
async fn ledger(
    state: &AppState,
    principal: &Principal,
    grant: &GrantId,
    q: &ViewQuery,
) -> Result<Arc<GrantLedger>, ApiError> {
    principal.require(VIEW_READERS)?;
    caught_up(state, q.min_position).await?;
    let not_found = || ApiError::NotFound(format!("grant {grant}"));
    let live = state.projector().ledger(grant).ok_or_else(not_found)?;
    let visible = live.grant.as_ref().is_some_and(|g| principal.sees(&g.programme));
    if !visible {
        return Err(not_found());
    }
    match q.known_at {
        None => Ok(live),
        Some(at) => Ok(Arc::new(state.history().ledger_known_at(grant, Some(at)).await?)),
    }
}

fn view_error(grant: &GrantId) -> impl Fn(ViewError) -> ApiError + '_ {
    move |e| match e {
        ViewError::NotAwarded => ApiError::NotFound(format!("grant {grant} as known then")),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Which grant view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Budget,
    Timeline,
}

/// Most views kept serialised; past it the cache starts over.
pub const VIEW_CACHE_ENTRIES_MAX: usize = 10_000;

type CacheKey = (GrantId, Kind, Option<NaiveDate>, NaiveDate);

/// Serialised live views, valid while the grant's ledger has not moved:
/// dashboards polling a grant cost a lookup, not a fold and a serialisation.
#[derive(Debug, Default)]
pub struct ViewCache {
    entries: Mutex<HashMap<CacheKey, (u64, Bytes)>>,
}

impl ViewCache {
    fn get(&self, key: &CacheKey, ledger_position: u64) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(p, _)| *p == ledger_position).map(|(_, body)| body.clone())
    }

    fn put(&self, key: CacheKey, ledger_position: u64, body: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= VIEW_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(key, (ledger_position, body));
    }
}

/// A view's JSON (which carries its own `position`: the last log position
/// applied to the grant).
fn json_body(body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.into()).into_response()
}

async fn grant_view(
    state: &AppState,
    principal: &Principal,
    grant: GrantId,
    q: ViewQuery,
    kind: Kind,
) -> Result<Response, ApiError> {
    let ledger = ledger(state, principal, &grant, &q).await?;
    let today = q.today.unwrap_or_else(|| Utc::now().date_naive());
    let render = || -> Result<String, ApiError> {
        let json = match kind {
            Kind::Budget => {
                serde_json::to_string(&projections::budget(&ledger, q.as_of, today).map_err(view_error(&grant))?)
            }
            Kind::Timeline => {
                serde_json::to_string(&projections::timeline(&ledger, q.as_of, today).map_err(view_error(&grant))?)
            }
        };
        json.map_err(|e| ApiError::Internal(e.to_string()))
    };
    if q.known_at.is_some() {
        return Ok(json_body(render()?));
    }
    let key = (grant.clone(), kind, q.as_of, today);
    let body = match state.views().get(&key, ledger.position) {
        Some(body) => body,
        None => {
            let body = Bytes::from(render()?);
            state.views().put(key, ledger.position, body.clone());
            body
        }
    };
    Ok(json_body(body))
}

async fn budget(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<ViewQuery>,
) -> Result<Response, ApiError> {
    grant_view(&state, &principal, grant, q, Kind::Budget).await
}

async fn timeline(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<ViewQuery>,
) -> Result<Response, ApiError> {
    grant_view(&state, &principal, grant, q, Kind::Timeline).await
}

/// Query of the portfolio.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortfolioQuery {
    /// Wait until the views have applied this log position.
    pub min_position: Option<u64>,
    /// The day statuses are relative to.
    #[serde(default, deserialize_with = "crate::input::opt_date")]
    pub today: Option<NaiveDate>,
}

async fn portfolio(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(programme): Ids<ProgrammeId>,
    Params(q): Params<PortfolioQuery>,
) -> Result<Json<Positioned<PortfolioView>>, ApiError> {
    principal.require(VIEW_READERS)?;
    caught_up(&state, q.min_position).await?;
    let position = state.projector().position();
    if !principal.sees(&programme) || state.projector().programme(&programme).is_none() {
        return Err(ApiError::NotFound(format!("programme {programme}")));
    }
    let ledgers = state.projector().programme_ledgers(&programme);
    let today = q.today.unwrap_or_else(|| Utc::now().date_naive());
    let view = projections::portfolio(&programme, ledgers.iter().map(Arc::as_ref), today)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(Positioned { view, position }))
}

/// The view routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/v1/grants/{grant}/budget", "get_budget", get(budget))
            .summary("The budget view, as of a date and as known at an instant")
            .roles(VIEW_READERS)
            .query(&[AS_OF, KNOWN_AT, MIN_POSITION, TODAY])
            .response::<BudgetView>(200),
        Route::new(Method::GET, "/api/v1/grants/{grant}/timeline", "get_timeline", get(timeline))
            .summary("The timeline view: milestones, periods, amendments")
            .roles(VIEW_READERS)
            .query(&[AS_OF, KNOWN_AT, MIN_POSITION, TODAY])
            .response::<TimelineView>(200),
        Route::new(Method::GET, "/api/v1/programmes/{programme}/portfolio", "get_portfolio", get(portfolio))
            .summary("A programme's grants at a glance")
            .roles(VIEW_READERS)
            .query(&[MIN_POSITION, TODAY])
            .response::<Positioned<PortfolioView>>(200),
    ]
}
