//! Valid request bodies the tests share, built from the server's own
//! request types (`grantlog_client::dto`), so a body a test sends as valid
//! cannot drift from what the server accepts. Each builder returns the
//! typed body's JSON, the `Value` the test client posts; the `*_body`
//! builders return the typed body, for a step that sets more of it.
//! Malformed, hostile or out-of-bounds input stays raw JSON in the tests
//! that send it.

use std::fmt::Display;

use chrono::NaiveDate;
use events::grant::{AmendmentKind, MilestoneKind};
use events::{
    AmendmentId, CategoryCode, CommitmentId, Conversion, Currency, ExpenditureId, GrantId, LineId, MilestoneId, Money,
    PeriodId, ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use grantlog_client::dto;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

/// `text` parsed by `parse`, or a panic naming the text: a test's own
/// literal that does not parse is a broken test.
#[track_caller]
pub fn parsed<T, E: Display>(parse: impl FnOnce(String) -> Result<T, E>, text: &str) -> T {
    parse(text.to_owned()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A `YYYY-MM-DD` date.
#[track_caller]
pub fn date(text: &str) -> NaiveDate {
    parsed(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d"), text)
}

/// An amount in euros such as `"4180.50"`.
#[track_caller]
pub fn euros(amount: &str) -> Money {
    money(amount, Currency::EUR)
}

/// An amount in `currency`.
#[track_caller]
pub fn money(amount: &str, currency: Currency) -> Money {
    parsed(|t| Money::parse(&t, currency), amount)
}

/// A signed decimal such as `"-3000.00"`.
#[track_caller]
pub fn decimal(text: &str) -> Decimal {
    parsed(|t| Decimal::from_str_exact(&t), text)
}

/// A typed body as the JSON the server reads.
#[track_caller]
pub fn value<T: Serialize>(body: &T) -> Value {
    serde_json::to_value(body).unwrap_or_else(|e| panic!("a request body serialises: {e}"))
}

/// A programme body.
pub fn programme(id: &str, name: &str, day: Option<&str>) -> Value {
    value(&dto::CreateProgramme {
        id: parsed(ProgrammeId::parse, id),
        name: name.to_owned(),
        effective_date: day.map(date),
        reason: None,
    })
}

/// A grant award body in euros for 2022, effective 2022-01-01.
pub fn award_body(id: &str, programme: &str, amount: &str) -> dto::CreateGrant {
    dto::CreateGrant {
        id: parsed(GrantId::parse, id),
        programme: parsed(ProgrammeId::parse, programme),
        funder: "FNR".to_owned(),
        title: format!("Grant {id}"),
        acronym: id.to_uppercase(),
        award: euros(amount),
        start: date("2022-01-01"),
        end: date("2022-12-31"),
        rule_set: parsed(RuleSetId::parse, "FNR-2022"),
        beneficiary: None,
        indirect_rate: None,
        effective_date: Some(date("2022-01-01")),
        reason: None,
    }
}

/// [`award_body`] as JSON.
pub fn award(id: &str, programme: &str, amount: &str) -> Value {
    value(&award_body(id, programme, amount))
}

/// A workstream body, effective `day`.
pub fn workstream(code: &str, title: &str, day: &str) -> Value {
    value(&dto::CreateWorkstream {
        code: parsed(WorkstreamCode::parse, code),
        title: title.to_owned(),
        lead: None,
        effective_date: Some(date(day)),
        reason: None,
    })
}

/// A reporting period body, effective `day`.
pub fn period(id: &str, start: &str, end: &str, report_due: &str, day: &str) -> Value {
    value(&dto::DefinePeriod {
        id: parsed(PeriodId::parse, id),
        start: date(start),
        end: date(end),
        report_due: date(report_due),
        effective_date: Some(date(day)),
        reason: None,
    })
}

/// A budget line body in euros, effective `day`.
pub fn budget_line(workstream: &str, category: &str, amount: &str, day: &str) -> Value {
    value(&dto::OpenBudgetLine {
        workstream: parsed(WorkstreamCode::parse, workstream),
        category: parsed(CategoryCode::parse, category),
        amount: euros(amount),
        effective_date: Some(date(day)),
        reason: None,
    })
}

/// A commitment body in euros from `sup-biolab`, effective `day`.
pub fn commitment(id: &str, line: &str, amount: &str, reference: &str, day: &str) -> Value {
    commitment_from(id, line, amount, "sup-biolab", reference, day)
}

/// A commitment body in euros from `supplier`, effective `day`.
pub fn commitment_from(id: &str, line: &str, amount: &str, supplier: &str, reference: &str, day: &str) -> Value {
    value(&dto::RaiseCommitment {
        id: parsed(CommitmentId::parse, id),
        line: parsed(LineId::parse, line),
        amount: euros(amount),
        conversion: None,
        supplier: supplier.to_owned(),
        reference: reference.to_owned(),
        effective_date: Some(date(day)),
        reason: None,
    })
}

/// An expenditure body (its business date is `incurred_on`).
pub fn expenditure_body(
    id: &str,
    line: &str,
    amount: Money,
    incurred_on: &str,
    supplier: &str,
    invoice: &str,
    commitment: Option<&str>,
) -> dto::RecordExpenditure {
    dto::RecordExpenditure {
        id: parsed(ExpenditureId::parse, id),
        line: parsed(LineId::parse, line),
        amount,
        conversion: None,
        incurred_on: date(incurred_on),
        supplier: supplier.to_owned(),
        invoice: invoice.to_owned(),
        commitment: commitment.map(|c| parsed(CommitmentId::parse, c)),
        correction_of: None,
        effective_date: None,
        reason: None,
    }
}

/// An expenditure body in euros (its business date is `incurred_on`).
pub fn expenditure(
    id: &str,
    line: &str,
    amount: &str,
    incurred_on: &str,
    supplier: &str,
    invoice: &str,
    commitment: Option<&str>,
) -> Value {
    value(&expenditure_body(id, line, euros(amount), incurred_on, supplier, invoice, commitment))
}

/// A conversion: `rate` units of the cost's currency per euro, from
/// `source`, as of `rate_date`.
pub fn conversion(rate: &str, source: &str, rate_date: &str) -> Conversion {
    Conversion { rate: decimal(rate), source: source.to_owned(), rate_date: date(rate_date) }
}

/// A reallocation body from (line, signed euros) pairs, effective `day`.
pub fn reallocation(id: &str, deltas: &[(&str, &str)], reason: &str, day: &str) -> Value {
    let deltas = deltas
        .iter()
        .map(|(line, amount)| dto::DeltaBody { line: parsed(LineId::parse, line), amount: decimal(amount) })
        .collect();
    value(&dto::RequestReallocation {
        id: parsed(ReallocationId::parse, id),
        deltas,
        effective_date: Some(date(day)),
        reason: Some(reason.to_owned()),
    })
}

/// A no-cost extension to `proposed_end`, effective `day`.
pub fn amendment(id: &str, proposed_end: &str, reason: Option<&str>, day: &str) -> Value {
    value(&dto::RequestAmendment {
        id: parsed(AmendmentId::parse, id),
        kind: AmendmentKind::NoCostExtension,
        proposed_end: date(proposed_end),
        effective_date: Some(date(day)),
        reason: reason.map(str::to_owned),
    })
}

/// A milestone body, effective `day`.
pub fn milestone(id: &str, workstream: &str, kind: MilestoneKind, title: &str, due_on: &str, day: &str) -> Value {
    value(&dto::PlanMilestone {
        id: parsed(MilestoneId::parse, id),
        workstream: parsed(WorkstreamCode::parse, workstream),
        kind,
        title: title.to_owned(),
        due_on: date(due_on),
        amendment: None,
        effective_date: Some(date(day)),
        reason: None,
    })
}

/// A reschedule to `due_on`, backed by `amendment` if any, effective `day`.
pub fn reschedule(due_on: &str, reason: &str, amendment: Option<&str>, day: &str) -> Value {
    value(&dto::RescheduleMilestone {
        due_on: date(due_on),
        amendment: amendment.map(|a| parsed(AmendmentId::parse, a)),
        effective_date: Some(date(day)),
        reason: Some(reason.to_owned()),
    })
}

/// A milestone achieved on `on`, effective that day.
pub fn achieve_body(on: &str) -> dto::AchieveMilestone {
    dto::AchieveMilestone { achieved_on: date(on), evidence: None, effective_date: Some(date(on)), reason: None }
}

/// [`achieve_body`] as JSON.
pub fn achieve(on: &str) -> Value {
    value(&achieve_body(on))
}

/// An action (close, approve, reject, reverse...) effective `day`.
pub fn action(reason: Option<&str>, day: &str) -> Value {
    value(&dto::Action { effective_date: Some(date(day)), reason: reason.map(str::to_owned) })
}

/// A valid expenditure of 1.00 on programme A's grant, unique by `n`.
pub fn small_expenditure(n: u32) -> Value {
    expenditure(&format!("X{n}"), "WP1-CON", "1.00", "2022-08-01", "sup-x", &format!("X-{n}"), None)
}
