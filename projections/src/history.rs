//! Grant histories kept in memory for bitemporal queries.
//!
//! "What did the books say at instant T" needs a fold of the grant's events
//! recorded by T. Reading 10,000 events from SQLite costs more than the
//! 10 ms an auditor's as-of query may take, so the decoded events of
//! recently queried grants are kept here, brought up to date incrementally
//! (only events after the cached version are read), and the least recently
//! used grants are dropped once the cache holds more than a set number of
//! events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use events::GrantId;
use store::{Direction, EventStore, READ_EVENTS_MAX, StreamStart};

use crate::fold::{known, projected};
use crate::ledger::{GrantLedger, Projected};
use crate::projector::ProjectionError;

/// Events kept in memory across all cached grants, by default.
pub const HISTORY_EVENTS_MAX: usize = 1_000_000;

#[derive(Debug, Default)]
struct Entry {
    events: Arc<Vec<Projected>>,
    last_used: u64,
}

/// Decoded grant histories, bounded by their total number of events.
pub struct HistoryCache {
    store: Arc<dyn EventStore>,
    entries: Mutex<(u64, HashMap<GrantId, Entry>)>,
    events_max: usize,
}

impl std::fmt::Debug for HistoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryCache").field("events_max", &self.events_max).finish_non_exhaustive()
    }
}

impl HistoryCache {
    /// A cache over `store` holding at most `events_max` events.
    pub fn new(store: Arc<dyn EventStore>, events_max: usize) -> Self {
        Self { store, entries: Mutex::new((0, HashMap::new())), events_max }
    }

    /// The grant's decoded events, read from the log only past what is cached.
    pub async fn history(&self, grant: &GrantId) -> Result<Arc<Vec<Projected>>, ProjectionError> {
        let mut events = {
            let guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            guard.1.get(grant).map(|e| Arc::clone(&e.events)).unwrap_or_default()
        };
        let stream = crate::fold::grant_stream(grant)?;
        loop {
            let from = events.last().map_or(0, |e| e.version + 1);
            let page = self
                .store
                .read_stream(&stream, StreamStart::Version(from), Direction::Forward, READ_EVENTS_MAX)
                .await?;
            if !page.is_empty() {
                // Copies the cached events only if another reader holds them.
                let list = Arc::make_mut(&mut events);
                for e in &page {
                    list.push(projected(e)?);
                }
            }
            if page.len() < READ_EVENTS_MAX {
                break;
            }
        }
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, entries) = &mut *guard;
        *clock += 1;
        entries.insert(grant.clone(), Entry { events: Arc::clone(&events), last_used: *clock });
        let mut total: usize = entries.values().map(|e| e.events.len()).sum();
        while total > self.events_max && entries.len() > 1 {
            let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) else { break };
            if &oldest == grant {
                break;
            }
            total -= entries.remove(&oldest).map_or(0, |e| e.events.len());
        }
        Ok(events)
    }

    /// The grant's ledger counting only events recorded at or before
    /// `known_at` (all of them when `None`).
    pub async fn ledger_known_at(
        &self,
        grant: &GrantId,
        known_at: Option<DateTime<Utc>>,
    ) -> Result<GrantLedger, ProjectionError> {
        let events = self.history(grant).await?;
        let mut ledger = GrantLedger::default();
        for p in events.iter().take_while(|p| known(p.recorded_at, known_at)) {
            ledger.apply(p);
        }
        Ok(ledger)
    }
}
