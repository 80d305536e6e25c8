//! `hifi deploy`, `hifi promote`, `hifi rollback` and `hifi canary`: each
//! checks what it can at once (unknown environment, the fidelity gate, a
//! deployment already in progress), records the desired change with its
//! event in one transaction, and leaves the doing to the control plane.
//! `--wait` follows the deployment until it is live (exit 0) or failed or
//! aborted (exit 1).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use hifi_core::deployment::{DeploymentState, Kind, Request};
use hifi_core::fidelity;
use hifi_core::{Environment, ReleaseId};
use hifi_store::{Deployment, Update};
use indicatif::{ProgressBar, ProgressStyle};

use super::Output;
use super::up::running;
use crate::cli::CanaryAction;
use crate::error::{Failure, Result};
use crate::output;
use crate::project::Project;

fn environment(project: &Project, name: &str) -> Result<Environment> {
    Ok(project
        .config
        .environment(name)
        .map_err(Failure::refused)?
        .clone())
}

fn refuse_store(e: hifi_store::Error) -> Failure {
    match e {
        hifi_store::Error::Busy { env, deployment } => Failure::refused(format!(
            "deployment #{deployment} is in progress in {env}"
        ))
        .hint(format!(
            "wait for it (`hifi status {env}`), or abort it with `hifi canary {env} abort`"
        )),
        e => e.into(),
    }
}

/// Refuses `--wait` when no control plane would ever act on the deployment.
fn check_running(project: &Project, wait: bool) -> Result<bool> {
    let up = running(&project.state_dir()).is_some();
    if wait && !up {
        return Err(Failure::refused(
            "hifi is not running, so nothing would deploy while you wait",
        )
        .hint("start it first: hifi up --detach"));
    }
    Ok(up)
}

fn start(
    project: &mut Project,
    env: &Environment,
    release: &ReleaseId,
    kind: Kind,
    wait: bool,
    out: Output,
) -> Result {
    let up = check_running(project, wait)?;
    if project
        .store
        .routing(&env.name)?
        .active
        .is_some_and(|a| a.release == *release)
    {
        return Err(Failure::refused(format!(
            "release {release} is already live in {}; there is nothing to deploy",
            env.name
        ))
        .hint("compose a new release, or roll back with `hifi rollback`"));
    }
    let id = project
        .store
        .record_deployment(&project.audit(), &env.name, release, kind.as_str())
        .map_err(refuse_store)?;
    if !out.json {
        println!(
            "Deployment #{id}: release {release} to {} ({kind}).",
            env.name
        );
        if !up {
            println!("hifi is not running: it starts when you run `hifi up`.");
        }
    }
    if wait {
        return follow(project, id, out);
    }
    if out.json {
        output::json(&project.store.deployment(id)?);
    }
    Ok(())
}

fn gate(project: &Project, env: &Environment, release: &ReleaseId) -> Result {
    let facts = project.store.facts(release, &env.name)?;
    fidelity::check(env, release, &facts)?;
    Ok(())
}

/// `hifi deploy ENV [--release ID]`.
pub fn deploy(
    project: &mut Project,
    env: &str,
    release: Option<&str>,
    wait: bool,
    out: Output,
) -> Result {
    let env = environment(project, env)?;
    let release = match release {
        Some(prefix) => project.store.resolve_release(prefix)?,
        None => match env.promote_from() {
            Some(source) => {
                return Err(Failure::refused(format!(
                    "{} takes only releases verified in {source}",
                    env.name
                ))
                .hint(format!("promote one: hifi promote {source} {}", env.name)));
            }
            None => project
                .store
                .latest_composition(&env.name)?
                .map(|c| ReleaseId::from_stored(c.release))
                .ok_or_else(|| {
                    Failure::refused(format!("{} was never composed", env.name))
                        .hint(format!("compose it first: hifi compose {}", env.name))
                })?,
        },
    };
    gate(project, &env, &release)?;
    start(project, &env, &release, Kind::from(env.strategy), wait, out)
}

/// `hifi promote FROM TO`.
pub fn promote(project: &mut Project, from: &str, to: &str, wait: bool, out: Output) -> Result {
    let source = environment(project, from)?;
    let target = environment(project, to)?;
    match target.promote_from() {
        Some(expected) if expected == source.name => {}
        Some(expected) => {
            return Err(Failure::refused(format!(
                "{} promotes from {expected}, not from {}",
                target.name, source.name
            ))
            .hint(format!("hifi promote {expected} {}", target.name)));
        }
        None => {
            return Err(Failure::refused(format!(
                "{} is composed from cards, not promoted into",
                target.name
            ))
            .hint(format!("hifi compose {0} && hifi deploy {0}", target.name)));
        }
    }
    let release = project.store.live_release(&source.name)?.ok_or_else(|| {
        Failure::refused(format!("{} has no live release to promote", source.name))
            .hint(format!("deploy one first: hifi deploy {}", source.name))
    })?;
    gate(project, &target, &release)?;
    start(
        project,
        &target,
        &release,
        Kind::from(target.strategy),
        wait,
        out,
    )
}

/// `hifi rollback ENV`.
pub fn rollback(project: &mut Project, env: &str, wait: bool, out: Output) -> Result {
    let env = environment(project, env)?;
    if let Some(d) = project.store.deployment_in_progress(&env.name)? {
        return Err(Failure::refused(format!(
            "deployment #{} is in progress in {}; nothing went live yet to roll back",
            d.id, env.name
        ))
        .hint(format!("abort it instead: hifi canary {} abort", env.name)));
    }
    let routing = project.store.routing(&env.name)?;
    let active = routing.active.as_ref().map(|a| a.release.clone());
    // The previous state: the warm standby, else the last release that was
    // live before the active one.
    let previous = match &routing.standby {
        Some(standby) => Some(standby.release.clone()),
        None => project
            .store
            .deployments(&env.name)?
            .into_iter()
            .filter(|d| {
                matches!(
                    d.state,
                    DeploymentState::Superseded | DeploymentState::RolledBack
                )
            })
            .map(|d| ReleaseId::from_stored(d.release))
            .find(|r| Some(r) != active.as_ref()),
    };
    let Some(previous) = previous else {
        return Err(
            Failure::refused(format!("{} has no previous state to go back to", env.name))
                .hint("a rollback needs an earlier release that was live here"),
        );
    };
    start(project, &env, &previous, Kind::Rollback, wait, out)
}

/// `hifi canary ENV pause|resume|abort|promote`.
pub fn canary(project: &mut Project, env: &str, action: CanaryAction, out: Output) -> Result {
    let env = environment(project, env)?;
    let Some(d) = project.store.deployment_in_progress(&env.name)? else {
        return Err(
            Failure::refused(format!("no deployment is in progress in {}", env.name))
                .hint(format!("see `hifi status {}`", env.name)),
        );
    };
    let is_canary = d.strategy.parse::<Kind>() == Ok(Kind::Canary);
    let (update, what) = match action {
        CanaryAction::Abort => (
            Update {
                request: Some(Some(Request::Abort.as_str())),
                kind: Some("canary.abort-requested"),
                ..Update::default()
            },
            "abort requested",
        ),
        _ if !is_canary => {
            return Err(Failure::refused(format!(
                "deployment #{} in {} is {}, not a canary; it can only be aborted",
                d.id, env.name, d.strategy
            )));
        }
        CanaryAction::Pause => (
            Update {
                paused: Some(true),
                kind: Some("canary.paused"),
                ..Update::default()
            },
            "paused",
        ),
        CanaryAction::Resume => (
            Update {
                paused: Some(false),
                kind: Some("canary.resumed"),
                ..Update::default()
            },
            "resumed",
        ),
        CanaryAction::Promote => (
            Update {
                request: Some(Some(Request::Promote.as_str())),
                kind: Some("canary.promote-requested"),
                ..Update::default()
            },
            "promotion requested",
        ),
    };
    let audit = project.audit();
    let message = format!(
        "deployment #{} in {}: {what} by {}",
        d.id, env.name, audit.actor
    );
    let d = match project.store.update_deployment(
        &audit,
        d.id,
        Update {
            message: &message,
            ..update
        },
    ) {
        // It ended between our read and our write.
        Err(hifi_store::Error::Refused(why)) => {
            return Err(Failure::refused(why).hint(format!(
                "if it went live and should not have, roll it back: hifi rollback {}",
                env.name
            )));
        }
        other => other?,
    };
    if out.json {
        output::json(&d);
    } else {
        println!("{message}.");
    }
    Ok(())
}

/// Follows a deployment until it ends: a spinner with the latest step on a
/// terminal, one line per step otherwise. Exit 1 unless it went live.
pub fn follow(project: &Project, id: i64, out: Output) -> Result {
    let interactive = !out.json && std::io::stderr().is_terminal();
    let bar = interactive.then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut seen = 0usize;
    let mut down_since: Option<Instant> = None;
    let deployment: Deployment = loop {
        // State first, then events: the events read then include every
        // step up to that state, the last one too.
        let d = project.store.deployment(id)?;
        let events = project.store.deployment_events(id)?;
        for e in &events[seen.min(events.len())..] {
            match &bar {
                Some(bar) => {
                    bar.println(format!("  {}", e.message));
                    bar.set_message(e.message.clone());
                }
                None if !out.json => eprintln!("  {}", e.message),
                None => {}
            }
        }
        seen = events.len();
        if !d.state.is_in_progress() {
            break d;
        }
        if running(&project.state_dir()).is_none() {
            let since = *down_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                return Err(Failure::refused(format!(
                    "hifi stopped while deployment #{id} was {}",
                    d.state
                ))
                .hint("start it again with `hifi up`; the deployment resumes where it was"));
            }
        } else {
            down_since = None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if out.json {
        output::json(&deployment);
    }
    match deployment.state {
        DeploymentState::Live => {
            if !out.json {
                println!("Deployment #{id} is live in {}.", deployment.env);
            }
            Ok(())
        }
        state => Err(Failure::refused(format!(
            "deployment #{id} {state}: {}",
            deployment.reason.as_deref().unwrap_or("no reason recorded")
        ))),
    }
}
