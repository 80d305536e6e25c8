//! `hifi status` and `hifi history`: what runs where, and what happened.

use hifi_core::Slot;

use super::Ctx;
use crate::error::Result;
use crate::output::{self, Table, timestamp};

/// `hifi status [ENV]`.
pub fn status(ctx: &Ctx, env: Option<&str>) -> Result {
    let report = ctx.hifi()?.status(env)?;
    if ctx.out.json {
        output::json(&report);
        return Ok(());
    }
    match report.pid {
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
        // One entry per service: "api healthy", "api 3× healthy", or each
        // replica when they differ ("api#1 healthy, api#2 starting").
        let instances = |slot: Slot| {
            let mut mine: Vec<String> = Vec::new();
            let here: Vec<_> = s.instances.iter().filter(|i| i.slot == slot).collect();
            let mut services: Vec<&str> = here.iter().map(|i| i.service.as_str()).collect();
            services.dedup();
            for service in services {
                let replicas: Vec<_> = here.iter().filter(|i| i.service == service).collect();
                let same = replicas.iter().all(|i| i.health == replicas[0].health);
                match replicas.len() {
                    1 => mine.push(format!("{service} {}", replicas[0].health)),
                    n if same => mine.push(format!("{service} {n}× {}", replicas[0].health)),
                    _ => mine.extend(
                        replicas
                            .iter()
                            .map(|i| format!("{service}#{} {}", i.replica + 1, i.health)),
                    ),
                }
            }
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
                instances(a.slot),
            ]);
        }
        if let Some(c) = &r.candidate {
            table.row(vec![
                "candidate".into(),
                c.release.short().into(),
                c.slot.to_string(),
                format!("{} %", r.weight),
                instances(c.slot),
            ]);
        }
        if let Some(sb) = &r.standby {
            table.row(vec![
                "standby".into(),
                sb.release.short().into(),
                sb.slot.to_string(),
                "0 % (warm)".into(),
                instances(sb.slot),
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
            println!("  cards: {}", output::join(&s.cards, ", "));
        }
        if let Some(rejected) = &s.rejected {
            println!(
                "  the active release was rejected ({}); it stays until a release replaces it",
                rejected.reason
            );
        }
        if let Some(d) = &s.deployment {
            let paused = if d.paused { ", paused" } else { "" };
            println!(
                "  deployment #{} {} ({}{paused}) of release {}",
                d.id, d.state, d.strategy, d.release
            );
            if let (true, Some(reason)) = (d.paused, &d.reason) {
                println!("    {reason}");
            }
        }
        if let Some(a) = &s.approvals {
            println!(
                "  approvals: {} of {} for release {}",
                a.have, a.need, a.release
            );
        }
    }
    let failing: Vec<_> = report.webhooks.iter().filter(|w| w.failing).collect();
    if !failing.is_empty() {
        println!();
    }
    for w in failing {
        println!(
            "! webhook {} is failing since {} UTC ({} attempt(s); last: {}); {} event(s) behind",
            w.webhook,
            w.failing_since.map(timestamp).unwrap_or_default(),
            w.attempts,
            w.last_error.as_deref().unwrap_or("no reason recorded"),
            w.behind
        );
    }
    Ok(())
}

/// `hifi history ENV`.
pub fn history(ctx: &Ctx, env: &str) -> Result {
    let entries = ctx.hifi()?.history(env)?;
    if ctx.out.json {
        output::json(&entries);
        return Ok(());
    }
    if entries.is_empty() {
        println!("No deployments in {env} yet.");
        return Ok(());
    }
    for entry in &entries {
        let d = &entry.deployment;
        println!(
            "#{} {}  release {}  {}  by {}  → {}{}",
            d.id,
            timestamp(d.created_at),
            d.release,
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
                    a.verdict.to_string(),
                ]);
            }
            for line in table.render().lines() {
                println!("    {line}");
            }
        }
    }
    Ok(())
}
