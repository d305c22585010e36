//! Crash safety: a child process appends as fast as it can and prints each
//! acknowledged event id; we kill it with SIGKILL at random moments, and
//! after every restart each acknowledged event must be present exactly once
//! and the chain must verify.
//!
//! `GRANTLOG_CRASH_CYCLES` sets the number of cycles (default 200), and
//! `GRANTLOG_CRASH_SEED` replays a failing run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use store::{EventStore, Position, VerifyOutcome};
use store_sqlite::SqliteStore;
use uuid::Uuid;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let cycles = env_u64("GRANTLOG_CRASH_CYCLES", 200);
    let seed = env_u64("GRANTLOG_CRASH_SEED", rand::rng().random());
    println!("crash test: {cycles} cycles, GRANTLOG_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut acknowledged: Vec<Uuid> = Vec::new();

    for cycle in 0..cycles {
        // Sometimes kill before the first acknowledgement (during open or
        // the first commit), usually somewhere in full flow.
        let kill_after = if rng.random_ratio(1, 10) { 0 } else { rng.random_range(1..400) };
        let mut child = Command::new(env!("CARGO_BIN_EXE_store-crash-child"))
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut acked_now = 0;
        while acked_now < kill_after {
            line.clear();
            if lines.read_line(&mut line).unwrap() == 0 {
                panic!("cycle {cycle}: the child exited on its own: {:?}", child.wait());
            }
            acknowledged.push(line.trim_end().parse().unwrap());
            acked_now += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines the child wrote before it died are still in the pipe.
        for rest in lines.lines() {
            let rest = rest.unwrap();
            if let Ok(id) = rest.parse() {
                acknowledged.push(id);
            }
        }

        runtime.block_on(async {
            let store = SqliteStore::open(&path).await.unwrap();
            let mut events = Vec::new();
            loop {
                let after = events.last().map_or(Position::START, |e: &store::RecordedEvent| e.position);
                let page = store.read_all(after, store::READ_EVENTS_MAX).await.unwrap();
                if page.is_empty() {
                    break;
                }
                events.extend(page);
            }
            let mut count: HashMap<Uuid, usize> = HashMap::new();
            for e in &events {
                *count.entry(e.event_id).or_default() += 1;
            }
            for id in &acknowledged {
                assert_eq!(count.get(id), Some(&1), "cycle {cycle} (seed {seed}): acknowledged event {id} lost");
            }
            assert!(count.values().all(|&c| c == 1), "cycle {cycle} (seed {seed}): an event is stored twice");
            let verified = store.verify(None).await.unwrap();
            assert!(
                matches!(verified, VerifyOutcome::Intact { events: n, .. } if n == events.len() as u64),
                "cycle {cycle} (seed {seed}): {verified:?}"
            );
            store.close().await;
        });
    }
    println!("crash test: {} acknowledged events checked over {cycles} kills", acknowledged.len());
    assert!(acknowledged.len() as u64 > cycles, "the child barely appended anything");
}
