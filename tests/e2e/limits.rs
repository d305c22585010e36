//! Issue 10, sections 4 and 5, over real HTTP: no request can break a view
//! (amounts and dates are bounded), and input is strict. Each observed
//! case is refused with 400 (or 415, 403) problem+json naming the field,
//! and nothing is recorded; amounts near the limit leave every view, and
//! `grantlog replay`, answering.

use std::process::Command;

use serde_json::{Value, json};

use crate::bodies::{award, expenditure, small_expenditure};
use crate::client::{Api, Reply, caught_up, eur};
use crate::harness::{ADMIN_TOKEN, Server, binary};
use crate::world::{GRANT_A, GRANT_B, PROG_A, World};

/// The largest decimal: accepted with 201 before amounts were bounded.
const DECIMAL_MAX: &str = "79228162514264337593543950335";
/// `events::bounds::AMOUNT_UNITS_MAX`.
const LIMIT: &str = "10000000000000.00";

fn path(grant: &str, p: &str) -> String {
    format!("/api/v1/grants/{grant}/{p}")
}

#[track_caller]
fn refused_naming(reply: &Reply, pointer: &str, failures: &mut Vec<String>, what: &str) {
    if let Err(why) = reply.names_field(pointer) {
        failures.push(format!("{what}: {why}"));
    } else {
        reply.assert_problem_shape();
    }
}

#[tokio::test]
async fn strict_amounts_rates_dates_currencies_and_ids_are_400_naming_the_field() {
    let w = World::new().await;
    let api = w.api();
    let pm = w.manager_a.as_str();
    let before = api.version(GRANT_A).await;
    let mut failures = Vec::new();
    let expenditures = path(GRANT_A, "expenditures");

    // Each case its own expenditure, so that one accepted cannot hide the next.
    let mut n = 100;
    let mut next = || {
        n += 1;
        small_expenditure(n)
    };
    for text in ["1_000.00", "+5.00", "5.", ".5", "1e3", " 5.00", DECIMAL_MAX] {
        let mut body = next();
        body["amount"] = eur(text);
        refused_naming(&api.post(pm, &expenditures, &body).await, "/amount/amount", &mut failures, text);
    }
    for text in ["1e3", "1_000", "+1.08", "1.", ".5"] {
        let mut body = next();
        body["amount"] = json!({"amount": "10.00", "currency": "USD"});
        body["conversion"] = json!({"rate": text, "source": "ECB", "rate_date": "2022-08-01"});
        refused_naming(&api.post(pm, &expenditures, &body).await, "/conversion/rate", &mut failures, text);
    }
    for (i, text) in ["1_0", "1e3", "+1.00", "-1."].iter().enumerate() {
        let body = json!({"id": format!("RX{i}"), "reason": "r", "deltas": [{"line": "WP1-PER", "amount": "-10"}, {"line": "WP1-TRV", "amount": text}]});
        let reply = api.post(pm, &path(GRANT_A, "reallocations"), &body).await;
        refused_naming(&reply, "/deltas/1/amount", &mut failures, text);
    }
    for text in ["2022-8-1", " 2022-08-01", "2022-08-01 ", "+99999-01-01", "1899-12-31", "2200-01-01"] {
        let mut body = next();
        body["incurred_on"] = json!(text);
        refused_naming(&api.post(pm, &expenditures, &body).await, "/incurred_on", &mut failures, text);
        let mut body = next();
        body["effective_date"] = json!(text);
        refused_naming(&api.post(pm, &expenditures, &body).await, "/effective_date", &mut failures, text);
    }
    let grants = "/api/v1/grants";
    for (i, field, value, pointer) in [
        ("indirect_rate", json!("1e3"), "/indirect_rate"),
        ("indirect_rate", json!("0_25"), "/indirect_rate"),
        ("award", eur("1_000.00"), "/award/amount"),
        ("award", json!({"amount": "1000.00", "currency": "XXX"}), "/award/currency"),
        ("award", json!({"amount": "1000.00", "currency": "XTS"}), "/award/currency"),
        ("award", json!({"amount": "1000", "currency": "XAU"}), "/award/currency"),
        ("start", json!("2022-1-1"), "/start"),
        ("end", json!("+99999-01-01"), "/end"),
        ("id", json!("."), "/id"),
        ("id", json!(".."), "/id"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (f, v, p))| (i, f, v, p))
    {
        let mut body = award(&format!("g-strict-{i}"), PROG_A, "1000.00");
        body[field] = value.clone();
        refused_naming(&api.post(pm, grants, &body).await, pointer, &mut failures, &format!("{field} {value}"));
    }
    let programme = json!({"id": "..", "name": "dots"});
    refused_naming(&api.post(ADMIN_TOKEN, "/api/v1/programmes", &programme).await, "/id", &mut failures, "..");
    let milestone = json!({"id": ".", "workstream": "WP1", "kind": "milestone", "title": "t", "due_on": "2022-10-31"});
    refused_naming(&api.post(pm, &path(GRANT_A, "milestones"), &milestone).await, "/id", &mut failures, ".");

    // Query dates.
    for text in ["2022-6-5", "%202022-06-05", "%2B99999-01-01", "1899-12-31"] {
        for (view, param) in [("budget", "as_of"), ("timeline", "today"), ("budget", "today")] {
            let reply = api.get(pm, &format!("{}?{param}={text}", path(GRANT_A, view))).await;
            let ok = reply.status.as_u16() == 400
                && reply.body["code"] == "invalid-query"
                && reply.body["errors"][0]["pointer"] == format!("?{param}");
            if !ok {
                failures.push(format!("{view}?{param}={text}: {} {}", reply.status, reply.text));
            }
        }
    }
    let reply = api.get(pm, &format!("/api/v1/programmes/{PROG_A}/portfolio?today=2022-6-5")).await;
    if reply.status.as_u16() != 400 || reply.body["errors"][0]["pointer"] != "?today" {
        failures.push(format!("portfolio?today=2022-6-5: {} {}", reply.status, reply.text));
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(api.version(GRANT_A).await, before, "a refused request recorded something");
    let reply = api.get(ADMIN_TOKEN, "/api/v1/events?limit=1000").await;
    assert!(!reply.text.contains("g-strict"), "a refused grant was recorded");
}

#[tokio::test]
async fn one_json_value_per_body_and_only_application_json() {
    let w = World::new().await;
    let api = w.api();
    let pm = w.manager_a.as_str();
    let before = api.version(GRANT_A).await;
    let expenditures = path(GRANT_A, "expenditures");
    let body = serde_json::to_vec(&small_expenditure(1)).unwrap();

    let mut garbage = body.clone();
    garbage.extend_from_slice(b"GARBAGE");
    api.post_raw(pm, &expenditures, garbage).await.problem(400, "invalid-body");
    let mut two = body.clone();
    two.extend_from_slice(&body);
    api.post_raw(pm, &expenditures, two).await.problem(400, "invalid-body");

    for content_type in
        ["application/jsonfoo", "application/evil+json", "text/plain", "application/json; charset=latin1"]
    {
        let reply = send_as(&api, pm, &expenditures, content_type, body.clone()).await;
        reply.problem(415, "unsupported-media-type");
    }
    assert_eq!(api.version(GRANT_A).await, before, "a refused body recorded something");
    // The one JSON type, with and without its charset, is accepted.
    send_as(&api, pm, &expenditures, "application/json; charset=utf-8", body.clone()).await.written(201);
    let second = serde_json::to_vec(&small_expenditure(2)).unwrap();
    send_as(&api, pm, &expenditures, "Application/JSON", second).await.written(201);
}

/// `POST` of `bytes` with exactly `content_type`.
async fn send_as(api: &Api, token: &str, path: &str, content_type: &str, bytes: Vec<u8>) -> Reply {
    let response = api
        .http()
        .post(format!("{}{path}", api.base()))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { request: format!("POST {path} as {content_type}"), status, headers, text, body }
}

#[tokio::test]
async fn variants_of_a_recorded_invoice_are_duplicates() {
    let w = World::new().await;
    let api = w.api();
    let pm = w.manager_a.as_str();
    let expenditures = path(GRANT_A, "expenditures");
    // The world recorded (sup-a, INV-1).
    let variants = [
        ("sup-a", "INV-1 "),
        ("sup-a", "INV-\u{200B}1"),
        ("sup-a", "inv-1"),
        ("SUP-A", "INV-1"),
        ("sup-a", "ＩＮＶ-１"),
        ("su\u{0070}-a", "INV\u{2060}-1"),
        ("sup-a", "\u{FEFF}INV-1"),
    ];
    for (i, (supplier, invoice)) in variants.iter().enumerate() {
        let body = expenditure(&format!("DUP{i}"), "WP1-CON", "1.00", "2022-08-01", supplier, invoice, None);
        let reply = api.post(pm, &expenditures, &body).await;
        let problem = reply.problem(422, "duplicate-invoice");
        assert_eq!(problem["expenditure"], "E1", "{supplier:?} {invoice:?}");
        assert_eq!(problem["invoice"], *invoice, "the problem quotes the text as given");
    }
    // An NFD form meets its NFC form, and the stored text stays as given.
    let nfc = expenditure("ACC1", "WP1-CON", "1.00", "2022-08-01", "sup-a", "Facture-é", None);
    api.post(pm, &expenditures, &nfc).await.written(201);
    let nfd = expenditure("ACC2", "WP1-CON", "1.00", "2022-08-01", "sup-a", "Facture-e\u{301}", None);
    api.post(pm, &expenditures, &nfd).await.problem(422, "duplicate-invoice");
    let history = api.history(pm, GRANT_A).await;
    let last = history.last().unwrap();
    assert_eq!(last["data"]["invoice"], "Facture-é");
}

#[tokio::test]
async fn a_grant_id_taken_in_another_programme_is_403_like_any_action_outside_ones_programmes() {
    let w = World::new().await;
    let api = w.api();
    // GRANT_B exists in programme B; manager A asks for that id in programme A.
    let reply = api.post(&w.manager_a, "/api/v1/grants", &award(GRANT_B, PROG_A, "1000.00")).await;
    reply.problem(403, "forbidden");
    // An id nobody has is not forbidden, and the owner still hears 409.
    api.post(&w.manager_a, "/api/v1/grants", &award("grant-a2", PROG_A, "1000.00")).await.written(201);
    let reply = api.post(&w.manager_b, "/api/v1/grants", &award(GRANT_B, "prog-b", "1000.00")).await;
    reply.problem(409, "grant-already-awarded");
}

#[tokio::test]
async fn the_largest_decimal_is_refused_and_amounts_near_the_limit_leave_every_view_answering() {
    let server = Server::start();
    let api = server.api();
    let admin = ADMIN_TOKEN;
    api.post(admin, "/api/v1/programmes", &json!({"id": "big", "name": "Big"})).await.written(201);
    let mut grant = award("huge", "big", LIMIT);
    grant["end"] = json!("2023-12-31");
    api.post(admin, "/api/v1/grants", &grant).await.written(201);
    let g = |p: &str| path("huge", p);
    api.post(admin, &g("workstreams"), &json!({"code": "W", "title": "W", "effective_date": "2022-01-01"}))
        .await
        .written(201);
    for (category, amount) in [("PER", "5000000000000.00"), ("CON", "5000000000000.00")] {
        let line =
            json!({"workstream": "W", "category": category, "amount": eur(amount), "effective_date": "2022-01-01"});
        api.post(admin, &g("budget-lines"), &line).await.written(201);
    }

    // The observed request: an expenditure of the largest decimal.
    let mut body = expenditure("MAX", "W-PER", "1.00", "2022-03-01", "s", "max", None);
    body["amount"] = eur(DECIMAL_MAX);
    let reply = api.post(admin, &g("expenditures"), &body).await;
    reply.names_field("/amount/amount").unwrap();
    // A conversion at the smallest rate would make it past the limit: refused by the domain.
    let mut body = expenditure("TINY", "W-PER", "1.00", "2022-03-01", "s", "tiny", None);
    body["amount"] = json!({"amount": "1000000.00", "currency": "USD"});
    body["conversion"] = json!({"rate": "0.0000000001", "source": "x", "rate_date": "2022-03-01"});
    api.post(admin, &g("expenditures"), &body).await.problem(422, "amount-above-limit");

    // Costs at the limit, each reversed a day later: an as-of view between
    // counts them all, until the grant's gross limit refuses one more.
    let mut position = 0;
    let mut recorded = 0;
    for n in 0u32..12 {
        let id = format!("BIG{n}");
        let day = format!("2022-03-{:02}", n + 2);
        let body = expenditure(&id, if n.is_multiple_of(2) { "W-PER" } else { "W-CON" }, LIMIT, &day, "s", &id, None);
        api.post(admin, &g("expenditures"), &body).await.written(201);
        recorded += 1;
        let reversal = json!({"reason": "test", "effective_date": format!("2022-04-{:02}", n + 1)});
        let answer = api.post(admin, &g(&format!("expenditures/{id}/reversal")), &reversal).await.written(200);
        position = answer["position"].as_u64().unwrap();
    }
    let realloc = json!({"id": "R", "reason": "r", "effective_date": "2022-05-01",
                         "deltas": [{"line": "W-PER", "amount": "-4999999999999.99"}, {"line": "W-CON", "amount": "4999999999999.99"}]});
    api.post(admin, &g("reallocations"), &realloc).await.written(201);
    caught_up(&api, "huge", position).await;

    for query in ["", "?as_of=2022-03-20", "?as_of=2022-04-30", "?as_of=2022-01-01", "?today=2199-12-31"] {
        let reply = api.get(admin, &format!("{}{query}", g("budget"))).await;
        assert_eq!(reply.status.as_u16(), 200, "budget{query}: {}", reply.text);
    }
    let spent = api.get(admin, &format!("{}?as_of=2022-03-20", g("budget"))).await.body["spent"]["amount"].clone();
    assert!(
        spent.as_str().unwrap().len() > LIMIT.len(),
        "{recorded} costs at the limit counted as of 2022-03-20: {spent}"
    );
    for view in ["timeline", "audit/line-history", "audit/corrections", "audit/approvals", "audit/statement.csv"] {
        let reply = api.get(admin, &g(view)).await;
        assert_eq!(reply.status.as_u16(), 200, "{view}: {}", reply.text);
    }
    let reply = api.get(admin, "/api/v1/programmes/big/portfolio").await;
    assert_eq!(reply.status.as_u16(), 200, "portfolio: {}", reply.text);

    for view in ["budget", "timeline"] {
        for as_of in [None, Some("2022-03-20")] {
            let mut args: Vec<String> =
                ["replay", "--grant", "huge", "--view", view, "--json"].map(String::from).into();
            args.extend(server.log_args());
            args.extend(as_of.map(|d| ["--as-of".to_owned(), d.to_owned()]).into_iter().flatten());
            let out = Command::new(binary()).args(&args).output().unwrap();
            assert!(out.status.success(), "replay {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

#[tokio::test]
async fn every_refused_case_names_its_field_in_the_openapi_document_too() {
    let server = Server::start();
    let doc = server.api().get(ADMIN_TOKEN, "/openapi.json").await.body;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Amount"]["pattern"], "^[0-9]+(\\.[0-9]+)?$");
    assert_eq!(schemas["SignedAmount"]["pattern"], "^-?[0-9]+(\\.[0-9]+)?$");
    // The pattern encodes the bounds 1900-01-01..=2199-12-31 (events::bounds::BUSINESS_DATE_PATTERN).
    assert_eq!(
        schemas["BusinessDate"]["pattern"],
        "^(19[0-9]{2}|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
    );
    assert!(schemas["Amount"]["description"].as_str().unwrap().contains("10000000000000"));
    let record = &schemas["RecordExpenditure"]["properties"];
    assert_eq!(record["amount"]["$ref"], "#/components/schemas/MoneyInput", "{record}");
    assert_eq!(record["incurred_on"]["$ref"], "#/components/schemas/BusinessDate", "{record}");
}
