//! A server whose caches are far smaller than its data (the views' ledger
//! cache and the command handler's grant cache) still answers every
//! grant's views and commands as the log says, before and after a restart,
//! and its metrics show ledgers evicted and read again, and none read for
//! the portfolio.

use serde_json::Value;

use crate::bodies::{award, budget_line, expenditure, workstream};
use crate::client::{Api, amount, caught_up};
use crate::harness::{ADMIN_TOKEN, Server};
use crate::world::{PROG_A, World};

/// Grants added to the world's, in programme A.
const GRANTS: usize = 6;
/// Expenditures per grant.
const SPENDS: usize = 6;
const DAY: &str = "2022-01-01";

fn grant(g: usize) -> String {
    format!("cache-g{g}")
}

/// Cents of grant `g`'s `i`-th expenditure.
fn cents(g: usize, i: usize) -> u64 {
    10_000 + (g as u64) * 100 + i as u64
}

fn euros(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("/metrics has no {name}:\n{text}"))
}

/// Every grant's budget, one refused and one accepted command each, and the
/// portfolio's figures.
async fn answers_as_the_log_says(api: &Api, manager: &str, round: usize) -> u64 {
    let mut last = 0;
    for g in 0..GRANTS {
        // A second expenditure under an invoice already used is refused.
        let again = expenditure("DUP", "WS1-PER", "1.00", "2022-02-01", "sup", &format!("INV-{g}-0"), None);
        let refused = api.post(manager, &format!("/api/v1/grants/{}/expenditures", grant(g)), &again).await;
        assert_eq!(refused.status.as_u16(), 422, "grant {g}, round {round}: {}", refused.text);
        let id = format!("R{round}");
        let extra = expenditure(&id, "WS1-PER", "1.00", "2022-03-01", "sup", &format!("INV-{g}-{id}"), None);
        let written = api.post(manager, &format!("/api/v1/grants/{}/expenditures", grant(g)), &extra).await;
        last = written.written(201)["position"].as_u64().expect("a position");
    }
    let mut total = 0u64;
    for g in 0..GRANTS {
        let path = format!("/api/v1/grants/{}/budget?min_position={last}", grant(g));
        let budget = api.get(manager, &path).await.expect_status(200).body;
        let spent: u64 = (0..SPENDS).map(|i| cents(g, i)).sum::<u64>() + 100 * (round as u64 + 1);
        assert_eq!(amount(&budget["lines"][0]["spent"]), euros(spent), "grant {g}, round {round}: {budget}");
        // With its indirect costs, as the portfolio counts it.
        total += amount(&budget["spent"]).replace('.', "").parse::<u64>().expect("cents");
    }
    let portfolio = api.get(manager, &format!("/api/v1/programmes/{PROG_A}/portfolio")).await.expect_status(200).body;
    let ours: Vec<&Value> = portfolio["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .filter(|g| g["grant"].as_str().is_some_and(|id| id.starts_with("cache-g")))
        .collect();
    assert_eq!(ours.len(), GRANTS, "{portfolio}");
    let summed: u64 = ours.iter().map(|g| amount(&g["spent"]).replace('.', "").parse::<u64>().expect("cents")).sum();
    assert_eq!(summed, total, "the portfolio is the sum of its grants: {portfolio}");
    last
}

#[tokio::test]
async fn caches_smaller_than_the_data_still_answer_every_grant_as_the_log_says() {
    // Room for about one grant's ledger and one grant's state.
    let server = Server::start_with(&["serve", "--ledger-cache-facts-max=10", "--grant-cache-events-max=12"]);
    let mut w = World::with_server(server).await;
    let api = w.api();
    let m = w.manager_a.clone();
    for g in 0..GRANTS {
        let base = format!("/api/v1/grants/{}", grant(g));
        api.post(&m, "/api/v1/grants", &award(&grant(g), PROG_A, "100000.00")).await.written(201);
        api.post(&m, &format!("{base}/workstreams"), &workstream("WS1", "Work", DAY)).await.written(201);
        api.post(&m, &format!("{base}/budget-lines"), &budget_line("WS1", "PER", "50000.00", DAY)).await.written(201);
    }
    // Interleaved, so that each grant is evicted between two of its writes.
    for i in 0..SPENDS {
        for g in 0..GRANTS {
            let body = expenditure(
                &format!("E{i}"),
                "WS1-PER",
                &euros(cents(g, i)),
                "2022-02-01",
                "sup",
                &format!("INV-{g}-{i}"),
                None,
            );
            api.post(&m, &format!("/api/v1/grants/{}/expenditures", grant(g)), &body).await.written(201);
        }
    }
    let last = answers_as_the_log_says(&api, &m, 0).await;
    caught_up(&api, &grant(0), last).await;
    let metrics = api.get(ADMIN_TOKEN, "/metrics").await.expect_status(200).text;
    assert!(metric(&metrics, "grantlog_ledger_cache_evictions_total") > 0.0, "{metrics}");
    assert!(metric(&metrics, "grantlog_ledger_cache_loads_total") > GRANTS as f64, "{metrics}");
    assert!(metric(&metrics, "grantlog_grant_cache_events") <= 12.0, "{metrics}");

    // After a restart nothing is in memory until asked for; the answers
    // are the same.
    w.server.restart();
    let api = w.api();
    let metrics = api.get(ADMIN_TOKEN, "/metrics").await.expect_status(200).text;
    assert_eq!(metric(&metrics, "grantlog_ledger_cache_ledgers"), 0.0, "the start read ledgers:\n{metrics}");
    // The portfolio comes from the grants' standings, kept beside their
    // ledgers: it reads none of them.
    let portfolio = api.get(&m, &format!("/api/v1/programmes/{PROG_A}/portfolio")).await.expect_status(200).body;
    assert!(portfolio["grants"].as_array().is_some_and(|g| g.len() > GRANTS), "{portfolio}");
    let metrics = api.get(ADMIN_TOKEN, "/metrics").await.expect_status(200).text;
    assert_eq!(metric(&metrics, "grantlog_ledger_cache_loads_total"), 0.0, "the portfolio read ledgers:\n{metrics}");
    answers_as_the_log_says(&api, &m, 1).await;
}
