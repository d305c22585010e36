//! Where a log lives, as the operator names it on the command line: a data
//! directory (its `events.sqlite`) or a PostgreSQL URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use store::EventStore;

/// A data directory or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A data directory; the log is its `events.sqlite`.
    DataDir(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// `postgres://…` and `postgresql://…` are PostgreSQL; anything else is
    /// a data directory.
    pub fn parse(text: &str) -> Self {
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::DataDir(PathBuf::from(text))
        }
    }
}

impl fmt::Display for Location {
    /// A data directory's path; a URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::DataDir(dir) => write!(f, "{}", dir.display()),
            Location::Postgres(url) => f.write_str(&store_postgres::redacted_url(url)),
        }
    }
}

/// Opens the existing log at `location` (a data directory's
/// `events.sqlite`, never created here, or a PostgreSQL URL).
pub async fn open_log_at(location: &Location) -> anyhow::Result<Arc<dyn EventStore>> {
    match location {
        Location::DataDir(dir) => Ok(api::backend::open_log(dir, None, false).await?),
        Location::Postgres(url) => Ok(api::backend::open_log(Path::new(""), Some(url), false).await?),
    }
}

/// Opens the log at `location`, creating a missing data directory (with
/// the server's layout and modes) or an empty log in it. (A PostgreSQL
/// database must exist; connecting creates the schema.)
pub async fn create_log_at(location: &Location) -> anyhow::Result<Arc<dyn EventStore>> {
    match location {
        Location::DataDir(dir) => {
            api::files::prepare_data_dir(dir).with_context(|| format!("preparing {}", dir.display()))?;
            Ok(api::backend::open_log(dir, None, true).await?)
        }
        Location::Postgres(url) => Ok(api::backend::open_log(Path::new(""), Some(url), true).await?),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_are_postgres_and_anything_else_a_directory() {
        for url in ["postgres://u@h/db", "postgresql://h/db", "POSTGRES://h/db"] {
            assert_eq!(Location::parse(url), Location::Postgres(url.to_owned()));
        }
        for dir in ["./data", "/var/lib/grantlog", "postgres", "postgres:/x"] {
            assert_eq!(Location::parse(dir), Location::DataDir(PathBuf::from(dir)));
        }
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        let shown = Location::parse("postgres://grantlog:s3cret@db.example:5432/log?sslmode=require").to_string();
        assert_eq!(shown, "postgres://grantlog:***@db.example:5432/log?sslmode=require");
        assert_eq!(Location::parse("postgres://db/log").to_string(), "postgres://db/log");
        assert_eq!(Location::parse("postgresql://u@db").to_string(), "postgresql://u@db");
    }

    #[tokio::test]
    async fn an_unreachable_database_is_an_error_that_hides_the_password() {
        let err = open_log_at(&Location::parse("postgres://u:pw-x9@127.0.0.1:1/db")).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("127.0.0.1:1") && !text.contains("pw-x9"), "{text}");
    }

    #[tokio::test]
    async fn a_missing_data_directory_is_not_created_when_opening_and_is_when_creating() {
        let root = tempfile::tempdir().unwrap();
        let dir = Location::DataDir(root.path().join("new"));
        assert!(open_log_at(&dir).await.is_err());
        assert!(!root.path().join("new").exists());
        let store = create_log_at(&dir).await.unwrap();
        assert_eq!(store.head().await.unwrap(), None);
        store.close().await;
        assert!(root.path().join("new/events.sqlite").is_file());
    }
}
