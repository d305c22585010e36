//! The auditor's commands: `verify` (the chain of a data directory),
//! `export` (NDJSON or CloudEvents lines carrying the hashed texts) and
//! `verify-export` (an export checked with no database and no server).
//! docs/audit.md describes the encoding, the line format and the codes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use store::export::{ExportFormat, Exporter, verify_export};
use store::{ChainProblem, Head, Position, READ_EVENTS_MAX, VerifyOutcome};

use crate::output;
use crate::replay::open_log;

/// Flags of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The data directory.
    #[arg(long, env = "GRANTLOG_DATA_DIR", default_value = "./grantlog-data")]
    pub data_dir: PathBuf,
    /// The shared log in PostgreSQL (`postgres://user@host:port/database`);
    /// without it, the data directory's `events.sqlite`.
    #[arg(long, env = "GRANTLOG_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A head recorded earlier (POSITION:HASH) that must be an unchanged prefix of today's log.
    #[arg(long)]
    pub since: Option<Head>,
}

/// Flags of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The data directory.
    #[arg(long, env = "GRANTLOG_DATA_DIR", default_value = "./grantlog-data")]
    pub data_dir: PathBuf,
    /// The shared log in PostgreSQL (`postgres://user@host:port/database`);
    /// without it, the data directory's `events.sqlite`.
    #[arg(long, env = "GRANTLOG_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Export the events after this position (resume an export).
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Line format.
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: Format,
    /// The CloudEvents `source` attribute.
    #[arg(long, default_value = "urn:grantlog")]
    pub source: String,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Export line formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// grantlog's NDJSON lines.
    Ndjson,
    /// CloudEvents 1.0 JSON, one event a line.
    Cloudevents,
}

/// Flags of `verify-export`.
#[derive(Debug, Args)]
pub struct VerifyExportArgs {
    /// The export file (NDJSON or CloudEvents lines).
    pub file: PathBuf,
    /// The head the export must end at exactly (POSITION:HASH).
    #[arg(long)]
    pub head: Option<Head>,
    /// An earlier head that the export must contain unchanged.
    #[arg(long)]
    pub since: Option<Head>,
}

/// A progress bar on stderr counting events (hidden when stderr is not a terminal).
pub(crate) fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs `verify`; `Ok(false)` when the chain does not verify.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let store = open_log(&args.data_dir, args.database_url.as_deref()).await?;
    let total = store.head().await?.map_or(0, |h| h.position.0);
    let progress = bar(total);
    progress.set_message("verifying");
    let bar = progress.clone();
    let outcome = store.verify_with_progress(args.since, Box::new(move |checked| bar.set_position(checked))).await?;
    progress.finish_and_clear();
    store.close().await;
    let (ok, line) = verdict(&outcome);
    output::line(&line);
    Ok(ok)
}

/// What `verify` prints for an outcome (`ok N events, head P:HASH`, head
/// `-` for an empty log, or `bad at position P: CODE: DETAIL`), and whether
/// the chain is intact.
pub(crate) fn verdict(outcome: &VerifyOutcome) -> (bool, String) {
    match outcome {
        VerifyOutcome::Intact { events, head } => {
            let head = head.map_or_else(|| "-".to_owned(), |h| h.to_string());
            (true, format!("ok {events} events, head {head}"))
        }
        VerifyOutcome::Broken { position, problem } => {
            (false, format!("bad at position {position}: {}", describe(problem)))
        }
    }
}

/// Verifies `store` with a progress bar on stderr.
pub(crate) async fn verify_store(
    store: &dyn store::EventStore,
    message: &'static str,
) -> anyhow::Result<VerifyOutcome> {
    let total = store.head().await?.map_or(0, |h| h.position.0);
    let progress = bar(total);
    progress.set_message(message);
    let ticks = progress.clone();
    let outcome = store.verify_with_progress(None, Box::new(move |checked| ticks.set_position(checked))).await?;
    progress.finish_and_clear();
    Ok(outcome)
}

fn describe(problem: &ChainProblem) -> String {
    match problem {
        ChainProblem::HashMismatch { stored, computed } => {
            format!("hash-mismatch: stored {} but the content hashes to {}", hex(stored), hex(computed))
        }
        ChainProblem::Gap { found } => format!("gap: the next stored event is at position {found}"),
        ChainProblem::Undecodable { detail } => format!("undecodable: {detail}"),
        ChainProblem::NotAPrefix { expected, found } => format!(
            "not-a-prefix: the head {expected} you recorded is not in today's log (found {})",
            found.map_or_else(|| "no event there".to_owned(), |h| hex(&h))
        ),
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `export`, up to the head as it is when the export starts.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let store = open_log(&args.data_dir, args.database_url.as_deref()).await?;
    let head = store.head().await?.map_or(0, |h| h.position.0);
    let previous = store
        .hash_at(Position(args.after))
        .await?
        .with_context(|| format!("--after {}: no event at that position", args.after))?;
    let format = match args.format {
        Format::Ndjson => ExportFormat::Ndjson,
        Format::Cloudevents => ExportFormat::CloudEvents { source: args.source.clone() },
    };
    let mut exporter = Exporter::new(format, previous);
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(File::create(path).with_context(|| path.display().to_string())?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let progress = bar(head.saturating_sub(args.after));
    progress.set_message("exporting");
    let mut after = Position(args.after);
    while after.0 < head {
        let page = store.read_raw(after, READ_EVENTS_MAX).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        out.write_all(exporter.page(&page, Position(head)).as_bytes())?;
        progress.set_position(after.0.min(head) - args.after);
    }
    out.flush()?;
    progress.finish_and_clear();
    store.close().await;
    Ok(())
}

/// Runs `verify-export`; `Ok(false)` when the export does not verify.
pub fn verify_export_file(args: VerifyExportArgs) -> anyhow::Result<bool> {
    let file = File::open(&args.file).with_context(|| args.file.display().to_string())?;
    let verdict = verify_export(BufReader::new(file), args.head, args.since)?;
    output::line(&verdict.to_string());
    Ok(verdict.ok)
}
