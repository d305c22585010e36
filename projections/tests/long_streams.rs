//! A grant whose stream is longer than one page of the log
//! ([`store::READ_EVENTS_MAX`] events) is caught up from an empty file and
//! rebuilt whole: the log is read for a rebuild in pages of one stream
//! each, and a grant's pages go on folding the same ledger. Real SQLite
//! files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use domain::handler::Handler;
use projections::{Options, Projector};
use store::EventStore;

mod common;
use common::{build, day, grant, head};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_longer_than_a_read_page_is_caught_up_and_rebuilt_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    let handler = Handler::new(Arc::clone(&store));
    // Two grants, their expenditures interleaved: each stream spans two
    // pages and shares the log's pages with the other.
    build(&handler, 2, 0..store::READ_EVENTS_MAX + 7).await;
    let at = head(store.as_ref()).await;
    let truth = projections::fold_log(store.as_ref()).await.unwrap();
    assert!(truth.ledgers[&grant(0)].fact_count() > store::READ_EVENTS_MAX);

    let options = Options { bulk_catch_up_events_min: 1, ..Options::default() };
    let p = Projector::start_with_options(Arc::clone(&store), dir.path().join("views.sqlite"), options).await.unwrap();
    p.wait_committed(at, WAIT).await.unwrap();
    assert_eq!(p.cache_stats().loads, 0, "caught up stream by stream, not through the cache");
    assert_eq!(p.models().await.unwrap(), truth, "the caught-up views are the log's");

    let report = p.rebuild(day(500), |_, _| {}).await.unwrap();
    assert!(report.equal(), "{report:?}");
    assert_eq!((report.events, report.position), (at, at));
    assert_eq!(p.models().await.unwrap(), truth, "the rebuilt views are the log's");
}
