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
        incurred_on: day(1 + i as u64),
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
