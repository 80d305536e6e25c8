//! `hifi card add|move|rm|list` and `hifi board`.

use hifi_app::cards::CardView;

use super::Ctx;
use crate::cli::CardCommand;
use crate::error::Result;
use crate::output::{self, Table};

/// Runs a `hifi card` subcommand.
pub fn run(ctx: &Ctx, command: CardCommand) -> Result {
    match command {
        CardCommand::Add {
            id,
            branch,
            title,
            hotfix,
        } => add(ctx, &id, &branch, &title, hotfix),
        CardCommand::Move { id, stage } => move_to(ctx, &id, &stage),
        CardCommand::Rm { id } => remove(ctx, &id),
        CardCommand::List => list(ctx),
    }
}

fn add(ctx: &Ctx, id: &str, branch: &str, title: &str, hotfix: bool) -> Result {
    let added = ctx.hifi()?.add_card(id, branch, title, hotfix)?;
    let card = &added.card;
    if ctx.out.json {
        output::json(card);
        return Ok(());
    }
    let what = if card.hotfix { "hotfix card " } else { "" };
    println!(
        "Added {what}{} at {} (branch {branch}).",
        card.id, card.stage
    );
    if card.hotfix && !card.environments.is_empty() {
        println!(
            "It is composed onto production's live release in: {}.",
            card.environments.join(", ")
        );
    }
    if !added.branch_exists {
        eprintln!(
            "note: branch {branch} does not exist yet; compositions that include {} will fail until it does",
            card.id
        );
    }
    Ok(())
}

fn move_to(ctx: &Ctx, id: &str, stage: &str) -> Result {
    let moved = ctx.hifi()?.move_card(id, stage)?;
    let card = &moved.card;
    if ctx.out.json {
        output::json(card);
        return Ok(());
    }
    let included = if card.environments.is_empty() {
        "no environment".to_string()
    } else {
        card.environments.join(", ")
    };
    println!(
        "Moved {}: {} → {}. Included in: {included} (from their next composition).",
        card.id, moved.from, card.stage
    );
    Ok(())
}

fn remove(ctx: &Ctx, id: &str) -> Result {
    let id = ctx.hifi()?.remove_card(id)?;
    if ctx.out.json {
        output::json(&serde_json::json!({ "removed": id }));
    } else {
        println!("Removed {id}. Releases that merged it keep their record.");
    }
    Ok(())
}

fn list(ctx: &Ctx) -> Result {
    let cards: Vec<CardView> = ctx.hifi()?.cards()?;
    if ctx.out.json {
        output::json(&cards);
        return Ok(());
    }
    if cards.is_empty() {
        println!(
            "No cards yet. Add one: hifi card add PAY-12 --branch feature/pay-12 --title \"Pay by card\""
        );
        return Ok(());
    }
    let mut table = Table::new([
        "CARD",
        "STAGE",
        "BRANCH",
        "ENVIRONMENTS",
        "LIVE IN",
        "TITLE",
    ]);
    for c in &cards {
        let id = if c.hotfix {
            format!("{} (hotfix)", c.id)
        } else {
            c.id.to_string()
        };
        table.row(vec![
            id,
            c.stage.clone(),
            c.branch.clone(),
            c.environments.join(","),
            c.live_in.join(","),
            output::clean(&c.title),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// `hifi board`: stages as columns with their cards, then each environment's cards.
pub fn board(ctx: &Ctx) -> Result {
    let board = ctx.hifi()?.board()?;
    if ctx.out.json {
        output::json(&board);
        return Ok(());
    }
    let height = board
        .stages
        .iter()
        .map(|c| c.cards.len())
        .max()
        .unwrap_or(0);
    let mut table = Table::new(board.stages.iter().map(|c| c.stage.as_str()));
    for i in 0..height {
        table.row(
            board
                .stages
                .iter()
                .map(|c| c.cards.get(i).map(|s| s.to_string()).unwrap_or_default())
                .collect(),
        );
    }
    print!("{}", table.render());
    println!();
    let mut envs = Table::new(["ENVIRONMENT", "ORIGIN", "CARDS"]);
    for e in &board.environments {
        let cards = if e.cards.is_empty() {
            "-".to_string()
        } else {
            output::join(&e.cards, ", ")
        };
        envs.row(vec![e.env.clone(), e.origin.clone(), cards]);
    }
    print!("{}", envs.render());
    let live: Vec<String> = board
        .cards
        .iter()
        .filter(|c| !c.live_in.is_empty())
        .map(|c| format!("{} in {}", c.id, c.live_in.join(", ")))
        .collect();
    if !live.is_empty() {
        println!("\nLive: {}", live.join("; "));
    }
    for flag in &board.conflicts {
        let with = if flag.with_cards.is_empty() {
            "the base branch".to_string()
        } else {
            output::join(&flag.with_cards, ", ")
        };
        println!(
            "! {} could not be merged into {} (conflicts with {with} in {})",
            flag.card,
            flag.env,
            flag.files.join(", ")
        );
    }
    Ok(())
}
