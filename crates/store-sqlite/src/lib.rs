//! The embedded backend of the grantlog event log: the log in one SQLite
//! file (WAL, `synchronous=FULL`), one writer thread with group commit, reads
//! on a pool of other connections. It meets [`store::EventStore`] and passes
//! its conformance suite.

mod error;
mod import;
mod read;
mod schema;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use store::{
    AppendResult, Direction, EventStore, ExpectedVersion, Head, NewEvent, Position, QueuedAppend, RawEvent,
    RecordedCommand, RecordedEvent, StoreError, StreamId, StreamStart, VerifyOutcome, prepare,
};

use self::error::Sql;
use self::read::ReadPool;
use self::writer::{Request, Writer};

pub use self::schema::SCHEMA_VERSION;

pub use store::EVENT_JSON_BYTES_MAX;

/// Most threads one verification reads and hashes on.
pub const VERIFY_THREADS_MAX: usize = 4;

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
    /// Threads (and read connections) a verification checks the log on,
    /// in ranges; at most [`VERIFY_THREADS_MAX`].
    pub verify_threads: usize,
    /// Logs shorter than this are verified on one thread.
    pub verify_split_events_min: u64,
    /// Most bytes of the log file a whole-log read
    /// ([`EventStore::read_streams`], a rebuild's) maps into memory
    /// (`PRAGMA mmap_size`) on its one connection, unmapped when it ends;
    /// 0 reads with `pread` only. See [`BULK_READ_MMAP_BYTES`].
    pub bulk_read_mmap_bytes: u64,
}

/// Bytes of the log file a whole-log read maps by default: 16 GiB, a log
/// of about 30 million events. A rebuild reads the log stream by stream,
/// and the streams' events are interleaved in the file, so each event
/// lies on another page: read with `pread`, a 4 KiB page is copied from
/// the page cache for each ~500-byte event; mapped, it is read where it
/// lies. The mapped pages are the kernel's page cache (they count in the
/// process's RSS as file pages while the read runs, not as memory the
/// process owns). The build caps what SQLite maps at `SQLITE_MAX_MMAP_SIZE`
/// (set in the workspace's `.cargo/config.toml`; SQLite's own default is
/// 2 GiB).
pub const BULK_READ_MMAP_BYTES: u64 = 16 << 30;

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
            verify_threads: std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, VERIFY_THREADS_MAX),
            verify_split_events_min: read::VERIFY_SPLIT_EVENTS_MIN,
            bulk_read_mmap_bytes: BULK_READ_MMAP_BYTES,
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
    /// Threads and the split threshold of a verification.
    verify: (u64, u64),
    /// [`SqliteConfig::bulk_read_mmap_bytes`].
    bulk_read_mmap_bytes: u64,
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
        let verify = (config.verify_threads.clamp(1, VERIFY_THREADS_MAX) as u64, config.verify_split_events_min);
        let reads = Arc::new(ReadPool::new(config.path, config.read_connections_max));
        let bulk_read_mmap_bytes = config.bulk_read_mmap_bytes;
        Ok(Self { inner: Arc::new(Inner { requests, reads, verify, bulk_read_mmap_bytes, position }) })
    }

    /// Makes the writer's next commit fail as an fsync error would, to test
    /// fail-stop.
    #[cfg(feature = "fault-injection")]
    pub async fn fail_next_commit(&self) {
        let _ = self.inner.requests.send(Request::FailNextCommit).await;
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.queue_append(stream_id, expected, events).await?.await
    }

    /// Sends the append to the writer thread, which takes requests in the
    /// order they were sent: once it is in the channel, its place is fixed.
    async fn queue_append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<QueuedAppend, StoreError> {
        let append = prepare(stream_id, expected, events)?;
        let (reply, answer) = oneshot::channel();
        self.inner.requests.send(Request::Append { append, reply }).await.map_err(|_| StoreError::Closed)?;
        Ok(Box::pin(async move { answer.await.map_err(|_| StoreError::Closed)? }))
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

    async fn read_streams(
        &self,
        streams: Vec<StreamId>,
        upto: Position,
        pages: tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, StoreError>>,
    ) {
        let (reads, mmap) = (Arc::clone(&self.inner.reads), self.inner.bulk_read_mmap_bytes);
        let failed = pages.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || reads.read_streams(mmap, &streams, upto, &pages)).await {
            let _ = failed.send(Err(StoreError::Database(format!("read task failed: {e}")))).await;
        }
    }

    async fn stream_ids(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamId>, StoreError> {
        let after = after.cloned();
        self.inner.reads.run(move |conn| read::stream_ids(conn, after.as_ref(), limit)).await
    }

    async fn position_at_or_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
        self.inner.reads.run(move |conn| read::position_at_or_after(conn, at)).await
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.inner.reads.run(|conn| read::head(conn)).await
    }

    async fn command(&self, command_id: Uuid) -> Result<Option<RecordedCommand>, StoreError> {
        self.inner.reads.run(move |conn| read::command(conn, command_id).sql()).await
    }

    async fn verify_with_progress(
        &self,
        since: Option<Head>,
        progress: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<VerifyOutcome, StoreError> {
        // Each event's check needs only its predecessor's stored hash, so
        // the log is checked in ranges, each on a connection and a thread
        // of its own (reading and hashing on every core), and the earliest
        // break wins.
        let (parts, split_min) = self.inner.verify;
        let ranges = self.inner.reads.run(move |conn| read::verify_ranges(conn, parts, split_min)).await?;
        let progress: Arc<dyn Fn(u64) + Send + Sync> = Arc::from(progress);
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            let reads = Arc::clone(&self.inner.reads);
            let (progress, done) = (Arc::clone(&progress), Arc::clone(&done));
            tasks.push(tokio::spawn(async move {
                let report = move |n: u64| {
                    let total = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                    progress(total);
                };
                reads.run(move |conn| read::verify_range(conn, first, last, &report)).await
            }));
        }
        let mut checked = Vec::with_capacity(tasks.len());
        for task in tasks {
            checked.push(task.await.map_err(|e| StoreError::Database(format!("verify task failed: {e}")))??);
        }
        let since = self.inner.reads.run(move |conn| read::since_found(conn, since)).await?;
        Ok(read::join_ranges(checked, since))
    }

    async fn read_raw(&self, after: Position, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        self.inner.reads.run(move |conn| read::read_raw(conn, after, limit)).await
    }

    async fn hash_at(&self, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
        self.inner.reads.run(move |conn| read::hash_at(conn, position)).await
    }

    /// Through the writer thread, in one transaction of its own after the
    /// appends queued before it.
    async fn import(&self, events: Vec<RawEvent>) -> Result<Head, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner.requests.send(Request::Import { events, reply }).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Finishes queued appends, then closes the write connection. Other
    /// clones answer `Closed` afterwards.
    async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.inner.requests.send(Request::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    fn watch_position(&self) -> watch::Receiver<Position> {
        self.inner.position.clone()
    }
}
