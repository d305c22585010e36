//! End-to-end tests against the real `grantlog` binary: each starts the
//! server on a free port with a fresh data directory and talks HTTP to it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

/// This binary runs the suite on SQLite; `e2e_postgres` on PostgreSQL.
pub const BACKEND: harness::Backend = harness::Backend::Sqlite;

mod audit;
mod auth;
mod backup;
mod bodies;
mod bounds;
mod caches;
mod client;
mod contract;
mod crash;
mod dashboard;
mod dashboard_api;
mod data_dir;
mod disk_full;
mod harness;
mod http;
mod idempotency;
mod input;
mod limits;
mod nctcr;
mod problem_types;
mod read_model;
mod rejections;
mod rust_client;
mod scenario;
mod session;
mod sse;
mod tokens;
mod tour;
mod webdriver;
mod world;
