//! The projector: follows the log and keeps the read models current, in
//! memory for reads and in their SQLite file for restarts.
//!
//! It follows the log through a store subscription from its checkpoint,
//! in batches, applies each batch to
//! copies of the ledgers it touches, writes those rows and the new
//! checkpoint in one transaction, and only then shows them to readers. An
//! event it cannot apply stops it at that position: it reports the position
//! and the error and never skips the event.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::NaiveDate;
use events::{GrantId, ProgrammeId};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use store::{EventStore, Position, StoreError, Subscription};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{self, DbError, Models};
use crate::fold::ApplyError;
use crate::ledger::{FactKind, GrantLedger};

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
}

/// Whether the projector is following the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Following.
    Running,
    /// Stopped at an event it could not apply (or a failing store or file).
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

struct Shared {
    store: Arc<dyn EventStore>,
    db: Mutex<Connection>,
    ledgers: RwLock<BTreeMap<GrantId, Arc<GrantLedger>>>,
    programmes: RwLock<BTreeMap<ProgrammeId, String>>,
    /// The position whose rows and checkpoint are committed.
    applied: watch::Sender<u64>,
    /// The position the in-memory ledgers reflect (ahead of `applied`
    /// while their rows are being written).
    in_memory: AtomicU64,
    status: Mutex<Status>,
    /// Held while a page is applied; a rebuild takes it to pause the loop.
    turn: tokio::sync::Mutex<()>,
}

/// The running projector. Dropping it stops the loop.
pub struct Projector {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector").field("applied", &*self.shared.applied.borrow()).finish_non_exhaustive()
    }
}

impl Drop for Projector {
    fn drop(&mut self) {
        self.task.abort();
        self.writer.abort();
    }
}

/// Rows of one or more applied pages, waiting to be written.
struct Pending {
    position: u64,
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

impl Projector {
    /// Opens the read-model file at `path`, loads what it holds, and starts
    /// following the log from its checkpoint.
    pub async fn start(store: Arc<dyn EventStore>, path: impl Into<PathBuf>) -> Result<Self, ProjectionError> {
        let path = path.into();
        let (conn, models) = blocking(move || {
            let conn = db::open(&path)?;
            let models = db::load(&conn)?;
            Ok((conn, models))
        })
        .await?;
        let (applied, _) = watch::channel(models.position);
        let shared = Arc::new(Shared {
            store,
            db: Mutex::new(conn),
            ledgers: RwLock::new(models.ledgers.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()),
            programmes: RwLock::new(models.programmes),
            applied,
            in_memory: AtomicU64::new(models.position),
            status: Mutex::new(Status::Running),
            turn: tokio::sync::Mutex::new(()),
        });
        // The follower decodes and applies pages while the writer commits
        // earlier ones: on two cores the two overlap.
        let (pending, queue) = tokio::sync::mpsc::channel(PENDING_PAGES_MAX);
        let task = tokio::spawn(follow(Arc::clone(&shared), pending));
        let writer = tokio::spawn(write(Arc::clone(&shared), queue));
        Ok(Self { shared, task, writer })
    }

    /// The last log position applied to the views.
    pub fn position(&self) -> u64 {
        *self.shared.applied.borrow()
    }

    /// How many committed events the views have not applied yet.
    pub fn lag(&self) -> u64 {
        self.shared.store.watch_position().borrow().0.saturating_sub(self.position())
    }

    /// Running, or where and why it stopped.
    pub fn status(&self) -> Status {
        self.shared.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

    /// Waits, at most `timeout`, until the views have applied `position`
    /// (read-your-writes).
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), ProjectionError> {
        let mut applied = self.shared.applied.subscribe();
        let reached = tokio::time::timeout(timeout, applied.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ProjectionError::NotYet { applied: self.position(), wanted: position }),
        }
    }

    /// A snapshot of every model, for digests and tests.
    pub fn models(&self) -> Models {
        let ledgers = self.shared.ledgers.read().unwrap_or_else(|e| e.into_inner());
        Models {
            position: self.shared.in_memory.load(Ordering::SeqCst),
            ledgers: ledgers.iter().map(|(k, v)| (k.clone(), (**v).clone())).collect(),
            programmes: self.shared.programmes.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
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
        let _paused = self.shared.turn.lock().await;
        // Let the writer finish what the follower applied, so the swap
        // cannot be overtaken by older rows.
        let in_memory = self.shared.in_memory.load(Ordering::SeqCst);
        let mut applied = self.shared.applied.subscribe();
        applied.wait_for(|p| *p >= in_memory).await.map_err(|e| ProjectionError::Task(e.to_string()))?;
        let live = self.models();
        let target = live.position;
        let mut rebuilt = Models::default();
        let mut events = 0u64;
        while rebuilt.position < target {
            let want = (target - rebuilt.position).min(store::READ_EVENTS_MAX as u64) as usize;
            let page = self.shared.store.read_all(Position(rebuilt.position), want).await?;
            if page.is_empty() {
                break;
            }
            for e in &page {
                rebuilt.apply(e)?;
            }
            events += page.len() as u64;
            progress(events, rebuilt.position);
        }
        rebuilt.position = target;
        let report = RebuildReport {
            events,
            position: target,
            live_digest: views_digest(&live, today),
            rebuilt_digest: views_digest(&rebuilt, today),
        };
        let shared = Arc::clone(&self.shared);
        let to_write = rebuilt.clone();
        blocking(move || {
            let mut conn = shared.db.lock().unwrap_or_else(|e| e.into_inner());
            Ok(db::replace_all(&mut conn, &to_write)?)
        })
        .await?;
        *self.shared.ledgers.write().unwrap_or_else(|e| e.into_inner()) =
            rebuilt.ledgers.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        *self.shared.programmes.write().unwrap_or_else(|e| e.into_inner()) = rebuilt.programmes;
        Ok(report)
    }
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

fn fail(shared: &Shared, position: u64, error: String) {
    tracing::error!(position, %error, "projection stopped");
    *shared.status.lock().unwrap_or_else(|e| e.into_inner()) = Status::Failed { position, error };
}

async fn follow(shared: Arc<Shared>, pending: tokio::sync::mpsc::Sender<Pending>) {
    let start = Position(shared.in_memory.load(Ordering::SeqCst));
    let mut subscription = Subscription::new(Arc::clone(&shared.store), start);
    loop {
        let page = match subscription.next_batch(PROJECTION_BATCH_EVENTS).await {
            Ok(page) => page,
            Err(StoreError::Closed) => return,
            Err(e) => return fail(&shared, subscription.position().0 + 1, e.to_string()),
        };
        // A rebuild pauses the loop here; it rebuilds exactly up to what
        // this loop has applied, so the page still follows on.
        let turn = shared.turn.lock().await;
        let (applied, failure) = apply_page(&shared, &page);
        drop(turn);
        if pending.send(applied).await.is_err() {
            return; // the writer stopped and said why
        }
        if let Some((position, error)) = failure {
            return fail(&shared, position, error);
        }
    }
}

/// Applies a page in memory (copy-on-write: a ledger a reader is holding is
/// copied, otherwise changed in place) and returns the rows it changed, and
/// the first unreadable event if there was one.
fn apply_page(shared: &Shared, page: &[store::RecordedEvent]) -> (Pending, Option<(u64, String)>) {
    let mut failure = None;
    let mut rows: Vec<db::FactRow> = Vec::new();
    let mut programmes = BTreeMap::new();
    let mut position = shared.in_memory.load(Ordering::SeqCst);
    {
        let mut ledgers = shared.ledgers.write().unwrap_or_else(|e| e.into_inner());
        let mut dirty = db::Dirty::new();
        for e in page {
            let outcome = if let Some(grant) = crate::fold::grant_of(e.stream_id.as_str()) {
                crate::fold::projected(e).map(|p| {
                    let ledger = Arc::make_mut(ledgers.entry(grant.clone()).or_default());
                    let (kind, key) = ledger.apply(&p);
                    dirty.insert((grant.clone(), FactKind::Header, String::new()));
                    dirty.insert((grant, kind, key));
                })
            } else {
                let mut one = Models::default();
                one.apply(e).map(|_| programmes.append(&mut one.programmes))
            };
            match outcome {
                Ok(()) => position = e.position.0,
                Err(err) => {
                    failure = Some((err.position, err.detail));
                    break;
                }
            }
        }
        for (grant, kind, key) in dirty {
            match ledgers.get(&grant).map(|l| l.fact_json(kind, &key)) {
                Some(Ok(Some(json))) => rows.push((grant, kind, key, json)),
                Some(Err(e)) => {
                    failure = failure.or(Some((position, e.to_string())));
                }
                _ => {}
            }
        }
    }
    shared.programmes.write().unwrap_or_else(|e| e.into_inner()).extend(programmes.clone());
    shared.in_memory.store(position, Ordering::SeqCst);
    (Pending { position, rows, programmes }, failure)
}

/// Commits queued pages in order, several at once when they queue up (a
/// fact changed by several of them is written once), each commit with its
/// checkpoint; `applied` moves only after the commit.
async fn write(shared: Arc<Shared>, mut queue: tokio::sync::mpsc::Receiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut position = first.position;
        let mut rows: BTreeMap<(GrantId, FactKind, String), String> = BTreeMap::new();
        let mut programmes = BTreeMap::new();
        let mut take = |p: Pending, rows: &mut BTreeMap<_, _>, programmes: &mut BTreeMap<_, _>| {
            position = position.max(p.position);
            for (g, k, key, json) in p.rows {
                rows.insert((g, k, key), json);
            }
            programmes.extend(p.programmes);
        };
        take(first, &mut rows, &mut programmes);
        while let Ok(more) = queue.try_recv() {
            take(more, &mut rows, &mut programmes);
        }
        let rows: Vec<db::FactRow> = rows.into_iter().map(|((g, k, key), json)| (g, k, key, json)).collect();
        let db_shared = Arc::clone(&shared);
        let saved = blocking(move || {
            let mut conn = db_shared.db.lock().unwrap_or_else(|e| e.into_inner());
            Ok(db::save(&mut conn, position, &rows, &programmes)?)
        })
        .await;
        if let Err(e) = saved {
            let next = *shared.applied.borrow() + 1;
            return fail(&shared, next, e.to_string());
        }
        shared.applied.send_replace(position);
    }
}
