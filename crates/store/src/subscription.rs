//! Subscriptions: catch up by reading the log from a position, then follow
//! it live. Events always come from the store's reads, never from the
//! writer's announcements, so a slow subscriber lags but never skips.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use crate::EventStore;
use crate::error::StoreError;
use crate::types::{Position, RecordedEvent};

/// Events read per catch-up page.
pub const SUBSCRIPTION_PAGE_EVENTS: usize = 1_000;

/// Every event after a position, in order, exactly once, then every new one
/// as it is committed.
pub struct Subscription {
    store: Arc<dyn EventStore>,
    after: Position,
    buffer: VecDeque<RecordedEvent>,
    committed: watch::Receiver<Position>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("after", &self.after).field("buffered", &self.buffer.len()).finish()
    }
}

impl Subscription {
    /// A subscription delivering the events after `after` (use
    /// `Position::START` for the whole log).
    pub fn new(store: Arc<dyn EventStore>, after: Position) -> Self {
        let committed = store.watch_position();
        Self { store, after, buffer: VecDeque::new(), committed }
    }

    /// The position of the last event delivered (the checkpoint to resume from).
    pub fn position(&self) -> Position {
        self.after
    }

    /// The next event, waiting for one to be committed if the subscriber
    /// has caught up. Errors only when the store fails or closes.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        self.fill().await?;
        let event = self.buffer.pop_front().ok_or(StoreError::Closed)?;
        self.after = event.position;
        Ok(event)
    }

    /// The next events, at least one and at most `max`, in order, waiting
    /// for a commit if the subscriber has caught up: for consumers that
    /// apply events in batches (one transaction per batch).
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.fill().await?;
        let n = max.clamp(1, self.buffer.len());
        let batch: Vec<RecordedEvent> = self.buffer.drain(..n).collect();
        if let Some(last) = batch.last() {
            self.after = last.position;
        }
        Ok(batch)
    }

    /// Makes sure the buffer holds at least one event.
    async fn fill(&mut self) -> Result<(), StoreError> {
        while self.buffer.is_empty() {
            let last_buffered = self.after;
            let page = self.store.read_all(last_buffered, SUBSCRIPTION_PAGE_EVENTS).await?;
            if !page.is_empty() {
                self.buffer.extend(page);
                return Ok(());
            }
            // Caught up. The announcement comes after the commit, and
            // `wait_for` looks at the current value first, so a commit that
            // landed after the read above is never missed.
            self.committed.wait_for(|p| *p > last_buffered).await.map_err(|_| StoreError::Closed)?;
        }
        Ok(())
    }
}
