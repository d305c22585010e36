//! SQLite to SQLite: a whole log imported page by page into a fresh file is
//! the same log: the same rows byte for byte, the same head, the same
//! command index, and it goes on accepting appends and retries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use serde_json::json;
use store::import::whole_commands;
use store::{
    EventMetadata, EventStore, ExpectedVersion, Fingerprint, NewEvent, Position, StoreError, StreamId, VerifyOutcome,
};
use store_sqlite::SqliteStore;
use uuid::Uuid;

fn sid(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

fn keyed(n: u64, command: Uuid) -> NewEvent {
    let metadata = EventMetadata {
        actor: "u-1".to_owned(),
        command_id: Some(command),
        fingerprint: Some(Fingerprint([command.as_bytes()[15]; 32])),
        reason: Some(format!("reason {n} with \"quotes\" and ünïcode")),
        ..EventMetadata::default()
    };
    NewEvent::new("Tested", 1, json!({ "n": n, "amount": "12.50" }), metadata)
}

/// Copies `from` into `to` in pages of `page` events, never splitting a
/// command's events; returns the number of imports.
async fn copy(from: &SqliteStore, to: &SqliteStore, page: usize) -> usize {
    let mut after = Position::START;
    let mut imports = 0;
    loop {
        let mut events = from.read_raw(after, page).await.unwrap();
        if events.is_empty() {
            return imports;
        }
        if events.len() == page {
            events.truncate(whole_commands(&events));
        }
        after = events.last().unwrap().position;
        to.import(events).await.unwrap();
        imports += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_log_imported_page_by_page_is_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let source = SqliteStore::open(dir.path().join("source.sqlite")).await.unwrap();
    let mut commands = Vec::new();
    for i in 0..300u64 {
        let command = Uuid::now_v7();
        // Batches of 1 to 4 events, so that pages of 7 end inside commands.
        let batch: Vec<_> = (0..1 + i % 4).map(|k| keyed(i * 10 + k, command)).collect();
        source.append(&sid(&format!("grant-{}", i % 5)), ExpectedVersion::Any, batch).await.unwrap();
        commands.push(command);
    }
    let plain: Vec<_> =
        (0..20).map(|n| NewEvent::new("Plain", 2, json!({ "n": n }), EventMetadata::default())).collect();
    source.append(&sid("grant-plain"), ExpectedVersion::NoStream, plain).await.unwrap();
    let head = source.head().await.unwrap().unwrap();

    let target = SqliteStore::open(dir.path().join("target.sqlite")).await.unwrap();
    let imports = copy(&source, &target, 7).await;
    assert!(imports > 100, "{imports} imports");
    assert_eq!(target.head().await.unwrap(), Some(head));
    assert_eq!(target.verify(None).await.unwrap(), VerifyOutcome::Intact { events: head.position.0, head: Some(head) });
    let all = |s: SqliteStore| async move { s.read_raw(Position::START, 10_000).await.unwrap() };
    assert_eq!(all(target.clone()).await, all(source.clone()).await);
    for command in &commands {
        assert_eq!(target.command(*command).await.unwrap(), source.command(*command).await.unwrap());
        assert!(target.command(*command).await.unwrap().is_some());
    }

    // A retry of a copied command is answered from the copy's index, and
    // the copy's chain continues.
    let retry = vec![keyed(0, commands[0])];
    let answer = target.append(&sid("grant-0"), ExpectedVersion::Any, retry).await.unwrap();
    assert!(answer.replayed && answer.first_position == Position(1), "{answer:?}");
    let next = target.append(&sid("grant-0"), ExpectedVersion::Any, vec![keyed(1, Uuid::now_v7())]).await.unwrap();
    assert_eq!(next.first_position, head.position.next());
    assert!(matches!(target.verify(Some(head)).await.unwrap(), VerifyOutcome::Intact { .. }));
    source.close().await;
    target.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_that_splits_a_command_is_refused_and_survives_reopen_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let source = SqliteStore::open(dir.path().join("source.sqlite")).await.unwrap();
    let command = Uuid::now_v7();
    source.append(&sid("grant-a"), ExpectedVersion::Any, (0..4).map(|n| keyed(n, command)).collect()).await.unwrap();
    let events = source.read_raw(Position::START, 100).await.unwrap();
    let path = dir.path().join("target.sqlite");
    let target = SqliteStore::open(&path).await.unwrap();
    target.import(events[..2].to_vec()).await.unwrap();
    let split = target.import(events[2..].to_vec()).await;
    assert!(matches!(split, Err(StoreError::ImportRefused { position: 3, .. })), "{split:?}");
    assert_eq!(target.head().await.unwrap(), Some(events[1].head()), "a refused import writes nothing");
    target.close().await;
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(reopened.read_raw(Position::START, 100).await.unwrap(), events[..2].to_vec());
    assert!(matches!(reopened.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 2, .. }));
    reopened.close().await;
    source.close().await;
}
