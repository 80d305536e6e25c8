//! Deploy, promote, rollback and canary actions. Each checks what it can at
//! once — an unknown environment, the fidelity gate, a deployment already in
//! progress — and records the desired change with its event in one
//! transaction, leaving the doing to the control plane. The deployments and
//! their events are views here too, for shells that follow one to its end.

use hifi_core::deployment::{DeploymentState, Kind, Request};
use hifi_core::event::EventKind;
use hifi_core::{Action, Environment, ReleaseId, fidelity, window};
use hifi_git::Oid;
use hifi_store::{CardMove, Extras, Update};
pub use hifi_store::{Deployment, Event};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Regression, Result};
use crate::project::{Actor, Project};

/// What `hifi canary` asks of a canary in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
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

/// How a deployment is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Start<'a> {
    /// Refuse unless a control plane runs (for a caller about to wait on it).
    pub require_running: bool,
    /// Why a hotfix goes outside the target's windows (recorded with it).
    pub reason: Option<&'a str>,
}

/// A deployment just recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Started {
    /// The deployment, pending.
    pub deployment: Deployment,
    /// Whether a control plane runs to carry it out.
    pub control_plane_running: bool,
    /// Cards that moved with it (to Deploy, as a promotion into production
    /// starts).
    pub moved: Vec<CardMove>,
    /// Cards that moved back (a rollback undoes what the promotion it
    /// undoes moved).
    pub moved_back: Vec<CardMove>,
    /// The window it went outside of, with the reason given.
    pub overrode_window: Option<String>,
}

/// A deployment just recorded or changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Refuses a release the fidelity gate would not let into `env` when
    /// `actor` deploys it (under four-eyes, their own sign-off does not
    /// count).
    fn gate(&self, actor: &Actor, env: &Environment, release: &ReleaseId) -> Result<()> {
        let mut facts = self.store.facts(release, &env.name)?;
        facts.promoter = Some(actor.name.clone());
        Ok(fidelity::check(env, release, &facts)?)
    }

    /// Refuses a release that lacks the commits of a hotfix card live in
    /// `env`: promoting it would take the fix back out. A fix counts as
    /// carried when its commit is an ancestor of the release's composition,
    /// so a fix merged into the base branch counts too.
    fn no_regression(&self, env: &Environment, release: &ReleaseId) -> Result<()> {
        let Some(live) = self.store.live_release(&env.name)? else {
            return Ok(());
        };
        let candidate = self.store.release(release)?;
        let Ok(candidate_commit) = candidate.commit.parse::<Oid>() else {
            return Ok(());
        };
        for merged in self.store.release(&live)?.cards {
            let Ok(card) = self.store.card(&merged.id) else {
                continue;
            };
            if !card.hotfix {
                continue;
            }
            let Ok(fix) = merged.commit.parse::<Oid>() else {
                continue;
            };
            if !self.repo.is_ancestor(&fix, &candidate_commit)? {
                return Err(Error::WouldRegress(Box::new(Regression {
                    release: release.clone(),
                    env: env.name.clone(),
                    card: merged.id,
                    branch: card.branch,
                    commit: fix.short().to_string(),
                    base: self.config.base.clone(),
                })));
            }
        }
        Ok(())
    }

    /// Refuses a deployment outside `env`'s windows, unless it is a hotfix
    /// promotion (from an environment that fixes `env`) with a reason;
    /// returns the note recorded for such an override.
    fn within_windows(
        &self,
        env: &Environment,
        from: Option<&Environment>,
        reason: Option<&str>,
    ) -> Result<Option<String>> {
        let now = self.now();
        if window::open(&env.windows, now) {
            return Ok(None);
        }
        let hotfix = from.is_some_and(|f| f.hotfix_of() == Some(env.name.as_str()));
        let written = env
            .windows
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        match reason.map(str::trim).filter(|r| !r.is_empty()) {
            Some(reason) if hotfix => Ok(Some(format!(
                "a hotfix outside {env}'s windows ({written}), because: {reason}",
                env = env.name
            ))),
            _ => Err(Error::OutsideWindow {
                env: env.name.clone(),
                next: window::next_opening(&env.windows, now)
                    .map(|(at, w)| w.local_time(at))
                    .unwrap_or_else(|| "not within two weeks".into()),
                windows: written,
                hotfix,
            }),
        }
    }

    /// The cards of `release` that move to Deploy as it is promoted into
    /// `env`, when `env` is a production environment and cards follow their
    /// releases.
    fn cards_to_deploy(&self, env: &Environment, release: &ReleaseId) -> Result<Vec<CardMove>> {
        if !self.config.follow_releases || !self.config.production().any(|p| p.name == env.name) {
            return Ok(Vec::new());
        }
        let deploying = self.config.workflow.deploying();
        let mut moves = Vec::new();
        for merged in self.store.release(release)?.cards {
            let Ok(card) = self.store.card(&merged.id) else {
                continue;
            };
            let below = self
                .config
                .workflow
                .find(&card.stage)
                .is_some_and(|stage| stage.rank < deploying.rank);
            if below {
                moves.push(CardMove {
                    card: merged.id,
                    from: card.stage,
                    to: deploying.name.clone(),
                });
            }
        }
        Ok(moves)
    }

    /// Records a deployment of `release` to `env` (from `from`, for a
    /// promotion), after the checks a deployment must pass there.
    fn start(
        &mut self,
        actor: &Actor,
        env: &Environment,
        from: Option<&Environment>,
        release: &ReleaseId,
        kind: Kind,
        how: Start<'_>,
    ) -> Result<Started> {
        let control_plane_running = crate::control::running(&self.layout).is_some();
        if how.require_running && !control_plane_running {
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
        let (moves, unfollow, note) = if kind == Kind::Rollback {
            // Going back is never held, and undoes what the promotion moved.
            let live = self.store.live_deployment(&env.name)?;
            let why = live
                .as_ref()
                .map(|d| format!("release {} was rolled back in {}", d.release, env.name));
            (Vec::new(), live.map(|d| d.id).zip(why), None)
        } else {
            let note = self.within_windows(env, from, how.reason)?;
            if env.promotes() {
                self.no_regression(env, release)?;
            }
            (self.cards_to_deploy(env, release)?, None, note)
        };
        let audit = self.audit(actor);
        let recorded = self
            .store
            .record_deployment_with(
                &audit,
                &env.name,
                release,
                kind,
                &Extras {
                    moves: &moves,
                    unfollow: unfollow.as_ref().map(|(id, why)| (*id, why.as_str())),
                    note: note.as_deref(),
                },
            )
            .map_err(refuse_busy)?;
        Ok(Started {
            deployment: self.store.deployment(recorded.id)?,
            control_plane_running,
            moved: moves,
            moved_back: recorded.moved_back,
            overrode_window: note,
        })
    }

    /// Deploys a release (default: the environment's latest composition)
    /// with the environment's strategy.
    pub fn deploy(
        &mut self,
        actor: &Actor,
        env: &str,
        release: Option<&str>,
        how: Start<'_>,
    ) -> Result<Started> {
        let env = self.environment(env)?.clone();
        self.authorize(actor, Project::deploy_action(&env))?;
        let release = match release {
            Some(prefix) => self.resolve_release(prefix)?,
            None if env.promotes() => {
                return Err(Error::PromoteOnly {
                    env: env.name.clone(),
                    from: env.promote_from().join(" or "),
                });
            }
            None => self
                .store
                .latest_composition(&env.name)?
                .map(|c| c.release)
                .ok_or_else(|| Error::NotComposed {
                    env: env.name.clone(),
                })?,
        };
        self.gate(actor, &env, &release)?;
        self.start(actor, &env, None, &release, Kind::from(env.strategy), how)
    }

    /// Deploys `from`'s live release to `to`, which must promote from it.
    pub fn promote(
        &mut self,
        actor: &Actor,
        from: &str,
        to: &str,
        how: Start<'_>,
    ) -> Result<Started> {
        let source = self.environment(from)?.clone();
        let target = self.environment(to)?.clone();
        self.authorize(actor, Project::deploy_action(&target))?;
        if !target.promotes() {
            return Err(Error::NotPromoted {
                env: target.name.clone(),
            });
        }
        if !target.promote_from().contains(&source.name) {
            return Err(Error::WrongSource {
                env: target.name.clone(),
                expected: target.promote_from().join(" or "),
                from: source.name.clone(),
            });
        }
        let release = self
            .store
            .live_release(&source.name)?
            .ok_or_else(|| Error::NothingLive {
                env: source.name.clone(),
            })?;
        self.gate(actor, &target, &release)?;
        self.start(
            actor,
            &target,
            Some(&source),
            &release,
            Kind::from(target.strategy),
            how,
        )
    }

    /// Goes back to the previous state: the warm standby, else the last
    /// release that was live before the active one. Never held by a window.
    pub fn rollback(&mut self, actor: &Actor, env: &str, how: Start<'_>) -> Result<Started> {
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
        self.start(actor, &env, None, &previous, Kind::Rollback, how)
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
