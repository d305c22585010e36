//! The catalogue of problem types: for every `code` a problem body can
//! carry, its status, title, the members that explain it, the headers that
//! come with it and what a client should do. A problem's `type` is
//! `/problems/<code>` (relative: it resolves against the server that
//! answered), and `GET /problems/{code}` serves the entry; docs/problems.md
//! is generated from it ([`markdown`]). The tests check the catalogue
//! against what the server really answers, for every `ApiError` and every
//! `DomainError` variant.

mod domain_entries;
#[cfg(test)]
mod tests;

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{PROBLEM_TYPE_BASE, title};

/// One member of a problem body beyond the standard ones.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// Its name in the body.
    pub name: &'static str,
    /// What it says.
    pub description: &'static str,
    /// Whether every answer with this code carries it (else: some do).
    pub always: bool,
}

impl Member {
    const fn always(name: &'static str, description: &'static str) -> Self {
        Self { name, description, always: true }
    }

    const fn sometimes(name: &'static str, description: &'static str) -> Self {
        Self { name, description, always: false }
    }
}

/// A response header that comes with a problem.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Its name.
    pub name: &'static str,
    /// What it says.
    pub description: &'static str,
}

/// One problem type.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The stable code (the `type`'s last segment).
    pub code: &'static str,
    /// The HTTP status answered with it.
    pub status: u16,
    /// What happened, in one sentence.
    pub summary: &'static str,
    /// The members the body carries besides the standard ones.
    pub members: &'static [Member],
    /// The headers that come with it.
    pub headers: &'static [Header],
    /// What a client should do.
    pub what_to_do: &'static str,
    /// A refusal of the grant's rules (`domain::DomainError`).
    pub domain: bool,
}

/// Members every problem body carries (`request_id` whenever the request
/// had one, which is always behind [`crate::app`]).
pub const STANDARD_MEMBERS: &[&str] = &["type", "title", "status", "detail", "code", "request_id"];

/// The `errors` member of a refusal about one field of the body.
const DOMAIN_ERRORS: Member = Member::sometimes(
    "errors",
    "When the refusal is about one field of the request body: `[{pointer, detail}]`, the field as an RFC 6901 \
     JSON pointer and what is wrong there.",
);

const fn api(
    code: &'static str,
    status: u16,
    summary: &'static str,
    members: &'static [Member],
    headers: &'static [Header],
    what_to_do: &'static str,
) -> Entry {
    Entry { code, status, summary, members, headers, what_to_do, domain: false }
}

const fn domain(
    code: &'static str,
    status: u16,
    summary: &'static str,
    members: &'static [Member],
    what_to_do: &'static str,
) -> Entry {
    Entry { code, status, summary, members, headers: &[], what_to_do, domain: true }
}

const RETRY_AFTER: Header = Header { name: "Retry-After", description: "Seconds to wait before retrying." };

const FIELD_ERRORS: Member = Member::always(
    "errors",
    "`[{pointer, detail}]`: each field that is wrong, as an RFC 6901 JSON pointer into the body (`/amount/amount`) \
     or `?name` for a query parameter or header, and what is wrong there.",
);

/// The API's own problems (not the grant's rules).
const API_ENTRIES: &[Entry] = &[
    api(
        "bad-request",
        400,
        "The request was refused as malformed before any handler read it.",
        &[],
        &[],
        "Check the request line, headers and body against the OpenAPI document (`/openapi.json`).",
    ),
    api(
        "invalid-body",
        400,
        "The body is not what the endpoint accepts.",
        &[FIELD_ERRORS],
        &[],
        "Fix the field named by each `errors[].pointer` and send the request again.",
    ),
    api(
        "json-too-deep",
        400,
        "The JSON body nests deeper than allowed.",
        &[Member::always("depth_max", "The most levels of nesting accepted.")],
        &[],
        "Send a body that nests at most `depth_max` levels.",
    ),
    api(
        "invalid-query",
        400,
        "A query parameter or header is invalid.",
        &[FIELD_ERRORS],
        &[],
        "Fix the parameter named by each `errors[].pointer` (`?name`) and send the request again.",
    ),
    api(
        "unauthorized",
        401,
        "No bearer token, or one that is unknown, revoked or expired.",
        &[],
        &[Header { name: "WWW-Authenticate", description: "`Bearer`: the scheme to authenticate with." }],
        "Send `Authorization: Bearer <token>` with a valid token (an admin issues tokens).",
    ),
    api(
        "forbidden",
        403,
        "The token's role never allows this call.",
        &[],
        &[],
        "Use a token whose role allows the call; retrying with this token will not help.",
    ),
    api(
        "csrf-check-failed",
        403,
        "A write with a session cookie came without the session's `X-CSRF-Token`, or from another origin.",
        &[],
        &[],
        "Send the session's CSRF token in `X-CSRF-Token` from the dashboard's own origin, or use a bearer token.",
    ),
    api(
        "not-found",
        404,
        "No such thing, or not visible to this token.",
        &[],
        &[],
        "Check the path and the ids in it; a token sees only its own programmes' grants.",
    ),
    api(
        "method-not-allowed",
        405,
        "The path exists, but not with this method.",
        &[],
        &[Header { name: "Allow", description: "The methods the path takes." }],
        "Use one of the methods in `Allow`.",
    ),
    api(
        "exists",
        409,
        "Something with this id exists already.",
        &[],
        &[],
        "Choose another id, or read the one that exists.",
    ),
    api(
        "too-many-conflicts",
        409,
        "Other writers kept changing the grant while this write was retried.",
        &[Member::always("attempts", "The attempts made.")],
        &[],
        "Retry the write (with the same Idempotency-Key) a little later.",
    ),
    api(
        "precondition-failed",
        412,
        "`If-Match` named another version than the grant's.",
        &[
            Member::always("expected_version", "The version the request's `If-Match` named."),
            Member::always("current_version", "The grant's version (`null`: the grant has no events yet)."),
        ],
        &[Header { name: "ETag", description: "The grant's current version, when it has one." }],
        "Re-read the grant to see what changed, then send the write again with `If-Match` set to its current ETag.",
    ),
    api(
        "payload-too-large",
        413,
        "The body is larger than allowed.",
        &[Member::sometimes("bytes_max", "The most bytes a body may have.")],
        &[],
        "Send a smaller body (at most `bytes_max` bytes).",
    ),
    api(
        "uri-too-long",
        414,
        "The request target is longer than allowed.",
        &[Member::sometimes("bytes_max", "The most bytes the path and query may have.")],
        &[],
        "Send a shorter path and query (at most `bytes_max` bytes).",
    ),
    api(
        "unsupported-media-type",
        415,
        "The body is not `application/json`.",
        &[],
        &[],
        "Send `Content-Type: application/json` (at most with `charset=utf-8`) and a JSON body.",
    ),
    api(
        "idempotency-key-reused",
        422,
        "The `Idempotency-Key` was used before with a different request.",
        &[],
        &[],
        "Use a new key for a new request; the same key only ever replays its first request.",
    ),
    api(
        "rate-limited",
        429,
        "Too many requests for this token.",
        &[Member::always("retry_after", "Seconds to wait.")],
        &[RETRY_AFTER],
        "Wait `Retry-After` seconds, then retry (a write with the same Idempotency-Key).",
    ),
    api(
        "headers-too-large",
        431,
        "The request's header fields are larger or more than allowed.",
        &[
            Member::sometimes("bytes_max", "The most bytes of header fields accepted."),
            Member::sometimes("count_max", "The most header fields accepted."),
        ],
        &[],
        "Send fewer or smaller header fields.",
    ),
    api(
        "internal",
        500,
        "The server failed; the cause is logged, never sent.",
        &[],
        &[],
        "Report the `request_id` to the operator; it names the log line.",
    ),
    api(
        "not-ready",
        503,
        "A view has not yet applied the log position asked for (`min_position`).",
        &[
            Member::always("min_position", "The position asked for."),
            Member::always("applied_position", "The position the view has applied."),
        ],
        &[RETRY_AFTER],
        "Retry after `Retry-After` seconds; the view is catching up.",
    ),
    api(
        "request-timeout",
        503,
        "The request took longer than allowed; nothing was recorded.",
        &[Member::always("timeout_ms", "The limit, in milliseconds.")],
        &[RETRY_AFTER],
        "Retry after `Retry-After` seconds, or ask for less (a smaller page, a narrower range).",
    ),
    api(
        "log-unavailable",
        503,
        "The event log stopped accepting writes after an I/O error; a write may or may not be recorded.",
        &[],
        &[RETRY_AFTER],
        "Retry the write with the same Idempotency-Key once the server is back: it is recorded once either way.",
    ),
    api(
        "database-unavailable",
        503,
        "The database cannot be reached or did not answer in time; a write may or may not be recorded.",
        &[],
        &[RETRY_AFTER],
        "Retry the write with the same Idempotency-Key after `Retry-After`: it is recorded once either way.",
    ),
    api(
        "storage-full",
        507,
        "The disk is full; nothing was recorded.",
        &[],
        &[],
        "Tell the operator; retry once space is freed (nothing was recorded, so the retry is safe).",
    ),
];

/// The generic entry of a bare framework answer's code, `http-<status>`.
const HTTP_GENERIC: Entry = api(
    "http-<status>",
    0,
    "The request was refused with this HTTP status before any handler ran.",
    &[],
    &[],
    "See RFC 9110 for what the status means; the `detail` member says what the server saw.",
);

/// Every entry with a code of its own: the API's, then the domain's.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    API_ENTRIES.iter().chain(domain_entries::ENTRIES)
}

/// The entry for `code`; `http-<nnn>` (any three-digit status) resolves to
/// the generic entry with that status.
pub fn lookup(code: &str) -> Option<ProblemType> {
    if let Some(entry) = entries().find(|e| e.code == code) {
        return Some(ProblemType::of(entry));
    }
    let digits = code.strip_prefix("http-")?;
    let status: u16 = match digits.as_bytes() {
        [b'1'..=b'9', b'0'..=b'9', b'0'..=b'9'] => digits.parse().ok()?,
        _ => return None,
    };
    let mut generic = ProblemType::of(&HTTP_GENERIC);
    generic.code = code.to_owned();
    generic.type_uri = format!("{PROBLEM_TYPE_BASE}{code}");
    generic.title = title(code);
    generic.status = status;
    Some(generic)
}

/// One member of a problem body, as `GET /problems/{code}` answers it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MemberOut {
    /// Its name in the body.
    pub name: String,
    /// What it says.
    pub description: String,
    /// Whether every answer with this code carries it (else: some do).
    pub always: bool,
}

/// A header that comes with a problem.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HeaderOut {
    /// Its name.
    pub name: String,
    /// What it says.
    pub description: String,
}

/// `GET /problems/{code}`: what a problem type means and what to do.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProblemType {
    /// The stable code, as in the problem's `code`.
    pub code: String,
    /// The problem's `type`: `/problems/<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The HTTP status answered with it.
    pub status: u16,
    /// The problem's `title`.
    pub title: String,
    /// What happened.
    pub summary: String,
    /// Members the body carries besides `type`, `title`, `status`,
    /// `detail`, `code` and `request_id`.
    pub members: Vec<MemberOut>,
    /// Response headers that come with it.
    pub headers: Vec<HeaderOut>,
    /// What a client should do.
    pub what_to_do: String,
    /// `domain`: a refusal of the grant's rules; `api`: the API's own.
    pub source: String,
}

impl ProblemType {
    fn of(entry: &Entry) -> Self {
        let domain_errors = entry.domain.then_some(&DOMAIN_ERRORS);
        Self {
            code: entry.code.to_owned(),
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", entry.code),
            status: entry.status,
            title: title(entry.code),
            summary: entry.summary.to_owned(),
            members: entry
                .members
                .iter()
                .chain(domain_errors)
                .map(|m| MemberOut { name: m.name.into(), description: m.description.into(), always: m.always })
                .collect(),
            headers: entry
                .headers
                .iter()
                .map(|h| HeaderOut { name: h.name.into(), description: h.description.into() })
                .collect(),
            what_to_do: entry.what_to_do.to_owned(),
            source: if entry.domain { "domain" } else { "api" }.to_owned(),
        }
    }
}

/// `GET /problems`: every problem type.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProblemTypes {
    /// Every code, the API's first, then the domain's.
    pub problem_types: Vec<ProblemType>,
}

/// Every entry with a code of its own (`http-<status>` is not listed: any
/// such code resolves to [`lookup`]'s generic entry).
pub fn all() -> ProblemTypes {
    ProblemTypes { problem_types: entries().map(ProblemType::of).collect() }
}

/// docs/problems.md: the catalogue as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Problem types\n\n\
         <!-- Generated from crates/api/src/catalogue.rs: do not edit; regenerate with\n     \
         GRANTLOG_WRITE_DOCS=1 cargo test -p api --lib problems_doc -->\n\n\
         Every error answer is RFC 9457 `application/problem+json` with a stable `code`; its `type` is\n\
         `/problems/<code>`, relative to the server that answered, and `GET /problems/<code>` serves the\n\
         entry below (as HTML for `Accept: text/html`). Every body carries `type`, `title`, `status`,\n\
         `detail`, `code` and `request_id`; the members listed are the ones that explain the error.\n\n\
         | code | status | what happened |\n|---|---|---|\n",
    );
    let mut all = all().problem_types;
    all.push(ProblemType::of(&HTTP_GENERIC));
    for p in &all {
        out.push_str(&format!("| [`{}`](#{}) | {} | {} |\n", p.code, anchor(&p.code), status_text(p), p.summary));
    }
    for p in &all {
        let title = p.title.replace('<', "&lt;").replace('>', "&gt;");
        out.push_str(&format!("\n## `{}`\n\n{} ({title}). {}\n\n", p.code, status_text(p), p.summary));
        for m in &p.members {
            let when = if m.always { "" } else { " (some answers)" };
            out.push_str(&format!("- `{}`{when}: {}\n", m.name, m.description));
        }
        for h in &p.headers {
            out.push_str(&format!("- header `{}`: {}\n", h.name, h.description));
        }
        if !(p.members.is_empty() && p.headers.is_empty()) {
            out.push('\n');
        }
        out.push_str(&format!("What to do: {}\n", p.what_to_do));
    }
    out
}

/// GitHub's heading anchor for a code.
fn anchor(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

fn status_text(p: &ProblemType) -> String {
    if p.status == 0 { "Any status".to_owned() } else { p.status.to_string() }
}
