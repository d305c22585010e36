//! Talking to a server: requests with a token, whole replies, and the
//! assertions on them (status, problem+json, the write answer's shape).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::ADMIN_TOKEN;

/// The bound on any one ordinary request.
const REQUEST_WITHIN: Duration = Duration::from_secs(30);

/// An HTTP client for one server.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// One answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `METHOD path`, for messages.
    pub request: String,
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl Api {
    /// A client for `base`.
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().build().expect("an HTTP client");
        Self { http, base: base.to_owned() }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying client (for streams).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET path` with `token`.
    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None, &[]).await
    }

    /// `POST path` with `token` and a JSON body.
    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Reply {
        self.post_with(token, path, body, &[]).await
    }

    /// `POST path` with `token`, a JSON body and extra headers.
    pub async fn post_with(&self, token: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let bytes = serde_json::to_vec(body).expect("a JSON body");
        self.send(Method::POST, path, Some(token), Some(bytes), headers).await
    }

    /// `POST path` with `token` and raw bytes labelled as JSON.
    pub async fn post_raw(&self, token: &str, path: &str, bytes: Vec<u8>) -> Reply {
        self.send(Method::POST, path, Some(token), Some(bytes), &[]).await
    }

    /// Any request; `token: None` sends no `Authorization`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let request = format!("{method} {path}");
        let mut builder = self.http.request(method, format!("{}{path}", self.base)).timeout(REQUEST_WITHIN);
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = body {
            builder = builder.header("content-type", "application/json").body(body);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = builder.send().await.unwrap_or_else(|e| panic!("{request}: {}", chain(&e)));
        let status = response.status();
        let headers = response.headers().clone();
        // An event stream never ends: its body is for `sse.rs` to read.
        let streaming = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let text = if streaming {
            String::new()
        } else {
            response.text().await.unwrap_or_else(|e| panic!("{request}: reading the body: {e}"))
        };
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { request, status, headers, text, body }
    }

    /// `POST path` of `body` with `Expect: 100-continue` over a plain
    /// socket: the body is sent only if the server asks for it. A server that
    /// refuses a declared size answers without reading the body and closes;
    /// a client already writing it would see a broken pipe instead of the
    /// answer, so this is how a careful client sends a large body.
    pub async fn post_expecting_continue(&self, token: &str, path: &str, body: &[u8]) -> Reply {
        let request = format!("POST {path} (Expect: 100-continue)");
        tokio::time::timeout(REQUEST_WITHIN, self.exchange(token, path, body))
            .await
            .unwrap_or_else(|_| panic!("{request}: no answer within {REQUEST_WITHIN:?}"))
            .unwrap_or_else(|e| panic!("{request}: {e}"))
    }

    async fn exchange(&self, token: &str, path: &str, body: &[u8]) -> std::io::Result<Reply> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.base.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(host).await?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await?;
        let mut buffer = Vec::new();
        let mut chunk = [0_u8; 8192];
        loop {
            let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                let n = socket.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::Error::other("closed before an answer"));
                }
                buffer.extend_from_slice(&chunk[..n]);
                continue;
            };
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let mut lines = head.lines();
            let status: u16 =
                lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or_default();
            if status == 100 {
                buffer.drain(..end + 4);
                socket.write_all(body).await?;
                continue;
            }
            let mut headers = HeaderMap::new();
            for line in lines {
                if let Some((name, value)) = line.split_once(':')
                    && let (Ok(name), Ok(value)) = (
                        reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
                        reqwest::header::HeaderValue::from_str(value.trim()),
                    )
                {
                    headers.append(name, value);
                }
            }
            let length: Option<usize> =
                headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            let mut content = buffer[end + 4..].to_vec();
            while length.is_none_or(|l| content.len() < l) {
                let n = socket.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                content.extend_from_slice(&chunk[..n]);
            }
            let text = String::from_utf8_lossy(&content).into_owned();
            let status = StatusCode::from_u16(status).map_err(std::io::Error::other)?;
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok(Reply { request: format!("POST {path}"), status, headers, text, body });
        }
    }

    /// Creates a token (as admin) and returns its secret.
    pub async fn token(&self, name: &str, role: &str, programmes: &[&str]) -> String {
        let body = grantlog_client::dto::CreateToken {
            name: crate::bodies::parsed(events::ActorId::parse, name),
            role: serde_json::from_value(json!(role)).unwrap_or_else(|e| panic!("role {role:?}: {e}")),
            programmes: programmes.iter().map(|p| crate::bodies::parsed(events::ProgrammeId::parse, p)).collect(),
            expires_at: None,
        };
        let body = serde_json::to_value(&body).unwrap_or_else(|e| panic!("a token body serialises: {e}"));
        let reply = self.post(ADMIN_TOKEN, "/api/v1/tokens", &body).await.expect_status(201);
        let b = &reply.body;
        assert_eq!(
            (&b["name"], &b["role"], &b["programmes"]),
            (&json!(name), &json!(role), &json!(programmes)),
            "{}",
            reply.text
        );
        b["token"].as_str().unwrap_or_else(|| panic!("no token in {}", reply.text)).to_owned()
    }

    /// The grant's events as `/history` lists them (up to 1000).
    pub async fn history(&self, token: &str, grant: &str) -> Vec<Value> {
        let reply = self.get(token, &format!("/api/v1/grants/{grant}/history?limit=1000")).await.expect_status(200);
        reply.body["events"].as_array().unwrap_or_else(|| panic!("no events in {}", reply.text)).clone()
    }

    /// The ids of every expenditure recorded on `grant`, in log order, read
    /// page by page from `/history` as the admin (a repeated id means the
    /// log holds it twice).
    pub async fn expenditure_ids(&self, grant: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut after: Option<u64> = None;
        loop {
            let path = match after {
                Some(v) => format!("/api/v1/grants/{grant}/history?after_version={v}&limit=1000"),
                None => format!("/api/v1/grants/{grant}/history?limit=1000"),
            };
            let page = self.get(ADMIN_TOKEN, &path).await.expect_status(200).body;
            let events = page["events"].as_array().cloned().unwrap_or_default();
            let Some(last) = events.last() else { return ids };
            after = last["version"].as_u64();
            ids.extend(events.iter().filter_map(|e| e["data"]["expenditure_id"].as_str().map(str::to_owned)));
        }
    }

    /// The grant's version: that of its last event in `/history`.
    pub async fn version(&self, grant: &str) -> u64 {
        let events = self.history(ADMIN_TOKEN, grant).await;
        events.last().and_then(|e| e["version"].as_u64()).unwrap_or_else(|| panic!("no version in {events:?}"))
    }
}

impl Reply {
    /// Asserts the status; returns the reply.
    #[track_caller]
    pub fn expect_status(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}: expected {status}, got {}: {}",
            self.request,
            self.status,
            self.text
        );
        self
    }

    /// Asserts a write's answer: `status`, `ETag` = the body's version,
    /// and the body's shape. Returns the body.
    #[track_caller]
    pub fn written(self, status: u16) -> Value {
        let reply = self.expect_status(status);
        let b = &reply.body;
        let version =
            b["version"].as_u64().unwrap_or_else(|| panic!("{}: no version in {}", reply.request, reply.text));
        assert!(b["stream"].is_string() && b["position"].is_u64(), "{}: {}", reply.request, reply.text);
        let events = b["events"].as_array().unwrap_or_else(|| panic!("{}: no events in {}", reply.request, reply.text));
        for e in events {
            assert!(
                e["id"].is_string() && e["type"].is_string() && e["version"].is_u64() && e["position"].is_u64(),
                "{}: event {e} lacks id/type/version/position",
                reply.request
            );
        }
        assert_eq!(reply.etag(), Some(version), "{}: ETag vs body version {}", reply.request, reply.text);
        reply.body
    }

    /// The `ETag` header as a version number.
    pub fn etag(&self) -> Option<u64> {
        let tag = self.headers.get("etag")?.to_str().ok()?;
        tag.trim_start_matches("W/").trim_matches('"').parse().ok()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with `status` and `code`; returns the
    /// problem.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        let r = &self.request;
        assert_eq!(
            (self.status.as_u16(), self.body["code"].as_str()),
            (status, Some(code)),
            "{r}: expected {status} {code}, got {}: {}",
            self.status,
            self.text
        );
        self.assert_problem_shape();
        assert_eq!(
            self.body["type"].as_str(),
            Some(format!("/problems/{code}").as_str()),
            "{r}: problem type: {}",
            self.text
        );
        &self.body
    }

    /// Asserts the reply is a well-formed problem+json (any status).
    #[track_caller]
    pub fn assert_problem_shape(&self) {
        let r = &self.request;
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/problem+json"),
            "{r}: content-type {content_type:?}: {}",
            self.text
        );
        let b = &self.body;
        assert_eq!(b["status"].as_u64(), Some(u64::from(self.status.as_u16())), "{r}: status member: {}", self.text);
        for member in ["type", "title", "detail", "code", "request_id"] {
            assert!(b[member].is_string(), "{r}: problem member {member} missing: {}", self.text);
        }
    }

    /// Whether this is a 400 `invalid-body` whose `errors[].pointer` names
    /// `field`; if not, why not.
    pub fn names_field(&self, field: &str) -> Result<(), String> {
        let (status, code) = (self.status.as_u16(), self.body["code"].as_str().unwrap_or_default());
        if (status, code) != (400, "invalid-body") {
            return Err(format!(
                "{}: expected 400 invalid-body naming {field}, got {status}: {}",
                self.request, self.text
            ));
        }
        let errors = self.body["errors"].as_array().map(Vec::as_slice).unwrap_or_default();
        let named = errors.iter().any(|e| {
            let pointer = e["pointer"].as_str().unwrap_or_default();
            pointer == field || pointer.starts_with(&format!("{field}/"))
        });
        if named { Ok(()) } else { Err(format!("{}: no errors[].pointer is {field}: {}", self.request, self.text)) }
    }
}

/// Waits (the server bounds the wait) until `grant`'s views have applied
/// `position`.
pub async fn caught_up(api: &Api, grant: &str, position: u64) {
    let path = format!("/api/v1/grants/{grant}/budget?min_position={position}");
    api.get(ADMIN_TOKEN, &path).await.expect_status(200);
}

/// An error with its causes, `a: b: c`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

/// A money amount of a problem member or view field, as text: the `amount`
/// of a Money object.
#[track_caller]
pub fn amount(value: &Value) -> &str {
    match value {
        Value::Object(m) => m.get("amount").and_then(Value::as_str).unwrap_or_else(|| panic!("not money: {value}")),
        Value::String(s) => s.split_whitespace().next().unwrap_or_default(),
        _ => panic!("not money: {value}"),
    }
}

/// `{"amount": .., "currency": "EUR"}`.
pub fn eur(amount: &str) -> Value {
    serde_json::json!({"amount": amount, "currency": "EUR"})
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
