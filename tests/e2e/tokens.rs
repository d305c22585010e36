//! Token lifecycle: list, revoke, expiry, names unique without regard to
//! case, and the offline CLI beside a running server.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Api;
use crate::harness::{ADMIN_TOKEN, Server, binary};

/// How long a change may take to be seen (the server checks api.sqlite for
/// another process's changes every second).
const SEEN_WITHIN: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

async fn tokens(api: &Api) -> Vec<Value> {
    let reply = api.get(ADMIN_TOKEN, "/api/v1/tokens").await.expect_status(200);
    reply.body["tokens"].as_array().unwrap_or_else(|| panic!("no tokens in {}", reply.text)).clone()
}

async fn listed(api: &Api, name: &str) -> Value {
    tokens(api).await.into_iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name} not listed"))
}

/// Waits until `GET /healthz`-like probe `path` with `token` answers `status`.
async fn until_status(api: &Api, token: &str, path: &str, status: u16) {
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let reply = api.get(token, path).await;
        if reply.status.as_u16() == status {
            return;
        }
        assert!(Instant::now() < deadline, "{path} still {} after {SEEN_WITHIN:?}: {}", reply.status, reply.text);
        tokio::time::sleep(POLL).await;
    }
}

const PROBE: &str = "/api/v1/events?limit=1";

#[tokio::test]
async fn an_admin_lists_tokens_without_secrets_and_sees_their_last_use() {
    let server = Server::start();
    let api = server.api();
    let secret = api.token("aud-1", "auditor", &[]).await;
    let all = tokens(&api).await;
    let names: Vec<&str> = all.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["admin", "aud-1"]);
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(&secret) && !text.contains(ADMIN_TOKEN), "a secret is listed: {text}");
    let t = listed(&api, "aud-1").await;
    assert_eq!((t["role"].as_str(), t["created_by"].as_str()), (Some("auditor"), Some("admin")));
    for field in ["created_at", "last_used_at", "expires_at", "revoked_at", "revoked_by", "programmes"] {
        assert!(t.get(field).is_some(), "{field} missing from {t}");
    }
    assert!(t["last_used_at"].is_null(), "not used yet: {t}");
    api.get(&secret, PROBE).await.expect_status(200);
    let deadline = Instant::now() + SEEN_WITHIN;
    while listed(&api, "aud-1").await["last_used_at"].is_null() {
        assert!(Instant::now() < deadline, "last_used_at still null after {SEEN_WITHIN:?}");
        tokio::time::sleep(POLL).await;
    }
    // Only admins list tokens.
    api.get(&secret, "/api/v1/tokens").await.problem(403, "forbidden");
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_and_who_revoked_it_is_kept() {
    let server = Server::start();
    let api = server.api();
    let secret = api.token("pm-x", "auditor", &[]).await;
    api.get(&secret, PROBE).await.expect_status(200);
    let reply = api.send(Method::DELETE, "/api/v1/tokens/PM-X", Some(ADMIN_TOKEN), None, &[]).await;
    assert_eq!(reply.status.as_u16(), 204, "{}", reply.text);
    api.get(&secret, PROBE).await.problem(401, "unauthorized");
    let t = listed(&api, "pm-x").await;
    assert_eq!(t["revoked_by"], "admin", "{t}");
    assert!(t["revoked_at"].is_string(), "{t}");
    // Revoking again changes nothing; an unknown name is 404.
    let again = api.send(Method::DELETE, "/api/v1/tokens/pm-x", Some(ADMIN_TOKEN), None, &[]).await;
    assert_eq!(again.status.as_u16(), 204);
    assert_eq!(listed(&api, "pm-x").await["revoked_at"], t["revoked_at"]);
    api.send(Method::DELETE, "/api/v1/tokens/nobody", Some(ADMIN_TOKEN), None, &[]).await.problem(404, "not-found");
    // The name stays taken, and the revocation survives a restart.
    let body = json!({"name": "pm-x", "role": "viewer"});
    api.post(ADMIN_TOKEN, "/api/v1/tokens", &body).await.problem(409, "exists");
    let mut server = server;
    server.restart();
    server.api().get(&secret, PROBE).await.problem(401, "unauthorized");
}

#[tokio::test]
async fn names_are_unique_without_regard_to_case() {
    let server = Server::start();
    let api = server.api();
    api.token("PM-NCTCR", "viewer", &[]).await;
    for name in ["pm-nctcr", "Pm-NcTcR", "ADMIN"] {
        let body = json!({"name": name, "role": "viewer"});
        api.post(ADMIN_TOKEN, "/api/v1/tokens", &body).await.problem(409, "exists");
    }
}

#[tokio::test]
async fn an_expiry_must_be_in_the_future_and_an_expired_token_is_refused() {
    let server = Server::start();
    let api = server.api();
    for past in ["2020-01-01T00:00:00Z", "not-a-time"] {
        let body = json!({"name": "late", "role": "auditor", "expires_at": past});
        let reply = api.post(ADMIN_TOKEN, "/api/v1/tokens", &body).await;
        reply.problem(400, "invalid-body");
        reply.names_field("/expires_at").unwrap();
    }
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let body = json!({"name": "brief", "role": "auditor", "expires_at": soon});
    let reply = api.post(ADMIN_TOKEN, "/api/v1/tokens", &body).await.expect_status(201);
    let secret = reply.body["token"].as_str().unwrap().to_owned();
    api.get(&secret, PROBE).await.expect_status(200);
    until_status(&api, &secret, PROBE, 401).await;
    assert!(listed(&api, "brief").await["expires_at"].is_string());
}

fn cli(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .arg("token")
        .args(args)
        .args(server.log_args())
        .output()
        .unwrap_or_else(|e| panic!("grantlog token {args:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_tokens_beside_a_running_server() {
    let server = Server::start();
    let api = server.api();
    let (ok, out, err) = cli(&server, &["create", "--name", "ops-1", "--role", "auditor"]);
    assert!(ok, "token create: {out} {err}");
    let secret = out.trim().to_owned();
    assert!(secret.starts_with("glt_"), "{out}");
    // The running server accepts a token created beside it...
    until_status(&api, &secret, PROBE, 200).await;
    let (ok, _, err) = cli(&server, &["create", "--name", "OPS-1", "--role", "viewer"]);
    assert!(!ok && err.contains("exists"), "a name colliding in case: {err}");
    let (ok, out, err) = cli(&server, &["list"]);
    assert!(ok, "{err}");
    let rows: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(rows.iter().any(|r| r["name"] == "ops-1" && r["created_by"] == "cli"), "{out}");
    assert!(!out.contains(&secret));
    // ...and refuses it once the CLI revoked it.
    let (ok, out, err) = cli(&server, &["revoke", "--name", "Ops-1", "--by", "night-operator"]);
    assert!(ok, "token revoke: {out} {err}");
    until_status(&api, &secret, PROBE, 401).await;
    let t = listed(&api, "ops-1").await;
    assert_eq!(t["revoked_by"], "night-operator", "{t}");
    let (ok, _, _) = cli(&server, &["revoke", "--name", "nobody"]);
    assert!(!ok, "revoking an unknown token fails");
    // The server's own file is intact: its tokens still work.
    api.get(ADMIN_TOKEN, PROBE).await.expect_status(200);
}

#[tokio::test]
async fn a_live_stream_opened_with_a_token_ends_when_it_is_revoked() {
    let server = Server::start();
    let api = server.api();
    let secret = api.token("aud-live", "auditor", &[]).await;
    let mut response =
        api.http().get(format!("{}/api/v1/events/stream", api.base())).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let reply = api.send(Method::DELETE, "/api/v1/tokens/aud-live", Some(ADMIN_TOKEN), None, &[]).await;
    assert_eq!(reply.status.as_u16(), 204, "{}", reply.text);
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Err(_) => panic!("the stream of a revoked token still open after {SEEN_WITHIN:?}"),
            Ok(Ok(None) | Err(_)) => break,
            Ok(Ok(Some(_))) => {}
        }
    }
}
