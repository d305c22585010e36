//! The grant domain: commands, the rules they must keep, and the events
//! they produce.
//!
//! `decide` and `evolve` (in [`grant`] and [`programme`]) are pure: no I/O, no
//! clock, no random ids; the date, the actor and looked-up facts come in a
//! [`Context`]. The [`handler`] is the one place that loads, decides and
//! appends through the event log.

pub mod error;
pub mod grant;
pub mod handler;
pub mod programme;
pub mod scenario;

/// The funders' rule sets (data shared with the projections).
pub use events::rules;

use chrono::NaiveDate;
use events::ActorId;

pub use error::DomainError;

/// What a decision may know beyond the state and the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Who issues the command.
    pub actor: ActorId,
    /// Why, in their words.
    pub reason: Option<String>,
    /// The business date of the fact.
    pub effective_date: NaiveDate,
    /// The calendar day the command is issued (milestones cannot be
    /// achieved after it).
    pub today: NaiveDate,
    /// Whether the grant's programme exists (looked up by the handler).
    pub programme_exists: bool,
}
