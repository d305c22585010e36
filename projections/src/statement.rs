//! The funder statement: per reporting period, costs by the funder's
//! categories beside the budget, so a funder can compare line by line.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use events::rules::{self, CategoryKind};
use events::{CategoryCode, Currency, GrantId, Money, PeriodId, RuleSetId};
use schemars::JsonSchema;
use serde::Serialize;

use crate::budget::ViewError;
use crate::ledger::{AsOf, GrantLedger};

/// One category in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CategoryLine {
    /// The funder's category code.
    pub category: CategoryCode,
    /// Its name in the rule set.
    pub name: String,
    /// Current budget of the category (all workstreams) at the period's end.
    pub budget: Money,
    /// Costs incurred in the period (indirect: accrued on the period's base).
    pub spent: Money,
}

/// One reporting period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PeriodStatement {
    /// The period.
    pub period: PeriodId,
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// Every category of the rule set, in its order.
    pub categories: Vec<CategoryLine>,
    /// Direct costs incurred in the period.
    pub direct: Money,
    /// Indirect costs accrued on the period's base.
    pub indirect: Money,
    /// direct + indirect.
    pub total: Money,
}

/// The funder statement of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FunderStatement {
    /// The grant.
    pub grant: GrantId,
    /// Its rule set.
    pub rule_set: RuleSetId,
    /// Its currency.
    pub currency: Currency,
    /// As of.
    pub as_of: Option<NaiveDate>,
    /// The log position it reflects.
    pub position: u64,
    /// Periods, by id.
    pub periods: Vec<PeriodStatement>,
}

/// The funder statement of `ledger` as of `as_of`.
pub fn statement(ledger: &GrantLedger, as_of: Option<NaiveDate>) -> Result<FunderStatement, ViewError> {
    let grant = ledger.grant.as_ref().ok_or(ViewError::NotAwarded)?;
    let rule_set = rules::find(&grant.rule_set);
    let currency = grant.award.currency();
    let zero = Money::zero(currency);
    let at = AsOf(as_of);
    let mut periods = Vec::new();
    for (id, p) in &ledger.periods {
        // The budget as it stood at the period's end (or the as-of date, if earlier).
        let budget_at = AsOf(Some(as_of.map_or(p.end, |d| d.min(p.end))));
        let mut budget: BTreeMap<&CategoryCode, Money> = BTreeMap::new();
        let mut spent: BTreeMap<&CategoryCode, Money> = BTreeMap::new();
        for (line_id, t) in ledger.line_totals(budget_at)? {
            if let Some(line) = ledger.lines.get(&line_id) {
                let b = budget.entry(&line.category).or_insert(zero);
                *b = b.checked_add(&t.current)?;
            }
        }
        for x in ledger.expenditures.values() {
            let in_period = p.start <= x.incurred_on && x.incurred_on <= p.end;
            if in_period
                && at.counts(x.incurred_on)
                && !at.happened(x.reversed_on)
                && let Some(line) = ledger.lines.get(&x.line)
            {
                let s = spent.entry(&line.category).or_insert(zero);
                *s = s.checked_add(&x.amount)?;
            }
        }
        let kind = |c: &CategoryCode| rule_set.and_then(|r| r.category(c)).map(|c| c.kind);
        let direct = Money::sum(currency, spent.values())?;
        let base =
            Money::sum(currency, spent.iter().filter(|(c, _)| kind(c) == Some(CategoryKind::Direct)).map(|(_, m)| m))?;
        let indirect = base.times(grant.indirect_rate)?;
        let categories = rule_set
            .map(|r| r.categories.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| CategoryLine {
                category: c.code.clone(),
                name: c.name.clone(),
                budget: budget.get(&c.code).copied().unwrap_or(zero),
                spent: if c.kind == CategoryKind::Indirect {
                    indirect
                } else {
                    spent.get(&c.code).copied().unwrap_or(zero)
                },
            })
            .collect();
        periods.push(PeriodStatement {
            period: id.clone(),
            start: p.start,
            end: p.end,
            categories,
            direct,
            indirect,
            total: direct.checked_add(&indirect)?,
        });
    }
    Ok(FunderStatement {
        grant: grant.id.clone(),
        rule_set: grant.rule_set.clone(),
        currency,
        as_of,
        position: ledger.position,
        periods,
    })
}
