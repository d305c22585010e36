//! `grantlog`: the server (`serve`, `demo`) and, later, the operator's and
//! auditor's commands. Every flag is also an environment variable.

mod output;
mod replay;
mod serve;

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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(mut args) => {
                args.demo = true;
                serve::run(args).await
            }
            Command::Replay(args) => replay::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
