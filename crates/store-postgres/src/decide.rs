//! Deciding a group of appends in Rust, under the log lock, from what one
//! round trip fetched for the whole group: the head, the stored events with
//! the group's event ids, the recorded commands with its command ids and its
//! streams' versions. Appends are decided in order, each seeing the effect of
//! the ones before it, exactly as store-sqlite's savepoints do; a refused
//! append leaves nothing behind.

use std::collections::HashMap;

use uuid::Uuid;

use store::prepare::replayed;
use store::{AppendResult, Position, PreparedAppend, PreparedEvent, RecordedCommand, StoreError};

/// The log's last event, as the chain continues from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tip {
    pub position: u64,
    pub hash: [u8; 32],
}

pub(crate) use store::prepare::StoredEvent as Stored;

/// A recorded command and the stream version its last event has.
#[derive(Debug, Clone)]
pub(crate) struct KnownCommand {
    pub recorded: RecordedCommand,
    pub last_stream_version: u64,
}

/// What the log holds that the group's decisions depend on; updated as
/// each accepted append is decided.
#[derive(Debug, Default)]
pub(crate) struct Known {
    pub events: HashMap<Uuid, Stored>,
    pub commands: HashMap<Uuid, KnownCommand>,
    /// Each stream's last version (`None`: no events).
    pub versions: HashMap<String, Option<u64>>,
}

/// The rows one group inserts, column by column (for `UNNEST`).
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub positions: Vec<i64>,
    pub stream_ids: Vec<String>,
    pub stream_versions: Vec<i64>,
    pub event_ids: Vec<Uuid>,
    pub event_types: Vec<String>,
    pub schema_versions: Vec<i64>,
    pub data: Vec<String>,
    pub metadata: Vec<String>,
    pub recorded_at_micros: Vec<i64>,
    pub hashes: Vec<Vec<u8>>,
    pub command_ids: Vec<Uuid>,
    pub command_fingerprints: Vec<Option<Vec<u8>>>,
    pub command_streams: Vec<String>,
    pub command_firsts: Vec<i64>,
    pub command_lasts: Vec<i64>,
}

impl Rows {
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

/// Decides one append against `known`, adding its rows to `rows` and
/// moving `tip` when it is accepted.
pub(crate) fn decide(
    known: &mut Known,
    append: &PreparedAppend,
    tip: &mut Tip,
    now_micros: i64,
    rows: &mut Rows,
) -> Result<AppendResult, StoreError> {
    let existing: Vec<Option<&Stored>> = append.events.iter().map(|e| known.events.get(&e.event_id)).collect();
    if existing.iter().any(Option::is_some) {
        return replayed(append, &existing);
    }
    if let Some((command_id, fingerprint)) = &append.command
        && let Some(known) = known.commands.get(command_id)
    {
        if !known.recorded.is_retry(&append.stream_id, fingerprint.as_ref()) {
            return Err(StoreError::CommandIdReused {
                command_id: *command_id,
                stream_id: known.recorded.stream_id.clone(),
            });
        }
        return Ok(AppendResult {
            first_position: known.recorded.first_position,
            last_position: known.recorded.last_position,
            stream_version: known.last_stream_version,
            replayed: true,
        });
    }
    let actual = known.versions.get(append.stream_id.as_str()).copied().flatten();
    if !append.expected.admits(actual) {
        return Err(StoreError::Conflict { stream_id: append.stream_id.clone(), expected: append.expected, actual });
    }

    let first = tip.position + 1;
    let mut version = actual.map_or(0, |v| v + 1);
    for event in &append.events {
        let position = tip.position + 1;
        let hash = event.chain_hash(&append.stream_id, position, version, now_micros, &tip.hash);
        push_row(rows, append, event, position, version, now_micros, &hash);
        known.events.insert(event.event_id, stored(append, event, position, version));
        *tip = Tip { position, hash };
        version += 1;
    }
    let last_version = version - 1;
    known.versions.insert(append.stream_id.as_str().to_owned(), Some(last_version));
    if let Some((command_id, fingerprint)) = &append.command {
        rows.command_ids.push(*command_id);
        rows.command_fingerprints.push(fingerprint.map(|f| f.0.to_vec()));
        rows.command_streams.push(append.stream_id.as_str().to_owned());
        rows.command_firsts.push(first as i64);
        rows.command_lasts.push(tip.position as i64);
        let recorded = RecordedCommand {
            command_id: *command_id,
            fingerprint: *fingerprint,
            stream_id: append.stream_id.clone(),
            first_position: Position(first),
            last_position: Position(tip.position),
        };
        known.commands.insert(*command_id, KnownCommand { recorded, last_stream_version: last_version });
    }
    Ok(AppendResult {
        first_position: Position(first),
        last_position: Position(tip.position),
        stream_version: last_version,
        replayed: false,
    })
}

fn push_row(
    rows: &mut Rows,
    append: &PreparedAppend,
    event: &PreparedEvent,
    position: u64,
    version: u64,
    now_micros: i64,
    hash: &[u8; 32],
) {
    rows.positions.push(position as i64);
    rows.stream_ids.push(append.stream_id.as_str().to_owned());
    rows.stream_versions.push(version as i64);
    rows.event_ids.push(event.event_id);
    rows.event_types.push(event.event_type.clone());
    rows.schema_versions.push(i64::from(event.schema_version));
    rows.data.push(event.data_text.clone());
    rows.metadata.push(event.metadata_text.clone());
    rows.recorded_at_micros.push(now_micros);
    rows.hashes.push(hash.to_vec());
}

fn stored(append: &PreparedAppend, event: &PreparedEvent, position: u64, version: u64) -> Stored {
    Stored {
        position,
        stream_id: append.stream_id.as_str().to_owned(),
        stream_version: version,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        data: event.data_text.clone(),
        metadata: event.metadata_text.clone(),
    }
}
