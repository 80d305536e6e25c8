//! The rollout engine's decisions, made purely.
//!
//! Each tick, the reconciler of an environment gathers what it can see into
//! an [`Observed`] — the environment's config, its desired routing and the
//! deployment in progress from the store, each instance with what the
//! runtime says of it, the canary's figures when a step is due, and the
//! reconciler's own [`Notes`] — and asks [`plan`] what to do. The answer is
//! a [`Plan`]: the [`Action`]s to take in order, and the notes to keep.
//! Nothing here reads a clock, a file or a socket, so every transition of
//! blue-green, canary, abort, rollback, crash recovery and soak is tested
//! in microseconds (`plan/tests.rs`); the executor (`env/execute.rs`)
//! performs the actions.
//!
//! A plan has three parts, decided in this order:
//!
//! - supervision (`supervise.rs`): stop what no slot needs, record a crash,
//!   restart after the backoff, probe health;
//! - the deployment in progress, one lifecycle step at a time
//!   (`rollout.rs`), or, without one, keeping the live state running;
//! - verification: a release that stayed healthy as the active slot for the
//!   soak time is verified here.

mod rollout;
mod supervise;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use hifi_core::deployment::{DeploymentState, Kind};
use hifi_core::fidelity::{self, Facts};
use hifi_core::rollout::{Placement, Window};
use hifi_core::{Environment, Health, ReleaseId, Routing, Slot};
use hifi_runtime::{Instance, InstanceStatus};
use hifi_store::{Analysis, Deployment};

/// How often a running instance's health path is probed.
pub const PROBE_EVERY_MS: i64 = 1_000;
/// The longest wait between restarts of a crashing instance.
pub const MAX_BACKOFF_MS: i64 = 30_000;
/// How long a canary step may wait for enough traffic to be judged: the
/// proxy keeps 15 minutes of figures, so a longer wait could never succeed.
pub const JUDGE_WITHIN_MS: i64 = 14 * 60_000;
/// How long an instance must run healthy before its past crashes are
/// forgotten (so a crash last week does not make today's look like flapping).
pub const CRASHES_FORGOTTEN_AFTER_MS: i64 = 10 * 60_000;
/// How often a canary step is looked at between its judgements, to abort a
/// candidate that can no longer pass without waiting for the interval.
pub const PEEK_EVERY_MS: i64 = 1_000;

/// Why a deployment ends when its candidate left the routing under it.
pub const CANDIDATE_VANISHED: &str = "the candidate slot vanished from the environment's routing";

/// How long to wait before restarting an instance that crashed `restarts`
/// times, or before trying again a slot that failed `restarts` times.
pub fn backoff_ms(restarts: i64) -> i64 {
    (1_000i64 << restarts.clamp(0, 5)).min(MAX_BACKOFF_MS)
}

/// One instance as recorded, with what the runtime said of it this tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// What the runtime returned when it started it.
    pub instance: Instance,
    /// Its recorded health.
    pub health: Health,
    /// Restarts after crashes.
    pub restarts: i64,
    /// When its record last changed (a crash is recorded when seen).
    pub changed_at: i64,
    /// Whether it runs, as the runtime said this tick.
    pub status: InstanceStatus,
}

impl Running {
    /// Whether it is replica `replica` of `service`.
    pub fn is(&self, service: &str, replica: u16) -> bool {
        self.instance.service == service && self.instance.replica == replica
    }

    /// Whether it runs `release` in `slot`.
    pub fn runs(&self, slot: Slot, release: &ReleaseId) -> bool {
        self.instance.slot == slot && self.instance.release == *release
    }

    /// Whether it may take traffic (`healthy_only`: and passed its last
    /// probe) and runs.
    pub fn serves(&self, healthy_only: bool) -> bool {
        let health = if healthy_only {
            self.health == Health::Healthy
        } else {
            self.health.routable()
        };
        health && self.status.is_running()
    }
}

/// What the planner knows of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFacts {
    /// Its services, by name, with how many instances each slot has of
    /// each (from the current `hifi.toml`: scale is not part of a release).
    pub services: Vec<(String, u16)>,
    /// Whether its stored record still hashes to its id.
    pub intact: bool,
    /// Whether every service's artifact is built.
    pub artifacts_ready: bool,
    /// What the fidelity gate decides on for this environment.
    pub gate: Facts,
}

/// The reconciler's own notes, kept between ticks (lost on restart, which
/// only ever makes it wait or check again).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notes {
    /// When health was last probed.
    pub last_probe: i64,
    /// The deployment whose step was extended, and when it may next be judged.
    pub next_judgement: Option<(i64, i64)>,
    /// The deployment whose smoke check passed.
    pub smoked: Option<i64>,
    /// When the canary step was last looked at between judgements.
    pub last_peek: i64,
    /// Since when the candidate of a deployment has not been ready.
    pub unready_since: Option<(i64, i64)>,
    /// Since when every service of the active release has been healthy.
    pub healthy_since: Option<(ReleaseId, i64)>,
    /// The active release last recorded as verified here.
    pub verified: Option<ReleaseId>,
    /// When a slot that could not be brought up may be tried again, and
    /// how many times it failed.
    pub retry_at: HashMap<Slot, (i64, u32)>,
}

/// Everything the planner decides on.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Now, by the controller's clock.
    pub now: i64,
    /// The environment, as configured.
    pub env: Environment,
    /// How long a service may take to come up.
    pub start_timeout_ms: i64,
    /// What the environment serves (desired, from the store).
    pub routing: Routing,
    /// The deployment in progress, if any.
    pub deployment: Option<Deployment>,
    /// The releases the routing and the deployment name.
    pub releases: HashMap<ReleaseId, ReleaseFacts>,
    /// The recorded instances of the environment.
    pub instances: Vec<Running>,
    /// The candidate's figures over the current canary step, when
    /// [`window_wanted`] asked for them.
    pub window: Option<Window>,
    /// The stable slot's figures over the same window.
    pub stable_window: Option<Window>,
    /// How many times the current canary step was extended for want of
    /// traffic (since it began or was resumed).
    pub extensions: u32,
    /// The reconciler's notes.
    pub notes: Notes,
}

/// How a deployment that did not go live ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It could not be done (the active slot was never touched).
    Failed,
    /// Stopped by its analysis or by a user.
    Aborted,
}

impl Ending {
    /// The lifecycle state it ends in.
    pub fn state(self) -> DeploymentState {
        match self {
            Ending::Failed => DeploymentState::Failed,
            Ending::Aborted => DeploymentState::Aborted,
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Stop an instance no slot needs (`why` goes into its event).
    Stop {
        /// The instance.
        instance: Box<Running>,
        /// Why.
        why: String,
    },
    /// Record that an instance exited; it is restarted after `backoff_ms`.
    MarkCrashed {
        /// The instance.
        instance: Box<Running>,
        /// What the event says.
        message: String,
    },
    /// Start a crashed instance again, on its old port if it is free.
    Restart {
        /// The instance.
        instance: Box<Running>,
    },
    /// Probe an instance's health path and record a change.
    Probe {
        /// The instance.
        instance: Box<Running>,
    },
    /// Forget the crashes of an instance that has run healthy long enough.
    ForgetCrashes {
        /// The instance.
        instance: Box<Running>,
    },
    /// End the deployment in progress: its candidate leaves, drains, stops.
    End {
        /// Failed or aborted.
        ending: Ending,
        /// The reason, recorded and shown.
        reason: String,
    },
    /// Move the deployment to its next lifecycle state.
    Advance {
        /// The state.
        to: DeploymentState,
        /// What the event says.
        message: String,
    },
    /// Build the deployment's missing artifacts.
    BuildArtifacts,
    /// Place the candidate in the idle slot and start it there; stop the
    /// standby it displaces once that has drained.
    Begin {
        /// The routing with the candidate at weight 0.
        routing: Routing,
        /// The candidate's slot.
        slot: Slot,
        /// The standby it displaces.
        displaced: Option<Placement>,
    },
    /// Bring every service of the candidate up healthy, put it in the
    /// table at weight 0, and move on to verifying.
    StartCandidate {
        /// The routing (candidate included).
        routing: Routing,
        /// Its slot.
        slot: Slot,
    },
    /// Run the environment's smoke check against the candidate.
    Smoke,
    /// Move a canary to a step: push the weight, then record it.
    SetStep {
        /// The routing at the new weight.
        routing: Routing,
        /// Step index.
        step: i64,
        /// Percent of users on the candidate.
        weight: f64,
        /// What the event says.
        message: String,
    },
    /// Record the judgement of a canary step with its figures.
    RecordAnalysis(Analysis),
    /// The step is extended for want of traffic.
    Extend {
        /// What the event says.
        message: String,
    },
    /// The step could not be judged after its extensions: the canary
    /// pauses and says why, for a person to decide.
    Stall {
        /// What the event (and the deployment's reason) says.
        message: String,
    },
    /// Put a routing live in one table update: the deployment goes live and
    /// the slot users left drains.
    Switch {
        /// The routing to serve.
        routing: Routing,
        /// The slot users leave.
        left: Option<Slot>,
        /// What the event says.
        message: String,
    },
    /// Drop a candidate that no deployment owns.
    DropOrphan {
        /// The routing without it.
        routing: Routing,
        /// What the event says.
        message: String,
    },
    /// Bring a slot of the live state up (after `hifi down` or a reboot),
    /// adopting what runs.
    KeepRunning {
        /// The slot and its release.
        placement: Placement,
    },
    /// Push the routing table now (the executor also does at every tick's end).
    PushTable,
    /// Record that the active release is verified here.
    RecordVerified {
        /// The release.
        release: ReleaseId,
    },
}

impl Action {
    /// Whether it keeps instances alive rather than moving a rollout: its
    /// failure must not hold up what follows.
    pub fn is_supervision(&self) -> bool {
        matches!(
            self,
            Action::Stop { .. }
                | Action::MarkCrashed { .. }
                | Action::Restart { .. }
                | Action::Probe { .. }
                | Action::ForgetCrashes { .. }
        )
    }

    /// The instance it is about, for supervision actions.
    pub fn instance(&self) -> Option<&Running> {
        match self {
            Action::Stop { instance, .. }
            | Action::MarkCrashed { instance, .. }
            | Action::Restart { instance }
            | Action::Probe { instance }
            | Action::ForgetCrashes { instance } => Some(instance),
            _ => None,
        }
    }
}

/// What to do this tick, and the notes to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Actions, in order.
    pub actions: Vec<Action>,
    /// The notes for the next tick.
    pub notes: Notes,
}

/// The canary figures a plan needs this tick: the candidate's and the
/// stable slot's over the step so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowWanted {
    /// The candidate's slot.
    pub slot: Slot,
    /// The stable (active) slot.
    pub stable: Slot,
    /// How long the step has run (ms).
    pub age_ms: i64,
    /// Whether the step is due for its judgement (else it is only looked at).
    pub due: bool,
}

/// Decides what to do.
pub fn plan(o: &Observed) -> Plan {
    let mut p = Planner {
        o,
        notes: o.notes.clone(),
        actions: Vec::new(),
    };
    p.supervise();
    match &o.deployment {
        Some(d) => p.drive(d),
        None => p.maintain(),
    }
    p.verify();
    Plan {
        actions: p.actions,
        notes: p.notes,
    }
}

/// Whether the plan will judge a canary step this tick, and on what: the
/// reconciler fetches those figures before planning.
pub fn window_wanted(o: &Observed) -> Option<WindowWanted> {
    let d = o.deployment.as_ref()?;
    let candidate = o.routing.candidate.as_ref()?;
    let stable = o.routing.active.as_ref()?;
    let judging = d.state == DeploymentState::Verifying
        && d.strategy == Kind::Canary
        && o.routing.active.is_some()
        && d.request.is_none()
        && !d.paused
        && d.weight > 0.0;
    if !judging {
        return None;
    }
    let started = d.step_started_at.unwrap_or(o.now);
    let due = hifi_core::rollout::step_due(&o.env.canary, started, o.now)
        && !o
            .notes
            .next_judgement
            .is_some_and(|(id, at)| id == d.id && o.now < at);
    let peek = o.now - o.notes.last_peek >= PEEK_EVERY_MS;
    (due || peek).then_some(WindowWanted {
        slot: candidate.slot,
        stable: stable.slot,
        age_ms: o.now - started,
        due,
    })
}

struct Planner<'a> {
    o: &'a Observed,
    notes: Notes,
    actions: Vec<Action>,
}

impl Planner<'_> {
    fn act(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// Whether every replica of every service of `release` has an instance
    /// of that release in `slot` that runs and takes traffic
    /// (`healthy_only`: that passed its last health probe). A slot is only
    /// as ready as its least ready instance.
    fn slot_ready(&self, release: &ReleaseId, slot: Slot, healthy_only: bool) -> bool {
        self.every_replica(release, |r| r.runs(slot, release) && r.serves(healthy_only))
    }

    /// Whether each replica of each service of `release` has an instance
    /// for which `test` holds.
    fn every_replica(&self, release: &ReleaseId, test: impl Fn(&Running) -> bool) -> bool {
        let Some(facts) = self.o.releases.get(release) else {
            return false;
        };
        facts.services.iter().all(|(service, replicas)| {
            (0..*replicas).all(|replica| {
                self.o
                    .instances
                    .iter()
                    .any(|r| r.is(service, replica) && test(r))
            })
        })
    }

    /// How many instances of `service` a slot of `release` has.
    fn replicas(&self, release: &ReleaseId, service: &str) -> Option<u16> {
        self.o
            .releases
            .get(release)?
            .services
            .iter()
            .find(|(name, _)| name == service)
            .map(|(_, n)| *n)
    }

    /// The fidelity gate on `release` for this environment.
    fn gate(&self, release: &ReleaseId) -> Result<(), String> {
        let facts = self
            .o
            .releases
            .get(release)
            .map(|f| f.gate.clone())
            .unwrap_or_default();
        fidelity::check(&self.o.env, release, &facts).map_err(|r| r.to_string())
    }

    /// Records verification once every service of the active release has
    /// been healthy, without a break, for the environment's soak time. The
    /// clock restarts at every crash, failed probe or restart of hifi.
    fn verify(&mut self) {
        let Some(active) = &self.o.routing.active else {
            self.notes.healthy_since = None;
            return;
        };
        let healthy = self.slot_ready(&active.release, active.slot, true);
        let now = self.o.now;
        self.notes.healthy_since = match self.notes.healthy_since.take() {
            Some((id, since)) if healthy && id == active.release => Some((id, since)),
            _ if healthy => Some((active.release.clone(), now)),
            _ => None,
        };
        let Some((_, since)) = &self.notes.healthy_since else {
            return;
        };
        if self.notes.verified.as_ref() == Some(&active.release)
            || now - since < self.o.env.soak.as_millis() as i64
        {
            return;
        }
        self.act(Action::RecordVerified {
            release: active.release.clone(),
        });
    }
}
