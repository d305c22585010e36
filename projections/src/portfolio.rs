//! The portfolio view: a programme's grants side by side. Amounts are kept
//! per currency and never summed across currencies.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use events::{Currency, GrantId, Money, ProgrammeId};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::budget::{ViewError, budget};
use crate::ledger::{AsOf, GrantLedger};
use crate::timeline::{MilestoneStatus, timeline};

/// One grant of the programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortfolioGrant {
    /// The grant.
    pub grant: GrantId,
    /// Its title.
    pub title: String,
    /// Its short name.
    pub acronym: String,
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
    /// Share of the (effective) period elapsed, percent.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub time_elapsed_pct: Decimal,
    /// Milestones overdue today.
    pub overdue_milestones: usize,
    /// Reallocations and amendments requested and not yet decided (as of
    /// the date).
    pub pending_approvals: usize,
    /// How the grant fares at a glance (see [`status`]).
    pub status: GrantStatus,
}

/// A grant's health at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Nothing to look at.
    Green,
    /// Spending off pace, or decisions waiting.
    Amber,
    /// A line overspent or a milestone overdue.
    Red,
}

/// Burn indices above this are spending too fast.
pub const BURN_INDEX_HIGH: Decimal = Decimal::from_parts(11, 0, 0, false, 1);
/// Burn indices below this are spending too slowly...
pub const BURN_INDEX_LOW: Decimal = Decimal::from_parts(5, 0, 0, false, 1);
/// ...once this share of the period (percent) has elapsed.
pub const BURN_INDEX_AFTER_PCT: Decimal = Decimal::from_parts(10, 0, 0, false, 0);

/// The status rule: red when a line is overspent or a milestone overdue;
/// amber when the burn index is above [`BURN_INDEX_HIGH`] or below
/// [`BURN_INDEX_LOW`] once [`BURN_INDEX_AFTER_PCT`] of the time has
/// elapsed, or when approvals are pending; green otherwise.
pub fn status(
    overspent_lines: usize,
    overdue_milestones: usize,
    burn_index: Decimal,
    time_elapsed_pct: Decimal,
    pending_approvals: usize,
) -> GrantStatus {
    let off_pace =
        time_elapsed_pct >= BURN_INDEX_AFTER_PCT && (burn_index > BURN_INDEX_HIGH || burn_index < BURN_INDEX_LOW);
    if overspent_lines > 0 || overdue_milestones > 0 {
        GrantStatus::Red
    } else if off_pace || pending_approvals > 0 {
        GrantStatus::Amber
    } else {
        GrantStatus::Green
    }
}

/// Totals in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortfolioView {
    /// The programme.
    pub programme: ProgrammeId,
    /// The day statuses and time shares are relative to.
    pub today: NaiveDate,
    /// The business date the figures are as of (`None`: every fact, time
    /// measured to `today`).
    pub as_of: Option<NaiveDate>,
    /// Its grants, by id.
    pub grants: Vec<PortfolioGrant>,
    /// Totals per currency, never across currencies.
    pub totals: Vec<CurrencyTotals>,
}

/// The portfolio of `programme` over `ledgers` (the programme's grants),
/// each grant's figures as its budget and timeline views give them as of
/// `as_of` (every fact when `None`), statuses relative to `today`.
pub fn portfolio<'a>(
    programme: &ProgrammeId,
    ledgers: impl IntoIterator<Item = &'a GrantLedger>,
    as_of: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<PortfolioView, ViewError> {
    let at = AsOf(as_of);
    let undecided =
        |requested_on: NaiveDate, decided_on: Option<NaiveDate>| at.counts(requested_on) && !at.happened(decided_on);
    let mut grants = Vec::new();
    let mut totals: BTreeMap<Currency, CurrencyTotals> = BTreeMap::new();
    for ledger in ledgers {
        let Some(info) = ledger.grant.as_ref().filter(|g| &g.programme == programme) else { continue };
        let b = budget(ledger, as_of, today)?;
        let t = timeline(ledger, as_of, today)?;
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
        sums.award = sums.award.checked_add(&b.award)?;
        sums.spent = sums.spent.checked_add(&b.spent)?;
        sums.committed = sums.committed.checked_add(&b.committed)?;
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
    Ok(PortfolioView { programme: programme.clone(), today, as_of, grants, totals: totals.into_values().collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn status_is_red_for_overspending_or_lateness_and_amber_for_pace_or_waiting() {
        let on_pace = (d("1.0"), d("50"));
        assert_eq!(status(0, 0, on_pace.0, on_pace.1, 0), GrantStatus::Green);
        assert_eq!(status(1, 0, on_pace.0, on_pace.1, 0), GrantStatus::Red);
        assert_eq!(status(0, 2, on_pace.0, on_pace.1, 3), GrantStatus::Red);
        assert_eq!(status(0, 0, on_pace.0, on_pace.1, 1), GrantStatus::Amber);
        assert_eq!(status(0, 0, d("1.1"), d("50"), 0), GrantStatus::Green, "1.1 itself is on pace");
        assert_eq!(status(0, 0, d("1.1001"), d("50"), 0), GrantStatus::Amber);
        assert_eq!(status(0, 0, d("0.5"), d("50"), 0), GrantStatus::Green, "0.5 itself is on pace");
        assert_eq!(status(0, 0, d("0.4999"), d("50"), 0), GrantStatus::Amber);
        // Early on, the pace says little.
        assert_eq!(status(0, 0, d("0.1"), d("9.9"), 0), GrantStatus::Green);
        assert_eq!(status(0, 0, d("3.0"), d("9.9"), 0), GrantStatus::Green);
        assert_eq!(status(0, 0, d("0.1"), d("10"), 0), GrantStatus::Amber);
    }

    #[test]
    fn statuses_serialise_in_snake_case() {
        let names: Vec<String> = [GrantStatus::Green, GrantStatus::Amber, GrantStatus::Red]
            .iter()
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .collect();
        assert_eq!(names, ["\"green\"", "\"amber\"", "\"red\""]);
    }
}
