//! The command handler: the one place where the domain meets the event log.
//!
//! For a grant command it takes the grant's state from an in-memory cache
//! (loaded from the log once, then kept current with the events this
//! process appends, never replayed per command), decides, and appends with
//! the exact expected version. On a version conflict (another writer got
//! there first) it reads only the events it has not seen, decides again, and
//! retries, a bounded number of times.
//!
//! On a log other processes append to (PostgreSQL shared by several
//! servers, [`Handler::shared`]), the cache can be behind the log. An
//! accepted command is safe (its append names the version it was decided
//! on, and a grant that moved on makes it a conflict, decided again), but a
//! command refused on stale state would be refused falsely: such a handler
//! reads the grant's new events before it gives any refusal, and decides
//! again when there were some. Reads of a grant ([`Handler::grant`]) catch
//! up first.
//!
//! Commands on one grant are pipelined ([`Handler::new`]): a command is
//! decided, its append queued in the log's order
//! ([`EventStore::queue_append`]) and the grant let go before the append is
//! durable, with the cached state showing what the log will hold once it
//! is. The next command on the grant is decided on that state and queued
//! behind it, expecting the version it will produce, so one grant's
//! commands share a group commit instead of each waiting for the one
//! before to be made durable. What a client hears stays true:
//!
//! - an acceptance is answered only once its own append is durable;
//! - an append queued behind one that fails expects a version the log
//!   does not reach, so the store refuses it as a conflict, and it is
//!   decided again on what the log holds (the entry forgets its state on a
//!   failed answer, and the command waits for every queued append to
//!   answer first);
//! - a refusal (a rule, `If-Match`, a reused command id) is given only
//!   when no append queued on the grant is unanswered: otherwise the
//!   handler waits for them, holding the grant so nothing more is queued,
//!   and decides again;
//! - [`Handler::grant`] answers the log's state, and [`Handler::awarded`]
//!   shows a grant only once its award is recorded.
//!
//! This rests on the handler being the only writer of its grants' streams
//! (the server takes its data directory's lock, and nothing else in it
//! appends to a grant): an append expecting a version only predicts the
//! events before it, and another writer's events at that version would
//! pass the check. A handler over a log other processes append to
//! ([`Handler::shared`], PostgreSQL) does not pipeline: it holds the grant
//! until the append has answered, as before.
//!
//! Command ids are idempotent, and the log decides: a command id has at most
//! one effect in the whole log (the store's rule). The same command id with
//! the same request fingerprint returns the first result (`replayed`) and
//! records nothing; with another fingerprint, or for another grant, it is
//! refused with [`HandlerError::CommandReused`], before anything is decided.
//!
//! The cache is bounded by [`GRANT_CACHE_EVENTS_MAX`] events (or the limit
//! given to [`Handler::with_cache_events_max`]), counted as the events
//! folded into each cached state; the grants used least recently go first
//! (see [`cache`] for why an eviction never leaves a stale copy in use).
//! A grant's command ids go with it: the cache keeps, per command, only its
//! fingerprint and where its events are (what reloading the grant rebuilds
//! from the events' metadata), and a retry's first result is read back from
//! the log. So an evicted grant answers retries exactly as a cached one.
//!
//! Why a refusal is never given on stale state by a [`Handler::new`]
//! handler, eviction or not: a grant has at most one live entry, so every
//! command of this process on a grant decides on the one state its appends
//! keep current; an entry made after an eviction is loaded from the log,
//! after every append through the evicted one has returned. (An append
//! whose outcome is unknown resets the entry in place, so whoever waits for
//! it reads the log again; an append whose caller was cancelled while it
//! was in flight leaves the entry marked to read what followed its version;
//! a read that failed half way empties it.)

mod cache;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use events::{ActorId, Envelope, EventContext, GrantEvent, GrantId, ProgrammeEvent, ProgrammeId, Stored};
use store::{
    AppendResult, Direction, EventMetadata, EventStore, ExpectedVersion, Fingerprint, NewEvent, Position,
    READ_EVENTS_MAX, RecordedCommand, RecordedEvent, StoreError, StreamId, StreamStart,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::Context;
use crate::error::DomainError;
use crate::grant::{GrantCommand, GrantState, decide};
use crate::programme::{self, ProgrammeCommand, ProgrammeState};

pub use cache::CacheStats;
use cache::{GrantCache, Lease, Pinned, Weigh};

/// How many times a command is decided again after losing a race.
pub const CONFLICT_RETRIES_MAX: usize = 5;

/// The most events the grant cache holds by default (the sum over cached
/// grants of the events folded into each state). A cached event costs some
/// hundreds of bytes (its share of the state, and of its command's record),
/// so this is a few hundred MiB: enough to keep the grants of a busy server
/// warm (200 grants of 10,000 events each), while a log of ten million
/// events is not held whole. A grant is loaded again by replaying its
/// stream, which costs about a millisecond per thousand events.
pub const GRANT_CACHE_EVENTS_MAX: usize = 2_000_000;

/// A command as issued: who, when, why, and under which id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued<C> {
    /// The command.
    pub command: C,
    /// Its id: issuing the same id again records nothing.
    pub command_id: Uuid,
    /// Who issues it.
    pub actor: ActorId,
    /// Why.
    pub reason: Option<String>,
    /// The fact's business date; `None` means `today`. An expenditure's is
    /// always its `incurred_on` ([`GrantCommand::effective_date`]).
    pub effective_date: Option<NaiveDate>,
    /// The calendar day it is issued (UTC), from the caller's clock.
    pub today: NaiveDate,
    /// The stream version the caller last saw (`If-Match`), if it insists.
    pub expected_version: Option<u64>,
    /// The user request it belongs to.
    pub correlation_id: Option<Uuid>,
    /// What caused it.
    pub causation_id: Option<Uuid>,
    /// What the request was (method, route, body digest), recorded with the
    /// command id so that a retry is told from another request.
    pub fingerprint: Option<Fingerprint>,
}

impl<C> Issued<C> {
    /// A command with a fresh id, effective today.
    pub fn new(command: C, actor: ActorId, today: NaiveDate) -> Self {
        Self {
            command,
            command_id: Uuid::now_v7(),
            actor,
            reason: None,
            effective_date: None,
            today,
            expected_version: None,
            correlation_id: None,
            causation_id: None,
            fingerprint: None,
        }
    }

    /// The same command with a reason.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The same command with a business date.
    pub fn effective(mut self, date: NaiveDate) -> Self {
        self.effective_date = Some(date);
        self
    }
}

/// One event a command recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its id.
    pub id: Uuid,
    /// Its type's wire name.
    pub event_type: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its position in the log.
    pub position: Position,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// The stream written.
    pub stream: StreamId,
    /// The stream's version after the command.
    pub version: u64,
    /// The log position of the command's last event.
    pub position: Position,
    /// The events recorded.
    pub events: Vec<Appended>,
    /// True when the command had been recorded before: this is its first
    /// result again, and nothing new was recorded.
    pub replayed: bool,
}

/// Why a command was not carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// A rule refused it.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The caller's `expected_version` is not the stream's version.
    #[error("the grant is at version {actual:?}, not {expected}")]
    VersionMismatch {
        /// What the caller expected.
        expected: u64,
        /// The stream's version.
        actual: Option<u64>,
    },
    /// Other writers kept winning the race.
    #[error("gave up after {attempts} conflicting attempts")]
    TooManyConflicts {
        /// Attempts made.
        attempts: usize,
    },
    /// The command id is recorded already for another request (another
    /// fingerprint, or another grant or programme).
    #[error("command {command_id} is already recorded for another request")]
    CommandReused {
        /// The command id.
        command_id: Uuid,
    },
    /// A stored event could not be read.
    #[error("stored event at position {position} cannot be read: {detail}")]
    Unreadable {
        /// Where.
        position: Position,
        /// Why.
        detail: String,
    },
    /// The event log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`Handler::take_answer_held`] found.
enum Held {
    /// The command's answer.
    Answered(CommandResult),
    /// Another writer got there first: decide again (a lost race).
    Raced,
    /// The command was recorded before: decide again, which answers it
    /// from the log.
    ReadAgain,
}

/// The stream of a grant (its name from [`events::streams`]).
pub fn grant_stream(id: &GrantId) -> Result<StreamId, StoreError> {
    StreamId::parse(events::streams::grant_name(id))
}

/// The stream of a programme (its name from [`events::streams`]).
pub fn programme_stream(id: &ProgrammeId) -> Result<StreamId, StoreError> {
    StreamId::parse(events::streams::programme_name(id))
}

/// Reads a stored grant event with its envelope (the rules in
/// [`events::stored`], shared with the projections).
pub fn decode_grant_event(e: &RecordedEvent) -> Result<Envelope<GrantEvent>, HandlerError> {
    stored(e).grant_event().map_err(|x| HandlerError::Unreadable { position: e.position, detail: x.to_string() })
}

/// A recorded event's parts as [`events::stored`] reads them.
fn stored(e: &RecordedEvent) -> Stored<'_> {
    let m = &e.metadata;
    Stored {
        event_type: &e.event_type,
        schema_version: e.schema_version,
        data: e.data.get(),
        recorded_at: e.recorded_at,
        actor: &m.actor,
        effective_date: m.effective_date,
        reason: m.reason.as_deref(),
        command_id: m.command_id,
        correlation_id: m.correlation_id,
        causation_id: m.causation_id,
    }
}

fn encode(event_type: &str, version: u32, data: serde_json::Value, c: &EventContext) -> NewEvent {
    NewEvent::new(
        event_type,
        version,
        data,
        EventMetadata {
            actor: c.actor.to_string(),
            effective_date: Some(c.effective_date),
            reason: c.reason.clone(),
            command_id: Some(c.command_id),
            correlation_id: c.correlation_id,
            causation_id: c.causation_id,
            fingerprint: None,
        },
    )
}

/// A command recorded on a cached grant: what tells a retry from another
/// request, and where its events are (its first result is read back from
/// there, so the cache holds no copy of it); `at` is `None` while its
/// append is queued and not answered.
#[derive(Debug, Clone, Copy)]
struct Done {
    fingerprint: Option<Fingerprint>,
    at: Option<(Position, Position)>,
}

impl Done {
    /// Whether a request with `fingerprint` is a retry of this command (the
    /// store's `is_retry` rule, on the grant's own stream).
    fn is_retry(&self, fingerprint: Option<&Fingerprint>) -> bool {
        self.fingerprint.is_none_or(|f| Some(&f) == fingerprint)
    }
}

/// A grant as the handler keeps it.
///
/// With appends queued and not answered (see [`Flight`]), `state` and
/// `version` are what the log will hold once they are recorded: the next
/// command is decided on that, and its append expects that version, so it
/// is refused as a conflict (and decided again) if one of them fails.
#[derive(Debug, Default)]
struct CachedGrant {
    state: GrantState,
    version: Option<u64>,
    /// The commands recorded on this grant, by command id.
    commands: HashMap<Uuid, Done>,
    /// Whether it was loaded from the log (a fresh entry is not).
    loaded: bool,
    /// Whether the grant's first event (its award) is known to be in the
    /// log, not only queued.
    confirmed: bool,
    /// The answers of its queued appends; kept when the rest is forgotten.
    flight: Arc<Flight>,
}

impl CachedGrant {
    /// Forgets what is cached (in place, keeping the queued appends'
    /// count), so the next use reads the grant from the log.
    fn forget(&mut self) {
        let flight = Arc::clone(&self.flight);
        *self = CachedGrant { flight, ..CachedGrant::default() };
    }

    /// Takes in the answers that have come since the last call: the
    /// places of the commands recorded, or, when an append failed, forgets
    /// the state (it holds events the log does not). Whether every queued
    /// append has answered, so that the state is the log's.
    fn take_in(&mut self) -> bool {
        let flight = Arc::clone(&self.flight);
        let mut landed = flight.landed();
        if std::mem::take(&mut landed.failed) {
            landed.recorded.clear();
            self.forget();
        }
        for (id, at) in landed.recorded.drain(..) {
            if let Some(done) = self.commands.get_mut(&id) {
                done.at = Some(at);
            }
            self.confirmed = true;
        }
        landed.queued == 0
    }
}

/// A grant's appends queued and not yet answered. Their answers land here
/// without the grant's lease, so a task that holds it can wait for them;
/// the next holder takes them in ([`CachedGrant::take_in`]).
#[derive(Debug, Default)]
struct Flight {
    landed: std::sync::Mutex<Landed>,
    /// Woken when the last queued append has answered.
    drained: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Landed {
    /// Appends queued and not answered.
    queued: usize,
    /// Moves on when an append fails: the answers of appends queued in an
    /// earlier epoch are not taken in (the state they were decided on is
    /// forgotten, and the log is read again).
    epoch: u64,
    /// An append of this epoch failed, or its caller went away before its
    /// answer: the state holds events the log may not.
    failed: bool,
    /// Commands of this epoch recorded, and where their events are.
    recorded: Vec<(Uuid, (Position, Position))>,
}

impl Flight {
    fn landed(&self) -> std::sync::MutexGuard<'_, Landed> {
        self.landed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One queued append of a grant until its answer is taken in. Dropped
/// unanswered (its caller cancelled), it counts as failed: whether it is
/// recorded is then learnt from the log. It holds the grant's entry, so the
/// entry is not evicted while the append is in flight.
struct Queued<'a> {
    flight: Arc<Flight>,
    epoch: u64,
    command_id: Uuid,
    answered: bool,
    _entry: Pinned<'a, CachedGrant>,
}

impl<'a> Queued<'a> {
    fn new(cached: &Lease<'a, CachedGrant>, command_id: Uuid) -> Self {
        let flight = Arc::clone(&cached.flight);
        let epoch = {
            let mut landed = flight.landed();
            landed.queued += 1;
            landed.epoch
        };
        Self { flight, epoch, command_id, answered: false, _entry: cached.pin() }
    }

    /// Records the append's outcome (`None`: unknown).
    fn answer(&mut self, outcome: Option<&Result<AppendResult, StoreError>>) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        let mut landed = self.flight.landed();
        landed.queued = landed.queued.saturating_sub(1);
        if landed.epoch == self.epoch {
            match outcome {
                Some(Ok(a)) if !a.replayed => {
                    landed.recorded.push((self.command_id, (a.first_position, a.last_position)))
                }
                _ => {
                    landed.failed = true;
                    landed.epoch += 1;
                }
            }
        }
        if landed.queued == 0 {
            self.flight.drained.notify_waiters();
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.answer(None);
    }
}

impl Weigh for CachedGrant {
    /// The events folded into the state (its commands are fewer).
    fn weight(&self) -> usize {
        self.version.map_or(0, |v| usize::try_from(v).unwrap_or(usize::MAX).saturating_add(1))
    }
}

/// Executes commands against the log.
pub struct Handler {
    store: Arc<dyn EventStore>,
    grants: GrantCache<CachedGrant>,
    /// Other processes append to the log: catch up before every use.
    shared: bool,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").finish_non_exhaustive()
    }
}

impl Handler {
    /// A handler over `store`, with an empty cache of at most
    /// [`GRANT_CACHE_EVENTS_MAX`] events, pipelining each grant's commands.
    /// It must be the only writer of the grants' streams (see the module
    /// documentation); use [`Handler::shared`] otherwise.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store, grants: GrantCache::new(GRANT_CACHE_EVENTS_MAX), shared: false }
    }

    /// A handler over a log that other processes append to as well: before
    /// refusing a command, and before each read of a grant, it reads the
    /// grant's events this process has not seen.
    pub fn shared(store: Arc<dyn EventStore>) -> Self {
        Self { store, grants: GrantCache::new(GRANT_CACHE_EVENTS_MAX), shared: true }
    }

    /// The same handler with a cache of at most `events_max` events when no
    /// grant is in use. A grant larger than that still works: it is loaded
    /// for each use and not kept.
    pub fn with_cache_events_max(self, events_max: usize) -> Self {
        Self { grants: GrantCache::new(events_max), ..self }
    }

    /// The most events the grant cache holds.
    pub fn cache_events_max(&self) -> usize {
        self.grants.events_max()
    }

    /// How full the grant cache is.
    pub fn cache_stats(&self) -> CacheStats {
        self.grants.stats()
    }

    /// The event log.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The grant's cached entry, locked.
    async fn entry(&self, grant: &GrantId) -> Lease<'_, CachedGrant> {
        self.grants.lease(grant).await
    }

    /// Reads the events of the grant's stream after the cached version.
    ///
    /// On an error the entry is emptied (in place), so the next use reads
    /// the grant from the start: a page applied in part (an event that
    /// cannot be read after some that could) must not leave a state that
    /// lacks events its version claims, nor one that would apply them twice.
    async fn catch_up(&self, stream: &StreamId, cached: &mut CachedGrant) -> Result<(), HandlerError> {
        let read = self.read_new(stream, cached).await;
        if read.is_err() {
            cached.forget();
        }
        read
    }

    async fn read_new(&self, stream: &StreamId, cached: &mut CachedGrant) -> Result<(), HandlerError> {
        loop {
            let from = cached.version.map_or(0, |v| v + 1);
            let page =
                self.store.read_stream(stream, StreamStart::Version(from), Direction::Forward, READ_EVENTS_MAX).await?;
            let full = page.len() == READ_EVENTS_MAX;
            if page.is_empty() {
                break;
            }
            for e in &page {
                let envelope = decode_grant_event(e)?;
                cached.state.apply(&envelope);
                cached.version = Some(e.stream_version);
                let done = cached
                    .commands
                    .entry(envelope.context.command_id)
                    .or_insert(Done { fingerprint: e.metadata.fingerprint, at: None });
                let first = done.at.map_or(e.position, |(first, _)| first);
                done.at = Some((first, e.position));
            }
            if !full {
                break;
            }
        }
        cached.loaded = true;
        cached.confirmed = cached.version.is_some();
        Ok(())
    }

    /// Reads the grant's events this handler has not seen; whether there
    /// were any.
    async fn moved_on(&self, stream: &StreamId, cached: &mut CachedGrant) -> Result<bool, HandlerError> {
        let before = cached.version;
        self.catch_up(stream, cached).await?;
        Ok(cached.version != before)
    }

    /// [`Handler::drain`], then reads the log when the state was forgotten
    /// (an append failed). The state is then the log's.
    async fn settle(&self, stream: &StreamId, cached: &mut Lease<'_, CachedGrant>) -> Result<(), HandlerError> {
        Self::drain(cached).await;
        if !cached.loaded {
            self.catch_up(stream, cached).await?;
        }
        Ok(())
    }

    /// Waits, holding the grant, until every append queued on it has
    /// answered, and takes the answers in.
    async fn drain(cached: &mut Lease<'_, CachedGrant>) {
        loop {
            let flight = Arc::clone(&cached.flight);
            let drained = flight.drained.notified();
            tokio::pin!(drained);
            // Registered before the count is looked at: a last answer in
            // between still wakes it.
            drained.as_mut().enable();
            if cached.take_in() {
                break;
            }
            drained.await;
        }
    }

    /// The grant's current state and version, as the log holds them (after
    /// the appends queued on it have answered).
    pub async fn grant(&self, grant: &GrantId) -> Result<(GrantState, Option<u64>), HandlerError> {
        let stream = grant_stream(grant)?;
        let mut cached = self.entry(grant).await;
        Self::drain(&mut cached).await;
        if !cached.loaded || self.shared {
            self.catch_up(&stream, &mut cached).await?;
        }
        Ok((cached.state.clone(), cached.version))
    }

    /// An awarded grant's header (programme, currency, dates); `None` for a
    /// grant that does not exist, which is then not kept in the cache:
    /// probing ids costs no memory. On a shared log its dates may be behind
    /// another server's amendment; its programme and currency cannot be.
    ///
    /// The header's programme and currency never change after the award;
    /// its dates may include an amendment still being made durable. A
    /// grant whose award is queued and not yet answered is answered once
    /// the award is.
    pub async fn awarded(&self, grant: &GrantId) -> Result<Option<crate::grant::state::Grant>, HandlerError> {
        let stream = grant_stream(grant)?;
        let mut cached = self.entry(grant).await;
        let settled = cached.take_in();
        if !cached.loaded {
            self.catch_up(&stream, &mut cached).await?;
        }
        // Unless the award is known to be in the log, the answer waits
        // for what is queued (an award not made must not be shown).
        if !cached.confirmed && !settled {
            self.settle(&stream, &mut cached).await?;
        }
        // A shared handler need not read the log again once it knows the
        // grant as awarded.
        if self.shared && cached.state.grant.is_none() {
            self.catch_up(&stream, &mut cached).await?;
        }
        Ok(cached.state.grant.clone())
    }

    /// Executes a grant command.
    pub async fn execute(&self, grant: &GrantId, issued: &Issued<GrantCommand>) -> Result<CommandResult, HandlerError> {
        // A span entered across awaits would make the future !Send and
        // mislabel other tasks' logs: instrument the future instead.
        let span = tracing::debug_span!("command", grant = %grant, command = issued.command.name());
        self.execute_in_span(grant, issued).instrument(span).await
    }

    async fn execute_in_span(
        &self,
        grant: &GrantId,
        issued: &Issued<GrantCommand>,
    ) -> Result<CommandResult, HandlerError> {
        let stream = grant_stream(grant)?;
        let (id, fingerprint) = (issued.command_id, issued.fingerprint.as_ref());
        // Decisions made again after a lost race (or, on a shared log,
        // after reading what other servers appended).
        let mut attempts = 0;
        let mut again = || {
            attempts += 1;
            if attempts > CONFLICT_RETRIES_MAX {
                return Err(HandlerError::TooManyConflicts { attempts });
            }
            Ok(())
        };
        // After an append of this command failed, the next decision waits
        // for every append queued on the grant to answer (the entry has
        // forgotten its state, or will once the failure before it lands):
        // deciding again on the log while appends ahead are unanswered
        // would only lose the race to them again.
        let mut settle_first = false;
        loop {
            let mut cached = self.entry(grant).await;
            if std::mem::take(&mut settle_first) {
                self.settle(&stream, &mut cached).await?;
            }
            let (envelopes, new_events) = loop {
                let settled = cached.take_in();
                if !cached.loaded {
                    self.catch_up(&stream, &mut cached).await?;
                }
                if let Some(done) = cached.commands.get(&id).copied() {
                    let Some((first, last)) = done.at else {
                        // Its append is queued: its answer decides.
                        self.settle(&stream, &mut cached).await?;
                        if cached.commands.get(&id).is_some_and(|d| d.at.is_none()) {
                            // Answered, and still without its place (an
                            // answer of an epoch no longer taken in): the
                            // log says where it is, or that it is not.
                            cached.forget();
                        }
                        continue;
                    };
                    if !done.is_retry(fingerprint) {
                        return Err(HandlerError::CommandReused { command_id: id });
                    }
                    return self.read_result(&stream, id, first, last).await;
                }
                match self.prepare(issued, &cached).await {
                    Ok(prepared) => break prepared,
                    // A refusal is given only on what the log holds: while
                    // appends queued on the grant are unanswered, the state
                    // is what they will make it, so wait for them (holding
                    // the grant: nothing more is queued) and decide again.
                    Err(_) if !settled => {
                        self.settle(&stream, &mut cached).await?;
                        continue;
                    }
                    // On a shared log the cache may be behind what other
                    // servers appended: a refusal is given only on the log's
                    // current state, so read what is new and decide again.
                    // (An acceptance needs no read: the append's expected
                    // version refuses it if the grant moved on.)
                    Err(_) if self.shared && self.moved_on(&stream, &mut cached).await? => again()?,
                    // A keyed command refused here may reuse a key the log
                    // holds (for another grant, or recorded here by another
                    // writer): that answer comes before the refusal. On the
                    // success path the append itself enforces the rule, so
                    // no read is spent.
                    Err(refusal) if issued.fingerprint.is_some() => {
                        if !self.recorded_elsewhere(&stream, &mut cached, id).await? {
                            return Err(refusal);
                        }
                        again()?;
                    }
                    Err(refusal) => return Err(refusal),
                }
            };
            let ids: Vec<Uuid> = new_events.iter().map(|e| e.event_id).collect();
            let expected = cached.version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            // A store that makes the whole append in `queue_append` (the
            // trait's default) may commit it even if this request is
            // cancelled while it waits (a client gone, a timeout): until it
            // has answered, the next use reads the log from the cached
            // version rather than decide on the entry as it is.
            cached.loaded = false;
            let answer = self.store.queue_append(&stream, expected, new_events).await;
            if self.shared {
                // Other servers append to this log too: a queued append
                // that fails says nothing of what they recorded in its
                // place, so the next command is decided only once this one
                // has answered, the grant held meanwhile.
                let outcome = match answer {
                    Ok(answer) => answer.await,
                    Err(e) => Err(e),
                };
                cached.loaded = true;
                match self.take_answer_held(&stream, &mut cached, issued, outcome, &ids, &envelopes).await? {
                    Held::Answered(result) => return Ok(result),
                    Held::Raced => again()?,
                    Held::ReadAgain => {}
                }
                continue;
            }
            cached.loaded = true;
            // An error: nothing was queued, and the entry is as it was.
            let answer = answer?;
            // Pipelined: the entry now shows what the log will hold once
            // the append is recorded, and is let go, so the next command on
            // the grant is decided and queued while this one is being made
            // durable (in the same group commit, often).
            let mut queued = Queued::new(&cached, id);
            for e in &envelopes {
                cached.state.apply(e);
            }
            let added = ids.len() as u64;
            cached.version = cached.version.map_or(added.checked_sub(1), |v| Some(v + added));
            cached.commands.insert(id, Done { fingerprint: issued.fingerprint, at: None });
            drop(cached);
            let outcome = answer.await;
            queued.answer(Some(&outcome));
            match outcome {
                Ok(appended) if !appended.replayed => return Ok(result_of(&stream, &appended, &ids, &envelopes)),
                // Recorded before, by a request this entry did not know of:
                // the entry forgets its state and reads the log, where the
                // command's first result is found.
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => {
                    tracing::debug!("lost a race for the grant; deciding again on the log");
                    again()?;
                }
                Err(StoreError::CommandIdReused { .. }) => return Err(HandlerError::CommandReused { command_id: id }),
                // Recorded or not (unknown): the entry forgets its state.
                Err(e) => return Err(e.into()),
            }
            settle_first = true;
        }
    }

    /// Takes in an append's outcome with the grant held (a shared log's
    /// handler, which does not pipeline): the command's answer, or what to
    /// do before deciding again.
    async fn take_answer_held(
        &self,
        stream: &StreamId,
        cached: &mut CachedGrant,
        issued: &Issued<GrantCommand>,
        outcome: Result<AppendResult, StoreError>,
        ids: &[Uuid],
        envelopes: &[Envelope<GrantEvent>],
    ) -> Result<Held, HandlerError> {
        let id = issued.command_id;
        match outcome {
            Ok(appended) if appended.replayed => {
                // Recorded by another writer since this grant was read: the
                // log has it, so read it and answer from it.
                self.catch_up(stream, cached).await?;
                Ok(Held::ReadAgain)
            }
            Ok(appended) => {
                for e in envelopes {
                    cached.state.apply(e);
                }
                cached.version = Some(appended.stream_version);
                cached.confirmed = true;
                let at = Some((appended.first_position, appended.last_position));
                cached.commands.insert(id, Done { fingerprint: issued.fingerprint, at });
                Ok(Held::Answered(result_of(stream, &appended, ids, envelopes)))
            }
            Err(StoreError::Conflict { .. }) => {
                tracing::debug!("lost a race for the grant; catching up");
                self.catch_up(stream, cached).await?;
                Ok(Held::Raced)
            }
            Err(StoreError::CommandIdReused { .. }) => Err(HandlerError::CommandReused { command_id: id }),
            Err(e) => {
                // Whether the append committed is unknown: forget the cached
                // grant so the next command reads the truth. (In place: a
                // task waiting for this entry must not decide on what it
                // held.)
                cached.forget();
                Err(e.into())
            }
        }
    }

    /// Refuses a command id the log holds for another stream; catches up
    /// (and says so) when it holds it for this one, recorded by another
    /// writer; `false` when the log does not hold it.
    async fn recorded_elsewhere(
        &self,
        stream: &StreamId,
        cached: &mut CachedGrant,
        command_id: Uuid,
    ) -> Result<bool, HandlerError> {
        match self.store.command(command_id).await? {
            Some(recorded) if &recorded.stream_id != stream => Err(HandlerError::CommandReused { command_id }),
            Some(_) => self.catch_up(stream, cached).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Decides `issued` against the cached grant and encodes its events:
    /// the events with their envelopes, or why the command is refused.
    async fn prepare(
        &self,
        issued: &Issued<GrantCommand>,
        cached: &CachedGrant,
    ) -> Result<(Vec<Envelope<GrantEvent>>, Vec<NewEvent>), HandlerError> {
        if let Some(expected) = issued.expected_version
            && cached.version != Some(expected)
        {
            return Err(HandlerError::VersionMismatch { expected, actual: cached.version });
        }
        let ctx = self.context(issued, &cached.state).await?;
        let decided = decide(&cached.state, &issued.command, &ctx)?;
        let envelopes: Vec<Envelope<GrantEvent>> =
            decided.into_iter().map(|event| Envelope { event, context: event_context(issued, &ctx) }).collect();
        let mut new_events = Vec::with_capacity(envelopes.len());
        for e in &envelopes {
            let data = e
                .event
                .to_json()
                .map_err(|x| HandlerError::Unreadable { position: Position::START, detail: x.to_string() })?;
            let mut event = encode(e.event.event_type(), e.event.schema_version(), data, &e.context);
            event.metadata.fingerprint = issued.fingerprint;
            new_events.push(event);
        }
        Ok((envelopes, new_events))
    }

    async fn context(&self, issued: &Issued<GrantCommand>, state: &GrantState) -> Result<Context, HandlerError> {
        let programme_exists = match &issued.command {
            GrantCommand::Award(a) if state.grant.is_none() => {
                self.store.stream_version(&programme_stream(&a.programme_id)?).await?.is_some()
            }
            _ => true,
        };
        let effective_date = issued.command.effective_date(issued.effective_date, issued.today)?;
        Ok(Context {
            actor: issued.actor.clone(),
            reason: issued.reason.clone(),
            effective_date,
            today: issued.today,
            programme_exists,
        })
    }

    /// Executes a programme command (programmes are small: loaded each time).
    pub async fn execute_programme(
        &self,
        programme: &ProgrammeId,
        issued: &Issued<ProgrammeCommand>,
    ) -> Result<CommandResult, HandlerError> {
        let stream = programme_stream(programme)?;
        let fingerprint = issued.fingerprint.as_ref();
        if let Some(done) = self.store.command(issued.command_id).await? {
            return self.answer_from_log(&done, &stream, fingerprint).await;
        }
        let recorded = self.store.read_stream(&stream, StreamStart::End, Direction::Forward, READ_EVENTS_MAX).await?;
        let mut state = ProgrammeState::default();
        for e in &recorded {
            let event = ProgrammeEvent::decode(&e.event_type, e.schema_version, e.data.get())
                .map_err(|x| HandlerError::Unreadable { position: e.position, detail: x.to_string() })?;
            state = state.evolve(&event);
        }
        let decided = programme::decide(&state, &issued.command)?;
        let ctx = EventContext {
            effective_date: issued.effective_date.unwrap_or(issued.today),
            actor: issued.actor.clone(),
            reason: issued.reason.clone(),
            command_id: issued.command_id,
            correlation_id: issued.correlation_id,
            causation_id: issued.causation_id,
        };
        let mut new_events = Vec::new();
        for e in &decided {
            let data = e
                .to_json()
                .map_err(|x| HandlerError::Unreadable { position: Position::START, detail: x.to_string() })?;
            let mut event = encode(e.event_type(), e.schema_version(), data, &ctx);
            event.metadata.fingerprint = issued.fingerprint;
            new_events.push(event);
        }
        let ids: Vec<Uuid> = new_events.iter().map(|e| e.event_id).collect();
        let expected = recorded.last().map_or(ExpectedVersion::NoStream, |e| ExpectedVersion::Exact(e.stream_version));
        match self.store.append(&stream, expected, new_events).await {
            Ok(appended) if appended.replayed => match self.store.command(issued.command_id).await? {
                Some(done) => self.answer_from_log(&done, &stream, fingerprint).await,
                None => Err(HandlerError::Unreadable {
                    position: appended.last_position,
                    detail: format!(
                        "the log answered command {} as recorded but holds no record of it",
                        ctx.command_id
                    ),
                }),
            },
            Ok(appended) => {
                let types: Vec<&str> = decided.iter().map(ProgrammeEvent::event_type).collect();
                Ok(summarise(&stream, &appended, &ids, &types))
            }
            Err(StoreError::CommandIdReused { command_id, .. }) => Err(HandlerError::CommandReused { command_id }),
            Err(e) => Err(e.into()),
        }
    }

    /// The first result of a command the log holds, read from the log, for
    /// a retry of the same request to `stream`; a refusal otherwise.
    async fn answer_from_log(
        &self,
        done: &RecordedCommand,
        stream: &StreamId,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<CommandResult, HandlerError> {
        if !done.is_retry(stream, fingerprint) {
            return Err(HandlerError::CommandReused { command_id: done.command_id });
        }
        self.read_result(stream, done.command_id, done.first_position, done.last_position).await
    }

    /// A recorded command's first result, read from the log: its events are
    /// the ones from `first` to `last`, on `stream`.
    async fn read_result(
        &self,
        stream: &StreamId,
        command_id: Uuid,
        first: Position,
        last: Position,
    ) -> Result<CommandResult, HandlerError> {
        let count = usize::try_from((last.0 + 1).saturating_sub(first.0)).unwrap_or(usize::MAX);
        let before = Position(first.0.saturating_sub(1));
        let events = self.store.read_all(before, count).await?;
        let found = events.last().filter(|e| e.position == last && events.len() == count);
        let Some(last) = found else {
            return Err(HandlerError::Unreadable {
                position: first,
                detail: format!("the events of command {command_id} are not where the log says"),
            });
        };
        Ok(CommandResult {
            stream: stream.clone(),
            version: last.stream_version,
            position: last.position,
            events: events
                .iter()
                .map(|e| Appended {
                    id: e.event_id,
                    event_type: e.event_type.clone(),
                    version: e.stream_version,
                    position: e.position,
                })
                .collect(),
            replayed: true,
        })
    }
}

fn event_context(issued: &Issued<GrantCommand>, ctx: &Context) -> EventContext {
    EventContext {
        effective_date: ctx.effective_date,
        actor: issued.actor.clone(),
        reason: issued.reason.clone(),
        command_id: issued.command_id,
        correlation_id: issued.correlation_id,
        causation_id: issued.causation_id,
    }
}

fn result_of(
    stream: &StreamId,
    appended: &AppendResult,
    ids: &[Uuid],
    envelopes: &[Envelope<GrantEvent>],
) -> CommandResult {
    let types: Vec<&str> = envelopes.iter().map(|e| e.event.event_type()).collect();
    summarise(stream, appended, ids, &types)
}

fn summarise(stream: &StreamId, appended: &AppendResult, ids: &[Uuid], types: &[&str]) -> CommandResult {
    let first_version = appended.stream_version + 1 - ids.len() as u64;
    let events = ids
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (id, t))| Appended {
            id: *id,
            event_type: (*t).to_owned(),
            version: first_version + i as u64,
            position: Position(appended.first_position.0 + i as u64),
        })
        .collect();
    CommandResult {
        stream: stream.clone(),
        version: appended.stream_version,
        position: appended.last_position,
        events,
        replayed: false,
    }
}
