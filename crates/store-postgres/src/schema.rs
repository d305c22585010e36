//! The log's tables and their migrations, versioned in `grantlog_schema`.
//!
//! Every table lives in the connection's default schema (the first of its
//! `search_path`), so a deployment or a test picks its own database or
//! schema by URL. Never edit an applied migration: add a new one at the end.

use store::StoreError;
use tokio_postgres::Client;

use crate::error::Pg;

/// The advisory lock key taken (per transaction) while migrating, so that
/// servers starting at once apply each migration once.
const MIGRATION_LOCK_KEY: i64 = 0x6772_616e_746c_6d01; // "grantlm\x01"

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: events, commands and the head, append-only by trigger and by grant.
    // JSON is TEXT, never jsonb: the chain hashes the stored bytes.
    r#"
    CREATE TABLE events (
        position           BIGINT  PRIMARY KEY,
        stream_id          TEXT    NOT NULL,
        stream_version     BIGINT  NOT NULL,
        event_id           UUID    NOT NULL UNIQUE,
        event_type         TEXT    NOT NULL,
        schema_version     BIGINT  NOT NULL,
        data               TEXT    NOT NULL,
        metadata           TEXT    NOT NULL,
        recorded_at_micros BIGINT  NOT NULL,
        hash               BYTEA   NOT NULL,
        UNIQUE (stream_id, stream_version)
    );
    CREATE INDEX events_recorded_at ON events (recorded_at_micros);
    CREATE TABLE commands (
        command_id     UUID   PRIMARY KEY,
        fingerprint    BYTEA,
        stream_id      TEXT   NOT NULL,
        first_position BIGINT NOT NULL,
        last_position  BIGINT NOT NULL
    );
    CREATE TABLE log_head (
        single             BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),
        position           BIGINT  NOT NULL,
        hash               BYTEA   NOT NULL,
        recorded_at_micros BIGINT  NOT NULL
    );
    INSERT INTO log_head (position, hash, recorded_at_micros)
    VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000', -9223372036854775808);
    CREATE FUNCTION grantlog_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the % table is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION grantlog_refuse_change();
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION grantlog_refuse_change();
    CREATE TRIGGER commands_append_only BEFORE UPDATE OR DELETE ON commands
        FOR EACH ROW EXECUTE FUNCTION grantlog_refuse_change();
    CREATE TRIGGER commands_no_truncate BEFORE TRUNCATE ON commands
        FOR EACH STATEMENT EXECUTE FUNCTION grantlog_refuse_change();
    REVOKE UPDATE, DELETE, TRUNCATE ON events, commands FROM PUBLIC;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`] in one transaction under
/// an advisory lock (servers starting at once apply each migration once);
/// refuses a database written by a newer build.
pub(crate) async fn migrate(client: &Client) -> Result<(), StoreError> {
    client.batch_execute("BEGIN").await.pg()?;
    let outcome = migrate_in_transaction(client).await;
    match outcome {
        Ok(()) => client.batch_execute("COMMIT").await.pg(),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn migrate_in_transaction(client: &Client) -> Result<(), StoreError> {
    client.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).await.pg()?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS grantlog_schema (
                 single  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),
                 version BIGINT  NOT NULL
             );
             INSERT INTO grantlog_schema (version) VALUES (0) ON CONFLICT DO NOTHING;",
        )
        .await
        .pg()?;
    let found: i64 = client.query_one("SELECT version FROM grantlog_schema", &[]).await.pg()?.get(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found, supported: SCHEMA_VERSION });
    }
    for sql in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        client.batch_execute(sql).await.pg()?;
    }
    client.execute("UPDATE grantlog_schema SET version = $1", &[&SCHEMA_VERSION]).await.pg()?;
    Ok(())
}
