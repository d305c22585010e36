//! The timeline view (API.md): milestones with baseline and current due
//! dates, status relative to a day, slip and reschedules; reporting periods;
//! amendments.

use chrono::{Days, NaiveDate};
use events::grant::{AmendmentKind, MilestoneKind};
use events::{AmendmentId, GrantId, MilestoneId, PeriodId, WorkstreamCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::budget::ViewError;
use crate::ledger::{AsOf, GrantLedger, MilestoneFacts};

/// Days before its due date from which an open milestone is at risk.
pub const AT_RISK_DAYS: u64 = 30;

/// Where a milestone stands relative to a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MilestoneStatus {
    /// Due more than 30 days after the day.
    Planned,
    /// Due within 30 days after the day.
    AtRisk,
    /// Due before the day and not achieved.
    Overdue,
    /// Achieved.
    Achieved,
    /// Cancelled.
    Cancelled,
}

/// One milestone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MilestoneView {
    /// Its id.
    pub id: MilestoneId,
    /// Workstream.
    pub workstream: WorkstreamCode,
    /// Kind.
    pub kind: MilestoneKind,
    /// Title.
    pub title: String,
    /// Due date as planned.
    pub baseline_due: NaiveDate,
    /// Due date after reschedules.
    pub current_due: NaiveDate,
    /// When achieved.
    pub achieved_on: Option<NaiveDate>,
    /// Status relative to `today`.
    pub status: MilestoneStatus,
    /// (achieved_on or current_due) - baseline_due, in days.
    pub slip_days: i64,
    /// How many times rescheduled.
    pub reschedules: usize,
    /// current_due is after the effective end.
    pub beyond_end: bool,
    /// The amendment cited by the latest reschedule.
    pub amendment: Option<AmendmentId>,
}

/// One reporting period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PeriodView {
    /// Its id.
    pub id: PeriodId,
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// Report due.
    pub report_due: NaiveDate,
    /// Closed as of the view's date.
    pub closed: bool,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Not decided.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
}

/// One amendment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AmendmentView {
    /// Its id.
    pub id: AmendmentId,
    /// Kind.
    pub kind: AmendmentKind,
    /// The end asked for (or granted).
    pub proposed_end: NaiveDate,
    /// When requested.
    pub requested_on: NaiveDate,
    /// Status as of the view's date.
    pub status: RequestStatus,
}

/// The timeline of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineView {
    /// The grant.
    pub grant: GrantId,
    /// First day.
    pub start: NaiveDate,
    /// Last day as awarded.
    pub end: NaiveDate,
    /// Last day after approved extensions.
    pub effective_end: NaiveDate,
    /// The day statuses are relative to.
    pub today: NaiveDate,
    /// The business date it is as of.
    pub as_of: Option<NaiveDate>,
    /// The log position it reflects.
    pub position: u64,
    /// Milestones, by id.
    pub milestones: Vec<MilestoneView>,
    /// Reporting periods, by id.
    pub reporting_periods: Vec<PeriodView>,
    /// Amendments, by id.
    pub amendments: Vec<AmendmentView>,
}

/// Where a milestone stands as of a date, whatever the day it is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// The due date after the reschedules counted.
    pub current_due: NaiveDate,
    /// When achieved, if counted.
    pub achieved_on: Option<NaiveDate>,
    /// Cancelled, as of the date.
    pub cancelled: bool,
}

impl Due {
    /// Milestone `m` as of `at`.
    pub(crate) fn of(m: &MilestoneFacts, at: AsOf) -> Self {
        let current_due = m.reschedules.iter().rfind(|r| at.counts(r.on)).map_or(m.baseline_due, |r| r.to);
        Self {
            current_due,
            achieved_on: m.achieved_on.filter(|d| at.counts(*d)),
            cancelled: at.happened(m.cancelled_on),
        }
    }

    /// Neither achieved nor cancelled.
    pub(crate) fn open(self) -> bool {
        self.achieved_on.is_none() && !self.cancelled
    }

    /// Its status on `today`, at risk when due by `at_risk_until`.
    pub(crate) fn status(self, today: NaiveDate, at_risk_until: NaiveDate) -> MilestoneStatus {
        if self.achieved_on.is_some() {
            MilestoneStatus::Achieved
        } else if self.cancelled {
            MilestoneStatus::Cancelled
        } else if self.current_due < today {
            MilestoneStatus::Overdue
        } else if self.current_due <= at_risk_until {
            MilestoneStatus::AtRisk
        } else {
            MilestoneStatus::Planned
        }
    }
}

/// The timeline of `ledger` as of `as_of`, statuses relative to `today`.
pub fn timeline(ledger: &GrantLedger, as_of: Option<NaiveDate>, today: NaiveDate) -> Result<TimelineView, ViewError> {
    let grant = ledger.grant.as_ref().ok_or(ViewError::NotAwarded)?;
    let at = AsOf(as_of);
    let effective_end = ledger.effective_end(at).unwrap_or(grant.end);
    let at_risk_until = today.checked_add_days(Days::new(AT_RISK_DAYS)).unwrap_or(NaiveDate::MAX);
    let milestones = ledger
        .milestones
        .iter()
        .filter(|(_, m)| at.counts(m.planned_on))
        .map(|(id, m)| {
            let reschedules: Vec<_> = m.reschedules.iter().filter(|r| at.counts(r.on)).collect();
            let due = Due::of(m, at);
            let (current_due, achieved_on) = (due.current_due, due.achieved_on);
            let status = due.status(today, at_risk_until);
            MilestoneView {
                id: id.clone(),
                workstream: m.workstream.clone(),
                kind: m.kind,
                title: m.title.clone(),
                baseline_due: m.baseline_due,
                current_due,
                achieved_on,
                status,
                slip_days: (achieved_on.unwrap_or(current_due) - m.baseline_due).num_days(),
                reschedules: reschedules.len(),
                beyond_end: current_due > effective_end,
                amendment: reschedules.last().and_then(|r| r.amendment.clone()),
            }
        })
        .collect();
    let reporting_periods = ledger
        .periods
        .iter()
        .map(|(id, p)| PeriodView {
            id: id.clone(),
            start: p.start,
            end: p.end,
            report_due: p.report_due,
            closed: p.changes.iter().rfind(|(on, _)| at.counts(*on)).is_some_and(|(_, closed)| *closed),
        })
        .collect();
    let amendments = ledger
        .amendments
        .iter()
        .filter(|(_, a)| at.counts(a.requested_on))
        .map(|(id, a)| AmendmentView {
            id: id.clone(),
            kind: a.kind,
            proposed_end: a.proposed_end,
            requested_on: a.requested_on,
            status: match &a.decided {
                Some(d) if at.counts(d.on) && d.approved => RequestStatus::Approved,
                Some(d) if at.counts(d.on) => RequestStatus::Rejected,
                _ => RequestStatus::Pending,
            },
        })
        .collect();
    Ok(TimelineView {
        grant: grant.id.clone(),
        start: grant.start,
        end: grant.end,
        effective_end,
        today,
        as_of,
        position: ledger.position,
        milestones,
        reporting_periods,
        amendments,
    })
}
