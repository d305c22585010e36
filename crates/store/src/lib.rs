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
//! version and JSON. [`EventStore`] is the contract every backend meets:
//! `store-sqlite` is the embedded one, `store-postgres` the shared one. The
//! hash, the chain check, the export and its offline verifier belong to the
//! contract, so every backend writes and proves the same bytes. The
//! `conformance` feature exposes the generic test suite that every backend
//! runs. This crate links no database.

mod chain;
mod error;
pub mod export;
pub mod hash;
pub mod import;
pub mod prepare;
mod subscription;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub use chain::ChainChecker;
pub use error::StoreError;
pub use export::RawEvent;
pub use prepare::{EVENT_JSON_BYTES_MAX, PreparedAppend, PreparedEvent, prepare};
pub use subscription::{SUBSCRIPTION_PAGE_EVENTS, Subscription};
pub use types::{
    AppendResult, ChainProblem, Direction, EVENT_TYPE_BYTES_MAX, EVENTS_PER_APPEND_MAX, EventMetadata, ExpectedVersion,
    Fingerprint, HEAD_PATTERN, Head, NewEvent, Position, RecordedCommand, RecordedEvent, STREAM_ID_BYTES_MAX,
    StoredJson, StreamId, StreamStart, VerifyOutcome,
};

/// Most events one read returns.
pub const READ_EVENTS_MAX: usize = 10_000;

/// The outcome of an append queued with [`EventStore::queue_append`], to
/// come.
pub type QueuedAppend =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<AppendResult, StoreError>> + Send + 'static>>;

/// The event log's contract. Every backend implements it and passes the
/// generic suite in [`conformance`] (feature `conformance`).
/// One page of a stream read for [`EventStore::read_streams`] (at most
/// [`READ_EVENTS_MAX`] events from some version on): its events up to
/// position `upto`, and the version to read next, `None` when the stream
/// is done (the page was not full, or went past `upto`).
pub fn stream_page_up_to(page: Vec<RecordedEvent>, upto: Position) -> (Vec<RecordedEvent>, Option<u64>) {
    let (read, next) = (page.len(), page.last().map(|e| e.stream_version + 1));
    let kept: Vec<RecordedEvent> = page.into_iter().take_while(|e| e.position <= upto).collect();
    let more = read == READ_EVENTS_MAX && kept.len() == read;
    (kept, next.filter(|_| more))
}

#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug + 'static {
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

    /// [`EventStore::append`] in two steps: this returns once the append
    /// holds its place in the log's order, and the returned future gives its
    /// outcome (what `append` would have returned) once it is decided. An
    /// append queued or made through this store after this returns is
    /// checked and committed after this one, so a caller may queue at once
    /// an append that expects the version this one will produce (it is
    /// refused as a conflict if this one fails). An error here means
    /// nothing was queued. Dropping the answer does not withdraw the
    /// append. This default makes the whole append before it returns (no
    /// overlap); a store with one ordered writer queues and returns.
    async fn queue_append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<QueuedAppend, StoreError> {
        let outcome = self.append(stream_id, expected, events).await;
        Ok(Box::pin(std::future::ready(outcome)))
    }

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

    /// Up to `limit` (at most [`READ_EVENTS_MAX`]) ids of the streams that
    /// hold events, after `after` (from the first when `None`), in the
    /// order of the store's stream index: byte order on SQLite, the
    /// column's collation on PostgreSQL (so a caller that needs byte order
    /// sorts them). Paging with the last id of a page lists every stream
    /// once. Each is found by one seek in the stream index, so listing the
    /// streams costs with their number, not with the events.
    async fn stream_ids(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamId>, StoreError>;

    /// Up to `limit` (at most [`READ_EVENTS_MAX`]) events of the whole log
    /// after position `after`, in position order.
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Every event of `streams` up to position `upto`, stream after stream
    /// in the order given, each stream in version order, sent to `pages` in
    /// pages of at most [`READ_EVENTS_MAX`] events (a page holds one
    /// stream's events; a stream with none up to `upto` sends none). Stops
    /// early, without error, when the receiver is dropped; an error is sent
    /// as the last item. Made for folding the whole log stream by stream (a
    /// rebuild): a store may read on one connection tuned for it, and the
    /// channel's capacity bounds what is read ahead. This default reads
    /// with [`EventStore::read_stream`].
    async fn read_streams(
        &self,
        streams: Vec<StreamId>,
        upto: Position,
        pages: tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, StoreError>>,
    ) {
        for stream in streams {
            let mut from = 0;
            loop {
                let page = match self
                    .read_stream(&stream, StreamStart::Version(from), Direction::Forward, READ_EVENTS_MAX)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = pages.send(Err(e)).await;
                        return;
                    }
                };
                let (page, next) = stream_page_up_to(page, upto);
                if !page.is_empty() && pages.send(Ok(page)).await.is_err() {
                    return;
                }
                match next {
                    Some(next) => from = next,
                    None => break,
                }
            }
        }
    }

    /// The first position recorded at or after `at`; `None` if nothing was.
    async fn position_at_or_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError>;

    /// What the log holds for a command id; `None` if it was never recorded.
    async fn command(&self, command_id: uuid::Uuid) -> Result<Option<RecordedCommand>, StoreError>;

    /// The last event's position and hash; `None` for an empty log.
    async fn head(&self) -> Result<Option<Head>, StoreError>;

    /// Recomputes the whole chain. With `since`, an auditor's earlier head,
    /// also proves that the log they saw is an unchanged prefix of this one.
    async fn verify(&self, since: Option<Head>) -> Result<VerifyOutcome, StoreError> {
        self.verify_with_progress(since, Box::new(|_| {})).await
    }

    /// [`EventStore::verify`], calling `progress` with the number of events
    /// checked so far every few thousand events (for progress bars).
    async fn verify_with_progress(
        &self,
        since: Option<Head>,
        progress: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<VerifyOutcome, StoreError>;

    /// Up to `limit` (at most [`READ_EVENTS_MAX`]) rows after `after`, in
    /// position order, exactly as stored: nothing is checked, so that an
    /// export of a tampered log shows the tampering to its verifier (see
    /// [`RawEvent`] for the few rows that cannot be represented).
    async fn read_raw(&self, after: Position, limit: usize) -> Result<Vec<RawEvent>, StoreError>;

    /// The stored hash at `position`: what the first line of an export that
    /// starts after `position` gives as `prev_hash`. [`GENESIS`](hash::GENESIS)
    /// for position 0; `None` when there is no event there.
    async fn hash_at(&self, position: Position) -> Result<Option<[u8; 32]>, StoreError>;

    /// Appends events recorded by another log exactly as recorded (positions,
    /// stream versions, `recorded_at`, the stored texts and hashes), only
    /// onto this log's head: the first event is at head + 1, each stored hash
    /// must be the chain hash over the previous one (recomputed and
    /// compared), each stream's versions continue where the stream stands,
    /// `recorded_at` never decreases and no event id is stored twice (the
    /// checks of [`import::check_import`]). Fills the command index from each
    /// event's metadata `command_id` and `fingerprint` as the SQLite log's
    /// schema-2 upgrade does ([`import::record_command`]); a command's events
    /// must come in one call. All or nothing: a refusal
    /// ([`StoreError::ImportRefused`] naming the position) writes nothing.
    /// At most [`import::IMPORT_EVENTS_MAX`] events per call. Returns the new
    /// head.
    async fn import(&self, events: Vec<RawEvent>) -> Result<Head, StoreError>;

    /// Finishes queued appends, then lets go of the database. Appends answer
    /// [`StoreError::Closed`] afterwards.
    async fn close(&self);

    /// The committed head position, announced after every commit.
    fn watch_position(&self) -> watch::Receiver<Position>;
}
