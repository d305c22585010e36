//! Reads: a small pool of read connections used from blocking tasks, so no
//! SQLite call ever runs on an async worker thread.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use uuid::Uuid;

use store::ChainChecker;
use store::StoreError;

use crate::error::Sql;
use store::RawEvent;
use store::hash::{CanonicalEvent, GENESIS};
use store::{
    ChainProblem, Direction, EventMetadata, Fingerprint, Head, Position, RecordedCommand, RecordedEvent, StoredJson,
    StreamId, StreamStart, VerifyOutcome,
};

const COLUMNS: &str =
    "position, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at, hash";

/// Read connections, opened on demand and kept up to a limit.
#[derive(Debug)]
pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    idle_max: usize,
}

impl ReadPool {
    pub fn new(path: PathBuf, idle_max: usize) -> Self {
        Self { path, idle: Mutex::new(Vec::new()), idle_max }
    }

    /// Runs `f` on a read connection in a blocking task.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => pool.open()?,
            };
            let out = f(&mut conn);
            // A connection left inside a transaction by a failed read is
            // dropped rather than reused.
            if conn.is_autocommit() {
                let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < pool.idle_max {
                    idle.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }

    /// [`store::EventStore::read_streams`], on a connection of its own
    /// that maps up to `mmap_bytes` of the file and is closed (unmapped)
    /// when it returns. Runs on a blocking thread.
    pub fn read_streams(
        &self,
        mmap_bytes: u64,
        streams: &[StreamId],
        upto: Position,
        pages: &tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, StoreError>>,
    ) {
        let conn = self.open().and_then(|conn| {
            let bytes = mmap_bytes.min(i64::MAX as u64);
            conn.query_row(&format!("PRAGMA mmap_size = {bytes}"), [], |_| Ok(())).sql()?;
            Ok(conn)
        });
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                let _ = pages.blocking_send(Err(e));
                return;
            }
        };
        for stream in streams {
            let mut from = 0;
            loop {
                let page = match read_stream(
                    &conn,
                    stream,
                    StreamStart::Version(from),
                    Direction::Forward,
                    store::READ_EVENTS_MAX,
                ) {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = pages.blocking_send(Err(e));
                        return;
                    }
                };
                let (page, next) = store::stream_page_up_to(page, upto);
                if !page.is_empty() && pages.blocking_send(Ok(page)).is_err() {
                    return;
                }
                match next {
                    Some(next) => from = next,
                    None => break,
                }
            }
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).sql()?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).sql()?;
        conn.pragma_update(None, "query_only", true).sql()?;
        Ok(conn)
    }
}

fn corrupt(position: i64, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { position: position as u64, detail: detail.to_string() }
}

/// Decodes one row selected with [`COLUMNS`].
fn decode(row: &Row<'_>) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.get(0).sql()?;
    let bad = |d: &dyn std::fmt::Display| corrupt(position, d);
    let stream_id = StreamId::parse(row.get::<_, String>(1).sql()?).map_err(|e| bad(&e))?;
    let id: Vec<u8> = row.get(3).sql()?;
    let event_id = Uuid::from_slice(&id).map_err(|e| bad(&e))?;
    let data: String = row.get(6).sql()?;
    let metadata: String = row.get(7).sql()?;
    let micros: i64 = row.get(8).sql()?;
    let hash_bytes: Vec<u8> = row.get(9).sql()?;
    let hash: [u8; 32] = hash_bytes.as_slice().try_into().map_err(|_| bad(&"hash is not 32 bytes"))?;
    Ok(RecordedEvent {
        position: Position(position as u64),
        stream_id,
        stream_version: row.get::<_, i64>(2).sql()? as u64,
        event_id,
        event_type: row.get(4).sql()?,
        schema_version: row.get(5).sql()?,
        data: StoredJson::from_text(data).map_err(|e| bad(&e))?,
        metadata: serde_json::from_str::<EventMetadata>(&metadata).map_err(|e| bad(&e))?,
        recorded_at: DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| bad(&"recorded_at out of range"))?,
        hash,
    })
}

fn collect(mut rows: rusqlite::Rows<'_>) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().sql()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn limit_of(limit: usize) -> i64 {
    limit.min(store::READ_EVENTS_MAX) as i64
}

pub fn stream_version(conn: &Connection, stream_id: &StreamId) -> Result<Option<u64>, StoreError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT max(stream_version) FROM events WHERE stream_id = ?1")
        .sql()?
        .query_row([stream_id.as_str()], |r| r.get(0))
        .sql()?;
    Ok(v.map(|v| v as u64))
}

pub fn read_stream(
    conn: &Connection,
    stream_id: &StreamId,
    start: StreamStart,
    direction: Direction,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let (sql, from) = match (direction, start) {
        (Direction::Forward, start) => (
            format!(
                "SELECT {COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version >= ?2
                 ORDER BY stream_version ASC LIMIT ?3"
            ),
            match start {
                StreamStart::End => 0,
                StreamStart::Version(v) => v.min(i64::MAX as u64) as i64,
            },
        ),
        (Direction::Backward, start) => (
            format!(
                "SELECT {COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version <= ?2
                 ORDER BY stream_version DESC LIMIT ?3"
            ),
            match start {
                StreamStart::End => i64::MAX,
                StreamStart::Version(v) => v.min(i64::MAX as u64) as i64,
            },
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).sql()?;
    collect(stmt.query(params![stream_id.as_str(), from, limit_of(limit)]).sql()?)
}

pub fn stream_ids(conn: &Connection, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamId>, StoreError> {
    // One seek in the (stream_id, stream_version) index per stream: a
    // DISTINCT would walk every event of every stream.
    // (No stream id is empty, so '' comes before every one.)
    let mut next =
        conn.prepare_cached("SELECT stream_id FROM events WHERE stream_id > ?1 ORDER BY stream_id LIMIT 1").sql()?;
    let mut ids = Vec::new();
    let mut last = after.map_or_else(String::new, |s| s.as_str().to_owned());
    while ids.len() < limit_of(limit) as usize {
        let found: Option<String> = next.query_row([&last], |r| r.get(0)).optional().sql()?;
        let Some(id) = found else { break };
        ids.push(StreamId::parse(id.clone())?);
        last = id;
    }
    Ok(ids)
}

pub fn read_all(conn: &Connection, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"))
        .sql()?;
    collect(stmt.query(params![after.0.min(i64::MAX as u64) as i64, limit_of(limit)]).sql()?)
}

pub fn head(conn: &Connection) -> Result<Option<Head>, StoreError> {
    let row = conn
        .prepare_cached("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        .sql()?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .optional()
        .sql()?;
    row.map(|(position, hash)| {
        let hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| corrupt(position, "hash is not 32 bytes"))?;
        Ok(Head { position: Position(position as u64), hash })
    })
    .transpose()
}

/// Binary search over positions: `recorded_at` never decreases along the log.
pub fn position_at_or_after(conn: &mut Connection, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
    let tx = conn.transaction().sql()?;
    let target = at.timestamp_micros();
    let Some(last) = head(&tx)? else { return Ok(None) };
    let recorded = |position: u64| -> Result<i64, StoreError> {
        tx.prepare_cached("SELECT recorded_at FROM events WHERE position = ?1")
            .sql()?
            .query_row([position as i64], |r| r.get(0))
            .sql()
    };
    if recorded(last.position.0)? < target {
        return Ok(None);
    }
    let (mut lo, mut hi) = (1u64, last.position.0);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if recorded(mid)? >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(Some(Position(lo)))
}

/// How often (in events) a verification reports its progress.
pub const VERIFY_PROGRESS_EVENTS: u64 = 10_000;

/// Below this many events a verification runs on one thread.
pub const VERIFY_SPLIT_EVENTS_MIN: u64 = 100_000;

/// The head a verification covers and the ranges it is checked in: the log
/// up to `head` split into `parts` ranges of about equal size. Rows at or
/// below a position are never changed once written (the log is
/// append-only: its triggers refuse updates and deletes), so each range may
/// be read on a connection and a thread of its own.
pub fn verify_ranges(conn: &mut Connection, parts: u64, split_min: u64) -> Result<Vec<(u64, u64)>, StoreError> {
    let head: Option<i64> = conn.query_row("SELECT max(position) FROM events", [], |r| r.get(0)).sql()?;
    let head = head.map_or(0, |h| h as u64);
    if head == 0 {
        return Ok(Vec::new());
    }
    let parts = if head < split_min { 1 } else { parts.clamp(1, head) };
    let size = head.div_ceil(parts);
    Ok((0..parts).map(|i| (i * size + 1, ((i + 1) * size).min(head))).filter(|(a, b)| a <= b).collect())
}

/// What one range's check found.
pub struct RangeChecked {
    /// The checker after the range (its head is the range's last event).
    pub checker: ChainChecker,
    /// The break, if the range has one (its earliest).
    pub broken: Option<VerifyOutcome>,
}

/// Checks the events `first..=last` against the chain, starting from the
/// stored hash at `first - 1`.
pub fn verify_range(
    conn: &mut Connection,
    first: u64,
    last: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RangeChecked, StoreError> {
    let tx = conn.transaction().sql()?;
    let previous = if first <= 1 {
        GENESIS
    } else {
        let stored: Option<Vec<u8>> = tx
            .prepare_cached("SELECT hash FROM events WHERE position = ?1")
            .sql()?
            .query_row([(first - 1) as i64], |r| r.get(0))
            .optional()
            .sql()?;
        // The predecessor missing or unreadable is the break the range
        // before this one reports; this range starts from zeros then.
        stored.and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()).unwrap_or_default()
    };
    let mut checker = ChainChecker::resume(first - 1, previous, 0);
    let mut broken = None;
    {
        let mut stmt = tx
            .prepare(&format!("SELECT {COLUMNS} FROM events WHERE position BETWEEN ?1 AND ?2 ORDER BY position"))
            .sql()?;
        let mut rows = stmt.query([first as i64, last as i64]).sql()?;
        let mut since_report = 0u64;
        while let Some(row) = rows.next().sql()? {
            let position: i64 = row.get(0).sql()?;
            let undecodable = |detail: String| VerifyOutcome::Broken {
                position: Position(position as u64),
                problem: ChainProblem::Undecodable { detail },
            };
            let event = match canonical(row, position) {
                Ok(event) => event,
                Err(e) => {
                    broken = Some(undecodable(e.to_string()));
                    break;
                }
            };
            let stored_hash = match row.get_ref(9).sql()?.as_blob() {
                Ok(h) => h,
                Err(e) => {
                    broken = Some(undecodable(e.to_string()));
                    break;
                }
            };
            if let Err(b) = checker.check(&event, stored_hash) {
                broken = Some(b);
                break;
            }
            since_report += 1;
            if since_report == VERIFY_PROGRESS_EVENTS {
                progress(since_report);
                since_report = 0;
            }
        }
        progress(since_report);
    }
    // A range that ends early (rows missing at its end) is a gap at the
    // first position it did not reach, found at the next position the log
    // holds (in a later range when the gap goes on past this one's end, as
    // one pass would find it).
    if broken.is_none() && checker.head().map_or(first - 1, |h| h.position.0) < last {
        let next = checker.head().map_or(first, |h| h.position.0 + 1);
        let found: Option<i64> = tx
            .prepare_cached("SELECT min(position) FROM events WHERE position > ?1")
            .sql()?
            .query_row([last.min(i64::MAX as u64) as i64], |r| r.get(0))
            .sql()?;
        broken = Some(VerifyOutcome::Broken {
            position: Position(next),
            problem: ChainProblem::Gap { found: Position(found.map_or(last + 1, |f| f as u64)) },
        });
    }
    Ok(RangeChecked { checker, broken })
}

/// The outcome of ranges checked apart, in log order: the earliest break,
/// else the whole chain intact up to the last range's head, with the
/// auditor's earlier head checked.
pub fn join_ranges(ranges: Vec<RangeChecked>, since: SinceFound) -> VerifyOutcome {
    let mut events = 0;
    let mut last = ChainChecker::new();
    for range in ranges {
        if let Some(broken) = range.broken {
            return broken;
        }
        events += range.checker.events();
        last = range.checker;
    }
    let head = last.head();
    let whole = match head {
        Some(h) => ChainChecker::resume(h.position.0, h.hash, events),
        None => ChainChecker::new(),
    };
    whole.finish(since)
}

/// An auditor's earlier head and the hash stored at its position now.
pub type SinceFound = Option<(Head, Option<[u8; 32]>)>;

/// The hash stored at an auditor's earlier head, for [`join_ranges`].
pub fn since_found(conn: &mut Connection, since: Option<Head>) -> Result<SinceFound, StoreError> {
    let Some(expected) = since else { return Ok(None) };
    let found = conn
        .prepare_cached("SELECT hash FROM events WHERE position = ?1")
        .sql()?
        .query_row([expected.position.0 as i64], |r| r.get::<_, Vec<u8>>(0))
        .optional()
        .sql()?
        .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok());
    Ok(Some((expected, found)))
}

/// The hashed fields of a row, borrowed from SQLite's buffers.
fn canonical<'a>(row: &'a Row<'_>, position: i64) -> rusqlite::Result<CanonicalEvent<'a>> {
    let id = row.get_ref(3)?.as_blob()?;
    let event_id: &[u8; 16] = id
        .try_into()
        .map_err(|_| rusqlite::Error::InvalidColumnType(3, "event_id".to_owned(), rusqlite::types::Type::Blob))?;
    Ok(CanonicalEvent {
        position: position as u64,
        stream_id: row.get_ref(1)?.as_str()?,
        stream_version: row.get::<_, i64>(2)? as u64,
        event_id,
        event_type: row.get_ref(4)?.as_str()?,
        schema_version: row.get(5)?,
        data: row.get_ref(6)?.as_str()?,
        metadata: row.get_ref(7)?.as_str()?,
        recorded_at_micros: row.get(8)?,
    })
}

/// Rows after `after` exactly as stored, without validating anything but
/// what [`RawEvent`] cannot represent.
pub fn read_raw(conn: &Connection, after: Position, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"))
        .sql()?;
    let mut rows = stmt.query(params![after.0.min(i64::MAX as u64) as i64, limit_of(limit)]).sql()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().sql()? {
        out.push(decode_raw(row)?);
    }
    Ok(out)
}

fn decode_raw(row: &Row<'_>) -> Result<RawEvent, StoreError> {
    let position: i64 = row.get(0).sql()?;
    let text = |i: usize| -> Result<String, StoreError> {
        match row.get_ref(i).sql()? {
            rusqlite::types::ValueRef::Text(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
            other => Err(corrupt(position, format!("column {i} is {:?}, not text", other.data_type()))),
        }
    };
    let blob = |i: usize| -> Result<&[u8], StoreError> {
        row.get_ref(i).sql()?.as_blob().map_err(|e| corrupt(position, format!("column {i}: {e}")))
    };
    let event_id = Uuid::from_slice(blob(3)?).map_err(|e| corrupt(position, e))?;
    let hash: [u8; 32] = blob(9)?.try_into().map_err(|_| corrupt(position, "hash is not 32 bytes"))?;
    let schema_version: u32 = row.get(5).map_err(|e| corrupt(position, e))?;
    Ok(RawEvent {
        position: Position(position as u64),
        stream_id: text(1)?,
        stream_version: row.get::<_, i64>(2).sql()? as u64,
        event_id,
        event_type: text(4)?,
        schema_version,
        data: text(6)?,
        metadata: text(7)?,
        recorded_at_micros: row.get(8).sql()?,
        hash,
    })
}

/// The stored hash at `position` ([`GENESIS`] at position 0); `None` when
/// there is no such event.
pub fn hash_at(conn: &Connection, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
    if position == Position::START {
        return Ok(Some(GENESIS));
    }
    let found = conn
        .prepare_cached("SELECT hash FROM events WHERE position = ?1")
        .sql()?
        .query_row([position.0.min(i64::MAX as u64) as i64], |r| r.get::<_, Vec<u8>>(0))
        .optional()
        .sql()?;
    found
        .map(|h| <[u8; 32]>::try_from(h.as_slice()).map_err(|_| corrupt(position.0 as i64, "hash is not 32 bytes")))
        .transpose()
}

/// What the log holds for `command_id`; `None` for a command never recorded.
pub fn command(conn: &Connection, command_id: Uuid) -> rusqlite::Result<Option<RecordedCommand>> {
    conn.prepare_cached(
        "SELECT fingerprint, stream_id, first_position, last_position FROM commands WHERE command_id = ?1",
    )?
    .query_row([command_id.as_bytes()], |r| {
        let fingerprint: Option<Vec<u8>> = r.get(0)?;
        let fingerprint = fingerprint
            .map(|f| <[u8; 32]>::try_from(f.as_slice()).map(Fingerprint))
            .transpose()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))?;
        let stream_id = StreamId::parse(r.get::<_, String>(1)?)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e)))?;
        Ok(RecordedCommand {
            command_id,
            fingerprint,
            stream_id,
            first_position: Position(r.get::<_, i64>(2)? as u64),
            last_position: Position(r.get::<_, i64>(3)? as u64),
        })
    })
    .optional()
}
