//! Locks the stored form of every event: the checked-in JSON Schemas under
//! `events/schema/` and the golden payloads under `events/fixtures/` must
//! match the code. A change that would break stored events fails here.
//!
//! After an intended, versioned change: `UPDATE_EVENT_SCHEMAS=1 cargo test -p events`
//! rewrites the schemas; a new type or version needs a new fixture file
//! (`<Type>.v<N>.json`), written by hand or, for a new type, generated once
//! from the samples below with `WRITE_MISSING_FIXTURES=1`. Existing
//! fixtures are never rewritten.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use events::grant::*;
use events::programme::ProgrammeCreated;
use events::*;
use rust_decimal_macros::dec;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn all_types() -> Vec<(&'static str, u32)> {
    GrantEvent::TYPES.iter().chain(ProgrammeEvent::TYPES).copied().collect()
}

fn all_schemas() -> Vec<(&'static str, u32, schemars::Schema)> {
    let mut out = GrantEvent::schemas();
    out.extend(ProgrammeEvent::schemas());
    out
}

#[test]
fn checked_in_schemas_match_the_code() {
    let update = std::env::var_os("UPDATE_EVENT_SCHEMAS").is_some();
    let mut expected_files = BTreeSet::new();
    let mut stale = Vec::new();
    for (wire, version, schema) in all_schemas() {
        let name = format!("{wire}.v{version}.json");
        let path = dir("schema").join(&name);
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.clone());
        }
        expected_files.insert(name);
    }
    assert!(
        stale.is_empty(),
        "schemas differ from the code (UPDATE_EVENT_SCHEMAS=1 after a versioned change): {stale:?}"
    );
    let on_disk: BTreeSet<String> =
        std::fs::read_dir(dir("schema")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(on_disk, expected_files, "schema files without an event type, or missing");
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn eur(s: &str) -> Money {
    Money::parse(s, Currency::EUR).unwrap()
}

/// One realistic payload per event type, used to write a missing fixture once.
fn samples() -> Vec<(&'static str, serde_json::Value)> {
    let usd = Money::parse("3000.00", Currency::USD).unwrap();
    let conversion = Conversion { rate: dec!(1.0800), source: "ECB reference rate".into(), rate_date: d("2022-04-20") };
    let grant: Vec<GrantEvent> = vec![
        GrantAwarded {
            grant_id: GrantId::parse("nctcr-2022").unwrap(),
            programme_id: ProgrammeId::parse("nctcr").unwrap(),
            funder: "FNR".into(),
            title: "National Centre of Translational Cancer Research".into(),
            acronym: "NCTCR".into(),
            beneficiary: "org-lih".into(),
            award: eur("250000.00"),
            start: d("2022-01-01"),
            end: d("2022-12-31"),
            rule_set: RuleSetId::parse("FNR-2022").unwrap(),
            indirect_rate: dec!(0.25),
        }
        .into(),
        WorkstreamDefined {
            code: WorkstreamCode::parse("FP1").unwrap(),
            title: "Genetic stratification".into(),
            lead: Some(ActorId::parse("u-17").unwrap()),
        }
        .into(),
        ReportingPeriodDefined {
            period_id: PeriodId::parse("P1").unwrap(),
            start: d("2022-01-01"),
            end: d("2022-06-30"),
            report_due: d("2022-08-31"),
        }
        .into(),
        BudgetLineOpened {
            line_id: LineId::parse("FP1-CON").unwrap(),
            workstream: WorkstreamCode::parse("FP1").unwrap(),
            category: CategoryCode::parse("CON").unwrap(),
            amount: eur("10000.00"),
        }
        .into(),
        ReallocationRequested {
            reallocation_id: ReallocationId::parse("R1").unwrap(),
            deltas: vec![
                LineDelta { line: LineId::parse("FP1-CON").unwrap(), amount: eur("-3000.00") },
                LineDelta { line: LineId::parse("FP5-PER").unwrap(), amount: eur("3000.00") },
            ],
        }
        .into(),
        ReallocationApproved { reallocation_id: ReallocationId::parse("R1").unwrap() }.into(),
        ReallocationRejected { reallocation_id: ReallocationId::parse("R2").unwrap() }.into(),
        AmendmentRequested {
            amendment_id: AmendmentId::parse("AMD-1").unwrap(),
            kind: AmendmentKind::NoCostExtension,
            proposed_end: d("2023-03-31"),
        }
        .into(),
        AmendmentApproved { amendment_id: AmendmentId::parse("AMD-2").unwrap(), new_end: d("2023-03-31") }.into(),
        AmendmentRejected { amendment_id: AmendmentId::parse("AMD-1").unwrap() }.into(),
        CommitmentRaised {
            commitment_id: CommitmentId::parse("PO-001").unwrap(),
            line: LineId::parse("FP1-CON").unwrap(),
            amount: eur("4200.00"),
            original: None,
            supplier: "sup-17".into(),
            reference: "PO-2022-001".into(),
        }
        .into(),
        CommitmentClosed { commitment_id: CommitmentId::parse("PO-001").unwrap(), released: eur("19.50") }.into(),
        ExpenditureRecorded {
            expenditure_id: ExpenditureId::parse("E03").unwrap(),
            line: LineId::parse("FP5-OTH").unwrap(),
            amount: eur("2777.78"),
            original: Some(ForeignCost { amount: usd, conversion }),
            incurred_on: d("2022-04-20"),
            supplier: "sup-42".into(),
            invoice: "INV-0420".into(),
            liquidates: Some(Liquidation {
                commitment_id: CommitmentId::parse("PO-009").unwrap(),
                amount: eur("2777.78"),
            }),
            correction_of: Some(ExpenditureId::parse("E00").unwrap()),
        }
        .into(),
        ExpenditureReversed { expenditure_id: ExpenditureId::parse("E07").unwrap() }.into(),
        MilestonePlanned {
            milestone_id: MilestoneId::parse("M02").unwrap(),
            workstream: WorkstreamCode::parse("C0").unwrap(),
            kind: MilestoneKind::Milestone,
            title: "Stakeholder kick-off".into(),
            due_on: d("2022-03-31"),
        }
        .into(),
        MilestoneRescheduled {
            milestone_id: MilestoneId::parse("M11").unwrap(),
            from: d("2022-11-15"),
            to: d("2023-01-31"),
            amendment: Some(AmendmentId::parse("AMD-1").unwrap()),
        }
        .into(),
        MilestoneAchieved {
            milestone_id: MilestoneId::parse("M02").unwrap(),
            achieved_on: d("2022-06-08"),
            evidence: Some("minutes-2022-06-08".into()),
        }
        .into(),
        MilestoneCancelled { milestone_id: MilestoneId::parse("M14").unwrap() }.into(),
        ReportingPeriodClosed { period_id: PeriodId::parse("P1").unwrap(), spent: eur("36020.50") }.into(),
        ReportingPeriodReopened { period_id: PeriodId::parse("P1").unwrap() }.into(),
        GrantClosed { closed_on: d("2023-02-28") }.into(),
    ];
    let mut out: Vec<_> = grant.iter().map(|e| (e.event_type(), e.to_json().unwrap())).collect();
    let programme: ProgrammeEvent =
        ProgrammeCreated { programme_id: ProgrammeId::parse("nctcr").unwrap(), name: "NCTCR".into() }.into();
    out.push((programme.event_type(), programme.to_json().unwrap()));
    out
}

#[test]
fn every_event_type_has_a_golden_fixture_that_decodes_and_re_encodes_unchanged() {
    if std::env::var_os("WRITE_MISSING_FIXTURES").is_some() {
        for (wire, json) in samples() {
            let version = all_types().iter().find(|(w, _)| *w == wire).unwrap().1;
            let path = dir("fixtures").join(format!("{wire}.v{version}.json"));
            if !path.exists() {
                std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap() + "\n").unwrap();
            }
        }
    }
    assert_eq!(samples().len(), all_types().len(), "a sample per event type");
    for (wire, version) in all_types() {
        let path = dir("fixtures").join(format!("{wire}.v{version}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("no fixture {}", path.display()));
        let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
        let encoded = match GrantEvent::decode(wire, version, &text) {
            Ok(e) => e.to_json().unwrap(),
            Err(DecodeError::UnknownType { .. }) => {
                ProgrammeEvent::decode(wire, version, &text).unwrap().to_json().unwrap()
            }
            Err(e) => panic!("{wire} v{version}: {e}"),
        };
        assert_eq!(encoded, fixture, "{wire} v{version} no longer encodes as stored");
    }
    // Every fixture names a known type at a version this build reads.
    for entry in std::fs::read_dir(dir("fixtures")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let (wire, rest) = name.split_once(".v").unwrap();
        let version: u32 = rest.trim_end_matches(".json").parse().unwrap();
        let text = std::fs::read_to_string(dir("fixtures").join(&name)).unwrap();
        let decoded = GrantEvent::decode(wire, version, &text).map(|_| ()).or_else(|e| match e {
            DecodeError::UnknownType { .. } => ProgrammeEvent::decode(wire, version, &text).map(|_| ()),
            e => Err(e),
        });
        assert!(decoded.is_ok(), "{name}: {decoded:?}");
    }
}

#[test]
fn a_v1_expenditure_is_read_as_v2() {
    let text = std::fs::read_to_string(dir("fixtures").join("ExpenditureRecorded.v1.json")).unwrap();
    let GrantEvent::ExpenditureRecorded(e) = GrantEvent::decode("ExpenditureRecorded", 1, &text).unwrap() else {
        panic!("decoded as another type")
    };
    assert_eq!(e.supplier, "sup-17");
    assert_eq!(e.invoice, "INV-2022-0310");
    assert_eq!(e.amount, eur("4180.50"));
    assert_eq!(e.correction_of, None);
    assert_eq!(e.liquidates.unwrap().commitment_id.as_str(), "PO-001");
    // A v1 payload without its document is refused, naming the type and version.
    let broken = r#"{"expenditure_id":"E1","line":"FP1-CON","amount":{"amount":"1.00","currency":"EUR"},"incurred_on":"2022-03-10"}"#;
    let err = GrantEvent::decode("ExpenditureRecorded", 1, broken).unwrap_err();
    assert!(matches!(err, DecodeError::Payload { event_type: "ExpenditureRecorded", version: 1, .. }), "{err:?}");
}

#[test]
fn unknown_types_and_newer_versions_are_refused() {
    assert!(matches!(GrantEvent::decode("GrantExploded", 1, "{}"), Err(DecodeError::UnknownType { .. })));
    assert!(matches!(
        GrantEvent::decode("GrantClosed", 2, r#"{"closed_on":"2023-01-01"}"#),
        Err(DecodeError::NewerVersion { stored: 2, supported: 1, .. })
    ));
    assert!(matches!(
        GrantEvent::decode("GrantClosed", 1, r#"{"closed_on":"2023-01-01","by":"x"}"#),
        Err(DecodeError::Payload { .. })
    ));
}
