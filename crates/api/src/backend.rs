//! Where the log and the API's data live: the one place that names a
//! backend. Without a database URL, the data directory's SQLite files (the
//! embedded default); with one, PostgreSQL, shared by every server given the
//! same URL. Each server keeps its own read models either way, in its data
//! directory (ARCHITECTURE.md says why).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::EventStore;
use store_postgres::{PostgresConfig, PostgresStore};
use store_sqlite::{SqliteConfig, SqliteStore};

use crate::apidb::{ApiData, SqliteApiData};
use crate::apidb_pg::PostgresApiData;
use crate::state::OpenError;

/// What to do when the SQLite log cannot be opened.
pub const LOG_REMEDY: &str = "The event log is the source of truth and cannot be rebuilt: check the disk and \
    permissions, check the chain with `grantlog verify`, or restore the file from a backup";
/// What to do when the PostgreSQL log cannot be opened.
pub const PG_REMEDY: &str = "Check that PostgreSQL is running and that the URL (host, port, database, user) is \
    right; the database must exist";
/// What to do when the API's file cannot be opened.
pub const API_REMEDY: &str = "It holds the API tokens, which cannot be rebuilt from the log: restore it from a \
    backup, or move it aside and start with GRANTLOG_ADMIN_TOKEN set (or read the new admin-token file) to \
    bootstrap a new admin token, then create the other tokens again";

fn open_error(file: PathBuf, detail: impl std::fmt::Display, remedy: &'static str) -> OpenError {
    OpenError { file, detail: detail.to_string(), remedy: Some(remedy) }
}

/// The variable that sets how much of `events.sqlite` a rebuild or a
/// catch-up from an empty views file maps into memory, in bytes
/// (`SqliteConfig::bulk_read_mmap_bytes`; 0 reads with `pread` only).
pub const REBUILD_MMAP_BYTES_VAR: &str = "GRANTLOG_REBUILD_MMAP_BYTES";

/// [`REBUILD_MMAP_BYTES_VAR`], when set.
fn bulk_read_mmap_bytes() -> Result<Option<u64>, OpenError> {
    let Some(value) = std::env::var_os(REBUILD_MMAP_BYTES_VAR) else { return Ok(None) };
    let bytes = value.to_str().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| OpenError {
        file: PathBuf::from(REBUILD_MMAP_BYTES_VAR),
        detail: format!("{value:?} is not a number of bytes"),
        remedy: Some("Give a whole number of bytes (0 reads the log with pread only), or unset it"),
    })?;
    Ok(Some(bytes))
}

/// Opens the log: PostgreSQL at `database_url`, else `events.sqlite` in
/// `data_dir` (created when `create`, else it must exist).
pub async fn open_log(
    data_dir: &Path,
    database_url: Option<&str>,
    create: bool,
) -> Result<Arc<dyn EventStore>, OpenError> {
    match database_url {
        Some(url) => {
            let store = PostgresStore::connect(PostgresConfig::new(url))
                .await
                .map_err(|e| open_error(PathBuf::from(store_postgres::redacted_url(url)), e, PG_REMEDY))?;
            Ok(Arc::new(store))
        }
        None => {
            let log = data_dir.join("events.sqlite");
            if !create && !log.is_file() {
                return Err(OpenError { file: log, detail: "no event log here".to_owned(), remedy: None });
            }
            let mut config = SqliteConfig::new(&log);
            if let Some(bytes) = bulk_read_mmap_bytes()? {
                config.bulk_read_mmap_bytes = bytes;
            }
            let store = SqliteStore::open_with(config).await.map_err(|e| open_error(log, e, LOG_REMEDY))?;
            Ok(Arc::new(store))
        }
    }
}

/// Opens the API's data: tables in PostgreSQL at `database_url`, else
/// `api.sqlite` in `data_dir`.
pub async fn open_api_data(data_dir: &Path, database_url: Option<&str>) -> Result<Arc<dyn ApiData>, OpenError> {
    match database_url {
        Some(url) => {
            let data = PostgresApiData::connect(url).await.map_err(|e| {
                open_error(PathBuf::from(store_postgres::redacted_url(url)), crate::state::api_detail(&e), PG_REMEDY)
            })?;
            Ok(Arc::new(data))
        }
        None => {
            let file = data_dir.join("api.sqlite");
            let data = SqliteApiData::open(&file)
                .map_err(|e| open_error(file.clone(), crate::state::api_detail(&e), API_REMEDY))?;
            Ok(Arc::new(data))
        }
    }
}
