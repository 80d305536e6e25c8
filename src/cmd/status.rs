//! `hifi status` and `hifi history`: what runs where, and what happened.
//! Both read the store only, so they answer the same whether or not the
//! control plane runs (and say whether it does).

use hifi_core::{Environment, ReleaseId, Routing};
use hifi_store::{Analysis, Deployment, Event, InstanceRow};
use serde::Serialize;

use super::Output;
use super::up::running;
use crate::error::{Failure, Result};
use crate::output::{self, Table, timestamp};
use crate::project::Project;

#[derive(Serialize)]
struct EnvStatus<'a> {
    env: &'a str,
    port: u16,
    strategy: String,
    origin: String,
    routing: Routing,
    cards: Vec<String>,
    verified: bool,
    approvals: Option<Approvals>,
    deployment: Option<Deployment>,
    instances: Vec<InstanceRow>,
}

#[derive(Serialize)]
struct Approvals {
    release: String,
    have: usize,
    need: u32,
}

#[derive(Serialize)]
struct Report<'a> {
    running: bool,
    pid: Option<u32>,
    environments: Vec<EnvStatus<'a>>,
}

fn env_status<'a>(project: &Project, env: &'a Environment) -> Result<EnvStatus<'a>> {
    let store = &project.store;
    let routing = store.routing(&env.name)?;
    let cards = match &routing.active {
        Some(active) => store
            .release(&active.release)?
            .cards
            .iter()
            .map(|c| c.id.to_string())
            .collect(),
        None => Vec::new(),
    };
    let verified = match &routing.active {
        Some(active) => store.verified_in(&active.release)?.contains(&env.name),
        None => false,
    };
    // Approvals matter for what would go here next.
    let next: Option<ReleaseId> = match env.promote_from() {
        Some(source) => store.live_release(source)?,
        None => store
            .latest_composition(&env.name)?
            .map(|c| ReleaseId::from_stored(c.release)),
    };
    let approvals = match next {
        Some(release) if env.approvals > 0 => Some(Approvals {
            have: store.approvals(&env.name, &release)?.len(),
            need: env.approvals,
            release: release.as_str().to_string(),
        }),
        _ => None,
    };
    Ok(EnvStatus {
        env: &env.name,
        port: env.port,
        strategy: env.strategy.to_string(),
        origin: match env.promote_from() {
            Some(source) => format!("promotes from {source}"),
            None => format!(
                "cards from {}",
                env.cards_from().map(|s| s.name.as_str()).unwrap_or("?")
            ),
        },
        routing,
        cards,
        verified,
        approvals,
        deployment: store.deployment_in_progress(&env.name)?,
        instances: store.instances(Some(&env.name))?,
    })
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `hifi status [ENV]`.
pub fn status(project: &Project, env: Option<&str>, out: Output) -> Result {
    let envs: Vec<&Environment> = match env {
        Some(name) => vec![project.config.environment(name).map_err(Failure::refused)?],
        None => project.config.environments.iter().collect(),
    };
    let pid = running(&project.state_dir());
    let report = Report {
        running: pid.is_some(),
        pid,
        environments: envs
            .into_iter()
            .map(|e| env_status(project, e))
            .collect::<Result<_>>()?,
    };
    if out.json {
        output::json(&report);
        return Ok(());
    }
    match pid {
        Some(pid) => println!("hifi is running (pid {pid})."),
        None => println!("hifi is not running (start it with `hifi up`)."),
    }
    for s in &report.environments {
        println!(
            "\n{}  http://127.0.0.1:{}/  {}, {}",
            s.env, s.port, s.strategy, s.origin
        );
        let r = &s.routing;
        let mut table = Table::new(["", "RELEASE", "SLOT", "TRAFFIC", "INSTANCES"]);
        let instances = |slot: &str| {
            let mine: Vec<String> = s
                .instances
                .iter()
                .filter(|i| i.slot == slot)
                .map(|i| format!("{} {}", i.service, i.health))
                .collect();
            if mine.is_empty() {
                "-".to_string()
            } else {
                mine.join(", ")
            }
        };
        let active_share = if r.candidate.is_some() {
            100.0 - r.weight
        } else {
            100.0
        };
        if let Some(a) = &r.active {
            let verified = if s.verified { ", verified" } else { "" };
            table.row(vec![
                format!("active{verified}"),
                a.release.short().into(),
                a.slot.to_string(),
                format!("{active_share} %"),
                instances(a.slot.as_str()),
            ]);
        }
        if let Some(c) = &r.candidate {
            table.row(vec![
                "candidate".into(),
                c.release.short().into(),
                c.slot.to_string(),
                format!("{} %", r.weight),
                instances(c.slot.as_str()),
            ]);
        }
        if let Some(sb) = &r.standby {
            table.row(vec![
                "standby".into(),
                sb.release.short().into(),
                sb.slot.to_string(),
                "0 % (warm)".into(),
                instances(sb.slot.as_str()),
            ]);
        }
        if r.active.is_none() && r.candidate.is_none() {
            println!("  nothing deployed");
        } else {
            for line in table.render().lines() {
                println!("  {line}");
            }
        }
        if !s.cards.is_empty() {
            println!("  cards: {}", s.cards.join(", "));
        }
        if let Some(d) = &s.deployment {
            let paused = if d.paused { ", paused" } else { "" };
            println!(
                "  deployment #{} {} ({}{paused}) of release {}",
                d.id,
                d.state,
                d.strategy,
                short(&d.release)
            );
        }
        if let Some(a) = &s.approvals {
            println!(
                "  approvals: {} of {} for release {}",
                a.have,
                a.need,
                short(&a.release)
            );
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct HistoryEntry {
    deployment: Deployment,
    steps: Vec<Event>,
    analyses: Vec<Analysis>,
}

/// `hifi history ENV`.
pub fn history(project: &Project, env: &str, out: Output) -> Result {
    let env = project.config.environment(env).map_err(Failure::refused)?;
    let entries: Vec<HistoryEntry> = project
        .store
        .deployments(&env.name)?
        .into_iter()
        .map(|d| {
            Ok(HistoryEntry {
                steps: project.store.deployment_events(d.id)?,
                analyses: project.store.analyses(d.id)?,
                deployment: d,
            })
        })
        .collect::<Result<_>>()?;
    if out.json {
        output::json(&entries);
        return Ok(());
    }
    if entries.is_empty() {
        println!("No deployments in {} yet.", env.name);
        return Ok(());
    }
    for entry in &entries {
        let d = &entry.deployment;
        println!(
            "#{} {}  release {}  {}  by {}  → {}{}",
            d.id,
            timestamp(d.created_at),
            short(&d.release),
            d.strategy,
            d.actor,
            d.state,
            d.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        for step in &entry.steps {
            println!("    {}  {}", &timestamp(step.at)[11..], step.message);
        }
        if !entry.analyses.is_empty() {
            let mut table = Table::new([
                "STEP", "WEIGHT", "REQUESTS", "ERRORS", "ERROR %", "P50 MS", "P99 MS", "VERDICT",
            ]);
            for a in &entry.analyses {
                table.row(vec![
                    (a.step + 1).to_string(),
                    format!("{} %", a.weight),
                    a.requests.to_string(),
                    a.errors.to_string(),
                    format!("{:.2}", a.error_ratio * 100.0),
                    format!("{:.0}", a.p50_ms),
                    format!("{:.0}", a.p99_ms),
                    a.verdict.clone(),
                ]);
            }
            for line in table.render().lines() {
                println!("    {line}");
            }
        }
    }
    Ok(())
}
