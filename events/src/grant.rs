//! The grant stream's events (`grant-<id>`): the consistency boundary for
//! money and time. Past tense, one closed enum.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{
    ActorId, AmendmentId, CategoryCode, CommitmentId, ExpenditureId, GrantId, LineId, MilestoneId, PeriodId,
    ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use crate::money::{Conversion, Money};

/// A grant was awarded: the first event of its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantAwarded {
    /// The grant.
    pub grant_id: GrantId,
    /// The programme it belongs to.
    pub programme_id: ProgrammeId,
    /// Who funds it (e.g. "FNR").
    pub funder: String,
    /// Its title.
    pub title: String,
    /// Its short name.
    pub acronym: String,
    /// The organisation that receives it.
    pub beneficiary: String,
    /// The total award; its currency is the grant's currency.
    pub award: Money,
    /// First day of the grant period.
    pub start: NaiveDate,
    /// Last day of the grant period (before any extension).
    pub end: NaiveDate,
    /// The funder's rule set the grant was awarded under.
    pub rule_set: RuleSetId,
    /// Indirect cost rate on the rule set's base (e.g. "0.25").
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "String")]
    pub indirect_rate: Decimal,
}

/// A workstream (flagship programme, work package) was defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkstreamDefined {
    /// Its code: `C0`, `FP1`.
    pub code: WorkstreamCode,
    /// Its title.
    pub title: String,
    /// Who leads it, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<ActorId>,
}

/// A reporting period was defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportingPeriodDefined {
    /// The period.
    pub period_id: PeriodId,
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// When its report is due.
    pub report_due: NaiveDate,
}

/// A budget line was opened with its original amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetLineOpened {
    /// `<workstream>-<category>`.
    pub line_id: LineId,
    /// The workstream (`GRANT` for the indirect line).
    pub workstream: WorkstreamCode,
    /// The rule set's category.
    pub category: CategoryCode,
    /// The original amount.
    pub amount: Money,
}

/// One line's change in a reallocation: negative moves money out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineDelta {
    /// The line.
    pub line: LineId,
    /// Signed amount in the grant's currency.
    pub amount: Money,
}

/// A reallocation between lines was requested (the envelope's actor is the requester).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReallocationRequested {
    /// The request.
    pub reallocation_id: ReallocationId,
    /// The changes, summing to zero.
    pub deltas: Vec<LineDelta>,
}

/// A reallocation was approved (the envelope's actor is the approver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReallocationApproved {
    /// The request.
    pub reallocation_id: ReallocationId,
}

/// A reallocation was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReallocationRejected {
    /// The request.
    pub reallocation_id: ReallocationId,
}

/// What an amendment changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AmendmentKind {
    /// The period is extended; the award is not.
    NoCostExtension,
}

/// An amendment was requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendmentRequested {
    /// The request.
    pub amendment_id: AmendmentId,
    /// What it changes.
    pub kind: AmendmentKind,
    /// The end it asks for.
    pub proposed_end: NaiveDate,
}

/// An amendment was approved: the grant's effective end moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendmentApproved {
    /// The request.
    pub amendment_id: AmendmentId,
    /// The new end of the grant period.
    pub new_end: NaiveDate,
}

/// An amendment was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendmentRejected {
    /// The request.
    pub amendment_id: AmendmentId,
}

/// A cost in a currency other than the grant's, with its conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignCost {
    /// The amount as invoiced.
    pub amount: Money,
    /// How it was converted into the grant's currency.
    pub conversion: Conversion,
}

/// Money was promised (a purchase order raised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitmentRaised {
    /// The commitment.
    pub commitment_id: CommitmentId,
    /// The line it binds.
    pub line: LineId,
    /// The amount in the grant's currency.
    pub amount: Money,
    /// The original foreign amount, when converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<ForeignCost>,
    /// The supplier, by id.
    pub supplier: String,
    /// The purchase order's reference.
    pub reference: String,
}

/// A commitment was closed, releasing its open remainder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitmentClosed {
    /// The commitment.
    pub commitment_id: CommitmentId,
    /// The open remainder released back to the line.
    pub released: Money,
}

/// Part of a commitment paid by an expenditure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Liquidation {
    /// The commitment.
    pub commitment_id: CommitmentId,
    /// How much of it this expenditure pays, in the grant's currency.
    pub amount: Money,
}

/// A cost was incurred (schema version 2; version 1 nested supplier and
/// invoice under `document` and had no `correction_of`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpenditureRecorded {
    /// The expenditure.
    pub expenditure_id: ExpenditureId,
    /// The line it is charged to.
    pub line: LineId,
    /// The amount in the grant's currency.
    pub amount: Money,
    /// The original foreign amount, when converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<ForeignCost>,
    /// When the cost was incurred (its effective date).
    pub incurred_on: NaiveDate,
    /// The supplier, by id.
    pub supplier: String,
    /// The supplier's invoice number.
    pub invoice: String,
    /// The commitment it pays, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidates: Option<Liquidation>,
    /// The reversed expenditure this one replaces, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction_of: Option<ExpenditureId>,
}

/// An expenditure was reversed (the envelope carries the reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpenditureReversed {
    /// The reversed expenditure.
    pub expenditure_id: ExpenditureId,
}

/// What kind of dated promise a milestone is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MilestoneKind {
    /// A milestone.
    Milestone,
    /// A deliverable.
    Deliverable,
    /// A report to the funder.
    Report,
}

/// A milestone was planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MilestonePlanned {
    /// The milestone.
    pub milestone_id: MilestoneId,
    /// Its workstream.
    pub workstream: WorkstreamCode,
    /// Milestone, deliverable or report.
    pub kind: MilestoneKind,
    /// Its title.
    pub title: String,
    /// Its baseline due date.
    pub due_on: NaiveDate,
}

/// A milestone's due date moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MilestoneRescheduled {
    /// The milestone.
    pub milestone_id: MilestoneId,
    /// The due date before.
    pub from: NaiveDate,
    /// The due date after.
    pub to: NaiveDate,
    /// The amendment that backs a date past the grant's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amendment: Option<AmendmentId>,
}

/// A milestone was achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MilestoneAchieved {
    /// The milestone.
    pub milestone_id: MilestoneId,
    /// When.
    pub achieved_on: NaiveDate,
    /// Where the proof is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// A milestone was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MilestoneCancelled {
    /// The milestone.
    pub milestone_id: MilestoneId,
}

/// A reporting period was closed: nothing more may be posted into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportingPeriodClosed {
    /// The period.
    pub period_id: PeriodId,
    /// Direct costs incurred in the period at closing.
    pub spent: Money,
}

/// A closed reporting period was reopened (the envelope's actor approved it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportingPeriodReopened {
    /// The period.
    pub period_id: PeriodId,
}

/// The grant was closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantClosed {
    /// When.
    pub closed_on: NaiveDate,
}

crate::event_enum! {
    /// Everything that happens to a grant.
    GrantEvent {
        GrantAwarded = "GrantAwarded" v 1,
        WorkstreamDefined = "WorkstreamDefined" v 1,
        ReportingPeriodDefined = "ReportingPeriodDefined" v 1,
        BudgetLineOpened = "BudgetLineOpened" v 1,
        ReallocationRequested = "ReallocationRequested" v 1,
        ReallocationApproved = "ReallocationApproved" v 1,
        ReallocationRejected = "ReallocationRejected" v 1,
        AmendmentRequested = "AmendmentRequested" v 1,
        AmendmentApproved = "AmendmentApproved" v 1,
        AmendmentRejected = "AmendmentRejected" v 1,
        CommitmentRaised = "CommitmentRaised" v 1,
        CommitmentClosed = "CommitmentClosed" v 1,
        ExpenditureRecorded = "ExpenditureRecorded" v 2,
        ExpenditureReversed = "ExpenditureReversed" v 1,
        MilestonePlanned = "MilestonePlanned" v 1,
        MilestoneRescheduled = "MilestoneRescheduled" v 1,
        MilestoneAchieved = "MilestoneAchieved" v 1,
        MilestoneCancelled = "MilestoneCancelled" v 1,
        ReportingPeriodClosed = "ReportingPeriodClosed" v 1,
        ReportingPeriodReopened = "ReportingPeriodReopened" v 1,
        GrantClosed = "GrantClosed" v 1,
    }
}
