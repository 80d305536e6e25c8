//! One module per command group. Each `run` validates its input, does its
//! work through the store, git and core, and prints its report (text, or
//! JSON with `--json`).

mod card;
mod compose;
mod init;
mod release;

use crate::cli::{Cli, Command};
use crate::error::{Failure, Result};
use crate::project::{self, Project};

/// How a command reports.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON instead of text.
    pub json: bool,
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result {
    let dir = match cli.global.dir {
        Some(dir) => dir,
        None => std::env::current_dir()
            .map_err(|e| Failure::refused(format!("cannot read the current directory: {e}")))?,
    };
    let out = Output {
        json: cli.global.json,
    };
    let actor = project::actor(cli.global.actor.as_deref());
    let open = || Project::open(&dir, &actor);
    match cli.command {
        Command::Init => init::run(&dir, &actor, out),
        Command::Card(command) => card::run(&mut open()?, command, out),
        Command::Board => card::board(&open()?, out),
        Command::Compose { env } => compose::run(&mut open()?, &env, out),
        Command::Releases => release::list(&open()?, out),
        Command::Diff { a, b } => release::diff(&open()?, &a, &b, out),
        Command::Approve { env, release } => {
            release::approve(&mut open()?, &env, release.as_deref(), out)
        }
    }
}
