//! The data directory's permissions: the directory is its owner's only
//! (0700) and so is every file in it (0600): the log, the views, the API's
//! file with the token digests, their `-wal`/`-shm` companions and the
//! generated admin token.
//!
//! SQLite creates `-wal` and `-shm` with the main file's mode, so creating
//! each main file 0600 before SQLite first opens it is enough (no umask
//! call: the workspace forbids unsafe code). A directory or file found with
//! looser modes (made by an older build, or by hand) is tightened, with a
//! warning in the log.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The data directory's mode.
pub const DATA_DIR_MODE: u32 = 0o700;
/// Every data file's mode.
pub const DATA_FILE_MODE: u32 = 0o600;

/// The files a data directory holds, each main file with its SQLite
/// companions.
pub const DATA_FILES: &[&str] = &["events.sqlite", "views.sqlite", "api.sqlite", "admin-token"];

/// The file a process holds locked (an advisory `flock`, released by the
/// kernel when the process ends, however it ends) while it uses a data
/// directory's views: a server, `demo`, or `rebuild-views`.
pub const LOCK_FILE: &str = "grantlog.lock";

/// How long [`lock_data_dir`] waits for another process to let the
/// directory go (a server stopping, or killed a moment ago) before it
/// refuses.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A data directory held by this process; let go when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// Why a data directory could not be held.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another grantlog process (a server, `demo` or `rebuild-views`) is using this data directory")]
    Held {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be made or locked.
    #[error("cannot lock the data directory: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl LockError {
    /// The lock file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Held { path } | Self::Io { path, .. } => path,
        }
    }
}

/// Holds `dir` (which must exist) for this process, waiting up to
/// [`LOCK_WAIT`] for another process to let it go. Two processes writing
/// one `views.sqlite` would each find the other's tables changed under
/// them (a rebuild's tables swapped away, digests that no longer add up):
/// nothing wrong would be served, but each would move the file aside and
/// rebuild it, again and again.
pub fn lock_data_dir(dir: &Path) -> Result<DirLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io_error = |source| LockError::Io { path: path.clone(), source };
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(DATA_FILE_MODE);
    }
    let file = options.open(&path).map_err(io_error)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(LockError::Held { path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(e)),
        }
    }
}

/// Creates `dir` (0700) and each main data file (0600, empty) before SQLite
/// opens it; tightens what exists with looser modes.
pub fn prepare_data_dir(dir: &Path) -> io::Result<()> {
    prepare(dir, DATA_FILES)
}

/// The data directory of a server whose log and tokens are in PostgreSQL:
/// only `views.sqlite` is made (no empty `events.sqlite` or `api.sqlite`
/// that a command pointed here by mistake would read as an empty log).
pub fn prepare_views_dir(dir: &Path) -> io::Result<()> {
    prepare(dir, &["views.sqlite", "admin-token"])
}

fn prepare(dir: &Path, files: &[&str]) -> io::Result<()> {
    create_private_dir(dir)?;
    for name in DATA_FILES {
        let path = dir.join(name);
        if name.ends_with(".sqlite") && files.contains(name) && !path.exists() {
            create_private_file(&path)?;
        }
        tighten(&path, DATA_FILE_MODE)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            tighten(&dir.join(format!("{name}{suffix}")), DATA_FILE_MODE)?;
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return tighten(dir, DATA_DIR_MODE);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DATA_DIR_MODE);
    }
    builder.create(dir)?;
    // The mode given to mkdir is masked by the umask: make sure.
    tighten(dir, DATA_DIR_MODE)
}

/// Creates `path` empty with mode 0600 unless it exists: call it before
/// SQLite first opens a data file (a rebuilt `views.sqlite` too), so that the
/// file and its `-wal`/`-shm` are the owner's only.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(DATA_FILE_MODE);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets `mode` on `path` if it exists with any bit beyond it.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let found = meta.permissions().mode() & 0o777;
    if found & !mode != 0 {
        tracing::warn!(path = %path.display(), found = format!("{found:o}"), set = format!("{mode:o}"),
            "data file readable by others: tightening its mode");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_fresh_directory_and_its_files_are_the_owners_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        prepare_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DATA_DIR_MODE);
        for name in ["events.sqlite", "views.sqlite", "api.sqlite"] {
            assert_eq!(mode(&dir.join(name)), DATA_FILE_MODE, "{name}");
        }
    }

    #[test]
    fn looser_modes_found_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["api.sqlite", "api.sqlite-wal", "admin-token"] {
            std::fs::write(dir.join(name), b"").unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        prepare_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DATA_DIR_MODE);
        for name in ["api.sqlite", "api.sqlite-wal", "admin-token"] {
            assert_eq!(mode(&dir.join(name)), DATA_FILE_MODE, "{name}");
        }
    }
}
