//! `hifi releases`, `hifi diff` and `hifi approve`: reading and signing off
//! releases.

use hifi_core::diff::{Change, Side, diff as diff_envs};
use hifi_core::{Origin, Release, ReleaseId};
use serde::Serialize;

use super::Output;
use crate::error::{Failure, Result};
use crate::output::{self, Table, timestamp};
use crate::project::Project;

/// `hifi releases`: every release, newest first.
pub fn list(project: &Project, out: Output) -> Result {
    let releases = project.store.releases()?;
    if out.json {
        output::json(&releases);
        return Ok(());
    }
    if releases.is_empty() {
        println!("No releases yet. Compose an environment: hifi compose dev");
        return Ok(());
    }
    let mut table = Table::new(["RELEASE", "CREATED", "COMPOSED FOR", "CARDS", "LIVE IN"]);
    for r in &releases {
        let composed = project.store.composed_for(&r.id)?;
        let live: Vec<&str> = project
            .config
            .environments
            .iter()
            .filter(|e| project.store.live_release(&e.name).ok().flatten().as_ref() == Some(&r.id))
            .map(|e| e.name.as_str())
            .collect();
        let cards: Vec<&str> = r.cards.iter().map(|c| c.id.as_str()).collect();
        table.row(vec![
            r.id.short().to_string(),
            timestamp(r.created_at),
            composed.join(","),
            if cards.is_empty() {
                "-".into()
            } else {
                cards.join(",")
            },
            live.join(","),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// The release an environment runs (its live one) or would run next (its
/// latest composition), and which of the two it is.
fn current_release(project: &Project, env: &str) -> Result<Option<(Release, &'static str)>> {
    if let Some(id) = project.store.live_release(env)? {
        return Ok(Some((project.store.release(&id)?, "live")));
    }
    match project.store.latest_composition(env)? {
        Some(c) => Ok(Some((
            project.store.release(&ReleaseId::from_stored(c.release))?,
            "composed, not deployed",
        ))),
        None => Ok(None),
    }
}

#[derive(Serialize)]
struct DiffReport {
    #[serde(flatten)]
    diff: hifi_core::diff::EnvDiff,
    state_a: Option<&'static str>,
    state_b: Option<&'static str>,
}

/// `hifi diff A B`: cards, service versions and vars that differ.
pub fn diff(project: &Project, a: &str, b: &str, out: Output) -> Result {
    let env_a = project.config.environment(a).map_err(Failure::refused)?;
    let env_b = project.config.environment(b).map_err(Failure::refused)?;
    let cur_a = current_release(project, a)?;
    let cur_b = current_release(project, b)?;
    let d = diff_envs(
        Side {
            env: a,
            release: cur_a.as_ref().map(|(r, _)| r),
            vars: &env_a.vars,
        },
        Side {
            env: b,
            release: cur_b.as_ref().map(|(r, _)| r),
            vars: &env_b.vars,
        },
    );
    let report = DiffReport {
        diff: d,
        state_a: cur_a.as_ref().map(|(_, s)| *s),
        state_b: cur_b.as_ref().map(|(_, s)| *s),
    };
    if out.json {
        output::json(&report);
        return Ok(());
    }
    let describe = |env: &str, cur: &Option<(Release, &str)>| match cur {
        Some((r, state)) => format!("{env}: release {} ({state})", r.id),
        None => format!("{env}: nothing composed or deployed"),
    };
    println!("{}\n{}", describe(a, &cur_a), describe(b, &cur_b));
    let d = &report.diff;
    if d.is_empty() {
        println!("No differences: same release, same vars.");
        return Ok(());
    }
    if d.release_a == d.release_b && d.release_a.is_some() {
        println!("Same release in both.");
    }
    let short = |v: &Option<String>, n: usize| {
        v.as_deref()
            .map(|v| v[..v.len().min(n)].to_string())
            .unwrap_or_else(|| "-".into())
    };
    let section = |title: &str, changes: &[Change], n: usize| {
        if changes.is_empty() {
            return;
        }
        println!("\n{title}");
        let mut table = Table::new(["", a, b]);
        for c in changes {
            table.row(vec![c.name.clone(), short(&c.a, n), short(&c.b, n)]);
        }
        print!("{}", table.render());
    };
    section("Cards (commit merged)", &d.cards, 7);
    section("Service versions", &d.services, 12);
    section("Vars (as written in hifi.toml)", &d.vars, usize::MAX);
    Ok(())
}

/// `hifi approve ENV [--release ID]`: sign off a release for an environment.
pub fn approve(project: &mut Project, env: &str, release: Option<&str>, out: Output) -> Result {
    let environment = project
        .config
        .environment(env)
        .map_err(Failure::refused)?
        .clone();
    let id = match release {
        Some(prefix) => project.store.resolve_release(prefix)?,
        None => next_release(project, &environment.name, &environment.origin)?,
    };
    let audit = project.audit();
    let new = project.store.approve(&audit, env, &id)?;
    let approvers = project.store.approvals(env, &id)?;
    if out.json {
        output::json(&serde_json::json!({
            "env": env,
            "release": id,
            "approver": audit.actor,
            "new": new,
            "approvals": approvers.len(),
            "required": environment.approvals,
        }));
        return Ok(());
    }
    let verb = if new {
        "approved"
    } else {
        "had already approved"
    };
    println!(
        "{} {verb} release {id} for {env} ({} of {} required approval(s)).",
        audit.actor,
        approvers.len(),
        environment.approvals
    );
    Ok(())
}

/// The release that would go to an environment next: for a gated one, its
/// source's live release; for a composed one, its latest composition.
fn next_release(project: &Project, env: &str, origin: &Origin) -> Result<ReleaseId> {
    match origin {
        Origin::Promote(source) => project.store.live_release(source)?.ok_or_else(|| {
            Failure::refused(format!(
                "nothing to approve for {env}: {source} has no live release yet"
            ))
            .hint("name one with --release ID (see `hifi releases`)")
        }),
        Origin::Cards(_) => project
            .store
            .latest_composition(env)?
            .map(|c| ReleaseId::from_stored(c.release))
            .ok_or_else(|| {
                Failure::refused(format!(
                    "nothing to approve for {env}: it was never composed"
                ))
                .hint(format!("compose it first: hifi compose {env}"))
            }),
    }
}
