//! The NCTCR scenario of docs/scenario.md issued through the API step by step (as
//! `crates/domain/src/scenario.rs` issues it through the handler), on a
//! server shared by the tests that only read it or are refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use events::{Currency, ExpenditureId};
use grantlog_client::dto;
use serde_json::Value;

use crate::bodies::{
    self, achieve, action, amendment, award_body, budget_line, commitment, conversion, euros, expenditure,
    expenditure_body, milestone, parsed, period, programme, reallocation, reschedule, value, workstream,
};
use crate::client::{Api, caught_up};
use crate::harness::{ADMIN_TOKEN, Server};

/// The NCTCR grant.
pub const GRANT: &str = "nctcr-2022";
/// Its programme.
pub const PROGRAMME: &str = "nctcr";
/// The programme manager: requests reallocations, records costs.
pub const MANAGER: &str = "pm-nctcr";
/// The finance officer: awards, approves, closes periods.
pub const FINANCE: &str = "fo-nctcr";
/// The coordinator: plans and reports milestones.
pub const COORDINATOR: &str = "coord-nctcr";

/// The scenario's tokens by name (admin is [`ADMIN_TOKEN`]).
#[derive(Debug, Clone)]
pub struct Tokens {
    /// `pm-nctcr`, manager of `nctcr`.
    pub manager: String,
    /// `fo-nctcr`, manager of `nctcr`.
    pub finance: String,
    /// `coord-nctcr`, manager of `nctcr`.
    pub coordinator: String,
    /// `audit`, auditor.
    pub auditor: String,
    /// `view-nctcr`, viewer of `nctcr`.
    pub viewer: String,
}

/// A server holding the NCTCR scenario.
#[derive(Debug)]
pub struct Nctcr {
    /// The server.
    pub server: Server,
    /// Its tokens.
    pub tokens: Tokens,
    /// The log position of each step's first event, by step label (`E07`,
    /// `E07/reversal`, `R1/approval`...).
    pub positions: BTreeMap<String, u64>,
    /// The position of the last write.
    pub head: u64,
    /// The grant's version after the last write.
    pub version: u64,
}

/// One scenario step: day, actor, path under the grant (or absolute),
/// body, label.
struct Step {
    day: &'static str,
    actor: &'static str,
    path: String,
    body: Value,
    label: String,
}

fn step(day: &'static str, actor: &'static str, path: &str, body: Value, label: &str) -> Step {
    Step { day, actor, path: path.to_owned(), body, label: label.to_owned() }
}

// The scenario's data (budget lines and milestones) is the domain's fixture
// (docs/scenario.md's), so this run through the API and the domain's own run cannot
// drift apart; every step is still sent over HTTP here.
use domain::scenario::{BUDGET, MILESTONES};

/// The award, the structure and the plan, all on 2022-01-01.
fn set_up() -> Vec<Step> {
    let day = "2022-01-01";
    let award = dto::CreateGrant {
        title: "National Centre of Translational Cancer Research".to_owned(),
        acronym: "NCTCR".to_owned(),
        beneficiary: Some("org-nctcr".to_owned()),
        reason: Some("FNR award letter".to_owned()),
        ..award_body(GRANT, PROGRAMME, "250000.00")
    };
    let mut steps = vec![step(day, FINANCE, "/api/v1/grants", value(&award), "award")];
    let workstreams = [
        ("C0", "Coordination"),
        ("FP1", "Genetic stratification"),
        ("FP2", "Advanced personalized modelling"),
        ("FP3", "Digital patient monitoring"),
        ("FP4", "Detailed prevention and care evaluation"),
        ("FP5", "Access to trial-based therapies"),
    ];
    for (code, title) in workstreams {
        steps.push(step(day, MANAGER, "workstreams", workstream(code, title, day), code));
    }
    for (id, start, end, due) in
        [("P1", "2022-01-01", "2022-06-30", "2022-08-31"), ("P2", "2022-07-01", "2022-12-31", "2023-02-28")]
    {
        steps.push(step(day, FINANCE, "reporting-periods", period(id, start, end, due, day), id));
    }
    for (workstream, category, amount) in BUDGET {
        let body = budget_line(workstream, category, amount, day);
        steps.push(step(day, MANAGER, "budget-lines", body, &format!("{workstream}-{category}")));
    }
    for (id, workstream, kind, title, due, _) in MILESTONES {
        steps.push(step(day, COORDINATOR, "milestones", milestone(id, workstream, *kind, title, due, day), id));
    }
    steps
}

fn money() -> Vec<Step> {
    let e = |id, line, amount: &str, on, supplier, invoice, commitment| {
        expenditure(id, line, amount, on, supplier, invoice, commitment)
    };
    let e03 = dto::RecordExpenditure {
        conversion: Some(conversion("1.0800", "ECB reference rate", "2022-04-20")),
        ..expenditure_body(
            "E03",
            "FP5-OTH",
            bodies::money("3000.00", Currency::USD),
            "2022-04-20",
            "sup-trialnet",
            "TN-4471",
            None,
        )
    };
    let e04 = dto::RecordExpenditure {
        reason: Some("stakeholder kick-off".to_owned()),
        ..expenditure_body("E04", "C0-OTH", euros("6350.00"), "2022-06-08", "sup-venue", "V-0608", None)
    };
    let e08 = dto::RecordExpenditure {
        correction_of: Some(parsed(ExpenditureId::parse, "E07")),
        reason: Some("replaces E07 on the right line".to_owned()),
        ..expenditure_body("E08", "FP5-TRV", euros("640.00"), "2022-09-05", "sup-travel", "TR-0905", None)
    };
    let r1 = reallocation(
        "R1",
        &[("FP1-CON", "-3000.00"), ("FP5-PER", "3000.00"), ("FP4-OTH", "-1000.00"), ("FP5-TRV", "1000.00")],
        "FP5 trial coordination needs more staff and travel",
        "2022-07-20",
    );
    vec![
        step(
            "2022-02-15",
            MANAGER,
            "commitments",
            commitment("PO-001", "FP1-CON", "4200.00", "PO-2022-001", "2022-02-15"),
            "PO-001",
        ),
        step(
            "2022-03-10",
            MANAGER,
            "expenditures",
            e("E02", "FP1-CON", "4180.50", "2022-03-10", "sup-biolab", "BL-2022-0310", Some("PO-001")),
            "E02",
        ),
        step(
            "2022-03-10",
            MANAGER,
            "commitments/PO-001/close",
            action(Some("delivered in full; invoice below the order"), "2022-03-10"),
            "PO-001/close",
        ),
        step(
            "2022-03-31",
            MANAGER,
            "expenditures",
            e("E01", "C0-PER", "7500.00", "2022-03-31", "payroll", "PAY-2022-Q1", None),
            "E01",
        ),
        step("2022-04-20", MANAGER, "expenditures", value(&e03), "E03"),
        step("2022-06-08", MANAGER, "expenditures", value(&e04), "E04"),
        step(
            "2022-06-20",
            MANAGER,
            "commitments",
            commitment("PO-002", "FP3-SUB", "8000.00", "PO-2022-002", "2022-06-20"),
            "PO-002",
        ),
        step(
            "2022-06-30",
            MANAGER,
            "expenditures",
            e("E05", "FP2-EQP", "5990.00", "2022-06-30", "sup-compute", "C-2206", None),
            "E05",
        ),
        step(
            "2022-06-30",
            MANAGER,
            "expenditures",
            e("E09", "FP1-PER", "12000.00", "2022-06-30", "payroll", "PAY-2022-H1-FP1", None),
            "E09",
        ),
        step(
            "2022-07-15",
            MANAGER,
            "expenditures",
            e("E06", "FP3-SUB", "4000.00", "2022-07-15", "sup-biolab", "BL-2022-0715", Some("PO-002")),
            "E06",
        ),
        step("2022-07-20", MANAGER, "reallocations", r1, "R1"),
        step("2022-07-27", FINANCE, "reallocations/R1/approval", action(None, "2022-07-27"), "R1/approval"),
        step("2022-07-29", FINANCE, "reporting-periods/P1/close", action(None, "2022-07-29"), "P1/close"),
        step(
            "2022-09-05",
            MANAGER,
            "expenditures",
            e("E07", "FP4-TRV", "640.00", "2022-09-05", "sup-travel", "TR-0905", None),
            "E07",
        ),
        step(
            "2022-09-20",
            MANAGER,
            "expenditures/E07/reversal",
            action(Some("charged to the wrong flagship: the trip was for FP5"), "2022-09-20"),
            "E07/reversal",
        ),
        step("2022-09-20", MANAGER, "expenditures", value(&e08), "E08"),
    ]
}

fn timeline() -> Vec<Step> {
    let mut steps = vec![step(
        "2022-03-25",
        COORDINATOR,
        "milestones/M02/reschedule",
        reschedule("2022-06-08", "stakeholders' availability", None, "2022-03-25"),
        "M02/reschedule",
    )];
    let mut achievements: Vec<(&str, &'static str)> =
        MILESTONES.iter().filter_map(|(id, _, _, _, _, done)| done.map(|d| (*id, d))).collect();
    achievements.push(("M02", "2022-06-08"));
    for (id, on) in achievements {
        steps.push(step(on, COORDINATOR, &format!("milestones/{id}/achieve"), achieve(on), &format!("{id}/achieve")));
    }
    let amd = amendment("AMD-1", "2023-03-31", Some("model validation needs three more months"), "2022-11-08");
    steps.push(step("2022-11-08", MANAGER, "amendments", amd, "AMD-1"));
    let pending = reschedule("2023-01-31", "pending AMD-1", Some("AMD-1"), "2022-11-10");
    steps.push(step("2022-11-10", COORDINATOR, "milestones/M11/reschedule", pending, "M11/reschedule-1"));
    let reject = action(Some("FNR: no extension for 2022 centres"), "2022-11-30");
    steps.push(step("2022-11-30", FINANCE, "amendments/AMD-1/rejection", reject, "AMD-1/rejection"));
    let back = reschedule("2022-12-20", "AMD-1 rejected", None, "2022-12-01");
    steps.push(step("2022-12-01", COORDINATOR, "milestones/M11/reschedule", back, "M11/reschedule-2"));
    steps.push(step("2022-12-20", COORDINATOR, "milestones/M11/achieve", achieve("2022-12-20"), "M11/achieve"));
    steps
}

/// Actions answer 200; creations 201.
fn expected_status(path: &str) -> u16 {
    let action = ["close", "reopen", "reversal", "approval", "rejection", "reschedule", "achieve", "cancel"];
    if path.rsplit('/').next().is_some_and(|last| action.contains(&last)) { 200 } else { 201 }
}

/// The grant path of `path` relative to the NCTCR grant.
pub fn grant_path(path: &str) -> String {
    format!("/api/v1/grants/{GRANT}/{path}")
}

impl Nctcr {
    /// A fresh server with the whole scenario.
    pub async fn load() -> Self {
        Self::load_until("9999-12-31").await
    }

    /// A fresh server with the scenario's steps dated up to `last_day`.
    pub async fn load_until(last_day: &str) -> Self {
        let server = Server::start();
        let api = server.api();
        api.post(ADMIN_TOKEN, "/api/v1/programmes", &programme(PROGRAMME, "NCTCR", Some("2021-12-15")))
            .await
            .written(201);
        let tokens = Tokens {
            manager: api.token(MANAGER, "manager", &[PROGRAMME]).await,
            finance: api.token(FINANCE, "manager", &[PROGRAMME]).await,
            coordinator: api.token(COORDINATOR, "manager", &[PROGRAMME]).await,
            auditor: api.token("audit", "auditor", &[]).await,
            viewer: api.token("view-nctcr", "viewer", &[PROGRAMME]).await,
        };
        let mut dated = money();
        dated.extend(timeline());
        // The rest happens through the year: issue it in date order (stable).
        dated.sort_by_key(|s| s.day);
        let mut steps = set_up();
        steps.extend(dated.into_iter().filter(|s| s.day <= last_day));
        let mut world = Self { server, tokens, positions: BTreeMap::new(), head: 0, version: 0 };
        for s in steps {
            world.issue(&api, s).await;
        }
        caught_up(&api, GRANT, world.head).await;
        world
    }

    async fn issue(&mut self, api: &Api, s: Step) {
        let token = self.token_of(s.actor).to_owned();
        let path = if s.path.starts_with('/') { s.path.clone() } else { grant_path(&s.path) };
        let reply = api.post(&token, &path, &s.body).await;
        assert!(
            reply.status.as_u16() == expected_status(&path),
            "scenario step {} {} ({}) failed: {} {}\nserver log:\n{}",
            s.day,
            s.label,
            s.actor,
            reply.status,
            reply.text,
            self.server.logs()
        );
        let body = reply.written(expected_status(&path));
        let position = body["position"].as_u64().unwrap_or_default();
        let first = body["events"][0]["position"].as_u64().unwrap_or(position);
        self.positions.insert(s.label, first);
        self.head = position;
        self.version = body["version"].as_u64().unwrap_or_default();
    }

    /// The token of a scenario actor.
    pub fn token_of(&self, actor: &str) -> &str {
        match actor {
            MANAGER => &self.tokens.manager,
            FINANCE => &self.tokens.finance,
            COORDINATOR => &self.tokens.coordinator,
            other => panic!("no token for {other}"),
        }
    }

    /// A client.
    pub fn api(&self) -> Api {
        self.server.api()
    }
}

static SHARED: tokio::sync::Mutex<Weak<Nctcr>> = tokio::sync::Mutex::const_new(Weak::new());

/// The whole scenario on a server shared by the tests that only read it (or
/// are refused). It lives while some test holds it, and is loaded again if a
/// later test asks after the last holder finished: a static would never be
/// dropped, leaving the process behind.
pub async fn shared() -> Arc<Nctcr> {
    let mut slot = SHARED.lock().await;
    if let Some(world) = slot.upgrade() {
        return world;
    }
    let world = Arc::new(Nctcr::load().await);
    *slot = Arc::downgrade(&world);
    world
}
