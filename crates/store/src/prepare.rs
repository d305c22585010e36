//! What every backend does to an append before it touches its database:
//! check the batch, serialise each event's JSON once (the texts that are
//! hashed and stored verbatim), and find the one command it carries. Done on
//! the caller's task, so that a backend's writer does only database work.

use std::collections::HashSet;

use uuid::Uuid;

use crate::error::StoreError;
use crate::types::{EVENT_TYPE_BYTES_MAX, EVENTS_PER_APPEND_MAX, ExpectedVersion, Fingerprint, NewEvent, StreamId};

/// Largest JSON payload (data or metadata) of one event, in bytes.
pub const EVENT_JSON_BYTES_MAX: usize = 1024 * 1024;

/// One event, checked and serialised.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    /// The event's id.
    pub event_id: Uuid,
    /// Its type name.
    pub event_type: String,
    /// Its schema version.
    pub schema_version: u32,
    /// The data, as the JSON text that is hashed and stored.
    pub data_text: String,
    /// The metadata, as the JSON text that is hashed and stored.
    pub metadata_text: String,
}

/// One append, ready for a backend's writer.
#[derive(Debug, Clone)]
pub struct PreparedAppend {
    /// The stream appended to.
    pub stream_id: StreamId,
    /// The version the appender expects.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<PreparedEvent>,
    /// The command id the events carry (one per append), and its request's
    /// fingerprint.
    pub command: Option<(Uuid, Option<Fingerprint>)>,
}

/// Checks and serialises an append: not empty, not too many events, no id
/// twice, valid type names, JSON within [`EVENT_JSON_BYTES_MAX`], one command.
pub fn prepare(
    stream_id: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<PreparedAppend, StoreError> {
    if events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    if events.len() > EVENTS_PER_APPEND_MAX {
        return Err(StoreError::TooManyEvents { count: events.len(), max: EVENTS_PER_APPEND_MAX });
    }
    let mut seen = HashSet::with_capacity(events.len());
    let mut prepared = Vec::with_capacity(events.len());
    let command = command_of(&events)?;
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(StoreError::DuplicateEventInBatch { event_id: event.event_id });
        }
        if event.event_type.is_empty() || event.event_type.len() > EVENT_TYPE_BYTES_MAX {
            return Err(StoreError::InvalidEventType { event_type: event.event_type });
        }
        let data_text = serde_json::to_string(&event.data).map_err(|e| StoreError::Database(e.to_string()))?;
        let metadata_text = serde_json::to_string(&event.metadata).map_err(|e| StoreError::Database(e.to_string()))?;
        let bytes = data_text.len().max(metadata_text.len());
        if bytes > EVENT_JSON_BYTES_MAX {
            return Err(StoreError::EventTooLarge { event_id: event.event_id, bytes, max: EVENT_JSON_BYTES_MAX });
        }
        prepared.push(PreparedEvent {
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            data_text,
            metadata_text,
        });
    }
    Ok(PreparedAppend { stream_id: stream_id.clone(), expected, events: prepared, command })
}

/// The one command id (and fingerprint) an append's events carry, if any.
fn command_of(events: &[NewEvent]) -> Result<Option<(Uuid, Option<Fingerprint>)>, StoreError> {
    let first = events.first().map(|e| (e.metadata.command_id, e.metadata.fingerprint));
    if events.iter().any(|e| Some((e.metadata.command_id, e.metadata.fingerprint)) != first) {
        return Err(StoreError::MixedCommands);
    }
    Ok(first.and_then(|(id, fingerprint)| id.map(|id| (id, fingerprint))))
}
