//! Who may call what, generated from `/openapi.json`: for every operation
//! under `/api/v1`, no token and a bad token are 401 with
//! `WWW-Authenticate: Bearer`, and each role (admin, manager of the grant's
//! programme, manager of another programme, auditor, viewer) is allowed or
//! refused as the operation's `x-grantlog-roles` and the caller's programmes
//! say.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::bodies::{award, small_expenditure};
use crate::client::{Api, Reply, eur};
use crate::harness::ADMIN_TOKEN;
use crate::world::{GRANT_A, GRANT_B, PROG_A, World};

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    /// The path as documented, e.g. `/api/v1/grants/{grant}/budget`.
    template: String,
    /// `x-grantlog-roles`.
    roles: BTreeSet<String>,
}

impl Operation {
    /// The template with every parameter written `{}`.
    fn shape(&self) -> String {
        shape(&self.template)
    }

    fn scope(&self) -> Scope {
        let shape = self.shape();
        if shape.starts_with("/api/v1/grants/{}") {
            Scope::Grant
        } else if shape.starts_with("/api/v1/programmes/{}") {
            Scope::Programme
        } else if shape == "/api/v1/grants" && self.method == Method::POST {
            Scope::NewGrant
        } else {
            Scope::Global
        }
    }
}

/// What an operation's programme scope hangs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A grant in the path.
    Grant,
    /// A programme in the path.
    Programme,
    /// The programme in the body of a new grant.
    NewGrant,
    /// No programme.
    Global,
}

fn shape(template: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in template.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    out.push_str("{}");
                }
            }
            '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

async fn operations(api: &Api) -> Vec<Operation> {
    let reply = api.send(Method::GET, "/openapi.json", None, None, &[]).await.expect_status(200);
    let doc = &reply.body;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "not OpenAPI 3.1: {}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap_or_else(|| panic!("no paths in /openapi.json: {}", reply.text));
    let mut ops = Vec::new();
    let mut missing_roles = Vec::new();
    for (template, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            // The dashboard's sign-in takes no bearer token (a token in its
            // body, then the session cookie): `session.rs` tests it.
            if !template.starts_with("/api/v1") || template == "/api/v1/session" {
                continue;
            }
            match op["x-grantlog-roles"].as_array() {
                Some(roles) => ops.push(Operation {
                    method,
                    template: template.clone(),
                    roles: roles.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                }),
                None => missing_roles.push(format!("{method} {template}")),
            }
        }
    }
    assert!(missing_roles.is_empty(), "operations without x-grantlog-roles: {missing_roles:?}");
    ops
}

/// The calls API.md defines, each of which the document must list.
const DOCUMENTED: &[(&str, &str)] = &[
    ("POST", "/api/v1/programmes"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{}"),
    ("POST", "/api/v1/grants"),
    ("POST", "/api/v1/grants/{}/workstreams"),
    ("POST", "/api/v1/grants/{}/budget-lines"),
    ("POST", "/api/v1/grants/{}/reporting-periods"),
    ("POST", "/api/v1/grants/{}/reporting-periods/{}/close"),
    ("POST", "/api/v1/grants/{}/reporting-periods/{}/reopen"),
    ("POST", "/api/v1/grants/{}/commitments"),
    ("POST", "/api/v1/grants/{}/commitments/{}/close"),
    ("POST", "/api/v1/grants/{}/expenditures"),
    ("POST", "/api/v1/grants/{}/expenditures/{}/reversal"),
    ("POST", "/api/v1/grants/{}/reallocations"),
    ("POST", "/api/v1/grants/{}/reallocations/{}/approval"),
    ("POST", "/api/v1/grants/{}/reallocations/{}/rejection"),
    ("POST", "/api/v1/grants/{}/amendments"),
    ("POST", "/api/v1/grants/{}/amendments/{}/approval"),
    ("POST", "/api/v1/grants/{}/amendments/{}/rejection"),
    ("POST", "/api/v1/grants/{}/milestones"),
    ("POST", "/api/v1/grants/{}/milestones/{}/reschedule"),
    ("POST", "/api/v1/grants/{}/milestones/{}/achieve"),
    ("POST", "/api/v1/grants/{}/milestones/{}/cancel"),
    ("GET", "/api/v1/grants/{}/budget"),
    ("GET", "/api/v1/grants/{}/timeline"),
    ("GET", "/api/v1/grants/{}/history"),
    ("GET", "/api/v1/programmes/{}/portfolio"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/events/stream"),
    ("GET", "/api/v1/events/export"),
    ("GET", "/api/v1/audit/verify"),
];

/// The roles the contract gives some calls, exactly.
const CONTRACT_ROLES: &[(&str, &str, &[&str])] = &[
    ("POST", "/api/v1/programmes", &["admin"]),
    ("POST", "/api/v1/tokens", &["admin"]),
    ("GET", "/api/v1/tokens", &["admin"]),
    ("DELETE", "/api/v1/tokens/{}", &["admin"]),
    ("POST", "/api/v1/grants", &["admin", "manager"]),
    ("POST", "/api/v1/grants/{}/expenditures", &["admin", "manager"]),
    ("GET", "/api/v1/grants/{}/budget", &["admin", "auditor", "manager", "viewer"]),
    ("GET", "/api/v1/grants/{}/timeline", &["admin", "auditor", "manager", "viewer"]),
    ("GET", "/api/v1/programmes/{}/portfolio", &["admin", "auditor", "manager", "viewer"]),
    ("GET", "/api/v1/grants/{}/history", &["admin", "auditor", "manager"]),
    ("GET", "/api/v1/events", &["admin", "auditor"]),
    ("GET", "/api/v1/events/stream", &["admin", "auditor"]),
    ("GET", "/api/v1/events/export", &["admin", "auditor"]),
    ("GET", "/api/v1/audit/verify", &["admin", "auditor"]),
];

/// A caller: a role, a token, the programmes it is scoped to (`None`: all).
#[derive(Debug)]
struct Caller {
    name: &'static str,
    role: &'static str,
    token: String,
    programme: Option<&'static str>,
}

/// What a caller should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Past auth: neither 401, 403, nor a scope 404; never 5xx.
    Allowed,
    /// 403 `forbidden`.
    Forbidden,
    /// 404 `not-found`: the grant is outside the caller's programmes.
    Hidden,
    /// 403 or 404: refused, either way.
    Refused,
}

fn expect(op: &Operation, caller: &Caller) -> Expect {
    let listed = op.roles.contains(caller.role);
    let in_scope = op.scope() == Scope::Global || caller.programme.is_none_or(|p| p == PROG_A);
    match (listed, in_scope, op.scope()) {
        (true, true, _) => Expect::Allowed,
        (false, true, _) => Expect::Forbidden,
        (true, false, Scope::Grant) => Expect::Hidden,
        _ => Expect::Refused,
    }
}

/// The path of `op` with programme A's grant and existing ids filled in.
fn fill(template: &str, grant: &str) -> String {
    let mut out = Vec::new();
    let mut previous = "";
    for segment in template.split('/') {
        let value = if segment.starts_with('{') {
            match previous {
                "grants" => grant,
                "programmes" => PROG_A,
                "reporting-periods" => "P2",
                "commitments" => "PO-1",
                "expenditures" => "E1",
                "reallocations" => "R1",
                "amendments" => "AMD-1",
                "milestones" => "M1",
                "tokens" => "viewer-a",
                "lines" => "WP1-PER",
                _ => "x",
            }
        } else {
            segment
        };
        out.push(value.to_owned());
        previous = segment;
    }
    out.join("/")
}

/// A valid body for a write, unique by `n` where ids are created.
fn body(shape: &str, n: u32) -> Value {
    let tail = shape.strip_prefix("/api/v1/grants/{}/").unwrap_or(shape);
    match tail {
        "/api/v1/programmes" => json!({"id": format!("prog-n{n}"), "name": "new"}),
        "/api/v1/tokens" => json!({"name": format!("tok-{n}"), "role": "viewer", "programmes": []}),
        "/api/v1/grants" => award(&format!("grant-n{n}"), PROG_A, "1000.00"),
        "workstreams" => json!({"code": format!("W{n}"), "title": "new"}),
        "budget-lines" => json!({"workstream": "WP1", "category": "OTH", "amount": eur("1.00")}),
        "reporting-periods" => {
            json!({"id": format!("Q{n}"), "start": "2022-01-01", "end": "2022-01-31", "report_due": "2022-02-28"})
        }
        "commitments" => {
            json!({"id": format!("C{n}"), "line": "WP1-CON", "amount": eur("1.00"), "supplier": "s", "reference": format!("C-{n}")})
        }
        "expenditures" => small_expenditure(n),
        "reallocations" => json!({
            "id": format!("RX{n}"), "reason": "r",
            "deltas": [{"line": "WP1-PER", "amount": "-1.00"}, {"line": "WP1-TRV", "amount": "1.00"}]
        }),
        "amendments" => json!({"id": format!("AMDX{n}"), "kind": "no_cost_extension", "proposed_end": "2023-06-30"}),
        "milestones" => {
            json!({"id": format!("MX{n}"), "workstream": "WP1", "kind": "milestone", "title": "t", "due_on": "2022-10-31"})
        }
        "milestones/{}/reschedule" => json!({"due_on": "2022-11-30", "reason": "r"}),
        "milestones/{}/achieve" => json!({"achieved_on": "2022-06-30"}),
        _ if tail.ends_with("/reversal")
            || tail.ends_with("/rejection")
            || tail.ends_with("/cancel")
            || tail.ends_with("/reopen")
            || tail.ends_with("/close") =>
        {
            json!({"reason": "r"})
        }
        _ => json!({}),
    }
}

async fn call(api: &Api, op: &Operation, token: Option<&str>, grant: &str, n: u32) -> Reply {
    let path = fill(&op.template, grant);
    let body = (op.method != Method::GET).then(|| serde_json::to_vec(&body(&op.shape(), n)).expect("a body"));
    api.send(op.method.clone(), &path, token, body, &[]).await
}

/// `None` when `reply` is what `expected` allows, else why not.
fn mismatch(reply: &Reply, expected: Expect, method: &Method) -> Option<String> {
    let status = reply.status.as_u16();
    let code = reply.body["code"].as_str().unwrap_or_default();
    let ok = match expected {
        Expect::Allowed => {
            let scope_hidden = status == 404 && code == "not-found";
            !(matches!(status, 401 | 403 | 500..) || scope_hidden) && (*method != Method::GET || status == 200)
        }
        Expect::Forbidden => status == 403 && code == "forbidden",
        Expect::Hidden => status == 404 && code == "not-found",
        Expect::Refused => (status == 403 && code == "forbidden") || (status == 404 && code == "not-found"),
    };
    (!ok).then(|| format!("{}: expected {expected:?}, got {status} {}", reply.request, reply.text))
}

#[tokio::test]
async fn every_operation_answers_each_role_as_its_x_grantlog_roles_say() {
    let w = World::new().await;
    let api = w.api();
    let ops = operations(&api).await;
    let listed: BTreeSet<(String, String)> = ops.iter().map(|o| (o.method.to_string(), o.shape())).collect();
    for (method, path) in DOCUMENTED {
        assert!(listed.contains(&((*method).to_owned(), (*path).to_owned())), "/openapi.json lacks {method} {path}");
    }
    for (method, path, roles) in CONTRACT_ROLES {
        let op = ops.iter().find(|o| o.method.as_str() == *method && o.shape() == *path).expect("listed above");
        let want: BTreeSet<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        assert_eq!(op.roles, want, "x-grantlog-roles of {method} {path}");
    }
    let callers = [
        Caller { name: "viewer of A", role: "viewer", token: w.viewer_a.clone(), programme: Some(PROG_A) },
        Caller { name: "auditor", role: "auditor", token: w.auditor.clone(), programme: None },
        Caller { name: "manager of B", role: "manager", token: w.manager_b.clone(), programme: Some("prog-b") },
        Caller { name: "manager of A", role: "manager", token: w.manager_a.clone(), programme: Some(PROG_A) },
        Caller { name: "admin", role: "admin", token: ADMIN_TOKEN.to_owned(), programme: None },
    ];
    let mut failures = Vec::new();
    let mut n = 0;
    let mut writes = 0;
    for op in &ops {
        for token in [None, Some("not-a-token"), Some("")] {
            n += 1;
            let reply = call(&api, op, token, GRANT_A, n).await;
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            let code = reply.body["code"].as_str().unwrap_or_default();
            if reply.status.as_u16() != 401 || code != "unauthorized" || !challenge.starts_with("Bearer") {
                failures.push(format!(
                    "{} with token {token:?}: expected 401 unauthorized + WWW-Authenticate: Bearer, got {} [{challenge}] {}",
                    reply.request, reply.status, reply.text
                ));
            }
        }
        for caller in &callers {
            n += 1;
            let reply = call(&api, op, Some(&caller.token), GRANT_A, n).await;
            if let Some(why) = mismatch(&reply, expect(op, caller), &op.method) {
                failures.push(format!("{} ({}): {why}", caller.name, caller.role));
            }
            if op.method == Method::POST && reply.status.is_success() {
                writes += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    // The bodies are valid: allowed writes really were carried out, so an
    // "allowed" above is not just a 400 that happened to pass.
    let creations = ops
        .iter()
        .filter(|o| o.method == Method::POST && !o.template.ends_with('}') && body(&o.shape(), 0) != json!({}));
    assert!(writes >= creations.count(), "only {writes} writes succeeded");
}

#[tokio::test]
async fn a_manager_of_programme_a_can_neither_read_nor_write_programme_b() {
    let w = World::new().await;
    let api = w.api();
    let before = api.version(GRANT_B).await;
    for view in ["budget", "timeline", "history"] {
        api.get(&w.manager_a, &format!("/api/v1/grants/{GRANT_B}/{view}")).await.problem(404, "not-found");
        api.get(&w.viewer_a, &format!("/api/v1/grants/{GRANT_B}/{view}")).await.assert_problem_shape();
    }
    let write = api.post(&w.manager_a, &format!("/api/v1/grants/{GRANT_B}/expenditures"), &small_expenditure(1)).await;
    write.problem(404, "not-found");
    let award_b = award("grant-b2", "prog-b", "1000.00");
    let reply = api.post(&w.manager_a, "/api/v1/grants", &award_b).await;
    assert!(matches!(reply.status.as_u16(), 403 | 404), "a grant in B by A's manager: {} {}", reply.status, reply.text);
    reply.assert_problem_shape();
    assert_eq!(api.version(GRANT_B).await, before, "programme B's grant changed");
    // Its own programme's manager may, and sees it.
    api.get(&w.manager_b, &format!("/api/v1/grants/{GRANT_B}/budget")).await.expect_status(200);
    let workstream = json!({"code": "WP2", "title": "B2"});
    api.post(&w.manager_b, &format!("/api/v1/grants/{GRANT_B}/workstreams"), &workstream).await.written(201);
    // The operational endpoints need no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        api.send(Method::GET, path, None, None, &[]).await.expect_status(200);
    }
}
