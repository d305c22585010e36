//! The store's metrics reach a recorder, under their documented names and
//! with no labels (a closed label set). Its own binary: it installs the
//! process-wide recorder.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusBuilder;
use store::conformance::event;
use store::{EventStore, ExpectedVersion, StreamId};
use store_postgres::testing::TestDatabase;
use store_postgres::{PostgresConfig, PostgresStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_sizes_and_lock_waits_are_recorded() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let db = TestDatabase::create().await;
    let store = Arc::new(PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap());
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let stream = StreamId::parse(format!("grant-{t}")).unwrap();
                store.append(&stream, ExpectedVersion::Any, vec![event(t)]).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let text = handle.render();
    let count = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}_count ")))
            .unwrap_or_else(|| panic!("{name} not recorded (or recorded with labels):\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let sum = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name}_sum "))).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let groups = count("grantlog_pg_batch_appends");
    assert!(groups >= 1.0);
    assert_eq!(sum("grantlog_pg_batch_appends"), 16.0, "every append is in exactly one group:\n{text}");
    assert_eq!(count("grantlog_pg_lock_wait_seconds"), groups, "one lock wait per group:\n{text}");
}
