//! The budget view (API.md): per line and rolled up by workstream and by
//! category, as of a business date. Money stays exact and in the grant's
//! one currency; percentages are rounded to 4 decimals at the end.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use events::rules::{self, CategoryKind};
use events::{CategoryCode, Currency, GrantId, LineId, Money, MoneyError, WorkstreamCode};
use rust_decimal::{Decimal, RoundingStrategy};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ledger::{AsOf, GrantInfo, GrantLedger};

/// Why a view cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// The grant has no award yet (or does not exist).
    #[error("the grant has not been awarded")]
    NotAwarded,
    /// Arithmetic failed (a currency mix in stored facts, or an overflow).
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// One budget line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LineView {
    /// `<workstream>-<category>`.
    pub line: LineId,
    /// Workstream.
    pub workstream: WorkstreamCode,
    /// Category.
    pub category: CategoryCode,
    /// As opened.
    pub original: Money,
    /// Received through approved reallocations.
    pub reallocated_in: Money,
    /// Given away through approved reallocations.
    pub reallocated_out: Money,
    /// original + in - out.
    pub current: Money,
    /// Open commitments.
    pub committed: Money,
    /// Direct costs (net of reversals).
    pub spent: Money,
    /// current - committed - spent.
    pub available: Money,
    /// spent / current, percent.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub spent_pct: Decimal,
    /// spent > current.
    pub overspent: bool,
}

/// Lines rolled up by workstream or category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupView {
    /// The workstream or category code.
    pub key: String,
    /// Sum of originals.
    pub original: Money,
    /// Sum of currents.
    pub current: Money,
    /// Sum of open commitments.
    pub committed: Money,
    /// Sum of direct costs.
    pub spent: Money,
    /// Sum of availabilities.
    pub available: Money,
}

/// Indirect costs accrued on the eligible base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IndirectView {
    /// The grant's rate.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "String")]
    pub rate: Decimal,
    /// Direct costs spent, excluding subcontracting.
    pub base: Money,
    /// rate x base, rounded half-even once.
    pub accrued: Money,
}

/// Spending in one calendar month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MonthView {
    /// `YYYY-MM`.
    pub month: String,
    /// Direct costs incurred in it.
    pub spent: Money,
    /// Indirect costs accrued in it: the rounded accrual on the eligible
    /// base up to the month's end, less the one up to the month before, so
    /// that the months sum to `indirect.accrued` exactly.
    pub indirect: Money,
    /// Direct and indirect costs up to the month's end; the last month's
    /// equals the view's `spent`.
    pub cumulative: Money,
}

/// The budget view of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetView {
    /// The grant.
    pub grant: GrantId,
    /// Its short name, as awarded.
    pub acronym: String,
    /// Its title, as awarded.
    pub title: String,
    /// Its currency.
    pub currency: Currency,
    /// The award.
    pub award: Money,
    /// Sum of current lines.
    pub allocated: Money,
    /// award - allocated.
    pub unallocated: Money,
    /// Direct costs plus accrued indirect costs.
    pub spent: Money,
    /// Open commitments.
    pub committed: Money,
    /// award - spent - committed.
    pub available: Money,
    /// Indirect costs.
    pub indirect: IndirectView,
    /// First day of the grant period.
    pub start: NaiveDate,
    /// Last day of the grant period after the extensions approved as of
    /// the date.
    pub effective_end: NaiveDate,
    /// What the grant will have spent by its effective end if it goes on
    /// at its pace: `max(spent + committed, spent x total_days /
    /// elapsed_days)`, rounded half-even to the minor unit; `spent +
    /// committed` while no day has elapsed (see [`forecast`]).
    pub forecast_at_completion: Money,
    /// `award - forecast_at_completion`; negative forecasts an overrun.
    pub forecast_variance: Money,
    /// Share of the (effective) period elapsed at the as-of date, percent.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub time_elapsed_pct: Decimal,
    /// Share of the award spent, percent.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub spent_pct: Decimal,
    /// Spent share / time share.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub burn_index: Decimal,
    /// The log position the view reflects.
    pub position: u64,
    /// The business date it is as of (`None`: every fact).
    pub as_of: Option<NaiveDate>,
    /// Lines.
    pub lines: Vec<LineView>,
    /// Lines by workstream.
    pub by_workstream: Vec<GroupView>,
    /// Lines by category.
    pub by_category: Vec<GroupView>,
    /// Monthly spending, direct and indirect, with the running total.
    pub monthly: Vec<MonthView>,
}

/// Rounds a ratio to 4 decimals, half-even.
pub(crate) fn round4(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(4, RoundingStrategy::MidpointNearestEven).normalize()
}

/// `part / whole x 100`, 0 when `whole` is zero; checked, never a panic.
pub(crate) fn percent(part: Decimal, whole: Decimal) -> Result<Decimal, MoneyError> {
    if whole.is_zero() {
        return Ok(Decimal::ZERO);
    }
    let ratio = part.checked_mul(Decimal::ONE_HUNDRED).and_then(|p| p.checked_div(whole));
    ratio.map(round4).ok_or(MoneyError::Overflow)
}

/// What a line amounts to as of a date.
pub(crate) struct LineTotals {
    pub reallocated_in: Money,
    pub reallocated_out: Money,
    pub current: Money,
    pub committed: Money,
    pub spent: Money,
}

impl GrantLedger {
    /// The end of the grant period after extensions approved as of `at`.
    pub fn effective_end(&self, at: AsOf) -> Option<NaiveDate> {
        let grant = self.grant.as_ref()?;
        let extended = self
            .amendments
            .values()
            .filter_map(|a| a.decided.as_ref().filter(|d| d.approved && at.counts(d.on)).map(|_| a.proposed_end))
            .max();
        Some(extended.map_or(grant.end, |e| e.max(grant.end)))
    }

    /// Every line's totals as of `at`, in one pass over the facts (lines not
    /// open by then are left out).
    pub(crate) fn line_totals(&self, at: AsOf) -> Result<BTreeMap<LineId, LineTotals>, MoneyError> {
        let mut totals: BTreeMap<LineId, LineTotals> = BTreeMap::new();
        for (id, line) in self.lines.iter().filter(|(_, l)| at.counts(l.opened_on)) {
            let zero = Money::zero(line.original.currency());
            let t = LineTotals {
                reallocated_in: zero,
                reallocated_out: zero,
                current: line.original,
                committed: zero,
                spent: zero,
            };
            totals.insert(id.clone(), t);
        }
        for r in self.reallocations.values() {
            if !r.decided.as_ref().is_some_and(|d| d.approved && at.counts(d.on)) {
                continue;
            }
            for d in &r.deltas {
                let Some(t) = totals.get_mut(&d.line) else { continue };
                if d.amount.is_negative() {
                    t.reallocated_out = t.reallocated_out.checked_add(&d.amount.negated())?;
                } else {
                    t.reallocated_in = t.reallocated_in.checked_add(&d.amount)?;
                }
                t.current = t.current.checked_add(&d.amount)?;
            }
        }
        // Commitments open as of `at`: raised, not closed, less what counted
        // expenditures (not reversed) liquidated.
        let mut open: BTreeMap<&events::CommitmentId, Money> = self
            .commitments
            .iter()
            .filter(|(_, c)| at.counts(c.raised_on) && !at.happened(c.closed_on))
            .map(|(id, c)| (id, c.amount))
            .collect();
        for x in self.expenditures.values().filter(|x| at.counts(x.incurred_on) && !at.happened(x.reversed_on)) {
            if let Some(t) = totals.get_mut(&x.line) {
                t.spent = t.spent.checked_add(&x.amount)?;
            }
            if let Some((cid, amount)) = &x.liquidates
                && let Some(o) = open.get_mut(cid)
            {
                *o = o.checked_sub(amount)?;
            }
        }
        for (cid, amount) in open {
            if let Some(t) = self.commitments.get(cid).and_then(|c| totals.get_mut(&c.line)) {
                t.committed = t.committed.checked_add(&amount)?;
            }
        }
        Ok(totals)
    }
}

/// What a grant's lines amount to as of a date, and their sums: the part
/// of the budget view that does not depend on the day it is looked at
/// (shared with the portfolio's standings).
pub(crate) struct Spending {
    pub lines: Vec<LineView>,
    pub allocated: Money,
    pub committed: Money,
    /// Direct costs eligible for indirect costs.
    pub base: Money,
    /// Indirect costs accrued on `base`.
    pub accrued: Money,
    /// Direct and accrued indirect costs.
    pub spent: Money,
}

/// The lines of `ledger` (whose award is `grant`) and their sums as of `at`.
pub(crate) fn spending(ledger: &GrantLedger, grant: &GrantInfo, at: AsOf) -> Result<Spending, MoneyError> {
    let zero = Money::zero(grant.award.currency());
    let rules = rules::find(&grant.rule_set);
    let kind = |c: &CategoryCode| rules.and_then(|r| r.category(c)).map(|c| c.kind);
    let mut lines = Vec::new();
    let (mut allocated, mut committed, mut direct, mut base) = (zero, zero, zero, zero);
    let mut totals = ledger.line_totals(at)?;
    for (id, facts) in &ledger.lines {
        let Some(t) = totals.remove(id) else { continue };
        allocated = allocated.checked_add(&t.current)?;
        committed = committed.checked_add(&t.committed)?;
        direct = direct.checked_add(&t.spent)?;
        if kind(&facts.category) == Some(CategoryKind::Direct) {
            base = base.checked_add(&t.spent)?;
        }
        let available = t.current.checked_sub(&t.committed)?.checked_sub(&t.spent)?;
        lines.push(LineView {
            line: id.clone(),
            workstream: facts.workstream.clone(),
            category: facts.category.clone(),
            original: facts.original,
            reallocated_in: t.reallocated_in,
            reallocated_out: t.reallocated_out,
            current: t.current,
            committed: t.committed,
            spent: t.spent,
            available,
            spent_pct: percent(t.spent.amount(), t.current.amount())?,
            overspent: t.spent.amount() > t.current.amount(),
        });
    }
    let accrued = base.times(grant.indirect_rate)?;
    let spent = direct.checked_add(&accrued)?;
    Ok(Spending { lines, allocated, committed, base, accrued, spent })
}

/// A grant period's days, and those elapsed by a reference day.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Days from the start to the (effective) end, both counted.
    pub total_days: Decimal,
    /// Days from the start to the reference day (or the end, if earlier),
    /// both counted; 0 before the start.
    pub elapsed_days: Decimal,
}

impl Pace {
    /// The period from `start` to `end` seen on `reference`.
    pub(crate) fn of(start: NaiveDate, end: NaiveDate, reference: NaiveDate) -> Self {
        let total_days = Decimal::from((end - start).num_days() + 1);
        let elapsed_days = if reference < start { 0 } else { (reference.min(end) - start).num_days() + 1 };
        Self { total_days, elapsed_days: Decimal::from(elapsed_days) }
    }

    /// Share of the period elapsed, percent.
    pub(crate) fn elapsed_pct(self) -> Result<Decimal, MoneyError> {
        percent(self.elapsed_days, self.total_days)
    }

    /// Spent share of the award over the time share (0 while no day has
    /// elapsed), rounded to 4 decimals.
    pub(crate) fn burn_index(self, spent: Money, award: Money) -> Result<Decimal, MoneyError> {
        let spent_share = spent.amount().checked_div(award.amount()).ok_or(MoneyError::Overflow)?;
        if self.elapsed_days.is_zero() {
            return Ok(Decimal::ZERO);
        }
        let index = spent_share.checked_mul(self.total_days).and_then(|x| x.checked_div(self.elapsed_days));
        index.map(round4).ok_or(MoneyError::Overflow)
    }
}

/// The budget view of `ledger` as of `as_of` (every fact when `None`); time
/// elapsed is measured to `as_of`, or to `today` when `as_of` is `None`.
pub fn budget(ledger: &GrantLedger, as_of: Option<NaiveDate>, today: NaiveDate) -> Result<BudgetView, ViewError> {
    let grant = ledger.grant.as_ref().ok_or(ViewError::NotAwarded)?;
    let at = AsOf(as_of);
    let currency = grant.award.currency();
    let rules = rules::find(&grant.rule_set);
    let kind = |c: &CategoryCode| rules.and_then(|r| r.category(c)).map(|c| c.kind);
    let Spending { lines, allocated, committed, base, accrued, spent } = spending(ledger, grant, at)?;

    let start = grant.start;
    let end = ledger.effective_end(at).unwrap_or(grant.end);
    let pace = Pace::of(start, end, as_of.unwrap_or(today));
    let burn_index = pace.burn_index(spent, grant.award)?;
    let forecast_at_completion = forecast(spent, committed, pace.total_days, pace.elapsed_days)?;
    let rate = grant.indirect_rate;
    let eligible =
        |line: &LineId| ledger.lines.get(line).is_some_and(|l| kind(&l.category) == Some(CategoryKind::Direct));

    Ok(BudgetView {
        grant: grant.id.clone(),
        acronym: grant.acronym.clone(),
        title: grant.title.clone(),
        currency,
        award: grant.award,
        allocated,
        unallocated: grant.award.checked_sub(&allocated)?,
        spent,
        committed,
        available: grant.award.checked_sub(&spent)?.checked_sub(&committed)?,
        indirect: IndirectView { rate: grant.indirect_rate, base, accrued },
        start,
        effective_end: end,
        forecast_at_completion,
        forecast_variance: grant.award.checked_sub(&forecast_at_completion)?,
        time_elapsed_pct: pace.elapsed_pct()?,
        spent_pct: percent(spent.amount(), grant.award.amount())?,
        burn_index,
        position: ledger.position,
        as_of,
        by_workstream: group(&lines, currency, |l| l.workstream.to_string())?,
        by_category: group(&lines, currency, |l| l.category.to_string())?,
        monthly: monthly(ledger, at, currency, rate, eligible)?,
        lines,
    })
}

fn group(
    lines: &[LineView],
    currency: Currency,
    key: impl Fn(&LineView) -> String,
) -> Result<Vec<GroupView>, MoneyError> {
    let zero = Money::zero(currency);
    let mut groups: BTreeMap<String, GroupView> = BTreeMap::new();
    for l in lines {
        let k = key(l);
        let g = groups.entry(k.clone()).or_insert_with(|| GroupView {
            key: k,
            original: zero,
            current: zero,
            committed: zero,
            spent: zero,
            available: zero,
        });
        g.original = g.original.checked_add(&l.original)?;
        g.current = g.current.checked_add(&l.current)?;
        g.committed = g.committed.checked_add(&l.committed)?;
        g.spent = g.spent.checked_add(&l.spent)?;
        g.available = g.available.checked_add(&l.available)?;
    }
    Ok(groups.into_values().collect())
}

/// The forecast at completion: what `spent` becomes by the effective end
/// at the pace so far, `spent x total_days / elapsed_days`, but never less
/// than `spent + committed` (open commitments will be spent). Rounded
/// half-even to the currency's minor unit; `spent + committed` while no day
/// of the period has elapsed.
pub fn forecast(
    spent: Money,
    committed: Money,
    total_days: Decimal,
    elapsed_days: Decimal,
) -> Result<Money, MoneyError> {
    let floor = spent.checked_add(&committed)?;
    if elapsed_days.is_zero() {
        return Ok(floor);
    }
    let raw =
        spent.amount().checked_mul(total_days).and_then(|x| x.checked_div(elapsed_days)).ok_or(MoneyError::Overflow)?;
    let minor = spent.currency().minor_digits();
    let paced = Money::new(raw.round_dp_with_strategy(minor, RoundingStrategy::MidpointNearestEven), spent.currency())?;
    Ok(if paced.checked_cmp(&floor)?.is_gt() { paced } else { floor })
}

/// Spending by calendar month: the counted, non-reversed expenditures on
/// lines open as of `at` (those the lines' totals count), by the month
/// they were incurred in. A month's indirect costs are the difference of
/// the rounded accruals on the cumulative eligible base, so the months sum
/// to the view's accrual exactly.
fn monthly(
    ledger: &GrantLedger,
    at: AsOf,
    currency: Currency,
    rate: Decimal,
    eligible: impl Fn(&LineId) -> bool,
) -> Result<Vec<MonthView>, MoneyError> {
    let zero = Money::zero(currency);
    let open = |line: &LineId| ledger.lines.get(line).is_some_and(|l| at.counts(l.opened_on));
    let mut months: BTreeMap<(i32, u32), (Money, Money)> = BTreeMap::new();
    let counted = ledger
        .expenditures
        .values()
        .filter(|x| at.counts(x.incurred_on) && !at.happened(x.reversed_on) && open(&x.line));
    for x in counted {
        let (direct, base) = months.entry((x.incurred_on.year(), x.incurred_on.month())).or_insert((zero, zero));
        *direct = direct.checked_add(&x.amount)?;
        if eligible(&x.line) {
            *base = base.checked_add(&x.amount)?;
        }
    }
    let (mut base, mut accrued, mut cumulative) = (zero, zero, zero);
    let mut out = Vec::with_capacity(months.len());
    for ((y, m), (spent, month_base)) in months {
        base = base.checked_add(&month_base)?;
        let accrued_now = base.times(rate)?;
        let indirect = accrued_now.checked_sub(&accrued)?;
        accrued = accrued_now;
        cumulative = cumulative.checked_add(&spent)?.checked_add(&indirect)?;
        out.push(MonthView { month: format!("{y:04}-{m:02}"), spent, indirect, cumulative });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ledger::{ExpenditureFacts, GrantInfo, LineFacts};
    use events::{ExpenditureId, ProgrammeId, RuleSetId};

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    /// A grant over 2022 at `rate` with a personnel and a subcontracting
    /// line, and the given expenditures `(line, amount, incurred_on)`.
    pub(crate) fn ledger(rate: &str, spending: &[(&str, &str, &str)]) -> GrantLedger {
        let mut l = GrantLedger {
            grant: Some(GrantInfo {
                id: GrantId::parse("g-1").unwrap(),
                programme: ProgrammeId::parse("p").unwrap(),
                title: "G".into(),
                acronym: "G".into(),
                funder: "F".into(),
                award: eur("10000.00"),
                start: date("2022-01-01"),
                end: date("2022-12-31"),
                rule_set: RuleSetId::parse("FNR-2022").unwrap(),
                indirect_rate: rate.parse().unwrap(),
            }),
            ..GrantLedger::default()
        };
        for (ws, cat) in [("W1", "PER"), ("W1", "SUB")] {
            let facts = LineFacts {
                workstream: WorkstreamCode::parse(ws).unwrap(),
                category: CategoryCode::parse(cat).unwrap(),
                opened_on: date("2022-01-01"),
                original: eur("5000.00"),
            };
            l.lines.insert(LineId::parse(format!("{ws}-{cat}")).unwrap(), facts);
        }
        for (n, (line, amount, on)) in spending.iter().enumerate() {
            let facts = ExpenditureFacts {
                line: LineId::parse(*line).unwrap(),
                amount: eur(amount),
                incurred_on: date(on),
                liquidates: None,
                reversed_on: None,
                correction_of: None,
            };
            l.expenditures.insert(ExpenditureId::parse(format!("X{n}")).unwrap(), facts);
        }
        l
    }

    #[test]
    fn monthly_indirect_costs_are_differences_of_the_rounded_accrual() {
        // 0.125 x 0.10 = 0.0125 rounds to 0.01 in each month alone (0.03 in
        // all), but the accrual on the three months' 0.30 is 0.0375 -> 0.04:
        // cumulative accruals 0.01, 0.02 (0.025), 0.04.
        let l = ledger(
            "0.125",
            &[("W1-PER", "0.10", "2022-01-10"), ("W1-PER", "0.10", "2022-02-10"), ("W1-PER", "0.10", "2022-03-10")],
        );
        let b = budget(&l, None, date("2022-12-31")).unwrap();
        assert_eq!(b.indirect.accrued, eur("0.04"));
        let indirect: Vec<Money> = b.monthly.iter().map(|m| m.indirect).collect();
        assert_eq!(indirect, [eur("0.01"), eur("0.01"), eur("0.02")]);
        assert_eq!(Money::sum(Currency::EUR, &indirect).unwrap(), b.indirect.accrued);
        assert_eq!(b.monthly.last().unwrap().cumulative, b.spent);
    }

    #[test]
    fn subcontracting_is_spent_but_earns_no_indirect_costs() {
        let l = ledger("0.25", &[("W1-SUB", "400.00", "2022-03-01"), ("W1-PER", "100.00", "2022-04-01")]);
        let b = budget(&l, None, date("2022-12-31")).unwrap();
        let months: Vec<(&str, Money, Money, Money)> =
            b.monthly.iter().map(|m| (m.month.as_str(), m.spent, m.indirect, m.cumulative)).collect();
        assert_eq!(
            months,
            [
                ("2022-03", eur("400.00"), eur("0.00"), eur("400.00")),
                ("2022-04", eur("100.00"), eur("25.00"), eur("525.00")),
            ]
        );
        assert_eq!(b.spent, eur("525.00"));
    }

    #[test]
    fn the_forecast_extrapolates_the_pace_and_never_falls_below_what_is_committed() {
        let days = |n: i64| Decimal::from(n);
        // 100 spent in 73 of 365 days: 500 at the end.
        assert_eq!(forecast(eur("100.00"), eur("0.00"), days(365), days(73)).unwrap(), eur("500.00"));
        // But 800 spent or committed already is more than the pace says.
        assert_eq!(forecast(eur("100.00"), eur("700.00"), days(365), days(73)).unwrap(), eur("800.00"));
        // 10 x 365 / 3 = 1216.666... rounds half-even to cents.
        assert_eq!(forecast(eur("10.00"), eur("0.00"), days(365), days(3)).unwrap(), eur("1216.67"));
        // No day elapsed: nothing to extrapolate.
        assert_eq!(forecast(eur("10.00"), eur("5.00"), days(365), days(0)).unwrap(), eur("15.00"));
    }

    #[test]
    fn the_view_carries_the_period_and_the_forecast_against_the_award() {
        let l = ledger("0.25", &[("W1-PER", "800.00", "2022-03-01")]);
        let b = budget(&l, Some(date("2022-07-01")), date("2030-01-01")).unwrap();
        assert_eq!((b.start, b.effective_end), (date("2022-01-01"), date("2022-12-31")));
        // 1000 spent (800 + 25 %) in 182 of 365 days.
        assert_eq!(b.forecast_at_completion, eur("2005.49"));
        assert_eq!(b.forecast_variance, eur("7994.51"));
    }
}
