//! `hifi releases`, `hifi release show`, `hifi diff` and `hifi approve`:
//! reading and signing off releases.

use hifi_core::diff::Change;

use super::Ctx;
use crate::cli::ReleaseCommand;
use crate::error::Result;
use crate::output::{self, Table, timestamp};

/// `hifi releases`: every release, newest first.
pub fn list(ctx: &Ctx) -> Result {
    let releases = ctx.hifi()?.releases()?;
    if ctx.out.json {
        output::json(&releases);
        return Ok(());
    }
    if releases.is_empty() {
        println!("No releases yet. Compose an environment: hifi compose dev");
        return Ok(());
    }
    let mut table = Table::new(["RELEASE", "CREATED", "COMPOSED FOR", "CARDS", "LIVE IN"]);
    for r in &releases {
        let cards: Vec<&str> = r.release.cards.iter().map(|c| c.id.as_str()).collect();
        table.row(vec![
            r.release.id.short().to_string(),
            timestamp(r.release.created_at),
            r.composed_in.join(","),
            if cards.is_empty() {
                "-".into()
            } else {
                cards.join(",")
            },
            r.live_in.join(","),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// Runs a `hifi release` subcommand.
pub fn run(ctx: &Ctx, command: ReleaseCommand) -> Result {
    match command {
        ReleaseCommand::Show { id } => show(ctx, &id),
        ReleaseCommand::Reject { id, reason } => reject(ctx, &id, &reason),
    }
}

/// `hifi release show ID`: a release's fidelity chain.
fn show(ctx: &Ctx, id: &str) -> Result {
    let detail = ctx.hifi()?.release(id)?;
    if ctx.out.json {
        output::json(&detail);
        return Ok(());
    }
    let r = &detail.summary.release;
    println!("Release {}", r.id.as_str());
    if let Some(rejected) = &detail.summary.rejected {
        println!(
            "  REJECTED  {} by {} ({})",
            timestamp(rejected.at),
            rejected.actor,
            rejected.reason
        );
    }
    println!("  created   {}", timestamp(r.created_at));
    println!(
        "  base      {}",
        &r.base_commit[..r.base_commit.len().min(12)]
    );
    println!("  tree      {}", &r.tree[..r.tree.len().min(12)]);
    if r.cards.is_empty() {
        println!("  cards     none");
    }
    for c in &r.cards {
        println!(
            "  card      {} {} ({})",
            c.id,
            &c.commit[..c.commit.len().min(12)],
            c.branch
        );
    }
    for s in &r.services {
        // What every start checks: the artifact's digest, the image's id.
        let short = |digest: &str| digest[..digest.len().min(19)].to_string();
        let mut checked = Vec::new();
        if let Some(digest) = &s.digest {
            checked.push(format!("artifact {}", short(digest)));
        }
        if let Some(image) = &s.image_id {
            checked.push(format!("image {}", short(image)));
        }
        println!(
            "  service   {} {}{}",
            s.service,
            &s.version[..s.version.len().min(12)],
            if checked.is_empty() {
                String::new()
            } else {
                format!("  {}", checked.join("  "))
            }
        );
    }
    println!("\nComposed");
    for c in &detail.compositions {
        println!("  {}  {} by {}", timestamp(c.at), c.env, c.actor);
    }
    println!("\nVerified");
    if detail.verified.is_empty() {
        println!("  nowhere yet");
    }
    for v in &detail.verified {
        println!("  {}  {}", timestamp(v.at), v.env);
    }
    println!("\nApproved");
    if detail.approvals.is_empty() {
        println!("  by no one yet");
    }
    for a in &detail.approvals {
        println!("  {}  {} for {}", timestamp(a.at), a.actor, a.env);
    }
    println!("\nDeployments");
    for d in &detail.deployments {
        println!(
            "  #{} {}  {} ({}) by {} → {}",
            d.id,
            timestamp(d.created_at),
            d.env,
            d.strategy,
            d.actor,
            d.state
        );
    }
    let live = if detail.summary.live_in.is_empty() {
        "nowhere".to_string()
    } else {
        detail.summary.live_in.join(", ")
    };
    println!("\nLive in: {live}");
    Ok(())
}

/// `hifi release reject ID --reason WHY`.
fn reject(ctx: &Ctx, id: &str, reason: &str) -> Result {
    let rejected = ctx.hifi()?.reject(id, reason)?;
    if ctx.out.json {
        output::json(&rejected);
        return Ok(());
    }
    if rejected.new {
        println!(
            "Rejected release {}: it never goes live again ({}).",
            rejected.release, rejected.reason
        );
    } else {
        println!(
            "Release {} was already rejected ({}).",
            rejected.release, rejected.reason
        );
    }
    if !rejected.live_in.is_empty() {
        println!(
            "It stays live in {} until a release replaces it.",
            rejected.live_in.join(", ")
        );
    }
    Ok(())
}

/// `hifi diff A B`: cards, service versions and vars that differ.
pub fn diff(ctx: &Ctx, a: &str, b: &str) -> Result {
    let view = ctx.hifi()?.diff(a, b)?;
    if ctx.out.json {
        output::json(&view);
        return Ok(());
    }
    let d = &view.diff;
    let describe =
        |env: &str, release: &Option<String>, state: Option<hifi_app::releases::Current>| match (
            release, state,
        ) {
            (Some(r), Some(state)) => {
                format!(
                    "{env}: release {} ({})",
                    &r[..r.len().min(12)],
                    state.describe()
                )
            }
            _ => format!("{env}: nothing composed or deployed"),
        };
    println!(
        "{}\n{}",
        describe(a, &d.release_a, view.state_a),
        describe(b, &d.release_b, view.state_b)
    );
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
pub fn approve(ctx: &Ctx, env: &str, release: Option<&str>) -> Result {
    let approved = ctx.hifi()?.approve(env, release)?;
    if ctx.out.json {
        output::json(&approved);
        return Ok(());
    }
    let verb = if approved.new {
        "approved"
    } else {
        "had already approved"
    };
    println!(
        "{} {verb} release {} for {} ({} of {} required approval(s)).",
        approved.approver, approved.release, approved.env, approved.approvals, approved.required
    );
    if approved.four_eyes {
        println!(
            "{} is four-eyes: {}'s sign-off does not count if {} deploys it there.",
            approved.env, approved.approver, approved.approver
        );
    }
    Ok(())
}
