//! A log that cannot be read for a while (its database away) does not stop
//! the views: the projector reads again, and catches up when it is back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use domain::handler::{Handler, Issued};
use domain::scenario::{self, MANAGER, eur, expenditure};
use events::{ActorId, GrantId};
use projections::{Projector, Status};
use store::conformance::{Hooked, Hooks};
use store::{EventStore, Position, RecordedEvent, StoreError};
use store_sqlite::SqliteStore;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(30);

/// A log whose `read_all` answers `Unavailable` while `away` is set, as a
/// PostgreSQL log does while its database is down.
#[derive(Debug, Default)]
struct Away {
    away: AtomicBool,
    refused: AtomicU64,
    refusing: Notify,
}

#[async_trait]
impl Hooks for Away {
    async fn read_all(
        &self,
        store: &dyn EventStore,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Away is looked at once the read has finished, not before: a read
        // begun just before the database went away would otherwise return
        // the write made while it was away (the projector reads again as
        // soon as it has applied a batch, so that race is real).
        let page = if self.away.load(Ordering::SeqCst) { None } else { Some(store.read_all(after, limit).await) };
        match page {
            Some(page) if !self.away.load(Ordering::SeqCst) => page,
            _ => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                self.refusing.notify_waiters();
                Err(StoreError::Unavailable { detail: "the database is away (test)".into() })
            }
        }
    }
}

fn spend(id: &str) -> Issued<domain::grant::GrantCommand> {
    let e = expenditure(id, "FP2-OTH", eur("1.00").unwrap(), None, "2022-10-02", "sup-x", id, None).unwrap();
    Issued::new(e, ActorId::parse(MANAGER).unwrap(), NaiveDate::from_ymd_opt(2022, 10, 2).unwrap())
}

#[tokio::test]
async fn a_log_unreadable_for_a_while_is_read_again_and_the_views_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Hooked {
        inner: Arc::new(SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap()),
        hooks: Arc::new(Away::default()),
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
    flaky.hooks.away.store(true, Ordering::SeqCst);
    let written = handler.execute(&grant, &spend("E-AWAY")).await.unwrap().position.0;
    tokio::time::timeout(WAIT, async {
        while flaky.hooks.refused.load(Ordering::SeqCst) < 3 {
            let refusing = flaky.hooks.refusing.notified();
            if flaky.hooks.refused.load(Ordering::SeqCst) >= 3 {
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
    flaky.hooks.away.store(false, Ordering::SeqCst);
    projector.wait_for(written, WAIT).await.unwrap();
    let next = handler.execute(&grant, &spend("E-BACK")).await.unwrap().position.0;
    projector.wait_for(next, WAIT).await.unwrap();
    assert_eq!(projector.status(), Status::Running);
}
