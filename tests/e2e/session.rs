//! The dashboard's sign-in: a token exchanged for an HttpOnly session
//! cookie, which then authenticates reads, live streams and (with the
//! session's CSRF token, from the same origin) writes; sign-out and token
//! revocation end it on the server.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Api, Reply};
use crate::harness::{ADMIN_TOKEN, Backend, Server};

const GRANT: &str = "/api/v1/grants/nctcr-2022";

/// A browser's view of one session: its cookie and CSRF token.
struct Browser {
    api: Api,
    cookie: String,
    csrf: String,
}

async fn sign_in(api: &Api, token: &str, headers: &[(&str, &str)]) -> (Reply, Option<Browser>) {
    let body = serde_json::to_vec(&json!({ "token": token })).unwrap();
    let reply = api.send(Method::POST, "/api/v1/session", None, Some(body), headers).await;
    let browser = reply.header("set-cookie").map(|c| Browser {
        api: api.clone(),
        cookie: c.split(';').next().unwrap().to_owned(),
        csrf: reply.body["csrf_token"].as_str().unwrap_or_default().to_owned(),
    });
    (reply, browser)
}

impl Browser {
    async fn send(&self, method: Method, path: &str, body: Option<&Value>, extra: &[(&str, &str)]) -> Reply {
        let mut headers = vec![("cookie", self.cookie.as_str())];
        headers.extend_from_slice(extra);
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        self.api.send(method, path, None, bytes, &headers).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    async fn write(&self, path: &str, body: &Value, key: &str) -> Reply {
        let headers = [("x-csrf-token", self.csrf.as_str()), ("idempotency-key", key)];
        self.send(Method::POST, path, Some(body), &headers).await
    }
}

fn expenditure(id: &str) -> Value {
    json!({"id": id, "line": "FP1-CON", "amount": {"amount": "10.00", "currency": "EUR"},
           "incurred_on": "2022-12-01", "supplier": "SUP-LAB", "invoice": format!("INV-{id}")})
}

#[tokio::test]
async fn a_session_cookie_reads_and_writes_like_its_token_and_sign_out_ends_it() {
    let server = Server::start_with(&["demo"]);
    let api = server.api();
    let manager = api.token("pm-dash", "manager", &["nctcr"]).await;

    let (reply, browser) = sign_in(&api, &manager, &[]).await;
    let reply = reply.expect_status(201);
    assert_eq!((&reply.body["name"], &reply.body["role"]), (&json!("pm-dash"), &json!("manager")), "{}", reply.text);
    assert_eq!(reply.body["programmes"], json!(["nctcr"]));
    let set_cookie = reply.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert!(!set_cookie.contains(&manager), "the cookie is not the token: {set_cookie}");
    let browser = browser.unwrap();
    assert_eq!(browser.csrf.len(), 64);

    // The cookie alone reads what the token reads, and says who it is.
    let me = browser.get("/api/v1/session").await.expect_status(200);
    assert_eq!(me.body["csrf_token"], json!(browser.csrf));
    let budget = browser.get(&format!("{GRANT}/budget?as_of=2022-09-30")).await.expect_status(200);
    assert_eq!(budget.body["spent"]["amount"], json!("53297.85"));

    // Writes need the session's CSRF token, from the same origin.
    let before = api.expenditure_ids("nctcr-2022").await.len();
    let no_csrf = browser.send(Method::POST, &format!("{GRANT}/expenditures"), Some(&expenditure("E-S1")), &[]).await;
    no_csrf.problem(403, "csrf-check-failed");
    let wrong = [("x-csrf-token", "0".repeat(64)), ("idempotency-key", "s-0".to_owned())];
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser
        .send(Method::POST, &format!("{GRANT}/expenditures"), Some(&expenditure("E-S1")), &wrong)
        .await
        .problem(403, "csrf-check-failed");
    let host = api.base().trim_start_matches("http://").to_owned();
    let cross = [("x-csrf-token", browser.csrf.as_str()), ("origin", "http://evil.example"), ("host", host.as_str())];
    browser
        .send(Method::POST, &format!("{GRANT}/expenditures"), Some(&expenditure("E-S1")), &cross)
        .await
        .problem(403, "csrf-check-failed");
    assert_eq!(api.expenditure_ids("nctcr-2022").await.len(), before, "a refused write recorded nothing");
    let origin = format!("http://{host}");
    let same = [("x-csrf-token", browser.csrf.as_str()), ("origin", origin.as_str()), ("idempotency-key", "s-1")];
    let written = browser.send(Method::POST, &format!("{GRANT}/expenditures"), Some(&expenditure("E-S1")), &same).await;
    let written = written.written(201);
    let events = api.history(ADMIN_TOKEN, "nctcr-2022").await;
    let recorded = events.iter().find(|e| e["data"]["expenditure_id"] == json!("E-S1")).unwrap();
    assert_eq!(recorded["actor"], json!("pm-dash"), "recorded as the session's token: {written}");

    // Sign-out needs the CSRF token too, then ends the session on the server.
    browser.send(Method::DELETE, "/api/v1/session", None, &[]).await.problem(403, "csrf-check-failed");
    let out = browser.send(Method::DELETE, "/api/v1/session", None, &[("x-csrf-token", browser.csrf.as_str())]).await;
    let out = out.expect_status(204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"), "the cookie is cleared");
    browser.get(&format!("{GRANT}/budget")).await.problem(401, "unauthorized");
    browser.get("/api/v1/session").await.problem(401, "unauthorized");
    browser.write(&format!("{GRANT}/expenditures"), &expenditure("E-S2"), "s-2").await.problem(401, "unauthorized");
}

#[tokio::test]
async fn a_bad_token_gets_no_session_and_a_revoked_token_ends_its_sessions() {
    let server = Server::start_with(&["demo"]);
    let api = server.api();
    let (reply, browser) = sign_in(&api, "glt_not-a-token", &[]).await;
    reply.problem(401, "unauthorized");
    assert!(browser.is_none(), "no cookie for a bad token");
    let body = serde_json::to_vec(&json!({"token": "x", "extra": 1})).unwrap();
    api.send(Method::POST, "/api/v1/session", None, Some(body), &[]).await.problem(400, "invalid-body");
    // A sign-in posted from another site is refused before the token is looked at.
    let host = api.base().trim_start_matches("http://").to_owned();
    let (cross, _) = sign_in(&api, ADMIN_TOKEN, &[("origin", "http://evil.example"), ("host", host.as_str())]).await;
    cross.problem(403, "csrf-check-failed");

    let viewer = api.token("viewer-dash", "viewer", &["nctcr"]).await;
    let (_, browser) = sign_in(&api, &viewer, &[("x-forwarded-proto", "https")]).await;
    let browser = browser.unwrap();
    let (reply, _) = sign_in(&api, &viewer, &[("x-forwarded-proto", "https")]).await;
    assert!(reply.header("set-cookie").unwrap().contains("Secure"), "behind TLS the cookie is Secure");
    browser.get(&format!("{GRANT}/budget")).await.expect_status(200);
    // The token's role governs the session: a viewer writes nothing.
    browser.write(&format!("{GRANT}/expenditures"), &expenditure("E-V1"), "v-1").await.problem(403, "forbidden");
    api.send(Method::DELETE, "/api/v1/tokens/viewer-dash", Some(ADMIN_TOKEN), None, &[]).await.expect_status(204);
    browser.get(&format!("{GRANT}/budget")).await.problem(401, "unauthorized");
    browser.get("/api/v1/session").await.problem(401, "unauthorized");
}

#[tokio::test]
async fn a_session_opened_on_one_server_is_known_and_ended_on_every_server() {
    if crate::BACKEND != Backend::Postgres {
        // One server per SQLite data directory; the sessions live in
        // api.sqlite, which a restart keeps.
        let mut server = Server::start_with(&["demo"]);
        let (_, browser) = sign_in(&server.api(), ADMIN_TOKEN, &[]).await;
        let mut browser = browser.unwrap();
        server.restart();
        browser.api = server.api();
        browser.get(&format!("{GRANT}/budget")).await.expect_status(200);
        return;
    }
    let a = Server::start_with(&["demo"]);
    let b = a.join();
    let (_, browser) = sign_in(&a.api(), ADMIN_TOKEN, &[]).await;
    let mut browser = browser.unwrap();
    browser.api = b.api();
    browser.get(&format!("{GRANT}/budget")).await.expect_status(200);
    browser
        .send(Method::DELETE, "/api/v1/session", None, &[("x-csrf-token", browser.csrf.as_str())])
        .await
        .expect_status(204);
    browser.api = a.api();
    browser.get(&format!("{GRANT}/budget")).await.problem(401, "unauthorized");
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_with_a_strict_policy() {
    let server = Server::start();
    let api = server.api();
    let page = api.send(Method::GET, "/", None, None, &[]).await.expect_status(200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(page.text.contains("<main id=\"app\""), "{}", page.text);
    let etag = page.header("etag").unwrap().to_owned();
    let again = api.send(Method::GET, "/", None, None, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(again.status.as_u16(), 304);
    // Every file the page names is served; nothing outside the directory is.
    for src in page.text.split(['"', '\'']).filter(|s| s.starts_with("/dashboard/")) {
        api.send(Method::GET, src, None, None, &[]).await.expect_status(200);
    }
    for bad in ["/dashboard/../Cargo.toml", "/dashboard/%2e%2e/Cargo.toml", "/dashboard/nope.js"] {
        let reply = api.send(Method::GET, bad, None, None, &[]).await;
        assert_eq!(reply.status.as_u16(), 404, "{bad}: {}", reply.text);
    }
}
