//! Walking the hash chain: shared by every backend's `verify`, so that each
//! backend only has to hand over its stored rows in position order.

use crate::hash::{CanonicalEvent, GENESIS};
use crate::types::{ChainProblem, Head, Position, VerifyOutcome};

/// Checks stored events one by one, in position order.
#[derive(Debug)]
pub struct ChainChecker {
    previous: [u8; 32],
    expected_position: u64,
    events: u64,
}

impl Default for ChainChecker {
    fn default() -> Self {
        Self { previous: GENESIS, expected_position: 1, events: 0 }
    }
}

impl ChainChecker {
    /// A checker at the start of the log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A checker that resumes after `position`, whose stored hash is
    /// `previous` (GENESIS before the first event), having checked `events`
    /// events before. Every event's check needs only its predecessor's
    /// stored hash, so ranges of the log can be checked apart and at once:
    /// the chain is intact when every range is and they meet.
    pub fn resume(position: u64, previous: [u8; 32], events: u64) -> Self {
        Self { previous, expected_position: position + 1, events }
    }

    /// Checks the next stored event; on failure, says where and what.
    pub fn check(&mut self, event: &CanonicalEvent<'_>, stored_hash: &[u8]) -> Result<(), VerifyOutcome> {
        let position = Position(event.position);
        if event.position != self.expected_position {
            return Err(VerifyOutcome::Broken {
                position: Position(self.expected_position),
                problem: ChainProblem::Gap { found: position },
            });
        }
        let computed = event.chain_hash(&self.previous);
        if stored_hash != computed {
            let mut stored = [0u8; 32];
            let n = stored_hash.len().min(32);
            stored[..n].copy_from_slice(&stored_hash[..n]);
            return Err(VerifyOutcome::Broken { position, problem: ChainProblem::HashMismatch { stored, computed } });
        }
        self.previous = computed;
        self.expected_position += 1;
        self.events += 1;
        Ok(())
    }

    /// Events checked so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The head so far; `None` before the first event.
    pub fn head(&self) -> Option<Head> {
        (self.events > 0).then(|| Head { position: Position(self.expected_position - 1), hash: self.previous })
    }

    /// The outcome once every event was checked, given the hash found now
    /// at the auditor's earlier head (if one was given).
    pub fn finish(self, since: Option<(Head, Option<[u8; 32]>)>) -> VerifyOutcome {
        if let Some((expected, found)) = since
            && found != Some(expected.hash)
        {
            return VerifyOutcome::Broken {
                position: expected.position,
                problem: ChainProblem::NotAPrefix { expected, found },
            };
        }
        VerifyOutcome::Intact { events: self.events, head: self.head() }
    }
}
