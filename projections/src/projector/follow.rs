//! The follower task: reads the log through a subscription in pages and
//! applies each to the in-memory ledgers, then hands the changed rows to
//! the writer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use events::GrantId;
use store::{StoreError, Subscription};

use super::{PROJECTION_BATCH_EVENTS, Pending, ProjectionError, Shared, Status, lock};
use crate::db::{self, Models};
use crate::ledger::{FactKind, GrantLedger};

pub(super) fn fail(shared: &Shared, position: u64, error: String) {
    tracing::error!(position, %error, "projection stopped");
    *lock(&shared.status) = Status::Failed { position, error };
}

/// The first wait before reading again from a store that could not be
/// reached (a database that went away); it doubles up to
/// [`UNAVAILABLE_RETRY_MAX`].
const UNAVAILABLE_RETRY_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two reads of a store that cannot be reached.
const UNAVAILABLE_RETRY_MAX: Duration = Duration::from_secs(2);

pub(super) async fn follow(shared: Arc<Shared>, pending: tokio::sync::mpsc::Sender<Pending>) {
    // An empty file far behind a long log is folded stream by stream first;
    // if that fails, following page by page gets there too.
    if let Err(error) = super::rebuild::bulk_catch_up(&shared).await {
        tracing::warn!(%error, "cannot catch the views up stream by stream; following the log page by page");
    }
    let start = store::Position(*shared.visible.borrow());
    let mut subscription = Subscription::new(Arc::clone(&shared.store), start);
    let mut retry = UNAVAILABLE_RETRY_MIN;
    loop {
        let page = match subscription.next_batch(PROJECTION_BATCH_EVENTS).await {
            Ok(page) => page,
            Err(StoreError::Closed) => return,
            // The database is away (restarting, a network cut): nothing is
            // wrong with the log, read again when it is back. The views
            // keep what they have and say so by their position.
            Err(StoreError::Unavailable { detail }) => {
                tracing::warn!(position = subscription.position().0, %detail, "the log cannot be read; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(UNAVAILABLE_RETRY_MAX);
                continue;
            }
            Err(e) => return fail(&shared, subscription.position().0 + 1, e.to_string()),
        };
        retry = UNAVAILABLE_RETRY_MIN;
        // A rebuild pauses the loop here; it rebuilds exactly up to what
        // this loop has applied, so the page still follows on.
        let turn = shared.turn.lock().await;
        let loaded = match load_page_ledgers(&shared, &page).await {
            Ok(loaded) => loaded,
            Err(e @ (ProjectionError::Store(_) | ProjectionError::Db(_) | ProjectionError::Task(_))) => {
                // The log could not be read to fold a ledger the file could
                // not give: try the page again.
                drop(turn);
                tracing::warn!(position = subscription.position().0, error = %e, "a ledger cannot be loaded; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(UNAVAILABLE_RETRY_MAX);
                subscription = Subscription::new(Arc::clone(&shared.store), store::Position(*shared.visible.borrow()));
                continue;
            }
            Err(e) => return fail(&shared, subscription.position().0, e.to_string()),
        };
        super::pass(&shared, super::HoldPoint::BeforeApply).await;
        let (applied, failure) = apply_page(&shared, &page, loaded);
        drop(turn);
        if pending.send(applied).await.is_err() {
            return; // the writer stopped
        }
        if let Some((position, error)) = failure {
            return fail(&shared, position, error);
        }
    }
}

/// Ledgers of a page's grants, loaded before it is applied.
type Loaded = HashMap<GrantId, Arc<GrantLedger>>;

/// The ledgers of the page's grants, from the cache or else loaded (from
/// the file, or folded from the log), so that the page applies to them.
/// Cached ones are taken too: the writer may commit an earlier page and
/// evict them before this one is applied, and the page must then apply to
/// them, not to a new empty ledger.
async fn load_page_ledgers(shared: &Arc<Shared>, page: &[store::RecordedEvent]) -> Result<Loaded, ProjectionError> {
    let mut loaded = Loaded::new();
    let grants: BTreeSet<GrantId> =
        page.iter().filter_map(|e| events::streams::grant_of(e.stream_id.as_str())).collect();
    for grant in grants {
        if let Some(ledger) = super::ledger_of(shared, &grant).await? {
            loaded.insert(grant, ledger);
        }
    }
    Ok(loaded)
}

/// Applies a page in memory (copy-on-write: a ledger a reader is holding is
/// copied, otherwise changed in place) and returns the rows it changed, and
/// the first unreadable event if there was one.
fn apply_page(shared: &Shared, page: &[store::RecordedEvent], loaded: Loaded) -> (Pending, Option<(u64, String)>) {
    let mut failure = None;
    let mut rows: Vec<db::FactRow> = Vec::new();
    let mut grants = db::GrantEntries::new();
    let mut standings = Vec::new();
    let mut programmes = BTreeMap::new();
    let mut position = *shared.visible.borrow();
    let mut log_hash = *lock(&shared.visible_hash);
    let start = db::Checkpoint { position, log_hash };
    let mut unwritable = false;
    {
        let mut ledgers = lock(&shared.ledgers);
        // A ledger taken for this page and evicted since is still the
        // latest (only this task changes ledgers): put it back before
        // changing it, then let go of the page's copies, so that a ledger
        // no reader holds is changed in place rather than copied.
        for (grant, ledger) in &loaded {
            ledgers.restore(grant, ledger);
        }
        drop(loaded);
        let mut dirty = db::Dirty::new();
        let end = page.last().map_or(position, |e| e.position.0);
        for e in page {
            let outcome = if let Some(grant) = events::streams::grant_of(e.stream_id.as_str()) {
                crate::fold::projected(e).map(|p| {
                    let mut touched = None;
                    ledgers.change(&grant, end, |ledger| touched = Some(ledger.apply(&p)));
                    dirty.insert((grant.clone(), FactKind::Header, String::new()));
                    if let Some((kind, key)) = touched {
                        dirty.insert((grant, kind, key));
                    }
                })
            } else {
                let mut one = Models::default();
                one.apply(e).map(|_| programmes.append(&mut one.programmes))
            };
            match outcome {
                Ok(()) => (position, log_hash) = (e.position.0, e.hash),
                Err(err) => {
                    failure = Some((err.position, err.detail));
                    break;
                }
            }
        }
        for (grant, kind, key) in dirty {
            let ledger = ledgers.peek(&grant);
            if kind == FactKind::Header
                && let Some(ledger) = ledger
            {
                match db::IndexEntry::of(ledger) {
                    Ok((entry, standing)) => {
                        if let Some(programme) = &entry.programme {
                            standings.push((grant.clone(), programme.clone(), standing));
                        }
                        grants.insert(grant.clone(), entry);
                    }
                    Err(e) => {
                        failure = failure.or(Some((position, e.to_string())));
                        unwritable = true;
                    }
                }
            }
            match ledger.map(|l| l.fact_json(kind, &key)) {
                Some(Ok(Some(json))) => rows.push((grant, kind, key, json)),
                Some(Err(e)) => {
                    failure = failure.or(Some((position, e.to_string())));
                    unwritable = true;
                }
                _ => {}
            }
        }
        ledgers.evict();
    }
    shared.programmes.write().unwrap_or_else(|e| e.into_inner()).extend(programmes.clone());
    {
        let mut shown = shared.standings.write().unwrap_or_else(|e| e.into_inner());
        for (grant, programme, standing) in standings {
            super::set_standing(&mut shown, &grant, programme, standing);
        }
    }
    *lock(&shared.visible_hash) = log_hash;
    shared.visible.send_replace(position);
    if unwritable {
        // A fact that cannot be written: the file must not claim this page.
        return (
            Pending {
                checkpoint: start,
                rows: Vec::new(),
                grants: db::GrantEntries::new(),
                programmes: BTreeMap::new(),
            },
            failure,
        );
    }
    (Pending { checkpoint: db::Checkpoint { position, log_hash }, rows, grants, programmes }, failure)
}
