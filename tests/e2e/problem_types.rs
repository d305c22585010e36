//! A problem's `type` resolves: real refusals over HTTP (an invalid body,
//! an unknown grant, a rule of the grant, no token), each answer's `type`
//! followed on the same server, and the entry found there names the
//! answer's code and status, lists the members and headers it came with,
//! and is a page for a browser.

use reqwest::Method;
use serde_json::{Value, json};

use crate::bodies::award;
use crate::client::{Api, Reply, eur};
use crate::harness::{ADMIN_TOKEN, Server};

/// What every problem body carries; the others must be in the entry.
const STANDARD: &[&str] = &["type", "title", "status", "detail", "code", "request_id"];
/// What a browser sends when it follows a link.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn names(list: &Value) -> Vec<String> {
    list.as_array().into_iter().flatten().filter_map(|m| m["name"].as_str()).map(str::to_lowercase).collect()
}

/// Follows `refusal`'s `type` on the server that answered and checks the
/// entry against the answer; returns the entry.
async fn follow(api: &Api, refusal: &Reply, code: &str) -> Value {
    let status = refusal.status.as_u16();
    let problem = refusal.problem(status, code);
    let type_uri = problem["type"].as_str().expect("a type");
    let entry = api.send(Method::GET, type_uri, None, None, &[]).await;
    assert_eq!(entry.status, 200, "{type_uri}: {}", entry.text);
    assert!(entry.header("content-type").unwrap_or_default().starts_with("application/json"), "{type_uri}");
    assert_eq!(
        (entry.body["code"].as_str(), entry.body["status"].as_u64(), entry.body["type"].as_str()),
        (Some(code), Some(u64::from(status)), Some(type_uri)),
        "{type_uri}: {}",
        entry.text
    );
    assert_eq!(entry.body["title"], problem["title"], "{type_uri}");
    assert!(!entry.body["what_to_do"].as_str().unwrap_or_default().is_empty(), "{type_uri}: nothing to do");
    let listed = names(&entry.body["members"]);
    for member in problem.as_object().expect("an object").keys() {
        let known = STANDARD.contains(&member.as_str()) || listed.contains(member);
        assert!(known, "{type_uri}: the answer's {member} is not in the entry {listed:?}");
    }
    let headers = names(&entry.body["headers"]);
    for name in ["retry-after", "etag", "www-authenticate"] {
        if refusal.header(name).is_some() {
            assert!(headers.contains(&name.to_owned()), "{type_uri}: {name} came and is not listed: {headers:?}");
        }
    }
    let page = api.send(Method::GET, type_uri, None, None, &[("accept", BROWSER_ACCEPT)]).await;
    assert_eq!(page.status, 200, "{type_uri} as HTML: {}", page.text);
    assert!(page.header("content-type").unwrap_or_default().starts_with("text/html"), "{type_uri}");
    assert!(page.text.contains(&format!("<code>{code}</code>")), "{type_uri}: {}", page.text);
    assert!(page.text.contains(&format!("<strong>{status}</strong>")), "{type_uri}: {}", page.text);
    assert!(!page.text.contains("http://") && !page.text.contains("https://"), "{type_uri}: an external asset");
    entry.body
}

#[tokio::test]
async fn every_refusal_type_resolves_to_the_entry_that_explains_it() {
    let server = Server::start();
    let api = server.api();
    api.post(ADMIN_TOKEN, "/api/v1/programmes", &json!({"id": "prog-a", "name": "A"})).await.written(201);
    api.post(ADMIN_TOKEN, "/api/v1/grants", &award("grant-a", "prog-a", "1000.00")).await.written(201);
    let grant = |p: &str| format!("/api/v1/grants/grant-a/{p}");
    let day = "2022-01-01";
    let workstream = json!({"code": "WP1", "title": "Work package 1", "effective_date": day});
    api.post(ADMIN_TOKEN, &grant("workstreams"), &workstream).await.written(201);

    // An invalid body: 400 naming the field.
    let mut bad = award("grant-b", "prog-a", "1000.00");
    bad["start"] = json!("yesterday");
    let reply = api.post(ADMIN_TOKEN, "/api/v1/grants", &bad).await;
    let entry = follow(&api, &reply, "invalid-body").await;
    assert!(names(&entry["members"]).contains(&"errors".to_owned()), "{entry}");

    // A grant that does not exist: 404.
    follow(&api, &api.get(ADMIN_TOKEN, "/api/v1/grants/no-such-grant/budget").await, "not-found").await;

    // A rule of the grant: 2,000.00 on a line of a 1,000.00 award.
    let line = json!({"workstream": "WP1", "category": "PER", "amount": eur("2000.00"), "effective_date": day});
    let reply = api.post(ADMIN_TOKEN, &grant("budget-lines"), &line).await;
    let entry = follow(&api, &reply, "exceeds-award").await;
    assert_eq!(entry["source"], "domain", "{entry}");
    assert!(names(&entry["members"]).contains(&"excess".to_owned()), "{entry}");

    // An expenditure on a line that is not open: 422, with the field named.
    let spend = json!({"id": "E1", "line": "WP1-TRV", "amount": eur("1.00"), "incurred_on": "2022-02-01", "supplier": "s", "invoice": "I-1"});
    let reply = api.post(ADMIN_TOKEN, &grant("expenditures"), &spend).await;
    follow(&api, &reply, "unknown-line").await;

    // No token: 401 with WWW-Authenticate, which the entry lists.
    let reply = api.send(Method::GET, &grant("budget"), None, None, &[]).await;
    follow(&api, &reply, "unauthorized").await;

    // An unknown problem type is itself a problem, and resolves too.
    let reply = api.send(Method::GET, "/problems/no-such-code", None, None, &[]).await;
    follow(&api, &reply, "not-found").await;

    // Any bare status resolves to the generic entry, with that status.
    let teapot = api.send(Method::GET, "/problems/http-418", None, None, &[]).await.expect_status(200);
    assert_eq!((teapot.body["code"].as_str(), teapot.body["status"].as_u64()), (Some("http-418"), Some(418)));

    // The list has every code once, and the OpenAPI document both routes.
    let list = api.send(Method::GET, "/problems", None, None, &[]).await.expect_status(200);
    let codes: Vec<&str> =
        list.body["problem_types"].as_array().into_iter().flatten().filter_map(|p| p["code"].as_str()).collect();
    for code in ["invalid-body", "not-found", "exceeds-award", "unknown-line", "unauthorized", "money"] {
        assert_eq!(codes.iter().filter(|c| **c == code).count(), 1, "{code} in {codes:?}");
    }
    let openapi = api.send(Method::GET, "/openapi.json", None, None, &[]).await.expect_status(200);
    for path in ["/problems", "/problems/{code}"] {
        assert!(openapi.body["paths"][path]["get"].is_object(), "{path} is not in the OpenAPI document");
    }
}
