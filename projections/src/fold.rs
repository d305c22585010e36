//! From stored events to the read models: the one fold shared by the live
//! projector, rebuilds and as-of queries.

use chrono::{DateTime, Utc};
use events::{GrantId, ProgrammeEvent, ProgrammeId, Stored};
use store::{RecordedEvent, StoreError, StreamId};

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

/// Reads a stored grant event as the ledger takes it (the rules in
/// [`events::stored`], shared with the domain's handler).
pub fn projected(e: &RecordedEvent) -> Result<Projected, ApplyError> {
    let envelope = stored(e).grant_event().map_err(|x| ApplyError { position: e.position.0, detail: x.to_string() })?;
    Ok(Projected { position: e.position.0, version: e.stream_version, recorded_at: e.recorded_at, envelope })
}

/// A recorded event's parts as [`events::stored`] reads them.
fn stored(e: &RecordedEvent) -> Stored<'_> {
    let m = &e.metadata;
    Stored {
        event_type: &e.event_type,
        schema_version: e.schema_version,
        data: e.data.get(),
        recorded_at: e.recorded_at,
        actor: &m.actor,
        effective_date: m.effective_date,
        reason: m.reason.as_deref(),
        command_id: m.command_id,
        correlation_id: m.correlation_id,
        causation_id: m.causation_id,
    }
}

/// The log's stream of a grant (its name from [`events::streams`]).
pub fn grant_stream(grant: &GrantId) -> Result<StreamId, StoreError> {
    StreamId::parse(events::streams::grant_name(grant))
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
        if let Some(grant) = events::streams::grant_of(stream) {
            let p = projected(e)?;
            let (kind, key) = self.ledgers.entry(grant.clone()).or_default().apply(&p);
            return Ok(Touched::Grant(grant, kind, key));
        }
        if let Some(id) = events::streams::programme_of(stream) {
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
