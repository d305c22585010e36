//! What the in-process API tests share: a server state on a fresh data
//! directory with a known admin token, and requests through the real router.
#![allow(clippy::unwrap_used, dead_code)] // a test fails by panicking; not every test uses every helper

use api::{AppState, Config};
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// The admin token every state bootstraps with.
pub const ADMIN: &str = "test-admin-token";

/// A state on a fresh data directory (kept as long as the directory).
pub async fn state() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some(ADMIN.into());
    let (state, _) = AppState::open(config).await.unwrap();
    (state, dir)
}

/// `method path` as the admin, with an optional JSON body.
pub async fn call(state: &AppState, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    send(state, ADMIN, method, path, body).await
}

/// `method path` as `token`, with a body labelled as JSON.
pub async fn call_as(state: &AppState, token: &str, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    send(state, token, method, path, Some(body)).await
}

async fn send(state: &AppState, token: &str, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned()))).unwrap();
    let response = api::app(state.clone()).oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
