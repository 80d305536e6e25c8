//! The fidelity ledger: deployments with their lifecycle, verifications and
//! approvals. [`Store::facts`] reads exactly what the gate in
//! `hifi_core::fidelity` decides on.

use hifi_core::deployment::DeploymentState;
use hifi_core::fidelity::Facts;
use hifi_core::release::ReleaseId;
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use crate::events::{Subject, record};
use crate::{Audit, Error, Result, Store};

/// A deployment as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// Its number.
    pub id: i64,
    /// The environment.
    pub env: String,
    /// The release (full id).
    pub release: String,
    /// Strategy used.
    pub strategy: String,
    /// Where it stands.
    pub state: DeploymentState,
    /// The slot it runs in, once known.
    pub slot: Option<String>,
    /// When it was recorded (unix ms).
    pub created_at: i64,
    /// When it last changed (unix ms).
    pub updated_at: i64,
    /// Who asked for it.
    pub actor: String,
}

/// A sign-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// The environment it allows the release into.
    pub env: String,
    /// The release (full id).
    pub release: String,
    /// Who signed off.
    pub actor: String,
    /// When (unix ms).
    pub at: i64,
}

const DEPLOYMENT_COLUMNS: &str =
    "id, env, release_id, strategy, state, slot, created_at, updated_at, actor";

fn deployment_from_row(r: &Row<'_>) -> rusqlite::Result<Deployment> {
    let state: String = r.get(4)?;
    let state = state.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(Deployment {
        id: r.get(0)?,
        env: r.get(1)?,
        release: r.get(2)?,
        strategy: r.get(3)?,
        state,
        slot: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        actor: r.get(8)?,
    })
}

impl Store {
    /// Records a new deployment in the `pending` state.
    pub fn record_deployment(
        &mut self,
        audit: &Audit,
        env: &str,
        release: &ReleaseId,
        strategy: &str,
    ) -> Result<i64> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO deployments (env, release_id, strategy, state, created_at, updated_at, actor)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?5)",
                params![env, release.as_str(), strategy, audit.at, audit.actor],
            )?;
            let id = tx.last_insert_rowid();
            let message = format!("deployment #{id}: release {release} to {env} ({strategy})");
            let subject = Subject { env: Some(env), card: None, release: Some(release.as_str()) };
            record(tx, audit, "deployment.created", subject, &message)?;
            Ok(id)
        })
    }

    /// Moves a deployment along its lifecycle; impossible moves are refused.
    /// Going live supersedes the environment's previous live deployment.
    pub fn advance_deployment(
        &mut self,
        audit: &Audit,
        id: i64,
        to: DeploymentState,
        slot: Option<&str>,
        note: &str,
    ) -> Result<Deployment> {
        self.write(|tx| {
            let current = tx
                .query_row(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?1"), [id], deployment_from_row)
                .optional()?
                .ok_or_else(|| Error::NotFound { kind: "deployment", id: id.to_string() })?;
            let state = current.state.advance(to).map_err(|e| Error::Corrupt {
                what: "deployment transition",
                detail: e.to_string(),
            })?;
            if state == DeploymentState::Live {
                tx.execute(
                    "UPDATE deployments SET state = 'superseded', updated_at = ?2 WHERE env = ?1 AND state = 'live'",
                    params![current.env, audit.at],
                )?;
            }
            tx.execute(
                "UPDATE deployments SET state = ?2, slot = COALESCE(?3, slot), updated_at = ?4 WHERE id = ?1",
                params![id, state.as_str(), slot, audit.at],
            )?;
            let message = if note.is_empty() {
                format!("deployment #{id} {}: {state}", current.env)
            } else {
                format!("deployment #{id} {}: {state} ({note})", current.env)
            };
            let subject = Subject { env: Some(&current.env), card: None, release: Some(&current.release) };
            record(tx, audit, &format!("deployment.{state}"), subject, &message)?;
            Ok(Deployment { state, slot: slot.map(str::to_string).or(current.slot), updated_at: audit.at, ..current })
        })
    }

    /// Deployments of an environment, newest first.
    pub fn deployments(&self, env: &str) -> Result<Vec<Deployment>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE env = ?1 ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map([env], deployment_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The release live in an environment, if any.
    pub fn live_release(&self, env: &str) -> Result<Option<ReleaseId>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT release_id FROM deployments WHERE env = ?1 AND state = 'live' ORDER BY id DESC LIMIT 1",
                [env],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(ReleaseId::from_stored))
    }

    /// Records that a release is verified in an environment (idempotent).
    pub fn record_verification(
        &mut self,
        audit: &Audit,
        env: &str,
        release: &ReleaseId,
    ) -> Result<()> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO verifications (env, release_id, at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![env, release.as_str(), audit.at],
            )?;
            if inserted == 1 {
                let message = format!("release {release} verified in {env}");
                let subject = Subject { env: Some(env), card: None, release: Some(release.as_str()) };
                record(tx, audit, "release.verified", subject, &message)?;
            }
            Ok(())
        })
    }

    /// Records a sign-off; returns false if this person had already signed off.
    pub fn approve(&mut self, audit: &Audit, env: &str, release: &ReleaseId) -> Result<bool> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO approvals (env, release_id, actor, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![env, release.as_str(), audit.actor, audit.at],
            )?;
            if inserted == 1 {
                let message = format!("{} approved release {release} for {env}", audit.actor);
                let subject = Subject { env: Some(env), card: None, release: Some(release.as_str()) };
                record(tx, audit, "release.approved", subject, &message)?;
            }
            Ok(inserted == 1)
        })
    }

    /// Approvals of a release for an environment.
    pub fn approvals(&self, env: &str, release: &ReleaseId) -> Result<Vec<Approval>> {
        let mut stmt = self.conn().prepare(
            "SELECT env, release_id, actor, at FROM approvals WHERE env = ?1 AND release_id = ?2 ORDER BY at, actor",
        )?;
        let rows = stmt.query_map(params![env, release.as_str()], |r| {
            Ok(Approval {
                env: r.get(0)?,
                release: r.get(1)?,
                actor: r.get(2)?,
                at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Environments where a release is verified.
    pub fn verified_in(&self, release: &ReleaseId) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT env FROM verifications WHERE release_id = ?1 ORDER BY env")?;
        let rows = stmt.query_map([release.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What the fidelity gate needs to decide on `release` going to `target`.
    pub fn facts(&self, release: &ReleaseId, target: &str) -> Result<Facts> {
        Ok(Facts {
            composed_for: self.composed_for(release)?,
            verified_in: self.verified_in(release)?,
            approvers: self
                .approvals(target, release)?
                .into_iter()
                .map(|a| a.actor)
                .collect(),
        })
    }
}
