//! The router and its OpenAPI document agree, and the request pipeline
//! (auth, body checks, problem bodies) behaves, tested in process with
//! `oneshot` on a real data directory. End-to-end tests over real sockets
//! live in the workspace's `tests/` package.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;

use support::{call, call_as, state};

fn concrete(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with('{') { "X1" } else { s }).collect::<Vec<_>>().join("/")
}

#[tokio::test]
async fn every_route_is_in_the_document_and_every_operation_is_routed() {
    let (state, _dir) = state().await;
    let (_, doc) = call(&state, Method::GET, "/openapi.json", None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let table = api::routes::table();
    let operations: usize = paths.values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(operations, table.len(), "one operation per route");
    for route in &table {
        let op = &paths[route.path][route.method.as_str().to_lowercase()];
        assert_eq!(op["operationId"], route.operation_id, "{} {}", route.method, route.path);
        assert!(op["x-grantlog-roles"].is_array());
    }
    for (path, item) in paths {
        let methods: Vec<&String> = item.as_object().unwrap().keys().collect();
        for method in &methods {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // A streaming route would not end: only check that it is routed.
            if path.ends_with("/stream") {
                continue;
            }
            let (status, body) = call(&state, m.clone(), &concrete(path), Some("{}")).await;
            assert!(
                !(status == StatusCode::NOT_FOUND && body["detail"] == "route not found"),
                "{m} {path} is documented but not routed"
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
        }
        // The router answers no method the document does not list.
        for other in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            if !methods.iter().any(|m| m.eq_ignore_ascii_case(other.as_str())) {
                let (status, _) = call(&state, other.clone(), &concrete(path), None).await;
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{other} {path} is routed but not documented");
            }
        }
    }
    let (status, body) = call(&state, Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not-found")));
}

#[tokio::test]
async fn the_document_resolves_every_schema_reference() {
    let (state, _dir) = state().await;
    let (_, doc) = call(&state, Method::GET, "/openapi.json", None).await;
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
    for name in ["CreateGrant", "RecordExpenditure", "CommandAnswer", "Money"] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
}

#[tokio::test]
async fn a_client_cannot_set_what_the_server_records() {
    let (state, _dir) = state().await;
    for field in ["actor", "recorded_at", "hash"] {
        let body = json!({"id": "P1", "name": "Programme", field: "x"}).to_string();
        let (status, problem) = call(&state, Method::POST, "/api/v1/programmes", Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(problem["code"], "invalid-body");
        assert_eq!(problem["errors"][0]["pointer"], format!("/{field}"));
    }
    let (status, answer) = call(&state, Method::POST, "/api/v1/programmes", Some(r#"{"id": "P1", "name": "P"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, history) = call(&state, Method::GET, "/api/v1/events", None).await;
    assert_eq!(history["events"][0]["actor"], "admin", "the token's name is the actor");
}

#[tokio::test]
async fn an_unknown_grant_and_a_bad_id_are_not_found() {
    let (state, _dir) = state().await;
    for path in ["/api/v1/grants/nope/budget", "/api/v1/grants/no%20pe/budget", "/api/v1/grants/nope/history"] {
        let (status, problem) = call(&state, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
        assert_eq!(problem["type"], "/problems/not-found");
    }
}

#[tokio::test]
async fn page_sizes_are_bounded() {
    let (state, _dir) = state().await;
    let (status, problem) = call(&state, Method::GET, "/api/v1/events?limit=1001", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["pointer"], "?limit");
    let (status, problem) = call(&state, Method::GET, "/api/v1/events?lmit=10", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an unknown parameter is refused: {problem}");
    let (status, _) = call(&state, Method::GET, "/api/v1/events?limit=1000", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_events_appended() {
    let (state, _dir) = state().await;
    let (status, _) = call(&state, Method::POST, "/api/v1/programmes", Some(r#"{"id": "P9", "name": "P"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
    let response =
        api::app(state.clone()).oneshot(Request::builder().uri("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(to_bytes(response.into_body(), 1 << 22).await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains(
            r#"grantlog_http_request_duration_seconds_bucket{method="POST",route="/api/v1/programmes",status="201""#
        ),
        "{text}"
    );
    assert!(text.contains("grantlog_events_appended_total"), "{text}");
    assert!(text.contains("grantlog_projection_lag_events"), "{text}");
    // Every metric says what it is (promtool refuses a TYPE without HELP).
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        let help = text.lines().find(|l| l.starts_with(&format!("# HELP {name} ")));
        assert!(help.is_some_and(|h| h.len() > format!("# HELP {name} ").len() + 10), "{name} has no HELP: {text}");
    }
}

#[tokio::test]
async fn a_cached_view_follows_every_write() {
    let (state, _dir) = state().await;
    let post = |path: &'static str, body: Value| {
        let state = state.clone();
        async move {
            let (status, answer) = call(&state, Method::POST, path, Some(&body.to_string())).await;
            assert!(status.is_success(), "{path}: {answer}");
            answer["position"].as_u64().unwrap()
        }
    };
    post("/api/v1/programmes", json!({"id": "P", "name": "P"})).await;
    let eur = |a: &str| json!({"amount": a, "currency": "EUR"});
    post(
        "/api/v1/grants",
        json!({"id": "G", "programme": "P", "funder": "FNR", "title": "T", "acronym": "A",
        "award": eur("1000.00"), "start": "2022-01-01", "end": "2022-12-31", "rule_set": "FNR-2022"}),
    )
    .await;
    post("/api/v1/grants/G/workstreams", json!({"code": "W", "title": "W"})).await;
    let mut position = post(
        "/api/v1/grants/G/budget-lines",
        json!({"workstream": "W", "category": "PER", "amount": eur("500.00"), "effective_date": "2022-01-01"}),
    )
    .await;
    for (i, amount) in ["10.00", "20.00", "30.00"].iter().enumerate() {
        let (status, view) = call(
            &state,
            Method::GET,
            &format!("/api/v1/grants/G/budget?min_position={position}&today=2022-06-30"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(view["position"].as_u64().unwrap() >= position);
        let spent = ["0.00", "10.00", "30.00"][i];
        assert_eq!(view["lines"][0]["spent"]["amount"], spent, "{view}");
        // The same read again comes from the cache and says the same.
        let (_, again) = call(
            &state,
            Method::GET,
            &format!("/api/v1/grants/G/budget?min_position={position}&today=2022-06-30"),
            None,
        )
        .await;
        assert_eq!(again["lines"], view["lines"]);
        position = post(
            "/api/v1/grants/G/expenditures",
            json!({"id": format!("E{i}"), "line": "W-PER", "amount": eur(amount), "incurred_on": "2022-03-01",
                   "supplier": "S", "invoice": format!("I{i}")}),
        )
        .await;
    }
}

/// The route table is the one place a route's roles are written, and they
/// are enforced from it before anything else: every role the table does not
/// list for a route gets 403 on it, even with a body that would be refused
/// as malformed, and every role it lists gets past the role check.
#[tokio::test]
async fn every_route_refuses_exactly_the_roles_its_table_entry_does_not_list() {
    use api::auth::Role;
    let (state, _dir) = state().await;
    let mut tokens = Vec::new();
    for role in [Role::Admin, Role::Manager, Role::Auditor, Role::Viewer] {
        let name = format!("who-{}", role.as_str());
        let body = json!({"name": name, "role": role.as_str(), "programmes": []}).to_string();
        let (status, created) = call(&state, Method::POST, "/api/v1/tokens", Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        tokens.push((role, created["token"].as_str().unwrap().to_owned()));
    }
    let mut checked = 0;
    for route in api::routes::table() {
        if route.roles.is_empty() || route.path.ends_with("/stream") {
            continue;
        }
        for (role, token) in &tokens {
            // Not JSON: a handler that ran would answer 400, not 403.
            let (status, body) = call_as(&state, token, route.method.clone(), &concrete(route.path), "{not json").await;
            let refused = status == StatusCode::FORBIDDEN && body["code"] == "forbidden";
            assert_eq!(
                refused,
                !route.roles.contains(role),
                "{} {} as {}: {status} {body}",
                route.method,
                route.path,
                role.as_str()
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} route and role pairs checked");
}
