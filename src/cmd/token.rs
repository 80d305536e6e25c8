//! `hifi token create|list|revoke`: API tokens for the team server. The
//! secret is printed once, alone on stdout (`T=$(hifi token create ...)`);
//! only its hash is kept.

use super::Ctx;
use crate::cli::TokenCommand;
use crate::error::Result;
use crate::output::{self, Table, timestamp};

/// Runs a `hifi token` subcommand.
pub fn run(ctx: &Ctx, command: TokenCommand) -> Result {
    match command {
        TokenCommand::Create {
            name,
            role,
            expires,
        } => create(ctx, &name, role, expires.as_deref()),
        TokenCommand::List => list(ctx),
        TokenCommand::Revoke { name } => revoke(ctx, &name),
    }
}

fn create(ctx: &Ctx, name: &str, role: hifi_app::Role, expires: Option<&str>) -> Result {
    let created = ctx.hifi()?.create_token(name, role, expires)?;
    if ctx.out.json {
        output::json(&created);
        return Ok(());
    }
    let t = &created.token;
    let until = t
        .expires_at
        .map(|at| format!("until {} UTC", timestamp(at)))
        .unwrap_or_else(|| "until revoked".into());
    eprintln!("Created token {} ({}), valid {until}.", t.name, t.role);
    eprintln!("Its secret follows, shown this once: give it to its holder as HIFI_TOKEN.");
    println!("{}", created.secret);
    Ok(())
}

fn list(ctx: &Ctx) -> Result {
    let tokens = ctx.hifi()?.tokens()?;
    if ctx.out.json {
        output::json(&tokens);
        return Ok(());
    }
    if tokens.is_empty() {
        println!("No tokens yet. Create one: hifi token create ann --role developer --expires 90d");
        return Ok(());
    }
    let mut table = Table::new([
        "TOKEN",
        "ROLE",
        "CREATED",
        "BY",
        "EXPIRES",
        "LAST USED",
        "STATE",
    ]);
    let now = hifi_app::now_ms();
    for t in &tokens {
        let state = match (t.revoked_at, t.expires_at) {
            (Some(at), _) => format!("revoked {}", timestamp(at)),
            (None, Some(at)) if at <= now => "expired".into(),
            _ => "active".into(),
        };
        table.row(vec![
            t.name.clone(),
            t.role.to_string(),
            timestamp(t.created_at),
            output::clean(&t.created_by),
            t.expires_at
                .map(timestamp)
                .unwrap_or_else(|| "never".into()),
            t.last_used_at.map(timestamp).unwrap_or_else(|| "-".into()),
            state,
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

fn revoke(ctx: &Ctx, name: &str) -> Result {
    let revoked = ctx.hifi()?.revoke_token(name)?;
    if ctx.out.json {
        output::json(&revoked);
    } else if revoked.new {
        println!("Revoked token {}: it authenticates no more.", revoked.name);
    } else {
        println!("Token {} was already revoked.", revoked.name);
    }
    Ok(())
}
