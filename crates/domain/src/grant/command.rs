//! What a programme manager, finance officer or coordinator can ask of a grant.

use crate::error::DomainError;
use chrono::NaiveDate;
use events::grant::{AmendmentKind, MilestoneKind};
use events::{
    ActorId, AmendmentId, CategoryCode, CommitmentId, Conversion, ExpenditureId, GrantId, LineId, MilestoneId, Money,
    PeriodId, ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;

/// Award a grant (the first command of a grant's stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwardGrant {
    /// The grant.
    pub grant_id: GrantId,
    /// Its programme (must exist).
    pub programme_id: ProgrammeId,
    /// The funder.
    pub funder: String,
    /// Title.
    pub title: String,
    /// Short name.
    pub acronym: String,
    /// The receiving organisation.
    pub beneficiary: String,
    /// The award; its currency becomes the grant's.
    pub award: Money,
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// The funder's rule set.
    pub rule_set: RuleSetId,
    /// Indirect rate; `None` takes the rule set's maximum.
    pub indirect_rate: Option<Decimal>,
}

/// One line's change in a requested reallocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The line.
    pub line: LineId,
    /// Signed amount.
    pub amount: Money,
}

/// Every command on a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantCommand {
    /// Award the grant.
    Award(AwardGrant),
    /// Define a workstream.
    DefineWorkstream {
        /// Its code.
        code: WorkstreamCode,
        /// Its title.
        title: String,
        /// Its lead, by id.
        lead: Option<ActorId>,
    },
    /// Define a reporting period.
    DefineReportingPeriod {
        /// The period.
        period_id: PeriodId,
        /// First day.
        start: NaiveDate,
        /// Last day.
        end: NaiveDate,
        /// Report due.
        report_due: NaiveDate,
    },
    /// Open a budget line `<workstream>-<category>` (`GRANT-IND` for indirect costs).
    OpenBudgetLine {
        /// The workstream (`GRANT` for the indirect line).
        workstream: WorkstreamCode,
        /// The rule set's category.
        category: CategoryCode,
        /// The original amount.
        amount: Money,
    },
    /// Ask to move money between lines.
    RequestReallocation {
        /// The request.
        reallocation_id: ReallocationId,
        /// Signed deltas summing to zero.
        deltas: Vec<Delta>,
    },
    /// Approve a pending reallocation (four eyes).
    ApproveReallocation {
        /// The request.
        reallocation_id: ReallocationId,
    },
    /// Reject a pending reallocation.
    RejectReallocation {
        /// The request.
        reallocation_id: ReallocationId,
    },
    /// Ask for an amendment.
    RequestAmendment {
        /// The request.
        amendment_id: AmendmentId,
        /// What it changes.
        kind: AmendmentKind,
        /// The end asked for.
        proposed_end: NaiveDate,
    },
    /// Approve a pending amendment.
    ApproveAmendment {
        /// The request.
        amendment_id: AmendmentId,
    },
    /// Reject a pending amendment.
    RejectAmendment {
        /// The request.
        amendment_id: AmendmentId,
    },
    /// Raise a commitment (purchase order).
    RaiseCommitment {
        /// The commitment.
        commitment_id: CommitmentId,
        /// The line it binds.
        line: LineId,
        /// The amount, in the grant's currency or converted.
        amount: Money,
        /// Required when `amount` is in another currency.
        conversion: Option<Conversion>,
        /// Supplier id.
        supplier: String,
        /// Purchase order reference.
        reference: String,
    },
    /// Close a commitment, releasing its open remainder.
    CloseCommitment {
        /// The commitment.
        commitment_id: CommitmentId,
    },
    /// Record a cost.
    RecordExpenditure {
        /// The expenditure.
        expenditure_id: ExpenditureId,
        /// The line charged.
        line: LineId,
        /// The amount, in the grant's currency or converted.
        amount: Money,
        /// Required when `amount` is in another currency.
        conversion: Option<Conversion>,
        /// When incurred.
        incurred_on: NaiveDate,
        /// Supplier id.
        supplier: String,
        /// Supplier's invoice number.
        invoice: String,
        /// The commitment it pays, if any.
        commitment: Option<CommitmentId>,
        /// The reversed expenditure it replaces, if any.
        correction_of: Option<ExpenditureId>,
    },
    /// Reverse an expenditure (needs a reason).
    ReverseExpenditure {
        /// The expenditure.
        expenditure_id: ExpenditureId,
    },
    /// Plan a milestone.
    PlanMilestone {
        /// The milestone.
        milestone_id: MilestoneId,
        /// Its workstream.
        workstream: WorkstreamCode,
        /// Milestone, deliverable or report.
        kind: MilestoneKind,
        /// Title.
        title: String,
        /// Baseline due date.
        due_on: NaiveDate,
        /// An amendment backing a date past the grant's end.
        amendment: Option<AmendmentId>,
    },
    /// Move a milestone's due date (needs a reason).
    RescheduleMilestone {
        /// The milestone.
        milestone_id: MilestoneId,
        /// The new due date.
        due_on: NaiveDate,
        /// An amendment backing a date past the grant's end.
        amendment: Option<AmendmentId>,
    },
    /// Mark a milestone achieved.
    AchieveMilestone {
        /// The milestone.
        milestone_id: MilestoneId,
        /// When.
        achieved_on: NaiveDate,
        /// Where the proof is.
        evidence: Option<String>,
    },
    /// Cancel a milestone (needs a reason).
    CancelMilestone {
        /// The milestone.
        milestone_id: MilestoneId,
    },
    /// Close a reporting period.
    ClosePeriod {
        /// The period.
        period_id: PeriodId,
    },
    /// Reopen a closed reporting period (four eyes, needs a reason).
    ReopenPeriod {
        /// The period.
        period_id: PeriodId,
    },
    /// Close the grant.
    CloseGrant {
        /// When.
        closed_on: NaiveDate,
    },
}

impl GrantCommand {
    /// The business date of the fact the command records: `given`, else
    /// `today`; an expenditure's is always its `incurred_on`, and a `given`
    /// date that differs is refused rather than ignored.
    pub fn effective_date(&self, given: Option<NaiveDate>, today: NaiveDate) -> Result<NaiveDate, DomainError> {
        match (self, given) {
            (GrantCommand::RecordExpenditure { incurred_on, .. }, Some(given)) if given != *incurred_on => {
                Err(DomainError::EffectiveDateIsIncurredOn { effective_date: given, incurred_on: *incurred_on })
            }
            (GrantCommand::RecordExpenditure { incurred_on, .. }, _) => Ok(*incurred_on),
            (_, given) => Ok(given.unwrap_or(today)),
        }
    }

    /// The command's name, for logs and spans.
    pub fn name(&self) -> &'static str {
        match self {
            GrantCommand::Award(_) => "award_grant",
            GrantCommand::DefineWorkstream { .. } => "define_workstream",
            GrantCommand::DefineReportingPeriod { .. } => "define_reporting_period",
            GrantCommand::OpenBudgetLine { .. } => "open_budget_line",
            GrantCommand::RequestReallocation { .. } => "request_reallocation",
            GrantCommand::ApproveReallocation { .. } => "approve_reallocation",
            GrantCommand::RejectReallocation { .. } => "reject_reallocation",
            GrantCommand::RequestAmendment { .. } => "request_amendment",
            GrantCommand::ApproveAmendment { .. } => "approve_amendment",
            GrantCommand::RejectAmendment { .. } => "reject_amendment",
            GrantCommand::RaiseCommitment { .. } => "raise_commitment",
            GrantCommand::CloseCommitment { .. } => "close_commitment",
            GrantCommand::RecordExpenditure { .. } => "record_expenditure",
            GrantCommand::ReverseExpenditure { .. } => "reverse_expenditure",
            GrantCommand::PlanMilestone { .. } => "plan_milestone",
            GrantCommand::RescheduleMilestone { .. } => "reschedule_milestone",
            GrantCommand::AchieveMilestone { .. } => "achieve_milestone",
            GrantCommand::CancelMilestone { .. } => "cancel_milestone",
            GrantCommand::ClosePeriod { .. } => "close_period",
            GrantCommand::ReopenPeriod { .. } => "reopen_period",
            GrantCommand::CloseGrant { .. } => "close_grant",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn an_expenditure_counts_from_its_incurred_on_and_nothing_else() {
        let spend = GrantCommand::RecordExpenditure {
            expenditure_id: ExpenditureId::parse("E1").unwrap_or_else(|e| panic!("{e}")),
            line: LineId::parse("WP1-PER").unwrap_or_else(|e| panic!("{e}")),
            amount: Money::parse("1.00", events::Currency::EUR).unwrap_or_else(|e| panic!("{e}")),
            conversion: None,
            incurred_on: d("2022-04-04"),
            supplier: "s".into(),
            invoice: "i".into(),
            commitment: None,
            correction_of: None,
        };
        let today = d("2022-09-01");
        assert_eq!(spend.effective_date(None, today), Ok(d("2022-04-04")));
        assert_eq!(spend.effective_date(Some(d("2022-04-04")), today), Ok(d("2022-04-04")));
        assert_eq!(
            spend.effective_date(Some(d("2022-05-05")), today),
            Err(DomainError::EffectiveDateIsIncurredOn {
                effective_date: d("2022-05-05"),
                incurred_on: d("2022-04-04")
            })
        );
        let close = GrantCommand::ClosePeriod { period_id: PeriodId::parse("P1").unwrap_or_else(|e| panic!("{e}")) };
        assert_eq!(close.effective_date(None, today), Ok(today));
        assert_eq!(close.effective_date(Some(d("2022-07-01")), today), Ok(d("2022-07-01")));
    }
}
