//! The harness: starts the real `grantlog` binary on a free port with a
//! fresh data directory, restarts it on the same directory, and kills it
//! when dropped.
//!
//! The suite runs on both backends: the `e2e` test binary on SQLite (the
//! data directory's files), `e2e_postgres` on PostgreSQL at 127.0.0.1:5432
//! (`GRANTLOG_TEST_PG`, user `postgres`), each server on a database of its
//! own made for it and dropped afterwards ([`crate::BACKEND`] says which).
//! [`Server::join`] starts another server on the same database, as a second
//! server behind a load balancer.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::client::Api;

/// The admin token every test server bootstraps with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-5c0ffee";
/// How long a server may take to print its listening line.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the process is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);
/// What the listening line starts with.
const LISTENING: &str = "grantlog listening on ";

/// The binary under test: `GRANTLOG_BIN`, else `grantlog` next to the
/// test executable's `deps/` directory.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GRANTLOG_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "GRANTLOG_BIN={} is not a file", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // The test executable is target/<profile>/deps/e2e-<hash>.
    let profile = exe.parent().and_then(Path::parent).expect("the test executable lives in target/<profile>/deps");
    let bin = profile.join(format!("grantlog{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the grantlog binary is missing at {}: build it first (`cargo build -p cli`, or run \
         `cargo test --workspace`), or set GRANTLOG_BIN to its path",
        bin.display()
    );
    bin
}

/// Where the servers of a test keep their log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The data directory's SQLite files.
    Sqlite,
    /// A PostgreSQL database of the test's own.
    Postgres,
}

/// The PostgreSQL server the tests use: `GRANTLOG_TEST_PG` (a libpq URL
/// without the database), else the machine's.
pub fn pg_server() -> String {
    std::env::var("GRANTLOG_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Runs SQL on the PostgreSQL server's `test` database with `psql`; panics
/// (the test fails, it is never skipped) when PostgreSQL cannot be reached.
pub fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .arg(format!("{}/test", pg_server()))
        .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql (the PostgreSQL client is needed for these tests): {e}"));
    assert!(
        out.status.success(),
        "PostgreSQL at {} is needed for this test and did not take {sql:?}: {}",
        pg_server(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A database of one test's own, dropped with it.
#[derive(Debug)]
pub struct Database {
    name: String,
}

impl Database {
    /// Creates an empty database with a fresh name.
    pub fn create() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("grantlog_e2e_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        psql(&format!("CREATE DATABASE {name}"));
        Self { name }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("{}/{}", pg_server(), self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(format!("{}/test", pg_server()))
            .args(["-X", "-q", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// Runs `command` to its end, within `within` (killed and the test failed
/// past it); returns (exit code, stdout, stderr). Its output is read while
/// it runs, so a long output cannot stall it.
#[allow(dead_code)] // not every test binary uses it
pub fn run_bounded(command: &mut Command, within: Duration) -> (Option<i32>, String, String) {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => {
            let out = out.expect("the command's output");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{command:?} did not finish within {within:?}");
        }
    }
}

/// A running `grantlog` server on its own temporary data directory.
#[derive(Debug)]
pub struct Server {
    /// The database it shares with the servers that joined it (PostgreSQL);
    /// dropped after the last of them.
    database: Option<std::sync::Arc<Database>>,
    /// The URL of the database it runs on, when on PostgreSQL (that of
    /// `database`, or one given to [`Server::start_on_url`]).
    database_url: Option<String>,
    root: tempfile::TempDir,
    child: Option<Child>,
    url: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    starts: u32,
    /// What the last start printed on stdout before its listening line.
    printed: Vec<String>,
}

impl Server {
    /// `grantlog serve` on a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(&["serve"])
    }

    /// `grantlog <args>` (a subcommand and flags) on a fresh data directory.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// `grantlog <args>` with extra environment variables (`GRANTLOG_*`
    /// settings) on a fresh data directory.
    pub fn start_with_env(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_prepared(args, envs, |_| {})
    }

    /// Like [`Server::start_with_env`], after `prepare` has been given the
    /// data directory's path (to mount a small file system there, say).
    pub fn start_prepared(args: &[&str], envs: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> Self {
        let database = (crate::BACKEND == Backend::Postgres).then(|| std::sync::Arc::new(Database::create()));
        let url = database.as_ref().map(|d| d.url());
        Self::start_on(database, url, args, envs, prepare)
    }

    /// `grantlog <args>` on a fresh data directory and on the database at
    /// `url`, which the caller owns (a cluster of the test's own, a
    /// restored copy).
    #[allow(dead_code)] // not every test binary uses it
    pub fn start_on_url(url: &str, args: &[&str]) -> Self {
        Self::start_on(None, Some(url.to_owned()), args, &[], |_| {})
    }

    /// `grantlog <args>` on `backend` whichever backend the test binary is for.
    #[allow(dead_code)] // not every test binary uses it
    pub fn start_with_backend(backend: Backend, args: &[&str]) -> Self {
        let database = (backend == Backend::Postgres).then(|| std::sync::Arc::new(Database::create()));
        let url = database.as_ref().map(|d| d.url());
        Self::start_on(database, url, args, &[], |_| {})
    }

    /// `grantlog <args>` on `database` (which may hold a log already), with
    /// a fresh data directory.
    #[allow(dead_code)] // not every test binary uses it
    pub fn start_on_database(database: std::sync::Arc<Database>, args: &[&str]) -> Self {
        let url = Some(database.url());
        Self::start_on(Some(database), url, args, &[], |_| {})
    }

    /// Another server on this one's database (PostgreSQL), with its own
    /// data directory (its own views), its own port and the same flags.
    #[allow(dead_code)] // not every test binary uses it
    pub fn join(&self) -> Self {
        assert!(self.database_url.is_some(), "only servers on PostgreSQL share a log");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Self::start_on(self.database.clone(), self.database_url.clone(), &args, &envs, |_| {})
    }

    /// The database URL the server uses (PostgreSQL), if any.
    #[allow(dead_code)] // not every test binary uses it
    pub fn database_url(&self) -> Option<String> {
        self.database_url.clone()
    }

    /// Flags that point a `grantlog` subcommand at this server's log: its
    /// data directory, and its database when there is one.
    #[allow(dead_code)] // not every test binary uses it
    pub fn log_args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_owned(), self.data_dir().display().to_string()];
        if let Some(url) = self.database_url() {
            args.extend(["--database-url".to_owned(), url]);
        }
        args
    }

    fn start_on(
        database: Option<std::sync::Arc<Database>>,
        database_url: Option<String>,
        args: &[&str],
        envs: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Self {
        let root = tempfile::tempdir().expect("a temporary directory");
        prepare(&root.path().join("data"));
        let mut server = Self {
            database,
            database_url,
            root,
            child: None,
            url: String::new(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            envs: envs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            starts: 0,
            printed: Vec::new(),
        };
        server.spawn();
        server
    }

    /// A client for this server (make a new one after a restart).
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }

    /// The data directory, kept across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Stops the server gracefully (SIGTERM) and starts it again on the same
    /// data directory (on a new port).
    pub fn restart(&mut self) {
        self.stop_gracefully();
        self.spawn();
    }

    /// Stops the server gracefully (SIGTERM); [`Server::start_again`]
    /// starts it on the same data directory.
    pub fn stop(&mut self) {
        self.stop_gracefully();
    }

    /// Starts a stopped server again on the same data directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        self.spawn();
    }

    /// How many times the server was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Kills the server outright (SIGKILL, as a crash) and starts it again on
    /// the same data directory.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The server's logs (stderr) so far, for failure messages.
    pub fn logs(&self) -> String {
        let path = self.log_path(self.starts);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.root.path().join(format!("server-{start}.log"))
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("a log file");
        let mut child = Command::new(binary())
            .args(&self.args)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("GRANTLOG_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(self.database_url.as_ref().map(|url| ("GRANTLOG_DATABASE_URL", url.clone())))
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        let stdout = child.stdout.take().expect("the child's stdout");
        self.child = Some(child);
        let (lines, rx) = mpsc::channel();
        // Drains stdout for the server's whole life; the first line we want
        // is the listening one. The channel closes when the process exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + READY_WITHIN;
        let mut other = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => match line.strip_prefix(LISTENING) {
                    Some(url) => {
                        self.url = url.trim().trim_end_matches('/').to_owned();
                        self.printed = other;
                        return;
                    }
                    None => other.push(line),
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.kill();
                    panic!(
                        "grantlog printed no `{LISTENING}...` line within {READY_WITHIN:?}; stdout: {other:?}\nstderr:\n{}",
                        self.logs()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().and_then(|c| c.wait().ok());
                    self.child = None;
                    panic!(
                        "grantlog exited ({status:?}) before listening; stdout: {other:?}\nstderr:\n{}",
                        self.logs()
                    );
                }
            }
        }
    }

    /// The lines the last start printed on stdout before it listened (the
    /// tokens and the tour `demo` prints).
    #[allow(dead_code)] // not every test binary uses it
    pub fn printed(&self) -> &[String] {
        &self.printed
    }

    /// Kills the server outright (SIGKILL, as a crash), leaving it stopped.
    #[allow(dead_code)] // not every test binary uses it
    pub fn kill_now(&mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop_gracefully(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(status);
        });
        match rx.recv_timeout(STOP_WITHIN) {
            Ok(status) => {
                let status = status.expect("the server's exit status");
                assert!(status.success(), "grantlog stopped on SIGTERM with {status}\nstderr:\n{}", self.logs());
            }
            Err(_) => {
                // The waiting thread still owns the child: kill it by pid.
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                let _ = rx.recv_timeout(STOP_WITHIN);
                panic!("grantlog did not stop within {STOP_WITHIN:?} of SIGTERM\nstderr:\n{}", self.logs());
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
