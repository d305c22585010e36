//! `decide` keeps every amount and every sum of a grant within the named
//! limits (events::bounds), refuses currencies that are not active ISO 4217
//! currencies and grant periods past the named length, and compares
//! (supplier, invoice) pairs after normalisation. Each refusal is a typed
//! DomainError, so no view can later fail on what a command recorded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use chrono::NaiveDate;
use domain::grant::{AwardGrant, GrantCommand, GrantState, decide};
use domain::{Context, DomainError};
use events::bounds::{AMOUNT_UNITS_MAX, GRANT_GROSS_UNITS_MAX, GRANT_PERIOD_YEARS_MAX};
use events::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn eur(amount: Decimal) -> Money {
    Money::new(amount, Currency::EUR).unwrap()
}

fn ctx(on: &str) -> Context {
    Context {
        actor: ActorId::parse("pm").unwrap(),
        reason: Some("test".into()),
        effective_date: d(on),
        today: d(on),
        programme_exists: true,
    }
}

/// Decides and, when accepted, applies.
fn run(state: &mut GrantState, command: GrantCommand, on: &str) -> Result<(), DomainError> {
    let c = ctx(on);
    for event in decide(state, &command, &c)? {
        let context = EventContext {
            effective_date: c.effective_date,
            actor: c.actor.clone(),
            reason: c.reason.clone(),
            command_id: uuid::Uuid::nil(),
            correlation_id: None,
            causation_id: None,
        };
        state.apply(&Envelope { event, context });
    }
    Ok(())
}

fn award(amount: Money, start: &str, end: &str) -> GrantCommand {
    GrantCommand::Award(AwardGrant {
        grant_id: GrantId::parse("g").unwrap(),
        programme_id: ProgrammeId::parse("p").unwrap(),
        funder: "FNR".into(),
        title: "T".into(),
        acronym: "T".into(),
        beneficiary: "org".into(),
        award: amount,
        start: d(start),
        end: d(end),
        rule_set: RuleSetId::parse("FNR-2022").unwrap(),
        indirect_rate: None,
    })
}

fn limit() -> Decimal {
    Decimal::from(AMOUNT_UNITS_MAX)
}

/// A grant awarded the limit, with one line of the whole award.
fn full_grant() -> GrantState {
    let mut state = GrantState::default();
    run(&mut state, award(eur(limit()), "2022-01-01", "2025-12-31"), "2022-01-01").unwrap();
    let ws =
        GrantCommand::DefineWorkstream { code: WorkstreamCode::parse("W").unwrap(), title: "W".into(), lead: None };
    run(&mut state, ws, "2022-01-01").unwrap();
    let line = GrantCommand::OpenBudgetLine {
        workstream: WorkstreamCode::parse("W").unwrap(),
        category: CategoryCode::parse("PER").unwrap(),
        amount: eur(limit()),
    };
    run(&mut state, line, "2022-01-01").unwrap();
    state
}

fn expenditure(id: &str, amount: Money, conversion: Option<Conversion>, supplier: &str, invoice: &str) -> GrantCommand {
    GrantCommand::RecordExpenditure {
        expenditure_id: ExpenditureId::parse(id).unwrap(),
        line: LineId::parse("W-PER").unwrap(),
        amount,
        conversion,
        incurred_on: d("2022-03-01"),
        supplier: supplier.into(),
        invoice: invoice.into(),
        commitment: None,
        correction_of: None,
    }
}

#[test]
fn an_amount_past_the_limit_is_refused_with_its_numbers() {
    let mut state = GrantState::default();
    let err = run(&mut state, award(eur(Decimal::MAX), "2022-01-01", "2022-12-31"), "2022-01-01").unwrap_err();
    assert_eq!(
        err,
        DomainError::AmountAboveLimit { field: "award", amount: eur(Decimal::MAX), limit_units: AMOUNT_UNITS_MAX }
    );
    let mut state = full_grant();
    let err = run(&mut state, expenditure("X", eur(Decimal::MAX), None, "S", "I"), "2022-03-01").unwrap_err();
    assert!(matches!(err, DomainError::AmountAboveLimit { field: "amount", .. }), "{err:?}");
    run(&mut state, expenditure("X", eur(limit()), None, "S", "I"), "2022-03-01").unwrap();
}

#[test]
fn a_tiny_rate_cannot_blow_a_converted_amount_past_the_limit() {
    let mut state = full_grant();
    let usd = Money::new(dec!(1000000.00), Currency::USD).unwrap();
    let conversion = Conversion { rate: dec!(0.0000000001), source: "x".into(), rate_date: d("2022-03-01") };
    let err = run(&mut state, expenditure("X", usd, Some(conversion.clone()), "S", "I"), "2022-03-01").unwrap_err();
    assert!(matches!(err, DomainError::AmountAboveLimit { field: "amount", .. }), "{err:?}");
    // The smallest rate a client can send, and the largest amount, still divide without overflow.
    let most = Money::new(limit(), Currency::USD).unwrap();
    let err = run(&mut state, expenditure("X", most, Some(conversion), "S", "I"), "2022-03-01").unwrap_err();
    assert!(matches!(err, DomainError::AmountAboveLimit { .. }), "{err:?}");
    let huge = Conversion { rate: dec!(9999999999.9999999999), source: "x".into(), rate_date: d("2022-03-01") };
    let cent = Money::new(dec!(0.01), Currency::USD).unwrap();
    let err = run(&mut state, expenditure("X", cent, Some(huge.clone()), "S", "I"), "2022-03-01").unwrap_err();
    assert!(matches!(err, DomainError::AmountNotPositive { .. }), "rounds to nothing: {err:?}");
    run(&mut state, expenditure("X", most, Some(huge), "S", "I"), "2022-03-01").unwrap();
}

#[test]
fn the_grant_sum_every_view_adds_up_stays_within_its_limit() {
    let mut state = full_grant();
    let mut recorded = 0;
    let refusal = loop {
        let id = format!("X{recorded}");
        // Recorded and reversed: an as-of view between the two still counts it.
        match run(&mut state, expenditure(&id, eur(limit()), None, "S", &id), "2022-03-01") {
            Ok(()) => recorded += 1,
            Err(e) => break e,
        }
        let reverse = GrantCommand::ReverseExpenditure { expenditure_id: ExpenditureId::parse(&id).unwrap() };
        run(&mut state, reverse, "2022-03-02").unwrap();
        assert!(recorded < 200, "never refused");
    };
    assert!(matches!(refusal, DomainError::GrantTotalAboveLimit { limit_units: GRANT_GROSS_UNITS_MAX, .. }));
    assert_eq!(recorded, 98, "award + line + 98 expenditures = the gross limit");
    assert!(state.gross <= Decimal::from(GRANT_GROSS_UNITS_MAX));
}

#[test]
fn only_active_currencies_may_be_awarded_or_spent() {
    for code in ["XXX", "XTS", "XAU", "XAG", "XDR", "BOV", "CLF", "USN"] {
        let money = Money::new(dec!(1000), Currency::parse(code).unwrap()).unwrap();
        let mut state = GrantState::default();
        let err = run(&mut state, award(money, "2022-01-01", "2022-12-31"), "2022-01-01").unwrap_err();
        assert!(matches!(err, DomainError::CurrencyNotAccepted { .. }), "{code}: {err:?}");
    }
    let mut state = full_grant();
    let gold = Money::new(dec!(1), Currency::parse("XAU").unwrap()).unwrap();
    let conversion = Conversion { rate: dec!(0.0005), source: "x".into(), rate_date: d("2022-03-01") };
    let err = run(&mut state, expenditure("X", gold, Some(conversion), "S", "I"), "2022-03-01").unwrap_err();
    assert!(matches!(err, DomainError::CurrencyNotAccepted { .. }), "{err:?}");
}

#[test]
fn a_grant_period_is_at_most_its_named_length() {
    assert_eq!(GRANT_PERIOD_YEARS_MAX, 50);
    let mut state = GrantState::default();
    let err = run(&mut state, award(eur(dec!(1000)), "2022-01-01", "2072-01-01"), "2022-01-01").unwrap_err();
    assert_eq!(err, DomainError::GrantPeriodTooLong { start: d("2022-01-01"), end: d("2072-01-01"), years_max: 50 });
    run(&mut state, award(eur(dec!(1000)), "2022-01-01", "2071-12-31"), "2022-01-01").unwrap();
    let mut state = GrantState::default();
    run(&mut state, award(eur(dec!(1000)), "2022-01-01", "2030-12-31"), "2022-01-01").unwrap();
    let extend = |end: &str| GrantCommand::RequestAmendment {
        amendment_id: AmendmentId::parse("A").unwrap(),
        kind: events::grant::AmendmentKind::NoCostExtension,
        proposed_end: d(end),
    };
    let err = run(&mut state, extend("2099-01-01"), "2022-06-01").unwrap_err();
    assert!(matches!(err, DomainError::GrantPeriodTooLong { .. }), "{err:?}");
    run(&mut state, extend("2071-12-31"), "2022-06-01").unwrap();
}

#[test]
fn an_invoice_is_one_invoice_however_it_is_spelled() {
    let mut state = full_grant();
    run(&mut state, expenditure("X0", eur(dec!(10)), None, "sup-acme", "INV-2022-001"), "2022-03-01").unwrap();
    let variants = [
        ("sup-acme", "INV-2022-001 "),
        ("sup-acme", "INV-2022\u{200B}-001"),
        ("sup-acme", "inv-2022-001"),
        ("SUP-ACME", "INV-2022-001"),
        ("sup-acme", "ＩＮＶ-２０２２-００１"),
        (" sup-acme", "INV-2022-001"),
        ("sup-acme", "\u{FEFF}INV-2022-001"),
    ];
    for (i, (supplier, invoice)) in variants.iter().enumerate() {
        let err =
            run(&mut state, expenditure(&format!("X{}", i + 1), eur(dec!(10)), None, supplier, invoice), "2022-03-01")
                .unwrap_err();
        match err {
            DomainError::DuplicateInvoice { supplier: s, invoice: inv, expenditure } => {
                assert_eq!((s.as_str(), inv.as_str()), (*supplier, *invoice), "the refusal quotes the text as given");
                assert_eq!(expenditure.as_str(), "X0");
            }
            other => panic!("{supplier:?} {invoice:?}: {other:?}"),
        }
    }
    // NFD of an accented invoice number meets its NFC form.
    run(&mut state, expenditure("Y0", eur(dec!(10)), None, "S", "Facture-é"), "2022-03-01").unwrap();
    let err = run(&mut state, expenditure("Y1", eur(dec!(10)), None, "S", "Facture-e\u{301}"), "2022-03-01");
    assert!(matches!(err, Err(DomainError::DuplicateInvoice { .. })), "{err:?}");
}
