//! The log as auditors and dashboards read it: a grant's history, the
//! whole log in pages, the live streams (SSE: the whole log's, a grant's, a
//! programme's), the NDJSON export and the chain verification.

use std::collections::HashMap;
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
use events::grant::GrantEvent;
use events::{GrantId, ProgrammeId};
use futures_util::StreamExt;
use futures_util::stream;
use serde::Deserialize;
use store::export::{ExportFormat, Exporter};
use store::{
    ChainProblem, Direction, HEAD_PATTERN, Head, Position, RecordedEvent, StreamId, StreamStart, Subscription,
    VerifyOutcome,
};

use super::{AUDITORS, HISTORY_READERS, Param, Route, VIEW_READERS, Values};
use crate::AppState;
use crate::auth::{Principal, Role};
use crate::dto::{EventOut, EventSummary, EventsPage, FirstBad, HeadOut, History, LastVerification, Verified};
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

const LIMIT: Param = Param {
    name: "limit",
    format: Values::Range(1, PAGE_SIZE_MAX as u64),
    description: "page size, 1..1000 (default 100)",
};
const AFTER: Param =
    Param { name: "after", format: Values::Position, description: "return events after this log position" };

/// Query of a grant's history.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Events after this stream version (oldest first; default: from the first).
    pub after_version: Option<u64>,
    /// Events before this stream version (newest first; default: from the newest).
    pub before_version: Option<u64>,
    /// `asc` (default: oldest first) or `desc` (newest first).
    pub order: Option<Order>,
    /// Page size.
    pub limit: Option<usize>,
}

/// The order of a history page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// A `Link` header naming the next page, when this one was full.
fn next_link(path: &str, query: &str) -> Option<(header::HeaderName, HeaderValue)> {
    HeaderValue::from_str(&format!("<{path}?{query}>; rel=\"next\"")).ok().map(|v| (header::LINK, v))
}

fn with_link(mut response: Response, link: Option<(header::HeaderName, HeaderValue)>) -> Response {
    if let Some((name, value)) = link {
        response.headers_mut().insert(name, value);
    }
    response
}

async fn history(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<HistoryQuery>,
) -> Result<Response, ApiError> {
    let limit = limit(q.limit)?;
    let order = q.order.unwrap_or(Order::Asc);
    let misplaced = match order {
        Order::Asc => q.before_version.is_some().then_some(("?before_version", "goes with order=desc")),
        Order::Desc => q.after_version.is_some().then_some(("?after_version", "goes with order=asc")),
    };
    if let Some((pointer, detail)) = misplaced {
        return Err(ApiError::InvalidQuery(vec![FieldError { pointer: pointer.into(), detail: detail.into() }]));
    }
    super::readable_grant(&state, &principal, &grant).await?;
    let stream = domain::handler::grant_stream(&grant)?;
    let events = match order {
        Order::Asc => {
            let from = q.after_version.map_or(0, |v| v.saturating_add(1));
            state.store().read_stream(&stream, StreamStart::Version(from), Direction::Forward, limit).await?
        }
        Order::Desc => match q.before_version {
            Some(0) => Vec::new(),
            Some(v) => {
                state.store().read_stream(&stream, StreamStart::Version(v - 1), Direction::Backward, limit).await?
            }
            None => state.store().read_stream(&stream, StreamStart::End, Direction::Backward, limit).await?,
        },
    };
    let path = format!("/api/v1/grants/{grant}/history");
    let link = match (events.last(), events.len() == limit, order) {
        (Some(last), true, Order::Asc) => {
            next_link(&path, &format!("after_version={}&limit={limit}", last.stream_version))
        }
        (Some(last), true, Order::Desc) if last.stream_version > 0 => {
            next_link(&path, &format!("order=desc&before_version={}&limit={limit}", last.stream_version))
        }
        _ => None,
    };
    let body = Json(History { events: events.iter().map(EventOut::from).collect() }).into_response();
    Ok(with_link(body, link))
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
    let link = match events.last() {
        Some(last) if events.len() == limit => {
            next_link("/api/v1/events", &format!("after={}&limit={limit}", last.position.0))
        }
        _ => None,
    };
    let body = Json(EventsPage { events: events.iter().map(EventOut::from).collect(), next_after }).into_response();
    Ok(with_link(body, link))
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

/// Where a stream resumes: after `Last-Event-ID` when the client sends one
/// (a reconnection), else after `after`, else from the first event.
fn resume_after(headers: &HeaderMap, after: Option<u64>) -> Result<u64, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).ok_or_else(|| {
            ApiError::InvalidQuery(vec![FieldError {
                pointer: "Last-Event-ID".into(),
                detail: "expected a log position".into(),
            }])
        })?),
    };
    Ok(last_event_id.or(after).unwrap_or(0))
}

/// One SSE event: `id` the log position, `data` the event as `/history`
/// shows it, or only where and what for a viewer.
fn sse_event(e: &RecordedEvent, reduced: bool) -> Result<Event, Infallible> {
    let data = if reduced {
        serde_json::to_string(&EventSummary::from(e)).unwrap_or_else(|_| "{}".into())
    } else {
        json_line(e)
    };
    Ok(Event::default().id(e.position.0.to_string()).data(data))
}

/// What a live stream reads its batches from: the whole log, one grant's
/// events, one programme's.
trait Follow: Send + Sized + 'static {
    /// The next events to send, once there are any.
    fn next_batch(&mut self) -> impl Future<Output = Result<Vec<RecordedEvent>, ApiError>> + Send;
    /// What it follows, for the line logged when it ends.
    fn what(&self) -> String;
}

async fn next_of<F: Follow>(mut follow: F) -> Option<(Vec<RecordedEvent>, F)> {
    match follow.next_batch().await {
        Ok(batch) => Some((batch, follow)),
        Err(e) => {
            tracing::warn!(error = %e, follows = follow.what(), "live stream ended");
            None
        }
    }
}

/// A live stream of batches, as SSE, ended by a shutdown and by the
/// withdrawal of the caller's token.
fn sse<F: Follow>(state: &AppState, principal: &Principal, follow: F) -> Response {
    let reduced = principal.role == Role::Viewer;
    let events = stream::unfold(follow, next_of)
        .flat_map(move |batch| stream::iter(batch.iter().map(|e| sse_event(e, reduced)).collect::<Vec<_>>()))
        .take_until(state.shutting_down())
        .take_until(state.tokens().withdrawn(principal.name.clone()));
    Sse::new(events).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE)).into_response()
}

/// The whole log.
struct LogFollow(Subscription);

impl Follow for LogFollow {
    async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, ApiError> {
        Ok(self.0.next_batch(SSE_BATCH_EVENTS).await?)
    }

    fn what(&self) -> String {
        "the log".to_owned()
    }
}

async fn live(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> Result<Response, ApiError> {
    let after = resume_after(&headers, q.after)?;
    let subscription = Subscription::new(state.store(), Position(after));
    Ok(sse(&state, &principal, LogFollow(subscription)))
}

/// A grant's events: first those up to the head as it was when the stream
/// opened, read from the grant's stream; then, from that head on, the
/// log's, filtered to the grant's stream. Each position is sent once.
struct GrantFollow {
    store: Arc<dyn store::EventStore>,
    stream: StreamId,
    /// While catching up: the next stream version to read.
    catch_up: Option<u64>,
    after: u64,
    head: u64,
    live: Subscription,
}

impl Follow for GrantFollow {
    fn what(&self) -> String {
        self.stream.as_str().to_owned()
    }

    async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, ApiError> {
        while let Some(version) = self.catch_up {
            let page = self
                .store
                .read_stream(&self.stream, StreamStart::Version(version), Direction::Forward, SSE_BATCH_EVENTS)
                .await?;
            self.catch_up = match page.last() {
                Some(last) if page.len() == SSE_BATCH_EVENTS && last.position.0 < self.head => {
                    Some(last.stream_version + 1)
                }
                _ => None,
            };
            let (after, head) = (self.after, self.head);
            let batch: Vec<_> = page.into_iter().filter(|e| e.position.0 > after && e.position.0 <= head).collect();
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
        loop {
            let batch = self.live.next_batch(SSE_BATCH_EVENTS).await?;
            let mine: Vec<_> = batch.into_iter().filter(|e| e.stream_id == self.stream).collect();
            if !mine.is_empty() {
                return Ok(mine);
            }
        }
    }
}

async fn grant_live(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Ids(grant): Ids<GrantId>,
    Params(q): Params<StreamQuery>,
) -> Result<Response, ApiError> {
    super::readable_grant(&state, &principal, &grant).await?;
    let after = resume_after(&headers, q.after)?;
    let stream = domain::handler::grant_stream(&grant)?;
    // The head first: what the stream's read misses, the subscription from
    // the head sees, and nothing is seen by both.
    let head = state.store().head().await?.map_or(0, |h| h.position.0);
    let history = state.history().history(&grant).await?;
    let first = history
        .iter()
        .find(|p| p.position > after)
        .map_or_else(|| history.last().map_or(0, |p| p.version + 1), |p| p.version);
    let follow = GrantFollow {
        store: state.store(),
        stream,
        catch_up: (after < head).then_some(first),
        after,
        head,
        live: Subscription::new(state.store(), Position(after.max(head))),
    };
    Ok(sse(&state, &principal, follow))
}

/// A programme's events: those of its own stream and of its grants' streams,
/// from the log. A grant's programme is looked up once per connection.
struct ProgrammeFollow {
    state: AppState,
    programme: ProgrammeId,
    stream: StreamId,
    live: Subscription,
    members: HashMap<StreamId, bool>,
}

impl ProgrammeFollow {
    /// Whether `e` belongs to the programme.
    async fn member(&mut self, e: &RecordedEvent) -> Result<bool, ApiError> {
        if e.stream_id == self.stream {
            return Ok(true);
        }
        if let Some(known) = self.members.get(&e.stream_id) {
            return Ok(*known);
        }
        let Some(grant) = events::streams::grant_of(e.stream_id.as_str()) else {
            self.members.insert(e.stream_id.clone(), false);
            return Ok(false);
        };
        let live =
            self.state.projector().ledger(&grant).await?.and_then(|l| l.grant.as_ref().map(|g| g.programme.clone()));
        let programme = match live {
            Some(p) => Some(p),
            None => match projections::fold::projected(e).map(|p| p.envelope.event) {
                Ok(GrantEvent::GrantAwarded(a)) => Some(a.programme_id),
                _ => self.state.handler().awarded(&grant).await?.map(|g| g.programme),
            },
        };
        let Some(programme) = programme else { return Ok(false) };
        let member = programme == self.programme;
        self.members.insert(e.stream_id.clone(), member);
        Ok(member)
    }
}

impl Follow for ProgrammeFollow {
    fn what(&self) -> String {
        format!("programme {}", self.programme)
    }

    async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, ApiError> {
        loop {
            let batch = self.live.next_batch(SSE_BATCH_EVENTS).await?;
            let mut mine = Vec::new();
            for e in batch {
                if self.member(&e).await? {
                    mine.push(e);
                }
            }
            if !mine.is_empty() {
                return Ok(mine);
            }
        }
    }
}

async fn programme_live(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Ids(programme): Ids<ProgrammeId>,
    Params(q): Params<StreamQuery>,
) -> Result<Response, ApiError> {
    if !principal.sees(&programme) || state.projector().programme(&programme).is_none() {
        return Err(ApiError::NotFound(format!("programme {programme}")));
    }
    let after = resume_after(&headers, q.after)?;
    let follow = ProgrammeFollow {
        stream: domain::handler::programme_stream(&programme)?,
        live: Subscription::new(state.store(), Position(after)),
        state: state.clone(),
        programme,
        members: HashMap::new(),
    };
    Ok(sse(&state, &principal, follow))
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
    let verified = match state.store().verify(since).await? {
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
    };
    state.set_last_verification(LastVerification {
        at: chrono::Utc::now(),
        ok: verified.ok,
        events: verified.checked,
        head_position: verified.head.as_ref().map(|h| h.position),
        detail: verified.first_bad.as_ref().map(|b| format!("{} at position {}", b.problem, b.position)),
    });
    Ok(Json(verified))
}

/// The log routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/v1/grants/{grant}/history", "get_history", get(history))
            .summary(
                "A grant's events in order, as recorded, oldest or newest first; a full page has a Link to the next",
            )
            .roles(HISTORY_READERS)
            .query(&[
                Param {
                    name: "after_version",
                    format: Values::Position,
                    description: "events after this stream version (order=asc)",
                },
                Param {
                    name: "before_version",
                    format: Values::Position,
                    description: "events before this stream version (order=desc)",
                },
                Param {
                    name: "order",
                    format: Values::Word(&["asc", "desc"]),
                    description: "asc (default: oldest first) or desc (newest first)",
                },
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
            .content("text/event-stream")
            .live(),
        Route::new(Method::GET, "/api/v1/grants/{grant}/events/stream", "stream_grant_events", get(grant_live))
            .summary(
                "Server-sent events of one grant: catch up, then follow live; honours Last-Event-ID; a viewer \
                 sees only each event's position, stream, version, type and dates",
            )
            .roles(VIEW_READERS)
            .query(&[AFTER])
            .content("text/event-stream")
            .live(),
        Route::new(
            Method::GET,
            "/api/v1/programmes/{programme}/events/stream",
            "stream_programme_events",
            get(programme_live),
        )
        .summary(
            "Server-sent events of a programme and its grants: catch up, then follow live; honours \
             Last-Event-ID; a viewer sees only each event's position, stream, version, type and dates",
        )
        .roles(VIEW_READERS)
        .query(&[AFTER])
        .content("text/event-stream")
        .live(),
        Route::new(Method::GET, "/api/v1/events/export", "export_events", get(export))
            .summary(
                "Audit export (docs/audit.md): one event a line with the hashed texts, up to the head at the request",
            )
            .roles(AUDITORS)
            .query(&[
                AFTER,
                Param {
                    name: "format",
                    format: Values::Word(&["ndjson", "cloudevents"]),
                    description: "ndjson (default) or cloudevents",
                },
            ])
            .content("application/x-ndjson"),
        Route::new(Method::GET, "/api/v1/audit/verify", "verify_chain", get(verify))
            .summary("Recompute the hash chain; with `since`, prove an earlier head is a prefix")
            .roles(AUDITORS)
            .query(&[Param {
                name: "since",
                format: Values::Text(HEAD_PATTERN),
                description: "an earlier head POSITION:HASH",
            }])
            .response::<Verified>(200),
    ]
}
