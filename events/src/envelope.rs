//! The envelope every event travels in: the business date of the fact and
//! who recorded it, why, and as part of what.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::ids::ActorId;

/// What is known about an event besides its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContext {
    /// The business date of the fact (an expenditure's is its `incurred_on`).
    pub effective_date: NaiveDate,
    /// Who recorded it.
    pub actor: ActorId,
    /// Why, in their words.
    pub reason: Option<String>,
    /// The command that produced it.
    pub command_id: Uuid,
    /// The user request it belongs to.
    pub correlation_id: Option<Uuid>,
    /// The message that caused it.
    pub causation_id: Option<Uuid>,
}

/// An event with its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<E> {
    /// The payload.
    pub event: E,
    /// The envelope.
    pub context: EventContext,
}
