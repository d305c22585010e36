//! The NCTCR scenario through the API: the budget as of 2022-09-30 and the
//! timeline carry docs/scenario.md's figures exactly; a view known at an earlier
//! instant shows the books as they then stood; the portfolio, the log and
//! its audit agree; `grantlog demo` serves the same books.

use serde_json::{Value, json};

use crate::client::{Api, amount, caught_up, encode};
use crate::harness::{ADMIN_TOKEN, Server};
use crate::nctcr::{self, GRANT, PROGRAMME};

/// The line `id` of a budget view.
#[track_caller]
fn line<'a>(budget: &'a Value, id: &str) -> &'a Value {
    budget["lines"]
        .as_array()
        .and_then(|lines| lines.iter().find(|l| l["line"] == id))
        .unwrap_or_else(|| panic!("no line {id} in {budget}"))
}

/// The group `key` of `by_workstream` / `by_category`.
#[track_caller]
fn group<'a>(budget: &'a Value, by: &str, key: &str) -> &'a Value {
    budget[by]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["key"] == key))
        .unwrap_or_else(|| panic!("no {by} {key} in {budget}"))
}

/// The milestone `id` of a timeline.
#[track_caller]
fn milestone<'a>(timeline: &'a Value, id: &str) -> &'a Value {
    timeline["milestones"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == id))
        .unwrap_or_else(|| panic!("no milestone {id} in {timeline}"))
}

/// Money is never a JSON number: every `amount` anywhere is a string.
#[track_caller]
fn money_is_text(value: &Value) {
    match value {
        Value::Object(m) => {
            if let Some(a) = m.get("amount") {
                assert!(a.is_string(), "money amount as {a} in {value}");
            }
            m.values().for_each(money_is_text);
        }
        Value::Array(items) => items.iter().for_each(money_is_text),
        _ => {}
    }
}

/// `(current, spent, committed, available)` of a line, as text.
fn figures(l: &Value) -> (&str, &str, &str, &str) {
    (amount(&l["current"]), amount(&l["spent"]), amount(&l["committed"]), amount(&l["available"]))
}

async fn budget(api: &Api, token: &str, query: &str) -> Value {
    api.get(token, &format!("/api/v1/grants/{GRANT}/budget?{query}")).await.expect_status(200).body
}

#[tokio::test]
async fn the_budget_as_of_30_september_has_domain_md_figures() {
    let w = nctcr::shared().await;
    let api = w.api();
    let b = budget(&api, &w.tokens.manager, &format!("as_of=2022-09-30&min_position={}", w.head)).await;
    assert_eq!((b["grant"].as_str(), b["currency"].as_str()), (Some(GRANT), Some("EUR")), "{b}");
    let fp1 = line(&b, "FP1-CON");
    assert_eq!(figures(fp1), ("7000.00", "4180.50", "0.00", "2819.50"), "FP1-CON: {fp1}");
    assert_eq!(
        (amount(&fp1["original"]), amount(&fp1["reallocated_out"]), amount(&fp1["reallocated_in"])),
        ("10000.00", "3000.00", "0.00")
    );
    let fp3 = line(&b, "FP3-SUB");
    assert_eq!(figures(fp3), ("8000.00", "4000.00", "4000.00", "0.00"), "FP3-SUB: {fp3}");
    assert_eq!(amount(&line(&b, "FP5-OTH")["spent"]), "2777.78", "the USD cost at 1.0800");
    assert_eq!(amount(&line(&b, "FP5-PER")["reallocated_in"]), "3000.00");
    assert_eq!(amount(&line(&b, "FP5-PER")["current"]), "29000.00");
    assert_eq!(amount(&line(&b, "FP4-TRV")["spent"]), "0.00", "E07 was reversed on 09-20");
    assert_eq!(amount(&line(&b, "FP5-TRV")["spent"]), "640.00", "E08 replaced it");
    let direct: i64 = b["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| amount(&l["spent"]).replace('.', "").parse::<i64>().expect("cents"))
        .sum();
    assert_eq!(direct, 4_343_828, "direct spent 43438.28");
    let current: i64 = b["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| amount(&l["current"]).replace('.', "").parse::<i64>().expect("cents"))
        .sum();
    assert_eq!(current, 25_000_000, "the current lines still sum to the award");
    assert_eq!(
        (amount(&b["indirect"]["base"]), amount(&b["indirect"]["accrued"])),
        ("39438.28", "9859.57"),
        "indirect: {}",
        b["indirect"]
    );
    let rate = b["indirect"]["rate"].as_str().expect("the indirect rate as a string");
    assert_eq!(rate.trim_end_matches('0'), "0.25");
    assert_eq!(amount(&b["spent"]), "53297.85");
    assert_eq!(amount(&b["award"]), "250000.00");
    assert_eq!(amount(&b["allocated"]), "250000.00");
    assert_eq!(amount(&b["unallocated"]), "0.00");
    assert_eq!(amount(&b["committed"]), "4000.00");
    assert_eq!(b["spent_pct"], json!(21.3191));
    assert_eq!(b["time_elapsed_pct"], json!(74.7945), "273 of 365 days");
    assert_eq!(b["burn_index"], json!(0.285));
    assert!(b["position"].as_u64().is_some_and(|p| p >= w.head), "position {} < {}", b["position"], w.head);
    assert_eq!(amount(&group(&b, "by_workstream", "C0")["spent"]), "13850.00");
    assert_eq!(amount(&group(&b, "by_category", "SUB")["spent"]), "4000.00");
    let months: Vec<(&str, &str)> = b["monthly"]
        .as_array()
        .expect("monthly")
        .iter()
        .map(|m| (m["month"].as_str().unwrap_or_default(), amount(&m["spent"])))
        .collect();
    assert_eq!(
        months,
        [
            ("2022-03", "11680.50"),
            ("2022-04", "2777.78"),
            ("2022-06", "24340.00"),
            ("2022-07", "4000.00"),
            ("2022-09", "640.00")
        ]
    );
    money_is_text(&b);
}

#[tokio::test]
async fn earlier_as_of_dates_see_earlier_books() {
    let w = nctcr::shared().await;
    let api = w.api();
    // Before R1 was approved (07-27), FP1-CON still had its original 10,000.
    let b = budget(&api, &w.tokens.viewer, "as_of=2022-07-26").await;
    let fp1 = line(&b, "FP1-CON");
    assert_eq!((amount(&fp1["current"]), amount(&fp1["available"])), ("10000.00", "5819.50"));
    // On 02-15 the purchase order was open: 4,200 committed on FP1-CON.
    let b = budget(&api, &w.tokens.auditor, "as_of=2022-02-15").await;
    let fp1 = line(&b, "FP1-CON");
    assert_eq!((amount(&fp1["committed"]), amount(&fp1["spent"])), ("4200.00", "0.00"));
    // Between E07 (09-05) and its reversal (09-20), FP4-TRV carried it.
    let b = budget(&api, ADMIN_TOKEN, "as_of=2022-09-10").await;
    assert_eq!(amount(&line(&b, "FP4-TRV")["spent"]), "640.00");
}

#[tokio::test]
async fn the_timeline_shows_m02_and_m11_slips_and_the_rejected_extension() {
    let w = nctcr::shared().await;
    let api = w.api();
    let path = format!("/api/v1/grants/{GRANT}/timeline?min_position={}", w.head);
    let t = api.get(&w.tokens.viewer, &path).await.expect_status(200).body;
    let m02 = milestone(&t, "M02");
    assert_eq!(
        (&m02["baseline_due"], &m02["current_due"], &m02["achieved_on"], &m02["slip_days"], &m02["reschedules"]),
        (&json!("2022-03-31"), &json!("2022-06-08"), &json!("2022-06-08"), &json!(69), &json!(1)),
        "M02: {m02}"
    );
    let m11 = milestone(&t, "M11");
    assert_eq!(
        (&m11["baseline_due"], &m11["current_due"], &m11["achieved_on"], &m11["slip_days"], &m11["reschedules"]),
        (&json!("2022-11-15"), &json!("2022-12-20"), &json!("2022-12-20"), &json!(35), &json!(2)),
        "M11: {m11}"
    );
    assert_eq!((&m11["status"], &m11["beyond_end"]), (&json!("achieved"), &json!(false)), "M11: {m11}");
    assert_eq!(t["milestones"].as_array().map(Vec::len), Some(15));
    assert_eq!(milestone(&t, "M15")["status"], "overdue", "the final report was never achieved");
    assert_eq!(milestone(&t, "M01")["slip_days"], json!(-5), "achieved early");
    assert_eq!(
        (&t["start"], &t["end"], &t["effective_end"]),
        (&json!("2022-01-01"), &json!("2022-12-31"), &json!("2022-12-31"))
    );
    let amd = t["amendments"].as_array().and_then(|a| a.iter().find(|a| a["id"] == "AMD-1")).expect("AMD-1");
    assert_eq!(amd["status"], "rejected", "{amd}");
    let p1 = t["reporting_periods"].as_array().and_then(|p| p.iter().find(|p| p["id"] == "P1")).expect("P1");
    assert_eq!(p1["closed"], true, "{p1}");

    // While AMD-1 was pending, M11 stood beyond the end, citing it.
    let t =
        api.get(&w.tokens.viewer, &format!("/api/v1/grants/{GRANT}/timeline?as_of=2022-11-20&today=2022-11-20")).await;
    let t = t.expect_status(200).body;
    let m11 = milestone(&t, "M11");
    assert_eq!(
        (&m11["current_due"], &m11["beyond_end"], &m11["amendment"], &m11["status"]),
        (&json!("2023-01-31"), &json!(true), &json!("AMD-1"), &json!("planned")),
        "M11 on 11-20: {m11}"
    );
    assert_eq!(milestone(&t, "M13")["status"], "at_risk", "due 12-01, within 30 days of 11-20");
    let amd = t["amendments"].as_array().and_then(|a| a.iter().find(|a| a["id"] == "AMD-1")).expect("AMD-1");
    assert_eq!(amd["status"], "pending", "{amd}");
}

/// The instant `position` was recorded, from the global log.
async fn recorded_at(api: &Api, position: u64) -> String {
    let page = api.get(ADMIN_TOKEN, &format!("/api/v1/events?after={}&limit=1", position - 1)).await.expect_status(200);
    let event = &page.body["events"][0];
    assert_eq!(event["position"].as_u64(), Some(position), "{}", page.text);
    event["recorded_at"].as_str().unwrap_or_else(|| panic!("no recorded_at in {event}")).to_owned()
}

#[tokio::test]
async fn a_view_known_before_the_correction_differs_from_the_view_now() {
    let w = nctcr::shared().await;
    let api = w.api();
    // What the books said when E07 had just been recorded: charged to FP4,
    // neither reversed nor replaced yet.
    let e07 = w.positions["E07"];
    let instant = recorded_at(&api, e07).await;
    let query = |known_at: Option<&str>| {
        let mut q = "as_of=2022-09-30".to_owned();
        if let Some(k) = known_at {
            q.push_str(&format!("&known_at={}", encode(k)));
        }
        q
    };
    let then = budget(&api, &w.tokens.manager, &query(Some(&instant))).await;
    let now = budget(&api, &w.tokens.manager, &query(None)).await;
    let trv =
        |b: &Value| (amount(&line(b, "FP4-TRV")["spent"]).to_owned(), amount(&line(b, "FP5-TRV")["spent"]).to_owned());
    assert_eq!(trv(&then), ("640.00".to_owned(), "0.00".to_owned()), "known at {instant}: {then}");
    assert_eq!(trv(&now), ("0.00".to_owned(), "640.00".to_owned()));
    assert_ne!(then, now);
    // Known at the head, the view is the view now.
    let head_instant = recorded_at(&api, w.head).await;
    let at_head = budget(&api, &w.tokens.manager, &query(Some(&head_instant))).await;
    assert_eq!(trv(&at_head), trv(&now));
    assert_eq!(amount(&at_head["spent"]), amount(&now["spent"]));
}

#[tokio::test]
async fn the_portfolio_history_log_and_audit_agree() {
    let w = nctcr::shared().await;
    let api = w.api();
    let portfolio =
        api.get(&w.tokens.viewer, &format!("/api/v1/programmes/{PROGRAMME}/portfolio")).await.expect_status(200).body;
    let grants = portfolio["grants"].as_array().unwrap_or_else(|| panic!("no grants in {portfolio}"));
    assert_eq!(grants.len(), 1, "{portfolio}");
    assert_eq!(grants[0]["grant"], GRANT);
    assert_eq!(amount(&grants[0]["award"]), "250000.00");
    assert_eq!(grants[0]["overdue_milestones"], 1, "M15: {portfolio}");
    assert_eq!(grants[0]["pending_approvals"], 0);
    money_is_text(&portfolio);

    // The grant's history: versions 1..n in order, the last is the version
    // of the last write; E07's reversal carries its reason and actor.
    let history = api.history(&w.tokens.auditor, GRANT).await;
    // Consecutive versions (whether the first is 0 or 1), the last being
    // the version the last write answered with.
    let versions: Vec<u64> = history.iter().filter_map(|e| e["version"].as_u64()).collect();
    let first = versions.first().copied().unwrap_or_default();
    assert!(first <= 1, "the first version is {first}");
    assert_eq!(versions, (first..=w.version).collect::<Vec<_>>());
    let reversal = history
        .iter()
        .find(|e| e["position"].as_u64() == Some(w.positions["E07/reversal"]))
        .expect("the reversal in the history");
    assert_eq!(reversal["actor"], nctcr::MANAGER, "{reversal}");
    assert_eq!(reversal["reason"], "charged to the wrong flagship: the trip was for FP5");
    assert_eq!(reversal["effective_date"], "2022-09-20");
    for member in ["id", "type", "schema_version", "recorded_at", "command_id", "data"] {
        assert!(!reversal[member].is_null(), "{member} missing from {reversal}");
    }

    // Paged by version.
    let after = versions[10];
    let page =
        api.get(&w.tokens.manager, &format!("/api/v1/grants/{GRANT}/history?after_version={after}&limit=5")).await;
    let paged: Vec<u64> = page.expect_status(200).body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["version"].as_u64())
        .collect();
    assert_eq!(paged, (after + 1..=after + 5).collect::<Vec<_>>());

    // The whole log, paged, then verified and exported.
    let mut after = 0;
    let mut positions = Vec::new();
    loop {
        let page =
            api.get(&w.tokens.auditor, &format!("/api/v1/events?after={after}&limit=40")).await.expect_status(200);
        let events = page.body["events"].as_array().expect("events").clone();
        if events.is_empty() {
            break;
        }
        positions.extend(events.iter().filter_map(|e| e["position"].as_u64()));
        assert!(events.iter().all(|e| e["stream"].is_string()), "{}", page.text);
        after = page.body["next_after"].as_u64().unwrap_or_else(|| panic!("no next_after in {}", page.text));
        assert_eq!(Some(&after), positions.last());
    }
    assert_eq!(positions.last(), Some(&w.head));
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "positions out of order: {positions:?}");
    let verify = api.get(&w.tokens.auditor, "/api/v1/audit/verify").await.expect_status(200).body;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["checked"].as_u64(), Some(positions.len() as u64), "{verify}");
    assert_eq!(verify["head"]["position"].as_u64(), Some(w.head), "{verify}");
    let export = api.get(ADMIN_TOKEN, "/api/v1/events/export").await.expect_status(200);
    let lines: Vec<Value> = export.text.lines().map(|l| serde_json::from_str(l).expect("an NDJSON line")).collect();
    assert_eq!(lines.len(), positions.len());
    assert!(lines.iter().all(|l| l["hash"].is_string()), "an exported event without hash");
}

#[tokio::test]
async fn demo_serves_the_same_books() {
    let server = Server::start_with(&["demo"]);
    let api = server.api();
    let log = api.get(ADMIN_TOKEN, "/api/v1/events?limit=1000").await.expect_status(200).body;
    let head = log["events"].as_array().and_then(|e| e.last()).and_then(|e| e["position"].as_u64());
    caught_up(&api, GRANT, head.expect("demo wrote events")).await;
    let b = budget(&api, ADMIN_TOKEN, "as_of=2022-09-30").await;
    assert_eq!(amount(&b["spent"]), "53297.85", "{b}");
    assert_eq!(figures(line(&b, "FP3-SUB")), ("8000.00", "4000.00", "4000.00", "0.00"));
    assert_eq!(b["burn_index"], json!(0.285));
}
