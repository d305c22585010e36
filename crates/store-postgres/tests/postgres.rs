//! The PostgreSQL backend: what only a real shared database can show
//! (several stores on one log, late commits, the database's own refusals,
//! migrations, import from SQLite, the database going away).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use store::conformance::{command_event, event};
use store::{ChainChecker, EventStore, ExpectedVersion, Position, StoreError, StreamId, VerifyOutcome};
use store_postgres::testing::TestDatabase;
use store_postgres::{PostgresConfig, PostgresStore};

use support::{Mode, Proxy, raw, wait_until};

fn sid(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

async fn fill(store: &dyn EventStore, n: u64) {
    for i in 0..n {
        store.append(&sid(&format!("grant-{}", i % 3)), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
}

async fn all_positions(store: &dyn EventStore) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else { return out };
        after = last.position;
        out.extend(page.iter().map(|e| e.position.0));
    }
}

/// Four stores (as four servers) on one database, sixteen appending tasks
/// each: positions are gapless in commit order, every store's watch reaches
/// the end (through NOTIFY from the others), and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_stores_appending_at_once_share_one_gapless_log() {
    let db = TestDatabase::create().await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        // A long poll interval: the watches must move by notification.
        let mut config = PostgresConfig::new(&db.url);
        config.poll_interval = Duration::from_secs(60);
        stores.push(Arc::new(PostgresStore::connect(config).await.unwrap()));
    }
    let per_task = 10u64;
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for t in 0..16u64 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let stream = sid(&format!("grant-{s}-{}", (t + i) % 5));
                    store.append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = 4 * 16 * per_task;
    assert_eq!(all_positions(&*stores[0]).await, (1..=n).collect::<Vec<_>>());
    for store in &stores {
        let mut watch = store.watch_position();
        tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|p| p.0 == n)).await.unwrap().unwrap();
    }
    assert!(matches!(stores[1].verify(None).await.unwrap(), VerifyOutcome::Intact { events, .. } if events == n));
}

/// The classic trap: writers whose commits are slow (they sleep holding
/// the lock) on several stores, and a reader following with
/// `read_all(after = last seen)` all along. A position taken before a
/// commit that lands late would be skipped; here none is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_misses_no_event_that_commits_late() {
    let db = TestDatabase::create().await;
    let mut stores = Vec::new();
    for i in 0..3u64 {
        let mut config = PostgresConfig::new(&db.url);
        config.commit_delay_for_tests = Duration::from_millis(5 + 7 * i);
        stores.push(Arc::new(PostgresStore::connect(config).await.unwrap()));
    }
    let per_task = 8u64;
    let tasks_per_store = 6u64;
    let n = stores.len() as u64 * tasks_per_store * per_task;
    let follower = {
        let store = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = Position::START;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while (seen.len() as u64) < n && tokio::time::Instant::now() < deadline {
                for e in store.read_all(after, 50).await.unwrap() {
                    after = e.position;
                    seen.push(e.position.0);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut tasks = Vec::new();
    for store in &stores {
        for t in 0..tasks_per_store {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                for i in 0..per_task {
                    store.append(&sid(&format!("grant-{t}")), ExpectedVersion::Any, vec![event(i)]).await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seen = follower.await.unwrap();
    let stored = all_positions(&*stores[0]).await;
    assert_eq!(stored, (1..=n).collect::<Vec<_>>());
    let missed: BTreeSet<u64> =
        stored.iter().copied().collect::<BTreeSet<_>>().difference(&seen.iter().copied().collect()).copied().collect();
    assert!(missed.is_empty(), "the follower missed positions {missed:?}");
    assert_eq!(seen, stored, "the follower saw events out of order or twice");
}

/// Nothing, not even the database owner, edits the log: UPDATE, DELETE
/// and TRUNCATE of events and commands are refused by triggers.
#[tokio::test]
async fn the_database_refuses_updates_deletes_and_truncates() {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
    let c = uuid::Uuid::now_v7();
    fill(&store, 3).await;
    store.append(&sid("grant-c"), ExpectedVersion::Any, vec![command_event(9, c, Some(1))]).await.unwrap();
    let conn = raw(&db.url).await;
    for sql in [
        "UPDATE events SET data = '{}' WHERE position = 2",
        "DELETE FROM events WHERE position = 3",
        "TRUNCATE events CASCADE",
        "UPDATE commands SET stream_id = 'x'",
        "DELETE FROM commands",
        "TRUNCATE commands",
    ] {
        let err = conn.batch_execute(sql).await.unwrap_err();
        let text = err.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(text.contains("append-only"), "{sql}: {err:?}");
    }
    let privileges: i64 = conn
        .query_one(
            "SELECT count(*) FROM information_schema.role_table_grants
             WHERE grantee = 'PUBLIC' AND table_name IN ('events', 'commands')
               AND privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(privileges, 0);
    assert!(matches!(store.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 4, .. }));
    assert!(store.command(c).await.unwrap().is_some());
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
    fill(&store, 1).await;
    store.close().await;
    let newer = store_postgres::SCHEMA_VERSION + 1;
    raw(&db.url).await.execute("UPDATE grantlog_schema SET version = $1", &[&newer]).await.unwrap();
    let err = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported } if found == newer && supported == store_postgres::SCHEMA_VERSION),
        "{err:?}"
    );
}

/// Servers starting at once on a new database create the schema once.
#[tokio::test]
async fn connecting_at_once_applies_the_schema_once() {
    let db = TestDatabase::create().await;
    let (a, b, c) = tokio::join!(
        PostgresStore::connect(PostgresConfig::new(&db.url)),
        PostgresStore::connect(PostgresConfig::new(&db.url)),
        PostgresStore::connect(PostgresConfig::new(&db.url)),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let version: i64 = raw(&db.url).await.query_one("SELECT version FROM grantlog_schema", &[]).await.unwrap().get(0);
    assert_eq!(version, store_postgres::SCHEMA_VERSION);
    fill(&a, 2).await;
    fill(&b, 2).await;
    assert_eq!(all_positions(&c).await, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn events_survive_close_and_reconnect_and_the_chain_continues() {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
    fill(&store, 10).await;
    let head = store.head().await.unwrap().unwrap();
    store.close().await;
    assert!(matches!(store.append(&sid("x"), ExpectedVersion::Any, vec![event(0)]).await, Err(StoreError::Closed)));
    assert!(matches!(store.head().await, Err(StoreError::Closed)));

    let store = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
    assert_eq!(store.head().await.unwrap(), Some(head));
    assert_eq!(*store.watch_position().borrow(), Position(10));
    let r = store.append(&sid("grant-0"), ExpectedVersion::Exact(3), vec![event(10)]).await.unwrap();
    assert_eq!((r.first_position, r.stream_version), (Position(11), 4));
    assert!(matches!(store.verify(Some(head)).await.unwrap(), VerifyOutcome::Intact { events: 11, .. }));
}

/// The stored rows re-hash, with the contract's own encoding, to the
/// stored hashes (the same code path store-sqlite's verify uses), and
/// `recorded_at` never decreases along the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_rows_rehash_to_their_hashes_with_the_contract_encoding() {
    let db = TestDatabase::create().await;
    let store = Arc::new(PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let batch = vec![event(i), event(i + 100)];
                store.append(&sid(&format!("grant-{t}")), ExpectedVersion::Any, batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = store.read_raw(Position::START, 10_000).await.unwrap();
    assert_eq!(rows.len(), 160);
    let mut checker = ChainChecker::new();
    let mut last_micros = i64::MIN;
    for row in &rows {
        checker.check(&row.canonical(), &row.hash).unwrap();
        assert!(row.recorded_at_micros >= last_micros, "recorded_at went backwards at {}", row.position);
        last_micros = row.recorded_at_micros;
    }
    assert_eq!(checker.head(), store.head().await.unwrap());
    // Tampering is seen by verify: the trigger must be bypassed to do it.
    let conn = raw(&db.url).await;
    conn.batch_execute(
        "ALTER TABLE events DISABLE TRIGGER events_append_only;
         UPDATE events SET data = '{\"n\":7}' WHERE position = 42;
         ALTER TABLE events ENABLE TRIGGER events_append_only;",
    )
    .await
    .unwrap();
    assert!(matches!(store.verify(None).await.unwrap(), VerifyOutcome::Broken { position: Position(42), .. }));
}

/// A store whose database stops answering: appends and reads answer
/// `Unavailable` within the configured bounds (never hang), and once the
/// database is back the same store appends, reads and follows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_and_coming_back() {
    let db = TestDatabase::create().await;
    let proxy = Proxy::start().await;
    let mut config = PostgresConfig::new(proxy.url(&db.name));
    config.statement_timeout = Duration::from_millis(500);
    config.lock_timeout = Duration::from_millis(500);
    config.idle_in_transaction_timeout = Duration::from_millis(500);
    config.connect_timeout = Duration::from_millis(500);
    config.poll_interval = Duration::from_millis(100);
    let store = PostgresStore::connect(config).await.unwrap();
    let direct = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
    fill(&store, 3).await;

    for mode in [Mode::Down, Mode::Stalled] {
        proxy.set(mode);
        let started = tokio::time::Instant::now();
        let append = store.append(&sid("grant-0"), ExpectedVersion::Any, vec![event(50)]).await;
        assert!(matches!(append, Err(StoreError::Unavailable { .. })), "{mode:?}: {append:?}");
        let read = store.read_all(Position::START, 10).await;
        assert!(matches!(read, Err(StoreError::Unavailable { .. })), "{mode:?}: {read:?}");
        assert!(started.elapsed() < Duration::from_secs(12), "{mode:?}: took {:?}", started.elapsed());
        // Meanwhile another server appends.
        fill(&direct, 1).await;
        proxy.set(Mode::Up);
        let head = direct.head().await.unwrap().unwrap().position;
        let mut watch = store.watch_position();
        tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|p| *p >= head)).await.unwrap().unwrap();
        let appended = wait_until(Duration::from_secs(10), || async {
            store.append(&sid("grant-1"), ExpectedVersion::Any, vec![event(60)]).await.ok()
        })
        .await;
        assert_eq!(appended.first_position, head.next(), "{mode:?}");
    }
    assert!(matches!(store.verify(None).await.unwrap(), VerifyOutcome::Intact { events: 7, .. }));
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_at_connect() {
    let mut config = PostgresConfig::new("postgres://postgres@127.0.0.1:9/grantlog");
    config.connect_timeout = Duration::from_millis(500);
    let err = PostgresStore::connect(config).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

/// The advisory lock key every appender takes (see `writer.rs`).
const LOG_LOCK_KEY: i64 = 0x6772_616e_746c_6f67;

/// A session that takes the log lock and then does nothing cannot make an
/// append hang: the append waits `lock_timeout`, answers `Unavailable`, and
/// succeeds once the lock is free.
#[tokio::test]
async fn a_lock_held_elsewhere_makes_appends_unavailable_not_hang() {
    let db = TestDatabase::create().await;
    let mut config = PostgresConfig::new(&db.url);
    config.lock_timeout = Duration::from_millis(300);
    let store = PostgresStore::connect(config).await.unwrap();
    fill(&store, 1).await;
    let holder = raw(&db.url).await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK_KEY]).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = store.append(&sid("grant-0"), ExpectedVersion::Any, vec![event(1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    holder.batch_execute("COMMIT").await.unwrap();
    let r = store.append(&sid("grant-0"), ExpectedVersion::Any, vec![event(2)]).await.unwrap();
    assert_eq!(r.first_position, Position(2));
}

/// A store that stalls inside its transaction (here: sleeps after taking
/// the lock) is cut off by the server after
/// `idle_in_transaction_timeout`: its append is not recorded, and another
/// store gets the lock and appends meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_writer_loses_the_lock_after_the_idle_timeout() {
    let db = TestDatabase::create().await;
    let mut stalled = PostgresConfig::new(&db.url);
    stalled.idle_in_transaction_timeout = Duration::from_millis(300);
    stalled.commit_delay_for_tests = Duration::from_secs(3);
    let stalled = PostgresStore::connect(stalled).await.unwrap();
    let other = PostgresStore::connect(PostgresConfig::new(&db.url)).await.unwrap();
    let stuck =
        tokio::spawn(async move { stalled.append(&sid("grant-s"), ExpectedVersion::Any, vec![event(1)]).await });
    // The other store appends while the stalled one sleeps in its
    // transaction: it waits for the lock at most until the server ends the
    // stalled session.
    let observer = raw(&db.url).await;
    wait_until(Duration::from_secs(5), || async {
        let held: i64 = observer
            .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted", &[])
            .await
            .unwrap()
            .get(0);
        (held > 0).then_some(())
    })
    .await;
    let started = tokio::time::Instant::now();
    let r = other.append(&sid("grant-o"), ExpectedVersion::Any, vec![event(2)]).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?} for the lock", started.elapsed());
    assert_eq!(r.first_position, Position(1));
    let err = stuck.await.unwrap().unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(all_positions(&other).await, vec![1]);
}

/// Without notifications (one lost, or a writer that does not send them)
/// the watch still reaches the head, by polling every `poll_interval`.
#[tokio::test]
async fn the_watch_follows_the_head_by_polling_when_no_notification_comes() {
    let db = TestDatabase::create().await;
    let mut config = PostgresConfig::new(&db.url);
    config.poll_interval = Duration::from_millis(100);
    let store = PostgresStore::connect(config).await.unwrap();
    // Another writer that moves the head without notifying.
    raw(&db.url).await.batch_execute("UPDATE log_head SET position = 7").await.unwrap();
    let mut watch = store.watch_position();
    tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|p| *p == Position(7))).await.unwrap().unwrap();
}
