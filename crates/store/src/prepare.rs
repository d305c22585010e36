//! What every backend does to an append before it touches its database:
//! check the batch, serialise each event's JSON once (the texts that are
//! hashed and stored verbatim), and find the one command it carries. Done on
//! the caller's task, so that a backend's writer does only database work.

use std::collections::HashSet;

use uuid::Uuid;

use crate::error::StoreError;
use crate::types::{
    AppendResult, EVENT_TYPE_BYTES_MAX, EVENTS_PER_APPEND_MAX, EventMetadata, ExpectedVersion, Fingerprint, NewEvent,
    Position, StreamId,
};

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

impl PreparedEvent {
    /// Its chain hash once stored at `position` as version `stream_version`
    /// of `stream_id`, recorded at `recorded_at_micros`, after the event
    /// whose hash is `previous`: what every backend stores for it.
    pub fn chain_hash(
        &self,
        stream_id: &StreamId,
        position: u64,
        stream_version: u64,
        recorded_at_micros: i64,
        previous: &[u8; 32],
    ) -> [u8; 32] {
        crate::hash::CanonicalEvent {
            position,
            stream_id: stream_id.as_str(),
            stream_version,
            event_id: self.event_id.as_bytes(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            data: &self.data_text,
            metadata: &self.metadata_text,
            recorded_at_micros,
        }
        .chain_hash(previous)
    }
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

/// An event already in the log, as much of it as decides whether an append
/// is a retry of the one that stored it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its position.
    pub position: u64,
    /// Its stream.
    pub stream_id: String,
    /// Its version in the stream.
    pub stream_version: u64,
    /// Its type name.
    pub event_type: String,
    /// Its schema version.
    pub schema_version: u32,
    /// The stored data text.
    pub data: String,
    /// The stored metadata text.
    pub metadata: String,
}

/// The answer to an append some of whose event ids are already stored
/// (`existing[i]` is the stored event of the append's `i`-th id, if any):
/// the original result if the whole batch was stored before, as one run, in
/// the same stream, with the same content; otherwise
/// [`StoreError::EventIdReused`]. Every backend answers by this rule.
pub fn replayed(append: &PreparedAppend, existing: &[Option<&StoredEvent>]) -> Result<AppendResult, StoreError> {
    let mut previous: Option<&StoredEvent> = None;
    for (event, stored) in append.events.iter().zip(existing) {
        let Some(stored) = *stored else {
            // Part of the batch is stored and part is not: name a stored id.
            let stored_id = append.events.iter().zip(existing).find(|(_, s)| s.is_some()).map(|(e, _)| e.event_id);
            return Err(StoreError::EventIdReused { event_id: stored_id.unwrap_or(event.event_id) });
        };
        let in_run =
            previous.is_none_or(|p| stored.position == p.position + 1 && stored.stream_version == p.stream_version + 1);
        if !in_run || !same_content(append, event, stored) {
            return Err(StoreError::EventIdReused { event_id: event.event_id });
        }
        previous = Some(stored);
    }
    match (existing.first(), previous) {
        (Some(Some(first)), Some(last)) => Ok(AppendResult {
            first_position: Position(first.position),
            last_position: Position(last.position),
            stream_version: last.stream_version,
            replayed: true,
        }),
        _ => Err(StoreError::EmptyAppend),
    }
}

/// Same JSON, byte for byte or, failing that, as values (key order aside).
fn same_json<T: serde::de::DeserializeOwned + PartialEq>(stored: &str, given: &str) -> bool {
    stored == given
        || matches!((serde_json::from_str::<T>(stored), serde_json::from_str::<T>(given)), (Ok(a), Ok(b)) if a == b)
}

fn same_content(append: &PreparedAppend, event: &PreparedEvent, stored: &StoredEvent) -> bool {
    stored.stream_id == append.stream_id.as_str()
        && stored.event_type == event.event_type
        && stored.schema_version == event.schema_version
        && same_json::<serde_json::Value>(&stored.data, &event.data_text)
        && same_json::<EventMetadata>(&stored.metadata, &event.metadata_text)
}
