//! The NCTCR scenario (docs/scenario.md): the Luxembourg National Centre of
//! Translational Cancer Research's 2022 FNR grant, issued command by command
//! through the handler, each on its own date. It is the project's demo data
//! and the fixture the tests check the rules and the views against.

use chrono::NaiveDate;
use events::grant::{AmendmentKind, MilestoneKind};
use events::{
    ActorId, AmendmentId, CategoryCode, CommitmentId, Conversion, Currency, ExpenditureId, GrantId, IdError, LineId,
    MilestoneId, Money, MoneyError, PeriodId, ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;

use crate::grant::{AwardGrant, Delta, GRANT_WORKSTREAM, GrantCommand};
use crate::handler::{CommandResult, Handler, HandlerError, Issued};
use crate::programme::ProgrammeCommand;

/// The grant's id.
pub const GRANT: &str = "nctcr-2022";
/// Its programme's id.
pub const PROGRAMME: &str = "nctcr";
/// The programme manager: requests reallocations, records costs.
pub const MANAGER: &str = "pm-nctcr";
/// The finance officer: approves, closes periods.
pub const FINANCE: &str = "fo-nctcr";
/// The coordinator: plans and reports milestones.
pub const COORDINATOR: &str = "coord-nctcr";

/// Why the scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A command was refused or the log failed.
    #[error("{step}: {source}")]
    Command {
        /// Which step.
        step: String,
        /// Why.
        source: HandlerError,
    },
    /// A literal of the scenario is malformed (a bug in this file).
    #[error("scenario literal: {0}")]
    Literal(String),
}

impl From<IdError> for ScenarioError {
    fn from(e: IdError) -> Self {
        ScenarioError::Literal(e.to_string())
    }
}

impl From<MoneyError> for ScenarioError {
    fn from(e: MoneyError) -> Self {
        ScenarioError::Literal(e.to_string())
    }
}

/// Parses a 2022 (or other) date literal.
pub fn date(text: &str) -> Result<NaiveDate, ScenarioError> {
    text.parse().map_err(|_| ScenarioError::Literal(format!("date {text}")))
}

/// Parses a euro amount literal.
pub fn eur(text: &str) -> Result<Money, ScenarioError> {
    Ok(Money::parse(text, Currency::EUR)?)
}

/// Issues the scenario's commands, one at a time, each on its own date.
#[derive(Debug)]
pub struct Script<'a> {
    handler: &'a Handler,
    grant: GrantId,
}

impl<'a> Script<'a> {
    /// A script for the NCTCR grant.
    pub fn new(handler: &'a Handler) -> Result<Self, ScenarioError> {
        Ok(Self { handler, grant: GrantId::parse(GRANT)? })
    }

    /// The grant.
    pub fn grant(&self) -> &GrantId {
        &self.grant
    }

    /// Issues `command` on `day` as `actor`, optionally with a reason.
    pub async fn on(
        &self,
        day: &str,
        actor: &str,
        command: GrantCommand,
        reason: Option<&str>,
    ) -> Result<CommandResult, HandlerError> {
        let day =
            date(day).map_err(|_| HandlerError::Unreadable { position: store::Position::START, detail: day.into() })?;
        let actor = ActorId::parse(actor)
            .map_err(|e| HandlerError::Unreadable { position: store::Position::START, detail: e.to_string() })?;
        // Each fact is effective the day it is issued, but an expenditure
        // counts from the day it was incurred, which may be earlier.
        let dated = !matches!(command, GrantCommand::RecordExpenditure { .. });
        let mut issued = Issued::new(command, actor, day);
        issued.effective_date = dated.then_some(day);
        issued.reason = reason.map(str::to_owned);
        self.handler.execute(&self.grant, &issued).await
    }

    async fn step(
        &self,
        day: &str,
        actor: &str,
        command: GrantCommand,
        reason: Option<&str>,
    ) -> Result<(), ScenarioError> {
        let step = format!("{day} {}", command.name());
        self.on(day, actor, command, reason).await.map(|_| ()).map_err(|source| ScenarioError::Command { step, source })
    }
}

fn ws(code: &str) -> Result<WorkstreamCode, ScenarioError> {
    Ok(WorkstreamCode::parse(code)?)
}

fn line(id: &str) -> Result<LineId, ScenarioError> {
    Ok(LineId::parse(id)?)
}

/// The baseline budget (docs/scenario.md): workstream, category, euros.
pub const BUDGET: &[(&str, &str, &str)] = &[
    ("C0", "PER", "30000.00"),
    ("C0", "TRV", "4000.00"),
    ("C0", "OTH", "8000.00"),
    ("FP1", "PER", "24000.00"),
    ("FP1", "CON", "10000.00"),
    ("FP1", "SUB", "12000.00"),
    ("FP2", "PER", "22000.00"),
    ("FP2", "EQP", "6000.00"),
    ("FP2", "OTH", "2000.00"),
    ("FP3", "PER", "18000.00"),
    ("FP3", "SUB", "8000.00"),
    ("FP3", "OTH", "2000.00"),
    ("FP4", "PER", "20000.00"),
    ("FP4", "TRV", "1000.00"),
    ("FP4", "OTH", "3000.00"),
    ("FP5", "PER", "26000.00"),
    ("FP5", "TRV", "3000.00"),
    ("FP5", "OTH", "5000.00"),
    (GRANT_WORKSTREAM, "IND", "46000.00"),
];

/// A planned milestone: id, workstream, kind, title, due, achieved (if on plan).
pub type PlannedMilestone =
    (&'static str, &'static str, MilestoneKind, &'static str, &'static str, Option<&'static str>);

/// The milestones: id, workstream, kind, title, due, achieved (if on plan).
/// M02 and M11 are rescheduled by the script itself.
pub const MILESTONES: &[PlannedMilestone] = &[
    ("M01", "C0", MilestoneKind::Milestone, "Consortium agreement signed", "2022-03-15", Some("2022-03-10")),
    ("M02", "C0", MilestoneKind::Milestone, "Stakeholder kick-off", "2022-03-31", None),
    ("M03", "FP1", MilestoneKind::Deliverable, "Cohort selection criteria", "2022-03-31", Some("2022-03-28")),
    ("M04", "FP2", MilestoneKind::Deliverable, "Data pipeline for tumour models", "2022-06-30", Some("2022-06-27")),
    ("M05", "FP3", MilestoneKind::Milestone, "Monitoring app pilot", "2022-06-30", Some("2022-06-30")),
    ("M06", "FP4", MilestoneKind::Deliverable, "Evaluation framework", "2022-06-15", Some("2022-06-14")),
    ("M07", "FP5", MilestoneKind::Milestone, "Trial access protocol", "2022-05-31", Some("2022-05-31")),
    ("M08", "C0", MilestoneKind::Report, "Interim report", "2022-08-31", Some("2022-08-29")),
    ("M09", "FP1", MilestoneKind::Milestone, "First cohort genotyped", "2022-09-30", Some("2022-09-30")),
    ("M10", "FP3", MilestoneKind::Milestone, "100 patients onboarded", "2022-09-15", Some("2022-09-20")),
    ("M11", "FP2", MilestoneKind::Deliverable, "Proof-of-concept model", "2022-11-15", None),
    (
        "M12",
        "FP4",
        MilestoneKind::Deliverable,
        "Prevention and care evaluation report",
        "2022-12-15",
        Some("2022-12-12"),
    ),
    ("M13", "FP5", MilestoneKind::Milestone, "First patients enrolled in trials", "2022-12-01", Some("2022-11-28")),
    ("M14", "FP1", MilestoneKind::Deliverable, "Stratification model v1", "2022-12-20", Some("2022-12-19")),
    ("M15", "C0", MilestoneKind::Report, "Final report", "2022-12-31", None),
];

/// Loads the whole scenario through `handler`.
pub async fn nctcr(handler: &Handler) -> Result<GrantId, ScenarioError> {
    nctcr_until(handler, "9999-12-31").await
}

/// Loads the scenario's steps dated up to `last_day` (inclusive), to see
/// the grant as it stood then.
pub async fn nctcr_until(handler: &Handler, last_day: &str) -> Result<GrantId, ScenarioError> {
    let s = Script::new(handler)?;
    let programme = ProgrammeId::parse(PROGRAMME)?;
    let mut create = Issued::new(
        ProgrammeCommand::Create { programme_id: programme.clone(), name: "NCTCR".into() },
        ActorId::parse("admin")?,
        date("2021-12-15")?,
    );
    create.reason = Some("FNR award letter".into());
    handler
        .execute_programme(&programme, &create)
        .await
        .map_err(|source| ScenarioError::Command { step: "create programme".into(), source })?;
    set_up(&s, programme).await?;
    // The rest happens through the year: issue it in date order.
    let mut steps = money()?;
    steps.extend(timeline()?);
    steps.sort_by_key(|step| step.0);
    for (day, actor, command, reason) in steps.into_iter().filter(|step| step.0 <= last_day) {
        s.step(day, actor, command, reason).await?;
    }
    Ok(s.grant.clone())
}

async fn set_up(s: &Script<'_>, programme: ProgrammeId) -> Result<(), ScenarioError> {
    let award = AwardGrant {
        grant_id: s.grant.clone(),
        programme_id: programme,
        funder: "FNR".into(),
        title: "National Centre of Translational Cancer Research".into(),
        acronym: "NCTCR".into(),
        beneficiary: "org-nctcr".into(),
        award: eur("250000.00")?,
        start: date("2022-01-01")?,
        end: date("2022-12-31")?,
        rule_set: RuleSetId::parse("FNR-2022")?,
        indirect_rate: None,
    };
    s.step("2022-01-01", FINANCE, GrantCommand::Award(award), Some("FNR award letter")).await?;
    let workstreams = [
        ("C0", "Coordination"),
        ("FP1", "Genetic stratification"),
        ("FP2", "Advanced personalized modelling"),
        ("FP3", "Digital patient monitoring"),
        ("FP4", "Detailed prevention and care evaluation"),
        ("FP5", "Access to trial-based therapies"),
    ];
    for (code, title) in workstreams {
        s.step(
            "2022-01-01",
            MANAGER,
            GrantCommand::DefineWorkstream { code: ws(code)?, title: title.into(), lead: None },
            None,
        )
        .await?;
    }
    for (id, start, end, due) in
        [("P1", "2022-01-01", "2022-06-30", "2022-08-31"), ("P2", "2022-07-01", "2022-12-31", "2023-02-28")]
    {
        let command = GrantCommand::DefineReportingPeriod {
            period_id: PeriodId::parse(id)?,
            start: date(start)?,
            end: date(end)?,
            report_due: date(due)?,
        };
        s.step("2022-01-01", FINANCE, command, None).await?;
    }
    for (workstream, category, amount) in BUDGET {
        let command = GrantCommand::OpenBudgetLine {
            workstream: ws(workstream)?,
            category: CategoryCode::parse(*category)?,
            amount: eur(amount)?,
        };
        s.step("2022-01-01", MANAGER, command, None).await?;
    }
    for (id, workstream, kind, title, due, _) in MILESTONES {
        let command = GrantCommand::PlanMilestone {
            milestone_id: MilestoneId::parse(*id)?,
            workstream: ws(workstream)?,
            kind: *kind,
            title: (*title).into(),
            due_on: date(due)?,
            amendment: None,
        };
        s.step("2022-01-01", COORDINATOR, command, None).await?;
    }
    Ok(())
}

/// An expenditure command in euros.
#[allow(clippy::too_many_arguments)]
pub fn expenditure(
    id: &str,
    line_id: &str,
    amount: Money,
    conversion: Option<Conversion>,
    incurred_on: &str,
    supplier: &str,
    invoice: &str,
    commitment: Option<&str>,
) -> Result<GrantCommand, ScenarioError> {
    Ok(GrantCommand::RecordExpenditure {
        expenditure_id: ExpenditureId::parse(id)?,
        line: line(line_id)?,
        amount,
        conversion,
        incurred_on: date(incurred_on)?,
        supplier: supplier.into(),
        invoice: invoice.into(),
        commitment: commitment.map(CommitmentId::parse).transpose()?,
        correction_of: None,
    })
}

/// A commitment command in euros.
pub fn commitment(id: &str, line_id: &str, amount: &str, reference: &str) -> Result<GrantCommand, ScenarioError> {
    Ok(GrantCommand::RaiseCommitment {
        commitment_id: CommitmentId::parse(id)?,
        line: line(line_id)?,
        amount: eur(amount)?,
        conversion: None,
        supplier: "sup-biolab".into(),
        reference: reference.into(),
    })
}

/// A reallocation command from (line, signed euros) pairs.
pub fn reallocation(id: &str, deltas: &[(&str, &str)]) -> Result<GrantCommand, ScenarioError> {
    let deltas = deltas
        .iter()
        .map(|(l, a)| Ok(Delta { line: line(l)?, amount: eur(a)? }))
        .collect::<Result<_, ScenarioError>>()?;
    Ok(GrantCommand::RequestReallocation { reallocation_id: ReallocationId::parse(id)?, deltas })
}

/// A dated step: day, actor, command, reason.
type Step = (&'static str, &'static str, GrantCommand, Option<&'static str>);

fn money() -> Result<Vec<Step>, ScenarioError> {
    let mut steps: Vec<Step> = Vec::new();
    let usd_rate = Conversion {
        rate: Decimal::new(10800, 4),
        source: "ECB reference rate".into(),
        rate_date: date("2022-04-20")?,
    };
    let usd = Money::parse("3000.00", Currency::USD)?;
    steps.push(("2022-02-15", MANAGER, commitment("PO-001", "FP1-CON", "4200.00", "PO-2022-001")?, None));
    let e02 = expenditure(
        "E02",
        "FP1-CON",
        eur("4180.50")?,
        None,
        "2022-03-10",
        "sup-biolab",
        "BL-2022-0310",
        Some("PO-001"),
    )?;
    steps.push(("2022-03-10", MANAGER, e02, None));
    let close = GrantCommand::CloseCommitment { commitment_id: CommitmentId::parse("PO-001")? };
    steps.push(("2022-03-10", MANAGER, close, Some("delivered in full; invoice below the order")));
    let e01 = expenditure("E01", "C0-PER", eur("7500.00")?, None, "2022-03-31", "payroll", "PAY-2022-Q1", None)?;
    steps.push(("2022-03-31", MANAGER, e01, None));
    let e03 = expenditure("E03", "FP5-OTH", usd, Some(usd_rate), "2022-04-20", "sup-trialnet", "TN-4471", None)?;
    steps.push(("2022-04-20", MANAGER, e03, None));
    let e04 = expenditure("E04", "C0-OTH", eur("6350.00")?, None, "2022-06-08", "sup-venue", "V-0608", None)?;
    steps.push(("2022-06-08", MANAGER, e04, Some("stakeholder kick-off")));
    steps.push(("2022-06-20", MANAGER, commitment("PO-002", "FP3-SUB", "8000.00", "PO-2022-002")?, None));
    let e05 = expenditure("E05", "FP2-EQP", eur("5990.00")?, None, "2022-06-30", "sup-compute", "C-2206", None)?;
    steps.push(("2022-06-30", MANAGER, e05, None));
    let e09 = expenditure("E09", "FP1-PER", eur("12000.00")?, None, "2022-06-30", "payroll", "PAY-2022-H1-FP1", None)?;
    steps.push(("2022-06-30", MANAGER, e09, None));
    let e06 = expenditure(
        "E06",
        "FP3-SUB",
        eur("4000.00")?,
        None,
        "2022-07-15",
        "sup-biolab",
        "BL-2022-0715",
        Some("PO-002"),
    )?;
    steps.push(("2022-07-15", MANAGER, e06, None));
    let r1 = reallocation(
        "R1",
        &[("FP1-CON", "-3000.00"), ("FP5-PER", "3000.00"), ("FP4-OTH", "-1000.00"), ("FP5-TRV", "1000.00")],
    )?;
    steps.push(("2022-07-20", MANAGER, r1, Some("FP5 trial coordination needs more staff and travel")));
    let approve = GrantCommand::ApproveReallocation { reallocation_id: ReallocationId::parse("R1")? };
    steps.push(("2022-07-27", FINANCE, approve, None));
    steps.push(("2022-07-29", FINANCE, GrantCommand::ClosePeriod { period_id: PeriodId::parse("P1")? }, None));
    let e07 = expenditure("E07", "FP4-TRV", eur("640.00")?, None, "2022-09-05", "sup-travel", "TR-0905", None)?;
    steps.push(("2022-09-05", MANAGER, e07, None));
    let reverse = GrantCommand::ReverseExpenditure { expenditure_id: ExpenditureId::parse("E07")? };
    steps.push(("2022-09-20", MANAGER, reverse, Some("charged to the wrong flagship: the trip was for FP5")));
    let mut e08 = expenditure("E08", "FP5-TRV", eur("640.00")?, None, "2022-09-05", "sup-travel", "TR-0905", None)?;
    if let GrantCommand::RecordExpenditure { correction_of, .. } = &mut e08 {
        *correction_of = Some(ExpenditureId::parse("E07")?);
    }
    steps.push(("2022-09-20", MANAGER, e08, Some("replaces E07 on the right line")));
    Ok(steps)
}

fn timeline() -> Result<Vec<Step>, ScenarioError> {
    let mut steps: Vec<Step> = Vec::new();
    let m = |id: &str| MilestoneId::parse(id);
    let reschedule = |id: &str, to: &str, amendment: Option<&str>| -> Result<GrantCommand, ScenarioError> {
        Ok(GrantCommand::RescheduleMilestone {
            milestone_id: m(id)?,
            due_on: date(to)?,
            amendment: amendment.map(AmendmentId::parse).transpose()?,
        })
    };
    let achieve = |id: &str, on: &str| -> Result<GrantCommand, ScenarioError> {
        Ok(GrantCommand::AchieveMilestone { milestone_id: m(id)?, achieved_on: date(on)?, evidence: None })
    };
    steps.push(("2022-03-25", COORDINATOR, reschedule("M02", "2022-06-08", None)?, Some("stakeholders' availability")));
    let mut achievements: Vec<(&str, &'static str)> =
        MILESTONES.iter().filter_map(|(id, _, _, _, _, done)| done.map(|d| (*id, d))).collect();
    achievements.push(("M02", "2022-06-08"));
    for (id, on) in achievements {
        steps.push((on, COORDINATOR, achieve(id, on)?, None));
    }
    let amd = GrantCommand::RequestAmendment {
        amendment_id: AmendmentId::parse("AMD-1")?,
        kind: AmendmentKind::NoCostExtension,
        proposed_end: date("2023-03-31")?,
    };
    steps.push(("2022-11-08", MANAGER, amd, Some("model validation needs three more months")));
    steps.push(("2022-11-10", COORDINATOR, reschedule("M11", "2023-01-31", Some("AMD-1"))?, Some("pending AMD-1")));
    let reject = GrantCommand::RejectAmendment { amendment_id: AmendmentId::parse("AMD-1")? };
    steps.push(("2022-11-30", FINANCE, reject, Some("FNR: no extension for 2022 centres")));
    steps.push(("2022-12-01", COORDINATOR, reschedule("M11", "2022-12-20", None)?, Some("AMD-1 rejected")));
    steps.push(("2022-12-20", COORDINATOR, achieve("M11", "2022-12-20")?, None));
    Ok(steps)
}
