//! Bad input is the caller's mistake: malformed JSON, wrong types, a number
//! where money is a string, unknown and missing fields, an oversized body, a
//! body nested too deep, bad query parameters. Each is its own 4xx
//! problem+json naming the field where there is one; never a 500, and
//! nothing is recorded.

use serde_json::{Value, json};

use crate::bodies::small_expenditure;
use crate::client::Reply;
use crate::harness::{ADMIN_TOKEN, Server};
use crate::world::{GRANT_A, World};

fn path(p: &str) -> String {
    format!("/api/v1/grants/{GRANT_A}/{p}")
}

/// `small_expenditure(1)` with `field` set to `value` (or removed if `Null`).
fn expenditure_with(field: &str, value: Value) -> Value {
    let mut body = small_expenditure(1);
    let object = body.as_object_mut().expect("an object");
    if value.is_null() {
        object.remove(field);
    } else {
        object.insert(field.to_owned(), value);
    }
    body
}

#[track_caller]
fn not_500(reply: &Reply) {
    assert!(reply.status.as_u16() < 500, "{}: {} {}", reply.request, reply.status, reply.text);
}

#[tokio::test]
async fn bad_bodies_are_400_problems_naming_the_field() {
    let w = World::new().await;
    let api = w.api();
    let token = w.manager_a.as_str();
    let before = api.version(GRANT_A).await;
    let expenditures = path("expenditures");

    // Malformed JSON, an array, an empty body: invalid-body.
    for raw in [&br#"{"id": "X1", "line": "#[..], b"[1, 2]", b"", b"not json"] {
        let reply = api.post_raw(token, &expenditures, raw.to_vec()).await;
        not_500(&reply);
        reply.problem(400, "invalid-body");
    }

    // Wrong types and values, each named by its pointer.
    let cases = [
        (
            "a number where a money string is expected",
            "amount",
            json!({"amount": 4180.5, "currency": "EUR"}),
            "/amount",
        ),
        ("money as a bare string", "amount", json!("4180.50"), "/amount"),
        ("more decimals than the currency has", "amount", json!({"amount": "1.005", "currency": "EUR"}), "/amount"),
        ("an unknown currency", "amount", json!({"amount": "1.00", "currency": "XYZ"}), "/amount"),
        ("a date that is no date", "incurred_on", json!("2022-02-30"), "/incurred_on"),
        ("a number where a string is expected", "supplier", json!(12), "/supplier"),
        ("an id with a space", "id", json!("X 1"), "/id"),
        ("a missing field", "line", Value::Null, "/line"),
        ("an unknown field", "colour", json!("red"), "/colour"),
    ];
    // Every case is tried; the failures are listed together.
    let mut failures = Vec::new();
    for (what, field, value, pointer) in cases {
        let reply = api.post(token, &expenditures, &expenditure_with(field, value)).await;
        not_500(&reply);
        reply.assert_problem_shape();
        failures.extend(reply.names_field(pointer).err().map(|why| format!("{what}: {why}")));
    }
    // Inside an array: a delta's amount as a number.
    let body = json!({"id": "RX", "reason": "r", "deltas": [{"line": "WP1-PER", "amount": "-1.00"}, {"line": "WP1-TRV", "amount": 1}]});
    let reply = api.post(token, &path("reallocations"), &body).await;
    failures.extend(reply.names_field("/deltas/1/amount").err());
    // A bad effective date and an unknown kind of milestone.
    let mut body = small_expenditure(1);
    body["effective_date"] = json!("yesterday");
    failures.extend(api.post(token, &expenditures, &body).await.names_field("/effective_date").err());
    let milestone = json!({"id": "MX", "workstream": "WP1", "kind": "party", "title": "t", "due_on": "2022-10-31"});
    failures.extend(api.post(token, &path("milestones"), &milestone).await.names_field("/kind").err());
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));

    assert_eq!(api.version(GRANT_A).await, before, "a bad body recorded something");
}

#[tokio::test]
async fn oversized_deep_and_bad_queries_are_their_own_problems() {
    let w = World::new().await;
    let api = w.api();
    let token = w.manager_a.as_str();
    let before = api.version(GRANT_A).await;

    // More than the default 65,536 bytes; and just within them.
    let mut body = small_expenditure(1);
    body["reason"] = json!("x".repeat(70_000));
    let bytes = serde_json::to_vec(&body).expect("a body");
    let reply = api.post_expecting_continue(token, &path("expenditures"), &bytes).await;
    reply.problem(413, "payload-too-large");
    body["reason"] = json!("x".repeat(60_000));
    body["colour"] = json!("red");
    let bytes = serde_json::to_vec(&body).expect("a body");
    let reply = api.post_expecting_continue(token, &path("expenditures"), &bytes).await;
    reply.names_field("/colour").unwrap_or_else(|why| panic!("a large body within the limit is read: {why}"));

    // Nested deeper than 32 levels, in a field and as the whole body.
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let raw = format!(r#"{{"id": "X1", "line": "WP1-CON", "reason": {deep}}}"#);
    let reply = api.post_raw(token, &path("expenditures"), raw.into_bytes()).await;
    reply.problem(400, "json-too-deep");
    let raw = format!("{}{}", r#"{"a":"#.repeat(40), "}".repeat(40));
    let reply = api.post_raw(token, &path("expenditures"), raw.into_bytes()).await;
    reply.problem(400, "json-too-deep");
    // 30 levels is fine as far as depth goes (the body is still wrong).
    let shallow = format!("{}{}", "[".repeat(30), "]".repeat(30));
    let raw = format!(r#"{{"reason": {shallow}}}"#);
    let reply = api.post_raw(token, &path("expenditures"), raw.into_bytes()).await;
    reply.problem(400, "invalid-body");

    // Query parameters.
    let queries = [
        "/api/v1/events?limit=1001",
        "/api/v1/events?limit=-1",
        "/api/v1/events?after=abc",
        &format!("/api/v1/grants/{GRANT_A}/budget?as_of=2022-02-30"),
        &format!("/api/v1/grants/{GRANT_A}/budget?known_at=yesterday"),
        &format!("/api/v1/grants/{GRANT_A}/timeline?today=soon"),
        &format!("/api/v1/grants/{GRANT_A}/history?limit=5000"),
    ];
    for query in queries {
        let reply = api.get(ADMIN_TOKEN, query).await;
        not_500(&reply);
        reply.problem(400, "invalid-query");
    }
    // The largest page is fine.
    api.get(ADMIN_TOKEN, "/api/v1/events?limit=1000").await.expect_status(200);
    // A view waiting for a position that never comes gives up with 503.
    let reply = api.get(token, &format!("/api/v1/grants/{GRANT_A}/budget?min_position=999999")).await;
    reply.problem(503, "not-ready");
    assert!(reply.header("retry-after").is_some(), "503 without Retry-After");

    assert_eq!(api.version(GRANT_A).await, before, "bad input recorded something");
}

#[tokio::test]
async fn a_token_past_its_rate_is_429_with_retry_after_and_others_are_not() {
    let server = Server::start_with(&["serve", "--rate-limit-per-second", "5"]);
    let api = server.api();
    let viewer = api.token("viewer-x", "viewer", &[]).await;
    // Far more than a burst of 5 within well under a second.
    let mut limited = None;
    for _ in 0..30 {
        let reply = api.get(ADMIN_TOKEN, "/api/v1/events?limit=1").await;
        if reply.status.as_u16() == 429 {
            limited = Some(reply);
            break;
        }
        reply.expect_status(200);
    }
    let reply = limited.expect("30 requests at once were never rate limited at 5 per second");
    reply.problem(429, "rate-limited");
    let retry = reply.header("retry-after").and_then(|v| v.parse::<u64>().ok());
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {:?}", reply.header("retry-after"));
    // The limit is per token: another one still gets through.
    let other = api.get(&viewer, "/api/v1/events?limit=1").await;
    assert_ne!(other.status.as_u16(), 429, "another token was limited too: {}", other.text);
}
