//! For random command sequences on top of the NCTCR scenario: the live
//! projection (stopped and restarted at random points on its file), a full
//! rebuild, and the as-of fold at the head all give the same views,
//! compared as canonical JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use domain::grant::{Delta, GrantCommand};
use domain::handler::{Handler, Issued};
use domain::scenario::{self, BUDGET, eur};
use events::{ActorId, CommitmentId, ExpenditureId, GrantId, LineId, Money};
use projections::{Projector, as_known_at, portfolio, portfolio_of, views_digest};

mod common;
use proptest::prelude::*;
use store::EventStore;
use store_sqlite::SqliteStore;

#[derive(Debug, Clone)]
enum Op {
    Spend {
        line: usize,
        cents: i64,
        day: u32,
        commitment: Option<u8>,
    },
    Commit {
        id: u8,
        line: usize,
        cents: i64,
        day: u32,
    },
    CloseCommitment {
        id: u8,
    },
    Reverse {
        index: u8,
    },
    Reallocate {
        from: usize,
        to: usize,
        cents: i64,
        day: u32,
    },
    /// Stop the projector here (and start it again later).
    Restart {
        before_catch_up: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let line = 0..BUDGET.len();
    prop_oneof![
        4 => (line.clone(), 1i64..800_000, 0u32..180, prop::option::of(0u8..4))
            .prop_map(|(line, cents, day, commitment)| Op::Spend { line, cents, day, commitment }),
        2 => (0u8..4, line.clone(), 1i64..500_000, 0u32..180).prop_map(|(id, line, cents, day)| Op::Commit { id, line, cents, day }),
        1 => (0u8..4).prop_map(|id| Op::CloseCommitment { id }),
        1 => (0u8..20).prop_map(|index| Op::Reverse { index }),
        2 => (line.clone(), line, 1i64..300_000, 0u32..180).prop_map(|(from, to, cents, day)| Op::Reallocate { from, to, cents, day }),
        1 => any::<bool>().prop_map(|before_catch_up| Op::Restart { before_catch_up }),
    ]
}

fn day(offset: u32) -> NaiveDate {
    // Inside P2, which is open: 2022-07-01 plus up to 179 days.
    NaiveDate::from_ymd_opt(2022, 7, 1).unwrap() + chrono::Days::new(u64::from(offset))
}

fn line(i: usize) -> LineId {
    let (ws, cat, _) = BUDGET[i];
    LineId::parse(format!("{ws}-{cat}")).unwrap()
}

fn cents(c: i64) -> Money {
    Money::new(rust_decimal::Decimal::new(c, 2), events::Currency::EUR).unwrap()
}

async fn run(handler: &Handler, grant: &GrantId, n: usize, op: &Op) {
    let actor = |a: &str| ActorId::parse(a).unwrap();
    let issue = |command: GrantCommand, on: NaiveDate, who: &str| {
        Issued::new(command, actor(who), on).effective(on).because("property test")
    };
    let command = match op {
        Op::Spend { line: l, cents: c, day: d, commitment } => GrantCommand::RecordExpenditure {
            expenditure_id: ExpenditureId::parse(format!("X{n}")).unwrap(),
            line: line(*l),
            amount: cents(*c),
            conversion: None,
            incurred_on: day(*d),
            supplier: "sup-p".into(),
            invoice: format!("INV-{n}"),
            commitment: commitment.map(|id| CommitmentId::parse(format!("C{id}")).unwrap()),
            correction_of: None,
        },
        Op::Commit { id, line: l, cents: c, .. } => GrantCommand::RaiseCommitment {
            commitment_id: CommitmentId::parse(format!("C{id}")).unwrap(),
            line: line(*l),
            amount: cents(*c),
            conversion: None,
            supplier: "sup-p".into(),
            reference: format!("REF-{n}"),
        },
        Op::CloseCommitment { id } => {
            GrantCommand::CloseCommitment { commitment_id: CommitmentId::parse(format!("C{id}")).unwrap() }
        }
        Op::Reverse { index } => {
            GrantCommand::ReverseExpenditure { expenditure_id: ExpenditureId::parse(format!("X{index}")).unwrap() }
        }
        Op::Reallocate { from, to, cents: c, day: d } => {
            let id = events::ReallocationId::parse(format!("R-{n}")).unwrap();
            let deltas = vec![
                Delta { line: line(*from), amount: cents(*c).negated() },
                Delta { line: line(*to), amount: cents(*c) },
            ];
            let request = GrantCommand::RequestReallocation { reallocation_id: id.clone(), deltas };
            if handler.execute(grant, &issue(request, day(*d), scenario::MANAGER)).await.is_ok() {
                let approve = GrantCommand::ApproveReallocation { reallocation_id: id };
                let _ = handler.execute(grant, &issue(approve, day(*d), scenario::FINANCE)).await;
            }
            return;
        }
        Op::Restart { .. } => return,
    };
    let on = match op {
        Op::Commit { day: d, .. } => day(*d),
        _ => day(179),
    };
    // Refusals are part of the point: they must leave no trace in any view.
    let _ = handler.execute(grant, &issue(command, on, scenario::MANAGER)).await;
}

/// The portfolio, from the ledgers and (as of every fact) from the
/// standings the projector keeps, is what the grants' budget and timeline
/// views say, for days before, during and after the period.
fn portfolios_are_the_views(
    projector: &Projector,
    programme: &events::ProgrammeId,
    live: &projections::db::Models,
) -> Result<(), TestCaseError> {
    let ledgers: Vec<_> = live.ledgers.values().collect();
    let standings = projector.standings(programme).unwrap();
    prop_assert_eq!(standings.len(), 1);
    for today in ["2021-12-31", "2022-01-01", "2022-06-30", "2022-12-31", "2023-09-30", "2030-01-01"] {
        let today: NaiveDate = today.parse().unwrap();
        for as_of in [None, Some(day(0)), Some(day(90)), Some(day(179))] {
            let want = common::portfolio_from_views(programme, &ledgers, as_of, today);
            prop_assert_eq!(&portfolio(programme, ledgers.iter().copied(), as_of, today).unwrap(), &want);
            if as_of.is_none() {
                let kept = portfolio_of(programme, standings.iter().map(Arc::as_ref), None, today).unwrap();
                prop_assert_eq!(&kept, &want);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn incremental_rebuild_and_as_of_agree(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
            let handler = Handler::new(Arc::clone(&store));
            let grant = scenario::nctcr_until(&handler, "2022-06-30").await.unwrap();
            let views = dir.path().join("views.sqlite");
            let mut projector = Some(Projector::start(Arc::clone(&store), &views).await.unwrap());
            for (n, op) in ops.iter().enumerate() {
                if let Op::Restart { before_catch_up } = op {
                    if !before_catch_up && let Some(p) = &projector {
                        let head = store.head().await.unwrap().map_or(0, |h| h.position.0);
                        p.wait_for(head, Duration::from_secs(10)).await.unwrap();
                    }
                    // Stop it wherever it is, and start again from its file.
                    drop(projector.take());
                    projector = Some(Projector::start(Arc::clone(&store), &views).await.unwrap());
                }
                run(&handler, &grant, n, op).await;
            }
            let projector = projector.unwrap();
            let head = store.head().await.unwrap().unwrap().position.0;
            projector.wait_for(head, Duration::from_secs(10)).await.unwrap();

            let live = projector.models().await.unwrap();
            let rebuilt = projections::fold_log(&*store).await.unwrap();
            prop_assert_eq!(serde_json::to_value(&live.ledgers).unwrap(), serde_json::to_value(&rebuilt.ledgers).unwrap());
            prop_assert_eq!(&live.programmes, &rebuilt.programmes);
            let as_of = as_known_at(&*store, &grant, None).await.unwrap();
            prop_assert_eq!(serde_json::to_value(&as_of).unwrap(), serde_json::to_value(&live.ledgers[&grant]).unwrap());
            let today = NaiveDate::from_ymd_opt(2022, 12, 31).unwrap();
            prop_assert_eq!(views_digest(&live, today), views_digest(&rebuilt, today));
            let programme = live.ledgers[&grant].grant.as_ref().unwrap().programme.clone();
            portfolios_are_the_views(&projector, &programme, &live)?;
            let report = projector.rebuild(today, |_, _| {}).await.unwrap();
            prop_assert_eq!(report.live_digest, report.rebuilt_digest);
            portfolios_are_the_views(&projector, &programme, &live)?;
            // The rebuilt file holds each ledger as a snapshot; a fact
            // changed since is a row over it, and both read back as the log.
            let more = Op::Spend { line: 0, cents: 100, day: 3, commitment: None };
            run(&handler, &grant, ops.len(), &more).await;
            let head = store.head().await.unwrap().unwrap().position.0;
            projector.wait_committed(head, Duration::from_secs(10)).await.unwrap();
            drop(projector);
            let again = Projector::start(Arc::clone(&store), &views).await.unwrap();
            prop_assert_eq!(again.models().await.unwrap(), projections::fold_log(&*store).await.unwrap());
            // The books always balance: allocations never exceed the award.
            let budget = projections::budget(&live.ledgers[&grant], None, today).unwrap();
            prop_assert!(budget.allocated.amount() <= eur("250000.00").unwrap().amount());
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever was recorded, at any date and as known at any instant: the
    /// months' indirect costs sum to the accrual, the running total ends at
    /// `spent`, and every line's explanation sums to its figures.
    #[test]
    fn monthly_series_and_explanations_add_up(
        ops in prop::collection::vec(op(), 1..30),
        as_of_days in prop::collection::vec(0u32..400, 1..5),
        cut in 0.0f64..=1.0,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
            let handler = Handler::new(Arc::clone(&store));
            let grant = scenario::nctcr_until(&handler, "2022-06-30").await.unwrap();
            for (n, op) in ops.iter().enumerate() {
                run(&handler, &grant, n, op).await;
            }
            let history = projections::HistoryCache::new(Arc::clone(&store), 1_000_000).history(&grant).await.unwrap();
            // Known at the instant of some event (the cut keeps every event
            // recorded by then, as a known-at query does).
            let index = ((history.len() - 1) as f64 * cut) as usize;
            let known_at = history[index].recorded_at;
            let events: Vec<_> = history.iter().take_while(|p| p.recorded_at <= known_at).cloned().collect();
            let mut ledger = projections::GrantLedger::default();
            for p in &events {
                ledger.apply(p);
            }
            let start = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap();
            let dates = as_of_days.iter().map(|d| Some(start + chrono::Days::new(u64::from(*d)))).chain([None]);
            for as_of in dates {
                let b = projections::budget(&ledger, as_of, NaiveDate::from_ymd_opt(2022, 12, 31).unwrap()).unwrap();
                let indirect = Money::sum(b.currency, b.monthly.iter().map(|m| &m.indirect)).unwrap();
                prop_assert_eq!(indirect, b.indirect.accrued);
                let last = b.monthly.last().map_or(Money::zero(b.currency), |m| m.cumulative);
                prop_assert_eq!(last, b.spent);
                let explained = projections::explain(&events, None, as_of).unwrap();
                let figures: Vec<_> = explained.iter().map(|l| (l.line.clone(), l.current.total, l.committed.total, l.spent.total)).collect();
                let lines: Vec<_> = b.lines.iter().map(|l| (l.line.clone(), l.current, l.committed, l.spent)).collect();
                prop_assert_eq!(figures, lines);
            }
            Ok(())
        })?;
    }
}
