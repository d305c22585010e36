//! A log that cannot be read for a while (its database away) does not stop
//! the views: the projector reads again, and catches up when it is back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use domain::handler::{Handler, Issued};
use domain::scenario::{self, MANAGER, eur, expenditure};
use events::{ActorId, GrantId};
use projections::{Projector, Status};
use store::{
    AppendResult, Direction, EventStore, ExpectedVersion, Head, NewEvent, Position, RawEvent, RecordedCommand,
    RecordedEvent, StoreError, StreamId, StreamStart, VerifyOutcome,
};
use store_sqlite::SqliteStore;
use tokio::sync::{Notify, watch};

const WAIT: Duration = Duration::from_secs(30);

/// A SQLite log whose `read_all` answers `Unavailable` while `away` is set,
/// as a PostgreSQL log does while its database is down.
#[derive(Debug)]
struct Flaky {
    inner: SqliteStore,
    away: AtomicBool,
    refused: AtomicU64,
    refusing: Notify,
}

#[async_trait]
impl EventStore for Flaky {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.inner.append(stream_id, expected, events).await
    }
    async fn stream_version(&self, stream_id: &StreamId) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(stream_id).await
    }
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, start, direction, limit).await
    }
    async fn stream_ids(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamId>, StoreError> {
        self.inner.stream_ids(after, limit).await
    }
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        // Away is looked at once the read has finished, not before: a read
        // begun just before the database went away would otherwise return
        // the write made while it was away (the projector reads again as
        // soon as it has applied a batch, so that race is real).
        let page = if self.away.load(Ordering::SeqCst) { None } else { Some(self.inner.read_all(after, limit).await) };
        match page {
            Some(page) if !self.away.load(Ordering::SeqCst) => page,
            _ => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                self.refusing.notify_waiters();
                Err(StoreError::Unavailable { detail: "the database is away (test)".into() })
            }
        }
    }
    async fn position_at_or_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
        self.inner.position_at_or_after(at).await
    }
    async fn command(&self, command_id: uuid::Uuid) -> Result<Option<RecordedCommand>, StoreError> {
        self.inner.command(command_id).await
    }
    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.inner.head().await
    }
    async fn verify_with_progress(
        &self,
        since: Option<Head>,
        progress: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<VerifyOutcome, StoreError> {
        self.inner.verify_with_progress(since, progress).await
    }
    async fn read_raw(&self, after: Position, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        self.inner.read_raw(after, limit).await
    }
    async fn hash_at(&self, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
        self.inner.hash_at(position).await
    }
    async fn import(&self, events: Vec<RawEvent>) -> Result<Head, StoreError> {
        self.inner.import(events).await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
    fn watch_position(&self) -> watch::Receiver<Position> {
        self.inner.watch_position()
    }
}

fn spend(id: &str) -> Issued<domain::grant::GrantCommand> {
    let e = expenditure(id, "FP2-OTH", eur("1.00").unwrap(), None, "2022-10-02", "sup-x", id, None).unwrap();
    Issued::new(e, ActorId::parse(MANAGER).unwrap(), NaiveDate::from_ymd_opt(2022, 10, 2).unwrap())
}

#[tokio::test]
async fn a_log_unreadable_for_a_while_is_read_again_and_the_views_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky {
        inner: SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap(),
        away: AtomicBool::new(false),
        refused: AtomicU64::new(0),
        refusing: Notify::new(),
    });
    let store: Arc<dyn EventStore> = Arc::clone(&flaky) as Arc<dyn EventStore>;
    let handler = Handler::new(Arc::clone(&store));
    scenario::nctcr(&handler).await.unwrap();
    let grant = GrantId::parse(scenario::GRANT).unwrap();
    let projector = Projector::start(Arc::clone(&store), &dir.path().join("views.sqlite")).await.unwrap();
    let head = store.head().await.unwrap().unwrap().position.0;
    projector.wait_for(head, WAIT).await.unwrap();

    // The log goes away; a write lands (another server, or just before):
    // the projector's reads of it fail, more than once.
    flaky.away.store(true, Ordering::SeqCst);
    let written = handler.execute(&grant, &spend("E-AWAY")).await.unwrap().position.0;
    tokio::time::timeout(WAIT, async {
        while flaky.refused.load(Ordering::SeqCst) < 3 {
            let refusing = flaky.refusing.notified();
            if flaky.refused.load(Ordering::SeqCst) >= 3 {
                break;
            }
            refusing.await;
        }
    })
    .await
    .expect("the projector read the log again after it failed");
    assert!(!matches!(projector.status(), Status::Failed { .. }), "{:?}", projector.status());
    assert!(projector.position() < written, "the views cannot have what the log could not give");

    // Back: the views catch up, and go on following.
    flaky.away.store(false, Ordering::SeqCst);
    projector.wait_for(written, WAIT).await.unwrap();
    let next = handler.execute(&grant, &spend("E-BACK")).await.unwrap().position.0;
    projector.wait_for(next, WAIT).await.unwrap();
    assert_eq!(projector.status(), Status::Running);
}
