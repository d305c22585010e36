//! Projection benchmarks: full rebuild over 1,000,000 events beside the raw
//! rate of reading and decoding the same events, and as-of views of a grant
//! with 10,000 events. Run with `cargo bench -p projections --bench projections`;
//! figures in docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events::grant::*;
use events::*;
use projections::db::Models;
use projections::fold::grant_stream;
use projections::{as_known_at, budget, timeline};
use store::{EventMetadata, EventStore, ExpectedVersion, NewEvent, Position};
use store_sqlite::SqliteStore;

const GRANTS: u64 = 100;
const EVENTS_PER_GRANT: u64 = 10_000;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn eur(cents: i64) -> Money {
    Money::new(rust_decimal::Decimal::new(cents, 2), Currency::EUR).unwrap()
}

fn new_event(e: GrantEvent, on: NaiveDate) -> NewEvent {
    NewEvent::new(
        e.event_type(),
        e.schema_version(),
        e.to_json().unwrap(),
        EventMetadata {
            actor: "bench".into(),
            effective_date: Some(on),
            // A batch of appends is one command or none (the store refuses
            // a mix): these are no command's.
            command_id: None,
            ..Default::default()
        },
    )
}

/// A grant's stream: award, workstreams, lines, then expenditures up to
/// `EVENTS_PER_GRANT` events.
fn grant_events(g: u64) -> Vec<NewEvent> {
    let start = d("2022-01-01");
    let mut out = vec![new_event(
        GrantAwarded {
            grant_id: GrantId::parse(format!("g{g}")).unwrap(),
            programme_id: ProgrammeId::parse("bench").unwrap(),
            funder: "FNR".into(),
            title: format!("Grant {g}"),
            acronym: format!("G{g}"),
            beneficiary: "org".into(),
            award: eur(10_000_000_000),
            start,
            end: d("2026-12-31"),
            rule_set: RuleSetId::parse("FNR-2022").unwrap(),
            indirect_rate: rust_decimal::Decimal::new(25, 2),
        }
        .into(),
        start,
    )];
    let lines = ["PER", "CON", "TRV", "SUB", "OTH"];
    for ws in ["WP1", "WP2"] {
        out.push(new_event(
            WorkstreamDefined { code: WorkstreamCode::parse(ws).unwrap(), title: ws.into(), lead: None }.into(),
            start,
        ));
        for cat in lines {
            let e = BudgetLineOpened {
                line_id: LineId::parse(format!("{ws}-{cat}")).unwrap(),
                workstream: WorkstreamCode::parse(ws).unwrap(),
                category: CategoryCode::parse(cat).unwrap(),
                amount: eur(500_000_000),
            };
            out.push(new_event(e.into(), start));
        }
    }
    let mut n = 0u64;
    while (out.len() as u64) < EVENTS_PER_GRANT {
        n += 1;
        let on = start + chrono::Days::new(n % 1_800);
        let ws = if n.is_multiple_of(2) { "WP1" } else { "WP2" };
        let e = ExpenditureRecorded {
            expenditure_id: ExpenditureId::parse(format!("E{n}")).unwrap(),
            line: LineId::parse(format!("{ws}-{}", lines[(n % 5) as usize])).unwrap(),
            amount: eur(10_000 + (n as i64 * 37) % 90_000),
            original: None,
            incurred_on: on,
            supplier: format!("sup-{}", n % 50),
            invoice: format!("INV-{n}"),
            liquidates: None,
            correction_of: None,
        };
        out.push(new_event(e.into(), on));
    }
    out
}

struct Data {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    /// An instant in the middle of the big grant's recording.
    midway: chrono::DateTime<Utc>,
}

fn data(rt: &tokio::runtime::Runtime) -> Data {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(rt.block_on(SqliteStore::open(dir.path().join("log.sqlite"))).unwrap());
    let mut midway = Utc::now();
    rt.block_on(async {
        for g in 0..GRANTS {
            let stream = grant_stream(&GrantId::parse(format!("g{g}")).unwrap()).unwrap();
            for (i, chunk) in grant_events(g).chunks(1_000).enumerate() {
                store.append(&stream, ExpectedVersion::Any, chunk.to_vec()).await.unwrap();
                if g == 0 && i == 4 {
                    midway = Utc::now();
                }
            }
        }
    });
    Data { _dir: dir, store, midway }
}

async fn read_all(store: &dyn EventStore, mut each: impl FnMut(&store::RecordedEvent)) -> u64 {
    let mut after = Position::START;
    let mut n = 0;
    loop {
        let page = store.read_all(after, store::READ_EVENTS_MAX).await.unwrap();
        let Some(last) = page.last() else { return n };
        after = last.position;
        n += page.len() as u64;
        page.iter().for_each(&mut each);
    }
}

fn rebuild(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let data = data(&rt);
    let total = GRANTS * EVENTS_PER_GRANT;
    let mut g = c.benchmark_group("log_1m_events");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(total));
    g.bench_function("read_raw", |b| {
        b.iter(|| assert_eq!(rt.block_on(read_all(&*data.store, |_| {})), total));
    });
    g.bench_function("read_and_decode_typed", |b| {
        b.iter(|| {
            rt.block_on(read_all(&*data.store, |e| {
                std::hint::black_box(projections::fold::projected(e).unwrap());
            }))
        });
    });
    g.bench_function("rebuild_fold", |b| {
        b.iter(|| {
            let mut models = Models::default();
            rt.block_on(read_all(&*data.store, |e| {
                models.apply(e).unwrap();
            }));
            assert_eq!(models.ledgers.len() as u64, GRANTS);
        });
    });
    g.bench_function("projector_catch_up_from_empty", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let start = Instant::now();
                let projector = rt
                    .block_on(projections::Projector::start(data.store.clone(), dir.path().join("views.sqlite")))
                    .unwrap();
                rt.block_on(projector.wait_for(total, Duration::from_secs(600))).unwrap();
                spent += start.elapsed();
            }
            spent
        });
    });
    g.bench_function("projector_rebuild_with_swap_and_digests", |b| {
        let dir = tempfile::tempdir().unwrap();
        let projector =
            rt.block_on(projections::Projector::start(data.store.clone(), dir.path().join("views.sqlite"))).unwrap();
        rt.block_on(projector.wait_for(total, Duration::from_secs(600))).unwrap();
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let report = rt.block_on(projector.rebuild(d("2024-06-30"), |_, _| {})).unwrap();
                assert_eq!(report.live_digest, report.rebuilt_digest);
            }
            start.elapsed()
        });
    });
    g.finish();

    let grant = GrantId::parse("g0").unwrap();
    let ledger = rt.block_on(as_known_at(&*data.store, &grant, None)).unwrap();
    let mut g = c.benchmark_group("grant_10k_events");
    g.sample_size(50);
    g.bench_function("budget_as_of_date_from_live_ledger", |b| {
        b.iter(|| budget(&ledger, Some(d("2024-03-31")), d("2024-06-30")).unwrap());
    });
    // The portfolio's per-grant figures: as of every fact from the
    // ledger's running sums (what the follower pays per grant a page
    // touches), and the same figures summed from every fact (an as-of
    // date after every fact).
    g.bench_function("standing_as_of_every_fact_from_running_sums", |b| {
        b.iter(|| projections::Standing::of(&ledger, None).unwrap());
    });
    g.bench_function("standing_as_of_a_date_after_every_fact_summed_from_every_fact", |b| {
        b.iter(|| projections::Standing::of(&ledger, Some(d("2099-12-31"))).unwrap());
    });
    g.bench_function("timeline_as_of_date_from_live_ledger", |b| {
        b.iter(|| timeline(&ledger, Some(d("2024-03-31")), d("2024-06-30")).unwrap());
    });
    let stream = grant_stream(&GrantId::parse("g0").unwrap()).unwrap();
    g.bench_function("read_stream_decoded_baseline", |b| {
        b.iter(|| {
            rt.block_on(async {
                let page = data
                    .store
                    .read_stream(&stream, store::StreamStart::End, store::Direction::Forward, store::READ_EVENTS_MAX)
                    .await
                    .unwrap();
                assert_eq!(page.len() as u64, EVENTS_PER_GRANT);
            })
        });
    });
    g.bench_function("budget_known_at_instant_folded_from_log", |b| {
        b.iter(|| {
            rt.block_on(async {
                let then = as_known_at(&*data.store, &grant, Some(data.midway)).await.unwrap();
                budget(&then, None, d("2024-06-30")).unwrap()
            })
        });
    });
    let cache = projections::HistoryCache::new(data.store.clone(), projections::history::HISTORY_EVENTS_MAX);
    rt.block_on(cache.history(&grant)).unwrap();
    g.bench_function("budget_known_at_instant_from_history_cache", |b| {
        b.iter(|| {
            rt.block_on(async {
                let then = cache.ledger_known_at(&grant, Some(data.midway)).await.unwrap();
                budget(&then, None, d("2024-06-30")).unwrap()
            })
        });
    });
    g.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
