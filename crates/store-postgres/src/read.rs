//! Reads, on the pool's connections. Every read is one statement (verify:
//! one snapshot), bounded by the client-side deadline.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use store::hash::{CanonicalEvent, GENESIS};
use store::{
    ChainChecker, ChainProblem, Direction, EventMetadata, Head, Position, RawEvent, RecordedCommand, RecordedEvent,
    StoreError, StoredJson, StreamId, StreamStart, VerifyOutcome,
};

use crate::error::Pg;

const COLUMNS: &str = "position, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, \
     recorded_at_micros, hash";

/// How often (in events) a verification reports its progress, and how many
/// rows it reads per page.
pub const VERIFY_PAGE_EVENTS: i64 = 10_000;

fn corrupt(position: i64, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { position: position as u64, detail: detail.to_string() }
}

fn limit_of(limit: usize) -> i64 {
    limit.min(store::READ_EVENTS_MAX) as i64
}

fn position_param(p: Position) -> i64 {
    p.0.min(i64::MAX as u64) as i64
}

/// Decodes one row selected with [`COLUMNS`].
fn decode(row: &Row) -> Result<RecordedEvent, StoreError> {
    let raw = decode_raw(row)?;
    let position = raw.position.0 as i64;
    let bad = |d: &dyn std::fmt::Display| corrupt(position, d);
    Ok(RecordedEvent {
        position: raw.position,
        stream_id: StreamId::parse(raw.stream_id).map_err(|e| bad(&e))?,
        stream_version: raw.stream_version,
        event_id: raw.event_id,
        event_type: raw.event_type,
        schema_version: raw.schema_version,
        data: StoredJson::from_text(raw.data).map_err(|e| bad(&e))?,
        metadata: serde_json::from_str::<EventMetadata>(&raw.metadata).map_err(|e| bad(&e))?,
        recorded_at: DateTime::<Utc>::from_timestamp_micros(raw.recorded_at_micros)
            .ok_or_else(|| bad(&"recorded_at out of range"))?,
        hash: raw.hash,
    })
}

/// A row exactly as stored, checking only what [`RawEvent`] cannot hold.
fn decode_raw(row: &Row) -> Result<RawEvent, StoreError> {
    let position: i64 = row.try_get(0).pg()?;
    let bad = |d: &dyn std::fmt::Display| corrupt(position, d);
    let hash: Vec<u8> = row.try_get(9).pg()?;
    let schema_version: i64 = row.try_get(5).pg()?;
    Ok(RawEvent {
        position: Position(position as u64),
        stream_id: row.try_get(1).pg()?,
        stream_version: row.try_get::<_, i64>(2).pg()? as u64,
        event_id: row.try_get(3).pg()?,
        event_type: row.try_get(4).pg()?,
        schema_version: u32::try_from(schema_version).map_err(|e| bad(&e))?,
        data: row.try_get(6).pg()?,
        metadata: row.try_get(7).pg()?,
        recorded_at_micros: row.try_get(8).pg()?,
        hash: hash.as_slice().try_into().map_err(|_| bad(&"hash is not 32 bytes"))?,
    })
}

pub async fn stream_version(
    client: &deadpool_postgres::Client,
    stream_id: &StreamId,
) -> Result<Option<u64>, StoreError> {
    let st = client.prepare_cached("SELECT max(stream_version) FROM events WHERE stream_id = $1").await.pg()?;
    let v: Option<i64> = client.query_one(&st, &[&stream_id.as_str()]).await.pg()?.get(0);
    Ok(v.map(|v| v as u64))
}

pub async fn read_stream(
    client: &deadpool_postgres::Client,
    stream_id: &StreamId,
    start: StreamStart,
    direction: Direction,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let (sql, from) = match direction {
        Direction::Forward => (
            format!(
                "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2
                 ORDER BY stream_version ASC LIMIT $3"
            ),
            match start {
                StreamStart::End => 0,
                StreamStart::Version(v) => v.min(i64::MAX as u64) as i64,
            },
        ),
        Direction::Backward => (
            format!(
                "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_version <= $2
                 ORDER BY stream_version DESC LIMIT $3"
            ),
            match start {
                StreamStart::End => i64::MAX,
                StreamStart::Version(v) => v.min(i64::MAX as u64) as i64,
            },
        ),
    };
    let st = client.prepare_cached(&sql).await.pg()?;
    let rows = client.query(&st, &[&stream_id.as_str(), &from, &limit_of(limit)]).await.pg()?;
    rows.iter().map(decode).collect()
}

const AFTER_SQL: &str = "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, data, \
     metadata, recorded_at_micros, hash FROM events WHERE position > $1 ORDER BY position LIMIT $2";

/// One seek in the (stream_id, stream_version) index per stream (a loose
/// index scan; a DISTINCT would walk every event). No stream id is empty,
/// so '' comes before every one.
const STREAM_IDS_SQL: &str = "WITH RECURSIVE s(id) AS (
        (SELECT stream_id FROM events WHERE stream_id > $1 ORDER BY stream_id LIMIT 1)
        UNION ALL
        SELECT (SELECT e.stream_id FROM events e WHERE e.stream_id > s.id ORDER BY e.stream_id LIMIT 1)
        FROM s WHERE s.id IS NOT NULL)
     SELECT id FROM s WHERE id IS NOT NULL LIMIT $2";

pub async fn stream_ids(
    client: &deadpool_postgres::Client,
    after: Option<&StreamId>,
    limit: usize,
) -> Result<Vec<StreamId>, StoreError> {
    let st = client.prepare_cached(STREAM_IDS_SQL).await.pg()?;
    let after = after.map_or("", StreamId::as_str);
    let rows = client.query(&st, &[&after, &limit_of(limit)]).await.pg()?;
    rows.iter().map(|row| StreamId::parse(row.try_get::<_, String>(0).pg()?)).collect()
}

pub async fn read_all(
    client: &deadpool_postgres::Client,
    after: Position,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let st = client.prepare_cached(AFTER_SQL).await.pg()?;
    let rows = client.query(&st, &[&position_param(after), &limit_of(limit)]).await.pg()?;
    rows.iter().map(decode).collect()
}

pub async fn read_raw(
    client: &deadpool_postgres::Client,
    after: Position,
    limit: usize,
) -> Result<Vec<RawEvent>, StoreError> {
    let st = client.prepare_cached(AFTER_SQL).await.pg()?;
    let rows = client.query(&st, &[&position_param(after), &limit_of(limit)]).await.pg()?;
    rows.iter().map(decode_raw).collect()
}

/// The head, from the events themselves (not the head row), as the log
/// proves it.
pub async fn head(client: &deadpool_postgres::Client) -> Result<Option<Head>, StoreError> {
    let st = client.prepare_cached("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1").await.pg()?;
    let Some(row) = client.query_opt(&st, &[]).await.pg()? else { return Ok(None) };
    let position: i64 = row.try_get(0).pg()?;
    let hash: Vec<u8> = row.try_get(1).pg()?;
    let hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| corrupt(position, "hash is not 32 bytes"))?;
    Ok(Some(Head { position: Position(position as u64), hash }))
}

/// The committed head position (the head row): what the watch follows.
pub async fn head_position(client: &tokio_postgres::Client) -> Result<Position, StoreError> {
    let position: i64 = client.query_one("SELECT position FROM log_head", &[]).await.pg()?.get(0);
    Ok(Position(position as u64))
}

pub async fn position_at_or_after(
    client: &deadpool_postgres::Client,
    at: DateTime<Utc>,
) -> Result<Option<Position>, StoreError> {
    let st = client.prepare_cached("SELECT min(position) FROM events WHERE recorded_at_micros >= $1").await.pg()?;
    let found: Option<i64> = client.query_one(&st, &[&at.timestamp_micros()]).await.pg()?.get(0);
    Ok(found.map(|p| Position(p as u64)))
}

pub async fn command(
    client: &deadpool_postgres::Client,
    command_id: Uuid,
) -> Result<Option<RecordedCommand>, StoreError> {
    let st = client
        .prepare_cached(
            "SELECT command_id, fingerprint, stream_id, first_position, last_position FROM commands
             WHERE command_id = $1",
        )
        .await
        .pg()?;
    client.query_opt(&st, &[&command_id]).await.pg()?.map(|row| crate::writer::recorded_command(&row)).transpose()
}

pub async fn hash_at(client: &deadpool_postgres::Client, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
    if position == Position::START {
        return Ok(Some(GENESIS));
    }
    let st = client.prepare_cached("SELECT hash FROM events WHERE position = $1").await.pg()?;
    let Some(row) = client.query_opt(&st, &[&position_param(position)]).await.pg()? else { return Ok(None) };
    let hash: Vec<u8> = row.try_get(0).pg()?;
    hash.as_slice().try_into().map(Some).map_err(|_| corrupt(position.0 as i64, "hash is not 32 bytes"))
}

/// Recomputes the chain over one snapshot of the log (a repeatable-read,
/// read-only transaction), a page at a time.
pub async fn verify(
    client: &mut deadpool_postgres::Client,
    since: Option<Head>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<VerifyOutcome, StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .pg()?;
    let page = tx.prepare_cached(AFTER_SQL).await.pg()?;
    let mut checker = ChainChecker::new();
    let mut after = 0i64;
    loop {
        let rows = tx.query(&page, &[&after, &VERIFY_PAGE_EVENTS]).await.pg()?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0).pg()?;
        for row in &rows {
            let raw = match decode_raw(row) {
                Ok(raw) => raw,
                Err(e) => {
                    let position: i64 = row.try_get(0).pg()?;
                    let problem = ChainProblem::Undecodable { detail: e.to_string() };
                    return Ok(VerifyOutcome::Broken { position: Position(position as u64), problem });
                }
            };
            let event: CanonicalEvent<'_> = raw.canonical();
            if let Err(broken) = checker.check(&event, &raw.hash) {
                return Ok(broken);
            }
        }
        progress(checker.events());
    }
    progress(checker.events());
    let since = match since {
        None => None,
        Some(expected) => {
            let st = tx.prepare_cached("SELECT hash FROM events WHERE position = $1").await.pg()?;
            let found = tx
                .query_opt(&st, &[&position_param(expected.position)])
                .await
                .pg()?
                .and_then(|row| row.try_get::<_, Vec<u8>>(0).ok())
                .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok());
            Some((expected, found))
        }
    };
    tx.commit().await.pg()?;
    Ok(checker.finish(since))
}
