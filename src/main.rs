//! The `hifi` binary: parses the command line, runs one command, and turns
//! its outcome into an exit code (0 success, 1 refused or failed, 2 usage or
//! config error). Everything else lives in the modules below.
//!
//! # Layout
//!
//! - `backend`: where a command's operations run — `.hifi/` here through
//!   the application layer, or a team server through its API — behind one
//!   trait, so each command renders the same either way.
//! - `cli`: the command line as clap reads it.
//! - `cmd`: one module per command group (`init`, `card` and `board`,
//!   `compose`, `release` for releases/diff/approve, `deploy` and `follow`
//!   for deployments, `status`, `token` for API tokens, `up` for the
//!   processes, the team server and webhooks), each a thin shell
//!   over `hifi_app`: call one operation or view, render text or JSON.
//! - `demo`: `hifi demo`, the whole story on a generated example project.
//! - `error`: an application error as the user reads it, and its exit code.
//! - `output`: tables, JSON and timestamps.

mod backend;
mod cli;
mod cmd;
mod demo;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with exit 0, and usage
            // errors to stderr with exit 2, as DESIGN.md asks.
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HIFI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprint!("{}", failure.render());
            ExitCode::from(failure.exit_code())
        }
    }
}
