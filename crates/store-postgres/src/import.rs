//! Importing another log's events exactly as recorded, onto this log's
//! head, in one transaction under the log lock. Every check runs before
//! anything is written; a refused import writes nothing.

use std::collections::{HashMap, HashSet};

use store::{Head, Position, RawEvent, StoreError, StreamId};
use uuid::Uuid;

use crate::conn::Settings;
use crate::decide::{Rows, Tip};
use crate::error::Pg;
use crate::writer::{HEAD_SQL, INSERT_EVENTS_SQL, LOCK_SQL, LOG_LOCK_KEY, MOVE_HEAD_SQL, NOTIFY_SQL, tip_of};

/// Rows per INSERT statement.
const IMPORT_CHUNK_EVENTS: usize = 2_000;

/// Every refusal of an import, in one place.
fn refused(position: Position, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { position: position.0, detail: format!("import refused: {}", detail.into()) }
}

pub(crate) async fn import(
    client: &mut deadpool_postgres::Client,
    settings: &Settings,
    events: &[RawEvent],
) -> Result<Head, StoreError> {
    let Some(last) = events.last() else { return Err(refused(Position::START, "no events to import")) };
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
    let mut versions: HashMap<String, Option<u64>> =
        versions.iter().map(|r| (r.get(0), r.get::<_, Option<i64>>(1).map(|v| v as u64))).collect();

    let rows = check(events, tip, head_micros, &stored_ids, &mut versions)?;
    let commands = commands_of(events);
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
    let head = last.head();
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
            tx.execute(MOVE_HEAD_SQL, &[&position, &head.hash.to_vec(), &last.recorded_at_micros]).await.pg()?;
            tx.execute(NOTIFY_SQL, &[&head.position.0.to_string()]).await.pg()?;
            tx.commit().await.pg()
        })
        .await?;
    Ok(head)
}

/// Checks the events against the head and each other; the rows to insert.
fn check(
    events: &[RawEvent],
    mut tip: Tip,
    mut last_micros: i64,
    stored_ids: &HashSet<Uuid>,
    versions: &mut HashMap<String, Option<u64>>,
) -> Result<Rows, StoreError> {
    let mut rows = Rows::default();
    let mut seen = HashSet::with_capacity(events.len());
    for event in events {
        let at = event.position;
        if at.0 != tip.position + 1 {
            return Err(refused(at, format!("expected position {} next", tip.position + 1)));
        }
        if StreamId::parse(event.stream_id.clone()).is_err() {
            return Err(refused(at, format!("{:?} is not a valid stream id", event.stream_id)));
        }
        let computed = event.canonical().chain_hash(&tip.hash);
        if computed != event.hash {
            return Err(refused(at, "the hash is not the chain hash after the previous event"));
        }
        if event.recorded_at_micros < last_micros {
            return Err(refused(at, "recorded_at is earlier than the previous event's"));
        }
        if stored_ids.contains(&event.event_id) || !seen.insert(event.event_id) {
            return Err(refused(at, format!("event id {} is already recorded", event.event_id)));
        }
        let version = versions.entry(event.stream_id.clone()).or_insert(None);
        let next = version.map_or(0, |v| v + 1);
        if event.stream_version != next {
            return Err(refused(at, format!("stream {} continues at version {next}", event.stream_id)));
        }
        *version = Some(next);
        rows.positions.push(at.0 as i64);
        rows.stream_ids.push(event.stream_id.clone());
        rows.stream_versions.push(event.stream_version as i64);
        rows.event_ids.push(event.event_id);
        rows.event_types.push(event.event_type.clone());
        rows.schema_versions.push(i64::from(event.schema_version));
        rows.data.push(event.data.clone());
        rows.metadata.push(event.metadata.clone());
        rows.recorded_at_micros.push(event.recorded_at_micros);
        rows.hashes.push(event.hash.to_vec());
        tip = Tip { position: at.0, hash: event.hash };
        last_micros = event.recorded_at_micros;
    }
    Ok(rows)
}

/// The commands the events' metadata names, as store-sqlite's schema-2
/// upgrade finds them: one per command id and stream, from its first to its
/// last event; where one id reached two streams, the first stays.
#[derive(Debug, Default)]
struct Commands {
    ids: Vec<Uuid>,
    fingerprints: Vec<Option<Vec<u8>>>,
    streams: Vec<String>,
    firsts: Vec<i64>,
    lasts: Vec<i64>,
}

fn commands_of(events: &[RawEvent]) -> Commands {
    let mut out = Commands::default();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for event in events {
        let Ok(meta) = serde_json::from_str::<serde_json::Value>(&event.metadata) else { continue };
        let Some(id) = meta.get("command_id").and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok()) else {
            continue;
        };
        let position = event.position.0 as i64;
        match index.get(&id) {
            Some(&i) => {
                if out.streams[i] == event.stream_id {
                    out.lasts[i] = position;
                }
            }
            None => {
                let fingerprint = meta
                    .get("fingerprint")
                    .and_then(|v| v.as_str())
                    .and_then(|s| <[u8; 32]>::try_from(hex_bytes(s)?.as_slice()).ok())
                    .map(|f| f.to_vec());
                index.insert(id, out.ids.len());
                out.ids.push(id);
                out.fingerprints.push(fingerprint);
                out.streams.push(event.stream_id.clone());
                out.firsts.push(position);
                out.lasts.push(position);
            }
        }
    }
    out
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}
