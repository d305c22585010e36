//! A grant's state as its events leave it, and `evolve`, the fold that
//! builds it. Only what `decide` needs to check the rules is kept.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use events::grant::{AmendmentKind, GrantEvent, LineDelta, MilestoneKind};
use events::{
    ActorId, AmendmentId, CategoryCode, CommitmentId, Currency, Envelope, ExpenditureId, GrantId, LineId, MilestoneId,
    Money, PeriodId, ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;

/// What the award fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant.
    pub id: GrantId,
    /// Its programme.
    pub programme: ProgrammeId,
    /// Its currency (the award's).
    pub currency: Currency,
    /// The award.
    pub award: Money,
    /// First day.
    pub start: NaiveDate,
    /// Last day as awarded.
    pub end: NaiveDate,
    /// Last day after approved extensions.
    pub effective_end: NaiveDate,
    /// The funder's rule set.
    pub rule_set: RuleSetId,
    /// Indirect rate.
    pub indirect_rate: Decimal,
}

/// A change to a line's availability, dated by the fact's business date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// From when it counts.
    pub on: NaiveDate,
    /// Its effect on `available`.
    pub delta: Money,
}

/// A budget line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its workstream.
    pub workstream: WorkstreamCode,
    /// Its category.
    pub category: CategoryCode,
    /// As opened.
    pub original: Money,
    /// After approved reallocations.
    pub current: Money,
    /// Open commitments.
    pub committed: Money,
    /// Direct costs recorded (net of reversals).
    pub spent: Money,
    /// Every change to availability, in recording order.
    pub movements: Vec<Movement>,
}

impl Line {
    /// `current - committed - spent`, counting every fact.
    pub fn available(&self) -> Money {
        Money::sum(self.current.currency(), self.movements.iter().map(|m| &m.delta)).unwrap_or(self.current)
    }

    /// The lowest availability on `from` or any later date, and that date:
    /// a new debit dated `from` must fit under it, so that a backdated fact
    /// cannot use money that later facts already rely on.
    pub fn lowest_available_from(&self, from: NaiveDate) -> (Money, NaiveDate) {
        let zero = Money::zero(self.current.currency());
        let mut moves: Vec<&Movement> = self.movements.iter().collect();
        moves.sort_by_key(|m| m.on);
        let mut running = zero;
        let mut later = Vec::new();
        for m in moves {
            if m.on <= from {
                running = plus(&running, &m.delta);
            } else {
                later.push(m);
            }
        }
        let mut lowest = (running, from);
        let mut i = 0;
        while i < later.len() {
            let day = later[i].on;
            while i < later.len() && later[i].on == day {
                running = plus(&running, &later[i].delta);
                i += 1;
            }
            if running.checked_cmp(&lowest.0).is_ok_and(|o| o.is_lt()) {
                lowest = (running, day);
            }
        }
        lowest
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Awaiting a decision.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
}

/// A reallocation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reallocation {
    /// The deltas.
    pub deltas: Vec<LineDelta>,
    /// Who asked.
    pub requested_by: ActorId,
    /// Where it stands.
    pub status: Decision,
}

/// An amendment request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amendment {
    /// What it changes.
    pub kind: AmendmentKind,
    /// The end asked for.
    pub proposed_end: NaiveDate,
    /// Where it stands.
    pub status: Decision,
}

/// A commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitment {
    /// Its line.
    pub line: LineId,
    /// As raised.
    pub amount: Money,
    /// Not yet liquidated or released.
    pub open: Money,
    /// Whether it was closed.
    pub closed: bool,
}

/// An expenditure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expenditure {
    /// Its line.
    pub line: LineId,
    /// Its amount in the grant's currency.
    pub amount: Money,
    /// When incurred.
    pub incurred_on: NaiveDate,
    /// Supplier id.
    pub supplier: String,
    /// Invoice number.
    pub invoice: String,
    /// The commitment it paid, and how much of it.
    pub liquidates: Option<(CommitmentId, Money)>,
    /// Whether it was reversed.
    pub reversed: bool,
}

/// A milestone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestone {
    /// Its workstream.
    pub workstream: WorkstreamCode,
    /// Its kind.
    pub kind: MilestoneKind,
    /// Baseline due date.
    pub baseline_due: NaiveDate,
    /// Current due date.
    pub due: NaiveDate,
    /// When achieved.
    pub achieved_on: Option<NaiveDate>,
    /// Whether cancelled.
    pub cancelled: bool,
    /// How many times rescheduled.
    pub reschedules: u32,
}

/// A reporting period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// Who closed it, while closed.
    pub closed_by: Option<ActorId>,
}

/// A grant's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantState {
    /// Set by the award.
    pub grant: Option<Grant>,
    /// Workstreams by code.
    pub workstreams: BTreeMap<WorkstreamCode, String>,
    /// Budget lines.
    pub lines: BTreeMap<LineId, Line>,
    /// Reallocations.
    pub reallocations: BTreeMap<ReallocationId, Reallocation>,
    /// Amendments.
    pub amendments: BTreeMap<AmendmentId, Amendment>,
    /// Commitments.
    pub commitments: BTreeMap<CommitmentId, Commitment>,
    /// Expenditures.
    pub expenditures: BTreeMap<ExpenditureId, Expenditure>,
    /// Live (not reversed) expenditures by (supplier, invoice), compared
    /// as [`super::invoice::invoice_key`] gives them.
    pub invoices: BTreeMap<(String, String), ExpenditureId>,
    /// Milestones.
    pub milestones: BTreeMap<MilestoneId, Milestone>,
    /// Reporting periods.
    pub periods: BTreeMap<PeriodId, Period>,
    /// Set when the grant is closed.
    pub closed_on: Option<NaiveDate>,
    /// The sum of the absolute values of every amount recorded that a view
    /// adds up (award, lines, approved deltas, commitments, releases,
    /// expenditures and their liquidations, reversed ones included): every
    /// figure of every view, as of any date, is at most this. `decide`
    /// keeps it within `events::bounds::GRANT_GROSS_UNITS_MAX`.
    pub gross: Decimal,
}

/// Adds two amounts that `decide` guaranteed share a currency; should that
/// ever not hold, the left amount is kept rather than panicking in a fold.
fn plus(a: &Money, b: &Money) -> Money {
    a.checked_add(b).unwrap_or(*a)
}

impl GrantState {
    /// Applies one event. Total: every event that `decide` produced applies.
    pub fn evolve(mut self, envelope: &Envelope<GrantEvent>) -> Self {
        self.apply(envelope);
        self
    }

    /// What `event` adds to [`GrantState::gross`].
    pub fn gross_of(&self, event: &GrantEvent) -> Decimal {
        let abs = |m: &Money| m.amount().abs();
        match event {
            GrantEvent::GrantAwarded(e) => abs(&e.award),
            GrantEvent::BudgetLineOpened(e) => abs(&e.amount),
            GrantEvent::ReallocationApproved(e) => {
                self.reallocations.get(&e.reallocation_id).map_or(Decimal::ZERO, |r| {
                    r.deltas.iter().fold(Decimal::ZERO, |s, d| s.saturating_add(abs(&d.amount)))
                })
            }
            GrantEvent::CommitmentRaised(e) => abs(&e.amount),
            GrantEvent::CommitmentClosed(e) => abs(&e.released),
            GrantEvent::ExpenditureRecorded(e) => {
                abs(&e.amount).saturating_add(e.liquidates.as_ref().map_or(Decimal::ZERO, |l| abs(&l.amount)))
            }
            // No view adds up an amount of these (a reversal subtracts what
            // its expenditure added; a request moves nothing until it is
            // approved). A new event type must be placed here or above: no
            // `_` arm, so no amount a view sums can escape the bound.
            GrantEvent::WorkstreamDefined(_)
            | GrantEvent::ReportingPeriodDefined(_)
            | GrantEvent::ReallocationRequested(_)
            | GrantEvent::ReallocationRejected(_)
            | GrantEvent::AmendmentRequested(_)
            | GrantEvent::AmendmentApproved(_)
            | GrantEvent::AmendmentRejected(_)
            | GrantEvent::ExpenditureReversed(_)
            | GrantEvent::MilestonePlanned(_)
            | GrantEvent::MilestoneRescheduled(_)
            | GrantEvent::MilestoneAchieved(_)
            | GrantEvent::MilestoneCancelled(_)
            | GrantEvent::ReportingPeriodClosed(_)
            | GrantEvent::ReportingPeriodReopened(_)
            | GrantEvent::GrantClosed(_) => Decimal::ZERO,
        }
    }

    /// Applies one event in place.
    pub fn apply(&mut self, envelope: &Envelope<GrantEvent>) {
        // Saturating: an older log may hold amounts past today's limits.
        self.gross = self.gross.saturating_add(self.gross_of(&envelope.event));
        let on = envelope.context.effective_date;
        match &envelope.event {
            GrantEvent::GrantAwarded(e) => {
                self.grant = Some(Grant {
                    id: e.grant_id.clone(),
                    programme: e.programme_id.clone(),
                    currency: e.award.currency(),
                    award: e.award,
                    start: e.start,
                    end: e.end,
                    effective_end: e.end,
                    rule_set: e.rule_set.clone(),
                    indirect_rate: e.indirect_rate,
                });
            }
            GrantEvent::WorkstreamDefined(e) => {
                self.workstreams.insert(e.code.clone(), e.title.clone());
            }
            GrantEvent::ReportingPeriodDefined(e) => {
                self.periods.insert(e.period_id.clone(), Period { start: e.start, end: e.end, closed_by: None });
            }
            GrantEvent::BudgetLineOpened(e) => {
                let zero = Money::zero(e.amount.currency());
                // The budget is the plan for the whole period: it counts from the start.
                let opening = Movement { on: NaiveDate::MIN, delta: e.amount };
                self.lines.insert(
                    e.line_id.clone(),
                    Line {
                        workstream: e.workstream.clone(),
                        category: e.category.clone(),
                        original: e.amount,
                        current: e.amount,
                        committed: zero,
                        spent: zero,
                        movements: vec![opening],
                    },
                );
            }
            GrantEvent::ReallocationRequested(e) => {
                self.reallocations.insert(
                    e.reallocation_id.clone(),
                    Reallocation {
                        deltas: e.deltas.clone(),
                        requested_by: envelope.context.actor.clone(),
                        status: Decision::Pending,
                    },
                );
            }
            GrantEvent::ReallocationApproved(e) => {
                if let Some(r) = self.reallocations.get_mut(&e.reallocation_id) {
                    r.status = Decision::Approved;
                    for d in &r.deltas {
                        if let Some(line) = self.lines.get_mut(&d.line) {
                            line.current = plus(&line.current, &d.amount);
                            line.movements.push(Movement { on, delta: d.amount });
                        }
                    }
                }
            }
            GrantEvent::ReallocationRejected(e) => {
                if let Some(r) = self.reallocations.get_mut(&e.reallocation_id) {
                    r.status = Decision::Rejected;
                }
            }
            GrantEvent::AmendmentRequested(e) => {
                self.amendments.insert(
                    e.amendment_id.clone(),
                    Amendment { kind: e.kind, proposed_end: e.proposed_end, status: Decision::Pending },
                );
            }
            GrantEvent::AmendmentApproved(e) => {
                if let Some(a) = self.amendments.get_mut(&e.amendment_id) {
                    a.status = Decision::Approved;
                }
                if let Some(g) = &mut self.grant {
                    g.effective_end = e.new_end;
                }
            }
            GrantEvent::AmendmentRejected(e) => {
                if let Some(a) = self.amendments.get_mut(&e.amendment_id) {
                    a.status = Decision::Rejected;
                }
            }
            GrantEvent::CommitmentRaised(e) => {
                if let Some(line) = self.lines.get_mut(&e.line) {
                    line.committed = plus(&line.committed, &e.amount);
                    line.movements.push(Movement { on, delta: e.amount.negated() });
                }
                self.commitments.insert(
                    e.commitment_id.clone(),
                    Commitment { line: e.line.clone(), amount: e.amount, open: e.amount, closed: false },
                );
            }
            GrantEvent::CommitmentClosed(e) => {
                if let Some(c) = self.commitments.get_mut(&e.commitment_id) {
                    c.closed = true;
                    c.open = Money::zero(c.open.currency());
                    if let Some(line) = self.lines.get_mut(&c.line) {
                        line.committed = plus(&line.committed, &e.released.negated());
                        line.movements.push(Movement { on, delta: e.released });
                    }
                }
            }
            GrantEvent::ExpenditureRecorded(e) => self.record_expenditure(e),
            GrantEvent::ExpenditureReversed(e) => self.reverse_expenditure(&e.expenditure_id, on),
            GrantEvent::MilestonePlanned(e) => {
                self.milestones.insert(
                    e.milestone_id.clone(),
                    Milestone {
                        workstream: e.workstream.clone(),
                        kind: e.kind,
                        baseline_due: e.due_on,
                        due: e.due_on,
                        achieved_on: None,
                        cancelled: false,
                        reschedules: 0,
                    },
                );
            }
            GrantEvent::MilestoneRescheduled(e) => {
                if let Some(m) = self.milestones.get_mut(&e.milestone_id) {
                    m.due = e.to;
                    m.reschedules += 1;
                }
            }
            GrantEvent::MilestoneAchieved(e) => {
                if let Some(m) = self.milestones.get_mut(&e.milestone_id) {
                    m.achieved_on = Some(e.achieved_on);
                }
            }
            GrantEvent::MilestoneCancelled(e) => {
                if let Some(m) = self.milestones.get_mut(&e.milestone_id) {
                    m.cancelled = true;
                }
            }
            GrantEvent::ReportingPeriodClosed(e) => {
                if let Some(p) = self.periods.get_mut(&e.period_id) {
                    p.closed_by = Some(envelope.context.actor.clone());
                }
            }
            GrantEvent::ReportingPeriodReopened(e) => {
                if let Some(p) = self.periods.get_mut(&e.period_id) {
                    p.closed_by = None;
                }
            }
            GrantEvent::GrantClosed(e) => self.closed_on = Some(e.closed_on),
        }
    }

    fn record_expenditure(&mut self, e: &events::grant::ExpenditureRecorded) {
        let liquidates = e.liquidates.as_ref().map(|l| (l.commitment_id.clone(), l.amount));
        if let Some(line) = self.lines.get_mut(&e.line) {
            line.spent = plus(&line.spent, &e.amount);
            line.movements.push(Movement { on: e.incurred_on, delta: e.amount.negated() });
            if let Some((_, liquidated)) = &liquidates {
                line.committed = plus(&line.committed, &liquidated.negated());
                line.movements.push(Movement { on: e.incurred_on, delta: *liquidated });
            }
        }
        if let Some((id, liquidated)) = &liquidates
            && let Some(c) = self.commitments.get_mut(id)
        {
            c.open = plus(&c.open, &liquidated.negated());
        }
        self.invoices.insert(super::invoice::invoice_key(&e.supplier, &e.invoice), e.expenditure_id.clone());
        self.expenditures.insert(
            e.expenditure_id.clone(),
            Expenditure {
                line: e.line.clone(),
                amount: e.amount,
                incurred_on: e.incurred_on,
                supplier: e.supplier.clone(),
                invoice: e.invoice.clone(),
                liquidates,
                reversed: false,
            },
        );
    }

    /// A reversal takes the cost off its line from the reversal's date, and
    /// gives a liquidated amount back to its commitment if still open.
    fn reverse_expenditure(&mut self, id: &ExpenditureId, on: NaiveDate) {
        let Some(x) = self.expenditures.get_mut(id) else { return };
        x.reversed = true;
        let x = x.clone();
        self.invoices.remove(&super::invoice::invoice_key(&x.supplier, &x.invoice));
        let restored = x.liquidates.as_ref().and_then(|(cid, amount)| {
            let c = self.commitments.get_mut(cid)?;
            (!c.closed).then(|| {
                c.open = plus(&c.open, amount);
                *amount
            })
        });
        if let Some(line) = self.lines.get_mut(&x.line) {
            line.spent = plus(&line.spent, &x.amount.negated());
            line.movements.push(Movement { on, delta: x.amount });
            if let Some(amount) = restored {
                line.committed = plus(&line.committed, &amount);
                line.movements.push(Movement { on, delta: amount.negated() });
            }
        }
    }
}
