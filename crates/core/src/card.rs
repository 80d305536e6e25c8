//! Cards: units of work that move through the workflow. A card is included
//! in every composed environment whose `cards_from` stage it has reached;
//! moving it back simply drops it from the next composition.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{Environment, Origin};
use crate::workflow::{Stage, Workflow};

/// A card's id as the team writes it (`PAY-12`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String")]
#[schema(value_type = String, example = "PAY-12")]
pub struct CardId(String);

impl CardId {
    /// Accepts letters, digits, `-`, `_` and `.`, starting with a letter or
    /// digit, at most 64 characters: ids end up in commit messages and logs.
    pub fn parse(id: &str) -> Result<CardId, String> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(CardId(id.to_string()))
        } else {
            Err(format!(
                "`{id}` is not a card id; use letters, digits, `-`, `_` or `.`, starting with a letter or digit (like PAY-12)"
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CardId {
    type Error = String;

    fn try_from(text: String) -> Result<CardId, String> {
        text.parse()
    }
}

impl AsRef<str> for CardId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for CardId {
    type Err = String;

    fn from_str(id: &str) -> Result<CardId, String> {
        CardId::parse(id)
    }
}

/// A card: what it is, which branch carries it, where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// Its id.
    pub id: CardId,
    /// A short title.
    pub title: String,
    /// The git branch with the card's work.
    pub branch: String,
    /// Its stage in the workflow.
    pub stage: Stage,
    /// A hotfix card: also composed onto production's live release in the
    /// hotfix environment, until it is Done.
    pub hotfix: bool,
}

impl Card {
    /// Whether a composition of `env` includes this card: an environment
    /// composed from cards takes those at its stage or later; a hotfix
    /// environment takes the hotfix cards that are not Done yet.
    pub fn included_in(&self, env: &Environment, workflow: &Workflow) -> bool {
        match &env.origin {
            Origin::Cards(from) => self.stage.rank >= from.rank,
            Origin::Hotfix(_) => self.hotfix && self.stage.rank < workflow.last().rank,
            Origin::Promote(_) => false,
        }
    }
}

/// The cards a composition of `env` merges, in merge order: the most
/// advanced cards first (they are closest to production, so a conflict is
/// blamed on the card that arrived later), then by id. The order depends
/// only on the cards' stages and ids, so the same board composes the same.
pub fn composition_order<'a>(
    env: &Environment,
    workflow: &Workflow,
    cards: &'a [Card],
) -> Vec<&'a Card> {
    let mut included: Vec<&Card> = cards
        .iter()
        .filter(|c| c.included_in(env, workflow))
        .collect();
    included.sort_by(|a, b| {
        b.stage
            .rank
            .cmp(&a.stage.rank)
            .then_with(|| a.id.cmp(&b.id))
    });
    included
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        Config::parse(
            r#"
[project]
name = "shop"
[[environment]]
name = "dev"
port = 8100
cards_from = "In Dev"
[[environment]]
name = "uat"
port = 8200
cards_from = "In Test"
[[environment]]
name = "prod"
port = 8500
promote_from = "uat"
"#,
        )
        .unwrap()
    }

    fn card(config: &Config, id: &str, stage: &str) -> Card {
        Card {
            id: CardId::parse(id).unwrap(),
            title: String::new(),
            branch: format!("feature/{id}"),
            stage: config.workflow.resolve(stage).unwrap(),
            hotfix: false,
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(CardId::parse("PAY-12").is_ok());
        for bad in ["", "-x", "a b", "x/y", "--upload-pack=z"] {
            assert!(CardId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inclusion_follows_the_stage() {
        let config = config();
        let dev = config.environment("dev").unwrap();
        let uat = config.environment("uat").unwrap();
        let prod = config.environment("prod").unwrap();
        let c = card(&config, "A-1", "in-test");
        let wf = &config.workflow;
        assert!(c.included_in(dev, wf) && c.included_in(uat, wf) && !c.included_in(prod, wf));
        let back = card(&config, "A-1", "ready for dev");
        assert!(!back.included_in(dev, wf));
    }

    #[test]
    fn a_hotfix_environment_takes_the_hotfix_cards_that_are_not_done() {
        let config = Config::parse(
            r#"
[project]
name = "shop"
[[environment]]
name = "prod"
port = 8500
cards_from = "Ready for Production"
[[environment]]
name = "hotfix"
port = 8600
hotfix_of = "prod"
"#,
        )
        .unwrap();
        let hotfix = config.environment("hotfix").unwrap();
        let wf = &config.workflow;
        let fix = Card {
            hotfix: true,
            ..card(&config, "FIX-1", "ready for dev")
        };
        assert!(fix.included_in(hotfix, wf));
        assert!(!card(&config, "A-1", "in test").included_in(hotfix, wf));
        let done = Card {
            hotfix: true,
            ..card(&config, "FIX-2", "done")
        };
        assert!(
            !done.included_in(hotfix, wf),
            "a fix that is Done is in the base"
        );
    }

    #[test]
    fn order_is_most_advanced_first_then_id() {
        let config = config();
        let cards = vec![
            card(&config, "B-2", "in-dev"),
            card(&config, "A-1", "in-dev"),
            card(&config, "C-3", "done"),
            card(&config, "D-4", "ready for dev"),
        ];
        let order: Vec<&str> =
            composition_order(config.environment("dev").unwrap(), &config.workflow, &cards)
                .iter()
                .map(|c| c.id.as_str())
                .collect();
        assert_eq!(order, ["C-3", "A-1", "B-2"]);
    }
}
