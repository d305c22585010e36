//! `decide`: a command and the grant's state in, events or the broken rule
//! out. Pure: the date, the actor and looked-up facts come in the context.

use chrono::{Months, NaiveDate};
use events::bounds::{AMOUNT_UNITS_MAX, GRANT_GROSS_UNITS_MAX, GRANT_PERIOD_YEARS_MAX, within_amount_limit};
use events::grant::*;
use events::{AmendmentId, CategoryCode, Conversion, LineId, Money, WorkstreamCode};
use rust_decimal::Decimal;

use super::command::{AwardGrant, Delta, GrantCommand};
use super::state::{Decision, Grant, GrantState};
use crate::Context;
use crate::error::DomainError;
use crate::rules::{self, CategoryKind, RuleSet};

/// The workstream of the grant-level indirect line (`GRANT-IND`).
pub const GRANT_WORKSTREAM: &str = "GRANT";

type Decided = Result<Vec<GrantEvent>, DomainError>;

/// Decides what a command does to a grant. Whatever the command, the
/// grant's amounts stay within the sum every view can add up
/// ([`GRANT_GROSS_UNITS_MAX`]), so no view of it can overflow.
pub fn decide(state: &GrantState, command: &GrantCommand, ctx: &Context) -> Decided {
    let events = decide_rules(state, command, ctx)?;
    let mut gross = state.gross;
    for e in &events {
        let added = match e {
            // Its deltas count once approved (checked again then); refuse early.
            GrantEvent::ReallocationRequested(r) => {
                r.deltas.iter().fold(Decimal::ZERO, |s, d| s.saturating_add(d.amount.amount().abs()))
            }
            other => state.gross_of(other),
        };
        gross = gross.saturating_add(added);
    }
    if gross > Decimal::from(GRANT_GROSS_UNITS_MAX) {
        return Err(DomainError::GrantTotalAboveLimit { gross, limit_units: GRANT_GROSS_UNITS_MAX });
    }
    Ok(events)
}

/// The amount, unless it is beyond [`AMOUNT_UNITS_MAX`].
fn bounded(field: &'static str, amount: &Money) -> Result<(), DomainError> {
    if within_amount_limit(amount.amount()) {
        Ok(())
    } else {
        Err(DomainError::AmountAboveLimit { field, amount: *amount, limit_units: AMOUNT_UNITS_MAX })
    }
}

/// A grant period (start to end, extended or not) of at most [`GRANT_PERIOD_YEARS_MAX`] years.
fn period_length(start: NaiveDate, end: NaiveDate) -> Result<(), DomainError> {
    match start.checked_add_months(Months::new(12 * GRANT_PERIOD_YEARS_MAX)) {
        Some(limit) if end < limit => Ok(()),
        _ => Err(DomainError::GrantPeriodTooLong { start, end, years_max: GRANT_PERIOD_YEARS_MAX }),
    }
}

fn decide_rules(state: &GrantState, command: &GrantCommand, ctx: &Context) -> Decided {
    if let GrantCommand::Award(award) = command {
        return award_grant(state, award, ctx);
    }
    let grant = state.grant.as_ref().ok_or(DomainError::GrantNotAwarded)?;
    if let Some(closed_on) = state.closed_on {
        return Err(DomainError::GrantIsClosed { closed_on });
    }
    let rules =
        rules::find(&grant.rule_set).ok_or_else(|| DomainError::UnknownRuleSet { rule_set: grant.rule_set.clone() })?;
    let g = Checked { state, grant, rules, ctx };
    match command {
        GrantCommand::Award(_) => Err(DomainError::GrantAlreadyAwarded),
        GrantCommand::DefineWorkstream { code, title, lead } => {
            if state.workstreams.contains_key(code) || code.as_str() == GRANT_WORKSTREAM {
                return Err(DomainError::WorkstreamExists { workstream: code.clone() });
            }
            one(WorkstreamDefined { code: code.clone(), title: title.clone(), lead: lead.clone() })
        }
        GrantCommand::DefineReportingPeriod { period_id, start, end, report_due } => {
            g.define_period(period_id, *start, *end, *report_due)
        }
        GrantCommand::OpenBudgetLine { workstream, category, amount } => g.open_line(workstream, category, amount),
        GrantCommand::RequestReallocation { reallocation_id, deltas } => {
            if state.reallocations.contains_key(reallocation_id) {
                return Err(DomainError::ReallocationExists { reallocation: reallocation_id.clone() });
            }
            let deltas = g.check_reallocation(deltas)?;
            one(ReallocationRequested { reallocation_id: reallocation_id.clone(), deltas })
        }
        GrantCommand::ApproveReallocation { reallocation_id } => {
            let r = g.pending_reallocation(reallocation_id)?;
            if r.requested_by == ctx.actor {
                return Err(DomainError::SameActor {
                    actor: ctx.actor.clone(),
                    action: "approve a reallocation",
                    did: "requested",
                });
            }
            let deltas: Vec<Delta> =
                r.deltas.iter().map(|d| Delta { line: d.line.clone(), amount: d.amount }).collect();
            g.check_reallocation(&deltas)?;
            one(ReallocationApproved { reallocation_id: reallocation_id.clone() })
        }
        GrantCommand::RejectReallocation { reallocation_id } => {
            g.pending_reallocation(reallocation_id)?;
            g.reason("reject a reallocation")?;
            one(ReallocationRejected { reallocation_id: reallocation_id.clone() })
        }
        GrantCommand::RequestAmendment { amendment_id, kind, proposed_end } => {
            if state.amendments.contains_key(amendment_id) {
                return Err(DomainError::AmendmentExists { amendment: amendment_id.clone() });
            }
            if *proposed_end <= grant.effective_end {
                return Err(DomainError::ExtensionNotLater { end: grant.effective_end, proposed_end: *proposed_end });
            }
            period_length(grant.start, *proposed_end)?;
            one(AmendmentRequested { amendment_id: amendment_id.clone(), kind: *kind, proposed_end: *proposed_end })
        }
        GrantCommand::ApproveAmendment { amendment_id } => {
            let a = g.pending_amendment(amendment_id)?;
            if a.proposed_end <= grant.effective_end {
                return Err(DomainError::ExtensionNotLater { end: grant.effective_end, proposed_end: a.proposed_end });
            }
            period_length(grant.start, a.proposed_end)?;
            one(AmendmentApproved { amendment_id: amendment_id.clone(), new_end: a.proposed_end })
        }
        GrantCommand::RejectAmendment { amendment_id } => {
            g.pending_amendment(amendment_id)?;
            g.reason("reject an amendment")?;
            one(AmendmentRejected { amendment_id: amendment_id.clone() })
        }
        GrantCommand::RaiseCommitment { commitment_id, line, amount, conversion, supplier, reference } => {
            if state.commitments.contains_key(commitment_id) {
                return Err(DomainError::CommitmentExists { commitment: commitment_id.clone() });
            }
            g.line(line)?;
            g.in_period(ctx.effective_date)?;
            g.open_period(ctx.effective_date)?;
            let (amount, original) = g.in_grant_currency(amount, conversion.as_ref(), "amount")?;
            g.fits(line, &amount, ctx.effective_date)?;
            one(CommitmentRaised {
                commitment_id: commitment_id.clone(),
                line: line.clone(),
                amount,
                original,
                supplier: supplier.clone(),
                reference: reference.clone(),
            })
        }
        GrantCommand::CloseCommitment { commitment_id } => {
            let c = state
                .commitments
                .get(commitment_id)
                .ok_or_else(|| DomainError::UnknownCommitment { commitment: commitment_id.clone() })?;
            if c.closed {
                return Err(DomainError::CommitmentIsClosed { commitment: commitment_id.clone() });
            }
            one(CommitmentClosed { commitment_id: commitment_id.clone(), released: c.open })
        }
        GrantCommand::RecordExpenditure { .. } => g.record_expenditure(command),
        GrantCommand::ReverseExpenditure { expenditure_id } => {
            let x = state
                .expenditures
                .get(expenditure_id)
                .ok_or_else(|| DomainError::UnknownExpenditure { expenditure: expenditure_id.clone() })?;
            if x.reversed {
                return Err(DomainError::AlreadyReversed { expenditure: expenditure_id.clone() });
            }
            g.reason("reverse an expenditure")?;
            g.open_period(ctx.effective_date)?;
            one(ExpenditureReversed { expenditure_id: expenditure_id.clone() })
        }
        GrantCommand::PlanMilestone { milestone_id, workstream, kind, title, due_on, amendment } => {
            if state.milestones.contains_key(milestone_id) {
                return Err(DomainError::MilestoneExists { milestone: milestone_id.clone() });
            }
            g.workstream(workstream)?;
            g.due_date(*due_on, amendment.as_ref())?;
            one(MilestonePlanned {
                milestone_id: milestone_id.clone(),
                workstream: workstream.clone(),
                kind: *kind,
                title: title.clone(),
                due_on: *due_on,
            })
        }
        GrantCommand::RescheduleMilestone { milestone_id, due_on, amendment } => {
            let m = g.open_milestone(milestone_id)?;
            g.reason("reschedule a milestone")?;
            g.due_date(*due_on, amendment.as_ref())?;
            one(MilestoneRescheduled {
                milestone_id: milestone_id.clone(),
                from: m.due,
                to: *due_on,
                amendment: amendment.clone(),
            })
        }
        GrantCommand::AchieveMilestone { milestone_id, achieved_on, evidence } => {
            g.open_milestone(milestone_id)?;
            if *achieved_on > ctx.today || *achieved_on < grant.start {
                return Err(DomainError::AchievedOutsideRange {
                    achieved_on: *achieved_on,
                    start: grant.start,
                    today: ctx.today,
                });
            }
            one(MilestoneAchieved {
                milestone_id: milestone_id.clone(),
                achieved_on: *achieved_on,
                evidence: evidence.clone(),
            })
        }
        GrantCommand::CancelMilestone { milestone_id } => {
            g.open_milestone(milestone_id)?;
            g.reason("cancel a milestone")?;
            one(MilestoneCancelled { milestone_id: milestone_id.clone() })
        }
        GrantCommand::ClosePeriod { period_id } => {
            let p = g.period(period_id)?;
            if p.closed_by.is_some() {
                return Err(DomainError::PeriodAlready { period: period_id.clone(), state: "closed" });
            }
            let spent = state
                .expenditures
                .values()
                .filter(|x| !x.reversed && p.start <= x.incurred_on && x.incurred_on <= p.end)
                .map(|x| &x.amount);
            one(ReportingPeriodClosed { period_id: period_id.clone(), spent: Money::sum(grant.currency, spent)? })
        }
        GrantCommand::ReopenPeriod { period_id } => {
            let p = g.period(period_id)?;
            let Some(closer) = &p.closed_by else {
                return Err(DomainError::PeriodAlready { period: period_id.clone(), state: "open" });
            };
            if *closer == ctx.actor {
                return Err(DomainError::SameActor {
                    actor: ctx.actor.clone(),
                    action: "reopen a reporting period",
                    did: "closed",
                });
            }
            g.reason("reopen a reporting period")?;
            one(ReportingPeriodReopened { period_id: period_id.clone() })
        }
        GrantCommand::CloseGrant { closed_on } => {
            if *closed_on < grant.start {
                return Err(DomainError::DatesInverted { start: grant.start, end: *closed_on });
            }
            one(GrantClosed { closed_on: *closed_on })
        }
    }
}

fn one(event: impl Into<GrantEvent>) -> Decided {
    Ok(vec![event.into()])
}

fn award_grant(state: &GrantState, a: &AwardGrant, ctx: &Context) -> Decided {
    if state.grant.is_some() {
        return Err(DomainError::GrantAlreadyAwarded);
    }
    if !ctx.programme_exists {
        return Err(DomainError::UnknownProgramme { programme: a.programme_id.clone() });
    }
    if !a.award.currency().is_active() {
        return Err(DomainError::CurrencyNotAccepted { currency: a.award.currency() });
    }
    if !a.award.is_positive() {
        return Err(DomainError::AmountNotPositive { field: "award", amount: a.award });
    }
    bounded("award", &a.award)?;
    if a.start > a.end {
        return Err(DomainError::DatesInverted { start: a.start, end: a.end });
    }
    period_length(a.start, a.end)?;
    let rules = rules::find(&a.rule_set).ok_or_else(|| DomainError::UnknownRuleSet { rule_set: a.rule_set.clone() })?;
    let cap = rules.indirect.rate_max;
    let rate = a.indirect_rate.unwrap_or(cap);
    if rules.indirect.flat && rate != cap {
        return Err(DomainError::IndirectRateNotFlat { rate, required: cap });
    }
    if rate > cap || rate < Decimal::ZERO {
        return Err(DomainError::IndirectRateAboveCap { rate, cap });
    }
    one(GrantAwarded {
        grant_id: a.grant_id.clone(),
        programme_id: a.programme_id.clone(),
        funder: a.funder.clone(),
        title: a.title.clone(),
        acronym: a.acronym.clone(),
        beneficiary: a.beneficiary.clone(),
        award: a.award,
        start: a.start,
        end: a.end,
        rule_set: a.rule_set.clone(),
        indirect_rate: rate,
    })
}

/// A command against an awarded, open grant.
struct Checked<'a> {
    state: &'a GrantState,
    grant: &'a Grant,
    rules: &'a RuleSet,
    ctx: &'a Context,
}

impl Checked<'_> {
    fn reason(&self, action: &'static str) -> Result<(), DomainError> {
        match self.ctx.reason.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => Ok(()),
            _ => Err(DomainError::ReasonRequired { action }),
        }
    }

    fn same_currency(&self, amount: &Money) -> Result<(), DomainError> {
        if amount.currency() == self.grant.currency {
            Ok(())
        } else {
            Err(DomainError::WrongCurrency { expected: self.grant.currency, got: amount.currency() })
        }
    }

    fn positive(&self, field: &'static str, amount: &Money) -> Result<(), DomainError> {
        if amount.is_positive() { Ok(()) } else { Err(DomainError::AmountNotPositive { field, amount: *amount }) }
    }

    fn workstream(&self, code: &WorkstreamCode) -> Result<(), DomainError> {
        if self.state.workstreams.contains_key(code) {
            Ok(())
        } else {
            Err(DomainError::UnknownWorkstream { workstream: code.clone() })
        }
    }

    fn line(&self, line: &LineId) -> Result<&super::state::Line, DomainError> {
        self.state.lines.get(line).ok_or_else(|| DomainError::UnknownLine { line: line.clone() })
    }

    fn kind_of(&self, category: &CategoryCode) -> Option<CategoryKind> {
        self.rules.category(category).map(|c| c.kind)
    }

    fn in_period(&self, date: NaiveDate) -> Result<(), DomainError> {
        let (start, end) = (self.grant.start, self.grant.effective_end);
        if start <= date && date <= end { Ok(()) } else { Err(DomainError::OutsideGrantPeriod { date, start, end }) }
    }

    fn open_period(&self, date: NaiveDate) -> Result<(), DomainError> {
        match self.state.periods.iter().find(|(_, p)| p.closed_by.is_some() && p.start <= date && date <= p.end) {
            Some((id, _)) => Err(DomainError::PeriodIsClosed { period: id.clone(), date }),
            None => Ok(()),
        }
    }

    fn period(&self, id: &events::PeriodId) -> Result<&super::state::Period, DomainError> {
        self.state.periods.get(id).ok_or_else(|| DomainError::UnknownPeriod { period: id.clone() })
    }

    fn define_period(&self, id: &events::PeriodId, start: NaiveDate, end: NaiveDate, due: NaiveDate) -> Decided {
        if self.state.periods.contains_key(id) {
            return Err(DomainError::PeriodExists { period: id.clone() });
        }
        if start > end {
            return Err(DomainError::DatesInverted { start, end });
        }
        if let Some((other, _)) = self.state.periods.iter().find(|(_, p)| start <= p.end && p.start <= end) {
            return Err(DomainError::PeriodsOverlap { period: id.clone(), other: other.clone() });
        }
        one(ReportingPeriodDefined { period_id: id.clone(), start, end, report_due: due })
    }

    /// Sums current line amounts, optionally with some lines changed.
    fn totals(&self, changes: &[(LineId, CategoryKind, Money)]) -> Result<Totals, DomainError> {
        let zero = Money::zero(self.grant.currency);
        let mut t = Totals { all: zero, base: zero, indirect: zero };
        let lines = self.state.lines.iter().map(|(id, l)| (id, self.kind_of(&l.category), l.current));
        let extra = changes.iter().map(|(id, kind, amount)| (id, Some(*kind), *amount));
        for (_, kind, amount) in lines.chain(extra) {
            t.all = t.all.checked_add(&amount)?;
            match kind {
                Some(CategoryKind::Direct) => t.base = t.base.checked_add(&amount)?,
                Some(CategoryKind::Indirect) => t.indirect = t.indirect.checked_add(&amount)?,
                Some(CategoryKind::Subcontracting) | None => {}
            }
        }
        Ok(t)
    }

    fn indirect_cap_holds(&self, t: &Totals) -> Result<(), DomainError> {
        let cap = t.base.times(self.grant.indirect_rate)?;
        if t.indirect.checked_cmp(&cap)?.is_gt() {
            return Err(DomainError::IndirectCapExceeded {
                cap,
                indirect: t.indirect,
                base: t.base,
                rate: self.grant.indirect_rate,
            });
        }
        Ok(())
    }

    fn open_line(&self, workstream: &WorkstreamCode, category: &CategoryCode, amount: &Money) -> Decided {
        let kind = self.kind_of(category).ok_or_else(|| DomainError::UnknownCategory {
            category: category.clone(),
            rule_set: self.grant.rule_set.clone(),
        })?;
        if kind != CategoryKind::Indirect || workstream.as_str() != GRANT_WORKSTREAM {
            self.workstream(workstream)?;
        }
        self.same_currency(amount)?;
        self.positive("amount", amount)?;
        bounded("amount", amount)?;
        let line_id = LineId::of(workstream, category);
        if self.state.lines.contains_key(&line_id) {
            return Err(DomainError::LineExists { line: line_id });
        }
        let before = self.totals(&[])?;
        let after = self.totals(&[(line_id.clone(), kind, *amount)])?;
        if after.all.checked_cmp(&self.grant.award)?.is_gt() {
            return Err(DomainError::ExceedsAward {
                award: self.grant.award,
                allocated: before.all,
                requested: *amount,
                excess: after.all.checked_sub(&self.grant.award)?,
            });
        }
        if kind == CategoryKind::Indirect {
            self.indirect_cap_holds(&after)?;
        }
        one(BudgetLineOpened { line_id, workstream: workstream.clone(), category: category.clone(), amount: *amount })
    }

    /// Checks a reallocation against today's lines; returns its deltas.
    fn check_reallocation(&self, deltas: &[Delta]) -> Result<Vec<LineDelta>, DomainError> {
        let mut seen = std::collections::BTreeSet::new();
        if deltas.len() < 2 || deltas.iter().any(|d| d.amount.is_zero() || !seen.insert(&d.line)) {
            return Err(DomainError::ReallocationMalformed);
        }
        let mut changes = Vec::new();
        for d in deltas {
            self.same_currency(&d.amount)?;
            bounded("deltas", &d.amount)?;
            let line = self.line(&d.line)?;
            let category = self.rules.category(&line.category);
            if !category.is_some_and(|c| c.transferable) {
                return Err(DomainError::LineNotTransferable { line: d.line.clone(), category: line.category.clone() });
            }
            changes.push((d.line.clone(), category.map_or(CategoryKind::Direct, |c| c.kind), d.amount));
        }
        let net = Money::sum(self.grant.currency, deltas.iter().map(|d| &d.amount))?;
        if !net.is_zero() {
            return Err(DomainError::ReallocationNotBalanced { net });
        }
        for d in deltas.iter().filter(|d| d.amount.is_negative()) {
            self.fits(&d.line, &d.amount.negated(), self.ctx.effective_date)?;
        }
        self.indirect_cap_holds(&self.totals(&changes)?)?;
        Ok(deltas.iter().map(|d| LineDelta { line: d.line.clone(), amount: d.amount }).collect())
    }

    /// `amount` can be taken from `line` on `on` without availability
    /// going negative then or on any later date.
    fn fits(&self, line_id: &LineId, amount: &Money, on: NaiveDate) -> Result<(), DomainError> {
        let line = self.line(line_id)?;
        let (available, low_on) = line.lowest_available_from(on);
        if amount.checked_cmp(&available)?.is_gt() {
            return Err(DomainError::InsufficientAvailable {
                line: line_id.clone(),
                available,
                requested: *amount,
                on: low_on,
            });
        }
        Ok(())
    }

    fn pending_reallocation(&self, id: &events::ReallocationId) -> Result<&super::state::Reallocation, DomainError> {
        let r = self
            .state
            .reallocations
            .get(id)
            .ok_or_else(|| DomainError::UnknownReallocation { reallocation: id.clone() })?;
        if r.status != Decision::Pending {
            return Err(DomainError::ReallocationNotPending { reallocation: id.clone() });
        }
        Ok(r)
    }

    fn pending_amendment(&self, id: &AmendmentId) -> Result<&super::state::Amendment, DomainError> {
        let a = self.state.amendments.get(id).ok_or_else(|| DomainError::UnknownAmendment { amendment: id.clone() })?;
        if a.status != Decision::Pending {
            return Err(DomainError::AmendmentNotPending { amendment: id.clone() });
        }
        Ok(a)
    }

    fn open_milestone(&self, id: &events::MilestoneId) -> Result<&super::state::Milestone, DomainError> {
        let m = self.state.milestones.get(id).ok_or_else(|| DomainError::UnknownMilestone { milestone: id.clone() })?;
        if m.cancelled {
            return Err(DomainError::MilestoneSettled { milestone: id.clone(), state: "cancelled" });
        }
        if m.achieved_on.is_some() {
            return Err(DomainError::MilestoneSettled { milestone: id.clone(), state: "achieved" });
        }
        Ok(m)
    }

    /// A due date inside the grant period, or past its end when a pending
    /// or approved amendment reaches that far.
    fn due_date(&self, due: NaiveDate, amendment: Option<&AmendmentId>) -> Result<(), DomainError> {
        let (start, end) = (self.grant.start, self.grant.effective_end);
        if due < start {
            return Err(DomainError::OutsideGrantPeriod { date: due, start, end });
        }
        if due <= end {
            return Ok(());
        }
        let Some(id) = amendment else { return Err(DomainError::DueBeyondEnd { due, end }) };
        let a = self.state.amendments.get(id).ok_or_else(|| DomainError::UnknownAmendment { amendment: id.clone() })?;
        if a.status == Decision::Rejected || a.proposed_end < due {
            return Err(DomainError::AmendmentDoesNotReach { amendment: id.clone(), due });
        }
        Ok(())
    }

    /// An amount in the grant's currency, converting a foreign one.
    fn in_grant_currency(
        &self,
        amount: &Money,
        conversion: Option<&Conversion>,
        field: &'static str,
    ) -> Result<(Money, Option<ForeignCost>), DomainError> {
        self.positive(field, amount)?;
        bounded(field, amount)?;
        if !amount.currency().is_active() {
            return Err(DomainError::CurrencyNotAccepted { currency: amount.currency() });
        }
        let currency = self.grant.currency;
        match conversion {
            None if amount.currency() == currency => Ok((*amount, None)),
            None => Err(DomainError::ConversionMissing { currency: amount.currency(), grant_currency: currency }),
            Some(_) if amount.currency() == currency => Err(DomainError::ConversionNotApplicable { currency }),
            Some(c) => {
                let converted = c.convert(amount, currency)?;
                // A foreign amount above zero can still round to nothing in the
                // grant's currency (USD 0.01 at 3 USD per EUR); no cost is zero.
                self.positive(field, &converted)?;
                // A tiny rate blows an amount up: the converted one is bounded too.
                bounded(field, &converted)?;
                Ok((converted, Some(ForeignCost { amount: *amount, conversion: c.clone() })))
            }
        }
    }

    fn record_expenditure(&self, command: &GrantCommand) -> Decided {
        let GrantCommand::RecordExpenditure {
            expenditure_id,
            line,
            amount,
            conversion,
            incurred_on,
            supplier,
            invoice,
            commitment,
            correction_of,
        } = command
        else {
            return Err(DomainError::GrantNotAwarded);
        };
        if self.state.expenditures.contains_key(expenditure_id) {
            return Err(DomainError::ExpenditureExists { expenditure: expenditure_id.clone() });
        }
        self.line(line)?;
        self.in_period(*incurred_on)?;
        self.open_period(*incurred_on)?;
        let (amount, original) = self.in_grant_currency(amount, conversion.as_ref(), "amount")?;
        if let Some(existing) = self.state.invoices.get(&super::invoice::invoice_key(supplier, invoice)) {
            return Err(DomainError::DuplicateInvoice {
                supplier: supplier.clone(),
                invoice: invoice.clone(),
                expenditure: existing.clone(),
            });
        }
        if let Some(id) = correction_of {
            let x = self
                .state
                .expenditures
                .get(id)
                .ok_or_else(|| DomainError::UnknownExpenditure { expenditure: id.clone() })?;
            if !x.reversed {
                return Err(DomainError::CorrectsUnreversed { expenditure: id.clone() });
            }
        }
        let liquidates = match commitment {
            None => None,
            Some(id) => {
                let c = self
                    .state
                    .commitments
                    .get(id)
                    .ok_or_else(|| DomainError::UnknownCommitment { commitment: id.clone() })?;
                if c.closed {
                    return Err(DomainError::CommitmentIsClosed { commitment: id.clone() });
                }
                if &c.line != line {
                    return Err(DomainError::CommitmentOnOtherLine {
                        commitment: id.clone(),
                        commitment_line: c.line.clone(),
                        line: line.clone(),
                    });
                }
                if amount.checked_cmp(&c.open)?.is_gt() {
                    return Err(DomainError::ExceedsOpenCommitment {
                        commitment: id.clone(),
                        open: c.open,
                        requested: amount,
                    });
                }
                Some(Liquidation { commitment_id: id.clone(), amount })
            }
        };
        // Costs are facts: overspending a line is recorded, and flagged in the views.
        one(ExpenditureRecorded {
            expenditure_id: expenditure_id.clone(),
            line: line.clone(),
            amount,
            original,
            incurred_on: *incurred_on,
            supplier: supplier.clone(),
            invoice: invoice.clone(),
            liquidates,
            correction_of: correction_of.clone(),
        })
    }
}

/// Current line amounts: all lines, the indirect base, the indirect lines.
struct Totals {
    all: Money,
    base: Money,
    indirect: Money,
}
