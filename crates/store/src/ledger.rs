//! The fidelity ledger: deployments with their lifecycle, verifications and
//! approvals. [`Store::facts`] reads exactly what the gate in
//! `hifi_core::fidelity` decides on.

use hifi_core::deployment::{DeploymentState, Kind, Request};
use hifi_core::event::EventKind;
use hifi_core::fidelity::Facts;
use hifi_core::release::ReleaseId;
use hifi_core::rollout::{Routing, Slot};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::cards::{CardMove, follow, unfollow};
use crate::events::{Subject, record};
use crate::routing::save_routing;
use crate::{Audit, Error, Result, Store};

/// A deployment as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deployment {
    /// Its number.
    pub id: i64,
    /// The environment.
    pub env: String,
    /// The release.
    pub release: ReleaseId,
    /// How it replaces what runs: `blue-green`, `canary` or `rollback`.
    pub strategy: Kind,
    /// Where it stands.
    pub state: DeploymentState,
    /// The slot it runs in, once known.
    pub slot: Option<Slot>,
    /// When it was recorded (unix ms).
    pub created_at: i64,
    /// When it last changed (unix ms).
    pub updated_at: i64,
    /// Who asked for it.
    pub actor: String,
    /// Canary step index.
    pub step: i64,
    /// When the current step began (unix ms).
    pub step_started_at: Option<i64>,
    /// Percent of users on the candidate.
    pub weight: f64,
    /// Whether a user paused the canary.
    pub paused: bool,
    /// A user's request not yet acted on.
    pub request: Option<Request>,
    /// Why it failed, was aborted or paused.
    pub reason: Option<String>,
}

/// What comes with a new deployment, written in its transaction.
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// Cards it moves (to Deploy, when a promotion into production starts).
    pub moves: &'a [CardMove],
    /// An earlier deployment whose card moves it undoes (a rollback), and why.
    pub unfollow: Option<(i64, &'a str)>,
    /// Added to its event's message (a window overridden, and why).
    pub note: Option<&'a str>,
}

/// A deployment just recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    /// Its number.
    pub id: i64,
    /// The cards an undone earlier deployment moved back.
    pub moved_back: Vec<CardMove>,
}

/// Why a release may never go live again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    /// The reason given.
    pub reason: String,
    /// Who rejected it.
    pub actor: String,
    /// When (unix ms).
    pub at: i64,
}

/// A sign-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    /// The environment it allows the release into.
    pub env: String,
    /// The release.
    pub release: ReleaseId,
    /// Who signed off.
    pub actor: String,
    /// When (unix ms).
    pub at: i64,
}

/// A change to a deployment, written with its event (and, if given, the
/// environment's routing) in one transaction. Fields left `None` keep their value.
#[derive(Debug, Default)]
pub struct Update<'a> {
    /// New lifecycle state (checked against the state machine).
    pub state: Option<DeploymentState>,
    /// Slot.
    pub slot: Option<Slot>,
    /// Canary step index.
    pub step: Option<i64>,
    /// Start of the current step.
    pub step_started_at: Option<i64>,
    /// Candidate weight.
    pub weight: Option<f64>,
    /// Paused or not.
    pub paused: Option<bool>,
    /// `Some(None)` clears the pending request; `Some(Some(r))` sets it.
    pub request: Option<Option<Request>>,
    /// Why it stands where it does (failed, aborted, paused): `Some(None)`
    /// clears it.
    pub reason: Option<Option<&'a str>>,
    /// The environment's routing after this change.
    pub routing: Option<&'a Routing>,
    /// Event kind (default: `deployment.<state>` or `deployment.updated`).
    pub kind: Option<EventKind>,
    /// Undo the card moves this deployment made (it did not go live, or it
    /// is rolled back), saying why.
    pub unfollow: Option<&'a str>,
    /// Event message.
    pub message: &'a str,
}

const DEPLOYMENT_COLUMNS: &str = "id, env, release_id, strategy, state, slot, created_at, updated_at, actor, \
     step, step_started_at, weight, paused, request, reason";

fn deployment_from_row(r: &Row<'_>) -> rusqlite::Result<Deployment> {
    Ok(Deployment {
        id: r.get(0)?,
        env: r.get(1)?,
        release: r.get(2)?,
        strategy: r.get(3)?,
        state: r.get(4)?,
        slot: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        actor: r.get(8)?,
        step: r.get(9)?,
        step_started_at: r.get(10)?,
        weight: r.get(11)?,
        paused: r.get(12)?,
        request: r.get(13)?,
        reason: r.get(14)?,
    })
}

/// Reads one deployment through any connection or transaction.
fn load_deployment(conn: &rusqlite::Connection, id: i64) -> Result<Deployment> {
    conn.query_row(
        &format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?1"),
        [id],
        deployment_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound {
        kind: "deployment",
        id: id.to_string(),
    })
}

/// `('pending', 'building', ...)`: the states the lifecycle calls in
/// progress, for SQL, from the one place that defines them.
fn in_progress_sql() -> String {
    let states: Vec<String> = DeploymentState::ALL
        .iter()
        .filter(|s| s.is_in_progress())
        .map(|s| format!("'{s}'"))
        .collect();
    format!("({})", states.join(", "))
}

impl Store {
    /// Records a new deployment in the `pending` state, refusing a second
    /// one while another is in progress in the same environment.
    pub fn record_deployment(
        &mut self,
        audit: &Audit,
        env: &str,
        release: &ReleaseId,
        strategy: Kind,
    ) -> Result<i64> {
        Ok(self
            .record_deployment_with(audit, env, release, strategy, &Extras::default())?
            .id)
    }

    /// Records a new deployment (see [`Store::record_deployment`]) and, in
    /// the same transaction, what comes with it: the card moves it makes,
    /// the moves of an earlier deployment it undoes, and a note for its event.
    pub fn record_deployment_with(
        &mut self,
        audit: &Audit,
        env: &str,
        release: &ReleaseId,
        strategy: Kind,
        extras: &Extras<'_>,
    ) -> Result<NewDeployment> {
        self.write(|tx| {
            let busy: Option<i64> = tx
                .query_row(
                    &format!("SELECT id FROM deployments WHERE env = ?1 AND state IN {}", in_progress_sql()),
                    [env],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(busy) = busy {
                return Err(Error::Busy { env: env.to_string(), deployment: busy });
            }
            tx.execute(
                "INSERT INTO deployments (env, release_id, strategy, state, created_at, updated_at, actor)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?5)",
                params![env, release, strategy, audit.at, audit.actor],
            )?;
            let id = tx.last_insert_rowid();
            let mut message = format!("deployment #{id}: release {release} to {env} ({strategy})");
            if let Some(note) = extras.note {
                message.push_str(&format!("; {note}"));
            }
            let subject = Subject::env(env).with_release(release).with_deployment(id);
            record(tx, audit, EventKind::DeploymentCreated, subject, &message)?;
            let moved_back = match extras.unfollow {
                Some((earlier, why)) => unfollow(tx, audit.at, earlier, why)?,
                None => Vec::new(),
            };
            let why = format!("release {release} is being promoted to {env}");
            follow(tx, audit.at, extras.moves, Some(id), &why)?;
            Ok(NewDeployment { id, moved_back })
        })
    }

    /// Applies an [`Update`] to a deployment. Impossible lifecycle moves are
    /// refused. Going live ends the environment's previous live deployment:
    /// `rolled-back` when this one is a rollback, `superseded` otherwise.
    pub fn update_deployment(
        &mut self,
        audit: &Audit,
        id: i64,
        update: Update<'_>,
    ) -> Result<Deployment> {
        let goes_live = update.state == Some(DeploymentState::Live);
        let d = self.update_deployment_now(audit, id, update)?;
        if goes_live {
            // What is live changed: keep a copy to come back to. The change
            // itself is done; a backup that fails is told, not undone.
            if let Err(e) = self.backup(audit.at, "live") {
                tracing::warn!("could not back up the state after deployment #{id} went live: {e}");
            }
        }
        Ok(d)
    }

    fn update_deployment_now(
        &mut self,
        audit: &Audit,
        id: i64,
        update: Update<'_>,
    ) -> Result<Deployment> {
        self.write(|tx| {
            let mut d = load_deployment(tx, id)?;
            // A user's request reaches only a deployment still in progress:
            // one that went live meanwhile must be rolled back instead.
            if (update.request.is_some_and(|r| r.is_some()) || update.paused.is_some())
                && !d.state.is_in_progress()
            {
                return Err(Error::Refused(format!(
                    "deployment #{id} in {} is already {}",
                    d.env, d.state
                )));
            }
            if let Some(to) = update.state {
                d.state = d.state.advance(to).map_err(|e| Error::Refused(format!("deployment #{id}: {e}")))?;
                if to == DeploymentState::Live {
                    let ended = if d.strategy == Kind::Rollback {
                        DeploymentState::RolledBack
                    } else {
                        DeploymentState::Superseded
                    };
                    let previous: Vec<(i64, ReleaseId)> = tx
                        .prepare("SELECT id, release_id FROM deployments WHERE env = ?1 AND state = 'live' AND id != ?2")?
                        .query_map(params![d.env, id], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()?;
                    for (old, release) in previous {
                        tx.execute(
                            "UPDATE deployments SET state = ?2, updated_at = ?3, request = NULL WHERE id = ?1",
                            params![old, ended, audit.at],
                        )?;
                        // The earlier deployment's own history tells how it ended.
                        let message = format!("deployment #{old} {}: {ended} by deployment #{id}", d.env);
                        let subject = Subject::env(&d.env).with_release(&release).with_deployment(old);
                        record(tx, audit, EventKind::deployment(ended), subject, &message)?;
                    }
                    // A request made while it was in progress is moot now.
                    d.request = None;
                }
            }
            if let Some(slot) = update.slot {
                d.slot = Some(slot);
            }
            d.step = update.step.unwrap_or(d.step);
            d.step_started_at = update.step_started_at.or(d.step_started_at);
            d.weight = update.weight.unwrap_or(d.weight);
            d.paused = update.paused.unwrap_or(d.paused);
            if let Some(request) = update.request {
                d.request = request;
            }
            if let Some(reason) = update.reason {
                d.reason = reason.map(str::to_string);
            }
            d.updated_at = audit.at;
            tx.execute(
                "UPDATE deployments SET state = ?2, slot = ?3, step = ?4, step_started_at = ?5, weight = ?6,
                 paused = ?7, request = ?8, reason = ?9, updated_at = ?10 WHERE id = ?1",
                params![id, d.state, d.slot, d.step, d.step_started_at, d.weight, d.paused, d.request, d.reason, d.updated_at],
            )?;
            if let Some(routing) = update.routing {
                save_routing(tx, &d.env, routing, audit.at)?;
            }
            let kind = match (update.kind, update.state) {
                (Some(kind), _) => kind,
                (None, Some(state)) => EventKind::deployment(state),
                (None, None) => EventKind::DeploymentUpdated,
            };
            let subject = Subject::env(&d.env).with_release(&d.release).with_deployment(id);
            record(tx, audit, kind, subject, update.message)?;
            if let Some(why) = update.unfollow {
                unfollow(tx, audit.at, id, why)?;
            }
            Ok(d)
        })
    }

    /// One deployment.
    pub fn deployment(&self, id: i64) -> Result<Deployment> {
        load_deployment(self.conn(), id)
    }

    /// The deployment in progress in an environment, if any.
    pub fn deployment_in_progress(&self, env: &str) -> Result<Option<Deployment>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE env = ?1
                     AND state IN {} ORDER BY id LIMIT 1",
                    in_progress_sql()
                ),
                [env],
                deployment_from_row,
            )
            .optional()?)
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
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records that a release is verified in an environment (idempotent).
    pub fn record_verification(
        &mut self,
        audit: &Audit,
        env: &str,
        release: &ReleaseId,
    ) -> Result<()> {
        self.record_verification_with(audit, env, release, &[])
    }

    /// Records a verification and, in the same transaction, the card moves
    /// it brings (cards reach Done when their release is verified in
    /// production), attributed to the deployment that is live there.
    pub fn record_verification_with(
        &mut self,
        audit: &Audit,
        env: &str,
        release: &ReleaseId,
        moves: &[CardMove],
    ) -> Result<()> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO verifications (env, release_id, at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![env, release, audit.at],
            )?;
            if inserted == 1 {
                let message = format!("release {release} verified in {env}");
                let subject = Subject::env(env).with_release(release);
                record(tx, audit, EventKind::ReleaseVerified, subject, &message)?;
                let live: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM deployments WHERE env = ?1 AND release_id = ?2 AND state = 'live'",
                        params![env, release],
                        |r| r.get(0),
                    )
                    .optional()?;
                let why = format!("release {release} is verified in {env}");
                follow(tx, audit.at, moves, live, &why)?;
            }
            Ok(())
        })
    }

    /// Records a sign-off; returns false if this person had already signed off.
    pub fn approve(&mut self, audit: &Audit, env: &str, release: &ReleaseId) -> Result<bool> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO approvals (env, release_id, actor, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![env, release, audit.actor, audit.at],
            )?;
            if inserted == 1 {
                let message = format!("{} approved release {release} for {env}", audit.actor);
                let subject = Subject::env(env).with_release(release);
                record(tx, audit, EventKind::ReleaseApproved, subject, &message)?;
            }
            Ok(inserted == 1)
        })
    }

    /// Approvals of a release for an environment.
    pub fn approvals(&self, env: &str, release: &ReleaseId) -> Result<Vec<Approval>> {
        let mut stmt = self.conn().prepare(
            "SELECT env, release_id, actor, at FROM approvals WHERE env = ?1 AND release_id = ?2 ORDER BY at, actor",
        )?;
        let rows = stmt.query_map(params![env, release], |r| {
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
        let rows = stmt.query_map([release], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a release as never to go live again; false if it already was.
    pub fn reject(&mut self, audit: &Audit, release: &ReleaseId, reason: &str) -> Result<bool> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO rejections (release_id, reason, actor, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                params![release, reason, audit.actor, audit.at],
            )?;
            if inserted == 1 {
                let message = format!("{} rejected release {release}: {reason}", audit.actor);
                let subject = Subject::default().with_release(release);
                record(tx, audit, EventKind::ReleaseRejected, subject, &message)?;
            }
            Ok(inserted == 1)
        })
    }

    /// Why a release was rejected, by whom and when, if it was.
    pub fn rejection(&self, release: &ReleaseId) -> Result<Option<Rejection>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT reason, actor, at FROM rejections WHERE release_id = ?1",
                [release],
                |r| {
                    Ok(Rejection {
                        reason: r.get(0)?,
                        actor: r.get(1)?,
                        at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// The deployment live in an environment, if any.
    pub fn live_deployment(&self, env: &str) -> Result<Option<Deployment>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE env = ?1 AND state = 'live'
                     ORDER BY id DESC LIMIT 1"
                ),
                [env],
                deployment_from_row,
            )
            .optional()?)
    }

    /// What the fidelity gate needs to decide on `release` going to `target`.
    /// The promoter is whoever asked for the deployment of `release` in
    /// progress there, if one is (a caller about to record a new one sets
    /// it to its own actor).
    pub fn facts(&self, release: &ReleaseId, target: &str) -> Result<Facts> {
        let promoter = self
            .deployment_in_progress(target)?
            .filter(|d| d.release == *release)
            .map(|d| d.actor);
        Ok(Facts {
            promoter,
            rejected: self.rejection(release)?.map(|r| r.reason),
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

impl Store {
    /// Where and when a release was verified, oldest first.
    pub fn verifications(&self, release: &ReleaseId) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT env, at FROM verifications WHERE release_id = ?1 ORDER BY at, env")?;
        let rows = stmt.query_map([release], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every sign-off of a release, for any environment, oldest first.
    pub fn release_approvals(&self, release: &ReleaseId) -> Result<Vec<Approval>> {
        let mut stmt = self.conn().prepare(
            "SELECT env, release_id, actor, at FROM approvals WHERE release_id = ?1 ORDER BY at, env, actor",
        )?;
        let rows = stmt.query_map([release], |r| {
            Ok(Approval {
                env: r.get(0)?,
                release: r.get(1)?,
                actor: r.get(2)?,
                at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every deployment of a release, in any environment, oldest first.
    pub fn release_deployments(&self, release: &ReleaseId) -> Result<Vec<Deployment>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE release_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([release], deployment_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
