//! The tour `grantlog demo` prints works pasted into another shell: one
//! without the server's environment (so no `GRANTLOG_ADMIN_TOKEN`), line by
//! line, in the order printed.

use std::process::Command;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::harness::{ADMIN_TOKEN, Server, run_bounded};

fn line_spent(budget: &Value, line: &str) -> Decimal {
    let lines = budget["lines"].as_array().cloned().unwrap_or_default();
    let found = lines.iter().find(|l| l["line"] == line).unwrap_or_else(|| panic!("no {line} in {budget}"));
    found["spent"]["amount"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_lines_demo_prints_work_pasted_into_a_shell_without_its_environment() {
    let server = Server::start_with(&["demo"]);
    let printed = server.printed();
    let tour: Vec<&str> =
        printed.iter().skip_while(|l| !l.starts_with("try")).skip(1).filter_map(|l| l.strip_prefix("  ")).collect();
    let curl_lines: Vec<&str> = tour.iter().copied().filter(|l| l.starts_with("curl ")).collect();
    assert!(curl_lines.len() >= 5, "the tour: {printed:#?}");
    // The read that waits for the write, and the position it waits for.
    let wait = curl_lines.iter().position(|l| l.contains("min_position=")).expect("a read waiting for the write");
    let waits_for: u64 = curl_lines[wait]
        .split("min_position=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a position in {}", curl_lines[wait]));
    // The budget before the tour, once the views hold the whole demo log
    // (everything before the write the tour makes).
    let path = format!("/api/v1/grants/nctcr-2022/budget?min_position={}", waits_for - 1);
    let before = server.api().get(ADMIN_TOKEN, &path).await;
    assert_eq!(before.status, 200, "{}", before.text);
    let dir = tempfile::tempdir().unwrap();
    let mut script = String::from("set -u\n");
    let mut curls = 0;
    for line in &tour {
        if line.starts_with("curl ") {
            curls += 1;
            // What a user reads on the screen: the status and the body.
            script.push_str(&format!(
                "{line} --max-time 3 -o {dir}/body-{curls} -w '%{{http_code}}\\n' || true\n",
                dir = dir.path().display()
            ));
        } else {
            script.push_str(line);
            script.push('\n');
        }
    }
    let (code, stdout, stderr) = run_bounded(
        Command::new("bash").arg("-c").arg(&script).env_clear().env("PATH", std::env::var("PATH").unwrap()),
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{script}\n{stdout}\n{stderr}");
    let statuses: Vec<&str> = stdout.lines().collect();
    assert_eq!(statuses.len(), curls, "{script}\n{stdout}\n{stderr}");
    for (i, status) in statuses.iter().enumerate() {
        assert!(status.starts_with('2'), "line {} of the tour answered {status}:\n{script}", i + 1);
    }
    // The write's answer names the position the printed read waits for,
    // and that read includes the write.
    let bodies: Vec<Value> = (1..=curls)
        .map(|i| std::fs::read_to_string(dir.path().join(format!("body-{i}"))).unwrap_or_default())
        .map(|t| serde_json::from_str(&t).unwrap_or(Value::Null))
        .collect();
    let write = curl_lines.iter().position(|l| l.contains("-X POST")).expect("a write in the tour");
    assert!(write < wait, "the tour writes before it waits: {tour:#?}");
    assert_eq!(
        bodies[write]["position"].as_u64(),
        Some(waits_for),
        "the write answers the position the read waits for"
    );
    let read = &bodies[wait];
    let moved = line_spent(read, "FP1-CON") - line_spent(&before.body, "FP1-CON");
    assert_eq!(moved, Decimal::new(12000, 2), "the read after the write includes it: {read}");
}
