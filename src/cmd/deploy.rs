//! `hifi deploy`, `hifi promote`, `hifi rollback` and `hifi canary`: each
//! records the desired change (the application layer checks it first) and
//! leaves the doing to the control plane. `--wait` follows the deployment
//! until it is live (exit 0) or failed or aborted (exit 1).

use hifi_app::deploy::{CanaryAction, Start, Started};

use super::{Ctx, follow};
use crate::cli;
use crate::error::Result;
use crate::output;

/// `hifi deploy ENV [--release ID]`.
pub fn deploy(ctx: &Ctx, env: &str, release: Option<&str>, wait: bool) -> Result {
    let how = Start {
        require_running: wait,
        reason: None,
    };
    let started = ctx.hifi()?.deploy(env, release, how)?;
    report(ctx, started, wait)
}

/// `hifi promote FROM TO [--reason WHY]`.
pub fn promote(ctx: &Ctx, from: &str, to: &str, reason: Option<&str>, wait: bool) -> Result {
    let how = Start {
        require_running: wait,
        reason,
    };
    let started = ctx.hifi()?.promote(from, to, how)?;
    report(ctx, started, wait)
}

/// `hifi rollback ENV`.
pub fn rollback(ctx: &Ctx, env: &str, wait: bool) -> Result {
    let how = Start {
        require_running: wait,
        reason: None,
    };
    let started = ctx.hifi()?.rollback(env, how)?;
    report(ctx, started, wait)
}

fn report(ctx: &Ctx, started: Started, wait: bool) -> Result {
    let d = &started.deployment;
    if !ctx.out.json {
        println!(
            "Deployment #{}: release {} to {} ({}).",
            d.id, d.release, d.env, d.strategy
        );
        if let Some(note) = &started.overrode_window {
            println!("It goes now as {note}.");
        }
        for m in &started.moved {
            println!("Card {} moved from {} to {} with it.", m.card, m.from, m.to);
        }
        for m in &started.moved_back {
            println!("Card {} moved back from {} to {}.", m.card, m.from, m.to);
        }
        if !started.control_plane_running {
            println!("hifi is not running: it starts when you run `hifi up`.");
        }
    }
    if wait {
        return follow::follow(ctx, d.id);
    }
    if ctx.out.json {
        output::json(d);
    }
    Ok(())
}

/// `hifi canary ENV pause|resume|abort|promote`.
pub fn canary(ctx: &Ctx, env: &str, action: cli::CanaryAction) -> Result {
    let action = match action {
        cli::CanaryAction::Pause => CanaryAction::Pause,
        cli::CanaryAction::Resume => CanaryAction::Resume,
        cli::CanaryAction::Abort => CanaryAction::Abort,
        cli::CanaryAction::Promote => CanaryAction::Promote,
    };
    let recorded = ctx.hifi()?.canary(env, action)?;
    if ctx.out.json {
        output::json(&recorded.deployment);
    } else {
        println!("{}.", recorded.message);
    }
    Ok(())
}
