//! Running sums of a ledger's money facts as of every fact, kept up to date
//! fact by fact as the ledger changes ([`GrantLedger::apply`]), so that a
//! grant's standing (its portfolio figures) costs the same whatever the
//! number of its expenditures and commitments.
//!
//! The sums are keyed by line and by commitment whether or not that line
//! or commitment exists yet, and each fact's share depends only on the fact
//! itself and on facts the sums keep, so they do not depend on the order
//! the facts came in (a ledger read from the file comes kind by kind).
//! They are the line totals of [`GrantLedger::line_totals`] as of every
//! fact; a property test holds the two equal.

use std::collections::BTreeMap;

use events::grant::GrantEvent;
use events::{CommitmentId, ExpenditureId, LineId, Money, MoneyError, ReallocationId};

use crate::ledger::GrantLedger;

/// The sums. They are derived data: two tallies always compare equal, so
/// that a ledger's equality is that of its facts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    /// Approved reallocations' deltas, by line.
    reallocated: BTreeMap<LineId, Money>,
    /// Expenditures not reversed, by line.
    spent: BTreeMap<LineId, Money>,
    /// Open commitments less what expenditures not reversed liquidated of
    /// them, by the commitment's line.
    committed: BTreeMap<LineId, Money>,
    /// What expenditures not reversed liquidated, by commitment.
    liquidated: BTreeMap<CommitmentId, Money>,
    /// The numbers of reallocations, commitments and expenditures it was
    /// last brought up to date with: a ledger changed some other way (its
    /// facts are public) no longer matches, and its sums are not used.
    seen: (usize, usize, usize),
    /// An arithmetic failure (a currency mix, an overflow): the sums are
    /// not to be used.
    failed: bool,
}

impl PartialEq for Tally {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Tally {}

/// A money fact one event changes.
#[derive(Debug, Clone)]
pub(crate) enum MoneyFact {
    Reallocation(ReallocationId),
    Commitment(CommitmentId),
    Expenditure(ExpenditureId),
}

impl MoneyFact {
    /// The money fact `event` changes, if any.
    pub(crate) fn of(event: &GrantEvent) -> Option<Self> {
        use GrantEvent as E;
        Some(match event {
            E::ReallocationRequested(e) => Self::Reallocation(e.reallocation_id.clone()),
            E::ReallocationApproved(e) => Self::Reallocation(e.reallocation_id.clone()),
            E::ReallocationRejected(e) => Self::Reallocation(e.reallocation_id.clone()),
            E::CommitmentRaised(e) => Self::Commitment(e.commitment_id.clone()),
            E::CommitmentClosed(e) => Self::Commitment(e.commitment_id.clone()),
            E::ExpenditureRecorded(e) => Self::Expenditure(e.expenditure_id.clone()),
            E::ExpenditureReversed(e) => Self::Expenditure(e.expenditure_id.clone()),
            _ => return None,
        })
    }
}

/// In or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sign {
    In,
    Out,
}

fn add(map: &mut BTreeMap<LineId, Money>, key: &LineId, amount: Money, sign: Sign) -> Result<(), MoneyError> {
    let signed = if sign == Sign::In { amount } else { amount.negated() };
    match map.get_mut(key) {
        Some(sum) => *sum = sum.checked_add(&signed)?,
        None => {
            map.insert(key.clone(), signed);
        }
    }
    Ok(())
}

fn fingerprint(ledger: &GrantLedger) -> (usize, usize, usize) {
    (ledger.reallocations.len(), ledger.commitments.len(), ledger.expenditures.len())
}

impl Tally {
    /// The sums of every fact of `ledger`, worked out afresh.
    pub(crate) fn of(ledger: &GrantLedger) -> Self {
        let mut tally = Tally::default();
        let facts = ledger
            .reallocations
            .keys()
            .map(|id| MoneyFact::Reallocation(id.clone()))
            .chain(ledger.commitments.keys().map(|id| MoneyFact::Commitment(id.clone())))
            .chain(ledger.expenditures.keys().map(|id| MoneyFact::Expenditure(id.clone())));
        for fact in facts {
            tally.count(ledger, &fact, Sign::In);
        }
        tally.seen = fingerprint(ledger);
        tally
    }

    /// Counts `fact`, as `ledger` holds it now, in or out.
    pub(crate) fn count(&mut self, ledger: &GrantLedger, fact: &MoneyFact, sign: Sign) {
        if self.failed {
            return;
        }
        if let Err(_overflow_or_mix) = self.try_count(ledger, fact, sign) {
            self.failed = true;
        }
    }

    /// Marks the sums as brought up to date with `ledger`'s facts.
    pub(crate) fn settle(&mut self, ledger: &GrantLedger) {
        self.seen = fingerprint(ledger);
    }

    fn try_count(&mut self, ledger: &GrantLedger, fact: &MoneyFact, sign: Sign) -> Result<(), MoneyError> {
        match fact {
            MoneyFact::Reallocation(id) => {
                let Some(r) = ledger.reallocations.get(id) else { return Ok(()) };
                if r.decided.as_ref().is_some_and(|d| d.approved) {
                    for d in &r.deltas {
                        add(&mut self.reallocated, &d.line, d.amount, sign)?;
                    }
                }
            }
            MoneyFact::Commitment(id) => {
                let Some(c) = ledger.commitments.get(id) else { return Ok(()) };
                if c.closed_on.is_none() {
                    let open = match self.liquidated.get(id) {
                        Some(liquidated) => c.amount.checked_sub(liquidated)?,
                        None => c.amount,
                    };
                    add(&mut self.committed, &c.line, open, sign)?;
                }
            }
            MoneyFact::Expenditure(id) => {
                let Some(x) = ledger.expenditures.get(id) else { return Ok(()) };
                if x.reversed_on.is_some() {
                    return Ok(());
                }
                add(&mut self.spent, &x.line, x.amount, sign)?;
                if let Some((cid, amount)) = &x.liquidates {
                    let signed = if sign == Sign::In { *amount } else { amount.negated() };
                    match self.liquidated.get_mut(cid) {
                        Some(sum) => *sum = sum.checked_add(&signed)?,
                        None => {
                            self.liquidated.insert(cid.clone(), signed);
                        }
                    }
                    if let Some(c) = ledger.commitments.get(cid).filter(|c| c.closed_on.is_none()) {
                        add(
                            &mut self.committed,
                            &c.line,
                            *amount,
                            if sign == Sign::In { Sign::Out } else { Sign::In },
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether an arithmetic failure made the sums unusable (until they
    /// are worked out afresh).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The sums for `ledger`, if they are up to date with it and sound.
    pub(crate) fn usable(&self, ledger: &GrantLedger) -> Option<&Self> {
        (!self.failed && self.seen == fingerprint(ledger)).then_some(self)
    }

    /// Approved reallocations' deltas on `line`.
    pub(crate) fn reallocated(&self, line: &LineId) -> Option<&Money> {
        self.reallocated.get(line)
    }

    /// Expenditures not reversed on `line`.
    pub(crate) fn spent(&self, line: &LineId) -> Option<&Money> {
        self.spent.get(line)
    }

    /// Open commitments on `line`, less what they liquidated.
    pub(crate) fn committed(&self, line: &LineId) -> Option<&Money> {
        self.committed.get(line)
    }
}
