//! `grantlog-scale measure`: the figures of issue 14 on a built data
//! directory, in one pass, by running the real binaries.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::oneshot;

use crate::build::Manifest;
use crate::note;

/// How long a graceful stop may take before the server is killed.
const STOP_SECONDS: u64 = 120;

/// How to measure.
#[derive(Debug, Clone)]
pub struct MeasureArgs {
    /// The built data directory.
    pub dir: PathBuf,
    /// The `grantlog` binary.
    pub bin: PathBuf,
    /// The `grantlog-load` binary.
    pub load_bin: PathBuf,
    /// Budget reads before the RSS after reads.
    pub reads: u64,
    /// Concurrent readers.
    pub readers: usize,
    /// `grantlog verify` runs.
    pub verify_runs: usize,
    /// Measured seconds of each append run, and its warm-up.
    pub append_seconds: f64,
    /// Warm-up seconds of each append run.
    pub append_warmup: f64,
    /// Concurrent appenders.
    pub appenders: u32,
    /// Longest wait for a server to be ready.
    pub ready_timeout: Duration,
}

/// The figures of one data directory.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The data directory.
    pub dir: String,
    /// Events in the log as built (before the append runs add some).
    pub events: u64,
    /// Grants built.
    pub grants: usize,
    /// Catch-up from an empty read model: seconds until `/readyz` first
    /// said ok (its views may then be up to 10,000 events behind).
    pub catch_up_ready_seconds: f64,
    /// Seconds until `/readyz` said ok with no lag: the whole log projected.
    pub catch_up_seconds: f64,
    /// Log events / catch-up seconds.
    pub catch_up_events_per_second: f64,
    /// Highest VmRSS sampled every 100 ms while catching up, bytes.
    pub catch_up_peak_rss_bytes: u64,
    /// The kernel's VmHWM (peak RSS) of that server at ready, bytes.
    pub catch_up_hwm_bytes: u64,
    /// Highest RssAnon sampled while catching up (the server's own memory;
    /// the rest of its RSS is the log's pages it maps), bytes.
    pub catch_up_peak_anon_bytes: u64,
    /// Restart (views caught up) until `/readyz` ok, seconds.
    pub restart_ready_seconds: f64,
    /// The same until ok with no lag.
    pub restart_seconds: f64,
    /// VmRSS at ready after the restart, bytes.
    pub restart_rss_bytes: u64,
    /// `GET` of the programme's portfolio (every grant) right after the
    /// restart, seconds.
    pub portfolio_first_seconds: f64,
    /// The median of [`PORTFOLIO_RUNS`] more, seconds.
    pub portfolio_median_seconds: f64,
    /// The portfolio listed every built grant.
    pub portfolio_check: bool,
    /// Budget reads done, and how long they took.
    pub reads: u64,
    /// Reads per second.
    pub reads_per_second: f64,
    /// VmRSS after the reads, bytes.
    pub rss_after_reads_bytes: u64,
    /// The budget of the first grant showed exactly its built expenditures.
    pub budget_check: bool,
    /// `grantlog verify` wall seconds, every run.
    pub verify_seconds: Vec<f64>,
    /// Events/s of the median run.
    pub verify_median_events_per_second: f64,
    /// Events/s of the slowest run.
    pub verify_slowest_events_per_second: f64,
    /// `grantlog rebuild-views` wall seconds.
    pub rebuild_seconds: f64,
    /// Its events/s.
    pub rebuild_events_per_second: f64,
    /// Whether it found the file as the log says (exit code 0).
    pub rebuild_matched: bool,
    /// Its highest VmRSS, sampled every 100 ms, bytes.
    pub rebuild_peak_rss_bytes: u64,
    /// Its highest RssAnon, sampled every 100 ms, bytes.
    pub rebuild_peak_anon_bytes: u64,
    /// Durable appends/s of the appenders against this log.
    pub appends_per_second: f64,
    /// The same against an empty log, in the same pass.
    pub appends_empty_per_second: f64,
    /// This log's rate / the empty log's.
    pub appends_ratio: f64,
    /// Whether both append runs' budget checks held.
    pub appends_checked: bool,
    /// `events.sqlite` (with its WAL) bytes per event.
    pub events_bytes_per_event: f64,
    /// `views.sqlite` (with its WAL) bytes per event.
    pub views_bytes_per_event: f64,
    /// The sizes themselves.
    pub events_bytes: u64,
    /// The sizes themselves.
    pub views_bytes: u64,
}

/// A started `grantlog serve`, killed if dropped without [`Server::stop`].
#[derive(Debug)]
pub struct Server {
    child: tokio::process::Child,
    pid: u32,
    /// Its base URL.
    pub url: String,
}

/// What a start measured.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// Seconds from spawn until `/readyz` answered 200 ok.
    pub ok_seconds: f64,
    /// Seconds from spawn until `/readyz` answered 200 ok with no lag: the
    /// server says ok while its views are up to 10,000 events behind.
    pub seconds: f64,
    /// Highest VmRSS sampled while waiting, bytes.
    pub peak_rss: u64,
    /// Highest RssAnon sampled while waiting, bytes.
    pub peak_anon: u64,
    /// VmRSS at ready.
    pub rss: u64,
    /// VmHWM at ready.
    pub hwm: u64,
    /// The log's head position `/readyz` gave.
    pub head: u64,
}

/// A process's VmRSS and VmHWM in bytes (0 when unreadable).
pub fn rss(pid: u32) -> (u64, u64) {
    let (rss, hwm, _) = memory(pid);
    (rss, hwm)
}

/// A process's VmRSS, VmHWM and RssAnon in bytes (0 when unreadable).
/// RssAnon is the memory the process owns; the rest of its RSS is file
/// pages it maps (the page cache, shared and reclaimable: a rebuild maps
/// the log).
pub fn memory(pid: u32) -> (u64, u64, u64) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return (0, 0, 0) };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}

/// One keep-alive HTTP client.
pub fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .context("building an HTTP client")
}

impl Server {
    /// Starts `grantlog serve` on `dir` and waits until `/readyz` says ok.
    pub async fn start(bin: &Path, dir: &Path, token: &str, timeout: Duration) -> Result<(Server, Ready)> {
        if !bin.is_file() {
            bail!("no grantlog binary at {} (build it: cargo build -p cli; or pass --bin)", bin.display());
        }
        let started = Instant::now();
        let mut child = tokio::process::Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--rate-limit-per-second", "0", "--admin-token", token])
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("the server exited at once"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("the server's stdout is not piped"))?;
        let (url_tx, mut url_rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut url_tx = Some(url_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                match line.trim().strip_prefix("grantlog listening on ") {
                    Some(url) => {
                        if let Some(tx) = url_tx.take() {
                            let _ = tx.send(url.trim().trim_end_matches('/').to_owned());
                        }
                    }
                    None => note(&format!("grantlog-scale: server stdout: {line}")),
                }
            }
        });
        let mut server = Server { child, pid, url: String::new() };
        let http = client()?;
        let (mut peak, mut peak_anon) = (0, 0);
        let mut ok_seconds = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let (now, _, anon) = memory(pid);
            (peak, peak_anon) = (peak.max(now), peak_anon.max(anon));
            if let Some(status) = server.child.try_wait()? {
                bail!("the server on {} exited before it was ready: {status}", dir.display());
            }
            if started.elapsed() > timeout {
                bail!("the server on {} was not ready within {} s", dir.display(), timeout.as_secs());
            }
            if server.url.is_empty() {
                match url_rx.try_recv() {
                    Ok(url) => server.url = url,
                    Err(_) => continue,
                }
            }
            let answer = http.get(format!("{}/readyz", server.url)).timeout(Duration::from_secs(5)).send().await;
            let Ok(answer) = answer else { continue };
            if answer.status() != reqwest::StatusCode::OK {
                continue;
            }
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            if body.get("status").and_then(|s| s.as_str()) != Some("ok") {
                continue;
            }
            let seconds = started.elapsed().as_secs_f64();
            let ok_seconds = *ok_seconds.get_or_insert(seconds);
            if body.get("lag_events").and_then(serde_json::Value::as_u64) == Some(0) {
                let (now, hwm, anon) = memory(pid);
                let head = body.get("head").and_then(serde_json::Value::as_u64).unwrap_or(0);
                let (peak_rss, peak_anon) = (peak.max(now), peak_anon.max(anon));
                return Ok((server, Ready { ok_seconds, seconds, peak_rss, peak_anon, rss: now, hwm, head }));
            }
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGTERM, wait (then kill).
    pub async fn stop(mut self) -> Result<()> {
        let term = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if matches!(term, Ok(s) if s.success())
            && let Ok(status) = tokio::time::timeout(Duration::from_secs(STOP_SECONDS), self.child.wait()).await
        {
            let status = status?;
            if !status.success() {
                note(&format!("grantlog-scale: the server exited after SIGTERM with {status}"));
            }
            return Ok(());
        }
        note("grantlog-scale: the server did not stop on SIGTERM in time; killing it");
        self.child.kill().await?;
        Ok(())
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Runs `bin args...`; its wall seconds and whether it exited 0.
/// Runs `bin args --data-dir dir` to its end: wall seconds, whether it
/// exited 0, and its highest VmRSS sampled every 100 ms (bytes).
async fn timed(bin: &Path, args: &[&str], dir: &Path) -> Result<(f64, bool, u64, u64)> {
    let started = Instant::now();
    let child = tokio::process::Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?;
    let pid = child.id().unwrap_or(0);
    let mut output = std::pin::pin!(child.wait_with_output());
    let (mut peak, mut peak_anon) = (0u64, 0u64);
    let output = loop {
        tokio::select! {
            done = &mut output => break done.with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let (now, _, anon) = memory(pid);
                (peak, peak_anon) = (peak.max(now), peak_anon.max(anon));
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        note(&format!(
            "grantlog-scale: {} {} exited with {}: {}{}",
            bin.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok((seconds, output.status.success(), peak, peak_anon))
}

fn file_bytes(dir: &Path, name: &str) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(dir.join(format!("{name}{suffix}"))).ok())
        .map(|m| m.len())
        .sum()
}

fn remove_views(dir: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = dir.join(format!("views.sqlite{suffix}"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    Ok(())
}

/// The first grant's budget shows exactly its built expenditures.
pub async fn budget_matches(http: &reqwest::Client, url: &str, manifest: &Manifest) -> Result<bool> {
    let Some(first) = manifest.grants.first() else { return Ok(false) };
    let api = grantlog_client::Client::with_http(http.clone(), url, manifest.admin_token.as_str());
    let budget = api
        .budget(&first.id, &grantlog_client::ViewQuery::default())
        .await
        .map_err(|e| anyhow!("GET /api/v1/grants/{}/budget: {e}", first.id))?;
    let spent = budget.lines.iter().find(|l| l.line.as_str() == manifest.line).map(|l| l.spent.amount());
    if spent != Some(first.spent) {
        note(&format!(
            "grantlog-scale: grant {} line {} shows spent {spent:?}, built {}",
            first.id, manifest.line, first.spent
        ));
        return Ok(false);
    }
    Ok(true)
}

/// Portfolio reads after the first.
pub const PORTFOLIO_RUNS: usize = 5;

/// Reads the built programme's portfolio: the first read's seconds, the
/// median of [`PORTFOLIO_RUNS`] more, and whether it listed every grant.
async fn portfolio_reads(http: &reqwest::Client, url: &str, manifest: &Manifest) -> Result<(f64, f64, bool)> {
    let api = grantlog_client::Client::with_http(http.clone(), url, manifest.admin_token.as_str());
    let mut seconds = Vec::new();
    let mut listed = 0;
    for _ in 0..=PORTFOLIO_RUNS {
        let started = Instant::now();
        let view = api
            .portfolio(crate::build::PROGRAMME, &grantlog_client::ViewQuery::default())
            .await
            .map_err(|e| anyhow!("GET /api/v1/programmes/{}/portfolio: {e}", crate::build::PROGRAMME))?;
        seconds.push(started.elapsed().as_secs_f64());
        listed = view.view.grants.len();
    }
    let first = seconds.remove(0);
    Ok((first, median(&seconds), listed == manifest.grants.len()))
}

/// `reads` budget reads over every grant from `readers` clients; reads/s.
async fn budget_reads(url: &str, manifest: &Manifest, reads: u64, readers: usize) -> Result<f64> {
    let grants: Arc<Vec<String>> = Arc::new(manifest.grants.iter().map(|g| g.id.clone()).collect());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..readers.max(1) {
        let api = grantlog_client::Client::with_http(client()?, url, manifest.admin_token.as_str());
        let (grants, next) = (Arc::clone(&grants), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= reads {
                    return Ok::<_, anyhow::Error>(());
                }
                let grant = &grants[(k % grants.len() as u64) as usize];
                api.budget(grant, &grantlog_client::ViewQuery::default())
                    .await
                    .map_err(|e| anyhow!("GET /api/v1/grants/{grant}/budget: {e}"))?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| anyhow!("a reader failed: {e}"))??;
    }
    Ok(reads as f64 / started.elapsed().as_secs_f64())
}

/// Runs `grantlog-load --phase expenditures` against `url`; appends/s and
/// whether its budget check held.
async fn appends(args: &MeasureArgs, url: &str, token: &str) -> Result<(f64, bool)> {
    if !args.load_bin.is_file() {
        bail!(
            "no grantlog-load binary at {} (build it: cargo build -p load; or pass --load-bin)",
            args.load_bin.display()
        );
    }
    let output = tokio::process::Command::new(&args.load_bin)
        .args(["--url", url, "--token", token, "--phase", "expenditures", "--json"])
        .args(["--clients", &args.appenders.to_string()])
        .args(["--seconds", &args.append_seconds.to_string(), "--warmup", &args.append_warmup.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", args.load_bin.display()))?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("grantlog-load exited with {} and printed no JSON report", output.status))?;
    let rate = report
        .get("phases")
        .and_then(|p| p.get(0))
        .and_then(|p| p.get("requests_per_second"))
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| anyhow!("grantlog-load's report has no phases[0].requests_per_second"))?;
    let ok = report.get("ok").and_then(serde_json::Value::as_bool) == Some(true);
    Ok((rate, ok))
}

/// Measures one built data directory. Every server it starts is stopped
/// (or, on an error, killed as it is dropped).
pub async fn measure(args: &MeasureArgs) -> Result<Report> {
    let dir = &args.dir;
    let manifest = Manifest::read(dir)?;
    let token = manifest.admin_token.as_str();
    let http = client()?;

    note(&format!("grantlog-scale: {}: catch-up from an empty read model", dir.display()));
    remove_views(dir)?;
    let (server, catch_up) = Server::start(&args.bin, dir, token, args.ready_timeout).await?;
    server.stop().await?;
    // The head, not the manifest: earlier measures' append runs add events.
    let events = catch_up.head;
    let per_second = |seconds: f64| if seconds > 0.0 { events as f64 / seconds } else { 0.0 };
    note(&format!("grantlog-scale: catch-up of {events} events {:.2} s", catch_up.seconds));

    note("grantlog-scale: restart to ready");
    let (server, restart) = Server::start(&args.bin, dir, token, args.ready_timeout).await?;
    note(&format!("grantlog-scale: restart {:.2} s; {} budget reads", restart.seconds, args.reads));
    let budget_check = budget_matches(&http, &server.url, &manifest).await?;
    let (portfolio_first_seconds, portfolio_median_seconds, portfolio_check) =
        portfolio_reads(&http, &server.url, &manifest).await?;
    note(&format!("grantlog-scale: portfolio {portfolio_first_seconds:.3} s, then {portfolio_median_seconds:.3} s"));
    let reads_per_second = budget_reads(&server.url, &manifest, args.reads, args.readers).await?;
    let (rss_after_reads, _) = rss(server.pid());
    server.stop().await?;

    let mut verify_seconds = Vec::new();
    for run in 0..args.verify_runs.max(1) {
        let (seconds, ok, _, _) = timed(&args.bin, &["verify"], dir).await?;
        if !ok {
            bail!("grantlog verify failed on {}", dir.display());
        }
        note(&format!("grantlog-scale: verify run {} {seconds:.2} s", run + 1));
        verify_seconds.push(seconds);
    }
    let slowest = verify_seconds.iter().copied().fold(0.0, f64::max);
    let (rebuild_seconds, rebuild_matched, rebuild_peak_rss, rebuild_peak_anon) =
        timed(&args.bin, &["rebuild-views"], dir).await?;
    note(&format!("grantlog-scale: rebuild-views {rebuild_seconds:.2} s"));
    let (events_bytes, views_bytes) = (file_bytes(dir, "events.sqlite"), file_bytes(dir, "views.sqlite"));

    note("grantlog-scale: appends against this log");
    let (server, _) = Server::start(&args.bin, dir, token, args.ready_timeout).await?;
    let outcome = appends(args, &server.url, token).await;
    server.stop().await?;
    let (appends_per_second, big_ok) = outcome?;
    note("grantlog-scale: appends against an empty log");
    let empty = empty_dir(dir);
    if empty.exists() {
        std::fs::remove_dir_all(&empty).with_context(|| format!("removing {}", empty.display()))?;
    }
    std::fs::create_dir_all(&empty).with_context(|| format!("creating {}", empty.display()))?;
    let started = Server::start(&args.bin, &empty, token, args.ready_timeout).await;
    let outcome = match started {
        Ok((server, _)) => {
            let outcome = appends(args, &server.url, token).await;
            server.stop().await?;
            outcome
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&empty);
    let (appends_empty_per_second, empty_ok) = outcome?;

    let per_event = |bytes: u64| if events > 0 { bytes as f64 / events as f64 } else { 0.0 };
    Ok(Report {
        dir: dir.display().to_string(),
        events,
        grants: manifest.grants.len(),
        catch_up_ready_seconds: catch_up.ok_seconds,
        catch_up_seconds: catch_up.seconds,
        catch_up_events_per_second: per_second(catch_up.seconds),
        catch_up_peak_rss_bytes: catch_up.peak_rss,
        catch_up_hwm_bytes: catch_up.hwm,
        catch_up_peak_anon_bytes: catch_up.peak_anon,
        restart_ready_seconds: restart.ok_seconds,
        restart_seconds: restart.seconds,
        restart_rss_bytes: restart.rss,
        portfolio_first_seconds,
        portfolio_median_seconds,
        portfolio_check,
        reads: args.reads,
        reads_per_second,
        rss_after_reads_bytes: rss_after_reads,
        budget_check,
        verify_median_events_per_second: per_second(median(&verify_seconds)),
        verify_slowest_events_per_second: per_second(slowest),
        verify_seconds,
        rebuild_seconds,
        rebuild_events_per_second: per_second(rebuild_seconds),
        rebuild_matched,
        rebuild_peak_rss_bytes: rebuild_peak_rss,
        rebuild_peak_anon_bytes: rebuild_peak_anon,
        appends_per_second,
        appends_empty_per_second,
        appends_ratio: if appends_empty_per_second > 0.0 { appends_per_second / appends_empty_per_second } else { 0.0 },
        appends_checked: big_ok && empty_ok,
        events_bytes_per_event: per_event(events_bytes),
        views_bytes_per_event: per_event(views_bytes),
        events_bytes,
        views_bytes,
    })
}

/// The empty log's data directory, beside the built one.
fn empty_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(|| "scale".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}.empty-log"))
}

/// A table row: its name and how a report shows it.
type Row = (&'static str, Box<dyn Fn(&Report) -> String>);

/// The reports as a Markdown table, one column per directory.
pub fn table(reports: &[Report]) -> String {
    let mb = |b: u64| format!("{:.0} MB", b as f64 / 1e6);
    let rate = |r: f64| format!("{:.0}", r);
    let rows: Vec<Row> = vec![
        ("events (grants)", Box::new(|r| format!("{} ({})", r.events, r.grants))),
        (
            "catch-up from empty views: `/readyz` ok; ok with lag 0 (events/s)",
            Box::new(move |r| {
                format!(
                    "{:.2} s; {:.2} s ({} events/s)",
                    r.catch_up_ready_seconds,
                    r.catch_up_seconds,
                    rate(r.catch_up_events_per_second)
                )
            }),
        ),
        (
            "peak RSS while catching up (sampled; VmHWM; of it the server's own, RssAnon, sampled)",
            Box::new(move |r| {
                format!(
                    "{}; {}; {}",
                    mb(r.catch_up_peak_rss_bytes),
                    mb(r.catch_up_hwm_bytes),
                    mb(r.catch_up_peak_anon_bytes)
                )
            }),
        ),
        (
            "restart: `/readyz` ok; ok with lag 0",
            Box::new(|r| format!("{:.2} s; {:.2} s", r.restart_ready_seconds, r.restart_seconds)),
        ),
        ("RSS at ready", Box::new(move |r| mb(r.restart_rss_bytes))),
        (
            "RSS after budget reads over every grant",
            Box::new(move |r| {
                format!("{} ({} reads, {}/s)", mb(r.rss_after_reads_bytes), r.reads, rate(r.reads_per_second))
            }),
        ),
        ("budget of a grant = its built expenditures", Box::new(|r| yes(r.budget_check))),
        (
            "`grantlog verify` median; slowest",
            Box::new(move |r| {
                format!(
                    "{} events/s; {} events/s ({} runs)",
                    rate(r.verify_median_events_per_second),
                    rate(r.verify_slowest_events_per_second),
                    r.verify_seconds.len()
                )
            }),
        ),
        (
            "portfolio of every grant: first read after the restart; median of the next 5",
            Box::new(move |r| {
                format!(
                    "{:.1} ms; {:.1} ms{}",
                    r.portfolio_first_seconds * 1000.0,
                    r.portfolio_median_seconds * 1000.0,
                    if r.portfolio_check { "" } else { " (grants MISSING)" }
                )
            }),
        ),
        (
            "`grantlog rebuild-views`",
            Box::new(move |r| {
                format!(
                    "{:.2} s = {} events/s{}; peak RSS {} (RssAnon {})",
                    r.rebuild_seconds,
                    rate(r.rebuild_events_per_second),
                    if r.rebuild_matched { "" } else { " (views differed)" },
                    mb(r.rebuild_peak_rss_bytes),
                    mb(r.rebuild_peak_anon_bytes)
                )
            }),
        ),
        (
            "appends/s, this log vs empty (ratio)",
            Box::new(move |r| {
                format!(
                    "{} vs {} ({:.2}x){}",
                    rate(r.appends_per_second),
                    rate(r.appends_empty_per_second),
                    r.appends_ratio,
                    if r.appends_checked { "" } else { ", check FAILED" }
                )
            }),
        ),
        (
            "disk per event: events.sqlite; views.sqlite",
            Box::new(|r| format!("{:.0} B; {:.0} B", r.events_bytes_per_event, r.views_bytes_per_event)),
        ),
    ];
    let mut text = String::from("| measure |");
    for r in reports {
        text.push_str(&format!(" {} events |", r.events));
    }
    text.push_str("\n|---|");
    text.push_str(&"---|".repeat(reports.len()));
    text.push('\n');
    for (name, value) in &rows {
        text.push_str(&format!("| {name} |"));
        for r in reports {
            text.push_str(&format!(" {} |", value(r)));
        }
        text.push('\n');
    }
    text
}

fn yes(b: bool) -> String {
    if b { "yes".into() } else { "NO".into() }
}
