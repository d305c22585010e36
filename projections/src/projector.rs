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
//!
//! Ledgers are kept in memory in a cache bounded by a number of facts
//! ([`cache`]); one not in memory is read from the file when first needed
//! (by a view or by the follower), its rows checked against its grant's
//! digest. A ledger the file cannot give (damaged rows, a read error) is
//! folded from the log instead, and the damage is reported (status
//! degraded) and remembered (`views.sqlite.damaged`) so that the next start
//! moves the file aside and rebuilds it.
//!
//! Why a load never puts back an older copy: only the follower changes
//! ledgers, and a changed ledger stays in the cache until the writer has
//! committed it, so a ledger not in the cache is the file's latest. The
//! writer commits and marks ledgers clean holding `gate` for writing; a
//! load reads the file and puts what it read in the cache holding it for
//! reading, so no commit falls between the two. A ledger folded from the
//! log is cached only when no commit happened while it was folded.

mod cache;
mod follow;
mod rebuild;
mod startup;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::NaiveDate;
use events::{GrantId, ProgrammeId};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use store::{Direction, EventStore, READ_EVENTS_MAX, StoreError, StreamStart};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{self, DbError, Models};
use crate::fold::ApplyError;
use crate::ledger::GrantLedger;
use crate::portfolio::Standing;

pub use self::cache::{CacheStats, LEDGER_CACHE_FACTS_MAX};
pub use self::rebuild::{BULK_CATCH_UP_EVENTS_MIN, REBUILD_DRAIN_WAIT_MS, REBUILD_ROWS_PER_COMMIT, RebuildState};
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
    /// A grant's figures cannot be computed (an overflow in its facts).
    #[error("grant {grant}'s figures cannot be computed from its facts")]
    Figures {
        /// The grant.
        grant: GrantId,
    },
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
    /// Following (the views are current) but the file could not give a
    /// ledger (damaged rows, a read error): such ledgers are folded from the
    /// log, and the next start moves the file aside and rebuilds it.
    Damaged {
        /// What was found.
        error: String,
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

/// Read connections kept for loading ledgers.
const READERS_KEPT: usize = 4;

struct Shared {
    store: Arc<dyn EventStore>,
    path: PathBuf,
    /// The writer's connection.
    db: Mutex<Connection>,
    /// Connections for loading ledgers, beside the writer.
    readers: Mutex<Vec<Connection>>,
    ledgers: Mutex<cache::Ledgers>,
    /// Read while a ledger is read from the file and cached; written while
    /// the writer commits and marks ledgers clean.
    gate: RwLock<()>,
    /// Commits of the file so far.
    commits: AtomicU64,
    /// Damage found in the file while serving (its ledgers are folded from
    /// the log meanwhile).
    damage: Mutex<Option<String>>,
    programmes: RwLock<BTreeMap<ProgrammeId, String>>,
    /// Every awarded grant's standing, by programme: the portfolio's
    /// aggregate, kept whole in memory (a few hundred bytes per grant).
    standings: RwLock<Standings>,
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
    /// Fact rows a rebuild writes per transaction.
    rebuild_rows: std::sync::atomic::AtomicUsize,
    /// An empty file at least this many events behind is caught up stream
    /// by stream.
    bulk_min: u64,
    /// Points where a test holds the follower or the writer.
    holds: Mutex<Holds>,
}

/// Where a test can hold the projector's tasks ([`Projector::hold`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldPoint {
    /// The follower, after it has taken the ledgers of a page and before
    /// it applies the page.
    BeforeApply,
    /// The writer, before it commits a batch.
    BeforeCommit,
}

#[derive(Default)]
struct Holds {
    before_apply: Option<Arc<HoldState>>,
    before_commit: Option<Arc<HoldState>>,
}

#[derive(Debug)]
struct HoldState {
    /// One per pass let through.
    permits: tokio::sync::Semaphore,
    /// Passes that reached the point.
    arrived: watch::Sender<u64>,
}

/// A hold on one of the projector's tasks: each pass of the task through
/// its point takes one permit, and waits while there is none.
#[derive(Debug, Clone)]
pub struct Hold(Arc<HoldState>);

impl Hold {
    /// Lets `passes` more passes through.
    pub fn release(&self, passes: usize) {
        self.0.permits.add_permits(passes);
    }

    /// Waits until `passes` passes have reached the point (held or let
    /// through).
    pub async fn arrived(&self, passes: u64) {
        let mut arrived = self.0.arrived.subscribe();
        let _ = arrived.wait_for(|n| *n >= passes).await;
    }
}

/// Waits at `point` if a test holds it.
async fn pass(shared: &Shared, point: HoldPoint) {
    let hold = {
        let holds = lock(&shared.holds);
        match point {
            HoldPoint::BeforeApply => holds.before_apply.clone(),
            HoldPoint::BeforeCommit => holds.before_commit.clone(),
        }
    };
    if let Some(hold) = hold {
        hold.arrived.send_modify(|n| *n += 1);
        if let Ok(permit) = hold.permits.acquire().await {
            permit.forget();
        }
    }
}

/// A projector's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The most facts of ledgers kept in memory ([`LEDGER_CACHE_FACTS_MAX`]).
    pub ledger_cache_facts_max: usize,
    /// An empty read-model file at least this many events behind the log
    /// is caught up by folding the log stream by stream, as a rebuild
    /// does, rather than page by page ([`BULK_CATCH_UP_EVENTS_MIN`]).
    pub bulk_catch_up_events_min: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { ledger_cache_facts_max: LEDGER_CACHE_FACTS_MAX, bulk_catch_up_events_min: BULK_CATCH_UP_EVENTS_MIN }
    }
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

/// Each programme's grants' standings as of every fact, by grant id
/// (`None`: its figures cannot be computed).
type Standings = BTreeMap<ProgrammeId, BTreeMap<GrantId, Option<Arc<Standing>>>>;

/// The standings of the grants' index the file holds.
fn standings_of(index: db::Index) -> Standings {
    let mut standings = Standings::new();
    for (grant, (programme, standing)) in index {
        if let Some(programme) = programme {
            standings.entry(programme).or_default().insert(grant, standing.map(Arc::new));
        }
    }
    standings
}

/// Puts a grant's standing (after its award) in `standings`.
fn set_standing(standings: &mut Standings, grant: &GrantId, programme: ProgrammeId, standing: Option<Standing>) {
    standings.entry(programme).or_default().insert(grant.clone(), standing.map(Arc::new));
}

/// Rows of one or more applied pages, waiting to be written.
struct Pending {
    checkpoint: db::Checkpoint,
    rows: Vec<db::FactRow>,
    grants: db::GrantEntries,
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

/// The marker a damaged ledger found while serving leaves beside the file,
/// so that the next start moves the file aside.
fn damage_marker(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".damaged");
    PathBuf::from(name)
}

impl Shared {
    fn reader(&self) -> Result<Connection, DbError> {
        match lock(&self.readers).pop() {
            Some(conn) => Ok(conn),
            None => db::open_reader(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut readers = lock(&self.readers);
        if readers.len() < READERS_KEPT {
            readers.push(conn);
        }
    }

    /// Reads a ledger from the file into the cache (see the module's
    /// account of `gate`).
    fn load_from_file(&self, grant: &GrantId) -> Result<Option<Arc<GrantLedger>>, DbError> {
        let _gate = self.gate.read().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = lock(&self.ledgers).get(grant) {
            return Ok(Some(found));
        }
        let conn = self.reader()?;
        let loaded = db::load_grant(&conn, grant);
        self.give_back(conn);
        let mut ledgers = lock(&self.ledgers);
        Ok(match loaded? {
            Some(ledger) => Some(ledgers.insert_loaded(grant, Arc::new(ledger))),
            // Awarded since it was looked for: the follower has it.
            None => ledgers.get(grant),
        })
    }

    /// Says, once per grant, that the file could not give a ledger, and
    /// leaves the marker that makes the next start rebuild the file.
    fn damaged(&self, grant: &GrantId, error: &DbError) {
        let text = format!(
            "the read model file could not give grant {grant}'s ledger ({error}); it is folded from the log, and the file is rebuilt at the next start"
        );
        let mut damage = lock(&self.damage);
        if damage.is_none() {
            tracing::warn!(grant = %grant, %error, "the read model file could not give a ledger: folding it from the log; the file will be moved aside and rebuilt at the next start");
            if let Err(e) = std::fs::write(damage_marker(&self.path), text.as_bytes()) {
                tracing::warn!(error = %e, "cannot leave the damage marker beside the read model file");
            }
        }
        *damage = Some(text);
    }
}

/// A grant's ledger as the views see it now: from the cache, else the
/// file, else (the file failing) folded from the log. `None` for a grant
/// the views do not hold.
async fn ledger_of(shared: &Arc<Shared>, grant: &GrantId) -> Result<Option<Arc<GrantLedger>>, ProjectionError> {
    if let Some(found) = lock(&shared.ledgers).get(grant) {
        return Ok(Some(found));
    }
    let (s, g) = (Arc::clone(shared), grant.clone());
    match blocking(move || Ok(s.load_from_file(&g))).await? {
        Ok(found) => Ok(found),
        Err(e) => {
            shared.damaged(grant, &e);
            fold_from_log(shared, grant).await
        }
    }
}

/// Grants' ledgers read at once by whoever reads many in turn (a
/// portfolio as of a date, a rebuild's digest of the live views): on two
/// cores, decoding one overlaps reading the next.
pub const LEDGER_LOADS_IN_FLIGHT: usize = 2;

/// The ledgers of `grants`, in their order, read [`LEDGER_LOADS_IN_FLIGHT`]
/// at a time through the cache; `None` for a grant the views do not hold.
fn ledgers_in_order(
    shared: &Arc<Shared>,
    grants: Vec<GrantId>,
) -> impl futures_util::Stream<Item = Result<(GrantId, Option<Arc<GrantLedger>>), ProjectionError>> + '_ {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(grants)
        .map(move |grant| async move {
            let ledger = ledger_of(shared, &grant).await?;
            Ok((grant, ledger))
        })
        .buffered(LEDGER_LOADS_IN_FLIGHT)
}

/// A grant's ledger folded from its stream up to the position the views
/// show.
async fn fold_from_log(shared: &Arc<Shared>, grant: &GrantId) -> Result<Option<Arc<GrantLedger>>, ProjectionError> {
    let commits = shared.commits.load(Ordering::SeqCst);
    let upto = *shared.visible.borrow();
    let stream = crate::fold::grant_stream(grant)?;
    let mut folded = Models::default();
    fold_stream(shared.store.as_ref(), &stream, upto, &mut folded).await?;
    let Some(ledger) = folded.ledgers.remove(grant) else { return Ok(None) };
    let mut ledgers = lock(&shared.ledgers);
    if let Some(found) = ledgers.get(grant) {
        return Ok(Some(found));
    }
    let ledger = Arc::new(ledger);
    if shared.commits.load(Ordering::SeqCst) == commits {
        return Ok(Some(ledgers.insert_loaded(grant, ledger)));
    }
    Ok(Some(ledger))
}

/// Every view folded from the whole log, in memory (its size grows with
/// the log: for tests and tools; the server's views are bounded by its
/// cache).
pub async fn fold_log(store: &dyn EventStore) -> Result<Models, ProjectionError> {
    let mut models = Models::default();
    loop {
        let page = store.read_all(store::Position(models.position), READ_EVENTS_MAX).await?;
        if page.is_empty() {
            return Ok(models);
        }
        for e in &page {
            models.apply(e)?;
        }
    }
}

/// Applies the events of one stream up to position `upto` to `models`;
/// how many there were.
async fn fold_stream(
    store: &dyn EventStore,
    stream: &store::StreamId,
    upto: u64,
    models: &mut Models,
) -> Result<u64, ProjectionError> {
    let mut applied = 0;
    let mut from = 0;
    loop {
        let page = store.read_stream(stream, StreamStart::Version(from), Direction::Forward, READ_EVENTS_MAX).await?;
        for e in &page {
            if e.position.0 > upto {
                return Ok(applied);
            }
            models.apply(e)?;
            applied += 1;
        }
        match page.last() {
            Some(last) if page.len() == READ_EVENTS_MAX => from = last.stream_version + 1,
            _ => return Ok(applied),
        }
    }
}

/// Every grant the views hold: the file's and the cache's (under `gate`,
/// so none falls between the two).
async fn grants_where(shared: &Arc<Shared>, programme: Option<ProgrammeId>) -> Result<Vec<GrantId>, ProjectionError> {
    let s = Arc::clone(shared);
    blocking(move || {
        let _gate = s.gate.read().unwrap_or_else(|e| e.into_inner());
        let conn = s.reader()?;
        let found = match &programme {
            Some(p) => db::grants_of(&conn, p),
            None => db::all_grants(&conn),
        };
        s.give_back(conn);
        let mut ids = found?;
        let ledgers = lock(&s.ledgers);
        ids.extend(match &programme {
            Some(p) => ledgers.of_programme(p),
            None => ledgers.grants(),
        });
        ids.sort();
        ids.dedup();
        Ok(ids)
    })
    .await
}

impl Projector {
    /// Opens the read-model file at `path` and checks it against itself
    /// and the log (moving it aside and starting afresh when it fails:
    /// see [`Opened`]), loads what it holds, and starts following the log
    /// from its checkpoint.
    pub async fn start(store: Arc<dyn EventStore>, path: impl Into<PathBuf>) -> Result<Self, ProjectionError> {
        Self::start_with(store, path, LEDGER_CACHE_FACTS_MAX).await
    }

    /// [`Projector::start`] with a bound on the ledgers kept in memory, in
    /// facts ([`LEDGER_CACHE_FACTS_MAX`] by default).
    pub async fn start_with(
        store: Arc<dyn EventStore>,
        path: impl Into<PathBuf>,
        ledger_cache_facts_max: usize,
    ) -> Result<Self, ProjectionError> {
        Self::start_with_options(store, path, Options { ledger_cache_facts_max, ..Options::default() }).await
    }

    /// [`Projector::start`] with every setting given.
    pub async fn start_with_options(
        store: Arc<dyn EventStore>,
        path: impl Into<PathBuf>,
        options: Options,
    ) -> Result<Self, ProjectionError> {
        let Options { ledger_cache_facts_max, bulk_catch_up_events_min } = options;
        let path = path.into();
        let (conn, programmes, index, checkpoint, opened) = startup::open_checked(&store, &path).await?;
        let shared = Arc::new(Shared {
            store,
            path,
            db: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            ledgers: Mutex::new(cache::Ledgers::new(ledger_cache_facts_max)),
            gate: RwLock::new(()),
            commits: AtomicU64::new(0),
            damage: Mutex::new(None),
            programmes: RwLock::new(programmes),
            standings: RwLock::new(standings_of(index)),
            committed: watch::channel(checkpoint.position).0,
            visible: watch::channel(checkpoint.position).0,
            visible_hash: Mutex::new(checkpoint.log_hash),
            status: Mutex::new(Status::Running),
            trouble: Mutex::new(None),
            pages_max: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            turn: tokio::sync::Mutex::new(()),
            rebuild: Mutex::new(RebuildState::Idle),
            rebuild_rows: std::sync::atomic::AtomicUsize::new(REBUILD_ROWS_PER_COMMIT),
            bulk_min: bulk_catch_up_events_min,
            holds: Mutex::new(Holds::default()),
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
            (Status::Running, None) => match lock(&self.shared.damage).clone() {
                Some(error) => Status::Damaged { error },
                None => Status::Running,
            },
            (status, _) => status,
        }
    }

    /// Holds the follower or the writer at `point` from its next pass on,
    /// until the hold lets it through ([`Hold::release`]). For tests of
    /// races between the two.
    pub fn hold(&self, point: HoldPoint) -> Hold {
        let state = Arc::new(HoldState { permits: tokio::sync::Semaphore::new(0), arrived: watch::channel(0).0 });
        let mut holds = lock(&self.shared.holds);
        match point {
            HoldPoint::BeforeApply => holds.before_apply = Some(Arc::clone(&state)),
            HoldPoint::BeforeCommit => holds.before_commit = Some(Arc::clone(&state)),
        }
        Hold(state)
    }

    /// Sets how many fact rows a rebuild writes per transaction
    /// ([`REBUILD_ROWS_PER_COMMIT`] by default; at least one): what it holds
    /// in memory besides the grant it folds. For tests of a rebuild's
    /// memory on a small log.
    pub fn set_rebuild_rows_per_commit(&self, rows: usize) {
        self.shared.rebuild_rows.store(rows.max(1), Ordering::SeqCst);
    }

    /// Caps the read-model file's size in pages (`PRAGMA max_page_count`;
    /// `None` lifts the cap) from the next write on, and retries a write
    /// waiting for space at once. For tests of a full disk.
    pub fn set_pages_max(&self, pages: Option<u64>) {
        *lock(&self.shared.pages_max) = Some(pages);
        self.shared.wake.notify_one();
    }

    /// A grant's ledger as the views see it now (read from the file, or
    /// the log, when it is not in memory); `None` for a grant the views do
    /// not hold.
    pub async fn ledger(&self, grant: &GrantId) -> Result<Option<Arc<GrantLedger>>, ProjectionError> {
        ledger_of(&self.shared, grant).await
    }

    /// The ids of a programme's grants (the file's and the cache's), in
    /// id order.
    pub async fn programme_grants(&self, programme: &ProgrammeId) -> Result<Vec<GrantId>, ProjectionError> {
        grants_where(&self.shared, Some(programme.clone())).await
    }

    /// The standings of a programme's grants as of `as_of`, by grant id:
    /// what its portfolio as of that date shows. Each grant's ledger is
    /// read (through the cache, [`LEDGER_LOADS_IN_FLIGHT`] at a time), its
    /// standing worked out and the ledger let go, so memory holds the cache
    /// and that many ledgers however many grants the programme has. A
    /// standing whose figures overflow is [`ProjectionError::Figures`].
    pub async fn standings_as_of(
        &self,
        programme: &ProgrammeId,
        as_of: Option<NaiveDate>,
    ) -> Result<Vec<Standing>, ProjectionError> {
        use futures_util::StreamExt as _;
        let mut loads = std::pin::pin!(ledgers_in_order(&self.shared, self.programme_grants(programme).await?));
        let mut out = Vec::new();
        while let Some(loaded) = loads.next().await {
            let (grant, ledger) = loaded?;
            let Some(ledger) = ledger.filter(|l| l.grant.as_ref().is_some_and(|g| &g.programme == programme)) else {
                continue;
            };
            out.extend(Standing::of(&ledger, as_of).map_err(|_| ProjectionError::Figures { grant })?);
        }
        Ok(out)
    }

    /// Every ledger of a programme's grants, by grant id, all in memory at
    /// once (for tests and tools: the portfolio reads them one at a time,
    /// [`Projector::standings_as_of`]).
    pub async fn programme_ledgers(&self, programme: &ProgrammeId) -> Result<Vec<Arc<GrantLedger>>, ProjectionError> {
        let mut out = Vec::new();
        for grant in grants_where(&self.shared, Some(programme.clone())).await? {
            if let Some(ledger) = ledger_of(&self.shared, &grant).await?
                && ledger.grant.as_ref().is_some_and(|g| &g.programme == programme)
            {
                out.push(ledger);
            }
        }
        Ok(out)
    }

    /// The standings of a programme's grants, by grant id, as of every
    /// fact: what its portfolio as of today shows, read from memory without
    /// the grants' ledgers.
    pub fn standings(&self, programme: &ProgrammeId) -> Result<Vec<Arc<Standing>>, ProjectionError> {
        let standings = self.shared.standings.read().unwrap_or_else(|e| e.into_inner());
        let Some(grants) = standings.get(programme) else { return Ok(Vec::new()) };
        grants
            .iter()
            .map(|(grant, standing)| standing.clone().ok_or_else(|| ProjectionError::Figures { grant: grant.clone() }))
            .collect()
    }

    /// What the ledger cache holds.
    pub fn cache_stats(&self) -> CacheStats {
        lock(&self.shared.ledgers).stats()
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

    /// Writes what the views in memory hold to the file now (no waiting
    /// out the commit interval) and waits, at most `timeout`, until the
    /// file holds it. For a graceful stop: the next start then has nothing
    /// to catch up.
    pub async fn flush(&self, timeout: Duration) -> Result<(), ProjectionError> {
        self.shared.wake.notify_one();
        self.wait_committed(self.position(), timeout).await
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

    /// A snapshot of every model, for digests and tests (every ledger is
    /// read: its memory grows with the views, not bounded by the cache).
    pub async fn models(&self) -> Result<Models, ProjectionError> {
        models_of(&self.shared).await
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

async fn models_of(shared: &Arc<Shared>) -> Result<Models, ProjectionError> {
    let position = *shared.visible.borrow();
    let mut ledgers = BTreeMap::new();
    for grant in grants_where(shared, None).await? {
        if let Some(ledger) = ledger_of(shared, &grant).await? {
            ledgers.insert(grant, (*ledger).clone());
        }
    }
    let programmes = shared.programmes.read().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Models { position, ledgers, programmes })
}

/// The read-model file's name beside a data directory's log, as the server
/// lays it out.
pub fn views_path(data_dir: &Path) -> PathBuf {
    data_dir.join("views.sqlite")
}

/// SHA-256 over the canonical JSON of every view the models serve (budget,
/// timeline and funder statement of each grant as of everything, statuses
/// relative to `today`, and its standing; programme names), in id order.
pub fn views_digest(models: &Models, today: NaiveDate) -> String {
    let mut digest = ViewsDigest::new(today);
    for (id, ledger) in &models.ledgers {
        digest.grant(id, ledger, Standing::of(ledger, None).ok().flatten().as_ref());
    }
    digest.finish(&models.programmes)
}

/// [`views_digest`] one grant at a time, for views too large to hold at
/// once: give it the grants in id order, then the programmes.
#[derive(Debug, Clone)]
pub struct ViewsDigest {
    hash: Sha256,
    today: NaiveDate,
}

impl ViewsDigest {
    /// An empty digest, statuses relative to `today`.
    pub fn new(today: NaiveDate) -> Self {
        Self { hash: Sha256::new(), today }
    }

    /// Adds a grant's views and its standing as the portfolio holds it
    /// (after every grant of a smaller id).
    pub fn grant(&mut self, id: &GrantId, ledger: &GrantLedger, standing: Option<&Standing>) {
        self.hash.update(id.as_str());
        let views = serde_json::json!({
            "budget": crate::budget(ledger, None, self.today).ok(),
            "timeline": crate::timeline(ledger, None, self.today).ok(),
            "statement": crate::statement(ledger, None).ok(),
            "standing": standing,
        });
        self.hash.update(views.to_string());
    }

    /// The digest, with the programme names.
    pub fn finish(mut self, programmes: &BTreeMap<ProgrammeId, String>) -> String {
        for (id, name) in programmes {
            self.hash.update(format!("{id}={name};"));
        }
        hex::encode(self.hash.finalize())
    }
}
