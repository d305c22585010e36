//! The log's schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! Never edit an applied migration: add a new one at the end.

use rusqlite::Connection;

use store::StoreError;

use crate::error::Sql;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the events table, append-only by trigger.
    "CREATE TABLE events (
        position       INTEGER PRIMARY KEY,
        stream_id      TEXT    NOT NULL,
        stream_version INTEGER NOT NULL,
        event_id       BLOB    NOT NULL UNIQUE,
        event_type     TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        data           TEXT    NOT NULL,
        metadata       TEXT    NOT NULL,
        recorded_at    INTEGER NOT NULL,
        hash           BLOB    NOT NULL,
        UNIQUE (stream_id, stream_version)
    ) STRICT;
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END;",
    // 2: one row per command id, written in the same transaction as the
    // command's events, so that a command id has at most one effect in the
    // whole log and a retry is told from another request by its fingerprint.
    // Filled from the events already stored (their metadata's command ids;
    // where an older build let one id reach two streams, the first stays).
    "CREATE TABLE commands (
        command_id     BLOB    PRIMARY KEY,
        fingerprint    BLOB,
        stream_id      TEXT    NOT NULL,
        first_position INTEGER NOT NULL,
        last_position  INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE TRIGGER commands_no_update BEFORE UPDATE ON commands
    BEGIN SELECT RAISE(ABORT, 'commands are append-only: UPDATE refused'); END;
    CREATE TRIGGER commands_no_delete BEFORE DELETE ON commands
    BEGIN SELECT RAISE(ABORT, 'commands are append-only: DELETE refused'); END;
    INSERT OR IGNORE INTO commands (command_id, fingerprint, stream_id, first_position, last_position)
    SELECT unhex(replace(cid, '-', '')), unhex(fp), stream_id, min(position), max(position)
    FROM (SELECT json_extract(metadata, '$.command_id') AS cid,
                 json_extract(metadata, '$.fingerprint') AS fp, stream_id, position
          FROM events WHERE json_extract(metadata, '$.command_id') IS NOT NULL)
    GROUP BY cid, stream_id
    ORDER BY min(position);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], each migration in its own
/// immediate transaction that re-reads the version first (two processes
/// opening one file at once cannot both apply a migration); refuses a
/// database written by a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).sql()?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).sql()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found, supported: SCHEMA_VERSION });
        }
        let Some(sql) = usize::try_from(found).ok().and_then(|i| MIGRATIONS.get(i)) else {
            return Ok(());
        };
        tx.execute_batch(sql).sql()?;
        tx.pragma_update(None, "user_version", found + 1).sql()?;
        tx.commit().sql()?;
    }
}
