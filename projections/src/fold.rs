//! From stored events to the read models: the one fold shared by the live
//! projector, rebuilds and as-of queries.

use chrono::{DateTime, Utc};
use events::{ActorId, Envelope, EventContext, GrantEvent, GrantId, ProgrammeEvent, ProgrammeId};
use store::RecordedEvent;
use uuid::Uuid;

use crate::db::Models;
use crate::ledger::{FactKind, Projected};

/// An event the projections cannot read: they stop there rather than skip it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event at position {position} cannot be projected: {detail}")]
pub struct ApplyError {
    /// Where.
    pub position: u64,
    /// Why.
    pub detail: String,
}

/// What an event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// One fact of a grant's ledger (and its header).
    Grant(GrantId, FactKind, String),
    /// A programme's name.
    Programme(ProgrammeId),
    /// Nothing the projections keep.
    Nothing,
}

/// Reads a stored grant event as the ledger takes it.
pub fn projected(e: &RecordedEvent) -> Result<Projected, ApplyError> {
    events::ids::reading_stored(|| projected_stored(e))
}

fn projected_stored(e: &RecordedEvent) -> Result<Projected, ApplyError> {
    let bad = |detail: String| ApplyError { position: e.position.0, detail };
    let event = GrantEvent::decode(&e.event_type, e.schema_version, e.data.get()).map_err(|x| bad(x.to_string()))?;
    let m = &e.metadata;
    let context = EventContext {
        effective_date: m.effective_date.unwrap_or_else(|| e.recorded_at.date_naive()),
        actor: ActorId::parse(m.actor.clone()).map_err(|x| bad(x.to_string()))?,
        reason: m.reason.clone(),
        command_id: m.command_id.unwrap_or(Uuid::nil()),
        correlation_id: m.correlation_id,
        causation_id: m.causation_id,
    };
    Ok(Projected {
        position: e.position.0,
        version: e.stream_version,
        recorded_at: e.recorded_at,
        envelope: Envelope { event, context },
    })
}

/// The grant id of a `grant-<id>` stream.
pub fn grant_of(stream: &str) -> Option<GrantId> {
    let id = stream.strip_prefix("grant-")?;
    events::ids::reading_stored(|| GrantId::parse(id).ok())
}

impl Models {
    /// Applies one stored event, in log order.
    pub fn apply(&mut self, e: &RecordedEvent) -> Result<Touched, ApplyError> {
        // Stored ids read as written, even where today's input rules are stricter.
        events::ids::reading_stored(|| self.apply_stored(e))
    }

    fn apply_stored(&mut self, e: &RecordedEvent) -> Result<Touched, ApplyError> {
        self.position = e.position.0;
        let stream = e.stream_id.as_str();
        if let Some(grant) = grant_of(stream) {
            let p = projected(e)?;
            let (kind, key) = self.ledgers.entry(grant.clone()).or_default().apply(&p);
            return Ok(Touched::Grant(grant, kind, key));
        }
        if let Some(id) = stream.strip_prefix("programme-").and_then(|id| ProgrammeId::parse(id).ok()) {
            let event = ProgrammeEvent::decode(&e.event_type, e.schema_version, e.data.get())
                .map_err(|x| ApplyError { position: e.position.0, detail: x.to_string() })?;
            match event {
                ProgrammeEvent::ProgrammeCreated(c) => {
                    self.programmes.insert(id.clone(), c.name);
                }
            }
            return Ok(Touched::Programme(id));
        }
        Ok(Touched::Nothing)
    }
}

/// Whether an event recorded at `recorded_at` was known at `known_at`
/// (every event when `None`).
pub fn known(recorded_at: DateTime<Utc>, known_at: Option<DateTime<Utc>>) -> bool {
    known_at.is_none_or(|t| recorded_at <= t)
}
