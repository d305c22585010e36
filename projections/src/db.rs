//! The read models' own SQLite file (never the log's: one writer per file).
//! Each projection is named and owns its table; its checkpoint (the last
//! applied log position) is written in the same transaction as its rows, so
//! after a crash every event has been applied exactly once.

use std::collections::BTreeMap;
use std::path::Path;

use events::{GrantId, ProgrammeId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::ledger::{FactKind, GrantLedger};

/// The projection of grant ledgers (behind the budget, timeline, statement
/// and portfolio views).
pub const GRANT_LEDGERS: &str = "grant_ledgers";
/// The projection of programme names.
pub const PROGRAMMES: &str = "programmes";

/// Why the read-model file failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("read model database: {0}")]
    Sqlite(String),
    /// A stored row does not decode.
    #[error("read model row for {key} is unreadable: {detail}")]
    Row {
        /// Which row.
        key: String,
        /// Why.
        detail: String,
    },
    /// The file was written by a newer build.
    #[error("the read model schema is version {found}; this build knows {supported}")]
    NewerSchema {
        /// Found.
        found: i64,
        /// Known.
        supported: i64,
    },
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e.to_string())
    }
}

/// Version 2 stores a ledger as one row per fact (version 1 stored it as
/// one document, rewritten on every event).
const SCHEMA_VERSION: i64 = 2;

fn tables(suffix: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS grant_ledgers{suffix} (
            grant_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, fact TEXT NOT NULL,
            PRIMARY KEY (grant_id, kind, key)) STRICT, WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS programmes{suffix} (
            programme_id TEXT PRIMARY KEY, name TEXT NOT NULL) STRICT;"
    )
}

/// Everything the projections hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Models {
    /// The log position applied.
    pub position: u64,
    /// Grant ledgers.
    pub ledgers: BTreeMap<GrantId, GrantLedger>,
    /// Programme names.
    pub programmes: BTreeMap<ProgrammeId, String>,
}

/// Opens (creating) the read-model file.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(DbError::NewerSchema { found, supported: SCHEMA_VERSION });
    }
    if found > 0 && found < SCHEMA_VERSION {
        // Read models are derived data: an older layout is dropped and
        // rebuilt from the log (the checkpoints go with it).
        tracing::info!(found, SCHEMA_VERSION, "read model layout changed; rebuilding from the log");
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             DROP TABLE IF EXISTS grant_ledgers; DROP TABLE IF EXISTS programmes; DROP TABLE IF EXISTS checkpoints;
             COMMIT;",
        )?;
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS checkpoints (projection TEXT PRIMARY KEY, position INTEGER NOT NULL) STRICT;
         {}
         PRAGMA user_version = {SCHEMA_VERSION};
         COMMIT;",
        tables("")
    ))?;
    Ok(conn)
}

/// Loads every projection and its checkpoint. Both projections move
/// together, so their checkpoints are equal; the lower one is used.
pub fn load(conn: &Connection) -> Result<Models, DbError> {
    let mut models = Models::default();
    let checkpoint = |name: &str| -> Result<u64, DbError> {
        let p: Option<i64> = conn
            .query_row("SELECT position FROM checkpoints WHERE projection = ?1", [name], |r| r.get(0))
            .optional()?;
        Ok(p.unwrap_or(0) as u64)
    };
    models.position = checkpoint(GRANT_LEDGERS)?.min(checkpoint(PROGRAMMES)?);
    let mut stmt = conn.prepare("SELECT grant_id, kind, key, fact FROM grant_ledgers")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let grant: String = row.get(0)?;
        let kind: String = row.get(1)?;
        let key: String = row.get(2)?;
        let bad = |detail: String| DbError::Row { key: format!("{grant}/{kind}/{key}"), detail };
        let id = GrantId::parse(grant.clone()).map_err(|e| bad(e.to_string()))?;
        let kind = FactKind::parse(&kind).ok_or_else(|| bad("unknown kind".to_owned()))?;
        models.ledgers.entry(id).or_default().put_fact(kind, &key, &row.get::<_, String>(3)?).map_err(bad)?;
    }
    let mut stmt = conn.prepare("SELECT programme_id, name FROM programmes")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let id = ProgrammeId::parse(key.clone()).map_err(|e| DbError::Row { key, detail: e.to_string() })?;
        models.programmes.insert(id, row.get(1)?);
    }
    Ok(models)
}

/// Facts to write: grant, kind, key.
pub type Dirty = std::collections::BTreeSet<(GrantId, FactKind, String)>;

fn put_rows(tx: &rusqlite::Transaction<'_>, suffix: &str, rows: &[FactRow]) -> Result<(), DbError> {
    let mut put = tx.prepare_cached(&format!(
        "INSERT INTO grant_ledgers{suffix} (grant_id, kind, key, fact) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (grant_id, kind, key) DO UPDATE SET fact = excluded.fact"
    ))?;
    for (grant, kind, key, json) in rows {
        put.execute(params![grant.as_str(), kind.as_str(), key, json])?;
    }
    Ok(())
}

fn put_programmes(
    tx: &rusqlite::Transaction<'_>,
    suffix: &str,
    programmes: &BTreeMap<ProgrammeId, String>,
) -> Result<(), DbError> {
    let mut put = tx.prepare_cached(&format!(
        "INSERT INTO programmes{suffix} (programme_id, name) VALUES (?1, ?2)
         ON CONFLICT (programme_id) DO UPDATE SET name = excluded.name"
    ))?;
    for (id, name) in programmes {
        put.execute(params![id.as_str(), name])?;
    }
    Ok(())
}

/// Every fact row of every ledger.
fn all_rows(models: &Models) -> Result<Vec<FactRow>, DbError> {
    let mut rows = Vec::new();
    for (grant, ledger) in &models.ledgers {
        for (kind, key) in ledger.fact_keys() {
            let bad = |e: serde_json::Error| DbError::Row {
                key: format!("{grant}/{}/{key}", kind.as_str()),
                detail: e.to_string(),
            };
            if let Some(json) = ledger.fact_json(kind, &key).map_err(bad)? {
                rows.push((grant.clone(), kind, key, json));
            }
        }
    }
    Ok(rows)
}

fn set_checkpoints(tx: &rusqlite::Transaction<'_>, position: u64) -> Result<(), DbError> {
    for name in [GRANT_LEDGERS, PROGRAMMES] {
        tx.execute(
            "INSERT INTO checkpoints (projection, position) VALUES (?1, ?2)
             ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
            params![name, position as i64],
        )?;
    }
    Ok(())
}

/// A fact row ready to write: grant, kind, key, JSON.
pub type FactRow = (GrantId, FactKind, String, String);

/// Writes changed fact rows and programmes and the new checkpoint in one
/// transaction.
pub fn save(
    conn: &mut Connection,
    position: u64,
    rows: &[FactRow],
    programmes: &BTreeMap<ProgrammeId, String>,
) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    put_rows(&tx, "", rows)?;
    put_programmes(&tx, "", programmes)?;
    set_checkpoints(&tx, position)?;
    tx.commit()?;
    Ok(())
}

/// Writes a complete rebuilt set of models into fresh tables, then swaps
/// them in with the checkpoints in one transaction: a reader sees the old
/// models or the new ones, never a half-built mix.
pub fn replace_all(conn: &mut Connection, models: &Models) -> Result<(), DbError> {
    let suffix = "_rebuild";
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS grant_ledgers{suffix}; DROP TABLE IF EXISTS programmes{suffix}; {}",
        tables(suffix)
    ))?;
    {
        let rows = all_rows(models)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        put_rows(&tx, suffix, &rows)?;
        put_programmes(&tx, suffix, &models.programmes)?;
        tx.commit()?;
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!(
        "DROP TABLE grant_ledgers; DROP TABLE programmes;
         ALTER TABLE grant_ledgers{suffix} RENAME TO grant_ledgers;
         ALTER TABLE programmes{suffix} RENAME TO programmes;"
    ))?;
    set_checkpoints(&tx, models.position)?;
    tx.commit()?;
    Ok(())
}
