//! Which field of a write's body a refusal of the grant's rules is about,
//! so that a form can show the error beside that field: a refused command's
//! problem carries `errors: [{pointer, detail}]` like an invalid body's,
//! besides the rule's own members. Only refusals about one field of the
//! body say one; refusals about the path (an unknown milestone) or the
//! grant as a whole (closed) name none.

use domain::DomainError as D;
use domain::grant::GrantCommand as C;

/// The body field (a JSON pointer) `error` is about, for `command`.
pub fn pointer(command: &C, error: &D) -> Option<&'static str> {
    let amount = "/amount/amount";
    let field = match (command, error) {
        (_, D::ReasonRequired { .. }) => "/reason",
        (_, D::EffectiveDateIsIncurredOn { .. }) => "/effective_date",
        (_, D::AmountNotPositive { .. } | D::AmountAboveLimit { .. }) => match command {
            C::RequestReallocation { .. } => "/deltas",
            _ => amount,
        },
        (_, D::WrongCurrency { .. } | D::CurrencyNotAccepted { .. }) => "/amount/currency",
        (_, D::ConversionMissing { .. } | D::ConversionNotApplicable { .. }) => "/conversion",
        (C::RecordExpenditure { .. }, D::ExpenditureExists { .. }) => "/id",
        (C::RecordExpenditure { .. }, D::UnknownLine { .. }) => "/line",
        (C::RecordExpenditure { .. }, D::OutsideGrantPeriod { .. } | D::PeriodIsClosed { .. }) => "/incurred_on",
        (C::RecordExpenditure { .. }, D::DuplicateInvoice { .. }) => "/invoice",
        (
            C::RecordExpenditure { .. },
            D::UnknownCommitment { .. } | D::CommitmentIsClosed { .. } | D::CommitmentOnOtherLine { .. },
        ) => "/commitment",
        (C::RecordExpenditure { .. }, D::ExceedsOpenCommitment { .. }) => amount,
        (C::RecordExpenditure { .. }, D::UnknownExpenditure { .. } | D::CorrectsUnreversed { .. }) => "/correction_of",
        (C::RaiseCommitment { .. }, D::CommitmentExists { .. }) => "/id",
        (C::RaiseCommitment { .. }, D::UnknownLine { .. }) => "/line",
        (C::RaiseCommitment { .. }, D::InsufficientAvailable { .. }) => amount,
        (C::RaiseCommitment { .. }, D::OutsideGrantPeriod { .. }) => "/effective_date",
        (C::RequestReallocation { .. }, D::ReallocationExists { .. }) => "/id",
        (
            C::RequestReallocation { .. },
            D::UnknownLine { .. }
            | D::ReallocationNotBalanced { .. }
            | D::ReallocationMalformed
            | D::LineNotTransferable { .. }
            | D::InsufficientAvailable { .. }
            | D::ExceedsAward { .. }
            | D::IndirectCapExceeded { .. },
        ) => "/deltas",
        (C::AchieveMilestone { .. }, D::AchievedOutsideRange { .. }) => "/achieved_on",
        (C::PlanMilestone { .. }, D::MilestoneExists { .. }) => "/id",
        (
            C::PlanMilestone { .. } | C::RescheduleMilestone { .. },
            D::DueBeyondEnd { .. } | D::OutsideGrantPeriod { .. },
        ) => "/due_on",
        (
            C::PlanMilestone { .. } | C::RescheduleMilestone { .. },
            D::AmendmentDoesNotReach { .. } | D::UnknownAmendment { .. },
        ) => "/amendment",
        (C::PlanMilestone { .. }, D::UnknownWorkstream { .. }) => "/workstream",
        (C::OpenBudgetLine { .. }, D::UnknownWorkstream { .. }) => "/workstream",
        (C::OpenBudgetLine { .. }, D::UnknownCategory { .. }) => "/category",
        (C::OpenBudgetLine { .. }, D::ExceedsAward { .. } | D::IndirectCapExceeded { .. }) => amount,
        (C::DefineWorkstream { .. }, D::WorkstreamExists { .. }) => "/code",
        (C::RequestAmendment { .. }, D::AmendmentExists { .. }) => "/id",
        (C::RequestAmendment { .. }, D::ExtensionNotLater { .. }) => "/proposed_end",
        _ => return None,
    };
    Some(field)
}
