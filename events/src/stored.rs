//! Reading an event back from the log: the one place that turns what the
//! log keeps (type name, schema version, payload text, metadata) into an
//! [`Envelope`].
//!
//! The write side (`domain::handler`, rebuilding a grant's state) and the
//! read side (`projections::fold`, every view) both read through here, so
//! the rules of reading a stored event are written once: the payload is
//! decoded and upcast by [`GrantEvent::decode`]; a fact recorded without a
//! business date is dated by the day it was recorded; an event recorded
//! without a command id carries the nil id; stored ids (the actor among
//! them) read as written, even where today's input rules are stricter.
//!
//! `events` does not depend on `store` (the vocabulary knows no storage, and
//! `store` knows no event type), so a caller hands the stored parts over as
//! a [`Stored`]: a plain struct of borrowed fields, so the compiler makes
//! every caller give every part.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::codec::DecodeError;
use crate::envelope::{Envelope, EventContext};
use crate::grant::GrantEvent;
use crate::ids::{ActorId, IdError, reading_stored};

/// A stored event's parts, as the log hands them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    /// The stored type name (the event's wire name).
    pub event_type: &'a str,
    /// The payload's stored schema version.
    pub schema_version: u32,
    /// The payload, exactly as stored.
    pub data: &'a str,
    /// When the log committed it.
    pub recorded_at: DateTime<Utc>,
    /// The metadata's actor.
    pub actor: &'a str,
    /// The metadata's business date, if it was given one.
    pub effective_date: Option<NaiveDate>,
    /// The metadata's reason.
    pub reason: Option<&'a str>,
    /// The metadata's command id.
    pub command_id: Option<Uuid>,
    /// The metadata's correlation id.
    pub correlation_id: Option<Uuid>,
    /// The metadata's causation id.
    pub causation_id: Option<Uuid>,
}

/// Why a stored event cannot be read. Its text is the inner error's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredError {
    /// The payload does not decode.
    #[error(transparent)]
    Payload(#[from] DecodeError),
    /// The metadata's actor is not an id.
    #[error(transparent)]
    Actor(#[from] IdError),
}

impl Stored<'_> {
    /// The event's envelope without its payload.
    pub fn context(&self) -> Result<EventContext, IdError> {
        Ok(EventContext {
            effective_date: self.effective_date.unwrap_or_else(|| self.recorded_at.date_naive()),
            // Read as written (an actor named before `.` and `..` were refused).
            actor: reading_stored(|| ActorId::parse(self.actor))?,
            reason: self.reason.map(str::to_owned),
            command_id: self.command_id.unwrap_or(Uuid::nil()),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
        })
    }

    /// The stored grant event with its envelope.
    pub fn grant_event(&self) -> Result<Envelope<GrantEvent>, StoredError> {
        let event = GrantEvent::decode(self.event_type, self.schema_version, self.data)?;
        Ok(Envelope { event, context: self.context()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::GrantClosed;

    fn closed() -> Stored<'static> {
        Stored {
            event_type: "GrantClosed",
            schema_version: 1,
            data: r#"{"closed_on":"2023-01-31"}"#,
            recorded_at: DateTime::from_timestamp(1_675_209_600, 0).unwrap(), // 2023-02-01
            actor: "pm-1",
            effective_date: Some(NaiveDate::from_ymd_opt(2023, 1, 31).unwrap()),
            reason: Some("final report"),
            command_id: Some(Uuid::from_u128(7)),
            correlation_id: Some(Uuid::from_u128(8)),
            causation_id: None,
        }
    }

    #[test]
    fn an_event_written_with_an_envelope_reads_back_as_written() {
        let date = |d| NaiveDate::from_ymd_opt(2023, 1, d).unwrap();
        let e = closed().grant_event().unwrap();
        assert_eq!(e.event, GrantEvent::GrantClosed(GrantClosed { closed_on: date(31) }));
        let written = EventContext {
            effective_date: date(31),
            actor: ActorId::parse("pm-1").unwrap(),
            reason: Some("final report".to_owned()),
            command_id: Uuid::from_u128(7),
            correlation_id: Some(Uuid::from_u128(8)),
            causation_id: None,
        };
        assert_eq!(e.context, written);
    }

    #[test]
    fn missing_metadata_reads_as_the_recorded_day_and_the_nil_command() {
        let bare = Stored { effective_date: None, command_id: None, reason: None, ..closed() };
        let c = bare.context().unwrap();
        assert_eq!(c.effective_date, NaiveDate::from_ymd_opt(2023, 2, 1).unwrap());
        assert_eq!((c.command_id, c.reason), (Uuid::nil(), None));
    }

    #[test]
    fn stored_ids_read_as_written() {
        // `..` is refused from clients today, but an older log may hold it.
        assert!(ActorId::parse("..").is_err());
        assert_eq!(Stored { actor: "..", ..closed() }.context().unwrap().actor.as_str(), "..");
        let reversed = Stored { event_type: "ExpenditureReversed", data: r#"{"expenditure_id":".."}"#, ..closed() };
        assert!(reversed.grant_event().is_ok());
    }

    #[test]
    fn unreadable_parts_say_why_in_the_decoders_words() {
        let unknown = Stored { event_type: "GrantExploded", ..closed() }.grant_event().unwrap_err();
        assert_eq!(unknown.to_string(), r#"unknown event type "GrantExploded""#);
        let newer = Stored { schema_version: 2, ..closed() }.grant_event().unwrap_err();
        assert_eq!(newer.to_string(), "GrantClosed v2 is newer than this build's v1");
        let actor = Stored { actor: "a b", ..closed() }.grant_event().unwrap_err();
        assert_eq!(actor, StoredError::Actor(ActorId::parse("a b").unwrap_err()));
        assert_eq!(actor.to_string(), ActorId::parse("a b").unwrap_err().to_string());
    }
}
