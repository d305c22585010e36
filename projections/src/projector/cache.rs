//! The ledgers in memory: a cache bounded by a number of facts (the rows
//! a ledger has in the read-model file), least recently used first out.
//!
//! A ledger the follower changed is *dirty* until the writer has committed
//! the position it changed it at: until then the file does not hold it, so
//! it is pinned (never evicted). A clean ledger is the file's, and can be
//! dropped and read again. So a ledger not in the cache is always the
//! file's latest, which is what makes loading on demand safe (see
//! `Projector::ledger` for the order of locks that keeps a load from
//! putting back an older copy).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use events::{GrantId, ProgrammeId};

use crate::ledger::GrantLedger;

/// The default bound of the ledger cache, in facts. A fact costs about
/// 500 bytes in memory (measured: docs/benchmarks.md, "Scale": 1.0 GB of
/// RSS with the cache full at ten million events), so the default keeps
/// about 1 GB of ledgers at most; a grant's ledger is one fact per line,
/// expenditure, commitment, milestone, ... plus its header.
pub const LEDGER_CACHE_FACTS_MAX: usize = 2_000_000;

struct Slot {
    ledger: Arc<GrantLedger>,
    weight: usize,
    used: u64,
    /// The position the follower last changed it at, until the writer has
    /// committed that position (0: clean).
    dirty: u64,
}

/// The cache.
pub(super) struct Ledgers {
    slots: HashMap<GrantId, Slot>,
    /// Use ticks, oldest first.
    order: BTreeMap<u64, GrantId>,
    tick: u64,
    weight: usize,
    limit: usize,
    loads: u64,
    evictions: u64,
}

/// What the cache holds, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Ledgers held.
    pub ledgers: usize,
    /// Facts held (the weight the limit bounds).
    pub facts: usize,
    /// Facts of ledgers the file does not hold yet (pinned).
    pub dirty_facts: usize,
    /// The limit.
    pub facts_max: usize,
    /// Ledgers read from the file (or the log) since the start.
    pub loads: u64,
    /// Ledgers dropped to stay under the limit since the start.
    pub evictions: u64,
}

impl Ledgers {
    pub(super) fn new(limit: usize) -> Self {
        Self { slots: HashMap::new(), order: BTreeMap::new(), tick: 0, weight: 0, limit, loads: 0, evictions: 0 }
    }

    fn touch(&mut self, grant: &GrantId) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.slots.get_mut(grant) {
            self.order.remove(&slot.used);
            slot.used = tick;
            self.order.insert(tick, grant.clone());
        }
    }

    /// A cached ledger (marking it used).
    pub(super) fn get(&mut self, grant: &GrantId) -> Option<Arc<GrantLedger>> {
        let found = self.slots.get(grant).map(|s| Arc::clone(&s.ledger))?;
        self.touch(grant);
        Some(found)
    }

    /// Keeps a ledger read from the file (or folded from the log) unless
    /// one is cached already, which is then the newer and is returned; then
    /// evicts down to the limit.
    pub(super) fn insert_loaded(&mut self, grant: &GrantId, ledger: Arc<GrantLedger>) -> Arc<GrantLedger> {
        if let Some(found) = self.get(grant) {
            return found;
        }
        self.put(grant, Arc::clone(&ledger), 0);
        self.loads += 1;
        self.evict();
        ledger
    }

    /// Puts back, without evicting anything, a ledger loaded for the page
    /// being applied that was evicted meanwhile (the file's latest still:
    /// only the follower changes ledgers).
    pub(super) fn restore(&mut self, grant: &GrantId, ledger: &Arc<GrantLedger>) {
        if !self.slots.contains_key(grant) {
            self.put(grant, Arc::clone(ledger), 0);
        }
    }

    /// Whether a ledger is cached (not marking it used).
    #[cfg(test)]
    fn contains(&self, grant: &GrantId) -> bool {
        self.slots.contains_key(grant)
    }

    /// A cached ledger, not marking it used.
    pub(super) fn peek(&self, grant: &GrantId) -> Option<&GrantLedger> {
        self.slots.get(grant).map(|s| &*s.ledger)
    }

    fn put(&mut self, grant: &GrantId, ledger: Arc<GrantLedger>, dirty: u64) {
        self.tick += 1;
        let weight = ledger.fact_count();
        self.weight += weight;
        self.order.insert(self.tick, grant.clone());
        if let Some(old) = self.slots.insert(grant.clone(), Slot { ledger, weight, used: self.tick, dirty }) {
            self.weight -= old.weight;
            self.order.remove(&old.used);
        }
    }

    /// The ledger to change for an event at `position` (a new one for a
    /// grant never seen), copied if a reader holds it, and pinned until
    /// `position` is committed. The caller has loaded every ledger the
    /// file holds for the page first.
    pub(super) fn change(&mut self, grant: &GrantId, position: u64, f: impl FnOnce(&mut GrantLedger)) {
        if !self.slots.contains_key(grant) {
            self.put(grant, Arc::new(GrantLedger::default()), position);
        }
        self.touch(grant);
        if let Some(slot) = self.slots.get_mut(grant) {
            f(Arc::make_mut(&mut slot.ledger));
            slot.dirty = position;
            let weight = slot.ledger.fact_count();
            self.weight = self.weight + weight - slot.weight;
            slot.weight = weight;
        }
    }

    /// Ledgers changed up to `position` are in the file now: they may go.
    pub(super) fn committed(&mut self, position: u64) {
        for slot in self.slots.values_mut() {
            if slot.dirty != 0 && slot.dirty <= position {
                slot.dirty = 0;
            }
        }
        self.evict();
    }

    /// Drops the least recently used clean ledgers until the cache is
    /// within its limit (dirty ones stay: the file does not hold them yet).
    pub(super) fn evict(&mut self) {
        if self.weight <= self.limit {
            return;
        }
        let mut gone = Vec::new();
        let mut weight = self.weight;
        for (tick, grant) in &self.order {
            if weight <= self.limit {
                break;
            }
            if let Some(slot) = self.slots.get(grant)
                && slot.dirty == 0
            {
                weight -= slot.weight;
                gone.push((*tick, grant.clone()));
            }
        }
        for (tick, grant) in gone {
            self.order.remove(&tick);
            self.slots.remove(&grant);
            self.evictions += 1;
        }
        self.weight = weight;
    }

    /// Whether the ledgers held weigh more than the limit (only dirty
    /// ones can keep it so: a commit lets them go).
    pub(super) fn over_limit(&self) -> bool {
        self.weight > self.limit
    }

    /// Every cached grant of `programme`.
    pub(super) fn of_programme(&self, programme: &ProgrammeId) -> Vec<GrantId> {
        self.slots
            .iter()
            .filter(|(_, s)| s.ledger.grant.as_ref().is_some_and(|g| &g.programme == programme))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every cached grant.
    pub(super) fn grants(&self) -> Vec<GrantId> {
        self.slots.keys().cloned().collect()
    }

    /// Forgets every ledger (after the file's tables were replaced).
    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.order.clear();
        self.weight = 0;
    }

    pub(super) fn stats(&self) -> CacheStats {
        CacheStats {
            ledgers: self.slots.len(),
            facts: self.weight,
            dirty_facts: self.slots.values().filter(|s| s.dirty != 0).map(|s| s.weight).sum(),
            facts_max: self.limit,
            loads: self.loads,
            evictions: self.evictions,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn gid(n: u32) -> GrantId {
        GrantId::parse(format!("G{n}")).unwrap()
    }

    #[test]
    fn the_least_recently_used_clean_ledgers_go_first_and_dirty_ones_stay() {
        let mut c = Ledgers::new(2);
        c.insert_loaded(&gid(1), Arc::default());
        c.insert_loaded(&gid(2), Arc::default());
        assert!(c.get(&gid(1)).is_some()); // G2 is now the oldest
        c.insert_loaded(&gid(3), Arc::default());
        assert!(c.contains(&gid(1)) && !c.contains(&gid(2)) && c.contains(&gid(3)));
        // A dirty ledger stays past the limit until its position is committed.
        c.change(&gid(4), 10, |l| l.position = 10);
        c.change(&gid(5), 11, |l| l.position = 11);
        c.change(&gid(6), 12, |l| l.position = 12);
        c.evict();
        assert_eq!(c.stats().facts, 3, "G1 and G3 gave way; the dirty ones stay");
        c.committed(11);
        assert_eq!(c.stats().ledgers, 2);
        assert!(c.contains(&gid(6)), "G6 is not in the file yet");
        assert_eq!(c.stats().evictions, 4);
        // A loaded copy never replaces a cached one.
        let kept = c.insert_loaded(&gid(6), Arc::default());
        assert_eq!(kept.position, 12);
    }
}
