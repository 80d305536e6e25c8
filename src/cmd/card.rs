//! `hifi card add|move|rm|list` and `hifi board`: the card workflow. A card's
//! stage decides which environments include it; these commands only record
//! the decision (a composition applies it).

use hifi_core::card::{Card, CardId};

use hifi_core::{Environment, Origin};
use hifi_git::Repo;
use serde::Serialize;

use super::Output;
use crate::cli::CardCommand;
use crate::error::{Failure, Result};
use crate::output::{self, Table};
use crate::project::Project;

/// Runs a `hifi card` subcommand.
pub fn run(project: &mut Project, command: CardCommand, out: Output) -> Result {
    match command {
        CardCommand::Add { id, branch, title } => add(project, &id, &branch, &title, out),
        CardCommand::Move { id, stage } => move_to(project, &id, &stage, out),
        CardCommand::Rm { id } => remove(project, &id, out),
        CardCommand::List => list(project, out),
    }
}

fn card_id(id: &str) -> Result<CardId> {
    CardId::parse(id).map_err(Failure::refused)
}

fn ensure_exists(project: &Project, id: &CardId) -> Result {
    match project.store.card(id.as_str()) {
        Ok(_) => Ok(()),
        Err(hifi_store::Error::NotFound { .. }) => {
            Err(Failure::refused(format!("unknown card {id}"))
                .hint("see the cards with `hifi card list`"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Names of the composed environments that include a card at its stage.
fn environments_of<'a>(project: &'a Project, card: &Card) -> Vec<&'a str> {
    project
        .config
        .environments
        .iter()
        .filter(|e| card.included_in(e))
        .map(|e| e.name.as_str())
        .collect()
}

#[derive(Serialize)]
struct CardReport<'a> {
    id: &'a str,
    title: &'a str,
    branch: &'a str,
    stage: &'a str,
    environments: Vec<&'a str>,
}

impl<'a> CardReport<'a> {
    fn new(project: &'a Project, card: &'a Card) -> Self {
        CardReport {
            id: card.id.as_str(),
            title: &card.title,
            branch: &card.branch,
            stage: &card.stage.name,
            environments: environments_of(project, card),
        }
    }
}

fn add(project: &mut Project, id: &str, branch: &str, title: &str, out: Output) -> Result {
    let id = card_id(id)?;
    Repo::validate_branch_name(branch)?;
    let stage = project.config.workflow.first();
    match project
        .store
        .add_card(&project.audit(), id.as_str(), title, branch, &stage.name)
    {
        Err(hifi_store::Error::AlreadyExists { .. }) => {
            return Err(
                Failure::refused(format!("card {id} already exists")).hint(format!(
                    "pick another id, or move it with `hifi card move {id} STAGE`"
                )),
            );
        }
        other => other?,
    }
    // A card may be registered before its branch is pushed; say so now
    // rather than let the first composition be the surprise.
    let exists = project.repo.resolve_branches(&[branch])?[0].is_some();
    let card = Card {
        id,
        title: title.to_string(),
        branch: branch.to_string(),
        stage,
    };
    if out.json {
        output::json(&CardReport::new(project, &card));
    } else {
        println!("Added {} at {} (branch {branch}).", card.id, card.stage);
        if !exists {
            eprintln!(
                "note: branch {branch} does not exist yet; compositions that include {} will fail until it does",
                card.id
            );
        }
    }
    Ok(())
}

fn move_to(project: &mut Project, id: &str, stage: &str, out: Output) -> Result {
    let id = card_id(id)?;
    let stage = project
        .config
        .workflow
        .resolve(stage)
        .map_err(Failure::refused)?;
    ensure_exists(project, &id)?;
    let from = project
        .store
        .move_card(&project.audit(), id.as_str(), &stage.name)?;
    // The move is recorded; report on this card alone (another card on a
    // stage the workflow lost must not turn a done move into an error).
    let row = project.store.card(id.as_str())?;
    let card = Card {
        id: id.clone(),
        title: row.title,
        branch: row.branch,
        stage: stage.clone(),
    };
    if out.json {
        output::json(&CardReport::new(project, &card));
    } else {
        let envs = environments_of(project, &card);
        let included = if envs.is_empty() {
            "no environment".to_string()
        } else {
            envs.join(", ")
        };
        println!(
            "Moved {id}: {from} → {}. Included in: {included} (from their next composition).",
            card.stage
        );
    }
    Ok(())
}

fn remove(project: &mut Project, id: &str, out: Output) -> Result {
    let id = card_id(id)?;
    ensure_exists(project, &id)?;
    project.store.remove_card(&project.audit(), id.as_str())?;
    if out.json {
        output::json(&serde_json::json!({ "removed": id }));
    } else {
        println!("Removed {id}. Releases that merged it keep their record.");
    }
    Ok(())
}

fn list(project: &Project, out: Output) -> Result {
    let cards = project.cards()?;
    let reports: Vec<CardReport> = cards.iter().map(|c| CardReport::new(project, c)).collect();
    if out.json {
        output::json(&reports);
        return Ok(());
    }
    if reports.is_empty() {
        println!(
            "No cards yet. Add one: hifi card add PAY-12 --branch feature/pay-12 --title \"Pay by card\""
        );
        return Ok(());
    }
    let mut table = Table::new(["CARD", "STAGE", "BRANCH", "ENVIRONMENTS", "TITLE"]);
    for r in &reports {
        table.row(vec![
            r.id.to_string(),
            r.stage.to_string(),
            r.branch.to_string(),
            r.environments.join(","),
            r.title.to_string(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

#[derive(Serialize)]
struct BoardReport<'a> {
    stages: Vec<StageColumn<'a>>,
    environments: Vec<EnvRow>,
    conflicts: Vec<hifi_store::ConflictFlag>,
}

#[derive(Serialize)]
struct StageColumn<'a> {
    stage: &'a str,
    cards: Vec<&'a str>,
}

#[derive(Serialize)]
struct EnvRow {
    env: String,
    /// `cards from STAGE` or `promote from ENV`.
    origin: String,
    cards: Vec<String>,
}

fn env_row(project: &Project, env: &Environment, cards: &[Card]) -> Result<EnvRow> {
    Ok(match &env.origin {
        Origin::Cards(stage) => EnvRow {
            env: env.name.clone(),
            origin: format!("cards from {stage}"),
            cards: hifi_core::card::composition_order(env, cards)
                .iter()
                .map(|c| c.id.to_string())
                .collect(),
        },
        // A gated environment holds whatever its live release merged.
        Origin::Promote(source) => {
            let cards = match project.store.live_release(&env.name)? {
                Some(id) => project
                    .store
                    .release(&id)?
                    .cards
                    .iter()
                    .map(|c| c.id.to_string())
                    .collect(),
                None => Vec::new(),
            };
            EnvRow {
                env: env.name.clone(),
                origin: format!("promotes from {source}"),
                cards,
            }
        }
    })
}

/// `hifi board`: stages as columns with their cards, then each environment's cards.
pub fn board(project: &Project, out: Output) -> Result {
    let cards = project.cards()?;
    let stages: Vec<_> = project.config.workflow.stages().collect();
    let columns: Vec<StageColumn> = stages
        .iter()
        .map(|stage| StageColumn {
            stage: &stage.name,
            cards: cards
                .iter()
                .filter(|c| &c.stage == stage)
                .map(|c| c.id.as_str())
                .collect(),
        })
        .collect();
    let environments = project
        .config
        .environments
        .iter()
        .map(|env| env_row(project, env, &cards))
        .collect::<Result<Vec<_>>>()?;
    let report = BoardReport {
        stages: columns,
        environments,
        conflicts: project.store.conflicts()?,
    };
    if out.json {
        output::json(&report);
        return Ok(());
    }

    let height = report
        .stages
        .iter()
        .map(|c| c.cards.len())
        .max()
        .unwrap_or(0);
    let mut table = Table::new(report.stages.iter().map(|c| c.stage));
    for i in 0..height {
        table.row(
            report
                .stages
                .iter()
                .map(|c| c.cards.get(i).map(|s| s.to_string()).unwrap_or_default())
                .collect(),
        );
    }
    print!("{}", table.render());
    println!();
    let mut envs = Table::new(["ENVIRONMENT", "ORIGIN", "CARDS"]);
    for e in &report.environments {
        let cards = if e.cards.is_empty() {
            "-".to_string()
        } else {
            e.cards.join(", ")
        };
        envs.row(vec![e.env.clone(), e.origin.clone(), cards]);
    }
    print!("{}", envs.render());
    for flag in &report.conflicts {
        let with = if flag.with_cards.is_empty() {
            "the base branch".to_string()
        } else {
            flag.with_cards.join(", ")
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
