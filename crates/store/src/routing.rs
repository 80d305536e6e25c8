//! What runs where: each environment's [`Routing`] (active, candidate and
//! standby slots), the instances the runtime started for them (kept so a
//! restarted controller can re-adopt them), the stable internal port of each
//! service, and the figures each canary step was judged on.

use hifi_core::event::EventKind;
use hifi_core::health::Health;
use hifi_core::release::ReleaseId;
use hifi_core::rollout::{Placement, Routing, Slot, Verdict};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::events::{Subject, record};
use crate::{Audit, Error, Result, Store};

/// An instance as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceRow {
    /// Environment.
    pub env: String,
    /// Slot.
    pub slot: Slot,
    /// Service.
    pub service: String,
    /// Which of the slot's instances of the service, from 0.
    pub replica: u16,
    /// Release it runs.
    pub release: ReleaseId,
    /// The runtime's own description (JSON), opaque to the store.
    pub handle: String,
    /// Its recorded health.
    pub health: Health,
    /// How many times it was restarted after a crash.
    pub restarts: i64,
    /// When it last changed (unix ms).
    pub updated_at: i64,
}

/// The figures one canary step was judged on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Analysis {
    /// The deployment.
    pub deployment: i64,
    /// Step index.
    pub step: i64,
    /// Candidate weight during the step.
    pub weight: f64,
    /// Requests the candidate served.
    pub requests: i64,
    /// Of which failed.
    pub errors: i64,
    /// errors / requests.
    pub error_ratio: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// What was decided.
    pub verdict: Verdict,
    /// When (unix ms).
    pub at: i64,
}

fn placement(slot: Option<Slot>, release: Option<ReleaseId>) -> Option<Placement> {
    Some(Placement {
        slot: slot?,
        release: release?,
    })
}

fn parts(p: &Option<Placement>) -> (Option<Slot>, Option<&ReleaseId>) {
    match p {
        Some(p) => (Some(p.slot), Some(&p.release)),
        None => (None, None),
    }
}

pub(crate) fn save_routing(
    tx: &Transaction<'_>,
    env: &str,
    routing: &Routing,
    at: i64,
) -> Result<()> {
    let (active_slot, active_release) = parts(&routing.active);
    let (candidate_slot, candidate_release) = parts(&routing.candidate);
    let (standby_slot, standby_release) = parts(&routing.standby);
    let (displaced_slot, displaced_release) = parts(&routing.displaced);
    tx.execute(
        "INSERT INTO env_state (env, active_slot, active_release, candidate_slot, candidate_release,
             candidate_weight, standby_slot, standby_release, live_since, updated_at,
             displaced_slot, displaced_release)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (env) DO UPDATE SET active_slot = ?2, active_release = ?3, candidate_slot = ?4,
             candidate_release = ?5, candidate_weight = ?6, standby_slot = ?7, standby_release = ?8,
             live_since = ?9, updated_at = ?10, displaced_slot = ?11, displaced_release = ?12",
        params![
            env,
            active_slot,
            active_release,
            candidate_slot,
            candidate_release,
            routing.weight,
            standby_slot,
            standby_release,
            routing.live_since,
            at,
            displaced_slot,
            displaced_release
        ],
    )?;
    Ok(())
}

impl Store {
    /// What an environment serves (empty if nothing ever ran there).
    pub fn routing(&self, env: &str) -> Result<Routing> {
        Ok(self
            .conn()
            .query_row(
                "SELECT active_slot, active_release, candidate_slot, candidate_release, candidate_weight,
                        standby_slot, standby_release, live_since, displaced_slot, displaced_release
                 FROM env_state WHERE env = ?1",
                [env],
                |r| {
                    Ok(Routing {
                        active: placement(r.get(0)?, r.get(1)?),
                        candidate: placement(r.get(2)?, r.get(3)?),
                        weight: r.get(4)?,
                        standby: placement(r.get(5)?, r.get(6)?),
                        live_since: r.get(7)?,
                        displaced: placement(r.get(8)?, r.get(9)?),
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    /// Replaces an environment's routing, with an event.
    pub fn set_routing(
        &mut self,
        audit: &Audit,
        env: &str,
        routing: &Routing,
        kind: EventKind,
        message: &str,
    ) -> Result<()> {
        self.write(|tx| {
            save_routing(tx, env, routing, audit.at)?;
            record(tx, audit, kind, Subject::env(env), message)
        })
    }

    /// Records (or replaces) the instance of a service in a slot, with an
    /// event of `kind`.
    pub fn put_instance(
        &mut self,
        audit: &Audit,
        row: &InstanceRow,
        kind: EventKind,
        message: &str,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO instances (env, slot, service, replica, release_id, handle, health, restarts, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (env, slot, service, replica) DO UPDATE SET release_id = ?5, handle = ?6,
                     health = ?7, restarts = ?8, updated_at = ?9",
                params![row.env, row.slot, row.service, row.replica, row.release, row.handle, row.health, row.restarts, audit.at],
            )?;
            record(tx, audit, kind, Subject::env(&row.env).with_release(&row.release), message)?;
            Ok(())
        })
    }

    /// Forgets an instance after it was stopped, with its event.
    pub fn remove_instance(
        &mut self,
        audit: &Audit,
        row: (&str, Slot, &str, u16),
        message: &str,
    ) -> Result<()> {
        let (env, slot, service, replica) = row;
        self.write(|tx| {
            let removed = tx.execute(
                "DELETE FROM instances WHERE env = ?1 AND slot = ?2 AND service = ?3 AND replica = ?4",
                params![env, slot, service, replica],
            )?;
            if removed > 0 {
                record(
                    tx,
                    audit,
                    EventKind::InstanceStopped,
                    Subject::env(env),
                    message,
                )?;
            }
            Ok(())
        })
    }

    /// Instances of an environment (all environments with `None`).
    pub fn instances(&self, env: Option<&str>) -> Result<Vec<InstanceRow>> {
        let mut stmt = self.conn().prepare(
            "SELECT env, slot, service, replica, release_id, handle, health, restarts, updated_at FROM instances
             WHERE ?1 IS NULL OR env = ?1 ORDER BY env, slot, service, replica",
        )?;
        let rows = stmt.query_map([env], |r| {
            Ok(InstanceRow {
                env: r.get(0)?,
                slot: r.get(1)?,
                service: r.get(2)?,
                replica: r.get(3)?,
                release: r.get(4)?,
                handle: r.get(5)?,
                health: r.get(6)?,
                restarts: r.get(7)?,
                updated_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stable internal port of a service in an environment, assigning
    /// `candidate` the first time. Returns the port in force.
    pub fn internal_port(&mut self, env: &str, service: &str, candidate: u16) -> Result<u16> {
        self.write(|tx| {
            let existing: Option<u16> = tx
                .query_row(
                    "SELECT port FROM internal_ports WHERE env = ?1 AND service = ?2",
                    params![env, service],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(port) = existing {
                return Ok(port);
            }
            tx.execute(
                "INSERT INTO internal_ports (env, service, port) VALUES (?1, ?2, ?3)",
                params![env, service, candidate],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Error::AlreadyExists {
                        kind: "internal port",
                        id: candidate.to_string(),
                    }
                }
                e => e.into(),
            })?;
            Ok(candidate)
        })
    }

    /// Every internal port already assigned.
    pub fn internal_ports(&self) -> Result<Vec<(String, String, u16)>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT env, service, port FROM internal_ports ORDER BY env, service")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the judgement of a canary step.
    pub fn record_analysis(&mut self, analysis: &Analysis) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO analyses (deployment, step, weight, requests, errors, error_ratio, p50_ms, p99_ms, verdict, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    analysis.deployment,
                    analysis.step,
                    analysis.weight,
                    analysis.requests,
                    analysis.errors,
                    analysis.error_ratio,
                    analysis.p50_ms,
                    analysis.p99_ms,
                    analysis.verdict,
                    analysis.at
                ],
            )?;
            Ok(())
        })
    }

    /// The analyses of a deployment, in order.
    pub fn analyses(&self, deployment: i64) -> Result<Vec<Analysis>> {
        let mut stmt = self.conn().prepare(
            "SELECT deployment, step, weight, requests, errors, error_ratio, p50_ms, p99_ms, verdict, at
             FROM analyses WHERE deployment = ?1 ORDER BY at, rowid",
        )?;
        let rows = stmt.query_map([deployment], |r| {
            Ok(Analysis {
                deployment: r.get(0)?,
                step: r.get(1)?,
                weight: r.get(2)?,
                requests: r.get(3)?,
                errors: r.get(4)?,
                error_ratio: r.get(5)?,
                p50_ms: r.get(6)?,
                p99_ms: r.get(7)?,
                verdict: r.get(8)?,
                at: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
