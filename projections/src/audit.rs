//! The audit views (docs/audit.md): what was recorded, by whom, when
//! and why, computed from a grant's decoded history (its events in stream
//! order, e.g. [`HistoryCache::history`](crate::HistoryCache::history)).
//! Pure functions, no I/O.
//!
//! - [`line_history()`]: per budget line, every change in recording order,
//!   with the line's figures before and after, taken from the
//!   [`budget()`](crate::budget()) view of the same fold so that the two
//!   always agree.
//! - [`corrections()`]: the corrections register: each reversed expenditure
//!   with its reversal and its replacement.
//! - [`approvals()`]: reallocation and amendment requests with their
//!   decisions (requester and decider both named), and period closings and
//!   reopenings, in recording order.
//! - [`statement_csv()`]: the funder statement as RFC 4180 CSV.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use events::grant::{AmendmentKind, ExpenditureRecorded, GrantEvent, LineDelta};
use events::{ActorId, CategoryCode, ExpenditureId, LineId, Money, PeriodId, WorkstreamCode};
use schemars::JsonSchema;
use serde::Serialize;

use crate::budget::{BudgetView, ViewError, budget};
use crate::ledger::{GrantLedger, Projected};
use crate::statement::FunderStatement;

/// What an event did to a budget line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LineChangeKind {
    /// The line was opened with its original amount.
    Opened,
    /// An approved reallocation moved money into the line.
    ReallocatedIn,
    /// An approved reallocation moved money out of the line.
    ReallocatedOut,
    /// A commitment (purchase order) was raised on the line.
    Committed,
    /// A commitment was closed, releasing its open remainder.
    CommitmentReleased,
    /// A cost was charged to the line.
    Spent,
    /// A cost paid (part of) a commitment: committed moves to spent.
    Liquidated,
    /// A cost charged to the line was reversed.
    Reversed,
}

/// A line's figures at one point of the log, as the budget view gives them
/// (every fact recorded so far, whatever its effective date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LineFigures {
    /// original + reallocated in - reallocated out.
    pub current: Money,
    /// Open commitments.
    pub committed: Money,
    /// Direct costs, net of reversals.
    pub spent: Money,
    /// current - committed - spent.
    pub available: Money,
}

/// One event's change to one budget line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LineChange {
    /// Global log position of the event.
    pub position: u64,
    /// Its version in the grant's stream.
    pub version: u64,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Its business date.
    pub effective_date: NaiveDate,
    /// Who recorded it.
    pub actor: ActorId,
    /// Why, in their words.
    pub reason: Option<String>,
    /// The event's type (wire name), e.g. `ExpenditureRecorded`.
    pub event_type: String,
    /// What it did to the line.
    pub what: LineChangeKind,
    /// The expenditure, commitment or reallocation concerned (none for an opening).
    pub reference: Option<String>,
    /// The amount the event names for this line: the original amount, the
    /// signed reallocation delta, the commitment, the released remainder,
    /// the cost (or, on a commitment's line other than the cost's, the
    /// liquidated part), the reversed cost.
    pub amount: Money,
    /// The line's figures just before the event.
    pub before: LineFigures,
    /// The line's figures just after it.
    pub after: LineFigures,
}

/// Every change to one budget line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LineHistory {
    /// The line.
    pub line: LineId,
    /// Its workstream.
    pub workstream: WorkstreamCode,
    /// Its category.
    pub category: CategoryCode,
    /// Its changes, in recording order.
    pub changes: Vec<LineChange>,
}

/// One line an event touches, found before the event is applied.
struct Touch {
    line: LineId,
    what: LineChangeKind,
    reference: Option<String>,
    amount: Money,
}

/// The lines `event` changes, given the ledger as it stood before it.
fn touches(ledger: &GrantLedger, event: &GrantEvent) -> Vec<Touch> {
    let touch = |line: &LineId, what, reference: Option<String>, amount: Money| Touch {
        line: line.clone(),
        what,
        reference,
        amount,
    };
    match event {
        GrantEvent::BudgetLineOpened(e) => vec![touch(&e.line_id, LineChangeKind::Opened, None, e.amount)],
        GrantEvent::ReallocationApproved(e) => ledger
            .reallocations
            .get(&e.reallocation_id)
            .map(|r| {
                r.deltas
                    .iter()
                    .map(|d| {
                        let what = if d.amount.is_negative() {
                            LineChangeKind::ReallocatedOut
                        } else {
                            LineChangeKind::ReallocatedIn
                        };
                        touch(&d.line, what, Some(e.reallocation_id.to_string()), d.amount)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        GrantEvent::CommitmentRaised(e) => {
            vec![touch(&e.line, LineChangeKind::Committed, Some(e.commitment_id.to_string()), e.amount)]
        }
        GrantEvent::CommitmentClosed(e) => ledger
            .commitments
            .get(&e.commitment_id)
            .map(|c| {
                vec![touch(&c.line, LineChangeKind::CommitmentReleased, Some(e.commitment_id.to_string()), e.released)]
            })
            .unwrap_or_default(),
        GrantEvent::ExpenditureRecorded(e) => {
            let reference = Some(e.expenditure_id.to_string());
            let committed_on = e
                .liquidates
                .as_ref()
                .and_then(|l| ledger.commitments.get(&l.commitment_id).map(|c| (&c.line, l.amount)));
            match committed_on {
                Some((line, _)) if *line == e.line => {
                    vec![touch(&e.line, LineChangeKind::Liquidated, reference, e.amount)]
                }
                Some((line, liquidated)) => vec![
                    touch(&e.line, LineChangeKind::Spent, reference.clone(), e.amount),
                    touch(line, LineChangeKind::Liquidated, reference, liquidated),
                ],
                None => vec![touch(&e.line, LineChangeKind::Spent, reference, e.amount)],
            }
        }
        GrantEvent::ExpenditureReversed(e) => {
            let Some(x) = ledger.expenditures.get(&e.expenditure_id) else { return Vec::new() };
            let reference = Some(e.expenditure_id.to_string());
            let mut lines = vec![touch(&x.line, LineChangeKind::Reversed, reference.clone(), x.amount)];
            // A reversed liquidation gives its amount back to the commitment's line.
            if let Some((cid, liquidated)) = &x.liquidates
                && let Some(c) = ledger.commitments.get(cid)
                && c.line != x.line
            {
                lines.push(touch(&c.line, LineChangeKind::Reversed, reference, *liquidated));
            }
            lines
        }
        // Every other event leaves each line's amounts as they were. A new
        // event type must be placed here or above: no `_` arm.
        GrantEvent::GrantAwarded(_)
        | GrantEvent::WorkstreamDefined(_)
        | GrantEvent::ReportingPeriodDefined(_)
        | GrantEvent::ReallocationRequested(_)
        | GrantEvent::ReallocationRejected(_)
        | GrantEvent::AmendmentRequested(_)
        | GrantEvent::AmendmentApproved(_)
        | GrantEvent::AmendmentRejected(_)
        | GrantEvent::MilestonePlanned(_)
        | GrantEvent::MilestoneRescheduled(_)
        | GrantEvent::MilestoneAchieved(_)
        | GrantEvent::MilestoneCancelled(_)
        | GrantEvent::ReportingPeriodClosed(_)
        | GrantEvent::ReportingPeriodReopened(_)
        | GrantEvent::GrantClosed(_) => Vec::new(),
    }
}

/// A line's figures in a budget view (zero if the line is not open).
fn figures(view: &BudgetView, line: &LineId) -> LineFigures {
    match view.lines.binary_search_by(|l| l.line.cmp(line)) {
        Ok(i) => {
            let l = &view.lines[i];
            LineFigures { current: l.current, committed: l.committed, spent: l.spent, available: l.available }
        }
        Err(_) => {
            let zero = Money::zero(view.currency);
            LineFigures { current: zero, committed: zero, spent: zero, available: zero }
        }
    }
}

/// Per budget line, every change in recording order with the line's figures
/// before and after it; lines in id order.
///
/// The figures come from [`budget()`](crate::budget()) with `as_of = None`
/// over the ledger folded event by event, so the last `after` of each line
/// is the budget view's line at the end of `events`. Changes to lines never
/// opened (which the domain refuses) are left out, as the budget view
/// leaves them out.
pub fn line_history(events: &[Projected]) -> Result<Vec<LineHistory>, ViewError> {
    let mut ledger = GrantLedger::default();
    let mut changes: BTreeMap<LineId, Vec<LineChange>> = BTreeMap::new();
    // The budget of the ledger as it stands, when computed since the last
    // event applied (so consecutive line events compute it once).
    let mut current: Option<BudgetView> = None;
    for p in events {
        let touched = touches(&ledger, &p.envelope.event);
        if touched.is_empty() {
            ledger.apply(p);
            current = None;
            continue;
        }
        // Line figures do not depend on `today` (only the time ratios do).
        let today = p.envelope.context.effective_date;
        let before = match current.take() {
            Some(view) => view,
            None => budget(&ledger, None, today)?,
        };
        ledger.apply(p);
        let after = budget(&ledger, None, today)?;
        let ctx = &p.envelope.context;
        for t in touched {
            let change = LineChange {
                position: p.position,
                version: p.version,
                recorded_at: p.recorded_at,
                effective_date: ctx.effective_date,
                actor: ctx.actor.clone(),
                reason: ctx.reason.clone(),
                event_type: p.envelope.event.event_type().to_owned(),
                what: t.what,
                reference: t.reference,
                amount: t.amount,
                before: figures(&before, &t.line),
                after: figures(&after, &t.line),
            };
            changes.entry(t.line).or_default().push(change);
        }
        current = Some(after);
    }
    Ok(ledger
        .lines
        .iter()
        .map(|(id, facts)| LineHistory {
            line: id.clone(),
            workstream: facts.workstream.clone(),
            category: facts.category.clone(),
            changes: changes.remove(id).unwrap_or_default(),
        })
        .collect())
}

/// An expenditure as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RecordedExpenditure {
    /// The expenditure.
    pub expenditure: ExpenditureId,
    /// The line it was charged to.
    pub line: LineId,
    /// Its amount in the grant's currency.
    pub amount: Money,
    /// When the cost was incurred.
    pub incurred_on: NaiveDate,
    /// The supplier.
    pub supplier: String,
    /// The supplier's invoice number.
    pub invoice: String,
    /// Global log position of the recording.
    pub position: u64,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Who recorded it.
    pub actor: ActorId,
    /// Why, in their words.
    pub reason: Option<String>,
}

impl RecordedExpenditure {
    fn of(p: &Projected, e: &ExpenditureRecorded) -> Self {
        RecordedExpenditure {
            expenditure: e.expenditure_id.clone(),
            line: e.line.clone(),
            amount: e.amount,
            incurred_on: e.incurred_on,
            supplier: e.supplier.clone(),
            invoice: e.invoice.clone(),
            position: p.position,
            recorded_at: p.recorded_at,
            actor: p.envelope.context.actor.clone(),
            reason: p.envelope.context.reason.clone(),
        }
    }
}

/// A reversal as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Reversal {
    /// Global log position of the reversal.
    pub position: u64,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Its business date.
    pub effective_date: NaiveDate,
    /// Who reversed.
    pub actor: ActorId,
    /// Why.
    pub reason: Option<String>,
}

/// One entry of the corrections register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Correction {
    /// The expenditure reversed.
    pub original: RecordedExpenditure,
    /// Its reversal.
    pub reversal: Reversal,
    /// The expenditure recorded as its correction (`correction_of` names
    /// the original), if any: the first one recorded.
    pub replacement: Option<RecordedExpenditure>,
}

/// The corrections register: every reversed expenditure, in the order of the
/// reversals, with the original and its replacement. A reversal of an
/// expenditure not in `events` (a partial history) is left out.
pub fn corrections(events: &[Projected]) -> Vec<Correction> {
    let mut recorded: BTreeMap<&ExpenditureId, RecordedExpenditure> = BTreeMap::new();
    let mut replacements: BTreeMap<&ExpenditureId, RecordedExpenditure> = BTreeMap::new();
    let mut reversals: Vec<(&ExpenditureId, Reversal)> = Vec::new();
    for p in events {
        match &p.envelope.event {
            GrantEvent::ExpenditureRecorded(e) => {
                let x = RecordedExpenditure::of(p, e);
                if let Some(original) = &e.correction_of {
                    replacements.entry(original).or_insert_with(|| x.clone());
                }
                recorded.entry(&e.expenditure_id).or_insert(x);
            }
            GrantEvent::ExpenditureReversed(e) => {
                let ctx = &p.envelope.context;
                let reversal = Reversal {
                    position: p.position,
                    recorded_at: p.recorded_at,
                    effective_date: ctx.effective_date,
                    actor: ctx.actor.clone(),
                    reason: ctx.reason.clone(),
                };
                reversals.push((&e.expenditure_id, reversal));
            }
            // Only expenditures are corrected. A new event type must be
            // placed here or above: no `_` arm.
            GrantEvent::GrantAwarded(_)
            | GrantEvent::WorkstreamDefined(_)
            | GrantEvent::ReportingPeriodDefined(_)
            | GrantEvent::BudgetLineOpened(_)
            | GrantEvent::ReallocationRequested(_)
            | GrantEvent::ReallocationApproved(_)
            | GrantEvent::ReallocationRejected(_)
            | GrantEvent::AmendmentRequested(_)
            | GrantEvent::AmendmentApproved(_)
            | GrantEvent::AmendmentRejected(_)
            | GrantEvent::CommitmentRaised(_)
            | GrantEvent::CommitmentClosed(_)
            | GrantEvent::MilestonePlanned(_)
            | GrantEvent::MilestoneRescheduled(_)
            | GrantEvent::MilestoneAchieved(_)
            | GrantEvent::MilestoneCancelled(_)
            | GrantEvent::ReportingPeriodClosed(_)
            | GrantEvent::ReportingPeriodReopened(_)
            | GrantEvent::GrantClosed(_) => {}
        }
    }
    reversals
        .into_iter()
        .filter_map(|(id, reversal)| {
            let original = recorded.get(id)?.clone();
            Some(Correction { original, reversal, replacement: replacements.get(id).cloned() })
        })
        .collect()
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RequestDetails {
    /// A reallocation's changes per line (negative moves money out).
    Reallocation {
        /// The deltas, summing to zero.
        deltas: Vec<LineDelta>,
    },
    /// An amendment.
    Amendment {
        /// What it changes.
        amendment: AmendmentKind,
        /// The end it asks for.
        proposed_end: NaiveDate,
    },
}

/// The decision on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Decision {
    /// Approved (true) or rejected.
    pub approved: bool,
    /// Who decided.
    pub by: ActorId,
    /// When the store recorded the decision.
    pub at: DateTime<Utc>,
    /// Its business date.
    pub effective_date: NaiveDate,
    /// Why.
    pub reason: Option<String>,
    /// Global log position of the decision.
    pub position: u64,
    /// The grant's new end, for an approved amendment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_end: Option<NaiveDate>,
}

/// A request needing another person's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Request {
    /// The reallocation or amendment id.
    pub id: String,
    /// Global log position of the request.
    pub position: u64,
    /// Who asked.
    pub requested_by: ActorId,
    /// When the store recorded the request.
    pub requested_at: DateTime<Utc>,
    /// Its business date.
    pub requested_effective: NaiveDate,
    /// Why, in the requester's words.
    pub reason: Option<String>,
    /// What it asks for.
    pub details: RequestDetails,
    /// The decision, once made.
    pub decision: Option<Decision>,
}

/// A reporting period closed or reopened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PeriodChange {
    /// The period.
    pub period: PeriodId,
    /// Global log position.
    pub position: u64,
    /// Who closed or reopened it.
    pub by: ActorId,
    /// When the store recorded it.
    pub at: DateTime<Utc>,
    /// Its business date.
    pub effective_date: NaiveDate,
    /// Why.
    pub reason: Option<String>,
    /// Direct costs incurred in the period at closing (closings only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spent: Option<Money>,
}

/// One entry of the approvals log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Approval {
    /// A reallocation request and its decision.
    Reallocation(Request),
    /// An amendment request and its decision.
    Amendment(Request),
    /// A reporting period closed.
    PeriodClose(PeriodChange),
    /// A reporting period reopened.
    PeriodReopen(PeriodChange),
}

impl Approval {
    /// Global log position of the request, closing or reopening.
    pub fn position(&self) -> u64 {
        match self {
            Approval::Reallocation(r) | Approval::Amendment(r) => r.position,
            Approval::PeriodClose(c) | Approval::PeriodReopen(c) => c.position,
        }
    }
}

/// The approvals log: every reallocation and amendment request (with its
/// decision, once made) and every period closing and reopening, in the
/// order they were recorded. A decision on a request not in `events` (a
/// partial history) is left out.
pub fn approvals(events: &[Projected]) -> Vec<Approval> {
    let mut log: Vec<Approval> = Vec::new();
    // Pending requests: (is an amendment, id) -> index in `log`.
    let mut requests: BTreeMap<(bool, String), usize> = BTreeMap::new();
    for p in events {
        let ctx = &p.envelope.context;
        let request = |id: String, details| Request {
            id,
            position: p.position,
            requested_by: ctx.actor.clone(),
            requested_at: p.recorded_at,
            requested_effective: ctx.effective_date,
            reason: ctx.reason.clone(),
            details,
            decision: None,
        };
        let decision = |approved, new_end| Decision {
            approved,
            by: ctx.actor.clone(),
            at: p.recorded_at,
            effective_date: ctx.effective_date,
            reason: ctx.reason.clone(),
            position: p.position,
            new_end,
        };
        let period = |period: &PeriodId, spent| PeriodChange {
            period: period.clone(),
            position: p.position,
            by: ctx.actor.clone(),
            at: p.recorded_at,
            effective_date: ctx.effective_date,
            reason: ctx.reason.clone(),
            spent,
        };
        let (key, decided) = match &p.envelope.event {
            GrantEvent::ReallocationRequested(e) => {
                let id = e.reallocation_id.to_string();
                requests.insert((false, id.clone()), log.len());
                log.push(Approval::Reallocation(request(
                    id,
                    RequestDetails::Reallocation { deltas: e.deltas.clone() },
                )));
                continue;
            }
            GrantEvent::AmendmentRequested(e) => {
                let id = e.amendment_id.to_string();
                requests.insert((true, id.clone()), log.len());
                let details = RequestDetails::Amendment { amendment: e.kind, proposed_end: e.proposed_end };
                log.push(Approval::Amendment(request(id, details)));
                continue;
            }
            GrantEvent::ReportingPeriodClosed(e) => {
                log.push(Approval::PeriodClose(period(&e.period_id, Some(e.spent))));
                continue;
            }
            GrantEvent::ReportingPeriodReopened(e) => {
                log.push(Approval::PeriodReopen(period(&e.period_id, None)));
                continue;
            }
            GrantEvent::ReallocationApproved(e) => ((false, e.reallocation_id.to_string()), decision(true, None)),
            GrantEvent::ReallocationRejected(e) => ((false, e.reallocation_id.to_string()), decision(false, None)),
            GrantEvent::AmendmentApproved(e) => ((true, e.amendment_id.to_string()), decision(true, Some(e.new_end))),
            GrantEvent::AmendmentRejected(e) => ((true, e.amendment_id.to_string()), decision(false, None)),
            // Nothing here is asked for or decided. A new event type must be
            // placed here or above: no `_` arm.
            GrantEvent::GrantAwarded(_)
            | GrantEvent::WorkstreamDefined(_)
            | GrantEvent::ReportingPeriodDefined(_)
            | GrantEvent::BudgetLineOpened(_)
            | GrantEvent::CommitmentRaised(_)
            | GrantEvent::CommitmentClosed(_)
            | GrantEvent::ExpenditureRecorded(_)
            | GrantEvent::ExpenditureReversed(_)
            | GrantEvent::MilestonePlanned(_)
            | GrantEvent::MilestoneRescheduled(_)
            | GrantEvent::MilestoneAchieved(_)
            | GrantEvent::MilestoneCancelled(_)
            | GrantEvent::GrantClosed(_) => continue,
        };
        if let Some(&i) = requests.get(&key)
            && let Some(Approval::Reallocation(r) | Approval::Amendment(r)) = log.get_mut(i)
            && r.decision.is_none()
        {
            r.decision = Some(decided);
        }
    }
    log
}

/// The columns of [`statement_csv()`].
pub const STATEMENT_CSV_HEADER: [&str; 12] = [
    "grant",
    "period",
    "start",
    "end",
    "category",
    "name",
    "budget",
    "spent",
    "currency",
    "period_direct",
    "period_indirect",
    "period_total",
];

/// Appends one CSV field, quoted when RFC 4180 requires it (a comma, a
/// double quote, CR or LF), double quotes doubled.
fn field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

fn row(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, f);
    }
    out.push_str("\r\n");
}

/// The funder statement as CSV (RFC 4180, `\r\n` line ends): a header row
/// ([`STATEMENT_CSV_HEADER`]), then one row per period and category in the
/// statement's order, with the category's budget and spent, the currency in
/// its own column, and the period's direct, indirect and total costs
/// repeated on each of its rows. Amounts are plain decimal strings
/// (`4180.50`, `-3000.00`).
pub fn statement_csv(statement: &FunderStatement) -> String {
    let mut out = String::new();
    row(&mut out, &STATEMENT_CSV_HEADER);
    let grant = statement.grant.to_string();
    let currency = statement.currency.code();
    let amount = |m: &Money| m.amount().to_string();
    for p in &statement.periods {
        let (period, start, end) = (p.period.to_string(), p.start.to_string(), p.end.to_string());
        let (direct, indirect, total) = (amount(&p.direct), amount(&p.indirect), amount(&p.total));
        for c in &p.categories {
            let (budget, spent) = (amount(&c.budget), amount(&c.spent));
            row(
                &mut out,
                &[
                    &grant,
                    &period,
                    &start,
                    &end,
                    c.category.as_str(),
                    &c.name,
                    &budget,
                    &spent,
                    currency,
                    &direct,
                    &indirect,
                    &total,
                ],
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

    use events::grant::{
        BudgetLineOpened, CommitmentClosed, CommitmentRaised, ExpenditureReversed, GrantAwarded, Liquidation,
        ReallocationApproved, ReallocationRequested, ReportingPeriodClosed, ReportingPeriodDefined,
    };
    use events::{Currency, Envelope, EventContext, GrantId, ProgrammeId, RuleSetId};
    use rust_decimal::Decimal;
    use uuid::Uuid;

    use super::*;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A tiny history, one event a day from 2022-01-01.
    fn history(steps: Vec<(&str, Option<&str>, GrantEvent)>) -> Vec<Projected> {
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (actor, reason, event))| {
                let n = i as u64;
                let day = d("2022-01-01") + chrono::Days::new(n);
                Projected {
                    position: 100 + n,
                    version: n,
                    recorded_at: day.and_hms_opt(12, 0, 0).unwrap().and_utc(),
                    envelope: Envelope {
                        event,
                        context: EventContext {
                            effective_date: day,
                            actor: ActorId::parse(actor).unwrap(),
                            reason: reason.map(str::to_owned),
                            command_id: Uuid::nil(),
                            correlation_id: None,
                            causation_id: None,
                        },
                    },
                }
            })
            .collect()
    }

    fn awarded() -> GrantEvent {
        GrantEvent::GrantAwarded(GrantAwarded {
            grant_id: GrantId::parse("g").unwrap(),
            programme_id: ProgrammeId::parse("p").unwrap(),
            funder: "FNR".into(),
            title: "T".into(),
            acronym: "T".into(),
            beneficiary: "b".into(),
            award: eur("1000.00"),
            start: d("2022-01-01"),
            end: d("2022-12-31"),
            rule_set: RuleSetId::parse("FNR-2022").unwrap(),
            indirect_rate: Decimal::ZERO,
        })
    }

    fn opened(line: &str, amount: &str) -> GrantEvent {
        let (ws, cat) = line.split_once('-').unwrap();
        GrantEvent::BudgetLineOpened(BudgetLineOpened {
            line_id: LineId::parse(line).unwrap(),
            workstream: WorkstreamCode::parse(ws).unwrap(),
            category: CategoryCode::parse(cat).unwrap(),
            amount: eur(amount),
        })
    }

    fn spent(id: &str, line: &str, amount: &str, commitment: Option<&str>, correction_of: Option<&str>) -> GrantEvent {
        GrantEvent::ExpenditureRecorded(ExpenditureRecorded {
            expenditure_id: ExpenditureId::parse(id).unwrap(),
            line: LineId::parse(line).unwrap(),
            amount: eur(amount),
            original: None,
            incurred_on: d("2022-02-01"),
            supplier: "s".into(),
            invoice: format!("INV-{id}"),
            liquidates: commitment.map(|c| Liquidation { commitment_id: po(c), amount: eur(amount) }),
            correction_of: correction_of.map(|x| ExpenditureId::parse(x).unwrap()),
        })
    }

    fn po(id: &str) -> events::CommitmentId {
        events::CommitmentId::parse(id).unwrap()
    }

    fn tiny() -> Vec<Projected> {
        history(vec![
            ("fo", Some("award letter"), awarded()),
            ("pm", None, opened("A-CON", "600.00")),
            ("pm", None, opened("B-TRV", "400.00")),
            (
                "pm",
                None,
                GrantEvent::CommitmentRaised(CommitmentRaised {
                    commitment_id: po("PO"),
                    line: LineId::parse("A-CON").unwrap(),
                    amount: eur("300.00"),
                    original: None,
                    supplier: "s".into(),
                    reference: "r".into(),
                }),
            ),
            ("pm", None, spent("X1", "A-CON", "250.00", Some("PO"), None)),
            (
                "pm",
                Some("done"),
                GrantEvent::CommitmentClosed(CommitmentClosed { commitment_id: po("PO"), released: eur("50.00") }),
            ),
            (
                "pm",
                Some("more travel"),
                GrantEvent::ReallocationRequested(ReallocationRequested {
                    reallocation_id: events::ReallocationId::parse("R").unwrap(),
                    deltas: vec![
                        LineDelta { line: LineId::parse("A-CON").unwrap(), amount: eur("-100.00") },
                        LineDelta { line: LineId::parse("B-TRV").unwrap(), amount: eur("100.00") },
                    ],
                }),
            ),
            (
                "fo",
                Some("ok"),
                GrantEvent::ReallocationApproved(ReallocationApproved {
                    reallocation_id: events::ReallocationId::parse("R").unwrap(),
                }),
            ),
            ("pm", None, spent("X2", "A-CON", "20.00", None, None)),
            (
                "pm",
                Some("wrong line"),
                GrantEvent::ExpenditureReversed(ExpenditureReversed {
                    expenditure_id: ExpenditureId::parse("X2").unwrap(),
                }),
            ),
            ("pm", Some("right line"), spent("X3", "B-TRV", "20.00", None, Some("X2"))),
            (
                "fo",
                None,
                GrantEvent::ReportingPeriodDefined(ReportingPeriodDefined {
                    period_id: PeriodId::parse("P1").unwrap(),
                    start: d("2022-01-01"),
                    end: d("2022-06-30"),
                    report_due: d("2022-08-31"),
                }),
            ),
            (
                "fo",
                None,
                GrantEvent::ReportingPeriodClosed(ReportingPeriodClosed {
                    period_id: PeriodId::parse("P1").unwrap(),
                    spent: eur("270.00"),
                }),
            ),
        ])
    }

    #[test]
    fn line_history_walks_each_line_with_before_and_after() {
        let h = line_history(&tiny()).unwrap();
        assert_eq!(h.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(), ["A-CON", "B-TRV"]);
        let a = &h[0];
        let whats: Vec<_> = a.changes.iter().map(|c| c.what).collect();
        use LineChangeKind as K;
        assert_eq!(
            whats,
            [K::Opened, K::Committed, K::Liquidated, K::CommitmentReleased, K::ReallocatedOut, K::Spent, K::Reversed]
        );
        let f = |c: &LineFigures| [c.current, c.committed, c.spent, c.available].map(|m| m.amount().to_string());
        assert_eq!(f(&a.changes[0].before), ["0.00", "0.00", "0.00", "0.00"]);
        assert_eq!(f(&a.changes[0].after), ["600.00", "0.00", "0.00", "600.00"]);
        assert_eq!(f(&a.changes[2].after), ["600.00", "50.00", "250.00", "300.00"]);
        assert_eq!(f(&a.changes[3].after), ["600.00", "0.00", "250.00", "350.00"]);
        assert_eq!(f(&a.changes[6].after), ["500.00", "0.00", "250.00", "250.00"]);
        for w in a.changes.windows(2) {
            assert_eq!(w[0].after, w[1].before);
        }
        assert_eq!(a.changes[4].reference.as_deref(), Some("R"));
        assert_eq!(a.changes[4].amount, eur("-100.00"));
        assert_eq!(a.changes[6].reason.as_deref(), Some("wrong line"));
        let b = &h[1];
        assert_eq!(b.changes.iter().map(|c| c.what).collect::<Vec<_>>(), [K::Opened, K::ReallocatedIn, K::Spent]);
        assert_eq!(f(&b.changes[2].after), ["500.00", "0.00", "20.00", "480.00"]);
        let json = serde_json::to_value(&a.changes[2]).unwrap();
        assert_eq!(json["what"], "liquidated");
        assert_eq!(json["before"]["committed"], serde_json::json!({ "amount": "300.00", "currency": "EUR" }));
    }

    #[test]
    fn corrections_pair_reversal_and_replacement() {
        let c = corrections(&tiny());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].original.expenditure.as_str(), "X2");
        assert_eq!(c[0].reversal.reason.as_deref(), Some("wrong line"));
        let r = c[0].replacement.as_ref().unwrap();
        assert_eq!((r.expenditure.as_str(), r.line.as_str()), ("X3", "B-TRV"));
    }

    #[test]
    fn approvals_name_requester_and_decider() {
        let a = approvals(&tiny());
        assert_eq!(a.len(), 2);
        let Approval::Reallocation(r) = &a[0] else { panic!("{a:?}") };
        let decision = r.decision.as_ref().unwrap();
        assert_eq!((r.requested_by.as_str(), decision.by.as_str(), decision.approved), ("pm", "fo", true));
        assert!(matches!(&a[1], Approval::PeriodClose(c) if c.period.as_str() == "P1"));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json[0]["kind"], "reallocation");
        assert_eq!(json[0]["details"]["deltas"][0]["amount"]["amount"], "-100.00");
        assert_eq!(json[1]["kind"], "period-close");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut out = String::new();
        row(&mut out, &["plain", "a,b", "say \"hi\"", "two\nlines", ""]);
        assert_eq!(out, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n");
        let mut ledger = GrantLedger::default();
        for p in &tiny() {
            ledger.apply(p);
        }
        let s = crate::statement(&ledger, None).unwrap();
        let csv = statement_csv(&s);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], STATEMENT_CSV_HEADER.join(","));
        assert_eq!(lines.len(), 1 + s.periods[0].categories.len() + 1, "a final empty string after the last CRLF");
        assert!(lines[1].starts_with("g,P1,2022-01-01,2022-06-30,PER,"), "{}", lines[1]);
    }
}
