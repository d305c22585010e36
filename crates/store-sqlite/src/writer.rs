//! The one writer thread: it owns the write connection, takes appends from a
//! channel and commits everything queued in one transaction (group commit),
//! each append in its own savepoint so that a refused append fails alone.
//!
//! Fail-stop: after an I/O error on the append path the writer answers every
//! later append with [`StoreError::WriterStopped`]; it never acknowledges an
//! append whose commit it could not confirm. A full disk is not an I/O
//! error: the group is rolled back, answered `StorageFull`, and the writer
//! goes on.

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use store::PreparedAppend;
use store::prepare::StoredEvent as Stored;

use super::SqliteConfig;
use store::StoreError;

use crate::error::{Sql, is_full};
use store::hash::GENESIS;
use store::import::ImportTip;
use store::{AppendResult, Fingerprint, Head, Position, RawEvent};

/// Largest WAL file kept after a checkpoint resets it.
const WAL_BYTES_KEPT: i64 = 64 * 1024 * 1024;

pub(crate) type Reply = oneshot::Sender<Result<AppendResult, StoreError>>;
pub(crate) type ImportReply = oneshot::Sender<Result<Head, StoreError>>;

/// What the writer thread is asked to do.
#[derive(Debug)]
pub(crate) enum Request {
    Append {
        append: PreparedAppend,
        reply: Reply,
    },
    Import {
        events: Vec<RawEvent>,
        reply: oneshot::Sender<Result<Head, StoreError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    #[cfg(feature = "fault-injection")]
    FailNextCommit,
}

pub(crate) struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Request>,
    position_tx: watch::Sender<Position>,
    group_appends_max: usize,
    stopped: Option<String>,
    #[cfg(feature = "fault-injection")]
    fail_next_commit: bool,
}

/// Switches the file to WAL mode. Two processes opening a new file at once
/// can find it locked here without SQLite waiting (the switch takes the
/// file exclusively, and SQLite refuses rather than risk a deadlock): retry
/// for as long as the busy timeout would have waited.
fn wal_mode(conn: &Connection) -> Result<String, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Err(e)
                if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other.sql(),
        }
    }
}

/// The log's last event, as the chain continues from it.
#[derive(Debug, Clone, Copy)]
struct Tip {
    position: u64,
    hash: [u8; 32],
}

impl Writer {
    /// Opens the write connection, applies migrations and announces the
    /// current head position.
    pub fn open(
        config: &SqliteConfig,
        rx: mpsc::Receiver<Request>,
        position_tx: watch::Sender<Position>,
    ) -> Result<Self, StoreError> {
        let mut conn = Connection::open(&config.path).sql()?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).sql()?;
        // WAL lets readers work beside the writer; FULL syncs the WAL on every
        // commit, so an acknowledged append survives power loss.
        let mode = wal_mode(&conn)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database(format!("could not switch to WAL mode (got {mode})")));
        }
        conn.pragma_update(None, "synchronous", "FULL").sql()?;
        // Appends to random streams touch random pages of the stream index:
        // keep the hot part of the log in memory (64 MiB) rather than
        // re-reading it from the OS on every group.
        conn.pragma_update(None, "cache_size", -65_536).sql()?;
        // Checkpointing every 1,000 pages (SQLite's default) stalls the
        // writer often and copies hot index pages again and again; a longer
        // WAL lets a checkpoint copy each hot page once (see
        // docs/benchmarks.md: +35% for 64 appenders). The WAL file is cut
        // back to `WAL_BYTES_KEPT` after each reset.
        conn.pragma_update(None, "wal_autocheckpoint", config.wal_checkpoint_pages).sql()?;
        conn.pragma_update(None, "journal_size_limit", WAL_BYTES_KEPT).sql()?;
        if let Some(pages) = config.database_pages_max {
            conn.query_row(&format!("PRAGMA max_page_count={pages}"), [], |_| Ok(())).sql()?;
        }
        super::schema::migrate(&mut conn)?;
        let writer = Writer {
            conn,
            rx,
            position_tx,
            group_appends_max: config.group_commit_appends_max.max(1),
            stopped: None,
            #[cfg(feature = "fault-injection")]
            fail_next_commit: false,
        };
        let (tip, _) = writer.tip().sql()?;
        writer.position_tx.send_replace(Position(tip.position));
        Ok(writer)
    }

    /// Serves requests until every sender is gone or `Close` arrives.
    pub fn run(mut self) {
        let mut closing = None;
        while closing.is_none() {
            let Some(first) = self.rx.blocking_recv() else { break };
            let mut group = Vec::new();
            // An import is a transaction of its own, after the appends
            // queued before it.
            let mut import = None;
            self.take(first, &mut group, &mut closing, &mut import);
            while group.len() < self.group_appends_max && closing.is_none() && import.is_none() {
                match self.rx.try_recv() {
                    Ok(request) => self.take(request, &mut group, &mut closing, &mut import),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some((events, reply)) = import {
                self.commit_import(&events, reply);
            }
        }
        let Writer { conn, .. } = self;
        if let Err((_, e)) = conn.close() {
            tracing::warn!(error = %e, "closing the event log's write connection failed");
        }
        if let Some(reply) = closing {
            let _ = reply.send(());
        }
    }

    fn take(
        &mut self,
        request: Request,
        group: &mut Vec<(PreparedAppend, Reply)>,
        closing: &mut Option<oneshot::Sender<()>>,
        import: &mut Option<(Vec<RawEvent>, ImportReply)>,
    ) {
        match request {
            Request::Append { append, reply } => group.push((append, reply)),
            Request::Import { events, reply } => *import = Some((events, reply)),
            Request::Close { reply } => *closing = Some(reply),
            #[cfg(feature = "fault-injection")]
            Request::FailNextCommit => self.fail_next_commit = true,
        }
    }

    fn commit_group(&mut self, group: Vec<(PreparedAppend, Reply)>) {
        if let Some(reason) = &self.stopped {
            let err = StoreError::WriterStopped { reason: reason.clone() };
            for (_, reply) in group {
                let _ = reply.send(Err(err.clone()));
            }
            return;
        }
        match self.write_group(&group) {
            Ok((outcomes, tip)) => {
                self.position_tx.send_if_modified(|p| {
                    let moved = p.0 != tip.position;
                    *p = Position(tip.position);
                    moved
                });
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                let err = self.failed(&e);
                for (_, reply) in group {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Rolls back after SQLite failed a transaction: a full disk is answered
    /// as such, anything else stops the writer (fail-stop).
    fn failed(&mut self, e: &rusqlite::Error) -> StoreError {
        if !self.conn.is_autocommit() {
            // The transaction may already be gone; either way nothing of it
            // is acknowledged.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if is_full(e) {
            tracing::warn!(error = %e, "event log storage is full; transaction rolled back");
            StoreError::StorageFull { detail: e.to_string() }
        } else {
            tracing::error!(error = %e, "event log writer stopped after an I/O error");
            self.stopped = Some(e.to_string());
            StoreError::WriterStopped { reason: e.to_string() }
        }
    }

    fn commit_import(&mut self, events: &[RawEvent], reply: ImportReply) {
        if let Some(reason) = &self.stopped {
            let _ = reply.send(Err(StoreError::WriterStopped { reason: reason.clone() }));
            return;
        }
        let answer = match self.write_import(events) {
            Ok(Ok(head)) => {
                self.position_tx.send_replace(head.position);
                Ok(head)
            }
            Ok(Err(refusal)) => Err(refusal),
            Err(e) => Err(self.failed(&e)),
        };
        let _ = reply.send(answer);
    }

    /// One transaction for one import; a refusal rolls it back.
    fn write_import(&mut self, events: &[RawEvent]) -> rusqlite::Result<Result<Head, StoreError>> {
        self.exec_cached("BEGIN IMMEDIATE")?;
        let (tip, last_micros) = self.tip()?;
        let at = ImportTip {
            head: (tip.position > 0).then_some(Head { position: Position(tip.position), hash: tip.hash }),
            recorded_at_micros: (tip.position > 0).then_some(last_micros),
        };
        let refusal = match crate::import::import(&self.conn, at, events) {
            Ok(Ok(head)) => {
                #[cfg(feature = "fault-injection")]
                if std::mem::take(&mut self.fail_next_commit) {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC),
                        Some("injected fsync failure".to_owned()),
                    ));
                }
                self.exec_cached("COMMIT")?;
                return Ok(Ok(head));
            }
            Ok(Err(refusal)) => refusal,
            Err(e) if is_constraint(&e) => {
                StoreError::ImportRefused { position: tip.position + 1, detail: e.to_string() }
            }
            Err(e) => return Err(e),
        };
        self.exec_cached("ROLLBACK")?;
        Ok(Err(refusal))
    }

    /// One transaction for the whole group. An `Err` means the transaction
    /// failed as a whole and nothing may be acknowledged.
    #[allow(clippy::type_complexity)]
    fn write_group(
        &mut self,
        group: &[(PreparedAppend, Reply)],
    ) -> rusqlite::Result<(Vec<Result<AppendResult, StoreError>>, Tip)> {
        self.exec_cached("BEGIN IMMEDIATE")?;
        let (mut tip, last_micros) = self.tip()?;
        // recorded_at never goes backwards in position order, even if the
        // clock does, so "first position at or after a time" is well defined.
        let now = Utc::now().timestamp_micros().max(last_micros);
        let mut outcomes = Vec::with_capacity(group.len());
        for (append, _) in group {
            self.exec_cached("SAVEPOINT append")?;
            let mut next = tip;
            match append_one(&self.conn, append, &mut next, now) {
                Ok(Ok(result)) => {
                    self.exec_cached("RELEASE append")?;
                    tip = next;
                    outcomes.push(Ok(result));
                }
                Ok(Err(refusal)) => {
                    self.exec_cached("ROLLBACK TO append")?;
                    self.exec_cached("RELEASE append")?;
                    outcomes.push(Err(refusal));
                }
                Err(e) if is_constraint(&e) => {
                    self.exec_cached("ROLLBACK TO append")?;
                    self.exec_cached("RELEASE append")?;
                    outcomes.push(Err(StoreError::Database(e.to_string())));
                }
                Err(e) => return Err(e),
            }
        }
        #[cfg(feature = "fault-injection")]
        if std::mem::take(&mut self.fail_next_commit) {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC),
                Some("injected fsync failure".to_owned()),
            ));
        }
        self.exec_cached("COMMIT")?;
        Ok((outcomes, tip))
    }

    /// Runs a parameterless statement kept prepared (transaction control
    /// runs several times per group; parsing it each time shows in profiles).
    fn exec_cached(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// The last stored event's position and hash, and its `recorded_at`.
    fn tip(&self) -> rusqlite::Result<(Tip, i64)> {
        let row = self
            .conn
            .prepare_cached("SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?)))
            .optional()?;
        Ok(match row {
            None => (Tip { position: 0, hash: GENESIS }, i64::MIN),
            Some((position, hash, at)) => {
                let mut h = [0u8; 32];
                let n = hash.len().min(32);
                h[..n].copy_from_slice(&hash[..n]);
                (Tip { position: position as u64, hash: h }, at)
            }
        })
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation))
}

/// Appends one batch inside the open transaction. The outer `Result` is
/// SQLite failing; the inner one is the store refusing the append.
fn append_one(
    conn: &Connection,
    append: &PreparedAppend,
    tip: &mut Tip,
    now_micros: i64,
) -> rusqlite::Result<Result<AppendResult, StoreError>> {
    let mut existing = Vec::with_capacity(append.events.len());
    {
        let mut find = conn.prepare_cached(
            "SELECT position, stream_id, stream_version, event_type, schema_version, data, metadata
             FROM events WHERE event_id = ?1",
        )?;
        for event in &append.events {
            let row = find
                .query_row([event.event_id.as_bytes()], |r| {
                    Ok(Stored {
                        position: r.get::<_, i64>(0)? as u64,
                        stream_id: r.get(1)?,
                        stream_version: r.get::<_, i64>(2)? as u64,
                        event_type: r.get(3)?,
                        schema_version: r.get(4)?,
                        data: r.get(5)?,
                        metadata: r.get(6)?,
                    })
                })
                .optional()?;
            existing.push(row);
        }
    }
    if existing.iter().any(Option::is_some) {
        let existing: Vec<Option<&Stored>> = existing.iter().map(Option::as_ref).collect();
        return Ok(store::prepare::replayed(append, &existing));
    }
    if let Some((command_id, fingerprint)) = &append.command
        && let Some(answer) = recorded_command(conn, append, *command_id, fingerprint.as_ref())?
    {
        return Ok(answer);
    }

    let actual: Option<u64> = conn
        .prepare_cached("SELECT max(stream_version) FROM events WHERE stream_id = ?1")?
        .query_row([append.stream_id.as_str()], |r| r.get::<_, Option<i64>>(0))?
        .map(|v| v as u64);
    if !append.expected.admits(actual) {
        return Ok(Err(StoreError::Conflict {
            stream_id: append.stream_id.clone(),
            expected: append.expected,
            actual,
        }));
    }

    let mut insert = conn.prepare_cached(
        "INSERT INTO events (position, stream_id, stream_version, event_id, event_type,
                             schema_version, data, metadata, recorded_at, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let first = tip.position + 1;
    let mut version = actual.map_or(0, |v| v + 1);
    for event in &append.events {
        let position = tip.position + 1;
        let hash = event.chain_hash(&append.stream_id, position, version, now_micros, &tip.hash);
        insert.execute(params![
            position as i64,
            append.stream_id.as_str(),
            version as i64,
            event.event_id.as_bytes(),
            event.event_type,
            event.schema_version,
            event.data_text,
            event.metadata_text,
            now_micros,
            hash,
        ])?;
        *tip = Tip { position, hash };
        version += 1;
    }
    if let Some((command_id, fingerprint)) = &append.command {
        conn.prepare_cached(
            "INSERT INTO commands (command_id, fingerprint, stream_id, first_position, last_position)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            command_id.as_bytes(),
            fingerprint.map(|f| f.0),
            append.stream_id.as_str(),
            first as i64,
            tip.position as i64,
        ])?;
    }
    Ok(Ok(AppendResult {
        first_position: Position(first),
        last_position: Position(tip.position),
        stream_version: version - 1,
        replayed: false,
    }))
}

/// The answer to an append whose command id the log already holds: the
/// original result for a retry of the same request to the same stream,
/// otherwise a refusal. `None` when the command id is new.
fn recorded_command(
    conn: &Connection,
    append: &PreparedAppend,
    command_id: Uuid,
    fingerprint: Option<&Fingerprint>,
) -> rusqlite::Result<Option<Result<AppendResult, StoreError>>> {
    let Some(recorded) = super::read::command(conn, command_id)? else { return Ok(None) };
    if !recorded.is_retry(&append.stream_id, fingerprint) {
        return Ok(Some(Err(StoreError::CommandIdReused { command_id, stream_id: recorded.stream_id })));
    }
    let stream_version: i64 = conn
        .prepare_cached("SELECT stream_version FROM events WHERE position = ?1")?
        .query_row([recorded.last_position.0 as i64], |r| r.get(0))?;
    Ok(Some(Ok(AppendResult {
        first_position: recorded.first_position,
        last_position: recorded.last_position,
        stream_version: stream_version as u64,
        replayed: true,
    })))
}
