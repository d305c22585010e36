//! `grantlog-scale`: the reproducible scale benchmark of issue 14.
//!
//! - `build --dir D --events N --grants G` makes a data directory the real
//!   server opens, whose log holds about N events over G grants: each grant
//!   awarded (FNR-2022, EUR, 2022-01-01..2030-12-31), one workstream, one
//!   budget line, then expenditures on that line, all issued through the
//!   domain's command handler.
//! - `measure --dir D` runs the real `grantlog` on it and prints catch-up
//!   from an empty read model, restart-to-ready, RSS at ready and after
//!   budget reads, `verify` and `rebuild-views` rates, 64-appender appends
//!   against this log and an empty one in the same pass, and disk per event.

mod build;
mod measure;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "grantlog-scale", version, about = "The scale benchmark of issue 14: build a large log, measure it")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a data directory whose log holds about N events over G grants.
    Build {
        /// The data directory to make (must hold no log yet).
        #[arg(long)]
        dir: PathBuf,
        /// About how many events.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Over how many grants.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=99_999))]
        grants: u64,
        /// Concurrent tasks issuing commands (the store group-commits them).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
        tasks: u64,
    },
    /// Measure built data directories with the real server and commands.
    Measure {
        /// A directory made by `build` (repeatable: one column each).
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        /// The grantlog binary [default: `grantlog` next to this program].
        #[arg(long, env = "GRANTLOG_BIN")]
        bin: Option<PathBuf>,
        /// The grantlog-load binary [default: `grantlog-load` next to this program].
        #[arg(long, env = "GRANTLOG_LOAD_BIN")]
        load_bin: Option<PathBuf>,
        /// Budget reads before the RSS after reads.
        #[arg(long, default_value_t = 10_000)]
        reads: u64,
        /// Concurrent budget readers.
        #[arg(long, default_value_t = 4)]
        readers: usize,
        /// `grantlog verify` runs (median and slowest reported).
        #[arg(long, default_value_t = 3)]
        verify_runs: usize,
        /// Measured seconds of each append run.
        #[arg(long, default_value_t = 5.0)]
        append_seconds: f64,
        /// Warm-up seconds of each append run (not counted).
        #[arg(long, default_value_t = 1.0)]
        append_warmup: f64,
        /// Concurrent appenders.
        #[arg(long, default_value_t = 64)]
        appenders: u32,
        /// Longest wait for a server to be ready, seconds.
        #[arg(long, default_value_t = 3600)]
        ready_timeout: u64,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// Writes results to stdout.
#[allow(clippy::print_stdout)]
fn say(text: &str) {
    println!("{text}");
}

/// Writes one line of progress or diagnosis to stderr.
#[allow(clippy::print_stderr)]
pub(crate) fn note(line: &str) {
    eprintln!("{line}");
}

fn beside_this_program(name: &str) -> Result<PathBuf> {
    Ok(std::env::current_exe()
        .context("locating this program")?
        .parent()
        .ok_or_else(|| anyhow!("this program has no directory"))?
        .join(name))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            note(&format!("grantlog-scale: cannot start the runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(args) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note(&format!("grantlog-scale: {e:#}"));
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Build { dir, events, grants, tasks } => {
            let args = build::BuildArgs { dir, events, grants: grants as usize, tasks: tasks as usize };
            let manifest = build::build(&args).await?;
            say(&format!(
                "built {}: {} events over {} grants in {:.1} s = {:.0} events/s",
                args.dir.display(),
                manifest.events,
                manifest.grants.len(),
                manifest.seconds,
                manifest.events_per_second
            ));
            Ok(())
        }
        Command::Measure {
            dir,
            bin,
            load_bin,
            reads,
            readers,
            verify_runs,
            append_seconds,
            append_warmup,
            appenders,
            ready_timeout,
            json,
        } => {
            let bin = match bin {
                Some(bin) => bin,
                None => beside_this_program("grantlog")?,
            };
            let load_bin = match load_bin {
                Some(bin) => bin,
                None => beside_this_program("grantlog-load")?,
            };
            if !(append_seconds > 0.0
                && append_seconds.is_finite()
                && append_warmup >= 0.0
                && append_warmup.is_finite())
            {
                return Err(anyhow!("--append-seconds must be > 0 and --append-warmup >= 0"));
            }
            let mut reports = Vec::new();
            for dir in dir {
                let args = measure::MeasureArgs {
                    dir,
                    bin: bin.clone(),
                    load_bin: load_bin.clone(),
                    reads,
                    readers,
                    verify_runs,
                    append_seconds,
                    append_warmup,
                    appenders,
                    ready_timeout: Duration::from_secs(ready_timeout),
                };
                reports.push(measure::measure(&args).await?);
            }
            if json {
                let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
                let report =
                    serde_json::json!({ "bin": bin.display().to_string(), "cores": cores, "reports": reports });
                say(&serde_json::to_string_pretty(&report)?);
            } else {
                say(&measure::table(&reports));
            }
            Ok(())
        }
    }
}
