//! The NCTCR scenario end to end through the command handler on a real
//! SQLite event log: it loads, leaves the numbers docs/scenario.md gives, and every
//! rejection docs/scenario.md lists is refused with its own error and numbers,
//! recording nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use domain::DomainError;
use domain::grant::state::Decision;
use domain::grant::{GrantCommand, GrantState};
use domain::handler::{CommandResult, Handler, HandlerError};
use domain::scenario::{self, FINANCE, MANAGER, Script, eur, expenditure, reallocation};
use events::*;
use rust_decimal_macros::dec;
use store::{EventStore, VerifyOutcome};

/// The log these cases run on: a SQLite file in `dir` here; the
/// `*_postgres` test binary includes this file as a module and gives its
/// own `open_store`, a PostgreSQL database of the test's own.
#[allow(dead_code)] // unused where another root gives `open_store`
pub async fn open_store(dir: &std::path::Path) -> (Arc<dyn EventStore>, Box<dyn std::any::Any + Send + Sync>) {
    let store = store_sqlite::SqliteStore::open(dir.join("log.sqlite")).await.unwrap();
    (Arc::new(store), Box::new(()))
}

struct Loaded {
    handler: Handler,
    _db: Box<dyn std::any::Any + Send + Sync>,
    _dir: tempfile::TempDir,
}

async fn loaded() -> Loaded {
    loaded_until("9999-12-31").await
}

/// The scenario as it stood at the end of `day`, on a fresh log.
async fn loaded_until(day: &str) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = crate::open_store(dir.path()).await;
    let handler = Handler::new(store);
    scenario::nctcr_until(&handler, day).await.unwrap();
    Loaded { handler, _db: db, _dir: dir }
}

fn gid() -> GrantId {
    GrantId::parse(scenario::GRANT).unwrap()
}

fn l(id: &str) -> LineId {
    LineId::parse(id).unwrap()
}

fn d(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_scenario_leaves_the_books_domain_md_describes() {
    let t = loaded().await;
    let (state, version) = t.handler.grant(&gid()).await.unwrap();
    assert!(version.unwrap() > 50);
    let line = |id: &str| state.lines.get(&l(id)).unwrap().clone();
    let fp1_con = line("FP1-CON");
    assert_eq!(
        (fp1_con.current, fp1_con.spent, fp1_con.available()),
        (eur("7000.00").unwrap(), eur("4180.50").unwrap(), eur("2819.50").unwrap())
    );
    let fp3_sub = line("FP3-SUB");
    assert_eq!(fp3_sub.current, eur("8000.00").unwrap());
    assert_eq!(
        (fp3_sub.spent, fp3_sub.committed, fp3_sub.available()),
        (eur("4000.00").unwrap(), eur("4000.00").unwrap(), eur("0.00").unwrap())
    );
    assert_eq!(line("FP5-OTH").spent, eur("2777.78").unwrap());
    assert_eq!(line("FP5-PER").current, eur("29000.00").unwrap());
    assert_eq!(line("FP5-TRV").spent, eur("640.00").unwrap());
    assert_eq!(line("FP4-TRV").spent, eur("0.00").unwrap());
    let total = Money::sum(Currency::EUR, state.lines.values().map(|l| &l.current)).unwrap();
    assert_eq!(total, eur("250000.00").unwrap());
    let direct_spent = Money::sum(Currency::EUR, state.lines.values().map(|l| &l.spent)).unwrap();
    assert_eq!(direct_spent, eur("43438.28").unwrap());
    assert!(state.commitments.get(&CommitmentId::parse("PO-001").unwrap()).unwrap().closed);
    assert_eq!(state.reallocations.get(&ReallocationId::parse("R1").unwrap()).unwrap().status, Decision::Approved);
    assert_eq!(state.amendments.get(&AmendmentId::parse("AMD-1").unwrap()).unwrap().status, Decision::Rejected);
    assert_eq!(state.grant.as_ref().unwrap().effective_end, d("2022-12-31"));
    let m02 = state.milestones.get(&MilestoneId::parse("M02").unwrap()).unwrap();
    assert_eq!((m02.baseline_due, m02.achieved_on, m02.reschedules), (d("2022-03-31"), Some(d("2022-06-08")), 1));
    let m11 = state.milestones.get(&MilestoneId::parse("M11").unwrap()).unwrap();
    assert_eq!(
        (m11.baseline_due, m11.due, m11.achieved_on, m11.reschedules),
        (d("2022-11-15"), d("2022-12-20"), Some(d("2022-12-20")), 2)
    );
    assert_eq!(state.milestones.len(), 15);
    assert!(state.periods.get(&PeriodId::parse("P1").unwrap()).unwrap().closed_by.is_some());
    assert!(matches!(t.handler.store().verify(None).await.unwrap(), VerifyOutcome::Intact { .. }));
}

#[tokio::test]
async fn a_fresh_handler_rebuilds_the_same_state_from_the_log() {
    let t = loaded().await;
    let cached = t.handler.grant(&gid()).await.unwrap();
    let fresh = Handler::new(Arc::clone(t.handler.store()));
    assert_eq!(fresh.grant(&gid()).await.unwrap(), cached);
}

/// Runs `command` and expects `expected`; the grant's version must not move.
async fn refused(
    t: &Loaded,
    day: &str,
    actor: &str,
    command: GrantCommand,
    reason: Option<&str>,
    expected: DomainError,
) {
    let before = t.handler.grant(&gid()).await.unwrap().1;
    let script = Script::new(&t.handler).unwrap();
    match script.on(day, actor, command, reason).await {
        Err(HandlerError::Domain(e)) => assert_eq!(e, expected),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
    assert_eq!(t.handler.grant(&gid()).await.unwrap().1, before, "a refused command recorded something");
}

#[tokio::test]
async fn every_rejection_in_domain_md_is_refused_with_its_numbers() {
    let t = loaded().await;
    let e = |s: &str| eur(s).unwrap();

    // A line that takes the total past the award by 0.01.
    let line = GrantCommand::OpenBudgetLine {
        workstream: WorkstreamCode::parse("FP2").unwrap(),
        category: CategoryCode::parse("TRV").unwrap(),
        amount: e("0.01"),
    };
    refused(
        &t,
        "2022-10-01",
        MANAGER,
        line,
        None,
        DomainError::ExceedsAward {
            award: e("250000.00"),
            allocated: e("250000.00"),
            requested: e("0.01"),
            excess: e("0.01"),
        },
    )
    .await;

    // A reallocation netting to -100.00.
    let unbalanced = reallocation("R9", &[("FP1-CON", "-600.00"), ("FP5-PER", "500.00")]).unwrap();
    refused(
        &t,
        "2022-10-01",
        MANAGER,
        unbalanced,
        Some("x"),
        DomainError::ReallocationNotBalanced { net: e("-100.00") },
    )
    .await;

    // After R1, 2,000.00 from FP1-CON into FP3-SUB breaks the indirect cap.
    let into_sub = reallocation("R9", &[("FP1-CON", "-2000.00"), ("FP3-SUB", "2000.00")]).unwrap();
    refused(
        &t,
        "2022-10-01",
        MANAGER,
        into_sub,
        Some("x"),
        DomainError::IndirectCapExceeded {
            cap: e("45500.00"),
            indirect: e("46000.00"),
            base: e("182000.00"),
            rate: dec!(0.25),
        },
    )
    .await;

    // 3,000.00 out of FP1-CON after R1: only 2,819.50 available.
    let too_much = reallocation("R9", &[("FP1-CON", "-3000.00"), ("FP5-PER", "3000.00")]).unwrap();
    refused(
        &t,
        "2022-10-01",
        MANAGER,
        too_much,
        Some("x"),
        DomainError::InsufficientAvailable {
            line: l("FP1-CON"),
            available: e("2819.50"),
            requested: e("3000.00"),
            on: d("2022-10-01"),
        },
    )
    .await;

    // An expenditure incurred 2023-01-05: the extension was rejected.
    let late = expenditure("E90", "FP1-CON", e("100.00"), None, "2023-01-05", "sup-x", "X-1", None).unwrap();
    refused(
        &t,
        "2023-01-06",
        MANAGER,
        late,
        None,
        DomainError::OutsideGrantPeriod { date: d("2023-01-05"), start: d("2022-01-01"), end: d("2022-12-31") },
    )
    .await;

    // An expenditure dated inside closed P1.
    let closed = expenditure("E91", "FP1-CON", e("100.00"), None, "2022-05-02", "sup-x", "X-2", None).unwrap();
    refused(
        &t,
        "2022-10-01",
        MANAGER,
        closed,
        None,
        DomainError::PeriodIsClosed { period: PeriodId::parse("P1").unwrap(), date: d("2022-05-02") },
    )
    .await;

    // The same invoice twice.
    let again = expenditure("E92", "FP5-TRV", e("640.00"), None, "2022-10-03", "sup-travel", "TR-0905", None).unwrap();
    refused(
        &t,
        "2022-10-03",
        MANAGER,
        again,
        None,
        DomainError::DuplicateInvoice {
            supplier: "sup-travel".into(),
            invoice: "TR-0905".into(),
            expenditure: ExpenditureId::parse("E08").unwrap(),
        },
    )
    .await;

    // A USD cost without a rate.
    let usd = Money::parse("120.00", Currency::USD).unwrap();
    let no_rate = expenditure("E93", "FP5-OTH", usd, None, "2022-10-04", "sup-trialnet", "TN-5000", None).unwrap();
    refused(
        &t,
        "2022-10-04",
        MANAGER,
        no_rate,
        None,
        DomainError::ConversionMissing { currency: Currency::USD, grant_currency: Currency::EUR },
    )
    .await;

    // Reversing E07 twice.
    let reverse = GrantCommand::ReverseExpenditure { expenditure_id: ExpenditureId::parse("E07").unwrap() };
    refused(
        &t,
        "2022-10-05",
        MANAGER,
        reverse,
        Some("again"),
        DomainError::AlreadyReversed { expenditure: ExpenditureId::parse("E07").unwrap() },
    )
    .await;

    // A commitment backdated to when money was free (FP1-CON had 5,819.50
    // on 07-01) but exceeding what is available now (2,819.50 since R1).
    let backdated = scenario::commitment("PO-009", "FP1-CON", "4000.00", "PO-2022-009").unwrap();
    refused(
        &t,
        "2022-07-01",
        MANAGER,
        backdated,
        None,
        DomainError::InsufficientAvailable {
            line: l("FP1-CON"),
            available: e("2819.50"),
            requested: e("4000.00"),
            on: d("2022-07-27"),
        },
    )
    .await;
}

#[tokio::test]
async fn r1_approved_by_its_requester_is_refused() {
    // As the grant stood when R1 was requested and not yet approved.
    let t = loaded_until("2022-07-20").await;
    let approve = GrantCommand::ApproveReallocation { reallocation_id: ReallocationId::parse("R1").unwrap() };
    refused(
        &t,
        "2022-07-21",
        MANAGER,
        approve.clone(),
        None,
        DomainError::SameActor {
            actor: ActorId::parse(MANAGER).unwrap(),
            action: "approve a reallocation",
            did: "requested",
        },
    )
    .await;
    Script::new(&t.handler).unwrap().on("2022-07-27", FINANCE, approve, None).await.unwrap();
}

#[tokio::test]
async fn m11_past_the_end_needs_an_amendment_that_reaches_it() {
    let m11 = |amendment: Option<&str>| GrantCommand::RescheduleMilestone {
        milestone_id: MilestoneId::parse("M11").unwrap(),
        due_on: d("2023-01-31"),
        amendment: amendment.map(|a| AmendmentId::parse(a).unwrap()),
    };
    // Before AMD-1 was cited: no amendment, refused.
    let t = loaded_until("2022-11-09").await;
    refused(
        &t,
        "2022-11-09",
        scenario::COORDINATOR,
        m11(None),
        Some("late"),
        DomainError::DueBeyondEnd { due: d("2023-01-31"), end: d("2022-12-31") },
    )
    .await;
    // After AMD-1 was rejected, citing it no longer backs the date.
    let t = loaded_until("2022-11-30").await;
    refused(
        &t,
        "2022-11-30",
        scenario::COORDINATOR,
        m11(Some("AMD-1")),
        Some("late"),
        DomainError::AmendmentDoesNotReach { amendment: AmendmentId::parse("AMD-1").unwrap(), due: d("2023-01-31") },
    )
    .await;
}

#[tokio::test]
async fn the_same_command_id_twice_records_once_and_answers_the_same() {
    let t = loaded().await;
    let command =
        expenditure("E50", "FP2-OTH", eur("99.00").unwrap(), None, "2022-10-12", "sup-paper", "P-77", None).unwrap();
    let issued = domain::handler::Issued::new(command, ActorId::parse(MANAGER).unwrap(), d("2022-10-12"));
    let first = t.handler.execute(&gid(), &issued).await.unwrap();
    assert!(!first.replayed);
    let replay = CommandResult { replayed: true, ..first.clone() };
    let second = t.handler.execute(&gid(), &issued).await.unwrap();
    assert_eq!(second, replay);
    // Also from a handler that never saw it (after a restart).
    let fresh = Handler::new(Arc::clone(t.handler.store()));
    assert_eq!(fresh.execute(&gid(), &issued).await.unwrap(), replay);
    let (state, version) = fresh.grant(&gid()).await.unwrap();
    assert_eq!(version, Some(first.version));
    assert_eq!(state.expenditures.len(), 10);
}

#[tokio::test]
async fn a_stale_if_match_version_is_refused() {
    let t = loaded().await;
    let (_, version) = t.handler.grant(&gid()).await.unwrap();
    let close = GrantCommand::ClosePeriod { period_id: PeriodId::parse("P2").unwrap() };
    let mut issued = domain::handler::Issued::new(close, ActorId::parse(FINANCE).unwrap(), d("2023-01-15"));
    issued.expected_version = Some(version.unwrap() - 1);
    let err = t.handler.execute(&gid(), &issued).await.unwrap_err();
    assert!(
        matches!(err, HandlerError::VersionMismatch { expected, actual } if expected + 1 == actual.unwrap()),
        "{err:?}"
    );
    issued.expected_version = version;
    t.handler.execute(&gid(), &issued).await.unwrap();
}

#[tokio::test]
async fn two_handlers_racing_on_one_grant_both_succeed_by_retrying() {
    let t = loaded().await;
    let other = Handler::new(Arc::clone(t.handler.store()));
    other.grant(&gid()).await.unwrap(); // warm its cache, then let it go stale
    let first = expenditure("E60", "FP2-OTH", eur("10.00").unwrap(), None, "2022-10-20", "sup-a", "A-1", None).unwrap();
    let second =
        expenditure("E61", "FP2-OTH", eur("20.00").unwrap(), None, "2022-10-20", "sup-a", "A-2", None).unwrap();
    let a = domain::handler::Issued::new(first, ActorId::parse(MANAGER).unwrap(), d("2022-10-20"));
    let b = domain::handler::Issued::new(second, ActorId::parse(MANAGER).unwrap(), d("2022-10-20"));
    let ra = t.handler.execute(&gid(), &a).await.unwrap();
    let rb = other.execute(&gid(), &b).await.unwrap();
    assert_eq!(rb.version, ra.version + 1);
    let state: GrantState = Handler::new(Arc::clone(t.handler.store())).grant(&gid()).await.unwrap().0;
    assert_eq!(state.lines.get(&l("FP2-OTH")).unwrap().spent, eur("30.00").unwrap());
}

fn keyed<C>(command: C, on: &str, command_id: uuid::Uuid, fingerprint: u8) -> domain::handler::Issued<C> {
    let mut issued = domain::handler::Issued::new(command, ActorId::parse(MANAGER).unwrap(), d(on));
    issued.command_id = command_id;
    issued.fingerprint = Some(store::Fingerprint([fingerprint; 32]));
    issued
}

fn reused(r: Result<CommandResult, HandlerError>, id: uuid::Uuid) {
    assert!(matches!(r, Err(HandlerError::CommandReused { command_id }) if command_id == id), "{r:?}");
}

/// A command id recorded for one request refuses every other request, on
/// this grant or another, from a warm cache, a cold one or a stale one, and
/// before any rule is consulted; the same request gets its first answer.
#[tokio::test]
async fn a_command_id_answers_only_the_request_it_was_recorded_for() {
    let t = loaded().await;
    let stale = Handler::new(Arc::clone(t.handler.store()));
    stale.grant(&gid()).await.unwrap();
    let id = uuid::Uuid::now_v7();
    let spend = |n: &str, amount: &str| {
        expenditure(n, "FP2-OTH", eur(amount).unwrap(), None, "2022-10-12", "sup-paper", n, None).unwrap()
    };
    let first = t.handler.execute(&gid(), &keyed(spend("E70", "10.00"), "2022-10-12", id, 1)).await.unwrap();
    let replay = CommandResult { replayed: true, ..first.clone() };
    let fresh = Handler::new(Arc::clone(t.handler.store()));
    for h in [&t.handler, &stale, &fresh] {
        assert_eq!(h.execute(&gid(), &keyed(spend("E70", "10.00"), "2022-10-12", id, 1)).await.unwrap(), replay);
        reused(h.execute(&gid(), &keyed(spend("E71", "20.00"), "2022-10-12", id, 2)).await, id);
        // A different request that a rule would refuse is still a reused id.
        reused(h.execute(&gid(), &keyed(spend("E72", "999999.00"), "2022-10-12", id, 3)).await, id);
    }
    // Another grant: a reused key, not the refusal the grant would give.
    let other = GrantId::parse("no-such-grant").unwrap();
    reused(fresh.execute(&other, &keyed(spend("E70", "10.00"), "2022-10-12", id, 1)).await, id);
    let (state, _) = fresh.grant(&gid()).await.unwrap();
    assert!(state.expenditures.contains_key(&ExpenditureId::parse("E70").unwrap()));
    assert!(!state.expenditures.contains_key(&ExpenditureId::parse("E71").unwrap()));
}
