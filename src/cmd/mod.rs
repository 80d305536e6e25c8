//! One module per command group. Each `run` validates its input, does its
//! work through the store, git and core, and prints its report (text, or
//! JSON with `--json`).

mod card;
mod compose;
mod deploy;
mod init;
mod release;
mod status;
mod up;

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
        Command::Deploy { env, release, wait } => {
            deploy::deploy(&mut open()?, &env, release.as_deref(), wait.wait, out)
        }
        Command::Promote { from, to, wait } => {
            deploy::promote(&mut open()?, &from, &to, wait.wait, out)
        }
        Command::Rollback { env, wait } => deploy::rollback(&mut open()?, &env, wait.wait, out),
        Command::Canary { env, action } => deploy::canary(&mut open()?, &env, action, out),
        Command::Status { env } => status::status(&open()?, env.as_deref(), out),
        Command::History { env } => status::history(&open()?, &env, out),
        Command::Up { detach } => up::up(&open()?, detach, out),
        Command::Down => up::down(&open()?, out),
        Command::Proxy(args) => up::proxy(&dir, args),
        Command::Demo { once, dir } => crate::demo::run(crate::demo::DemoOptions { once, dir }),
    }
}
