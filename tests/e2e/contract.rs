//! The server and its OpenAPI document agree at the boundaries. Requests
//! are generated from the document the server serves: for every query
//! parameter of every read, values at and just past each bound its schema
//! declares (minimum, maximum, enum, pattern, format, length); for the
//! headers of a grant write and of a live stream, the same; for path ids,
//! the longest and one past. What the schema refuses, the server refuses
//! with 400 naming the parameter; what the schema allows, the server does
//! not refuse as invalid; and every status the server answers is one the
//! operation declares.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate};
use regex::Regex;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Server};

/// What a schema says of a text.
fn allows(schema: &Value, text: &str) -> bool {
    let Some(kind) = schema["type"].as_str() else { return true };
    let integer = |t: &str| -> Option<i128> { t.parse::<i128>().ok().filter(|_| !t.starts_with('+')) };
    let within = |n: i128| {
        schema["minimum"].as_i64().is_none_or(|min| n >= i128::from(min))
            && schema["maximum"].as_u64().is_none_or(|max| n <= i128::from(max))
    };
    match kind {
        "integer" => integer(text).is_some_and(within),
        "string" => {
            let chars = text.chars().count() as u64;
            schema["enum"].as_array().is_none_or(|words| words.iter().any(|w| w == text))
                && schema["pattern"].as_str().is_none_or(|p| Regex::new(p).unwrap().is_match(text))
                && schema["minLength"].as_u64().is_none_or(|min| chars >= min)
                && schema["maxLength"].as_u64().is_none_or(|max| chars <= max)
                && match schema["format"].as_str() {
                    Some("date") => NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
                    Some("date-time") => DateTime::parse_from_rfc3339(text).is_ok(),
                    _ => true,
                }
        }
        other => panic!("a parameter of type {other}"),
    }
}

/// Texts at and just past the bounds `schema` declares.
fn candidates(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(min) = schema["minimum"].as_i64() {
        out.extend([min.to_string(), (i128::from(min) - 1).to_string(), (min + 1).to_string()]);
    }
    if let Some(max) = schema["maximum"].as_u64() {
        out.extend([max.to_string(), (u128::from(max) + 1).to_string()]);
    }
    if schema["type"] == "integer" {
        // Not "+1": the server parses integers with `str::parse`, which takes
        // a leading `+`, and a query string has no canonical integer form.
        out.extend(["1.5".into(), "x".into(), "".into()]);
    }
    for word in schema["enum"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        out.extend([word.to_owned(), word.to_uppercase(), format!("{word}x")]);
    }
    match schema["format"].as_str() {
        Some("date") => out.extend(
            [
                "1900-01-01",
                "2199-12-31",
                "1899-12-31",
                "2200-01-01",
                "2024-02-29",
                "2023-02-29",
                "2022-1-01",
                "2022-09-30",
            ]
            .map(String::from),
        ),
        Some("date-time") => out.extend(
            ["2022-07-15T00:00:00Z", "2022-07-15T00:00:00+02:00", "2022-07-15", "2022-07-15T25:00:00Z", "now"]
                .map(String::from),
        ),
        _ => {}
    }
    out
}

/// A valid head for `since` (`POSITION:HASH`): the log's own.
async fn head(http: &reqwest::Client, base: &str) -> String {
    let verified: Value = http
        .get(format!("{base}/api/v1/audit/verify"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    format!("{}:{}", verified["head"]["position"], verified["head"]["hash"].as_str().unwrap())
}

/// The operations of the document, by (method, path).
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.insert((method.to_uppercase(), path.clone()), op.clone());
        }
    }
    out
}

fn declared(op: &Value, status: StatusCode) -> bool {
    op["responses"].get(status.as_str()).is_some()
}

/// One request's verdict, checked against the document.
struct Case {
    what: String,
    doc_allows: bool,
    /// The parameter a refusal must name (`?limit`, `Idempotency-Key`, ...).
    pointer: String,
    /// Why the server may refuse a value the schema allows (the schema
    /// cannot say it), if it may.
    semantic: Option<&'static str>,
}

async fn judge(case: &Case, op: &Value, response: reqwest::Response, failures: &mut Vec<String>) {
    let status = response.status();
    if !declared(op, status) {
        failures.push(format!("{}: answered {status}, which the operation does not declare", case.what));
    }
    let is_problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("application/problem+json"));
    let body: Value =
        if status == StatusCode::BAD_REQUEST { response.json().await.unwrap_or(Value::Null) } else { Value::Null };
    match (case.doc_allows, status == StatusCode::BAD_REQUEST) {
        (false, false) => {
            failures.push(format!("{}: the document refuses it, the server answered {status}", case.what))
        }
        (true, true) if case.semantic.is_none() => {
            failures.push(format!("{}: the document allows it, the server refused it: {body}", case.what))
        }
        (_, true) => {
            if !is_problem || body["errors"][0]["pointer"] != case.pointer.as_str() {
                failures.push(format!("{}: the refusal does not name {}: {body}", case.what, case.pointer));
            }
        }
        (true, false) => {}
    }
}

#[tokio::test]
async fn every_query_parameter_is_refused_exactly_where_its_schema_says() {
    let server = Server::start_with(&["demo"]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let base = server.api().base().to_owned();
    let doc: Value = http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    let head = head(&http, &base).await;
    let ids = json!({"grant": "nctcr-2022", "programme": "nctcr", "line": "FP1-CON", "code": "exceeds-award"});
    let mut failures = Vec::new();
    let mut tried = 0;
    for ((method, path), op) in operations(&doc) {
        if method != "GET" {
            continue;
        }
        let mut url_path = path.clone();
        for (name, id) in ids.as_object().unwrap() {
            url_path = url_path.replace(&format!("{{{name}}}"), id.as_str().unwrap());
        }
        assert!(!url_path.contains('{'), "{path}: a path id the test has no value for");
        let live = op["responses"]["200"]["content"].get("text/event-stream").is_some();
        for param in op["parameters"].as_array().unwrap().iter().filter(|p| p["in"] == "query") {
            let name = param["name"].as_str().unwrap();
            let schema = &param["schema"];
            let mut values = candidates(schema);
            if name == "since" {
                values.extend([
                    head.clone(),
                    head.to_uppercase(),
                    format!("+{head}"),
                    head.replace(':', "-"),
                    "1:ab".into(),
                ]);
            }
            if values.is_empty() {
                failures.push(format!("{path} ?{name}: the document declares no bound for it"));
            }
            for value in values {
                let mut query = vec![(name.to_owned(), value.clone())];
                if name == "before_version" {
                    query.push(("order".into(), "desc".into()));
                }
                let semantic = match name {
                    "after" if path == "/api/v1/events/export" => Some("an export starts at most at the head"),
                    _ => None,
                };
                let case = Case {
                    what: format!("GET {path}?{name}={value}"),
                    doc_allows: allows(schema, &value),
                    pointer: format!("?{name}"),
                    semantic,
                };
                let mut url = reqwest::Url::parse(&format!("{base}{url_path}")).unwrap();
                url.query_pairs_mut().extend_pairs(&query);
                let response = http.get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
                if live && response.status() == StatusCode::OK {
                    drop(response);
                    continue;
                }
                judge(&case, &op, response, &mut failures).await;
                tried += 1;
            }
        }
    }
    assert!(tried > 150, "only {tried} cases were tried");
    assert!(failures.is_empty(), "{} of {tried} cases disagree:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn headers_and_path_ids_are_refused_exactly_where_their_schemas_say() {
    let server = Server::start_with(&["demo"]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let base = server.api().base().to_owned();
    let doc: Value = http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    let ops = operations(&doc);
    let header_schema = |op: &Value, name: &str| -> Value {
        let param = op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name);
        param.unwrap_or_else(|| panic!("{} does not declare {name}", op["operationId"]))["schema"].clone()
    };
    let mut failures = Vec::new();

    let write = &ops[&("POST".to_owned(), "/api/v1/grants/{grant}/expenditures".to_owned())];
    let key_schema = header_schema(write, "Idempotency-Key");
    let if_match_schema = header_schema(write, "If-Match");
    let mut n = 0;
    let mut body = || {
        n += 1;
        json!({"id": format!("E-C-{n}"), "line": "FP1-CON", "amount": {"amount": "1.00", "currency": "EUR"},
               "incurred_on": "2022-12-01", "supplier": "SUP-LAB", "invoice": format!("INV-C-{n}")})
    };
    let keys = ["k".to_owned(), "k".repeat(255), "k".repeat(256), "".into(), "a b".into(), "ké".into()];
    let tags = ["*", "\"80\"", "\"1\", \"80\"", "W/\"80\"", "80", "\"80", "\"8\"0\""];
    let mut cases: Vec<(&str, String, &Value)> = Vec::new();
    cases.extend(keys.iter().map(|key| ("Idempotency-Key", key.clone(), &key_schema)));
    cases.extend(tags.iter().map(|tag| ("If-Match", (*tag).to_owned(), &if_match_schema)));
    for (header, value, schema) in cases {
        let case = Case {
            what: format!("POST expenditures with {header}: {value:?}"),
            doc_allows: allows(schema, &value),
            pointer: header.into(),
            semantic: None,
        };
        let response = http
            .post(format!("{base}/api/v1/grants/nctcr-2022/expenditures"))
            .bearer_auth(ADMIN_TOKEN)
            .header(header, value.as_str())
            .json(&body())
            .send()
            .await;
        match response {
            Ok(response) => judge(&case, write, response, &mut failures).await,
            // reqwest itself refuses header values that are not visible ASCII
            Err(e) if !case.doc_allows => eprintln!("{}: not sendable ({e})", case.what),
            Err(e) => panic!("{}: {e}", case.what),
        }
    }

    let stream = &ops[&("GET".to_owned(), "/api/v1/grants/{grant}/events/stream".to_owned())];
    let last_event_id = header_schema(stream, "Last-Event-ID");
    for value in ["5", " 5 ", "18446744073709551615", "x", "-1", "1.5"] {
        let case = Case {
            what: format!("Last-Event-ID: {value:?}"),
            doc_allows: allows(&last_event_id, value),
            pointer: "Last-Event-ID".into(),
            semantic: None,
        };
        let response = http
            .get(format!("{base}/api/v1/grants/nctcr-2022/events/stream"))
            .bearer_auth(ADMIN_TOKEN)
            .header("last-event-id", value)
            .send()
            .await
            .unwrap();
        judge(&case, stream, response, &mut failures).await;
    }

    let budget = &ops[&("GET".to_owned(), "/api/v1/grants/{grant}/budget".to_owned())];
    let id_schema = header_schema(budget, "grant");
    for id in ["g".repeat(64), "g".repeat(65), "a~b".into(), "..".into()] {
        let response =
            http.get(format!("{base}/api/v1/grants/{id}/budget")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        let status = response.status();
        let allowed = allows(&id_schema, &id) && id != "..";
        if !declared(budget, status) {
            failures.push(format!("grant id {id:?}: answered {status}, not declared"));
        }
        match (allowed, status) {
            (true, StatusCode::NOT_FOUND) | (false, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND) => {}
            (allowed, status) => failures.push(format!("grant id {id:?} (document allows: {allowed}): {status}")),
        }
    }
    assert!(failures.is_empty(), "{} cases disagree:\n{}", failures.len(), failures.join("\n"));
}
