//! The read-model file's self-checks: the checkpoint with the log's hash
//! and the rows' digests, SQLite's `quick_check`, and the tables' layout.

use rusqlite::{Connection, params};

use super::{DbError, GRANT_INDEX, GRANT_LEDGERS, PROGRAMMES, tables};
use crate::integrity::RowsDigest;

/// Problems `PRAGMA quick_check` reports at most (the first is enough to
/// refuse the file).
const QUICK_CHECK_PROBLEMS_MAX: u32 = 5;

/// Where the stored projections stand: the log position they reflect and
/// the log's chain hash at that position (the genesis hash at 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last log position applied.
    pub position: u64,
    /// The log's hash at `position`.
    pub log_hash: [u8; 32],
}

impl Default for Checkpoint {
    fn default() -> Self {
        Self { position: 0, log_hash: store::hash::GENESIS }
    }
}

/// The checkpoint as stored, with every projection's row digest.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stored {
    pub(super) checkpoint: Checkpoint,
    pub(super) ledgers: RowsDigest,
    pub(super) programmes: RowsDigest,
    pub(super) index: RowsDigest,
}

pub(super) fn schema() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS checkpoints (projection TEXT PRIMARY KEY, position INTEGER NOT NULL,
            log_hash TEXT NOT NULL, rows_digest TEXT NOT NULL) STRICT;
         {}",
        tables("")
    )
}

/// Every table with its kind and columns, as SQLite reads them.
type Layout = Vec<(String, i64, i64, Vec<(String, String, i64, i64)>)>;

fn layout(conn: &Connection) -> Result<Layout, DbError> {
    let mut tables = conn.prepare(
        "SELECT name, wr, strict FROM pragma_table_list WHERE schema = 'main' AND type = 'table' ORDER BY name",
    )?;
    let tables: Vec<(String, i64, i64)> =
        tables.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    let mut columns = conn.prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")?;
    let mut out = Vec::new();
    for (name, wr, strict) in tables {
        let cols = columns
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        out.push((name, wr, strict, cols));
    }
    Ok(out)
}

/// The file's tables must be exactly this build's: a changed byte in the
/// stored schema could otherwise make SQLite read the rows differently.
pub(super) fn check_schema(conn: &Connection) -> Result<(), DbError> {
    let expected = Connection::open_in_memory()?;
    expected.execute_batch(&schema())?;
    if layout(conn)? != layout(&expected)? {
        return Err(DbError::Damaged("its tables are not this build's".to_owned()));
    }
    Ok(())
}

pub(super) fn quick_check(conn: &Connection) -> Result<(), DbError> {
    let mut stmt = conn.prepare(&format!("PRAGMA quick_check({QUICK_CHECK_PROBLEMS_MAX})"))?;
    let problems: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(DbError::Damaged(format!("integrity check: {}", problems.join("; "))))
}

pub(super) fn damaged(what: impl std::fmt::Display) -> DbError {
    DbError::Damaged(what.to_string())
}

/// Reads every projection's checkpoint; they always move together, so they
/// must agree.
pub(super) fn read_stored(conn: &Connection) -> Result<Stored, DbError> {
    let mut stmt = conn.prepare_cached("SELECT projection, position, log_hash, rows_digest FROM checkpoints")?;
    let rows: Vec<(String, i64, String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
    let mut stored = Stored::default();
    if rows.is_empty() {
        return Ok(stored); // a new file
    }
    let mut seen = Vec::new();
    for (name, position, hash, digest) in rows {
        let position = u64::try_from(position).map_err(|_| damaged(format!("checkpoint {name} is {position}")))?;
        let mut log_hash = [0u8; 32];
        hex::decode_to_slice(&hash, &mut log_hash).map_err(|_| damaged(format!("checkpoint {name}: log hash")))?;
        let digest = RowsDigest::parse(&digest).ok_or_else(|| damaged(format!("checkpoint {name}: rows digest")))?;
        let checkpoint = Checkpoint { position, log_hash };
        if !seen.is_empty() && stored.checkpoint != checkpoint {
            return Err(damaged("the projections' checkpoints disagree"));
        }
        stored.checkpoint = checkpoint;
        match name.as_str() {
            GRANT_LEDGERS => stored.ledgers = digest,
            PROGRAMMES => stored.programmes = digest,
            GRANT_INDEX => stored.index = digest,
            other => return Err(damaged(format!("unknown checkpoint {other}"))),
        }
        seen.push(name);
    }
    if seen.len() != 3 {
        return Err(damaged("a checkpoint is missing"));
    }
    Ok(stored)
}

pub(super) fn set_checkpoints(tx: &rusqlite::Transaction<'_>, stored: &Stored) -> Result<(), DbError> {
    let position = stored.checkpoint.position as i64;
    let hash = hex::encode(stored.checkpoint.log_hash);
    for (name, digest) in
        [(GRANT_LEDGERS, stored.ledgers), (PROGRAMMES, stored.programmes), (GRANT_INDEX, stored.index)]
    {
        tx.execute(
            "INSERT INTO checkpoints (projection, position, log_hash, rows_digest) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (projection) DO UPDATE SET position = excluded.position,
                log_hash = excluded.log_hash, rows_digest = excluded.rows_digest",
            params![name, position, hash, digest.to_hex()],
        )?;
    }
    Ok(())
}
