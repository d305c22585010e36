//! The SQLite backend: the generic conformance suite, plus what only a real
//! SQLite file can show (durability across reopen, triggers, migrations,
//! tampering, a full disk, fail-stop).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use store::conformance::{Fixture, event};
use store::{ChainProblem, EventStore, ExpectedVersion, Position, StoreError, StreamId, VerifyOutcome};
use store_sqlite::{SqliteConfig, SqliteStore};

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap();
    Fixture { store: Arc::new(store), keep: Box::new(dir) }
}

store::conformance_tests!(fixture());

fn sid(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

async fn fill(store: &SqliteStore, n: u64) {
    for i in 0..n {
        store.append(&sid(&format!("grant-{}", i % 3)), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
}

/// A raw connection to the file, as an attacker with disk access has.
fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

#[tokio::test]
async fn events_survive_close_and_reopen_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    fill(&store, 10).await;
    let head = store.head().await.unwrap().unwrap();
    store.close().await;
    assert!(matches!(store.append(&sid("x"), ExpectedVersion::Any, vec![event(0)]).await, Err(StoreError::Closed)));

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.head().await.unwrap(), Some(head));
    assert_eq!(*store.watch_position().borrow(), Position(10));
    let r = store.append(&sid("grant-0"), ExpectedVersion::Exact(3), vec![event(10)]).await.unwrap();
    assert_eq!((r.first_position, r.stream_version), (Position(11), 4));
    assert!(matches!(store.verify(Some(head)).await.unwrap(), VerifyOutcome::Intact { events: 11, .. }));
}

#[tokio::test]
async fn the_database_refuses_updates_and_deletes_of_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    fill(&store, 3).await;
    let conn = raw(&path);
    let update = conn.execute("UPDATE events SET data = '{}' WHERE position = 2", []).unwrap_err();
    assert!(update.to_string().contains("append-only"), "{update}");
    let delete = conn.execute("DELETE FROM events WHERE position = 3", []).unwrap_err();
    assert!(delete.to_string().contains("append-only"), "{delete}");
    assert!(matches!(store.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 3, .. }));
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    fill(&store, 1).await;
    store.close().await;
    raw(&path).pragma_update(None, "user_version", store_sqlite::SCHEMA_VERSION + 1).unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported } if found == store_sqlite::SCHEMA_VERSION + 1 && supported == store_sqlite::SCHEMA_VERSION),
        "{err:?}"
    );
}

#[tokio::test]
async fn opening_a_new_file_applies_the_schema_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let (a, b) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
    a.unwrap();
    b.unwrap();
    let version: i64 = raw(&path).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, store_sqlite::SCHEMA_VERSION);
}

/// A log written before command ids were kept in their own table (schema 1)
/// gets them from its events' metadata on upgrade: a command recorded then
/// still has one effect.
#[tokio::test]
async fn upgrading_a_version_1_log_fills_the_commands_from_the_events() {
    use store::conformance::command_event;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    let (c, d) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    store.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(0)]).await.unwrap();
    let first = store
        .append(&sid("grant-a"), ExpectedVersion::Any, vec![command_event(1, c, None), command_event(2, c, None)])
        .await
        .unwrap();
    store.append(&sid("grant-b"), ExpectedVersion::Any, vec![command_event(3, d, None)]).await.unwrap();
    store.close().await;
    // Back to schema 1: no commands table.
    let conn = raw(&path);
    conn.execute_batch("DROP TABLE commands; PRAGMA user_version = 1;").unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).await.unwrap();
    let recorded = store.command(c).await.unwrap().unwrap();
    assert_eq!((recorded.first_position, recorded.last_position), (first.first_position, first.last_position));
    assert_eq!((recorded.stream_id.as_str(), recorded.fingerprint), ("grant-a", None));
    let again = store.append(&sid("grant-a"), ExpectedVersion::Any, vec![command_event(5, c, Some(1))]).await.unwrap();
    assert!(again.replayed);
    let elsewhere = store.append(&sid("grant-x"), ExpectedVersion::Any, vec![command_event(6, c, None)]).await;
    assert!(matches!(elsewhere, Err(StoreError::CommandIdReused { .. })), "{elsewhere:?}");
    assert_eq!(store.command(d).await.unwrap().unwrap().stream_id.as_str(), "grant-b");
    assert_eq!(store.head().await.unwrap().unwrap().position, Position(4));
}

/// Runs `tamper` on a raw connection with the append-only triggers dropped,
/// then returns what `verify` says.
async fn tampered(events: u64, tamper: &str) -> VerifyOutcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    fill(&store, events).await;
    let conn = raw(&path);
    conn.execute_batch("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;").unwrap();
    conn.execute_batch(tamper).unwrap();
    store.verify(None).await.unwrap()
}

#[tokio::test]
async fn verify_names_the_position_of_one_changed_byte() {
    // `{"n":7}` becomes `{"n":8}`: one byte of the payload at position 8.
    let outcome = tampered(20, "UPDATE events SET data = replace(data, '7', '8') WHERE position = 8").await;
    assert!(
        matches!(outcome, VerifyOutcome::Broken { position: Position(8), problem: ChainProblem::HashMismatch { .. } }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn verify_names_every_kind_of_tampering() {
    let cases = [
        ("UPDATE events SET metadata = replace(metadata, 'tester', 'Tester') WHERE position = 3", 3),
        ("UPDATE events SET recorded_at = recorded_at + 1 WHERE position = 4", 4),
        ("UPDATE events SET event_type = 'Forged' WHERE position = 5", 5),
        ("UPDATE events SET hash = zeroblob(32) WHERE position = 6", 6),
        ("UPDATE events SET stream_id = 'grant-9' WHERE position = 7", 7),
        ("UPDATE events SET schema_version = 2 WHERE position = 9", 9),
        ("UPDATE events SET event_id = randomblob(16) WHERE position = 10", 10),
        ("UPDATE events SET data = CAST(x'ff' AS TEXT) WHERE position = 11", 11),
    ];
    for (sql, position) in cases {
        match tampered(15, sql).await {
            VerifyOutcome::Broken { position: p, .. } => assert_eq!(p, Position(position), "{sql}"),
            other => panic!("{sql}: not detected: {other:?}"),
        }
    }
    let deleted = tampered(15, "DELETE FROM events WHERE position = 5").await;
    assert_eq!(
        deleted,
        VerifyOutcome::Broken { position: Position(5), problem: ChainProblem::Gap { found: Position(6) } }
    );
}

/// A log of `events` tampered with by `tamper`, then verified in three
/// ranges (from 2 events on) and in one pass: both outcomes must be equal.
async fn tampered_in_ranges(events: u64, tamper: &str) -> VerifyOutcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    fill(&store, events).await;
    store.close().await;
    let conn = raw(&path);
    conn.execute_batch("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;").unwrap();
    conn.execute_batch(tamper).unwrap();
    drop(conn);
    let verify = |threads: usize, split_min: u64| {
        let mut config = SqliteConfig::new(&path);
        config.verify_threads = threads;
        config.verify_split_events_min = split_min;
        async move {
            let store = SqliteStore::open_with(config).await.unwrap();
            let outcome = store.verify(None).await.unwrap();
            store.close().await;
            outcome
        }
    };
    let in_ranges = verify(3, 2).await;
    let one_pass = verify(1, u64::MAX).await;
    assert_eq!(in_ranges, one_pass, "{tamper}: in ranges and in one pass");
    in_ranges
}

#[tokio::test]
async fn verifying_in_ranges_finds_what_one_pass_finds_and_the_earliest_break() {
    // 30 events in 3 ranges: 1..=10, 11..=20, 21..=30.
    let intact = tampered_in_ranges(30, "SELECT 1").await;
    assert!(matches!(intact, VerifyOutcome::Intact { events: 30, .. }), "{intact:?}");
    let cases = [
        ("UPDATE events SET data = replace(data, '2', '3') WHERE position = 25", 25),
        ("UPDATE events SET hash = zeroblob(32) WHERE position = 10", 10),
        ("UPDATE events SET hash = zeroblob(32) WHERE position = 11", 11),
        ("UPDATE events SET recorded_at = recorded_at + 1 WHERE position = 30", 30),
        // Two breaks in different ranges: the earliest is named.
        ("UPDATE events SET event_type = 'Forged' WHERE position IN (4, 27)", 4),
        ("UPDATE events SET event_type = 'Forged' WHERE position IN (14, 22)", 14),
    ];
    for (sql, position) in cases {
        match tampered_in_ranges(30, sql).await {
            VerifyOutcome::Broken { position: p, .. } => assert_eq!(p, Position(position), "{sql}"),
            other => panic!("{sql}: not detected: {other:?}"),
        }
    }
    for (sql, gap, found) in [
        ("DELETE FROM events WHERE position = 15", 15, 16),
        ("DELETE FROM events WHERE position = 10", 10, 11),
        ("DELETE FROM events WHERE position = 11", 11, 12),
        ("DELETE FROM events WHERE position IN (9, 10)", 9, 11),
        // A gap across the end of a range: the first position found after
        // it is in the next range, or past it.
        ("DELETE FROM events WHERE position IN (10, 11)", 10, 12),
        ("DELETE FROM events WHERE position BETWEEN 9 AND 21", 9, 22),
    ] {
        let outcome = tampered_in_ranges(30, sql).await;
        assert_eq!(
            outcome,
            VerifyOutcome::Broken { position: Position(gap), problem: ChainProblem::Gap { found: Position(found) } },
            "{sql}"
        );
    }
    // The last events removed: the shorter log verifies, as in one pass
    // (a truncation is what `since` proves).
    let truncated = tampered_in_ranges(30, "DELETE FROM events WHERE position > 28").await;
    assert!(matches!(truncated, VerifyOutcome::Intact { events: 28, .. }), "{truncated:?}");
}

#[tokio::test]
async fn a_full_disk_refuses_appends_without_losing_or_stopping_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let mut config = SqliteConfig::new(&path);
    config.database_pages_max = Some(40);
    let store = SqliteStore::open_with(config).await.unwrap();
    let mut acknowledged = Vec::new();
    let err = loop {
        let e = event(acknowledged.len() as u64);
        let id = e.event_id;
        match store.append(&sid("grant-a"), ExpectedVersion::Any, vec![e]).await {
            Ok(_) => acknowledged.push(id),
            Err(err) => break err,
        }
        assert!(acknowledged.len() < 100_000, "the page limit was never reached");
    };
    assert!(matches!(err, StoreError::StorageFull { .. }), "{err:?}");
    // Still full, still answering, not stopped; reads keep working.
    let again = store.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(0)]).await.unwrap_err();
    assert!(matches!(again, StoreError::StorageFull { .. }), "{again:?}");
    let n = acknowledged.len() as u64;
    assert!(matches!(store.verify(None).await.unwrap(), VerifyOutcome::Intact { events, .. } if events == n));
    store.close().await;

    // Space returns: the same file takes appends again.
    let store = SqliteStore::open(&path).await.unwrap();
    store.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(0)]).await.unwrap();
    let ids: Vec<_> = store.read_all(Position::START, usize::MAX).await.unwrap().iter().map(|e| e.event_id).collect();
    assert_eq!(&ids[..acknowledged.len()], &acknowledged[..]);
}

#[tokio::test]
async fn after_an_io_error_the_writer_acknowledges_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    fill(&store, 5).await;
    store.fail_next_commit().await;
    let lost = event(5);
    let err = store.append(&sid("grant-a"), ExpectedVersion::Any, vec![lost.clone()]).await.unwrap_err();
    let StoreError::WriterStopped { reason } = &err else { panic!("{err:?}") };
    assert!(reason.contains("fsync"), "{reason}");
    for i in 0..3 {
        let later = store.append(&sid("grant-b"), ExpectedVersion::Any, vec![event(10 + i)]).await.unwrap_err();
        assert!(matches!(later, StoreError::WriterStopped { .. }), "{later:?}");
    }
    // Reads keep working and show only what was acknowledged.
    assert!(matches!(store.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 5, .. }));
    store.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    let r = store.append(&sid("grant-a"), ExpectedVersion::Any, vec![lost]).await.unwrap();
    assert_eq!(r.first_position, Position(6));
}

#[tokio::test]
async fn verify_reports_its_progress_up_to_every_event_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap();
    for round in 0..25u64 {
        let events = (0..1_000).map(|i| event(round * 1_000 + i)).collect();
        store.append(&sid(&format!("grant-{round}")), ExpectedVersion::NoStream, events).await.unwrap();
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let outcome = store.verify_with_progress(None, Box::new(move |n| record.lock().unwrap().push(n))).await.unwrap();
    assert!(matches!(outcome, VerifyOutcome::Intact { events: 25_000, .. }), "{outcome:?}");
    assert_eq!(*seen.lock().unwrap(), [10_000, 20_000, 25_000]);
}
