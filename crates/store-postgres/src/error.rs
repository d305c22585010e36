//! PostgreSQL's errors in the store's terms.

use store::StoreError;
use tokio_postgres::error::SqlState;

/// Turns a PostgreSQL error into the store's: a lost or refused connection,
/// a timeout or a server shutting down is [`StoreError::Unavailable`] (the
/// outcome of a write that met it is unknown), a full disk is
/// [`StoreError::StorageFull`], anything else [`StoreError::Database`].
pub fn store_error(e: tokio_postgres::Error) -> StoreError {
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

/// The server's codes for "not now": every connection exception (class
/// 08) and operator intervention (class 57: a shutdown, a server still
/// starting, a cancelled statement), lock and idle timeouts, too many
/// clients, and the transaction conflicts a retry resolves.
fn is_unavailable(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || code.code().starts_with("57")
        || [
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
pub fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_operator_classes_are_unavailable_and_others_are_not() {
        for code in ["08000", "08001", "08006", "57000", "57014", "57P01", "57P03", "55P03", "53300", "40001"] {
            assert!(is_unavailable(&SqlState::from_code(code)), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "XX000"] {
            assert!(!is_unavailable(&SqlState::from_code(code)), "{code}");
        }
    }
}
