//! A rebuild holds one grant and a batch of rows at a time, not the log:
//! its peak heap, measured by a counting allocator, stays far below what
//! the whole views take in memory (a rebuild that folded the log into
//! memory held them twice, live and rebuilt), and what it swaps in is the
//! log's. The only test in this binary, so no other test's allocations
//! count.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use peak_alloc::PeakAlloc;
use projections::fold_log;

mod common;
use common::{built_and_caught_up, day};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const GRANTS: usize = 24;
const EXPENDITURES: usize = 60;
/// Facts of one grant: header, workstream, line and its expenditures.
const GRANT_FACTS: usize = 3 + EXPENDITURES;

#[tokio::test]
async fn a_rebuild_holds_a_grant_and_a_batch_of_rows_not_the_whole_views() {
    let (_dir, store, p, events) = built_and_caught_up(GRANTS, EXPENDITURES, 2 * GRANT_FACTS).await;
    p.set_rebuild_rows_per_commit(GRANT_FACTS);

    // What the whole views take in memory.
    let before = HEAP.current_usage();
    let whole = fold_log(store.as_ref()).await.unwrap();
    let whole_bytes = HEAP.current_usage().saturating_sub(before);
    drop(whole);

    HEAP.reset_peak_usage();
    let base = HEAP.current_usage();
    let report = p.rebuild(day(500), |_, _| {}).await.unwrap();
    let peak = HEAP.peak_usage().saturating_sub(base);
    assert!(report.equal(), "{report:?}");
    assert_eq!((report.events, report.position), (events, events));
    assert!(
        peak < whole_bytes / 2,
        "the rebuild's heap peaked {peak} bytes above its start; the whole views take {whole_bytes}"
    );
    assert_eq!(p.models().await.unwrap(), fold_log(store.as_ref()).await.unwrap(), "the rebuilt views are the log's");
}
