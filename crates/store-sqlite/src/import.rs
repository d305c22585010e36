//! [`EventStore::import`](store::EventStore::import) on SQLite: the checks
//! of [`store::import`] against the open transaction, then the rows and the
//! command index exactly as given, in the writer's one transaction.

use rusqlite::{Connection, OptionalExtension, params};

use store::import::{ImportTip, check_import, record_command};
use store::{Head, RawEvent, StoreError};

/// Imports `events` inside the writer's open transaction, after its tip
/// (`tip` with its last `recorded_at`). The outer `Result` is SQLite
/// failing; the inner one the store refusing the import.
pub(crate) fn import(
    conn: &Connection,
    tip: ImportTip,
    events: &[RawEvent],
) -> rusqlite::Result<Result<Head, StoreError>> {
    let checked = {
        let mut version = conn.prepare_cached("SELECT max(stream_version) FROM events WHERE stream_id = ?1")?;
        let mut stored = conn.prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")?;
        check_import(
            tip,
            events,
            |stream| Ok(version.query_row([stream], |r| r.get::<_, Option<i64>>(0))?.map(|v| v as u64)),
            |id| stored.query_row([id.as_bytes()], |_| Ok(())).optional().map(|found| found.is_some()),
        )?
    };
    let checked = match checked {
        Ok(c) => c,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (position, stream_id, stream_version, event_id, event_type,
                             schema_version, data, metadata, recorded_at, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for e in events {
        insert.execute(params![
            e.position.0 as i64,
            e.stream_id,
            e.stream_version as i64,
            e.event_id.as_bytes(),
            e.event_type,
            e.schema_version,
            e.data,
            e.metadata,
            e.recorded_at_micros,
            e.hash,
        ])?;
    }
    let mut record = conn.prepare_cached(
        "INSERT INTO commands (command_id, fingerprint, stream_id, first_position, last_position)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for command in &checked.commands {
        let existing = crate::read::command(conn, command.command_id)?;
        match record_command(existing.as_ref(), command) {
            Ok(true) => {
                record.execute(params![
                    command.command_id.as_bytes(),
                    command.fingerprint.map(|f| f.0),
                    command.stream_id.as_str(),
                    command.first_position.0 as i64,
                    command.last_position.0 as i64,
                ])?;
            }
            Ok(false) => {}
            Err(refusal) => return Ok(Err(refusal)),
        }
    }
    Ok(Ok(checked.head))
}
