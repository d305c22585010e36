//! Opening connections: every connection the store opens (the pool's, the
//! writer's, the listener's) carries the same server-side timeouts, so that
//! a stalled client cannot hold the log lock for longer than they allow.

use std::time::Duration;

use store::StoreError;
use tokio_postgres::{Client, NoTls};

use crate::PostgresConfig;
use crate::error::{Pg, timed_out};

/// What the store's tasks need to know, derived once from the config.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub pg: tokio_postgres::Config,
    /// How long any one round trip may take before the database counts as
    /// unreachable: longer than the server's own timeouts, so that the
    /// server's answer normally comes first.
    pub deadline: Duration,
    pub group_appends_max: usize,
    pub poll_interval: Duration,
    pub commit_delay: Duration,
}

impl Settings {
    pub fn new(config: &PostgresConfig) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config =
            config.url.parse().map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?;
        let ms = |d: Duration| d.as_millis().max(1);
        // Custom plans always: a generic plan made while the log was small
        // (a sequential scan of a few pages) would otherwise stay cached
        // for the connection's life and make lookups by event id linear in
        // the size of the log.
        let ours = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={} \
             -c plan_cache_mode=force_custom_plan",
            ms(config.statement_timeout),
            ms(config.lock_timeout),
            ms(config.idle_in_transaction_timeout),
        );
        let options = match pg.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {ours}"),
            _ => ours,
        };
        pg.options(&options);
        pg.connect_timeout(config.connect_timeout);
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(10));
        pg.application_name("grantlog");
        let deadline =
            config.statement_timeout.max(config.lock_timeout) + config.commit_delay_for_tests + Duration::from_secs(2);
        Ok(Self {
            pg,
            deadline,
            group_appends_max: config.group_commit_appends_max.max(1),
            poll_interval: config.poll_interval.max(Duration::from_millis(1)),
            commit_delay: config.commit_delay_for_tests,
        })
    }

    /// Opens one connection and drives it on its own task.
    pub async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self.connect_raw().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// Opens one connection, leaving the caller to drive it (the listener
    /// reads its notifications).
    pub async fn connect_raw(
        &self,
    ) -> Result<
        (Client, tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>),
        StoreError,
    > {
        tokio::time::timeout(self.deadline, self.pg.connect(NoTls)).await.map_err(|_| timed_out("connect"))?.pg()
    }

    /// Runs `f` with the client-side deadline.
    pub async fn within<T>(&self, what: &str, f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        tokio::time::timeout(self.deadline, f).await.map_err(|_| timed_out(what))?
    }
}
