//! The load program: measures grantlog's HTTP targets (QUALITY.md).
//!
//! It starts the real `grantlog serve` on a free port with a fresh data
//! directory (or uses a running server given `--url` and an admin `--token`),
//! sets up one programme, `--tokens-per-client` manager tokens per client,
//! used in turn (so the server's per-token rate limit, 1,000/s by default,
//! stays on but is not what is measured) and `--grants` grants, each with one
//! workstream and one PER line far larger than the load can spend. Then, for
//! `--seconds` after a warm-up that is not counted, `--clients` concurrent
//! clients (one tokio task and one keep-alive HTTP client each):
//!
//! - `expenditures`: `POST /api/v1/grants/{g}/expenditures`, a random grant,
//!   unique ids and invoices, small amounts, `incurred_on` inside the period;
//! - `reads`: `GET /api/v1/grants/{g}/budget`, a random grant.
//!
//! It prints requests, seconds, requests/s and the p50, p90, p99 and max
//! latencies against the targets, the median of `--runs` runs. Any non-2xx
//! answer or transport error is reported and makes the exit code 1, and so
//! does a budget that does not show exactly the acknowledged expenditures.
//! The load generator runs on the same cores as the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::NaiveDate;
use clap::{Parser, ValueEnum};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The PER line of every grant: far more than a run can spend.
const LINE: &str = "WS1-PER";
/// The first and last `incurred_on` used (inside the grant period, in the past).
const INCURRED_FIRST: (i32, u32, u32) = (2022, 1, 1);
const INCURRED_DAYS: u64 = 4 * 365;
/// How long to wait for the spawned server's "listening" line.
const SERVER_READY_SECONDS: u64 = 30;
/// How long a graceful stop may take before the server is killed.
const SERVER_STOP_SECONDS: u64 = 15;
/// Characters of an error answer kept as its example.
const SAMPLE_CHARS_MAX: usize = 600;

#[derive(Debug, Parser)]
#[command(name = "grantlog-load", version, about = "Load program for grantlog's HTTP targets (QUALITY.md)")]
struct Args {
    /// The grantlog binary to start [default: `grantlog` next to this program].
    #[arg(long, env = "GRANTLOG_BIN")]
    bin: Option<PathBuf>,
    /// Use the server running at URL (e.g. http://127.0.0.1:8080) instead of starting one.
    #[arg(long, requires = "token")]
    url: Option<String>,
    /// An admin token of the server given by --url.
    #[arg(long, requires = "url")]
    token: Option<String>,
    /// Another server on the same shared log (PostgreSQL) to spread the
    /// clients over (repeatable): client i talks to server i mod N, the
    /// first being --url or the started one. The set-up is done through the
    /// first; each other server must accept its tokens before the load starts.
    #[arg(long = "also-url")]
    also_urls: Vec<String>,
    /// Concurrent clients, each with its own keep-alive connection and manager tokens.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    clients: u32,
    /// Grants the load is spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=9999))]
    grants: u32,
    /// Manager tokens per client, used in turn: with the server's per-token
    /// rate limit (default 1,000/s), clients x this x limit must exceed the rate.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    tokens_per_client: u32,
    /// Measured seconds of each phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Warm-up seconds before each phase's measurement (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Which phases to run.
    #[arg(long, value_enum, default_value_t = PhaseArg::Both)]
    phase: PhaseArg,
    /// Repeat the phases N times and report the median of the runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Print the results as one JSON object (progress goes to stderr).
    #[arg(long)]
    json: bool,
    /// Send every expenditure with an `Idempotency-Key` (its own id), as a
    /// careful client does: the log then records the key's command id and
    /// the request's fingerprint, and the handler looks the key up first.
    #[arg(long)]
    idempotency_keys: bool,
    /// An extra argument for the started `grantlog serve` (repeatable), e.g.
    /// `--server-arg=--rate-limit-per-second=0`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PhaseArg {
    Expenditures,
    Reads,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Expenditures,
    Reads,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Expenditures => "expenditures",
            Phase::Reads => "reads",
        }
    }

    fn target(self) -> Target {
        match self {
            Phase::Expenditures => {
                Target { requests_per_second: 15_000.0, p99_ms: 10.0, text: ">= 15,000 commands/s, p99 <= 10 ms" }
            }
            Phase::Reads => {
                Target { requests_per_second: 50_000.0, p99_ms: 5.0, text: ">= 50,000 reads/s, p99 <= 5 ms" }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Target {
    requests_per_second: f64,
    p99_ms: f64,
    text: &'static str,
}

/// Writes one line of results to stdout.
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// Writes one line of progress or diagnosis to stderr.
#[allow(clippy::print_stderr)]
fn note(line: &str) {
    eprintln!("{line}");
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            note(&format!("grantlog-load: cannot start the runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            note(&format!("grantlog-load: {e:#}"));
            ExitCode::from(2)
        }
    }
}

/// Runs everything; `Ok(false)` when a request failed or the check did not hold.
async fn run(args: Args) -> Result<bool> {
    if !(args.seconds > 0.0 && args.seconds.is_finite() && args.warmup >= 0.0 && args.warmup.is_finite()) {
        bail!("--seconds must be > 0 and --warmup >= 0");
    }
    let (mut server, base, admin, server_text) = match (&args.url, &args.token) {
        (Some(url), Some(token)) => {
            (None, url.trim_end_matches('/').to_owned(), token.clone(), format!("running server at {url}"))
        }
        _ => {
            let bin = match &args.bin {
                Some(bin) => bin.clone(),
                None => std::env::current_exe()
                    .context("locating this program")?
                    .parent()
                    .ok_or_else(|| anyhow!("this program has no directory"))?
                    .join("grantlog"),
            };
            let token = random_hex(32);
            let server = Server::start(&bin, &args.server_args, &token).await?;
            let base = server.url.clone();
            let text = format!("started {} {} (pid {})", bin.display(), server.args_text, server.pid);
            (Some(server), base, token, text)
        }
    };
    let outcome = tokio::select! {
        outcome = measure(&args, &base, &admin, &server_text, server.as_ref().map(|s| s.pid)) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Some(server) = server.take() {
        server.stop().await;
    }
    outcome
}

async fn measure(args: &Args, base: &str, admin: &str, server_text: &str, server_pid: Option<u32>) -> Result<bool> {
    note(&format!("grantlog-load: {server_text}"));
    let http = client()?;
    health(&http, base).await?;
    let started = Instant::now();
    let setup =
        set_up(&http, base, admin, (args.clients * args.tokens_per_client) as usize, args.grants as usize).await?;
    note(&format!(
        "grantlog-load: set up programme {}, {} grants with line {LINE}, {} manager tokens in {:.2} s",
        setup.programme,
        setup.grants.len(),
        setup.tokens.len(),
        started.elapsed().as_secs_f64()
    ));
    let mut bases = vec![base.to_owned()];
    bases.extend(args.also_urls.iter().map(|u| u.trim_end_matches('/').to_owned()));
    for other in &bases[1..] {
        accepts_tokens(&http, other, &setup).await?;
    }
    let context = Arc::new(Context::new(&bases, &setup, args.tokens_per_client as usize, args.idempotency_keys)?);
    let phases: &[Phase] = match args.phase {
        PhaseArg::Expenditures => &[Phase::Expenditures],
        PhaseArg::Reads => &[Phase::Reads],
        PhaseArg::Both => &[Phase::Expenditures, Phase::Reads],
    };
    let mut results: BTreeMap<&'static str, Vec<PhaseResult>> = BTreeMap::new();
    let mut failures = Failures::default();
    // What the budgets must show: the acknowledged cents per grant, all runs.
    let mut expected = vec![0_u64; setup.grants.len()];
    let mut uncertain = 0_u64;
    let mut head = 0_u64;
    let mut checks = Vec::new();
    for run in 0..args.runs as usize {
        for &phase in phases {
            let outcome = run_phase(&context, phase, run, args, server_pid).await;
            for (grant, cents) in outcome.acknowledged.iter().enumerate() {
                expected[grant] += cents;
            }
            uncertain += outcome.uncertain;
            head = head.max(outcome.head);
            failures.merge(outcome.failures);
            let result = outcome.result;
            let line = format!("run {}/{} {}", run + 1, args.runs, result.line());
            if args.json {
                note(&line)
            } else {
                say(&line)
            }
            results.entry(phase.name()).or_default().push(result);
            if phase == Phase::Expenditures {
                let check = verify(&http, base, admin, &setup, &expected, head, uncertain).await;
                let line = format!("run {}/{} check: {}", run + 1, args.runs, check.text);
                if args.json {
                    note(&line)
                } else {
                    say(&line)
                }
                checks.push(check);
            }
        }
    }
    let medians: Vec<Median> =
        phases.iter().filter_map(|phase| results.get(phase.name()).map(|runs| Median::of(*phase, runs))).collect();
    let checks_ok = checks.iter().all(|c| c.ok);
    let ok = failures.is_empty() && checks_ok;
    if args.json {
        let report = json!({
            "server": server_text,
            "url": base,
            "tokens_per_client": args.tokens_per_client,
            "idempotency_keys": args.idempotency_keys,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "clients": args.clients,
            "grants": args.grants,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "runs": args.runs,
            "phases": medians,
            "failures": failures.counts,
            "failure_examples": failures.examples,
            "checks": checks,
            "ok": ok,
        });
        say(&serde_json::to_string_pretty(&report)?);
    } else {
        say(&format!(
            "\n{server_text}\n{} clients ({} manager token(s) each, used in turn), {} grants, {} s measured after {} s \
             warm-up, median of {} run(s); load generator and server share {} cores",
            args.clients,
            args.tokens_per_client,
            args.grants,
            args.seconds,
            args.warmup,
            args.runs,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        ));
        say(&format!(
            "{:<13} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>12}  {:<36} result",
            "phase", "requests", "seconds", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "cpu load/srv", "target"
        ));
        let pct = |p: Option<f64>| p.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "?".into());
        for m in &medians {
            say(&format!(
                "{:<13} {:>9.0} {:>7.2} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>12}  {:<36} {}",
                m.phase,
                m.requests,
                m.seconds,
                m.requests_per_second,
                m.p50_ms,
                m.p90_ms,
                m.p99_ms,
                m.max_ms,
                format!("{}/{}", pct(m.load_cpu_pct), pct(m.server_cpu_pct)),
                m.target.text,
                if m.met { "MET" } else { "NOT MET" }
            ));
        }
        if failures.is_empty() {
            say("failures: none");
        } else {
            say("FAILURES (non-2xx answers and transport errors, warm-up included):");
            for (kind, count) in &failures.counts {
                say(&format!("  {count:>8} x {kind}"));
                if let Some(example) = failures.examples.get(kind) {
                    say(&format!("           e.g. {example}"));
                }
            }
        }
        if !checks.is_empty() {
            say(&format!("budget check: {}", if checks_ok { "ok" } else { "FAILED" }));
        }
    }
    Ok(ok)
}

/// The spawned server.
#[derive(Debug)]
struct Server {
    child: tokio::process::Child,
    pid: u32,
    url: String,
    data_dir: PathBuf,
    args_text: String,
}

impl Server {
    async fn start(bin: &PathBuf, extra: &[String], admin_token: &str) -> Result<Server> {
        if !bin.exists() {
            bail!("no grantlog binary at {} (build it: cargo build --release -p cli; or pass --bin)", bin.display());
        }
        let data_dir = std::env::temp_dir().join(format!("grantlog-load-{}-{}", std::process::id(), unix_nanos()));
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into(), "--data-dir".into()];
        args.push(data_dir.display().to_string());
        args.extend(extra.iter().cloned());
        let args_text = args.join(" ");
        let mut command = tokio::process::Command::new(bin);
        command
            .args(&args)
            .env("GRANTLOG_ADMIN_TOKEN", admin_token)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                remove_dir(&data_dir);
                return Err(e).with_context(|| format!("starting {}", bin.display()));
            }
        };
        let pid = child.id().unwrap_or(0);
        let Some(stdout) = child.stdout.take() else {
            remove_dir(&data_dir);
            bail!("the server's stdout is not piped");
        };
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(SERVER_READY_SECONDS), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.trim().strip_prefix("grantlog listening on ") {
                    return Ok(Some(url.trim().trim_end_matches('/').to_owned()));
                }
                note(&format!("grantlog-load: server stdout: {line}"));
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let url = match ready {
            Ok(Ok(Some(url))) => url,
            other => {
                let why = match other {
                    Err(_) => format!("no 'grantlog listening on' line within {SERVER_READY_SECONDS} s"),
                    Ok(Err(e)) => format!("reading its stdout: {e}"),
                    _ => "it closed stdout without a 'grantlog listening on' line".into(),
                };
                let _ = child.start_kill();
                let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                remove_dir(&data_dir);
                bail!("the server did not start: {why} (exit: {status})");
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                note(&format!("grantlog-load: server stdout: {line}"));
            }
        });
        Ok(Server { child, pid, url, data_dir, args_text })
    }

    /// SIGTERM, wait (then kill), remove the data directory.
    async fn stop(mut self) {
        let term = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let graceful = matches!(term, Ok(s) if s.success());
        let status = if graceful {
            tokio::time::timeout(Duration::from_secs(SERVER_STOP_SECONDS), self.child.wait()).await.ok()
        } else {
            None
        };
        match status {
            Some(Ok(status)) if status.success() => {}
            Some(Ok(status)) => note(&format!("grantlog-load: the server exited after SIGTERM with {status}")),
            _ => {
                note("grantlog-load: the server did not stop on SIGTERM in time; killing it");
                let _ = self.child.kill().await;
            }
        }
        remove_dir(&self.data_dir);
    }
}

fn remove_dir(dir: &PathBuf) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        note(&format!("grantlog-load: cannot remove {}: {e}", dir.display()));
    }
}

fn unix_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    let mut text = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let _ = write!(text, "{:02x}", rng.random::<u8>());
    }
    text
}

/// One keep-alive HTTP/1.1 client.
fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .build()
        .context("building an HTTP client")
}

async fn health(http: &reqwest::Client, base: &str) -> Result<()> {
    let url = format!("{base}/healthz");
    let response = http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET /healthz: expected 2xx, got {}", response.status());
    }
    Ok(())
}

/// What the setup created.
#[derive(Debug)]
struct Setup {
    programme: String,
    grants: Vec<String>,
    tokens: Vec<String>,
}

/// What a typed client call failed with, naming the call.
fn failed(what: &str) -> impl FnOnce(grantlog_client::ClientError) -> anyhow::Error + '_ {
    move |e| anyhow!("{what}: {e}")
}

/// An id of the project's kinds, from a text the program made.
fn id<T, E: std::fmt::Display>(parse: impl FnOnce(String) -> Result<T, E>, text: String) -> Result<T> {
    let shown = text.clone();
    parse(text).map_err(|e| anyhow!("{shown:?}: {e}"))
}

/// The set-up, through the typed client (`crates/client`): the server's
/// own request types, so a renamed field fails to compile here.
async fn set_up(http: &reqwest::Client, base: &str, admin: &str, clients: usize, grants: usize) -> Result<Setup> {
    use grantlog_client::{Client, ViewQuery, WriteOptions, dto};
    let api = Client::with_http(http.clone(), base, admin);
    let none = WriteOptions::default();
    // A fresh prefix, so a running server can be loaded again and again.
    let prefix = format!("load{:x}", unix_nanos() / 1_000_000);
    let programme = id(events::ProgrammeId::parse, prefix.clone())?;
    let body =
        dto::CreateProgramme { id: programme.clone(), name: "Load test".into(), effective_date: None, reason: None };
    api.create_programme(&body, &none).await.map_err(failed("POST /api/v1/programmes"))?;
    let mut tokens = Vec::with_capacity(clients);
    for i in 0..clients {
        let body = dto::CreateToken {
            name: id(events::ActorId::parse, format!("{prefix}-c{i:04}"))?,
            role: api::auth::Role::Manager,
            programmes: vec![programme.clone()],
            expires_at: None,
        };
        tokens.push(api.create_token(&body).await.map_err(failed("POST /api/v1/tokens"))?.token);
    }
    let effective = NaiveDate::from_ymd_opt(2022, 1, 1);
    let eur = |amount: &str| events::Money::parse(amount, events::Currency::EUR).map_err(|e| anyhow!("{amount}: {e}"));
    let workstream = id(events::WorkstreamCode::parse, "WS1".into())?;
    let mut ids = Vec::with_capacity(grants);
    for g in 0..grants {
        let grant = id(events::GrantId::parse, format!("{prefix}-g{g:04}"))?;
        let award = dto::CreateGrant {
            id: grant.clone(),
            programme: programme.clone(),
            funder: "FNR".into(),
            title: format!("Load test grant {g}"),
            acronym: format!("LOAD{g}"),
            award: eur("1000000000.00")?,
            start: NaiveDate::from_ymd_opt(2022, 1, 1).ok_or_else(|| anyhow!("start"))?,
            end: NaiveDate::from_ymd_opt(2030, 12, 31).ok_or_else(|| anyhow!("end"))?,
            rule_set: id(events::RuleSetId::parse, "FNR-2022".into())?,
            beneficiary: None,
            indirect_rate: None,
            effective_date: effective,
            reason: None,
        };
        api.create_grant(&award, &none).await.map_err(failed("POST /api/v1/grants"))?;
        let ws = dto::CreateWorkstream {
            code: workstream.clone(),
            title: "Load".into(),
            lead: None,
            effective_date: effective,
            reason: None,
        };
        api.create_workstream(grant.as_str(), &ws, &none).await.map_err(failed("POST .../workstreams"))?;
        let line = dto::OpenBudgetLine {
            workstream: workstream.clone(),
            category: id(events::CategoryCode::parse, "PER".into())?,
            amount: eur("800000000.00")?,
            effective_date: effective,
            reason: None,
        };
        api.open_budget_line(grant.as_str(), &line, &none).await.map_err(failed("POST .../budget-lines"))?;
        ids.push(grant.to_string());
    }
    let Some(first) = ids.first() else { bail!("--grants must be at least 1") };
    let Some(manager) = tokens.first() else { bail!("no tokens") };
    // A manager can read its grant's budget, and it shows the line.
    let budget = api.with_token(manager.as_str()).budget(first, &ViewQuery::default()).await;
    let budget = budget.map_err(failed(&format!("GET /api/v1/grants/{first}/budget")))?;
    if line_spent_cents(&budget).is_none() {
        bail!("GET /api/v1/grants/{first}/budget: expected a line {LINE} with spent EUR");
    }
    Ok(Setup { programme: programme.to_string(), grants: ids, tokens })
}

/// The line [`LINE`]'s spent, in whole cents.
fn line_spent_cents(budget: &grantlog_client::BudgetView) -> Option<u64> {
    use rust_decimal::prelude::ToPrimitive as _;
    let line = budget.lines.iter().find(|l| l.line.as_str() == LINE)?;
    let cents = line.spent.amount().checked_mul(rust_decimal::Decimal::ONE_HUNDRED)?;
    if cents.fract().is_zero() { cents.to_u64() } else { None }
}

fn clip(text: &str) -> String {
    if text.chars().count() <= SAMPLE_CHARS_MAX {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(SAMPLE_CHARS_MAX).collect::<String>())
    }
}

/// What the clients share: URLs, tokens, dates.
/// Waits (10 s at most) until the server at `base` accepts the set-up's
/// tokens, made through another server of the same log.
async fn accepts_tokens(http: &reqwest::Client, base: &str, setup: &Setup) -> Result<()> {
    let (Some(token), Some(grant)) = (setup.tokens.last(), setup.grants.first()) else { return Ok(()) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = http
            .get(format!("{base}/api/v1/grants/{grant}/budget"))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {base}"))?
            .status();
        if status.is_success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{base} still answers {status} to the tokens made through the first server");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug)]
struct Context {
    /// By server, then by grant.
    expenditure_urls: Vec<Vec<reqwest::Url>>,
    expenditure_paths: Vec<String>,
    /// By server, then by grant.
    budget_urls: Vec<Vec<reqwest::Url>>,
    budget_paths: Vec<String>,
    authorizations: Vec<HeaderValue>,
    tokens_per_client: usize,
    dates: Vec<String>,
    idempotency_keys: bool,
}

impl Context {
    fn new(bases: &[String], setup: &Setup, tokens_per_client: usize, idempotency_keys: bool) -> Result<Self> {
        let expenditure_paths: Vec<String> =
            setup.grants.iter().map(|g| format!("/api/v1/grants/{g}/expenditures")).collect();
        let budget_paths: Vec<String> = setup.grants.iter().map(|g| format!("/api/v1/grants/{g}/budget")).collect();
        let authorizations = setup
            .tokens
            .iter()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).context("a token is not a header value"))
            .collect::<Result<_>>()?;
        let (y, m, d) = INCURRED_FIRST;
        let first = NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| anyhow!("bad first date"))?;
        let dates = first.iter_days().take(INCURRED_DAYS as usize).map(|d| d.format("%Y-%m-%d").to_string()).collect();
        Ok(Context {
            expenditure_urls: bases.iter().map(|b| urls(b, &expenditure_paths)).collect::<Result<_>>()?,
            expenditure_paths,
            budget_urls: bases.iter().map(|b| urls(b, &budget_paths)).collect::<Result<_>>()?,
            budget_paths,
            authorizations,
            tokens_per_client,
            dates,
            idempotency_keys,
        })
    }
}

/// `base` + each path, parsed once (not on every request).
fn urls(base: &str, paths: &[String]) -> Result<Vec<reqwest::Url>> {
    paths.iter().map(|p| reqwest::Url::parse(&format!("{base}{p}")).with_context(|| format!("URL {base}{p}"))).collect()
}

/// Non-2xx answers and transport errors, by kind, with a first example each.
#[derive(Debug, Default)]
struct Failures {
    counts: BTreeMap<String, u64>,
    examples: BTreeMap<String, String>,
}

impl Failures {
    fn add(&mut self, kind: String, example: impl FnOnce() -> String) {
        if !self.examples.contains_key(&kind) {
            self.examples.insert(kind.clone(), example());
        }
        *self.counts.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Failures) {
        for (kind, count) in other.counts {
            *self.counts.entry(kind).or_default() += count;
        }
        for (kind, example) in other.examples {
            self.examples.entry(kind).or_insert(example);
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// One client's share of a phase.
#[derive(Debug, Default)]
struct ClientOutcome {
    /// Microseconds of the 2xx requests completed inside the measured window.
    latencies: Vec<u32>,
    failures: Failures,
    /// Acknowledged cents per grant (all of the phase, warm-up included).
    acknowledged: Vec<u64>,
    /// Transport errors: requests whose outcome is unknown.
    uncertain: u64,
    /// The body of the last acknowledged write (its `position` is the client's highest).
    last_write: Option<Vec<u8>>,
}

/// A phase's merged outcome.
#[derive(Debug)]
struct PhaseOutcome {
    result: PhaseResult,
    failures: Failures,
    acknowledged: Vec<u64>,
    uncertain: u64,
    head: u64,
}

#[derive(Debug, Clone, Serialize)]
struct PhaseResult {
    phase: &'static str,
    requests: u64,
    seconds: f64,
    requests_per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    failures: u64,
    /// CPU used by this program over the phase (warm-up included), % of one core.
    load_cpu_pct: Option<f64>,
    /// CPU used by the started server over the phase, % of one core.
    server_cpu_pct: Option<f64>,
    met: bool,
}

impl PhaseResult {
    fn line(&self) -> String {
        let pct = |p: Option<f64>| p.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "?".into());
        format!(
            "{}: {} requests in {:.2} s = {:.0}/s; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
             {} failed; cpu: load {}, server {}; {}",
            self.phase,
            self.requests,
            self.seconds,
            self.requests_per_second,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.failures,
            pct(self.load_cpu_pct),
            pct(self.server_cpu_pct),
            if self.met { "MET" } else { "NOT MET" }
        )
    }
}

/// The median of the runs, metric by metric.
#[derive(Debug, Serialize)]
struct Median {
    phase: &'static str,
    requests: f64,
    seconds: f64,
    requests_per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    load_cpu_pct: Option<f64>,
    server_cpu_pct: Option<f64>,
    target: Target,
    met: bool,
    runs: Vec<PhaseResult>,
}

impl Median {
    fn of(phase: Phase, runs: &[PhaseResult]) -> Median {
        let m = |f: fn(&PhaseResult) -> f64| round(median(runs.iter().map(f).collect()), 3);
        let target = phase.target();
        let requests_per_second = m(|r| r.requests_per_second);
        let p99_ms = m(|r| r.p99_ms);
        Median {
            phase: phase.name(),
            requests: m(|r| r.requests as f64),
            seconds: m(|r| r.seconds),
            requests_per_second,
            p50_ms: m(|r| r.p50_ms),
            p90_ms: m(|r| r.p90_ms),
            p99_ms,
            max_ms: m(|r| r.max_ms),
            load_cpu_pct: runs.iter().map(|r| r.load_cpu_pct).collect::<Option<Vec<_>>>().map(|v| round(median(v), 1)),
            server_cpu_pct: runs
                .iter()
                .map(|r| r.server_cpu_pct)
                .collect::<Option<Vec<_>>>()
                .map(|v| round(median(v), 1)),
            target,
            met: requests_per_second >= target.requests_per_second && p99_ms <= target.p99_ms,
            runs: runs.to_vec(),
        }
    }
}

/// User + system CPU seconds of a process (`self` or a pid), from /proc (Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm)": state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// `value` to `decimals` places (for a tidy JSON report).
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

async fn run_phase(
    context: &Arc<Context>,
    phase: Phase,
    run: usize,
    args: &Args,
    server_pid: Option<u32>,
) -> PhaseOutcome {
    let clients = args.clients as usize;
    let grants = context.budget_urls.first().map_or(0, Vec::len);
    note(&format!(
        "grantlog-load: run {} {}: {clients} clients, {} s warm-up + {} s",
        run + 1,
        phase.name(),
        args.warmup,
        args.seconds
    ));
    let cpu_before = (cpu_seconds("self"), server_pid.and_then(|pid| cpu_seconds(&pid.to_string())));
    let wall = Instant::now();
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.seconds);
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let context = Arc::clone(context);
        tasks.push(tokio::spawn(client_loop(context, phase, run, client, start, measure_from, until)));
    }
    let mut latencies = Vec::new();
    let mut failures = Failures::default();
    let mut acknowledged = vec![0_u64; grants];
    let mut uncertain = 0;
    let mut head = 0;
    for task in tasks {
        match task.await {
            Ok(outcome) => {
                latencies.extend_from_slice(&outcome.latencies);
                failures.merge(outcome.failures);
                for (sum, cents) in acknowledged.iter_mut().zip(&outcome.acknowledged) {
                    *sum += cents;
                }
                uncertain += outcome.uncertain;
                if let Some(body) = outcome.last_write {
                    match serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("position")?.as_u64()) {
                        Some(position) => head = head.max(position),
                        None => failures.add("write answer without a numeric `position`".into(), || {
                            clip(&String::from_utf8_lossy(&body))
                        }),
                    }
                }
            }
            Err(e) => failures.add("client task panicked".into(), || e.to_string()),
        }
    }
    let wall = wall.elapsed().as_secs_f64();
    let cpu_pct = |before: Option<f64>, after: Option<f64>| Some(round((after? - before?) / wall * 100.0, 1));
    let load_cpu_pct = cpu_pct(cpu_before.0, cpu_seconds("self"));
    let server_cpu_pct = cpu_pct(cpu_before.1, server_pid.and_then(|pid| cpu_seconds(&pid.to_string())));
    latencies.sort_unstable();
    let seconds = args.seconds;
    let requests = latencies.len() as u64;
    let requests_per_second = round(requests as f64 / seconds, 1);
    let p99_ms = percentile_ms(&latencies, 0.99);
    let target = phase.target();
    let result = PhaseResult {
        phase: phase.name(),
        requests,
        seconds,
        requests_per_second,
        p50_ms: percentile_ms(&latencies, 0.50),
        p90_ms: percentile_ms(&latencies, 0.90),
        p99_ms,
        max_ms: latencies.last().map(|&us| f64::from(us) / 1000.0).unwrap_or(0.0),
        failures: failures.counts.values().sum(),
        load_cpu_pct,
        server_cpu_pct,
        met: requests_per_second >= target.requests_per_second && p99_ms <= target.p99_ms,
    };
    PhaseOutcome { result, failures, acknowledged, uncertain, head }
}

async fn client_loop(
    context: Arc<Context>,
    phase: Phase,
    run: usize,
    client: usize,
    start: Instant,
    measure_from: Instant,
    until: Instant,
) -> ClientOutcome {
    let grants = context.budget_urls.first().map_or(0, Vec::len);
    let mut outcome = ClientOutcome { acknowledged: vec![0; grants], ..ClientOutcome::default() };
    let http = match client_for_load() {
        Ok(http) => http,
        Err(e) => {
            outcome.failures.add("cannot build an HTTP client".into(), || format!("{e:#}"));
            return outcome;
        }
    };
    // This client's tokens: a contiguous share of all of them, used in turn.
    let share = context.tokens_per_client.max(1);
    let first = (client * share) % context.authorizations.len();
    let mine: Vec<HeaderValue> = context.authorizations.iter().cycle().skip(first).take(share).cloned().collect();
    let mut turn = 0_usize;
    let server = client % context.expenditure_urls.len().max(1);
    let seed = ((run as u64) << 32) | client as u64;
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut sequence = 0_u64;
    tokio::time::sleep_until(start.into()).await;
    while Instant::now() < until {
        let grant = rng.random_range(0..grants);
        let authorization = mine[turn % mine.len()].clone();
        turn += 1;
        let mut cents = 0;
        let mut id = String::new();
        let mut date = "";
        let request = match phase {
            Phase::Expenditures => {
                sequence += 1;
                id = format!("r{run}-c{client}-n{sequence}");
                cents = rng.random_range(100_u64..10_000);
                date = &context.dates[rng.random_range(0..context.dates.len())];
                let post = http
                    .post(context.expenditure_urls[server][grant].clone())
                    .header(AUTHORIZATION, authorization.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(expenditure_body(&id, cents, date));
                if context.idempotency_keys { post.header("idempotency-key", id.as_str()) } else { post }
            }
            Phase::Reads => {
                http.get(context.budget_urls[server][grant].clone()).header(AUTHORIZATION, authorization.clone())
            }
        };
        let describe = || match phase {
            Phase::Expenditures => {
                format!("POST {} {}", context.expenditure_paths[grant], expenditure_body(&id, cents, date))
            }
            Phase::Reads => format!("GET {}", context.budget_paths[grant]),
        };
        let sent = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        let done = Instant::now();
        match answer {
            Ok((status, body)) if status.is_success() => {
                if done >= measure_from && done < until {
                    let micros = done.duration_since(sent).as_micros();
                    outcome.latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
                if phase == Phase::Expenditures {
                    outcome.acknowledged[grant] += cents;
                    outcome.last_write = Some(body.to_vec());
                }
            }
            Ok((status, body)) => {
                let code = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_default();
                outcome.failures.add(format!("{} {} {code}", phase.name(), status.as_u16()), || {
                    format!("{} -> expected 2xx, got {status}: {}", describe(), clip(&String::from_utf8_lossy(&body)))
                });
            }
            Err(e) => {
                outcome.uncertain += 1;
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else if e.is_body() || e.is_decode() {
                    "body"
                } else {
                    "request"
                };
                outcome
                    .failures
                    .add(format!("{} transport error ({kind})", phase.name()), || format!("{} -> {e:#}", describe()));
                // Do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    outcome
}

/// The body of one expenditure: `id` is also the invoice number.
fn expenditure_body(id: &str, cents: u64, date: &str) -> String {
    format!(
        concat!(
            r#"{{"id":"{id}","line":"{line}","amount":{{"amount":"{units}.{cents:02}","currency":"EUR"}},"#,
            r#""incurred_on":"{date}","supplier":"sup-load","invoice":"{id}"}}"#
        ),
        id = id,
        line = LINE,
        units = cents / 100,
        cents = cents % 100,
        date = date
    )
}

/// The client of one load task: one keep-alive connection.
fn client_for_load() -> Result<reqwest::Client> {
    client()
}

/// Whether every budget shows exactly the acknowledged expenditures.
#[derive(Debug, Serialize)]
struct Check {
    ok: bool,
    text: String,
    mismatches: Vec<String>,
}

async fn verify(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    setup: &Setup,
    expected: &[u64],
    head: u64,
    uncertain: u64,
) -> Check {
    let mut mismatches = Vec::new();
    for (grant, want) in setup.grants.iter().zip(expected) {
        let path = format!("/api/v1/grants/{grant}/budget?min_position={head}");
        let api = grantlog_client::Client::with_http(http.clone(), base, admin);
        match api.budget(grant, &grantlog_client::ViewQuery::at_position(head)).await {
            Ok(budget) => match line_spent_cents(&budget) {
                Some(got) if got == *want => {}
                Some(got) => mismatches.push(format!(
                    "GET {path}: expected {LINE} spent {}.{:02} (acknowledged), got {}.{:02}",
                    want / 100,
                    want % 100,
                    got / 100,
                    got % 100
                )),
                None => mismatches.push(format!("GET {path}: no {LINE} spent")),
            },
            Err(e) => mismatches.push(format!("GET {path}: {e}")),
        }
    }
    let total: u64 = expected.iter().sum();
    let what = format!(
        "{} budgets read at min_position={head} against EUR {}.{:02} acknowledged",
        setup.grants.len(),
        total / 100,
        total % 100
    );
    if mismatches.is_empty() {
        Check { ok: true, text: format!("ok: {what}"), mismatches }
    } else if uncertain > 0 {
        // A request whose answer was lost may have been recorded: not a proof of loss.
        let text = format!(
            "{} differences, but {uncertain} requests had no answer (may have been recorded): {what}; first: {}",
            mismatches.len(),
            mismatches[0]
        );
        Check { ok: false, text, mismatches }
    } else {
        let text = format!("FAILED: {} of {what}; first: {}", mismatches.len(), mismatches[0]);
        Check { ok: false, text, mismatches }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_made_expenditure_body_is_the_servers_own_type() {
        // The hot loop formats its bodies for speed; they must read as the
        // server's request type and serialise back to the same JSON.
        let text = expenditure_body("E-1", 12_345, "2022-03-01");
        let typed: grantlog_client::dto::RecordExpenditure = serde_json::from_str(&text).unwrap();
        assert_eq!(typed.amount.amount(), rust_decimal::Decimal::new(12_345, 2));
        assert_eq!(typed.line.as_str(), LINE);
        let again: Value = serde_json::to_value(&typed).unwrap();
        assert_eq!(again, serde_json::from_str::<Value>(&text).unwrap());
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert!((percentile_ms(&sorted, 0.50) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&sorted, 0.99) - 99.0).abs() < 1e-9);
        assert!((percentile_ms(&sorted, 1.0) - 100.0).abs() < 1e-9);
        assert!((percentile_ms(&[], 0.5)).abs() < 1e-9);
    }

    #[test]
    fn median_of_odd_and_even_runs() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
    }
}
