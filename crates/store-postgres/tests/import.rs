//! `PostgresStore::import`: a log recorded elsewhere (here by store-sqlite)
//! moves to PostgreSQL exactly as recorded, or not at all.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use store::conformance::{command_event, event};
use store::hash::GENESIS;
use store::{EventStore, ExpectedVersion, Position, RawEvent, StoreError, StreamId, VerifyOutcome};
use store_postgres::testing::TestDatabase;
use store_postgres::{PostgresConfig, PostgresStore};
use store_sqlite::SqliteStore;
use uuid::Uuid;

fn sid(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

async fn raw_rows(store: &dyn EventStore) -> Vec<RawEvent> {
    let mut out = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store.read_raw(after, 333).await.unwrap();
        let Some(last) = page.last() else { return out };
        after = last.position;
        out.extend(page);
    }
}

/// A SQLite log with several streams, batches and commands.
async fn sqlite_log(dir: &tempfile::TempDir, commands: &[Uuid]) -> SqliteStore {
    let store = SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap();
    for i in 0..40u64 {
        let stream = sid(&format!("grant-{}", i % 4));
        let batch = if i % 5 == 0 { vec![event(i), event(i + 1000)] } else { vec![event(i)] };
        store.append(&stream, ExpectedVersion::Any, batch).await.unwrap();
    }
    for (k, c) in commands.iter().enumerate() {
        let batch =
            vec![command_event(100 + k as u64, *c, Some(k as u8)), command_event(200 + k as u64, *c, Some(k as u8))];
        store.append(&sid("grant-cmd"), ExpectedVersion::Any, batch).await.unwrap();
    }
    store
}

/// Recomputes every hash from the genesis, as a forger would after editing.
fn rechain(rows: &mut [RawEvent]) {
    let mut previous = GENESIS;
    for row in rows {
        row.hash = row.canonical().chain_hash(&previous);
        previous = row.hash;
    }
}

#[tokio::test]
async fn a_sqlite_log_imported_into_postgres_reads_back_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let commands = [Uuid::now_v7(), Uuid::now_v7()];
    let sqlite = sqlite_log(&dir, &commands).await;
    let rows = raw_rows(&sqlite).await;
    assert_eq!(rows.len(), 52);

    let db = TestDatabase::create().await;
    let pg = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
    // In two parts: the second continues onto the head the first left.
    pg.import(rows[..20].to_vec()).await.unwrap();
    let head = pg.import(rows[20..].to_vec()).await.unwrap();
    assert_eq!(Some(head), sqlite.head().await.unwrap());
    assert_eq!(pg.head().await.unwrap(), Some(head));
    assert_eq!(*pg.watch_position().borrow(), head.position);
    assert_eq!(raw_rows(&pg).await, rows, "PostgreSQL holds other rows than SQLite");
    assert!(matches!(pg.verify(Some(head)).await.unwrap(), VerifyOutcome::Intact { events: 52, .. }));
    for c in commands {
        assert_eq!(pg.command(c).await.unwrap(), sqlite.command(c).await.unwrap());
    }

    // The imported commands keep their one effect; the log goes on.
    let original = sqlite.command(commands[0]).await.unwrap().unwrap();
    let retry = pg
        .append(&sid("grant-cmd"), ExpectedVersion::NoStream, vec![command_event(7, commands[0], Some(0))])
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!((retry.first_position, retry.last_position), (original.first_position, original.last_position));
    let other = pg.append(&sid("grant-cmd"), ExpectedVersion::Any, vec![command_event(8, commands[1], Some(9))]).await;
    assert!(matches!(other, Err(StoreError::CommandIdReused { .. })), "{other:?}");
    let next = pg.append(&sid("grant-0"), ExpectedVersion::Any, vec![event(999)]).await.unwrap();
    assert_eq!((next.first_position, next.stream_version), (Position(53), 12));
    assert!(matches!(pg.verify(Some(head)).await.unwrap(), VerifyOutcome::Intact { events: 53, .. }));
}

#[tokio::test]
async fn an_import_that_does_not_continue_the_chain_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_log(&dir, &[Uuid::now_v7()]).await;
    let rows = raw_rows(&sqlite).await;
    let db = TestDatabase::create().await;
    let pg = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();

    let mut bad_hash = rows.clone();
    bad_hash[5].hash[0] ^= 1;
    let mut edited = rows.clone();
    edited[7].data = r#"{"n":70}"#.to_owned();
    let mut version_gap = rows.clone();
    version_gap[9].stream_version += 1;
    rechain(&mut version_gap);
    let mut earlier = rows.clone();
    earlier[11].recorded_at_micros = earlier[10].recorded_at_micros - 1;
    rechain(&mut earlier);
    let mut twice = rows.clone();
    twice[13].event_id = twice[2].event_id;
    rechain(&mut twice);
    let mut bad_stream = rows.clone();
    bad_stream[3].stream_id = "$all".to_owned();
    rechain(&mut bad_stream);
    let cases: Vec<(&str, Vec<RawEvent>, u64)> = vec![
        // A refusal names the position the event would take here.
        ("a gap at the start", rows[1..].to_vec(), 1),
        ("a gap inside", [&rows[..4], &rows[5..]].concat(), 5),
        ("a hash that is not the chain's", bad_hash, 6),
        ("data edited after hashing", edited, 8),
        ("a stream version skipped", version_gap, 10),
        ("recorded_at going backwards", earlier, 12),
        ("an event id twice", twice, 14),
        ("an invalid stream id", bad_stream, 4),
    ];
    for (what, events, at) in cases {
        let err = pg.import(events).await.unwrap_err();
        assert!(matches!(&err, StoreError::ImportRefused { position, .. } if *position == at), "{what}: {err:?}");
        assert_eq!(pg.head().await.unwrap(), None, "{what}: something was written");
    }
    assert!(matches!(pg.import(Vec::new()).await, Err(StoreError::ImportRefused { position: 1, .. })));

    // Onto a log with events of its own, another log's continuation does
    // not chain (other previous hash), nor does a replay of its start.
    pg.append(&sid("grant-own"), ExpectedVersion::Any, vec![event(1)]).await.unwrap();
    let own = pg.head().await.unwrap();
    let err = pg.import(rows[1..].to_vec()).await.unwrap_err();
    assert!(matches!(err, StoreError::ImportRefused { position: 2, .. }), "{err:?}");
    let err = pg.import(rows.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::ImportRefused { position: 2, .. }), "{err:?}");
    assert_eq!(pg.head().await.unwrap(), own);
    assert_eq!(raw_rows(&pg).await.len(), 1);
}
