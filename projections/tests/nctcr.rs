//! The views of the NCTCR scenario against docs/scenario.md's expected figures,
//! through the live projector on real SQLite files; plus rebuild, restart,
//! read-your-writes, known-at and fail-stop behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use domain::handler::{Handler, HandlerError, Issued};
use domain::scenario::{self, MANAGER, eur, expenditure};
use events::{ActorId, GrantId, LineId, MilestoneId, ProgrammeId};
use projections::fold::ApplyError;
use projections::timeline::MilestoneStatus;
use projections::{Projector, Status, as_known_at, budget, portfolio, statement, timeline};
use rust_decimal_macros::dec;
use store::{Direction, EventMetadata, EventStore, ExpectedVersion, NewEvent, READ_EVENTS_MAX, StreamId, StreamStart};

/// The log these cases run on: a SQLite file in `dir` here; the
/// `*_postgres` test binary includes this file as a module and gives its
/// own `open_store`, a PostgreSQL database of the test's own.
#[allow(dead_code)] // unused where another root gives `open_store`
pub async fn open_store(dir: &std::path::Path) -> (Arc<dyn EventStore>, Box<dyn std::any::Any + Send + Sync>) {
    let store = store_sqlite::SqliteStore::open(dir.join("log.sqlite")).await.unwrap();
    (Arc::new(store), Box::new(()))
}

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    handler: Handler,
    _db: Box<dyn std::any::Any + Send + Sync>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = crate::open_store(dir.path()).await;
    let handler = Handler::new(Arc::clone(&store));
    scenario::nctcr(&handler).await.unwrap();
    World { dir, store, handler, _db: db }
}

async fn projector(w: &World) -> Projector {
    let p = Projector::start(Arc::clone(&w.store), w.dir.path().join("views.sqlite")).await.unwrap();
    let head = w.store.head().await.unwrap().unwrap().position.0;
    p.wait_for(head, Duration::from_secs(10)).await.unwrap();
    p
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn gid() -> GrantId {
    GrantId::parse(scenario::GRANT).unwrap()
}

#[tokio::test]
async fn the_budget_as_of_30_september_has_domain_md_figures() {
    let w = world().await;
    let p = projector(&w).await;
    let ledger = p.ledger(&gid()).await.unwrap().unwrap();
    let b = budget(&ledger, Some(d("2022-09-30")), d("2023-01-15")).unwrap();
    let line = |id: &str| b.lines.iter().find(|l| l.line == LineId::parse(id).unwrap()).unwrap().clone();
    let e = |s: &str| eur(s).unwrap();
    let fp1 = line("FP1-CON");
    assert_eq!((fp1.original, fp1.reallocated_out, fp1.current), (e("10000.00"), e("3000.00"), e("7000.00")));
    assert_eq!((fp1.spent, fp1.committed, fp1.available), (e("4180.50"), e("0.00"), e("2819.50")));
    let fp3 = line("FP3-SUB");
    assert_eq!(
        (fp3.current, fp3.spent, fp3.committed, fp3.available),
        (e("8000.00"), e("4000.00"), e("4000.00"), e("0.00"))
    );
    assert_eq!(line("FP5-OTH").spent, e("2777.78"));
    assert_eq!(line("FP5-PER").reallocated_in, e("3000.00"));
    assert_eq!(line("FP4-TRV").spent, e("0.00"), "E07 was reversed on 09-20");
    assert_eq!(line("FP5-TRV").spent, e("640.00"), "E08 replaced it");
    let direct: rust_decimal::Decimal = b.lines.iter().map(|l| l.spent.amount()).sum();
    assert_eq!(direct, dec!(43438.28));
    assert_eq!(b.indirect.base, e("39438.28"));
    assert_eq!(b.indirect.accrued, e("9859.57"));
    assert_eq!(b.spent, e("53297.85"));
    assert_eq!(b.spent_pct, dec!(21.3191));
    assert_eq!(b.time_elapsed_pct, dec!(74.7945)); // 273 of 365 days
    assert_eq!(b.burn_index, dec!(0.285));
    assert_eq!(b.allocated, e("250000.00"));
    assert_eq!(b.unallocated, e("0.00"));
    assert_eq!(b.committed, e("4000.00"));
    let c0 = b.by_workstream.iter().find(|g| g.key == "C0").unwrap();
    assert_eq!(c0.spent, e("13850.00"));
    let sub = b.by_category.iter().find(|g| g.key == "SUB").unwrap();
    assert_eq!(sub.spent, e("4000.00"));
    let months: Vec<(&str, String)> =
        b.monthly.iter().map(|m| (m.month.as_str(), m.spent.amount().to_string())).collect();
    assert_eq!(
        months,
        [
            ("2022-03", "11680.50".to_owned()),
            ("2022-04", "2777.78".to_owned()),
            ("2022-06", "24340.00".to_owned()),
            ("2022-07", "4000.00".to_owned()),
            ("2022-09", "640.00".to_owned()),
        ]
    );
    // As JSON, percentages are numbers and money is never a number.
    let json = serde_json::to_value(&b).unwrap();
    assert_eq!(json["burn_index"], serde_json::json!(0.285));
    assert_eq!(json["spent"], serde_json::json!({ "amount": "53297.85", "currency": "EUR" }));
}

#[tokio::test]
async fn earlier_as_of_dates_see_earlier_books() {
    let w = world().await;
    let p = projector(&w).await;
    let ledger = p.ledger(&gid()).await.unwrap().unwrap();
    let e = |s: &str| eur(s).unwrap();
    // Before R1 was approved (07-27), FP1-CON still had its original 10,000.
    let b = budget(&ledger, Some(d("2022-07-26")), d("2023-01-15")).unwrap();
    let fp1 = b.lines.iter().find(|l| l.line.as_str() == "FP1-CON").unwrap();
    assert_eq!((fp1.current, fp1.available), (e("10000.00"), e("5819.50")));
    // On 02-15 the purchase order was open: 4,200 committed on FP1-CON.
    let b = budget(&ledger, Some(d("2022-02-15")), d("2023-01-15")).unwrap();
    let fp1 = b.lines.iter().find(|l| l.line.as_str() == "FP1-CON").unwrap();
    assert_eq!((fp1.committed, fp1.spent), (e("4200.00"), e("0.00")));
    // Between E07 (09-05) and its reversal (09-20), FP4-TRV carried it.
    let b = budget(&ledger, Some(d("2022-09-10")), d("2023-01-15")).unwrap();
    assert_eq!(b.lines.iter().find(|l| l.line.as_str() == "FP4-TRV").unwrap().spent, e("640.00"));
}

#[tokio::test]
async fn the_timeline_shows_slips_reschedules_and_the_rejected_extension() {
    let w = world().await;
    let p = projector(&w).await;
    let ledger = p.ledger(&gid()).await.unwrap().unwrap();
    let t = timeline(&ledger, None, d("2023-01-15")).unwrap();
    let m = |id: &str| t.milestones.iter().find(|m| m.id == MilestoneId::parse(id).unwrap()).unwrap().clone();
    let m02 = m("M02");
    assert_eq!(
        (m02.baseline_due, m02.achieved_on, m02.slip_days, m02.reschedules),
        (d("2022-03-31"), Some(d("2022-06-08")), 69, 1)
    );
    let m11 = m("M11");
    assert_eq!((m11.slip_days, m11.reschedules, m11.beyond_end, m11.status), (35, 2, false, MilestoneStatus::Achieved));
    assert_eq!(t.milestones.len(), 15);
    assert_eq!(m("M15").status, MilestoneStatus::Overdue);
    assert_eq!(t.effective_end, d("2022-12-31"));
    assert_eq!(serde_json::to_value(t.amendments[0].status).unwrap(), "rejected");
    // While AMD-1 was pending, M11 stood beyond the end, citing it.
    let t = timeline(&ledger, Some(d("2022-11-20")), d("2022-11-20")).unwrap();
    let m11 = t.milestones.iter().find(|m| m.id.as_str() == "M11").unwrap();
    assert_eq!((m11.current_due, m11.beyond_end), (d("2023-01-31"), true));
    assert_eq!(m11.amendment.as_ref().map(|a| a.as_str()), Some("AMD-1"));
    assert_eq!(m11.status, MilestoneStatus::Planned);
    assert_eq!(serde_json::to_value(t.amendments[0].status).unwrap(), "pending");
    // Statuses relative to a day: on 11-20, M13 (due 12-01) is at risk.
    assert_eq!(t.milestones.iter().find(|m| m.id.as_str() == "M13").unwrap().status, MilestoneStatus::AtRisk);
    assert!(t.reporting_periods.iter().find(|p| p.id.as_str() == "P1").unwrap().closed);
}

#[tokio::test]
async fn the_funder_statement_totals_each_period_by_category_and_the_portfolio_lists_the_grant() {
    let w = world().await;
    let p = projector(&w).await;
    let ledger = p.ledger(&gid()).await.unwrap().unwrap();
    let s = statement(&ledger, None).unwrap();
    let p1 = &s.periods[0];
    assert_eq!(p1.period.as_str(), "P1");
    assert_eq!(p1.direct, eur("38798.28").unwrap());
    let per = p1.categories.iter().find(|c| c.category.as_str() == "PER").unwrap();
    assert_eq!((per.budget, per.spent), (eur("140000.00").unwrap(), eur("19500.00").unwrap()));
    assert_eq!(p1.indirect, eur("9699.57").unwrap()); // 25% of 38,798.28
    let p2 = &s.periods[1];
    assert_eq!(p2.direct, eur("4640.00").unwrap());
    assert_eq!(p2.categories.iter().find(|c| c.category.as_str() == "PER").unwrap().budget, eur("143000.00").unwrap());
    let programme = ProgrammeId::parse(scenario::PROGRAMME).unwrap();
    assert_eq!(p.programme(&programme).as_deref(), Some("NCTCR"));
    let ledgers = p.programme_ledgers(&programme).await.unwrap();
    let view = portfolio(&programme, ledgers.iter().map(|l| &**l), None, d("2023-01-15")).unwrap();
    assert_eq!(view.grants.len(), 1);
    assert_eq!(view.grants[0].overdue_milestones, 1); // M15, the final report
    assert_eq!(view.totals[0].award, eur("250000.00").unwrap());
}

#[tokio::test]
async fn incremental_rebuild_restart_and_as_of_at_the_head_agree() {
    let w = world().await;
    let p = projector(&w).await;
    let head = w.store.head().await.unwrap().unwrap().position.0;
    let report = p.rebuild(d("2023-01-15"), |_, _| {}).await.unwrap();
    assert_eq!(report.position, head);
    assert_eq!(report.live_digest, report.rebuilt_digest);
    let live = p.models().await.unwrap();
    let folded = as_known_at(&*w.store, &gid(), None).await.unwrap();
    assert_eq!(
        serde_json::to_value(&folded).unwrap(),
        serde_json::to_value(&*p.ledger(&gid()).await.unwrap().unwrap()).unwrap()
    );
    drop(p);
    // A restart takes the views from their file, with nothing to replay.
    let again = Projector::start(Arc::clone(&w.store), w.dir.path().join("views.sqlite")).await.unwrap();
    assert_eq!(again.position(), head);
    assert_eq!(again.models().await.unwrap(), live);
    assert_eq!(again.lag(), 0);
}

#[tokio::test]
async fn a_late_entry_changes_as_of_views_but_not_views_known_before_it() {
    let w = world().await;
    let before_entry = Utc::now();
    tokio::time::sleep(Duration::from_millis(2)).await; // recorded_at has microsecond precision
    let late =
        expenditure("E70", "FP2-OTH", eur("500.00").unwrap(), None, "2022-09-15", "sup-late", "L-1", None).unwrap();
    let issued = Issued::new(late, ActorId::parse(MANAGER).unwrap(), d("2022-10-20"));
    w.handler.execute(&gid(), &issued).await.unwrap();
    let now = as_known_at(&*w.store, &gid(), None).await.unwrap();
    let then = as_known_at(&*w.store, &gid(), Some(before_entry)).await.unwrap();
    let spent = |l: &projections::GrantLedger| budget(l, Some(d("2022-09-30")), d("2022-09-30")).unwrap().spent;
    assert_eq!(spent(&now), eur("53922.85").unwrap()); // + 500.00 and 125.00 indirect
    assert_eq!(spent(&then), eur("53297.85").unwrap());
}

#[tokio::test]
async fn reads_wait_for_a_position_and_give_up_after_the_timeout() {
    let w = world().await;
    let p = projector(&w).await;
    let head = p.position();
    let err = p.wait_for(head + 1, Duration::from_millis(50)).await.unwrap_err();
    assert!(
        matches!(err, projections::ProjectionError::NotYet { applied, wanted } if applied == head && wanted == head + 1)
    );
    let e = expenditure("E71", "FP2-OTH", eur("1.00").unwrap(), None, "2022-10-02", "sup-x", "X-9", None).unwrap();
    let r =
        w.handler.execute(&gid(), &Issued::new(e, ActorId::parse(MANAGER).unwrap(), d("2022-10-02"))).await.unwrap();
    p.wait_for(r.position.0, Duration::from_secs(10)).await.unwrap();
    assert_eq!(p.ledger(&gid()).await.unwrap().unwrap().position, r.position.0);
}

#[tokio::test]
async fn an_event_the_projection_cannot_read_stops_it_at_that_position() {
    let w = world().await;
    let p = projector(&w).await;
    let head = p.position();
    let stream = projections::fold::grant_stream(&gid()).unwrap();
    let bogus = NewEvent::new(
        "GrantExploded",
        1,
        serde_json::json!({}),
        EventMetadata { actor: "x".into(), ..Default::default() },
    );
    w.store.append(&stream, ExpectedVersion::Any, vec![bogus]).await.unwrap();
    let good =
        NewEvent::new("Unrelated", 1, serde_json::json!({}), EventMetadata { actor: "x".into(), ..Default::default() });
    w.store.append(&StreamId::parse("other-1").unwrap(), ExpectedVersion::Any, vec![good]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.status() == Status::Running && tokio::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    match p.status() {
        Status::Failed { position, error } => {
            assert_eq!(position, head + 1);
            assert!(error.contains("GrantExploded"), "{error}");
        }
        other => panic!("the projector skipped an unreadable event: {other:?}"),
    }
    assert_eq!(p.position(), head, "applied past the unreadable event");
}

#[tokio::test]
async fn the_history_cache_answers_known_at_like_the_log_and_stays_current() {
    let w = world().await;
    let cache = projections::HistoryCache::new(Arc::clone(&w.store), 10);
    let before_entry = Utc::now();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let json = |l: &projections::GrantLedger| serde_json::to_value(l).unwrap();
    assert_eq!(
        json(&cache.ledger_known_at(&gid(), None).await.unwrap()),
        json(&as_known_at(&*w.store, &gid(), None).await.unwrap())
    );
    let late =
        expenditure("E72", "FP2-OTH", eur("5.00").unwrap(), None, "2022-09-15", "sup-late", "L-2", None).unwrap();
    w.handler.execute(&gid(), &Issued::new(late, ActorId::parse(MANAGER).unwrap(), d("2022-10-20"))).await.unwrap();
    // The new event is picked up; the earlier instant still excludes it.
    let now = cache.ledger_known_at(&gid(), None).await.unwrap();
    assert_eq!(json(&now), json(&as_known_at(&*w.store, &gid(), None).await.unwrap()));
    assert!(now.expenditures.keys().any(|k| k.as_str() == "E72"));
    let then = cache.ledger_known_at(&gid(), Some(before_entry)).await.unwrap();
    assert_eq!(json(&then), json(&as_known_at(&*w.store, &gid(), Some(before_entry)).await.unwrap()));
    assert!(!then.expenditures.keys().any(|k| k.as_str() == "E72"));
}

#[tokio::test]
async fn the_handler_and_the_projections_read_every_stored_event_alike() {
    let w = world().await;
    let stream = projections::fold::grant_stream(&gid()).unwrap();
    assert_eq!(stream, domain::handler::grant_stream(&gid()).unwrap(), "one stream name for both sides");
    // Written with no business date and no command id, by an actor named
    // before `..` was refused; then one that no build can read.
    let bare = NewEvent::new(
        "GrantClosed",
        1,
        serde_json::json!({"closed_on": "2023-12-31"}),
        EventMetadata { actor: "..".into(), ..Default::default() },
    );
    let bogus = NewEvent::new(
        "GrantExploded",
        1,
        serde_json::json!({}),
        EventMetadata { actor: "x".into(), ..Default::default() },
    );
    w.store.append(&stream, ExpectedVersion::Any, vec![bare, bogus]).await.unwrap();
    let stored = w.store.read_stream(&stream, StreamStart::End, Direction::Forward, READ_EVENTS_MAX).await.unwrap();
    assert!(stored.len() > 40 && stored.len() < READ_EVENTS_MAX, "{} events", stored.len());
    for e in &stored {
        match (domain::handler::decode_grant_event(e), projections::fold::projected(e)) {
            (Ok(written), Ok(read)) => assert_eq!(written, read.envelope, "at {}", e.position.0),
            (Err(HandlerError::Unreadable { position, detail }), Err(ApplyError { position: at, detail: why })) => {
                assert_eq!((position.0, &detail), (at, &why));
                assert_eq!(detail, r#"unknown event type "GrantExploded""#);
            }
            other => panic!("the two sides disagree at {}: {other:?}", e.position.0),
        }
    }
    let bare = projections::fold::projected(&stored[stored.len() - 2]).unwrap();
    let c = &bare.envelope.context;
    assert_eq!(c.effective_date, bare.recorded_at.date_naive(), "dated by the day it was recorded");
    assert_eq!((c.command_id, c.actor.as_str()), (uuid::Uuid::nil(), ".."));
}

#[tokio::test]
async fn the_monthly_series_and_the_forecast_as_of_30_september() {
    let w = world().await;
    let p = projector(&w).await;
    let b = budget(&p.ledger(&gid()).await.unwrap().unwrap(), Some(d("2022-09-30")), d("2023-01-15")).unwrap();
    let e = |s: &str| eur(s).unwrap();
    let months: Vec<(&str, _, _, _)> =
        b.monthly.iter().map(|m| (m.month.as_str(), m.spent, m.indirect, m.cumulative)).collect();
    // 25 % of the cumulative base (FP3-SUB's July invoice earns none),
    // rounded half-even, month by month: 2920.125 -> 2920.12.
    assert_eq!(
        months,
        [
            ("2022-03", e("11680.50"), e("2920.12"), e("14600.62")),
            ("2022-04", e("2777.78"), e("694.45"), e("18072.85")),
            ("2022-06", e("24340.00"), e("6085.00"), e("48497.85")),
            ("2022-07", e("4000.00"), e("0.00"), e("52497.85")),
            ("2022-09", e("640.00"), e("160.00"), e("53297.85")),
        ]
    );
    assert_eq!((b.start, b.effective_end), (d("2022-01-01"), d("2022-12-31")));
    // 53,297.85 in 273 of 365 days: 71,259.03 by the end, over the 57,297.85
    // spent or committed.
    assert_eq!(b.forecast_at_completion, e("71259.03"));
    assert_eq!(b.forecast_variance, e("178740.97"));
}

#[tokio::test]
async fn explanations_sum_to_the_budget_lines_at_every_date_and_instant() {
    let w = world().await;
    let cache = projections::HistoryCache::new(Arc::clone(&w.store), 100_000);
    let history = cache.history(&gid()).await.unwrap();
    let instants: Vec<Option<chrono::DateTime<Utc>>> =
        std::iter::once(None).chain(history.iter().step_by(7).map(|p| Some(p.recorded_at))).collect();
    let dates = ["2022-01-01", "2022-02-15", "2022-07-26", "2022-07-27", "2022-09-10", "2022-09-30", "2023-01-15"];
    for known_at in instants {
        let cut: Vec<_> =
            history.iter().take_while(|p| projections::fold::known(p.recorded_at, known_at)).cloned().collect();
        let ledger = cache.ledger_known_at(&gid(), known_at).await.unwrap();
        for as_of in dates.iter().map(|s| Some(d(s))).chain([None]) {
            let Ok(b) = budget(&ledger, as_of, d("2023-01-15")) else { continue };
            let explained = projections::explain(&cut, None, as_of).unwrap();
            let figures =
                |l: &projections::LineExplanation| (l.line.clone(), l.current.total, l.committed.total, l.spent.total);
            let lines: Vec<_> = b.lines.iter().map(|l| (l.line.clone(), l.current, l.committed, l.spent)).collect();
            assert_eq!(
                explained.iter().map(figures).collect::<Vec<_>>(),
                lines,
                "as of {as_of:?}, known at {known_at:?}"
            );
            for l in &explained {
                for f in [&l.current, &l.committed, &l.spent] {
                    assert_eq!(
                        f.total,
                        events::Money::sum(f.total.currency(), f.events.iter().map(|c| &c.amount)).unwrap()
                    );
                }
            }
        }
    }
    // FP1-CON as of 30 September: 10,000 opened, 3,000 given away by R1;
    // the 4,200 purchase order liquidated by the 4,180.50 invoice and then closed.
    let explained =
        projections::explain(&history, Some(&LineId::parse("FP1-CON").unwrap()), Some(d("2022-09-30"))).unwrap();
    assert_eq!(explained.len(), 1);
    let fp1 = &explained[0];
    let amounts = |f: &projections::explain::Figure| -> Vec<(&str, String)> {
        f.events.iter().map(|c| (c.event_type, c.amount.amount().to_string())).collect()
    };
    assert_eq!(
        amounts(&fp1.current),
        [("BudgetLineOpened", "10000.00".into()), ("ReallocationApproved", "-3000.00".into())]
    );
    assert_eq!(fp1.spent.total, eur("4180.50").unwrap());
    assert_eq!(fp1.committed.total, eur("0.00").unwrap());
    assert!(fp1.committed.events.iter().any(|c| c.event_type == "CommitmentRaised"), "{:?}", amounts(&fp1.committed));
}
