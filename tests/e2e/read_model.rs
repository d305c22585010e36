//! The read model (`views.sqlite`) is a cache of the log, over HTTP: a
//! file from a longer log, a damaged file or a changed figure is moved
//! aside and rebuilt, never served, and the server starts; a file that
//! cannot be derived (`api.sqlite`) is named with what to do; a full
//! read-model file is survived without a restart; the operator rebuilds on
//! demand, online and offline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bodies::small_expenditure;
use crate::client::{Api, amount};
use crate::harness::{ADMIN_TOKEN, Server, binary, run_bounded};
use crate::world::{GRANT_A, World};

/// The bound on every wait for a condition.
const WITHIN: Duration = Duration::from_secs(60);

fn views(dir: &Path) -> PathBuf {
    dir.join("views.sqlite")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Moves everything SQLite keeps in the WAL into the main file, so the
/// file's bytes are the whole database (the server is stopped).
fn checkpoint(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
}

fn moved_aside(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("views.sqlite.bad-") && !n.ends_with("-wal") && !n.ends_with("-shm"))
        .collect();
    names.sort();
    names
}

async fn readyz(api: &Api) -> Value {
    api.get("", "/readyz").await.body
}

async fn head(api: &Api) -> u64 {
    let r = readyz(api).await;
    r["head"].as_u64().unwrap_or_else(|| panic!("no head in {r}"))
}

fn expenditures() -> String {
    format!("/api/v1/grants/{GRANT_A}/expenditures")
}

async fn budget(api: &Api, min_position: u64) -> Value {
    api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT_A}/budget?min_position={min_position}"))
        .await
        .expect_status(200)
        .body
}

/// The server answers ready, with views at the log's head, and a new write
/// shows in a `min_position` read at once.
async fn serves_the_log(w: &World) {
    let api = w.api();
    let deadline = Instant::now() + WITHIN;
    loop {
        // A file moved aside is rebuilt from the log after the start.
        let r = readyz(&api).await;
        assert_eq!(r["status"], "ok", "{r}\n{}", w.server.logs());
        if r["projection_position"] == r["head"] {
            break;
        }
        assert!(Instant::now() < deadline, "the views never caught up: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = api.post(&w.manager_a, &expenditures(), &small_expenditure(900 + w.server.starts())).await;
    let position = written.written(201)["position"].as_u64().unwrap();
    let b = budget(&api, position).await;
    assert_eq!(b["position"].as_u64(), Some(position), "{b}");
}

#[tokio::test]
async fn a_views_file_from_a_longer_log_is_moved_aside_and_rebuilt() {
    let mut longer = World::new().await;
    let api = longer.api();
    for n in 0..5 {
        api.post(&longer.manager_a, &expenditures(), &small_expenditure(n)).await.written(201);
    }
    let long_head = head(&api).await;
    budget(&api, long_head).await;
    longer.server.stop();
    let mut w = World::new().await;
    assert!(head(&w.api()).await < long_head);
    w.server.stop();
    let (from, to) = (longer.server.data_dir(), w.server.data_dir());
    checkpoint(&views(&from));
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&views(&to), suffix));
    }
    std::fs::copy(views(&from), views(&to)).unwrap();
    w.server.start_again();
    serves_the_log(&w).await;
    assert_eq!(moved_aside(&to).len(), 1, "the foreign file is kept aside\n{}", w.server.logs());
    assert!(w.server.logs().contains("moved it aside"), "a warning names it:\n{}", w.server.logs());
}

#[tokio::test]
async fn a_damaged_views_file_is_moved_aside_and_the_server_starts() {
    let mut w = World::new().await;
    let dir = w.server.data_dir();
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 2] = [
        ("a flipped header byte", |b| b[0] ^= 0x01),
        ("a truncated file", |b| {
            let keep = b.len() / 2 + 17;
            b.truncate(keep);
        }),
    ];
    for (i, (what, damage)) in damages.into_iter().enumerate() {
        w.server.stop();
        checkpoint(&views(&dir));
        let mut bytes = std::fs::read(views(&dir)).unwrap();
        damage(&mut bytes);
        std::fs::write(views(&dir), &bytes).unwrap();
        w.server.start_again();
        assert_eq!(moved_aside(&dir).len(), i + 1, "{what}: the file is kept aside\n{}", w.server.logs());
        serves_the_log(&w).await;
        // The file made anew is its owner's only, like every data file.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(views(&dir)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{what}: the rebuilt views.sqlite is {mode:o}");
    }
}

#[tokio::test]
async fn a_changed_figure_in_the_views_file_is_never_served() {
    let mut w = World::new().await;
    let api = w.api();
    let before = budget(&api, head(&api).await).await;
    let line = |b: &Value| b["lines"].as_array().unwrap().iter().find(|l| l["line"] == "WP1-PER").unwrap().clone();
    assert_eq!(amount(&line(&before)["spent"]), "500.00", "{before}");
    w.server.stop();
    let dir = w.server.data_dir();
    checkpoint(&views(&dir));
    // E1's 500.00 becomes 900.00, in every copy of its row in the file.
    let conn = rusqlite::Connection::open(views(&dir)).unwrap();
    let fact: String = conn
        .query_row("SELECT fact FROM grant_ledgers WHERE kind = 'expenditure' AND key = 'E1'", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    assert!(fact.contains("500.00"), "{fact}");
    let (old, new) = (fact.as_bytes(), fact.replacen("500.00", "900.00", 1).into_bytes());
    let mut bytes = std::fs::read(views(&dir)).unwrap();
    let mut copies = 0;
    for at in 0..bytes.len().saturating_sub(old.len()) {
        if &bytes[at..at + old.len()] == old {
            bytes[at..at + old.len()].copy_from_slice(&new);
            copies += 1;
        }
    }
    assert!(copies > 0);
    std::fs::write(views(&dir), &bytes).unwrap();
    w.server.start_again();
    // Opening reads no ledger; the grant's is read when first asked for,
    // its rows do not match its digest, and it is folded from the log.
    let after = budget(&api_of(&w), head(&w.api()).await).await;
    assert_eq!(amount(&line(&after)["spent"]), "500.00", "the changed figure was served: {after}");
    assert_eq!(after["spent"], before["spent"], "{after}");
    let ready = readyz(&w.api()).await;
    assert_eq!(ready["status"], "degraded", "the damage is reported: {ready}");
    assert!(w.server.logs().contains("could not give a ledger"), "{}", w.server.logs());
    // The next start moves the file aside and rebuilds it.
    w.server.stop();
    w.server.start_again();
    assert_eq!(moved_aside(&dir).len(), 1, "{}", w.server.logs());
    assert_eq!(readyz(&w.api()).await["status"], "ok");
    serves_the_log(&w).await;
}

fn api_of(w: &World) -> Api {
    w.api()
}

/// Runs `grantlog <args>` to its end (bounded), with the harness's admin
/// token in the environment; returns (exit code, stdout, stderr).
fn run(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    run_on(args, dir, None)
}

/// [`run`] with the server's database, when it has one.
fn run_on(args: &[&str], dir: &Path, database_url: Option<String>) -> (Option<i32>, String, String) {
    let mut command = Command::new(binary());
    command
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(database_url.iter().flat_map(|url| ["--database-url".to_owned(), url.clone()]))
        .env("GRANTLOG_ADMIN_TOKEN", ADMIN_TOKEN);
    run_bounded(&mut command, WITHIN)
}

#[tokio::test]
async fn an_unopenable_api_file_is_named_with_what_to_do() {
    if crate::BACKEND == crate::harness::Backend::Postgres {
        // The tokens are not in a file there: what cannot be opened is the
        // database, and it is named, without a password, with what to do.
        let dir = tempfile::tempdir().unwrap();
        let url = "postgres://postgres:pw-x7@127.0.0.1:1/nowhere";
        let (code, _, stderr) = run_on(&["serve", "--listen", "127.0.0.1:0"], dir.path(), Some(url.to_owned()));
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("127.0.0.1:1/nowhere") && stderr.contains("PostgreSQL is running"), "{stderr}");
        assert!(!stderr.contains("pw-x7") && !stderr.contains("internal error"), "{stderr}");
        return;
    }
    let mut w = World::new().await;
    w.server.stop();
    let dir = w.server.data_dir();
    let api_file = dir.join("api.sqlite");
    checkpoint(&api_file);
    let mut bytes = std::fs::read(&api_file).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&api_file, &bytes).unwrap();
    let (code, _, stderr) = run(&["serve", "--listen", "127.0.0.1:0"], &dir);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&api_file.display().to_string()), "the file is named: {stderr}");
    assert!(stderr.contains("backup") && stderr.contains("GRANTLOG_ADMIN_TOKEN"), "what to do: {stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
    // Doing what it says: move it aside and bootstrap a new admin token.
    std::fs::rename(&api_file, dir.join("api.sqlite.damaged")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&api_file, suffix));
    }
    w.server.start_again();
    let r = w.api().get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT_A}/budget")).await;
    r.expect_status(200);
    // The log cannot be derived either: named, never "internal error".
    w.server.stop();
    let log = dir.join("events.sqlite");
    checkpoint(&log);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let (code, _, stderr) = run(&["serve", "--listen", "127.0.0.1:0"], &dir);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&log.display().to_string()) && stderr.contains("backup"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
}

/// Writes the page cap the server reads through its test hook.
fn cap(file: &Path, pages: Option<u64>) {
    std::fs::write(file, pages.map(|p| p.to_string()).unwrap_or_default()).unwrap();
}

#[tokio::test]
async fn a_full_views_file_is_survived_without_a_restart() {
    let hook = tempfile::tempdir().unwrap();
    let file = hook.path().join("views-pages-max");
    cap(&file, None);
    let hook_arg = file.display().to_string();
    let w = World::with_server(Server::start_with(&["serve", "--views-pages-max-file", &hook_arg])).await;
    let api = w.api();
    // The file may not grow by a page from now on.
    cap(&file, Some(1));
    let mut writers = Vec::new();
    for t in 0..4u32 {
        let (api, token) = (api.clone(), w.manager_a.clone());
        writers.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for i in 0..50u32 {
                let r = api.post(&token, &expenditures(), &small_expenditure(1000 + t * 100 + i)).await;
                // Every write is acknowledged (the log has room), and a read
                // at its position answers from the views in memory at once.
                let body = r.written(201);
                let position = body["position"].as_u64().unwrap();
                let b = budget(&api, position).await;
                assert!(b["position"].as_u64() >= Some(position), "{b}");
                written.push(body["events"][0]["id"].as_str().unwrap().to_owned());
            }
            written
        }));
    }
    let deadline = Instant::now() + WITHIN;
    let mut degraded = readyz(&api).await;
    while degraded["status"] != "degraded" {
        assert!(Instant::now() < deadline, "the views file never filled: {degraded}\n{}", w.server.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
        degraded = readyz(&api).await;
    }
    assert!(degraded["detail"].as_str().unwrap().contains("read model file"), "{degraded}");
    let mut acknowledged = Vec::new();
    for t in writers {
        acknowledged.extend(t.await.unwrap());
    }
    // Space comes back: the file catches up and readiness returns, with
    // the same process.
    cap(&file, None);
    let deadline = Instant::now() + WITHIN;
    loop {
        let r = readyz(&api).await;
        if r["status"] == "ok" && r["projection_position"] == r["head"] {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {r}\n{}", w.server.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.server.starts(), 1, "no restart");
    assert_eq!(acknowledged.len(), 200);
    let recorded: std::collections::HashSet<String> = api
        .history(ADMIN_TOKEN, GRANT_A)
        .await
        .iter()
        .filter_map(|e| e["event_id"].as_str().or_else(|| e["id"].as_str()).map(str::to_owned))
        .collect();
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !recorded.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged but not in the log: {missing:?}");
}

#[tokio::test]
async fn an_operator_rebuilds_the_views_online_and_offline() {
    let mut w = World::new().await;
    let api = w.api();
    let path = "/api/v1/admin/rebuild-views";
    api.post(&w.manager_a, path, &Value::Null).await.expect_status(403);
    let started = api.post(ADMIN_TOKEN, path, &Value::Null).await.expect_status(202);
    assert!(["running", "done"].contains(&started.body["state"].as_str().unwrap()), "{}", started.text);
    let deadline = Instant::now() + WITHIN;
    let done = loop {
        let s = api.get(ADMIN_TOKEN, path).await.expect_status(200).body;
        if s["state"] == "done" {
            break s;
        }
        assert_ne!(s["state"], "failed", "{s}");
        assert!(Instant::now() < deadline, "the rebuild did not finish: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done["equal"], true, "{done}");
    assert_eq!(done["live_digest"], done["rebuilt_digest"], "{done}");
    assert_eq!(done["position"].as_u64(), Some(head(&api).await), "{done}");
    serves_the_log(&w).await;
    // Offline, on the stopped server's directory.
    w.server.stop();
    let dir = w.server.data_dir();
    let (code, stdout, stderr) = run_on(&["rebuild-views"], &dir, w.server.database_url());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("live digest") && stdout.contains("equal"), "{stdout}");
    // A damaged file: moved aside and rebuilt, and the exit code says so.
    checkpoint(&views(&dir));
    let mut bytes = std::fs::read(views(&dir)).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(views(&dir), &bytes).unwrap();
    let (code, stdout, stderr) = run_on(&["rebuild-views"], &dir, w.server.database_url());
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("could not be trusted"), "{stdout}");
    w.server.start_again();
    serves_the_log(&w).await;
}
