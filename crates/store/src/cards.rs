//! Cards as stored: the stage is kept by name, and resolved against the
//! workflow by the caller, so a renamed stage shows up as a clear error
//! instead of silently moving cards.

use hifi_core::card::CardId;
use hifi_core::event::EventKind;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::events::{Subject, record};
use crate::{Audit, Error, Result, Store};

/// A card as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CardRow {
    /// Card id.
    pub id: CardId,
    /// Title.
    pub title: String,
    /// Git branch.
    pub branch: String,
    /// Stage name as written in the workflow.
    pub stage: String,
    /// When it was added (unix ms).
    pub created_at: i64,
    /// When it last changed (unix ms).
    pub updated_at: i64,
    /// Whether it is a hotfix card (composed onto production's live
    /// release in the hotfix environment).
    pub hotfix: bool,
}

impl CardRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<CardRow> {
        Ok(CardRow {
            id: r.get(0)?,
            title: r.get(1)?,
            branch: r.get(2)?,
            stage: r.get(3)?,
            created_at: r.get(4)?,
            updated_at: r.get(5)?,
            hotfix: r.get(6)?,
        })
    }
}

/// A card that could not be merged into an environment's last composition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConflictFlag {
    /// The environment.
    pub env: String,
    /// The card that could not be merged.
    pub card: CardId,
    /// Cards it conflicts with, where they could be told.
    pub with_cards: Vec<CardId>,
    /// The conflicting files.
    pub files: Vec<String>,
    /// When (unix ms).
    pub at: i64,
}

const CARD_COLUMNS: &str = "id, title, branch, stage, created_at, updated_at, hotfix";

/// A card moved because its release moved (a promotion into production
/// started, was verified, or was rolled back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CardMove {
    /// The card.
    pub card: CardId,
    /// The stage it left.
    pub from: String,
    /// The stage it reached.
    pub to: String,
}

/// Who moves cards that follow their releases.
pub const FOLLOWER: &str = "hifi";

/// Moves cards inside an open transaction, each with its event by
/// [`FOLLOWER`]; `deployment` records the moves so they can be undone.
pub(crate) fn follow(
    tx: &Transaction<'_>,
    at: i64,
    moves: &[CardMove],
    deployment: Option<i64>,
    why: &str,
) -> Result<()> {
    let audit = Audit {
        actor: FOLLOWER.into(),
        at,
    };
    for m in moves {
        tx.execute(
            "UPDATE cards SET stage = ?2, updated_at = ?3 WHERE id = ?1",
            params![m.card, m.to, at],
        )?;
        if let Some(deployment) = deployment {
            tx.execute(
                "INSERT INTO card_follow (deployment, card, from_stage, to_stage) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (deployment, card) DO UPDATE SET to_stage = ?4",
                params![deployment, m.card, m.from, m.to],
            )?;
        }
        let message = format!("moved card {} from {} to {}: {why}", m.card, m.from, m.to);
        let mut subject = Subject::card(&m.card);
        subject.deployment = deployment;
        record(tx, &audit, EventKind::CardMoved, subject, &message)?;
    }
    Ok(())
}

/// Undoes the card moves a deployment made (where a card is still where
/// it was moved to), with their events; returns what moved back.
pub(crate) fn unfollow(
    tx: &Transaction<'_>,
    at: i64,
    deployment: i64,
    why: &str,
) -> Result<Vec<CardMove>> {
    let rows: Vec<(CardId, String, String, String)> = tx
        .prepare(
            "SELECT f.card, f.from_stage, f.to_stage, c.stage FROM card_follow f
             JOIN cards c ON c.id = f.card WHERE f.deployment = ?1 ORDER BY f.card",
        )?
        .query_map([deployment], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let back: Vec<CardMove> = rows
        .into_iter()
        .filter(|(_, _, to, now)| to == now)
        .map(|(card, from, to, _)| CardMove {
            card,
            from: to,
            to: from,
        })
        .collect();
    follow(tx, at, &back, None, why)?;
    tx.execute(
        "DELETE FROM card_follow WHERE deployment = ?1",
        [deployment],
    )?;
    Ok(back)
}

impl Store {
    /// Registers a card; refuses a duplicate id.
    pub fn add_card(
        &mut self,
        audit: &Audit,
        id: &CardId,
        title: &str,
        branch: &str,
        stage: &str,
    ) -> Result<()> {
        self.add_card_of_kind(audit, id, title, branch, stage, false)
    }

    /// Registers a card, a hotfix card when `hotfix`; refuses a duplicate id.
    pub fn add_card_of_kind(
        &mut self,
        audit: &Audit,
        id: &CardId,
        title: &str,
        branch: &str,
        stage: &str,
        hotfix: bool,
    ) -> Result<()> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO cards (id, title, branch, stage, created_at, updated_at, hotfix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                params![id, title, branch, stage, audit.at, hotfix],
            )?;
            if inserted == 0 {
                return Err(Error::AlreadyExists {
                    kind: "card",
                    id: id.to_string(),
                });
            }
            let what = if hotfix { "hotfix card" } else { "card" };
            let message = format!("added {what} {id} ({branch}) at {stage}");
            record(tx, audit, EventKind::CardAdded, Subject::card(id), &message)
        })
    }

    /// Moves a card to a stage; returns the stage it left.
    pub fn move_card(&mut self, audit: &Audit, id: &CardId, stage: &str) -> Result<String> {
        self.write(|tx| {
            let from = current_stage(tx, id)?;
            tx.execute(
                "UPDATE cards SET stage = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, stage, audit.at],
            )?;
            let message = format!("moved card {id} from {from} to {stage}");
            record(tx, audit, EventKind::CardMoved, Subject::card(id), &message)?;
            Ok(from)
        })
    }

    /// Removes a card (its history stays in releases and events).
    pub fn remove_card(&mut self, audit: &Audit, id: &CardId) -> Result<()> {
        self.write(|tx| {
            let stage = current_stage(tx, id)?;
            tx.execute("DELETE FROM cards WHERE id = ?1", [id])?;
            let message = format!("removed card {id} (was at {stage})");
            record(
                tx,
                audit,
                EventKind::CardRemoved,
                Subject::card(id),
                &message,
            )
        })
    }

    /// One card.
    pub fn card(&self, id: &CardId) -> Result<CardRow> {
        self.conn()
            .query_row(
                &format!("SELECT {CARD_COLUMNS} FROM cards WHERE id = ?1"),
                [id],
                CardRow::from_row,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound {
                kind: "card",
                id: id.to_string(),
            })
    }

    /// Every card, by id.
    pub fn cards(&self) -> Result<Vec<CardRow>> {
        let mut stmt = self
            .conn()
            .prepare(&format!("SELECT {CARD_COLUMNS} FROM cards ORDER BY id"))?;
        let rows = stmt.query_map([], CardRow::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every card flagged by a failed composition.
    pub fn conflicts(&self) -> Result<Vec<ConflictFlag>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT env, card, with_cards, files, at FROM conflicts ORDER BY env, card")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, CardId>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
            ))
        })?;
        rows.map(|row| {
            let (env, card, with_cards, files, at) = row?;
            Ok(ConflictFlag {
                env,
                card,
                with_cards: split_list(&with_cards)
                    .iter()
                    .map(|id| CardId::parse(id))
                    .collect::<Result<_, _>>()
                    .map_err(|detail| Error::Corrupt {
                        what: "card id",
                        detail,
                    })?,
                files: split_list(&files),
                at,
            })
        })
        .collect()
    }

    /// Clears an environment's conflict flag, if it has one (with an event).
    pub fn clear_conflicts(&mut self, audit: &Audit, env: &str) -> Result<()> {
        self.write(|tx| {
            let cleared = tx.execute("DELETE FROM conflicts WHERE env = ?1", [env])?;
            if cleared > 0 {
                let message = format!("{env} composes again; its conflict flag is cleared");
                record(
                    tx,
                    audit,
                    EventKind::ComposeConflictCleared,
                    Subject::env(env),
                    &message,
                )?;
            }
            Ok(())
        })
    }

    /// Records that composing `env` failed on a conflict: flags the card,
    /// replacing any earlier flag for that environment, with its event.
    pub fn record_conflict(
        &mut self,
        audit: &Audit,
        flag: &ConflictFlag,
        message: &str,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM conflicts WHERE env = ?1", [&flag.env])?;
            tx.execute(
                "INSERT INTO conflicts (env, card, with_cards, files, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![flag.env, flag.card, join_list(&flag.with_cards), join_list(&flag.files), audit.at],
            )?;
            let subject = Subject::env(&flag.env).with_card(&flag.card);
            record(tx, audit, EventKind::ComposeConflict, subject, message)
        })
    }
}

fn current_stage(tx: &Transaction<'_>, id: &CardId) -> Result<String> {
    tx.query_row("SELECT stage FROM cards WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound {
            kind: "card",
            id: id.to_string(),
        })
}

// Lists are stored newline-separated: card ids and paths never hold a newline
// that matters here, and it keeps the table readable with the sqlite3 shell.
fn join_list<T: AsRef<str>>(items: &[T]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("\n")
}

fn split_list(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}
