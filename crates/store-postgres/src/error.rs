//! PostgreSQL's errors in the store's terms.

use store::StoreError;
use tokio_postgres::error::SqlState;

/// Turns a PostgreSQL error into the store's: a lost or refused connection,
/// a timeout or a server shutting down is [`StoreError::Unavailable`] (the
/// outcome of a write that met it is unknown), a full disk is
/// [`StoreError::StorageFull`], anything else [`StoreError::Database`].
pub(crate) fn store_error(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        // No answer from the server: the connection is gone or never came.
        return StoreError::Unavailable { detail: e.to_string() };
    };
    let code = db.code();
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY || *code == SqlState::PROGRAM_LIMIT_EXCEEDED {
        return StoreError::StorageFull { detail: db.to_string() };
    }
    if is_unavailable(code) {
        return StoreError::Unavailable { detail: db.to_string() };
    }
    StoreError::Database(db.to_string())
}

/// The server's codes for "not now": timeouts, shutdowns, too many clients.
fn is_unavailable(code: &SqlState) -> bool {
    [
        SqlState::QUERY_CANCELED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::CONNECTION_FAILURE,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ]
    .contains(code)
}

/// The pool's errors: waiting for or opening a connection that does not
/// come is [`StoreError::Unavailable`]; a closed pool is a closed store.
pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => store_error(e),
        PoolError::Closed => StoreError::Closed,
        PoolError::Timeout(kind) => {
            StoreError::Unavailable { detail: format!("no database connection in time ({kind:?})") }
        }
        other => StoreError::Unavailable { detail: other.to_string() },
    }
}

/// What a client-side deadline becomes: the server did not answer in time.
pub(crate) fn timed_out(what: &str) -> StoreError {
    StoreError::Unavailable { detail: format!("the database did not answer in time ({what})") }
}

/// `?` for PostgreSQL results in functions that answer [`StoreError`].
pub(crate) trait Pg<T> {
    fn pg(self) -> Result<T, StoreError>;
}

impl<T> Pg<T> for Result<T, tokio_postgres::Error> {
    fn pg(self) -> Result<T, StoreError> {
        self.map_err(store_error)
    }
}
