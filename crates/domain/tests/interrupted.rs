//! A command interrupted half way leaves the handler's cached grant either
//! true or marked for reading again, never a state the log does not hold:
//! a request cancelled while its append is in flight (the append commits
//! all the same), and a stored event that cannot be read in the middle of a
//! grant's stream.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::grant::GrantCommand;
use domain::handler::{Handler, HandlerError, Issued, grant_stream};
use events::{ActorId, GrantId, ProgrammeId};
use store::conformance::{Hooked, Hooks};
use store::{AppendResult, EventMetadata, EventStore, ExpectedVersion, NewEvent, StoreError};
use store_sqlite::SqliteStore;
use tokio::sync::Notify;

mod common;
use common::{DAY, award, create_programme, d, line, spend, workstream};

/// Appends that, while `hold` is set, commit and then do not answer until
/// `release` is notified: what a caller sees when its request is cancelled
/// after the log took the write.
#[derive(Debug, Default)]
struct HeldAnswers {
    hold: AtomicBool,
    committed: Notify,
    release: Notify,
}

#[async_trait]
impl Hooks for HeldAnswers {
    async fn after_append(&self, outcome: Result<AppendResult, StoreError>) -> Result<AppendResult, StoreError> {
        if self.hold.load(Ordering::SeqCst) {
            self.committed.notify_one();
            self.release.notified().await;
        }
        outcome
    }
}

fn issued(command: GrantCommand) -> Issued<GrantCommand> {
    Issued::new(command, ActorId::parse("pm").unwrap(), d(DAY)).because("test")
}

async fn programme(handler: &Handler) {
    let p = ProgrammeId::parse("p").unwrap();
    handler.execute_programme(&p, &create_programme()).await.unwrap();
}

#[tokio::test]
async fn a_command_cancelled_after_its_append_committed_does_not_leave_the_grant_behind_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Hooked {
        inner: Arc::new(SqliteStore::open(dir.path().join("events.sqlite")).await.unwrap()),
        hooks: Arc::new(HeldAnswers::default()),
    });
    let handler = Arc::new(Handler::new(store.clone()));
    programme(&handler).await;
    let g = GrantId::parse("g").unwrap();
    for command in [award(&g), workstream()] {
        handler.execute(&g, &issued(command)).await.unwrap();
    }

    // Opening the line commits, then the request is cancelled before the
    // answer comes back.
    store.hooks.hold.store(true, Ordering::SeqCst);
    let task = {
        let handler = handler.clone();
        let g = g.clone();
        tokio::spawn(async move { handler.execute(&g, &issued(line())).await })
    };
    tokio::time::timeout(Duration::from_secs(30), store.hooks.committed.notified()).await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    store.hooks.hold.store(false, Ordering::SeqCst);
    let version = store.inner.stream_version(&grant_stream(&g).unwrap()).await.unwrap();
    assert_eq!(version, Some(2), "the line's event is in the log");

    // The line is in the log, so spending on it is accepted, and the
    // handler's state holds it.
    let spent = handler.execute(&g, &issued(spend("E1"))).await;
    assert!(spent.is_ok(), "an expenditure on the committed line: {spent:?}");
    let (state, version) = handler.grant(&g).await.unwrap();
    assert_eq!(version, Some(3));
    assert_eq!(state.lines.len(), 1, "{state:?}");
}

#[tokio::test]
async fn an_unreadable_event_in_a_grant_stops_every_command_on_it_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<SqliteStore> = Arc::new(SqliteStore::open(dir.path().join("events.sqlite")).await.unwrap());
    let g = GrantId::parse("g").unwrap();
    {
        let writer = Handler::new(store.clone());
        programme(&writer).await;
        for command in [award(&g), workstream(), line()] {
            writer.execute(&g, &issued(command)).await.unwrap();
        }
    }
    // An event no build of the project can read, appended to the stream as
    // a writer of a newer build might.
    let stream = grant_stream(&g).unwrap();
    let meta = || EventMetadata {
        actor: "pm".into(),
        effective_date: Some(d(DAY)),
        reason: Some("test".into()),
        command_id: Some(uuid::Uuid::now_v7()),
        correlation_id: None,
        causation_id: None,
        fingerprint: None,
    };
    let unknown = NewEvent::new("GrantExploded", 1, serde_json::json!({"x": 1}), meta());
    store.append(&stream, ExpectedVersion::Exact(2), vec![unknown]).await.unwrap();

    let handler = Handler::new(store.clone());
    for attempt in 0..3 {
        let r = handler.execute(&g, &issued(spend(&format!("E{attempt}")))).await;
        assert!(matches!(r, Err(HandlerError::Unreadable { .. })), "attempt {attempt}: {r:?}");
        let r = handler.grant(&g).await;
        assert!(matches!(r, Err(HandlerError::Unreadable { .. })), "read after attempt {attempt}: {r:?}");
    }
    assert_eq!(store.stream_version(&stream).await.unwrap(), Some(3), "nothing was decided past the unreadable event");
}
