//! `grantlog-scale build` then `measure` at a tiny size, end to end, with
//! the real `grantlog` and `grantlog-load` binaries (not timed).

// The helpers below are test code too (clippy only knows `#[test]` functions).
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A workspace binary: `env_var`, else next to the test executable's
/// `deps/` directory (where `cargo test --workspace` builds it).
fn binary(name: &str, env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{env_var}={} is not a file", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // The test executable is target/<profile>/deps/end_to_end-<hash>.
    let profile = exe.parent().and_then(Path::parent).expect("the test executable lives in target/<profile>/deps");
    let bin = profile.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the {name} binary is missing at {}: build it first (`cargo build -p cli -p load`, or run \
         `cargo test --workspace`), or set {env_var} to its path",
        bin.display()
    );
    bin
}

fn scale() -> Command {
    Command::new(env!("CARGO_BIN_EXE_grantlog-scale"))
}

#[test]
fn build_then_measure_reports_every_figure_and_the_budget_shows_the_built_expenditures() {
    let grantlog = binary("grantlog", "GRANTLOG_BIN");
    let load = binary("grantlog-load", "GRANTLOG_LOAD_BIN");
    let root = tempfile::tempdir().expect("a temporary directory");
    let dir = root.path().join("scale");

    let built = scale()
        .args(["build", "--events", "3000", "--grants", "10", "--dir"])
        .arg(&dir)
        .output()
        .expect("grantlog-scale build runs");
    assert!(built.status.success(), "build failed: {}", String::from_utf8_lossy(&built.stderr));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("scale.json")).expect("the manifest"))
            .expect("the manifest is JSON");
    let grants = manifest["grants"].as_array().expect("the manifest lists grants");
    assert_eq!(grants.len(), 10);
    // 1 programme event, then per grant 3 set-up events and 296 expenditures.
    assert_eq!(grants[0]["expenditures"], 296);
    assert_eq!(manifest["events"], 1 + 10 * (3 + 296));

    let measured = scale()
        .args(["measure", "--json", "--reads", "200", "--verify-runs", "2"])
        .args(["--append-seconds", "1", "--append-warmup", "0", "--appenders", "8"])
        .arg("--bin")
        .arg(&grantlog)
        .arg("--load-bin")
        .arg(&load)
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("grantlog-scale measure runs");
    assert!(measured.status.success(), "measure failed: {}", String::from_utf8_lossy(&measured.stderr));
    let report: serde_json::Value = serde_json::from_slice(&measured.stdout).expect("measure prints one JSON object");
    let r = &report["reports"][0];
    assert_eq!(r["events"], manifest["events"], "catch-up saw the whole built log: {r}");
    assert_eq!(r["budget_check"], true, "the budget shows exactly the built expenditures: {r}");
    assert_eq!(r["rebuild_matched"], true, "{r}");
    assert_eq!(r["appends_checked"], true, "{r}");
    assert_eq!(r["verify_seconds"].as_array().map(Vec::len), Some(2), "{r}");
    for figure in [
        "catch_up_ready_seconds",
        "catch_up_seconds",
        "catch_up_events_per_second",
        "catch_up_peak_rss_bytes",
        "restart_ready_seconds",
        "restart_seconds",
        "restart_rss_bytes",
        "rss_after_reads_bytes",
        "verify_median_events_per_second",
        "verify_slowest_events_per_second",
        "rebuild_events_per_second",
        "appends_per_second",
        "appends_empty_per_second",
        "appends_ratio",
        "events_bytes_per_event",
        "views_bytes_per_event",
    ] {
        let value = r[figure].as_f64().unwrap_or(0.0);
        assert!(value > 0.0, "{figure} is {value} in {r}");
    }
    assert!(!root.path().join("scale.empty-log").exists(), "the empty log's directory is removed");

    // The server's own budget of one grant, on the data directory as
    // measured: exactly the built expenditures' sum.
    let spent = grants[3]["spent"].as_str().expect("a built sum").to_owned();
    let token = manifest["admin_token"].as_str().expect("the admin token").to_owned();
    let grant = grants[3]["id"].as_str().expect("a grant id").to_owned();
    let shown = budget_spent(&grantlog, &dir, &token, &grant);
    assert_eq!(shown, spent, "grant {grant}'s line WS1-PER");
}

/// Starts the server on `dir`, reads `grant`'s budget, stops it; the spent
/// of line WS1-PER.
fn budget_spent(grantlog: &Path, dir: &Path, token: &str, grant: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let mut child = tokio::process::Command::new(grantlog)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--admin-token", token])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        use tokio::io::AsyncBufReadExt as _;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next_line().await.expect("the server's stdout").expect("a listening line");
            if let Some(url) = line.trim().strip_prefix("grantlog listening on ") {
                break url.trim().trim_end_matches('/').to_owned();
            }
        };
        let http = reqwest::Client::builder().no_proxy().build().expect("an HTTP client");
        let budget: serde_json::Value = http
            .get(format!("{url}/api/v1/grants/{grant}/budget"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET budget")
            .error_for_status()
            .expect("the budget answers 200")
            .json()
            .await
            .expect("the budget is JSON");
        let _ = child.kill().await;
        let line = budget["lines"]
            .as_array()
            .and_then(|lines| lines.iter().find(|l| l["line"] == "WS1-PER"))
            .unwrap_or_else(|| panic!("no line WS1-PER in {budget}"));
        line["spent"]["amount"].as_str().unwrap_or_else(|| panic!("no spent amount in {line}")).to_owned()
    })
}
