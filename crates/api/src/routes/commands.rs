//! Grant writes: every `POST /api/v1/grants...` of API.md. One path for all
//! of them ([`write`]): role, programme scope, `Idempotency-Key`,
//! `If-Match`, the command handler, the answer with its `ETag`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{NaiveDate, Utc};
use domain::grant::GrantCommand;
use domain::grant::state::Grant;
use domain::handler::{CommandResult, Issued};
use events::{AmendmentId, CommitmentId, ExpenditureId, GrantId, MilestoneId, PeriodId, ReallocationId};
use sha2::{Digest, Sha256};
use store::Fingerprint;
use uuid::Uuid;

use super::{Route, RouteMeta, WRITERS};
use crate::AppState;
use crate::auth::Principal;
use crate::dto::{self, CommandAnswer, Envelope};
use crate::error::{ApiError, FieldError};
use crate::extract::Ids;
use crate::json::Body;

/// Longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// The grant as the caller may write it: 404 when it does not exist or is
/// outside the caller's programmes (the role was checked by the route
/// table before the handler ran).
async fn writable(state: &AppState, principal: &Principal, grant: &GrantId) -> Result<Grant, ApiError> {
    match state.handler().awarded(grant).await? {
        Some(g) if principal.sees(&g.programme) => Ok(g),
        _ => Err(ApiError::NotFound(format!("grant {grant}"))),
    }
}

/// What a write carries besides its command.
pub(crate) struct Write<'a> {
    pub principal: &'a Principal,
    pub headers: &'a HeaderMap,
    pub path: String,
    pub body_digest: [u8; 32],
    pub effective_date: Option<NaiveDate>,
    pub reason: Option<String>,
    pub status: StatusCode,
}

impl<'a> Write<'a> {
    pub(crate) fn new(
        principal: &'a Principal,
        headers: &'a HeaderMap,
        path: String,
        body_digest: [u8; 32],
        envelope: &impl Envelope,
        route: RouteMeta,
    ) -> Self {
        Self {
            principal,
            headers,
            path,
            body_digest,
            effective_date: envelope.effective_date(),
            reason: envelope.reason(),
            status: route.status_code(),
        }
    }

    fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(Method::POST.as_str());
        h.update([0]);
        h.update(self.path.as_bytes());
        h.update([0]);
        h.update(self.body_digest);
        h.finalize().into()
    }

    fn idempotency_key(&self) -> Result<Option<String>, ApiError> {
        let Some(v) = self.headers.get("idempotency-key") else { return Ok(None) };
        let bad = |detail: &str| {
            ApiError::InvalidQuery(vec![FieldError { pointer: "Idempotency-Key".into(), detail: detail.into() }])
        };
        let key = v.to_str().map_err(|_| bad("must be visible ASCII"))?;
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("must be 1 to 255 visible ASCII characters"));
        }
        Ok(Some(key.to_owned()))
    }

    /// The `If-Match` header as RFC 9110 reads it: `*` or absent is no
    /// condition; otherwise a list of entity tags, of which the strong ones
    /// are grant versions (a weak tag never matches, by the strong
    /// comparison `If-Match` uses).
    fn if_match(&self) -> Result<IfMatch, ApiError> {
        let Some(v) = self.headers.get(header::IF_MATCH) else { return Ok(IfMatch::Any) };
        let bad = || {
            ApiError::InvalidQuery(vec![FieldError {
                pointer: "If-Match".into(),
                detail: "expected `*` or entity tags of grant versions, e.g. \"7\" or \"7\", \"8\"".into(),
            }])
        };
        let text = v.to_str().map_err(|_| bad())?.trim();
        if text == "*" {
            return Ok(IfMatch::Any);
        }
        let (mut strong, mut weak) = (Vec::new(), Vec::new());
        for tag in text.split(',').map(str::trim) {
            let (list, quoted) = match tag.strip_prefix("W/") {
                Some(rest) => (&mut weak, rest),
                None => (&mut strong, tag),
            };
            let version = quoted.strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or_else(bad)?;
            list.push(version.parse::<u64>().map_err(|_| bad())?);
        }
        Ok(IfMatch::Versions { strong, weak })
    }

    /// The command id: derived from the caller and its key, so that the
    /// log itself refuses a second effect even if the key's record is lost.
    fn command_id(&self, key: Option<&str>) -> Uuid {
        match key {
            Some(key) => {
                let digest = Sha256::new()
                    .chain_update(self.principal.name.as_str())
                    .chain_update([0])
                    .chain_update(key)
                    .finalize();
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&digest[..16]);
                uuid::Builder::from_custom_bytes(bytes).into_uuid()
            }
            None => Uuid::now_v7(),
        }
    }

    pub(crate) fn issued<C>(&self, command: C, key: Option<&str>, expected_version: Option<u64>) -> Issued<C> {
        let mut issued = Issued::new(command, self.principal.name.clone(), Utc::now().date_naive());
        issued.command_id = self.command_id(key);
        issued.fingerprint = key.map(|_| Fingerprint(self.fingerprint()));
        issued.reason = self.reason.clone();
        issued.effective_date = self.effective_date;
        issued.expected_version = expected_version;
        issued.correlation_id = crate::request_id::current().and_then(|id| Uuid::parse_str(&id).ok());
        issued
    }
}

/// What a write's `If-Match` asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IfMatch {
    /// No condition (`*`, or no header).
    Any,
    /// One of these strong tags' versions; the weak ones never match.
    Versions {
        /// Strong tags, in the order given.
        strong: Vec<u64>,
        /// Weak tags (`W/"7"`).
        weak: Vec<u64>,
    },
}

/// Runs a write with its `Idempotency-Key` (if any) and answers it: the
/// command's result, or the first result again (`Idempotent-Replayed:
/// true`) for a retry of a request the log holds. The log decides: a key's
/// command id and request fingerprint are recorded with its events, so the
/// answer is the same after a restart and whatever else was lost.
pub(crate) async fn idempotent<F, Fut>(w: &Write<'_>, run: F) -> Result<Response, ApiError>
where
    F: FnOnce(Option<String>) -> Fut,
    Fut: Future<Output = Result<CommandResult, ApiError>>,
{
    let key = w.idempotency_key()?;
    crate::write_submitted();
    let result = run(key).await?;
    let replayed = result.replayed;
    if !replayed {
        crate::metrics::events_appended(result.events.len());
    }
    let answer = CommandAnswer::from(result);
    // The write is recorded: nothing from here on may answer an error.
    let body = serde_json::to_string(&answer).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a recorded write's answer could not be serialised");
        format!("{{\"version\":{},\"position\":{}}}", answer.version, answer.position)
    });
    let etag = format!("\"{}\"", answer.version);
    let mut r = json_answer(w.status, Some(&etag), body);
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(r)
}

fn json_answer(status: StatusCode, etag: Option<&str>, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        r.headers_mut().insert(header::ETAG, etag);
    }
    r
}

/// Runs a grant command through the handler.
pub(crate) async fn write(
    state: &AppState,
    grant: &GrantId,
    w: Write<'_>,
    command: GrantCommand,
) -> Result<Response, ApiError> {
    let expected = match w.if_match()? {
        IfMatch::Any => None,
        // One tag, the common case: the append checks it, nothing to read.
        IfMatch::Versions { strong, .. } if strong.len() == 1 => strong.first().copied(),
        IfMatch::Versions { strong, weak } => {
            // Several tags, or only weak ones: the version the grant is at
            // decides which tag is meant; the append still checks it, so a
            // write in between is a 412.
            let stream = domain::handler::grant_stream(grant)?;
            let current = state.store().stream_version(&stream).await?;
            match strong.iter().find(|v| Some(**v) == current).or(strong.first()) {
                Some(v) => Some(*v),
                None => {
                    let expected = weak.first().copied().unwrap_or_default();
                    return Err(ApiError::PreconditionFailed { expected, current });
                }
            }
        }
    };
    let w = &w;
    // Which field a refusal is about depends on the command: kept to say so.
    let locate = command.clone();
    idempotent(w, |key| async move {
        let issued = w.issued(command, key.as_deref(), expected);
        Ok(state.handler().execute(grant, &issued).await?)
    })
    .await
    .map_err(|e| match e {
        ApiError::Domain(d) => match crate::refusals::pointer(&locate, &d) {
            Some(pointer) => ApiError::DomainAt(d, pointer),
            None => ApiError::Domain(d),
        },
        other => other,
    })
}

async fn create_grant(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    meta: RouteMeta,
    Body(b, digest): Body<dto::CreateGrant>,
) -> Result<Response, ApiError> {
    if !principal.sees(&b.programme) {
        return Err(ApiError::Forbidden);
    }
    // An id taken in a programme the caller cannot see is refused like any
    // action outside their programmes: a 409 would tell them it exists. The
    // domain refuses an awarded id before anything else, so only that
    // refusal needs the look-up.
    let hidden = async |grant: &GrantId| {
        Ok::<_, ApiError>(state.handler().awarded(grant).await?.is_some_and(|g| !principal.sees(&g.programme)))
    };
    let w = Write::new(&principal, &headers, "/api/v1/grants".into(), digest, &b, meta);
    match write(&state, &b.id.clone(), w, b.command()).await {
        Err(ApiError::Domain(domain::DomainError::GrantAlreadyAwarded)) if hidden(&b.id).await? => {
            Err(ApiError::Forbidden)
        }
        other => other,
    }
}

/// Declares a handler for a grant write: extract the path (the grant, and
/// perhaps one more id) and the body, check the caller may write the grant,
/// build the command, run it.
macro_rules! grant_write {
    ($name:ident, $body:ty, |$b:ident, $g:pat_param| $command:expr) => {
        grant_write!(@handler $name, $body, GrantId, grant, grant, |$b, $g| $command);
    };
    ($name:ident, $body:ty, $id:ident: $id_ty:ty, |$b:ident, $g:pat_param| $command:expr) => {
        grant_write!(@handler $name, $body, (GrantId, $id_ty), (grant, $id), grant, |$b, $g| $command);
    };
    (@handler $name:ident, $body:ty, $ids:ty, $path:pat, $grant:ident, |$b:ident, $g:pat_param| $command:expr) => {
        async fn $name(
            State(state): State<AppState>,
            principal: Arc<Principal>,
            meta: RouteMeta,
            uri: axum::http::Uri,
            Ids($path): Ids<$ids>,
            headers: HeaderMap,
            Body($b, digest): Body<$body>,
        ) -> Result<Response, ApiError> {
            let $g = &writable(&state, &principal, &$grant).await?;
            let w = Write::new(&principal, &headers, uri.path().to_owned(), digest, &$b, meta);
            let command: GrantCommand = $command;
            write(&state, &$grant, w, command).await
        }
    };
}

grant_write!(define_workstream, dto::CreateWorkstream, |b, _| {
    GrantCommand::DefineWorkstream { code: b.code.clone(), title: b.title.clone(), lead: b.lead.clone() }
});
grant_write!(open_budget_line, dto::OpenBudgetLine, |b, _| GrantCommand::OpenBudgetLine {
    workstream: b.workstream.clone(),
    category: b.category.clone(),
    amount: b.amount,
});
grant_write!(define_period, dto::DefinePeriod, |b, _| GrantCommand::DefineReportingPeriod {
    period_id: b.id.clone(),
    start: b.start,
    end: b.end,
    report_due: b.report_due,
});
grant_write!(raise_commitment, dto::RaiseCommitment, |b, _| GrantCommand::RaiseCommitment {
    commitment_id: b.id.clone(),
    line: b.line.clone(),
    amount: b.amount,
    conversion: b.conversion.clone(),
    supplier: b.supplier.clone(),
    reference: b.reference.clone(),
});
grant_write!(request_reallocation, dto::RequestReallocation, |b, g| b.command(g.currency)?);
grant_write!(request_amendment, dto::RequestAmendment, |b, _| {
    GrantCommand::RequestAmendment { amendment_id: b.id.clone(), kind: b.kind, proposed_end: b.proposed_end }
});
grant_write!(plan_milestone, dto::PlanMilestone, |b, _| GrantCommand::PlanMilestone {
    milestone_id: b.id.clone(),
    workstream: b.workstream.clone(),
    kind: b.kind,
    title: b.title.clone(),
    due_on: b.due_on,
    amendment: b.amendment.clone(),
});

async fn record_expenditure(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    meta: RouteMeta,
    uri: axum::http::Uri,
    Ids(grant): Ids<GrantId>,
    headers: HeaderMap,
    Body(b, digest): Body<dto::RecordExpenditure>,
) -> Result<Response, ApiError> {
    writable(&state, &principal, &grant).await?;
    let w = Write::new(&principal, &headers, uri.path().to_owned(), digest, &b, meta);
    let command = GrantCommand::RecordExpenditure {
        expenditure_id: b.id,
        line: b.line,
        amount: b.amount,
        conversion: b.conversion,
        incurred_on: b.incurred_on,
        supplier: b.supplier,
        invoice: b.invoice,
        commitment: b.commitment,
        correction_of: b.correction_of,
    };
    // An expenditure counts from the day it was incurred (the domain's rule):
    // a body that says otherwise is malformed, not silently corrected.
    if let Err(e) = command.effective_date(w.effective_date, Utc::now().date_naive()) {
        return Err(ApiError::InvalidBody(vec![FieldError {
            pointer: "/effective_date".into(),
            detail: e.to_string(),
        }]));
    }
    write(&state, &grant, w, command).await
}

grant_write!(close_period, dto::Action, id: PeriodId, |b, _| GrantCommand::ClosePeriod {
    period_id: id
});
grant_write!(reopen_period, dto::Action, id: PeriodId, |b, _| GrantCommand::ReopenPeriod {
    period_id: id
});
grant_write!(close_commitment, dto::Action, id: CommitmentId, |b, _| {
    GrantCommand::CloseCommitment { commitment_id: id }
});
grant_write!(reverse_expenditure, dto::Action, id: ExpenditureId, |b, _| {
    GrantCommand::ReverseExpenditure { expenditure_id: id }
});
grant_write!(approve_reallocation, dto::Action, id: ReallocationId, |b, _| {
    GrantCommand::ApproveReallocation { reallocation_id: id }
});
grant_write!(reject_reallocation, dto::Action, id: ReallocationId, |b, _| {
    GrantCommand::RejectReallocation { reallocation_id: id }
});
grant_write!(approve_amendment, dto::Action, id: AmendmentId, |b, _| {
    GrantCommand::ApproveAmendment { amendment_id: id }
});
grant_write!(reject_amendment, dto::Action, id: AmendmentId, |b, _| {
    GrantCommand::RejectAmendment { amendment_id: id }
});
grant_write!(reschedule_milestone, dto::RescheduleMilestone, id: MilestoneId, |b, _| {
    GrantCommand::RescheduleMilestone { milestone_id: id, due_on: b.due_on, amendment: b.amendment.clone() }
});
grant_write!(achieve_milestone, dto::AchieveMilestone, id: MilestoneId, |b, _| {
    GrantCommand::AchieveMilestone { milestone_id: id, achieved_on: b.achieved_on, evidence: b.evidence.clone() }
});
grant_write!(cancel_milestone, dto::Action, id: MilestoneId, |b, _| {
    GrantCommand::CancelMilestone { milestone_id: id }
});

/// The grant write routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        w("/api/v1/grants", "create_grant", "Award a grant", create_grant)
            .request::<dto::CreateGrant>()
            .response::<CommandAnswer>(201),
        w("/api/v1/grants/{grant}/workstreams", "define_workstream", "Define a workstream", define_workstream)
            .request::<dto::CreateWorkstream>()
            .response::<CommandAnswer>(201),
        w("/api/v1/grants/{grant}/budget-lines", "open_budget_line", "Open a budget line", open_budget_line)
            .request::<dto::OpenBudgetLine>()
            .response::<CommandAnswer>(201),
        w(
            "/api/v1/grants/{grant}/reporting-periods",
            "define_reporting_period",
            "Define a reporting period",
            define_period,
        )
        .request::<dto::DefinePeriod>()
        .response::<CommandAnswer>(201),
        w(
            "/api/v1/grants/{grant}/reporting-periods/{id}/close",
            "close_reporting_period",
            "Close a reporting period",
            close_period,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
        w(
            "/api/v1/grants/{grant}/reporting-periods/{id}/reopen",
            "reopen_reporting_period",
            "Reopen a closed period (another actor, with a reason)",
            reopen_period,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
        w("/api/v1/grants/{grant}/commitments", "raise_commitment", "Raise a commitment", raise_commitment)
            .request::<dto::RaiseCommitment>()
            .response::<CommandAnswer>(201),
        w(
            "/api/v1/grants/{grant}/commitments/{id}/close",
            "close_commitment",
            "Close a commitment, releasing its open remainder",
            close_commitment,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
        w("/api/v1/grants/{grant}/expenditures", "record_expenditure", "Record an expenditure", record_expenditure)
            .request::<dto::RecordExpenditure>()
            .response::<CommandAnswer>(201),
        w(
            "/api/v1/grants/{grant}/expenditures/{id}/reversal",
            "reverse_expenditure",
            "Reverse an expenditure (with a reason)",
            reverse_expenditure,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
        w(
            "/api/v1/grants/{grant}/reallocations",
            "request_reallocation",
            "Request a reallocation",
            request_reallocation,
        )
        .request::<dto::RequestReallocation>()
        .response::<CommandAnswer>(201),
        w(
            "/api/v1/grants/{grant}/reallocations/{id}/approval",
            "approve_reallocation",
            "Approve a reallocation (another actor)",
            approve_reallocation,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
        w(
            "/api/v1/grants/{grant}/reallocations/{id}/rejection",
            "reject_reallocation",
            "Reject a reallocation (with a reason)",
            reject_reallocation,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
        w("/api/v1/grants/{grant}/amendments", "request_amendment", "Request an amendment", request_amendment)
            .request::<dto::RequestAmendment>()
            .response::<CommandAnswer>(201),
        w(
            "/api/v1/grants/{grant}/amendments/{id}/approval",
            "approve_amendment",
            "Approve an amendment",
            approve_amendment,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
        w(
            "/api/v1/grants/{grant}/amendments/{id}/rejection",
            "reject_amendment",
            "Reject an amendment (with a reason)",
            reject_amendment,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
        w("/api/v1/grants/{grant}/milestones", "plan_milestone", "Plan a milestone", plan_milestone)
            .request::<dto::PlanMilestone>()
            .response::<CommandAnswer>(201),
        w(
            "/api/v1/grants/{grant}/milestones/{id}/reschedule",
            "reschedule_milestone",
            "Reschedule a milestone (with a reason)",
            reschedule_milestone,
        )
        .request::<dto::RescheduleMilestone>()
        .response::<CommandAnswer>(200),
        w(
            "/api/v1/grants/{grant}/milestones/{id}/achieve",
            "achieve_milestone",
            "Mark a milestone achieved",
            achieve_milestone,
        )
        .request::<dto::AchieveMilestone>()
        .response::<CommandAnswer>(200),
        w(
            "/api/v1/grants/{grant}/milestones/{id}/cancel",
            "cancel_milestone",
            "Cancel a milestone (with a reason)",
            cancel_milestone,
        )
        .request::<dto::Action>()
        .response::<CommandAnswer>(200),
    ]
}

fn w<H, T>(path: &'static str, id: &'static str, summary: &'static str, handler: H) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    Route::new(Method::POST, path, id, post(handler)).summary(summary).roles(WRITERS).grant_write()
}
