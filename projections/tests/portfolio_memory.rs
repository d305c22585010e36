//! The portfolio as of a date reads its grants' ledgers two at a time:
//! its peak heap, measured by a counting allocator, stays near the ledger
//! cache's, where reading the programme's ledgers all at once (as the
//! route did before) holds every one of them beside the cache. Its
//! figures are the fold of all the programme's grants. The only test in
//! this binary, so no other test's allocations count.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use peak_alloc::PeakAlloc;
use projections::{fold_log, portfolio, portfolio_of};

mod common;
use common::{built_and_caught_up, day, programme};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const GRANTS: usize = 24;
const EXPENDITURES: usize = 60;
/// Facts of one grant: header, workstream, line and its expenditures.
const GRANT_FACTS: usize = 3 + EXPENDITURES;

#[tokio::test]
async fn the_portfolio_as_of_a_date_holds_two_ledgers_beside_the_cache_not_the_programme() {
    // Room for two grants of the 24 (12 in each programme).
    let (_dir, store, p, _) = built_and_caught_up(GRANTS, EXPENDITURES, 2 * GRANT_FACTS).await;
    let prog = programme(0);
    let (as_of, today) = (Some(day(30)), day(500));

    // What the programme's ledgers take in memory, all at once.
    let truth = fold_log(store.as_ref()).await.unwrap();
    let before = HEAP.current_usage();
    let all = p.programme_ledgers(&prog).await.unwrap();
    let all_bytes = HEAP.current_usage().saturating_sub(before);
    assert_eq!(all.len(), GRANTS / 2);
    let want = portfolio(&prog, all.iter().map(Arc::as_ref), as_of, today).unwrap();
    assert_eq!(want, portfolio(&prog, truth.ledgers.values(), as_of, today).unwrap(), "the views are the log's");
    drop(all);

    HEAP.reset_peak_usage();
    let base = HEAP.current_usage();
    let standings = p.standings_as_of(&prog, as_of).await.unwrap();
    let peak = HEAP.peak_usage().saturating_sub(base);
    assert_eq!(portfolio_of(&prog, &standings, as_of, today).unwrap(), want, "the portfolio is the fold of its grants");
    assert!(
        peak < all_bytes / 3,
        "the portfolio's heap peaked {peak} bytes above its start; the programme's ledgers take {all_bytes}"
    );
}
