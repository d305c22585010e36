//! Backup, restore drill and copy with the real binary: a backup taken
//! while several writers write holds exactly a head the server
//! acknowledged and every write acknowledged before it began, and its
//! restore drill passes; a copied data directory serves the same views; a
//! non-empty copy target, an existing backup file and a tampered backup are
//! refused.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bodies::{award, budget_line, expenditure, programme, workstream};
use crate::client::{Api, caught_up};
use crate::harness::{ADMIN_TOKEN, Backend, Database, Server, binary, run_bounded};
use crate::world::{GRANT_A, GRANT_B, World};

const GRANT: &str = "grant-backup";
const WRITERS: u64 = 4;
/// The bound on every command and wait.
const WITHIN: Duration = Duration::from_secs(120);

/// Runs `grantlog <args>` to its end (bounded); returns (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    run_bounded(Command::new(binary()).args(args), WITHIN)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The head in `ok … head P:HASH…` output.
fn head_in(stdout: &str) -> String {
    let at = stdout.find("head ").unwrap_or_else(|| panic!("no head in {stdout}")) + 5;
    stdout[at..].split([',', ' ', '\n']).next().unwrap().to_owned()
}

async fn set_up(api: &Api) -> u64 {
    let line = budget_line("WP1", "PER", "90000.00", "2022-01-01");
    let mut last = 0;
    for (path, body) in [
        ("/api/v1/programmes".to_owned(), programme("prog-backup", "Backup", None)),
        ("/api/v1/grants".to_owned(), award(GRANT, "prog-backup", "100000.00")),
        (format!("/api/v1/grants/{GRANT}/workstreams"), workstream("WP1", "W", "2022-01-01")),
        (format!("/api/v1/grants/{GRANT}/budget-lines"), line),
    ] {
        last = api.post(ADMIN_TOKEN, &path, &body).await.written(201)["position"].as_u64().unwrap();
    }
    last
}

/// One acknowledged write: its expenditure id, the position the server
/// answered, and when the answer arrived.
#[derive(Debug, Clone)]
struct Acked {
    id: String,
    position: u64,
    at: Instant,
}

async fn write_until(api: Api, writer: u64, stop: Arc<AtomicBool>) -> Vec<Acked> {
    let mut acked = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let id = format!("B-W{writer}-{n}");
        let body = expenditure(&id, "WP1-PER", "0.01", "2022-05-02", "sup-backup", &id, None);
        let written = api.post(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT}/expenditures"), &body).await.written(201);
        acked.push(Acked { id, position: written["position"].as_u64().unwrap(), at: Instant::now() });
    }
    acked
}

/// The stored data at each position of a backup file, read directly.
fn backup_rows(file: &Path) -> Vec<(u64, String)> {
    let conn = rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn.prepare("SELECT position, data FROM events ORDER BY position").unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_writers_holds_an_acknowledged_head_and_everything_acknowledged_before_it() {
    let server = Server::start();
    let setup_head = set_up(&server.api()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS).map(|w| tokio::spawn(write_until(server.api(), w, Arc::clone(&stop)))).collect();
    // Let the writers get going before the backup starts.
    let deadline = Instant::now() + WITHIN;
    while server.api().get("", "/readyz").await.body["head"].as_u64().unwrap_or(0) < setup_head + 20 {
        assert!(Instant::now() < deadline, "the writers wrote nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("log.backup");
    let data_dir = server.data_dir();
    let began = Instant::now();
    let (code, stdout, stderr) = {
        let (file, data_dir) = (file.clone(), data_dir.clone());
        tokio::task::spawn_blocking(move || cli(&["backup", "--data-dir", path(&data_dir), "--to", path(&file)]))
            .await
            .unwrap()
    };
    let ended = Instant::now();
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Writes go on after the backup: wait for one acknowledged after it.
    let after_backup = server.api().get("", "/readyz").await.body["head"].as_u64().unwrap();
    while server.api().get("", "/readyz").await.body["head"].as_u64().unwrap() <= after_backup {
        assert!(Instant::now() < deadline + WITHIN, "the writers stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }

    let head = head_in(&stdout);
    let (position, hash) = head.split_once(':').unwrap();
    let position: u64 = position.parse().unwrap();
    let sidecar = std::fs::read_to_string(file.with_extension("backup.head")).unwrap();
    assert_eq!(sidecar.lines().next(), Some(head.as_str()), "{sidecar}");
    assert!(file.with_extension("backup.api").is_file(), "the tokens are backed up too: {stdout}");
    assert!(
        position == setup_head || acked.iter().any(|a| a.position == position),
        "the backup's head {position} is no position the server acknowledged"
    );
    let rows = backup_rows(&file);
    assert_eq!(rows.len() as u64, position);
    let before: Vec<&Acked> = acked.iter().filter(|a| a.at < began).collect();
    assert!(!before.is_empty() && acked.iter().any(|a| a.at > ended), "the backup ran while the writers wrote");
    for a in &before {
        let (_, data) = rows.get(a.position as usize - 1).unwrap_or_else(|| {
            panic!(
                "write {} at position {} was acknowledged before the backup began but is not in it",
                a.id, a.position
            )
        });
        assert!(data.contains(&format!("\"{}\"", a.id)), "position {} holds {data}, not {}", a.position, a.id);
    }
    // The backup's head is a prefix of the server's log.
    let (code, said, err) = cli(&["verify", "--data-dir", path(&data_dir), "--since", &head]);
    assert_eq!(code, Some(0), "{said}{err}");

    let (code, said, err) = cli(&["restore-drill", path(&file)]);
    assert_eq!(code, Some(0), "{said}{err}");
    assert!(
        said.starts_with(&format!("ok restore drill: {position} events, head {position}:{hash}, views digest ")),
        "{said}"
    );
}

async fn views(api: &Api) -> Vec<Value> {
    let mut out = Vec::new();
    for grant in [GRANT_A, GRANT_B] {
        for view in ["budget", "timeline"] {
            out.push(api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{grant}/{view}")).await.expect_status(200).body);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_data_directory_serves_the_same_views_and_a_non_empty_target_is_refused() {
    let w = World::new().await;
    let source = w.server.data_dir();
    let head = w.api().get("", "/readyz").await.body["head"].as_u64().unwrap();
    let mut copied = String::new();
    let copy = Server::start_prepared(&["serve"], &[], |target| {
        let (code, stdout, stderr) = cli(&["copy", "--from", path(&source), "--to", path(target)]);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        copied = stdout;
    });
    let (code, verified, err) = cli(&["verify", "--data-dir", path(&source)]);
    assert_eq!(code, Some(0), "{verified}{err}");
    assert_eq!(copied.trim(), verified.trim(), "copy prints the line verify prints for the source");
    for grant in [GRANT_A, GRANT_B] {
        caught_up(&copy.api(), grant, head).await;
    }
    assert_eq!(views(&copy.api()).await, views(&w.api()).await);

    let (code, stdout, stderr) = cli(&["copy", "--from", path(&source), "--to", path(&copy.data_dir())]);
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("already holds a log"), "{stderr}");
    let (_, after, _) = cli(&["verify", "--data-dir", path(&copy.data_dir())]);
    assert_eq!(after.trim(), verified.trim(), "the refused copy wrote nothing");
    // A database that cannot be reached fails, without showing the password.
    let (code, _, stderr) =
        cli(&["copy", "--from", "postgres://u:secret@127.0.0.1:1/db", "--to", path(&copy.data_dir())]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("127.0.0.1") && !stderr.contains("secret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_copied_to_postgresql_and_back_keeps_positions_times_and_hashes() {
    let w = World::with_server(Server::start_with_backend(Backend::Sqlite, &["serve"])).await;
    let source = w.server.data_dir();
    let (code, verified, err) = cli(&["verify", "--data-dir", path(&source)]);
    assert_eq!(code, Some(0), "{verified}{err}");
    // To PostgreSQL: the same verify line, then a server on it serves the
    // same views.
    let database = Arc::new(Database::create());
    let (code, copied, err) = cli(&["copy", "--from", path(&source), "--to", &database.url()]);
    assert_eq!(code, Some(0), "{copied}{err}");
    assert_eq!(copied.trim(), verified.trim(), "copy prints the source's verify line");
    let (code, again, err) = cli(&["verify", "--database-url", &database.url(), "--data-dir", path(&source)]);
    assert_eq!((code, again.trim()), (Some(0), verified.trim()), "{err}");
    let on_pg = Server::start_on_database(Arc::clone(&database), &["serve"]);
    let head = w.api().get("", "/readyz").await.body["head"].as_u64().unwrap();
    for grant in [GRANT_A, GRANT_B] {
        caught_up(&on_pg.api(), grant, head).await;
    }
    assert_eq!(views(&on_pg.api()).await, views(&w.api()).await);
    // A non-empty database is refused; and back to a data directory.
    let (code, _, stderr) = cli(&["copy", "--from", path(&source), "--to", &database.url()]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("already holds a log"), "{stderr}");
    let back = tempfile::tempdir().unwrap();
    let target = back.path().join("data");
    let (code, copied_back, err) = cli(&["copy", "--from", &database.url(), "--to", path(&target)]);
    assert_eq!((code, copied_back.trim()), (Some(0), verified.trim()), "{err}");
    let (code, verified_back, err) = cli(&["verify", "--data-dir", path(&target)]);
    assert_eq!((code, verified_back.trim()), (Some(0), verified.trim()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_never_overwrites_and_a_tampered_backup_fails_its_drill_at_the_position() {
    let w = World::new().await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("b.sqlite");
    std::fs::write(&file, "keep me").unwrap();
    let data_dir = w.server.data_dir();
    let (code, stdout, stderr) = cli(&["backup", "--data-dir", path(&data_dir), "--to", path(&file)]);
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("exists"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    assert!(!out.path().join("b.sqlite.head").exists());

    let file = out.path().join("good.sqlite");
    let (code, stdout, stderr) = cli(&["backup", "--data-dir", path(&data_dir), "--to", path(&file)]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, said, err) = cli(&["restore-drill", "--keep", path(&file)]);
    assert_eq!(code, Some(0), "the untampered backup passes: {said}{err}");
    let kept = said.lines().find_map(|l| l.strip_prefix("kept the restored data directory at ")).unwrap();
    let kept = Path::new(kept.trim());
    assert!(kept.join("events.sqlite").is_file() && kept.join("api.sqlite").is_file(), "{said}");
    std::fs::remove_dir_all(kept.parent().unwrap()).unwrap();

    // One byte of one event's data, changed in the backup.
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
    let data: String = conn.query_row("SELECT data FROM events WHERE position = 7", [], |r| r.get(0)).unwrap();
    let mut bytes = data.into_bytes();
    let at = bytes.iter().position(u8::is_ascii_digit).expect("a digit in the data");
    bytes[at] = if bytes[at] == b'9' { b'8' } else { bytes[at] + 1 };
    conn.execute("UPDATE events SET data = ?1 WHERE position = 7", [String::from_utf8(bytes).unwrap()]).unwrap();
    drop(conn);
    let (code, said, err) = cli(&["restore-drill", path(&file)]);
    assert_eq!(code, Some(1), "{said}{err}");
    assert!(said.contains("bad at position 7: hash-mismatch"), "{said}");

    // Copied, the tampered log stops at the same position.
    let tampered_dir = out.path().join("tampered");
    std::fs::create_dir(&tampered_dir).unwrap();
    std::fs::copy(&file, tampered_dir.join("events.sqlite")).unwrap();
    let target = out.path().join("copy");
    let (code, said, err) = cli(&["copy", "--from", path(&tampered_dir), "--to", path(&target)]);
    assert_eq!(code, Some(2), "{said}{err}");
    assert!(err.contains("import refused at position 7"), "{err}");
}
