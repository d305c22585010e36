//! The auditor's export: the log as NDJSON, one event per line in position
//! order, carrying every hashed field as stored (so the chain can be
//! recomputed with no database) next to convenience fields for readers
//! (which the verifier checks against the hashed texts). Optionally each
//! line is a CloudEvents 1.0 JSON event instead.
//!
//! [`verify_export`] checks an export on its own: the chain, the positions,
//! the stream versions, the convenience fields, and optionally the head the
//! export must end at and an earlier head it must contain. `docs/audit.md`
//! specifies both line formats and every rule; `docs/verify_export.py` is an
//! independent verifier that must agree with this one.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::hash::{CanonicalEvent, GENESIS};
use crate::types::{Head, Position};

/// Version of the export line formats documented in `docs/audit.md`.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// The metadata members repeated on every native line for readers, in order.
pub const METADATA_FIELDS: [&str; 6] =
    ["actor", "effective_date", "reason", "command_id", "correlation_id", "causation_id"];

/// The CloudEvents extension attribute carrying each of [`METADATA_FIELDS`].
const METADATA_ATTRIBUTES: [&str; 6] =
    ["actor", "effectivedate", "reason", "commandid", "correlationid", "causationid"];

/// One stored row, as stored: nothing is validated, so that an export of a
/// tampered log carries the tampering to the verifier.
///
/// The only rewriting: text that is not UTF-8 (impossible unless the file
/// was edited) is carried with U+FFFD replacement characters, which changes
/// its bytes, so its hash cannot recompute and the verifier names the row.
/// Rows that cannot be represented at all (an event id that is not 16
/// bytes, a hash that is not 32, a schema version outside `u32`) make
/// [`EventStore::read_raw`](crate::EventStore::read_raw) fail with
/// `StoreError::Corrupt` naming the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Global position.
    pub position: Position,
    /// Stream name as stored.
    pub stream_id: String,
    /// Version in the stream.
    pub stream_version: u64,
    /// Event id.
    pub event_id: Uuid,
    /// Event type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u32,
    /// The stored payload JSON text, byte for byte.
    pub data: String,
    /// The stored metadata JSON text, byte for byte.
    pub metadata: String,
    /// Commit time, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// The stored chain hash.
    pub hash: [u8; 32],
}

impl RawEvent {
    /// The fields the chain covers.
    pub fn canonical(&self) -> CanonicalEvent<'_> {
        CanonicalEvent {
            position: self.position.0,
            stream_id: &self.stream_id,
            stream_version: self.stream_version,
            event_id: self.event_id.as_bytes(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            data: &self.data,
            metadata: &self.metadata,
            recorded_at_micros: self.recorded_at_micros,
        }
    }

    /// The head this event makes (its position and stored hash).
    pub fn head(&self) -> Head {
        Head { position: self.position, hash: self.hash }
    }
}

/// `recorded_at` as RFC 3339 UTC with exactly six fractional digits and
/// `Z`, for years 1 to 9999; `None` outside that range.
pub fn rfc3339_micros(micros: i64) -> Option<String> {
    let t = DateTime::<Utc>::from_timestamp_micros(micros)?;
    (1..=9999).contains(&t.year()).then(|| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// The stored JSON text embedded unchanged, or null when it is not JSON.
fn raw_json(text: &str) -> Option<Box<RawValue>> {
    RawValue::from_string(text.to_owned()).ok()
}

/// The stored metadata as an object; `None` when it is not a JSON object.
fn metadata_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

#[derive(Serialize)]
struct NativeLine<'a> {
    position: u64,
    stream: &'a str,
    version: u64,
    id: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema_version: u32,
    recorded_at: Option<String>,
    recorded_at_micros: i64,
    data_json: &'a str,
    metadata_json: &'a str,
    data: Option<Box<RawValue>>,
    actor: Value,
    effective_date: Value,
    reason: Value,
    command_id: Value,
    correlation_id: Value,
    causation_id: Value,
    prev_hash: String,
    hash: String,
}

/// One line of the native NDJSON export (format version 1), without the
/// trailing newline. `prev_hash` is the stored hash of the previous event
/// ([`GENESIS`] before position 1).
pub fn export_line(e: &RawEvent, prev_hash: &[u8; 32]) -> String {
    let meta = metadata_object(&e.metadata);
    let field = |name: &str| meta.as_ref().and_then(|m| m.get(name)).cloned().unwrap_or(Value::Null);
    let line = NativeLine {
        position: e.position.0,
        stream: &e.stream_id,
        version: e.stream_version,
        id: e.event_id.hyphenated().to_string(),
        event_type: &e.event_type,
        schema_version: e.schema_version,
        recorded_at: rfc3339_micros(e.recorded_at_micros),
        recorded_at_micros: e.recorded_at_micros,
        data_json: &e.data,
        metadata_json: &e.metadata,
        data: raw_json(&e.data),
        actor: field("actor"),
        effective_date: field("effective_date"),
        reason: field("reason"),
        command_id: field("command_id"),
        correlation_id: field("correlation_id"),
        causation_id: field("causation_id"),
        prev_hash: hex::encode(prev_hash),
        hash: hex::encode(e.hash),
    };
    // Serialising strings, integers and already-checked raw JSON cannot
    // fail; an empty line would be reported as malformed by the verifier.
    serde_json::to_string(&line).unwrap_or_default()
}

/// One line of the CloudEvents 1.0 export (JSON event format), without the
/// trailing newline. `source` is the CloudEvents `source` (a URI-reference
/// naming this log, e.g. `/grantlog`); it is not covered by the chain.
///
/// `type` is the stored event type exactly (no prefix: it is a hashed
/// field), `subject` the stream, `time` the commit time. The hashed fields
/// without a standard attribute travel as extension attributes; integer
/// extensions are decimal strings, as CloudEvents integers are only 32-bit.
pub fn cloudevent_line(e: &RawEvent, prev_hash: &[u8; 32], source: &str) -> String {
    let mut m = Map::new();
    let s = |v: &str| Value::String(v.to_owned());
    m.insert("specversion".into(), s("1.0"));
    m.insert("id".into(), Value::String(e.event_id.hyphenated().to_string()));
    m.insert("source".into(), s(source));
    m.insert("type".into(), s(&e.event_type));
    m.insert("subject".into(), s(&e.stream_id));
    if let Some(time) = rfc3339_micros(e.recorded_at_micros) {
        m.insert("time".into(), Value::String(time));
    }
    m.insert("datacontenttype".into(), s("application/json"));
    m.insert("position".into(), Value::String(e.position.0.to_string()));
    m.insert("streamversion".into(), Value::String(e.stream_version.to_string()));
    m.insert("schemaversion".into(), Value::String(e.schema_version.to_string()));
    m.insert("recordedatmicros".into(), Value::String(e.recorded_at_micros.to_string()));
    m.insert("datajson".into(), s(&e.data));
    m.insert("metadatajson".into(), s(&e.metadata));
    if let Some(meta) = metadata_object(&e.metadata) {
        for (field, attribute) in METADATA_FIELDS.iter().zip(METADATA_ATTRIBUTES) {
            if let Some(v) = meta.get(*field).filter(|v| !v.is_null()) {
                m.insert(attribute.into(), v.clone());
            }
        }
    }
    m.insert("prevhash".into(), Value::String(hex::encode(prev_hash)));
    m.insert("hash".into(), Value::String(hex::encode(e.hash)));
    let data = serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null);
    m.insert("data".into(), data);
    serde_json::to_string(&Value::Object(m)).unwrap_or_default()
}

/// Which line format an [`Exporter`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportFormat {
    /// The native NDJSON lines ([`export_line`]).
    Ndjson,
    /// CloudEvents 1.0 JSON lines ([`cloudevent_line`]) with this `source`.
    CloudEvents {
        /// The CloudEvents `source` attribute.
        source: String,
    },
}

/// Writes consecutive export lines, carrying each event's stored hash to
/// the next line's `prev_hash`.
#[derive(Debug, Clone)]
pub struct Exporter {
    format: ExportFormat,
    previous: [u8; 32],
}

impl Exporter {
    /// An exporter whose first line follows an event with hash `previous`
    /// ([`GENESIS`] for an export from position 1; otherwise the stored
    /// hash at the position the export starts after, from
    /// [`EventStore::hash_at`](crate::EventStore::hash_at)).
    pub fn new(format: ExportFormat, previous: [u8; 32]) -> Self {
        Self { format, previous }
    }

    /// The lines of a page of events, each ending in a newline, stopping
    /// after `head` (an export ends at the head it started with).
    pub fn page(&mut self, events: &[RawEvent], head: Position) -> String {
        let mut text = String::new();
        for e in events.iter().take_while(|e| e.position <= head) {
            text.push_str(&self.line(e));
            text.push('\n');
        }
        text
    }

    /// The next line (no trailing newline).
    pub fn line(&mut self, e: &RawEvent) -> String {
        let line = match &self.format {
            ExportFormat::Ndjson => export_line(e, &self.previous),
            ExportFormat::CloudEvents { source } => cloudevent_line(e, &self.previous, source),
        };
        self.previous = e.hash;
        line
    }
}

/// Where and how an export is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportProblem {
    /// 1-based line number (one past the last line for problems found at
    /// the end of the file).
    pub line: u64,
    /// The position concerned, when known.
    pub position: Option<u64>,
    /// A stable kebab-case code (see `docs/audit.md`).
    pub what: String,
    /// A human explanation.
    pub detail: String,
}

/// What [`verify_export`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportVerdict {
    /// Whether every check passed.
    pub ok: bool,
    /// Lines (events) that passed every check.
    pub checked: u64,
    /// The last line that passed every check (the export's head when `ok`);
    /// `None` when none did.
    pub head: Option<Head>,
    /// The first problem, when not `ok`.
    pub first_bad: Option<ExportProblem>,
}

impl fmt::Display for ExportVerdict {
    /// Exactly what `docs/verify_export.py` prints:
    /// `ok N events, head POSITION:HASH` (head `-` for an empty export) or
    /// `bad at line L position P: CODE: DETAIL` (position `-` when unknown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first_bad {
            None => {
                let head = self.head.map_or_else(|| "-".to_owned(), |h| h.to_string());
                write!(f, "ok {} events, head {head}", self.checked)
            }
            Some(p) => {
                let position = p.position.map_or_else(|| "-".to_owned(), |p| p.to_string());
                write!(f, "bad at line {} position {position}: {}: {}", p.line, p.what, p.detail)
            }
        }
    }
}

/// One parsed line, whichever its format.
struct Line {
    position: u64,
    stream: String,
    version: u64,
    id: Uuid,
    event_type: String,
    schema_version: u32,
    recorded_at_micros: i64,
    data_json: String,
    metadata_json: String,
    prev_hash: [u8; 32],
    hash: [u8; 32],
    /// `time` / `recorded_at`, `None` when absent.
    recorded_at: Option<Value>,
    data: Value,
    /// The metadata convenience fields (absent: `None`).
    meta: [Option<Value>; 6],
    cloud: bool,
}

impl Line {
    fn canonical(&self) -> CanonicalEvent<'_> {
        CanonicalEvent {
            position: self.position,
            stream_id: &self.stream,
            stream_version: self.version,
            event_id: self.id.as_bytes(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            data: &self.data_json,
            metadata: &self.metadata_json,
            recorded_at_micros: self.recorded_at_micros,
        }
    }
}

const NATIVE_KEYS: [&str; 19] = [
    "position",
    "stream",
    "version",
    "id",
    "type",
    "schema_version",
    "recorded_at",
    "recorded_at_micros",
    "data_json",
    "metadata_json",
    "data",
    "actor",
    "effective_date",
    "reason",
    "command_id",
    "correlation_id",
    "causation_id",
    "prev_hash",
    "hash",
];

const CLOUD_REQUIRED: [&str; 15] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "datacontenttype",
    "data",
    "position",
    "streamversion",
    "schemaversion",
    "recordedatmicros",
    "datajson",
    "metadatajson",
    "prevhash",
    "hash",
];

const CLOUD_OPTIONAL: [&str; 7] =
    ["time", "actor", "effectivedate", "reason", "commandid", "correlationid", "causationid"];

type Malformed = String;

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, Malformed> {
    obj.get(key).ok_or_else(|| format!("missing key {key:?}"))
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, Malformed> {
    get(obj, key)?.as_str().ok_or_else(|| format!("{key:?} is not a string"))
}

fn unsigned(obj: &Map<String, Value>, key: &str, max: u64) -> Result<u64, Malformed> {
    get(obj, key)?.as_u64().filter(|v| *v <= max).ok_or_else(|| format!("{key:?} is not an integer from 0 to {max}"))
}

fn signed(obj: &Map<String, Value>, key: &str) -> Result<i64, Malformed> {
    get(obj, key)?.as_i64().ok_or_else(|| format!("{key:?} is not a 64-bit signed integer"))
}

/// A decimal string: digits, no sign, no leading zero (except `0` itself).
fn decimal_unsigned(obj: &Map<String, Value>, key: &str, max: u64) -> Result<u64, Malformed> {
    let text = string(obj, key)?;
    let bad = || format!("{key:?} is not a decimal string from 0 to {max}");
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(bad());
    }
    text.parse::<u64>().ok().filter(|v| *v <= max).ok_or_else(bad)
}

/// An optional `-` then a [`decimal_unsigned`] text; `-0` is refused.
fn decimal_signed(obj: &Map<String, Value>, key: &str) -> Result<i64, Malformed> {
    let text = string(obj, key)?;
    let bad = || format!("{key:?} is not a decimal string of a 64-bit signed integer");
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return Err(bad());
    }
    text.parse::<i64>().map_err(|_| bad())
}

/// 64 lowercase hex digits.
fn hash_field(obj: &Map<String, Value>, key: &str) -> Result<[u8; 32], Malformed> {
    let text = string(obj, key)?;
    let bad = || format!("{key:?} is not 64 lowercase hex digits");
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| bad())?;
    Ok(out)
}

/// A UUID in its canonical text: 36 lowercase characters, hyphenated.
fn uuid_field(obj: &Map<String, Value>, key: &str) -> Result<Uuid, Malformed> {
    let text = string(obj, key)?;
    Uuid::parse_str(text)
        .ok()
        .filter(|u| u.hyphenated().to_string() == text)
        .ok_or_else(|| format!("{key:?} is not a lowercase hyphenated UUID"))
}

fn parse_line(bytes: &[u8]) -> Result<Line, Malformed> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = value else { return Err("not a JSON object".to_owned()) };
    if obj.contains_key("specversion") { parse_cloud(obj) } else { parse_native(obj) }
}

fn parse_native(mut obj: Map<String, Value>) -> Result<Line, Malformed> {
    if let Some(key) = obj.keys().find(|k| !NATIVE_KEYS.contains(&k.as_str())) {
        return Err(format!("unknown key {key:?}"));
    }
    let line = Line {
        position: unsigned(&obj, "position", u64::MAX)?,
        stream: string(&obj, "stream")?.to_owned(),
        version: unsigned(&obj, "version", u64::MAX)?,
        id: uuid_field(&obj, "id")?,
        event_type: string(&obj, "type")?.to_owned(),
        schema_version: unsigned(&obj, "schema_version", u32::MAX.into())? as u32,
        recorded_at_micros: signed(&obj, "recorded_at_micros")?,
        data_json: string(&obj, "data_json")?.to_owned(),
        metadata_json: string(&obj, "metadata_json")?.to_owned(),
        prev_hash: hash_field(&obj, "prev_hash")?,
        hash: hash_field(&obj, "hash")?,
        recorded_at: Some(get(&obj, "recorded_at")?.clone()),
        data: get(&obj, "data")?.clone(),
        meta: [None, None, None, None, None, None],
        cloud: false,
    };
    let mut line = line;
    for (i, key) in METADATA_FIELDS.iter().enumerate() {
        line.meta[i] = Some(obj.remove(*key).ok_or_else(|| format!("missing key {key:?}"))?);
    }
    Ok(line)
}

fn parse_cloud(mut obj: Map<String, Value>) -> Result<Line, Malformed> {
    if let Some(key) =
        obj.keys().find(|k| !CLOUD_REQUIRED.contains(&k.as_str()) && !CLOUD_OPTIONAL.contains(&k.as_str()))
    {
        return Err(format!("unknown attribute {key:?}"));
    }
    if string(&obj, "specversion")? != "1.0" {
        return Err("\"specversion\" is not \"1.0\"".to_owned());
    }
    if string(&obj, "datacontenttype")? != "application/json" {
        return Err("\"datacontenttype\" is not \"application/json\"".to_owned());
    }
    if string(&obj, "source")?.is_empty() {
        return Err("\"source\" is empty".to_owned());
    }
    let mut line = Line {
        position: decimal_unsigned(&obj, "position", u64::MAX)?,
        stream: string(&obj, "subject")?.to_owned(),
        version: decimal_unsigned(&obj, "streamversion", u64::MAX)?,
        id: uuid_field(&obj, "id")?,
        event_type: string(&obj, "type")?.to_owned(),
        schema_version: decimal_unsigned(&obj, "schemaversion", u32::MAX.into())? as u32,
        recorded_at_micros: decimal_signed(&obj, "recordedatmicros")?,
        data_json: string(&obj, "datajson")?.to_owned(),
        metadata_json: string(&obj, "metadatajson")?.to_owned(),
        prev_hash: hash_field(&obj, "prevhash")?,
        hash: hash_field(&obj, "hash")?,
        recorded_at: obj.get("time").cloned(),
        data: get(&obj, "data")?.clone(),
        meta: [None, None, None, None, None, None],
        cloud: true,
    };
    for (i, attribute) in METADATA_ATTRIBUTES.iter().enumerate() {
        line.meta[i] = obj.remove(*attribute);
    }
    Ok(line)
}

/// Checks the convenience fields against the hashed texts; `Err` names the
/// first that disagrees. `Ok(Err(..))` is a hashed text that is not JSON.
fn check_fields(line: &Line) -> Result<Result<(), String>, String> {
    let data: Value = serde_json::from_str(&line.data_json).map_err(|e| format!("data_json is not JSON: {e}"))?;
    let meta = match serde_json::from_str::<Value>(&line.metadata_json) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("metadata_json is not a JSON object".to_owned()),
        Err(e) => return Err(format!("metadata_json is not JSON: {e}")),
    };
    let time_name = if line.cloud { "time" } else { "recorded_at" };
    let time = rfc3339_micros(line.recorded_at_micros).map(Value::String);
    let expected_time = if line.cloud { time } else { Some(time.unwrap_or(Value::Null)) };
    if line.recorded_at != expected_time {
        return Ok(Err(format!("{time_name} does not match recorded_at_micros {}", line.recorded_at_micros)));
    }
    if line.data != data {
        return Ok(Err("data does not match the payload in data_json".to_owned()));
    }
    for (i, field) in METADATA_FIELDS.iter().enumerate() {
        let stored = meta.get(*field).cloned();
        let expected = if line.cloud { stored.filter(|v| !v.is_null()) } else { Some(stored.unwrap_or(Value::Null)) };
        if line.meta[i] != expected {
            let name = if line.cloud { METADATA_ATTRIBUTES[i] } else { field };
            return Ok(Err(format!("{name} does not match metadata_json")));
        }
    }
    Ok(Ok(()))
}

struct Verifier {
    expected_head: Option<Head>,
    since: Option<Head>,
    line: u64,
    checked: u64,
    /// Position and stored hash of the last good line (or the anchor).
    previous: Option<(u64, [u8; 32])>,
    first_position: Option<u64>,
    /// The first line's `prev_hash`, once that line passed.
    first_prev: Option<[u8; 32]>,
    /// Whether the export starts at position 1 (stream versions start at 0).
    from_start: bool,
    streams: HashMap<String, u64>,
    last_micros: i64,
    head_hash_seen: Option<[u8; 32]>,
}

fn problem(line: u64, position: Option<u64>, what: &str, detail: impl Into<String>) -> ExportProblem {
    ExportProblem { line, position, what: what.to_owned(), detail: detail.into() }
}

impl Verifier {
    fn check(&mut self, bytes: &[u8]) -> Result<(), ExportProblem> {
        let n = self.line;
        let line = parse_line(bytes).map_err(|d| problem(n, None, "malformed-line", d))?;
        let p = line.position;
        let at = |what: &str, detail: String| problem(n, Some(p), what, detail);

        // Positions, and the hash the line must follow.
        let previous_hash = match self.previous {
            None => self.first(&line)?,
            Some((last, hash)) => {
                if p == last {
                    return Err(at("duplicate", format!("position {p} appears again")));
                }
                if p < last {
                    return Err(at("out-of-order", format!("position {p} comes after position {last}")));
                }
                if p != last + 1 {
                    let missing = last + 1;
                    return Err(problem(
                        n,
                        Some(missing),
                        "gap",
                        format!("expected position {missing}, found {p}: position {missing} is missing here"),
                    ));
                }
                hash
            }
        };
        if line.prev_hash != previous_hash {
            return Err(at(
                "prev-hash-mismatch",
                format!(
                    "prev_hash {} is not the previous event's hash {}",
                    hex::encode(line.prev_hash),
                    hex::encode(previous_hash)
                ),
            ));
        }
        let computed = line.canonical().chain_hash(&line.prev_hash);
        if computed != line.hash {
            return Err(at(
                "hash-mismatch",
                format!("hash {} but the content hashes to {}", hex::encode(line.hash), hex::encode(computed)),
            ));
        }
        match check_fields(&line) {
            Err(detail) => return Err(at("bad-payload", detail)),
            Ok(Err(detail)) => return Err(at("field-mismatch", detail)),
            Ok(Ok(())) => {}
        }
        let expected_version = match self.streams.get(&line.stream) {
            Some(v) => Some(v.saturating_add(1)),
            None => self.from_start.then_some(0),
        };
        if let Some(v) = expected_version
            && v != line.version
        {
            return Err(at(
                "stream-version",
                format!("stream {:?}: expected version {v}, found {}", line.stream, line.version),
            ));
        }
        if self.checked > 0 && line.recorded_at_micros < self.last_micros {
            return Err(at(
                "time-backwards",
                format!(
                    "recorded_at_micros {} is before the previous event's {}",
                    line.recorded_at_micros, self.last_micros
                ),
            ));
        }
        if let Some(since) = self.since
            && since.position.0 == p
            && since.hash != line.hash
        {
            return Err(at("not-a-prefix", format!("the hash at position {p} is not the earlier head {since}")));
        }
        if let Some(head) = self.expected_head
            && head.position.0 == p
        {
            self.head_hash_seen = Some(line.hash);
        }
        if self.checked == 0 {
            self.first_prev = Some(line.prev_hash);
        }
        self.streams.insert(line.stream, line.version);
        self.last_micros = line.recorded_at_micros;
        self.previous = Some((p, line.hash));
        self.checked += 1;
        Ok(())
    }

    /// Anchors the first line: returns the hash its `prev_hash` must be.
    fn first(&mut self, line: &Line) -> Result<[u8; 32], ExportProblem> {
        let n = self.line;
        let p = line.position;
        self.first_position = Some(p);
        self.from_start = p == 1;
        if p == 0 {
            return Err(problem(n, Some(0), "gap", "positions start at 1"));
        }
        let anchor = self.since.filter(|s| s.position.0 > 0);
        if let Some(since) = self.since
            && since.position.0 == 0
            && since.hash != GENESIS
        {
            return Err(problem(n, Some(0), "not-a-prefix", format!("the earlier head {since} is not the genesis")));
        }
        if p == 1 {
            return Ok(GENESIS);
        }
        let Some(since) = anchor else {
            return Err(problem(
                n,
                Some(1),
                "gap",
                format!(
                    "the export starts at position {p}: positions 1 to {} are missing (an export that starts later needs --since)",
                    p - 1
                ),
            ));
        };
        let s = since.position.0;
        // The position an anchored export starts at; none after 2^64 - 1.
        let next = s.checked_add(1);
        if next == Some(p) {
            if line.prev_hash != since.hash {
                return Err(problem(
                    n,
                    Some(s),
                    "not-a-prefix",
                    format!(
                        "the export continues from hash {} at position {s}, not from the earlier head {since}",
                        hex::encode(line.prev_hash)
                    ),
                ));
            }
            return Ok(since.hash);
        }
        if let Some(next) = next
            && p > next
        {
            return Err(problem(
                n,
                Some(next),
                "gap",
                format!(
                    "the export starts at position {p}, after the earlier head {since}: positions {next} to {} are missing",
                    p - 1
                ),
            ));
        }
        // The earlier head lies inside the export: the first prev_hash is
        // proved when the chain reaches it.
        Ok(line.prev_hash)
    }

    fn finish(self) -> Result<(), ExportProblem> {
        let after = self.line; // one past the last line
        let last = self.previous.map(|(p, _)| p);
        let line_of = |position: u64| -> u64 {
            match self.first_position {
                Some(first) if position >= first => 1 + (position - first),
                _ => after,
            }
        };
        if let Some(since) = self.since {
            let s = since.position.0;
            if s == 0 && since.hash != GENESIS {
                return Err(problem(
                    after,
                    Some(0),
                    "not-a-prefix",
                    format!("the earlier head {since} is not the genesis"),
                ));
            }
            if s > 0 && last.is_none_or(|l| l < s) {
                return Err(problem(
                    after,
                    Some(s),
                    "not-a-prefix",
                    format!("the export ends at position {} before the earlier head {since}", last.unwrap_or(0)),
                ));
            }
        }
        if let Some(head) = self.expected_head {
            let h = head.position.0;
            let found = match (last, self.first_position) {
                (Some(_), Some(first)) if h.checked_add(1) == Some(first) => self.first_prev,
                (Some(_), Some(first)) if h >= first => self.head_hash_seen,
                (Some(_), _) => None,
                (None, _) => (h == 0).then_some(GENESIS),
            };
            match last {
                Some(l) if l < h => {
                    return Err(problem(
                        after,
                        Some(h),
                        "head-mismatch",
                        format!("the export ends at position {l}, before the expected head {head}"),
                    ));
                }
                None if h > 0 => {
                    return Err(problem(
                        after,
                        Some(h),
                        "head-mismatch",
                        format!("the export is empty; expected head {head}"),
                    ));
                }
                _ => {}
            }
            if found != Some(head.hash) {
                let detail = match found {
                    Some(f) => format!("the hash at position {h} is {}, not the expected head {head}", hex::encode(f)),
                    None => format!("position {h} precedes the export; it cannot show the expected head {head}"),
                };
                return Err(problem(line_of(h), Some(h), "head-mismatch", detail));
            }
            if let Some(l) = last
                && l > h
            {
                return Err(problem(
                    line_of(h + 1),
                    Some(h + 1),
                    "head-mismatch",
                    format!("the export continues past the expected head {head} to position {l}"),
                ));
            }
        }
        Ok(())
    }
}

/// Verifies an export read from `reader` on its own (no database).
///
/// Rules, in the order they are checked on each line (`docs/audit.md` has
/// the full text): the line is a JSON object of either format
/// (`malformed-line`); the first line is position 1 following [`GENESIS`],
/// unless `since` anchors a later start (see below); positions are
/// consecutive (`duplicate`, `out-of-order`, `gap`); `prev_hash` is the
/// previous line's hash (`prev-hash-mismatch`); the hash recomputes from the
/// canonical encoding (`hash-mismatch`); the hashed JSON texts parse
/// (`bad-payload`); the reader's fields agree with the hashed texts
/// (`field-mismatch`); each stream's versions run 0, 1, 2, … in position
/// order (`stream-version`); `recorded_at` never decreases
/// (`time-backwards`).
///
/// `since`, an auditor's earlier head, must be contained in the export: the
/// line at its position carries its hash (`not-a-prefix` otherwise, and when
/// the export ends before it). An export that does not start at position 1
/// is accepted only if `since` anchors it: its first line is at
/// `since.position + 1` with `prev_hash` = `since.hash`, or `since` lies
/// within the export. `expected_head`: the export must end exactly there
/// (`head-mismatch`); an empty export matches only position 0 with the
/// genesis hash.
///
/// Fails only when reading fails; every finding is in the verdict.
pub fn verify_export(
    mut reader: impl BufRead,
    expected_head: Option<Head>,
    since: Option<Head>,
) -> Result<ExportVerdict, std::io::Error> {
    let mut v = Verifier {
        expected_head,
        since,
        line: 0,
        checked: 0,
        previous: None,
        first_position: None,
        first_prev: None,
        from_start: false,
        streams: HashMap::new(),
        last_micros: i64::MIN,
        head_hash_seen: None,
    };
    let mut buf = Vec::new();
    let verdict = |v: &Verifier, first_bad: Option<ExportProblem>| ExportVerdict {
        ok: first_bad.is_none(),
        checked: v.checked,
        head: v.previous.filter(|_| v.checked > 0).map(|(p, h)| Head { position: Position(p), hash: h }),
        first_bad,
    };
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        v.line += 1;
        if let Err(p) = v.check(&buf) {
            return Ok(verdict(&v, Some(p)));
        }
    }
    v.line += 1;
    let checked = verdict(&v, None);
    Ok(match v.finish() {
        Ok(()) => checked,
        Err(p) => ExportVerdict { ok: false, first_bad: Some(p), ..checked },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event of `hash.rs`'s test vector.
    fn sample() -> RawEvent {
        RawEvent {
            position: Position(1),
            stream_id: "grant-1".to_owned(),
            stream_version: 0,
            event_id: Uuid::from_bytes([7; 16]),
            event_type: "GrantAwarded".to_owned(),
            schema_version: 1,
            data: r#"{"award":"250000.00 EUR"}"#.to_owned(),
            metadata: r#"{"actor":"u-1"}"#.to_owned(),
            recorded_at_micros: 1_640_995_200_000_000,
            hash: [0; 32],
        }
    }

    const HASH: &str = "ed39954e8120a2fa00b936bf22e77155dbdae9169149f9c93f780f263ffdd2ce";

    fn hashed() -> RawEvent {
        let mut e = sample();
        e.hash = e.canonical().chain_hash(&GENESIS);
        e
    }

    // Both lines are quoted in docs/audit.md: change them together.
    const NATIVE: &str = r#"{"position":1,"stream":"grant-1","version":0,"id":"07070707-0707-0707-0707-070707070707","type":"GrantAwarded","schema_version":1,"recorded_at":"2022-01-01T00:00:00.000000Z","recorded_at_micros":1640995200000000,"data_json":"{\"award\":\"250000.00 EUR\"}","metadata_json":"{\"actor\":\"u-1\"}","data":{"award":"250000.00 EUR"},"actor":"u-1","effective_date":null,"reason":null,"command_id":null,"correlation_id":null,"causation_id":null,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"ed39954e8120a2fa00b936bf22e77155dbdae9169149f9c93f780f263ffdd2ce"}"#;

    #[test]
    fn the_native_line_is_exactly_as_documented() {
        let e = hashed();
        assert_eq!(hex::encode(e.hash), HASH);
        assert_eq!(export_line(&e, &GENESIS), NATIVE);
        let verdict = verify_export(format!("{NATIVE}\n").as_bytes(), Some(e.head()), None).unwrap();
        assert_eq!(verdict.to_string(), format!("ok 1 events, head 1:{HASH}"));
    }

    #[test]
    fn the_cloudevent_line_carries_every_hashed_field() {
        let e = hashed();
        let line = cloudevent_line(&e, &GENESIS, "/grantlog");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "GrantAwarded");
        assert_eq!(v["subject"], "grant-1");
        assert_eq!(v["time"], "2022-01-01T00:00:00.000000Z");
        assert_eq!(v["position"], "1");
        assert_eq!(v["recordedatmicros"], "1640995200000000");
        assert_eq!(v["actor"], "u-1");
        assert!(v.get("reason").is_none());
        assert_eq!(v["data"]["award"], "250000.00 EUR");
        for key in v.as_object().unwrap().keys() {
            assert!(key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{key}");
        }
        let verdict = verify_export(line.as_bytes(), Some(e.head()), None).unwrap();
        assert!(verdict.ok, "{verdict}");
    }

    #[test]
    fn times_have_six_digits_and_only_four_digit_years() {
        assert_eq!(rfc3339_micros(0).unwrap(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(-1).unwrap(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_micros(253_402_300_799_999_999).unwrap(), "9999-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_micros(253_402_300_800_000_000), None);
        assert_eq!(rfc3339_micros(-62_135_596_800_000_000).unwrap(), "0001-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(-62_135_596_800_000_001), None);
        assert_eq!(rfc3339_micros(i64::MIN), None);
        // Out of range times export as null and still verify.
        let mut e = sample();
        e.recorded_at_micros = i64::MAX;
        e.hash = e.canonical().chain_hash(&GENESIS);
        let line = export_line(&e, &GENESIS);
        assert!(line.contains(r#""recorded_at":null"#));
        assert!(verify_export(line.as_bytes(), None, None).unwrap().ok);
    }

    /// Found by `tests/export_fuzz.rs`: heads at position 2^64 - 1 made
    /// `h + 1` and `since + 1` overflow (a panic in a debug build; in a
    /// release build a wrong `gap` at position 0 instead of `not-a-prefix`).
    #[test]
    fn heads_at_the_last_position_are_refused_without_overflow() {
        let last = |hash| Head { position: Position(u64::MAX), hash };
        let mut e = sample();
        e.position = Position(2);
        e.hash = e.canonical().chain_hash(&[5; 32]);
        let line = export_line(&e, &[5; 32]);
        let v = verify_export(line.as_bytes(), Some(last(e.hash)), Some(Head { position: Position(1), hash: [5; 32] }));
        let v = v.unwrap().to_string();
        assert!(v.starts_with("bad at line 2 position 18446744073709551615: head-mismatch"), "{v}");
        let v = verify_export(line.as_bytes(), None, Some(last(e.hash))).unwrap().to_string();
        assert!(v.starts_with("bad at line 2 position 18446744073709551615: not-a-prefix"), "{v}");
    }

    #[test]
    fn an_empty_export_matches_only_an_empty_head() {
        let empty = Head { position: Position(0), hash: GENESIS };
        assert!(verify_export(&b""[..], None, None).unwrap().ok);
        assert!(verify_export(&b""[..], Some(empty), Some(empty)).unwrap().ok);
        let v = verify_export(&b""[..], Some(hashed().head()), None).unwrap();
        assert_eq!(v.to_string().split(':').next(), Some("bad at line 1 position 1"));
        let v = verify_export(&b""[..], Some(Head { position: Position(0), hash: [1; 32] }), None).unwrap();
        assert_eq!(v.first_bad.unwrap().what, "head-mismatch");
    }
}
