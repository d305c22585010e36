//! The ledgers in memory are a cache bounded by a number of facts: with a
//! limit far smaller than the data, every grant's views are still the
//! log's (ledgers are evicted and read again from the file), the portfolio
//! is the fold of all its grants, the cache stays within its limit while
//! every grant is read in turn, and a restart reads no ledger until one is
//! asked for. Real SQLite files throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use domain::handler::Handler;
use events::GrantId;
use projections::db::Models;
use projections::{HoldPoint, Opened, Options, Projector, budget, portfolio, portfolio_of, timeline};
use store::EventStore;

mod common;
use common::{build, day, grant, head, programme, spend};

const WAIT: Duration = Duration::from_secs(60);
const GRANTS: usize = 12;
const EXPENDITURES: usize = 20;
/// Facts of one grant: header, workstream, line and its expenditures.
const GRANT_FACTS: usize = 3 + EXPENDITURES;
/// Room for three grants of the twelve.
const LIMIT: usize = 3 * GRANT_FACTS + 5;

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
        // As of every fact, from the standings the projector keeps: no
        // ledger is read.
        let loads = p.cache_stats().loads;
        let kept = p.standings(&programme(prog)).unwrap();
        let ledgers: Vec<_> = truth.ledgers.values().collect();
        for on in [day(0), day(10), today, day(2000)] {
            assert_eq!(
                portfolio_of(&programme(prog), kept.iter().map(Arc::as_ref), None, on).unwrap(),
                common::portfolio_from_views(&programme(prog), &ledgers, None, on),
                "programme {prog} on {on}"
            );
        }
        assert_eq!(p.cache_stats().loads, loads, "the portfolio read ledgers");
    }
    assert!(p.ledger(&GrantId::parse("g-none").unwrap()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_cache_smaller_than_the_views_still_serves_every_grant_as_the_log_says() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    let handler = Handler::new(Arc::clone(&store));
    build(&handler, GRANTS, 0..EXPENDITURES).await;
    let path = dir.path().join("views.sqlite");

    // Catching up from nothing with room for three grants of twelve.
    let p = Projector::start_with(Arc::clone(&store), &path, LIMIT).await.unwrap();
    p.wait_for(head(store.as_ref()).await, WAIT).await.unwrap();
    p.wait_committed(head(store.as_ref()).await, WAIT).await.unwrap();
    let truth_now = projections::fold_log(store.as_ref()).await.unwrap();
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
    build(&handler, GRANTS, EXPENDITURES..EXPENDITURES + 2).await;
    p.wait_for(head(store.as_ref()).await, WAIT).await.unwrap();
    let truth_later = projections::fold_log(store.as_ref()).await.unwrap();
    assert_views_are_the_logs(&p, &truth_later).await;
    p.wait_committed(head(store.as_ref()).await, WAIT).await.unwrap();
    assert!(p.cache_stats().facts <= LIMIT, "{:?}", p.cache_stats());
}

/// An empty file behind a long log is caught up stream by stream: no ledger
/// goes through the cache on the way (the fold holds one grant at a time,
/// where following page by page holds every ledger a page touches), the
/// views are those that following page by page makes, and the follower
/// goes on from the head.
#[tokio::test]
async fn an_empty_file_caught_up_stream_by_stream_gives_the_views_following_page_by_page_gives() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    let handler = Handler::new(Arc::clone(&store));
    build(&handler, GRANTS, 0..EXPENDITURES).await;
    let at = head(store.as_ref()).await;
    let options = |bulk_catch_up_events_min| Options { ledger_cache_facts_max: LIMIT, bulk_catch_up_events_min };
    let bulk =
        Projector::start_with_options(Arc::clone(&store), dir.path().join("bulk.sqlite"), options(at)).await.unwrap();
    let paged = Projector::start_with_options(Arc::clone(&store), dir.path().join("paged.sqlite"), options(at + 1))
        .await
        .unwrap();
    for p in [&bulk, &paged] {
        p.wait_committed(at, WAIT).await.unwrap();
    }
    let (b, p) = (bulk.cache_stats(), paged.cache_stats());
    assert_eq!(
        (b.ledgers, b.loads, b.evictions),
        (0, 0, 0),
        "stream by stream, no ledger went through the cache: {b:?}"
    );
    assert!(p.evictions > 0, "page by page with room for three grants, ledgers were cached and let go: {p:?}");
    let truth_now = projections::fold_log(store.as_ref()).await.unwrap();
    assert_eq!(bulk.models().await.unwrap(), paged.models().await.unwrap());
    assert_views_are_the_logs(&bulk, &truth_now).await;

    build(&handler, GRANTS, EXPENDITURES..EXPENDITURES + 1).await;
    let later = head(store.as_ref()).await;
    bulk.wait_committed(later, WAIT).await.unwrap();
    assert_views_are_the_logs(&bulk, &projections::fold_log(store.as_ref()).await.unwrap()).await;
    drop(bulk);
    let again =
        Projector::start_with_options(Arc::clone(&store), dir.path().join("bulk.sqlite"), options(1)).await.unwrap();
    assert_eq!(*again.opened(), Opened::Loaded { position: later });
}

/// The writer commits an earlier page, and so lets a ledger go, after the
/// follower has taken the ledgers of the next page and before it applies
/// it: the page applies to that ledger, put back, not to a new empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_let_go_between_taking_a_page_and_applying_it_is_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    let handler = Handler::new(Arc::clone(&store));
    build(&handler, 2, 0..1).await;
    // Room for no ledger: each goes as soon as the file holds it.
    let p = Projector::start_with(Arc::clone(&store), dir.path().join("views.sqlite"), 1).await.unwrap();
    p.wait_committed(head(store.as_ref()).await, WAIT).await.unwrap();
    let (apply, commit) = (p.hold(HoldPoint::BeforeApply), p.hold(HoldPoint::BeforeCommit));

    // Page 1 changes grant 0; its commit is held, so grant 0 stays cached.
    spend(&handler, 0, 1).await;
    let first = head(store.as_ref()).await;
    apply.arrived(1).await;
    apply.release(1);
    commit.arrived(1).await;
    assert_eq!(p.cache_stats().ledgers, 1, "{:?}", p.cache_stats());
    // Page 2 changes grant 0 again: its ledgers are taken (grant 0 from the
    // cache), then the follower is held before applying it.
    spend(&handler, 0, 2).await;
    apply.arrived(2).await;
    // Page 1 is committed meanwhile, and grant 0 let go.
    commit.release(1);
    p.wait_committed(first, WAIT).await.unwrap();
    assert_eq!(p.cache_stats().ledgers, 0, "grant 0 was let go: {:?}", p.cache_stats());

    apply.release(usize::MAX >> 4);
    commit.release(usize::MAX >> 4);
    let last = head(store.as_ref()).await;
    p.wait_committed(last, WAIT).await.unwrap();
    let truth = projections::fold_log(store.as_ref()).await.unwrap();
    let live = p.ledger(&grant(0)).await.unwrap().unwrap();
    assert_eq!(*live, truth.ledgers[&grant(0)], "page 2 applied to an empty ledger");
    drop(p);
    // And the file holds it too.
    let again = Projector::start_with(Arc::clone(&store), dir.path().join("views.sqlite"), 1).await.unwrap();
    assert_eq!(*again.ledger(&grant(0)).await.unwrap().unwrap(), truth.ledgers[&grant(0)]);
}

/// Readers loading ledgers while the follower applies and the writer
/// commits: no load may put back an older copy of a ledger.
#[tokio::test]
async fn loads_racing_the_follower_and_the_writer_never_keep_an_older_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("log.sqlite")).await.unwrap());
    let handler = Handler::new(Arc::clone(&store));
    build(&handler, GRANTS, 0..2).await;
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
        build(&handler, GRANTS, round..round + 1).await;
        p.wait_for(head(store.as_ref()).await, WAIT).await.unwrap();
        let want = projections::fold_log(store.as_ref()).await.unwrap();
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
