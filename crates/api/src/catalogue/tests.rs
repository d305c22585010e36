//! The catalogue is complete and exact: every `ApiError` and every
//! `DomainError` variant, built here, answers a code the catalogue lists,
//! with the catalogue's status, members and headers; and every entry is
//! answered by some variant. The matches without a wildcard make a new
//! variant fail to compile here until it has a sample (and the counts).

use std::collections::{BTreeMap, BTreeSet};

use ::domain::DomainError as D;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::NaiveDate;
use events::{
    ActorId, AmendmentId, CategoryCode, CommitmentId, Currency, ExpenditureId, LineId, MilestoneId, Money, MoneyError,
    PeriodId, ProgrammeId, ReallocationId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;
use serde_json::Value;

use super::*;
use crate::error::{ApiError, FieldError};

/// How many variants `domain_arm` has: one sample each below.
const DOMAIN_VARIANTS: usize = 61;
/// How many variants `api_arm` has.
const API_VARIANTS: usize = 26;

/// The position of a domain variant (no wildcard: a new variant does not
/// compile until it is counted here, and then the test wants its sample).
fn domain_arm(e: &D) -> usize {
    match e {
        D::GrantNotAwarded => 0,
        D::GrantAlreadyAwarded => 1,
        D::GrantIsClosed { .. } => 2,
        D::UnknownProgramme { .. } => 3,
        D::ProgrammeExists { .. } => 4,
        D::UnknownRuleSet { .. } => 5,
        D::IndirectRateAboveCap { .. } => 6,
        D::IndirectRateNotFlat { .. } => 7,
        D::AmountNotPositive { .. } => 8,
        D::AmountAboveLimit { .. } => 9,
        D::GrantTotalAboveLimit { .. } => 10,
        D::CurrencyNotAccepted { .. } => 11,
        D::GrantPeriodTooLong { .. } => 12,
        D::DatesInverted { .. } => 13,
        D::WrongCurrency { .. } => 14,
        D::ReasonRequired { .. } => 15,
        D::SameActor { .. } => 16,
        D::WorkstreamExists { .. } => 17,
        D::UnknownWorkstream { .. } => 18,
        D::UnknownCategory { .. } => 19,
        D::LineExists { .. } => 20,
        D::UnknownLine { .. } => 21,
        D::ExceedsAward { .. } => 22,
        D::IndirectCapExceeded { .. } => 23,
        D::ReallocationNotBalanced { .. } => 24,
        D::ReallocationMalformed => 25,
        D::LineNotTransferable { .. } => 26,
        D::InsufficientAvailable { .. } => 27,
        D::ReallocationExists { .. } => 28,
        D::UnknownReallocation { .. } => 29,
        D::ReallocationNotPending { .. } => 30,
        D::EffectiveDateIsIncurredOn { .. } => 31,
        D::CommitmentExists { .. } => 32,
        D::UnknownCommitment { .. } => 33,
        D::CommitmentIsClosed { .. } => 34,
        D::CommitmentOnOtherLine { .. } => 35,
        D::ExceedsOpenCommitment { .. } => 36,
        D::ConversionMissing { .. } => 37,
        D::ConversionNotApplicable { .. } => 38,
        D::OutsideGrantPeriod { .. } => 39,
        D::PeriodIsClosed { .. } => 40,
        D::DuplicateInvoice { .. } => 41,
        D::ExpenditureExists { .. } => 42,
        D::UnknownExpenditure { .. } => 43,
        D::AlreadyReversed { .. } => 44,
        D::CorrectsUnreversed { .. } => 45,
        D::AmendmentExists { .. } => 46,
        D::UnknownAmendment { .. } => 47,
        D::AmendmentNotPending { .. } => 48,
        D::ExtensionNotLater { .. } => 49,
        D::MilestoneExists { .. } => 50,
        D::UnknownMilestone { .. } => 51,
        D::MilestoneSettled { .. } => 52,
        D::DueBeyondEnd { .. } => 53,
        D::AmendmentDoesNotReach { .. } => 54,
        D::AchievedOutsideRange { .. } => 55,
        D::PeriodExists { .. } => 56,
        D::PeriodsOverlap { .. } => 57,
        D::UnknownPeriod { .. } => 58,
        D::PeriodAlready { .. } => 59,
        D::Money(_) => 60,
    }
}

fn api_arm(e: &ApiError) -> usize {
    match e {
        ApiError::Domain(_) => 0,
        ApiError::DomainAt(..) => 1,
        ApiError::PreconditionFailed { .. } => 2,
        ApiError::InvalidBody(_) => 3,
        ApiError::JsonTooDeep { .. } => 4,
        ApiError::InvalidQuery(_) => 5,
        ApiError::UnsupportedMediaType { .. } => 6,
        ApiError::PayloadTooLarge { .. } => 7,
        ApiError::Unauthorized => 8,
        ApiError::Forbidden => 9,
        ApiError::Csrf(_) => 10,
        ApiError::NotFound(_) => 11,
        ApiError::Exists(_) => 12,
        ApiError::IdempotencyKeyReused => 13,
        ApiError::RateLimited { .. } => 14,
        ApiError::NotReady { .. } => 15,
        ApiError::Timeout { .. } => 16,
        ApiError::TooManyConflicts { .. } => 17,
        ApiError::StorageFull => 18,
        ApiError::Unavailable => 19,
        ApiError::DatabaseUnavailable { .. } => 20,
        ApiError::MethodNotAllowed => 21,
        ApiError::UriTooLong { .. } => 22,
        ApiError::HeadersTooLarge { .. } => 23,
        ApiError::Status(_) => 24,
        ApiError::Internal(_) => 25,
    }
}

fn domain_samples() -> Vec<D> {
    let eur = |cents: i64| Money::new(Decimal::new(cents, 2), Currency::EUR).unwrap();
    let day = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap();
    vec![
        D::GrantNotAwarded,
        D::GrantAlreadyAwarded,
        D::GrantIsClosed { closed_on: day },
        D::UnknownProgramme { programme: ProgrammeId::parse("x1").unwrap() },
        D::ProgrammeExists { programme: ProgrammeId::parse("x1").unwrap() },
        D::UnknownRuleSet { rule_set: RuleSetId::parse("x1").unwrap() },
        D::IndirectRateAboveCap { rate: Decimal::new(25, 2), cap: Decimal::new(25, 2) },
        D::IndirectRateNotFlat { rate: Decimal::new(25, 2), required: Decimal::new(25, 2) },
        D::AmountNotPositive { field: "amount", amount: eur(100) },
        D::AmountAboveLimit { field: "amount", amount: eur(100), limit_units: 1 },
        D::GrantTotalAboveLimit { gross: Decimal::new(25, 2), limit_units: 1 },
        D::CurrencyNotAccepted { currency: Currency::EUR },
        D::GrantPeriodTooLong { start: day, end: day, years_max: 10 },
        D::DatesInverted { start: day, end: day },
        D::WrongCurrency { expected: Currency::EUR, got: Currency::EUR },
        D::ReasonRequired { action: "amount" },
        D::SameActor { actor: ActorId::parse("x1").unwrap(), action: "amount", did: "amount" },
        D::WorkstreamExists { workstream: WorkstreamCode::parse("x1").unwrap() },
        D::UnknownWorkstream { workstream: WorkstreamCode::parse("x1").unwrap() },
        D::UnknownCategory { category: CategoryCode::parse("x1").unwrap(), rule_set: RuleSetId::parse("x1").unwrap() },
        D::LineExists { line: LineId::parse("x1").unwrap() },
        D::UnknownLine { line: LineId::parse("x1").unwrap() },
        D::ExceedsAward { award: eur(100), allocated: eur(100), requested: eur(100), excess: eur(100) },
        D::IndirectCapExceeded { cap: eur(100), indirect: eur(100), base: eur(100), rate: Decimal::new(25, 2) },
        D::ReallocationNotBalanced { net: eur(100) },
        D::ReallocationMalformed,
        D::LineNotTransferable { line: LineId::parse("x1").unwrap(), category: CategoryCode::parse("x1").unwrap() },
        D::InsufficientAvailable {
            line: LineId::parse("x1").unwrap(),
            available: eur(100),
            requested: eur(100),
            on: day,
        },
        D::ReallocationExists { reallocation: ReallocationId::parse("x1").unwrap() },
        D::UnknownReallocation { reallocation: ReallocationId::parse("x1").unwrap() },
        D::ReallocationNotPending { reallocation: ReallocationId::parse("x1").unwrap() },
        D::EffectiveDateIsIncurredOn { effective_date: day, incurred_on: day },
        D::CommitmentExists { commitment: CommitmentId::parse("x1").unwrap() },
        D::UnknownCommitment { commitment: CommitmentId::parse("x1").unwrap() },
        D::CommitmentIsClosed { commitment: CommitmentId::parse("x1").unwrap() },
        D::CommitmentOnOtherLine {
            commitment: CommitmentId::parse("x1").unwrap(),
            commitment_line: LineId::parse("x1").unwrap(),
            line: LineId::parse("x1").unwrap(),
        },
        D::ExceedsOpenCommitment {
            commitment: CommitmentId::parse("x1").unwrap(),
            open: eur(100),
            requested: eur(100),
        },
        D::ConversionMissing { currency: Currency::EUR, grant_currency: Currency::EUR },
        D::ConversionNotApplicable { currency: Currency::EUR },
        D::OutsideGrantPeriod { date: day, start: day, end: day },
        D::PeriodIsClosed { period: PeriodId::parse("x1").unwrap(), date: day },
        D::DuplicateInvoice {
            supplier: "s".into(),
            invoice: "s".into(),
            expenditure: ExpenditureId::parse("x1").unwrap(),
        },
        D::ExpenditureExists { expenditure: ExpenditureId::parse("x1").unwrap() },
        D::UnknownExpenditure { expenditure: ExpenditureId::parse("x1").unwrap() },
        D::AlreadyReversed { expenditure: ExpenditureId::parse("x1").unwrap() },
        D::CorrectsUnreversed { expenditure: ExpenditureId::parse("x1").unwrap() },
        D::AmendmentExists { amendment: AmendmentId::parse("x1").unwrap() },
        D::UnknownAmendment { amendment: AmendmentId::parse("x1").unwrap() },
        D::AmendmentNotPending { amendment: AmendmentId::parse("x1").unwrap() },
        D::ExtensionNotLater { end: day, proposed_end: day },
        D::MilestoneExists { milestone: MilestoneId::parse("x1").unwrap() },
        D::UnknownMilestone { milestone: MilestoneId::parse("x1").unwrap() },
        D::MilestoneSettled { milestone: MilestoneId::parse("x1").unwrap(), state: "amount" },
        D::DueBeyondEnd { due: day, end: day },
        D::AmendmentDoesNotReach { amendment: AmendmentId::parse("x1").unwrap(), due: day },
        D::AchievedOutsideRange { achieved_on: day, start: day, today: day },
        D::PeriodExists { period: PeriodId::parse("x1").unwrap() },
        D::PeriodsOverlap { period: PeriodId::parse("x1").unwrap(), other: PeriodId::parse("x1").unwrap() },
        D::UnknownPeriod { period: PeriodId::parse("x1").unwrap() },
        D::PeriodAlready { period: PeriodId::parse("x1").unwrap(), state: "amount" },
        D::Money(MoneyError::Overflow),
        // Its own `code` member must not replace the tag.
        D::Money(MoneyError::UnknownCurrency { code: "XYZ".into() }),
    ]
}

fn api_samples() -> Vec<ApiError> {
    let field = || vec![FieldError { pointer: "/amount/amount".into(), detail: "not a decimal".into() }];
    let mut all: Vec<ApiError> = domain_samples().into_iter().map(ApiError::Domain).collect();
    all.extend([
        ApiError::DomainAt(D::UnknownLine { line: LineId::parse("WP9-PER").unwrap() }, "/line"),
        ApiError::PreconditionFailed { expected: 3, current: Some(4) },
        ApiError::PreconditionFailed { expected: 3, current: None },
        ApiError::InvalidBody(field()),
        ApiError::JsonTooDeep { depth_max: 64 },
        ApiError::InvalidQuery(field()),
        ApiError::UnsupportedMediaType { given: "text/plain".into() },
        ApiError::PayloadTooLarge { bytes_max: 1024 },
        ApiError::Unauthorized,
        ApiError::Forbidden,
        ApiError::Csrf("no X-CSRF-Token"),
        ApiError::NotFound("grant g".into()),
        ApiError::Exists("token t".into()),
        ApiError::IdempotencyKeyReused,
        ApiError::RateLimited { retry_after_secs: 2 },
        ApiError::NotReady { min_position: 9, applied: 7 },
        ApiError::Timeout { timeout_ms: 30_000 },
        ApiError::TooManyConflicts { attempts: 5 },
        ApiError::StorageFull,
        ApiError::Unavailable,
        ApiError::DatabaseUnavailable { detail: "connection refused".into() },
        ApiError::MethodNotAllowed,
        ApiError::UriTooLong { bytes_max: 8192 },
        ApiError::HeadersTooLarge { bytes_max: 32_768, count_max: 100 },
        ApiError::Internal("disk I/O error".into()),
    ]);
    // The bare answers `problems::bare_errors` gives a body to.
    for status in [400, 404, 405, 413, 414, 415, 418, 431, 500, 502] {
        all.push(ApiError::Status(StatusCode::from_u16(status).unwrap()));
    }
    all
}

/// What one sample answered: status, code, members beyond the standard
/// ones, headers (without `content-type`).
fn answer(e: ApiError) -> (u16, String, Value, BTreeSet<String>, BTreeSet<String>) {
    let response = e.into_response();
    let status = response.status().as_u16();
    let headers: BTreeSet<String> = response
        .headers()
        .keys()
        .filter(|name| *name != header::CONTENT_TYPE)
        .map(|name| name.as_str().to_owned())
        .collect();
    let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(response.into_body(), usize::MAX))
        .expect("a full body")
        .expect("a body");
    let problem: Value = serde_json::from_slice(&body).expect("a JSON body");
    let code = problem["code"].as_str().expect("a code").to_owned();
    let members: BTreeSet<String> = problem
        .as_object()
        .expect("an object")
        .keys()
        .filter(|k| !STANDARD_MEMBERS.contains(&k.as_str()))
        .cloned()
        .collect();
    (status, code, problem, members, headers)
}

#[test]
fn every_variant_is_sampled() {
    let domain: BTreeSet<usize> = domain_samples().iter().map(domain_arm).collect();
    assert_eq!(domain, (0..DOMAIN_VARIANTS).collect(), "a DomainError variant has no sample");
    let api: BTreeSet<usize> = api_samples().iter().map(api_arm).collect();
    assert_eq!(api, (0..API_VARIANTS).collect(), "an ApiError variant has no sample");
}

#[test]
fn the_catalogue_is_what_the_server_answers() {
    let mut members_seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut headers_seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for sample in api_samples() {
        let described = format!("{sample:?}");
        let (status, code, problem, members, headers) = answer(sample);
        let entry = lookup(&code).unwrap_or_else(|| panic!("{described}: code {code} is not in the catalogue"));
        assert_eq!(entry.status, status, "{described}: status of {code}");
        assert_eq!(problem["type"], entry.type_uri.as_str(), "{described}");
        assert_eq!(problem["title"], entry.title.as_str(), "{described}");
        assert_eq!(problem["status"], status, "{described}");
        let listed: BTreeSet<String> = entry.members.iter().map(|m| m.name.clone()).collect();
        assert!(members.is_subset(&listed), "{described}: members {members:?}, catalogue {listed:?}");
        for m in entry.members.iter().filter(|m| m.always) {
            assert!(members.contains(&m.name), "{described}: {code} always carries {}", m.name);
        }
        let listed: BTreeSet<String> = entry.headers.iter().map(|h| h.name.to_lowercase()).collect();
        assert!(headers.is_subset(&listed), "{described}: headers {headers:?}, catalogue {listed:?}");
        members_seen.entry(code.clone()).or_default().extend(members);
        headers_seen.entry(code).or_default().extend(headers);
    }
    // Every entry is answered, and every member and header it lists is
    // seen in some answer (`Allow` comes from the method router, which
    // `problems::bare_errors` keeps).
    for entry in all().problem_types {
        let code = &entry.code;
        let members = members_seen.remove(code).unwrap_or_else(|| panic!("no variant answers {code}"));
        let mut listed: BTreeSet<String> = entry.members.iter().map(|m| m.name.clone()).collect();
        if entry.source == "domain" && code != "unknown-line" {
            listed.remove("errors");
        }
        assert_eq!(members, listed, "members of {code}");
        let headers = headers_seen.remove(code).unwrap_or_default();
        let listed: BTreeSet<String> =
            entry.headers.iter().map(|h| h.name.to_lowercase()).filter(|h| h != "allow").collect();
        assert_eq!(headers, listed, "headers of {code}");
    }
    let generic: Vec<&String> = members_seen.keys().collect();
    assert!(generic.iter().all(|c| c.starts_with("http-")), "codes outside the catalogue: {generic:?}");
}

#[test]
fn domain_codes_are_the_serde_tags() {
    for e in domain_samples() {
        let tag = serde_json::to_value(&e).unwrap()["code"].clone();
        let entry = lookup(tag.as_str().unwrap_or_default());
        assert!(entry.is_some_and(|p| p.source == "domain"), "{e:?}: tag {tag}");
    }
    let money = answer(ApiError::Domain(D::Money(MoneyError::UnknownCurrency { code: "XYZ".into() })));
    assert_eq!((money.1.as_str(), &money.2["type"]), ("money", &Value::from("/problems/money")));
}

#[test]
fn any_three_digit_status_resolves_to_the_generic_entry() {
    let teapot = lookup("http-418").expect("http-418");
    assert_eq!(
        (teapot.status, teapot.type_uri.as_str(), teapot.title.as_str()),
        (418, "/problems/http-418", "Http 418")
    );
    for unknown in ["http-", "http-41", "http-4180", "http-041", "http-abc", "no-such-code", "EXCEEDS-AWARD"] {
        assert!(lookup(unknown).is_none(), "{unknown}");
    }
    let entries = all().problem_types;
    let empty: Vec<&str> =
        entries.iter().filter(|p| p.summary.is_empty() || p.what_to_do.is_empty()).map(|p| p.code.as_str()).collect();
    assert!(empty.is_empty(), "entries without a summary or what to do: {empty:?}");
    let codes: Vec<String> = entries.into_iter().map(|p| p.code).collect();
    let unique: BTreeSet<&String> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len(), "a code is listed twice");
}

#[test]
fn problems_doc() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/problems.md");
    let text = markdown();
    if std::env::var_os("GRANTLOG_WRITE_DOCS").is_some() {
        std::fs::write(&path, &text).expect("docs/problems.md written");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "docs/problems.md is not what the catalogue says; regenerate it with \
         `GRANTLOG_WRITE_DOCS=1 cargo test -p api --lib problems_doc`"
    );
}
