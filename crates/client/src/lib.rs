//! A typed client for grantlog's REST API.
//!
//! Requests are the server's own body types ([`api::dto`]), answers the
//! server's own view types ([`projections`]): a field renamed on the
//! server is a compile error here, not a surprise in production. Every
//! refusal is a [`Problem`] (RFC 9457) with its code, its numbers and the
//! fields it names; writes take [`WriteOptions`] for `Idempotency-Key`
//! and `If-Match`, and answer the grant's new version with it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), grantlog_client::ClientError> {
//! use grantlog_client::{Client, ViewQuery, WriteOptions, dto};
//! let client = Client::new("http://127.0.0.1:8080", "glt_...")?;
//! let body: dto::RecordExpenditure = serde_json::from_value(serde_json::json!({
//!     "id": "E-118", "line": "FP1-CON", "amount": {"amount": "120.00", "currency": "EUR"},
//!     "incurred_on": "2022-12-01", "supplier": "SUP-LAB", "invoice": "INV-118",
//! }))?;
//! let written = client.record_expenditure("nctcr-2022", &body, &WriteOptions::keyed("inv-118")).await?;
//! let budget = client.budget("nctcr-2022", &ViewQuery::at_position(written.answer.position)).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use api::dto;
pub use api::dto::{CommandAnswer, Positioned};
pub use projections::{BudgetView, PortfolioView, timeline::TimelineView};

/// A refusal, as the server's problem+json says it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The problem type: `/problems/<code>` on the server that answered.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Its title.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened, for people.
    pub detail: String,
    /// The stable code (`exceeds-award`, `invalid-body`, ...).
    pub code: String,
    /// The request's id, as the server's log lines carry it.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The fields it is about (`/amount`, `?limit`, `Idempotency-Key`).
    #[serde(default)]
    pub errors: Vec<FieldError>,
    /// The members that explain it (`excess`, `current_version`, ...).
    #[serde(flatten)]
    pub members: Map<String, Value>,
}

/// One field a problem names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// RFC 6901 pointer into the body, `?name` for a query parameter, or a
    /// header's name.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)?;
        for e in &self.errors {
            write!(f, "; {}: {}", e.pointer, e.detail)?;
        }
        Ok(())
    }
}

/// Why a call gave no answer of its type.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused it: nothing was recorded (except where the
    /// problem says otherwise: a 503 on a write may or may not be; retry
    /// it with the same Idempotency-Key).
    #[error("refused: {problem}")]
    Problem {
        /// The problem body.
        problem: Box<Problem>,
        /// Seconds the server asked to wait (`Retry-After`), if it did.
        retry_after: Option<u64>,
    },
    /// The server could not be reached, or the connection failed.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// An answer that is neither the expected body nor a problem.
    #[error("unexpected answer {status} to {request}: {body}")]
    Unexpected {
        /// `METHOD path`.
        request: String,
        /// Its status.
        status: u16,
        /// Its body (at most 2,000 characters).
        body: String,
    },
    /// A body that could not be read as JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl ClientError {
    /// The problem, when the server refused.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// `If-Match` and `Idempotency-Key` for a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Makes the write idempotent: the same request again gets the first
    /// answer (also after a restart); a different request with it is 422.
    pub idempotency_key: Option<String>,
    /// The grant versions the write may proceed from (`None`: any).
    pub if_match: Option<Vec<u64>>,
}

impl WriteOptions {
    /// With an idempotency key.
    pub fn keyed(key: impl Into<String>) -> Self {
        Self { idempotency_key: Some(key.into()), if_match: None }
    }

    /// Only if the grant is at `version` (412 otherwise).
    pub fn if_version(mut self, version: u64) -> Self {
        self.if_match = Some(vec![version]);
        self
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(key) = &self.idempotency_key {
            out.push(("idempotency-key", key.clone()));
        }
        if let Some(versions) = &self.if_match {
            let tags: Vec<String> = versions.iter().map(|v| format!("\"{v}\"")).collect();
            out.push(("if-match", tags.join(", ")));
        }
        out
    }
}

/// A write's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// What was recorded: stream, version, position, events.
    pub answer: CommandAnswer,
    /// The grant's version now, for a later `If-Match`.
    pub version: Option<u64>,
    /// Whether this is the first answer to its idempotency key, replayed.
    pub replayed: bool,
}

/// Which books a view reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewQuery {
    /// Facts effective on or before this date.
    pub as_of: Option<NaiveDate>,
    /// Only what had been recorded by this instant.
    pub known_at: Option<DateTime<Utc>>,
    /// Wait (bounded) until the view has applied this log position.
    pub min_position: Option<u64>,
    /// The day statuses are relative to.
    pub today: Option<NaiveDate>,
}

impl ViewQuery {
    /// As of a business date.
    pub fn as_of(date: NaiveDate) -> Self {
        Self { as_of: Some(date), ..Self::default() }
    }

    /// Once the view includes a write's position (read your writes).
    pub fn at_position(position: u64) -> Self {
        Self { min_position: Some(position), ..Self::default() }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(d) = self.as_of {
            out.push(("as_of", d.to_string()));
        }
        if let Some(t) = self.known_at {
            out.push(("known_at", t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
        }
        if let Some(p) = self.min_position {
            out.push(("min_position", p.to_string()));
        }
        if let Some(d) = self.today {
            out.push(("today", d.to_string()));
        }
        out
    }
}

/// A client of one server, with one token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// The bound on one request unless the caller's `reqwest::Client` sets its own.
const TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:8080`) with a
    /// bearer token, each request bounded by 30 seconds. An error when the
    /// HTTP client cannot be built (its TLS backend failing to start, say):
    /// rather than a client without the bound.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        Ok(Self::with_http(http, base, token))
    }

    /// The same, over a `reqwest::Client` of the caller's (pools, timeouts).
    pub fn with_http(http: reqwest::Client, base: impl Into<String>, token: impl Into<String>) -> Self {
        Self { http, base: base.into().trim_end_matches('/').to_owned(), token: token.into() }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { http: self.http.clone(), base: self.base.clone(), token: token.into() }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&'static str, String)],
        headers: &[(&'static str, String)],
        body: Option<Value>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).map_err(|e| ClientError::Unexpected {
            request: format!("{method} {path}"),
            status: 0,
            body: format!("not a URL: {e}"),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?.to_vec();
        Ok((status, headers, bytes))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&'static str, String)],
        headers: &[(&'static str, String)],
        body: Option<Value>,
    ) -> Result<(T, HeaderMap), ClientError> {
        let request = format!("{method} {path}");
        let (status, headers, bytes) = self.send(method, path, query, headers, body).await?;
        if status.is_success() {
            let value = if bytes.is_empty() { serde_json::from_str("null")? } else { serde_json::from_slice(&bytes)? };
            return Ok((value, headers));
        }
        Err(refusal(request, status, &headers, &bytes))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&'static str, String)]) -> Result<T, ClientError> {
        Ok(self.call(Method::GET, path, query, &[], None).await?.0)
    }

    async fn write(&self, path: &str, body: &impl Serialize, options: &WriteOptions) -> Result<Written, ClientError> {
        let body = serde_json::to_value(body)?;
        let (answer, headers) =
            self.call::<CommandAnswer>(Method::POST, path, &[], &options.headers(), Some(body)).await?;
        let version = headers.get("etag").and_then(|v| v.to_str().ok()).and_then(|t| t.trim_matches('"').parse().ok());
        let replayed = headers.get("idempotent-replayed").is_some_and(|v| v == HeaderValue::from_static("true"));
        Ok(Written { answer, version, replayed })
    }

    // --- reads ---

    /// `GET /api/v1/grants/{grant}/budget`.
    pub async fn budget(&self, grant: &str, at: &ViewQuery) -> Result<BudgetView, ClientError> {
        self.get(&format!("/api/v1/grants/{}/budget", seg(grant)), &at.pairs()).await
    }

    /// `GET /api/v1/grants/{grant}/timeline`.
    pub async fn timeline(&self, grant: &str, at: &ViewQuery) -> Result<TimelineView, ClientError> {
        self.get(&format!("/api/v1/grants/{}/timeline", seg(grant)), &at.pairs()).await
    }

    /// `GET /api/v1/programmes/{programme}/portfolio`.
    pub async fn portfolio(&self, programme: &str, at: &ViewQuery) -> Result<Positioned<PortfolioView>, ClientError> {
        self.get(&format!("/api/v1/programmes/{}/portfolio", seg(programme)), &at.pairs()).await
    }

    /// `GET /api/v1/programmes`: the programmes the token sees.
    pub async fn programmes(&self) -> Result<Vec<dto::ProgrammeOut>, ClientError> {
        self.get("/api/v1/programmes", &[]).await
    }

    /// `GET /api/v1/grants/{grant}/history`: one page of events, as JSON
    /// (each event's payload is its type's own schema).
    pub async fn history(&self, grant: &str, query: &[(&'static str, String)]) -> Result<Value, ClientError> {
        self.get(&format!("/api/v1/grants/{}/history", seg(grant)), query).await
    }

    /// `GET /api/v1/audit/verify`, with an earlier head (`POSITION:HASH`) to prove a prefix.
    pub async fn verify(&self, since: Option<&str>) -> Result<dto::Verified, ClientError> {
        let query: Vec<_> = since.map(|s| ("since", s.to_owned())).into_iter().collect();
        self.get("/api/v1/audit/verify", &query).await
    }

    /// `GET /api/v1/operator`.
    pub async fn operator(&self) -> Result<dto::Operator, ClientError> {
        self.get("/api/v1/operator", &[]).await
    }

    /// `GET /readyz` (a 503 is answered as its body, saying why).
    pub async fn ready(&self) -> Result<dto::Health, ClientError> {
        let (status, headers, bytes) = self.send(Method::GET, "/readyz", &[], &[], None).await?;
        match serde_json::from_slice(&bytes) {
            Ok(health) if status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE => Ok(health),
            _ => Err(refusal("GET /readyz".into(), status, &headers, &bytes)),
        }
    }

    // --- administration ---

    /// `POST /api/v1/programmes`.
    pub async fn create_programme(
        &self,
        body: &dto::CreateProgramme,
        options: &WriteOptions,
    ) -> Result<Written, ClientError> {
        self.write("/api/v1/programmes", body, options).await
    }

    /// `POST /api/v1/tokens`: the only answer that shows the secret.
    pub async fn create_token(&self, body: &dto::CreateToken) -> Result<dto::TokenCreated, ClientError> {
        Ok(self.call(Method::POST, "/api/v1/tokens", &[], &[], Some(serde_json::to_value(body)?)).await?.0)
    }

    /// `DELETE /api/v1/tokens/{name}`.
    pub async fn revoke_token(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/tokens/{}", seg(name));
        let (status, headers, bytes) = self.send(Method::DELETE, &path, &[], &[], None).await?;
        if status.is_success() { Ok(()) } else { Err(refusal(format!("DELETE {path}"), status, &headers, &bytes)) }
    }

    // --- grant writes ---

    /// `POST /api/v1/grants`: award a grant.
    pub async fn create_grant(&self, body: &dto::CreateGrant, options: &WriteOptions) -> Result<Written, ClientError> {
        self.write("/api/v1/grants", body, options).await
    }
}

/// The grant writes: `(method name, body type, path after the grant)`, and
/// those on one of the grant's things: `(name, body, collection, action)`.
macro_rules! grant_writes {
    ($($(#[$doc:meta])* $name:ident($body:ty) => $tail:literal;)*) => {
        impl Client {
            $(
                $(#[$doc])*
                pub async fn $name(&self, grant: &str, body: &$body, options: &WriteOptions) -> Result<Written, ClientError> {
                    self.write(&format!("/api/v1/grants/{}/{}", seg(grant), $tail), body, options).await
                }
            )*
        }
    };
}

macro_rules! grant_actions {
    ($($(#[$doc:meta])* $name:ident($body:ty) => $collection:literal / $action:literal;)*) => {
        impl Client {
            $(
                $(#[$doc])*
                pub async fn $name(&self, grant: &str, id: &str, body: &$body, options: &WriteOptions) -> Result<Written, ClientError> {
                    let path = format!("/api/v1/grants/{}/{}/{}/{}", seg(grant), $collection, seg(id), $action);
                    self.write(&path, body, options).await
                }
            )*
        }
    };
}

grant_writes! {
    /// `POST .../workstreams`.
    create_workstream(dto::CreateWorkstream) => "workstreams";
    /// `POST .../budget-lines`.
    open_budget_line(dto::OpenBudgetLine) => "budget-lines";
    /// `POST .../reporting-periods`.
    define_period(dto::DefinePeriod) => "reporting-periods";
    /// `POST .../commitments`.
    raise_commitment(dto::RaiseCommitment) => "commitments";
    /// `POST .../expenditures`.
    record_expenditure(dto::RecordExpenditure) => "expenditures";
    /// `POST .../reallocations`.
    request_reallocation(dto::RequestReallocation) => "reallocations";
    /// `POST .../amendments`.
    request_amendment(dto::RequestAmendment) => "amendments";
    /// `POST .../milestones`.
    plan_milestone(dto::PlanMilestone) => "milestones";
}

grant_actions! {
    /// `POST .../commitments/{id}/close`.
    close_commitment(dto::Action) => "commitments" / "close";
    /// `POST .../expenditures/{id}/reversal`.
    reverse_expenditure(dto::Action) => "expenditures" / "reversal";
    /// `POST .../reallocations/{id}/approval`.
    approve_reallocation(dto::Action) => "reallocations" / "approval";
    /// `POST .../reallocations/{id}/rejection`.
    reject_reallocation(dto::Action) => "reallocations" / "rejection";
    /// `POST .../amendments/{id}/approval`.
    approve_amendment(dto::Action) => "amendments" / "approval";
    /// `POST .../amendments/{id}/rejection`.
    reject_amendment(dto::Action) => "amendments" / "rejection";
    /// `POST .../milestones/{id}/reschedule`.
    reschedule_milestone(dto::RescheduleMilestone) => "milestones" / "reschedule";
    /// `POST .../milestones/{id}/achieve`.
    achieve_milestone(dto::AchieveMilestone) => "milestones" / "achieve";
    /// `POST .../milestones/{id}/cancel`.
    cancel_milestone(dto::Action) => "milestones" / "cancel";
    /// `POST .../reporting-periods/{id}/close`.
    close_period(dto::Action) => "reporting-periods" / "close";
    /// `POST .../reporting-periods/{id}/reopen`.
    reopen_period(dto::Action) => "reporting-periods" / "reopen";
}

/// A path segment, percent-encoded (ids are `[A-Za-z0-9._-]`, so this
/// changes only what the server would refuse anyway).
fn seg(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The error for a refused answer: its problem when it has one.
fn refusal(request: String, status: StatusCode, headers: &HeaderMap, bytes: &[u8]) -> ClientError {
    let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    match serde_json::from_slice::<Problem>(bytes) {
        Ok(problem) => ClientError::Problem { problem: Box::new(problem), retry_after },
        Err(_) => ClientError::Unexpected {
            request,
            status: status.as_u16(),
            body: String::from_utf8_lossy(bytes).chars().take(2_000).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_problem_keeps_its_code_fields_and_numbers() {
        let body = json!({
            "type": "/problems/exceeds-award", "title": "Exceeds award", "status": 422, "code": "exceeds-award",
            "detail": "...", "request_id": "r1", "excess": {"amount": "0.01", "currency": "EUR"},
            "errors": [{"pointer": "/amount", "detail": "too much"}],
        });
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        let e = refusal("POST /x".into(), StatusCode::UNPROCESSABLE_ENTITY, &headers, body.to_string().as_bytes());
        let ClientError::Problem { problem, retry_after } = &e else { panic!("{e}") };
        assert_eq!(problem.code, "exceeds-award");
        assert_eq!(problem.errors[0].pointer, "/amount");
        assert_eq!(problem.members["excess"]["amount"], "0.01");
        assert_eq!(*retry_after, Some(2));
        assert!(e.to_string().contains("422 exceeds-award"), "{e}");
    }

    #[test]
    fn an_answer_without_a_problem_body_is_unexpected_and_says_what_came() {
        let e = refusal("GET /x".into(), StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>proxy</html>");
        assert!(matches!(&e, ClientError::Unexpected { status: 502, body, .. } if body.contains("proxy")), "{e}");
    }

    #[test]
    fn write_options_send_the_key_and_the_versions_as_strong_tags() {
        let headers = WriteOptions::keyed("k-1").if_version(7).headers();
        assert_eq!(headers, vec![("idempotency-key", "k-1".to_owned()), ("if-match", "\"7\"".to_owned())]);
        assert!(WriteOptions::default().headers().is_empty());
    }

    #[test]
    fn a_view_query_sends_only_what_is_set() {
        let q = ViewQuery { known_at: "2022-07-15T00:00:00Z".parse().ok(), ..ViewQuery::as_of(NaiveDate::MIN) };
        let pairs = q.pairs();
        assert_eq!(pairs[1], ("known_at", "2022-07-15T00:00:00Z".to_owned()));
        assert_eq!(ViewQuery::at_position(80).pairs(), vec![("min_position", "80".to_owned())]);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("nctcr-2022"), "nctcr-2022");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn request_bodies_serialise_to_what_the_server_reads() {
        let body = json!({"id": "E-1", "line": "FP1-CON", "amount": {"amount": "120.00", "currency": "EUR"},
                          "incurred_on": "2022-12-01", "supplier": "S", "invoice": "I-1"});
        let typed: dto::RecordExpenditure = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), body, "absent options are not sent as null");
        let grant = json!({"id": "g", "programme": "p", "funder": "FNR", "title": "T", "acronym": "A",
                           "award": {"amount": "250000.00", "currency": "EUR"}, "start": "2022-01-01",
                           "end": "2022-12-31", "rule_set": "FNR-2022", "indirect_rate": "0.25"});
        let typed: dto::CreateGrant = serde_json::from_value(grant.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), grant);
    }
}
