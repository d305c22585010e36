//! Two handlers on one log, as two servers on one PostgreSQL database: a
//! handler whose cache is behind the log must not refuse a command falsely.
//! (The store here is SQLite; what matters is that another handler appends.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use domain::grant::GrantCommand;
use domain::handler::{Handler, Issued};
use domain::scenario::{self, MANAGER, Script, eur, expenditure};
use events::{ActorId, ExpenditureId, GrantId};
use store::EventStore;
use store_sqlite::SqliteStore;

fn gid() -> GrantId {
    GrantId::parse(scenario::GRANT).unwrap()
}

fn d(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap()
}

/// Server A loads the scenario to the end of March; server B reads the
/// grant; A records an expenditure. Returns B's view of the log.
async fn b_is_behind(b_of: impl Fn(Arc<dyn EventStore>) -> Handler) -> (Handler, u64, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    let a = Handler::new(Arc::clone(&store));
    scenario::nctcr_until(&a, "2022-03-31").await.unwrap();
    let b = b_of(Arc::clone(&store));
    b.grant(&gid()).await.unwrap();
    let spend =
        expenditure("E-A1", "FP1-CON", eur("10.00").unwrap(), None, "2022-04-02", "sup-x", "A-1", None).unwrap();
    let recorded = Script::new(&a).unwrap().on("2022-04-02", MANAGER, spend, None).await.unwrap();
    (b, recorded.version, dir)
}

fn reverse(expected_version: Option<u64>) -> Issued<GrantCommand> {
    let command = GrantCommand::ReverseExpenditure { expenditure_id: ExpenditureId::parse("E-A1").unwrap() };
    let mut issued = Issued::new(command, ActorId::parse(MANAGER).unwrap(), d("2022-04-03"));
    issued.reason = Some("entered twice".into());
    issued.expected_version = expected_version;
    issued
}

#[tokio::test]
async fn a_shared_handler_decides_on_what_another_handler_appended() {
    let (b, version, _dir) = b_is_behind(Handler::shared).await;
    // B's cache does not know E-A1: the refusal it would give is checked
    // against the log first.
    let reversed = b.execute(&gid(), &reverse(None)).await.unwrap();
    assert_eq!(reversed.version, version + 1);
}

#[tokio::test]
async fn a_shared_handler_reads_the_grant_as_the_log_has_it() {
    let (b, version, _dir) = b_is_behind(Handler::shared).await;
    let (state, seen) = b.grant(&gid()).await.unwrap();
    assert_eq!(seen, Some(version), "B's read of the grant includes A's expenditure");
    assert!(state.expenditures.contains_key(&ExpenditureId::parse("E-A1").unwrap()));
}

#[tokio::test]
async fn a_shared_handler_checks_if_match_against_the_log() {
    let (b, version, _dir) = b_is_behind(Handler::shared).await;
    let reversed = b.execute(&gid(), &reverse(Some(version))).await.unwrap();
    assert_eq!(reversed.version, version + 1);
}
