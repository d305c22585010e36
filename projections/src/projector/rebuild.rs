//! Rebuilding the views from the log on demand, in the foreground
//! ([`rebuild`]) or as a background job with progress ([`begin`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use store::Position;
use tokio::task::JoinHandle;

use super::{ProjectionError, RebuildReport, Shared, blocking, lock, models_of, views_digest};
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
        /// The position reached.
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
    let live = models_of(shared).await?;
    let target = live.position;
    let mut rebuilt = Models::default();
    let mut log_hash = store::hash::GENESIS;
    let mut events = 0u64;
    while rebuilt.position < target {
        let want = (target - rebuilt.position).min(store::READ_EVENTS_MAX as u64) as usize;
        let page = shared.store.read_all(Position(rebuilt.position), want).await?;
        let Some(last) = page.last() else { break };
        for e in &page {
            rebuilt.apply(e)?;
        }
        log_hash = last.hash;
        events += page.len() as u64;
        progress(events, rebuilt.position);
    }
    if rebuilt.position != target {
        return Err(ProjectionError::Task(format!("the log ended at {} before {target}", rebuilt.position)));
    }
    let report = RebuildReport {
        events,
        position: target,
        live_digest: views_digest(&live, today),
        rebuilt_digest: views_digest(&rebuilt, today),
    };
    let writer = Arc::clone(shared);
    let to_write = rebuilt.clone();
    blocking(move || {
        let mut conn = lock(&writer.db);
        let _gate = writer.gate.write().unwrap_or_else(|e| e.into_inner());
        db::replace_all(&mut conn, &to_write, log_hash)?;
        writer.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Every ledger is read from the new tables from now on.
        lock(&writer.ledgers).clear();
        Ok(())
    })
    .await?;
    *shared.programmes.write().unwrap_or_else(|e| e.into_inner()) = rebuilt.programmes;
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
