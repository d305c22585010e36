//! The cases of `nctcr.rs` (included by path) on PostgreSQL: each test on
//! a database of its own at 127.0.0.1:5432, dropped afterwards. Without
//! PostgreSQL they fail, saying so; they are never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use store::EventStore;

#[path = "nctcr.rs"]
mod cases;

/// A PostgreSQL log on a fresh database (kept as long as the box).
pub async fn open_store(_dir: &std::path::Path) -> (Arc<dyn EventStore>, Box<dyn std::any::Any + Send + Sync>) {
    let db = store_postgres::testing::TestDatabase::create().await;
    let store = store_postgres::PostgresStore::connect(store_postgres::PostgresConfig::new(&db.url)).await.unwrap();
    (Arc::new(store), Box::new(db))
}
