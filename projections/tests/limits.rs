//! Amounts near the limits: random sequences of commands whose amounts sit
//! at or near `AMOUNT_UNITS_MAX` (lines summing to the award, expenditures
//! recorded and reversed until the grant's gross limit refuses them,
//! conversions at the smallest and largest rates a client can send). Only
//! what `decide` accepts is recorded; afterwards every view still answers:
//! the budget as of several dates, the timeline, the portfolio, the line
//! history, the corrections and approvals, the statement and its CSV.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use chrono::{DateTime, NaiveDate, Utc};
use domain::grant::{AwardGrant, Delta, GrantCommand, GrantState, decide};
use domain::{Context, DomainError};
use events::bounds::AMOUNT_UNITS_MAX;
use events::*;
use projections::ledger::Projected;
use projections::{
    GrantLedger, approvals, budget, corrections, line_history, portfolio, statement, statement_csv, timeline,
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

#[derive(Debug, Clone)]
enum Op {
    /// An expenditure of `cents` (size 0), `limit - cents` (1) or
    /// `Decimal::MAX - cents` (2, which decide must refuse).
    Spend { line: bool, size: u8, cents: i64, day: u32 },
    /// A foreign cost at a rate at one of its bounds.
    Foreign { line: bool, rate: usize, cents: i64, day: u32 },
    /// A commitment near the limit.
    Commit { line: bool, cents: i64, day: u32 },
    /// Reverse the n-th expenditure.
    Reverse { index: usize, day: u32 },
    /// Close the n-th commitment.
    Close { index: usize, day: u32 },
    /// Move money between the two lines, requested and approved.
    Reallocate { to_con: bool, cents: i64, day: u32 },
}

/// The smallest and largest rates a client can send, two ordinary ones,
/// and one far below what a client can send (decide must still hold).
const RATES: [Decimal; 5] =
    [dec!(0.0000000001), dec!(9999999999.9999999999), dec!(1), dec!(0.5), dec!(0.0000000000000000000000000001)];

fn op() -> impl Strategy<Value = Op> {
    let cents = 1i64..1_000_000_000_000;
    prop_oneof![
        4 => (any::<bool>(), 0u8..3, cents.clone(), 0u32..700)
            .prop_map(|(line, size, cents, day)| Op::Spend { line, size, cents, day }),
        2 => (any::<bool>(), 0..RATES.len(), cents.clone(), 0u32..700)
            .prop_map(|(line, rate, cents, day)| Op::Foreign { line, rate, cents, day }),
        1 => (any::<bool>(), cents.clone(), 0u32..700).prop_map(|(line, cents, day)| Op::Commit { line, cents, day }),
        2 => (0usize..40, 0u32..700).prop_map(|(index, day)| Op::Reverse { index, day }),
        1 => (0usize..10, 0u32..700).prop_map(|(index, day)| Op::Close { index, day }),
        1 => (any::<bool>(), cents, 0u32..700).prop_map(|(to_con, cents, day)| Op::Reallocate { to_con, cents, day }),
    ]
}

fn day(offset: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).unwrap() + chrono::Days::new(u64::from(offset))
}

fn eur(amount: Decimal) -> Money {
    Money::new(amount, Currency::EUR).unwrap()
}

fn limit() -> Decimal {
    Decimal::from(AMOUNT_UNITS_MAX)
}

fn line(con: bool) -> LineId {
    LineId::parse(if con { "W-CON" } else { "W-PER" }).unwrap()
}

/// The grant's events so far, as the projections see them, and its state.
struct Grant {
    state: GrantState,
    events: Vec<Projected>,
    expenditures: Vec<ExpenditureId>,
    commitments: Vec<CommitmentId>,
    actor: usize,
}

impl Grant {
    fn run(&mut self, command: GrantCommand, on: NaiveDate) -> Result<(), DomainError> {
        // Two actors in turn, so that a reallocation can be approved by another.
        self.actor += 1;
        let ctx = Context {
            actor: ActorId::parse(if self.actor.is_multiple_of(2) { "pm" } else { "fo" }).unwrap(),
            reason: Some("limits".into()),
            effective_date: on,
            today: on,
            programme_exists: true,
        };
        for event in decide(&self.state, &command, &ctx)? {
            let context = EventContext {
                effective_date: on,
                actor: ctx.actor.clone(),
                reason: ctx.reason.clone(),
                command_id: uuid::Uuid::nil(),
                correlation_id: None,
                causation_id: None,
            };
            let envelope = Envelope { event, context };
            self.state.apply(&envelope);
            let n = self.events.len() as u64;
            let recorded_at = DateTime::<Utc>::from_timestamp(1_650_000_000 + n as i64, 0).unwrap();
            self.events.push(Projected { position: n + 1, version: n, recorded_at, envelope });
        }
        Ok(())
    }

    fn new() -> Grant {
        let mut g = Grant {
            state: GrantState::default(),
            events: Vec::new(),
            expenditures: vec![],
            commitments: vec![],
            actor: 0,
        };
        let award = AwardGrant {
            grant_id: GrantId::parse("g").unwrap(),
            programme_id: ProgrammeId::parse("p").unwrap(),
            funder: "FNR".into(),
            title: "T".into(),
            acronym: "T".into(),
            beneficiary: "org".into(),
            award: eur(limit()),
            start: day(0),
            end: day(729),
            rule_set: RuleSetId::parse("FNR-2022").unwrap(),
            indirect_rate: None,
        };
        g.run(GrantCommand::Award(award), day(0)).unwrap();
        let ws = WorkstreamCode::parse("W").unwrap();
        g.run(GrantCommand::DefineWorkstream { code: ws.clone(), title: "W".into(), lead: None }, day(0)).unwrap();
        for (category, share) in [("PER", dec!(0.5)), ("CON", dec!(0.5))] {
            let open = GrantCommand::OpenBudgetLine {
                workstream: ws.clone(),
                category: CategoryCode::parse(category).unwrap(),
                amount: eur(limit() * share),
            };
            g.run(open, day(0)).unwrap();
        }
        g
    }

    fn apply(&mut self, op: &Op, n: usize) {
        let cents = |c: i64| Decimal::new(c, 2);
        let spend = |id: &str, con: bool, amount: Money, conversion: Option<Conversion>, on: NaiveDate| {
            GrantCommand::RecordExpenditure {
                expenditure_id: ExpenditureId::parse(id).unwrap(),
                line: line(con),
                amount,
                conversion,
                incurred_on: on,
                supplier: "S".into(),
                invoice: id.into(),
                commitment: None,
                correction_of: None,
            }
        };
        let id = format!("X{n}");
        let _ = match op {
            Op::Spend { line: con, size, cents: c, day: d } => {
                let amount = match size {
                    0 => cents(*c),
                    1 => limit() - cents(*c),
                    _ => (Decimal::MAX - cents(*c)).trunc_with_scale(2),
                };
                let ok = self.run(spend(&id, *con, eur(amount), None, day(*d)), day(*d));
                ok.map(|()| self.expenditures.push(ExpenditureId::parse(&id).unwrap()))
            }
            Op::Foreign { line: con, rate, cents: c, day: d } => {
                let usd = Money::new(cents(*c).min(limit()), Currency::USD).unwrap();
                let conversion = Conversion { rate: RATES[*rate], source: "ECB".into(), rate_date: day(*d) };
                let ok = self.run(spend(&id, *con, usd, Some(conversion), day(*d)), day(*d));
                ok.map(|()| self.expenditures.push(ExpenditureId::parse(&id).unwrap()))
            }
            Op::Commit { line: con, cents: c, day: d } => {
                let raise = GrantCommand::RaiseCommitment {
                    commitment_id: CommitmentId::parse(format!("C{n}")).unwrap(),
                    line: line(*con),
                    amount: eur(limit() / dec!(2) - cents(*c).min(limit() / dec!(2))),
                    conversion: None,
                    supplier: "S".into(),
                    reference: "PO".into(),
                };
                let ok = self.run(raise, day(*d));
                ok.map(|()| self.commitments.push(CommitmentId::parse(format!("C{n}")).unwrap()))
            }
            Op::Reverse { index, day: d } => match self.expenditures.get(*index).cloned() {
                Some(expenditure_id) => self.run(GrantCommand::ReverseExpenditure { expenditure_id }, day(*d)),
                None => Ok(()),
            },
            Op::Close { index, day: d } => match self.commitments.get(*index).cloned() {
                Some(commitment_id) => self.run(GrantCommand::CloseCommitment { commitment_id }, day(*d)),
                None => Ok(()),
            },
            Op::Reallocate { to_con, cents: c, day: d } => {
                let amount = eur(cents(*c).min(limit() / dec!(2)));
                let deltas = vec![
                    Delta { line: line(!*to_con), amount: amount.negated() },
                    Delta { line: line(*to_con), amount },
                ];
                let reallocation_id = ReallocationId::parse(format!("R{n}")).unwrap();
                self.run(
                    GrantCommand::RequestReallocation { reallocation_id: reallocation_id.clone(), deltas },
                    day(*d),
                )
                .and_then(|()| self.run(GrantCommand::ApproveReallocation { reallocation_id }, day(*d)))
            }
        };
    }
}

/// Every view of the grant answers, as of several dates and at the head.
fn every_view_answers(g: &Grant) -> Result<(), TestCaseError> {
    let mut ledger = GrantLedger::default();
    for p in &g.events {
        ledger.apply(p);
    }
    let today = day(400);
    for as_of in [None, Some(day(0)), Some(day(100)), Some(day(365)), Some(day(699)), Some(day(2000))] {
        let b = budget(&ledger, as_of, today);
        prop_assert!(b.is_ok(), "budget as of {:?}: {:?}", as_of, b.err());
        prop_assert!(timeline(&ledger, as_of, today).is_ok(), "timeline as of {:?}", as_of);
        let s = statement(&ledger, as_of);
        prop_assert!(s.is_ok(), "statement as of {:?}: {:?}", as_of, s.err());
        let _ = statement_csv(&s.unwrap());
    }
    let p = portfolio(&ProgrammeId::parse("p").unwrap(), [&ledger, &ledger, &ledger], None, today);
    prop_assert!(p.is_ok(), "portfolio: {:?}", p.err());
    // The line history folds the grant event by event: every prefix answers.
    let history = line_history(&g.events);
    prop_assert!(history.is_ok(), "line history: {:?}", history.err());
    let _ = (corrections(&g.events), approvals(&g.events));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_view_answers_with_amounts_near_the_limit(ops in prop::collection::vec(op(), 1..60)) {
        let mut g = Grant::new();
        for (n, op) in ops.iter().enumerate() {
            g.apply(op, n);
        }
        every_view_answers(&g)?;
    }
}

#[test]
fn a_grant_filled_to_its_gross_limit_still_answers_every_view() {
    let mut g = Grant::new();
    // Record and reverse the largest cost until the grant's gross limit refuses it.
    for n in 0usize..200 {
        let before = g.events.len();
        g.apply(&Op::Spend { line: n.is_multiple_of(2), size: 1, cents: 0, day: 10 }, n);
        if g.events.len() == before {
            break;
        }
        g.apply(&Op::Reverse { index: g.expenditures.len() - 1, day: 20 }, n);
    }
    assert!(g.expenditures.len() > 90, "{} recorded", g.expenditures.len());
    every_view_answers(&g).unwrap();
    let mut ledger = GrantLedger::default();
    g.events.iter().for_each(|p| {
        ledger.apply(p);
    });
    // As of a date between the costs and their reversals, all of them count.
    let view = budget(&ledger, Some(day(15)), day(15)).unwrap();
    assert!(view.spent.amount() > limit() * dec!(90));
}

#[test]
fn the_largest_decimal_never_reaches_a_view() {
    let mut g = Grant::new();
    g.apply(&Op::Spend { line: false, size: 2, cents: 0, day: 10 }, 0);
    g.apply(&Op::Foreign { line: true, rate: 4, cents: 100, day: 10 }, 1);
    g.apply(&Op::Spend { line: false, size: 1, cents: 0, day: 10 }, 2);
    g.apply(&Op::Spend { line: false, size: 1, cents: 0, day: 10 }, 3);
    assert_eq!(g.expenditures.len(), 2, "the two amounts past the limit are refused");
    every_view_answers(&g).unwrap();
}
