//! The binary's command line. Also makes `cargo test --workspace` build the
//! real `grantlog` binary, which the end-to-end tests in `tests/` start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::Command;

#[test]
fn help_names_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_grantlog")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for command in ["serve", "demo"] {
        assert!(text.contains(command), "{command} missing from --help:\n{text}");
    }
}

/// A data directory holding the NCTCR scenario, written by the demo command
/// path (`grantlog demo` stopped once it serves).
fn nctcr_data_dir() -> tempfile::TempDir {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_grantlog"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("GRANTLOG_ADMIN_TOKEN", "t")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().starts_with("grantlog listening on") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    dir
}

fn grantlog(args: &[&str], dir: &tempfile::TempDir) -> (bool, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_grantlog")).args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn replay_prints_domain_md_figures_as_of_30_september() {
    let dir = nctcr_data_dir();
    let (ok, text, err) =
        grantlog(&["replay", "--grant", "nctcr-2022", "--view", "budget", "--as-of", "2022-09-30"], &dir);
    assert!(ok, "{err}");
    for figure in ["53,297.85", "9,859.57", "39,438.28", "21.3191%", "74.7945%", "burn index 0.285"] {
        assert!(text.contains(figure), "{figure} missing:\n{text}");
    }
    // Columns: line, original, in, out, current, committed, spent, available, spent %.
    let row = |line: &str| -> Vec<String> {
        let row = text.lines().find(|l| l.starts_with(line)).unwrap();
        row.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("FP1-CON")[4..8], ["7,000.00", "0.00", "4,180.50", "2,819.50"]);
    assert_eq!(row("FP3-SUB")[4..8], ["8,000.00", "4,000.00", "4,000.00", "0.00"]);
    assert_eq!(row("FP5-OTH")[6], "2,777.78");

    let (ok, json, err) =
        grantlog(&["replay", "--grant", "nctcr-2022", "--view", "budget", "--as-of", "2022-09-30", "--json"], &dir);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["spent"]["amount"], "53297.85");
    assert_eq!(v["burn_index"], 0.285);

    let (ok, text, err) = grantlog(&["replay", "--grant", "nctcr-2022", "--view", "timeline"], &dir);
    assert!(ok, "{err}");
    let m11 = text.lines().find(|l| l.starts_with("M11")).unwrap();
    assert!(m11.contains("2022-12-20") && m11.contains("achieved") && m11.contains("35"), "{m11}");
}

#[test]
fn replay_known_before_anything_was_recorded_finds_no_grant() {
    let dir = nctcr_data_dir();
    let (ok, _, err) =
        grantlog(&["replay", "--grant", "nctcr-2022", "--view", "budget", "--known-at", "2000-01-01T00:00:00Z"], &dir);
    assert!(!ok);
    assert!(err.contains("not been awarded"), "{err}");
    let (ok, _, err) = grantlog(&["replay", "--grant", "nope", "--view", "budget"], &dir);
    assert!(!ok && err.contains("not been awarded"), "{err}");
}
