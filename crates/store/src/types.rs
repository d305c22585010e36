//! The values that cross the store's boundary: stream names, versions,
//! positions, events as given by a caller and as recorded by the store.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;

/// Longest stream name the store accepts, in bytes.
pub const STREAM_ID_BYTES_MAX: usize = 200;
/// Longest event type name the store accepts, in bytes.
pub const EVENT_TYPE_BYTES_MAX: usize = 200;
/// Most events one append may carry.
pub const EVENTS_PER_APPEND_MAX: usize = 10_000;

/// The name of a stream, such as `grant-3f2a…`: 1 to 200 bytes of printable
/// ASCII with no whitespace, and never starting with `$` (reserved for the
/// store's own names, such as `$all`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Parses a stream name, refusing empty, over-long, non-printable or `$` names.
    pub fn parse(name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= STREAM_ID_BYTES_MAX
            && !name.starts_with('$')
            && name.bytes().all(|b| b.is_ascii_graphic());
        if ok { Ok(Self(name)) } else { Err(StoreError::InvalidStreamId { stream_id: name }) }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A global position in the log. The first event is at position 1; positions
/// are gapless and follow commit order. `Position::START` (0) stands before
/// the first event: reading or subscribing "after" it starts at the beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    /// Before the first event.
    pub const START: Position = Position(0);

    /// The position after this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the appender believes about the stream's current version. Versions
/// are 0-based: a stream with one event is at version 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's state.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must be at exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (None: no stream)
    /// satisfies this expectation.
    pub fn admits(self, actual: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::StreamExists => actual.is_some(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Who recorded an event, and why. Stored with every event and covered by
/// the hash chain. People are named by id, never by name, so that personal
/// data can be erased elsewhere without breaking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMetadata {
    /// The authenticated principal that issued the command.
    pub actor: String,
    /// The business date of the fact, when it has one (distinct from
    /// `recorded_at`, the moment the store committed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<chrono::NaiveDate>,
    /// Why, in the actor's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The command that produced the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<Uuid>,
    /// Ties together everything done for one user request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The message (command or event) that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// What the request that carried the command was (for an HTTP write:
    /// method, route and body digest), so that the log itself tells a retry
    /// of the same request from another request under the same command id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

/// A SHA-256 digest of a request, written as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(#[serde(with = "hex_hash")] pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", hex::encode(self.0))
    }
}

/// What the log holds for one command id: the one append that carried it.
/// A command id has at most one effect in the whole log, whatever the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCommand {
    /// The command id.
    pub command_id: Uuid,
    /// The fingerprint of the request it was recorded for; `None` for a
    /// command recorded without one (or before fingerprints were stored).
    pub fingerprint: Option<Fingerprint>,
    /// The stream its events went to.
    pub stream_id: StreamId,
    /// Position of its first event.
    pub first_position: Position,
    /// Position of its last event.
    pub last_position: Position,
}

impl RecordedCommand {
    /// Whether an append to `stream_id` with `fingerprint` is a retry of
    /// this command (rather than another request reusing its id). A command
    /// stored without a fingerprint is matched by its stream alone.
    pub fn is_retry(&self, stream_id: &StreamId, fingerprint: Option<&Fingerprint>) -> bool {
        &self.stream_id == stream_id && self.fingerprint.is_none_or(|f| Some(&f) == fingerprint)
    }
}

/// An event as a caller hands it to `append`. The store knows nothing of
/// event types beyond their name and schema version; `data` is JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id; appending the same id again is idempotent.
    pub event_id: Uuid,
    /// The event type's wire name.
    pub event_type: String,
    /// The version of the payload's schema.
    pub schema_version: u32,
    /// The payload.
    pub data: serde_json::Value,
    /// Who and why.
    pub metadata: EventMetadata,
}

impl NewEvent {
    /// An event with a fresh time-ordered (v7) id.
    pub fn new(
        event_type: impl Into<String>,
        schema_version: u32,
        data: serde_json::Value,
        metadata: EventMetadata,
    ) -> Self {
        Self { event_id: Uuid::now_v7(), event_type: event_type.into(), schema_version, data, metadata }
    }
}

/// A stored JSON document, exactly as stored: readers decode it straight
/// into their own types (one parse, no intermediate `Value`), and its text
/// is the text the hash chain covers.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredJson(Box<serde_json::value::RawValue>);

impl StoredJson {
    /// Checks that `text` is JSON and keeps it as it is.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(Self)
    }

    /// The JSON text, byte for byte as stored.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The JSON as a raw value, to embed unchanged in other JSON.
    pub fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    /// Decodes into a caller's type.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// Decodes into a generic JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        // The text was checked to be JSON when it was read.
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for StoredJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for StoredJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position (1-based, gapless, commit order).
    pub position: Position,
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version in the stream (0-based, gapless).
    pub stream_version: u64,
    /// Its unique id.
    pub event_id: Uuid,
    /// The event type's wire name.
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The payload, as stored.
    pub data: StoredJson,
    /// Who and why.
    pub metadata: EventMetadata,
    /// When the store committed it (UTC, microsecond precision), never set by a caller.
    pub recorded_at: DateTime<Utc>,
    /// The chain hash: SHA-256 of the previous hash and this event's canonical encoding.
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
}

/// What a successful append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// Position of the first event of the batch.
    pub first_position: Position,
    /// Position of the last event of the batch; a reader asking for
    /// `min_position` of this value sees the whole batch.
    pub last_position: Position,
    /// The stream's version after the append.
    pub stream_version: u64,
    /// True when nothing was appended because this append was recorded
    /// before (by its event ids, or by its command id and fingerprint): the
    /// positions and version are then the original append's.
    pub replayed: bool,
}

/// The last event of the log: what an auditor writes down to prove later
/// that the log they saw is an unchanged prefix of the log then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Position of the last event.
    pub position: Position,
    /// Its chain hash.
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.position, hex::encode(self.hash))
    }
}

/// The text [`Head`]'s `from_str` accepts, as an ECMA-262 pattern (for
/// documents that describe it): a position (at most 20 digits; one past
/// `u64::MAX` is still refused by the parse) and 64 hex digits.
pub const HEAD_PATTERN: &str = "^\\+?[0-9]{1,20}:[0-9A-Fa-f]{64}$";

impl std::str::FromStr for Head {
    type Err = StoreError;

    /// Parses `POSITION:HASH` (hash as 64 hex digits).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::InvalidHead { text: s.to_owned() };
        let (pos, hash) = s.split_once(':').ok_or_else(bad)?;
        let position = Position(pos.parse().map_err(|_| bad())?);
        let mut out = [0u8; 32];
        hex::decode_to_slice(hash, &mut out).map_err(|_| bad())?;
        Ok(Head { position, hash: out })
    }
}

/// Which way to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the given version towards the newest.
    Forward,
    /// From the given version towards the oldest.
    Backward,
}

/// Where a stream read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    /// Version 0 (forward) or the newest version (backward).
    End,
    /// This version, inclusive.
    Version(u64),
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// Every event's hash recomputes and positions are gapless.
    Intact {
        /// Events checked.
        events: u64,
        /// The head; `None` for an empty log.
        head: Option<Head>,
    },
    /// The first position at which the log is not what the chain says.
    Broken {
        /// The first bad position.
        position: Position,
        /// What is wrong there.
        problem: ChainProblem,
    },
}

/// How the chain is broken at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// The stored hash differs from the one recomputed from the content.
    HashMismatch {
        /// Hash stored with the event.
        stored: [u8; 32],
        /// Hash recomputed from the previous hash and the content.
        computed: [u8; 32],
    },
    /// An event is missing: the next stored position is further on.
    Gap {
        /// The position that was found instead.
        found: Position,
    },
    /// The stored row cannot be decoded as an event at all.
    Undecodable {
        /// Why.
        detail: String,
    },
    /// An auditor's earlier head is not a prefix of this log.
    NotAPrefix {
        /// The head the auditor recorded.
        expected: Head,
        /// The hash found at that position now, if the position still exists.
        found: Option<[u8; 32]>,
    },
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_refuse_what_cannot_be_a_name() {
        assert!(StreamId::parse("grant-1").is_ok());
        for bad in ["", "$all", "has space", "tab\there", "é"] {
            assert!(StreamId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(StreamId::parse("x".repeat(STREAM_ID_BYTES_MAX)).is_ok());
        assert!(StreamId::parse("x".repeat(STREAM_ID_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn expected_version_admits_exactly_what_it_says() {
        use ExpectedVersion::*;
        assert!(Any.admits(None) && Any.admits(Some(3)));
        assert!(NoStream.admits(None) && !NoStream.admits(Some(0)));
        assert!(!StreamExists.admits(None) && StreamExists.admits(Some(0)));
        assert!(Exact(2).admits(Some(2)) && !Exact(2).admits(Some(1)) && !Exact(0).admits(None));
    }

    #[test]
    fn head_round_trips_through_text() {
        let head = Head { position: Position(42), hash: [0xab; 32] };
        let text = head.to_string();
        assert_eq!(text, format!("42:{}", "ab".repeat(32)));
        assert_eq!(text.parse::<Head>().unwrap(), head);
        assert!("42".parse::<Head>().is_err());
        assert!("x:00".parse::<Head>().is_err());
        assert!(format!("1:{}", "ab".repeat(31)).parse::<Head>().is_err());
    }
}
