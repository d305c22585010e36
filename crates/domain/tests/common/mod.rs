//! What the domain's integration tests share: one small grant's set-up
//! commands.

#![allow(clippy::unwrap_used, dead_code)] // a test fails by panicking; not every test uses all

use domain::grant::{AwardGrant, GrantCommand};
use domain::handler::Issued;
use domain::programme::ProgrammeCommand;
use domain::scenario::{eur, expenditure};
use events::{ActorId, CategoryCode, ExpenditureId, GrantId, ProgrammeId, RuleSetId, WorkstreamCode};

/// The business day of every command.
pub const DAY: &str = "2022-06-01";

pub fn d(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap()
}

/// Creates programme `p`.
pub fn create_programme() -> Issued<ProgrammeCommand> {
    Issued::new(
        ProgrammeCommand::Create { programme_id: ProgrammeId::parse("p").unwrap(), name: "P".into() },
        ActorId::parse("admin").unwrap(),
        d(DAY),
    )
}

/// Awards `grant` under programme `p`: EUR 1,000,000 for 2022, FNR-2022.
pub fn award(grant: &GrantId) -> GrantCommand {
    GrantCommand::Award(AwardGrant {
        grant_id: grant.clone(),
        programme_id: ProgrammeId::parse("p").unwrap(),
        funder: "FNR".into(),
        title: "T".into(),
        acronym: "T".into(),
        beneficiary: "org".into(),
        award: eur("1000000.00").unwrap(),
        start: d("2022-01-01"),
        end: d("2022-12-31"),
        rule_set: RuleSetId::parse("FNR-2022").unwrap(),
        indirect_rate: None,
    })
}

/// Workstream W1.
pub fn workstream() -> GrantCommand {
    GrantCommand::DefineWorkstream { code: WorkstreamCode::parse("W1").unwrap(), title: "W".into(), lead: None }
}

/// Line W1-OTH, EUR 100,000.
pub fn line() -> GrantCommand {
    GrantCommand::OpenBudgetLine {
        workstream: WorkstreamCode::parse("W1").unwrap(),
        category: CategoryCode::parse("OTH").unwrap(),
        amount: eur("100000.00").unwrap(),
    }
}

/// EUR 1.00 spent on W1-OTH under expenditure id `id`.
pub fn spend(id: &str) -> GrantCommand {
    expenditure(id, "W1-OTH", eur("1.00").unwrap(), None, DAY, "sup", id, None).unwrap()
}

/// Reverses expenditure `id`.
pub fn reverse(id: &str) -> GrantCommand {
    GrantCommand::ReverseExpenditure { expenditure_id: ExpenditureId::parse(id).unwrap() }
}
