//! The shared backend of the grantlog event log: the log in PostgreSQL, so
//! that several servers append to one log. It meets [`store::EventStore`]
//! and passes its conformance suite, and writes the same hash chain as
//! store-sqlite, byte for byte.
//!
//! - Positions are gapless and in commit order across every store on the
//!   database: each group transaction takes one advisory lock
//!   (`pg_advisory_xact_lock`) before it reads the head and holds it until
//!   its commit is visible, so a reader following the log never skips an
//!   event that commits late.
//! - Each store has one writer task doing group commit in two pipelined
//!   round trips per group (see `writer`); the append's checks and JSON
//!   serialisation happen before, on the caller's task ([`store::prepare`]).
//! - `recorded_at` comes from one clock, the database's, read under the lock
//!   and never earlier than the head's.
//! - Commits are announced with `NOTIFY`; each store LISTENs (and polls
//!   the head every `poll_interval` as a fallback) to move its watch.
//! - Every connection carries `statement_timeout`, `lock_timeout` and
//!   `idle_in_transaction_session_timeout`; every round trip has a deadline
//!   beyond them. A database that cannot be reached makes appends and reads
//!   answer [`StoreError::Unavailable`]; the pool, the writer and the
//!   listener reconnect by themselves when it is back.

mod conn;
mod decide;
mod error;
mod import;
mod listen;
mod read;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use store::{
    AppendResult, Direction, EventStore, ExpectedVersion, Head, NewEvent, Position, RawEvent, RecordedCommand,
    RecordedEvent, StoreError, StreamId, StreamStart, VerifyOutcome, prepare,
};

use self::conn::Settings;
use self::writer::{Request, Writer};

pub use self::error::{pool_error, store_error};
pub use self::schema::SCHEMA_VERSION;

/// How to reach and use a PostgreSQL event log. Its `Debug` hides a
/// password in the URL.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A libpq-style URL (`postgres://user@host:5432/db?options=...`). The
    /// log's tables live in the connection's default schema.
    pub url: String,
    /// Connections in the read pool (the writer and the listener each have
    /// their own besides). Default 8.
    pub pool_size: usize,
    /// Most appends committed in one transaction. Default 1024.
    pub group_commit_appends_max: usize,
    /// Appends that may wait for the writer before `append` itself waits.
    /// Default 4096.
    pub queued_appends_max: usize,
    /// The server aborts any statement running longer (`statement_timeout`).
    /// Default 10 s.
    pub statement_timeout: Duration,
    /// The server aborts any wait for a lock longer than this, the log lock
    /// included (`lock_timeout`). Default 10 s.
    pub lock_timeout: Duration,
    /// The server ends a session idle inside a transaction for longer
    /// (`idle_in_transaction_session_timeout`), releasing the log lock a
    /// stalled client holds. Default 10 s.
    pub idle_in_transaction_timeout: Duration,
    /// How often each store reads the head when no notification comes.
    /// Default 1 s.
    pub poll_interval: Duration,
    /// How long opening a connection may take. Default 5 s.
    pub connect_timeout: Duration,
    /// Tests only: the writer sleeps this long after taking the log lock,
    /// before committing (slow commits under concurrency). Default zero.
    #[doc(hidden)]
    pub commit_delay_for_tests: Duration,
}

impl PostgresConfig {
    /// Defaults (as documented on each field) for the log at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 8,
            group_commit_appends_max: 1024,
            queued_appends_max: 4096,
            statement_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            commit_delay_for_tests: Duration::ZERO,
        }
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redacted_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("group_commit_appends_max", &self.group_commit_appends_max)
            .field("queued_appends_max", &self.queued_appends_max)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("idle_in_transaction_timeout", &self.idle_in_transaction_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// `scheme://user:secret@host/…` as `scheme://user:***@host/…`: a
/// database URL as messages and logs may show it.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

/// The event log on PostgreSQL. Cheap to clone; all clones share one
/// writer task, one read pool and one listener.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requests: mpsc::Sender<Request>,
    pool: Pool,
    settings: Arc<Settings>,
    position: Arc<watch::Sender<Position>>,
    listener: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Runs `$body` (an expression using `$client`, a pooled connection) within
/// the store's deadline.
macro_rules! with_client {
    ($store:expr, $what:literal, |$client:ident| $body:expr) => {{
        let inner = &$store.inner;
        inner
            .settings
            .within($what, async {
                #[allow(unused_mut)]
                let mut $client = inner.pool.get().await.map_err(pool_error)?;
                $body.await
            })
            .await
    }};
}

impl PostgresStore {
    /// Connects, creates or migrates the schema, and starts the writer and
    /// the listener. Refuses a database whose schema is newer than this
    /// build's ([`StoreError::NewerSchema`]); a database that cannot be
    /// reached is [`StoreError::Unavailable`].
    pub async fn connect(config: PostgresConfig) -> Result<Self, StoreError> {
        let settings = Arc::new(Settings::new(&config)?);
        let client = settings.connect().await?;
        settings.within("migrate", schema::migrate(&client)).await?;
        let head = settings.within("head", read::head_position(&client)).await?;
        drop(client);

        let manager = Manager::from_config(
            settings.pg.clone(),
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let deadline = Some(settings.deadline);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts { wait: deadline, create: deadline, recycle: deadline })
            .build()
            .map_err(|e| StoreError::Database(format!("cannot build the connection pool: {e}")))?;

        let position = Arc::new(watch::Sender::new(head));
        let (requests, rx) = mpsc::channel(config.queued_appends_max.max(1));
        tokio::spawn(Writer::new(Arc::clone(&settings), rx, Arc::clone(&position)).run());
        let listener = tokio::spawn(listen::run(Arc::clone(&settings), Arc::clone(&position)));
        Ok(Self { inner: Arc::new(Inner { requests, pool, settings, position, listener }) })
    }

    /// Appends events recorded by another log exactly as recorded
    /// (positions, stream versions, `recorded_at`, texts, hashes), onto this
    /// log's head: the first must be at head + 1, each hash must be the
    /// chain hash after the previous one, stream versions must continue and
    /// `recorded_at` never decrease. All or nothing. Also records the
    /// events' command ids, so that each keeps its one effect. Returns the
    /// new head.
    async fn import_events(&self, events: Vec<RawEvent>) -> Result<Head, StoreError> {
        let inner = &self.inner;
        let mut client = inner.pool.get().await.map_err(pool_error)?;
        let head = import::import(&mut client, &inner.settings, &events).await?;
        listen::advance(&inner.position, head.position);
        Ok(head)
    }
}

#[async_trait]
impl EventStore for PostgresStore {
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
        with_client!(self, "stream version", |client| read::stream_version(&client, stream_id))
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        with_client!(self, "read stream", |client| read::read_stream(&client, stream_id, start, direction, limit))
    }

    async fn import(&self, events: Vec<RawEvent>) -> Result<Head, StoreError> {
        self.import_events(events).await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        with_client!(self, "read all", |client| read::read_all(&client, after, limit))
    }

    async fn stream_ids(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamId>, StoreError> {
        with_client!(self, "stream ids", |client| read::stream_ids(&client, after, limit))
    }

    async fn position_at_or_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
        with_client!(self, "position at", |client| read::position_at_or_after(&client, at))
    }

    async fn command(&self, command_id: Uuid) -> Result<Option<RecordedCommand>, StoreError> {
        with_client!(self, "command", |client| read::command(&client, command_id))
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        with_client!(self, "head", |client| read::head(&client))
    }

    /// Walks the whole log in one snapshot; it has no overall deadline
    /// (a long log takes long), each page only the server's timeouts.
    async fn verify_with_progress(
        &self,
        since: Option<Head>,
        progress: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<VerifyOutcome, StoreError> {
        let mut client = self.inner.pool.get().await.map_err(pool_error)?;
        read::verify(&mut client, since, &*progress).await
    }

    async fn read_raw(&self, after: Position, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        with_client!(self, "read raw", |client| read::read_raw(&client, after, limit))
    }

    async fn hash_at(&self, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
        with_client!(self, "hash at", |client| read::hash_at(&client, position))
    }

    /// Finishes queued appends, then closes the writer, the listener and
    /// the pool. Appends and reads answer `Closed` afterwards.
    async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.inner.requests.send(Request::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
        self.inner.listener.abort();
        self.inner.pool.close();
    }

    fn watch_position(&self) -> watch::Receiver<Position> {
        self.inner.position.subscribe()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_in_the_url_is_not_shown() {
        let config = super::PostgresConfig::new("postgres://grantlog:s3cret@db:5432/log");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret") && shown.contains("grantlog:***@db:5432/log"), "{shown}");
        assert_eq!(super::redacted_url("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
        assert_eq!(
            super::redacted_url("postgres://grantlog:s3cret@db.example:5432/log?sslmode=require"),
            "postgres://grantlog:***@db.example:5432/log?sslmode=require"
        );
        assert_eq!(super::redacted_url("postgresql://u@db"), "postgresql://u@db");
    }
}
