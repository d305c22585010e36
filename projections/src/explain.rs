//! Why a budget line shows what it shows: for each line, the events that
//! make its current budget, its open commitments and its spending, each
//! with its signed contribution, so that the contributions sum to the
//! budget view's figures exactly.
//!
//! The events are folded with the one ledger fold ([`GrantLedger::apply`]),
//! remembering which event set each fact; the contributions are then chosen
//! with the conditions of the budget view's line totals, so the two cannot
//! disagree:
//!
//! - current: the line's opening (its original amount, if opened as of the
//!   date), and the approval of each reallocation approved as of the date
//!   (its deltas for the line, signed);
//! - spent: each expenditure counted as of the date (incurred by then), and
//!   its reversal when that happened by then (minus the amount);
//! - committed: each commitment raised as of the date (plus its amount),
//!   each counted, unreversed expenditure liquidating it (minus the amount
//!   liquidated), and its closing when that happened by then (minus what
//!   was still open).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use events::grant::GrantEvent;
use events::{ActorId, CommitmentId, ExpenditureId, LineId, Money, MoneyError, ReallocationId};
use schemars::JsonSchema;
use serde::Serialize;

use crate::budget::ViewError;
use crate::ledger::{AsOf, GrantLedger, Projected};

/// One event's signed contribution to a figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Contribution {
    /// The event's log position.
    pub position: u64,
    /// Its version in the grant's stream.
    pub version: u64,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// Its business date.
    pub effective_date: NaiveDate,
    /// When the log recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Who.
    pub actor: ActorId,
    /// Why.
    pub reason: Option<String>,
    /// What it adds to the figure (negative: what it takes away).
    pub amount: Money,
    /// The fact it is about: the line, reallocation, commitment or
    /// expenditure id.
    pub id: String,
}

/// A figure and the events it is the sum of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Figure {
    /// The sum of the contributions: the budget view's figure.
    pub total: Money,
    /// The contributions, in log order.
    pub events: Vec<Contribution>,
}

/// One line's figures explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LineExplanation {
    /// The line.
    pub line: LineId,
    /// Its current budget.
    pub current: Figure,
    /// Its open commitments.
    pub committed: Figure,
    /// Its direct costs.
    pub spent: Figure,
}

/// Which event set each fact of the ledger (the last one to set it, as the
/// fold keeps the last).
#[derive(Debug, Default)]
struct Sources {
    opened: BTreeMap<LineId, usize>,
    decided: BTreeMap<ReallocationId, usize>,
    raised: BTreeMap<CommitmentId, usize>,
    closed: BTreeMap<CommitmentId, usize>,
    recorded: BTreeMap<ExpenditureId, usize>,
    reversed: BTreeMap<ExpenditureId, usize>,
}

fn fold(events: &[Projected]) -> (GrantLedger, Sources) {
    let mut ledger = GrantLedger::default();
    let mut s = Sources::default();
    for (i, p) in events.iter().enumerate() {
        ledger.apply(p);
        match &p.envelope.event {
            GrantEvent::BudgetLineOpened(e) => {
                s.opened.insert(e.line_id.clone(), i);
            }
            GrantEvent::ReallocationApproved(e) if ledger.reallocations.contains_key(&e.reallocation_id) => {
                s.decided.insert(e.reallocation_id.clone(), i);
            }
            GrantEvent::ReallocationRejected(e) if ledger.reallocations.contains_key(&e.reallocation_id) => {
                s.decided.insert(e.reallocation_id.clone(), i);
            }
            GrantEvent::CommitmentRaised(e) => {
                s.raised.insert(e.commitment_id.clone(), i);
            }
            GrantEvent::CommitmentClosed(e) if ledger.commitments.contains_key(&e.commitment_id) => {
                s.closed.insert(e.commitment_id.clone(), i);
            }
            GrantEvent::ExpenditureRecorded(e) => {
                s.recorded.insert(e.expenditure_id.clone(), i);
            }
            GrantEvent::ExpenditureReversed(e) if ledger.expenditures.contains_key(&e.expenditure_id) => {
                s.reversed.insert(e.expenditure_id.clone(), i);
            }
            _ => {}
        }
    }
    (ledger, s)
}

/// The lines' contributions as they are gathered: per line, current,
/// committed and spent.
type Gathered = BTreeMap<LineId, [Vec<Contribution>; 3]>;
const CURRENT: usize = 0;
const COMMITTED: usize = 1;
const SPENT: usize = 2;

fn contribution(
    events: &[Projected],
    index: Option<&usize>,
    amount: Money,
    id: &impl ToString,
) -> Option<Contribution> {
    let p = events.get(*index?)?;
    Some(Contribution {
        position: p.position,
        version: p.version,
        event_type: p.envelope.event.event_type(),
        effective_date: p.envelope.context.effective_date,
        recorded_at: p.recorded_at,
        actor: p.envelope.context.actor.clone(),
        reason: p.envelope.context.reason.clone(),
        amount,
        id: id.to_string(),
    })
}

/// Every line's figures (or only `line`'s) as of `as_of` (every fact when
/// `None`), explained by the grant's `events` (its whole history, or the
/// part recorded by an instant: the caller cuts it). Lines not open as of
/// the date are left out, as the budget view leaves them out.
pub fn explain(
    events: &[Projected],
    line: Option<&LineId>,
    as_of: Option<NaiveDate>,
) -> Result<Vec<LineExplanation>, ViewError> {
    let (ledger, sources) = fold(events);
    let currency = ledger.currency().ok_or(ViewError::NotAwarded)?;
    let at = AsOf(as_of);
    let wanted = |id: &LineId| line.is_none_or(|l| l == id);
    let mut gathered: Gathered = BTreeMap::new();
    for (id, facts) in ledger.lines.iter().filter(|&(id, l)| wanted(id) && at.counts(l.opened_on)) {
        let lists = gathered.entry(id.clone()).or_default();
        lists[CURRENT].extend(contribution(events, sources.opened.get(id), facts.original, id));
    }
    let mut push = |line: &LineId, figure: usize, c: Option<Contribution>| {
        if let (Some(lists), Some(c)) = (gathered.get_mut(line), c) {
            lists[figure].push(c);
        }
    };
    for (rid, r) in &ledger.reallocations {
        if !r.decided.as_ref().is_some_and(|d| d.approved && at.counts(d.on)) {
            continue;
        }
        let mut by_line: BTreeMap<&LineId, Money> = BTreeMap::new();
        for d in &r.deltas {
            let sum = by_line.entry(&d.line).or_insert(Money::zero(currency));
            *sum = sum.checked_add(&d.amount)?;
        }
        for (l, amount) in by_line {
            push(l, CURRENT, contribution(events, sources.decided.get(rid), amount, rid));
        }
    }
    // Commitments raised as of the date, with what counted expenditures
    // liquidated of them.
    let mut liquidated: BTreeMap<&CommitmentId, Money> = BTreeMap::new();
    for (xid, x) in ledger.expenditures.iter().filter(|(_, x)| at.counts(x.incurred_on)) {
        let recorded = sources.recorded.get(xid);
        push(&x.line, SPENT, contribution(events, recorded, x.amount, xid));
        if at.happened(x.reversed_on) {
            push(&x.line, SPENT, contribution(events, sources.reversed.get(xid), x.amount.negated(), xid));
            continue;
        }
        let Some((cid, amount)) = &x.liquidates else { continue };
        let Some(c) = ledger.commitments.get(cid).filter(|c| at.counts(c.raised_on)) else { continue };
        let sum = liquidated.entry(cid).or_insert(Money::zero(currency));
        *sum = sum.checked_add(amount)?;
        push(&c.line, COMMITTED, contribution(events, recorded, amount.negated(), cid));
    }
    for (cid, c) in ledger.commitments.iter().filter(|(_, c)| at.counts(c.raised_on)) {
        push(&c.line, COMMITTED, contribution(events, sources.raised.get(cid), c.amount, cid));
        if at.happened(c.closed_on) {
            let used = liquidated.get(cid).copied().unwrap_or(Money::zero(currency));
            let still_open = c.amount.checked_sub(&used)?;
            push(&c.line, COMMITTED, contribution(events, sources.closed.get(cid), still_open.negated(), cid));
        }
    }
    let figure = |mut events: Vec<Contribution>| -> Result<Figure, MoneyError> {
        events.sort_by_key(|c| c.position);
        Ok(Figure { total: Money::sum(currency, events.iter().map(|c| &c.amount))?, events })
    };
    let mut lines = Vec::with_capacity(gathered.len());
    for (line, [current, committed, spent]) in gathered {
        lines.push(LineExplanation {
            line,
            current: figure(current)?,
            committed: figure(committed)?,
            spent: figure(spent)?,
        });
    }
    Ok(lines)
}
