//! View reads: budget, timeline, portfolio, the programmes list. Each is computed from a grant's
//! ledger (the live one, or one folded as known at an instant) and a
//! business date, by the same functions the projector and rebuilds use.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use events::{GrantId, ProgrammeId};
use projections::{BudgetView, GrantLedger, PortfolioView, TimelineView, ViewError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Param, Route, VIEW_READERS, Values};
use crate::AppState;
use crate::auth::Principal;
use crate::dto::{Positioned, ProgrammeOut};
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

pub(super) const AS_OF: Param =
    Param { name: "as_of", format: Values::Date, description: "facts effective on or before this date" };
pub(super) const KNOWN_AT: Param =
    Param { name: "known_at", format: Values::Instant, description: "only what had been recorded by this instant" };
const MIN_POSITION: Param = Param {
    name: "min_position",
    format: Values::Position,
    description: "wait (bounded) until the view has applied this log position, else 503",
};
const TODAY: Param = Param { name: "today", format: Values::Date, description: "the day statuses are relative to" };

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
    caught_up(state, q.min_position).await?;
    let not_found = || ApiError::NotFound(format!("grant {grant}"));
    let live = state.projector().ledger(grant).await?.ok_or_else(not_found)?;
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

/// Most views kept serialised.
pub const VIEW_CACHE_ENTRIES_MAX: usize = 10_000;

/// Default bound on the bytes the view cache holds (bodies and keys): the
/// cache is keyed by the caller's `as_of` and `today`, so without it a
/// caller could fill memory with one large view per distinct date.
pub const VIEW_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What an entry costs beside its body: the key, the map's and the queue's
/// slots (an estimate on the high side).
const ENTRY_OVERHEAD_BYTES: usize = 256;

type CacheKey = (GrantId, Kind, Option<NaiveDate>, NaiveDate);

#[derive(Debug)]
struct Entry {
    position: u64,
    view: Rendered,
    /// When it was put: the eviction queue's entries for older puts of the
    /// same key are stale.
    serial: u64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<CacheKey, Entry>,
    /// Keys oldest first, for eviction.
    order: VecDeque<(CacheKey, u64)>,
    bytes: usize,
    serial: u64,
}

fn cost(key: &CacheKey, body: &Bytes) -> usize {
    body.len() + key.0.as_str().len() + ENTRY_OVERHEAD_BYTES
}

/// Serialised live views, valid while the grant's ledger has not moved:
/// dashboards polling a grant cost a lookup, not a fold and a serialisation.
/// Bounded in bytes (`view_cache_bytes_max`) and in entries; the oldest
/// entries are evicted first, and a view larger than the whole bound is
/// never kept.
#[derive(Debug)]
pub struct ViewCache {
    bytes_max: usize,
    entries: Mutex<Entries>,
}

impl ViewCache {
    /// An empty cache holding at most `bytes_max` bytes.
    pub fn new(bytes_max: usize) -> Self {
        Self { bytes_max, entries: Mutex::new(Entries::default()) }
    }

    fn get(&self, key: &CacheKey, ledger_position: u64) -> Option<Rendered> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.map.get(key).filter(|e| e.position == ledger_position).map(|e| e.view.clone())
    }

    fn put(&self, key: CacheKey, ledger_position: u64, view: Rendered) {
        let cost = cost(&key, &view.body);
        if cost > self.bytes_max {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entries = &mut *entries;
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes -= cost_of(&key, &old);
        }
        while entries.bytes + cost > self.bytes_max || entries.map.len() >= VIEW_CACHE_ENTRIES_MAX {
            let Some((oldest, serial)) = entries.order.pop_front() else { break };
            if entries.map.get(&oldest).is_some_and(|e| e.serial == serial)
                && let Some(evicted) = entries.map.remove(&oldest)
            {
                entries.bytes -= cost_of(&oldest, &evicted);
            }
        }
        entries.serial += 1;
        let serial = entries.serial;
        entries.order.push_back((key.clone(), serial));
        entries.bytes += cost;
        entries.map.insert(key, Entry { position: ledger_position, view, serial });
        // Stale queue slots (keys put again) are dropped once they outnumber
        // the live ones, so the queue stays bounded too.
        if entries.order.len() > 2 * entries.map.len() + 16 {
            let map = &entries.map;
            entries.order.retain(|(k, s)| map.get(k).is_some_and(|e| e.serial == *s));
        }
    }

    /// The bytes accounted to the entries held.
    pub fn bytes(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }

    /// How many views are held.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).map.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn cost_of(key: &CacheKey, entry: &Entry) -> usize {
    cost(key, &entry.view.body)
}

/// A view's JSON (which carries its own `position`: the last log position
/// applied to the grant) with an `ETag` of its bytes, computed once when it
/// is rendered (a cached view is not hashed again on every read).
#[derive(Debug, Clone)]
struct Rendered {
    body: Bytes,
    tag: String,
}

impl Rendered {
    fn new(body: Bytes) -> Self {
        let tag = format!("\"view-{}\"", &hex::encode(Sha256::digest(&body))[..32]);
        Self { body, tag }
    }
}

/// A view's answer: a poller that sends its `ETag` back in `If-None-Match`
/// gets 304 while the view is unchanged. (A view's tag is not a grant
/// version: writes' `If-Match` takes those.)
fn json_body(headers: &HeaderMap, view: Rendered) -> Response {
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == view.tag || t == "*");
    let tag = HeaderValue::from_str(&view.tag);
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], view.body).into_response()
    };
    if let Ok(tag) = tag {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

async fn grant_view(
    state: &AppState,
    principal: &Principal,
    grant: GrantId,
    q: ViewQuery,
    kind: Kind,
    headers: &HeaderMap,
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
        return Ok(json_body(headers, Rendered::new(Bytes::from(render()?))));
    }
    let key = (grant.clone(), kind, q.as_of, today);
    let view = match state.views().get(&key, ledger.position) {
        Some(view) => view,
        None => {
            let view = Rendered::new(Bytes::from(render()?));
            state.views().put(key, ledger.position, view.clone());
            view
        }
    };
    Ok(json_body(headers, view))
}

async fn budget(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<ViewQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    grant_view(&state, &principal, grant, q, Kind::Budget, &headers).await
}

async fn timeline(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<ViewQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    grant_view(&state, &principal, grant, q, Kind::Timeline, &headers).await
}

/// Query of the portfolio.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortfolioQuery {
    /// Facts effective on or before this business date.
    #[serde(default, deserialize_with = "crate::input::opt_date")]
    pub as_of: Option<NaiveDate>,
    /// Only what had been recorded by this instant.
    pub known_at: Option<DateTime<Utc>>,
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
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caught_up(&state, q.min_position).await?;
    let position = state.projector().position();
    if !principal.sees(&programme) || state.projector().programme(&programme).is_none() {
        return Err(ApiError::NotFound(format!("programme {programme}")));
    }
    let today = q.today.unwrap_or_else(|| Utc::now().date_naive());
    if q.as_of.is_none() && q.known_at.is_none() {
        // As of every fact: the grants' standings, kept by the projector,
        // without their ledgers.
        let standings = state.projector().standings(&programme)?;
        let view = projections::portfolio_of(&programme, standings.iter().map(Arc::as_ref), None, today)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let body = serde_json::to_vec(&Positioned { view, position }).map_err(|e| ApiError::Internal(e.to_string()))?;
        return Ok(json_body(&headers, Rendered::new(Bytes::from(body))));
    }
    // As of a date, or as known at an instant: each grant's ledger is read
    // and let go once its standing is worked out, so a request holds one
    // ledger beside the caches, however many grants the programme has.
    let standings = match q.known_at {
        None => state.projector().standings_as_of(&programme, q.as_of).await?,
        Some(at) => {
            // Each grant as its books stood then: one awarded later has no
            // award in its ledger, and the view leaves it out.
            let mut standings = Vec::new();
            for grant in state.projector().programme_grants(&programme).await? {
                let then = state.history().ledger_known_at(&grant, Some(at)).await?;
                if then.grant.as_ref().is_none_or(|g| g.programme != programme) {
                    continue;
                }
                let standing =
                    projections::Standing::of(&then, q.as_of).map_err(|e| ApiError::Internal(e.to_string()))?;
                standings.extend(standing);
            }
            standings
        }
    };
    let view = projections::portfolio_of(&programme, &standings, q.as_of, today)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = serde_json::to_vec(&Positioned { view, position }).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json_body(&headers, Rendered::new(Bytes::from(body))))
}

async fn programmes(State(state): State<AppState>, principal: Arc<Principal>) -> Json<Vec<ProgrammeOut>> {
    let seen = state.projector().programmes().into_iter().filter(|(id, _)| principal.sees(id));
    Json(seen.map(|(id, name)| ProgrammeOut { id, name }).collect())
}

/// The view routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/v1/grants/{grant}/budget", "get_budget", get(budget))
            .summary("The budget view, as of a date and as known at an instant")
            .roles(VIEW_READERS)
            .query(&[AS_OF, KNOWN_AT, MIN_POSITION, TODAY])
            .response::<BudgetView>(200)
            .view_etag(),
        Route::new(Method::GET, "/api/v1/grants/{grant}/timeline", "get_timeline", get(timeline))
            .summary("The timeline view: milestones, periods, amendments")
            .roles(VIEW_READERS)
            .query(&[AS_OF, KNOWN_AT, MIN_POSITION, TODAY])
            .response::<TimelineView>(200)
            .view_etag(),
        Route::new(Method::GET, "/api/v1/programmes/{programme}/portfolio", "get_portfolio", get(portfolio))
            .summary("A programme's grants at a glance")
            .roles(VIEW_READERS)
            .query(&[AS_OF, KNOWN_AT, MIN_POSITION, TODAY])
            .response::<Positioned<PortfolioView>>(200)
            .view_etag(),
        Route::new(Method::GET, "/api/v1/programmes", "list_programmes", get(programmes))
            .summary("The programmes the caller may see, by id")
            .roles(VIEW_READERS)
            .response::<Vec<ProgrammeOut>>(200),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> CacheKey {
        let today = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap() + chrono::Days::new(u64::from(n));
        (GrantId::parse("g-1").unwrap(), Kind::Budget, None, today)
    }

    #[test]
    fn the_cache_never_holds_more_bytes_than_its_bound() {
        let bytes_max = 1024 * 1024;
        let cache = ViewCache::new(bytes_max);
        let body = Bytes::from(vec![b'x'; 50 * 1024]);
        for n in 0..2_000 {
            cache.put(key(n), 7, Rendered::new(body.clone()));
            assert!(cache.bytes() <= bytes_max, "{} bytes after {n} puts", cache.bytes());
        }
        // About 20 views fit: the newest are kept, the oldest evicted.
        assert!((15..=20).contains(&cache.len()), "{} entries", cache.len());
        assert_eq!(cache.get(&key(1_999), 7).map(|v| v.body), Some(body.clone()));
        assert!(cache.get(&key(0), 7).is_none(), "the oldest was evicted");
        assert!(cache.get(&key(1_999), 8).is_none(), "a moved ledger misses");
        let accounted: usize = {
            let e = cache.entries.lock().unwrap();
            assert!(e.order.len() <= 2 * e.map.len() + 16);
            e.map.iter().map(|(k, v)| cost_of(k, v)).sum()
        };
        assert_eq!(accounted, cache.bytes());
    }

    #[test]
    fn a_cached_view_keeps_the_tag_of_its_bytes() {
        let cache = ViewCache::new(64 * 1024);
        let view = Rendered::new(Bytes::from_static(b"{\"position\":7}"));
        cache.put(key(1), 7, view.clone());
        let held = cache.get(&key(1), 7).unwrap();
        assert_eq!(held.tag, Rendered::new(held.body.clone()).tag);
        assert_eq!(held.tag, view.tag);
        assert!(held.tag.starts_with("\"view-") && held.tag.len() == 39, "{}", held.tag);
    }

    #[test]
    fn a_view_put_again_is_counted_once_and_one_too_large_is_not_kept() {
        let cache = ViewCache::new(64 * 1024);
        for position in 0..100 {
            cache.put(key(1), position, Rendered::new(Bytes::from(vec![b'y'; 1_000])));
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), cost(&key(1), &Bytes::from(vec![b'y'; 1_000])));
        cache.put(key(2), 1, Rendered::new(Bytes::from(vec![b'z'; 65 * 1024])));
        assert!(cache.get(&key(2), 1).is_none());
        assert_eq!(cache.len(), 1);
    }
}
