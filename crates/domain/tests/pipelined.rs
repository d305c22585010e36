//! Commands on one grant are pipelined: the next is decided on the state
//! the queued append will produce and queued behind it, so one grant's
//! commands share a group commit. What a client hears stays true: a
//! refusal is given only on what the log holds, a command decided behind
//! an append that fails is decided again on the log, and a grant whose
//! award is still queued is not shown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::DomainError;
use domain::grant::GrantCommand;
use domain::handler::{Handler, HandlerError, Issued, grant_stream};
use events::{ActorId, GrantId, ProgrammeId};
use store::conformance::{Hooked, Hooks};
use store::{AppendResult, EventStore, StoreError};
use store_sqlite::SqliteStore;
use tokio::sync::Notify;

mod common;
use common::{DAY, award, create_programme, d, line, reverse, spend, workstream};

/// How long a step the test waits for may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// Time for a spawned command to be decided and queued (or to wait).
const DECIDED: Duration = Duration::from_millis(200);

/// A store that, once armed, holds the next append's answer until
/// released, and can fail that append (the store never sees it).
#[derive(Debug, Default)]
struct Held {
    hold_next: AtomicBool,
    fail_next: AtomicBool,
    holding: Notify,
    release: Notify,
}

#[async_trait]
impl Hooks for Held {
    fn fail_append(&self) -> Option<StoreError> {
        self.fail_next
            .swap(false, Ordering::SeqCst)
            .then(|| StoreError::StorageFull { detail: "the test's store is full".into() })
    }

    async fn after_append(&self, outcome: Result<AppendResult, StoreError>) -> Result<AppendResult, StoreError> {
        if self.hold_next.swap(false, Ordering::SeqCst) {
            let release = self.release.notified();
            self.holding.notify_one();
            release.await;
        }
        outcome
    }
}

struct Fixture {
    store: Arc<Hooked<Held>>,
    handler: Arc<Handler>,
    g: GrantId,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A grant with one line, set up through the handler.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path().join("events.sqlite")).await.unwrap());
        let store = Arc::new(Hooked { inner, hooks: Arc::new(Held::default()) });
        let handler = Arc::new(Handler::new(store.clone()));
        handler.execute_programme(&ProgrammeId::parse("p").unwrap(), &create_programme()).await.unwrap();
        let g = GrantId::parse("g").unwrap();
        let f = Self { store, handler, g, _dir: dir };
        for command in [award(&f.g), workstream(), line()] {
            f.run(command).await.unwrap();
        }
        f
    }

    async fn run(&self, command: GrantCommand) -> Result<domain::handler::CommandResult, HandlerError> {
        self.handler.execute(&self.g, &issued(command)).await
    }

    fn spawn(
        &self,
        command: GrantCommand,
    ) -> tokio::task::JoinHandle<Result<domain::handler::CommandResult, HandlerError>> {
        let (handler, g) = (Arc::clone(&self.handler), self.g.clone());
        tokio::spawn(async move { handler.execute(&g, &issued(command)).await })
    }

    /// Starts `command` with its append's answer held (and the append
    /// failed first when `fail`), and waits until the answer is held.
    async fn held(
        &self,
        command: GrantCommand,
        fail: bool,
    ) -> tokio::task::JoinHandle<Result<domain::handler::CommandResult, HandlerError>> {
        let hooks = &self.store.hooks;
        hooks.fail_next.store(fail, Ordering::SeqCst);
        hooks.hold_next.store(true, Ordering::SeqCst);
        let holding = hooks.holding.notified();
        let task = self.spawn(command);
        tokio::time::timeout(PATIENCE, holding).await.expect("the append's answer was never held");
        task
    }

    fn release(&self) {
        self.store.hooks.release.notify_one();
    }

    /// The grant's expenditures as the log holds them, read by a handler
    /// that has cached nothing.
    async fn logged(&self) -> (Vec<String>, Option<u64>) {
        let (state, version) = Handler::new(Arc::clone(&self.store.inner)).grant(&self.g).await.unwrap();
        let ids = state.expenditures.iter().filter(|(_, x)| !x.reversed).map(|(id, _)| id.to_string()).collect();
        (ids, version)
    }
}

fn issued(command: GrantCommand) -> Issued<GrantCommand> {
    Issued::new(command, ActorId::parse("pm").unwrap(), d(DAY)).because("test")
}

async fn outcome<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(PATIENCE, task).await.expect("the command never answered").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_decided_and_recorded_while_the_one_before_it_on_the_grant_is_being_made_durable() {
    let f = Fixture::new().await;
    let first = f.held(spend("E1"), false).await;
    // The first expenditure is committed, its answer not yet given: the
    // second on the same grant does not wait for it.
    let second = tokio::time::timeout(PATIENCE / 3, f.run(spend("E2"))).await;
    f.release();
    let second = second.expect("the second command waited for the first one's answer").unwrap();
    let first = outcome(first).await.unwrap();
    assert_eq!((first.version, second.version), (3, 4));
    assert_eq!(second.position.0, first.position.0 + 1);
    assert_eq!(f.logged().await, (vec!["E1".to_owned(), "E2".to_owned()], Some(4)));
    let (state, version) = f.handler.grant(&f.g).await.unwrap();
    assert_eq!((state.expenditures.len(), version), (2, Some(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_given_only_once_the_appends_it_was_decided_behind_have_answered() {
    let f = Fixture::new().await;
    // E1 is queued and will fail; the same expenditure under another
    // command is decided on the state E1's append would make (where E1
    // exists), so its refusal must wait for that answer.
    let first = f.held(spend("E1"), true).await;
    let again = f.spawn(spend("E1"));
    tokio::time::sleep(DECIDED).await;
    assert!(!again.is_finished(), "a refusal was given on an append not yet answered: {:?}", outcome(again).await);
    f.release();
    let failed = outcome(first).await;
    assert!(matches!(failed, Err(HandlerError::Store(StoreError::StorageFull { .. }))), "{failed:?}");
    let again = outcome(again).await;
    assert_eq!(again.unwrap().version, 3, "E1 is new in the log, so it is recorded");
    assert_eq!(f.logged().await, (vec!["E1".to_owned()], Some(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_behind_an_append_that_fails_are_decided_again_on_the_log() {
    let f = Fixture::new().await;
    let first = f.held(spend("E1"), true).await;
    // Both are accepted on the state E1's append would make and queued
    // behind it; the store refuses them as conflicts (E1's event is not
    // there), and each is decided again on what the log holds.
    let reversal = f.spawn(reverse("E1"));
    let other = f.spawn(spend("E2"));
    tokio::time::sleep(DECIDED).await;
    f.release();
    assert!(outcome(first).await.is_err());
    let reversal = outcome(reversal).await;
    assert!(
        matches!(reversal, Err(HandlerError::Domain(DomainError::UnknownExpenditure { .. }))),
        "a reversal of an expenditure the log never held: {reversal:?}"
    );
    assert_eq!(outcome(other).await.unwrap().version, 3);
    assert_eq!(f.logged().await, (vec!["E2".to_owned()], Some(3)));
    let (state, version) = f.handler.grant(&f.g).await.unwrap();
    assert_eq!((state.expenditures.len(), version), (1, Some(3)), "the handler's state is the log's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_award_is_queued_is_not_shown_until_the_award_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path().join("events.sqlite")).await.unwrap());
    let store = Arc::new(Hooked { inner, hooks: Arc::new(Held::default()) });
    let handler = Arc::new(Handler::new(store.clone()));
    handler.execute_programme(&ProgrammeId::parse("p").unwrap(), &create_programme()).await.unwrap();
    let f = Fixture { store, handler, g: GrantId::parse("new").unwrap(), _dir: dir };
    for fail in [true, false] {
        let awarding = f.held(award(&f.g), fail).await;
        let shown = {
            let (handler, g) = (Arc::clone(&f.handler), f.g.clone());
            tokio::spawn(async move { handler.awarded(&g).await })
        };
        tokio::time::sleep(DECIDED).await;
        assert!(!shown.is_finished(), "the grant was shown before its award answered: {:?}", outcome(shown).await);
        f.release();
        let awarded = outcome(awarding).await;
        let shown = outcome(shown).await.unwrap();
        assert_eq!(awarded.is_ok(), !fail, "{awarded:?}");
        assert_eq!(shown.is_some(), !fail, "{shown:?}");
    }
    let version = f.store.inner.stream_version(&grant_stream(&f.g).unwrap()).await.unwrap();
    assert_eq!(version, Some(0));
}
