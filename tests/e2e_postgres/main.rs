//! The end-to-end suite on PostgreSQL: the same tests as `e2e` (the modules
//! are shared, by path) with every server's log and tokens in a database of
//! its own at 127.0.0.1:5432, plus what only several servers on one
//! database show (`servers`), and the database itself stopped, started,
//! dumped and restored (`pg_outage`). Without PostgreSQL these tests fail, saying
//! so; they are never skipped.
//!
//! Left out: what is about the log's and tokens' SQLite files themselves
//! (a full disk under them, their crash recovery, backups of them); the
//! views' file is each server's own on both backends, so its tests run here
//! too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

/// This binary runs the suite on PostgreSQL.
pub const BACKEND: harness::Backend = harness::Backend::Postgres;

#[path = "../e2e/audit.rs"]
mod audit;
#[path = "../e2e/auth.rs"]
mod auth;
#[path = "../e2e/bodies.rs"]
#[allow(dead_code)] // shared with `e2e`, which uses all of it
mod bodies;
#[path = "../e2e/bounds.rs"]
mod bounds;
#[path = "../e2e/client.rs"]
#[allow(dead_code)] // shared with `e2e`, which uses all of it
mod client;
#[path = "../e2e/harness.rs"]
#[allow(dead_code)] // shared with `e2e`, which uses all of it
mod harness;
#[path = "../e2e/idempotency.rs"]
mod idempotency;
#[path = "../e2e/input.rs"]
mod input;
#[path = "../e2e/limits.rs"]
mod limits;
#[path = "../e2e/nctcr.rs"]
mod nctcr;
#[path = "../e2e/pg_outage.rs"]
mod pg_outage;
#[path = "../e2e/read_model.rs"]
mod read_model;
#[path = "../e2e/rejections.rs"]
mod rejections;
#[path = "../e2e/scenario.rs"]
mod scenario;
#[path = "../e2e/servers.rs"]
mod servers;
#[path = "../e2e/session.rs"]
mod session;
#[path = "../e2e/sse.rs"]
#[allow(dead_code)] // shared with `e2e`, which uses all of it
mod sse;
#[path = "../e2e/tokens.rs"]
mod tokens;
#[path = "../e2e/world.rs"]
#[allow(dead_code)] // shared with `e2e`, which uses all of it
mod world;
