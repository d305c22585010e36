//! Every rejection docs/scenario.md lists, through the API: its problem code and
//! status, the numbers that explain it, and the grant's version unchanged
//! (nothing recorded). Also the conflicts (409) and the unknown things named
//! in the path (404).

use serde_json::{Value, json};

use events::Currency;
use events::grant::MilestoneKind;
use grantlog_client::dto;

use crate::bodies::{
    self, achieve_body, action, budget_line, commitment, date, expenditure, expenditure_body, milestone, programme,
    reallocation, reschedule, value, workstream,
};
use crate::client::{Api, amount};
use crate::harness::ADMIN_TOKEN;
use crate::nctcr::{self, FINANCE, GRANT, MANAGER, Nctcr, grant_path};

/// Posts `body` to `path` (under the grant) as `token`; expects the problem
/// `status` `code`, and the grant's version not to move. Returns the problem.
async fn refused(api: &Api, token: &str, path: &str, body: &Value, status: u16, code: &str) -> Value {
    let before = api.version(GRANT).await;
    let path = if path.starts_with('/') { path.to_owned() } else { grant_path(path) };
    let reply = api.post(token, &path, body).await;
    let problem = reply.problem(status, code).clone();
    assert_eq!(api.version(GRANT).await, before, "{code}: the refused {path} recorded something");
    problem
}

/// A decimal member, given as a string or a number, as a number.
#[track_caller]
fn decimal(value: &Value) -> f64 {
    match value {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a decimal: {value}")),
        Value::Number(n) => n.as_f64().unwrap_or_default(),
        _ => panic!("not a decimal: {value}"),
    }
}

#[tokio::test]
async fn every_rejection_in_domain_md_is_refused_with_its_numbers() {
    let w = nctcr::shared().await;
    let api = w.api();
    let pm = w.tokens.manager.as_str();

    // A line that takes the total past the award by 0.01.
    let line = budget_line("FP2", "TRV", "0.01", "2022-10-01");
    let p = refused(&api, pm, "budget-lines", &line, 422, "exceeds-award").await;
    assert_eq!(
        (amount(&p["award"]), amount(&p["allocated"]), amount(&p["requested"]), amount(&p["excess"])),
        ("250000.00", "250000.00", "0.01", "0.01"),
        "{p}"
    );

    // A reallocation netting to -100.00.
    let unbalanced = reallocation("R9", &[("FP1-CON", "-600.00"), ("FP5-PER", "500.00")], "x", "2022-10-01");
    let p = refused(&api, pm, "reallocations", &unbalanced, 422, "reallocation-not-balanced").await;
    assert_eq!(amount(&p["net"]), "-100.00", "{p}");

    // After R1, 2,000.00 from FP1-CON into FP3-SUB breaks the indirect cap.
    let into_sub = reallocation("R9", &[("FP1-CON", "-2000.00"), ("FP3-SUB", "2000.00")], "x", "2022-10-01");
    let p = refused(&api, pm, "reallocations", &into_sub, 422, "indirect-cap-exceeded").await;
    assert_eq!(
        (amount(&p["cap"]), amount(&p["indirect"]), amount(&p["base"])),
        ("45500.00", "46000.00", "182000.00"),
        "{p}"
    );
    assert!((decimal(&p["rate"]) - 0.25).abs() < 1e-9, "{p}");

    // 3,000.00 out of FP1-CON after R1: only 2,819.50 available.
    let too_much = reallocation("R9", &[("FP1-CON", "-3000.00"), ("FP5-PER", "3000.00")], "x", "2022-10-01");
    let p = refused(&api, pm, "reallocations", &too_much, 422, "insufficient-available").await;
    assert_eq!(
        (&p["line"], amount(&p["available"]), amount(&p["requested"]), &p["on"]),
        (&json!("FP1-CON"), "2819.50", "3000.00", &json!("2022-10-01")),
        "{p}"
    );

    // An expenditure incurred 2023-01-05: the extension was rejected.
    let late = expenditure("E90", "FP1-CON", "100.00", "2023-01-05", "sup-x", "X-1", None);
    let p = refused(&api, pm, "expenditures", &late, 422, "outside-grant-period").await;
    assert_eq!(
        (&p["date"], &p["start"], &p["end"]),
        (&json!("2023-01-05"), &json!("2022-01-01"), &json!("2022-12-31")),
        "{p}"
    );

    // An expenditure dated inside closed P1.
    let closed = expenditure("E91", "FP1-CON", "100.00", "2022-05-02", "sup-x", "X-2", None);
    let p = refused(&api, pm, "expenditures", &closed, 422, "period-is-closed").await;
    assert_eq!((&p["period"], &p["date"]), (&json!("P1"), &json!("2022-05-02")), "{p}");

    // The same invoice twice (E08 has it).
    let again = expenditure("E92", "FP5-TRV", "640.00", "2022-10-03", "sup-travel", "TR-0905", None);
    let p = refused(&api, pm, "expenditures", &again, 422, "duplicate-invoice").await;
    assert_eq!(
        (&p["supplier"], &p["invoice"], &p["expenditure"]),
        (&json!("sup-travel"), &json!("TR-0905"), &json!("E08")),
        "{p}"
    );

    // A USD cost without a rate.
    let usd = bodies::money("120.00", Currency::USD);
    let no_rate = value(&expenditure_body("E93", "FP5-OTH", usd, "2022-10-04", "sup-trialnet", "TN-5000", None));
    let p = refused(&api, pm, "expenditures", &no_rate, 422, "conversion-missing").await;
    assert_eq!((&p["currency"], &p["grant_currency"]), (&json!("USD"), &json!("EUR")), "{p}");

    // Reversing E07 twice.
    let reverse = action(Some("again"), "2022-10-05");
    let p = refused(&api, pm, "expenditures/E07/reversal", &reverse, 422, "already-reversed").await;
    assert_eq!(p["expenditure"], "E07", "{p}");

    // A commitment backdated to when money was free (FP1-CON had 5,819.50
    // on 07-01) but exceeding what is available now (2,819.50 since R1).
    let backdated = commitment("PO-009", "FP1-CON", "4000.00", "PO-2022-009", "2022-07-01");
    let p = refused(&api, pm, "commitments", &backdated, 422, "insufficient-available").await;
    assert_eq!(
        (&p["line"], amount(&p["available"]), amount(&p["requested"]), &p["on"]),
        (&json!("FP1-CON"), "2819.50", "4000.00", &json!("2022-07-27")),
        "{p}"
    );
}

#[tokio::test]
async fn past_the_end_reasons_and_four_eyes_are_refused_on_the_final_books() {
    let w = nctcr::shared().await;
    let api = w.api();
    let coord = w.tokens.coordinator.as_str();

    // M15 (not achieved) past the end with no amendment; then citing the
    // rejected AMD-1.
    let late = reschedule("2023-01-31", "late", None, "2022-12-15");
    let p = refused(&api, coord, "milestones/M15/reschedule", &late, 422, "due-beyond-end").await;
    assert_eq!((&p["due"], &p["end"]), (&json!("2023-01-31"), &json!("2022-12-31")), "{p}");
    let citing = reschedule("2023-01-31", "late", Some("AMD-1"), "2022-12-15");
    let p = refused(&api, coord, "milestones/M15/reschedule", &citing, 422, "amendment-does-not-reach").await;
    assert_eq!((&p["amendment"], &p["due"]), (&json!("AMD-1"), &json!("2023-01-31")), "{p}");

    // A reversal needs a reason.
    let blank = action(Some("  "), "2022-10-05");
    refused(&api, &w.tokens.manager, "expenditures/E06/reversal", &blank, 422, "reason-required").await;

    // Four eyes: the closer of P1 cannot reopen it.
    let reopen = action(Some("a late invoice"), "2022-10-05");
    let p = refused(&api, &w.tokens.finance, "reporting-periods/P1/reopen", &reopen, 422, "same-actor").await;
    assert_eq!(p["actor"], FINANCE, "{p}");
}

#[tokio::test]
async fn r1_approved_by_its_requester_and_m11_past_the_end_are_refused() {
    // The grant as it stood when R1 was requested and not yet approved.
    let w = Nctcr::load_until("2022-07-20").await;
    let api = w.api();
    let approve = action(None, "2022-07-21");
    let p = refused(&api, &w.tokens.manager, "reallocations/R1/approval", &approve, 422, "same-actor").await;
    assert_eq!(p["actor"], MANAGER, "{p}");
    // M11 past the end with no amendment at all.
    let late = reschedule("2023-01-31", "late", None, "2022-07-21");
    let p = refused(&api, &w.tokens.coordinator, "milestones/M11/reschedule", &late, 422, "due-beyond-end").await;
    assert_eq!((&p["due"], &p["end"]), (&json!("2023-01-31"), &json!("2022-12-31")), "{p}");
    // Another actor may approve it.
    let reply =
        api.post(&w.tokens.finance, &grant_path("reallocations/R1/approval"), &action(None, "2022-07-27")).await;
    reply.written(200);
}

#[tokio::test]
async fn existing_ids_conflict_and_unknown_ones_in_the_path_are_not_found() {
    let w = nctcr::shared().await;
    let api = w.api();
    let pm = w.tokens.manager.as_str();
    let day = "2022-10-10";
    let exists = [
        ("workstreams", workstream("FP1", "again", day), "workstream-exists"),
        (
            "milestones",
            milestone("M01", "C0", MilestoneKind::Milestone, "again", "2022-11-30", day),
            "milestone-exists",
        ),
        ("expenditures", expenditure("E01", "C0-PER", "1.00", day, "payroll", "PAY-NEW", None), "expenditure-exists"),
        ("commitments", commitment("PO-001", "FP2-OTH", "1.00", "PO-NEW", day), "commitment-exists"),
    ];
    for (path, body, code) in exists {
        refused(&api, pm, path, &body, 409, code).await;
    }
    let programme = programme(nctcr::PROGRAMME, "again", None);
    refused(&api, ADMIN_TOKEN, "/api/v1/programmes", &programme, 409, "programme-exists").await;

    let reason = action(Some("r"), day);
    let plain = action(None, day);
    let unknown = [
        ("reallocations/R77/approval", &plain, "unknown-reallocation"),
        ("amendments/AMD-9/rejection", &reason, "unknown-amendment"),
        ("commitments/PO-77/close", &reason, "unknown-commitment"),
        ("expenditures/E77/reversal", &reason, "unknown-expenditure"),
        ("reporting-periods/P9/close", &plain, "unknown-period"),
    ];
    for (path, body, code) in unknown {
        refused(&api, &w.tokens.finance, path, body, 404, code).await;
    }
    let achieve = value(&dto::AchieveMilestone { effective_date: Some(date(day)), ..achieve_body("2022-10-01") });
    refused(&api, &w.tokens.coordinator, "milestones/M77/achieve", &achieve, 404, "unknown-milestone").await;
}

/// An expenditure counts from the day it was incurred: an `effective_date`
/// that says otherwise is a 400 naming the field, never silently ignored;
/// the same date is accepted.
#[tokio::test]
async fn an_expenditure_dated_otherwise_than_incurred_is_refused() {
    let w = crate::world::World::new().await;
    let api = w.api();
    let path = format!("/api/v1/grants/{}/expenditures", crate::world::GRANT_A);
    let mut body = expenditure("E-DATE", "WP1-PER", "3.00", "2022-04-04", "sup-d", "D-1", None);
    body["effective_date"] = json!("2022-05-05");
    let before = api.version(crate::world::GRANT_A).await;
    let reply = api.post(&w.manager_a, &path, &body).await;
    reply.problem(400, "invalid-body");
    reply.names_field("/effective_date").unwrap_or_else(|e| panic!("{e}: {}", reply.text));
    assert_eq!(api.version(crate::world::GRANT_A).await, before);
    body["effective_date"] = json!("2022-04-04");
    let written = api.post(&w.manager_a, &path, &body).await.written(201);
    let history = api.history(ADMIN_TOKEN, crate::world::GRANT_A).await;
    let last = history.last().expect("an event");
    assert_eq!(
        (last["effective_date"].as_str(), written["version"].as_u64()),
        (Some("2022-04-04"), last["version"].as_u64())
    );
}

/// The body field a refusal names (`errors[0].pointer`), if any.
fn field(problem: &Value) -> Option<&str> {
    problem["errors"][0]["pointer"].as_str()
}

#[tokio::test]
async fn a_refusal_about_one_field_names_it_so_a_form_can_show_it_there() {
    let w = nctcr::shared().await;
    let api = w.api();
    let pm = w.tokens.manager.as_str();
    let x = |id: &str, line: &str, amount: &str, day: &str, invoice: &str| {
        expenditure(id, line, amount, day, "sup-biolab", invoice, None)
    };
    let p =
        refused(&api, pm, "expenditures", &x("E-F1", "NOPE", "10.00", "2022-10-01", "F-1"), 422, "unknown-line").await;
    assert_eq!(field(&p), Some("/line"), "{p}");
    let p = refused(
        &api,
        pm,
        "expenditures",
        &x("E-F2", "FP1-CON", "10.00", "2023-02-01", "F-2"),
        422,
        "outside-grant-period",
    )
    .await;
    assert_eq!(field(&p), Some("/incurred_on"), "{p}");
    assert!(p["errors"][0]["detail"].as_str().is_some_and(|d| d.contains("2023-02-01")), "{p}");
    let p = refused(
        &api,
        pm,
        "commitments",
        &commitment("PO-F3", "NOPE", "10.00", "R-F3", "2022-10-01"),
        422,
        "unknown-line",
    )
    .await;
    assert_eq!(field(&p), Some("/line"), "{p}");
    let unbalanced = reallocation("R-F4", &[("FP1-CON", "-600.00"), ("FP5-PER", "500.00")], "x", "2022-10-01");
    let p = refused(&api, pm, "reallocations", &unbalanced, 422, "reallocation-not-balanced").await;
    assert_eq!(field(&p), Some("/deltas"), "{p}");
    // A refusal about the grant or the path names no body field.
    let p = refused(
        &api,
        pm,
        "milestones/NOPE/achieve",
        &value(&dto::AchieveMilestone { effective_date: None, ..achieve_body("2022-10-01") }),
        404,
        "unknown-milestone",
    )
    .await;
    assert_eq!(field(&p), None, "{p}");
}
