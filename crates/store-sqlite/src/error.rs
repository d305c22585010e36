//! SQLite's errors in the store's terms.

use store::StoreError;

/// Turns a SQLite error into the store's: a full disk or database is
/// [`StoreError::StorageFull`], anything else [`StoreError::Database`].
pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    if is_full(&e) { StoreError::StorageFull { detail: e.to_string() } } else { StoreError::Database(e.to_string()) }
}

/// Whether SQLite reports a full disk or a full database.
pub(crate) fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull))
}

/// `?` for SQLite results in functions that answer [`StoreError`].
pub(crate) trait Sql<T> {
    fn sql(self) -> Result<T, StoreError>;
}

impl<T> Sql<T> for Result<T, rusqlite::Error> {
    fn sql(self) -> Result<T, StoreError> {
        self.map_err(store_error)
    }
}
