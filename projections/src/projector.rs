//! The projector: follows the log and keeps the read models current, in
//! memory for reads and in their SQLite file for restarts.
//!
//! It follows the log through a store subscription from its checkpoint,
//! in batches, applies each batch to copies of the ledgers it touches and
//! shows them to readers; a writer task then commits those rows and the new
//! checkpoint in one transaction. An event it cannot apply stops it at that
//! position: it reports the position and the error and never skips the
//! event.
//!
//! The file is a cache of the log ([`startup`]): on start, a file that is
//! damaged, or whose checkpoint is not a position of this log, is moved
//! aside and rebuilt. A write to it that fails (a full disk, an I/O error)
//! is retried with backoff ([`writer`]) while reads go on from memory.

mod follow;
mod rebuild;
mod startup;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::NaiveDate;
use events::{GrantId, ProgrammeId};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use store::{EventStore, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{self, DbError, Models};
use crate::fold::ApplyError;
use crate::ledger::GrantLedger;

pub use self::rebuild::{REBUILD_DRAIN_WAIT_MS, RebuildState};
pub use self::startup::Opened;
pub use self::writer::{VIEWS_WRITE_RETRY_MS_MAX, VIEWS_WRITE_RETRY_MS_MIN};

/// Events applied per transaction.
pub const PROJECTION_BATCH_EVENTS: usize = 1_000;

/// Why a projection call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProjectionError {
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The read-model file failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The read-model file cannot be opened (nor moved aside and rebuilt).
    #[error("{}: {detail}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// An event could not be applied.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A blocking task failed.
    #[error("projection task failed: {0}")]
    Task(String),
    /// The view has not reached the asked position in time.
    #[error("the views have applied position {applied}; {wanted} was asked for")]
    NotYet {
        /// Applied so far.
        applied: u64,
        /// Asked for.
        wanted: u64,
    },
    /// A rebuild needs the file to have caught up with memory first, and it
    /// has not (its writes are failing and being retried).
    #[error("the read model file is at position {committed}, the views at {visible}: its writes are being retried")]
    FileBehind {
        /// The file's checkpoint.
        committed: u64,
        /// What the views show.
        visible: u64,
    },
}

/// Whether the projector is following the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Following, and the file keeps up.
    Running,
    /// Following (the views in memory are current) but writing the file
    /// fails, and is being retried with backoff.
    Degraded {
        /// The position the file holds.
        committed: u64,
        /// The last write's error.
        error: String,
        /// Failed attempts so far.
        attempts: u32,
    },
    /// Stopped at an event it could not apply (or a failing store).
    Failed {
        /// The first position not applied.
        position: u64,
        /// Why.
        error: String,
    },
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events folded.
    pub events: u64,
    /// The position the rebuilt models reflect.
    pub position: u64,
    /// Digest of the live views before the swap.
    pub live_digest: String,
    /// Digest of the rebuilt views.
    pub rebuilt_digest: String,
}

impl RebuildReport {
    /// Whether the live views were what the log says.
    pub fn equal(&self) -> bool {
        self.live_digest == self.rebuilt_digest
    }
}

/// The writer's trouble with the file, while it retries.
#[derive(Debug, Clone)]
struct Trouble {
    error: String,
    attempts: u32,
}

struct Shared {
    store: Arc<dyn EventStore>,
    db: Mutex<Connection>,
    ledgers: RwLock<BTreeMap<GrantId, Arc<GrantLedger>>>,
    programmes: RwLock<BTreeMap<ProgrammeId, String>>,
    /// The position whose rows and checkpoint are committed to the file.
    committed: watch::Sender<u64>,
    /// The position the in-memory ledgers reflect (what readers see; ahead
    /// of `committed` while their rows are being written), with the log's
    /// hash there.
    visible: watch::Sender<u64>,
    visible_hash: Mutex<[u8; 32]>,
    status: Mutex<Status>,
    trouble: Mutex<Option<Trouble>>,
    /// A new `max_page_count` for the file, applied before the next write.
    pages_max: Mutex<Option<Option<u64>>>,
    /// Wakes the writer from a backoff wait.
    wake: tokio::sync::Notify,
    /// Held while a page is applied; a rebuild takes it to pause the loop.
    turn: tokio::sync::Mutex<()>,
    rebuild: Mutex<RebuildState>,
}

/// The running projector. Dropping it stops the loop.
pub struct Projector {
    shared: Arc<Shared>,
    opened: Opened,
    task: JoinHandle<()>,
    writer: JoinHandle<()>,
    rebuild_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector").field("visible", &*self.shared.visible.borrow()).finish_non_exhaustive()
    }
}

impl Drop for Projector {
    fn drop(&mut self) {
        self.task.abort();
        self.writer.abort();
        if let Some(t) = self.rebuild_task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

/// Rows of one or more applied pages, waiting to be written.
struct Pending {
    checkpoint: db::Checkpoint,
    rows: Vec<db::FactRow>,
    programmes: BTreeMap<ProgrammeId, String>,
}

/// Pages queued for the writer before the follower waits for it.
const PENDING_PAGES_MAX: usize = 8;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProjectionError> + Send + 'static,
) -> Result<T, ProjectionError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ProjectionError::Task(e.to_string()))?
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Projector {
    /// Opens the read-model file at `path` and checks it against itself
    /// and the log (moving it aside and starting afresh when it fails:
    /// see [`Opened`]), loads what it holds, and starts following the log
    /// from its checkpoint.
    pub async fn start(store: Arc<dyn EventStore>, path: impl Into<PathBuf>) -> Result<Self, ProjectionError> {
        let path = path.into();
        let (conn, models, checkpoint, opened) = startup::open_checked(&store, &path).await?;
        let shared = Arc::new(Shared {
            store,
            db: Mutex::new(conn),
            ledgers: RwLock::new(models.ledgers.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()),
            programmes: RwLock::new(models.programmes),
            committed: watch::channel(checkpoint.position).0,
            visible: watch::channel(checkpoint.position).0,
            visible_hash: Mutex::new(checkpoint.log_hash),
            status: Mutex::new(Status::Running),
            trouble: Mutex::new(None),
            pages_max: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            turn: tokio::sync::Mutex::new(()),
            rebuild: Mutex::new(RebuildState::Idle),
        });
        // The follower decodes and applies pages while the writer commits
        // earlier ones: on two cores the two overlap.
        let (pending, queue) = tokio::sync::mpsc::channel(PENDING_PAGES_MAX);
        let task = tokio::spawn(follow::follow(Arc::clone(&shared), pending));
        let writer = tokio::spawn(writer::write(Arc::clone(&shared), queue));
        Ok(Self { shared, opened, task, writer, rebuild_task: Mutex::new(None) })
    }

    /// What opening the file found.
    pub fn opened(&self) -> &Opened {
        &self.opened
    }

    /// The last log position the views show (reads answer from memory, so
    /// this is what `min_position` waits for).
    pub fn position(&self) -> u64 {
        *self.shared.visible.borrow()
    }

    /// The last log position whose rows and checkpoint are in the file.
    pub fn committed(&self) -> u64 {
        *self.shared.committed.borrow()
    }

    /// How many committed events the views have not applied yet.
    pub fn lag(&self) -> u64 {
        self.shared.store.watch_position().borrow().0.saturating_sub(self.position())
    }

    /// Running, degraded (the file's writes are being retried), or where
    /// and why it stopped.
    pub fn status(&self) -> Status {
        let status = lock(&self.shared.status).clone();
        match (status, lock(&self.shared.trouble).clone()) {
            (Status::Running, Some(t)) => {
                Status::Degraded { committed: self.committed(), error: t.error, attempts: t.attempts }
            }
            (status, _) => status,
        }
    }

    /// Caps the read-model file's size in pages (`PRAGMA max_page_count`;
    /// `None` lifts the cap) from the next write on, and retries a write
    /// waiting for space at once. For tests of a full disk.
    pub fn set_pages_max(&self, pages: Option<u64>) {
        *lock(&self.shared.pages_max) = Some(pages);
        self.shared.wake.notify_one();
    }

    /// A grant's ledger as the views see it now.
    pub fn ledger(&self, grant: &GrantId) -> Option<Arc<GrantLedger>> {
        self.shared.ledgers.read().unwrap_or_else(|e| e.into_inner()).get(grant).cloned()
    }

    /// Every ledger of a programme's grants.
    pub fn programme_ledgers(&self, programme: &ProgrammeId) -> Vec<Arc<GrantLedger>> {
        let ledgers = self.shared.ledgers.read().unwrap_or_else(|e| e.into_inner());
        ledgers.values().filter(|l| l.grant.as_ref().is_some_and(|g| &g.programme == programme)).cloned().collect()
    }

    /// A programme's name, if it exists.
    pub fn programme(&self, programme: &ProgrammeId) -> Option<String> {
        self.shared.programmes.read().unwrap_or_else(|e| e.into_inner()).get(programme).cloned()
    }

    /// Every programme's id and name, by id.
    pub fn programmes(&self) -> Vec<(ProgrammeId, String)> {
        let programmes = self.shared.programmes.read().unwrap_or_else(|e| e.into_inner());
        programmes.iter().map(|(id, name)| (id.clone(), name.clone())).collect()
    }

    /// Waits, at most `timeout`, until the views show `position`
    /// (read-your-writes). The views in memory are folded from the log, so
    /// this does not wait for the file.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), ProjectionError> {
        let mut visible = self.shared.visible.subscribe();
        let reached = tokio::time::timeout(timeout, visible.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ProjectionError::NotYet { applied: self.position(), wanted: position }),
        }
    }

    /// Waits, at most `timeout`, until the file holds `position`.
    pub async fn wait_committed(&self, position: u64, timeout: Duration) -> Result<(), ProjectionError> {
        let mut committed = self.shared.committed.subscribe();
        let reached = tokio::time::timeout(timeout, committed.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ProjectionError::NotYet { applied: self.committed(), wanted: position }),
        }
    }

    /// A snapshot of every model, for digests and tests.
    pub fn models(&self) -> Models {
        models_of(&self.shared)
    }

    /// Rebuilds every view from the log into fresh tables, up to the
    /// position the live views have reached, compares the two by digest,
    /// then swaps the rebuilt ones in atomically. `progress` hears
    /// (events folded, position reached) after each page.
    pub async fn rebuild(
        &self,
        today: NaiveDate,
        progress: impl Fn(u64, u64) + Send,
    ) -> Result<RebuildReport, ProjectionError> {
        rebuild::rebuild(&self.shared, today, progress).await
    }

    /// Starts [`Projector::rebuild`] in the background unless one is
    /// running; either way returns its state (see [`Projector::rebuild_state`]).
    pub fn start_rebuild(&self, today: NaiveDate) -> RebuildState {
        let mut task = lock(&self.rebuild_task);
        if let Some(running) = rebuild::begin(&self.shared, today) {
            *task = Some(running);
        }
        self.rebuild_state()
    }

    /// The last background rebuild: running (with progress), done (with
    /// its report) or failed.
    pub fn rebuild_state(&self) -> RebuildState {
        lock(&self.shared.rebuild).clone()
    }
}

fn models_of(shared: &Shared) -> Models {
    let ledgers = shared.ledgers.read().unwrap_or_else(|e| e.into_inner());
    Models {
        position: *shared.visible.borrow(),
        ledgers: ledgers.iter().map(|(k, v)| (k.clone(), (**v).clone())).collect(),
        programmes: shared.programmes.read().unwrap_or_else(|e| e.into_inner()).clone(),
    }
}

/// The read-model file's name beside a data directory's log, as the server
/// lays it out.
pub fn views_path(data_dir: &Path) -> PathBuf {
    data_dir.join("views.sqlite")
}

/// SHA-256 over the canonical JSON of every view the models serve (budget,
/// timeline and funder statement of each grant as of everything, statuses
/// relative to `today`; programme names), in id order.
pub fn views_digest(models: &Models, today: NaiveDate) -> String {
    let mut h = Sha256::new();
    for (id, ledger) in &models.ledgers {
        h.update(id.as_str());
        let views = serde_json::json!({
            "budget": crate::budget(ledger, None, today).ok(),
            "timeline": crate::timeline(ledger, None, today).ok(),
            "statement": crate::statement(ledger, None).ok(),
        });
        h.update(views.to_string());
    }
    for (id, name) in &models.programmes {
        h.update(format!("{id}={name};"));
    }
    hex::encode(h.finalize())
}
