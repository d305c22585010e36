//! A command handler whose grant cache is smaller than the grants it serves
//! gives every answer an unbounded one gives (versions, positions,
//! refusals, replays of earlier command ids, reused ids), evicting and
//! reloading, and holds no more events than its limit after each command.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use domain::grant::GrantCommand;
use domain::handler::{CacheStats, CommandResult, Handler, HandlerError, Issued};
use events::{ActorId, GrantId, ProgrammeId};
use store::{EventStore, Fingerprint, Position};
use store_sqlite::SqliteStore;

/// The bounded handler's limit: one small grant fits, two do not.
const LIMIT: usize = 60;
/// Events of each small grant after set-up (award, workstream, line, and
/// expenditures).
const GRANT_EVENTS: u64 = 50;

mod common;
use common::{DAY, award, create_programme, d, line, reverse, spend, workstream};

fn gid(n: usize) -> GrantId {
    GrantId::parse(format!("g-{n}")).unwrap()
}

async fn open(dir: &tempfile::TempDir, name: &str) -> Arc<dyn EventStore> {
    Arc::new(SqliteStore::open(dir.path().join(name)).await.unwrap())
}

fn issued(command: GrantCommand, fingerprint: Option<u8>) -> Issued<GrantCommand> {
    let mut issued = Issued::new(command, ActorId::parse("pm").unwrap(), d(DAY));
    issued.reason = Some("test".into());
    issued.fingerprint = fingerprint.map(|f| Fingerprint([f; 32]));
    issued
}

/// What a client sees of an answer, but the event ids (each log makes its
/// own).
type Seen = Result<(u64, Position, Vec<(String, u64, Position)>, bool), String>;

fn seen(r: &Result<CommandResult, HandlerError>) -> Seen {
    match r {
        Ok(r) => Ok((
            r.version,
            r.position,
            r.events.iter().map(|e| (e.event_type.clone(), e.version, e.position)).collect(),
            r.replayed,
        )),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// The same commands, in the same order, through a bounded handler and an
/// unbounded one, each on its own log.
struct Twins {
    bounded: Handler,
    unbounded: Handler,
    _dir: tempfile::TempDir,
}

impl Twins {
    async fn new(limit: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bounded = Handler::new(open(&dir, "bounded.sqlite").await).with_cache_events_max(limit);
        let unbounded = Handler::new(open(&dir, "unbounded.sqlite").await).with_cache_events_max(usize::MAX);
        let programme = ProgrammeId::parse("p").unwrap();
        let create = create_programme();
        for h in [&bounded, &unbounded] {
            h.execute_programme(&programme, &create).await.unwrap();
        }
        Self { bounded, unbounded, _dir: dir }
    }

    /// Executes on both; the answers must agree, and the bounded cache must
    /// be within its limit.
    async fn run(&self, grant: &GrantId, issued: &Issued<GrantCommand>) -> Result<CommandResult, HandlerError> {
        let bounded = self.bounded.execute(grant, issued).await;
        let unbounded = self.unbounded.execute(grant, issued).await;
        assert_eq!(seen(&bounded), seen(&unbounded), "{} on {grant}", issued.command.name());
        let stats = self.bounded.cache_stats();
        assert!(
            stats.events <= self.bounded.cache_events_max(),
            "{stats:?} after {} on {grant}",
            issued.command.name()
        );
        bounded
    }

    /// Awards grant `n` and records expenditures until it has `events`.
    async fn grant(&self, n: usize, events: u64) -> Vec<(Issued<GrantCommand>, CommandResult)> {
        let (award, workstream, line) = (award(&gid(n)), workstream(), line());
        // Set-up commands carry no fingerprint (as the scenario's do).
        let mut done = Vec::new();
        for command in [award, workstream, line] {
            let issued = issued(command, None);
            done.push((issued.clone(), self.run(&gid(n), &issued).await.unwrap()));
        }
        let mut version = done.last().unwrap().1.version;
        while version + 1 < events {
            let issued = issued(spend(&format!("S-{version}")), Some(1));
            let result = self.run(&gid(n), &issued).await.unwrap();
            version = result.version;
            done.push((issued, result));
        }
        assert_eq!(version + 1, events);
        done
    }
}

fn replay(first: &CommandResult) -> CommandResult {
    CommandResult { replayed: true, ..first.clone() }
}

#[tokio::test]
async fn a_cache_smaller_than_the_grants_answers_as_an_unbounded_one() {
    let t = Twins::new(LIMIT).await;
    let mut history = Vec::new();
    for n in 0..3 {
        history.push(t.grant(n, GRANT_EVENTS).await);
    }
    for round in 0..4 {
        for n in 0..3 {
            let g = gid(n);
            // A new expenditure, accepted; the same one again under a new
            // id, refused; a reversal that needs the expenditure known.
            let id = format!("R{round}");
            let first = t.run(&g, &issued(spend(&id), Some(2))).await.unwrap();
            assert!(!first.replayed);
            let duplicate = t.run(&g, &issued(spend(&id), Some(2))).await;
            assert!(matches!(duplicate, Err(HandlerError::Domain(_))), "{duplicate:?}");
            t.run(&g, &issued(reverse(&id), Some(3))).await.unwrap();
            // Only the grant just used fits: every other one was evicted.
            assert_eq!(t.bounded.cache_stats().grants, 1);
            // Retries of the previous grant's earlier commands (it was
            // evicted): the first answer again, or a reused id.
            let previous = &history[(n + 2) % 3];
            for (issued, first) in [&previous[0], &previous[round + 3]] {
                let again = t.run(&gid((n + 2) % 3), issued).await.unwrap();
                assert_eq!(again, replay(first), "a retry after eviction answers the first result");
                let mut other = issued.clone();
                other.fingerprint = Some(Fingerprint([9; 32]));
                let r = t.run(&gid((n + 2) % 3), &other).await;
                if issued.fingerprint.is_some() {
                    let id = issued.command_id;
                    assert!(matches!(r, Err(HandlerError::CommandReused { command_id }) if command_id == id), "{r:?}");
                } else {
                    // Recorded without a fingerprint: matched by its grant alone.
                    assert_eq!(r.unwrap(), replay(first));
                }
            }
        }
    }
}

#[tokio::test]
async fn a_grant_larger_than_the_limit_works_and_is_not_kept() {
    let t = Twins::new(LIMIT).await;
    t.grant(0, GRANT_EVENTS).await;
    let big = t.grant(1, 2 * LIMIT as u64).await;
    assert_eq!(t.bounded.cache_stats(), CacheStats::default(), "the big grant went after its last command");
    for round in 0..3 {
        let id = format!("B{round}");
        t.run(&gid(1), &issued(spend(&id), Some(2))).await.unwrap();
        assert_eq!(t.bounded.cache_stats(), CacheStats::default());
        t.run(&gid(1), &issued(reverse(&id), Some(2))).await.unwrap();
        let (retry, first) = &big[3 + round];
        assert_eq!(t.run(&gid(1), retry).await.unwrap(), replay(first));
        // A small grant is kept again.
        t.run(&gid(0), &issued(spend(&id), Some(2))).await.unwrap();
        assert_eq!(t.bounded.cache_stats(), CacheStats { events: GRANT_EVENTS as usize + round + 1, grants: 1 });
    }
    let (state, version) = t.bounded.grant(&gid(1)).await.unwrap();
    assert_eq!(version, Some(2 * LIMIT as u64 + 5));
    assert_eq!(state.expenditures.len(), 2 * LIMIT);
}

/// Many tasks at once on grants that do not all fit: each records an
/// expenditure and then reverses it, which a stale copy of the grant would
/// refuse as unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_an_evicting_cache_never_see_a_stale_grant() {
    let t = Twins::new(30).await;
    for n in 0..3 {
        t.grant(n, 25).await;
    }
    let handler = Arc::new(t.bounded);
    let mut tasks = Vec::new();
    for task in 0..24 {
        let handler = Arc::clone(&handler);
        tasks.push(tokio::spawn(async move {
            let g = gid(task % 3);
            for k in 0..5 {
                let id = format!("C{task}-{k}");
                handler.execute(&g, &issued(spend(&id), Some(1))).await.unwrap();
                handler.execute(&g, &issued(reverse(&id), Some(1))).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = handler.cache_stats();
    assert!(stats.events <= 30, "{stats:?}");
    for n in 0..3 {
        let (state, version) = handler.grant(&gid(n)).await.unwrap();
        assert_eq!(version, Some(24 + 8 * 5 * 2));
        assert_eq!(state.expenditures.values().filter(|x| x.reversed).count(), 8 * 5);
    }
}

#[tokio::test]
async fn a_command_id_of_an_evicted_grant_used_on_another_grant_is_reused() {
    let t = Twins::new(LIMIT).await;
    let first = t.grant(0, GRANT_EVENTS).await;
    t.grant(1, GRANT_EVENTS).await;
    assert_eq!(t.bounded.cache_stats().grants, 1, "grant 0 was evicted");
    let (issued, _) = &first[5];
    let r = t.run(&gid(1), issued).await;
    assert!(matches!(r, Err(HandlerError::CommandReused { command_id }) if command_id == issued.command_id), "{r:?}");
}
