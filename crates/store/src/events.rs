//! The audit log. Events are written by the same transaction as the change
//! they describe ([`record`]), and never updated or deleted.

use hifi_core::card::CardId;
use hifi_core::event::EventKind;
use hifi_core::release::ReleaseId;
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};

use crate::{Audit, Result, Store};

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Position in the log.
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What kind of change (`card.moved`, `release.composed`, ...).
    pub kind: EventKind,
    /// The environment concerned, if any.
    pub env: Option<String>,
    /// The card concerned, if any.
    pub card: Option<CardId>,
    /// The release concerned, if any.
    pub release: Option<ReleaseId>,
    /// The deployment concerned, if any.
    pub deployment: Option<i64>,
    /// A sentence a person can read.
    pub message: String,
}

/// What an event is about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The environment.
    pub env: Option<&'a str>,
    /// The card.
    pub card: Option<&'a CardId>,
    /// The release.
    pub release: Option<&'a ReleaseId>,
    /// The deployment.
    pub deployment: Option<i64>,
}

impl<'a> Subject<'a> {
    /// About an environment.
    pub fn env(env: &'a str) -> Self {
        Subject {
            env: Some(env),
            ..Subject::default()
        }
    }

    /// About a card.
    pub fn card(card: &'a CardId) -> Self {
        Subject {
            card: Some(card),
            ..Subject::default()
        }
    }

    /// Also about a card.
    pub fn with_card(self, card: &'a CardId) -> Self {
        Subject {
            card: Some(card),
            ..self
        }
    }

    /// Also about a release.
    pub fn with_release(self, release: &'a ReleaseId) -> Self {
        Subject {
            release: Some(release),
            ..self
        }
    }

    /// Also about a deployment.
    pub fn with_deployment(self, deployment: i64) -> Self {
        Subject {
            deployment: Some(deployment),
            ..self
        }
    }
}

/// Appends an event inside an open transaction.
pub fn record(
    tx: &Transaction<'_>,
    audit: &Audit,
    kind: EventKind,
    subject: Subject<'_>,
    message: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO events (at, actor, kind, env, card, release_id, deployment, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            audit.at,
            audit.actor,
            kind,
            subject.env,
            subject.card,
            subject.release,
            subject.deployment,
            message
        ],
    )?;
    Ok(())
}

impl Store {
    /// Records an event on its own, for facts that change no other table.
    pub fn record_event(
        &mut self,
        audit: &Audit,
        kind: EventKind,
        subject: Subject<'_>,
        message: &str,
    ) -> Result<()> {
        self.write(|tx| record(tx, audit, kind, subject, message))
    }

    /// The newest events first, optionally only those about one environment.
    pub fn events(&self, env: Option<&str>, limit: usize) -> Result<Vec<Event>> {
        self.query_events(
            "WHERE ?1 IS NULL OR env = ?1 ORDER BY seq DESC LIMIT ?2",
            params![env, limit as i64],
        )
    }

    /// Events after `seq`, oldest first (for following the log).
    pub fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<Event>> {
        self.query_events(
            "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            params![seq, limit as i64],
        )
    }

    /// The sequence number of the newest event (0 when there is none).
    pub fn last_event_seq(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    /// The events of one deployment, oldest first.
    pub fn deployment_events(&self, deployment: i64) -> Result<Vec<Event>> {
        self.query_events("WHERE deployment = ?1 ORDER BY seq", params![deployment])
    }

    fn query_events(&self, filter: &str, params: impl rusqlite::Params) -> Result<Vec<Event>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT seq, at, actor, kind, env, card, release_id, deployment, message FROM events {filter}"
        ))?;
        let rows = stmt.query_map(params, |r| {
            Ok(Event {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                kind: r.get(3)?,
                env: r.get(4)?,
                card: r.get(5)?,
                release: r.get(6)?,
                deployment: r.get(7)?,
                message: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
