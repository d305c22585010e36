//! A real store with a test's hooks on the calls a fault needs: every
//! other call goes straight to the store, so a test that makes appends slow
//! or the log unreadable writes only the fault.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::{
    AppendResult, Direction, EventStore, ExpectedVersion, Head, NewEvent, Position, QueuedAppend, RawEvent,
    RecordedCommand, RecordedEvent, StoreError, StreamId, StreamStart, VerifyOutcome,
};

/// What a test does around a store's calls; each default passes the call
/// through unchanged.
#[async_trait]
pub trait Hooks: Send + Sync + std::fmt::Debug + 'static {
    /// Called with an append's outcome once the store has given it; what
    /// it returns is the caller's answer.
    async fn after_append(&self, outcome: Result<AppendResult, StoreError>) -> Result<AppendResult, StoreError> {
        outcome
    }

    /// Called before an append reaches the store: `Some` fails the append
    /// with that error (the store never sees it, so nothing is recorded),
    /// answered through [`Hooks::after_append`] as a store's error would be.
    fn fail_append(&self) -> Option<StoreError> {
        None
    }

    /// Reads the whole log in the store's place.
    async fn read_all(
        &self,
        store: &dyn EventStore,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        store.read_all(after, limit).await
    }
}

/// `inner` with `hooks` on its appends and whole-log reads.
#[derive(Debug)]
pub struct Hooked<H> {
    /// The real store.
    pub inner: Arc<dyn EventStore>,
    /// The test's hooks (and whatever state they keep), shared with the
    /// answers of queued appends.
    pub hooks: Arc<H>,
}

#[async_trait]
impl<H: Hooks> EventStore for Hooked<H> {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let outcome = match self.hooks.fail_append() {
            Some(e) => Err(e),
            None => self.inner.append(stream_id, expected, events).await,
        };
        self.hooks.after_append(outcome).await
    }
    /// Queued in the real store, so the caller overlaps as it would there;
    /// the hook runs on the outcome when the answer is awaited.
    async fn queue_append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<QueuedAppend, StoreError> {
        let hooks = Arc::clone(&self.hooks);
        if let Some(e) = hooks.fail_append() {
            return Ok(Box::pin(async move { hooks.after_append(Err(e)).await }));
        }
        let answer = self.inner.queue_append(stream_id, expected, events).await?;
        Ok(Box::pin(async move { hooks.after_append(answer.await).await }))
    }
    async fn stream_version(&self, stream_id: &StreamId) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(stream_id).await
    }
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, start, direction, limit).await
    }
    async fn stream_ids(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamId>, StoreError> {
        self.inner.stream_ids(after, limit).await
    }
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.hooks.read_all(self.inner.as_ref(), after, limit).await
    }
    async fn position_at_or_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
        self.inner.position_at_or_after(at).await
    }
    async fn command(&self, command_id: uuid::Uuid) -> Result<Option<RecordedCommand>, StoreError> {
        self.inner.command(command_id).await
    }
    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.inner.head().await
    }
    async fn verify_with_progress(
        &self,
        since: Option<Head>,
        progress: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<VerifyOutcome, StoreError> {
        self.inner.verify_with_progress(since, progress).await
    }
    async fn read_raw(&self, after: Position, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        self.inner.read_raw(after, limit).await
    }
    async fn hash_at(&self, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
        self.inner.hash_at(position).await
    }
    async fn import(&self, events: Vec<RawEvent>) -> Result<Head, StoreError> {
        self.inner.import(events).await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
    fn watch_position(&self) -> watch::Receiver<Position> {
        self.inner.watch_position()
    }
}
