//! Helper for the crash test (`tests/crash.rs`): appends to the log at the
//! given path as fast as it can, from several tasks at once, and prints each
//! event id on its own line once its append is acknowledged. The test kills
//! it with SIGKILL at random moments and checks that every printed id
//! survived.

use std::io::Write;

use store::{EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use store_sqlite::SqliteStore;

const APPENDERS: u64 = 16;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: store-crash-child DATABASE")?;
    let store = SqliteStore::open(path).await?;
    let mut tasks = Vec::new();
    for appender in 0..APPENDERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                n += 1;
                let stream = StreamId::parse(format!("grant-{}", (appender * 7 + n) % 50))?;
                // Mostly single events, sometimes a batch of three.
                let count = if n.is_multiple_of(5) { 3 } else { 1 };
                let batch: Vec<_> = (0..count)
                    .map(|i| {
                        let meta = EventMetadata { actor: format!("appender-{appender}"), ..Default::default() };
                        NewEvent::new("CrashTested", 1, serde_json::json!({ "n": n, "i": i }), meta)
                    })
                    .collect();
                let ids: Vec<_> = batch.iter().map(|e| e.event_id).collect();
                store.append(&stream, ExpectedVersion::Any, batch).await?;
                let mut out = std::io::stdout().lock();
                for id in ids {
                    // One write per line: a line is either wholly in the pipe or not at all.
                    out.write_all(format!("{id}\n").as_bytes())?;
                }
                out.flush()?;
            }
            #[allow(unreachable_code)]
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await?.map_err(|e| e.to_string())?;
    }
    Ok(())
}
