//! Given / when / then tests of the grant aggregate: for each command, what
//! it records when accepted and the exact error, with its numbers, when a
//! rule refuses it.

use chrono::NaiveDate;
use events::grant::*;
use events::*;
use rust_decimal_macros::dec;

use super::command::{AwardGrant, Delta, GrantCommand};
use super::decide::decide;
use super::state::GrantState;
use crate::Context;
use crate::error::DomainError;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn eur(s: &str) -> Money {
    Money::parse(s, Currency::EUR).unwrap()
}

fn usd(s: &str) -> Money {
    Money::parse(s, Currency::USD).unwrap()
}

fn line(s: &str) -> LineId {
    LineId::parse(s).unwrap()
}

fn ws(s: &str) -> WorkstreamCode {
    WorkstreamCode::parse(s).unwrap()
}

fn cat(s: &str) -> CategoryCode {
    CategoryCode::parse(s).unwrap()
}

/// A test: events so far (each with its actor and date), then a command.
struct Given {
    state: GrantState,
}

fn given(events: Vec<(GrantEvent, &str, &str)>) -> Given {
    let mut state = GrantState::default();
    for (event, actor, on) in events {
        let context = EventContext {
            effective_date: d(on),
            actor: ActorId::parse(actor).unwrap(),
            reason: None,
            command_id: uuid::Uuid::nil(),
            correlation_id: None,
            causation_id: None,
        };
        state.apply(&Envelope { event, context });
    }
    Given { state }
}

impl Given {
    /// `command` issued by `actor` effective `on` (also today), with `reason`.
    fn when(
        &self,
        command: GrantCommand,
        actor: &str,
        on: &str,
        reason: Option<&str>,
    ) -> Result<Vec<GrantEvent>, DomainError> {
        let ctx = Context {
            actor: ActorId::parse(actor).unwrap(),
            reason: reason.map(str::to_owned),
            effective_date: d(on),
            today: d(on),
            programme_exists: true,
        };
        decide(&self.state, &command, &ctx)
    }
}

fn awarded() -> GrantEvent {
    GrantAwarded {
        grant_id: GrantId::parse("g1").unwrap(),
        programme_id: ProgrammeId::parse("p1").unwrap(),
        funder: "FNR".into(),
        title: "T".into(),
        acronym: "T".into(),
        beneficiary: "org".into(),
        award: eur("100000.00"),
        start: d("2022-01-01"),
        end: d("2022-12-31"),
        rule_set: RuleSetId::parse("FNR-2022").unwrap(),
        indirect_rate: dec!(0.25),
    }
    .into()
}

fn opened(ws_code: &str, category: &str, amount: &str) -> GrantEvent {
    BudgetLineOpened {
        line_id: line(&format!("{ws_code}-{category}")),
        workstream: ws(ws_code),
        category: cat(category),
        amount: eur(amount),
    }
    .into()
}

/// A grant with WP1, lines WP1-PER 40,000, WP1-CON 20,000, WP1-SUB 10,000,
/// GRANT-IND 15,000 (cap 25% of 60,000), a period P1 (H1), and a commitment.
fn grant() -> Vec<(GrantEvent, &'static str, &'static str)> {
    vec![
        (awarded(), "fo", "2022-01-01"),
        (WorkstreamDefined { code: ws("WP1"), title: "Work package 1".into(), lead: None }.into(), "pm", "2022-01-01"),
        (
            ReportingPeriodDefined {
                period_id: PeriodId::parse("P1").unwrap(),
                start: d("2022-01-01"),
                end: d("2022-06-30"),
                report_due: d("2022-08-31"),
            }
            .into(),
            "fo",
            "2022-01-01",
        ),
        (opened("WP1", "PER", "40000.00"), "pm", "2022-01-01"),
        (opened("WP1", "CON", "20000.00"), "pm", "2022-01-01"),
        (opened("WP1", "SUB", "10000.00"), "pm", "2022-01-01"),
        (opened("GRANT", "IND", "15000.00"), "pm", "2022-01-01"),
    ]
}

fn with(
    mut base: Vec<(GrantEvent, &'static str, &'static str)>,
    more: Vec<(GrantEvent, &'static str, &'static str)>,
) -> Given {
    base.extend(more);
    given(base)
}

fn spend(id: &str, l: &str, amount: &str, on: &str, invoice: &str) -> GrantCommand {
    GrantCommand::RecordExpenditure {
        expenditure_id: ExpenditureId::parse(id).unwrap(),
        line: line(l),
        amount: eur(amount),
        conversion: None,
        incurred_on: d(on),
        supplier: "sup".into(),
        invoice: invoice.into(),
        commitment: None,
        correction_of: None,
    }
}

fn recorded(id: &str, l: &str, amount: &str, on: &str, invoice: &str) -> GrantEvent {
    ExpenditureRecorded {
        expenditure_id: ExpenditureId::parse(id).unwrap(),
        line: line(l),
        amount: eur(amount),
        original: None,
        incurred_on: d(on),
        supplier: "sup".into(),
        invoice: invoice.into(),
        liquidates: None,
        correction_of: None,
    }
    .into()
}

fn realloc(id: &str, deltas: &[(&str, &str)]) -> GrantCommand {
    GrantCommand::RequestReallocation {
        reallocation_id: ReallocationId::parse(id).unwrap(),
        deltas: deltas.iter().map(|(l, a)| Delta { line: line(l), amount: eur(a) }).collect(),
    }
}

fn award_command(rule_set: &str, rate: Option<rust_decimal::Decimal>) -> GrantCommand {
    GrantCommand::Award(AwardGrant {
        grant_id: GrantId::parse("g1").unwrap(),
        programme_id: ProgrammeId::parse("p1").unwrap(),
        funder: "F".into(),
        title: "T".into(),
        acronym: "T".into(),
        beneficiary: "org".into(),
        award: eur("1000.00"),
        start: d("2022-01-01"),
        end: d("2022-12-31"),
        rule_set: RuleSetId::parse(rule_set).unwrap(),
        indirect_rate: rate,
    })
}

#[test]
fn an_award_takes_the_rule_sets_rate_unless_given_and_respects_its_cap() {
    let events = given(vec![]).when(award_command("FNR-2022", None), "fo", "2022-01-01", None).unwrap();
    assert!(matches!(&events[..], [GrantEvent::GrantAwarded(a)] if a.indirect_rate == dec!(0.25)));
    let events = given(vec![]).when(award_command("FNR-2022", Some(dec!(0.20))), "fo", "2022-01-01", None).unwrap();
    assert!(matches!(&events[..], [GrantEvent::GrantAwarded(a)] if a.indirect_rate == dec!(0.20)));
    assert_eq!(
        given(vec![]).when(award_command("FNR-2022", Some(dec!(0.30))), "fo", "2022-01-01", None),
        Err(DomainError::IndirectRateAboveCap { rate: dec!(0.30), cap: dec!(0.25) })
    );
    assert_eq!(
        given(vec![]).when(award_command("HORIZON-EUROPE", Some(dec!(0.20))), "fo", "2022-01-01", None),
        Err(DomainError::IndirectRateNotFlat { rate: dec!(0.20), required: dec!(0.25) })
    );
    assert_eq!(
        given(vec![]).when(award_command("NIH", None), "fo", "2022-01-01", None),
        Err(DomainError::UnknownRuleSet { rule_set: RuleSetId::parse("NIH").unwrap() })
    );
    assert_eq!(
        given(grant()).when(award_command("FNR-2022", None), "fo", "2022-01-01", None),
        Err(DomainError::GrantAlreadyAwarded)
    );
}

#[test]
fn an_award_needs_a_positive_amount_ordered_dates_and_an_existing_programme() {
    let GrantCommand::Award(mut a) = award_command("FNR-2022", None) else { unreachable!() };
    a.award = eur("0.00");
    assert_eq!(
        given(vec![]).when(GrantCommand::Award(a.clone()), "fo", "2022-01-01", None),
        Err(DomainError::AmountNotPositive { field: "award", amount: eur("0.00") })
    );
    a.award = eur("5.00");
    a.end = d("2021-12-31");
    assert_eq!(
        given(vec![]).when(GrantCommand::Award(a.clone()), "fo", "2022-01-01", None),
        Err(DomainError::DatesInverted { start: d("2022-01-01"), end: d("2021-12-31") })
    );
    let ctx = Context {
        actor: ActorId::parse("fo").unwrap(),
        reason: None,
        effective_date: d("2022-01-01"),
        today: d("2022-01-01"),
        programme_exists: false,
    };
    assert_eq!(
        decide(&GrantState::default(), &award_command("FNR-2022", None), &ctx),
        Err(DomainError::UnknownProgramme { programme: ProgrammeId::parse("p1").unwrap() })
    );
}

#[test]
fn commands_before_the_award_or_after_closing_are_refused() {
    assert_eq!(
        given(vec![]).when(spend("E1", "WP1-PER", "1.00", "2022-02-01", "I1"), "pm", "2022-02-01", None),
        Err(DomainError::GrantNotAwarded)
    );
    let closed = with(grant(), vec![(GrantClosed { closed_on: d("2023-01-31") }.into(), "fo", "2023-01-31")]);
    assert_eq!(
        closed.when(spend("E1", "WP1-PER", "1.00", "2022-02-01", "I1"), "pm", "2023-02-01", None),
        Err(DomainError::GrantIsClosed { closed_on: d("2023-01-31") })
    );
}

#[test]
fn budget_lines_open_within_the_award_the_rule_set_and_the_indirect_cap() {
    let g = given(grant()[..6].to_vec());
    let open = |w: &str, c: &str, a: &str| GrantCommand::OpenBudgetLine {
        workstream: ws(w),
        category: cat(c),
        amount: eur(a),
    };
    assert_eq!(
        g.when(open("WP1", "TRV", "500.00"), "pm", "2022-01-02", None),
        Ok(vec![opened("WP1", "TRV", "500.00")])
    );
    assert_eq!(
        g.when(open("GRANT", "IND", "15000.01"), "pm", "2022-01-02", None),
        Err(DomainError::IndirectCapExceeded {
            cap: eur("15000.00"),
            indirect: eur("15000.01"),
            base: eur("60000.00"),
            rate: dec!(0.25)
        })
    );
    assert_eq!(
        g.when(open("WP1", "OGS", "1.00"), "pm", "2022-01-02", None),
        Err(DomainError::UnknownCategory { category: cat("OGS"), rule_set: RuleSetId::parse("FNR-2022").unwrap() })
    );
    assert_eq!(
        g.when(open("WP9", "TRV", "1.00"), "pm", "2022-01-02", None),
        Err(DomainError::UnknownWorkstream { workstream: ws("WP9") })
    );
    assert_eq!(
        g.when(open("WP1", "PER", "1.00"), "pm", "2022-01-02", None),
        Err(DomainError::LineExists { line: line("WP1-PER") })
    );
    assert_eq!(
        g.when(
            GrantCommand::OpenBudgetLine { workstream: ws("WP1"), category: cat("TRV"), amount: usd("1.00") },
            "pm",
            "2022-01-02",
            None
        ),
        Err(DomainError::WrongCurrency { expected: Currency::EUR, got: Currency::USD })
    );
    assert_eq!(
        g.when(open("WP1", "TRV", "30000.01"), "pm", "2022-01-02", None),
        Err(DomainError::ExceedsAward {
            award: eur("100000.00"),
            allocated: eur("70000.00"),
            requested: eur("30000.01"),
            excess: eur("0.01")
        })
    );
    assert_eq!(
        g.when(open("WP1", "TRV", "0.00"), "pm", "2022-01-02", None),
        Err(DomainError::AmountNotPositive { field: "amount", amount: eur("0.00") })
    );
}

#[test]
fn workstreams_and_periods_are_defined_once_without_overlap() {
    let g = given(grant());
    let define = GrantCommand::DefineWorkstream { code: ws("WP1"), title: "again".into(), lead: None };
    assert_eq!(g.when(define, "pm", "2022-01-02", None), Err(DomainError::WorkstreamExists { workstream: ws("WP1") }));
    let period = |id: &str, s: &str, e: &str| GrantCommand::DefineReportingPeriod {
        period_id: PeriodId::parse(id).unwrap(),
        start: d(s),
        end: d(e),
        report_due: d(e),
    };
    assert_eq!(
        g.when(period("P2", "2022-06-30", "2022-12-31"), "fo", "2022-01-02", None),
        Err(DomainError::PeriodsOverlap {
            period: PeriodId::parse("P2").unwrap(),
            other: PeriodId::parse("P1").unwrap()
        })
    );
    assert_eq!(
        g.when(period("P1", "2022-07-01", "2022-12-31"), "fo", "2022-01-02", None),
        Err(DomainError::PeriodExists { period: PeriodId::parse("P1").unwrap() })
    );
    assert_eq!(
        g.when(period("P2", "2022-12-31", "2022-07-01"), "fo", "2022-01-02", None),
        Err(DomainError::DatesInverted { start: d("2022-12-31"), end: d("2022-07-01") })
    );
    assert!(g.when(period("P2", "2022-07-01", "2022-12-31"), "fo", "2022-01-02", None).is_ok());
}

#[test]
fn reallocations_must_balance_move_transferable_money_and_keep_the_cap() {
    let g = given(grant());
    let ok = g
        .when(realloc("R1", &[("WP1-CON", "-500.00"), ("WP1-PER", "500.00")]), "pm", "2022-03-01", Some("staff"))
        .unwrap();
    assert!(matches!(&ok[..], [GrantEvent::ReallocationRequested(r)] if r.deltas.len() == 2));
    assert_eq!(
        g.when(realloc("R1", &[("WP1-CON", "-500.00"), ("WP1-PER", "400.00")]), "pm", "2022-03-01", None),
        Err(DomainError::ReallocationNotBalanced { net: eur("-100.00") })
    );
    assert_eq!(
        g.when(realloc("R1", &[("WP1-CON", "-500.00"), ("WP1-CON", "500.00")]), "pm", "2022-03-01", None),
        Err(DomainError::ReallocationMalformed)
    );
    assert_eq!(
        g.when(realloc("R1", &[("GRANT-IND", "-500.00"), ("WP1-PER", "500.00")]), "pm", "2022-03-01", None),
        Err(DomainError::LineNotTransferable { line: line("GRANT-IND"), category: cat("IND") })
    );
    // Moving 100 from CON into SUB shrinks the base to 59,900: the cap falls to 14,975.
    assert_eq!(
        g.when(realloc("R1", &[("WP1-CON", "-100.00"), ("WP1-SUB", "100.00")]), "pm", "2022-03-01", None),
        Err(DomainError::IndirectCapExceeded {
            cap: eur("14975.00"),
            indirect: eur("15000.00"),
            base: eur("59900.00"),
            rate: dec!(0.25)
        })
    );
    assert_eq!(
        g.when(realloc("R1", &[("WP1-XXX", "-1.00"), ("WP1-PER", "1.00")]), "pm", "2022-03-01", None),
        Err(DomainError::UnknownLine { line: line("WP1-XXX") })
    );
}

#[test]
fn a_reallocation_is_approved_by_someone_else_and_rechecked_then() {
    let requested: GrantEvent = ReallocationRequested {
        reallocation_id: ReallocationId::parse("R1").unwrap(),
        deltas: vec![
            LineDelta { line: line("WP1-CON"), amount: eur("-5000.00") },
            LineDelta { line: line("WP1-PER"), amount: eur("5000.00") },
        ],
    }
    .into();
    let g = with(grant(), vec![(requested.clone(), "pm", "2022-03-01")]);
    let approve = GrantCommand::ApproveReallocation { reallocation_id: ReallocationId::parse("R1").unwrap() };
    assert_eq!(
        g.when(approve.clone(), "pm", "2022-03-02", None),
        Err(DomainError::SameActor {
            actor: ActorId::parse("pm").unwrap(),
            action: "approve a reallocation",
            did: "requested"
        })
    );
    assert_eq!(
        g.when(approve.clone(), "fo", "2022-03-02", None),
        Ok(vec![ReallocationApproved { reallocation_id: ReallocationId::parse("R1").unwrap() }.into()])
    );
    // Spending since the request leaves too little to move.
    let spent = with(
        grant(),
        vec![
            (requested, "pm", "2022-03-01"),
            (recorded("E1", "WP1-CON", "16000.00", "2022-03-05", "I1"), "pm", "2022-03-05"),
        ],
    );
    assert_eq!(
        spent.when(approve.clone(), "fo", "2022-03-06", None),
        Err(DomainError::InsufficientAvailable {
            line: line("WP1-CON"),
            available: eur("4000.00"),
            requested: eur("5000.00"),
            on: d("2022-03-06")
        })
    );
    let rejected = with(
        grant(),
        vec![(
            ReallocationRequested { reallocation_id: ReallocationId::parse("R1").unwrap(), deltas: vec![] }.into(),
            "pm",
            "2022-03-01",
        )],
    );
    let reject = GrantCommand::RejectReallocation { reallocation_id: ReallocationId::parse("R1").unwrap() };
    assert_eq!(
        rejected.when(reject.clone(), "fo", "2022-03-02", None),
        Err(DomainError::ReasonRequired { action: "reject a reallocation" })
    );
    assert!(rejected.when(reject, "fo", "2022-03-02", Some("no")).is_ok());
    assert_eq!(
        g.when(
            GrantCommand::ApproveReallocation { reallocation_id: ReallocationId::parse("R9").unwrap() },
            "fo",
            "2022-03-02",
            None
        ),
        Err(DomainError::UnknownReallocation { reallocation: ReallocationId::parse("R9").unwrap() })
    );
}

#[test]
fn commitments_fit_the_line_now_and_at_every_later_date() {
    let later_spending =
        with(grant(), vec![(recorded("E1", "WP1-CON", "18000.00", "2022-09-01", "I1"), "pm", "2022-09-01")]);
    let raise = |id: &str, amount: &str| GrantCommand::RaiseCommitment {
        commitment_id: CommitmentId::parse(id).unwrap(),
        line: line("WP1-CON"),
        amount: eur(amount),
        conversion: None,
        supplier: "sup".into(),
        reference: "PO".into(),
    };
    // Backdated to July, when 20,000 was free; from September only 2,000 is.
    assert_eq!(
        later_spending.when(raise("PO1", "3000.00"), "pm", "2022-07-01", None),
        Err(DomainError::InsufficientAvailable {
            line: line("WP1-CON"),
            available: eur("2000.00"),
            requested: eur("3000.00"),
            on: d("2022-09-01")
        })
    );
    let ok = later_spending.when(raise("PO1", "2000.00"), "pm", "2022-07-01", None).unwrap();
    assert!(matches!(&ok[..], [GrantEvent::CommitmentRaised(c)] if c.amount == eur("2000.00")));
    let g = with(
        grant(),
        vec![(
            CommitmentRaised {
                commitment_id: CommitmentId::parse("PO1").unwrap(),
                line: line("WP1-CON"),
                amount: eur("100.00"),
                original: None,
                supplier: "s".into(),
                reference: "r".into(),
            }
            .into(),
            "pm",
            "2022-07-01",
        )],
    );
    assert_eq!(
        g.when(raise("PO1", "1.00"), "pm", "2022-07-02", None),
        Err(DomainError::CommitmentExists { commitment: CommitmentId::parse("PO1").unwrap() })
    );
    let close = GrantCommand::CloseCommitment { commitment_id: CommitmentId::parse("PO1").unwrap() };
    assert_eq!(
        g.when(close.clone(), "pm", "2022-07-03", None),
        Ok(vec![
            CommitmentClosed { commitment_id: CommitmentId::parse("PO1").unwrap(), released: eur("100.00") }.into()
        ])
    );
    let closed = with(
        grant(),
        vec![
            (
                CommitmentRaised {
                    commitment_id: CommitmentId::parse("PO1").unwrap(),
                    line: line("WP1-CON"),
                    amount: eur("100.00"),
                    original: None,
                    supplier: "s".into(),
                    reference: "r".into(),
                }
                .into(),
                "pm",
                "2022-07-01",
            ),
            (
                CommitmentClosed { commitment_id: CommitmentId::parse("PO1").unwrap(), released: eur("100.00") }.into(),
                "pm",
                "2022-07-02",
            ),
        ],
    );
    assert_eq!(
        closed.when(close, "pm", "2022-07-03", None),
        Err(DomainError::CommitmentIsClosed { commitment: CommitmentId::parse("PO1").unwrap() })
    );
}

#[test]
fn expenditures_liquidate_at_most_the_open_commitment_on_its_own_line() {
    let g = with(
        grant(),
        vec![(
            CommitmentRaised {
                commitment_id: CommitmentId::parse("PO1").unwrap(),
                line: line("WP1-CON"),
                amount: eur("100.00"),
                original: None,
                supplier: "s".into(),
                reference: "r".into(),
            }
            .into(),
            "pm",
            "2022-07-01",
        )],
    );
    let pay = |l: &str, amount: &str| GrantCommand::RecordExpenditure {
        expenditure_id: ExpenditureId::parse("E1").unwrap(),
        line: line(l),
        amount: eur(amount),
        conversion: None,
        incurred_on: d("2022-07-10"),
        supplier: "s".into(),
        invoice: "I1".into(),
        commitment: Some(CommitmentId::parse("PO1").unwrap()),
        correction_of: None,
    };
    let ok = g.when(pay("WP1-CON", "99.50"), "pm", "2022-07-10", None).unwrap();
    assert!(
        matches!(&ok[..], [GrantEvent::ExpenditureRecorded(e)] if e.liquidates.as_ref().unwrap().amount == eur("99.50"))
    );
    assert_eq!(
        g.when(pay("WP1-CON", "100.01"), "pm", "2022-07-10", None),
        Err(DomainError::ExceedsOpenCommitment {
            commitment: CommitmentId::parse("PO1").unwrap(),
            open: eur("100.00"),
            requested: eur("100.01")
        })
    );
    assert_eq!(
        g.when(pay("WP1-PER", "10.00"), "pm", "2022-07-10", None),
        Err(DomainError::CommitmentOnOtherLine {
            commitment: CommitmentId::parse("PO1").unwrap(),
            commitment_line: line("WP1-CON"),
            line: line("WP1-PER")
        })
    );
}

#[test]
fn expenditures_are_dated_in_the_period_outside_closed_periods_and_converted() {
    let g = with(
        grant(),
        vec![(
            ReportingPeriodClosed { period_id: PeriodId::parse("P1").unwrap(), spent: eur("0.00") }.into(),
            "fo",
            "2022-07-05",
        )],
    );
    assert_eq!(
        g.when(spend("E1", "WP1-PER", "1.00", "2023-01-01", "I1"), "pm", "2023-01-02", None),
        Err(DomainError::OutsideGrantPeriod { date: d("2023-01-01"), start: d("2022-01-01"), end: d("2022-12-31") })
    );
    assert_eq!(
        g.when(spend("E1", "WP1-PER", "1.00", "2022-06-30", "I1"), "pm", "2022-07-06", None),
        Err(DomainError::PeriodIsClosed { period: PeriodId::parse("P1").unwrap(), date: d("2022-06-30") })
    );
    let mut foreign = spend("E1", "WP1-CON", "1.00", "2022-07-06", "I1");
    if let GrantCommand::RecordExpenditure { amount, .. } = &mut foreign {
        *amount = usd("108.00");
    }
    assert_eq!(
        g.when(foreign.clone(), "pm", "2022-07-06", None),
        Err(DomainError::ConversionMissing { currency: Currency::USD, grant_currency: Currency::EUR })
    );
    if let GrantCommand::RecordExpenditure { conversion, .. } = &mut foreign {
        *conversion = Some(Conversion { rate: dec!(1.08), source: "ECB".into(), rate_date: d("2022-07-06") });
    }
    let ok = g.when(foreign, "pm", "2022-07-06", None).unwrap();
    assert!(
        matches!(&ok[..], [GrantEvent::ExpenditureRecorded(e)] if e.amount == eur("100.00") && e.original.as_ref().unwrap().amount == usd("108.00"))
    );
    let mut converted_euros = spend("E2", "WP1-CON", "1.00", "2022-07-06", "I2");
    if let GrantCommand::RecordExpenditure { conversion, .. } = &mut converted_euros {
        *conversion = Some(Conversion { rate: dec!(1.08), source: "ECB".into(), rate_date: d("2022-07-06") });
    }
    assert_eq!(
        g.when(converted_euros, "pm", "2022-07-06", None),
        Err(DomainError::ConversionNotApplicable { currency: Currency::EUR })
    );
    let mut rounds_to_nothing = spend("E3", "WP1-CON", "1.00", "2022-07-06", "I3");
    if let GrantCommand::RecordExpenditure { amount, conversion, .. } = &mut rounds_to_nothing {
        *amount = usd("0.01");
        *conversion = Some(Conversion { rate: dec!(3), source: "ECB".into(), rate_date: d("2022-07-06") });
    }
    assert_eq!(
        g.when(rounds_to_nothing, "pm", "2022-07-06", None),
        Err(DomainError::AmountNotPositive { field: "amount", amount: eur("0.00") })
    );
}

#[test]
fn an_invoice_is_recorded_once_unless_its_expenditure_was_reversed() {
    let g = with(grant(), vec![(recorded("E1", "WP1-CON", "10.00", "2022-07-01", "I1"), "pm", "2022-07-01")]);
    assert_eq!(
        g.when(spend("E2", "WP1-PER", "10.00", "2022-07-02", "I1"), "pm", "2022-07-02", None),
        Err(DomainError::DuplicateInvoice {
            supplier: "sup".into(),
            invoice: "I1".into(),
            expenditure: ExpenditureId::parse("E1").unwrap()
        })
    );
    assert_eq!(
        g.when(spend("E1", "WP1-PER", "10.00", "2022-07-02", "I9"), "pm", "2022-07-02", None),
        Err(DomainError::ExpenditureExists { expenditure: ExpenditureId::parse("E1").unwrap() })
    );
    let reversed = with(
        grant(),
        vec![
            (recorded("E1", "WP1-CON", "10.00", "2022-07-01", "I1"), "pm", "2022-07-01"),
            (ExpenditureReversed { expenditure_id: ExpenditureId::parse("E1").unwrap() }.into(), "pm", "2022-07-03"),
        ],
    );
    let mut correction = spend("E2", "WP1-PER", "10.00", "2022-07-01", "I1");
    if let GrantCommand::RecordExpenditure { correction_of, .. } = &mut correction {
        *correction_of = Some(ExpenditureId::parse("E1").unwrap());
    }
    assert!(reversed.when(correction.clone(), "pm", "2022-07-04", None).is_ok());
    assert_eq!(
        g.when(correction, "pm", "2022-07-04", None),
        Err(DomainError::DuplicateInvoice {
            supplier: "sup".into(),
            invoice: "I1".into(),
            expenditure: ExpenditureId::parse("E1").unwrap()
        })
    );
}

#[test]
fn a_reversal_needs_a_reason_an_open_period_and_happens_once() {
    let g = with(grant(), vec![(recorded("E1", "WP1-CON", "10.00", "2022-07-01", "I1"), "pm", "2022-07-01")]);
    let reverse = |id: &str| GrantCommand::ReverseExpenditure { expenditure_id: ExpenditureId::parse(id).unwrap() };
    assert_eq!(
        g.when(reverse("E1"), "pm", "2022-07-02", None),
        Err(DomainError::ReasonRequired { action: "reverse an expenditure" })
    );
    assert_eq!(
        g.when(reverse("E1"), "pm", "2022-07-02", Some("wrong line")),
        Ok(vec![ExpenditureReversed { expenditure_id: ExpenditureId::parse("E1").unwrap() }.into()])
    );
    assert_eq!(
        g.when(reverse("E9"), "pm", "2022-07-02", Some("x")),
        Err(DomainError::UnknownExpenditure { expenditure: ExpenditureId::parse("E9").unwrap() })
    );
    let twice = with(
        grant(),
        vec![
            (recorded("E1", "WP1-CON", "10.00", "2022-07-01", "I1"), "pm", "2022-07-01"),
            (ExpenditureReversed { expenditure_id: ExpenditureId::parse("E1").unwrap() }.into(), "pm", "2022-07-02"),
        ],
    );
    assert_eq!(
        twice.when(reverse("E1"), "pm", "2022-07-03", Some("x")),
        Err(DomainError::AlreadyReversed { expenditure: ExpenditureId::parse("E1").unwrap() })
    );
    let mut correction = spend("E2", "WP1-PER", "10.00", "2022-07-01", "I2");
    if let GrantCommand::RecordExpenditure { correction_of, .. } = &mut correction {
        *correction_of = Some(ExpenditureId::parse("E1").unwrap());
    }
    assert_eq!(
        g.when(correction, "pm", "2022-07-04", None),
        Err(DomainError::CorrectsUnreversed { expenditure: ExpenditureId::parse("E1").unwrap() })
    );
}

#[test]
fn amendments_extend_the_period_only_once_approved() {
    let g = given(grant());
    let request = GrantCommand::RequestAmendment {
        amendment_id: AmendmentId::parse("A1").unwrap(),
        kind: AmendmentKind::NoCostExtension,
        proposed_end: d("2023-03-31"),
    };
    assert!(g.when(request.clone(), "pm", "2022-11-01", None).is_ok());
    let early = GrantCommand::RequestAmendment {
        amendment_id: AmendmentId::parse("A1").unwrap(),
        kind: AmendmentKind::NoCostExtension,
        proposed_end: d("2022-12-31"),
    };
    assert_eq!(
        g.when(early, "pm", "2022-11-01", None),
        Err(DomainError::ExtensionNotLater { end: d("2022-12-31"), proposed_end: d("2022-12-31") })
    );
    let pending = with(
        grant(),
        vec![(
            AmendmentRequested {
                amendment_id: AmendmentId::parse("A1").unwrap(),
                kind: AmendmentKind::NoCostExtension,
                proposed_end: d("2023-03-31"),
            }
            .into(),
            "pm",
            "2022-11-01",
        )],
    );
    assert_eq!(
        pending.when(request, "pm", "2022-11-02", None),
        Err(DomainError::AmendmentExists { amendment: AmendmentId::parse("A1").unwrap() })
    );
    let approve = GrantCommand::ApproveAmendment { amendment_id: AmendmentId::parse("A1").unwrap() };
    assert_eq!(
        pending.when(approve, "fo", "2022-11-10", None),
        Ok(vec![
            AmendmentApproved { amendment_id: AmendmentId::parse("A1").unwrap(), new_end: d("2023-03-31") }.into()
        ])
    );
    // Pending: a January cost is still outside the period; approved: inside.
    assert!(matches!(
        pending.when(spend("E1", "WP1-PER", "1.00", "2023-01-10", "I1"), "pm", "2023-01-11", None),
        Err(DomainError::OutsideGrantPeriod { .. })
    ));
    let approved = with(
        grant(),
        vec![
            (
                AmendmentRequested {
                    amendment_id: AmendmentId::parse("A1").unwrap(),
                    kind: AmendmentKind::NoCostExtension,
                    proposed_end: d("2023-03-31"),
                }
                .into(),
                "pm",
                "2022-11-01",
            ),
            (
                AmendmentApproved { amendment_id: AmendmentId::parse("A1").unwrap(), new_end: d("2023-03-31") }.into(),
                "fo",
                "2022-11-10",
            ),
        ],
    );
    assert!(approved.when(spend("E1", "WP1-PER", "1.00", "2023-01-10", "I1"), "pm", "2023-01-11", None).is_ok());
    let reject = GrantCommand::RejectAmendment { amendment_id: AmendmentId::parse("A1").unwrap() };
    assert_eq!(
        approved.when(reject.clone(), "fo", "2022-11-11", Some("x")),
        Err(DomainError::AmendmentNotPending { amendment: AmendmentId::parse("A1").unwrap() })
    );
    assert_eq!(
        pending.when(reject.clone(), "fo", "2022-11-11", None),
        Err(DomainError::ReasonRequired { action: "reject an amendment" })
    );
    assert_eq!(
        pending.when(reject, "fo", "2022-11-11", Some("no budget")),
        Ok(vec![AmendmentRejected { amendment_id: AmendmentId::parse("A1").unwrap() }.into()])
    );
}

#[test]
fn milestones_are_due_in_the_period_unless_an_amendment_reaches_further() {
    let plan = |id: &str, due: &str, amendment: Option<&str>| GrantCommand::PlanMilestone {
        milestone_id: MilestoneId::parse(id).unwrap(),
        workstream: ws("WP1"),
        kind: MilestoneKind::Deliverable,
        title: "D".into(),
        due_on: d(due),
        amendment: amendment.map(|a| AmendmentId::parse(a).unwrap()),
    };
    let g = with(
        grant(),
        vec![(
            AmendmentRequested {
                amendment_id: AmendmentId::parse("A1").unwrap(),
                kind: AmendmentKind::NoCostExtension,
                proposed_end: d("2023-03-31"),
            }
            .into(),
            "pm",
            "2022-11-01",
        )],
    );
    assert!(g.when(plan("M1", "2022-12-31", None), "co", "2022-11-02", None).is_ok());
    assert_eq!(
        g.when(plan("M1", "2023-01-31", None), "co", "2022-11-02", None),
        Err(DomainError::DueBeyondEnd { due: d("2023-01-31"), end: d("2022-12-31") })
    );
    assert!(g.when(plan("M1", "2023-01-31", Some("A1")), "co", "2022-11-02", None).is_ok());
    assert_eq!(
        g.when(plan("M1", "2023-04-30", Some("A1")), "co", "2022-11-02", None),
        Err(DomainError::AmendmentDoesNotReach { amendment: AmendmentId::parse("A1").unwrap(), due: d("2023-04-30") })
    );
    assert_eq!(
        g.when(plan("M1", "2021-12-31", None), "co", "2022-11-02", None),
        Err(DomainError::OutsideGrantPeriod { date: d("2021-12-31"), start: d("2022-01-01"), end: d("2022-12-31") })
    );
}

#[test]
fn milestones_move_with_a_reason_and_are_achieved_or_cancelled_once() {
    let planned: GrantEvent = MilestonePlanned {
        milestone_id: MilestoneId::parse("M1").unwrap(),
        workstream: ws("WP1"),
        kind: MilestoneKind::Milestone,
        title: "M".into(),
        due_on: d("2022-05-31"),
    }
    .into();
    let g = with(grant(), vec![(planned.clone(), "co", "2022-01-02")]);
    let m1 = MilestoneId::parse("M1").unwrap();
    let move_to =
        GrantCommand::RescheduleMilestone { milestone_id: m1.clone(), due_on: d("2022-06-30"), amendment: None };
    assert_eq!(
        g.when(move_to.clone(), "co", "2022-05-01", None),
        Err(DomainError::ReasonRequired { action: "reschedule a milestone" })
    );
    assert_eq!(
        g.when(move_to.clone(), "co", "2022-05-01", Some("late data")),
        Ok(vec![
            MilestoneRescheduled {
                milestone_id: m1.clone(),
                from: d("2022-05-31"),
                to: d("2022-06-30"),
                amendment: None
            }
            .into()
        ])
    );
    let achieve =
        |on: &str| GrantCommand::AchieveMilestone { milestone_id: m1.clone(), achieved_on: d(on), evidence: None };
    assert_eq!(
        g.when(achieve("2022-05-02"), "co", "2022-05-01", None),
        Err(DomainError::AchievedOutsideRange {
            achieved_on: d("2022-05-02"),
            start: d("2022-01-01"),
            today: d("2022-05-01")
        })
    );
    assert!(matches!(
        g.when(achieve("2021-12-31"), "co", "2022-05-01", None),
        Err(DomainError::AchievedOutsideRange { .. })
    ));
    assert!(g.when(achieve("2022-04-30"), "co", "2022-05-01", None).is_ok());
    let cancel = GrantCommand::CancelMilestone { milestone_id: m1.clone() };
    assert_eq!(
        g.when(cancel.clone(), "co", "2022-05-01", None),
        Err(DomainError::ReasonRequired { action: "cancel a milestone" })
    );
    let achieved = with(
        grant(),
        vec![
            (planned.clone(), "co", "2022-01-02"),
            (
                MilestoneAchieved { milestone_id: m1.clone(), achieved_on: d("2022-04-30"), evidence: None }.into(),
                "co",
                "2022-04-30",
            ),
        ],
    );
    assert_eq!(
        achieved.when(move_to, "co", "2022-05-01", Some("x")),
        Err(DomainError::MilestoneSettled { milestone: m1.clone(), state: "achieved" })
    );
    let cancelled = with(
        grant(),
        vec![
            (planned, "co", "2022-01-02"),
            (MilestoneCancelled { milestone_id: m1.clone() }.into(), "co", "2022-02-01"),
        ],
    );
    assert_eq!(
        cancelled.when(achieve("2022-04-30"), "co", "2022-05-01", None),
        Err(DomainError::MilestoneSettled { milestone: m1, state: "cancelled" })
    );
    assert_eq!(
        g.when(
            GrantCommand::CancelMilestone { milestone_id: MilestoneId::parse("M9").unwrap() },
            "co",
            "2022-05-01",
            Some("x")
        ),
        Err(DomainError::UnknownMilestone { milestone: MilestoneId::parse("M9").unwrap() })
    );
}

#[test]
fn a_period_closes_with_its_totals_and_reopens_only_by_someone_else_with_a_reason() {
    let g = with(
        grant(),
        vec![
            (recorded("E1", "WP1-CON", "10.00", "2022-03-01", "I1"), "pm", "2022-03-01"),
            (recorded("E2", "WP1-CON", "5.00", "2022-07-01", "I2"), "pm", "2022-07-01"),
        ],
    );
    let p1 = PeriodId::parse("P1").unwrap();
    assert_eq!(
        g.when(GrantCommand::ClosePeriod { period_id: p1.clone() }, "fo", "2022-07-05", None),
        Ok(vec![ReportingPeriodClosed { period_id: p1.clone(), spent: eur("10.00") }.into()])
    );
    assert_eq!(
        g.when(GrantCommand::ReopenPeriod { period_id: p1.clone() }, "x", "2022-07-05", Some("r")),
        Err(DomainError::PeriodAlready { period: p1.clone(), state: "open" })
    );
    let closed = with(
        grant(),
        vec![(ReportingPeriodClosed { period_id: p1.clone(), spent: eur("0.00") }.into(), "fo", "2022-07-05")],
    );
    let reopen = GrantCommand::ReopenPeriod { period_id: p1.clone() };
    assert_eq!(
        closed.when(reopen.clone(), "fo", "2022-07-06", Some("late invoice")),
        Err(DomainError::SameActor {
            actor: ActorId::parse("fo").unwrap(),
            action: "reopen a reporting period",
            did: "closed"
        })
    );
    assert_eq!(
        closed.when(reopen.clone(), "head", "2022-07-06", None),
        Err(DomainError::ReasonRequired { action: "reopen a reporting period" })
    );
    assert_eq!(
        closed.when(reopen, "head", "2022-07-06", Some("late invoice")),
        Ok(vec![ReportingPeriodReopened { period_id: p1.clone() }.into()])
    );
    assert_eq!(
        closed.when(GrantCommand::ClosePeriod { period_id: p1.clone() }, "fo", "2022-07-06", None),
        Err(DomainError::PeriodAlready { period: p1, state: "closed" })
    );
    assert_eq!(
        closed.when(GrantCommand::ClosePeriod { period_id: PeriodId::parse("P7").unwrap() }, "fo", "2022-07-06", None),
        Err(DomainError::UnknownPeriod { period: PeriodId::parse("P7").unwrap() })
    );
}

#[test]
fn folding_moves_money_between_committed_spent_and_available() {
    let po = CommitmentId::parse("PO1").unwrap();
    let state = with(
        grant(),
        vec![
            (
                CommitmentRaised {
                    commitment_id: po.clone(),
                    line: line("WP1-CON"),
                    amount: eur("1000.00"),
                    original: None,
                    supplier: "s".into(),
                    reference: "r".into(),
                }
                .into(),
                "pm",
                "2022-02-01",
            ),
            (
                ExpenditureRecorded {
                    liquidates: Some(Liquidation { commitment_id: po.clone(), amount: eur("600.00") }),
                    ..match recorded("E1", "WP1-CON", "600.00", "2022-03-01", "I1") {
                        GrantEvent::ExpenditureRecorded(e) => e,
                        _ => unreachable!(),
                    }
                }
                .into(),
                "pm",
                "2022-03-01",
            ),
        ],
    )
    .state;
    let con = &state.lines[&line("WP1-CON")];
    assert_eq!((con.committed, con.spent, con.available()), (eur("400.00"), eur("600.00"), eur("19000.00")));
    // Before the commitment, everything was available; lowest from then on is today's.
    assert_eq!(con.lowest_available_from(d("2022-01-15")), (eur("19000.00"), d("2022-02-01")));
    // Reversing the liquidating cost gives the amount back to the open commitment.
    let mut reversed = state.clone();
    reversed.apply(&Envelope {
        event: ExpenditureReversed { expenditure_id: ExpenditureId::parse("E1").unwrap() }.into(),
        context: EventContext {
            effective_date: d("2022-03-05"),
            actor: ActorId::parse("pm").unwrap(),
            reason: None,
            command_id: uuid::Uuid::nil(),
            correlation_id: None,
            causation_id: None,
        },
    });
    let con = &reversed.lines[&line("WP1-CON")];
    assert_eq!((con.committed, con.spent), (eur("1000.00"), eur("0.00")));
    assert_eq!(reversed.commitments[&po].open, eur("1000.00"));
}

#[test]
fn requests_and_things_are_created_once_and_must_exist_to_be_acted_on() {
    let r1 = ReallocationId::parse("R1").unwrap();
    let requested: GrantEvent = ReallocationRequested {
        reallocation_id: r1.clone(),
        deltas: vec![
            LineDelta { line: line("WP1-CON"), amount: eur("-1.00") },
            LineDelta { line: line("WP1-PER"), amount: eur("1.00") },
        ],
    }
    .into();
    let g = with(grant(), vec![(requested.clone(), "pm", "2022-03-01")]);
    assert_eq!(
        g.when(realloc("R1", &[("WP1-CON", "-1.00"), ("WP1-PER", "1.00")]), "pm", "2022-03-02", None),
        Err(DomainError::ReallocationExists { reallocation: r1.clone() })
    );
    let decided = with(
        grant(),
        vec![
            (requested, "pm", "2022-03-01"),
            (ReallocationApproved { reallocation_id: r1.clone() }.into(), "fo", "2022-03-02"),
        ],
    );
    assert_eq!(
        decided.when(GrantCommand::ApproveReallocation { reallocation_id: r1.clone() }, "fo", "2022-03-03", None),
        Err(DomainError::ReallocationNotPending { reallocation: r1.clone() })
    );
    let po9 = CommitmentId::parse("PO9").unwrap();
    assert_eq!(
        g.when(GrantCommand::CloseCommitment { commitment_id: po9.clone() }, "pm", "2022-03-02", None),
        Err(DomainError::UnknownCommitment { commitment: po9 })
    );
    let a9 = AmendmentId::parse("A9").unwrap();
    assert_eq!(
        g.when(GrantCommand::ApproveAmendment { amendment_id: a9.clone() }, "fo", "2022-03-02", None),
        Err(DomainError::UnknownAmendment { amendment: a9 })
    );
    let planned: GrantEvent = MilestonePlanned {
        milestone_id: MilestoneId::parse("M1").unwrap(),
        workstream: ws("WP1"),
        kind: MilestoneKind::Report,
        title: "R".into(),
        due_on: d("2022-06-30"),
    }
    .into();
    let with_m1 = with(grant(), vec![(planned, "co", "2022-01-02")]);
    let plan_again = GrantCommand::PlanMilestone {
        milestone_id: MilestoneId::parse("M1").unwrap(),
        workstream: ws("WP1"),
        kind: MilestoneKind::Report,
        title: "R".into(),
        due_on: d("2022-07-31"),
        amendment: None,
    };
    assert_eq!(
        with_m1.when(plan_again, "co", "2022-01-03", None),
        Err(DomainError::MilestoneExists { milestone: MilestoneId::parse("M1").unwrap() })
    );
    assert_eq!(
        g.when(
            GrantCommand::DefineWorkstream { code: ws("GRANT"), title: "reserved".into(), lead: None },
            "pm",
            "2022-03-02",
            None
        ),
        Err(DomainError::WorkstreamExists { workstream: ws("GRANT") })
    );
    assert_eq!(
        g.when(
            GrantCommand::DefineWorkstream {
                code: ws("WP2"),
                title: "Second".into(),
                lead: Some(ActorId::parse("u-7").unwrap())
            },
            "pm",
            "2022-03-02",
            None
        ),
        Ok(vec![
            WorkstreamDefined { code: ws("WP2"), title: "Second".into(), lead: Some(ActorId::parse("u-7").unwrap()) }
                .into()
        ])
    );
}

#[test]
fn a_grant_closes_after_its_start_and_a_closed_commitment_takes_no_liquidation() {
    let g = given(grant());
    assert_eq!(
        g.when(GrantCommand::CloseGrant { closed_on: d("2023-02-28") }, "fo", "2023-02-28", None),
        Ok(vec![GrantClosed { closed_on: d("2023-02-28") }.into()])
    );
    assert_eq!(
        g.when(GrantCommand::CloseGrant { closed_on: d("2021-12-31") }, "fo", "2022-01-01", None),
        Err(DomainError::DatesInverted { start: d("2022-01-01"), end: d("2021-12-31") })
    );
    let po = CommitmentId::parse("PO1").unwrap();
    let closed = with(
        grant(),
        vec![
            (
                CommitmentRaised {
                    commitment_id: po.clone(),
                    line: line("WP1-CON"),
                    amount: eur("100.00"),
                    original: None,
                    supplier: "s".into(),
                    reference: "r".into(),
                }
                .into(),
                "pm",
                "2022-07-01",
            ),
            (CommitmentClosed { commitment_id: po.clone(), released: eur("100.00") }.into(), "pm", "2022-07-02"),
        ],
    );
    let mut pay = spend("E1", "WP1-CON", "50.00", "2022-07-03", "I1");
    if let GrantCommand::RecordExpenditure { commitment, .. } = &mut pay {
        *commitment = Some(po.clone());
    }
    assert_eq!(
        closed.when(pay, "pm", "2022-07-03", None),
        Err(DomainError::CommitmentIsClosed { commitment: po.clone() })
    );
    // Closing released the whole open remainder back to the line.
    let con = &closed.state.lines[&line("WP1-CON")];
    assert_eq!((con.committed, con.available()), (eur("0.00"), eur("20000.00")));
}

#[test]
fn a_rejected_amendment_backs_no_due_date_and_an_approved_one_does() {
    let a1 = AmendmentId::parse("A1").unwrap();
    let requested: GrantEvent = AmendmentRequested {
        amendment_id: a1.clone(),
        kind: AmendmentKind::NoCostExtension,
        proposed_end: d("2023-03-31"),
    }
    .into();
    let plan = GrantCommand::PlanMilestone {
        milestone_id: MilestoneId::parse("M1").unwrap(),
        workstream: ws("WP1"),
        kind: MilestoneKind::Deliverable,
        title: "D".into(),
        due_on: d("2023-02-28"),
        amendment: Some(a1.clone()),
    };
    let rejected = with(
        grant(),
        vec![
            (requested.clone(), "pm", "2022-11-01"),
            (AmendmentRejected { amendment_id: a1.clone() }.into(), "fo", "2022-11-30"),
        ],
    );
    assert_eq!(
        rejected.when(plan.clone(), "co", "2022-12-01", None),
        Err(DomainError::AmendmentDoesNotReach { amendment: a1.clone(), due: d("2023-02-28") })
    );
    let approved = with(
        grant(),
        vec![
            (requested, "pm", "2022-11-01"),
            (AmendmentApproved { amendment_id: a1, new_end: d("2023-03-31") }.into(), "fo", "2022-11-30"),
        ],
    );
    let mut no_citation = plan;
    if let GrantCommand::PlanMilestone { amendment, .. } = &mut no_citation {
        *amendment = None;
    }
    // Once approved, the extended end is the grant's end: no citation needed.
    assert!(approved.when(no_citation, "co", "2022-12-01", None).is_ok());
    assert_eq!(approved.state.grant.as_ref().unwrap().effective_end, d("2023-03-31"));
}

#[test]
fn an_approved_reallocation_moves_current_between_its_lines() {
    let r1 = ReallocationId::parse("R1").unwrap();
    let g = with(
        grant(),
        vec![
            (
                ReallocationRequested {
                    reallocation_id: r1.clone(),
                    deltas: vec![
                        LineDelta { line: line("WP1-CON"), amount: eur("-2500.00") },
                        LineDelta { line: line("WP1-PER"), amount: eur("2500.00") },
                    ],
                }
                .into(),
                "pm",
                "2022-03-01",
            ),
            (ReallocationApproved { reallocation_id: r1 }.into(), "fo", "2022-03-02"),
        ],
    );
    let (con, per) = (&g.state.lines[&line("WP1-CON")], &g.state.lines[&line("WP1-PER")]);
    assert_eq!((con.original, con.current), (eur("20000.00"), eur("17500.00")));
    assert_eq!((per.original, per.current), (eur("40000.00"), eur("42500.00")));
    // Before the approval's date the money was still on WP1-CON.
    assert_eq!(con.lowest_available_from(d("2022-03-01")), (eur("17500.00"), d("2022-03-02")));
}
