//! Where each webhook's deliveries stand: the last event it got (its
//! cursor), and, while its endpoint fails, since when, how often and why.
//! The notifier moves the cursor only after an event was delivered (or
//! given up on), so a restart resumes at the first event not delivered.

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// One webhook's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookRow {
    /// The target's key (a hash of its url as written and its format).
    pub target: String,
    /// The last event delivered, skipped by its filter, or given up on.
    pub cursor: i64,
    /// Failed attempts at the next event.
    pub attempts: i64,
    /// When its deliveries started failing (unix ms), while they do.
    pub failing_since: Option<i64>,
    /// When the next attempt is due (unix ms), while failing.
    pub next_at: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Events delivered so far.
    pub delivered: i64,
    /// Events given up on after retrying for the whole retry window.
    pub dropped: i64,
    /// When this row last changed (unix ms).
    pub updated_at: i64,
}

fn webhook_row(r: &Row<'_>) -> rusqlite::Result<WebhookRow> {
    Ok(WebhookRow {
        target: r.get(0)?,
        cursor: r.get(1)?,
        attempts: r.get(2)?,
        failing_since: r.get(3)?,
        next_at: r.get(4)?,
        last_error: r.get(5)?,
        delivered: r.get(6)?,
        dropped: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

const COLUMNS: &str =
    "target, cursor, attempts, failing_since, next_at, last_error, delivered, dropped, updated_at";

impl Store {
    /// A webhook's state, starting it at `cursor` if it has none yet (a new
    /// webhook gets what happens from now on, not the whole history).
    pub fn webhook_or_start(&mut self, target: &str, cursor: i64, at: i64) -> Result<WebhookRow> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO webhooks (target, cursor, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (target) DO NOTHING",
                params![target, cursor, at],
            )?;
            Ok(tx.query_row(
                &format!("SELECT {COLUMNS} FROM webhooks WHERE target = ?1"),
                [target],
                webhook_row,
            )?)
        })
    }

    /// A webhook's state, if it has one.
    pub fn webhook(&self, target: &str) -> Result<Option<WebhookRow>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM webhooks WHERE target = ?1"),
                [target],
                webhook_row,
            )
            .optional()?)
    }

    /// Every webhook's state.
    pub fn webhooks(&self) -> Result<Vec<WebhookRow>> {
        let mut stmt = self
            .conn()
            .prepare(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY target"))?;
        let rows = stmt.query_map([], webhook_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves a webhook past event `seq`: `delivered` it, or passed it by
    /// (filtered out). Clears its failure.
    pub fn webhook_advanced(
        &mut self,
        target: &str,
        seq: i64,
        delivered: bool,
        at: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE webhooks SET cursor = MAX(cursor, ?2), attempts = 0, failing_since = NULL,
                     next_at = NULL, last_error = NULL, delivered = delivered + ?3, updated_at = ?4
                 WHERE target = ?1",
                params![target, seq, i64::from(delivered), at],
            )?;
            Ok(())
        })
    }

    /// Records a failed attempt and when to try again.
    pub fn webhook_failed(
        &mut self,
        target: &str,
        error: &str,
        next_at: i64,
        at: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE webhooks SET attempts = attempts + 1, failing_since = COALESCE(failing_since, ?4),
                     next_at = ?3, last_error = ?2, updated_at = ?4
                 WHERE target = ?1",
                params![target, error, next_at, at],
            )?;
            Ok(())
        })
    }

    /// Gives up on event `seq` after retrying it for the whole retry
    /// window: the cursor moves past it, the failure stays on record.
    pub fn webhook_dropped(&mut self, target: &str, seq: i64, at: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE webhooks SET cursor = MAX(cursor, ?2), attempts = 0, next_at = NULL,
                     dropped = dropped + 1, updated_at = ?3
                 WHERE target = ?1",
                params![target, seq, at],
            )?;
            Ok(())
        })
    }
}
