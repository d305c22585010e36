//! The read API the dashboard uses: the budget's forecast and monthly
//! series, the portfolio as of a date and as known at an instant, the
//! programmes list, explanations of a line's figures, the grant and
//! programme live streams, and the operator's summary.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::bodies::small_expenditure;
use crate::client::{Api, amount};
use crate::harness::ADMIN_TOKEN;
use crate::nctcr::{GRANT, PROGRAMME, shared};
use crate::sse::Stream;
use crate::world::{GRANT_A, GRANT_B, PROG_A, PROG_B, World};

fn money(value: &Value) -> (&str, &str) {
    (amount(value), value["currency"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn the_budget_forecasts_completion_and_lists_months_with_indirect_costs() {
    let world = shared().await;
    let api = world.api();
    let path = format!("/api/v1/grants/{GRANT}/budget?as_of=2022-09-30&today=2023-01-15");
    let b = api.get(&world.tokens.viewer, &path).await.expect_status(200).body;
    assert_eq!((b["start"].as_str(), b["effective_end"].as_str()), (Some("2022-01-01"), Some("2022-12-31")));
    // 53,297.85 spent in 273 of 365 days: 71,259.03 at this pace.
    assert_eq!(money(&b["forecast_at_completion"]), ("71259.03", "EUR"));
    assert_eq!(money(&b["forecast_variance"]), ("178740.97", "EUR"));
    let months: Vec<(&str, &str, &str, &str)> = b["monthly"]
        .as_array()
        .expect("monthly")
        .iter()
        .map(|m| (m["month"].as_str().unwrap(), amount(&m["spent"]), amount(&m["indirect"]), amount(&m["cumulative"])))
        .collect();
    assert_eq!(
        months,
        [
            ("2022-03", "11680.50", "2920.12", "14600.62"),
            ("2022-04", "2777.78", "694.45", "18072.85"),
            ("2022-06", "24340.00", "6085.00", "48497.85"),
            ("2022-07", "4000.00", "0.00", "52497.85"),
            ("2022-09", "640.00", "160.00", "53297.85"),
        ]
    );
    assert_eq!(amount(&b["spent"]), "53297.85");
    assert_eq!(amount(&b["indirect"]["accrued"]), "9859.57");
    assert_eq!(b["burn_index"], json!(0.285));
}

/// The recording time of the grant's `n`th event (as an auditor sees it).
async fn recorded_at(api: &Api, token: &str, grant: &str, n: usize) -> String {
    let events = api.history(token, grant).await;
    events[n]["recorded_at"].as_str().expect("recorded_at").to_owned()
}

#[tokio::test]
async fn the_portfolio_is_as_of_a_date_as_known_at_an_instant_with_a_status() {
    let world = shared().await;
    let api = world.api();
    let viewer = &world.tokens.viewer;
    let portfolio = |query: &str| format!("/api/v1/programmes/{PROGRAMME}/portfolio?{query}");
    let p = api.get(viewer, &portfolio("as_of=2022-09-30&today=2022-09-30")).await.expect_status(200).body;
    assert_eq!(p["as_of"], json!("2022-09-30"));
    let g = &p["grants"][0];
    assert_eq!((g["grant"].as_str(), g["acronym"].as_str()), (Some(GRANT), Some("NCTCR")));
    assert_eq!(amount(&g["spent"]), "53297.85");
    assert_eq!((g["burn_index"].clone(), g["time_elapsed_pct"].clone()), (json!(0.285), json!(74.7945)));
    // Spending at less than half the pace, three quarters through: at
    // least amber (red only if a line is overspent or a milestone late).
    let red = g["overdue_milestones"].as_u64() > Some(0);
    assert_eq!(g["status"], json!(if red { "red" } else { "amber" }), "{g}");

    // On the first day nothing is late, spent or waiting: green.
    let p = api.get(viewer, &portfolio("as_of=2022-01-01&today=2022-01-01")).await.expect_status(200).body;
    let g = &p["grants"][0];
    assert_eq!((amount(&g["spent"]), g["status"].as_str()), ("0.00", Some("green")), "{g}");

    // Known at the award's recording: the grant as awarded, nothing spent;
    // known before anything was recorded: no grant at all.
    let awarded = recorded_at(&api, &world.tokens.auditor, GRANT, 0).await;
    let query = format!("known_at={}&today=2022-09-30", crate::client::encode(&awarded));
    let p = api.get(viewer, &portfolio(&query)).await.expect_status(200).body;
    assert_eq!(amount(&p["grants"][0]["spent"]), "0.00", "{p}");
    assert_eq!(amount(&p["grants"][0]["award"]), "250000.00");
    let p = api.get(viewer, &portfolio("known_at=2000-01-01T00:00:00Z")).await.expect_status(200).body;
    assert_eq!(p["grants"], json!([]), "{p}");
    api.get(viewer, &portfolio("as_of=30-09-2022")).await.problem(400, "invalid-query");
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().expect("a list").iter().map(|p| p["id"].as_str().expect("an id")).collect()
}

#[tokio::test]
async fn each_caller_lists_the_programmes_it_may_see() {
    let world = World::new().await;
    let api = world.api();
    let all = api.get(ADMIN_TOKEN, "/api/v1/programmes").await.expect_status(200).body;
    assert_eq!(all, json!([{"id": PROG_A, "name": PROG_A}, {"id": PROG_B, "name": PROG_B}]));
    assert_eq!(ids(&api.get(&world.auditor, "/api/v1/programmes").await.expect_status(200).body), [PROG_A, PROG_B]);
    assert_eq!(ids(&api.get(&world.manager_a, "/api/v1/programmes").await.expect_status(200).body), [PROG_A]);
    assert_eq!(ids(&api.get(&world.manager_b, "/api/v1/programmes").await.expect_status(200).body), [PROG_B]);
    assert_eq!(ids(&api.get(&world.viewer_a, "/api/v1/programmes").await.expect_status(200).body), [PROG_A]);
    api.get("glt_not-a-token", "/api/v1/programmes").await.expect_status(401);
}

/// A euro amount with two decimals in cents.
fn cents(amount: &str) -> i64 {
    amount.replace('.', "").parse().unwrap_or_else(|_| panic!("not an amount: {amount}"))
}

/// Asserts that the explanation's line totals are the budget's line
/// figures, and that each total is the sum of its events.
fn assert_explains(explained: &Value, budget: &Value) {
    let figures = |line: &Value, f: &str| (line["line"].as_str().unwrap().to_owned(), amount(&line[f]).to_owned());
    for f in ["current", "committed", "spent"] {
        let from_budget: Vec<_> = budget["lines"].as_array().unwrap().iter().map(|l| figures(l, f)).collect();
        let from_explain: Vec<_> = explained["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["line"].as_str().unwrap().to_owned(), amount(&l[f]["total"]).to_owned()))
            .collect();
        assert_eq!(from_explain, from_budget, "{f}");
    }
    for line in explained["lines"].as_array().unwrap() {
        for f in ["current", "committed", "spent"] {
            let sum: i64 = line[f]["events"].as_array().unwrap().iter().map(|c| cents(amount(&c["amount"]))).sum();
            assert_eq!(sum, cents(amount(&line[f]["total"])), "{} {f}", line["line"]);
        }
    }
}

#[tokio::test]
async fn explanations_sum_to_the_budget_lines_as_of_a_date_and_as_known_at_an_instant() {
    let world = shared().await;
    let api = world.api();
    let auditor = &world.tokens.auditor;
    let query = "as_of=2022-09-30";
    let budget = api.get(auditor, &format!("/api/v1/grants/{GRANT}/budget?{query}")).await.expect_status(200).body;
    let explained = api.get(auditor, &format!("/api/v1/grants/{GRANT}/explain?{query}")).await.expect_status(200).body;
    assert_eq!((explained["grant"].as_str(), explained["as_of"].as_str()), (Some(GRANT), Some("2022-09-30")));
    assert_eq!(explained["known_at"], Value::Null);
    assert_eq!(explained["position"], budget["position"]);
    assert_explains(&explained, &budget);

    // As the books stood halfway through the grant's history.
    let events = api.history(auditor, GRANT).await;
    let middle = events[events.len() / 2]["recorded_at"].as_str().unwrap().to_owned();
    let query = format!("as_of=2022-09-30&known_at={}", crate::client::encode(&middle));
    let budget = api.get(auditor, &format!("/api/v1/grants/{GRANT}/budget?{query}")).await.expect_status(200).body;
    let explained = api.get(auditor, &format!("/api/v1/grants/{GRANT}/explain?{query}")).await.expect_status(200).body;
    assert_eq!(
        explained["known_at"].as_str().map(|s| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap()),
        Some(middle.parse().unwrap())
    );
    assert_explains(&explained, &budget);

    // One line: FP1-CON's 10,000 less R1's 3,000.
    let manager = &world.tokens.manager;
    let line = api
        .get(manager, &format!("/api/v1/grants/{GRANT}/lines/FP1-CON/explain?as_of=2022-09-30"))
        .await
        .expect_status(200)
        .body;
    let lines = line["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    let current: Vec<(&str, &str)> = lines[0]["current"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), amount(&c["amount"])))
        .collect();
    assert_eq!(current, [("BudgetLineOpened", "10000.00"), ("ReallocationApproved", "-3000.00")]);
    let c = &lines[0]["current"]["events"][1];
    assert!(c["position"].is_u64() && c["version"].is_u64() && c["recorded_at"].is_string(), "{c}");
    assert_eq!((c["id"].as_str(), c["effective_date"].as_str()), (Some("R1"), Some("2022-07-27")));
    assert_eq!(amount(&lines[0]["current"]["total"]), "7000.00");

    api.get(manager, &format!("/api/v1/grants/{GRANT}/lines/FP9-PER/explain")).await.problem(404, "not-found");
    api.get(manager, "/api/v1/grants/no-such-grant/explain").await.problem(404, "not-found");
    api.get(&world.tokens.viewer, &format!("/api/v1/grants/{GRANT}/explain")).await.expect_status(403);
    api.get(&world.tokens.viewer, &format!("/api/v1/grants/{GRANT}/lines/FP1-CON/explain")).await.expect_status(403);
    api.get(auditor, &format!("/api/v1/grants/{GRANT}/explain?as_of=soon")).await.problem(400, "invalid-query");
}

fn grant_stream(grant: &str) -> String {
    format!("/api/v1/grants/{grant}/events/stream")
}

async fn spend(api: &Api, token: &str, grant: &str, n: u32) -> u64 {
    // Programme B's grant has no reporting periods: it gets a workstream.
    let (path, body) = if grant == GRANT_A {
        ("expenditures", small_expenditure(n))
    } else {
        (
            "workstreams",
            json!({"code": format!("W{n}"), "title": format!("Workstream {n}"), "effective_date": "2022-08-01"}),
        )
    };
    let written = api.post(token, &format!("/api/v1/grants/{grant}/{path}"), &body).await.written(201);
    written["position"].as_u64().expect("a position")
}

/// The positions of the grant's events in its history.
async fn history_positions(api: &Api, grant: &str) -> Vec<u64> {
    api.history(ADMIN_TOKEN, grant).await.iter().filter_map(|e| e["position"].as_u64()).collect()
}

#[tokio::test]
async fn a_grant_stream_follows_writes_of_other_clients_resumes_without_gap_and_shows_no_other_grant() {
    let world = World::new().await;
    let api = world.api();
    let expected = history_positions(&api, GRANT_A).await;
    let mut stream = Stream::open_path(&api, &world.manager_a, &grant_stream(GRANT_A), None).await;
    // Catching up: every event of the grant, in order, and nothing else.
    let seen = stream.until(*expected.last().unwrap()).await;
    assert_eq!(crate::sse::positions(&seen), expected);
    assert!(seen.iter().all(|e| e["stream"] == json!(format!("grant-{GRANT_A}"))));
    assert!(seen[0]["data"]["grant_id"] == json!(GRANT_A), "managers get the whole event: {}", seen[0]);

    // Live: another grant's write never shows; another client's write on
    // this grant does.
    spend(&api, &world.manager_b, GRANT_B, 1).await;
    let written = spend(&api, ADMIN_TOKEN, GRANT_A, 2).await;
    let (id, event) = stream.next().await;
    assert_eq!((id, event["stream"].clone()), (written, json!(format!("grant-{GRANT_A}"))));
    assert_eq!(event["data"]["expenditure_id"], json!("X2"));
    drop(stream);

    // Missed while away: resumed after the last event seen, each once.
    let mut missed = Vec::new();
    for n in 3..6 {
        spend(&api, &world.manager_b, GRANT_B, n).await;
        missed.push(spend(&api, ADMIN_TOKEN, GRANT_A, n).await);
    }
    let mut stream = Stream::open_path(&api, &world.manager_a, &grant_stream(GRANT_A), Some(written)).await;
    let seen = stream.until(*missed.last().unwrap()).await;
    assert_eq!(crate::sse::positions(&seen), missed);
    let more = spend(&api, &world.manager_a, GRANT_A, 6).await;
    assert_eq!(stream.next().await.0, more, "live again after the catch-up, without a gap");

    // `after` works like Last-Event-ID.
    let mut stream =
        Stream::open_path(&api, &world.auditor, &format!("{}?after={}", grant_stream(GRANT_A), missed[1]), None).await;
    assert_eq!(crate::sse::positions(&stream.until(more).await), [missed[2], more]);
}

#[tokio::test]
async fn a_programme_stream_carries_its_grants_a_viewer_sees_only_where_and_what_and_outsiders_get_404() {
    let world = World::new().await;
    let api = world.api();
    let programme_stream = format!("/api/v1/programmes/{PROG_A}/events/stream");
    let head = *history_positions(&api, GRANT_A).await.last().unwrap();
    let mut viewer = Stream::open_path(&api, &world.viewer_a, &programme_stream, Some(head)).await;
    let mut manager = Stream::open_path(&api, &world.manager_a, &programme_stream, Some(head)).await;
    spend(&api, &world.manager_b, GRANT_B, 1).await;
    let written = spend(&api, &world.manager_a, GRANT_A, 2).await;

    let (id, event) = viewer.next().await;
    assert_eq!(id, written, "grant B's write is not programme A's");
    let keys: BTreeSet<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["position", "stream", "version", "type", "recorded_at", "effective_date"]));
    assert_eq!(event["type"], json!("ExpenditureRecorded"));
    let (id, event) = manager.next().await;
    assert_eq!((id, event["data"]["expenditure_id"].clone()), (written, json!("X2")));

    // A viewer's grant stream is reduced too.
    let mut stream = Stream::open_path(&api, &world.viewer_a, &grant_stream(GRANT_A), Some(head)).await;
    let (_, event) = stream.next().await;
    assert!(event.get("data").is_none() && event.get("actor").is_none(), "{event}");

    // Catching up from the start: programme A's own events and its grant's.
    let mut from_start = Stream::open_path(&api, &world.auditor, &programme_stream, None).await;
    let seen = from_start.until(written).await;
    let streams: BTreeSet<&str> = seen.iter().map(|e| e["stream"].as_str().unwrap()).collect();
    assert_eq!(streams, BTreeSet::from(["programme-prog-a", "grant-grant-a"]));

    for path in [programme_stream.clone(), grant_stream(GRANT_A)] {
        api.get(&world.manager_b, &path).await.problem(404, "not-found");
    }
    api.get(&world.manager_a, "/api/v1/programmes/no-such/events/stream").await.problem(404, "not-found");
}

fn backend() -> &'static str {
    match crate::BACKEND {
        crate::harness::Backend::Sqlite => "sqlite",
        crate::harness::Backend::Postgres => "postgres",
    }
}

#[tokio::test]
async fn the_operator_summary_remembers_the_last_verification() {
    let world = World::new().await;
    let api = world.api();
    let before = api.get(&world.auditor, "/api/v1/operator").await.expect_status(200).body;
    assert_eq!(before["last_verification"], Value::Null);
    assert_eq!((before["backend"].as_str(), before["status"].as_str()), (Some(backend()), Some("ok")));
    let head = before["head"]["position"].as_u64().expect("a head");
    assert!(before["head"]["hash"].as_str().is_some_and(|h| h.len() == 64), "{before}");
    assert!(before["projection_position"].as_u64() <= Some(head) && before["lag_events"].is_u64(), "{before}");

    let verified = api.get(&world.auditor, "/api/v1/audit/verify").await.expect_status(200).body;
    assert_eq!(verified["ok"], json!(true));
    let after = api.get(ADMIN_TOKEN, "/api/v1/operator").await.expect_status(200).body;
    let last = &after["last_verification"];
    assert_eq!(
        (last["ok"].clone(), last["events"].clone(), last["head_position"].clone()),
        (json!(true), verified["checked"].clone(), json!(head))
    );
    assert!(last["at"].as_str().is_some_and(|t| t.parse::<chrono::DateTime<chrono::Utc>>().is_ok()), "{last}");
    assert_eq!(last["detail"], Value::Null);
    for token in [&world.manager_a, &world.viewer_a] {
        api.get(token, "/api/v1/operator").await.expect_status(403);
    }
}

#[tokio::test]
async fn a_polling_client_gets_304_while_a_view_is_unchanged_and_the_new_view_after_a_write() {
    let w = World::new().await;
    let api = w.api();
    let token = w.manager_a.as_str();
    let views = [
        format!("/api/v1/grants/{GRANT_A}/budget"),
        format!("/api/v1/grants/{GRANT_A}/timeline?as_of=2022-06-30"),
        format!("/api/v1/programmes/{PROG_A}/portfolio"),
    ];
    let mut tags = Vec::new();
    for path in &views {
        let first = api.get(token, path).await.expect_status(200);
        let tag = first.header("etag").unwrap_or_else(|| panic!("{path}: no ETag")).to_owned();
        let again = api.send(reqwest::Method::GET, path, Some(token), None, &[("if-none-match", tag.as_str())]).await;
        assert_eq!(again.status.as_u16(), 304, "{path}: {}", again.text);
        assert!(again.text.is_empty(), "a 304 has no body");
        assert_eq!(again.header("etag"), Some(tag.as_str()));
        let other = api.send(reqwest::Method::GET, path, Some(token), None, &[("if-none-match", "\"view-0\"")]).await;
        assert_eq!(other.status.as_u16(), 200, "{path}: another tag gets the view");
        tags.push(tag);
    }
    let path = format!("/api/v1/grants/{GRANT_A}/expenditures");
    let written = api.post(token, &path, &small_expenditure(77)).await.written(201);
    let position = written["position"].as_u64().unwrap();
    let budget = format!("{}?min_position={position}", views[0]);
    let changed =
        api.send(reqwest::Method::GET, &budget, Some(token), None, &[("if-none-match", tags[0].as_str())]).await;
    assert_eq!(changed.status.as_u16(), 200, "the budget moved: {}", changed.text);
    assert_ne!(changed.header("etag"), Some(tags[0].as_str()));
}

/// Follows `Link: <...>; rel="next"` from `first`, collecting the versions.
async fn pages(api: &Api, token: &str, first: &str) -> Vec<u64> {
    let (mut versions, mut next) = (Vec::new(), Some(first.to_owned()));
    while let Some(path) = next.take() {
        let reply = api.get(token, &path).await.expect_status(200);
        let events = reply.body["events"].as_array().cloned().unwrap_or_default();
        versions.extend(events.iter().filter_map(|e| e["version"].as_u64()));
        next = reply.header("link").map(|l| {
            assert!(l.ends_with("; rel=\"next\""), "{l}");
            l.trim_start_matches('<').split('>').next().unwrap().to_owned()
        });
        assert!(versions.len() < 10_000, "the links never end");
    }
    versions
}

#[tokio::test]
async fn history_reads_newest_first_and_every_full_page_links_the_next() {
    let w = World::new().await;
    let api = w.api();
    let token = w.manager_a.as_str();
    let base = format!("/api/v1/grants/{GRANT_A}/history");
    let all: Vec<u64> = api.history(token, GRANT_A).await.iter().filter_map(|e| e["version"].as_u64()).collect();
    assert!(all.len() > 5, "{all:?}");
    let newest_first = pages(&api, token, &format!("{base}?order=desc&limit=1000")).await;
    assert_eq!(newest_first, all.iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(pages(&api, token, &format!("{base}?order=desc&limit=3")).await, newest_first, "paged by Link");
    assert_eq!(pages(&api, token, &format!("{base}?limit=3")).await, all, "oldest first, paged by Link");
    let last = api.get(token, &format!("{base}?limit=1000")).await.expect_status(200);
    assert_eq!(last.header("link"), None, "a page that is not full is the last");
    let reply = api.get(token, &format!("{base}?before_version=3")).await;
    reply.problem(400, "invalid-query");
    assert_eq!(reply.body["errors"][0]["pointer"], json!("?before_version"), "{}", reply.text);
    api.get(token, &format!("{base}?order=sideways")).await.problem(400, "invalid-query");
    // The whole log links its next page too.
    let log = api.get(ADMIN_TOKEN, "/api/v1/events?limit=2").await.expect_status(200);
    let link = log.header("link").unwrap_or_default();
    assert!(link.starts_with("</api/v1/events?after=") && link.contains("limit=2"), "{link}");
}
