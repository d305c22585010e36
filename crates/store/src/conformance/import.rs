//! The conformance case of [`EventStore::import`](crate::EventStore::import).

use serde_json::json;
use uuid::Uuid;

use super::{Fixture, event, sid};
use crate::hash::CanonicalEvent;
use crate::{EventMetadata, EventStore, ExpectedVersion, Fingerprint, Head, NewEvent, Position, RawEvent, StoreError};
use crate::{READ_EVENTS_MAX, VerifyOutcome};

/// The position an import was refused at; panics on anything else.
fn refused_at(r: Result<Head, StoreError>) -> u64 {
    match r {
        Err(StoreError::ImportRefused { position, .. }) => position,
        other => panic!("expected ImportRefused, got {other:?}"),
    }
}

/// An event continuing `previous` (its head and `recorded_at`), with its
/// chain hash computed by hand from the documented encoding.
fn continuing(previous: &RawEvent, stream: &str, version: u64, metadata: &str, micros_later: i64) -> RawEvent {
    let position = previous.position.0 + 1;
    let event_id = Uuid::now_v7();
    let data = format!(r#"{{"imported":{position},"text":"  spaced  ,  as recorded "}}"#);
    let recorded_at_micros = previous.recorded_at_micros + micros_later;
    let hash = CanonicalEvent {
        position,
        stream_id: stream,
        stream_version: version,
        event_id: event_id.as_bytes(),
        event_type: "Imported",
        schema_version: 2,
        data: &data,
        metadata,
        recorded_at_micros,
    }
    .chain_hash(&previous.hash);
    RawEvent {
        position: Position(position),
        stream_id: stream.to_owned(),
        stream_version: version,
        event_id,
        event_type: "Imported".to_owned(),
        schema_version: 2,
        data,
        metadata: metadata.to_owned(),
        recorded_at_micros,
        hash,
    }
}

async fn unchanged(s: &dyn EventStore, head: Head, what: &str) {
    assert_eq!(s.head().await.unwrap(), Some(head), "{what}: something was written");
}

/// An import continues the log exactly at its head: re-importing the log's
/// own events, a forged hash, a stream version or time that does not
/// continue and a stored event id are refused at their position with
/// nothing written; events built by hand from the chain's encoding are
/// stored byte for byte, verify, fill the command index, and appends
/// continue after them.
pub async fn import_continues_a_log_exactly(f: &Fixture) {
    let s = &*f.store;
    for i in 0..6 {
        s.append(&sid(&format!("grant-{}", i % 2)), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let raw = s.read_raw(Position::START, READ_EVENTS_MAX).await.unwrap();
    assert_eq!(raw.len(), 6);
    let head = s.head().await.unwrap().unwrap();
    let last = raw.last().unwrap().clone();

    assert_eq!(refused_at(s.import(raw.clone()).await), 7, "the log's own events again");
    unchanged(s, head, "re-import").await;
    assert_eq!(refused_at(s.import(Vec::new()).await), 7);

    let command = Uuid::now_v7();
    let fingerprint = Fingerprint([3; 32]);
    let with_command = serde_json::to_string(&EventMetadata {
        actor: "importer".to_owned(),
        command_id: Some(command),
        fingerprint: Some(fingerprint),
        ..EventMetadata::default()
    })
    .unwrap();
    // grant-1 holds versions 0..=2; grant-new is new.
    let e7 = continuing(&last, "grant-1", 3, &with_command, 0);
    let e8 = continuing(&e7, "grant-1", 4, &with_command, 5);
    let e9 = continuing(&e8, "grant-new", 0, r#"{"actor":"importer"}"#, 1);
    let built = vec![e7.clone(), e8.clone(), e9.clone()];

    let mut forged = built.clone();
    forged[1].hash[31] ^= 0x01;
    assert_eq!(refused_at(s.import(forged).await), 8, "a forged hash");
    let mut tampered = built.clone();
    tampered[2].data = tampered[2].data.replace("spaced", "spaced!");
    assert_eq!(refused_at(s.import(tampered).await), 9, "data that is not what was hashed");
    let version = continuing(&last, "grant-1", 4, r#"{"actor":"importer"}"#, 0);
    assert_eq!(refused_at(s.import(vec![version]).await), 7, "a stream version that skips one");
    let earlier = continuing(&last, "grant-1", 3, r#"{"actor":"importer"}"#, -1);
    assert_eq!(refused_at(s.import(vec![earlier]).await), 7, "recorded_at going backwards");
    let mut stored_id = continuing(&last, "grant-1", 3, r#"{"actor":"importer"}"#, 0);
    stored_id.event_id = raw[0].event_id;
    stored_id.hash = stored_id.canonical().chain_hash(&last.hash);
    assert_eq!(refused_at(s.import(vec![stored_id]).await), 7, "a stored event id");
    let mut gap = built.clone();
    gap.remove(1);
    assert_eq!(refused_at(s.import(gap).await), 8, "a gap");
    unchanged(s, head, "refusals").await;
    assert_eq!(s.command(command).await.unwrap(), None);

    let imported = s.import(built.clone()).await.unwrap();
    assert_eq!(imported, e9.head());
    assert_eq!(s.head().await.unwrap(), Some(e9.head()));
    assert_eq!(*s.watch_position().borrow(), Position(9), "the announced head follows an import");
    assert_eq!(s.read_raw(head.position, READ_EVENTS_MAX).await.unwrap(), built, "stored byte for byte");
    assert_eq!(s.hash_at(Position(8)).await.unwrap(), Some(e8.hash));
    let read = s.read_all(Position(6), 10).await.unwrap();
    assert_eq!(read[2].data.get(), e9.data);
    assert_eq!(read[0].recorded_at.timestamp_micros(), e7.recorded_at_micros);
    assert_eq!(s.stream_version(&sid("grant-1")).await.unwrap(), Some(4));
    assert_eq!(s.stream_version(&sid("grant-new")).await.unwrap(), Some(0));
    assert_eq!(s.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 9, head: Some(e9.head()) });

    let recorded = s.command(command).await.unwrap().expect("the imported command is indexed");
    assert_eq!((recorded.first_position, recorded.last_position), (Position(7), Position(8)));
    assert_eq!(recorded.fingerprint, Some(fingerprint));
    let retry_meta = EventMetadata {
        actor: "a".to_owned(),
        command_id: Some(command),
        fingerprint: Some(fingerprint),
        ..Default::default()
    };
    let retry = s
        .append(&sid("grant-1"), ExpectedVersion::Any, vec![NewEvent::new("Tested", 1, json!({"n": 1}), retry_meta)])
        .await
        .unwrap();
    assert!(retry.replayed && retry.last_position == Position(8), "{retry:?}");
    let next = s.append(&sid("grant-new"), ExpectedVersion::Exact(0), vec![event(99)]).await.unwrap();
    assert_eq!((next.first_position, next.stream_version), (Position(10), 1), "appends continue after an import");
    assert!(matches!(s.verify(Some(e9.head())).await.unwrap(), VerifyOutcome::Intact { events: 10, .. }));
    assert_eq!(refused_at(s.import(built).await), 11, "the imported events again");
}
