//! The portfolio view: a programme's grants side by side. Amounts are kept
//! per currency and never summed across currencies.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use events::rules::{self, CategoryKind};
use events::{Currency, GrantId, Money, MoneyError, ProgrammeId};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::budget::{Pace, ViewError, spending};
use crate::ledger::{AsOf, GrantInfo, GrantLedger};
use crate::tally::Tally;
use crate::timeline::Due;

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

/// A grant's standing as of a date: what the portfolio shows of it that
/// does not depend on the day it is looked at. The projector keeps each
/// grant's standing as of every fact beside its ledger, so that a
/// programme's portfolio is read without reading its grants' ledgers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The grant.
    pub grant: GrantId,
    /// Its programme.
    pub programme: ProgrammeId,
    /// Its title.
    pub title: String,
    /// Its short name.
    pub acronym: String,
    /// Its award.
    pub award: Money,
    /// Spent, with accrued indirect costs (as the budget view's `spent`).
    pub spent: Money,
    /// Open commitments.
    pub committed: Money,
    /// First day of the grant period.
    pub start: NaiveDate,
    /// Last day after the extensions approved.
    pub effective_end: NaiveDate,
    /// Lines spent beyond their current amount.
    pub overspent_lines: usize,
    /// Reallocations and amendments requested and not yet decided.
    pub pending_approvals: usize,
    /// The due dates of the milestones neither achieved nor cancelled,
    /// earliest first.
    pub open_dues: Vec<NaiveDate>,
}

impl Standing {
    /// The standing of `ledger`'s grant as of `as_of` (every fact when
    /// `None`); `None` before its award.
    pub fn of(ledger: &GrantLedger, as_of: Option<NaiveDate>) -> Result<Option<Self>, ViewError> {
        let Some(grant) = ledger.grant.as_ref() else { return Ok(None) };
        let at = AsOf(as_of);
        // As of every fact, from the ledger's running sums when they are
        // sound (the cost of its lines, not of its expenditures); else, and
        // as of a date, from every fact.
        let sums = match ledger.tally.usable(ledger).filter(|_| as_of.is_none()) {
            Some(tally) => tallied(ledger, grant, tally).ok(),
            None => None,
        };
        let (spent, committed, overspent_lines) = match sums {
            Some(sums) => sums,
            None => {
                let s = spending(ledger, grant, at)?;
                (s.spent, s.committed, s.lines.iter().filter(|l| l.overspent).count())
            }
        };
        let undecided = |requested_on: NaiveDate, decided_on: Option<NaiveDate>| {
            at.counts(requested_on) && !at.happened(decided_on)
        };
        let pending_approvals = ledger
            .reallocations
            .values()
            .filter(|r| undecided(r.requested_on, r.decided.as_ref().map(|d| d.on)))
            .count()
            + ledger
                .amendments
                .values()
                .filter(|a| undecided(a.requested_on, a.decided.as_ref().map(|d| d.on)))
                .count();
        let mut open_dues: Vec<NaiveDate> = ledger
            .milestones
            .values()
            .filter(|m| at.counts(m.planned_on))
            .map(|m| Due::of(m, at))
            .filter(|d| d.open())
            .map(|d| d.current_due)
            .collect();
        open_dues.sort_unstable();
        Ok(Some(Self {
            grant: grant.id.clone(),
            programme: grant.programme.clone(),
            title: grant.title.clone(),
            acronym: grant.acronym.clone(),
            award: grant.award,
            spent,
            committed,
            start: grant.start,
            effective_end: ledger.effective_end(at).unwrap_or(grant.end),
            overspent_lines,
            pending_approvals,
            open_dues,
        }))
    }

    /// The grant's row of the portfolio as of `as_of` (the date this
    /// standing is as of), statuses relative to `today`: time elapsed is
    /// measured to `as_of`, or to `today` when `as_of` is `None`, as in the
    /// budget view.
    pub fn on(&self, as_of: Option<NaiveDate>, today: NaiveDate) -> Result<PortfolioGrant, ViewError> {
        let pace = Pace::of(self.start, self.effective_end, as_of.unwrap_or(today));
        let burn_index = pace.burn_index(self.spent, self.award)?;
        let time_elapsed_pct = pace.elapsed_pct()?;
        let overdue = self.open_dues.partition_point(|due| *due < today);
        Ok(PortfolioGrant {
            grant: self.grant.clone(),
            title: self.title.clone(),
            acronym: self.acronym.clone(),
            award: self.award,
            spent: self.spent,
            committed: self.committed,
            burn_index,
            time_elapsed_pct,
            overdue_milestones: overdue,
            pending_approvals: self.pending_approvals,
            status: status(self.overspent_lines, overdue, burn_index, time_elapsed_pct, self.pending_approvals),
        })
    }
}

/// Spent (with accrued indirect costs), committed and the number of lines
/// overspent as of every fact, from the ledger's running sums: what
/// [`spending`] gives as of every fact, line by line.
fn tallied(ledger: &GrantLedger, grant: &GrantInfo, tally: &Tally) -> Result<(Money, Money, usize), MoneyError> {
    let zero = Money::zero(grant.award.currency());
    let rules = rules::find(&grant.rule_set);
    let (mut committed, mut direct, mut base, mut overspent) = (zero, zero, zero, 0);
    for (id, line) in &ledger.lines {
        let none = Money::zero(line.original.currency());
        let current = line.original.checked_add(tally.reallocated(id).unwrap_or(&none))?;
        let spent = tally.spent(id).copied().unwrap_or(none);
        committed = committed.checked_add(tally.committed(id).unwrap_or(&none))?;
        direct = direct.checked_add(&spent)?;
        if rules.and_then(|r| r.category(&line.category)).map(|c| c.kind) == Some(CategoryKind::Direct) {
            base = base.checked_add(&spent)?;
        }
        if spent.amount() > current.amount() {
            overspent += 1;
        }
    }
    let spent = direct.checked_add(&base.times(grant.indirect_rate)?)?;
    Ok((spent, committed, overspent))
}

/// The portfolio of `programme` over its grants' `standings` (as of
/// `as_of`; others are left out), in the order given, statuses relative to
/// `today`.
pub fn portfolio_of<'a>(
    programme: &ProgrammeId,
    standings: impl IntoIterator<Item = &'a Standing>,
    as_of: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<PortfolioView, ViewError> {
    let mut grants = Vec::new();
    let mut totals: BTreeMap<Currency, CurrencyTotals> = BTreeMap::new();
    for standing in standings.into_iter().filter(|s| &s.programme == programme) {
        let row = standing.on(as_of, today)?;
        let currency = row.award.currency();
        let zero = Money::zero(currency);
        let sums =
            totals.entry(currency).or_insert(CurrencyTotals { currency, award: zero, spent: zero, committed: zero });
        sums.award = sums.award.checked_add(&row.award)?;
        sums.spent = sums.spent.checked_add(&row.spent)?;
        sums.committed = sums.committed.checked_add(&row.committed)?;
        grants.push(row);
    }
    Ok(PortfolioView { programme: programme.clone(), today, as_of, grants, totals: totals.into_values().collect() })
}

/// The portfolio of `programme` over `ledgers` (the programme's grants;
/// others are left out), each grant's figures as its budget and timeline
/// views give them as of `as_of` (every fact when `None`), statuses
/// relative to `today`.
pub fn portfolio<'a>(
    programme: &ProgrammeId,
    ledgers: impl IntoIterator<Item = &'a GrantLedger>,
    as_of: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<PortfolioView, ViewError> {
    let mut standings = Vec::new();
    for ledger in ledgers {
        if ledger.grant.as_ref().is_some_and(|g| &g.programme == programme)
            && let Some(standing) = Standing::of(ledger, as_of)?
        {
            standings.push(standing);
        }
    }
    portfolio_of(programme, &standings, as_of, today)
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

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    /// A grant with a personnel and a subcontracting line of 5,000.00
    /// each, a commitment on the first, and expenditures on both (one
    /// liquidating the commitment, one reversed), its facts put in directly.
    fn ledger() -> GrantLedger {
        use crate::ledger::{CommitmentFacts, ExpenditureFacts};
        use events::{CommitmentId, ExpenditureId, LineId};
        let date = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut l = crate::budget::tests::ledger("0.25", &[]);
        let c = CommitmentId::parse("C1").unwrap();
        let raised = CommitmentFacts {
            line: LineId::parse("W1-PER").unwrap(),
            amount: eur("50.00"),
            raised_on: date("2022-02-01"),
            closed_on: None,
        };
        l.commitments.insert(c.clone(), raised);
        for (n, (line, amount, liquidates, reversed)) in [
            ("W1-PER", "3000.00", Some("20.00"), false),
            ("W1-PER", "2100.00", None, false),
            ("W1-SUB", "40.00", None, false),
            ("W1-SUB", "500.00", None, true),
        ]
        .into_iter()
        .enumerate()
        {
            let facts = ExpenditureFacts {
                line: LineId::parse(line).unwrap(),
                amount: eur(amount),
                incurred_on: date("2022-03-01"),
                liquidates: liquidates.map(|a| (c.clone(), eur(a))),
                reversed_on: reversed.then(|| date("2022-04-01")),
                correction_of: None,
            };
            l.expenditures.insert(ExpenditureId::parse(format!("X{n}")).unwrap(), facts);
        }
        l
    }

    /// The standing worked out from every fact, as the budget view does.
    fn from_every_fact(l: &GrantLedger) -> (Money, Money, usize) {
        let grant = l.grant.as_ref().unwrap();
        let s = spending(l, grant, AsOf(None)).unwrap();
        (s.spent, s.committed, s.lines.iter().filter(|l| l.overspent).count())
    }

    #[test]
    fn the_running_sums_give_the_figures_every_fact_gives_and_are_not_used_once_stale() {
        let mut l = ledger();
        assert!(l.tally.usable(&l).is_none(), "facts put in directly leave the sums stale");
        l.retally();
        let tally = l.tally.usable(&l).expect("sound and up to date");
        let sums = tallied(&l, l.grant.as_ref().unwrap(), tally).unwrap();
        // PER: 5,100.00 spent of 5,000.00 (overspent), 30.00 committed;
        // SUB: 40.00 spent (the 500.00 was reversed; subcontracting bears
        // no indirect costs): 5,140.00 + 0.25 x 5,100.00.
        assert_eq!(sums, (eur("6415.00"), eur("30.00"), 1));
        assert_eq!(sums, from_every_fact(&l));
        let standing = Standing::of(&l, None).unwrap().unwrap();
        assert_eq!((standing.spent, standing.committed, standing.overspent_lines), sums);

        // A fact put in past the sums: they are not used, and the standing
        // is still every fact's.
        let mut more = l.expenditures.values().next().cloned().unwrap();
        more.liquidates = None;
        l.expenditures.insert(events::ExpenditureId::parse("X9").unwrap(), more);
        assert!(l.tally.usable(&l).is_none());
        let standing = Standing::of(&l, None).unwrap().unwrap();
        assert_eq!((standing.spent, standing.committed, standing.overspent_lines), from_every_fact(&l));
        assert_eq!(standing.spent, eur("10165.00"));
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
