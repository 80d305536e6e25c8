//! Deploy, promote, rollback and canary actions. Each checks what it can at
//! once — an unknown environment, the fidelity gate, a deployment already in
//! progress — and records the desired change with its event in one
//! transaction, leaving the doing to the control plane. The deployments and
//! their events are views here too, for shells that follow one to its end.

use hifi_core::deployment::{DeploymentState, Kind, Request};
use hifi_core::event::EventKind;
use hifi_core::{Action, Environment, ReleaseId, fidelity};
use hifi_store::Update;
pub use hifi_store::{Deployment, Event};

use crate::error::{Error, Result};
use crate::project::{Actor, Project};

/// What `hifi canary` asks of a canary in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryAction {
    /// Hold the current step: no judgement, no weight change.
    Pause,
    /// Continue a paused canary.
    Resume,
    /// Stop: users go back to the active release, the candidate stops.
    Abort,
    /// Skip the remaining steps and make the candidate active now.
    Promote,
}

/// A deployment just recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The deployment, pending.
    pub deployment: Deployment,
    /// Whether a control plane runs to carry it out.
    pub control_plane_running: bool,
}

/// A deployment just recorded or changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The deployment as it is now.
    pub deployment: Deployment,
    /// What was done, in a sentence (for canary actions).
    pub message: String,
}

fn refuse_busy(e: hifi_store::Error) -> Error {
    match e {
        hifi_store::Error::Busy { env, deployment } => Error::Busy { env, deployment },
        e => e.into(),
    }
}

impl Project {
    /// Refuses a release the fidelity gate would not let into `env`.
    fn gate(&self, env: &Environment, release: &ReleaseId) -> Result<()> {
        let facts = self.store.facts(release, &env.name)?;
        Ok(fidelity::check(env, release, &facts)?)
    }

    /// Records a deployment of `release` to `env`. With `require_running`
    /// (a shell that will follow it), refuses when no control plane runs to
    /// carry it out.
    fn start(
        &mut self,
        actor: &Actor,
        env: &Environment,
        release: &ReleaseId,
        kind: Kind,
        require_running: bool,
    ) -> Result<Started> {
        let control_plane_running = crate::control::running(&self.layout).is_some();
        if require_running && !control_plane_running {
            return Err(Error::NotRunning);
        }
        if self
            .store
            .routing(&env.name)?
            .active
            .is_some_and(|a| a.release == *release)
        {
            return Err(Error::AlreadyLive {
                release: release.clone(),
                env: env.name.clone(),
            });
        }
        let audit = self.audit(actor);
        let id = self
            .store
            .record_deployment(&audit, &env.name, release, kind)
            .map_err(refuse_busy)?;
        Ok(Started {
            deployment: self.store.deployment(id)?,
            control_plane_running,
        })
    }

    /// Deploys a release (default: the environment's latest composition)
    /// with the environment's strategy. `require_running`: refuse unless a
    /// control plane runs (for a caller about to wait on it).
    pub fn deploy(
        &mut self,
        actor: &Actor,
        env: &str,
        release: Option<&str>,
        require_running: bool,
    ) -> Result<Started> {
        let env = self.environment(env)?.clone();
        self.authorize(actor, Project::deploy_action(&env))?;
        let release = match release {
            Some(prefix) => self.resolve_release(prefix)?,
            None => match env.promote_from() {
                Some(source) => {
                    return Err(Error::PromoteOnly {
                        env: env.name.clone(),
                        from: source.to_string(),
                    });
                }
                None => self
                    .store
                    .latest_composition(&env.name)?
                    .map(|c| c.release)
                    .ok_or_else(|| Error::NotComposed {
                        env: env.name.clone(),
                    })?,
            },
        };
        self.gate(&env, &release)?;
        self.start(
            actor,
            &env,
            &release,
            Kind::from(env.strategy),
            require_running,
        )
    }

    /// Deploys `from`'s live release to `to`, which must promote from it.
    pub fn promote(
        &mut self,
        actor: &Actor,
        from: &str,
        to: &str,
        require_running: bool,
    ) -> Result<Started> {
        let source = self.environment(from)?.clone();
        let target = self.environment(to)?.clone();
        self.authorize(actor, Project::deploy_action(&target))?;
        match target.promote_from() {
            Some(expected) if expected == source.name => {}
            Some(expected) => {
                return Err(Error::WrongSource {
                    env: target.name.clone(),
                    expected: expected.to_string(),
                    from: source.name.clone(),
                });
            }
            None => {
                return Err(Error::NotPromoted {
                    env: target.name.clone(),
                });
            }
        }
        let release = self
            .store
            .live_release(&source.name)?
            .ok_or_else(|| Error::NothingLive {
                env: source.name.clone(),
            })?;
        self.gate(&target, &release)?;
        self.start(
            actor,
            &target,
            &release,
            Kind::from(target.strategy),
            require_running,
        )
    }

    /// Goes back to the previous state: the warm standby, else the last
    /// release that was live before the active one.
    pub fn rollback(&mut self, actor: &Actor, env: &str, require_running: bool) -> Result<Started> {
        let env = self.environment(env)?.clone();
        self.authorize(actor, Project::deploy_action(&env))?;
        if let Some(d) = self.store.deployment_in_progress(&env.name)? {
            return Err(Error::RollbackDuringDeployment {
                env: env.name.clone(),
                deployment: d.id,
            });
        }
        let routing = self.store.routing(&env.name)?;
        let active = routing.active.as_ref().map(|a| a.release.clone());
        let previous = match &routing.standby {
            Some(standby) => Some(standby.release.clone()),
            None => self
                .store
                .deployments(&env.name)?
                .into_iter()
                .filter(|d| {
                    matches!(
                        d.state,
                        DeploymentState::Superseded | DeploymentState::RolledBack
                    )
                })
                .map(|d| d.release)
                .find(|r| Some(r) != active.as_ref()),
        };
        let Some(previous) = previous else {
            return Err(Error::NothingToRollBack {
                env: env.name.clone(),
            });
        };
        self.start(actor, &env, &previous, Kind::Rollback, require_running)
    }

    /// Pauses, resumes, aborts or promotes the deployment in progress.
    pub fn canary(&mut self, actor: &Actor, env: &str, action: CanaryAction) -> Result<Recorded> {
        let env = self.environment(env)?.clone();
        self.authorize(actor, Project::deploy_action(&env))?;
        let Some(d) = self.store.deployment_in_progress(&env.name)? else {
            return Err(Error::NoDeployment {
                env: env.name.clone(),
            });
        };
        let (update, what) = match action {
            CanaryAction::Abort => (
                Update {
                    request: Some(Some(Request::Abort)),
                    kind: Some(EventKind::CanaryAbortRequested),
                    ..Update::default()
                },
                "abort requested",
            ),
            _ if d.strategy != Kind::Canary => {
                return Err(Error::NotACanary {
                    env: env.name.clone(),
                    deployment: d.id,
                    kind: d.strategy,
                });
            }
            CanaryAction::Pause => (
                Update {
                    paused: Some(true),
                    kind: Some(EventKind::CanaryPaused),
                    ..Update::default()
                },
                "paused",
            ),
            // The step starts over: its window, and its extensions, count
            // from now.
            CanaryAction::Resume => (
                Update {
                    paused: Some(false),
                    step_started_at: Some(crate::now_ms()),
                    reason: Some(None),
                    kind: Some(EventKind::CanaryResumed),
                    ..Update::default()
                },
                "resumed",
            ),
            CanaryAction::Promote => (
                Update {
                    request: Some(Some(Request::Promote)),
                    kind: Some(EventKind::CanaryPromoteRequested),
                    ..Update::default()
                },
                "promotion requested",
            ),
        };
        let audit = self.audit(actor);
        let message = format!(
            "deployment #{} in {}: {what} by {}",
            d.id, env.name, audit.actor
        );
        let deployment = match self.store.update_deployment(
            &audit,
            d.id,
            Update {
                message: &message,
                ..update
            },
        ) {
            // It ended between our read and our write.
            Err(hifi_store::Error::Refused(reason)) => {
                return Err(Error::DeploymentEnded {
                    reason,
                    env: env.name.clone(),
                });
            }
            other => other?,
        };
        Ok(Recorded {
            deployment,
            message,
        })
    }

    /// One deployment.
    pub fn deployment(&self, actor: &Actor, id: i64) -> Result<Deployment> {
        self.authorize(actor, Action::Read)?;
        Ok(self.store.deployment(id)?)
    }

    /// The events of one deployment, oldest first.
    pub fn deployment_events(&self, actor: &Actor, id: i64) -> Result<Vec<Event>> {
        self.authorize(actor, Action::Read)?;
        Ok(self.store.deployment_events(id)?)
    }

    /// Events after `seq`, oldest first, at most `limit` (for following the
    /// log).
    pub fn events_after(&self, actor: &Actor, seq: i64, limit: usize) -> Result<Vec<Event>> {
        self.authorize(actor, Action::Read)?;
        Ok(self.store.events_after(seq, limit)?)
    }

    /// The sequence number of the newest event (0 when there is none).
    pub fn last_event(&self, actor: &Actor) -> Result<i64> {
        self.authorize(actor, Action::Read)?;
        Ok(self.store.last_event_seq()?)
    }
}
