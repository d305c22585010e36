//! The embedded backend: the log in one SQLite file (WAL, `synchronous=FULL`),
//! one writer thread with group commit, reads on a pool of other connections.

mod read;
mod schema;
mod writer;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use self::read::ReadPool;
use self::writer::{PreparedAppend, PreparedEvent, Request, Writer};
use crate::EventStore;
use crate::error::StoreError;
use crate::export::RawEvent;
use crate::types::{
    AppendResult, Direction, EVENT_TYPE_BYTES_MAX, EVENTS_PER_APPEND_MAX, ExpectedVersion, Fingerprint, Head, NewEvent,
    Position, RecordedCommand, RecordedEvent, StreamId, StreamStart, VerifyOutcome,
};

pub use self::schema::SCHEMA_VERSION;

/// Largest JSON payload (data or metadata) of one event, in bytes.
pub const EVENT_JSON_BYTES_MAX: usize = 1024 * 1024;

/// How to open a SQLite event log.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; created if missing.
    pub path: PathBuf,
    /// Idle read connections kept open.
    pub read_connections_max: usize,
    /// Most appends committed in one transaction.
    pub group_commit_appends_max: usize,
    /// Appends that may wait for the writer before `append` itself waits.
    pub queued_appends_max: usize,
    /// WAL pages after which a commit checkpoints (`wal_autocheckpoint`).
    pub wal_checkpoint_pages: u32,
    /// Caps the database size (`PRAGMA max_page_count`); `None` for no cap.
    /// Appends past it fail with `StorageFull`, and nothing else breaks.
    pub database_pages_max: Option<u64>,
}

impl SqliteConfig {
    /// Defaults for a log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            read_connections_max: 4,
            group_commit_appends_max: 1024,
            queued_appends_max: 4096,
            wal_checkpoint_pages: 10_000,
            database_pages_max: None,
        }
    }
}

/// The event log on SQLite. Cheap to clone; all clones share one writer.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requests: mpsc::Sender<Request>,
    reads: Arc<ReadPool>,
    position: watch::Receiver<Position>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the log at `path` with defaults.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_with(SqliteConfig::new(path)).await
    }

    /// Opens the log as configured. Refuses a database whose schema is newer
    /// than this build's.
    pub async fn open_with(config: SqliteConfig) -> Result<Self, StoreError> {
        let (requests, rx) = mpsc::channel(config.queued_appends_max.max(1));
        let (position_tx, position) = watch::channel(Position::START);
        let (ready_tx, ready_rx) = oneshot::channel();
        let writer_config = config.clone();
        std::thread::Builder::new()
            .name("grantlog-log-writer".to_owned())
            .spawn(move || match Writer::open(&writer_config, rx, position_tx) {
                Ok(writer) => {
                    let _ = ready_tx.send(Ok(()));
                    writer.run();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        ready_rx.await.map_err(|_| StoreError::Closed)??;
        let reads = Arc::new(ReadPool::new(config.path, config.read_connections_max));
        Ok(Self { inner: Arc::new(Inner { requests, reads, position }) })
    }

    /// Finishes queued appends, then closes the write connection. Other
    /// clones answer `Closed` afterwards.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.inner.requests.send(Request::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Up to `limit` (at most [`READ_EVENTS_MAX`](crate::READ_EVENTS_MAX))
    /// rows after `after`, in position order, exactly as stored: nothing is
    /// checked, so that an export of a tampered log shows the tampering to
    /// its verifier (see [`RawEvent`] for the few rows that cannot be
    /// represented).
    pub async fn read_raw(&self, after: Position, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        self.inner.reads.run(move |conn| read::read_raw(conn, after, limit)).await
    }

    /// [`EventStore::verify`], calling `progress` with the number of events
    /// checked so far every few thousand events (for progress bars).
    pub async fn verify_with_progress(
        &self,
        since: Option<Head>,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<VerifyOutcome, StoreError> {
        self.inner.reads.run(move |conn| read::verify(conn, since, &progress)).await
    }

    /// The stored hash at `position`: what the first line of an export that
    /// starts after `position` gives as `prev_hash`. [`GENESIS`](crate::hash::GENESIS)
    /// for position 0; `None` when there is no event there.
    pub async fn hash_at(&self, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
        self.inner.reads.run(move |conn| read::hash_at(conn, position)).await
    }

    /// Makes the writer's next commit fail as an fsync error would, to test
    /// fail-stop.
    #[cfg(feature = "fault-injection")]
    pub async fn fail_next_commit(&self) {
        let _ = self.inner.requests.send(Request::FailNextCommit).await;
    }
}

fn prepare(
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

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let append = prepare(stream_id, expected, events)?;
        let (reply, answer) = oneshot::channel();
        self.inner.requests.send(Request::Append { append, reply }).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<Option<u64>, StoreError> {
        let stream_id = stream_id.clone();
        self.inner.reads.run(move |conn| read::stream_version(conn, &stream_id)).await
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream_id = stream_id.clone();
        self.inner.reads.run(move |conn| read::read_stream(conn, &stream_id, start, direction, limit)).await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.reads.run(move |conn| read::read_all(conn, after, limit)).await
    }

    async fn position_at_or_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
        self.inner.reads.run(move |conn| read::position_at_or_after(conn, at)).await
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.inner.reads.run(|conn| read::head(conn)).await
    }

    async fn command(&self, command_id: Uuid) -> Result<Option<RecordedCommand>, StoreError> {
        self.inner.reads.run(move |conn| Ok(read::command(conn, command_id)?)).await
    }

    async fn verify(&self, since: Option<Head>) -> Result<VerifyOutcome, StoreError> {
        self.verify_with_progress(since, |_| {}).await
    }

    fn watch_position(&self) -> watch::Receiver<Position> {
        self.inner.position.clone()
    }
}
