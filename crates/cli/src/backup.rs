//! `grantlog backup` and `grantlog restore-drill`: an online backup of a
//! data directory (beside a running server: SQLite's `VACUUM INTO` copies
//! one consistent snapshot and blocks no writer), checked where it landed;
//! and a rehearsal of its restore into a scratch directory, proving the
//! backup gives back the log, its head and the views.
//!
//! A backup `FILE` is the log (`events.sqlite`); `FILE.api` the API's file
//! (`api.sqlite`: token digests), which cannot be
//! derived from the log; `FILE.head` the verified head and counts. The
//! views (`views.sqlite`) are derived from the log and are not backed up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;
use projections::{Opened, Projector};
use rusqlite::{Connection, OpenFlags};
use store::hash::GENESIS;
use store::{EventStore, Head, Position, VerifyOutcome};
use store_sqlite::SqliteStore;

use crate::audit::{verdict, verify_store};
use crate::output;

/// How often a wait for the views re-checks the projector's status.
const VIEWS_POLL_MS: u64 = 100;

/// Flags of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data directory (the server may be running on it).
    #[arg(long, env = "GRANTLOG_DATA_DIR", default_value = "./grantlog-data")]
    pub data_dir: PathBuf,
    /// The backup file to write (refused if it exists); FILE.api and
    /// FILE.head are written beside it.
    #[arg(long, env = "GRANTLOG_BACKUP_TO")]
    pub to: PathBuf,
}

/// Flags of `restore-drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The backup file (as written by `grantlog backup`).
    pub file: PathBuf,
    /// Keep the scratch data directory and print where it is.
    #[arg(long, env = "GRANTLOG_RESTORE_DRILL_KEEP")]
    pub keep: bool,
}

/// `path` with `suffix` appended to its name.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{}: {e}", path.display())
}

/// `VACUUM INTO` from `from` (opened without creating it) into `to`, which
/// is created first, empty and private (0600).
fn vacuum_into(from: &Path, to: &Path) -> anyhow::Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(from, flags).map_err(sqlite_error(from))?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(sqlite_error(from))?;
    api::files::create_private_file(to).with_context(|| format!("creating {}", to.display()))?;
    let target = to.to_str().with_context(|| format!("{} is not a UTF-8 path", to.display()))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(sqlite_error(from))?;
    Ok(())
}

/// `PRAGMA integrity_check` on `path`, opened read-only.
fn integrity_check(path: &Path) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite_error(path))?;
    let found: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(sqlite_error(path))?;
    anyhow::ensure!(found == ["ok"], "{} fails SQLite's integrity check: {}", path.display(), found.join("; "));
    Ok(())
}

/// `SELECT count(*) FROM table` on `path`, read-only.
fn count(path: &Path, table: &str) -> anyhow::Result<u64> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite_error(path))?;
    let n: i64 =
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).map_err(sqlite_error(path))?;
    Ok(n as u64)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await.context("a blocking task failed")?
}

/// Opens a log file and verifies its chain.
async fn open_and_verify(path: &Path, message: &'static str) -> anyhow::Result<(Arc<dyn EventStore>, VerifyOutcome)> {
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(path).await.with_context(|| format!("opening {}", path.display()))?);
    let outcome = verify_store(store.as_ref(), message).await?;
    Ok((store, outcome))
}

/// The head of an intact outcome; position 0 with the genesis hash for an
/// empty log.
fn head_of(outcome: &VerifyOutcome) -> Option<(u64, Head)> {
    match outcome {
        VerifyOutcome::Intact { events, head } => {
            Some((*events, head.unwrap_or(Head { position: Position::START, hash: GENESIS })))
        }
        VerifyOutcome::Broken { .. } => None,
    }
}

/// Runs `backup`; `Ok(false)` when the copy's chain does not verify (its
/// files are removed then).
pub async fn backup(args: BackupArgs) -> anyhow::Result<bool> {
    let log = args.data_dir.join("events.sqlite");
    let api_file = args.data_dir.join("api.sqlite");
    anyhow::ensure!(log.is_file(), "no event log at {}", log.display());
    let (to, to_api, to_head) = (args.to.clone(), beside(&args.to, ".api"), beside(&args.to, ".head"));
    for file in [&to, &to_api, &to_head] {
        anyhow::ensure!(
            std::fs::symlink_metadata(file).is_err(),
            "{} exists: a backup never overwrites a file",
            file.display()
        );
    }
    let with_api = api_file.is_file();
    let written = {
        let (log, to, api_file, to_api) = (log.clone(), to.clone(), api_file.clone(), to_api.clone());
        blocking(move || {
            vacuum_into(&log, &to)?;
            integrity_check(&to)?;
            if with_api {
                vacuum_into(&api_file, &to_api)?;
                integrity_check(&to_api)?;
                return Ok(Some(count(&to_api, "tokens")?));
            }
            Ok(None)
        })
        .await
    };
    let remove = || {
        for file in [&to, &to_api] {
            let _ = std::fs::remove_file(file);
        }
    };
    let tokens = match written {
        Ok(tokens) => tokens,
        Err(e) => {
            remove();
            return Err(e);
        }
    };
    let (store, outcome) = match open_and_verify(&to, "verifying the backup").await {
        Ok(opened) => opened,
        Err(e) => {
            remove();
            return Err(e);
        }
    };
    store.close().await;
    let Some((events, head)) = head_of(&outcome) else {
        output::line(&verdict(&outcome).1);
        remove();
        output::line(&format!("the backup's chain is broken: removed {}; check {}", to.display(), log.display()));
        return Ok(false);
    };
    let commands = count(&to, "commands")?;
    let mut sidecar = format!("{head}\nevents {events}\ncommands {commands}\n");
    if let Some(tokens) = tokens {
        sidecar.push_str(&format!("tokens {tokens}\n"));
    }
    std::fs::write(&to_head, sidecar).with_context(|| format!("writing {}", to_head.display()))?;
    output::line(&format!(
        "ok backup: {events} events, head {head}, in {} (head in {})",
        to.display(),
        to_head.display()
    ));
    match tokens {
        Some(tokens) => output::line(&format!("api.sqlite ({tokens} tokens) backed up to {}", to_api.display())),
        None => {
            output::line(&format!("no api.sqlite in {}: nothing to back up beside the log", args.data_dir.display()))
        }
    }
    output::line("views.sqlite is rebuilt from the log on restore: not backed up");
    Ok(true)
}

/// The head recorded in a backup's sidecar (its first line), if the
/// sidecar exists.
fn sidecar_head(file: &Path) -> anyhow::Result<Option<Head>> {
    let path = beside(file, ".head");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    };
    let first = text.lines().next().unwrap_or_default();
    Ok(Some(first.parse().with_context(|| format!("{}: the first line is not a head", path.display()))?))
}

/// Runs `restore-drill`; `Ok(false)` on any mismatch.
pub async fn restore_drill(args: DrillArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.file.is_file(), "no backup at {}", args.file.display());
    let recorded = sidecar_head(&args.file)?;
    let scratch = tempfile::Builder::new().prefix("grantlog-restore-drill-").tempdir()?;
    let data = scratch.path().join("data");
    let ok = drill(&args.file, &data, recorded).await;
    if args.keep {
        let kept = scratch.keep();
        output::line(&format!("kept the restored data directory at {}", kept.join("data").display()));
    }
    ok
}

async fn drill(file: &Path, data: &Path, recorded: Option<Head>) -> anyhow::Result<bool> {
    api::files::prepare_data_dir(data).with_context(|| format!("preparing {}", data.display()))?;
    let log = data.join("events.sqlite");
    std::fs::copy(file, &log).with_context(|| format!("restoring {} to {}", file.display(), log.display()))?;
    let api_backup = beside(file, ".api");
    if api_backup.is_file() {
        let api_file = data.join("api.sqlite");
        std::fs::copy(&api_backup, &api_file).with_context(|| format!("restoring {}", api_backup.display()))?;
        blocking(move || integrity_check(&api_file)).await?;
    }
    let at = log.clone();
    blocking(move || integrity_check(&at)).await?;
    let (store, outcome) = open_and_verify(&log, "verifying the restored log").await?;
    let Some((events, head)) = head_of(&outcome) else {
        output::line(&verdict(&outcome).1);
        store.close().await;
        return Ok(false);
    };
    if let Some(recorded) = recorded
        && recorded != head
    {
        output::line(&format!("bad: the restored log's head {head} is not the head {recorded} its sidecar records"));
        store.close().await;
        return Ok(false);
    }
    let views = views_twice(&store, data, head.position.0).await;
    store.close().await;
    let (equal, live, rebuilt) = views?;
    if !equal {
        output::line(&format!(
            "bad: the views the projector wrote (digest {live}) differ from the views folded in memory (digest {rebuilt})"
        ));
        return Ok(false);
    }
    output::line(&format!("ok restore drill: {events} events, head {head}, views digest {rebuilt}"));
    Ok(true)
}

/// Builds the views twice from the restored log: the projector writes its
/// file from scratch; a second projector loads that file, and a rebuild
/// folds the log again and compares the two by digest (as
/// `rebuild-views` does). Returns (equal, file's digest, fold's digest).
async fn views_twice(store: &Arc<dyn EventStore>, data: &Path, head: u64) -> anyhow::Result<(bool, String, String)> {
    let path = projections::views_path(data);
    let first =
        Projector::start(Arc::clone(store), &path).await.with_context(|| format!("opening {}", path.display()))?;
    while first.wait_committed(head, Duration::from_millis(VIEWS_POLL_MS)).await.is_err() {
        if let projections::Status::Failed { position, error } = first.status() {
            anyhow::bail!("the views stopped at position {position}: {error}");
        }
    }
    drop(first);
    let second =
        Projector::start(Arc::clone(store), &path).await.with_context(|| format!("opening {}", path.display()))?;
    match second.opened() {
        Opened::Loaded { position } if *position == head => {}
        other => anyhow::bail!("the views file the projector wrote was not loaded at the head {head}: {other:?}"),
    }
    let report = second.rebuild(Utc::now().date_naive(), |_, _| {}).await?;
    anyhow::ensure!(
        report.position == head,
        "the views were rebuilt to position {}, not the head {head}",
        report.position
    );
    Ok((report.equal(), report.live_digest, report.rebuilt_digest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;
    use store::{EventMetadata, ExpectedVersion, NewEvent, StreamId};

    use super::*;

    #[test]
    fn a_sidecar_head_is_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.sqlite");
        assert_eq!(sidecar_head(&file).unwrap(), None);
        let head = Head { position: Position(7), hash: [0xab; 32] };
        std::fs::write(beside(&file, ".head"), format!("{head}\nevents 7\n")).unwrap();
        assert_eq!(sidecar_head(&file).unwrap(), Some(head));
        std::fs::write(beside(&file, ".head"), "nonsense\n").unwrap();
        assert!(sidecar_head(&file).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_is_a_verified_snapshot_and_its_drill_passes() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let store = SqliteStore::open(data.join("events.sqlite")).await.unwrap();
        for i in 0..5 {
            let e = NewEvent::new("NotAGrantEvent", 1, json!({ "n": i }), EventMetadata::default());
            store.append(&StreamId::parse("other-1").unwrap(), ExpectedVersion::Any, vec![e]).await.unwrap();
        }
        let head = store.head().await.unwrap().unwrap();
        let to = root.path().join("backup.sqlite");
        // The log stays open (as under a running server).
        assert!(backup(BackupArgs { data_dir: data.clone(), to: to.clone() }).await.unwrap());
        let sidecar = std::fs::read_to_string(beside(&to, ".head")).unwrap();
        assert_eq!(sidecar, format!("{head}\nevents 5\ncommands 0\n"));
        assert!(!beside(&to, ".api").exists(), "no api.sqlite to back up");
        let again = backup(BackupArgs { data_dir: data.clone(), to: to.clone() }).await.unwrap_err();
        assert!(again.to_string().contains("exists"), "{again}");
        store.close().await;

        let scratch = root.path().join("drill");
        assert!(drill(&to, &scratch, Some(head)).await.unwrap());
        let other = Head { position: head.position, hash: [1; 32] };
        assert!(!drill(&to, &root.path().join("drill-2"), Some(other)).await.unwrap(), "a sidecar mismatch fails");
    }
}
