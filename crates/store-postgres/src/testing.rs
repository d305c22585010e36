//! Throw-away databases for tests (feature `testing`): each test gets a
//! database of its own on the PostgreSQL at 127.0.0.1:5432 (user
//! `postgres`), dropped afterwards.

use tokio_postgres::NoTls;

/// Where the test databases are made.
pub const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A uniquely named database, dropped (with whatever is connected to it)
/// when this value is dropped or by [`TestDatabase::drop_now`].
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    /// Its name, `grantlog_t_<random>`.
    pub name: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates a fresh, empty database. Panics, saying so, when
    /// PostgreSQL at 127.0.0.1:5432 cannot be reached: such a test fails,
    /// it is never skipped.
    #[allow(clippy::panic)]
    pub async fn create() -> Self {
        let name = format!("grantlog_t_{}", uuid::Uuid::now_v7().simple());
        let client = admin().await;
        if let Err(e) = client.batch_execute(&format!("CREATE DATABASE {name}")).await {
            panic!("cannot create a test database on PostgreSQL at 127.0.0.1:5432: {e}");
        }
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self { url, name, dropped: false }
    }

    /// Drops the database now (forcing out its connections).
    pub async fn drop_now(mut self) {
        self.dropped = true;
        drop_database(&self.name).await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let name = self.name.clone();
        // Drop may run outside any runtime or inside one that is ending:
        // do it on a thread of its own with a runtime of its own.
        let done = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(drop_database(&name));
            }
        });
        let _ = done.join();
    }
}

#[allow(clippy::panic)]
async fn admin() -> tokio_postgres::Client {
    match tokio_postgres::connect(SERVER_URL, NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        Err(e) => panic!("these tests need PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth): {e}"),
    }
}

async fn drop_database(name: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(SERVER_URL, NoTls).await {
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if let Err(e) = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await {
            tracing::warn!(error = %e, database = name, "could not drop a test database");
        }
    }
}
