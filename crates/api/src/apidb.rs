//! The API's own data: bearer tokens (as SHA-256 digests), behind
//! [`ApiData`], with two implementations: [`SqliteApiData`], the data
//! directory's `api.sqlite`, and [`PostgresApiData`](crate::apidb_pg::PostgresApiData),
//! tables beside the shared log for several servers. Idempotency is not
//! here: the log decides it (schema 3 of `api.sqlite` drops the table older
//! builds kept).
//!
//! `api.sqlite` is not the log's file: one writer per file. Its calls run on
//! the blocking pool, never on a runtime worker.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, params};

use crate::error::ApiError;

/// This build's schema version (`PRAGMA user_version`).
pub const API_SCHEMA_VERSION: i64 = 4;

const MIGRATION_1: &str = "
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    programmes TEXT NOT NULL,
    digest BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
) STRICT;
CREATE TABLE idempotency (
    actor TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status INTEGER NOT NULL,
    etag TEXT,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (actor, key)
) STRICT;
";

/// Token lifecycle: expiry, last use, revocation (who and when; a revoked
/// token's row is kept). Names are unique without regard to ASCII case:
/// the unique index is created when the names stored so far allow it; if
/// two already collide (made by an older build) both rows are kept, usable,
/// and a plain index is made instead: new tokens are refused a colliding
/// name either way, by the insert itself.
const MIGRATION_2: &str = "
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
ALTER TABLE tokens ADD COLUMN revoked_at TEXT;
ALTER TABLE tokens ADD COLUMN revoked_by TEXT;
";

/// The idempotency records of older builds: the event log decides
/// idempotency now (a key's command id and request fingerprint are stored
/// with its events), so a second copy that could disagree with it goes.
const MIGRATION_3: &str = "DROP TABLE IF EXISTS idempotency;";

/// Browser sessions (the dashboard's sign-in): a session is known by the
/// SHA-256 of its cookie's secret and belongs to the token it was opened
/// with (by the token's digest: revoking the token ends its sessions).
const MIGRATION_4: &str = "
CREATE TABLE sessions (
    digest BLOB PRIMARY KEY,
    token_digest BLOB NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_expiry ON sessions (expires_at);
";

/// The index names are unique by, in either of its forms.
const NAME_INDEX: &str = "tokens_name_nocase";

/// A stored token.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Its name (the actor).
    pub name: String,
    /// Its role's name.
    pub role: String,
    /// JSON array of programme ids.
    pub programmes: String,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    /// When it stops being accepted (RFC 3339), if ever.
    pub expires_at: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// When it was last used, to within [`crate::auth::LAST_USED_EVERY`].
    pub last_used_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

/// A stored browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the cookie's secret.
    pub digest: [u8; 32],
    /// SHA-256 of the token it was opened with.
    pub token_digest: [u8; 32],
    /// The token writes made with the cookie must carry (`X-CSRF-Token`).
    pub csrf: String,
    /// When it was opened (RFC 3339, UTC).
    pub created_at: String,
    /// When it ends (RFC 3339, UTC; compared as text, so always UTC with
    /// the same precision: [`crate::session::stamp`]).
    pub expires_at: String,
}

/// A stored digest column as 32 bytes (zeros if the stored value is not 32
/// bytes long: such a digest matches no presented secret).
pub(crate) fn digest_of(bytes: &[u8]) -> [u8; 32] {
    let mut d = [0u8; 32];
    if bytes.len() == 32 {
        d.copy_from_slice(bytes);
    }
    d
}

/// What an insert found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored.
    Yes,
    /// A token with this name, in any case, exists (revoked ones included).
    NameTaken,
}

/// What a revocation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now.
    Now,
    /// It was revoked before (who and when are kept as they were).
    Already,
    /// No such token.
    Unknown,
}

/// Where the API keeps its tokens. Every write is durable when it returns.
#[async_trait]
pub trait ApiData: Send + Sync + std::fmt::Debug + 'static {
    /// Every token, revoked and expired ones included, by name.
    async fn tokens(&self) -> Result<Vec<TokenRow>, ApiError>;

    /// Stores a new token unless its name is taken in any (ASCII) case, in
    /// one atomic statement, so that servers racing to create the same name
    /// store it once. `row`'s `created_at`/`created_by` are stored; its
    /// lifecycle fields are not.
    async fn insert_token(&self, row: TokenRow) -> Result<Inserted, ApiError>;

    /// Revokes the token named `name` (in any case): every row so named.
    async fn revoke_token(&self, name: String, by: String) -> Result<Revoked, ApiError>;

    /// Records when tokens were last used (a batch, one transaction).
    async fn record_last_used(&self, uses: Vec<(String, String)>) -> Result<(), ApiError>;

    /// A number that changes whenever another connection (another process:
    /// `grantlog token`, another server) creates or revokes a token, so that
    /// a server knows when to read the tokens again.
    async fn data_version(&self) -> Result<i64, ApiError>;

    /// Stores a new session (durable when it returns), and forgets sessions
    /// that ended before `row.created_at`.
    async fn insert_session(&self, row: SessionRow) -> Result<(), ApiError>;

    /// The session whose cookie secret has this digest, if it is stored and
    /// ends after `now` (RFC 3339, as [`SessionRow::expires_at`]).
    async fn session(&self, digest: [u8; 32], now: String) -> Result<Option<SessionRow>, ApiError>;

    /// Ends a session; whether it existed.
    async fn delete_session(&self, digest: [u8; 32]) -> Result<bool, ApiError>;
}

/// The API's data in the data directory's `api.sqlite`.
#[derive(Debug, Clone)]
pub struct SqliteApiData {
    conn: Arc<Mutex<Connection>>,
}

fn migrate_2(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(MIGRATION_2)?;
    let collisions: Vec<String> = {
        let mut stmt =
            tx.prepare("SELECT group_concat(name, ', ') FROM tokens GROUP BY name COLLATE NOCASE HAVING count(*) > 1")?;
        stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    if collisions.is_empty() {
        tx.execute_batch(&format!("CREATE UNIQUE INDEX {NAME_INDEX} ON tokens (name COLLATE NOCASE);"))
    } else {
        tracing::warn!(
            names = collisions.join("; "),
            "api.sqlite holds token names that differ only in case: both kept; no new name may collide"
        );
        tx.execute_batch(&format!("CREATE INDEX {NAME_INDEX} ON tokens (name COLLATE NOCASE);"))
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("api database: {e}"))
}

impl SqliteApiData {
    /// Opens (creating and migrating) the file.
    pub fn open(path: &Path) -> Result<Self, ApiError> {
        let mut conn = Connection::open(path).map_err(internal)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(internal)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(internal)?;
        // A token is acknowledged to the admin only once it is durable.
        conn.pragma_update(None, "synchronous", "FULL").map_err(internal)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(internal)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(internal)?;
        if version > API_SCHEMA_VERSION {
            return Err(ApiError::Internal(format!(
                "api.sqlite is schema version {version}; this build knows up to {API_SCHEMA_VERSION}"
            )));
        }
        if version < 1 {
            tx.execute_batch(MIGRATION_1).map_err(internal)?;
            tx.pragma_update(None, "user_version", 1).map_err(internal)?;
        }
        if version < 2 {
            migrate_2(&tx).map_err(internal)?;
            tx.pragma_update(None, "user_version", 2).map_err(internal)?;
        }
        if version < 3 {
            tx.execute_batch(MIGRATION_3).map_err(internal)?;
            tx.pragma_update(None, "user_version", 3).map_err(internal)?;
        }
        if version < 4 {
            tx.execute_batch(MIGRATION_4).map_err(internal)?;
            tx.pragma_update(None, "user_version", 4).map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(internal)?
        .map_err(|e| {
            if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull)) {
                ApiError::StorageFull
            } else {
                internal(e)
            }
        })
    }
}

#[async_trait]
impl ApiData for SqliteApiData {
    /// Every token, revoked and expired ones included.
    async fn tokens(&self) -> Result<Vec<TokenRow>, ApiError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT name, role, programmes, digest, expires_at, created_at, created_by, last_used_at,
                        revoked_at, revoked_by
                 FROM tokens ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                let digest: Vec<u8> = r.get(3)?;
                Ok(TokenRow {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    programmes: r.get(2)?,
                    digest: digest_of(&digest),
                    expires_at: r.get(4)?,
                    created_at: r.get(5)?,
                    created_by: r.get(6)?,
                    last_used_at: r.get(7)?,
                    revoked_at: r.get(8)?,
                    revoked_by: r.get(9)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Stores a new token unless its name is taken in any case. `row`'s
    /// `created_at`/`created_by` are stored; its lifecycle fields are not.
    async fn insert_token(&self, row: TokenRow) -> Result<Inserted, ApiError> {
        self.with(move |c| {
            // One statement: atomic against another process's insert.
            let n = c.execute(
                "INSERT INTO tokens (name, role, programmes, digest, created_at, created_by, expires_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                 WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE name = ?1 COLLATE NOCASE)
                 ON CONFLICT DO NOTHING",
                params![
                    row.name,
                    row.role,
                    row.programmes,
                    row.digest.to_vec(),
                    row.created_at,
                    row.created_by,
                    row.expires_at
                ],
            )?;
            Ok(if n == 1 { Inserted::Yes } else { Inserted::NameTaken })
        })
        .await
    }

    /// Revokes the token named `name` (in any case): every row so named.
    async fn revoke_token(&self, name: String, by: String) -> Result<Revoked, ApiError> {
        self.with(move |c| {
            let n = c.execute(
                "UPDATE tokens SET revoked_at = ?2, revoked_by = ?3
                 WHERE name = ?1 COLLATE NOCASE AND revoked_at IS NULL",
                params![name, chrono::Utc::now().to_rfc3339(), by],
            )?;
            if n > 0 {
                return Ok(Revoked::Now);
            }
            let known: i64 =
                c.query_row("SELECT count(*) FROM tokens WHERE name = ?1 COLLATE NOCASE", params![name], |r| r.get(0))?;
            Ok(if known > 0 { Revoked::Already } else { Revoked::Unknown })
        })
        .await
    }

    /// Records when tokens were last used (a batch, one transaction).
    async fn record_last_used(&self, uses: Vec<(String, String)>) -> Result<(), ApiError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare(
                    "UPDATE tokens SET last_used_at = ?2
                     WHERE name = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                )?;
                for (name, at) in &uses {
                    stmt.execute(params![name, at])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// SQLite's `data_version`: it changes when another connection (another
    /// process: `grantlog token`) commits to the file.
    async fn data_version(&self) -> Result<i64, ApiError> {
        self.with(|c| c.pragma_query_value(None, "data_version", |r| r.get(0))).await
    }

    async fn insert_session(&self, row: SessionRow) -> Result<(), ApiError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![row.created_at])?;
            tx.execute(
                "INSERT INTO sessions (digest, token_digest, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.digest.to_vec(), row.token_digest.to_vec(), row.csrf, row.created_at, row.expires_at],
            )?;
            tx.commit()
        })
        .await
    }

    async fn session(&self, digest: [u8; 32], now: String) -> Result<Option<SessionRow>, ApiError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT token_digest, csrf, created_at, expires_at FROM sessions WHERE digest = ?1 AND expires_at > ?2",
            )?;
            let mut rows = stmt.query(params![digest.to_vec(), now])?;
            let Some(r) = rows.next()? else { return Ok(None) };
            let token: Vec<u8> = r.get(0)?;
            Ok(Some(SessionRow {
                digest,
                token_digest: digest_of(&token),
                csrf: r.get(1)?,
                created_at: r.get(2)?,
                expires_at: r.get(3)?,
            }))
        })
        .await
    }

    async fn delete_session(&self, digest: [u8; 32]) -> Result<bool, ApiError> {
        self.with(move |c| Ok(c.execute("DELETE FROM sessions WHERE digest = ?1", params![digest.to_vec()])? > 0)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, digest: u8) -> TokenRow {
        TokenRow {
            name: name.into(),
            role: "viewer".into(),
            programmes: "[]".into(),
            digest: [digest; 32],
            expires_at: None,
            created_at: chrono::Utc::now().to_rfc3339(),
            created_by: "t".into(),
            last_used_at: None,
            revoked_at: None,
            revoked_by: None,
        }
    }

    #[tokio::test]
    async fn migration_2_keeps_names_that_collide_in_case_and_refuses_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sqlite");
        {
            // A file of schema 1 holding two names that read alike.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATION_1).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            for (name, d) in [("PM-NCTCR", 1u8), ("pm-nctcr", 2)] {
                c.execute(
                    "INSERT INTO tokens (name, role, programmes, digest, created_at, created_by)
                     VALUES (?1, 'viewer', '[]', ?2, 'now', 't')",
                    params![name, vec![d; 32]],
                )
                .unwrap();
            }
        }
        let db = SqliteApiData::open(&path).unwrap();
        assert_eq!(db.tokens().await.unwrap().len(), 2, "both rows kept");
        assert_eq!(db.insert_token(row("Pm-Nctcr", 3)).await.unwrap(), Inserted::NameTaken);
        assert_eq!(db.revoke_token("pm-NCTCR".into(), "admin".into()).await.unwrap(), Revoked::Now);
        let rows = db.tokens().await.unwrap();
        assert!(rows.iter().all(|r| r.revoked_at.is_some() && r.revoked_by.as_deref() == Some("admin")));
        assert_eq!(db.revoke_token("pm-nctcr".into(), "x".into()).await.unwrap(), Revoked::Already);
        assert_eq!(db.revoke_token("nobody".into(), "x".into()).await.unwrap(), Revoked::Unknown);
    }

    #[tokio::test]
    async fn a_fresh_file_has_a_unique_index_on_names_without_case() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteApiData::open(&dir.path().join("api.sqlite")).unwrap();
        assert_eq!(db.insert_token(row("ops", 1)).await.unwrap(), Inserted::Yes);
        assert_eq!(db.insert_token(row("OPS", 2)).await.unwrap(), Inserted::NameTaken);
        let unique: i64 = db
            .with(|c| {
                c.query_row("SELECT \"unique\" FROM pragma_index_list('tokens') WHERE name = ?1", [NAME_INDEX], |r| {
                    r.get(0)
                })
            })
            .await
            .unwrap();
        assert_eq!(unique, 1);
        db.record_last_used(vec![("ops".into(), "2026-01-01T00:00:00+00:00".into())]).await.unwrap();
        assert!(db.tokens().await.unwrap()[0].last_used_at.is_some());
    }
}
