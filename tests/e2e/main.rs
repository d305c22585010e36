//! End-to-end tests against the real `grantlog` binary: each starts the
//! server on a free port with a fresh data directory and talks HTTP to it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod audit;
mod auth;
mod bodies;
mod bounds;
mod client;
mod harness;
mod idempotency;
mod input;
mod nctcr;
mod rejections;
mod scenario;
mod sse;
mod world;
