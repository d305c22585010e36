//! PostgreSQL going away under the servers, and coming back (this module
//! runs in `e2e_postgres` only):
//!
//! - a private cluster the test starts itself (initdb, pg_ctl) is stopped
//!   (`-m immediate`, as a crash) under keyed writers on two servers, and
//!   started again: while it is down every answer that needs it is a 503
//!   `database-unavailable` with `Retry-After`, within a bound; when it is
//!   back both servers (the same processes) write again, every write ever
//!   acknowledged is in the log once, and the chain verifies;
//! - a log dumped with `pg_dump -Fc` and restored with `pg_restore` into a
//!   fresh database verifies with the same head, serves the same views and
//!   continues the chain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bodies::expenditure;
use crate::client::Api;
use crate::harness::{ADMIN_TOKEN, Database, Server, binary};
use crate::world::{GRANT_A, GRANT_B, World};

/// The machine's PostgreSQL server binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How long the private cluster may take to start or stop.
const PG_READY_WITHIN: Duration = Duration::from_secs(60);
/// The bound on any one request in these tests: a server that cannot reach
/// its database must still answer within it.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);
/// How long the servers may take to write again once the database is back.
const RECOVER_WITHIN: Duration = Duration::from_secs(30);
/// How long the database stays down.
const DOWN_FOR: Duration = Duration::from_secs(4);
/// Writer tasks per server.
const WRITERS: usize = 3;
/// Writes acknowledged before the database is stopped, at least.
const ACKED_BEFORE: u64 = 40;
/// Writes acknowledged by each server after it is back, at least.
const ACKED_AFTER_PER_SERVER: u64 = 20;

/// A PostgreSQL binary, or a failure saying it is missing.
fn pg_bin(name: &str) -> PathBuf {
    let path = Path::new(PG_BIN).join(name);
    assert!(
        path.is_file(),
        "{} is missing: this test runs a PostgreSQL cluster of its own and needs the PostgreSQL 15 server \
         binaries (initdb, pg_ctl, pg_isready) in {PG_BIN}",
        path.display()
    );
    path
}

/// Runs a command, failing the test with its output when it fails.
fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `runuser -u postgres -- <program>`: initdb and the server refuse root.
fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

/// A PostgreSQL cluster of the test's own on a free port, stopped and
/// removed when dropped. Unlike the shared server, it can be stopped and
/// started at will.
#[derive(Debug)]
struct Cluster {
    /// Holds `data/` (the cluster), `socket/` and `server.log`.
    root: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// initdb (trust authentication, superuser `postgres`), start, and
    /// create the database `grantlog`.
    fn start() -> Self {
        let initdb = pg_bin("initdb");
        let root = tempfile::tempdir().expect("a temporary directory");
        // The postgres user must reach the directories below.
        std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the cluster's directory");
        let home = root.path().join("pg");
        for dir in [home.clone(), home.join("socket")] {
            std::fs::create_dir_all(&dir).expect("a cluster directory");
        }
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&home));
        run(as_postgres(&initdb).arg("-D").arg(home.join("data")).args(["-A", "trust", "-U", "postgres", "-N"]));
        let port = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            socket.local_addr().expect("its address").port()
        };
        let cluster = Self { root, port };
        cluster.start_again();
        run(Command::new("psql").arg(format!("postgres://postgres@127.0.0.1:{port}/postgres")).args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE DATABASE grantlog",
        ]));
        cluster
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("pg")
    }

    /// The `grantlog` database's URL.
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/grantlog", self.port)
    }

    /// `pg_ctl start` on the same port and directory, then waits until
    /// `pg_isready` says it accepts connections.
    fn start_again(&self) {
        let home = self.home();
        let options =
            format!("-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=on", home.join("socket").display(), self.port);
        run(as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(home.join("data"))
            .arg("-l")
            .arg(home.join("server.log"))
            .args(["-w", "-t", &PG_READY_WITHIN.as_secs().to_string(), "-o", &options, "start"]));
        let isready = pg_bin("pg_isready");
        let deadline = Instant::now() + PG_READY_WITHIN;
        loop {
            let ready = Command::new(&isready)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-t", "5"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private PostgreSQL cluster did not accept connections within {PG_READY_WITHIN:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `pg_ctl stop -m immediate`: every backend is killed at once, as in
    /// a crash; what was committed is recovered from the WAL at the next
    /// start.
    fn stop_immediate(&self) {
        run(as_postgres(&pg_bin("pg_ctl")).arg("-D").arg(self.home().join("data")).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }

    /// The server's log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.home().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(Path::new(PG_BIN).join("pg_ctl").as_path())
            .arg("-D")
            .arg(self.home().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
        // The temporary directory goes with `root`.
    }
}

/// The phases of the outage test.
const BEFORE: u64 = 0;
const DOWN: u64 = 1;
const BACK: u64 = 2;

/// One keyed write as a writer sends it (again, until it is answered 201).
#[derive(Debug, Clone)]
struct Write {
    id: String,
    key: String,
    body: Value,
}

impl Write {
    fn new(id: String) -> Self {
        let body = expenditure(&id, "WP1-PER", "0.01", "2022-09-01", "sup-outage", &format!("INV-{id}"), None);
        Self { key: format!("key-{id}"), id, body }
    }
}

/// What one request got.
#[derive(Debug)]
enum Answer {
    /// A 201 (first answer or replay) with its position.
    Written { position: u64, replayed: bool },
    /// A 503 problem+json `database-unavailable` with `Retry-After`.
    Unavailable,
    /// 409 `too-many-conflicts` (the other server kept winning the grant):
    /// nothing recorded, retried.
    Conflict,
    /// Anything else: a failure of the test, with what was seen.
    Wrong(String),
}

/// Sends `write` with its key; sorts the answer.
async fn send(api: &Api, token: &str, write: &Write) -> Answer {
    let url = format!("{}/api/v1/grants/{GRANT_A}/expenditures", api.base());
    let sent = api
        .http()
        .post(url)
        .bearer_auth(token)
        .header("Idempotency-Key", &write.key)
        .json(&write.body)
        .timeout(ANSWER_WITHIN)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Answer::Wrong(format!("{}: no answer within {ANSWER_WITHIN:?}: {e}", write.id)),
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return Answer::Wrong(format!("{}: {status} with an unreadable body: {e}", write.id)),
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status {
        201 => match body["position"].as_u64() {
            Some(position) => {
                Answer::Written { position, replayed: headers.get("idempotent-replayed").is_some_and(|v| v == "true") }
            }
            None => Answer::Wrong(format!("{}: 201 without a position: {text}", write.id)),
        },
        503 => match unavailable_problem(&headers, &body) {
            Ok(()) => Answer::Unavailable,
            Err(why) => Answer::Wrong(format!("{}: 503 but {why}: {text}", write.id)),
        },
        409 if body["code"] == json!("too-many-conflicts") => Answer::Conflict,
        _ => Answer::Wrong(format!("{}: {status} {text}", write.id)),
    }
}

/// Whether a 503 is the documented `database-unavailable` problem.
fn unavailable_problem(headers: &reqwest::header::HeaderMap, body: &Value) -> Result<(), String> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/problem+json") {
        return Err(format!("content-type {content_type:?}"));
    }
    if body["code"] != json!("database-unavailable") || body["status"] != json!(503) {
        return Err("not code database-unavailable, status 503".into());
    }
    let retry = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if retry.is_none_or(|s| s == 0) {
        return Err("no Retry-After in seconds".into());
    }
    Ok(())
}

/// What the writers saw, shared with the test's main task.
#[derive(Debug, Default)]
struct Tally {
    /// Phase: `BEFORE`, `DOWN`, `BACK`.
    phase: AtomicU64,
    stop: AtomicBool,
    /// 201s by the phase in which they were answered.
    acked: [AtomicU64; 3],
    /// 201s after the database came back, by server.
    acked_back: [AtomicU64; 2],
    /// 503s answered (any phase).
    unavailable: AtomicU64,
    /// 503s answered while the database was down.
    unavailable_down: AtomicU64,
    conflicts: AtomicU64,
    replays: AtomicU64,
    /// Wakes the main task on every answer.
    changed: tokio::sync::Notify,
}

/// One writer: sends writes until told to stop, each one again with its key
/// until it is answered 201. Returns what was acknowledged, and what went
/// wrong.
async fn writer(
    api: Api,
    token: String,
    server: usize,
    n: usize,
    tally: Arc<Tally>,
) -> (Vec<(String, u64)>, Vec<String>) {
    let mut acked = Vec::new();
    let mut wrong = Vec::new();
    let mut made = 0;
    // The write not answered 201 yet, sent again with its key.
    let mut unanswered: Option<Write> = None;
    loop {
        let write = match unanswered.take() {
            Some(write) => write,
            None if tally.stop.load(Ordering::SeqCst) => break,
            None => {
                made += 1;
                Write::new(format!("O-{server}-{n}-{made}"))
            }
        };
        let answer = send(&api, &token, &write).await;
        let phase = tally.phase.load(Ordering::SeqCst);
        match answer {
            Answer::Written { position, replayed } => {
                tally.acked[phase as usize].fetch_add(1, Ordering::SeqCst);
                if phase == BACK {
                    tally.acked_back[server].fetch_add(1, Ordering::SeqCst);
                }
                if replayed {
                    tally.replays.fetch_add(1, Ordering::SeqCst);
                }
                acked.push((write.id, position));
            }
            Answer::Unavailable => {
                tally.unavailable.fetch_add(1, Ordering::SeqCst);
                if phase == DOWN {
                    tally.unavailable_down.fetch_add(1, Ordering::SeqCst);
                }
                unanswered = Some(write);
                // Retry-After says 1 s; a tenth of it keeps the test short.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Answer::Conflict => {
                tally.conflicts.fetch_add(1, Ordering::SeqCst);
                unanswered = Some(write);
            }
            Answer::Wrong(what) => {
                wrong.push(what);
                if wrong.len() > 20 {
                    break;
                }
                // Retried with its key like a 503; the test fails at the end.
                unanswered = Some(write);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tally.changed.notify_waiters();
    }
    tally.changed.notify_waiters();
    (acked, wrong)
}

/// Waits until `done` holds, woken by the writers; fails after `within`.
async fn until(tally: &Tally, within: Duration, what: &str, done: impl Fn(&Tally) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let changed = tally.changed.notified();
        if done(tally) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: not within {within:?}: {tally:?}");
        let _ = tokio::time::timeout(left.min(Duration::from_millis(500)), changed).await;
    }
}

/// Every event of the log, page by page from `/api/v1/events`.
async fn events(api: &Api) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page =
            api.get(ADMIN_TOKEN, &format!("/api/v1/events?after={after}&limit=1000")).await.expect_status(200).body;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let Some(last) = events.last().and_then(|e| e["position"].as_u64()) else { return all };
        after = last;
        all.extend(events);
    }
}

/// `grantlog verify --database-url <url>`; returns its `ok ...` line.
fn verify(url: &str) -> String {
    verify_with(url, &[])
}

/// `grantlog verify --database-url <url> <args>`; returns its `ok ...` line.
fn verify_with(url: &str, args: &[&str]) -> String {
    let data = tempfile::tempdir().expect("a temporary directory");
    let out = Command::new(binary())
        .arg("verify")
        .arg("--data-dir")
        .arg(data.path())
        .args(["--database-url", url])
        .args(args)
        .output()
        .expect("grantlog verify");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(out.status.success(), "verify {url}: {text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("ok "), "verify said {text}");
    text
}

/// Waits until `api` accepts `token` (tokens made on another server are
/// read within a second).
async fn accepted(api: &Api, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = api.get(token, &format!("/api/v1/grants/{GRANT_A}/budget")).await.status.as_u16();
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{} still answers {status} to a token made on another server", api.base());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_during_writes_loses_no_acknowledged_write_and_servers_recover_without_restart() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let w = World::with_server(Server::start_on_url(&url, &["serve"])).await;
    let b = w.server.join();
    let apis = [w.api(), b.api()];
    accepted(&apis[1], &w.manager_a).await;

    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for (s, api) in apis.iter().enumerate() {
        for n in 0..WRITERS {
            tasks.push(tokio::spawn(writer(api.clone(), w.manager_a.clone(), s, n, Arc::clone(&tally))));
        }
    }
    until(&tally, Duration::from_secs(60), "writes before the outage", |t| {
        t.acked[BEFORE as usize].load(Ordering::SeqCst) >= ACKED_BEFORE
    })
    .await;

    // The database crashes under the writers.
    tally.phase.store(DOWN, Ordering::SeqCst);
    let stopped = Instant::now();
    tokio::task::block_in_place(|| cluster.stop_immediate());
    let down_at = Instant::now();

    // While it is down: writes and reads that need it are 503
    // database-unavailable with Retry-After, within the bound.
    until(&tally, ANSWER_WITHIN, "503s from the writers while the database is down", |t| {
        t.unavailable_down.load(Ordering::SeqCst) >= 2 * WRITERS as u64
    })
    .await;
    let mut probes = 0;
    for (s, api) in apis.iter().enumerate() {
        let started = Instant::now();
        let probe = Write::new(format!("PROBE-DOWN-{s}"));
        match send(api, &w.manager_a, &probe).await {
            Answer::Unavailable => probes += 1,
            other => panic!("{}: a write while the database is down: {other:?}", api.base()),
        }
        let reply = api.get(ADMIN_TOKEN, "/api/v1/events?after=0&limit=10").await;
        assert_eq!(
            reply.status.as_u16(),
            503,
            "{}: the log read while the database is down: {}",
            api.base(),
            reply.text
        );
        unavailable_problem(&reply.headers, &reply.body).unwrap_or_else(|why| panic!("{why}: {}", reply.text));
        reply.problem(503, "database-unavailable");
        let reply = api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT_A}/history?limit=10")).await;
        assert_eq!(reply.status.as_u16(), 503, "{}: history while the database is down: {}", api.base(), reply.text);
        reply.problem(503, "database-unavailable");
        // Not ready (a load balancer sends its clients elsewhere), but alive
        // (nothing restarts it).
        let reply = api.send(reqwest::Method::GET, "/readyz", None, None, &[]).await;
        assert_eq!(reply.status.as_u16(), 503, "{}: /readyz while the database is down: {}", api.base(), reply.text);
        assert_eq!(reply.body["status"], json!("failed"), "{}", reply.text);
        api.send(reqwest::Method::GET, "/healthz", None, None, &[]).await.expect_status(200);
        // The views are in memory: they are read as they stand.
        let reply = api.get(&w.manager_a, &format!("/api/v1/grants/{GRANT_A}/budget")).await;
        assert_eq!(reply.status.as_u16(), 200, "{}: the budget while the database is down: {}", api.base(), reply.text);
        // The tokens live in the database too: creating one cannot be done.
        let body = json!({"name": format!("down-{s}"), "role": "viewer", "programmes": []});
        let reply = api.post(ADMIN_TOKEN, "/api/v1/tokens", &body).await;
        assert_eq!(
            reply.status.as_u16(),
            503,
            "{}: a token made while the database is down: {}",
            api.base(),
            reply.text
        );
        reply.problem(503, "database-unavailable");
        assert!(started.elapsed() < ANSWER_WITHIN, "{}: answers took {:?}", api.base(), started.elapsed());
    }
    let left = DOWN_FOR.saturating_sub(down_at.elapsed());
    tokio::time::sleep(left).await;
    let acked_down = tally.acked[DOWN as usize].load(Ordering::SeqCst);

    // The database is back, on the same port: the same server processes
    // write again within the bound.
    tokio::task::block_in_place(|| cluster.start_again());
    let down_for = stopped.elapsed();
    tally.phase.store(BACK, Ordering::SeqCst);
    let back_at = Instant::now();
    let mut recovered = Vec::new();
    for (s, api) in apis.iter().enumerate() {
        let mut n = 0;
        loop {
            let probe = Write::new(format!("PROBE-BACK-{s}-{n}"));
            n += 1;
            let answer = send(api, &w.manager_a, &probe).await;
            if let Answer::Written { .. } = answer {
                recovered.push(back_at.elapsed());
                break;
            }
            assert!(
                matches!(answer, Answer::Unavailable | Answer::Conflict),
                "{}: a write after the database came back: {answer:?}",
                api.base()
            );
            assert!(
                back_at.elapsed() < RECOVER_WITHIN,
                "server {s} did not write again within {RECOVER_WITHIN:?} of the database coming back:\n{}",
                if s == 0 { w.server.logs() } else { b.logs() }
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    until(&tally, RECOVER_WITHIN, "writes by every server after the outage", |t| {
        t.acked_back.iter().all(|a| a.load(Ordering::SeqCst) >= ACKED_AFTER_PER_SERVER)
    })
    .await;
    tally.stop.store(true, Ordering::SeqCst);

    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut wrong = Vec::new();
    for task in tasks {
        let (mine, bad) = task.await.expect("a writer");
        for (id, position) in mine {
            assert!(acked.insert(id.clone(), position).is_none(), "{id} acknowledged twice");
        }
        wrong.extend(bad);
    }
    assert!(wrong.is_empty(), "answers that are neither 201, 503 database-unavailable nor 409: {wrong:#?}");

    // Every acknowledged write is in the log once, at the position it was
    // acknowledged with; the positions are gapless; both servers say so.
    let positions: BTreeSet<u64> = acked.values().copied().collect();
    assert_eq!(positions.len(), acked.len(), "two writes acknowledged at one position");
    let head = *positions.last().expect("writes");
    for api in &apis {
        let log = events(api).await;
        let at: Vec<u64> = log.iter().filter_map(|e| e["position"].as_u64()).collect();
        assert_eq!(at, (1..=at.len() as u64).collect::<Vec<_>>(), "{}: positions are gapless", api.base());
        let by_position: BTreeMap<u64, &Value> =
            log.iter().filter_map(|e| Some((e["position"].as_u64()?, e))).collect();
        for (id, position) in &acked {
            let event = by_position.get(position).unwrap_or_else(|| panic!("{id} at {position} is not in the log"));
            assert_eq!(event["data"]["expenditure_id"], json!(id), "{}: the event at {position}", api.base());
        }
        let recorded: Vec<String> = log
            .iter()
            .filter_map(|e| e["data"]["expenditure_id"].as_str())
            .filter(|id| id.starts_with("O-"))
            .map(str::to_owned)
            .collect();
        let unique: BTreeSet<&String> = recorded.iter().collect();
        assert_eq!(unique.len(), recorded.len(), "{}: a write recorded twice", api.base());
        let expected: BTreeSet<&String> = acked.keys().collect();
        assert_eq!(unique, expected, "{}: the log holds exactly the acknowledged writes", api.base());
        // The views caught up with it too, without a restart.
        api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT_A}/budget?min_position={head}")).await.expect_status(200);
        let ready = api.send(reqwest::Method::GET, "/readyz", None, None, &[]).await.expect_status(200);
        assert_eq!(ready.body["status"], json!("ok"), "{}: /readyz after the outage: {}", api.base(), ready.text);
        let ids: Vec<String> = api.expenditure_ids(GRANT_A).await.into_iter().filter(|i| i.starts_with("O-")).collect();
        assert_eq!(ids.len(), acked.len(), "{}: /history lists every acknowledged write once", api.base());
    }
    // The same processes throughout, never restarted.
    assert_eq!((w.server.starts(), b.starts()), (1, 1), "a server was restarted");
    let line = verify(&url);
    let total = events(&apis[0]).await.len();
    assert!(line.starts_with(&format!("ok {total} events, head ")), "verify said {line}");

    let figures = format!(
        "writes acknowledged: {} before the stop, {} while down (answered just before), {} after it was back; \
         {} answers 503 database-unavailable ({} while down, {} probe), {} replays, {} conflicts (409); database \
         down {:.1} s; servers writing again {:.2} s / {:.2} s after it was back; log {total} events",
        tally.acked[BEFORE as usize].load(Ordering::SeqCst),
        acked_down,
        tally.acked[BACK as usize].load(Ordering::SeqCst),
        tally.unavailable.load(Ordering::SeqCst) + probes,
        tally.unavailable_down.load(Ordering::SeqCst),
        probes,
        tally.replays.load(Ordering::SeqCst),
        tally.conflicts.load(Ordering::SeqCst),
        down_for.as_secs_f64(),
        recovered[0].as_secs_f64(),
        recovered[1].as_secs_f64(),
    );
    eprintln!("pg_outage: {figures}");
    drop((w, b));
    drop(cluster);
}

/// `pg_dump -Fc` of `url` into `file`, as the postgres user's client.
fn pg_dump(url: &str, file: &Path) {
    run(Command::new(pg_bin("pg_dump")).args(["-Fc", "-f"]).arg(file).arg(url));
}

#[tokio::test]
async fn pg_dump_and_restore_keep_positions_and_hashes() {
    let w = World::new().await;
    let url = w.server.database_url().expect("a server on PostgreSQL");
    let line = verify(&url);
    let original = events(&w.api()).await;
    assert!(line.starts_with(&format!("ok {} events, head ", original.len())), "verify said {line}");

    let dumps = tempfile::tempdir().expect("a temporary directory");
    let file = dumps.path().join("grantlog.dump");
    pg_dump(&url, &file);
    let restored = Database::create();
    run(Command::new(pg_bin("pg_restore")).args(["--no-owner", "--exit-on-error", "-d", &restored.url()]).arg(&file));
    assert_eq!(verify(&restored.url()), line, "the restored log verifies with the same head");

    // A server on the restored database serves the same views and the same
    // log, and continues the chain.
    let copy = Server::start_on_url(&restored.url(), &["serve"]);
    let api = copy.api();
    let head = original.last().and_then(|e| e["position"].as_u64()).expect("events");
    for grant in [GRANT_A, GRANT_B] {
        let path = format!("/api/v1/grants/{grant}/budget?min_position={head}");
        let before = w.api().get(ADMIN_TOKEN, &path).await.expect_status(200).body;
        let after = api.get(ADMIN_TOKEN, &path).await.expect_status(200).body;
        assert_eq!(after, before, "{grant}: the budget view on the restored database");
    }
    assert_eq!(events(&api).await, original, "the restored log, event for event");
    // The restored tokens are accepted too.
    let body = expenditure("E-RESTORED", "WP1-PER", "1.00", "2022-09-01", "sup-r", "INV-R", None);
    let written = api.post(&w.manager_a, &format!("/api/v1/grants/{GRANT_A}/expenditures"), &body).await.written(201);
    assert_eq!(written["position"].as_u64(), Some(head + 1), "the next write continues the log: {written}");
    let after = verify(&restored.url());
    assert!(after.starts_with(&format!("ok {} events, head {}:", head + 1, head + 1)), "verify said {after}");
    // The head recorded at the backup is an unchanged prefix of the copy.
    let recorded = line.rsplit(' ').next().expect("a head");
    verify_with(&restored.url(), &["--since", recorded]);
    // The original is untouched.
    assert_eq!(verify(&url), line);
    eprintln!("pg_dump/pg_restore: {line} on both; after one more write on the copy: {after}");
}
