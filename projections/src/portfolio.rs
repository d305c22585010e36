//! The portfolio view: a programme's grants side by side. Amounts are kept
//! per currency and never summed across currencies.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use events::{Currency, GrantId, Money, ProgrammeId};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Serialize;

use crate::budget::{ViewError, budget};
use crate::ledger::GrantLedger;
use crate::timeline::{MilestoneStatus, timeline};

/// One grant of the programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PortfolioGrant {
    /// The grant.
    pub grant: GrantId,
    /// Its title.
    pub title: String,
    /// Its award.
    pub award: Money,
    /// Spent, with accrued indirect costs.
    pub spent: Money,
    /// Open commitments.
    pub committed: Money,
    /// Spent share / time share.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub burn_index: Decimal,
    /// Milestones overdue today.
    pub overdue_milestones: usize,
    /// Reallocations and amendments awaiting a decision.
    pub pending_approvals: usize,
}

/// Totals in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CurrencyTotals {
    /// The currency.
    pub currency: Currency,
    /// Sum of awards.
    pub award: Money,
    /// Sum of spent.
    pub spent: Money,
    /// Sum of open commitments.
    pub committed: Money,
}

/// A programme's portfolio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PortfolioView {
    /// The programme.
    pub programme: ProgrammeId,
    /// The day statuses and time shares are relative to.
    pub today: NaiveDate,
    /// Its grants, by id.
    pub grants: Vec<PortfolioGrant>,
    /// Totals per currency, never across currencies.
    pub totals: Vec<CurrencyTotals>,
}

/// The portfolio of `programme` over `ledgers` (the programme's grants).
pub fn portfolio<'a>(
    programme: &ProgrammeId,
    ledgers: impl IntoIterator<Item = &'a GrantLedger>,
    today: NaiveDate,
) -> Result<PortfolioView, ViewError> {
    let mut grants = Vec::new();
    let mut totals: BTreeMap<Currency, CurrencyTotals> = BTreeMap::new();
    for ledger in ledgers {
        let Some(info) = ledger.grant.as_ref().filter(|g| &g.programme == programme) else { continue };
        let b = budget(ledger, None, today)?;
        let t = timeline(ledger, None, today)?;
        let pending = ledger.reallocations.values().filter(|r| r.decided.is_none()).count()
            + ledger.amendments.values().filter(|a| a.decided.is_none()).count();
        let zero = Money::zero(b.currency);
        let sums = totals.entry(b.currency).or_insert(CurrencyTotals {
            currency: b.currency,
            award: zero,
            spent: zero,
            committed: zero,
        });
        sums.award = sums.award.checked_add(&b.award)?;
        sums.spent = sums.spent.checked_add(&b.spent)?;
        sums.committed = sums.committed.checked_add(&b.committed)?;
        grants.push(PortfolioGrant {
            grant: info.id.clone(),
            title: info.title.clone(),
            award: b.award,
            spent: b.spent,
            committed: b.committed,
            burn_index: b.burn_index,
            overdue_milestones: t.milestones.iter().filter(|m| m.status == MilestoneStatus::Overdue).count(),
            pending_approvals: pending,
        });
    }
    Ok(PortfolioView { programme: programme.clone(), today, grants, totals: totals.into_values().collect() })
}
