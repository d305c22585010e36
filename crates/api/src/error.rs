//! Every error the API answers, as RFC 9457 `application/problem+json`.
//!
//! One enum, one `status_code()` match, one stable machine `code` per kind
//! (the `type` URI ends in it). The domain's refusals keep their own codes
//! and numbers: [`DomainError`] serialises as `{code, ...fields}` and those
//! members go into the problem body as they are. Internal causes are logged
//! once, here, and reach the client only as a fixed message with the request
//! id that the log line also carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::DomainError;
use domain::handler::HandlerError;
use serde::Serialize;
use serde_json::{Map, Value, json};
use store::StoreError;

use crate::request_id;

/// Where problem types live; a type is this base plus the error's code. It
/// is a relative reference (RFC 9457 allows one): it resolves against the
/// server that answered, whose `GET /problems/{code}` explains the type
/// ([`crate::catalogue`]).
pub const PROBLEM_TYPE_BASE: &str = "/problems/";

/// One field-level complaint: a JSON pointer into the request and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// RFC 6901 pointer (`/amount/amount`) or, for query strings, `?name`.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A domain rule refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A domain rule refused the command because of one field of its body
    /// (the pointer): answered as [`ApiError::Domain`], with `errors` too.
    #[error("{0}")]
    DomainAt(DomainError, &'static str),
    /// `If-Match` named another version than the grant's.
    #[error("{}", precondition_detail(*expected, *current))]
    PreconditionFailed {
        /// The version the caller expected.
        expected: u64,
        /// The stream's version (`None`: no such stream yet).
        current: Option<u64>,
    },
    /// The body is not what the endpoint accepts.
    #[error("the request body is invalid")]
    InvalidBody(Vec<FieldError>),
    /// The body nests deeper than allowed.
    #[error("the JSON body nests deeper than {depth_max} levels")]
    JsonTooDeep {
        /// The limit.
        depth_max: usize,
    },
    /// A query parameter or header is invalid.
    #[error("the request's parameters are invalid")]
    InvalidQuery(Vec<FieldError>),
    /// The body is not `application/json`.
    #[error("the request body must be application/json (with at most a charset=utf-8 parameter), not {given:?}")]
    UnsupportedMediaType {
        /// The `Content-Type` given (empty: none).
        given: String,
    },
    /// The body is larger than allowed.
    #[error("the request body is larger than {bytes_max} bytes")]
    PayloadTooLarge {
        /// The limit.
        bytes_max: usize,
    },
    /// No or an unknown bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token's role never allows this call.
    #[error("the token's role does not allow this call")]
    Forbidden,
    /// A write made with a session cookie without the session's
    /// `X-CSRF-Token`, or from another origin.
    #[error("{0}")]
    Csrf(&'static str),
    /// No such thing (or not visible to this token).
    #[error("{0} not found")]
    NotFound(String),
    /// Something with this id exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// An `Idempotency-Key` reused with another request.
    #[error("the Idempotency-Key was used before with a different request")]
    IdempotencyKeyReused,
    /// Too many requests for this token.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// A view has not yet applied the position asked for.
    #[error("the view has applied position {applied}, not yet {min_position}")]
    NotReady {
        /// Asked for.
        min_position: u64,
        /// Applied so far.
        applied: u64,
    },
    /// The request took longer than allowed.
    #[error("the request took longer than {timeout_ms} ms")]
    Timeout {
        /// The limit.
        timeout_ms: u64,
    },
    /// Other writers kept changing the grant.
    #[error("gave up after {attempts} conflicting attempts; retry")]
    TooManyConflicts {
        /// Attempts made.
        attempts: usize,
    },
    /// The disk is full: nothing was recorded.
    #[error("storage is full; nothing was recorded")]
    StorageFull,
    /// The log stopped accepting writes after an I/O error. For the write
    /// whose commit failed, whether it reached the disk is not known: the
    /// answer says so rather than "nothing was recorded".
    #[error(
        "the event log is not accepting writes (it stopped after an I/O error); if this was a write, it may or \
         may not be recorded: retry it with the same Idempotency-Key once the server is back"
    )]
    Unavailable,
    /// The database (PostgreSQL) cannot be reached or did not answer in
    /// time. For a write that met it, whether it was recorded is not known.
    #[error(
        "the database cannot be reached; if this was a write, it may or may not be recorded: retry it with the \
         same Idempotency-Key"
    )]
    DatabaseUnavailable {
        /// What the database driver said (logged, not answered).
        detail: String,
    },
    /// The path exists, but not with this method (the answer carries `Allow`).
    #[error("the method is not allowed here")]
    MethodNotAllowed,
    /// The request target is longer than allowed.
    #[error("the request URI is longer than {bytes_max} bytes")]
    UriTooLong {
        /// The limit.
        bytes_max: usize,
    },
    /// The request's header section is larger than allowed.
    #[error("the request headers are larger than allowed ({bytes_max} bytes, {count_max} fields)")]
    HeadersTooLarge {
        /// The limit on the bytes of all fields.
        bytes_max: usize,
        /// The limit on the number of fields.
        count_max: usize,
    },
    /// An answer the framework produced without a body, given a problem
    /// body after the fact (its status kept).
    #[error("the request was refused ({0})")]
    Status(StatusCode),
    /// A fault of the server; details are logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Domain(e) | ApiError::DomainAt(e, _) => domain_status(e),
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::InvalidBody(_) | ApiError::JsonTooDeep { .. } | ApiError::InvalidQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::Csrf(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Exists(_) | ApiError::TooManyConflicts { .. } => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotReady { .. }
            | ApiError::Timeout { .. }
            | ApiError::Unavailable
            | ApiError::DatabaseUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Status(status) => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code (the `type` URI's last segment).
    pub fn code(&self) -> String {
        match self {
            ApiError::Domain(e) | ApiError::DomainAt(e, _) => domain_code(e),
            ApiError::PreconditionFailed { .. } => "precondition-failed".into(),
            ApiError::InvalidBody(_) => "invalid-body".into(),
            ApiError::JsonTooDeep { .. } => "json-too-deep".into(),
            ApiError::InvalidQuery(_) => "invalid-query".into(),
            ApiError::PayloadTooLarge { .. } => "payload-too-large".into(),
            ApiError::UnsupportedMediaType { .. } => "unsupported-media-type".into(),
            ApiError::Unauthorized => "unauthorized".into(),
            ApiError::Forbidden => "forbidden".into(),
            ApiError::Csrf(_) => "csrf-check-failed".into(),
            ApiError::NotFound(_) => "not-found".into(),
            ApiError::Exists(_) => "exists".into(),
            ApiError::IdempotencyKeyReused => "idempotency-key-reused".into(),
            ApiError::RateLimited { .. } => "rate-limited".into(),
            ApiError::NotReady { .. } => "not-ready".into(),
            ApiError::Timeout { .. } => "request-timeout".into(),
            ApiError::TooManyConflicts { .. } => "too-many-conflicts".into(),
            ApiError::StorageFull => "storage-full".into(),
            ApiError::Unavailable => "log-unavailable".into(),
            ApiError::DatabaseUnavailable { .. } => "database-unavailable".into(),
            ApiError::MethodNotAllowed => "method-not-allowed".into(),
            ApiError::UriTooLong { .. } => "uri-too-long".into(),
            ApiError::HeadersTooLarge { .. } => "headers-too-large".into(),
            ApiError::Status(status) => status_code_name(*status),
            ApiError::Internal(_) => "internal".into(),
        }
    }

    /// The members that explain the error (the numbers, the field errors).
    fn members(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            ApiError::Domain(e) => {
                if let Ok(Value::Object(fields)) = serde_json::to_value(e) {
                    m = fields;
                }
            }
            ApiError::DomainAt(e, pointer) => {
                if let Ok(Value::Object(fields)) = serde_json::to_value(e) {
                    m = fields;
                }
                m.insert("errors".into(), json!([{ "pointer": pointer, "detail": e.to_string() }]));
            }
            ApiError::PreconditionFailed { expected, current } => {
                m.insert("expected_version".into(), json!(expected));
                m.insert("current_version".into(), json!(current));
            }
            ApiError::InvalidBody(errors) | ApiError::InvalidQuery(errors) => {
                m.insert("errors".into(), json!(errors));
            }
            ApiError::JsonTooDeep { depth_max } => {
                m.insert("depth_max".into(), json!(depth_max));
            }
            ApiError::PayloadTooLarge { bytes_max } => {
                m.insert("bytes_max".into(), json!(bytes_max));
            }
            ApiError::RateLimited { retry_after_secs } => {
                m.insert("retry_after".into(), json!(retry_after_secs));
            }
            ApiError::NotReady { min_position, applied } => {
                m.insert("min_position".into(), json!(min_position));
                m.insert("applied_position".into(), json!(applied));
            }
            ApiError::Timeout { timeout_ms } => {
                m.insert("timeout_ms".into(), json!(timeout_ms));
            }
            ApiError::TooManyConflicts { attempts } => {
                m.insert("attempts".into(), json!(attempts));
            }
            ApiError::UriTooLong { bytes_max } => {
                m.insert("bytes_max".into(), json!(bytes_max));
            }
            ApiError::HeadersTooLarge { bytes_max, count_max } => {
                m.insert("bytes_max".into(), json!(bytes_max));
                m.insert("count_max".into(), json!(count_max));
            }
            _ => {}
        }
        m
    }

    /// The problem body.
    pub fn problem(&self) -> Value {
        let status = self.status_code();
        let mut body = self.members();
        // A domain refusal's members already carry its code: serialise once.
        let code = match body.get("code").and_then(Value::as_str) {
            Some(code) => code.to_owned(),
            None => self.code(),
        };
        body.insert("type".into(), json!(format!("{PROBLEM_TYPE_BASE}{code}")));
        body.insert("title".into(), json!(title(&code)));
        body.insert("status".into(), json!(status.as_u16()));
        let detail = match self {
            ApiError::Internal(_) => "the server failed; the request id names the log line".to_owned(),
            other => other.to_string(),
        };
        body.insert("detail".into(), json!(detail));
        body.insert("code".into(), json!(code));
        if let Some(id) = request_id::current() {
            body.insert("request_id".into(), json!(id));
        }
        Value::Object(body)
    }
}

/// The code of a bare framework answer: the status's own name where this
/// enum has one, else `http-<status>`.
fn status_code_name(status: StatusCode) -> String {
    match status {
        StatusCode::BAD_REQUEST => "bad-request".into(),
        StatusCode::NOT_FOUND => "not-found".into(),
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large".into(),
        StatusCode::URI_TOO_LONG => "uri-too-long".into(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type".into(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers-too-large".into(),
        StatusCode::INTERNAL_SERVER_ERROR => "internal".into(),
        other => format!("http-{}", other.as_u16()),
    }
}

fn precondition_detail(expected: u64, current: Option<u64>) -> String {
    match current {
        Some(current) => format!("the grant is at version {current}, not {expected}"),
        None => format!("the grant has no events yet, not version {expected}"),
    }
}

/// A code's title: "exceeds-award" -> "Exceeds award".
pub(crate) fn title(code: &str) -> String {
    let words = code.replace('-', " ");
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn domain_code(e: &DomainError) -> String {
    match serde_json::to_value(e) {
        Ok(Value::Object(m)) => m.get("code").and_then(Value::as_str).unwrap_or("domain-rule").to_owned(),
        _ => "domain-rule".to_owned(),
    }
}

/// 409 for ids that exist, 404 for things addressed in the path, else 422.
fn domain_status(e: &DomainError) -> StatusCode {
    use DomainError as D;
    match e {
        D::GrantAlreadyAwarded
        | D::ProgrammeExists { .. }
        | D::WorkstreamExists { .. }
        | D::LineExists { .. }
        | D::ReallocationExists { .. }
        | D::CommitmentExists { .. }
        | D::ExpenditureExists { .. }
        | D::AmendmentExists { .. }
        | D::MilestoneExists { .. }
        | D::PeriodExists { .. } => StatusCode::CONFLICT,
        D::GrantNotAwarded
        | D::UnknownReallocation { .. }
        | D::UnknownAmendment { .. }
        | D::UnknownCommitment { .. }
        | D::UnknownExpenditure { .. }
        | D::UnknownMilestone { .. }
        | D::UnknownPeriod { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let problem = self.problem();
        let code = problem["code"].as_str().unwrap_or_default();
        if status.is_server_error() {
            tracing::error!(code, error = ?self, "request failed");
        } else {
            tracing::debug!(code, error = %self, "request refused");
        }
        let body = problem.to_string();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match &self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::PreconditionFailed { current: Some(v), .. } => {
                if let Ok(etag) = HeaderValue::from_str(&format!("\"{v}\"")) {
                    headers.insert(header::ETAG, etag);
                }
            }
            ApiError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::NotReady { .. }
            | ApiError::Timeout { .. }
            | ApiError::Unavailable
            | ApiError::DatabaseUnavailable { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::StorageFull { .. } => ApiError::StorageFull,
            StoreError::Unavailable { detail } => ApiError::DatabaseUnavailable { detail },
            StoreError::WriterStopped { .. } | StoreError::Closed => ApiError::Unavailable,
            StoreError::CommandIdReused { .. } => ApiError::IdempotencyKeyReused,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<HandlerError> for ApiError {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Domain(d) => ApiError::Domain(d),
            HandlerError::VersionMismatch { expected, actual } => {
                ApiError::PreconditionFailed { expected, current: actual }
            }
            HandlerError::TooManyConflicts { attempts } => ApiError::TooManyConflicts { attempts },
            HandlerError::CommandReused { .. } => ApiError::IdempotencyKeyReused,
            HandlerError::Store(s) => s.into(),
            unreadable @ HandlerError::Unreadable { .. } => ApiError::Internal(unreadable.to_string()),
        }
    }
}

impl From<projections::ProjectionError> for ApiError {
    fn from(e: projections::ProjectionError) -> Self {
        match e {
            // A ledger folded from the log when the views file could not
            // give it: the log's own answer (503 while it is away).
            projections::ProjectionError::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use events::{Currency, Money};
    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn a_domain_refusal_keeps_its_code_and_numbers() {
        let eur = |cents: i64| Money::new(Decimal::new(cents, 2), Currency::EUR).unwrap();
        let e = ApiError::Domain(DomainError::ExceedsAward {
            award: eur(25_000_000),
            allocated: eur(25_000_000),
            requested: eur(1),
            excess: eur(1),
        });
        assert_eq!(e.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        let p = e.problem();
        assert_eq!(p["type"], "/problems/exceeds-award");
        assert_eq!(p["code"], "exceeds-award");
        assert_eq!(p["title"], "Exceeds award");
        assert_eq!(p["status"], 422);
        assert_eq!(p["excess"], json!({"amount": "0.01", "currency": "EUR"}));
    }

    #[test]
    fn ids_that_exist_conflict_and_unknown_path_objects_are_not_found() {
        let exists = ApiError::Domain(DomainError::GrantAlreadyAwarded);
        assert_eq!(exists.status_code(), StatusCode::CONFLICT);
        assert_eq!(ApiError::Domain(DomainError::GrantNotAwarded).status_code(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn an_internal_error_reveals_nothing() {
        let p = ApiError::Internal("disk I/O error at /secret/path".into()).problem();
        assert!(!p.to_string().contains("secret"), "{p}");
        assert_eq!(p["status"], 500);
    }
}
