//! The binary's command line. Also makes `cargo test --workspace` build the
//! real `grantlog` binary, which the end-to-end tests in `tests/` start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::Command;

#[test]
fn help_names_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_grantlog")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // Each command is listed at the start of a line of its own, not merely
    // named in another command's description.
    let listed: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    for command in ["serve", "demo", "replay", "verify", "export", "verify-export", "rebuild-views", "token"] {
        assert!(listed.contains(&command), "{command} missing from --help:\n{text}");
    }
}

#[test]
fn serve_names_every_bound_as_a_flag_and_an_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_grantlog")).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for (flag, env) in [
        ("--view-cache-bytes-max", "GRANTLOG_VIEW_CACHE_BYTES_MAX"),
        ("--grant-cache-events-max", "GRANTLOG_GRANT_CACHE_EVENTS_MAX"),
        ("--header-read-timeout-ms", "GRANTLOG_HEADER_READ_TIMEOUT_MS"),
        ("--idle-timeout-ms", "GRANTLOG_IDLE_TIMEOUT_MS"),
        ("--connections-max", "GRANTLOG_CONNECTIONS_MAX"),
    ] {
        assert!(text.contains(flag) && text.contains(env), "{flag} / {env} missing from serve --help:\n{text}");
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

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_grantlog")).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap())
}

fn python_verdict(file: &std::path::Path, head: &str) -> (i32, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/verify_export.py");
    let out = Command::new("python3").arg(script).arg(file).args(["--head", head]).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn verify_export_and_verify_export_agree_with_the_python_verifier() {
    let dir = nctcr_data_dir();
    let data = dir.path().to_str().unwrap();
    let (code, text) = run(&["verify", "--data-dir", data]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("ok 79 events, head 79:"), "{text}");
    let head = text.split_whitespace().nth(4).unwrap().to_owned();

    let file = dir.path().join("export.ndjson");
    let (code, text) = run(&["export", "--data-dir", data, "-o", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let (code, ours) = run(&["verify-export", file.to_str().unwrap(), "--head", &head]);
    assert_eq!((code, ours.trim()), (0, format!("ok 79 events, head {head}").as_str()));
    assert_eq!(python_verdict(&file, &head), (0, ours.clone()));

    // One byte of one hashed payload changed: both verifiers name line 10.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Only the hashed text changes (the first occurrence is in data_json).
    lines[9] = lines[9].replacen("2022-12-31", "2022-12-30", 1);
    assert_ne!(lines[9], text.lines().nth(9).unwrap(), "the tamper applied");
    let tampered = dir.path().join("tampered.ndjson");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let (code, ours) = run(&["verify-export", tampered.to_str().unwrap(), "--head", &head]);
    assert_eq!(code, 1, "{ours}");
    assert!(ours.starts_with("bad at line 10 position 10: "), "{ours}");
    assert_eq!(python_verdict(&tampered, &head), (1, ours));

    // The CloudEvents form verifies too.
    let ce = dir.path().join("export.ce.json");
    let (code, _) = run(&["export", "--data-dir", data, "--format", "cloudevents", "-o", ce.to_str().unwrap()]);
    assert_eq!(code, 0);
    let (code, ours) = run(&["verify-export", ce.to_str().unwrap(), "--head", &head]);
    assert_eq!(code, 0, "{ours}");
}

#[test]
fn verify_names_the_first_tampered_position_and_a_rollback() {
    let dir = nctcr_data_dir();
    let data = dir.path().to_str().unwrap();
    let (_, text) = run(&["verify", "--data-dir", data]);
    let head = text.split_whitespace().nth(4).unwrap().to_owned();
    // An auditor recorded a head that today's log does not contain.
    let forged = format!("40:{}", "ab".repeat(32));
    let (code, text) = run(&["verify", "--data-dir", data, "--since", &forged]);
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("bad at position 40: not-a-prefix"), "{text}");
    let (code, text) = run(&["verify", "--data-dir", data, "--since", &head]);
    assert_eq!(code, 0, "{text}");

    // A forger drops the triggers and edits one stored payload.
    let db = rusqlite::Connection::open(dir.path().join("events.sqlite")).unwrap();
    let triggers: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in triggers {
        db.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
    }
    db.execute("UPDATE events SET data = replace(data, '0', '1') WHERE position = 33", []).unwrap();
    drop(db);
    let (code, text) = run(&["verify", "--data-dir", data]);
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("bad at position 33: hash-mismatch"), "{text}");
    let (code, text) = run(&["verify", "--data-dir", "/nonexistent/grantlog"]);
    assert_eq!(code, 2, "{text}");
}
