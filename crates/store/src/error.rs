//! The store's one error type.

use uuid::Uuid;

use crate::types::{ExpectedVersion, StreamId};

/// Everything that can go wrong in the event log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the version the appender expected.
    #[error("stream {stream_id}: expected {expected}, but the stream is at {}", actual.map_or_else(|| "no stream".to_owned(), |v| format!("version {v}")))]
    Conflict {
        /// The stream.
        stream_id: StreamId,
        /// What the appender expected.
        expected: ExpectedVersion,
        /// The stream's actual last version; `None` when it does not exist.
        actual: Option<u64>,
    },
    /// An event id already stored is appended again with different content
    /// (or to another stream, or as part of a different batch).
    #[error("event {event_id} is already recorded with different content")]
    EventIdReused {
        /// The reused id.
        event_id: Uuid,
    },
    /// A command id that the log already holds for another request (another
    /// fingerprint) or another stream: a command id has at most one effect.
    #[error("command {command_id} is already recorded for another request (in stream {stream_id})")]
    CommandIdReused {
        /// The reused command id.
        command_id: Uuid,
        /// The stream its effect is in.
        stream_id: StreamId,
    },
    /// The events of one append carry different command ids or fingerprints:
    /// an append is the effect of one command.
    #[error("the events of one append must carry one command id and one fingerprint")]
    MixedCommands,
    /// The same event id appears twice in one batch.
    #[error("event {event_id} appears more than once in the batch")]
    DuplicateEventInBatch {
        /// The repeated id.
        event_id: Uuid,
    },
    /// An append with no events.
    #[error("an append must carry at least one event")]
    EmptyAppend,
    /// An append with more events than the store takes at once.
    #[error("an append carries {count} events; at most {max} are allowed")]
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// `EVENTS_PER_APPEND_MAX`.
        max: usize,
    },
    /// An event whose JSON data or metadata is larger than the store takes.
    #[error("event {event_id} has {bytes} bytes of JSON; at most {max} are allowed")]
    EventTooLarge {
        /// The event.
        event_id: Uuid,
        /// Its largest JSON part, in bytes.
        bytes: usize,
        /// `EVENT_JSON_BYTES_MAX`.
        max: usize,
    },
    /// A stream name that is not a valid name.
    #[error("{stream_id:?} is not a valid stream id")]
    InvalidStreamId {
        /// The refused name.
        stream_id: String,
    },
    /// An event type name that is empty or too long.
    #[error("{event_type:?} is not a valid event type")]
    InvalidEventType {
        /// The refused name.
        event_type: String,
    },
    /// Text that should be `POSITION:HASH` and is not.
    #[error("{text:?} is not a head (POSITION:HASH, hash as 64 hex digits)")]
    InvalidHead {
        /// The refused text.
        text: String,
    },
    /// The database was written by a newer version of the store.
    #[error("the database schema is version {found}; this build understands up to {supported}: upgrade grantlog")]
    NewerSchema {
        /// The database's schema version.
        found: i64,
        /// The newest schema this build knows.
        supported: i64,
    },
    /// The disk (or the database's size limit) is full; nothing of this
    /// append was recorded, and appends may succeed once space returns.
    #[error("storage is full; nothing was recorded: {detail}")]
    StorageFull {
        /// The database's words.
        detail: String,
    },
    /// The writer hit an I/O error and stopped: it acknowledges nothing
    /// more until the store is reopened.
    #[error("the event log stopped accepting writes after an I/O error: {reason}")]
    WriterStopped {
        /// The error that stopped it.
        reason: String,
    },
    /// A stored row that cannot be decoded (corruption or tampering).
    #[error("the event at position {position} cannot be decoded: {detail}")]
    Corrupt {
        /// Where.
        position: u64,
        /// Why.
        detail: String,
    },
    /// The database cannot be reached (connection refused or lost, a
    /// timeout): an append that met it may or may not be recorded, so retry
    /// it with the same command id (its effect happens at most once).
    #[error(
        "the database cannot be reached; an append that met it may or may not be recorded: retry with the same command id ({detail})"
    )]
    Unavailable {
        /// What happened.
        detail: String,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
    /// The store is shutting down or its worker is gone.
    #[error("the event log is closed")]
    Closed,
}
