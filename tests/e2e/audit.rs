//! The audit views through the API: line history, corrections, approvals
//! and the funder statement CSV, for auditors and admins only.

use crate::client::amount;
use crate::nctcr::{self, FINANCE, GRANT, MANAGER};

#[tokio::test]
async fn auditors_see_every_line_change_correction_and_approval() {
    let w = nctcr::shared().await;
    let api = w.api();
    let path = |p: &str| format!("/api/v1/grants/{GRANT}/audit/{p}");

    let lines = api.get(&w.tokens.auditor, &path("line-history")).await.expect_status(200).body;
    let fp1 = lines.as_array().unwrap().iter().find(|l| l["line"] == "FP1-CON").unwrap();
    let changes = fp1["changes"].as_array().unwrap();
    let kinds: Vec<&str> = changes.iter().map(|c| c["what"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opened", "committed", "liquidated", "commitment-released", "reallocated-out"], "{fp1}");
    let last = &changes[changes.len() - 1];
    assert_eq!(last["actor"], FINANCE);
    assert_eq!(amount(&last["before"]["current"]), "10000.00");
    assert_eq!(amount(&last["after"]["current"]), "7000.00");
    assert_eq!(amount(&last["after"]["available"]), "2819.50");
    for pair in changes.windows(2) {
        assert_eq!(pair[0]["after"], pair[1]["before"], "a change starts where the previous ended");
    }

    let corrections = api.get(&w.tokens.auditor, &path("corrections")).await.expect_status(200).body;
    let e07 = &corrections[0];
    assert_eq!(e07["original"]["expenditure"], "E07");
    assert_eq!(e07["reversal"]["actor"], MANAGER);
    assert_eq!(e07["reversal"]["reason"], "charged to the wrong flagship: the trip was for FP5");
    assert_eq!(e07["replacement"]["expenditure"], "E08");

    let approvals = api.get(&w.tokens.auditor, &path("approvals")).await.expect_status(200).body;
    let r1 = approvals.as_array().unwrap().iter().find(|a| a["id"] == "R1").unwrap();
    assert_eq!(r1["requested_by"], MANAGER);
    assert_eq!(r1["decision"]["by"], FINANCE);
    assert_eq!(r1["decision"]["approved"], true);
    let amd = approvals.as_array().unwrap().iter().find(|a| a["id"] == "AMD-1").unwrap();
    assert_eq!(amd["decision"]["approved"], false);

    let csv = api.get(&w.tokens.auditor, &path("statement.csv")).await.expect_status(200);
    assert!(csv.header("content-type").unwrap_or_default().starts_with("text/csv"));
    let rows: Vec<&str> = csv.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(rows[0].starts_with("grant,period,"), "{}", rows[0]);
    assert_eq!(rows.len(), 1 + 2 * 7, "two periods x seven FNR categories");
    assert!(rows.iter().any(|r| r.starts_with("nctcr-2022,P1,") && r.contains(",PER,")));

    // Managers and viewers are not auditors.
    for token in [&w.tokens.manager, &w.tokens.viewer] {
        api.get(token, &path("approvals")).await.problem(403, "forbidden");
    }
    api.get(&w.tokens.auditor, "/api/v1/grants/nope/audit/approvals").await.problem(404, "not-found");
}

#[tokio::test]
async fn the_api_export_verifies_offline_against_the_head_the_api_reports() {
    let w = nctcr::shared().await;
    let api = w.api();
    let verified = api.get(&w.tokens.auditor, "/api/v1/audit/verify").await.expect_status(200).body;
    assert_eq!(verified["ok"], true, "{verified}");
    let head = format!("{}:{}", verified["head"]["position"], verified["head"]["hash"].as_str().unwrap());
    let export = api.get(&w.tokens.auditor, "/api/v1/events/export").await.expect_status(200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, &export.text).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/verify_export.py");
    let out = std::process::Command::new("python3").arg(script).arg(&file).args(["--head", &head]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert_eq!(said.trim(), format!("ok {} events, head {head}", verified["checked"]));

    // Resumed after position 40: anchored by the head an auditor had there.
    let lines: Vec<&str> = export.text.lines().collect();
    let at_40: serde_json::Value = serde_json::from_str(lines[39]).unwrap();
    let since = format!("40:{}", at_40["hash"].as_str().unwrap());
    let rest = api.get(&w.tokens.auditor, "/api/v1/events/export?after=40").await.expect_status(200);
    assert_eq!(rest.text.lines().collect::<Vec<_>>(), lines[40..]);
    std::fs::write(&file, &rest.text).unwrap();
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .args(["--head", &head, "--since", &since])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
