//! The load program end to end: it starts the real server (the `grantlog`
//! binary beside it, built by the workspace's `cargo test`), sets up
//! through the typed client, runs both phases briefly, and its own check
//! (every budget shows exactly the acknowledged expenditures) holds.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_load_has_no_failures_and_every_budget_shows_what_was_acknowledged() {
    let out = Command::new(env!("CARGO_BIN_EXE_grantlog-load"))
        .args([
            "--clients",
            "2",
            "--grants",
            "2",
            "--tokens-per-client",
            "1",
            "--seconds",
            "1",
            "--warmup",
            "0",
            "--json",
            // Two tokens would meet the per-token rate limit on a fast
            // machine: the test is about the program, not the limit.
            "--server-arg=--rate-limit-per-second=0",
        ])
        .output()
        .expect("grantlog-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["ok"], true, "{report}");
    let phases = report["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2, "expenditures and reads: {report}");
    let checks = report["checks"].as_array().expect("checks");
    assert!(!checks.is_empty() && checks.iter().all(|c| c["ok"] == true), "{report}");
    assert!(report["failures"].as_object().is_none_or(|f| f.is_empty()), "{report}");
}
