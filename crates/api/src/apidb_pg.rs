//! The API's data on PostgreSQL, beside the shared log: the tokens every
//! server of one database accepts. A token created or revoked through any
//! server (or `grantlog token`) bumps one counter in the same transaction;
//! every server reads the counter each second and reloads the tokens when it
//! moved ([`ApiData::data_version`]).

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::apidb::{ApiData, Inserted, Revoked, SessionRow, TokenRow, digest_of};
use crate::error::ApiError;

/// This build's schema version of the API's tables.
pub const API_PG_SCHEMA_VERSION: i64 = 2;

/// Serialises migrations of servers starting at once (an advisory lock key:
/// "grantapi" in ASCII).
const MIGRATION_LOCK: i64 = 0x6772_616e_7461_7069;

const MIGRATION_1: &str = "
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    programmes TEXT NOT NULL,
    digest BYTEA NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT,
    revoked_by TEXT
);
CREATE UNIQUE INDEX api_tokens_name_nocase ON api_tokens (lower(name));
CREATE TABLE api_changes (id INT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
INSERT INTO api_changes VALUES (1, 0);
";

/// Browser sessions, as `api.sqlite`'s (see `apidb`'s `MIGRATION_4`).
const MIGRATION_2: &str = "
CREATE TABLE api_sessions (
    digest BYTEA PRIMARY KEY,
    token_digest BYTEA NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX api_sessions_expiry ON api_sessions (expires_at);
";

/// The API's data in PostgreSQL.
#[derive(Clone)]
pub struct PostgresApiData {
    pool: Pool,
}

impl std::fmt::Debug for PostgresApiData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresApiData").finish_non_exhaustive()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("api database: {e}"))
}

/// A database error in the API's terms, classified as the log's are
/// (`store_postgres::store_error`): the server gone, timed out or shutting
/// down is unavailability (503); a full disk is 507; anything else internal.
fn pg(e: tokio_postgres::Error) -> ApiError {
    from_store(store_postgres::store_error(e))
}

fn pool_error(e: deadpool_postgres::PoolError) -> ApiError {
    from_store(store_postgres::pool_error(e))
}

fn from_store(e: store::StoreError) -> ApiError {
    match e {
        store::StoreError::Unavailable { detail } => ApiError::DatabaseUnavailable { detail },
        store::StoreError::Closed => ApiError::DatabaseUnavailable { detail: "the pool is closed".to_owned() },
        store::StoreError::StorageFull { .. } => ApiError::StorageFull,
        other => internal(other),
    }
}

impl PostgresApiData {
    /// Connects to `url` (a `postgres://` URL), creating or migrating the
    /// tables; refuses a schema newer than this build's.
    pub async fn connect(url: &str) -> Result<Self, ApiError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| internal(format!("{}: {e}", store_postgres::redacted_url(url))))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(4)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(internal)?;
        let this = Self { pool };
        this.migrate().await?;
        Ok(this)
    }

    async fn migrate(&self) -> Result<(), ApiError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS grantlog_api_schema (version BIGINT NOT NULL)")
            .await
            .map_err(pg)?;
        let version: i64 = tx
            .query_opt("SELECT version FROM grantlog_api_schema", &[])
            .await
            .map_err(pg)?
            .map(|r| r.get(0))
            .unwrap_or(0);
        if version > API_PG_SCHEMA_VERSION {
            return Err(ApiError::Internal(format!(
                "the API's tables are schema version {version}; this build knows up to {API_PG_SCHEMA_VERSION}: \
                 upgrade grantlog"
            )));
        }
        if version < 1 {
            tx.batch_execute(MIGRATION_1).await.map_err(pg)?;
            tx.execute("INSERT INTO grantlog_api_schema VALUES (1)", &[]).await.map_err(pg)?;
        }
        if version < 2 {
            tx.batch_execute(MIGRATION_2).await.map_err(pg)?;
            tx.execute("UPDATE grantlog_api_schema SET version = 2", &[]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }
}

fn row_of(r: &tokio_postgres::Row) -> TokenRow {
    let digest: Vec<u8> = r.get(3);
    TokenRow {
        name: r.get(0),
        role: r.get(1),
        programmes: r.get(2),
        digest: digest_of(&digest),
        expires_at: r.get(4),
        created_at: r.get(5),
        created_by: r.get(6),
        last_used_at: r.get(7),
        revoked_at: r.get(8),
        revoked_by: r.get(9),
    }
}

#[async_trait]
impl ApiData for PostgresApiData {
    async fn tokens(&self) -> Result<Vec<TokenRow>, ApiError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                "SELECT name, role, programmes, digest, expires_at, created_at, created_by, last_used_at,
                        revoked_at, revoked_by
                 FROM api_tokens ORDER BY name",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(row_of).collect())
    }

    async fn insert_token(&self, row: TokenRow) -> Result<Inserted, ApiError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(pg)?;
        // The unique index on lower(name) makes a racing insert of the same
        // name (another server's bootstrap) a no-op here.
        let n = tx
            .execute(
                "INSERT INTO api_tokens (name, role, programmes, digest, created_at, created_by, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT DO NOTHING",
                &[
                    &row.name,
                    &row.role,
                    &row.programmes,
                    &row.digest.as_slice(),
                    &row.created_at,
                    &row.created_by,
                    &row.expires_at,
                ],
            )
            .await
            .map_err(pg)?;
        if n == 1 {
            tx.execute("UPDATE api_changes SET version = version + 1 WHERE id = 1", &[]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(if n == 1 { Inserted::Yes } else { Inserted::NameTaken })
    }

    async fn revoke_token(&self, name: String, by: String) -> Result<Revoked, ApiError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(pg)?;
        let at = chrono::Utc::now().to_rfc3339();
        let n = tx
            .execute(
                "UPDATE api_tokens SET revoked_at = $2, revoked_by = $3
                 WHERE lower(name) = lower($1) AND revoked_at IS NULL",
                &[&name, &at, &by],
            )
            .await
            .map_err(pg)?;
        let outcome = if n > 0 {
            tx.execute("UPDATE api_changes SET version = version + 1 WHERE id = 1", &[]).await.map_err(pg)?;
            Revoked::Now
        } else {
            let known: i64 = tx
                .query_one("SELECT count(*) FROM api_tokens WHERE lower(name) = lower($1)", &[&name])
                .await
                .map_err(pg)?
                .get(0);
            if known > 0 { Revoked::Already } else { Revoked::Unknown }
        };
        tx.commit().await.map_err(pg)?;
        Ok(outcome)
    }

    async fn record_last_used(&self, uses: Vec<(String, String)>) -> Result<(), ApiError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(pg)?;
        let stmt = tx
            .prepare(
                "UPDATE api_tokens SET last_used_at = $2
                 WHERE name = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )
            .await
            .map_err(pg)?;
        for (name, at) in &uses {
            tx.execute(&stmt, &[name, at]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn data_version(&self) -> Result<i64, ApiError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        Ok(client.query_one("SELECT version FROM api_changes WHERE id = 1", &[]).await.map_err(pg)?.get(0))
    }

    async fn insert_session(&self, row: SessionRow) -> Result<(), ApiError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("DELETE FROM api_sessions WHERE expires_at <= $1", &[&row.created_at]).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO api_sessions (digest, token_digest, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&row.digest.as_slice(), &row.token_digest.as_slice(), &row.csrf, &row.created_at, &row.expires_at],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn session(&self, digest: [u8; 32], now: String) -> Result<Option<SessionRow>, ApiError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "SELECT token_digest, csrf, created_at, expires_at FROM api_sessions
                 WHERE digest = $1 AND expires_at > $2",
                &[&digest.as_slice(), &now],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| {
            let token: Vec<u8> = r.get(0);
            SessionRow {
                digest,
                token_digest: digest_of(&token),
                csrf: r.get(1),
                created_at: r.get(2),
                expires_at: r.get(3),
            }
        }))
    }

    async fn delete_session(&self, digest: [u8; 32]) -> Result<bool, ApiError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        Ok(client.execute("DELETE FROM api_sessions WHERE digest = $1", &[&digest.as_slice()]).await.map_err(pg)? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_url_that_does_not_parse_is_named_without_its_password() {
        let err = PostgresApiData::connect("postgres://grantlog:pw-z3@db.example:notaport/log").await.unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("db.example") && !text.contains("pw-z3"), "{text}");
    }
}
