//! The budget view (API.md): per line and rolled up by workstream and by
//! category, as of a business date. Money stays exact and in the grant's
//! one currency; percentages are rounded to 4 decimals at the end.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use events::rules::{self, CategoryKind};
use events::{CategoryCode, Currency, GrantId, LineId, Money, MoneyError, WorkstreamCode};
use rust_decimal::{Decimal, RoundingStrategy};
use schemars::JsonSchema;
use serde::Serialize;

use crate::ledger::{AsOf, GrantLedger};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
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

/// Direct spending in one calendar month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MonthView {
    /// `YYYY-MM`.
    pub month: String,
    /// Direct costs incurred in it.
    pub spent: Money,
}

/// The budget view of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct BudgetView {
    /// The grant.
    pub grant: GrantId,
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
    /// Monthly direct spending.
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

/// The budget view of `ledger` as of `as_of` (every fact when `None`); time
/// elapsed is measured to `as_of`, or to `today` when `as_of` is `None`.
pub fn budget(ledger: &GrantLedger, as_of: Option<NaiveDate>, today: NaiveDate) -> Result<BudgetView, ViewError> {
    let grant = ledger.grant.as_ref().ok_or(ViewError::NotAwarded)?;
    let at = AsOf(as_of);
    let currency = grant.award.currency();
    let zero = Money::zero(currency);
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

    let start = grant.start;
    let end = ledger.effective_end(at).unwrap_or(grant.end);
    let reference = as_of.unwrap_or(today);
    let total_days = Decimal::from((end - start).num_days() + 1);
    let elapsed_days = if reference < start { 0 } else { (reference.min(end) - start).num_days() + 1 };
    let elapsed = Decimal::from(elapsed_days);
    let overflow = || ViewError::Money(MoneyError::Overflow);
    let spent_share = spent.amount().checked_div(grant.award.amount()).ok_or_else(overflow)?;
    let burn_index = if elapsed.is_zero() {
        Decimal::ZERO
    } else {
        round4(spent_share.checked_mul(total_days).and_then(|x| x.checked_div(elapsed)).ok_or_else(overflow)?)
    };

    Ok(BudgetView {
        grant: grant.id.clone(),
        currency,
        award: grant.award,
        allocated,
        unallocated: grant.award.checked_sub(&allocated)?,
        spent,
        committed,
        available: grant.award.checked_sub(&spent)?.checked_sub(&committed)?,
        indirect: IndirectView { rate: grant.indirect_rate, base, accrued },
        time_elapsed_pct: percent(elapsed, total_days)?,
        spent_pct: percent(spent.amount(), grant.award.amount())?,
        burn_index,
        position: ledger.position,
        as_of,
        by_workstream: group(&lines, currency, |l| l.workstream.to_string())?,
        by_category: group(&lines, currency, |l| l.category.to_string())?,
        monthly: monthly(ledger, at, currency)?,
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

fn monthly(ledger: &GrantLedger, at: AsOf, currency: Currency) -> Result<Vec<MonthView>, MoneyError> {
    let mut months: BTreeMap<(i32, u32), Money> = BTreeMap::new();
    for x in ledger.expenditures.values().filter(|x| at.counts(x.incurred_on) && !at.happened(x.reversed_on)) {
        let m = months.entry((x.incurred_on.year(), x.incurred_on.month())).or_insert(Money::zero(currency));
        *m = m.checked_add(&x.amount)?;
    }
    Ok(months.into_iter().map(|((y, m), spent)| MonthView { month: format!("{y:04}-{m:02}"), spent }).collect())
}
