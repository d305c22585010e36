//! What the projections' integration tests share: a log of grants built
//! through the real command handler.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // a test fails by panicking; not every test uses all

use chrono::NaiveDate;
use domain::grant::{AwardGrant, GrantCommand};
use domain::handler::{Handler, Issued};
use domain::programme::ProgrammeCommand;
use events::{
    ActorId, CategoryCode, Currency, ExpenditureId, GrantId, LineId, Money, ProgrammeId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;
use store::EventStore;

pub fn day(n: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).unwrap().checked_add_days(chrono::Days::new(n)).unwrap()
}

pub fn programme(p: usize) -> ProgrammeId {
    ProgrammeId::parse(format!("prog-{p}")).unwrap()
}

pub fn grant(g: usize) -> GrantId {
    GrantId::parse(format!("g-{g:02}")).unwrap()
}

pub fn eur(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::EUR).unwrap()
}

pub fn actor(name: &str) -> ActorId {
    ActorId::parse(name).unwrap()
}

pub async fn award(handler: &Handler, g: usize) {
    let award = AwardGrant {
        grant_id: grant(g),
        programme_id: programme(g % 2),
        funder: "FNR".into(),
        title: format!("Grant {g}"),
        acronym: format!("G{g}"),
        beneficiary: "org".into(),
        award: eur(100_000_000),
        start: day(0),
        end: day(1000),
        rule_set: RuleSetId::parse("FNR-2022").unwrap(),
        indirect_rate: None,
    };
    let steps = [
        (actor("fo"), GrantCommand::Award(award)),
        (
            actor("pm"),
            GrantCommand::DefineWorkstream {
                code: WorkstreamCode::parse("WS1").unwrap(),
                title: "Work".into(),
                lead: None,
            },
        ),
        (
            actor("pm"),
            GrantCommand::OpenBudgetLine {
                workstream: WorkstreamCode::parse("WS1").unwrap(),
                category: CategoryCode::parse("PER").unwrap(),
                amount: eur(50_000_000),
            },
        ),
    ];
    for (who, command) in steps {
        handler.execute(&grant(g), &Issued::new(command, who, day(0)).effective(day(0))).await.unwrap();
    }
}

pub async fn spend(handler: &Handler, g: usize, i: usize) {
    let command = GrantCommand::RecordExpenditure {
        expenditure_id: ExpenditureId::parse(format!("E{i}")).unwrap(),
        line: LineId::parse("WS1-PER").unwrap(),
        amount: eur(100 + (g * 37 + i * 11) as i64),
        conversion: None,
        // Within the grant's period (days 0..=1000), however many rounds.
        incurred_on: day(1 + (i % 900) as u64),
        supplier: "sup".into(),
        invoice: format!("INV-{g}-{i}"),
        commitment: None,
        correction_of: None,
    };
    handler.execute(&grant(g), &Issued::new(command, actor("pm"), day(400))).await.unwrap();
}

/// Two programmes, `grants` grants, their expenditures interleaved so
/// that every page of the log touches many grants.
pub async fn build(handler: &Handler, grants: usize, rounds: std::ops::Range<usize>) {
    if rounds.start == 0 {
        for p in 0..2 {
            let create = ProgrammeCommand::Create { programme_id: programme(p), name: format!("Programme {p}") };
            handler.execute_programme(&programme(p), &Issued::new(create, actor("admin"), day(0))).await.unwrap();
        }
        for g in 0..grants {
            award(handler, g).await;
        }
    }
    for i in rounds {
        for g in 0..grants {
            spend(handler, g, i).await;
        }
    }
}

pub async fn head(store: &dyn EventStore) -> u64 {
    store.head().await.unwrap().map_or(0, |h| h.position.0)
}

/// The portfolio of `programme` worked out from each grant's budget and
/// timeline views, as API.md defines its figures: the reference the
/// portfolio view (and the standings the projector keeps) must equal.
pub fn portfolio_from_views(
    programme: &ProgrammeId,
    ledgers: &[&projections::GrantLedger],
    as_of: Option<NaiveDate>,
    today: NaiveDate,
) -> projections::PortfolioView {
    use projections::portfolio::{CurrencyTotals, PortfolioGrant, status};
    use projections::timeline::MilestoneStatus;
    let counts = |date: NaiveDate| as_of.is_none_or(|d| date <= d);
    let undecided =
        |requested: NaiveDate, decided: Option<NaiveDate>| counts(requested) && !decided.is_some_and(counts);
    let mut grants = Vec::new();
    let mut totals: std::collections::BTreeMap<Currency, CurrencyTotals> = Default::default();
    for ledger in ledgers {
        let Some(info) = ledger.grant.as_ref().filter(|g| &g.programme == programme) else { continue };
        let b = projections::budget(ledger, as_of, today).unwrap();
        let t = projections::timeline(ledger, as_of, today).unwrap();
        let pending = ledger
            .reallocations
            .values()
            .filter(|r| undecided(r.requested_on, r.decided.as_ref().map(|d| d.on)))
            .count()
            + ledger
                .amendments
                .values()
                .filter(|a| undecided(a.requested_on, a.decided.as_ref().map(|d| d.on)))
                .count();
        let overdue = t.milestones.iter().filter(|m| m.status == MilestoneStatus::Overdue).count();
        let overspent = b.lines.iter().filter(|l| l.overspent).count();
        let zero = Money::zero(b.currency);
        let sums = totals.entry(b.currency).or_insert(CurrencyTotals {
            currency: b.currency,
            award: zero,
            spent: zero,
            committed: zero,
        });
        sums.award = sums.award.checked_add(&b.award).unwrap();
        sums.spent = sums.spent.checked_add(&b.spent).unwrap();
        sums.committed = sums.committed.checked_add(&b.committed).unwrap();
        grants.push(PortfolioGrant {
            grant: info.id.clone(),
            title: info.title.clone(),
            acronym: info.acronym.clone(),
            award: b.award,
            spent: b.spent,
            committed: b.committed,
            burn_index: b.burn_index,
            time_elapsed_pct: b.time_elapsed_pct,
            overdue_milestones: overdue,
            pending_approvals: pending,
            status: status(overspent, overdue, b.burn_index, b.time_elapsed_pct, pending),
        });
    }
    projections::PortfolioView {
        programme: programme.clone(),
        today,
        as_of,
        grants,
        totals: totals.into_values().collect(),
    }
}

/// A real SQLite log of `grants` grants of `expenditures` expenditures
/// each ([`build`]), and a projector on a views file beside it, caught up,
/// holding at most `cache_facts` facts in memory: the directory (kept for
/// as long as the test needs the files), the log, the projector and the
/// log's head.
pub async fn built_and_caught_up(
    grants: usize,
    expenditures: usize,
    cache_facts: usize,
) -> (tempfile::TempDir, std::sync::Arc<dyn EventStore>, projections::Projector, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn EventStore> =
        std::sync::Arc::new(store_sqlite::SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    build(&Handler::new(std::sync::Arc::clone(&store)), grants, 0..expenditures).await;
    let events = head(store.as_ref()).await;
    let p =
        projections::Projector::start_with(std::sync::Arc::clone(&store), dir.path().join("views.sqlite"), cache_facts)
            .await
            .unwrap();
    p.wait_committed(events, std::time::Duration::from_secs(60)).await.unwrap();
    (dir, store, p, events)
}
