//! The generic suite every [`EventStore`] backend must pass, written once
//! against the trait. A backend's test file calls
//! [`conformance_tests!`](crate::conformance_tests) with an async expression
//! that yields a fresh, empty [`Fixture`]; each case becomes its own test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;
use uuid::Uuid;

mod hooked;
mod import;

pub use hooked::{Hooked, Hooks};
pub use import::import_continues_a_log_exactly;

use crate::{
    AppendResult, ChainProblem, Direction, EventMetadata, EventStore, ExpectedVersion, Head, NewEvent, Position,
    RecordedCommand, StoreError, StreamId, StreamStart, Subscription, VerifyOutcome,
};

/// A fresh, empty store, plus whatever must live as long as it (a temporary
/// directory, a database schema).
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn EventStore>,
    /// Dropped after the test.
    pub keep: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fixture")
    }
}

/// Generates one `#[tokio::test]` per conformance case, each on a fresh
/// fixture made by `$make` (an expression of type `impl Future<Output = Fixture>`).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            first_append_is_version_zero_at_position_one,
            expected_version_is_enforced_with_the_actual_version,
            a_refused_batch_records_nothing,
            positions_are_global_gapless_and_in_commit_order,
            same_event_ids_and_content_return_the_original_result,
            reused_event_ids_with_other_content_are_refused,
            malformed_appends_are_refused,
            metadata_round_trips_and_the_store_sets_recorded_at,
            streams_read_forward_and_backward_from_a_version,
            the_whole_log_reads_in_pages,
            stream_ids_list_every_stream_once_in_pages,
            streams_read_whole_stream_after_stream_up_to_a_position,
            first_position_at_or_after_a_time,
            head_and_verify,
            verify_since_proves_an_unchanged_prefix,
            subscription_catches_up_then_follows_live,
            slow_subscriber_lags_but_never_skips,
            subscription_batches_hold_every_event_once_within_the_limit,
            racing_appenders_one_winner_per_round,
            one_conflict_in_a_group_fails_only_itself,
            queued_appends_keep_their_order_and_a_failed_one_fails_what_expected_it,
            a_command_id_has_one_effect_in_the_whole_log,
            a_command_recorded_without_a_fingerprint_is_matched_by_its_stream,
            racing_appends_of_one_command_id_have_one_effect,
            an_append_carries_one_command,
            import_continues_a_log_exactly,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $make.await;
                $crate::conformance::$case(&fixture).await;
            }
        )*
    };
}

pub(crate) fn sid(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

fn meta(actor: &str) -> EventMetadata {
    EventMetadata { actor: actor.to_owned(), ..EventMetadata::default() }
}

/// An event shaped like a real expenditure (~330 bytes of data, ~200 of
/// metadata, with a command id), as the backends' benchmarks append.
pub fn expenditure_event(n: u64) -> NewEvent {
    NewEvent::new(
        "ExpenditureRecorded",
        1,
        json!({
            "expenditure_id": format!("exp-{n}"),
            "line_id": "FP1-CON",
            "amount": "1250.00",
            "currency": "EUR",
            "incurred_on": "2022-03-14",
            "document": { "supplier": "sup-17", "invoice": format!("INV-{n}") },
        }),
        EventMetadata {
            actor: "u-manager-1".to_owned(),
            effective_date: chrono::NaiveDate::from_ymd_opt(2022, 3, 14),
            reason: Some("monthly consumables".to_owned()),
            command_id: Some(Uuid::now_v7()),
            correlation_id: Some(Uuid::now_v7()),
            causation_id: None,
            fingerprint: None,
        },
    )
}

/// A test event with payload `{"n": n}`.
pub fn event(n: u64) -> NewEvent {
    NewEvent::new("Tested", 1, json!({ "n": n }), meta("tester"))
}

async fn all(store: &dyn EventStore) -> Vec<crate::RecordedEvent> {
    let mut out = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, 500).await.unwrap();
        let Some(last) = page.last() else { return out };
        after = last.position;
        out.extend(page);
    }
}

/// The first event of a new stream is version 0 and, in an empty log, position 1.
pub async fn first_append_is_version_zero_at_position_one(f: &Fixture) {
    let s = &*f.store;
    let r = s.append(&sid("grant-a"), ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    assert_eq!((r.first_position, r.last_position, r.stream_version), (Position(1), Position(1), 0));
    let r = s.append(&sid("grant-a"), ExpectedVersion::Exact(0), vec![event(2), event(3)]).await.unwrap();
    assert_eq!((r.first_position, r.last_position, r.stream_version), (Position(2), Position(3), 2));
    assert_eq!(s.stream_version(&sid("grant-a")).await.unwrap(), Some(2));
    assert_eq!(s.stream_version(&sid("grant-b")).await.unwrap(), None);
}

/// Each expected-version rule admits and refuses exactly what it says, and
/// a refusal names the stream's actual version.
pub async fn expected_version_is_enforced_with_the_actual_version(f: &Fixture) {
    let s = &*f.store;
    let a = sid("grant-a");
    let conflict = |r: Result<crate::AppendResult, StoreError>| match r {
        Err(StoreError::Conflict { actual, .. }) => actual,
        other => panic!("expected a conflict, got {other:?}"),
    };
    assert_eq!(conflict(s.append(&a, ExpectedVersion::StreamExists, vec![event(0)]).await), None);
    assert_eq!(conflict(s.append(&a, ExpectedVersion::Exact(0), vec![event(0)]).await), None);
    s.append(&a, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    assert_eq!(conflict(s.append(&a, ExpectedVersion::NoStream, vec![event(2)]).await), Some(0));
    assert_eq!(conflict(s.append(&a, ExpectedVersion::Exact(1), vec![event(2)]).await), Some(0));
    s.append(&a, ExpectedVersion::StreamExists, vec![event(2)]).await.unwrap();
    s.append(&a, ExpectedVersion::Exact(1), vec![event(3)]).await.unwrap();
    s.append(&a, ExpectedVersion::Any, vec![event(4)]).await.unwrap();
    s.append(&sid("grant-b"), ExpectedVersion::Any, vec![event(5)]).await.unwrap();
    let err = s.append(&a, ExpectedVersion::Exact(0), vec![event(6)]).await.unwrap_err();
    assert!(matches!(
        &err,
        StoreError::Conflict { stream_id, expected: ExpectedVersion::Exact(0), actual: Some(3) } if *stream_id == a
    ));
    assert!(err.to_string().contains("version 3"), "{err}");
    assert_eq!(all(s).await.len(), 5);
}

/// A batch is all or nothing: a conflicting batch leaves no trace, and a
/// later batch continues the versions and positions without a gap.
pub async fn a_refused_batch_records_nothing(f: &Fixture) {
    let s = &*f.store;
    let a = sid("grant-a");
    s.append(&a, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let batch: Vec<_> = (0..5).map(event).collect();
    assert!(s.append(&a, ExpectedVersion::NoStream, batch.clone()).await.is_err());
    assert_eq!(all(s).await.len(), 1);
    let r = s.append(&a, ExpectedVersion::Exact(0), batch).await.unwrap();
    assert_eq!((r.first_position, r.last_position, r.stream_version), (Position(2), Position(6), 5));
    let versions: Vec<u64> = all(s).await.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, vec![0, 1, 2, 3, 4, 5]);
}

/// Appends to many streams share one gapless position sequence, and each
/// stream keeps its own gapless versions.
pub async fn positions_are_global_gapless_and_in_commit_order(f: &Fixture) {
    let s = &*f.store;
    for i in 0..30u64 {
        let stream = sid(&format!("grant-{}", i % 4));
        s.append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let events = all(s).await;
    let positions: Vec<u64> = events.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, (1..=30).collect::<Vec<_>>());
    for k in 0..4 {
        let versions: Vec<u64> =
            events.iter().filter(|e| e.stream_id.as_str() == format!("grant-{k}")).map(|e| e.stream_version).collect();
        assert_eq!(versions, (0..versions.len() as u64).collect::<Vec<_>>());
    }
    let ns: Vec<u64> = events.iter().map(|e| e.data.to_value()["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, (0..30).collect::<Vec<_>>(), "log order is not the order of acknowledgement");
}

/// Retrying an append (same ids, same content) returns the first result
/// and records nothing, even when the retry's expected version is stale.
pub async fn same_event_ids_and_content_return_the_original_result(f: &Fixture) {
    let s = &*f.store;
    let a = sid("grant-a");
    s.append(&a, ExpectedVersion::NoStream, vec![event(0)]).await.unwrap();
    let batch = vec![event(1), event(2)];
    let first = s.append(&a, ExpectedVersion::Exact(0), batch.clone()).await.unwrap();
    s.append(&a, ExpectedVersion::Exact(2), vec![event(3)]).await.unwrap();
    assert!(!first.replayed);
    let again = s.append(&a, ExpectedVersion::Exact(0), batch.clone()).await.unwrap();
    assert_eq!(again, AppendResult { replayed: true, ..first });
    let again = s.append(&a, ExpectedVersion::Any, batch).await.unwrap();
    assert_eq!(again, AppendResult { replayed: true, ..first });
    assert_eq!(all(s).await.len(), 4);
}

/// An id that is already stored cannot be reused for other content, another
/// stream, or a batch that differs from the one it was stored in.
pub async fn reused_event_ids_with_other_content_are_refused(f: &Fixture) {
    let s = &*f.store;
    let a = sid("grant-a");
    let original = event(1);
    let second = event(2);
    s.append(&a, ExpectedVersion::Any, vec![original.clone(), second.clone()]).await.unwrap();
    let reused = |r: Result<crate::AppendResult, StoreError>, id: Uuid| {
        assert!(matches!(r, Err(StoreError::EventIdReused { event_id }) if event_id == id), "{r:?}");
    };
    let mut other_data = original.clone();
    other_data.data = json!({ "n": 99 });
    reused(s.append(&a, ExpectedVersion::Any, vec![other_data]).await, original.event_id);
    let mut other_type = original.clone();
    other_type.event_type = "Other".to_owned();
    reused(s.append(&a, ExpectedVersion::Any, vec![other_type]).await, original.event_id);
    let mut other_meta = original.clone();
    other_meta.metadata.actor = "someone-else".to_owned();
    reused(s.append(&a, ExpectedVersion::Any, vec![other_meta]).await, original.event_id);
    reused(s.append(&sid("grant-b"), ExpectedVersion::Any, vec![original.clone()]).await, original.event_id);
    let fresh = event(3);
    reused(s.append(&a, ExpectedVersion::Any, vec![fresh.clone(), original.clone()]).await, original.event_id);
    reused(s.append(&a, ExpectedVersion::Any, vec![second.clone(), original.clone()]).await, original.event_id);
    assert_eq!(all(s).await.len(), 2);
}

/// Empty batches, repeated ids in one batch and bad type names are refused
/// before anything is written.
pub async fn malformed_appends_are_refused(f: &Fixture) {
    let s = &*f.store;
    let a = sid("grant-a");
    assert!(matches!(s.append(&a, ExpectedVersion::Any, vec![]).await, Err(StoreError::EmptyAppend)));
    let e = event(1);
    assert!(matches!(
        s.append(&a, ExpectedVersion::Any, vec![e.clone(), e.clone()]).await,
        Err(StoreError::DuplicateEventInBatch { event_id }) if event_id == e.event_id
    ));
    let mut unnamed = event(2);
    unnamed.event_type = String::new();
    assert!(matches!(
        s.append(&a, ExpectedVersion::Any, vec![unnamed]).await,
        Err(StoreError::InvalidEventType { .. })
    ));
    let many: Vec<_> = (0..=crate::EVENTS_PER_APPEND_MAX as u64).map(event).collect();
    assert!(matches!(s.append(&a, ExpectedVersion::Any, many).await, Err(StoreError::TooManyEvents { .. })));
    assert!(all(s).await.is_empty());
    assert_eq!(s.head().await.unwrap(), None);
}

/// Every metadata field comes back as given; `recorded_at` is the store's
/// UTC clock at microsecond precision and never goes backwards.
pub async fn metadata_round_trips_and_the_store_sets_recorded_at(f: &Fixture) {
    let s = &*f.store;
    let metadata = EventMetadata {
        actor: "u-42".to_owned(),
        effective_date: Some(chrono::NaiveDate::from_ymd_opt(2022, 3, 14).unwrap()),
        reason: Some("invoice 2022-117 from the sequencing core".to_owned()),
        command_id: Some(Uuid::now_v7()),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: Some(Uuid::now_v7()),
        fingerprint: Some(crate::Fingerprint([7; 32])),
    };
    let before = Utc::now() - Duration::milliseconds(1);
    let mut e = NewEvent::new("ExpenditureRecorded", 3, json!({ "amount": "1250.00", "currency": "EUR" }), metadata);
    e.event_id = Uuid::now_v7();
    s.append(&sid("grant-a"), ExpectedVersion::Any, vec![e.clone()]).await.unwrap();
    for i in 0..5 {
        s.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let after = Utc::now() + Duration::milliseconds(1);
    let events = all(s).await;
    let got = &events[0];
    assert_eq!(got.event_id, e.event_id);
    assert_eq!(got.event_type, "ExpenditureRecorded");
    assert_eq!(got.schema_version, 3);
    assert_eq!(got.data.to_value(), e.data);
    assert_eq!(got.metadata, e.metadata);
    assert!(before <= got.recorded_at && got.recorded_at <= after, "{} not in [{before}, {after}]", got.recorded_at);
    assert_eq!(got.recorded_at.timestamp_subsec_nanos() % 1_000, 0, "not truncated to microseconds");
    assert!(events.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
}

/// A stream reads forward and backward from any version, within a limit.
pub async fn streams_read_forward_and_backward_from_a_version(f: &Fixture) {
    let s = &*f.store;
    let a = sid("grant-a");
    for i in 0..10 {
        s.append(&a, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
        s.append(&sid("grant-b"), ExpectedVersion::Any, vec![event(100 + i)]).await.unwrap();
    }
    let versions = |events: Vec<crate::RecordedEvent>| events.iter().map(|e| e.stream_version).collect::<Vec<_>>();
    let r = s.read_stream(&a, StreamStart::End, Direction::Forward, 100).await.unwrap();
    assert_eq!(versions(r.clone()), (0..10).collect::<Vec<_>>());
    assert!(r.iter().all(|e| e.stream_id == a));
    let r = s.read_stream(&a, StreamStart::Version(7), Direction::Forward, 100).await.unwrap();
    assert_eq!(versions(r), vec![7, 8, 9]);
    let r = s.read_stream(&a, StreamStart::Version(2), Direction::Forward, 3).await.unwrap();
    assert_eq!(versions(r), vec![2, 3, 4]);
    let r = s.read_stream(&a, StreamStart::End, Direction::Backward, 3).await.unwrap();
    assert_eq!(versions(r), vec![9, 8, 7]);
    let r = s.read_stream(&a, StreamStart::Version(1), Direction::Backward, 100).await.unwrap();
    assert_eq!(versions(r), vec![1, 0]);
    assert!(s.read_stream(&a, StreamStart::Version(10), Direction::Forward, 10).await.unwrap().is_empty());
    assert!(s.read_stream(&sid("nope"), StreamStart::End, Direction::Forward, 10).await.unwrap().is_empty());
}

/// Reading the whole log page by page visits every event once, in order,
/// and a page never exceeds the read limit.
pub async fn the_whole_log_reads_in_pages(f: &Fixture) {
    let s = &*f.store;
    let batch: Vec<_> = (0..1_234).map(event).collect();
    s.append(&sid("grant-a"), ExpectedVersion::Any, batch).await.unwrap();
    let page = s.read_all(Position::START, 100).await.unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!((page[0].position, page[99].position), (Position(1), Position(100)));
    let page = s.read_all(Position(1_200), 100).await.unwrap();
    assert_eq!(page.iter().map(|e| e.position.0).collect::<Vec<_>>(), (1_201..=1_234).collect::<Vec<_>>());
    assert!(s.read_all(Position(1_234), 100).await.unwrap().is_empty());
    let page = s.read_all(Position::START, usize::MAX).await.unwrap();
    assert_eq!(page.len(), 1_234);
    assert_eq!(all(s).await.len(), 1_234);
}

/// The streams that hold events are listed once each, page by page,
/// whatever the order they were written in.
pub async fn stream_ids_list_every_stream_once_in_pages(f: &Fixture) {
    let s = &*f.store;
    assert!(s.stream_ids(None, 10).await.unwrap().is_empty(), "an empty log has no streams");
    let names = ["grant-b", "programme-p", "grant-a", "grant-a-2", "grant-B", "grant-~"];
    for round in 0..3u64 {
        for (i, name) in names.iter().enumerate() {
            s.append(&sid(name), ExpectedVersion::Any, vec![event(round * 10 + i as u64)]).await.unwrap();
        }
    }
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort_unstable();
    let mut listed = Vec::new();
    let mut after: Option<StreamId> = None;
    loop {
        let page = s.stream_ids(after.as_ref(), 4).await.unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last().cloned() else { break };
        listed.extend(page.iter().map(|id| id.as_str().to_owned()));
        after = Some(last);
    }
    // In the store's index order, which may not be byte order (a
    // PostgreSQL database's collation decides): as a set, each once.
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "listed: {listed:?}");
    let whole = s.stream_ids(None, 100).await.unwrap();
    assert_eq!(whole.iter().map(StreamId::as_str).collect::<Vec<_>>(), listed, "one page lists what pages list");
}

/// Whole streams read one after another, in the order asked, in pages of
/// one stream each, stop at `upto`, and stop when the reader goes.
pub async fn streams_read_whole_stream_after_stream_up_to_a_position(f: &Fixture) {
    let s = &*f.store;
    let (a, b, c, empty) = (sid("grant-a"), sid("grant-b"), sid("grant-c"), sid("grant-none"));
    // grant-a spans two pages (READ_EVENTS_MAX + 5 events), interleaved
    // with grant-b; grant-c is written after `upto` only.
    let long = crate::READ_EVENTS_MAX as u64 + 5;
    for round in 0..long.div_ceil(1_000) {
        let n = (long - round * 1_000).min(1_000);
        s.append(&a, ExpectedVersion::Any, (0..n).map(|i| event(round * 1_000 + i)).collect()).await.unwrap();
        s.append(&b, ExpectedVersion::Any, vec![event(round)]).await.unwrap();
    }
    let upto = s.head().await.unwrap().unwrap().position;
    s.append(&c, ExpectedVersion::Any, vec![event(1), event(2)]).await.unwrap();
    s.append(&a, ExpectedVersion::Any, vec![event(long)]).await.unwrap();

    let read = |streams: Vec<StreamId>, upto: Position| async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let reading = s.read_streams(streams, upto, tx);
        let collecting = async {
            let mut pages = Vec::new();
            while let Some(page) = rx.recv().await {
                pages.push(page.unwrap());
            }
            pages
        };
        let ((), pages) = tokio::join!(reading, collecting);
        pages
    };
    let pages = read(vec![b.clone(), empty.clone(), c.clone(), a.clone()], upto).await;
    let shape: Vec<(String, usize)> = pages.iter().map(|p| (p[0].stream_id.as_str().to_owned(), p.len())).collect();
    let rounds = long.div_ceil(1_000) as usize;
    assert_eq!(
        shape,
        vec![("grant-b".to_owned(), rounds), ("grant-a".to_owned(), crate::READ_EVENTS_MAX), ("grant-a".to_owned(), 5)],
        "the order asked, nothing past upto, no page for a stream with nothing up to it"
    );
    for page in &pages {
        assert!(page.iter().all(|e| e.stream_id == page[0].stream_id && e.position <= upto));
    }
    let a_versions: Vec<u64> = pages[1..].iter().flatten().map(|e| e.stream_version).collect();
    assert_eq!(a_versions, (0..long).collect::<Vec<_>>(), "each stream whole, in version order");
    let everything = read(vec![a.clone(), c.clone()], Position(u64::MAX)).await;
    assert_eq!(everything.iter().map(Vec::len).sum::<usize>() as u64, long + 1 + 2);

    // A reader that goes after the first page ends the read, not the store.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let reading = s.read_streams(vec![a.clone(), b.clone()], upto, tx);
    let first = async move { rx.recv().await.map(|page| page.unwrap().len()) };
    let ((), first) = tokio::join!(reading, first);
    assert_eq!(first, Some(crate::READ_EVENTS_MAX));
    assert_eq!(s.stream_version(&c).await.unwrap(), Some(1), "the store still answers");
}

/// The first position recorded at or after a time.
pub async fn first_position_at_or_after_a_time(f: &Fixture) {
    let s = &*f.store;
    let t0 = Utc::now() - Duration::seconds(1);
    assert_eq!(s.position_at_or_after(t0).await.unwrap(), None);
    for i in 0..20 {
        s.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let events = all(s).await;
    assert_eq!(s.position_at_or_after(t0).await.unwrap(), Some(Position(1)));
    for e in &events {
        let found = s.position_at_or_after(e.recorded_at).await.unwrap().unwrap();
        let expected = events.iter().find(|x| x.recorded_at >= e.recorded_at).unwrap().position;
        assert_eq!(found, expected);
    }
    let later = events.last().unwrap().recorded_at + Duration::microseconds(1);
    assert_eq!(s.position_at_or_after(later).await.unwrap(), None);
}

/// The head is the last event's position and hash, and an intact log verifies.
pub async fn head_and_verify(f: &Fixture) {
    let s = &*f.store;
    assert_eq!(s.head().await.unwrap(), None);
    assert_eq!(s.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 0, head: None });
    for i in 0..50 {
        s.append(&sid(&format!("grant-{}", i % 3)), ExpectedVersion::Any, vec![event(i), event(1000 + i)])
            .await
            .unwrap();
    }
    let head = s.head().await.unwrap().unwrap();
    let events = all(s).await;
    let last = events.last().unwrap();
    assert_eq!(head, Head { position: last.position, hash: last.hash });
    assert_eq!(head.position, Position(100));
    let hashes: HashSet<_> = events.iter().map(|e| e.hash).collect();
    assert_eq!(hashes.len(), 100, "hashes repeat");
    assert_eq!(s.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 100, head: Some(head) });
}

/// An auditor's earlier head proves an unchanged prefix; a wrong hash or a
/// position past the end does not.
pub async fn verify_since_proves_an_unchanged_prefix(f: &Fixture) {
    let s = &*f.store;
    for i in 0..10 {
        s.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let seen = s.head().await.unwrap().unwrap();
    for i in 10..20 {
        s.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    assert!(matches!(s.verify(Some(seen)).await.unwrap(), VerifyOutcome::Intact { events: 20, .. }));
    let forged = Head { position: seen.position, hash: [9u8; 32] };
    assert_eq!(
        s.verify(Some(forged)).await.unwrap(),
        VerifyOutcome::Broken {
            position: Position(10),
            problem: ChainProblem::NotAPrefix { expected: forged, found: Some(seen.hash) },
        }
    );
    let future = Head { position: Position(21), hash: seen.hash };
    assert_eq!(
        s.verify(Some(future)).await.unwrap(),
        VerifyOutcome::Broken {
            position: Position(21),
            problem: ChainProblem::NotAPrefix { expected: future, found: None },
        }
    );
}

/// A subscription delivers the existing events, then new ones as they are
/// committed, each once, in order; it resumes from its checkpoint.
pub async fn subscription_catches_up_then_follows_live(f: &Fixture) {
    let s = Arc::clone(&f.store);
    for i in 0..25 {
        s.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let mut sub = Subscription::new(Arc::clone(&s), Position::START);
    for expected in 1..=25 {
        assert_eq!(sub.next().await.unwrap().position, Position(expected));
    }
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            for i in 25..60 {
                s.append(&sid("grant-b"), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
            }
        })
    };
    for expected in 26..=60 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next()).await.unwrap().unwrap();
        assert_eq!(e.position, Position(expected));
    }
    writer.await.unwrap();
    assert_eq!(sub.position(), Position(60));
    let mut resumed = Subscription::new(Arc::clone(&s), Position(40));
    assert_eq!(resumed.next().await.unwrap().position, Position(41));
    let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), sub.next()).await;
    assert!(waiting.is_err(), "a caught-up subscription returned an event that does not exist");
}

/// A subscriber that falls thousands of events behind still receives every
/// one of them, in order, across many catch-up pages.
pub async fn slow_subscriber_lags_but_never_skips(f: &Fixture) {
    let s = Arc::clone(&f.store);
    let mut sub = Subscription::new(Arc::clone(&s), Position::START);
    s.append(&sid("grant-a"), ExpectedVersion::Any, vec![event(0)]).await.unwrap();
    assert_eq!(sub.next().await.unwrap().position, Position(1));
    let total = 3 * crate::SUBSCRIPTION_PAGE_EVENTS as u64 + 17;
    for chunk in (1..total).collect::<Vec<_>>().chunks(500) {
        let batch = chunk.iter().map(|&i| event(i)).collect();
        s.append(&sid("grant-a"), ExpectedVersion::Any, batch).await.unwrap();
    }
    for expected in 2..=total {
        let e = sub.next().await.unwrap();
        assert_eq!(e.position, Position(expected));
        assert_eq!(e.data.to_value()["n"], expected - 1);
    }
}

/// Batched delivery gives every event once, in order, never more than the
/// limit at a time, and waits for new commits like `next`.
pub async fn subscription_batches_hold_every_event_once_within_the_limit(f: &Fixture) {
    let s = Arc::clone(&f.store);
    let batch: Vec<_> = (0..2_500).map(event).collect();
    s.append(&sid("grant-a"), ExpectedVersion::Any, batch).await.unwrap();
    let mut sub = Subscription::new(Arc::clone(&s), Position(10));
    let mut seen = Vec::new();
    while seen.len() < 2_490 {
        let b = sub.next_batch(300).await.unwrap();
        assert!(!b.is_empty() && b.len() <= 300, "batch of {}", b.len());
        seen.extend(b.iter().map(|e| e.position.0));
    }
    assert_eq!(seen, (11..=2_500).collect::<Vec<_>>());
    assert_eq!(sub.position(), Position(2_500));
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(
            async move { s.append(&sid("grant-b"), ExpectedVersion::Any, vec![event(1), event(2)]).await.unwrap() },
        )
    };
    let live = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next_batch(300)).await.unwrap().unwrap();
    writer.await.unwrap();
    assert_eq!(live.iter().map(|e| e.position.0).collect::<Vec<_>>(), vec![2_501, 2_502]);
}

/// N tasks race to append at the same expected version: exactly one wins
/// each round, and every loser is told the winner's version.
pub async fn racing_appenders_one_winner_per_round(f: &Fixture) {
    let racers = 16;
    let a = sid("grant-race");
    f.store.append(&a, ExpectedVersion::NoStream, vec![event(0)]).await.unwrap();
    for round in 0..20u64 {
        let tasks: Vec<_> = (0..racers)
            .map(|_| {
                let (s, a) = (Arc::clone(&f.store), a.clone());
                tokio::spawn(async move { s.append(&a, ExpectedVersion::Exact(round), vec![event(round)]).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    wins += 1;
                    assert_eq!(r.stream_version, round + 1);
                }
                Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, Some(round + 1)),
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    assert_eq!(f.store.stream_version(&a).await.unwrap(), Some(20));
    assert!(matches!(f.store.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 21, .. }));
}

/// Many appends in flight at once (committed together) where some conflict:
/// exactly the conflicting ones fail, the rest are recorded.
pub async fn one_conflict_in_a_group_fails_only_itself(f: &Fixture) {
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            let s = Arc::clone(&f.store);
            tokio::spawn(async move {
                let expected = if i % 8 == 0 { ExpectedVersion::Exact(5) } else { ExpectedVersion::NoStream };
                (i, s.append(&sid(&format!("grant-{i}")), expected, vec![event(i), event(i + 100)]).await)
            })
        })
        .collect();
    let mut recorded = HashSet::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i % 8 == 0 {
            assert!(matches!(r, Err(StoreError::Conflict { actual: None, .. })), "{i}: {r:?}");
        } else {
            r.unwrap();
            recorded.insert(format!("grant-{i}"));
        }
    }
    let events = all(&*f.store).await;
    assert_eq!(events.len(), 2 * 56);
    assert!(events.iter().all(|e| recorded.contains(e.stream_id.as_str())));
    assert!(matches!(f.store.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 112, .. }));
}

/// Appends queued one after another, each expecting the version the one
/// before will produce, all before any answer is awaited: each is recorded
/// in the order queued. When one of them is refused, the next (which
/// expected the refused one's events) is refused as a conflict, and an
/// append that expects the version actually there is recorded after it.
pub async fn queued_appends_keep_their_order_and_a_failed_one_fails_what_expected_it(f: &Fixture) {
    let s = sid("grant-q");
    let mut answers = Vec::new();
    for i in 0..20u64 {
        let expected = if i == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(i - 1) };
        answers.push(f.store.queue_append(&s, expected, vec![event(i)]).await.unwrap());
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let r = answer.await.unwrap();
        assert_eq!((r.stream_version, r.first_position), (i as u64, Position(i as u64 + 1)), "append {i}");
    }
    // The third queued expects version 7, which is not there: refused, and
    // so is the fourth, which expected the third's event at 20; the fifth
    // expects the version the log holds.
    let queued = [
        (ExpectedVersion::Exact(19), event(20)),
        (ExpectedVersion::Exact(20), event(21)),
        (ExpectedVersion::Exact(7), event(22)),
        (ExpectedVersion::Exact(22), event(23)),
        (ExpectedVersion::Exact(21), event(24)),
    ];
    let mut answers = Vec::new();
    for (expected, e) in queued {
        answers.push(f.store.queue_append(&s, expected, vec![e]).await.unwrap());
    }
    let mut outcomes = Vec::new();
    for answer in answers {
        outcomes.push(answer.await);
    }
    assert_eq!(outcomes[0].as_ref().unwrap().stream_version, 20);
    assert_eq!(outcomes[1].as_ref().unwrap().stream_version, 21);
    assert!(matches!(outcomes[2], Err(StoreError::Conflict { actual: Some(21), .. })), "{:?}", outcomes[2]);
    assert!(matches!(outcomes[3], Err(StoreError::Conflict { actual: Some(21), .. })), "{:?}", outcomes[3]);
    assert_eq!(outcomes[4].as_ref().unwrap().stream_version, 22);
    // An answer dropped unawaited does not withdraw its append.
    drop(f.store.queue_append(&s, ExpectedVersion::Exact(22), vec![event(25)]).await.unwrap());
    let r = f.store.append(&s, ExpectedVersion::Exact(23), vec![event(26)]).await.unwrap();
    assert_eq!(r.stream_version, 24);
    let events = all(&*f.store).await;
    assert_eq!(events.len(), 25);
    assert!(events.iter().enumerate().all(|(i, e)| e.stream_version == i as u64));
    assert!(matches!(f.store.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 25, .. }));
}

/// A test event carrying `command` with `fingerprint` (one byte repeated).
pub fn command_event(n: u64, command: Uuid, fingerprint: Option<u8>) -> NewEvent {
    let mut e = event(n);
    e.metadata.command_id = Some(command);
    e.metadata.fingerprint = fingerprint.map(|b| crate::Fingerprint([b; 32]));
    e
}

/// A command id is recorded with its fingerprint: a retry of the same
/// request (fresh event ids, a stale expected version) gets the original
/// result and records nothing; another request under the same id, or the
/// same request to another stream, is refused; the log answers what it holds.
pub async fn a_command_id_has_one_effect_in_the_whole_log(f: &Fixture) {
    let s = &*f.store;
    let (a, b) = (sid("grant-a"), sid("grant-b"));
    let c = Uuid::now_v7();
    s.append(&a, ExpectedVersion::NoStream, vec![event(0)]).await.unwrap();
    let first =
        s.append(&a, ExpectedVersion::Exact(0), vec![command_event(1, c, Some(1)), command_event(2, c, Some(1))]);
    let first = first.await.unwrap();
    assert!(!first.replayed);
    s.append(&a, ExpectedVersion::Exact(2), vec![event(3)]).await.unwrap();
    for expected in [ExpectedVersion::Exact(0), ExpectedVersion::Any, ExpectedVersion::NoStream] {
        let again = s.append(&a, expected, vec![command_event(9, c, Some(1))]).await.unwrap();
        assert_eq!(again, AppendResult { replayed: true, ..first }, "{expected}");
    }
    let reused = |r: Result<AppendResult, StoreError>| {
        assert!(
            matches!(&r, Err(StoreError::CommandIdReused { command_id, stream_id }) if *command_id == c && *stream_id == a),
            "{r:?}"
        );
    };
    reused(s.append(&a, ExpectedVersion::Any, vec![command_event(4, c, Some(2))]).await);
    reused(s.append(&a, ExpectedVersion::Any, vec![command_event(4, c, None)]).await);
    reused(s.append(&b, ExpectedVersion::Any, vec![command_event(4, c, Some(1))]).await);
    reused(s.append(&b, ExpectedVersion::NoStream, vec![command_event(4, c, Some(2))]).await);
    assert_eq!(all(s).await.len(), 4);
    assert_eq!(s.stream_version(&b).await.unwrap(), None);
    let recorded = s.command(c).await.unwrap().unwrap();
    assert_eq!(
        recorded,
        RecordedCommand {
            command_id: c,
            fingerprint: Some(crate::Fingerprint([1; 32])),
            stream_id: a.clone(),
            first_position: first.first_position,
            last_position: first.last_position,
        }
    );
    assert_eq!(s.command(Uuid::now_v7()).await.unwrap(), None);
    let events = all(s).await;
    assert!(events[1..3].iter().all(|e| e.metadata.command_id == Some(c)));
    assert_eq!(events[1].metadata.fingerprint, Some(crate::Fingerprint([1; 32])));
}

/// A command recorded without a fingerprint (a library caller, or a log
/// written before fingerprints) is retried by any append to its stream.
pub async fn a_command_recorded_without_a_fingerprint_is_matched_by_its_stream(f: &Fixture) {
    let s = &*f.store;
    let (a, b) = (sid("grant-a"), sid("grant-b"));
    let c = Uuid::now_v7();
    let first = s.append(&a, ExpectedVersion::Any, vec![command_event(1, c, None)]).await.unwrap();
    let again = s.append(&a, ExpectedVersion::Any, vec![command_event(2, c, Some(5))]).await.unwrap();
    assert_eq!(again, AppendResult { replayed: true, ..first });
    let other = s.append(&b, ExpectedVersion::Any, vec![command_event(3, c, None)]).await;
    assert!(matches!(other, Err(StoreError::CommandIdReused { .. })), "{other:?}");
    assert_eq!(all(s).await.len(), 1);
}

/// Appends of one command id racing each other, to one stream and to many,
/// with one request and with many: exactly one effect in the whole log; the
/// same request's other appends are replays of it, every other one refused.
pub async fn racing_appends_of_one_command_id_have_one_effect(f: &Fixture) {
    for round in 0..10u8 {
        let c = Uuid::now_v7();
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let s = Arc::clone(&f.store);
                // Half the racers send the winner's request (stream 0,
                // fingerprint 0); the others another stream or another body.
                let (stream, fingerprint) = if i % 2 == 0 { (0, 0) } else { (i % 4, i) };
                let stream = sid(&format!("grant-{round}-{stream}"));
                tokio::spawn(async move {
                    let r = s.append(
                        &stream,
                        ExpectedVersion::Any,
                        vec![command_event(u64::from(i), c, Some(fingerprint))],
                    );
                    (i, r.await)
                })
            })
            .collect();
        let mut effects = Vec::new();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r {
                Ok(r) if !r.replayed => effects.push((i, r)),
                Ok(r) => assert_eq!(i % 2, 0, "a different request was answered as a replay: {r:?}"),
                Err(StoreError::CommandIdReused { command_id, .. }) => assert_eq!(command_id, c),
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        let recorded = f.store.command(c).await.unwrap().unwrap();
        assert_eq!(effects.len(), 1, "round {round}: {effects:?}");
        assert_eq!(recorded.first_position, effects[0].1.first_position);
        let carrying = all(&*f.store).await.into_iter().filter(|e| e.metadata.command_id == Some(c)).count();
        assert_eq!(carrying, 1, "round {round}");
    }
}

/// An append is the effect of one command: its events carry one command id
/// and one fingerprint, or the append is refused before anything is written.
pub async fn an_append_carries_one_command(f: &Fixture) {
    let s = &*f.store;
    let a = sid("grant-a");
    let (c, d) = (Uuid::now_v7(), Uuid::now_v7());
    for batch in [
        vec![command_event(1, c, Some(1)), command_event(2, d, Some(1))],
        vec![command_event(1, c, Some(1)), command_event(2, c, Some(2))],
        vec![command_event(1, c, Some(1)), event(2)],
    ] {
        let r = s.append(&a, ExpectedVersion::Any, batch).await;
        assert!(matches!(r, Err(StoreError::MixedCommands)), "{r:?}");
    }
    assert_eq!(all(s).await.len(), 0);
    assert_eq!(s.command(c).await.unwrap(), None);
}
