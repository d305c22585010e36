//! Every rule a command can break, each with the numbers that broke it.
//! Closed: no string catch-all. The API maps each variant to one problem type.

use chrono::NaiveDate;
use events::{
    ActorId, AmendmentId, CategoryCode, CommitmentId, Currency, ExpenditureId, LineId, MilestoneId, Money, MoneyError,
    PeriodId, ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;

/// A command refused by the domain.
///
/// Serialises as `{"code": "<kebab-case variant>", ...its fields}`: the API's
/// problem bodies carry exactly these members.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum DomainError {
    // The grant as a whole.
    /// The grant has not been awarded yet.
    #[error("the grant has not been awarded")]
    GrantNotAwarded,
    /// The grant was awarded already.
    #[error("the grant was awarded already")]
    GrantAlreadyAwarded,
    /// The grant is closed.
    #[error("the grant was closed on {closed_on}")]
    GrantIsClosed {
        /// When it was closed.
        closed_on: NaiveDate,
    },
    /// The programme does not exist.
    #[error("programme {programme} does not exist")]
    UnknownProgramme {
        /// The programme.
        programme: ProgrammeId,
    },
    /// The programme exists already.
    #[error("programme {programme} exists already")]
    ProgrammeExists {
        /// The programme.
        programme: ProgrammeId,
    },
    /// The rule set is unknown.
    #[error("rule set {rule_set} is unknown")]
    UnknownRuleSet {
        /// The id given.
        rule_set: RuleSetId,
    },
    /// The indirect rate is above what the rule set allows.
    #[error("indirect rate {rate} is above the rule set's cap {cap}")]
    IndirectRateAboveCap {
        /// The rate asked for.
        rate: Decimal,
        /// The rule set's cap.
        cap: Decimal,
    },
    /// The rule set fixes the indirect rate.
    #[error("the rule set fixes the indirect rate at {required}; {rate} was given")]
    IndirectRateNotFlat {
        /// The rate asked for.
        rate: Decimal,
        /// The flat rate.
        required: Decimal,
    },
    /// An amount that must be above zero is not.
    #[error("{field} must be above zero, got {amount}")]
    AmountNotPositive {
        /// Which field.
        field: &'static str,
        /// The amount given.
        amount: Money,
    },
    /// An amount above the limit every amount is held to.
    #[error("{field} is {amount}, above the limit of {limit_units} units")]
    AmountAboveLimit {
        /// Which field (`amount` also for an amount after its conversion).
        field: &'static str,
        /// The amount.
        amount: Money,
        /// `events::bounds::AMOUNT_UNITS_MAX`.
        limit_units: i64,
    },
    /// The grant's amounts would sum past the limit every view's sums are held to.
    #[error("the grant's amounts would sum to {gross} units, above the limit of {limit_units}")]
    GrantTotalAboveLimit {
        /// The sum of the absolute values of every amount recorded, with this command's.
        gross: Decimal,
        /// `events::bounds::GRANT_GROSS_UNITS_MAX`.
        limit_units: i64,
    },
    /// Not a currency a grant or a cost may be in.
    #[error("{currency} is not an active ISO 4217 currency")]
    CurrencyNotAccepted {
        /// The currency.
        currency: Currency,
    },
    /// A grant period longer than allowed.
    #[error("a grant period from {start} to {end} is longer than {years_max} years")]
    GrantPeriodTooLong {
        /// First day.
        start: NaiveDate,
        /// Last day asked for.
        end: NaiveDate,
        /// `events::bounds::GRANT_PERIOD_YEARS_MAX`.
        years_max: u32,
    },
    /// A date range that ends before it starts.
    #[error("{start} is after {end}")]
    DatesInverted {
        /// Start given.
        start: NaiveDate,
        /// End given.
        end: NaiveDate,
    },
    /// An amount in another currency than the grant's.
    #[error("amount is in {got}; the grant is in {expected}")]
    WrongCurrency {
        /// The grant's currency.
        expected: Currency,
        /// The currency given.
        got: Currency,
    },
    /// A command that needs a reason got none.
    #[error("a reason is required to {action}")]
    ReasonRequired {
        /// What was attempted.
        action: &'static str,
    },
    /// Four eyes: the same person cannot do both steps.
    #[error("{actor} cannot {action} what they {did} themselves")]
    SameActor {
        /// The actor.
        actor: ActorId,
        /// What they attempted.
        action: &'static str,
        /// What they did before.
        did: &'static str,
    },

    // Structure.
    /// The workstream exists already.
    #[error("workstream {workstream} exists already")]
    WorkstreamExists {
        /// The workstream.
        workstream: WorkstreamCode,
    },
    /// The workstream is unknown.
    #[error("workstream {workstream} is not defined")]
    UnknownWorkstream {
        /// The workstream.
        workstream: WorkstreamCode,
    },
    /// The category is not in the grant's rule set.
    #[error("category {category} is not in rule set {rule_set}")]
    UnknownCategory {
        /// The category.
        category: CategoryCode,
        /// The grant's rule set.
        rule_set: RuleSetId,
    },
    /// The budget line exists already.
    #[error("budget line {line} exists already")]
    LineExists {
        /// The line.
        line: LineId,
    },
    /// The budget line is unknown.
    #[error("budget line {line} is not open")]
    UnknownLine {
        /// The line.
        line: LineId,
    },

    // Money.
    /// The lines would add up to more than the award.
    #[error(
        "lines would total {} against an award of {award}: {excess} too much",
        allocated_after(allocated, requested)
    )]
    ExceedsAward {
        /// The award.
        award: Money,
        /// Already allocated to lines.
        allocated: Money,
        /// The new line's amount.
        requested: Money,
        /// By how much the award is exceeded.
        excess: Money,
    },
    /// The indirect line would exceed rate x base.
    #[error("indirect costs of {indirect} exceed the cap of {cap} ({rate} x base {base})")]
    IndirectCapExceeded {
        /// The cap: rate x base.
        cap: Money,
        /// The indirect amount.
        indirect: Money,
        /// The base (direct excluding subcontracting).
        base: Money,
        /// The grant's indirect rate.
        rate: Decimal,
    },
    /// The deltas of a reallocation do not sum to zero.
    #[error("reallocation deltas sum to {net}, not zero")]
    ReallocationNotBalanced {
        /// Their sum.
        net: Money,
    },
    /// A reallocation names a line twice, or has fewer than two lines.
    #[error("a reallocation needs at least two distinct lines with non-zero deltas")]
    ReallocationMalformed,
    /// A line whose category cannot take part in reallocations.
    #[error("line {line} (category {category}) is not transferable")]
    LineNotTransferable {
        /// The line.
        line: LineId,
        /// Its category.
        category: CategoryCode,
    },
    /// Not enough available on a line, at the effective date or later.
    #[error("line {line} has {available} available (on {on}); {requested} requested")]
    InsufficientAvailable {
        /// The line.
        line: LineId,
        /// What is available: current - committed - spent.
        available: Money,
        /// What was asked for.
        requested: Money,
        /// The date at which availability is lowest.
        on: NaiveDate,
    },
    /// The reallocation exists already.
    #[error("reallocation {reallocation} exists already")]
    ReallocationExists {
        /// The reallocation.
        reallocation: ReallocationId,
    },
    /// The reallocation is unknown.
    #[error("reallocation {reallocation} does not exist")]
    UnknownReallocation {
        /// The reallocation.
        reallocation: ReallocationId,
    },
    /// The reallocation was decided already.
    #[error("reallocation {reallocation} is not pending")]
    ReallocationNotPending {
        /// The reallocation.
        reallocation: ReallocationId,
    },

    // Commitments and expenditures.
    /// An expenditure counts from the day it was incurred: another
    /// effective date contradicts it.
    #[error("an expenditure's effective date is the day it was incurred ({incurred_on}), not {effective_date}")]
    EffectiveDateIsIncurredOn {
        /// The effective date given.
        effective_date: NaiveDate,
        /// The expenditure's `incurred_on`.
        incurred_on: NaiveDate,
    },
    /// The commitment exists already.
    #[error("commitment {commitment} exists already")]
    CommitmentExists {
        /// The commitment.
        commitment: CommitmentId,
    },
    /// The commitment is unknown.
    #[error("commitment {commitment} does not exist")]
    UnknownCommitment {
        /// The commitment.
        commitment: CommitmentId,
    },
    /// The commitment is closed.
    #[error("commitment {commitment} is closed")]
    CommitmentIsClosed {
        /// The commitment.
        commitment: CommitmentId,
    },
    /// The commitment is on another line than the expenditure.
    #[error("commitment {commitment} is on line {commitment_line}, not {line}")]
    CommitmentOnOtherLine {
        /// The commitment.
        commitment: CommitmentId,
        /// Its line.
        commitment_line: LineId,
        /// The expenditure's line.
        line: LineId,
    },
    /// A liquidation larger than the commitment's open amount.
    #[error("commitment {commitment} has {open} open; {requested} would be liquidated")]
    ExceedsOpenCommitment {
        /// The commitment.
        commitment: CommitmentId,
        /// Its open amount.
        open: Money,
        /// The expenditure's amount.
        requested: Money,
    },
    /// A foreign-currency cost without its conversion.
    #[error("a cost in {currency} needs a conversion into {grant_currency}")]
    ConversionMissing {
        /// The cost's currency.
        currency: Currency,
        /// The grant's currency.
        grant_currency: Currency,
    },
    /// A conversion given for a cost in the grant's own currency.
    #[error("a cost in the grant's currency {currency} takes no conversion")]
    ConversionNotApplicable {
        /// The grant's currency.
        currency: Currency,
    },
    /// A date outside the grant's (possibly extended) period.
    #[error("{date} is outside the grant period {start} to {end}")]
    OutsideGrantPeriod {
        /// The date given.
        date: NaiveDate,
        /// The grant's start.
        start: NaiveDate,
        /// The grant's effective end.
        end: NaiveDate,
    },
    /// A date inside a closed reporting period.
    #[error("{date} falls in reporting period {period}, which is closed")]
    PeriodIsClosed {
        /// The period.
        period: PeriodId,
        /// The date given.
        date: NaiveDate,
    },
    /// The supplier's invoice was recorded already.
    #[error("invoice {invoice} of {supplier} is already recorded as {expenditure}")]
    DuplicateInvoice {
        /// The supplier.
        supplier: String,
        /// The invoice.
        invoice: String,
        /// The expenditure that has it.
        expenditure: ExpenditureId,
    },
    /// The expenditure exists already.
    #[error("expenditure {expenditure} exists already")]
    ExpenditureExists {
        /// The expenditure.
        expenditure: ExpenditureId,
    },
    /// The expenditure is unknown.
    #[error("expenditure {expenditure} does not exist")]
    UnknownExpenditure {
        /// The expenditure.
        expenditure: ExpenditureId,
    },
    /// The expenditure was reversed already.
    #[error("expenditure {expenditure} was reversed already")]
    AlreadyReversed {
        /// The expenditure.
        expenditure: ExpenditureId,
    },
    /// A correction must replace a reversed expenditure.
    #[error("expenditure {expenditure} is not reversed, so nothing can correct it")]
    CorrectsUnreversed {
        /// The expenditure named by `correction_of`.
        expenditure: ExpenditureId,
    },

    // Amendments, milestones, periods.
    /// The amendment exists already.
    #[error("amendment {amendment} exists already")]
    AmendmentExists {
        /// The amendment.
        amendment: AmendmentId,
    },
    /// The amendment is unknown.
    #[error("amendment {amendment} does not exist")]
    UnknownAmendment {
        /// The amendment.
        amendment: AmendmentId,
    },
    /// The amendment was decided already.
    #[error("amendment {amendment} is not pending")]
    AmendmentNotPending {
        /// The amendment.
        amendment: AmendmentId,
    },
    /// An extension that does not extend.
    #[error("the proposed end {proposed_end} is not after the current end {end}")]
    ExtensionNotLater {
        /// The effective end now.
        end: NaiveDate,
        /// The end asked for.
        proposed_end: NaiveDate,
    },
    /// The milestone exists already.
    #[error("milestone {milestone} exists already")]
    MilestoneExists {
        /// The milestone.
        milestone: MilestoneId,
    },
    /// The milestone is unknown.
    #[error("milestone {milestone} does not exist")]
    UnknownMilestone {
        /// The milestone.
        milestone: MilestoneId,
    },
    /// The milestone is achieved or cancelled.
    #[error("milestone {milestone} is {state}")]
    MilestoneSettled {
        /// The milestone.
        milestone: MilestoneId,
        /// `achieved` or `cancelled`.
        state: &'static str,
    },
    /// A due date past the grant's end without an amendment reaching it.
    #[error("{due} is after the grant's end {end} and no pending or approved amendment reaches it")]
    DueBeyondEnd {
        /// The due date.
        due: NaiveDate,
        /// The grant's effective end.
        end: NaiveDate,
    },
    /// The cited amendment does not reach the due date, or was rejected.
    #[error("amendment {amendment} does not back a due date of {due}")]
    AmendmentDoesNotReach {
        /// The amendment.
        amendment: AmendmentId,
        /// The due date.
        due: NaiveDate,
    },
    /// A milestone achieved in the future or before the grant started.
    #[error("achieved on {achieved_on} must be between the grant start {start} and today {today}")]
    AchievedOutsideRange {
        /// The date given.
        achieved_on: NaiveDate,
        /// The grant's start.
        start: NaiveDate,
        /// Today.
        today: NaiveDate,
    },
    /// The reporting period exists already.
    #[error("reporting period {period} exists already")]
    PeriodExists {
        /// The period.
        period: PeriodId,
    },
    /// The reporting period overlaps another.
    #[error("reporting period {period} overlaps {other}")]
    PeriodsOverlap {
        /// The new period.
        period: PeriodId,
        /// The one it overlaps.
        other: PeriodId,
    },
    /// The reporting period is unknown.
    #[error("reporting period {period} does not exist")]
    UnknownPeriod {
        /// The period.
        period: PeriodId,
    },
    /// Closing a closed period, or reopening an open one.
    #[error("reporting period {period} is already {state}")]
    PeriodAlready {
        /// The period.
        period: PeriodId,
        /// `open` or `closed`.
        state: &'static str,
    },
    /// Money arithmetic failed (overflow).
    ///
    /// Serialised as `{"code": "money", "error": {"kind": ..., ...}}`: the
    /// money error nests under `error`, because its own members (the
    /// refused currency's `code`) would otherwise overwrite the tag.
    #[error(transparent)]
    Money(
        #[from]
        #[serde(serialize_with = "nested_money_error")]
        MoneyError,
    ),
}

fn nested_money_error<S: serde::Serializer>(error: &MoneyError, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut members = serializer.serialize_struct("MoneyError", 1)?;
    members.serialize_field("error", error)?;
    members.end()
}

fn allocated_after(allocated: &Money, requested: &Money) -> String {
    allocated.checked_add(requested).map_or_else(|_| "?".to_owned(), |m| m.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_wrapped_money_error_keeps_the_money_code() {
        let e = DomainError::Money(MoneyError::UnknownCurrency { code: "XYZ".into() });
        let value = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(value, json!({"code": "money", "error": {"kind": "unknown_currency", "code": "XYZ"}}));
        let overflow = serde_json::to_value(DomainError::Money(MoneyError::Overflow)).unwrap_or_default();
        assert_eq!(overflow, json!({"code": "money", "error": {"kind": "overflow"}}));
    }
}
