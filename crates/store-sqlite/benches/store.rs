//! Event log benchmarks. Run with `cargo bench -p store-sqlite --bench store`;
//! figures and their reading are in docs/benchmarks.md.
//!
//! Every durable figure is set beside raw rusqlite doing one insert per
//! transaction with `synchronous=FULL` on the same disk, in the same run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng;
use store::conformance::expenditure_event;
use store::{EventStore, ExpectedVersion, Position, StreamId, Subscription, VerifyOutcome};
use store_sqlite::SqliteStore;

const STREAMS: u64 = 10_000;
const LOG_EVENTS: u64 = 100_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn stream(n: u64) -> StreamId {
    StreamId::parse(format!("grant-{n}")).unwrap()
}

/// `appenders` tasks share `events` single-event appends over random streams.
async fn append_concurrently(store: &SqliteStore, appenders: u64, events: u64, batch: u64) -> Duration {
    let start = Instant::now();
    let per_task = events.div_ceil(appenders * batch).max(1);
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let s = stream(rand::rng().random_range(0..STREAMS));
                    let events = (0..batch).map(expenditure_event).collect();
                    store.append(&s, ExpectedVersion::Any, events).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Scale to the number of events asked for (per_task rounds up).
    start.elapsed().mul_f64(events as f64 / (per_task * appenders * batch) as f64)
}

fn durable_appends(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(SqliteStore::open(dir.path().join("log.sqlite"))).unwrap();
    let mut g = c.benchmark_group("append_single_event");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    for appenders in [1u64, 16, 64] {
        g.bench_with_input(BenchmarkId::from_parameter(appenders), &appenders, |b, &appenders| {
            b.iter_custom(|iters| rt.block_on(append_concurrently(&store, appenders, iters, 1)));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("append_batch");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    for (appenders, batch) in [(1u64, 10u64), (1, 100), (16, 10)] {
        let id = format!("{appenders}x{batch}");
        g.bench_with_input(BenchmarkId::from_parameter(id), &(appenders, batch), |b, &(appenders, batch)| {
            b.iter_custom(|iters| rt.block_on(append_concurrently(&store, appenders, iters, batch)));
        });
    }
    g.finish();
}

/// The floor every durable figure is compared with: plain rusqlite, one
/// insert of a similar row per transaction, WAL and `synchronous=FULL`.
fn raw_sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("raw.sqlite")).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())).unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, data TEXT NOT NULL)",
    )
    .unwrap();
    let data = serde_json::to_string(&expenditure_event(0).data).unwrap();
    let mut g = c.benchmark_group("raw_rusqlite");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_insert_per_transaction_full", |b| {
        let mut stmt = conn.prepare("INSERT INTO events (stream_id, data) VALUES (?1, ?2)").unwrap();
        b.iter(|| {
            let s = format!("grant-{}", rand::rng().random_range(0..STREAMS));
            stmt.execute((s, &data)).unwrap();
        });
    });
    g.finish();
}

/// A log of `LOG_EVENTS` events, written in large batches.
fn filled_log(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(SqliteStore::open(dir.path().join("log.sqlite"))).unwrap();
    rt.block_on(async {
        for chunk in 0..LOG_EVENTS / 1_000 {
            let events = (0..1_000).map(|i| expenditure_event(chunk * 1_000 + i)).collect();
            store.append(&stream(chunk % STREAMS), ExpectedVersion::Any, events).await.unwrap();
        }
    });
    (dir, Arc::new(store))
}

fn reads(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, store) = filled_log(&rt);
    let mut g = c.benchmark_group("whole_log");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(LOG_EVENTS));
    g.bench_function("read_all_decoded", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut after = Position::START;
                let mut n = 0;
                loop {
                    let page = store.read_all(after, store::READ_EVENTS_MAX).await.unwrap();
                    let Some(last) = page.last() else { break };
                    after = last.position;
                    n += page.len() as u64;
                }
                assert_eq!(n, LOG_EVENTS);
            })
        });
    });
    g.bench_function("subscription_catch_up", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut sub = Subscription::new(store.clone(), Position::START);
                for _ in 0..LOG_EVENTS {
                    sub.next().await.unwrap();
                }
            })
        });
    });
    g.bench_function("verify", |b| {
        b.iter(|| {
            let outcome = rt.block_on(store.verify(None)).unwrap();
            assert!(matches!(outcome, VerifyOutcome::Intact { events: LOG_EVENTS, .. }));
        });
    });
    g.finish();
}

criterion_group!(benches, raw_sqlite, durable_appends, reads);
criterion_main!(benches);
