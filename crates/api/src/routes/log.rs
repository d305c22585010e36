//! The log as auditors and dashboards read it: a grant's history, the
//! whole log in pages, the live stream (SSE), the NDJSON export and the
//! chain verification.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use events::GrantId;
use futures_util::StreamExt;
use futures_util::stream;
use serde::Deserialize;
use store::export::{ExportFormat, Exporter};
use store::{ChainProblem, Direction, Head, Position, RecordedEvent, StreamStart, Subscription, VerifyOutcome};

use super::{AUDITORS, HISTORY_READERS, Param, Route};
use crate::AppState;
use crate::auth::Principal;
use crate::dto::{EventOut, EventsPage, FirstBad, HeadOut, History, Verified};
use crate::error::{ApiError, FieldError};
use crate::extract::{Ids, Params};

/// Most events one page returns.
pub const PAGE_SIZE_MAX: usize = 1_000;
/// Events per page when the caller does not say.
pub const PAGE_SIZE_DEFAULT: usize = 100;
/// Events sent per SSE batch.
pub const SSE_BATCH_EVENTS: usize = 500;
/// Comment lines keeping an idle SSE connection open.
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read per page of an export.
pub const EXPORT_PAGE_EVENTS: usize = 5_000;

fn limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(PAGE_SIZE_DEFAULT) {
        n @ 1..=PAGE_SIZE_MAX => Ok(n),
        n => Err(ApiError::InvalidQuery(vec![FieldError {
            pointer: "?limit".into(),
            detail: format!("{n} is not between 1 and {PAGE_SIZE_MAX}"),
        }])),
    }
}

const LIMIT: Param = Param { name: "limit", format: "integer", description: "page size, 1..1000 (default 100)" };
const AFTER: Param = Param { name: "after", format: "integer", description: "return events after this log position" };

/// Query of a grant's history.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Events after this stream version (default: from the first).
    pub after_version: Option<u64>,
    /// Page size.
    pub limit: Option<usize>,
}

async fn history(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<HistoryQuery>,
) -> Result<Response, ApiError> {
    let limit = limit(q.limit)?;
    super::readable_grant(&state, &principal, &grant).await?;
    let stream = domain::handler::grant_stream(&grant)?;
    let from = q.after_version.map_or(0, |v| v.saturating_add(1));
    let events = state.store().read_stream(&stream, StreamStart::Version(from), Direction::Forward, limit).await?;
    Ok(Json(History { events: events.iter().map(EventOut::from).collect() }).into_response())
}

/// Query of the log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Events after this position (default 0: from the first).
    pub after: Option<u64>,
    /// Page size.
    pub limit: Option<usize>,
}

async fn events(State(state): State<AppState>, Params(q): Params<LogQuery>) -> Result<Response, ApiError> {
    let limit = limit(q.limit)?;
    let after = q.after.unwrap_or(0);
    let events = state.store().read_all(Position(after), limit).await?;
    let next_after = Some(events.last().map_or(after, |e| e.position.0));
    Ok(Json(EventsPage { events: events.iter().map(EventOut::from).collect(), next_after }).into_response())
}

fn json_line(e: &RecordedEvent) -> String {
    serde_json::to_string(&EventOut::from(e)).unwrap_or_else(|_| "{}".into())
}

/// Query of the live stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Events after this position, unless `Last-Event-ID` says otherwise.
    pub after: Option<u64>,
}

async fn live(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> Result<Response, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).ok_or_else(|| {
            ApiError::InvalidQuery(vec![FieldError {
                pointer: "Last-Event-ID".into(),
                detail: "expected a log position".into(),
            }])
        })?),
    };
    let after = last_event_id.or(q.after).unwrap_or(0);
    let subscription = Subscription::new(state.store(), Position(after));
    let events = stream::unfold(subscription, |mut sub| async move {
        match sub.next_batch(SSE_BATCH_EVENTS).await {
            Ok(batch) => {
                let sent: Vec<Result<Event, Infallible>> = batch
                    .iter()
                    .map(|e| Ok(Event::default().id(e.position.0.to_string()).data(json_line(e))))
                    .collect();
                Some((stream::iter(sent), sub))
            }
            Err(e) => {
                tracing::warn!(error = %e, "live stream ended");
                None
            }
        }
    })
    .flatten()
    .take_until(state.shutting_down())
    .take_until(state.tokens().withdrawn(principal.name.clone()));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE)).into_response())
}

/// Query of the export.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Events after this position (resume an export).
    pub after: Option<u64>,
    /// `ndjson` (default) or `cloudevents`.
    pub format: Option<String>,
}

async fn export(State(state): State<AppState>, Params(q): Params<ExportQuery>) -> Result<Response, ApiError> {
    let format = match q.format.as_deref() {
        None | Some("ndjson") => ExportFormat::Ndjson,
        Some("cloudevents") => ExportFormat::CloudEvents { source: "urn:grantlog".into() },
        Some(other) => {
            return Err(ApiError::InvalidQuery(vec![FieldError {
                pointer: "?format".into(),
                detail: format!("{other:?} is neither ndjson nor cloudevents"),
            }]));
        }
    };
    let store = state.store();
    // The export ends at the head as it is when the request arrives.
    let head = store::EventStore::head(store.as_ref()).await?.map_or(0, |h| h.position.0);
    let start = q.after.unwrap_or(0);
    let previous = store.hash_at(Position(start)).await?.ok_or_else(|| {
        ApiError::InvalidQuery(vec![FieldError {
            pointer: "?after".into(),
            detail: "no event at that position".into(),
        }])
    })?;
    let pages = stream::unfold((start, Exporter::new(format, previous)), move |(after, mut exporter)| {
        let store = Arc::clone(&store);
        async move {
            if after >= head {
                return None;
            }
            match store.read_raw(Position(after), EXPORT_PAGE_EVENTS).await {
                Ok(page) if !page.is_empty() => {
                    let last = page.last().map_or(head, |e| e.position.0);
                    let text = exporter.page(&page, Position(head));
                    Some((Ok::<_, std::io::Error>(text), (last, exporter)))
                }
                Ok(_) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), (head, exporter))),
            }
        }
    });
    let mut response = HttpBody::from_stream(pages).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}

/// Query of a verification.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// An earlier head `POSITION:HASH` that must be a prefix of today's log.
    pub since: Option<String>,
}

async fn verify(State(state): State<AppState>, Params(q): Params<VerifyQuery>) -> Result<Json<Verified>, ApiError> {
    let since = match q.since {
        None => None,
        Some(text) => Some(text.parse::<Head>().map_err(|e| {
            ApiError::InvalidQuery(vec![FieldError { pointer: "?since".into(), detail: e.to_string() }])
        })?),
    };
    let head_out = |h: Head| HeadOut { position: h.position.0, hash: hex::encode(h.hash) };
    Ok(Json(match state.store().verify(since).await? {
        VerifyOutcome::Intact { events, head } => {
            Verified { ok: true, checked: events, head: head.map(head_out), first_bad: None }
        }
        VerifyOutcome::Broken { position, problem } => {
            let head = state.store().head().await?.map(head_out);
            let (expected, actual, what) = match problem {
                ChainProblem::HashMismatch { stored, computed } => {
                    (Some(hex::encode(computed)), Some(hex::encode(stored)), "hash_mismatch")
                }
                ChainProblem::Gap { found } => (Some(position.0.to_string()), Some(found.0.to_string()), "gap"),
                ChainProblem::Undecodable { detail } => (None, Some(detail), "undecodable"),
                ChainProblem::NotAPrefix { expected, found } => {
                    (Some(hex::encode(expected.hash)), found.map(hex::encode), "not_a_prefix")
                }
            };
            Verified {
                ok: false,
                checked: position.0.saturating_sub(1),
                head,
                first_bad: Some(FirstBad { position: position.0, expected, actual, problem: what.into() }),
            }
        }
    }))
}

/// The log routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/v1/grants/{grant}/history", "get_history", get(history))
            .summary("A grant's events in order, as recorded")
            .roles(HISTORY_READERS)
            .query(&[
                Param { name: "after_version", format: "integer", description: "events after this stream version" },
                LIMIT,
            ])
            .response::<History<'static>>(200),
        Route::new(Method::GET, "/api/v1/events", "get_events", get(events))
            .summary("The whole log in pages; `next_after` is the last position returned")
            .roles(AUDITORS)
            .query(&[AFTER, LIMIT])
            .response::<EventsPage<'static>>(200),
        Route::new(Method::GET, "/api/v1/events/stream", "stream_events", get(live))
            .summary("Server-sent events: catch up, then follow live; honours Last-Event-ID")
            .roles(AUDITORS)
            .query(&[AFTER])
            .content("text/event-stream"),
        Route::new(Method::GET, "/api/v1/events/export", "export_events", get(export))
            .summary(
                "Audit export (docs/audit.md): one event a line with the hashed texts, up to the head at the request",
            )
            .roles(AUDITORS)
            .query(&[AFTER, Param { name: "format", format: "string", description: "ndjson (default) or cloudevents" }])
            .content("application/x-ndjson"),
        Route::new(Method::GET, "/api/v1/audit/verify", "verify_chain", get(verify))
            .summary("Recompute the hash chain; with `since`, prove an earlier head is a prefix")
            .roles(AUDITORS)
            .query(&[Param { name: "since", format: "string", description: "an earlier head POSITION:HASH" }])
            .response::<Verified>(200),
    ]
}
