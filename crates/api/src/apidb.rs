//! The API's own SQLite file (`api.sqlite`): bearer tokens (as SHA-256
//! digests). Not the log's file: one writer per file. Calls run on the
//! blocking pool, never on a runtime worker. (Its `idempotency` table is
//! no longer written: idempotency is decided by the event log.)

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

use crate::error::ApiError;

/// This build's schema version (`PRAGMA user_version`).
pub const API_SCHEMA_VERSION: i64 = 1;

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
}

/// The API database.
#[derive(Debug, Clone)]
pub struct ApiDb {
    conn: Arc<Mutex<Connection>>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("api database: {e}"))
}

impl ApiDb {
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

    /// Every token.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, ApiError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT name, role, programmes, digest FROM tokens ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                let digest: Vec<u8> = r.get(3)?;
                let mut d = [0u8; 32];
                if digest.len() == 32 {
                    d.copy_from_slice(&digest);
                }
                Ok(TokenRow { name: r.get(0)?, role: r.get(1)?, programmes: r.get(2)?, digest: d })
            })?;
            rows.collect()
        })
        .await
    }

    /// Stores a new token; `false` if the name is taken.
    pub async fn insert_token(&self, row: TokenRow, created_by: String) -> Result<bool, ApiError> {
        self.with(move |c| {
            let n = c.execute(
                "INSERT INTO tokens (name, role, programmes, digest, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                params![
                    row.name,
                    row.role,
                    row.programmes,
                    row.digest.to_vec(),
                    chrono::Utc::now().to_rfc3339(),
                    created_by
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }
}
