//! The writer task of one store: it takes every queued append and commits
//! them in one transaction (group commit) in two pipelined round trips:
//!
//! 1. `BEGIN`, take the log lock (`pg_advisory_xact_lock`), read the head
//!    and the database clock, and fetch for the whole group the stored
//!    events with its event ids, the recorded commands with its command ids
//!    and its streams' versions;
//! 2. insert the accepted events and commands (multi-row, via `UNNEST`),
//!    move the head, `NOTIFY`, `COMMIT`.
//!
//! Between the two, Rust decides each append in order ([`crate::decide`]),
//! so a refused append fails alone. Holding the lock from before the head
//! is read until after the commit is visible makes positions gapless and in
//! commit order across every store (server) on the database.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};
use uuid::Uuid;

use store::{AppendResult, Fingerprint, Position, PreparedAppend, RecordedCommand, StoreError, StreamId};

use crate::conn::Settings;
use crate::decide::{Known, KnownCommand, Rows, Stored, Tip, decide};
use crate::error::{Pg, store_error};

/// The advisory lock key every appender takes, in every store on the database.
pub(crate) const LOG_LOCK_KEY: i64 = 0x6772_616e_746c_6f67; // "grantlog"
/// The channel the writer notifies with the new head position.
pub(crate) const CHANNEL: &str = "grantlog_head";

pub(crate) type Reply = oneshot::Sender<Result<AppendResult, StoreError>>;

/// What the writer task is asked to do.
#[derive(Debug)]
pub(crate) enum Request {
    Append { append: PreparedAppend, reply: Reply },
    Close { reply: oneshot::Sender<()> },
}

/// The writer's statements, prepared once per connection.
struct Statements {
    lock: Statement,
    head: Statement,
    events: Statement,
    commands: Statement,
    versions: Statement,
    insert_events: Statement,
    insert_commands: Statement,
    move_head: Statement,
    notify: Statement,
}

pub(crate) const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
pub(crate) const HEAD_SQL: &str = "SELECT position, hash, recorded_at_micros, \
     (extract(epoch FROM clock_timestamp()) * 1000000)::bigint FROM log_head";
pub(crate) const INSERT_EVENTS_SQL: &str = "INSERT INTO events (position, stream_id, stream_version, event_id, \
     event_type, schema_version, data, metadata, recorded_at_micros, hash) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::bigint[], \
     $7::text[], $8::text[], $9::bigint[], $10::bytea[])";
pub(crate) const INSERT_COMMANDS_SQL: &str = "INSERT INTO commands (command_id, fingerprint, stream_id, \
     first_position, last_position) \
     SELECT * FROM UNNEST($1::uuid[], $2::bytea[], $3::text[], $4::bigint[], $5::bigint[])";
pub(crate) const MOVE_HEAD_SQL: &str = "UPDATE log_head SET position = $1, hash = $2, recorded_at_micros = $3";
pub(crate) const NOTIFY_SQL: &str = "SELECT pg_notify('grantlog_head', $1)";

impl Statements {
    async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            lock: client.prepare_typed(LOCK_SQL, &[Type::INT8]).await?,
            head: client.prepare(HEAD_SQL).await?,
            events: client
                .prepare_typed(
                    "SELECT event_id, position, stream_id, stream_version, event_type, schema_version, data, metadata
                     FROM events WHERE event_id = ANY($1)",
                    &[Type::UUID_ARRAY],
                )
                .await?,
            commands: client
                .prepare_typed(
                    "SELECT c.command_id, c.fingerprint, c.stream_id, c.first_position, c.last_position,
                            e.stream_version
                     FROM commands c JOIN events e ON e.position = c.last_position
                     WHERE c.command_id = ANY($1)",
                    &[Type::UUID_ARRAY],
                )
                .await?,
            versions: client
                .prepare_typed(
                    "SELECT s.id, (SELECT max(stream_version) FROM events WHERE stream_id = s.id)
                     FROM unnest($1::text[]) AS s(id)",
                    &[Type::TEXT_ARRAY],
                )
                .await?,
            insert_events: client.prepare(INSERT_EVENTS_SQL).await?,
            insert_commands: client.prepare(INSERT_COMMANDS_SQL).await?,
            move_head: client.prepare_typed(MOVE_HEAD_SQL, &[Type::INT8, Type::BYTEA, Type::INT8]).await?,
            notify: client.prepare_typed(NOTIFY_SQL, &[Type::TEXT]).await?,
        })
    }
}

struct Connection {
    client: Client,
    statements: Statements,
}

pub(crate) struct Writer {
    settings: Arc<Settings>,
    rx: mpsc::Receiver<Request>,
    position: Arc<watch::Sender<Position>>,
    conn: Option<Connection>,
}

type Group = Vec<(PreparedAppend, Reply)>;

/// A group stops taking appends once it holds this many events, so that
/// one transaction's multi-row inserts stay well within `statement_timeout`.
const GROUP_EVENTS_MAX: usize = 10_000;

fn group_events(group: &Group) -> usize {
    group.iter().map(|(append, _)| append.events.len()).sum()
}

/// Why a group was not committed.
enum GroupError {
    /// The database refused a statement: the transaction is rolled back
    /// and the connection is usable.
    Statement(StoreError),
    /// The connection failed or timed out: the outcome is unknown.
    Connection(StoreError),
}

impl Writer {
    pub fn new(settings: Arc<Settings>, rx: mpsc::Receiver<Request>, position: Arc<watch::Sender<Position>>) -> Self {
        Self { settings, rx, position, conn: None }
    }

    /// Serves requests until every sender is gone or `Close` arrives.
    pub async fn run(mut self) {
        let mut closing = None;
        while closing.is_none() {
            let Some(first) = self.rx.recv().await else { break };
            let mut group = Vec::new();
            take(first, &mut group, &mut closing);
            // The appenders answered by the last commit are about to send
            // their next appends: let them, so that this group takes them
            // all rather than only the first (one yield, no timer).
            tokio::task::yield_now().await;
            while group.len() < self.settings.group_appends_max
                && group_events(&group) < GROUP_EVENTS_MAX
                && closing.is_none()
            {
                match self.rx.try_recv() {
                    Ok(request) => take(request, &mut group, &mut closing),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group).await;
            }
        }
        self.conn = None;
        if let Some(reply) = closing {
            let _ = reply.send(());
        }
    }

    async fn commit_group(&mut self, group: Group) {
        metrics::histogram!("grantlog_pg_batch_appends").record(group.len() as f64);
        match self.try_group(&group).await {
            Ok((outcomes, tip)) => self.answer(group, outcomes, tip),
            Err(GroupError::Statement(e)) if group.len() > 1 => {
                // Something the decisions did not foresee (another writer
                // ignoring the lock?): commit each append alone, so that the
                // one the database refuses fails alone.
                tracing::warn!(error = %e, "a group commit was refused; retrying its appends one by one");
                for one in group {
                    let single = vec![one];
                    match self.try_group(&single).await {
                        Ok((outcomes, tip)) => self.answer(single, outcomes, tip),
                        Err(GroupError::Statement(e) | GroupError::Connection(e)) => fail(single, &e),
                    }
                }
            }
            Err(GroupError::Statement(e) | GroupError::Connection(e)) => fail(group, &e),
        }
    }

    fn answer(&self, group: Group, outcomes: Vec<Result<AppendResult, StoreError>>, tip: Tip) {
        self.position.send_if_modified(|p| {
            let moved = p.0 < tip.position;
            if moved {
                *p = Position(tip.position);
            }
            moved
        });
        for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }

    #[allow(clippy::type_complexity)]
    async fn try_group(&mut self, group: &Group) -> Result<(Vec<Result<AppendResult, StoreError>>, Tip), GroupError> {
        if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.conn = Some(self.open().await.map_err(GroupError::Connection)?);
        }
        let Some(conn) = self.conn.as_ref() else { return Err(GroupError::Connection(StoreError::Closed)) };
        let settings = Arc::clone(&self.settings);
        let result = tokio::time::timeout(settings.deadline, write_group(conn, &settings, group)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(GroupError::Connection(crate::error::timed_out("group commit"))),
        };
        match &result {
            Err(GroupError::Connection(_)) => {
                // Dropping the client closes the connection: the server rolls
                // back whatever it had not committed.
                self.conn = None;
            }
            Err(GroupError::Statement(_)) => {
                if let Some(conn) = &self.conn
                    && conn.client.batch_execute("ROLLBACK").await.is_err()
                {
                    self.conn = None;
                }
            }
            Ok(_) => {}
        }
        result
    }

    async fn open(&self) -> Result<Connection, StoreError> {
        let client = self.settings.connect().await?;
        let statements = self.settings.within("prepare", async { Statements::prepare(&client).await.pg() }).await?;
        Ok(Connection { client, statements })
    }
}

fn take(request: Request, group: &mut Group, closing: &mut Option<oneshot::Sender<()>>) {
    match request {
        Request::Append { append, reply } => group.push((append, reply)),
        Request::Close { reply } => *closing = Some(reply),
    }
}

fn fail(group: Group, e: &StoreError) {
    for (_, reply) in group {
        let _ = reply.send(Err(e.clone()));
    }
}

/// Sorts a database error into refused-statement or lost-connection.
fn classify(e: tokio_postgres::Error) -> GroupError {
    let store = store_error(e);
    match store {
        StoreError::Unavailable { .. } => GroupError::Connection(store),
        other => GroupError::Statement(other),
    }
}

#[allow(clippy::type_complexity)]
async fn write_group(
    conn: &Connection,
    settings: &Settings,
    group: &Group,
) -> Result<(Vec<Result<AppendResult, StoreError>>, Tip), GroupError> {
    let (client, st) = (&conn.client, &conn.statements);
    let mut event_ids: Vec<Uuid> = Vec::new();
    let mut command_ids: Vec<Uuid> = Vec::new();
    let mut streams: Vec<&str> = Vec::new();
    for (append, _) in group {
        event_ids.extend(append.events.iter().map(|e| e.event_id));
        command_ids.extend(append.command.map(|(id, _)| id));
        streams.push(append.stream_id.as_str());
    }
    streams.sort_unstable();
    streams.dedup();

    // Round trip 1, pipelined: nothing is sent after the lock but reads.
    let started = Instant::now();
    let lock = async {
        let r = client.execute(&st.lock, &[&LOG_LOCK_KEY]).await;
        metrics::histogram!("grantlog_pg_lock_wait_seconds").record(started.elapsed().as_secs_f64());
        r
    };
    let ids_param: [&(dyn ToSql + Sync); 1] = [&event_ids];
    let commands_param: [&(dyn ToSql + Sync); 1] = [&command_ids];
    let streams_param: [&(dyn ToSql + Sync); 1] = [&streams];
    let (begin, lock, head, events, commands, versions) = tokio::join!(
        client.batch_execute("BEGIN"),
        lock,
        client.query_one(&st.head, &[]),
        client.query(&st.events, &ids_param),
        client.query(&st.commands, &commands_param),
        client.query(&st.versions, &streams_param),
    );
    begin.map_err(classify)?;
    lock.map_err(classify)?;
    let head = head.map_err(classify)?;
    let mut known = Known::default();
    fill_events(&mut known, events.map_err(classify)?).map_err(GroupError::Statement)?;
    fill_commands(&mut known, commands.map_err(classify)?).map_err(GroupError::Statement)?;
    for row in versions.map_err(classify)? {
        let version: Option<i64> = row.get(1);
        known.versions.insert(row.get(0), version.map(|v| v as u64));
    }
    let (mut tip, head_micros, clock_micros) = tip_of(&head).map_err(GroupError::Statement)?;
    // One clock, the database's, read under the lock; never backwards.
    let now = clock_micros.max(head_micros);

    let mut rows = Rows::default();
    let outcomes: Vec<_> =
        group.iter().map(|(append, _)| decide(&mut known, append, &mut tip, now, &mut rows)).collect();

    if !settings.commit_delay.is_zero() {
        tokio::time::sleep(settings.commit_delay).await;
    }
    // Round trip 2, pipelined.
    let position_text = tip.position.to_string();
    let tip_position = tip.position as i64;
    let tip_hash = tip.hash.to_vec();
    let write = !rows.is_empty();
    let with_commands = !rows.command_ids.is_empty();
    let (inserted, commands_inserted, moved, notified, commit) = tokio::join!(
        async {
            if !write {
                return Ok(0);
            }
            client
                .execute(
                    &st.insert_events,
                    &[
                        &rows.positions,
                        &rows.stream_ids,
                        &rows.stream_versions,
                        &rows.event_ids,
                        &rows.event_types,
                        &rows.schema_versions,
                        &rows.data,
                        &rows.metadata,
                        &rows.recorded_at_micros,
                        &rows.hashes,
                    ],
                )
                .await
        },
        async {
            if !with_commands {
                return Ok(0);
            }
            client
                .execute(
                    &st.insert_commands,
                    &[
                        &rows.command_ids,
                        &rows.command_fingerprints,
                        &rows.command_streams,
                        &rows.command_firsts,
                        &rows.command_lasts,
                    ],
                )
                .await
        },
        async {
            if !write {
                return Ok(0);
            }
            client.execute(&st.move_head, &[&tip_position, &tip_hash, &now]).await
        },
        async {
            if !write {
                return Ok(0);
            }
            client.execute(&st.notify, &[&position_text]).await
        },
        client.batch_execute("COMMIT"),
    );
    // A statement refused in the transaction makes COMMIT roll back: look
    // at every answer, not only COMMIT's.
    inserted.map_err(classify)?;
    commands_inserted.map_err(classify)?;
    moved.map_err(classify)?;
    notified.map_err(classify)?;
    commit.map_err(classify)?;
    Ok((outcomes, tip))
}

/// The head row's position, hash and time, and the database clock.
pub(crate) fn tip_of(head: &Row) -> Result<(Tip, i64, i64), StoreError> {
    let position: i64 = head.try_get(0).pg()?;
    let hash: Vec<u8> = head.try_get(1).pg()?;
    let hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt { position: position as u64, detail: "head hash is not 32 bytes".into() })?;
    let head_micros: i64 = head.try_get(2).pg()?;
    let clock_micros: i64 = head.try_get(3).pg()?;
    Ok((Tip { position: position as u64, hash }, head_micros, clock_micros))
}

fn fill_events(known: &mut Known, rows: Vec<Row>) -> Result<(), StoreError> {
    for row in rows {
        let schema_version: i64 = row.try_get(5).pg()?;
        known.events.insert(
            row.try_get(0).pg()?,
            Stored {
                position: row.try_get::<_, i64>(1).pg()? as u64,
                stream_id: row.try_get(2).pg()?,
                stream_version: row.try_get::<_, i64>(3).pg()? as u64,
                event_type: row.try_get(4).pg()?,
                schema_version: u32::try_from(schema_version).unwrap_or(u32::MAX),
                data: row.try_get(6).pg()?,
                metadata: row.try_get(7).pg()?,
            },
        );
    }
    Ok(())
}

fn fill_commands(known: &mut Known, rows: Vec<Row>) -> Result<(), StoreError> {
    for row in rows {
        let recorded = recorded_command(&row)?;
        let last_stream_version = row.try_get::<_, i64>(5).pg()? as u64;
        known.commands.insert(recorded.command_id, KnownCommand { recorded, last_stream_version });
    }
    Ok(())
}

/// A `commands` row (command_id, fingerprint, stream_id, first, last, ..).
pub(crate) fn recorded_command(row: &Row) -> Result<RecordedCommand, StoreError> {
    let command_id: Uuid = row.try_get(0).pg()?;
    let first: i64 = row.try_get(3).pg()?;
    let bad = |detail: String| StoreError::Corrupt { position: first as u64, detail };
    let fingerprint: Option<Vec<u8>> = row.try_get(1).pg()?;
    let fingerprint = fingerprint
        .map(|f| <[u8; 32]>::try_from(f.as_slice()).map(Fingerprint))
        .transpose()
        .map_err(|_| bad(format!("command {command_id}: fingerprint is not 32 bytes")))?;
    let stream_id = StreamId::parse(row.try_get::<_, String>(2).pg()?).map_err(|e| bad(e.to_string()))?;
    Ok(RecordedCommand {
        command_id,
        fingerprint,
        stream_id,
        first_position: Position(first as u64),
        last_position: Position(row.try_get::<_, i64>(4).pg()? as u64),
    })
}
