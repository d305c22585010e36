//! The command handler's grant cache: grants' states, bounded by a count of
//! events and evicted least recently used first.
//!
//! Each grant has at most one live entry: an entry leaves the map only when
//! no task holds it (its `Arc` is held by the map alone, checked under the
//! map's lock, which is also the only place a new entry is made). So a task
//! that waits for a grant's lock always gets the entry every other task
//! decides on, never a copy left stale by an eviction; and an entry made
//! after an eviction is loaded from the log after every append this process
//! made through the evicted one had returned. A grant in use (a command in
//! flight, or a task waiting for it) is never evicted, even when the cache
//! is over its limit: the limit is restored when it is let go.
//!
//! The weight of an entry is recorded when its lease ends (also when the
//! task holding it is cancelled), under the map's lock, so the sum the
//! limit is checked against is the sum of what the entries hold.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard};

use events::GrantId;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// What an entry costs, in events.
pub(super) trait Weigh: Default {
    /// The events it holds; 0 for a grant the log does not have, which is
    /// then not kept (probing ids costs no memory).
    fn weight(&self) -> usize;
}

/// How full the cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// The events held: the sum over cached grants of the events folded
    /// into each one's state.
    pub events: usize,
    /// The grants held.
    pub grants: usize,
}

struct Slot<T> {
    entry: Arc<Mutex<T>>,
    weight: usize,
    /// When it was last leased (a tick of [`Slots::tick`]).
    used: u64,
}

struct Slots<T> {
    map: HashMap<GrantId, Slot<T>>,
    /// The grants by when they were last leased, oldest first.
    order: BTreeMap<u64, GrantId>,
    tick: u64,
    events: usize,
}

/// Grants' states, at most `events_max` events of them when none is in use.
pub(super) struct GrantCache<T> {
    slots: SyncMutex<Slots<T>>,
    events_max: usize,
}

impl<T: Weigh> GrantCache<T> {
    /// An empty cache.
    pub(super) fn new(events_max: usize) -> Self {
        let slots = Slots { map: HashMap::new(), order: BTreeMap::new(), tick: 0, events: 0 };
        Self { slots: SyncMutex::new(slots), events_max }
    }

    /// The most events kept.
    pub(super) fn events_max(&self) -> usize {
        self.events_max
    }

    fn slots(&self) -> MutexGuard<'_, Slots<T>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How full the cache is.
    pub(super) fn stats(&self) -> CacheStats {
        let slots = self.slots();
        CacheStats { events: slots.events, grants: slots.map.len() }
    }

    /// The grant's entry, locked (made empty if the grant is not cached).
    pub(super) async fn lease(&self, grant: &GrantId) -> Lease<'_, T> {
        let entry = {
            let mut slots = self.slots();
            slots.tick += 1;
            let tick = slots.tick;
            let Slots { map, order, .. } = &mut *slots;
            let slot = map.entry(grant.clone()).or_insert_with(|| Slot { entry: Arc::default(), weight: 0, used: 0 });
            order.remove(&slot.used);
            slot.used = tick;
            order.insert(tick, grant.clone());
            Arc::clone(&slot.entry)
        };
        let guard = entry.lock_owned().await;
        Lease { cache: self, grant: grant.clone(), guard: Some(guard) }
    }

    /// Records what `guard`'s entry weighs now, lets it go, and evicts
    /// least recently used entries that no one holds while over the limit.
    fn release(&self, grant: &GrantId, guard: OwnedMutexGuard<T>) {
        let weight = guard.weight();
        let mut slots = self.slots();
        let entry = Arc::clone(OwnedMutexGuard::mutex(&guard));
        drop(guard);
        let Slots { map, order, events, .. } = &mut *slots;
        if let Some(slot) = map.get_mut(grant)
            && Arc::ptr_eq(&slot.entry, &entry)
        {
            *events = events.saturating_sub(slot.weight) + weight;
            slot.weight = weight;
            drop(entry);
            // A grant the log does not have is not kept.
            if weight == 0 && Arc::strong_count(&slot.entry) == 1 {
                order.remove(&slot.used);
                map.remove(grant);
            }
        }
        slots.trim(self.events_max);
    }
}

impl<T> Slots<T> {
    /// Evicts the least recently used entries that no one holds until the
    /// events held are within `events_max` (or only held entries are left).
    fn trim(&mut self, events_max: usize) {
        if self.events <= events_max {
            return;
        }
        let mut victims = Vec::new();
        let mut events = self.events;
        for (used, grant) in &self.order {
            if events <= events_max {
                break;
            }
            if let Some(slot) = self.map.get(grant)
                // Held only by the map: no task has it or waits for it, and
                // none can get it without this lock.
                && Arc::strong_count(&slot.entry) == 1
            {
                events -= slot.weight;
                victims.push((*used, grant.clone()));
            }
        }
        for (used, grant) in victims {
            self.order.remove(&used);
            self.map.remove(&grant);
        }
        self.events = events;
    }
}

/// A grant's entry, locked for one task; its weight is recorded and the
/// limit enforced when it is dropped.
pub(super) struct Lease<'a, T: Weigh> {
    cache: &'a GrantCache<T>,
    grant: GrantId,
    /// `Some` until dropped.
    guard: Option<OwnedMutexGuard<T>>,
}

impl<'a, T: Weigh> Lease<'a, T> {
    /// Keeps the leased entry in the cache (not evicted) until the pin is
    /// dropped, also after the lease ends; the limit is enforced again then.
    pub(super) fn pin(&self) -> Pinned<'a, T> {
        let guard = self.guard.as_ref().unwrap_or_else(|| unreachable!("a lease is used after it was dropped"));
        Pinned { cache: self.cache, entry: Some(Arc::clone(OwnedMutexGuard::mutex(guard))) }
    }
}

/// An entry kept from eviction (an eviction takes only entries that the
/// map alone holds), without its lock.
pub(super) struct Pinned<'a, T: Weigh> {
    cache: &'a GrantCache<T>,
    /// `Some` until dropped.
    entry: Option<Arc<Mutex<T>>>,
}

impl<T: Weigh> Drop for Pinned<'_, T> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            // Let go under the map's lock, so the trim sees it let go.
            let mut slots = self.cache.slots();
            drop(entry);
            slots.trim(self.cache.events_max);
        }
    }
}

impl<T: Weigh> Deref for Lease<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // The guard is taken only in `drop`.
        self.guard.as_deref().unwrap_or_else(|| unreachable!("a lease is used after it was dropped"))
    }
}

impl<T: Weigh> DerefMut for Lease<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().unwrap_or_else(|| unreachable!("a lease is used after it was dropped"))
    }
}

impl<T: Weigh> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            self.cache.release(&self.grant, guard);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Default)]
    struct Events(usize);

    impl Weigh for Events {
        fn weight(&self) -> usize {
            self.0
        }
    }

    fn g(id: &str) -> GrantId {
        GrantId::parse(id).unwrap()
    }

    async fn put(cache: &GrantCache<Events>, id: &str, events: usize) {
        cache.lease(&g(id)).await.0 = events;
    }

    #[tokio::test]
    async fn the_least_recently_used_grant_goes_first() {
        let cache = GrantCache::new(10);
        put(&cache, "a", 4).await;
        put(&cache, "b", 4).await;
        assert_eq!(cache.stats(), CacheStats { events: 8, grants: 2 });
        let _ = cache.lease(&g("a")).await; // a is now more recent than b
        put(&cache, "c", 4).await;
        assert_eq!(cache.stats(), CacheStats { events: 8, grants: 2 });
        assert_eq!(cache.lease(&g("a")).await.0, 4, "a was used after b, so b went");
        assert_eq!(cache.lease(&g("b")).await.0, 0, "b was evicted: an empty entry again");
    }

    #[tokio::test]
    async fn a_grant_in_use_is_not_evicted_and_the_limit_holds_once_it_is_let_go() {
        let cache = GrantCache::new(10);
        put(&cache, "a", 8).await;
        let mut held = cache.lease(&g("a")).await;
        put(&cache, "b", 8).await;
        // a is older but held: b, the only one free, went instead.
        assert_eq!(cache.stats(), CacheStats { events: 8, grants: 1 });
        held.0 = 9;
        drop(held);
        assert_eq!(cache.stats(), CacheStats { events: 9, grants: 1 });
        assert_eq!(cache.lease(&g("a")).await.0, 9, "the entry a task held is the one kept");
    }

    #[tokio::test]
    async fn a_grant_larger_than_the_limit_is_dropped_after_use() {
        let cache = GrantCache::new(10);
        put(&cache, "a", 4).await;
        put(&cache, "big", 11).await;
        assert_eq!(cache.stats(), CacheStats { events: 0, grants: 0 });
    }

    #[tokio::test]
    async fn an_empty_grant_is_not_kept() {
        let cache = GrantCache::new(10);
        put(&cache, "nothing", 0).await;
        assert_eq!(cache.stats(), CacheStats::default());
    }

    #[tokio::test]
    async fn a_cancelled_task_still_records_what_its_entry_weighs() {
        let cache: GrantCache<Events> = GrantCache::new(10);
        let work = async {
            let mut lease = cache.lease(&g("a")).await;
            lease.0 = 7;
            std::future::pending::<()>().await;
        };
        // The work gets its lease on its first poll, then waits for ever:
        // it is dropped, as a request's future is when its client leaves.
        tokio::select! {
            biased;
            () = work => {}
            () = std::future::ready(()) => {}
        }
        assert_eq!(cache.stats(), CacheStats { events: 7, grants: 1 });
    }
}
