//! The read-model file is a cache of the log, never trusted over it: a file
//! from another log, a damaged file or a changed row is moved aside and
//! rebuilt, never served; a full file is retried until it catches up, with
//! the views in memory current all along. Real SQLite files throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use domain::handler::{Handler, Issued};
use domain::scenario::{self, MANAGER, eur, expenditure};
use events::{ActorId, GrantId};
use projections::{Opened, Projector, Status};
use store::{EventStore, Position};

/// The log these cases run on: a SQLite file in `dir` here; the
/// `*_postgres` test binary includes this file as a module and gives its
/// own `open_store`, a PostgreSQL database of the test's own.
#[allow(dead_code)] // unused where another root gives `open_store`
pub async fn open_store(dir: &std::path::Path) -> (Arc<dyn EventStore>, Box<dyn std::any::Any + Send + Sync>) {
    let store = store_sqlite::SqliteStore::open(dir.join("log.sqlite")).await.unwrap();
    (Arc::new(store), Box::new(()))
}

const WAIT: Duration = Duration::from_secs(30);

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    handler: Arc<Handler>,
    _db: Box<dyn std::any::Any + Send + Sync>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = crate::open_store(dir.path()).await;
    let handler = Arc::new(Handler::new(Arc::clone(&store)));
    scenario::nctcr(&handler).await.unwrap();
    World { dir, store, handler, _db: db }
}

fn gid() -> GrantId {
    GrantId::parse(scenario::GRANT).unwrap()
}

async fn head(store: &dyn EventStore) -> u64 {
    store.head().await.unwrap().map_or(0, |h| h.position.0)
}

/// Every model folded afresh from the log: the truth a served view must equal.
/// A projector on `path`, caught up with the log.
async fn caught_up(store: &Arc<dyn EventStore>, path: &Path) -> Projector {
    let p = Projector::start(Arc::clone(store), path).await.unwrap();
    p.wait_for(head(store.as_ref()).await, WAIT).await.unwrap();
    p
}

/// Writes a views file for `store` at `path`, committed and checkpointed
/// into the main file (no WAL left), and closes it.
async fn written_views(store: &Arc<dyn EventStore>, path: &Path) {
    let p = caught_up(store, path).await;
    p.wait_committed(head(store.as_ref()).await, WAIT).await.unwrap();
    drop(p);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
}

fn moved_aside(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.contains(".bad-") && !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .collect();
    found.sort();
    found
}

fn spend(id: &str, amount: &str, invoice: &str) -> Issued<domain::grant::GrantCommand> {
    let e = expenditure(id, "FP2-OTH", eur(amount).unwrap(), None, "2022-10-02", "sup-x", invoice, None).unwrap();
    Issued::new(e, ActorId::parse(MANAGER).unwrap(), NaiveDate::from_ymd_opt(2022, 10, 2).unwrap())
}

/// Opens `path` on `w`'s log and asserts the views equal the log's and the
/// file was moved aside.
async fn assert_rebuilt(w: &World, path: &Path) {
    let p = caught_up(&w.store, path).await;
    assert!(matches!(p.opened(), Opened::MovedAside { .. }), "the file was trusted: {:?}", p.opened());
    assert_eq!(
        p.models().await.unwrap(),
        projections::fold_log(w.store.as_ref()).await.unwrap(),
        "the views served are not the log's"
    );
    assert_eq!(moved_aside(path.parent().unwrap()).len(), 1, "the bad file is kept aside, once");
    // New writes show, and the rebuilt file holds them.
    let r = w.handler.execute(&gid(), &spend("E90", "1.00", "INV-90")).await.unwrap();
    p.wait_for(r.position.0, WAIT).await.unwrap();
    p.wait_committed(r.position.0, WAIT).await.unwrap();
    assert_eq!(p.ledger(&gid()).await.unwrap().unwrap().position, r.position.0);
    drop(p);
    let again = caught_up(&w.store, path).await;
    assert_eq!(again.opened(), &Opened::Loaded { position: r.position.0 });
    assert_eq!(again.models().await.unwrap(), projections::fold_log(w.store.as_ref()).await.unwrap());
}

#[tokio::test]
async fn a_checkpoint_past_the_head_of_the_log_is_moved_aside_and_rebuilt() {
    let w = world().await;
    // A views file from a longer log: this log plus more.
    let longer = world().await;
    longer.handler.execute(&gid(), &spend("E80", "1.00", "INV-80")).await.unwrap();
    longer.handler.execute(&gid(), &spend("E81", "2.00", "INV-81")).await.unwrap();
    let path = w.dir.path().join("views").join("views.sqlite");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    written_views(&longer.store, &path).await;
    assert!(head(longer.store.as_ref()).await > head(w.store.as_ref()).await);
    assert_rebuilt(&w, &path).await;
}

#[tokio::test]
async fn a_checkpoint_whose_hash_is_not_this_logs_is_moved_aside_and_rebuilt() {
    let w = world().await;
    // Another log of the same scenario: same positions, other hashes.
    let other = world().await;
    let path = w.dir.path().join("views").join("views.sqlite");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    written_views(&other.store, &path).await;
    // This log moves on, so the file's checkpoint is within its head.
    w.handler.execute(&gid(), &spend("E82", "3.00", "INV-82")).await.unwrap();
    assert_rebuilt(&w, &path).await;
}

async fn damaged(damage: impl FnOnce(&mut Vec<u8>, &Path)) {
    let w = world().await;
    let path = w.dir.path().join("views").join("views.sqlite");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    written_views(&w.store, &path).await;
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes, &path);
    std::fs::write(&path, &bytes).unwrap();
    assert_rebuilt(&w, &path).await;
}

#[tokio::test]
async fn a_flipped_header_byte_is_moved_aside_and_rebuilt() {
    damaged(|b, _| b[0] ^= 0x20).await;
}

#[tokio::test]
async fn a_truncated_file_is_moved_aside_and_rebuilt() {
    damaged(|b, _| {
        let half = (b.len() / 2 / 4096) * 4096 + 100;
        b.truncate(half);
    })
    .await;
}

/// Changes a live expenditure row's amount in the file's bytes: its first
/// digit, as 100.00 becoming 900.00 (in every copy of the row in the file,
/// as SQLite leaves old copies in free space).
fn change_a_figure(b: &mut [u8], path: &Path) {
    // A live expenditure row's amount: its first digit changed, as
    // 100.00 becoming 900.00 (in every copy of the row in the file, as
    // SQLite leaves old copies in free space).
    let conn = rusqlite::Connection::open(path).unwrap();
    let fact: String =
        conn.query_row("SELECT fact FROM grant_ledgers WHERE kind = 'expenditure' LIMIT 1", [], |r| r.get(0)).unwrap();
    drop(conn);
    let needle = b"\"amount\":\"";
    let digit = fact.as_bytes().windows(needle.len()).position(|w| w == needle).expect("an amount") + needle.len();
    let fact = fact.as_bytes();
    let copies: Vec<usize> =
        (0..b.len().saturating_sub(fact.len())).filter(|&i| &b[i..i + fact.len()] == fact).collect();
    assert!(!copies.is_empty(), "the row is in the file");
    for at in copies {
        b[at + digit] = if b[at + digit] == b'9' { b'8' } else { b'9' };
    }
}

/// A changed row is found when its ledger is first read (opening reads no
/// rows: its cost must not grow with the file): that ledger is folded from
/// the log instead, the projector says it is degraded, and the next start
/// moves the file aside and rebuilds it.
#[tokio::test]
async fn a_changed_figure_in_a_stored_row_is_never_served_and_the_file_is_rebuilt() {
    let w = world().await;
    let path = w.dir.path().join("views").join("views.sqlite");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    written_views(&w.store, &path).await;
    let mut bytes = std::fs::read(&path).unwrap();
    change_a_figure(&mut bytes, &path);
    std::fs::write(&path, &bytes).unwrap();
    let p = caught_up(&w.store, &path).await;
    assert!(matches!(p.opened(), Opened::Loaded { .. }), "{:?}", p.opened());
    assert_eq!(p.status(), Status::Running, "nothing was read yet");
    assert_eq!(
        p.models().await.unwrap(),
        projections::fold_log(w.store.as_ref()).await.unwrap(),
        "the changed figure was served"
    );
    match p.status() {
        Status::Damaged { error } => assert!(error.contains(scenario::GRANT), "{error}"),
        other => panic!("the damage is not reported: {other:?}"),
    }
    // Writes go on and show.
    let r = w.handler.execute(&gid(), &spend("E91", "1.00", "INV-91")).await.unwrap();
    p.wait_for(r.position.0, WAIT).await.unwrap();
    assert_eq!(p.models().await.unwrap(), projections::fold_log(w.store.as_ref()).await.unwrap());
    drop(p);
    assert_rebuilt(&w, &path).await;
}

/// An empty file caught up stream by stream holds each ledger as one
/// snapshot row; a figure changed in a snapshot is found when the ledger is
/// first read, never served (the ledger is folded from the log), and the
/// next start moves the file aside and rebuilds it.
#[tokio::test]
async fn a_changed_figure_in_a_ledger_snapshot_is_never_served_and_the_file_is_rebuilt() {
    let w = world().await;
    let path = w.dir.path().join("views").join("views.sqlite");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let at = head(w.store.as_ref()).await;
    let bulk = projections::Options { bulk_catch_up_events_min: 1, ..projections::Options::default() };
    let p = Projector::start_with_options(Arc::clone(&w.store), &path, bulk).await.unwrap();
    p.wait_committed(at, WAIT).await.unwrap();
    drop(p);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let facts: i64 = conn.query_row("SELECT count(*) FROM grant_ledgers", [], |r| r.get(0)).unwrap();
    let whole: String = conn.query_row("SELECT ledger FROM ledger_snapshots", [], |r| r.get(0)).unwrap();
    assert_eq!(facts, 0, "caught up stream by stream, each ledger is one snapshot row");
    let needle = "\"amount\":\"";
    let digit = whole.find(needle).expect("an amount") + needle.len();
    let mut changed = whole.clone().into_bytes();
    changed[digit] = if changed[digit] == b'9' { b'8' } else { b'9' };
    let changed = String::from_utf8(changed).unwrap();
    assert_eq!(conn.execute("UPDATE ledger_snapshots SET ledger = ?1", [&changed]).unwrap(), 1);
    drop(conn);
    let p = caught_up(&w.store, &path).await;
    assert!(matches!(p.opened(), Opened::Loaded { .. }), "{:?}", p.opened());
    assert_eq!(
        p.models().await.unwrap(),
        projections::fold_log(w.store.as_ref()).await.unwrap(),
        "the changed figure was served"
    );
    assert!(matches!(p.status(), Status::Damaged { .. }), "the damage is not reported: {:?}", p.status());
    drop(p);
    assert_rebuilt(&w, &path).await;
}

/// A grant's standing (its portfolio figures, read at start without its
/// ledger) or its programme changed in the file is found when the file is
/// opened, and the file is moved aside and rebuilt: the portfolio never
/// shows figures the log does not give.
#[tokio::test]
async fn a_changed_standing_or_programme_in_the_grants_index_is_never_served_and_the_file_is_rebuilt() {
    for change in [
        "UPDATE grants SET standing = replace(standing, '\"overspent_lines\":0', '\"overspent_lines\":2')",
        "UPDATE grants SET programme_id = 'elsewhere'",
    ] {
        let w = world().await;
        let path = w.dir.path().join("views").join("views.sqlite");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        written_views(&w.store, &path).await;
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(conn.execute(change, []).unwrap(), 1, "{change}");
        drop(conn);
        assert_rebuilt(&w, &path).await;
        let p = caught_up(&w.store, &path).await;
        let programme = p.ledger(&gid()).await.unwrap().unwrap().grant.clone().unwrap().programme;
        let standings = p.standings(&programme).unwrap();
        let truth = projections::fold_log(w.store.as_ref()).await.unwrap();
        assert_eq!(
            standings.iter().map(|s| (**s).clone()).collect::<Vec<_>>(),
            vec![projections::Standing::of(&truth.ledgers[&gid()], None).unwrap().unwrap()],
            "{change}"
        );
    }
}

/// A small deterministic generator (splitmix64), so each case is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Cases of the random-flip test (`GRANTLOG_TEST_FLIP_CASES` for more); each
/// costs one open (and, when the damage is found, one rebuild of the
/// scenario's log).
const FLIP_CASES: u64 = 120;

fn flip_cases() -> u64 {
    std::env::var("GRANTLOG_TEST_FLIP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(FLIP_CASES)
}

#[tokio::test]
async fn random_byte_flips_never_serve_a_wrong_view() {
    let w = world().await;
    let pristine_path = w.dir.path().join("pristine.sqlite");
    written_views(&w.store, &pristine_path).await;
    let pristine = std::fs::read(&pristine_path).unwrap();
    let truth = projections::fold_log(w.store.as_ref()).await.unwrap();
    let (mut detected, mut unaffected, mut wrong) = (0u64, 0u64, Vec::new());
    let cases = flip_cases();
    for case in 0..cases {
        let mut rng = Rng(case);
        let mut bytes = pristine.clone();
        let flips = 1 + rng.next() % 3;
        for _ in 0..flips {
            let at = (rng.next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (rng.next() % 8);
        }
        let dir = w.dir.path().join(format!("case-{case}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("views.sqlite");
        std::fs::write(&path, &bytes).unwrap();
        let p = match Projector::start(Arc::clone(&w.store), &path).await {
            Ok(p) => p,
            Err(e) => panic!("case {case}: the projector did not start: {e}"),
        };
        p.wait_for(truth.position, WAIT).await.unwrap();
        // Reading every ledger finds damage in rows that opening does not read.
        let models = p.models().await.unwrap();
        match (p.opened(), p.status()) {
            (Opened::MovedAside { .. }, _) | (_, Status::Damaged { .. }) => detected += 1,
            (Opened::Loaded { .. }, _) => unaffected += 1,
        }
        if models != truth {
            wrong.push(case);
        }
        drop(p);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "random byte flips in views.sqlite: {cases} cases ({} bytes), {detected} detected and rebuilt, \
         {unaffected} unaffected, {} wrong views served",
        pristine.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "cases {wrong:?} served a view that is not the log's");
    assert!(detected > 0, "no flip was detected: the test does not reach the data");
}

#[tokio::test]
async fn a_full_read_model_file_is_retried_and_catches_up_without_a_restart() {
    let w = world().await;
    let path = w.dir.path().join("views.sqlite");
    let p = Arc::new(caught_up(&w.store, &path).await);
    p.wait_committed(head(w.store.as_ref()).await, WAIT).await.unwrap();
    // The file may not grow by a page: every new row soon needs one.
    p.set_pages_max(Some(1));
    let mut writers = Vec::new();
    for t in 0..4 {
        let handler = Arc::clone(&w.handler);
        let p = Arc::clone(&p);
        writers.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..60 {
                let id = format!("E{t}X{i}");
                let r = handler.execute(&gid(), &spend(&id, "0.01", &format!("INV-{id}"))).await.unwrap();
                // Reads keep answering, and show the write at once.
                p.wait_for(r.position.0, WAIT).await.unwrap();
                positions.push((id, r.position.0));
            }
            positions
        }));
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while !matches!(p.status(), Status::Degraded { .. }) {
        assert!(tokio::time::Instant::now() < deadline, "the file never filled up: {:?}", p.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut acknowledged = Vec::new();
    for t in writers {
        acknowledged.extend(t.await.unwrap());
    }
    let head_now = head(w.store.as_ref()).await;
    assert!(p.committed() < head_now, "the file kept up although it was full");
    assert_eq!(
        p.models().await.unwrap(),
        projections::fold_log(w.store.as_ref()).await.unwrap(),
        "the views in memory are not current"
    );
    // Space comes back: the file catches up, no restart.
    p.set_pages_max(None);
    p.wait_committed(head_now, WAIT).await.unwrap();
    assert_eq!(p.status(), Status::Running);
    assert_eq!(acknowledged.len(), 240);
    // Every acknowledged write is in the log, at its position, and in the views.
    let ledger = p.ledger(&gid()).await.unwrap().unwrap();
    let all = w.store.read_all(Position(0), store::READ_EVENTS_MAX).await.unwrap();
    for (id, position) in &acknowledged {
        let e = all.iter().find(|e| e.position.0 == *position).expect("the acknowledged position is in the log");
        assert_eq!(e.data.to_value()["expenditure_id"], serde_json::json!(id), "position {position}");
        assert!(ledger.expenditures.contains_key(&events::ExpenditureId::parse(id.as_str()).unwrap()), "{id}");
    }
    assert_eq!(ledger.position, head_now);
    drop(ledger);
    let p = Arc::into_inner(p).expect("the writers are done");
    drop(p);
    let again = caught_up(&w.store, &path).await;
    assert_eq!(again.opened(), &Opened::Loaded { position: head_now });
    assert_eq!(again.models().await.unwrap(), projections::fold_log(w.store.as_ref()).await.unwrap());
}

/// A log written before ids `.` and `..` were refused may hold them: every
/// such fact is written to the file too, so a restart that loads the file
/// serves what the log says, not a ledger missing that expenditure.
#[tokio::test]
async fn facts_with_ids_refused_today_are_written_and_loaded_like_any_other() {
    let w = world().await;
    let spent = w.store.read_all(Position::START, store::READ_EVENTS_MAX).await.unwrap();
    let model = spent.iter().find(|e| e.event_type == "ExpenditureRecorded").expect("an expenditure");
    let mut data = model.data.to_value();
    data["expenditure_id"] = serde_json::json!("..");
    data["invoice"] = serde_json::json!("OLD-DOT-DOT");
    let mut metadata = model.metadata.clone();
    metadata.command_id = None;
    let old = store::NewEvent::new(model.event_type.clone(), model.schema_version, data, metadata);
    w.store.append(&model.stream_id, store::ExpectedVersion::Any, vec![old]).await.unwrap();
    // A grant whose id is one refused today, in the grants' index and in
    // its standing.
    let awarded = spent.iter().find(|e| e.event_type == "GrantAwarded").expect("an award");
    let mut data = awarded.data.to_value();
    data["grant_id"] = serde_json::json!("..");
    let mut metadata = awarded.metadata.clone();
    metadata.command_id = None;
    let old = store::NewEvent::new(awarded.event_type.clone(), awarded.schema_version, data, metadata);
    let stream = store::StreamId::parse("grant-..").unwrap();
    w.store.append(&stream, store::ExpectedVersion::Any, vec![old]).await.unwrap();
    let path = w.dir.path().join("views.sqlite");
    written_views(&w.store, &path).await;
    let again = caught_up(&w.store, &path).await;
    assert!(matches!(again.opened(), Opened::Loaded { .. }), "{:?}", again.opened());
    assert_eq!(
        again.models().await.unwrap(),
        projections::fold_log(w.store.as_ref()).await.unwrap(),
        "the file lost a fact the log holds"
    );
    let programme = again.ledger(&gid()).await.unwrap().unwrap().grant.clone().unwrap().programme;
    let kept: Vec<String> = again.standings(&programme).unwrap().iter().map(|s| s.grant.to_string()).collect();
    assert!(kept.iter().any(|g| g == ".."), "{kept:?}");
}
