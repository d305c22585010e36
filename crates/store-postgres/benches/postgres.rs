//! PostgreSQL event log benchmarks. Run with
//! `cargo bench -p store-postgres --bench postgres` (PostgreSQL at
//! 127.0.0.1:5432 needed; each run uses a throw-away database); figures and
//! their reading are in docs/benchmarks.md.
//!
//! Every figure is an acknowledged append: committed (the server's
//! `synchronous_commit`, here `on`) before the caller hears back. The floor
//! beside them is raw tokio-postgres doing one insert per transaction on
//! one connection, in the same run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng;
use store::conformance::expenditure_event;
use store::{EventStore, ExpectedVersion, StreamId};
use store_postgres::testing::TestDatabase;
use store_postgres::{PostgresConfig, PostgresStore};

const STREAMS: u64 = 10_000;
const APPENDERS: u64 = 64;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn stream(n: u64) -> StreamId {
    StreamId::parse(format!("grant-{n}")).unwrap()
}

/// `APPENDERS` tasks, spread over `stores`, share `events` single-event
/// appends over random streams.
async fn append_concurrently(stores: &[PostgresStore], events: u64) -> Duration {
    let start = Instant::now();
    let per_task = events.div_ceil(APPENDERS).max(1);
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|t| {
            let store = stores[t as usize % stores.len()].clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let s = stream(rand::rng().random_range(0..STREAMS));
                    store.append(&s, ExpectedVersion::Any, vec![expenditure_event(i)]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed().mul_f64(events as f64 / (per_task * APPENDERS) as f64)
}

fn durable_appends(c: &mut Criterion) {
    let rt = runtime();
    let db = rt.block_on(TestDatabase::create());
    let one = vec![rt.block_on(PostgresStore::connect(PostgresConfig::new(&db.url))).unwrap()];
    let two = vec![one[0].clone(), rt.block_on(PostgresStore::connect(PostgresConfig::new(&db.url))).unwrap()];
    let mut g = c.benchmark_group("pg_append_single_event_64_appenders");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    for (name, stores) in [("one_store", &one), ("two_stores", &two)] {
        g.bench_with_input(BenchmarkId::from_parameter(name), stores, |b, stores| {
            b.iter_custom(|iters| rt.block_on(append_concurrently(stores, iters)));
        });
    }
    g.finish();
    for store in one.iter().chain(two.iter().skip(1)) {
        rt.block_on(store.close());
    }
    rt.block_on(db.drop_now());
}

/// The floor: raw tokio-postgres, one insert of a similar row per
/// transaction (autocommit) on one connection.
fn raw_postgres(c: &mut Criterion) {
    let rt = runtime();
    let db = rt.block_on(TestDatabase::create());
    let client = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE events (position BIGSERIAL PRIMARY KEY, stream_id TEXT NOT NULL, data TEXT NOT NULL)",
            )
            .await
            .unwrap();
        client
    });
    let insert = rt.block_on(client.prepare("INSERT INTO events (stream_id, data) VALUES ($1, $2)")).unwrap();
    let data = serde_json::to_string(&expenditure_event(0).data).unwrap();
    let mut g = c.benchmark_group("pg_raw");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_insert_per_transaction", |b| {
        b.iter(|| {
            let s = format!("grant-{}", rand::rng().random_range(0..STREAMS));
            rt.block_on(client.execute(&insert, &[&s, &data])).unwrap();
        });
    });
    g.finish();
    drop(client);
    rt.block_on(db.drop_now());
}

criterion_group!(benches, raw_postgres, durable_appends);
criterion_main!(benches);
