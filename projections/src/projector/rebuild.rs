//! Rebuilding the views from the log on demand, in the foreground
//! ([`rebuild`]) or as a background job with progress ([`begin`]).

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use events::ProgrammeId;
use futures_util::StreamExt as _;
use store::{Position, StreamId};
use tokio::task::JoinHandle;

use super::{
    ProjectionError, RebuildReport, Shared, Standings, ViewsDigest, blocking, grants_where, ledgers_in_order, lock,
    set_standing,
};
use crate::db::{self, Models};

/// Longest wait, before a rebuild, for the file to catch up with the views
/// in memory (it cannot while its writes fail).
pub const REBUILD_DRAIN_WAIT_MS: u64 = 10_000;

/// A background rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebuildState {
    /// None was started since the server started.
    Idle,
    /// Folding the log.
    Running {
        /// When it started.
        started_at: DateTime<Utc>,
        /// Events folded so far.
        events: u64,
        /// Progress towards `target`: the log is folded grant by grant,
        /// so this counts the events folded (positions have no gaps, so
        /// the rebuild is done when it reaches `target`).
        position: u64,
        /// The position it rebuilds up to (where the views stood).
        target: u64,
    },
    /// Finished and swapped in.
    Done {
        /// When it started.
        started_at: DateTime<Utc>,
        /// When it finished.
        finished_at: DateTime<Utc>,
        /// What it found.
        report: RebuildReport,
    },
    /// Failed; the live views were kept.
    Failed {
        /// When it started.
        started_at: DateTime<Utc>,
        /// When it gave up.
        finished_at: DateTime<Utc>,
        /// Why.
        error: String,
    },
}

/// Pages of the log (each at most [`store::READ_EVENTS_MAX`] events of one
/// stream) a rebuild reads ahead of its fold.
pub const REBUILD_PAGES_AHEAD: usize = 2;

/// Facts a rebuild writes per transaction, in its grants' snapshots (with
/// the grants being folded, what it holds in memory besides the live
/// views' cache).
pub const REBUILD_ROWS_PER_COMMIT: usize = 20_000;

pub(super) async fn rebuild(
    shared: &Arc<Shared>,
    today: NaiveDate,
    progress: impl Fn(u64, u64) + Send,
) -> Result<RebuildReport, ProjectionError> {
    let _paused = shared.turn.lock().await;
    // Let the writer finish what the follower applied, so the swap cannot
    // be overtaken by older rows.
    let visible = *shared.visible.borrow();
    let mut committed = shared.committed.subscribe();
    let drained =
        tokio::time::timeout(Duration::from_millis(REBUILD_DRAIN_WAIT_MS), committed.wait_for(|p| *p >= visible))
            .await
            .is_ok_and(|r| r.is_ok());
    if !drained {
        return Err(ProjectionError::FileBehind { committed: *shared.committed.borrow(), visible });
    }
    let target = visible;
    let rebuilt = fold(shared, target, Some(today), progress).await?;
    let live_digest = live_digest(shared, today).await?;
    let report = RebuildReport {
        events: rebuilt.events,
        position: target,
        live_digest,
        rebuilt_digest: rebuilt.views_digest.clone().unwrap_or_default(),
    };
    swap_in(shared, target, rebuilt).await?;
    let events = report.events;
    if report.equal() {
        tracing::info!(events, position = target, digest = %report.live_digest, "views rebuilt; they were as the log says");
    } else {
        tracing::warn!(
            events,
            position = target,
            live = %report.live_digest,
            rebuilt = %report.rebuilt_digest,
            "views rebuilt; the live views differed from the log, the rebuilt ones replace them"
        );
    }
    Ok(report)
}

/// Swaps the folded tables in at `target` and drops every cached ledger
/// (each is read from the new tables from now on).
async fn swap_in(shared: &Arc<Shared>, target: u64, folded: Folded) -> Result<(), ProjectionError> {
    let writer = Arc::clone(shared);
    let programmes = folded.programmes.clone();
    let checkpoint = db::Checkpoint { position: target, log_hash: folded.log_hash };
    blocking(move || {
        let mut conn = lock(&writer.db);
        let _gate = writer.gate.write().unwrap_or_else(|e| e.into_inner());
        db::finish_rebuild(&mut conn, checkpoint, folded.rebuilt, &programmes)?;
        writer.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        lock(&writer.ledgers).clear();
        Ok(())
    })
    .await?;
    *shared.programmes.write().unwrap_or_else(|e| e.into_inner()) = folded.programmes;
    *shared.standings.write().unwrap_or_else(|e| e.into_inner()) = folded.standings;
    Ok(())
}

/// Views an empty file is this far behind are caught up by folding the
/// log stream by stream (as a rebuild does: a few grants in memory at a
/// time, each grant written once, as one snapshot row), not page by page.
pub const BULK_CATCH_UP_EVENTS_MIN: u64 = 20_000;

/// Catches an empty read-model file up with the log at once when the log
/// holds at least the projector's `bulk_catch_up_events_min` events
/// ([`BULK_CATCH_UP_EVENTS_MIN`] by default): folds it up to the
/// head into the rebuild tables, swaps them in, and moves the views to the
/// head (they show nothing until then). The position reached, `None` when
/// the views were not empty or the log too short (the follower does it).
pub(super) async fn bulk_catch_up(shared: &Arc<Shared>) -> Result<Option<u64>, ProjectionError> {
    let _paused = shared.turn.lock().await;
    if *shared.visible.borrow() != 0 {
        return Ok(None);
    }
    let Some(head) = shared.store.head().await? else { return Ok(None) };
    let target = head.position.0;
    if target < shared.bulk_min {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let folded = fold(shared, target, None, |_, _| {}).await?;
    let (events, log_hash) = (folded.events, folded.log_hash);
    swap_in(shared, target, folded).await?;
    *lock(&shared.visible_hash) = log_hash;
    shared.visible.send_replace(target);
    shared.committed.send_replace(target);
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(events, position = target, seconds, "views caught up from an empty file, stream by stream");
    Ok(Some(target))
}

/// What folding the log into the rebuild tables made.
struct Folded {
    events: u64,
    log_hash: [u8; 32],
    rebuilt: db::Rebuilt,
    /// The views' digest, when asked for.
    views_digest: Option<String>,
    programmes: BTreeMap<ProgrammeId, String>,
    standings: Standings,
}

/// Rows waiting to be written to the rebuild tables.
#[derive(Default)]
struct Batch {
    /// Each grant's ledger, whole.
    snapshots: Vec<db::Snapshot>,
    /// Facts the snapshots hold.
    facts: usize,
    grants: db::GrantEntries,
}

/// Folds the log up to `target` into the rebuild tables stream by stream,
/// in grant id order: each grant's ledger is folded from its own stream,
/// written as one snapshot row, and let go, so memory holds one grant
/// being folded, [`REBUILD_PAGES_AHEAD`] pages read ahead and two batches
/// of snapshots whatever the size of the log, and each grant is written
/// once. The log is read with [`store::EventStore::read_streams`] (on
/// SQLite, one connection mapping the file).
/// The log must hold exactly `target` events up to `target` (positions
/// have no gaps), or it changed under the rebuild.
async fn fold(
    shared: &Arc<Shared>,
    target: u64,
    today: Option<NaiveDate>,
    progress: impl Fn(u64, u64) + Send,
) -> Result<Folded, ProjectionError> {
    let store = shared.store.as_ref();
    let log_hash = match store.hash_at(Position(target)).await? {
        Some(hash) => hash,
        None if target == 0 => store::hash::GENESIS,
        None => return Err(ProjectionError::Task(format!("the log has no event at position {target}"))),
    };
    // Every stream, in byte order (the views' order; a store may list them
    // in its collation's).
    let mut streams = Vec::new();
    let mut after: Option<StreamId> = None;
    loop {
        let page = store.stream_ids(after.as_ref(), store::READ_EVENTS_MAX).await?;
        let Some(last) = page.last().cloned() else { break };
        streams.extend(page);
        after = Some(last);
    }
    streams.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    let s = Arc::clone(shared);
    blocking(move || db::begin_rebuild(&lock(&s.db)).map_err(ProjectionError::from)).await?;

    let mut gathered = Gathered {
        digest: today.map(ViewsDigest::new),
        rows_per_commit: shared.rebuild_rows.load(std::sync::atomic::Ordering::SeqCst),
        ..Gathered::default()
    };
    let mut events = 0u64;
    // The log is read on a task of its own, stream after stream, a few
    // pages ahead of the fold (on two cores, reading and folding overlap).
    let (pages_tx, mut pages) = tokio::sync::mpsc::channel(REBUILD_PAGES_AHEAD);
    let log = Arc::clone(&shared.store);
    let reading = tokio::spawn(async move { log.read_streams(streams, Position(target), pages_tx).await });
    let mut folding: Option<(StreamId, Models)> = None;
    while let Some(page) = pages.recv().await {
        let page = page?;
        let Some(first) = page.first() else { continue };
        if folding.as_ref().is_some_and(|(stream, _)| *stream != first.stream_id)
            && let Some((_, scratch)) = folding.take()
        {
            gathered.take(shared, scratch).await?;
        }
        let (_, scratch) = folding.get_or_insert_with(|| (first.stream_id.clone(), Models::default()));
        for e in &page {
            scratch.apply(e)?;
        }
        events += page.len() as u64;
        progress(events, events.min(target));
    }
    if let Some((_, scratch)) = folding.take() {
        gathered.take(shared, scratch).await?;
    }
    reading.await.map_err(|e| ProjectionError::Task(e.to_string()))?;
    let Gathered { digest, mut rebuilt, standings, programmes, batch, writing, .. } = gathered;
    if let Some(previous) = writing {
        rebuilt.plus(joined(previous).await?);
    }
    rebuilt.plus(joined(put(shared, batch)).await?);
    if events != target {
        return Err(ProjectionError::Task(format!(
            "the log holds {events} events up to position {target}: it changed while it was folded"
        )));
    }
    let views_digest = digest.map(|d| d.finish(&programmes));
    Ok(Folded { events, log_hash, rebuilt, views_digest, programmes, standings })
}

/// What a fold has gathered so far, grant by grant.
#[derive(Default)]
struct Gathered {
    digest: Option<ViewsDigest>,
    rebuilt: db::Rebuilt,
    standings: Standings,
    programmes: BTreeMap<ProgrammeId, String>,
    batch: Batch,
    rows_per_commit: usize,
    /// One batch is written while the next is folded (on two cores, the
    /// fold and SQLite's writes overlap); at most one write is in flight.
    writing: Option<tokio::task::JoinHandle<Result<db::Rebuilt, ProjectionError>>>,
}

impl Gathered {
    /// Takes one stream's folded models: its grant's snapshot, index entry,
    /// standing and digest, or its programme; writes the batch when full.
    async fn take(&mut self, shared: &Arc<Shared>, scratch: Models) -> Result<(), ProjectionError> {
        self.programmes.extend(scratch.programmes);
        for (grant, ledger) in scratch.ledgers {
            let (entry, standing) = db::IndexEntry::of(&ledger)
                .map_err(|e| db::DbError::Row { key: format!("grants/{grant}"), detail: e.to_string() })?;
            if let Some(digest) = self.digest.as_mut() {
                digest.grant(&grant, &ledger, standing.as_ref());
            }
            self.batch.snapshots.push(db::snapshot(&grant, &ledger)?);
            self.batch.facts += ledger.fact_count();
            if let Some(programme) = entry.programme.clone() {
                set_standing(&mut self.standings, &grant, programme, standing);
            }
            self.batch.grants.insert(grant, entry);
        }
        if self.batch.facts >= self.rows_per_commit {
            if let Some(previous) = self.writing.take() {
                self.rebuilt.plus(joined(previous).await?);
            }
            self.writing = Some(put(shared, std::mem::take(&mut self.batch)));
        }
        Ok(())
    }
}

/// Starts writing a batch to the rebuild tables, on a blocking thread;
/// the task gives the digests of what it wrote.
fn put(shared: &Arc<Shared>, batch: Batch) -> tokio::task::JoinHandle<Result<db::Rebuilt, ProjectionError>> {
    let s = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        if batch.snapshots.is_empty() && batch.grants.is_empty() {
            return Ok(db::Rebuilt::default());
        }
        Ok(db::put_rebuilt(&mut lock(&s.db), &batch.snapshots, &batch.grants)?)
    })
}

async fn joined(
    task: tokio::task::JoinHandle<Result<db::Rebuilt, ProjectionError>>,
) -> Result<db::Rebuilt, ProjectionError> {
    task.await.map_err(|e| ProjectionError::Task(e.to_string()))?
}

/// The digest of the live views, grant by grant through the cache, with
/// the standings the portfolio holds.
async fn live_digest(shared: &Arc<Shared>, today: NaiveDate) -> Result<String, ProjectionError> {
    let mut digest = ViewsDigest::new(today);
    let mut loads = std::pin::pin!(ledgers_in_order(shared, grants_where(shared, None).await?));
    while let Some(loaded) = loads.next().await {
        let (grant, ledger) = loaded?;
        if let Some(ledger) = ledger {
            let standing = ledger.grant.as_ref().and_then(|g| {
                let standings = shared.standings.read().unwrap_or_else(|e| e.into_inner());
                standings.get(&g.programme).and_then(|s| s.get(&grant)).cloned().flatten()
            });
            digest.grant(&grant, &ledger, standing.as_deref());
        }
    }
    let programmes = shared.programmes.read().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(digest.finish(&programmes))
}

/// Starts a background rebuild unless one is running.
pub(super) fn begin(shared: &Arc<Shared>, today: NaiveDate) -> Option<JoinHandle<()>> {
    let started_at = Utc::now();
    {
        let mut state = lock(&shared.rebuild);
        if matches!(*state, RebuildState::Running { .. }) {
            return None;
        }
        let target = *shared.visible.borrow();
        *state = RebuildState::Running { started_at, events: 0, position: 0, target };
    }
    let shared = Arc::clone(shared);
    Some(tokio::spawn(async move {
        let tick = Arc::clone(&shared);
        let report = rebuild(&shared, today, move |events, reached| {
            if let RebuildState::Running { events: e, position: p, target, .. } = &mut *lock(&tick.rebuild) {
                (*e, *p) = (events, reached);
                *target = (*target).max(reached);
            }
        })
        .await;
        let finished_at = Utc::now();
        *lock(&shared.rebuild) = match report {
            Ok(report) => RebuildState::Done { started_at, finished_at, report },
            Err(e) => RebuildState::Failed { started_at, finished_at, error: e.to_string() },
        };
    }))
}
