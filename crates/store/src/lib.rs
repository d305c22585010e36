//! The grantlog event log: an append-only, hash-chained log of events in
//! streams, modelled on EventStoreDB's contract.
//!
//! - Streams have 0-based, gapless versions; the log has a global, 1-based,
//!   gapless position in commit order.
//! - An append writes a batch to one stream atomically, checked against an
//!   [`ExpectedVersion`]; appending an already stored event id again is
//!   idempotent.
//! - Every event carries [`EventMetadata`] and a `recorded_at` the store sets.
//! - Each event's hash chains to the previous one ([`hash`]); [`EventStore::verify`]
//!   names the first position where the chain breaks.
//! - [`Subscription`]s catch up from a position, then follow live.
//!
//! The store knows nothing of event types: it stores a type name, a schema
//! version and JSON. [`EventStore`] is the contract every backend meets;
//! [`SqliteStore`] is the embedded one. The `conformance` feature exposes the
//! generic test suite that every backend runs.

mod chain;
mod error;
pub mod export;
pub mod hash;
mod sqlite;
mod subscription;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub use chain::ChainChecker;
pub use error::StoreError;
pub use sqlite::{EVENT_JSON_BYTES_MAX, SCHEMA_VERSION, SqliteConfig, SqliteStore};
pub use subscription::{SUBSCRIPTION_PAGE_EVENTS, Subscription};
pub use types::{
    AppendResult, ChainProblem, Direction, EVENT_TYPE_BYTES_MAX, EVENTS_PER_APPEND_MAX, EventMetadata, ExpectedVersion,
    Fingerprint, Head, NewEvent, Position, RecordedCommand, RecordedEvent, STREAM_ID_BYTES_MAX, StoredJson, StreamId,
    StreamStart, VerifyOutcome,
};

/// Most events one read returns.
pub const READ_EVENTS_MAX: usize = 10_000;

/// The event log's contract. Every backend implements it and passes the
/// generic suite in [`conformance`] (feature `conformance`).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream_id` atomically if the stream is at
    /// `expected`. Acknowledged only once durable. Appending a batch whose
    /// event ids are all already stored, with the same content, in the same
    /// stream, returns the original result and records nothing.
    ///
    /// A command id (the events' `metadata.command_id`, one per append) has
    /// at most one effect in the whole log, for ever: it is recorded with its
    /// request's `fingerprint` in the same transaction as the events. An
    /// append carrying a recorded command id returns the original result
    /// (`replayed`) when it is to the same stream with the same fingerprint
    /// (or the command was recorded without one), and is refused with
    /// [`StoreError::CommandIdReused`] otherwise, whatever the expected
    /// version. Both checks come before the version check.
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// The stream's last version; `None` when it has no events.
    async fn stream_version(&self, stream_id: &StreamId) -> Result<Option<u64>, StoreError>;

    /// Up to `limit` events of one stream from `start`, in `direction`.
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` (at most [`READ_EVENTS_MAX`]) events of the whole log
    /// after position `after`, in position order.
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The first position recorded at or after `at`; `None` if nothing was.
    async fn position_at_or_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError>;

    /// What the log holds for a command id; `None` if it was never recorded.
    async fn command(&self, command_id: uuid::Uuid) -> Result<Option<RecordedCommand>, StoreError>;

    /// The last event's position and hash; `None` for an empty log.
    async fn head(&self) -> Result<Option<Head>, StoreError>;

    /// Recomputes the whole chain. With `since`, an auditor's earlier head,
    /// also proves that the log they saw is an unchanged prefix of this one.
    async fn verify(&self, since: Option<Head>) -> Result<VerifyOutcome, StoreError>;

    /// The committed head position, announced after every commit.
    fn watch_position(&self) -> watch::Receiver<Position>;
}
