//! The audit views on the NCTCR scenario, loaded through the handler into a
//! real SQLite log and read back through the history cache: the per-line
//! history agrees with the budget view, the corrections register and the
//! approvals log name who did what and why, and the funder statement's CSV
//! reads back to the statement's figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use chrono::NaiveDate;
use domain::handler::Handler;
use domain::scenario::{self, FINANCE, MANAGER, eur};
use events::{GrantId, Money};
use projections::audit::{Approval, LineChangeKind, LineFigures, RequestDetails, STATEMENT_CSV_HEADER};
use projections::ledger::Projected;
use projections::{GrantLedger, HistoryCache, approvals, budget, corrections, line_history, statement, statement_csv};
use store::EventStore;

/// The log these cases run on: a SQLite file in `dir` here; the
/// `*_postgres` test binary includes this file as a module and gives its
/// own `open_store`, a PostgreSQL database of the test's own.
#[allow(dead_code)] // unused where another root gives `open_store`
pub async fn open_store(dir: &std::path::Path) -> (Arc<dyn EventStore>, Box<dyn std::any::Any + Send + Sync>) {
    let store = store_sqlite::SqliteStore::open(dir.join("log.sqlite")).await.unwrap();
    (Arc::new(store), Box::new(()))
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn gid() -> GrantId {
    GrantId::parse(scenario::GRANT).unwrap()
}

/// The scenario's decoded history, read from a real log.
async fn nctcr() -> ((tempfile::TempDir, Box<dyn std::any::Any + Send + Sync>), Arc<Vec<Projected>>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = crate::open_store(dir.path()).await;
    let handler = Handler::new(Arc::clone(&store));
    scenario::nctcr(&handler).await.unwrap();
    let cache = HistoryCache::new(store, projections::history::HISTORY_EVENTS_MAX);
    let events = cache.history(&gid()).await.unwrap();
    ((dir, db), events)
}

fn fold(events: &[Projected]) -> GrantLedger {
    let mut ledger = GrantLedger::default();
    for p in events {
        ledger.apply(p);
    }
    ledger
}

fn figures(current: &str, committed: &str, spent: &str, available: &str) -> LineFigures {
    let e = |s: &str| eur(s).unwrap();
    LineFigures { current: e(current), committed: e(committed), spent: e(spent), available: e(available) }
}

#[tokio::test]
async fn every_line_history_chains_and_ends_at_the_budget_view_at_head() {
    let (_dir, events) = nctcr().await;
    let history = line_history(&events).unwrap();
    let ledger = fold(&events);
    let head = budget(&ledger, None, d("2023-01-15")).unwrap();
    assert_eq!(history.len(), head.lines.len());
    assert_eq!(history.len(), scenario::BUDGET.len());
    for (h, view) in history.iter().zip(&head.lines) {
        assert_eq!(h.line, view.line);
        assert_eq!((&h.workstream, &h.category), (&view.workstream, &view.category));
        let first = h.changes.first().unwrap();
        assert_eq!(first.what, LineChangeKind::Opened, "{}", h.line);
        assert_eq!(first.before, figures("0.00", "0.00", "0.00", "0.00"));
        assert_eq!(first.amount, view.original);
        let last = h.changes.last().unwrap();
        let at_head = LineFigures {
            current: view.current,
            committed: view.committed,
            spent: view.spent,
            available: view.available,
        };
        assert_eq!(last.after, at_head, "{}", h.line);
        for w in h.changes.windows(2) {
            assert_eq!(w[0].after, w[1].before, "{} at {}", h.line, w[1].position);
            assert!(w[0].position < w[1].position, "recording order");
        }
    }
}

#[tokio::test]
async fn fp1_con_shows_the_purchase_order_its_liquidation_release_and_r1() {
    let (_dir, events) = nctcr().await;
    let history = line_history(&events).unwrap();
    let fp1 = history.iter().find(|h| h.line.as_str() == "FP1-CON").unwrap();
    let steps: Vec<(LineChangeKind, Option<&str>, &str)> =
        fp1.changes.iter().map(|c| (c.what, c.reference.as_deref(), c.event_type.as_str())).collect();
    use LineChangeKind as K;
    assert_eq!(
        steps,
        [
            (K::Opened, None, "BudgetLineOpened"),
            (K::Committed, Some("PO-001"), "CommitmentRaised"),
            (K::Liquidated, Some("E02"), "ExpenditureRecorded"),
            (K::CommitmentReleased, Some("PO-001"), "CommitmentClosed"),
            (K::ReallocatedOut, Some("R1"), "ReallocationApproved"),
        ]
    );
    let after: Vec<LineFigures> = fp1.changes.iter().map(|c| c.after).collect();
    assert_eq!(
        after,
        [
            figures("10000.00", "0.00", "0.00", "10000.00"),
            figures("10000.00", "4200.00", "0.00", "5800.00"),
            figures("10000.00", "19.50", "4180.50", "5800.00"),
            figures("10000.00", "0.00", "4180.50", "5819.50"),
            figures("7000.00", "0.00", "4180.50", "2819.50"),
        ]
    );
    let r1 = &fp1.changes[4];
    assert_eq!((r1.actor.as_str(), r1.effective_date, r1.amount), (FINANCE, d("2022-07-27"), eur("-3000.00").unwrap()));
    let close = &fp1.changes[3];
    assert_eq!(close.reason.as_deref(), Some("delivered in full; invoice below the order"));
    assert_eq!(close.amount, eur("19.50").unwrap());
    // The reversal and its replacement, on their own lines.
    let whats = |line: &str| -> Vec<LineChangeKind> {
        history.iter().find(|h| h.line.as_str() == line).unwrap().changes.iter().map(|c| c.what).collect()
    };
    assert_eq!(whats("FP4-TRV"), [K::Opened, K::Spent, K::Reversed]);
    assert_eq!(whats("FP5-TRV"), [K::Opened, K::ReallocatedIn, K::Spent]);
    assert_eq!(whats("FP3-SUB"), [K::Opened, K::Committed, K::Liquidated]);
    // As JSON: kebab-case codes, money as strings.
    let json = serde_json::to_value(&fp1.changes[3]).unwrap();
    assert_eq!(json["what"], "commitment-released");
    assert_eq!(json["after"]["available"], serde_json::json!({ "amount": "5819.50", "currency": "EUR" }));
    assert_eq!(json["actor"], MANAGER);
}

#[tokio::test]
async fn the_corrections_register_pairs_e07_its_reversal_and_e08() {
    let (_dir, events) = nctcr().await;
    let register = corrections(&events);
    assert_eq!(register.len(), 1);
    let c = &register[0];
    let o = &c.original;
    assert_eq!((o.expenditure.as_str(), o.line.as_str(), o.amount), ("E07", "FP4-TRV", eur("640.00").unwrap()));
    assert_eq!((o.incurred_on, o.supplier.as_str(), o.invoice.as_str()), (d("2022-09-05"), "sup-travel", "TR-0905"));
    assert_eq!(o.actor.as_str(), MANAGER);
    let r = &c.reversal;
    assert_eq!((r.actor.as_str(), r.effective_date), (MANAGER, d("2022-09-20")));
    assert_eq!(r.reason.as_deref(), Some("charged to the wrong flagship: the trip was for FP5"));
    assert!(o.position < r.position && o.recorded_at <= r.recorded_at);
    let x = c.replacement.as_ref().unwrap();
    assert_eq!((x.expenditure.as_str(), x.line.as_str(), x.amount), ("E08", "FP5-TRV", eur("640.00").unwrap()));
    assert_eq!((x.actor.as_str(), x.incurred_on), (MANAGER, d("2022-09-05")));
    assert_eq!(x.reason.as_deref(), Some("replaces E07 on the right line"));
    assert!(r.position < x.position);
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(json["original"]["expenditure"], "E07");
    assert_eq!(json["replacement"]["expenditure"], "E08");
}

#[tokio::test]
async fn the_approvals_log_shows_four_eyes_and_the_rejected_extension() {
    let (_dir, events) = nctcr().await;
    let log = approvals(&events);
    let positions: Vec<u64> = log.iter().map(Approval::position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "recording order: {positions:?}");
    let kinds: Vec<String> =
        log.iter().map(|a| serde_json::to_value(a).unwrap()["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["reallocation", "period-close", "amendment"]);

    let Approval::Reallocation(r1) = &log[0] else { panic!("{log:?}") };
    assert_eq!(r1.id, "R1");
    assert_eq!((r1.requested_by.as_str(), r1.requested_effective), (MANAGER, d("2022-07-20")));
    assert_eq!(r1.reason.as_deref(), Some("FP5 trial coordination needs more staff and travel"));
    let RequestDetails::Reallocation { deltas } = &r1.details else { panic!("{r1:?}") };
    assert_eq!(deltas.len(), 4);
    let decision = r1.decision.as_ref().unwrap();
    assert!(decision.approved);
    assert_eq!((decision.by.as_str(), decision.effective_date), (FINANCE, d("2022-07-27")));
    assert_ne!(r1.requested_by, decision.by, "four eyes");
    assert!(r1.requested_at <= decision.at && r1.position < decision.position);

    let Approval::PeriodClose(p1) = &log[1] else { panic!("{log:?}") };
    assert_eq!((p1.period.as_str(), p1.by.as_str(), p1.effective_date), ("P1", FINANCE, d("2022-07-29")));

    let Approval::Amendment(amd) = &log[2] else { panic!("{log:?}") };
    assert_eq!((amd.id.as_str(), amd.requested_by.as_str()), ("AMD-1", MANAGER));
    assert_eq!(amd.reason.as_deref(), Some("model validation needs three more months"));
    let RequestDetails::Amendment { proposed_end, .. } = &amd.details else { panic!("{amd:?}") };
    assert_eq!(*proposed_end, d("2023-03-31"));
    let decision = amd.decision.as_ref().unwrap();
    assert!(!decision.approved);
    assert_eq!((decision.by.as_str(), decision.effective_date), (FINANCE, d("2022-11-30")));
    assert_eq!(decision.reason.as_deref(), Some("FNR: no extension for 2022 centres"));

    let json = serde_json::to_value(&log[2]).unwrap();
    assert_eq!(json["details"]["proposed_end"], "2023-03-31");
    assert_eq!(json["decision"]["approved"], false);
}

/// Splits RFC 4180 text into records of fields, honouring quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => {
                assert!(field.is_empty(), "a quote inside an unquoted field");
                quoted = true;
            }
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\n') => panic!("bare LF outside quotes"),
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quote");
    assert!(field.is_empty() && record.is_empty(), "the last record must end with CRLF");
    records
}

#[tokio::test]
async fn the_statement_csv_reads_back_to_the_statement() {
    let (_dir, events) = nctcr().await;
    let ledger = fold(&events);
    let s = statement(&ledger, None).unwrap();
    let csv = statement_csv(&s);
    let records = parse_csv(&csv);
    assert_eq!(records[0], STATEMENT_CSV_HEADER);
    let categories = s.periods[0].categories.len();
    assert_eq!(categories, 7);
    assert_eq!(records.len(), 1 + s.periods.len() * categories);
    let col = |name: &str| STATEMENT_CSV_HEADER.iter().position(|h| *h == name).unwrap();
    let money = |r: &[String], name: &str| Money::parse(&r[col(name)], s.currency).unwrap();
    for (i, p) in s.periods.iter().enumerate() {
        let rows = &records[1 + i * categories..1 + (i + 1) * categories];
        let mut spent = Money::zero(s.currency);
        for (r, c) in rows.iter().zip(&p.categories) {
            assert_eq!(r.len(), STATEMENT_CSV_HEADER.len());
            assert_eq!((r[col("grant")].as_str(), r[col("period")].as_str()), (scenario::GRANT, p.period.as_str()));
            assert_eq!((r[col("category")].as_str(), r[col("name")].as_str()), (c.category.as_str(), c.name.as_str()));
            assert_eq!((money(r, "budget"), money(r, "spent")), (c.budget, c.spent));
            assert_eq!(r[col("currency")], "EUR");
            assert_eq!(money(r, "period_total"), p.total);
            spent = spent.checked_add(&money(r, "spent")).unwrap();
        }
        // Direct categories plus the indirect one add up to the period's total.
        assert_eq!(spent, p.total, "{}", p.period);
    }
    assert_eq!(records[1 + categories][col("period")], "P2");
    let p1_per = &records[1];
    assert_eq!((p1_per[col("budget")].as_str(), p1_per[col("spent")].as_str()), ("140000.00", "19500.00"));
    assert_eq!(p1_per[col("period_indirect")], "9699.57");

    // Text that needs quoting survives the round trip.
    let mut odd = s.clone();
    odd.periods[0].categories[0].name = "Personnel, \"senior\"\r\nand junior".into();
    let records = parse_csv(&statement_csv(&odd));
    assert_eq!(records.len(), 1 + s.periods.len() * categories);
    assert_eq!(records[1][col("name")], "Personnel, \"senior\"\r\nand junior");
}

#[test]
fn every_audit_output_has_a_json_schema() {
    for schema in [
        schemars::schema_for!(Vec<projections::LineHistory>),
        schemars::schema_for!(Vec<projections::Correction>),
        schemars::schema_for!(Vec<projections::Approval>),
    ] {
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["type"], "array");
    }
}
