//! The card workflow: adding, moving and removing cards, and the views of
//! them — the card list and the board. A card's stage decides which
//! environments include it; these operations only record the decision (a
//! composition applies it).

use hifi_core::card::{Card, CardId, composition_order};
use hifi_core::{Action, Environment, Origin};
use hifi_git::Repo;
use hifi_store::ConflictFlag;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Actor, Project};

/// A card as the views show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CardView {
    /// Its id.
    pub id: CardId,
    /// Its title.
    pub title: String,
    /// Its branch.
    pub branch: String,
    /// Its stage.
    pub stage: String,
    /// The composed environments that include it at this stage.
    pub environments: Vec<String>,
    /// A hotfix card (also composed onto production's live release).
    pub hotfix: bool,
    /// The environments whose live release merged it.
    pub live_in: Vec<String>,
}

/// A card just added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Added {
    /// The card.
    pub card: CardView,
    /// Whether its branch exists yet (a card may be registered first).
    pub branch_exists: bool,
}

/// A card just moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Moved {
    /// The card, at its new stage.
    pub card: CardView,
    /// The stage it left.
    pub from: String,
}

/// The board: stages as columns, each environment's cards, conflicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Board {
    /// Every stage with its cards, in workflow order.
    pub stages: Vec<Column>,
    /// Every environment with the cards it includes.
    pub environments: Vec<EnvCards>,
    /// Cards the last composition of an environment could not merge.
    pub conflicts: Vec<ConflictFlag>,
    /// Every card, with where it is included and where it is live.
    pub cards: Vec<CardView>,
}

/// One stage of the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Column {
    /// The stage.
    pub stage: String,
    /// Its cards, by id.
    pub cards: Vec<CardId>,
}

/// The cards of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvCards {
    /// The environment.
    pub env: String,
    /// `cards from STAGE` or `promotes from ENV`.
    pub origin: String,
    /// Its cards: those its next composition merges, or, for a gated
    /// environment, those its live release merged.
    pub cards: Vec<CardId>,
}

/// Which cards each environment's live release merged.
pub(crate) struct LiveCards(Vec<(String, Vec<CardId>)>);

impl LiveCards {
    fn of(&self, card: &CardId) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, cards)| cards.contains(card))
            .map(|(env, _)| env.clone())
            .collect()
    }
}

impl Project {
    pub(crate) fn live_cards(&self) -> Result<LiveCards> {
        let mut live = Vec::new();
        for env in &self.config.environments {
            if let Some(id) = self.store.live_release(&env.name)? {
                let cards = self.store.release(&id)?.cards.into_iter().map(|c| c.id);
                live.push((env.name.clone(), cards.collect()));
            }
        }
        Ok(LiveCards(live))
    }

    fn view(&self, card: Card, live: &LiveCards) -> CardView {
        let environments = self
            .config
            .environments
            .iter()
            .filter(|e| card.included_in(e, &self.config.workflow))
            .map(|e| e.name.clone())
            .collect();
        CardView {
            live_in: live.of(&card.id),
            id: card.id,
            title: card.title,
            branch: card.branch,
            stage: card.stage.name,
            environments,
            hotfix: card.hotfix,
        }
    }

    fn existing(&self, id: &CardId) -> Result<hifi_store::CardRow> {
        match self.store.card(id) {
            Err(hifi_store::Error::NotFound { .. }) => Err(Error::UnknownCard { id: id.clone() }),
            other => Ok(other?),
        }
    }

    /// Registers a card at the first stage of the workflow; a hotfix card
    /// with `hotfix`.
    pub fn add_card(
        &mut self,
        actor: &Actor,
        id: &str,
        branch: &str,
        title: &str,
        hotfix: bool,
    ) -> Result<Added> {
        self.authorize(actor, Action::EditCards)?;
        let id = Project::card_id(id)?;
        Repo::validate_branch_name(branch).map_err(|e| Error::BadInput(e.to_string()))?;
        if branch == "hifi" || branch.starts_with("hifi/") {
            return Err(Error::BadInput(format!(
                "branch {branch} is inside hifi/, hifi's own namespace (it writes hifi/env/<env>); give the card a branch of its own"
            )));
        }
        let stage = self.config.workflow.first();
        let audit = self.audit(actor);
        match self
            .store
            .add_card_of_kind(&audit, &id, title, branch, &stage.name, hotfix)
        {
            Err(hifi_store::Error::AlreadyExists { .. }) => return Err(Error::CardExists { id }),
            other => other?,
        }
        // A card may be registered before its branch is pushed; say so now
        // rather than let the first composition be the surprise.
        let branch_exists = self.repo.resolve_branches(&[branch])?[0].is_some();
        let card = Card {
            id,
            title: title.to_string(),
            branch: branch.to_string(),
            stage,
            hotfix,
        };
        Ok(Added {
            card: self.view(card, &self.live_cards()?),
            branch_exists,
        })
    }

    /// Moves a card to a stage, named loosely (`in-test` = `In Test`).
    pub fn move_card(&mut self, actor: &Actor, id: &str, stage: &str) -> Result<Moved> {
        self.authorize(actor, Action::EditCards)?;
        let id = Project::card_id(id)?;
        let stage = self
            .config
            .workflow
            .resolve(stage)
            .map_err(Error::BadInput)?;
        self.existing(&id)?;
        let audit = self.audit(actor);
        let from = self.store.move_card(&audit, &id, &stage.name)?;
        // The move is recorded; report on this card alone (another card on a
        // stage the workflow lost must not turn a done move into an error).
        let row = self.store.card(&id)?;
        let card = Card {
            id,
            title: row.title,
            branch: row.branch,
            stage,
            hotfix: row.hotfix,
        };
        Ok(Moved {
            card: self.view(card, &self.live_cards()?),
            from,
        })
    }

    /// Removes a card; releases that merged it keep their record.
    pub fn remove_card(&mut self, actor: &Actor, id: &str) -> Result<CardId> {
        self.authorize(actor, Action::EditCards)?;
        let id = Project::card_id(id)?;
        self.existing(&id)?;
        let audit = self.audit(actor);
        self.store.remove_card(&audit, &id)?;
        Ok(id)
    }

    /// Every card with its stage and the environments that include it.
    pub fn cards(&self, actor: &Actor) -> Result<Vec<CardView>> {
        self.authorize(actor, Action::Read)?;
        let live = self.live_cards()?;
        Ok(self
            .all_cards()?
            .into_iter()
            .map(|c| self.view(c, &live))
            .collect())
    }

    /// Stages as columns with their cards, then each environment's cards.
    pub fn board(&self, actor: &Actor) -> Result<Board> {
        self.authorize(actor, Action::Read)?;
        let cards = self.all_cards()?;
        let stages = self
            .config
            .workflow
            .stages()
            .map(|stage| Column {
                cards: cards
                    .iter()
                    .filter(|c| c.stage == stage)
                    .map(|c| c.id.clone())
                    .collect(),
                stage: stage.name,
            })
            .collect();
        let environments = self
            .config
            .environments
            .iter()
            .map(|env| self.env_cards(env, &cards))
            .collect::<Result<_>>()?;
        let live = self.live_cards()?;
        Ok(Board {
            stages,
            environments,
            conflicts: self.store.conflicts()?,
            cards: cards.into_iter().map(|c| self.view(c, &live)).collect(),
        })
    }

    fn env_cards(&self, env: &Environment, cards: &[Card]) -> Result<EnvCards> {
        let cards = match &env.origin {
            Origin::Cards(_) | Origin::Hotfix(_) => {
                composition_order(env, &self.config.workflow, cards)
                    .iter()
                    .map(|c| c.id.clone())
                    .collect()
            }
            // A gated environment holds whatever its live release merged.
            Origin::Promote(_) => match self.store.live_release(&env.name)? {
                Some(id) => self
                    .store
                    .release(&id)?
                    .cards
                    .into_iter()
                    .map(|c| c.id)
                    .collect(),
                None => Vec::new(),
            },
        };
        Ok(EnvCards {
            env: env.name.clone(),
            origin: env.describe_origin(),
            cards,
        })
    }
}
