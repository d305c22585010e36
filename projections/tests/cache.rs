//! The ledgers in memory are a cache bounded by a number of facts: with a
//! limit far smaller than the data, every grant's views are still the
//! log's (ledgers are evicted and read again from the file), the portfolio
//! is the fold of all its grants, the cache stays within its limit while
//! every grant is read in turn, and a restart reads no ledger until one is
//! asked for. Real SQLite files throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use domain::grant::{AwardGrant, GrantCommand};
use domain::handler::{Handler, Issued};
use domain::programme::ProgrammeCommand;
use events::{
    ActorId, CategoryCode, Currency, ExpenditureId, GrantId, LineId, Money, ProgrammeId, RuleSetId, WorkstreamCode,
};
use projections::db::Models;
use projections::{Opened, Projector, budget, portfolio, timeline};
use rust_decimal::Decimal;
use store::{EventStore, Position};

const WAIT: Duration = Duration::from_secs(60);
const GRANTS: usize = 12;
const EXPENDITURES: usize = 20;
/// Facts of one grant: header, workstream, line and its expenditures.
const GRANT_FACTS: usize = 3 + EXPENDITURES;
/// Room for three grants of the twelve.
const LIMIT: usize = 3 * GRANT_FACTS + 5;

fn day(n: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).unwrap().checked_add_days(chrono::Days::new(n)).unwrap()
}

fn programme(p: usize) -> ProgrammeId {
    ProgrammeId::parse(format!("prog-{p}")).unwrap()
}

fn grant(g: usize) -> GrantId {
    GrantId::parse(format!("g-{g:02}")).unwrap()
}

fn eur(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::EUR).unwrap()
}

fn actor(name: &str) -> ActorId {
    ActorId::parse(name).unwrap()
}

async fn award(handler: &Handler, g: usize) {
    let award = AwardGrant {
        grant_id: grant(g),
        programme_id: programme(g % 2),
        funder: "FNR".into(),
        title: format!("Grant {g}"),
        acronym: format!("G{g}"),
        beneficiary: "org".into(),
        award: eur(100_000_000),
        start: day(0),
        end: day(1000),
        rule_set: RuleSetId::parse("FNR-2022").unwrap(),
        indirect_rate: None,
    };
    let steps = [
        (actor("fo"), GrantCommand::Award(award)),
        (
            actor("pm"),
            GrantCommand::DefineWorkstream {
                code: WorkstreamCode::parse("WS1").unwrap(),
                title: "Work".into(),
                lead: None,
            },
        ),
        (
            actor("pm"),
            GrantCommand::OpenBudgetLine {
                workstream: WorkstreamCode::parse("WS1").unwrap(),
                category: CategoryCode::parse("PER").unwrap(),
                amount: eur(50_000_000),
            },
        ),
    ];
    for (who, command) in steps {
        handler.execute(&grant(g), &Issued::new(command, who, day(0)).effective(day(0))).await.unwrap();
    }
}

async fn spend(handler: &Handler, g: usize, i: usize) {
    let command = GrantCommand::RecordExpenditure {
        expenditure_id: ExpenditureId::parse(format!("E{i}")).unwrap(),
        line: LineId::parse("WS1-PER").unwrap(),
        amount: eur(100 + (g * 37 + i * 11) as i64),
        conversion: None,
        incurred_on: day(1 + i as u64),
        supplier: "sup".into(),
        invoice: format!("INV-{g}-{i}"),
        commitment: None,
        correction_of: None,
    };
    handler.execute(&grant(g), &Issued::new(command, actor("pm"), day(400))).await.unwrap();
}

/// Two programmes, twelve grants, their expenditures interleaved so that
/// every page of the log touches many grants.
async fn build(handler: &Handler, rounds: std::ops::Range<usize>) {
    if rounds.start == 0 {
        for p in 0..2 {
            let create = ProgrammeCommand::Create { programme_id: programme(p), name: format!("Programme {p}") };
            handler.execute_programme(&programme(p), &Issued::new(create, actor("admin"), day(0))).await.unwrap();
        }
        for g in 0..GRANTS {
            award(handler, g).await;
        }
    }
    for i in rounds {
        for g in 0..GRANTS {
            spend(handler, g, i).await;
        }
    }
}

async fn head(store: &dyn EventStore) -> u64 {
    store.head().await.unwrap().map_or(0, |h| h.position.0)
}

async fn truth(store: &dyn EventStore) -> Models {
    let mut models = Models::default();
    loop {
        let page = store.read_all(Position(models.position), store::READ_EVENTS_MAX).await.unwrap();
        if page.is_empty() {
            return models;
        }
        for e in &page {
            models.apply(e).unwrap();
        }
    }
}

/// Every grant's budget and timeline, and both portfolios, equal the log's;
/// the cache is within its limit after each read.
async fn assert_views_are_the_logs(p: &Projector, truth: &Models) {
    let today = day(500);
    for g in 0..GRANTS {
        let live = p.ledger(&grant(g)).await.unwrap().expect("every grant is held");
        let want = &truth.ledgers[&grant(g)];
        assert_eq!(*live, *want, "grant {g}");
        assert_eq!(budget(&live, Some(day(10)), today).unwrap(), budget(want, Some(day(10)), today).unwrap());
        assert_eq!(timeline(&live, None, today).unwrap(), timeline(want, None, today).unwrap());
        let stats = p.cache_stats();
        assert!(stats.facts <= LIMIT, "after reading grant {g} the cache holds {} facts: {stats:?}", stats.facts);
    }
    for prog in 0..2 {
        let live = p.programme_ledgers(&programme(prog)).await.unwrap();
        let want: Vec<_> =
            truth.ledgers.values().filter(|l| l.grant.as_ref().unwrap().programme == programme(prog)).collect();
        assert_eq!(live.len(), GRANTS / 2);
        assert_eq!(
            portfolio(&programme(prog), live.iter().map(Arc::as_ref), None, today).unwrap(),
            portfolio(&programme(prog), want.into_iter(), None, today).unwrap(),
            "programme {prog}"
        );
        assert!(p.cache_stats().facts <= LIMIT, "{:?}", p.cache_stats());
    }
    assert!(p.ledger(&GrantId::parse("g-none").unwrap()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_cache_smaller_than_the_views_still_serves_every_grant_as_the_log_says() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    let handler = Handler::new(Arc::clone(&store));
    build(&handler, 0..EXPENDITURES).await;
    let path = dir.path().join("views.sqlite");

    // Catching up from nothing with room for three grants of twelve.
    let p = Projector::start_with(Arc::clone(&store), &path, LIMIT).await.unwrap();
    p.wait_for(head(store.as_ref()).await, WAIT).await.unwrap();
    p.wait_committed(head(store.as_ref()).await, WAIT).await.unwrap();
    let truth_now = truth(store.as_ref()).await;
    assert_eq!(p.models().await.unwrap(), truth_now);
    assert_views_are_the_logs(&p, &truth_now).await;
    let stats = p.cache_stats();
    assert!(stats.evictions > 0 && stats.loads > GRANTS as u64, "ledgers went and came back: {stats:?}");
    drop(p);

    // A restart reads no ledger until one is asked for.
    let p = Projector::start_with(Arc::clone(&store), &path, LIMIT).await.unwrap();
    assert!(matches!(p.opened(), Opened::Loaded { .. }), "{:?}", p.opened());
    assert_eq!(p.cache_stats().ledgers, 0, "the start read ledgers: {:?}", p.cache_stats());
    assert_views_are_the_logs(&p, &truth_now).await;

    // New events on grants in and out of the cache.
    build(&handler, EXPENDITURES..EXPENDITURES + 2).await;
    p.wait_for(head(store.as_ref()).await, WAIT).await.unwrap();
    let truth_later = truth(store.as_ref()).await;
    assert_views_are_the_logs(&p, &truth_later).await;
    p.wait_committed(head(store.as_ref()).await, WAIT).await.unwrap();
    assert!(p.cache_stats().facts <= LIMIT, "{:?}", p.cache_stats());
}

/// Readers loading ledgers while the follower applies and the writer
/// commits: no load may put back an older copy of a ledger.
#[tokio::test]
async fn loads_racing_the_follower_and_the_writer_never_keep_an_older_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    let handler = Handler::new(Arc::clone(&store));
    build(&handler, 0..2).await;
    // Room for about one grant: nearly every read is a load.
    let p = Arc::new(Projector::start_with(Arc::clone(&store), dir.path().join("views.sqlite"), 8).await.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (p, stop) = (Arc::clone(&p), Arc::clone(&stop));
        readers.push(tokio::spawn(async move {
            let mut n = r;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = p.ledger(&grant(n % GRANTS)).await.unwrap();
                n += 3;
                tokio::task::yield_now().await;
            }
        }));
    }
    for round in 2..20 {
        build(&handler, round..round + 1).await;
        p.wait_for(head(store.as_ref()).await, WAIT).await.unwrap();
        let want = truth(store.as_ref()).await;
        for g in 0..GRANTS {
            let live = p.ledger(&grant(g)).await.unwrap().unwrap();
            assert_eq!(*live, want.ledgers[&grant(g)], "round {round}, grant {g}: an older ledger is served");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}
