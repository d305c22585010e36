//! Importing another log's events exactly as recorded, onto this log's
//! head, in one transaction under the log lock. Every check runs before
//! anything is written; a refused import writes nothing.

use std::collections::{HashMap, HashSet};

use store::import::{ImportTip, check_import, record_command};
use store::{Fingerprint, Head, Position, RawEvent, RecordedCommand, StoreError, StreamId};
use uuid::Uuid;

use crate::conn::Settings;
use crate::decide::Rows;
use crate::error::Pg;
use crate::writer::{HEAD_SQL, INSERT_EVENTS_SQL, LOCK_SQL, LOG_LOCK_KEY, MOVE_HEAD_SQL, NOTIFY_SQL, tip_of};

/// Rows per INSERT statement.
const IMPORT_CHUNK_EVENTS: usize = 2_000;

pub(crate) async fn import(
    client: &mut deadpool_postgres::Client,
    settings: &Settings,
    events: &[RawEvent],
) -> Result<Head, StoreError> {
    let tx = settings.within("begin", async { client.transaction().await.pg() }).await?;
    settings.within("lock", async { tx.execute(LOCK_SQL, &[&LOG_LOCK_KEY]).await.pg() }).await?;
    let head = settings.within("head", async { tx.query_one(HEAD_SQL, &[]).await.pg() }).await?;
    let (tip, head_micros, _) = tip_of(&head)?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let mut streams: Vec<&str> = events.iter().map(|e| e.stream_id.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let (stored_ids, versions) = settings
        .within("lookups", async {
            let stored = tx.query("SELECT event_id FROM events WHERE event_id = ANY($1)", &[&ids]).await.pg()?;
            let versions = tx
                .query(
                    "SELECT s.id, (SELECT max(stream_version) FROM events WHERE stream_id = s.id)
                     FROM unnest($1::text[]) AS s(id)",
                    &[&streams],
                )
                .await
                .pg()?;
            Ok((stored, versions))
        })
        .await?;
    let stored_ids: HashSet<Uuid> = stored_ids.iter().map(|r| r.get(0)).collect();
    let versions: HashMap<String, Option<u64>> =
        versions.iter().map(|r| (r.get(0), r.get::<_, Option<i64>>(1).map(|v| v as u64))).collect();
    // The checks every backend makes (store::import), so that both accept
    // and refuse exactly the same imports.
    let at = ImportTip {
        head: (tip.position > 0).then_some(Head { position: Position(tip.position), hash: tip.hash }),
        recorded_at_micros: (tip.position > 0).then_some(head_micros),
    };
    let checked = check_import::<std::convert::Infallible>(
        at,
        events,
        |stream| Ok(versions.get(stream).copied().flatten()),
        |id| Ok(stored_ids.contains(id)),
    )
    .unwrap_or_else(|never| match never {})?;
    let commands = settings
        .within("commands", async {
            let ids: Vec<Uuid> = checked.commands.iter().map(|c| c.command_id).collect();
            tx.query(
                "SELECT command_id, fingerprint, stream_id, first_position, last_position
                 FROM commands WHERE command_id = ANY($1)",
                &[&ids],
            )
            .await
            .pg()
        })
        .await?;
    let mut recorded: HashMap<Uuid, RecordedCommand> = HashMap::new();
    for row in &commands {
        let fingerprint: Option<Vec<u8>> = row.get(1);
        let stream: String = row.get(2);
        let command = RecordedCommand {
            command_id: row.get(0),
            fingerprint: fingerprint.and_then(|f| <[u8; 32]>::try_from(f.as_slice()).ok()).map(Fingerprint),
            stream_id: StreamId::parse(stream)
                .map_err(|e| StoreError::Corrupt { position: 0, detail: format!("commands: {e}") })?,
            first_position: Position(row.get::<_, i64>(3) as u64),
            last_position: Position(row.get::<_, i64>(4) as u64),
        };
        recorded.insert(command.command_id, command);
    }
    let mut new_commands = Commands::default();
    for command in &checked.commands {
        if record_command(recorded.get(&command.command_id), command)? {
            new_commands.ids.push(command.command_id);
            new_commands.fingerprints.push(command.fingerprint.map(|f| f.0.to_vec()));
            new_commands.streams.push(command.stream_id.as_str().to_owned());
            new_commands.firsts.push(command.first_position.0 as i64);
            new_commands.lasts.push(command.last_position.0 as i64);
        }
    }
    let commands = new_commands;
    let rows = rows_of(events);
    for chunk in 0..rows.positions.len().div_ceil(IMPORT_CHUNK_EVENTS) {
        let r = chunk * IMPORT_CHUNK_EVENTS..((chunk + 1) * IMPORT_CHUNK_EVENTS).min(rows.positions.len());
        settings
            .within("insert", async {
                tx.execute(
                    INSERT_EVENTS_SQL,
                    &[
                        &&rows.positions[r.clone()],
                        &&rows.stream_ids[r.clone()],
                        &&rows.stream_versions[r.clone()],
                        &&rows.event_ids[r.clone()],
                        &&rows.event_types[r.clone()],
                        &&rows.schema_versions[r.clone()],
                        &&rows.data[r.clone()],
                        &&rows.metadata[r.clone()],
                        &&rows.recorded_at_micros[r.clone()],
                        &&rows.hashes[r.clone()],
                    ],
                )
                .await
                .pg()
            })
            .await?;
    }
    let head = checked.head;
    let last_micros = events.last().map_or(0, |e| e.recorded_at_micros);
    settings
        .within("finish", async {
            tx.execute(
                "INSERT INTO commands (command_id, fingerprint, stream_id, first_position, last_position)
                 SELECT * FROM UNNEST($1::uuid[], $2::bytea[], $3::text[], $4::bigint[], $5::bigint[])
                 ON CONFLICT (command_id) DO NOTHING",
                &[&commands.ids, &commands.fingerprints, &commands.streams, &commands.firsts, &commands.lasts],
            )
            .await
            .pg()?;
            let position = head.position.0 as i64;
            tx.execute(MOVE_HEAD_SQL, &[&position, &head.hash.to_vec(), &last_micros]).await.pg()?;
            tx.execute(NOTIFY_SQL, &[&head.position.0.to_string()]).await.pg()?;
            tx.commit().await.pg()
        })
        .await?;
    Ok(head)
}

/// The rows to insert: the events exactly as the other log recorded them
/// (checked by `check_import` first).
fn rows_of(events: &[RawEvent]) -> Rows {
    let mut rows = Rows::default();
    for event in events {
        rows.positions.push(event.position.0 as i64);
        rows.stream_ids.push(event.stream_id.clone());
        rows.stream_versions.push(event.stream_version as i64);
        rows.event_ids.push(event.event_id);
        rows.event_types.push(event.event_type.clone());
        rows.schema_versions.push(i64::from(event.schema_version));
        rows.data.push(event.data.clone());
        rows.metadata.push(event.metadata.clone());
        rows.recorded_at_micros.push(event.recorded_at_micros);
        rows.hashes.push(event.hash.to_vec());
    }
    rows
}

/// The commands to record, as columns.
#[derive(Debug, Default)]
struct Commands {
    ids: Vec<Uuid>,
    fingerprints: Vec<Option<Vec<u8>>>,
    streams: Vec<String>,
    firsts: Vec<i64>,
    lasts: Vec<i64>,
}
