//! The read side: budget, timeline, portfolio and funder-statement views
//! projected from the event log.
//!
//! - [`ledger`]: the one pure fold of a grant's events ([`GrantLedger`]);
//!   [`budget()`], [`timeline()`], [`statement()`] and [`portfolio()`] compute views
//!   from it as of a business date.
//! - [`projector`]: follows the log, keeps the ledgers in memory and in
//!   their own SQLite file with an exactly-once checkpoint, rebuilds.
//! - [`as_known_at`]: any grant's ledger as the log stood at an instant, by
//!   folding its events with the same fold.
//! - [`explain()`]: a line's figures as the events that sum to them.
//! - [`audit`]: per-line history with before / after figures, the
//!   corrections register, the approvals log and the funder statement as
//!   CSV, from a grant's decoded history.
//!
//! Projections read events only through the store's read API.

pub mod audit;
pub mod budget;
pub mod db;
pub mod explain;
pub mod fold;
pub mod history;
pub mod integrity;
pub mod ledger;
pub mod portfolio;
pub mod projector;
pub mod statement;
mod tally;
pub mod timeline;

use chrono::{DateTime, Utc};
use events::GrantId;
use store::{Direction, EventStore, READ_EVENTS_MAX, StreamStart};

pub use audit::{Approval, Correction, LineHistory, approvals, corrections, line_history, statement_csv};
pub use budget::{BudgetView, ViewError, budget};
pub use explain::{LineExplanation, explain};
pub use history::HistoryCache;
pub use ledger::GrantLedger;
pub use portfolio::{GrantStatus, PortfolioView, Standing, portfolio, portfolio_of};
pub use projector::{
    BULK_CATCH_UP_EVENTS_MIN, CacheStats, Hold, HoldPoint, LEDGER_CACHE_FACTS_MAX, Opened, Options, ProjectionError,
    Projector, REBUILD_ROWS_PER_COMMIT, RebuildReport, RebuildState, Status, ViewsDigest, fold_log, views_digest,
    views_path,
};
pub use statement::{FunderStatement, statement};
pub use timeline::{TimelineView, timeline};

/// A grant's ledger folded from the log, counting only the events recorded
/// at or before `known_at` (all of them when `None`): "what the books said
/// then". Combine with a view's `as_of` for "what had happened by then".
pub async fn as_known_at(
    store: &dyn EventStore,
    grant: &GrantId,
    known_at: Option<DateTime<Utc>>,
) -> Result<GrantLedger, ProjectionError> {
    let stream = fold::grant_stream(grant)?;
    let mut ledger = GrantLedger::default();
    let mut from = 0;
    loop {
        let page = store.read_stream(&stream, StreamStart::Version(from), Direction::Forward, READ_EVENTS_MAX).await?;
        for e in &page {
            // recorded_at never decreases along the log, so the first event
            // recorded too late ends the fold.
            if !fold::known(e.recorded_at, known_at) {
                return Ok(ledger);
            }
            ledger.apply(&fold::projected(e)?);
        }
        match page.last() {
            Some(last) if page.len() == READ_EVENTS_MAX => from = last.stream_version + 1,
            _ => return Ok(ledger),
        }
    }
}
