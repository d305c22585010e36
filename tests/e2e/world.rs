//! A small world for the tests that write a lot: two programmes with a
//! small grant each, and a token per role.

use events::grant::MilestoneKind;

use crate::bodies::{
    amendment, award, budget_line, commitment_from, expenditure, milestone, period, programme, reallocation, workstream,
};
use crate::client::{Api, caught_up};
use crate::harness::{ADMIN_TOKEN, Server};

/// Programme A's grant.
pub const GRANT_A: &str = "grant-a";
/// Programme B's grant.
pub const GRANT_B: &str = "grant-b";
/// Programme A.
pub const PROG_A: &str = "prog-a";
/// Programme B.
pub const PROG_B: &str = "prog-b";

/// Two programmes with a small grant each, and a token per role.
#[derive(Debug)]
pub struct World {
    /// The server.
    pub server: Server,
    /// Manager of programme A.
    pub manager_a: String,
    /// Manager of programme B.
    pub manager_b: String,
    /// Auditor.
    pub auditor: String,
    /// Viewer of programme A.
    pub viewer_a: String,
}

impl World {
    /// A fresh server with programme A's grant (lines, a period pair, a
    /// commitment, an expenditure, a pending reallocation and amendment, a
    /// milestone) and programme B's.
    pub async fn new() -> Self {
        Self::with_server(Server::start()).await
    }

    /// The same world on `server`.
    pub async fn with_server(server: Server) -> Self {
        let api = server.api();
        for id in [PROG_A, PROG_B] {
            api.post(ADMIN_TOKEN, "/api/v1/programmes", &programme(id, id, None)).await.written(201);
        }
        let world = Self {
            manager_a: api.token("manager-a", "manager", &[PROG_A]).await,
            manager_b: api.token("manager-b", "manager", &[PROG_B]).await,
            auditor: api.token("auditor", "auditor", &[]).await,
            viewer_a: api.token("viewer-a", "viewer", &[PROG_A]).await,
            server,
        };
        let a = |p: &str| format!("/api/v1/grants/{GRANT_A}/{p}");
        let day = "2022-01-01";
        let m = &world.manager_a;
        let mut writes = vec![
            ("/api/v1/grants".to_owned(), award(GRANT_A, PROG_A, "100000.00")),
            (a("workstreams"), workstream("WP1", "Work package 1", day)),
            (a("reporting-periods"), period("P1", "2022-01-01", "2022-06-30", "2022-08-31", day)),
            (a("reporting-periods"), period("P2", "2022-07-01", "2022-12-31", "2023-02-28", day)),
        ];
        for (workstream, category, amount) in [
            ("WP1", "PER", "50000.00"),
            ("WP1", "CON", "20000.00"),
            ("WP1", "TRV", "10000.00"),
            ("GRANT", "IND", "20000.00"),
        ] {
            writes.push((a("budget-lines"), budget_line(workstream, category, amount, day)));
        }
        writes.extend([
            (a("commitments"), commitment_from("PO-1", "WP1-CON", "1000.00", "sup-a", "PO-A-1", "2022-02-01")),
            (a("expenditures"), expenditure("E1", "WP1-PER", "500.00", "2022-02-10", "sup-a", "INV-1", None)),
            (
                a("reallocations"),
                reallocation("R1", &[("WP1-PER", "-100.00"), ("WP1-TRV", "100.00")], "travel", "2022-03-01"),
            ),
            (a("amendments"), amendment("AMD-1", "2023-03-31", None, "2022-03-01")),
            (a("milestones"), milestone("M1", "WP1", MilestoneKind::Milestone, "First", "2022-06-30", day)),
        ]);
        for (path, body) in writes {
            api.post(m, &path, &body).await.written(201);
        }
        let b = |p: &str| format!("/api/v1/grants/{GRANT_B}/{p}");
        let mb = &world.manager_b;
        api.post(mb, "/api/v1/grants", &award(GRANT_B, PROG_B, "50000.00")).await.written(201);
        api.post(mb, &b("workstreams"), &workstream("WP1", "B1", day)).await.written(201);
        let line = budget_line("WP1", "PER", "10000.00", day);
        let last = api.post(mb, &b("budget-lines"), &line).await.written(201);
        // The views are asynchronous: let them catch up before any test
        // reads, so a read never mistakes "not projected yet" for a refusal.
        let head = last["position"].as_u64().expect("a position");
        for grant in [GRANT_A, GRANT_B] {
            caught_up(&api, grant, head).await;
        }
        world
    }

    /// A client.
    pub fn api(&self) -> Api {
        self.server.api()
    }
}
