//! The read models' own SQLite file (never the log's: one writer per file).
//! Each projection is named and owns its table; its checkpoint (the last
//! applied log position) is written in the same transaction as its rows, so
//! after a crash every event has been applied exactly once.
//!
//! The file is a cache of the log and is never trusted over it: each
//! checkpoint also records the log's chain hash at its position and a
//! digest of the projection's rows ([`crate::integrity`]), and each grant's
//! row in `grants` the digest of that grant's rows (its snapshot, if it has
//! one, and its fact rows), so that the sum of the grants' digests is the
//! projection's.
//!
//! A ledger is stored as a snapshot (one row holding the whole ledger, as a
//! rebuild or a catch-up from an empty file writes it: one write per
//! grant, one read to load it) and fact rows beside it, one per fact the
//! follower changed since (so that an event rewrites one row); a fact row
//! stands over the snapshot's copy of that fact. Opening reads no more than it
//! must, whatever the size of the file: [`open`] checks the tables are this
//! build's and [`load_index`] the checkpoints, the grants' digests against
//! the projection's, and the programmes (a few rows each); each ledger is
//! read when it is first needed, [`load_grant`] checking its rows against
//! its grant's digest. A file that fails any of these is
//! [`DbError::Damaged`]: on open the projector moves it aside and rebuilds it
//! from the log; a damaged ledger found later is folded from the log instead.

use std::collections::BTreeMap;
use std::path::Path;

use events::{GrantId, ProgrammeId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::integrity::RowsDigest;
use crate::ledger::{FactKind, GrantLedger};
use crate::portfolio::Standing;

mod checks;

pub use self::checks::Checkpoint;
use self::checks::{Stored, check_schema, damaged, quick_check, read_stored, schema, set_checkpoints};

/// The projection of grant ledgers (behind the budget, timeline, statement
/// and portfolio views).
pub const GRANT_LEDGERS: &str = "grant_ledgers";
/// The projection of programme names.
pub const PROGRAMMES: &str = "programmes";
/// The projection of the grants' index: each grant's programme and
/// standing (behind the portfolio view, read without the ledgers).
pub const GRANT_INDEX: &str = "grant_index";

/// Why the read-model file failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("read model database: {0}")]
    Sqlite(String),
    /// The file is damaged or does not match itself: SQLite finds it
    /// corrupt, its integrity check fails, or its rows do not match the
    /// digest stored with the checkpoint.
    #[error("read model file is damaged: {0}")]
    Damaged(String),
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
        use rusqlite::Error as E;
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase, Unknown};
        match (&e, e.sqlite_error_code()) {
            // SQLite finds the file corrupt, a statement of this build no
            // longer fits the stored schema (SQLITE_ERROR), or a value
            // stored is not of the type written there.
            (_, Some(DatabaseCorrupt | NotADatabase | Unknown))
            | (
                E::FromSqlConversionFailure(..)
                | E::InvalidColumnType(..)
                | E::Utf8Error(..)
                | E::IntegralValueOutOfRange(..),
                _,
            ) => DbError::Damaged(e.to_string()),
            _ => DbError::Sqlite(e.to_string()),
        }
    }
}

impl DbError {
    /// Whether the file's content is at fault (so moving it aside and
    /// rebuilding it from the log is the cure), rather than the disk. A
    /// layout newer than this build's counts: the file is only a cache, so
    /// an older build (after a downgrade, or a flipped header byte) rebuilds
    /// its own rather than refusing to start.
    pub fn is_damage(&self) -> bool {
        matches!(self, DbError::Damaged(_) | DbError::Row { .. } | DbError::NewerSchema { .. })
    }
}

/// Version 2 stores a ledger as one row per fact (version 1 stored it as
/// one document, rewritten on every event); version 3 adds the log hash and
/// the rows digest to each checkpoint; version 4 adds `grants`, each grant's
/// programme and the digest of its rows, so that a ledger can be read (and
/// checked) alone; version 5 adds each grant's standing (its portfolio
/// figures) to `grants`, a checkpoint whose digest covers `grants`'
/// programmes and standings, and `ledger_snapshots`, a grant's whole ledger
/// in one row.
pub const SCHEMA_VERSION: i64 = 5;

fn tables(suffix: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS grant_ledgers{suffix} (
            grant_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, fact TEXT NOT NULL,
            PRIMARY KEY (grant_id, kind, key)) STRICT, WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS grants{suffix} (
            grant_id TEXT PRIMARY KEY, programme_id TEXT, standing TEXT, rows_digest TEXT NOT NULL) STRICT, WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS grants{suffix}_by_programme ON grants{suffix} (programme_id);
         CREATE TABLE IF NOT EXISTS ledger_snapshots{suffix} (
            grant_id TEXT PRIMARY KEY, ledger TEXT NOT NULL) STRICT;
         CREATE TABLE IF NOT EXISTS programmes{suffix} (
            programme_id TEXT PRIMARY KEY, name TEXT NOT NULL) STRICT;"
    )
}

/// A grant's entry in the grants' index: its programme and its standing
/// (as JSON), both `None` before its award; the standing is also `None`
/// when its figures cannot be computed (an overflow).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexEntry {
    /// Its programme.
    pub programme: Option<ProgrammeId>,
    /// Its standing, as JSON.
    pub standing: Option<String>,
}

impl IndexEntry {
    /// The entry of a ledger: its programme and its standing as of every
    /// fact, with the standing itself.
    pub fn of(ledger: &GrantLedger) -> Result<(Self, Option<Standing>), serde_json::Error> {
        let programme = ledger.grant.as_ref().map(|g| g.programme.clone());
        let standing = Standing::of(ledger, None).ok().flatten();
        let json = standing.as_ref().map(serde_json::to_string).transpose()?;
        Ok((Self { programme, standing: json }, standing))
    }

    /// Counts the entry of `grant` in or out of the index's digest (an
    /// absent field is left out, so `None` and `""` differ).
    fn fields<'a>(&'a self, grant: &'a str) -> Vec<&'a str> {
        let mut fields = vec![grant];
        if let Some(p) = &self.programme {
            fields.extend(["programme", p.as_str()]);
        }
        if let Some(s) = &self.standing {
            fields.extend(["standing", s.as_str()]);
        }
        fields
    }
}

/// The grants' index as the file holds it, with each standing decoded.
pub type Index = BTreeMap<GrantId, (Option<ProgrammeId>, Option<Standing>)>;

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

/// Creates the file, owner-only (0600), unless it exists, so that a file
/// made anew (first start, or after a damaged one was moved aside) and its
/// `-wal`/`-shm` (SQLite gives them the main file's mode) are private.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens (creating) the read-model file and checks its tables are this
/// build's. It does not run SQLite's `quick_check`, whose cost grows with
/// the file (about 0.13 s for 110 MB; a log of ten million events makes a
/// file of about 2 GB): every row read is checked against its grant's
/// digest instead, and [`check_whole`] runs it on demand.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    create_private(path).map_err(|e| DbError::Sqlite(format!("{}: {e}", path.display())))?;
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
             DROP TABLE IF EXISTS grants; DROP TABLE IF EXISTS ledger_snapshots;
             COMMIT;",
        )?;
    }
    // Tables of a rebuild that never swapped in are dropped with it.
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         DROP TABLE IF EXISTS grant_ledgers_rebuild; DROP TABLE IF EXISTS programmes_rebuild;
         DROP TABLE IF EXISTS grants_rebuild; DROP TABLE IF EXISTS ledger_snapshots_rebuild;
         {}
         PRAGMA user_version = {SCHEMA_VERSION};
         COMMIT;",
        schema()
    ))?;
    check_schema(&conn)?;
    Ok(conn)
}

/// Opens a second connection to the file, for reading ledgers beside the
/// writer (WAL: a reader sees the last commit, whole).
pub fn open_reader(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Runs SQLite's `quick_check` over the whole file (its cost grows with
/// the file: about 0.13 s for 110 MB).
pub fn check_whole(conn: &Connection) -> Result<(), DbError> {
    quick_check(conn)
}

/// What opening the file reads: the checkpoint, the programmes and the
/// grants' index, after checking the grants' digests add up to the
/// ledgers', and the index's and the programmes' rows match theirs. Its
/// cost grows with the number of grants and programmes, not with the
/// number of facts.
pub fn load_index(conn: &Connection) -> Result<(Checkpoint, BTreeMap<ProgrammeId, String>, Index), DbError> {
    // Ids the log accepted once (`.`, `..`) still read.
    events::ids::reading_stored(|| load_stored_index(conn))
}

fn load_stored_index(conn: &Connection) -> Result<(Checkpoint, BTreeMap<ProgrammeId, String>, Index), DbError> {
    let stored = read_stored(conn)?;
    let mut sum = RowsDigest::default();
    let mut index_digest = RowsDigest::default();
    let mut index = Index::new();
    let mut stmt = conn.prepare("SELECT grant_id, programme_id, standing, rows_digest FROM grants")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let grant: String = row.get(0)?;
        let programme: Option<String> = row.get(1)?;
        let standing: Option<String> = row.get(2)?;
        let digest: String = row.get(3)?;
        let digest = RowsDigest::parse(&digest).ok_or_else(|| damaged(format!("grant {grant}: rows digest")))?;
        sum.plus(digest);
        let bad = |detail: String| DbError::Row { key: format!("grants/{grant}"), detail };
        let programme = programme.map(ProgrammeId::parse).transpose().map_err(|e| bad(e.to_string()))?;
        let entry = IndexEntry { programme, standing };
        index_digest.add(&entry.fields(&grant));
        let standing: Option<Standing> =
            entry.standing.as_deref().map(serde_json::from_str).transpose().map_err(|e| bad(e.to_string()))?;
        let id = GrantId::parse(grant.clone()).map_err(|e| bad(e.to_string()))?;
        if standing.as_ref().is_some_and(|s| s.grant != id || Some(&s.programme) != entry.programme.as_ref()) {
            return Err(bad("its standing is another grant's".to_owned()));
        }
        index.insert(id, (entry.programme, standing));
    }
    if sum != stored.ledgers {
        return Err(damaged("the grants' digests do not add up to the ledgers' digest"));
    }
    if index_digest != stored.index {
        return Err(damaged("the grants' index does not match its digest"));
    }
    let mut programmes = BTreeMap::new();
    let mut digest = RowsDigest::default();
    let mut stmt = conn.prepare("SELECT programme_id, name FROM programmes")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let name: String = row.get(1)?;
        digest.add(&[&key, &name]);
        let id = ProgrammeId::parse(key.clone()).map_err(|e| DbError::Row { key, detail: e.to_string() })?;
        programmes.insert(id, name);
    }
    if digest != stored.programmes {
        return Err(damaged("the programme rows do not match their digest"));
    }
    Ok((stored.checkpoint, programmes, index))
}

/// One grant's ledger, its rows checked against the grant's digest;
/// `None` when the file holds no such grant.
pub fn load_grant(conn: &Connection, grant: &GrantId) -> Result<Option<GrantLedger>, DbError> {
    let mut index = conn.prepare_cached("SELECT rows_digest FROM grants WHERE grant_id = ?1")?;
    let expected: Option<String> = index.query_row([grant.as_str()], |r| r.get(0)).optional()?;
    let mut snapshot = conn.prepare_cached("SELECT ledger FROM ledger_snapshots WHERE grant_id = ?1")?;
    let whole: Option<String> = snapshot.query_row([grant.as_str()], |r| r.get(0)).optional()?;
    let mut digest = RowsDigest::default();
    let mut ledger = GrantLedger::default();
    let mut any = false;
    if let Some(json) = whole {
        digest.add(&[grant.as_str(), SNAPSHOT, &json]);
        ledger = events::ids::reading_stored(|| serde_json::from_str(&json))
            .map_err(|e| DbError::Row { key: format!("{grant}/{SNAPSHOT}"), detail: e.to_string() })?;
        any = true;
    }
    let mut stmt = conn.prepare_cached("SELECT kind, key, fact FROM grant_ledgers WHERE grant_id = ?1")?;
    let mut rows = stmt.query([grant.as_str()])?;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(0)?;
        let key: String = row.get(1)?;
        let fact: String = row.get(2)?;
        digest.add(&[grant.as_str(), &kind, &key, &fact]);
        let bad = |detail: String| DbError::Row { key: format!("{grant}/{kind}/{key}"), detail };
        let kind = FactKind::parse(&kind).ok_or_else(|| bad("unknown kind".to_owned()))?;
        ledger.put_fact(kind, &key, &fact).map_err(bad)?;
        any = true;
    }
    match expected {
        None if !any => Ok(None),
        None => Err(damaged(format!("grant {grant} has rows but no digest"))),
        Some(text) => match RowsDigest::parse(&text) {
            Some(d) if d == digest && any => {
                ledger.retally();
                Ok(Some(ledger))
            }
            _ => Err(damaged(format!("grant {grant}: its rows do not match its digest"))),
        },
    }
}

/// The grants of a programme the file holds.
pub fn grants_of(conn: &Connection, programme: &ProgrammeId) -> Result<Vec<GrantId>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT grant_id FROM grants WHERE programme_id = ?1 ORDER BY grant_id")?;
    let ids: Vec<String> = stmt.query_map([programme.as_str()], |r| r.get(0))?.collect::<Result<_, _>>()?;
    events::ids::reading_stored(|| {
        ids.into_iter()
            .map(|id| GrantId::parse(id.clone()).map_err(|e| DbError::Row { key: id, detail: e.to_string() }))
            .collect()
    })
}

/// Every grant the file holds.
pub fn all_grants(conn: &Connection) -> Result<Vec<GrantId>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT grant_id FROM grants ORDER BY grant_id")?;
    let ids: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    events::ids::reading_stored(|| {
        ids.into_iter()
            .map(|id| GrantId::parse(id.clone()).map_err(|e| DbError::Row { key: id, detail: e.to_string() }))
            .collect()
    })
}

/// A grant's programme as the file holds it (`None`: no such grant, or
/// not awarded).
pub fn programme_of(conn: &Connection, grant: &GrantId) -> Result<Option<ProgrammeId>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT programme_id FROM grants WHERE grant_id = ?1")?;
    let found: Option<Option<String>> = stmt.query_row([grant.as_str()], |r| r.get(0)).optional()?;
    events::ids::reading_stored(|| {
        found
            .flatten()
            .map(|id| ProgrammeId::parse(id.clone()).map_err(|e| DbError::Row { key: id, detail: e.to_string() }))
            .transpose()
    })
}

/// Loads every projection and its checkpoint, checking each grant's rows
/// against its digest (for tests and tools: its memory grows with the file).
pub fn load(conn: &Connection) -> Result<(Models, Checkpoint), DbError> {
    let (checkpoint, programmes, _) = load_index(conn)?;
    let mut models = Models { position: checkpoint.position, programmes, ..Models::default() };
    for grant in all_grants(conn)? {
        if let Some(ledger) = load_grant(conn, &grant)? {
            models.ledgers.insert(grant, ledger);
        }
    }
    Ok((models, checkpoint))
}

/// Facts to write: grant, kind, key.
pub type Dirty = std::collections::BTreeSet<(GrantId, FactKind, String)>;

/// Each written grant's entry in the index.
pub type GrantEntries = BTreeMap<GrantId, IndexEntry>;

/// Upserts rows, keeping `stored`'s digests and each grant's digest and
/// entry in `grants` up to date (the old row counted out, the new one in).
fn put_rows(
    tx: &rusqlite::Transaction<'_>,
    suffix: &str,
    rows: &[FactRow],
    grants: &GrantEntries,
    stored: &mut Stored,
) -> Result<(), DbError> {
    let digest = &mut stored.ledgers;
    let mut old = tx.prepare_cached(&format!(
        "SELECT fact FROM grant_ledgers{suffix} WHERE grant_id = ?1 AND kind = ?2 AND key = ?3"
    ))?;
    let mut put = tx.prepare_cached(&format!(
        "INSERT INTO grant_ledgers{suffix} (grant_id, kind, key, fact) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (grant_id, kind, key) DO UPDATE SET fact = excluded.fact"
    ))?;
    let mut grant_row = tx.prepare_cached(&format!(
        "SELECT programme_id, standing, rows_digest FROM grants{suffix} WHERE grant_id = ?1"
    ))?;
    let mut put_grant = tx.prepare_cached(&format!(
        "INSERT INTO grants{suffix} (grant_id, programme_id, standing, rows_digest) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (grant_id) DO UPDATE SET programme_id = excluded.programme_id, standing = excluded.standing,
            rows_digest = excluded.rows_digest"
    ))?;
    let mut deltas: BTreeMap<&GrantId, (RowsDigest, RowsDigest)> = BTreeMap::new();
    for (grant_id, kind, key, json) in rows {
        let (grant, kind) = (grant_id.as_str(), kind.as_str());
        let (added, removed) = deltas.entry(grant_id).or_default();
        let before: Option<String> = old.query_row(params![grant, kind, key], |r| r.get(0)).optional()?;
        if let Some(before) = before {
            digest.remove(&[grant, kind, key, &before]);
            removed.add(&[grant, kind, key, &before]);
        }
        put.execute(params![grant, kind, key, json])?;
        digest.add(&[grant, kind, key, json]);
        added.add(&[grant, kind, key, json]);
    }
    let none = IndexEntry::default();
    let touched: std::collections::BTreeSet<&GrantId> = deltas.keys().copied().chain(grants.keys()).collect();
    for grant in touched {
        let before: Option<(Option<String>, Option<String>, String)> =
            grant_row.query_row([grant.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
        let (mut sum, old) = match before {
            Some((programme, standing, text)) => {
                let sum = RowsDigest::parse(&text).ok_or_else(|| damaged(format!("grant {grant}: rows digest")))?;
                let programme = programme
                    .map(ProgrammeId::parse)
                    .transpose()
                    .map_err(|e| DbError::Row { key: format!("grants/{grant}"), detail: e.to_string() })?;
                (sum, Some(IndexEntry { programme, standing }))
            }
            None => (RowsDigest::default(), None),
        };
        if let Some((added, removed)) = deltas.get(grant) {
            sum.plus(*added);
            sum.minus(*removed);
        }
        let entry = grants.get(grant).or(old.as_ref()).unwrap_or(&none);
        if let Some(old) = &old {
            stored.index.remove(&old.fields(grant.as_str()));
        }
        stored.index.add(&entry.fields(grant.as_str()));
        put_grant.execute(params![
            grant.as_str(),
            entry.programme.as_ref().map(ProgrammeId::as_str),
            entry.standing.as_deref(),
            sum.to_hex()
        ])?;
    }
    Ok(())
}

fn put_programmes(
    tx: &rusqlite::Transaction<'_>,
    suffix: &str,
    programmes: &BTreeMap<ProgrammeId, String>,
    digest: &mut RowsDigest,
) -> Result<(), DbError> {
    let mut old = tx.prepare_cached(&format!("SELECT name FROM programmes{suffix} WHERE programme_id = ?1"))?;
    let mut put = tx.prepare_cached(&format!(
        "INSERT INTO programmes{suffix} (programme_id, name) VALUES (?1, ?2)
         ON CONFLICT (programme_id) DO UPDATE SET name = excluded.name"
    ))?;
    for (id, name) in programmes {
        let before: Option<String> = old.query_row([id.as_str()], |r| r.get(0)).optional()?;
        if let Some(before) = before {
            digest.remove(&[id.as_str(), &before]);
        }
        put.execute(params![id.as_str(), name])?;
        digest.add(&[id.as_str(), name]);
    }
    Ok(())
}

/// A fact row ready to write: grant, kind, key, JSON.
pub type FactRow = (GrantId, FactKind, String, String);

/// A grant's whole ledger as one row: grant, JSON.
pub type Snapshot = (GrantId, String);

/// How a snapshot counts in its grant's digest (beside its fact rows'
/// kinds, which are [`FactKind`] names).
const SNAPSHOT: &str = "snapshot";

/// A ledger's snapshot row.
pub fn snapshot(grant: &GrantId, ledger: &GrantLedger) -> Result<Snapshot, DbError> {
    let json = serde_json::to_string(ledger)
        .map_err(|e| DbError::Row { key: format!("{grant}/{SNAPSHOT}"), detail: e.to_string() })?;
    Ok((grant.clone(), json))
}

/// Writes changed fact rows (with their grants' programmes and digests)
/// and programmes and the new checkpoint (with the rows' digests) in one
/// transaction.
pub fn save(
    conn: &mut Connection,
    checkpoint: Checkpoint,
    rows: &[FactRow],
    grants: &GrantEntries,
    programmes: &BTreeMap<ProgrammeId, String>,
) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut stored = read_stored(&tx)?;
    put_rows(&tx, "", rows, grants, &mut stored)?;
    put_programmes(&tx, "", programmes, &mut stored.programmes)?;
    stored.checkpoint = checkpoint;
    set_checkpoints(&tx, &stored)?;
    tx.commit()?;
    Ok(())
}

/// The suffix of the tables a rebuild fills beside the live ones.
const REBUILD: &str = "_rebuild";

/// Starts a rebuild: empty tables beside the live ones (a rebuild that
/// stopped half way left its own, which go). Readers go on reading the
/// live tables until [`finish_rebuild`] swaps them.
pub fn begin_rebuild(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS grant_ledgers{REBUILD}; DROP TABLE IF EXISTS programmes{REBUILD};
         DROP TABLE IF EXISTS grants{REBUILD}; DROP TABLE IF EXISTS ledger_snapshots{REBUILD}; {}",
        tables(REBUILD)
    ))?;
    Ok(())
}

/// What a rebuild wrote: the digests of the fact rows and of the grants'
/// index entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Of the fact rows.
    pub ledgers: RowsDigest,
    /// Of the grants' index.
    pub index: RowsDigest,
}

impl Rebuilt {
    /// Counts another batch in.
    pub fn plus(&mut self, other: Rebuilt) {
        self.ledgers.plus(other.ledgers);
        self.index.plus(other.index);
    }
}

/// Writes rebuilt grants' snapshots (with their index entries and digests)
/// into the rebuild tables in one transaction; the digests of what it
/// wrote. Each grant comes whole and once (a grant already written is
/// refused by the tables' keys), so nothing is read back.
pub fn put_rebuilt(conn: &mut Connection, snapshots: &[Snapshot], grants: &GrantEntries) -> Result<Rebuilt, DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut total = Rebuilt::default();
    {
        let mut put_snapshot =
            tx.prepare_cached(&format!("INSERT INTO ledger_snapshots{REBUILD} (grant_id, ledger) VALUES (?1, ?2)"))?;
        let mut put_grant = tx.prepare_cached(&format!(
            "INSERT INTO grants{REBUILD} (grant_id, programme_id, standing, rows_digest) VALUES (?1, ?2, ?3, ?4)"
        ))?;
        let mut digests: BTreeMap<&GrantId, RowsDigest> = BTreeMap::new();
        for (grant_id, json) in snapshots {
            put_snapshot.execute(params![grant_id.as_str(), json])?;
            digests.entry(grant_id).or_default().add(&[grant_id.as_str(), SNAPSHOT, json]);
        }
        for (grant, entry) in grants {
            let digest = digests.get(grant).copied().unwrap_or_default();
            put_grant.execute(params![
                grant.as_str(),
                entry.programme.as_ref().map(ProgrammeId::as_str),
                entry.standing.as_deref(),
                digest.to_hex()
            ])?;
            total.ledgers.plus(digest);
            total.index.add(&entry.fields(grant.as_str()));
        }
    }
    tx.commit()?;
    Ok(total)
}

/// Writes the rebuilt programmes and swaps the rebuild tables in, with the
/// checkpoints (`rebuilt`: the digests [`put_rebuilt`] summed), in one
/// transaction: a reader sees the old models or the new ones, never a
/// half-built mix.
pub fn finish_rebuild(
    conn: &mut Connection,
    checkpoint: Checkpoint,
    rebuilt: Rebuilt,
    programmes: &BTreeMap<ProgrammeId, String>,
) -> Result<(), DbError> {
    let mut stored = Stored { checkpoint, ledgers: rebuilt.ledgers, index: rebuilt.index, ..Stored::default() };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    put_programmes(&tx, REBUILD, programmes, &mut stored.programmes)?;
    tx.execute_batch(&format!(
        "DROP TABLE grant_ledgers; DROP TABLE programmes; DROP TABLE grants; DROP TABLE ledger_snapshots;
         ALTER TABLE ledger_snapshots{REBUILD} RENAME TO ledger_snapshots;
         ALTER TABLE grant_ledgers{REBUILD} RENAME TO grant_ledgers;
         ALTER TABLE programmes{REBUILD} RENAME TO programmes;
         ALTER TABLE grants{REBUILD} RENAME TO grants;
         DROP INDEX grants{REBUILD}_by_programme;
         CREATE INDEX grants_by_programme ON grants (programme_id);"
    ))?;
    set_checkpoints(&tx, &stored)?;
    tx.commit()?;
    Ok(())
}

/// Caps the file's size in pages (`PRAGMA max_page_count`; `None` lifts
/// the cap). SQLite never lowers it below the file's current size. Used to
/// test a full disk; writes past it fail as on a full disk.
pub fn set_pages_max(conn: &Connection, pages: Option<u64>) -> Result<(), DbError> {
    // SQLite's own ceiling: 4294967294 pages.
    let pages = pages.unwrap_or(4_294_967_294).min(4_294_967_294);
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
    Ok(())
}
