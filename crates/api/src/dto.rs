//! Request and response bodies (API.md). Requests refuse unknown fields;
//! fields a client must never set (`actor`, `recorded_at`, `hash`) exist
//! only in responses. Each request turns into a domain command here.

use chrono::{DateTime, NaiveDate, Utc};
use domain::grant::{AwardGrant, Delta, GrantCommand};
use events::grant::{AmendmentKind, MilestoneKind};
use events::{
    ActorId, AmendmentId, CategoryCode, CommitmentId, Conversion, Currency, ExpenditureId, GrantId, LineId,
    MilestoneId, Money, PeriodId, ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use store::RecordedEvent;

use crate::auth::Role;
use crate::error::{ApiError, FieldError};

/// What every write accepts besides its own fields.
pub trait Envelope {
    /// The business date of the fact (default: today, UTC).
    fn effective_date(&self) -> Option<NaiveDate>;
    /// Why.
    fn reason(&self) -> Option<String>;
}

macro_rules! envelope {
    ($($t:ty),*) => {$(
        impl Envelope for $t {
            fn effective_date(&self) -> Option<NaiveDate> { self.effective_date }
            fn reason(&self) -> Option<String> { self.reason.clone() }
        }
    )*};
}

/// `POST /api/v1/programmes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProgramme {
    /// Client-chosen id.
    pub id: ProgrammeId,
    /// Its name.
    pub name: String,
    /// Business date (default today).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::input::opt_date")]
    #[schemars(with = "Option<crate::input::DateText>")]
    pub effective_date: Option<NaiveDate>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The token's name: the actor recorded on its events.
    pub name: ActorId,
    /// Its role.
    pub role: Role,
    /// Programmes a manager or viewer may see (none when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programmes: Vec<ProgrammeId>,
    /// When it stops being accepted (RFC 3339, in the future); never if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenCreated {
    /// Name.
    pub name: ActorId,
    /// Role.
    pub role: Role,
    /// Programmes.
    pub programmes: Vec<ProgrammeId>,
    /// The bearer token.
    pub token: String,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/grants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// Client-chosen id.
    pub id: GrantId,
    /// Its programme.
    pub programme: ProgrammeId,
    /// The funder.
    pub funder: String,
    /// Title.
    pub title: String,
    /// Short name.
    pub acronym: String,
    /// The award; its currency is the grant's.
    #[serde(deserialize_with = "crate::input::money")]
    #[schemars(with = "crate::input::MoneyInput")]
    pub award: Money,
    /// First day.
    #[serde(deserialize_with = "crate::input::date")]
    #[schemars(with = "crate::input::DateText")]
    pub start: NaiveDate,
    /// Last day.
    #[serde(deserialize_with = "crate::input::date")]
    #[schemars(with = "crate::input::DateText")]
    pub end: NaiveDate,
    /// `FNR-2022` or `HORIZON-EUROPE`.
    pub rule_set: RuleSetId,
    /// The receiving organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beneficiary: Option<String>,
    /// Indirect cost rate as a decimal string (default: the rule set's cap).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::input::opt_rate")]
    #[schemars(with = "Option<crate::input::RateText>")]
    pub indirect_rate: Option<Decimal>,
    /// Business date (default today).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::input::opt_date")]
    #[schemars(with = "Option<crate::input::DateText>")]
    pub effective_date: Option<NaiveDate>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Defines a simple write body: its fields plus `effective_date` and `reason`.
macro_rules! write_body {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
            /// Business date of the fact (default today, UTC).
            #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::input::opt_date")]
            #[schemars(with = "Option<crate::input::DateText>")]
            pub effective_date: Option<NaiveDate>,
            /// Why.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub reason: Option<String>,
        }
        envelope!($name);
    };
}

envelope!(CreateProgramme, CreateGrant);

write_body!(
    /// `POST .../workstreams`.
    CreateWorkstream {
        /// Its code.
        code: WorkstreamCode,
        /// Title.
        title: String,
        /// Its lead, by id (people are referenced by id, never by name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lead: Option<ActorId>,
    }
);

write_body!(
    /// `POST .../budget-lines`: line id `<workstream>-<category>`.
    OpenBudgetLine {
        /// Workstream (`GRANT` for the indirect line).
        workstream: WorkstreamCode,
        /// The rule set's category.
        category: CategoryCode,
        /// Original amount.
        #[serde(deserialize_with = "crate::input::money")]
        #[schemars(with = "crate::input::MoneyInput")]
        amount: Money,
    }
);

write_body!(
    /// `POST .../reporting-periods`.
    DefinePeriod {
        /// Client-chosen id.
        id: PeriodId,
        /// First day.
        #[serde(deserialize_with = "crate::input::date")]
        #[schemars(with = "crate::input::DateText")]
        start: NaiveDate,
        /// Last day.
        #[serde(deserialize_with = "crate::input::date")]
        #[schemars(with = "crate::input::DateText")]
        end: NaiveDate,
        /// When the report is due.
        #[serde(deserialize_with = "crate::input::date")]
        #[schemars(with = "crate::input::DateText")]
        report_due: NaiveDate,
    }
);

write_body!(
    /// Actions without fields of their own (close, approve, reject, reverse,
    /// cancel, reopen); some need a `reason`.
    Action {}
);

write_body!(
    /// `POST .../commitments`.
    RaiseCommitment {
        /// Client-chosen id.
        id: CommitmentId,
        /// The line it binds.
        line: LineId,
        /// Amount (another currency needs `conversion`).
        #[serde(deserialize_with = "crate::input::money")]
        #[schemars(with = "crate::input::MoneyInput")]
        amount: Money,
        /// Rate: units of the amount's currency per one of the grant's.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::input::opt_conversion")]
        #[schemars(with = "Option<crate::input::ConversionInput>")]
        conversion: Option<Conversion>,
        /// Supplier id.
        supplier: String,
        /// Purchase order reference.
        reference: String,
    }
);

write_body!(
    /// `POST .../expenditures`; its effective date is `incurred_on`.
    RecordExpenditure {
        /// Client-chosen id.
        id: ExpenditureId,
        /// The line charged.
        line: LineId,
        /// Amount (another currency needs `conversion`).
        #[serde(deserialize_with = "crate::input::money")]
        #[schemars(with = "crate::input::MoneyInput")]
        amount: Money,
        /// Rate: units of the amount's currency per one of the grant's.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::input::opt_conversion")]
        #[schemars(with = "Option<crate::input::ConversionInput>")]
        conversion: Option<Conversion>,
        /// When the cost was incurred.
        #[serde(deserialize_with = "crate::input::date")]
        #[schemars(with = "crate::input::DateText")]
        incurred_on: NaiveDate,
        /// Supplier id.
        supplier: String,
        /// Supplier's invoice number.
        invoice: String,
        /// The commitment it pays.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commitment: Option<CommitmentId>,
        /// The reversed expenditure it replaces.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correction_of: Option<ExpenditureId>,
    }
);

/// One line's change: a signed amount in the grant's currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeltaBody {
    /// The line.
    pub line: LineId,
    /// Signed decimal string, e.g. "-3000.00".
    #[serde(deserialize_with = "crate::input::signed_amount")]
    #[schemars(with = "crate::input::SignedAmountText")]
    pub amount: Decimal,
}

write_body!(
    /// `POST .../reallocations`.
    RequestReallocation {
        /// Client-chosen id.
        id: ReallocationId,
        /// Deltas summing to zero.
        deltas: Vec<DeltaBody>,
    }
);

write_body!(
    /// `POST .../amendments`.
    RequestAmendment {
        /// Client-chosen id.
        id: AmendmentId,
        /// What it changes.
        kind: AmendmentKind,
        /// The end asked for.
        #[serde(deserialize_with = "crate::input::date")]
        #[schemars(with = "crate::input::DateText")]
        proposed_end: NaiveDate,
    }
);

write_body!(
    /// `POST .../milestones`.
    PlanMilestone {
        /// Client-chosen id.
        id: MilestoneId,
        /// Workstream.
        workstream: WorkstreamCode,
        /// `milestone`, `deliverable` or `report`.
        kind: MilestoneKind,
        /// Title.
        title: String,
        /// Baseline due date.
        #[serde(deserialize_with = "crate::input::date")]
        #[schemars(with = "crate::input::DateText")]
        due_on: NaiveDate,
        /// An amendment backing a date past the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amendment: Option<AmendmentId>,
    }
);

write_body!(
    /// `POST .../milestones/{id}/reschedule`.
    RescheduleMilestone {
        /// New due date.
        #[serde(deserialize_with = "crate::input::date")]
        #[schemars(with = "crate::input::DateText")]
        due_on: NaiveDate,
        /// An amendment backing a date past the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amendment: Option<AmendmentId>,
    }
);

write_body!(
    /// `POST .../milestones/{id}/achieve`.
    AchieveMilestone {
        /// When.
        #[serde(deserialize_with = "crate::input::date")]
        #[schemars(with = "crate::input::DateText")]
        achieved_on: NaiveDate,
        /// Where the proof is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<String>,
    }
);

impl CreateGrant {
    /// The award command.
    pub fn command(&self) -> GrantCommand {
        GrantCommand::Award(AwardGrant {
            grant_id: self.id.clone(),
            programme_id: self.programme.clone(),
            funder: self.funder.clone(),
            title: self.title.clone(),
            acronym: self.acronym.clone(),
            beneficiary: self.beneficiary.clone().unwrap_or_default(),
            award: self.award,
            start: self.start,
            end: self.end,
            rule_set: self.rule_set.clone(),
            indirect_rate: self.indirect_rate,
        })
    }
}

impl RequestReallocation {
    /// The command, with deltas in the grant's currency.
    pub fn command(&self, currency: Currency) -> Result<GrantCommand, ApiError> {
        let mut deltas = Vec::with_capacity(self.deltas.len());
        let mut errors = Vec::new();
        for (i, d) in self.deltas.iter().enumerate() {
            match Money::new(d.amount, currency) {
                Ok(amount) => deltas.push(Delta { line: d.line.clone(), amount }),
                Err(e) => errors.push(FieldError { pointer: format!("/deltas/{i}/amount"), detail: e.to_string() }),
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::InvalidBody(errors));
        }
        Ok(GrantCommand::RequestReallocation { reallocation_id: self.id.clone(), deltas })
    }
}

/// One recorded event of a write's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppendedEvent {
    /// Event id.
    pub id: uuid::Uuid,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Stream version.
    pub version: u64,
    /// Log position.
    pub position: u64,
}

/// The answer to every write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandAnswer {
    /// The stream written.
    pub stream: String,
    /// Its version now (also the `ETag`).
    pub version: u64,
    /// The log position of the last event: pass it as `min_position`.
    pub position: u64,
    /// The events recorded.
    pub events: Vec<AppendedEvent>,
}

impl From<domain::handler::CommandResult> for CommandAnswer {
    fn from(r: domain::handler::CommandResult) -> Self {
        Self {
            stream: r.stream.to_string(),
            version: r.version,
            position: r.position.0,
            events: r
                .events
                .into_iter()
                .map(|e| AppendedEvent {
                    id: e.id,
                    event_type: e.event_type,
                    version: e.version,
                    position: e.position.0,
                })
                .collect(),
        }
    }
}

/// A recorded event, as history, the log, SSE and export show it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventOut<'a> {
    /// Log position.
    pub position: u64,
    /// Stream.
    pub stream: &'a str,
    /// Version in the stream.
    pub version: u64,
    /// Event id.
    pub id: uuid::Uuid,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// Payload schema version.
    pub schema_version: u32,
    /// Business date of the fact.
    pub effective_date: Option<NaiveDate>,
    /// When the log committed it (UTC).
    pub recorded_at: DateTime<Utc>,
    /// Who.
    pub actor: &'a str,
    /// Why.
    pub reason: Option<&'a str>,
    /// The command that recorded it.
    pub command_id: Option<uuid::Uuid>,
    /// The correlation id.
    pub correlation_id: Option<uuid::Uuid>,
    /// The causation id.
    pub causation_id: Option<uuid::Uuid>,
    /// The payload exactly as recorded.
    #[schemars(with = "serde_json::Value")]
    pub data: &'a RawValue,
    /// The chain hash (hex).
    pub hash: String,
}

impl<'a> From<&'a RecordedEvent> for EventOut<'a> {
    fn from(e: &'a RecordedEvent) -> Self {
        Self {
            position: e.position.0,
            stream: e.stream_id.as_str(),
            version: e.stream_version,
            id: e.event_id,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            effective_date: e.metadata.effective_date,
            recorded_at: e.recorded_at,
            actor: &e.metadata.actor,
            reason: e.metadata.reason.as_deref(),
            command_id: e.metadata.command_id,
            correlation_id: e.metadata.correlation_id,
            causation_id: e.metadata.causation_id,
            data: e.data.raw(),
            hash: hex::encode(e.hash),
        }
    }
}

/// A page of the log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsPage<'a> {
    /// The events, in position order.
    pub events: Vec<EventOut<'a>>,
    /// Pass as `after` for the next page (`null`: nothing more now).
    pub next_after: Option<u64>,
}

/// A grant's history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct History<'a> {
    /// The events, in version order.
    pub events: Vec<EventOut<'a>>,
}

/// The chain's head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HeadOut {
    /// Last position.
    pub position: u64,
    /// Its hash (hex).
    pub hash: String,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FirstBad {
    /// The first bad position.
    pub position: u64,
    /// What was expected there.
    pub expected: Option<String>,
    /// What was found.
    pub actual: Option<String>,
    /// What is wrong (`hash_mismatch`, `gap`, `undecodable`, `not_a_prefix`).
    pub problem: String,
}

/// `GET /api/v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verified {
    /// Whether the whole chain verifies.
    pub ok: bool,
    /// Events checked.
    pub checked: u64,
    /// The head an auditor writes down.
    pub head: Option<HeadOut>,
    /// The first bad position, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<FirstBad>,
}

/// A view with the log position it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Positioned{V}")]
pub struct Positioned<V> {
    /// The view.
    #[serde(flatten)]
    pub view: V,
    /// The last log position applied to it.
    pub position: u64,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// `ok`, `degraded` (serving, but the read-model file's writes are
    /// failing and being retried), `catching_up` or `failed`.
    pub status: String,
    /// Log head position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// Position the views have applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_position: Option<u64>,
    /// How many events of the log (as the database has it now) this
    /// server's views have not applied: its follower lag on a shared
    /// database. Absent when the log cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_events: Option<u64>,
    /// Where the log is: `sqlite` or `postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One token as `GET /api/v1/tokens` lists it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenInfo {
    /// Name (the actor).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Programmes a manager or viewer may see.
    pub programmes: Vec<ProgrammeId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it was last used, to within a minute (`null`: never).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops being accepted (`null`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked (`null`: it was not).
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenList {
    /// Every token, revoked and expired ones included, by name.
    pub tokens: Vec<TokenInfo>,
}

/// `POST /api/v1/session`: sign in with a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenSession {
    /// A bearer token's secret (`glt_...`). It is not kept: the session
    /// cookie stands for it.
    pub token: String,
}

/// A browser session: who it is, and the CSRF token its writes carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo {
    /// The token's name (the actor recorded on the session's writes).
    pub name: ActorId,
    /// Its role.
    pub role: Role,
    /// Programmes a manager or viewer may see.
    pub programmes: Vec<ProgrammeId>,
    /// Send as `X-CSRF-Token` on every write made with the session cookie.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// A grant's lines explained.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Explained {
    /// The grant.
    pub grant: events::GrantId,
    /// The business date the figures are as of (`null`: every fact).
    pub as_of: Option<NaiveDate>,
    /// The instant the books are read as of (`null`: now).
    pub known_at: Option<DateTime<Utc>>,
    /// The last log position of the grant's events counted.
    pub position: u64,
    /// The lines (one for a line's explanation), by id.
    pub lines: Vec<projections::LineExplanation>,
}

/// A programme the caller sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProgrammeOut {
    /// Its id.
    pub id: events::ProgrammeId,
    /// Its name.
    pub name: String,
}

/// The last chain verification this server ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LastVerification {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// Whether the chain verified.
    pub ok: bool,
    /// Events checked.
    pub events: u64,
    /// The head it verified up to (`null`: an empty log).
    pub head_position: Option<u64>,
    /// What was wrong, when not ok.
    pub detail: Option<String>,
}

/// What an operator looks at: the log, the views, the last verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Operator {
    /// The log's head (`null`: an empty log).
    pub head: Option<HeadOut>,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The position the views have applied.
    pub projection_position: u64,
    /// Events of the log the views have not applied.
    pub lag_events: u64,
    /// As `/readyz` says: `ok`, `degraded`, `catching_up` or `failed`.
    pub status: String,
    /// The last `GET /api/v1/audit/verify` on this server (`null`: none
    /// since it started).
    pub last_verification: Option<LastVerification>,
}

/// A recorded event as a viewer's live stream shows it: where and what,
/// without its payload, actor or reason.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventSummary<'a> {
    /// Log position.
    pub position: u64,
    /// Stream.
    pub stream: &'a str,
    /// Version in the stream.
    pub version: u64,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// When the log committed it (UTC).
    pub recorded_at: DateTime<Utc>,
    /// Business date of the fact.
    pub effective_date: Option<NaiveDate>,
}

impl<'a> From<&'a RecordedEvent> for EventSummary<'a> {
    fn from(e: &'a RecordedEvent) -> Self {
        Self {
            position: e.position.0,
            stream: e.stream_id.as_str(),
            version: e.stream_version,
            event_type: &e.event_type,
            recorded_at: e.recorded_at,
            effective_date: e.metadata.effective_date,
        }
    }
}
