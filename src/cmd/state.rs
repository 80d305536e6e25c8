//! `hifi state backups` and `hifi state restore`: the state database's
//! rolling backups.

use super::Ctx;
use crate::cli::StateCommand;
use crate::error::Result;
use crate::output::{self, Table, timestamp};

/// Runs a `hifi state` subcommand.
pub fn run(ctx: &Ctx, command: StateCommand) -> Result {
    match command {
        StateCommand::Backups => backups(ctx),
        StateCommand::Restore { backup } => restore(ctx, backup.as_deref()),
    }
}

fn backups(ctx: &Ctx) -> Result {
    let backups = ctx.hifi()?.backups()?;
    if ctx.out.json {
        output::json(&backups);
        return Ok(());
    }
    if backups.is_empty() {
        println!("No backups yet: one is taken each time a release goes live.");
        return Ok(());
    }
    let mut table = Table::new(["BACKUP", "TAKEN", "WHY", "EVENTS", "LIVE"]);
    for b in &backups {
        let live: Vec<String> = b
            .routing
            .iter()
            .filter_map(|(env, r)| r.active.as_ref().map(|a| format!("{env}={}", a.release)))
            .collect();
        table.row(vec![
            b.backup.name.clone(),
            timestamp(b.backup.at),
            b.backup.reason.clone(),
            b.events.to_string(),
            if live.is_empty() {
                "-".into()
            } else {
                live.join(" ")
            },
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

fn restore(ctx: &Ctx, backup: Option<&str>) -> Result {
    let restored = ctx.hifi()?.restore(backup)?;
    if ctx.out.json {
        output::json(&restored);
        return Ok(());
    }
    println!(
        "Restored the state from {} (taken {}, {}).",
        restored.from.name,
        timestamp(restored.from.at),
        restored.from.reason
    );
    if let Some(saved) = &restored.saved {
        println!("The state it replaced is kept as {}.", saved.name);
    }
    println!("Start hifi with `hifi up`: it brings back what was live.");
    Ok(())
}
