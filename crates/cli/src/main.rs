//! `grantlog`: the server (`serve`, `demo`) and, later, the operator's and
//! auditor's commands. Every flag is also an environment variable.

mod audit;
mod backup;
mod copy;
mod http;
mod location;
mod output;
mod rebuild;
mod replay;
mod serve;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Event-sourced grant and project tracking.
#[derive(Debug, Parser)]
#[command(name = "grantlog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API.
    Serve(serve::ServeArgs),
    /// Load the NCTCR demo scenario into an empty data directory, then serve
    /// (the same as `serve --demo`).
    Demo(serve::ServeArgs),
    /// Print a grant's budget or timeline as it was: as of a business date
    /// and/or as known at an instant, folded from the log.
    Replay(replay::ReplayArgs),
    /// Verify the hash chain of a data directory; print the head to record.
    /// Exit code 0 only when everything verifies.
    Verify(audit::VerifyArgs),
    /// Export the log, one event a line with its hashes (NDJSON or CloudEvents).
    Export(audit::ExportArgs),
    /// Verify an export offline: the chain, the head, nothing missing or
    /// reordered. Needs no database and no server.
    VerifyExport(audit::VerifyExportArgs),
    /// Create, list or revoke the tokens of a data directory, offline (safe
    /// beside a running server, which sees the change within a second).
    Token(token::TokenArgs),
    /// Rebuild the read models (views.sqlite) from the log, offline, and
    /// compare them with the file's by digest. Exit code 0 only when the
    /// file was what the log says (it is rebuilt either way).
    RebuildViews(rebuild::RebuildArgs),
    /// Copy a whole log, exactly as recorded, into an empty data directory
    /// or database (created if missing), then verify the copy and print its
    /// head. Exit code 0 only when the copy's head is the source's.
    Copy(copy::CopyArgs),
    /// Back up a data directory's log and tokens while the server runs:
    /// a consistent snapshot, integrity-checked and verified, with its head
    /// in FILE.head.
    Backup(backup::BackupArgs),
    /// Restore a backup into a scratch directory, verify it against its
    /// recorded head and rebuild the views twice. Exit code 0 only when
    /// everything matches.
    RestoreDrill(backup::DrillArgs),
}

/// What a command concluded.
enum Outcome {
    Done,
    /// A check ran and found a problem (exit code 1).
    Failed,
}

impl From<()> for Outcome {
    fn from((): ()) -> Self {
        Outcome::Done
    }
}

impl From<bool> for Outcome {
    fn from(ok: bool) -> Self {
        if ok { Outcome::Done } else { Outcome::Failed }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            output::error(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<Outcome> = runtime.block_on(async {
        Ok(match cli.command {
            Command::Serve(args) => serve::run(args).await?.into(),
            Command::Demo(mut args) => {
                args.demo = true;
                serve::run(args).await?.into()
            }
            Command::Replay(args) => replay::run(args).await?.into(),
            Command::Verify(args) => audit::verify(args).await?.into(),
            Command::Export(args) => audit::export(args).await?.into(),
            Command::VerifyExport(args) => audit::verify_export_file(args)?.into(),
            Command::Token(args) => token::run(args).await?.into(),
            Command::RebuildViews(args) => rebuild::run(args).await?.into(),
            Command::Copy(args) => copy::run(args).await?.into(),
            Command::Backup(args) => backup::backup(args).await?.into(),
            Command::RestoreDrill(args) => backup::restore_drill(args).await?.into(),
        })
    });
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
