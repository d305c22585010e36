//! Opening the read-model file as a cache of the log: a file that is
//! unreadable, fails SQLite's integrity check or its own row digests, or
//! whose checkpoint is not a position of this log (past the head, or with a
//! different chain hash there) is moved aside, named in a warning, and the
//! views are rebuilt from the log. Only a file that cannot be opened for
//! another reason (the disk, permissions, a newer build's layout) stops the
//! start, with the file named.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use store::{EventStore, Position};

use super::{ProjectionError, blocking};
use std::collections::BTreeMap;

use events::ProgrammeId;

use crate::db::{self, Checkpoint, DbError};

/// What opening the read-model file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The file was sound and matches the log: the views continue from its
    /// checkpoint.
    Loaded {
        /// The checkpoint.
        position: u64,
    },
    /// The file could not be trusted: it was moved aside and the views are
    /// rebuilt from the log.
    MovedAside {
        /// Where the file (and its `-wal` and `-shm`) went.
        moved_to: PathBuf,
        /// Why.
        reason: String,
    },
}

type Programmes = BTreeMap<ProgrammeId, String>;
type Loaded = (Connection, Programmes, db::Index, Checkpoint);

fn open_and_load(path: &Path) -> Result<Loaded, DbError> {
    let marker = super::damage_marker(path);
    if marker.exists() {
        let why = std::fs::read_to_string(&marker).unwrap_or_default();
        return Err(DbError::Damaged(format!("damage was found in it while serving: {why}")));
    }
    let conn = db::open(path)?;
    let (checkpoint, programmes, index) = db::load_index(&conn)?;
    Ok((conn, programmes, index, checkpoint))
}

/// Opens, checks and loads the file at `path`, moving it aside and starting
/// afresh when it cannot be trusted.
pub(super) async fn open_checked(
    store: &Arc<dyn EventStore>,
    path: &Path,
) -> Result<(Connection, Programmes, db::Index, Checkpoint, Opened), ProjectionError> {
    let file_error = |e: DbError| ProjectionError::File { path: path.to_owned(), detail: e.to_string() };
    let at = path.to_owned();
    let reason = match blocking(move || Ok(open_and_load(&at))).await? {
        Ok((conn, models, index, checkpoint)) => match not_of_this_log(store.as_ref(), checkpoint).await? {
            None => return Ok((conn, models, index, checkpoint, Opened::Loaded { position: checkpoint.position })),
            Some(reason) => {
                drop(conn);
                reason
            }
        },
        Err(e) if e.is_damage() => e.to_string(),
        Err(e) => return Err(file_error(e)),
    };
    let at = path.to_owned();
    let moved_to = blocking(move || {
        let moved = move_aside(&at)
            .map_err(|e| ProjectionError::File { path: at.clone(), detail: format!("cannot move it aside: {e}") })?;
        // The marker's words are in the warning below (the reason).
        let marker = super::damage_marker(&at);
        if marker.exists() {
            std::fs::remove_file(&marker)
                .map_err(|e| ProjectionError::File { path: marker, detail: format!("cannot remove it: {e}") })?;
        }
        Ok(moved)
    })
    .await?;
    tracing::warn!(
        file = %path.display(),
        moved_to = %moved_to.display(),
        %reason,
        "the read model file cannot be trusted: moved it aside; rebuilding the views from the log"
    );
    let at = path.to_owned();
    let (conn, models, index, checkpoint) = blocking(move || Ok(open_and_load(&at))).await?.map_err(file_error)?;
    Ok((conn, models, index, checkpoint, Opened::MovedAside { moved_to, reason }))
}

/// Why a checkpoint is not a position of this log, if it is not.
async fn not_of_this_log(store: &dyn EventStore, checkpoint: Checkpoint) -> Result<Option<String>, ProjectionError> {
    let head = store.head().await?.map_or(0, |h| h.position.0);
    let position = checkpoint.position;
    if position > head {
        return Ok(Some(format!("its checkpoint (position {position}) is past the log's head ({head})")));
    }
    let hash = if position == 0 {
        Some(store::hash::GENESIS)
    } else {
        store.read_all(Position(position - 1), 1).await?.first().filter(|e| e.position.0 == position).map(|e| e.hash)
    };
    Ok(match hash {
        Some(h) if h == checkpoint.log_hash => None,
        Some(h) => Some(format!(
            "its checkpoint records hash {} at position {position}, the log has {}",
            hex::encode(checkpoint.log_hash),
            hex::encode(h)
        )),
        None => Some(format!("the log has no event at its checkpoint (position {position})")),
    })
}

/// Renames `path` and its `-wal` and `-shm` to `<name>.bad-<UTC time>`
/// (`-wal`, `-shm`), the journal files first: a new file must never find
/// the old one's WAL beside it.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut target = path.with_file_name(format!("{name}.bad-{stamp}"));
    let mut n = 1;
    while target.exists() {
        target = path.with_file_name(format!("{name}.bad-{stamp}-{n}"));
        n += 1;
    }
    let with = |p: &Path, suffix: &str| {
        let mut s = p.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    for suffix in ["-wal", "-shm"] {
        let journal = with(path, suffix);
        if journal.exists() {
            std::fs::rename(&journal, with(&target, suffix))?;
        }
    }
    if path.exists() {
        std::fs::rename(path, &target)?;
    }
    Ok(target)
}
