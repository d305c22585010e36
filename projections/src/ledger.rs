//! The grant ledger: every dated fact of one grant, folded from its events.
//! It is the one fold behind every view (budget, timeline, funder
//! statement, portfolio), shared by the live projector, full rebuilds and
//! as-of queries, so the three cannot disagree. The views then pick the
//! facts effective on or before a business date.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use events::grant::{AmendmentKind, GrantEvent, LineDelta, MilestoneKind};
use events::{
    ActorId, AmendmentId, CategoryCode, CommitmentId, Currency, Envelope, ExpenditureId, GrantId, LineId, MilestoneId,
    Money, PeriodId, ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::tally::{MoneyFact, Sign, Tally};

/// A grant event as the projections see it: with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projected {
    /// Global position.
    pub position: u64,
    /// Version in the grant's stream.
    pub version: u64,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The event and its envelope.
    pub envelope: Envelope<GrantEvent>,
}

/// What the award fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// The grant.
    pub id: GrantId,
    /// Its programme.
    pub programme: ProgrammeId,
    /// Title.
    pub title: String,
    /// Short name.
    pub acronym: String,
    /// Funder.
    pub funder: String,
    /// The award (its currency is the grant's).
    pub award: Money,
    /// First day.
    pub start: NaiveDate,
    /// Last day as awarded.
    pub end: NaiveDate,
    /// Rule set.
    pub rule_set: RuleSetId,
    /// Indirect rate.
    pub indirect_rate: Decimal,
}

/// A budget line's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFacts {
    /// Workstream.
    pub workstream: WorkstreamCode,
    /// Category.
    pub category: CategoryCode,
    /// When opened.
    pub opened_on: NaiveDate,
    /// As opened.
    pub original: Money,
}

/// A decision on a request: when, by whom, and which way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// Effective date of the decision.
    pub on: NaiveDate,
    /// Who decided.
    pub by: ActorId,
    /// Approved (true) or rejected.
    pub approved: bool,
}

/// A reallocation's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReallocationFacts {
    /// Deltas.
    pub deltas: Vec<LineDelta>,
    /// When requested.
    pub requested_on: NaiveDate,
    /// By whom.
    pub requested_by: ActorId,
    /// The decision, once made.
    pub decided: Option<Decided>,
}

/// An amendment's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendmentFacts {
    /// Kind.
    pub kind: AmendmentKind,
    /// End asked for.
    pub proposed_end: NaiveDate,
    /// When requested.
    pub requested_on: NaiveDate,
    /// The decision, once made.
    pub decided: Option<Decided>,
}

/// A commitment's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentFacts {
    /// Line.
    pub line: LineId,
    /// As raised.
    pub amount: Money,
    /// When raised.
    pub raised_on: NaiveDate,
    /// When closed.
    pub closed_on: Option<NaiveDate>,
}

/// An expenditure's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpenditureFacts {
    /// Line.
    pub line: LineId,
    /// Amount in the grant's currency.
    pub amount: Money,
    /// When incurred.
    pub incurred_on: NaiveDate,
    /// The commitment it liquidated, and how much.
    pub liquidates: Option<(CommitmentId, Money)>,
    /// When reversed.
    pub reversed_on: Option<NaiveDate>,
    /// The reversed expenditure it replaces.
    pub correction_of: Option<ExpenditureId>,
}

/// A reschedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reschedule {
    /// Effective date of the reschedule.
    pub on: NaiveDate,
    /// New due date.
    pub to: NaiveDate,
    /// Amendment cited.
    pub amendment: Option<AmendmentId>,
}

/// A milestone's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestoneFacts {
    /// Workstream.
    pub workstream: WorkstreamCode,
    /// Kind.
    pub kind: MilestoneKind,
    /// Title.
    pub title: String,
    /// When planned (effective date).
    pub planned_on: NaiveDate,
    /// Baseline due date.
    pub baseline_due: NaiveDate,
    /// Reschedules in order.
    pub reschedules: Vec<Reschedule>,
    /// When achieved.
    pub achieved_on: Option<NaiveDate>,
    /// When cancelled (effective date).
    pub cancelled_on: Option<NaiveDate>,
}

/// A reporting period's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodFacts {
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// Report due.
    pub report_due: NaiveDate,
    /// Closings (true) and reopenings (false), dated.
    pub changes: Vec<(NaiveDate, bool)>,
}

/// Every dated fact of one grant.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GrantLedger {
    /// The last applied event's log position.
    pub position: u64,
    /// The last applied event's stream version.
    pub version: u64,
    /// Set by the award.
    pub grant: Option<GrantInfo>,
    /// Workstreams.
    pub workstreams: BTreeMap<WorkstreamCode, String>,
    /// Reporting periods.
    pub periods: BTreeMap<PeriodId, PeriodFacts>,
    /// Budget lines.
    pub lines: BTreeMap<LineId, LineFacts>,
    /// Reallocations.
    pub reallocations: BTreeMap<ReallocationId, ReallocationFacts>,
    /// Amendments.
    pub amendments: BTreeMap<AmendmentId, AmendmentFacts>,
    /// Commitments.
    pub commitments: BTreeMap<CommitmentId, CommitmentFacts>,
    /// Expenditures.
    pub expenditures: BTreeMap<ExpenditureId, ExpenditureFacts>,
    /// Milestones.
    pub milestones: BTreeMap<MilestoneId, MilestoneFacts>,
    /// When closed.
    pub closed_on: Option<NaiveDate>,
    /// Running sums of the money facts, kept by [`GrantLedger::apply`] and
    /// [`GrantLedger::retally`] (derived: not stored, not compared).
    #[serde(skip)]
    pub(crate) tally: Tally,
}

impl GrantLedger {
    /// How many stored facts (rows of the read-model file) the ledger holds,
    /// its header included: the weight the ledger cache counts.
    pub fn fact_count(&self) -> usize {
        1 + self.workstreams.len()
            + self.periods.len()
            + self.lines.len()
            + self.reallocations.len()
            + self.amendments.len()
            + self.commitments.len()
            + self.expenditures.len()
            + self.milestones.len()
    }

    /// The grant's currency, once awarded.
    pub fn currency(&self) -> Option<Currency> {
        self.grant.as_ref().map(|g| g.award.currency())
    }

    /// Applies one event (events of a grant arrive in stream order) and
    /// names the one fact it changed; the header (position, version) always
    /// changes too.
    pub fn apply(&mut self, p: &Projected) -> (FactKind, String) {
        self.position = p.position;
        self.version = p.version;
        let on = p.envelope.context.effective_date;
        let actor = &p.envelope.context.actor;
        let touched = fact_of(&p.envelope.event);
        let money = MoneyFact::of(&p.envelope.event);
        let mut tally = std::mem::take(&mut self.tally);
        let counted = tally.usable(self).is_some();
        if let Some(fact) = money.as_ref().filter(|_| counted) {
            tally.count(self, fact, Sign::Out);
        }
        self.change(p, on, actor);
        if counted {
            if let Some(fact) = &money {
                tally.count(self, fact, Sign::In);
            }
            tally.settle(self);
            self.tally = tally;
        } else if !tally.failed() {
            // Facts were put in without it (a ledger read from the file
            // and not retallied): once, afresh.
            self.tally = Tally::of(self);
        } else {
            self.tally = tally;
        }
        touched
    }

    /// Works the running sums out afresh from every fact (after facts were
    /// put in some other way than [`GrantLedger::apply`]).
    pub fn retally(&mut self) {
        self.tally = Tally::of(self);
    }

    fn change(&mut self, p: &Projected, on: NaiveDate, actor: &ActorId) {
        match &p.envelope.event {
            GrantEvent::GrantAwarded(e) => {
                self.grant = Some(GrantInfo {
                    id: e.grant_id.clone(),
                    programme: e.programme_id.clone(),
                    title: e.title.clone(),
                    acronym: e.acronym.clone(),
                    funder: e.funder.clone(),
                    award: e.award,
                    start: e.start,
                    end: e.end,
                    rule_set: e.rule_set.clone(),
                    indirect_rate: e.indirect_rate,
                });
            }
            GrantEvent::WorkstreamDefined(e) => {
                self.workstreams.insert(e.code.clone(), e.title.clone());
            }
            GrantEvent::ReportingPeriodDefined(e) => {
                let facts = PeriodFacts { start: e.start, end: e.end, report_due: e.report_due, changes: Vec::new() };
                self.periods.insert(e.period_id.clone(), facts);
            }
            GrantEvent::BudgetLineOpened(e) => {
                let facts = LineFacts {
                    workstream: e.workstream.clone(),
                    category: e.category.clone(),
                    opened_on: on,
                    original: e.amount,
                };
                self.lines.insert(e.line_id.clone(), facts);
            }
            GrantEvent::ReallocationRequested(e) => {
                let facts = ReallocationFacts {
                    deltas: e.deltas.clone(),
                    requested_on: on,
                    requested_by: actor.clone(),
                    decided: None,
                };
                self.reallocations.insert(e.reallocation_id.clone(), facts);
            }
            GrantEvent::ReallocationApproved(e) => self.decide_reallocation(&e.reallocation_id, on, actor, true),
            GrantEvent::ReallocationRejected(e) => self.decide_reallocation(&e.reallocation_id, on, actor, false),
            GrantEvent::AmendmentRequested(e) => {
                let facts =
                    AmendmentFacts { kind: e.kind, proposed_end: e.proposed_end, requested_on: on, decided: None };
                self.amendments.insert(e.amendment_id.clone(), facts);
            }
            GrantEvent::AmendmentApproved(e) => {
                if let Some(a) = self.amendments.get_mut(&e.amendment_id) {
                    a.proposed_end = e.new_end;
                    a.decided = Some(Decided { on, by: actor.clone(), approved: true });
                }
            }
            GrantEvent::AmendmentRejected(e) => {
                if let Some(a) = self.amendments.get_mut(&e.amendment_id) {
                    a.decided = Some(Decided { on, by: actor.clone(), approved: false });
                }
            }
            GrantEvent::CommitmentRaised(e) => {
                let facts = CommitmentFacts { line: e.line.clone(), amount: e.amount, raised_on: on, closed_on: None };
                self.commitments.insert(e.commitment_id.clone(), facts);
            }
            GrantEvent::CommitmentClosed(e) => {
                if let Some(c) = self.commitments.get_mut(&e.commitment_id) {
                    c.closed_on = Some(on);
                }
            }
            GrantEvent::ExpenditureRecorded(e) => {
                let facts = ExpenditureFacts {
                    line: e.line.clone(),
                    amount: e.amount,
                    incurred_on: e.incurred_on,
                    liquidates: e.liquidates.as_ref().map(|l| (l.commitment_id.clone(), l.amount)),
                    reversed_on: None,
                    correction_of: e.correction_of.clone(),
                };
                self.expenditures.insert(e.expenditure_id.clone(), facts);
            }
            GrantEvent::ExpenditureReversed(e) => {
                if let Some(x) = self.expenditures.get_mut(&e.expenditure_id) {
                    x.reversed_on = Some(on);
                }
            }
            GrantEvent::MilestonePlanned(e) => {
                let facts = MilestoneFacts {
                    workstream: e.workstream.clone(),
                    kind: e.kind,
                    title: e.title.clone(),
                    planned_on: on,
                    baseline_due: e.due_on,
                    reschedules: Vec::new(),
                    achieved_on: None,
                    cancelled_on: None,
                };
                self.milestones.insert(e.milestone_id.clone(), facts);
            }
            GrantEvent::MilestoneRescheduled(e) => {
                if let Some(m) = self.milestones.get_mut(&e.milestone_id) {
                    m.reschedules.push(Reschedule { on, to: e.to, amendment: e.amendment.clone() });
                }
            }
            GrantEvent::MilestoneAchieved(e) => {
                if let Some(m) = self.milestones.get_mut(&e.milestone_id) {
                    m.achieved_on = Some(e.achieved_on);
                }
            }
            GrantEvent::MilestoneCancelled(e) => {
                if let Some(m) = self.milestones.get_mut(&e.milestone_id) {
                    m.cancelled_on = Some(on);
                }
            }
            GrantEvent::ReportingPeriodClosed(e) => {
                if let Some(period) = self.periods.get_mut(&e.period_id) {
                    period.changes.push((on, true));
                }
            }
            GrantEvent::ReportingPeriodReopened(e) => {
                if let Some(period) = self.periods.get_mut(&e.period_id) {
                    period.changes.push((on, false));
                }
            }
            GrantEvent::GrantClosed(e) => self.closed_on = Some(e.closed_on),
        }
    }

    fn decide_reallocation(&mut self, id: &ReallocationId, on: NaiveDate, by: &ActorId, approved: bool) {
        if let Some(r) = self.reallocations.get_mut(id) {
            r.decided = Some(Decided { on, by: by.clone(), approved });
        }
    }
}

/// The kinds of fact a ledger is made of: the unit in which it is stored,
/// so that an event rewrites one row, not the whole grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FactKind {
    /// Position, version, award, closing.
    Header,
    /// A workstream.
    Workstream,
    /// A reporting period.
    Period,
    /// A budget line.
    Line,
    /// A reallocation.
    Reallocation,
    /// An amendment.
    Amendment,
    /// A commitment.
    Commitment,
    /// An expenditure.
    Expenditure,
    /// A milestone.
    Milestone,
}

impl FactKind {
    /// Every kind.
    pub const ALL: [FactKind; 9] = [
        FactKind::Header,
        FactKind::Workstream,
        FactKind::Period,
        FactKind::Line,
        FactKind::Reallocation,
        FactKind::Amendment,
        FactKind::Commitment,
        FactKind::Expenditure,
        FactKind::Milestone,
    ];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Header => "header",
            FactKind::Workstream => "workstream",
            FactKind::Period => "period",
            FactKind::Line => "line",
            FactKind::Reallocation => "reallocation",
            FactKind::Amendment => "amendment",
            FactKind::Commitment => "commitment",
            FactKind::Expenditure => "expenditure",
            FactKind::Milestone => "milestone",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<FactKind> {
        FactKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The fact an event changes.
fn fact_of(event: &GrantEvent) -> (FactKind, String) {
    use GrantEvent as E;
    let (kind, key) = match event {
        E::GrantAwarded(_) | E::GrantClosed(_) => (FactKind::Header, String::new()),
        E::WorkstreamDefined(e) => (FactKind::Workstream, e.code.to_string()),
        E::ReportingPeriodDefined(e) => (FactKind::Period, e.period_id.to_string()),
        E::ReportingPeriodClosed(e) => (FactKind::Period, e.period_id.to_string()),
        E::ReportingPeriodReopened(e) => (FactKind::Period, e.period_id.to_string()),
        E::BudgetLineOpened(e) => (FactKind::Line, e.line_id.to_string()),
        E::ReallocationRequested(e) => (FactKind::Reallocation, e.reallocation_id.to_string()),
        E::ReallocationApproved(e) => (FactKind::Reallocation, e.reallocation_id.to_string()),
        E::ReallocationRejected(e) => (FactKind::Reallocation, e.reallocation_id.to_string()),
        E::AmendmentRequested(e) => (FactKind::Amendment, e.amendment_id.to_string()),
        E::AmendmentApproved(e) => (FactKind::Amendment, e.amendment_id.to_string()),
        E::AmendmentRejected(e) => (FactKind::Amendment, e.amendment_id.to_string()),
        E::CommitmentRaised(e) => (FactKind::Commitment, e.commitment_id.to_string()),
        E::CommitmentClosed(e) => (FactKind::Commitment, e.commitment_id.to_string()),
        E::ExpenditureRecorded(e) => (FactKind::Expenditure, e.expenditure_id.to_string()),
        E::ExpenditureReversed(e) => (FactKind::Expenditure, e.expenditure_id.to_string()),
        E::MilestonePlanned(e) => (FactKind::Milestone, e.milestone_id.to_string()),
        E::MilestoneRescheduled(e) => (FactKind::Milestone, e.milestone_id.to_string()),
        E::MilestoneAchieved(e) => (FactKind::Milestone, e.milestone_id.to_string()),
        E::MilestoneCancelled(e) => (FactKind::Milestone, e.milestone_id.to_string()),
    };
    (kind, key)
}

/// The header row of a stored ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    position: u64,
    version: u64,
    grant: Option<GrantInfo>,
    closed_on: Option<NaiveDate>,
}

macro_rules! stored_facts {
    ($($kind:ident => $field:ident: $key:ty),* $(,)?) => {
        impl GrantLedger {
            /// One fact as stored JSON; `None` if the ledger has no such fact.
            /// Keys are read as stored (an older log may hold ids that are
            /// refused today), so that every fact the ledger holds is written.
            pub fn fact_json(&self, kind: FactKind, key: &str) -> Result<Option<String>, serde_json::Error> {
                events::ids::reading_stored(|| self.stored_fact_json(kind, key))
            }

            fn stored_fact_json(&self, kind: FactKind, key: &str) -> Result<Option<String>, serde_json::Error> {
                match kind {
                    FactKind::Header => serde_json::to_string(&Header {
                        position: self.position,
                        version: self.version,
                        grant: self.grant.clone(),
                        closed_on: self.closed_on,
                    })
                    .map(Some),
                    $(FactKind::$kind => match <$key>::parse(key) {
                        Ok(k) => self.$field.get(&k).map(serde_json::to_string).transpose(),
                        Err(_) => Ok(None),
                    },)*
                }
            }

            /// Puts back one stored fact (its ids read as written).
            pub fn put_fact(&mut self, kind: FactKind, key: &str, json: &str) -> Result<(), String> {
                events::ids::reading_stored(|| self.put_stored_fact(kind, key, json))
            }

            fn put_stored_fact(&mut self, kind: FactKind, key: &str, json: &str) -> Result<(), String> {
                match kind {
                    FactKind::Header => {
                        let h: Header = serde_json::from_str(json).map_err(|e| e.to_string())?;
                        self.position = h.position;
                        self.version = h.version;
                        self.grant = h.grant;
                        self.closed_on = h.closed_on;
                    }
                    $(FactKind::$kind => {
                        let k = <$key>::parse(key).map_err(|e| e.to_string())?;
                        self.$field.insert(k, serde_json::from_str(json).map_err(|e| e.to_string())?);
                    })*
                }
                Ok(())
            }

            /// Every fact's kind and key, the header first.
            pub fn fact_keys(&self) -> Vec<(FactKind, String)> {
                let mut keys = vec![(FactKind::Header, String::new())];
                $(keys.extend(self.$field.keys().map(|k| (FactKind::$kind, k.to_string())));)*
                keys
            }
        }
    };
}

stored_facts! {
    Workstream => workstreams: WorkstreamCode,
    Period => periods: PeriodId,
    Line => lines: LineId,
    Reallocation => reallocations: ReallocationId,
    Amendment => amendments: AmendmentId,
    Commitment => commitments: CommitmentId,
    Expenditure => expenditures: ExpenditureId,
    Milestone => milestones: MilestoneId,
}

/// Which facts a view counts: those effective on or before `as_of` (all
/// when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf(pub Option<NaiveDate>);

impl AsOf {
    /// Whether a fact effective on `date` counts.
    pub fn counts(self, date: NaiveDate) -> bool {
        self.0.is_none_or(|d| date <= d)
    }

    /// Whether an optional dated fact (a reversal, a closing) has happened.
    pub fn happened(self, date: Option<NaiveDate>) -> bool {
        date.is_some_and(|d| self.counts(d))
    }
}
