//! Importing events recorded by another log ([`EventStore::import`]): the
//! checks every backend makes before it writes, so that every backend
//! accepts and refuses exactly the same imports.
//!
//! An import continues this log exactly as the other log recorded it: the
//! first event is at this log's head + 1, each stored hash is the chain hash
//! over the previous one (recomputed here, never trusted), each stream's
//! versions continue where the stream stands, `recorded_at` never
//! decreases, no event id is stored twice, and every stored text is one the
//! store itself would have written (a valid stream id and type, JSON data
//! within the size limit, metadata that decodes).
//!
//! [`EventStore::import`]: crate::EventStore::import

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::error::StoreError;
use crate::export::RawEvent;
use crate::prepare::EVENT_JSON_BYTES_MAX;
use crate::types::{EVENT_TYPE_BYTES_MAX, EventMetadata, Head, Position, RecordedCommand, StreamId};

/// Most events one import takes (one page of
/// [`EventStore::read_raw`](crate::EventStore::read_raw)).
pub const IMPORT_EVENTS_MAX: usize = crate::READ_EVENTS_MAX;

/// Where the importing log stands: its head (`None` when empty) and its last
/// event's `recorded_at` in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportTip {
    /// The head; `None` for an empty log.
    pub head: Option<Head>,
    /// The last event's `recorded_at`; `None` for an empty log.
    pub recorded_at_micros: Option<i64>,
}

/// An import that passed every check: the head it makes and the commands to
/// record (as the schema-2 upgrade of the SQLite log derives them: one per
/// command id and stream, from its first to its last position, in position
/// order, the first stream of a command id winning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedImport {
    /// The head after the import.
    pub head: Head,
    /// The commands the events carry.
    pub commands: Vec<RecordedCommand>,
}

fn refused(position: u64, detail: impl Into<String>) -> StoreError {
    StoreError::ImportRefused { position, detail: detail.into() }
}

/// Checks `events` against the log at `tip`. `stream_version` answers a
/// stream's last stored version, `event_stored` whether an event id is
/// stored: both are asked only about what the batch itself does not settle.
/// The outer `Result` is the backend's lookups failing; the inner one is the
/// verdict.
pub fn check_import<E>(
    tip: ImportTip,
    events: &[RawEvent],
    mut stream_version: impl FnMut(&str) -> Result<Option<u64>, E>,
    mut event_stored: impl FnMut(&Uuid) -> Result<bool, E>,
) -> Result<Result<CheckedImport, StoreError>, E> {
    let start = tip.head.map_or(0, |h| h.position.0);
    if events.is_empty() {
        return Ok(Err(refused(start + 1, "nothing to import")));
    }
    if events.len() > IMPORT_EVENTS_MAX {
        return Ok(Err(StoreError::TooManyEvents { count: events.len(), max: IMPORT_EVENTS_MAX }));
    }
    let mut previous = tip.head.map_or(crate::hash::GENESIS, |h| h.hash);
    let mut last_micros = tip.recorded_at_micros;
    let mut versions: HashMap<&str, Option<u64>> = HashMap::new();
    let mut ids = HashSet::with_capacity(events.len());
    let mut commands = Commands::default();
    for (i, e) in events.iter().enumerate() {
        let expected = start + 1 + i as u64;
        if e.position.0 != expected {
            let detail = if i == 0 {
                format!(
                    "the import starts at position {}; this log's head is {start}, so it must start at {expected}",
                    e.position
                )
            } else {
                format!("expected position {expected}, found {}", e.position)
            };
            return Ok(Err(refused(expected, detail)));
        }
        let (stream, metadata) = match well_formed(e) {
            Ok(checked) => checked,
            Err(detail) => return Ok(Err(refused(expected, detail))),
        };
        let computed = e.canonical().chain_hash(&previous);
        if computed != e.hash {
            return Ok(Err(refused(
                expected,
                format!(
                    "the stored hash {} is not the chain hash {} of the event after {}",
                    hex::encode(e.hash),
                    hex::encode(computed),
                    hex::encode(previous)
                ),
            )));
        }
        let stream_last = match versions.get(e.stream_id.as_str()) {
            Some(v) => *v,
            None => stream_version(&e.stream_id)?,
        };
        let want = stream_last.map_or(0, |v| v + 1);
        if e.stream_version != want {
            return Ok(Err(refused(
                expected,
                format!("stream {}: expected version {want}, found {}", e.stream_id, e.stream_version),
            )));
        }
        versions.insert(&e.stream_id, Some(want));
        if let Some(last) = last_micros
            && e.recorded_at_micros < last
        {
            return Ok(Err(refused(
                expected,
                format!("recorded_at_micros {} is before the previous event's {last}", e.recorded_at_micros),
            )));
        }
        if !ids.insert(e.event_id) || event_stored(&e.event_id)? {
            return Ok(Err(refused(expected, format!("event id {} is already recorded", e.event_id))));
        }
        if let Some(command_id) = metadata.command_id {
            commands.add(command_id, metadata.fingerprint, &stream, e.position);
        }
        last_micros = Some(e.recorded_at_micros);
        previous = e.hash;
    }
    let head = Head { position: Position(start + events.len() as u64), hash: previous };
    Ok(Ok(CheckedImport { head, commands: commands.finish() }))
}

/// The event's texts are ones the store would have written; its stream and
/// decoded metadata.
fn well_formed(e: &RawEvent) -> Result<(StreamId, EventMetadata), String> {
    let stream = StreamId::parse(e.stream_id.clone()).map_err(|err| err.to_string())?;
    if e.event_type.is_empty() || e.event_type.len() > EVENT_TYPE_BYTES_MAX {
        return Err(format!("{:?} is not a valid event type", e.event_type));
    }
    let bytes = e.data.len().max(e.metadata.len());
    if bytes > EVENT_JSON_BYTES_MAX {
        return Err(format!("{bytes} bytes of JSON; at most {EVENT_JSON_BYTES_MAX} are allowed"));
    }
    serde_json::from_str::<&serde_json::value::RawValue>(&e.data).map_err(|err| format!("data is not JSON: {err}"))?;
    let metadata =
        serde_json::from_str::<EventMetadata>(&e.metadata).map_err(|err| format!("metadata does not decode: {err}"))?;
    Ok((stream, metadata))
}

/// Commands as the schema-2 upgrade groups them.
#[derive(Default)]
struct Commands {
    /// (command id, stream) → index in `list`.
    index: HashMap<(Uuid, String), usize>,
    list: Vec<RecordedCommand>,
}

impl Commands {
    fn add(
        &mut self,
        command_id: Uuid,
        fingerprint: Option<crate::Fingerprint>,
        stream: &StreamId,
        position: Position,
    ) {
        let key = (command_id, stream.as_str().to_owned());
        if let Some(&i) = self.index.get(&key) {
            self.list[i].last_position = position;
            return;
        }
        self.index.insert(key, self.list.len());
        self.list.push(RecordedCommand {
            command_id,
            fingerprint,
            stream_id: stream.clone(),
            first_position: position,
            last_position: position,
        });
    }

    /// One command per id, the first (by first position) winning.
    fn finish(self) -> Vec<RecordedCommand> {
        let mut seen = HashSet::new();
        self.list.into_iter().filter(|c| seen.insert(c.command_id)).collect()
    }
}

/// Whether an imported command is recorded, given what the log already
/// holds for its id: `Ok(true)` to record it, `Ok(false)` to keep the
/// recorded one (as the schema-2 upgrade keeps a command id's first
/// stream), and a refusal when the import would split one command's events
/// (its recorded events end right before the imported ones, in the same
/// stream): import a command's events in one call.
pub fn record_command(existing: Option<&RecordedCommand>, imported: &RecordedCommand) -> Result<bool, StoreError> {
    match existing {
        None => Ok(true),
        Some(e) if e.stream_id == imported.stream_id && e.last_position.0 + 1 == imported.first_position.0 => {
            Err(refused(
                imported.first_position.0,
                format!(
                    "command {} has events at positions {} to {} already: import a command's events in one call",
                    imported.command_id, e.first_position, e.last_position
                ),
            ))
        }
        Some(_) => Ok(false),
    }
}

/// The command id in an event's stored metadata, if it has one.
fn command_id(e: &RawEvent) -> Option<String> {
    let meta: serde_json::Value = serde_json::from_str(&e.metadata).ok()?;
    meta.get("command_id")?.as_str().map(str::to_owned)
}

/// How many leading events of a full page (one that may continue in the
/// next read) to import so that no command's events are split across two
/// imports: the page without the run of events at its end that carries the
/// last event's command id, unless that run is the whole page.
pub fn whole_commands(page: &[RawEvent]) -> usize {
    let Some(last) = page.last() else { return 0 };
    let Some(cid) = command_id(last) else { return page.len() };
    let run = page
        .iter()
        .rev()
        .take_while(|e| e.stream_id == last.stream_id && command_id(e).as_deref() == Some(cid.as_str()))
        .count();
    if run == page.len() { page.len() } else { page.len() - run }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::GENESIS;

    fn event(position: u64, stream: &str, version: u64, previous: &[u8; 32], command: Option<Uuid>) -> RawEvent {
        let metadata = match command {
            Some(c) => format!(r#"{{"actor":"t","command_id":"{c}"}}"#),
            None => r#"{"actor":"t"}"#.to_owned(),
        };
        let mut e = RawEvent {
            position: Position(position),
            stream_id: stream.to_owned(),
            stream_version: version,
            event_id: Uuid::now_v7(),
            event_type: "Tested".to_owned(),
            schema_version: 1,
            data: format!(r#"{{"n":{position}}}"#),
            metadata,
            recorded_at_micros: 1_000 + position as i64,
            hash: [0; 32],
        };
        e.hash = e.canonical().chain_hash(previous);
        e
    }

    fn chain(specs: &[(&str, u64, Option<Uuid>)]) -> Vec<RawEvent> {
        let mut previous = GENESIS;
        let mut out = Vec::new();
        for (i, (stream, version, command)) in specs.iter().enumerate() {
            let e = event(i as u64 + 1, stream, *version, &previous, *command);
            previous = e.hash;
            out.push(e);
        }
        out
    }

    fn check(events: &[RawEvent]) -> Result<CheckedImport, StoreError> {
        let empty = ImportTip { head: None, recorded_at_micros: None };
        check_import::<()>(empty, events, |_| Ok(None), |_| Ok(false)).unwrap()
    }

    fn refused_at(r: Result<CheckedImport, StoreError>) -> u64 {
        match r {
            Err(StoreError::ImportRefused { position, .. }) => position,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_chain_onto_an_empty_log_passes_and_commands_group_as_the_upgrade_does() {
        let (c1, c2) = (Uuid::now_v7(), Uuid::now_v7());
        let events = chain(&[("a", 0, Some(c1)), ("a", 1, Some(c1)), ("b", 0, Some(c2)), ("b", 1, Some(c1))]);
        let checked = check(&events).unwrap();
        assert_eq!(checked.head, events[3].head());
        let got: Vec<_> = checked
            .commands
            .iter()
            .map(|c| (c.command_id, c.stream_id.as_str().to_owned(), c.first_position.0, c.last_position.0))
            .collect();
        assert_eq!(got, vec![(c1, "a".to_owned(), 1, 2), (c2, "b".to_owned(), 3, 3)]);
    }

    #[test]
    fn each_broken_rule_is_refused_at_its_position() {
        let events = chain(&[("a", 0, None), ("a", 1, None), ("b", 0, None)]);
        let mut forged = events.clone();
        forged[1].hash[0] ^= 1;
        assert_eq!(refused_at(check(&forged)), 2);
        let mut data = events.clone();
        data[2].data = r#"{"n":4}"#.to_owned();
        assert_eq!(refused_at(check(&data)), 3);
        assert_eq!(refused_at(check(&events[1..])), 1, "starts past the head");
        assert_eq!(refused_at(check(&[])), 1);
        let versions = chain(&[("a", 0, None), ("a", 2, None)]);
        assert_eq!(refused_at(check(&versions)), 2);
        let mut earlier = chain(&[("a", 0, None), ("a", 1, None)]);
        earlier[1].recorded_at_micros = 0;
        earlier[1].hash = earlier[1].canonical().chain_hash(&earlier[0].hash);
        assert_eq!(refused_at(check(&earlier)), 2);
        let mut twice = chain(&[("a", 0, None), ("a", 1, None)]);
        twice[1].event_id = twice[0].event_id;
        twice[1].hash = twice[1].canonical().chain_hash(&twice[0].hash);
        assert_eq!(refused_at(check(&twice)), 2);
        let mut bad_meta = chain(&[("a", 0, None)]);
        bad_meta[0].metadata = r#"{"who":"x"}"#.to_owned();
        bad_meta[0].hash = bad_meta[0].canonical().chain_hash(&GENESIS);
        assert_eq!(refused_at(check(&bad_meta)), 1);
    }

    #[test]
    fn the_log_it_continues_is_asked_about_streams_ids_and_time() {
        let first = chain(&[("a", 0, None)]);
        let tip = ImportTip { head: Some(first[0].head()), recorded_at_micros: Some(first[0].recorded_at_micros) };
        let next = event(2, "a", 3, &first[0].hash, None);
        let ok = check_import::<()>(tip, std::slice::from_ref(&next), |_| Ok(Some(2)), |_| Ok(false)).unwrap();
        assert_eq!(ok.unwrap().head, next.head());
        let stale = check_import::<()>(tip, std::slice::from_ref(&next), |_| Ok(Some(3)), |_| Ok(false)).unwrap();
        assert_eq!(refused_at(stale), 2);
        let stored = check_import::<()>(tip, std::slice::from_ref(&next), |_| Ok(Some(2)), |_| Ok(true)).unwrap();
        assert_eq!(refused_at(stored), 2);
        let late = ImportTip { recorded_at_micros: Some(i64::MAX), ..tip };
        let r = check_import::<()>(late, std::slice::from_ref(&next), |_| Ok(Some(2)), |_| Ok(false)).unwrap();
        assert_eq!(refused_at(r), 2);
    }

    #[test]
    fn pages_are_cut_before_a_command_that_may_continue() {
        let (c1, c2) = (Uuid::now_v7(), Uuid::now_v7());
        let events = chain(&[("a", 0, Some(c1)), ("a", 1, Some(c2)), ("a", 2, Some(c2))]);
        assert_eq!(whole_commands(&events), 1);
        assert_eq!(whole_commands(&events[..1]), 1, "a page of one command is imported whole");
        assert_eq!(whole_commands(&events[1..]), 2);
        let plain = chain(&[("a", 0, Some(c1)), ("a", 1, None)]);
        assert_eq!(whole_commands(&plain), 2);
        assert_eq!(whole_commands(&[]), 0);
    }

    #[test]
    fn a_command_split_across_imports_is_refused() {
        let c = Uuid::now_v7();
        let command = |first, last, stream: &str| RecordedCommand {
            command_id: c,
            fingerprint: None,
            stream_id: StreamId::parse(stream).unwrap(),
            first_position: Position(first),
            last_position: Position(last),
        };
        assert!(record_command(None, &command(3, 4, "a")).unwrap());
        assert!(record_command(Some(&command(1, 2, "a")), &command(3, 4, "a")).is_err());
        assert!(!record_command(Some(&command(1, 2, "b")), &command(3, 4, "a")).unwrap());
    }
}
