//! Properties of the grant aggregate over random sequences of valid and
//! invalid commands: whatever is accepted, the sum of current lines never
//! exceeds the award, the indirect cap holds, reallocations net to zero,
//! nothing is spent outside the (extended) period or in a closed period,
//! commitments and lines agree, `evolve` replayed gives the same state, and
//! every event round-trips through JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use chrono::NaiveDate;
use domain::Context;
use domain::grant::{AwardGrant, Delta, GrantCommand, GrantState, decide};
use events::grant::{AmendmentKind, GrantEvent, MilestoneKind};
use events::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

const LINES: &[(&str, &str)] =
    &[("WP1", "PER"), ("WP1", "CON"), ("WP1", "SUB"), ("WP2", "PER"), ("WP2", "TRV"), ("GRANT", "IND"), ("WP2", "OGS")];

#[derive(Debug, Clone)]
enum Op {
    Open { line: usize, cents: i64 },
    Reallocate { from: usize, to: usize, cents: i64, imbalance: i64 },
    Commit { id: u8, line: usize, cents: i64 },
    CloseCommitment { id: u8 },
    Spend { id: u8, line: usize, cents: i64, day: i64, commitment: Option<u8>, usd: bool },
    Reverse { id: u8 },
    Amend { approve: bool, months: u32 },
    ClosePeriod { p2: bool },
    ReopenPeriod { p2: bool },
    Milestone { id: u8, day: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let line = 0..LINES.len();
    prop_oneof![
        3 => (line.clone(), 1i64..6_000_000).prop_map(|(line, cents)| Op::Open { line, cents }),
        2 => (line.clone(), line.clone(), 1i64..2_000_000, prop_oneof![4 => Just(0i64), 1 => -500i64..500])
            .prop_map(|(from, to, cents, imbalance)| Op::Reallocate { from, to, cents, imbalance }),
        2 => (0u8..5, line.clone(), 1i64..3_000_000).prop_map(|(id, line, cents)| Op::Commit { id, line, cents }),
        1 => (0u8..5).prop_map(|id| Op::CloseCommitment { id }),
        5 => (0u8..30, line, 1i64..3_000_000, -20i64..420, prop::option::of(0u8..5), prop::bool::weighted(0.1))
            .prop_map(|(id, line, cents, day, commitment, usd)| Op::Spend { id, line, cents, day, commitment, usd }),
        1 => (0u8..30).prop_map(|id| Op::Reverse { id }),
        1 => (any::<bool>(), 1u32..6).prop_map(|(approve, months)| Op::Amend { approve, months }),
        1 => any::<bool>().prop_map(|p2| Op::ClosePeriod { p2 }),
        1 => any::<bool>().prop_map(|p2| Op::ReopenPeriod { p2 }),
        1 => (0u8..4, -10i64..500).prop_map(|(id, day)| Op::Milestone { id, day }),
    ]
}

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).unwrap()
}

fn day(n: i64) -> NaiveDate {
    start() + chrono::Duration::days(n)
}

fn eur(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::EUR).unwrap()
}

fn line_id(i: usize) -> LineId {
    LineId::parse(format!("{}-{}", LINES[i].0, LINES[i].1)).unwrap()
}

/// The command an op stands for, with its actor, date and reason.
fn command(op: &Op, n: usize, amendments: usize) -> Vec<(GrantCommand, &'static str, NaiveDate, Option<&'static str>)> {
    let today = day(200);
    match op {
        Op::Open { line, cents } => vec![(
            GrantCommand::OpenBudgetLine {
                workstream: WorkstreamCode::parse(LINES[*line].0).unwrap(),
                category: CategoryCode::parse(LINES[*line].1).unwrap(),
                amount: eur(*cents),
            },
            "pm",
            start(),
            None,
        )],
        Op::Reallocate { from, to, cents, imbalance } => {
            let id = ReallocationId::parse(format!("R{n}")).unwrap();
            let deltas = vec![
                Delta { line: line_id(*from), amount: eur(-cents) },
                Delta { line: line_id(*to), amount: eur(cents + imbalance) },
            ];
            vec![
                (GrantCommand::RequestReallocation { reallocation_id: id.clone(), deltas }, "pm", today, Some("r")),
                (GrantCommand::ApproveReallocation { reallocation_id: id }, "fo", today, None),
            ]
        }
        Op::Commit { id, line, cents } => vec![(
            GrantCommand::RaiseCommitment {
                commitment_id: CommitmentId::parse(format!("C{id}")).unwrap(),
                line: line_id(*line),
                amount: eur(*cents),
                conversion: None,
                supplier: "s".into(),
                reference: "r".into(),
            },
            "pm",
            day(190),
            None,
        )],
        Op::CloseCommitment { id } => {
            vec![(
                GrantCommand::CloseCommitment { commitment_id: CommitmentId::parse(format!("C{id}")).unwrap() },
                "pm",
                today,
                None,
            )]
        }
        Op::Spend { id, line, cents, day: d, commitment, usd } => vec![(
            GrantCommand::RecordExpenditure {
                expenditure_id: ExpenditureId::parse(format!("E{id}")).unwrap(),
                line: line_id(*line),
                amount: if *usd { Money::new(Decimal::new(*cents, 2), Currency::USD).unwrap() } else { eur(*cents) },
                conversion: None,
                incurred_on: day(*d),
                supplier: "s".into(),
                invoice: format!("I{}", n % 7),
                commitment: commitment.map(|c| CommitmentId::parse(format!("C{c}")).unwrap()),
                correction_of: None,
            },
            "pm",
            today,
            None,
        )],
        Op::Reverse { id } => vec![(
            GrantCommand::ReverseExpenditure { expenditure_id: ExpenditureId::parse(format!("E{id}")).unwrap() },
            "pm",
            today,
            Some("mistake"),
        )],
        Op::Amend { approve, months } => {
            let id = AmendmentId::parse(format!("A{amendments}")).unwrap();
            let proposed_end = NaiveDate::from_ymd_opt(2022, 12, 31).unwrap() + chrono::Months::new(*months);
            let decision = if *approve {
                GrantCommand::ApproveAmendment { amendment_id: id.clone() }
            } else {
                GrantCommand::RejectAmendment { amendment_id: id.clone() }
            };
            vec![
                (
                    GrantCommand::RequestAmendment {
                        amendment_id: id,
                        kind: AmendmentKind::NoCostExtension,
                        proposed_end,
                    },
                    "pm",
                    today,
                    None,
                ),
                (decision, "fo", today, Some("decided")),
            ]
        }
        Op::ClosePeriod { p2 } => {
            vec![(
                GrantCommand::ClosePeriod { period_id: PeriodId::parse(if *p2 { "P2" } else { "P1" }).unwrap() },
                "fo",
                today,
                None,
            )]
        }
        Op::ReopenPeriod { p2 } => vec![(
            GrantCommand::ReopenPeriod { period_id: PeriodId::parse(if *p2 { "P2" } else { "P1" }).unwrap() },
            "head",
            today,
            Some("late invoice"),
        )],
        Op::Milestone { id, day: d } => {
            let m = MilestoneId::parse(format!("M{id}")).unwrap();
            vec![
                (
                    GrantCommand::PlanMilestone {
                        milestone_id: m.clone(),
                        workstream: WorkstreamCode::parse("WP1").unwrap(),
                        kind: MilestoneKind::Milestone,
                        title: "m".into(),
                        due_on: day(*d),
                        amendment: None,
                    },
                    "co",
                    today,
                    None,
                ),
                (
                    GrantCommand::RescheduleMilestone { milestone_id: m, due_on: day(d + 30), amendment: None },
                    "co",
                    today,
                    Some("later"),
                ),
            ]
        }
    }
}

fn envelope(event: GrantEvent, ctx: &Context) -> Envelope<GrantEvent> {
    Envelope {
        event,
        context: EventContext {
            effective_date: ctx.effective_date,
            actor: ctx.actor.clone(),
            reason: ctx.reason.clone(),
            command_id: uuid::Uuid::nil(),
            correlation_id: None,
            causation_id: None,
        },
    }
}

fn setup() -> Vec<(GrantCommand, &'static str, NaiveDate, Option<&'static str>)> {
    let award = GrantCommand::Award(AwardGrant {
        grant_id: GrantId::parse("g").unwrap(),
        programme_id: ProgrammeId::parse("p").unwrap(),
        funder: "FNR".into(),
        title: "t".into(),
        acronym: "t".into(),
        beneficiary: "b".into(),
        award: eur(10_000_000),
        start: start(),
        end: NaiveDate::from_ymd_opt(2022, 12, 31).unwrap(),
        rule_set: RuleSetId::parse("FNR-2022").unwrap(),
        indirect_rate: None,
    });
    let mut out = vec![(award, "fo", start(), None)];
    for ws in ["WP1", "WP2"] {
        out.push((
            GrantCommand::DefineWorkstream { code: WorkstreamCode::parse(ws).unwrap(), title: ws.into(), lead: None },
            "pm",
            start(),
            None,
        ));
    }
    for (id, s, e) in [("P1", 0, 180), ("P2", 181, 364)] {
        out.push((
            GrantCommand::DefineReportingPeriod {
                period_id: PeriodId::parse(id).unwrap(),
                start: day(s),
                end: day(e),
                report_due: day(e + 30),
            },
            "fo",
            start(),
            None,
        ));
    }
    out
}

fn check(state: &GrantState, events: &[Envelope<GrantEvent>]) -> Result<(), TestCaseError> {
    let grant = state.grant.as_ref().unwrap();
    let currents: Vec<Money> = state.lines.values().map(|l| l.current).collect();
    let total = Money::sum(Currency::EUR, &currents).unwrap();
    prop_assert!(total.amount() <= grant.award.amount(), "lines {} exceed the award", total);
    let kind = |c: &CategoryCode| rules::find(&grant.rule_set).and_then(|r| r.category(c)).map(|c| c.kind);
    let base: Decimal = state
        .lines
        .values()
        .filter(|l| kind(&l.category) == Some(rules::CategoryKind::Direct))
        .map(|l| l.current.amount())
        .sum();
    let indirect: Decimal = state
        .lines
        .values()
        .filter(|l| kind(&l.category) == Some(rules::CategoryKind::Indirect))
        .map(|l| l.current.amount())
        .sum();
    prop_assert!(
        indirect
            <= eur(0)
                .checked_add(&Money::new(base, Currency::EUR).unwrap())
                .unwrap()
                .times(grant.indirect_rate)
                .unwrap()
                .amount()
    );
    for r in state.reallocations.values() {
        let net: Decimal = r.deltas.iter().map(|d| d.amount.amount()).sum();
        prop_assert_eq!(net, Decimal::ZERO);
    }
    for x in state.expenditures.values().filter(|x| !x.reversed) {
        prop_assert!(grant.start <= x.incurred_on && x.incurred_on <= grant.effective_end, "{x:?}");
    }
    for (id, l) in &state.lines {
        let open: Decimal = state.commitments.values().filter(|c| &c.line == id).map(|c| c.open.amount()).sum();
        prop_assert_eq!(l.committed.amount(), open, "line {}", id);
        prop_assert_eq!(l.available(), l.current.checked_sub(&l.committed).unwrap().checked_sub(&l.spent).unwrap());
    }
    // Replaying every accepted event, twice, gives the same state.
    let replay = || events.iter().fold(GrantState::default(), GrantState::evolve);
    prop_assert_eq!(&replay(), state);
    prop_assert_eq!(replay(), replay());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_commands_never_break_an_invariant(ops in prop::collection::vec(op(), 1..60)) {
        let mut state = GrantState::default();
        let mut events: Vec<Envelope<GrantEvent>> = Vec::new();
        let mut accepted = 0;
        let mut amendments = 0;
        let steps = setup().into_iter().chain(ops.iter().enumerate().flat_map(|(n, op)| {
            if matches!(op, Op::Amend { .. }) {
                amendments += 1;
            }
            command(op, n, amendments)
        }));
        for (cmd, actor, on, reason) in steps {
            let effective_date = match &cmd {
                GrantCommand::RecordExpenditure { incurred_on, .. } => *incurred_on,
                _ => on,
            };
            let ctx = Context { actor: ActorId::parse(actor).unwrap(), reason: reason.map(str::to_owned), effective_date, today: day(200), programme_exists: true };
            let closed_before: Vec<_> = state.periods.values().filter(|p| p.closed_by.is_some()).map(|p| (p.start, p.end)).collect();
            match decide(&state, &cmd, &ctx) {
                Ok(decided) => {
                    accepted += 1;
                    for event in decided {
                        if let GrantEvent::ExpenditureRecorded(e) = &event {
                            prop_assert!(!closed_before.iter().any(|(s, e2)| *s <= e.incurred_on && e.incurred_on <= *e2), "posted into a closed period");
                        }
                        let json = serde_json::to_string(&event.to_json().unwrap()).unwrap();
                        prop_assert_eq!(&GrantEvent::decode(event.event_type(), event.schema_version(), &json).unwrap(), &event);
                        let env = envelope(event, &ctx);
                        state.apply(&env);
                        events.push(env);
                    }
                    check(&state, &events)?;
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
        prop_assert!(accepted >= setup().len(), "the set-up itself was refused");
    }
}
