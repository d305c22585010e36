//! The generic conformance suite, on PostgreSQL: one fresh database per case.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use store::conformance::Fixture;
use store_postgres::testing::TestDatabase;
use store_postgres::{PostgresConfig, PostgresStore};

async fn fixture() -> Fixture {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
    Fixture { store: Arc::new(store), keep: Box::new(db) }
}

store::conformance_tests!(fixture());
