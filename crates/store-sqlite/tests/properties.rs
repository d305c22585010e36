//! Properties of the log that must hold for any interleaving of appends:
//! gapless versions and positions, a chain that verifies, results that
//! match what was stored, and subscribers that see every event once, in order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use store::conformance::event;
use store::{
    AppendResult, EventStore, ExpectedVersion, Position, RecordedEvent, StoreError, StreamId, Subscription,
    VerifyOutcome,
};
use store_sqlite::SqliteStore;

/// How an op states its expectation; `Exact` is relative to the version the
/// op last saw, so both right and stale guesses occur.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Any,
    NoStream,
    StreamExists,
    ExactSeen,
    ExactStale,
}

#[derive(Debug, Clone)]
struct Op {
    stream: u8,
    batch: u8,
    expect: Expect,
}

fn op() -> impl Strategy<Value = Op> {
    let expect = prop_oneof![
        3 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        1 => Just(Expect::StreamExists),
        3 => Just(Expect::ExactSeen),
        1 => Just(Expect::ExactStale),
    ];
    (0u8..5, 1u8..5, expect).prop_map(|(stream, batch, expect)| Op { stream, batch, expect })
}

/// Ops grouped into waves; the ops of one wave run concurrently, so they
/// land in the writer's queue together and share group commits.
fn waves() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..10), 1..8)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn all(store: &dyn EventStore) -> Vec<RecordedEvent> {
    store.read_all(Position::START, usize::MAX).await.unwrap()
}

struct Outcome {
    stream: StreamId,
    ids: Vec<uuid::Uuid>,
    expected: ExpectedVersion,
    result: Result<AppendResult, StoreError>,
}

async fn run_waves(store: Arc<SqliteStore>, waves: Vec<Vec<Op>>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for wave in waves {
        let mut tasks = Vec::new();
        for op in wave {
            let stream = StreamId::parse(format!("grant-{}", op.stream)).unwrap();
            let seen = store.stream_version(&stream).await.unwrap();
            let expected = match op.expect {
                Expect::Any => ExpectedVersion::Any,
                Expect::NoStream => ExpectedVersion::NoStream,
                Expect::StreamExists => ExpectedVersion::StreamExists,
                Expect::ExactSeen => seen.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                Expect::ExactStale => ExpectedVersion::Exact(seen.map_or(0, |v| v.saturating_sub(1))),
            };
            let batch: Vec<_> = (0..op.batch).map(|i| event(u64::from(i))).collect();
            let ids = batch.iter().map(|e| e.event_id).collect();
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let result = store.append(&stream, expected, batch).await;
                Outcome { stream, ids, expected, result }
            }));
        }
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
    }
    outcomes
}

fn check_log(events: &[RecordedEvent], outcomes: &[Outcome]) {
    // Positions 1..=N with no gap.
    let positions: Vec<u64> = events.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, (1..=events.len() as u64).collect::<Vec<_>>());
    // Each stream's versions 0..n with no gap, in position order.
    let mut per_stream: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in events {
        per_stream.entry(e.stream_id.as_str()).or_default().push(e.stream_version);
    }
    for (stream, versions) in per_stream {
        assert_eq!(versions, (0..versions.len() as u64).collect::<Vec<_>>(), "{stream}");
    }
    // Every acknowledged batch sits exactly where its result says, and
    // every refused batch left no trace.
    let mut covered = 0;
    let stored: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    for o in outcomes {
        match &o.result {
            Ok(r) => {
                let range = &events[(r.first_position.0 - 1) as usize..r.last_position.0 as usize];
                assert_eq!(range.iter().map(|e| e.event_id).collect::<Vec<_>>(), o.ids);
                assert!(range.iter().all(|e| e.stream_id == o.stream));
                assert_eq!(range.last().unwrap().stream_version, r.stream_version);
                let first_version = range[0].stream_version;
                match o.expected {
                    ExpectedVersion::NoStream => assert_eq!(first_version, 0),
                    ExpectedVersion::Exact(v) => assert_eq!(first_version, v + 1),
                    ExpectedVersion::StreamExists => assert!(first_version > 0),
                    ExpectedVersion::Any => {}
                }
                covered += range.len();
            }
            Err(StoreError::Conflict { expected, .. }) => {
                assert_eq!(*expected, o.expected);
                assert!(o.ids.iter().all(|id| !stored.contains(id)));
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(covered, events.len(), "events stored that no acknowledged append accounts for");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_interleaving_keeps_the_log_gapless_and_the_chain_intact(waves in waves()) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
            let outcomes = run_waves(Arc::clone(&store), waves).await;
            let events = all(&*store).await;
            check_log(&events, &outcomes);
            let head = store.head().await.unwrap();
            let expected = VerifyOutcome::Intact { events: events.len() as u64, head };
            assert_eq!(store.verify(None).await.unwrap(), expected);
        });
    }

    #[test]
    fn subscribers_see_every_event_once_in_order(waves in waves(), resume_at in 0u64..20) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
            let mut live = Subscription::new(store.clone(), Position::START);
            // The live subscriber reads while the appends happen.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let reader = tokio::spawn(async move {
                while let Ok(e) = live.next().await {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
            });
            let outcomes = run_waves(Arc::clone(&store), waves).await;
            let events = all(&*store).await;
            check_log(&events, &outcomes);
            let mut seen = Vec::new();
            while seen.len() < events.len() {
                let e = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await;
                seen.push(e.expect("the live subscriber stalled").unwrap());
            }
            reader.abort();
            prop_assert_eq!(&seen, &events);

            let checkpoint = Position(resume_at.min(events.len() as u64));
            let mut resumed = Subscription::new(store.clone(), checkpoint);
            for expected in &events[checkpoint.0 as usize..] {
                prop_assert_eq!(&resumed.next().await.unwrap(), expected);
            }
            Ok(())
        })?;
    }
}
