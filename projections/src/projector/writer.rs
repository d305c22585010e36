//! The writer task: commits the pages the follower applied to the
//! read-model file, several at once when they queue up (a fact changed by
//! several of them is written once), each commit with its checkpoint.
//!
//! A failed commit (a full disk, an I/O error) is retried with backoff,
//! from [`VIEWS_WRITE_RETRY_MS_MIN`] doubling up to
//! [`VIEWS_WRITE_RETRY_MS_MAX`], for as long as it takes: the views in
//! memory stay current meanwhile (pages that arrive are merged into the
//! waiting batch, whose size is bounded by the number of distinct facts,
//! that is by the read model itself), the projector reports itself
//! degraded, and the first commit that succeeds catches the file up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use events::{GrantId, ProgrammeId};

use super::{Pending, ProjectionError, Shared, Trouble, lock};
use crate::db;
use crate::ledger::FactKind;

/// The first wait before retrying a failed write of the read-model file.
pub const VIEWS_WRITE_RETRY_MS_MIN: u64 = 50;
/// The longest wait between retries of a failed write of the read-model file.
pub const VIEWS_WRITE_RETRY_MS_MAX: u64 = 5_000;

/// The shortest time from the start of one commit of the read-model file
/// to the start of the next while pages keep coming: the pages that arrive
/// meanwhile are merged into one batch, so a fact many of them change (a
/// line's totals, the grant's standing) and the index pages they share are
/// written once per interval rather than once per page. A page after a
/// quiet spell is committed at once, and so is a batch whose ledgers hold
/// the ledger cache over its limit (a ledger the file does not hold yet
/// cannot be evicted). Reads never wait for it: they are answered from the
/// views in memory.
pub const VIEWS_COMMIT_INTERVAL_MS: u64 = 50;

/// What is waiting to be written.
struct Batch {
    checkpoint: db::Checkpoint,
    rows: BTreeMap<(GrantId, FactKind, String), String>,
    grants: db::GrantEntries,
    programmes: BTreeMap<ProgrammeId, String>,
}

impl Batch {
    fn new(first: Pending) -> Self {
        let mut b = Self {
            checkpoint: first.checkpoint,
            rows: BTreeMap::new(),
            grants: db::GrantEntries::new(),
            programmes: BTreeMap::new(),
        };
        b.take(first);
        b
    }

    /// Merges a later page in (its rows replace older values of the same facts).
    fn take(&mut self, p: Pending) {
        if p.checkpoint.position >= self.checkpoint.position {
            self.checkpoint = p.checkpoint;
        }
        for (g, k, key, json) in p.rows {
            self.rows.insert((g, k, key), json);
        }
        self.grants.extend(p.grants);
        self.programmes.extend(p.programmes);
    }
}

/// The wait before the `attempts`-th retry.
fn backoff(attempts: u32) -> Duration {
    let factor = 1u64 << attempts.saturating_sub(1).min(16);
    Duration::from_millis(VIEWS_WRITE_RETRY_MS_MIN.saturating_mul(factor).min(VIEWS_WRITE_RETRY_MS_MAX))
}

/// Commits one batch; gives it back with the outcome, for a retry (`Err`
/// when the blocking task itself failed and took the batch with it).
async fn commit(shared: &Arc<Shared>, batch: Batch) -> Result<(Batch, Result<(), ProjectionError>), String> {
    let shared = Arc::clone(shared);
    let outcome = tokio::task::spawn_blocking(move || {
        let rows: Vec<db::FactRow> =
            batch.rows.iter().map(|((g, k, key), json)| (g.clone(), *k, key.clone(), json.clone())).collect();
        let mut conn = lock(&shared.db);
        let limit = lock(&shared.pages_max).take();
        // No ledger is read from the file between this commit and the
        // ledgers it holds becoming clean (see the projector's module doc).
        let _gate = shared.gate.write().unwrap_or_else(|e| e.into_inner());
        let result = limit
            .map_or(Ok(()), |pages| db::set_pages_max(&conn, pages))
            .and_then(|()| db::save(&mut conn, batch.checkpoint, &rows, &batch.grants, &batch.programmes))
            .map_err(ProjectionError::from);
        if result.is_ok() {
            shared.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            lock(&shared.ledgers).committed(batch.checkpoint.position);
        }
        (batch, result)
    })
    .await;
    outcome.map_err(|e| e.to_string())
}

pub(super) async fn write(shared: Arc<Shared>, mut queue: tokio::sync::mpsc::Receiver<Pending>) {
    let mut waiting: Option<Batch> = None;
    let mut attempts = 0u32;
    let interval = Duration::from_millis(VIEWS_COMMIT_INTERVAL_MS);
    let mut last_commit: Option<tokio::time::Instant> = None;
    loop {
        let mut batch = match waiting.take() {
            Some(b) => b,
            None => match queue.recv().await {
                Some(first) => Batch::new(first),
                None => return,
            },
        };
        if let Some(due) = last_commit.map(|at| at + interval) {
            // Merge what comes until the interval is over, the cache needs
            // its dirty ledgers let go, a flush is asked for, or the
            // projector is gone (then commit what there is).
            while !lock(&shared.ledgers).over_limit() {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => break,
                    () = shared.wake.notified() => break,
                    more = queue.recv() => match more {
                        Some(p) => batch.take(p),
                        None => break,
                    },
                }
            }
        }
        last_commit = Some(tokio::time::Instant::now());
        while let Ok(more) = queue.try_recv() {
            batch.take(more);
        }
        let position = batch.checkpoint.position;
        super::pass(&shared, super::HoldPoint::BeforeCommit).await;
        let (batch, result) = match commit(&shared, batch).await {
            Ok(done) => done,
            // The blocking task died with the batch: nothing can be retried.
            Err(e) => return super::follow::fail(&shared, *shared.committed.borrow() + 1, e),
        };
        let error = match result {
            Ok(()) => {
                if attempts > 0 {
                    tracing::info!(position, attempts, "read model file written again; it has caught up");
                }
                attempts = 0;
                *lock(&shared.trouble) = None;
                shared.committed.send_replace(position);
                continue;
            }
            Err(e) => e.to_string(),
        };
        attempts = attempts.saturating_add(1);
        let wait = backoff(attempts);
        tracing::warn!(
            committed = *shared.committed.borrow(),
            position,
            attempts,
            retry_in_ms = wait.as_millis() as u64,
            %error,
            "cannot write the read model file; the views in memory stay current, retrying"
        );
        *lock(&shared.trouble) = Some(Trouble { error, attempts });
        waiting = Some(batch);
        // Wait, merging newer pages in, until the backoff ends or someone
        // says space is back.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = shared.wake.notified() => break,
                more = queue.recv() => match (more, waiting.as_mut()) {
                    (Some(p), Some(b)) => b.take(p),
                    (Some(p), None) => waiting = Some(Batch::new(p)),
                    (None, _) => return, // the projector is gone
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_maximum() {
        assert_eq!(backoff(1), Duration::from_millis(VIEWS_WRITE_RETRY_MS_MIN));
        assert_eq!(backoff(2), Duration::from_millis(2 * VIEWS_WRITE_RETRY_MS_MIN));
        assert_eq!(backoff(40), Duration::from_millis(VIEWS_WRITE_RETRY_MS_MAX));
    }
}
