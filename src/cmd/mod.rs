//! One module per command group. Each parses nothing (clap did), calls one
//! operation or view of [`hifi_app`], and renders its outcome: text for a
//! person, or JSON with `--json`. No rule is decided here.

mod card;
mod compose;
mod deploy;
mod follow;
mod init;
mod manifests;
mod release;
mod state;
mod status;
mod token;
mod up;

use std::path::PathBuf;

use hifi_app::{Actor, Project};

use crate::backend::{Hifi, Local, Remote};
use crate::cli::{Cli, Command};
use crate::error::{Failure, Result};

/// How a command reports.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON instead of text.
    pub json: bool,
}

/// Where a command runs, who runs it, and how it reports.
pub struct Ctx {
    /// `-C DIR`, else the current directory.
    pub dir: PathBuf,
    /// The acting user.
    pub actor: Actor,
    /// Text or JSON.
    pub out: Output,
    /// The team server to work on instead of `.hifi/` here, if any.
    pub server: Option<Server>,
}

/// A team server and the credentials to present to it.
pub struct Server {
    /// Its URL.
    pub url: String,
    /// The API token.
    pub token: Option<String>,
    /// Extra CA certificates to trust.
    pub ca_cert: Option<PathBuf>,
}

impl Ctx {
    /// The project here (for commands that always work on `.hifi/`).
    pub fn open(&self) -> Result<Project> {
        Ok(Project::open(&self.dir)?)
    }

    /// Where the command's operations run: the team server when one is
    /// given, else the project here as the acting user.
    pub fn hifi(&self) -> Result<Box<dyn Hifi>> {
        match &self.server {
            None => Ok(Box::new(Local {
                project: self.open()?,
                actor: self.actor.clone(),
            })),
            Some(server) => {
                let token = server.token.as_deref().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                    Failure::Usage(format!(
                        "{} needs a token: set HIFI_TOKEN (or --token); an admin creates one with `hifi token create NAME --role ROLE`",
                        server.url
                    ))
                })?;
                let client =
                    hifi_server::client::Client::new(&server.url, token, server.ca_cert.as_deref())
                        .map_err(|e| Failure::Usage(e.to_string()))?;
                Ok(Box::new(Remote(client)))
            }
        }
    }
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result {
    let dir = match cli.global.dir {
        Some(dir) => dir,
        None => std::env::current_dir().map_err(|e| {
            Failure::App(hifi_app::Error::Io(format!(
                "cannot read the current directory: {e}"
            )))
        })?,
    };
    let server = cli
        .global
        .server
        .filter(|s| !s.trim().is_empty())
        .map(|url| Server {
            url,
            token: cli.global.token,
            ca_cert: cli.global.ca_cert,
        });
    let ctx = Ctx {
        dir,
        actor: Actor::os_user(cli.global.actor.as_deref()),
        out: Output {
            json: cli.global.json,
        },
        server,
    };
    match cli.command {
        Command::Init => init::run(&ctx),
        Command::Card(command) => card::run(&ctx, command),
        Command::Board => card::board(&ctx),
        Command::Compose { env } => compose::run(&ctx, &env),
        Command::Releases => release::list(&ctx),
        Command::Release(command) => release::run(&ctx, command),
        Command::Diff { a, b } => release::diff(&ctx, &a, &b),
        Command::Approve { env, release } => release::approve(&ctx, &env, release.as_deref()),
        Command::Deploy { env, release, wait } => {
            deploy::deploy(&ctx, &env, release.as_deref(), wait.wait)
        }
        Command::Promote {
            from,
            to,
            reason,
            wait,
        } => deploy::promote(&ctx, &from, &to, reason.as_deref(), wait.wait),
        Command::Rollback { env, wait } => deploy::rollback(&ctx, &env, wait.wait),
        Command::Canary { env, action } => deploy::canary(&ctx, &env, action),
        Command::Status { env } => status::status(&ctx, env.as_deref()),
        Command::History { env } => status::history(&ctx, &env),
        Command::Up {
            detach,
            reset_state,
        } => up::up(&ctx, detach, reset_state),
        Command::Down => up::down(&ctx),
        Command::State(command) => state::run(&ctx, command),
        Command::Token(command) => token::run(&ctx, command),
        Command::Proxy(args) => up::proxy(&ctx, args),
        Command::Manifests { env, release, rbac } => {
            manifests::run(&ctx, &env, release.as_deref(), rbac)
        }
        Command::Demo { once, dir, runtime } => crate::demo::run(crate::demo::DemoOptions {
            once,
            dir,
            containers: runtime == crate::cli::DemoRuntime::Docker,
        }),
    }
}
