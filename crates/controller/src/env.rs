//! The reconciler of one environment. Each tick it reads the desired state
//! from the store, looks at what runs, and takes the next step — and every
//! step is written to the store *before* the effect it leads to, so a
//! controller killed at any point resumes from the last written step:
//!
//! - supervise: restart crashed instances (with backoff), probe health,
//!   stop instances no slot needs any more;
//! - drive the deployment in progress, one lifecycle state per tick:
//!   pending (fidelity gate) → building (artifacts) → starting (idle slot,
//!   health) → verifying (smoke, or canary steps judged on the proxy's
//!   figures) → live, or failed / aborted with the reason;
//! - otherwise keep the live state running (after `hifi down` or a reboot)
//!   and record verification once the active release has soaked;
//! - push the routing table to the proxy when it changed.
//!
//! Long waits (instance health, smoke, drains) happen inside a step, and the
//! step they belong to is already persisted, so redoing them after a crash
//! is safe: starting adopts instances that already run this release.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hifi_artifacts::Artifacts;
use hifi_core::deployment::DeploymentState;
use hifi_core::fidelity;
use hifi_core::rollout::{Judgement, Window, judge, step_due, step_weight};
use hifi_core::{Config, Environment, ReleaseId, Routing, Slot, Strategy};
use hifi_proxy::{DrainRequest, StatsQuery};
use hifi_runtime::{InstanceStatus, Runtime, free_port};
use hifi_store::{Analysis, Audit, Deployment, Store, Update};
use serde_json::Value;

use crate::clock::{Clock, wall_ms};
use crate::error::{Error, Result};
use crate::instances::{self, SpecBuilder};
use crate::table::{self, Running, health};
use crate::{ROLLBACK, Shared};

/// How often a running instance's health path is probed.
const PROBE_EVERY_MS: i64 = 1_000;
/// The longest wait between restarts of a crashing instance.
const MAX_BACKOFF_MS: i64 = 30_000;

/// The reconciler of one environment.
pub(crate) struct EnvReconciler<R: Runtime, C: Clock> {
    name: String,
    shared: Arc<Shared<R, C>>,
    store: Store,
    /// The table last accepted by the proxy, and the proxy generation it went to.
    last_table: Option<(u64, Value)>,
    /// When the current canary step may next be judged (after "too few requests").
    next_judgement: Option<(i64, i64)>,
    /// When each crashed instance may be restarted, by (slot, service).
    restart_at: HashMap<(String, String), i64>,
    last_probe: i64,
    verified: Option<ReleaseId>,
}

enum Ending {
    Failed,
    Aborted,
}

impl<R: Runtime, C: Clock> EnvReconciler<R, C> {
    pub(crate) fn new(name: String, shared: Arc<Shared<R, C>>) -> Result<Self> {
        let store = shared.open_store()?;
        Ok(EnvReconciler {
            name,
            shared,
            store,
            last_table: None,
            next_judgement: None,
            restart_at: HashMap::new(),
            last_probe: 0,
            verified: None,
        })
    }

    fn now(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    fn audit(&self) -> Audit {
        Audit {
            actor: self.shared.options.actor.clone(),
            at: self.now(),
        }
    }

    /// One reconciliation pass.
    pub(crate) async fn tick(&mut self) -> Result<()> {
        let config = self.shared.config();
        let Ok(env) = config.environment(&self.name) else {
            return Ok(());
        };
        let env = env.clone();
        self.supervise(&config, &env).await?;
        match self.store.deployment_in_progress(&env.name)? {
            Some(deployment) => self.drive(&config, &env, deployment).await?,
            None => self.maintain(&config, &env).await?,
        }
        self.apply_table(&config, &env).await
    }

    fn ports(&mut self, config: &Config, env: &Environment) -> Result<HashMap<String, u16>> {
        let mut ports = HashMap::new();
        for service in &config.services {
            // A port taken by an earlier assignment is retried with another.
            let mut attempts = 0;
            let port = loop {
                match self
                    .store
                    .internal_port(&env.name, &service.name, free_port()?)
                {
                    Ok(port) => break port,
                    Err(hifi_store::Error::AlreadyExists { .. }) if attempts < 5 => attempts += 1,
                    Err(e) => return Err(e.into()),
                }
            };
            ports.insert(service.name.clone(), port);
        }
        Ok(ports)
    }

    fn artifacts(&self) -> Artifacts {
        Artifacts::new(&self.shared.options.root.join(".hifi"))
    }

    // ---- supervision -------------------------------------------------

    async fn supervise(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let routing = self.store.routing(&env.name)?;
        let running = instances::load(&self.store, &env.name)?;
        let now = self.now();
        let probe = now - self.last_probe >= PROBE_EVERY_MS;
        if probe {
            self.last_probe = now;
        }
        for r in running {
            let slot: Option<Slot> = r.instance.slot.parse().ok();
            let wanted = slot
                .and_then(|s| routing.in_slot(s))
                .is_some_and(|p| p.release.as_str() == r.instance.release);
            if !wanted {
                // No slot needs it: a leftover of an interrupted abort or a displaced standby.
                instances::stop(
                    &self.shared.runtime,
                    &mut self.store,
                    &r,
                    self.shared.options.stop_grace,
                )
                .await?;
                continue;
            }
            match self.shared.runtime.status(&r.instance) {
                InstanceStatus::Exited { code, signal } => {
                    self.crashed(config, env, r, code, signal).await?
                }
                InstanceStatus::Running if probe && r.health != health::STARTING => {
                    self.probe(config, r).await?
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn probe(&mut self, config: &Config, r: Running) -> Result<()> {
        let Some(service) = config.service(&r.instance.service) else {
            return Ok(());
        };
        let ok = matches!(
            self.shared.runtime.probe(&r.instance, &service.health, Duration::from_secs(2)).await,
            Ok(code) if (200..300).contains(&code)
        );
        let health = if ok {
            health::HEALTHY
        } else {
            health::UNHEALTHY
        };
        if r.health != health {
            let message = format!("{} is {health}", r.instance.describe());
            let audit = self.audit();
            instances::record(
                &mut self.store,
                &audit,
                &Running {
                    health: health.into(),
                    ..r
                },
                &format!("instance.{health}"),
                &message,
            )?;
        }
        Ok(())
    }

    async fn crashed(
        &mut self,
        config: &Config,
        env: &Environment,
        r: Running,
        code: Option<i32>,
        signal: Option<i32>,
    ) -> Result<()> {
        let key = (r.instance.slot.clone(), r.instance.service.clone());
        let now = self.now();
        if r.health != health::EXITED {
            let backoff = (1_000i64 << r.restarts.min(5)).min(MAX_BACKOFF_MS);
            let how = match (code, signal) {
                (Some(code), _) => format!("exited with status {code}"),
                (_, Some(signal)) => format!("was killed by signal {signal}"),
                _ => "exited".to_string(),
            };
            let message = format!(
                "{} {how}; restarting in {} s",
                r.instance.describe(),
                backoff / 1000
            );
            tracing::warn!("{message}");
            let audit = self.audit();
            instances::record(
                &mut self.store,
                &audit,
                &Running {
                    health: health::EXITED.into(),
                    ..r.clone()
                },
                "instance.crashed",
                &message,
            )?;
            self.restart_at.insert(key, now + backoff);
            return Ok(());
        }
        if self.restart_at.get(&key).is_some_and(|at| now < *at) {
            return Ok(());
        }
        self.restart_at.remove(&key);
        let Some(service) = config.service(&r.instance.service) else {
            return Ok(());
        };
        let release = self
            .store
            .release(&ReleaseId::from_stored(r.instance.release.clone()))?;
        let Some(version) = release.version_of(&service.name) else {
            return Ok(());
        };
        let ports = self.ports(config, env)?;
        let artifacts = self.artifacts();
        let builder = SpecBuilder {
            root: &self.shared.options.root,
            env,
            services: &config.services,
            internal_ports: &ports,
            artifacts: &artifacts,
        };
        let slot: Slot = r.instance.slot.parse().map_err(Error::Other)?;
        // Same port as before when it is free, so the table need not change.
        let spec = builder
            .spec(
                service,
                slot,
                &r.instance.release,
                version,
                r.instance.addr.port(),
            )
            .map_err(Error::Other)?;
        let audit = self.audit();
        let started = instances::start(
            &self.shared.runtime,
            &mut self.store,
            &audit,
            &spec,
            r.restarts + 1,
        )
        .await?;
        match self
            .shared
            .runtime
            .wait_healthy(&spec, &started.instance, self.shared.options.start_timeout)
            .await
        {
            Ok(()) => {
                let message = format!(
                    "{} restarted (restart #{})",
                    started.instance.describe(),
                    started.restarts
                );
                let audit = self.audit();
                instances::record(
                    &mut self.store,
                    &audit,
                    &Running {
                        health: health::HEALTHY.into(),
                        ..started
                    },
                    "instance.restarted",
                    &message,
                )?;
            }
            Err(e) => {
                let audit = self.audit();
                let message = format!("restart failed: {e}");
                instances::record(
                    &mut self.store,
                    &audit,
                    &Running {
                        health: health::EXITED.into(),
                        ..started.clone()
                    },
                    "instance.crashed",
                    &message,
                )?;
                let _ = self
                    .shared
                    .runtime
                    .stop(&started.instance, self.shared.options.stop_grace)
                    .await;
                let backoff = (1_000i64 << started.restarts.min(5)).min(MAX_BACKOFF_MS);
                self.restart_at.insert(
                    (
                        started.instance.slot.clone(),
                        started.instance.service.clone(),
                    ),
                    self.now() + backoff,
                );
            }
        }
        Ok(())
    }

    // ---- the live state ----------------------------------------------

    /// Without a deployment in progress: keep the active and standby slots
    /// running (after `hifi down` or a reboot), and record verification.
    async fn maintain(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let mut routing = self.store.routing(&env.name)?;
        if let Some(orphan) = routing.candidate.clone() {
            // A candidate without a deployment cannot come from hifi's own
            // transitions; drop it rather than leave half a rollout behind.
            routing.abort().ok();
            let audit = self.audit();
            let message = format!(
                "dropped candidate {} in {} that no deployment owns",
                orphan.release, orphan.slot
            );
            self.store
                .set_routing(&audit, &env.name, &routing, "routing.repaired", &message)?;
        }
        for placement in routing.active.iter().chain(&routing.standby) {
            if let Err(message) = self
                .ensure_slot(config, env, placement.slot, &placement.release)
                .await?
            {
                tracing::warn!("{} {}: {message}", env.name, placement.slot);
                let audit = self.audit();
                self.store.record_event(
                    &audit,
                    "slot.unavailable",
                    hifi_store::events::Subject::env(&env.name),
                    &message,
                )?;
            }
        }
        self.verify(env, &routing)
    }

    fn verify(&mut self, env: &Environment, routing: &Routing) -> Result<()> {
        let (Some(active), Some(since)) = (&routing.active, routing.live_since) else {
            return Ok(());
        };
        if self.verified.as_ref() == Some(&active.release)
            || self.now() - since < env.soak.as_millis() as i64
        {
            return Ok(());
        }
        let running = instances::load(&self.store, &env.name)?;
        let healthy = running
            .iter()
            .filter(|r| r.instance.slot == active.slot.as_str())
            .all(|r| r.health == health::HEALTHY);
        if healthy && !running.is_empty() {
            let audit = self.audit();
            self.store
                .record_verification(&audit, &env.name, &active.release)?;
            self.verified = Some(active.release.clone());
        }
        Ok(())
    }

    /// Makes sure every service of `release` runs healthy in `slot`,
    /// adopting what already runs. `Ok(Err(reason))` when an instance could
    /// not be made healthy (the caller decides what that means).
    async fn ensure_slot(
        &mut self,
        config: &Config,
        env: &Environment,
        slot: Slot,
        release: &ReleaseId,
    ) -> Result<Result<(), String>> {
        let record = self.store.release(release)?;
        let ports = self.ports(config, env)?;
        let artifacts = self.artifacts();
        let running = instances::load(&self.store, &env.name)?;
        let mut waiting = Vec::new();
        for service in &config.services {
            let current = running
                .iter()
                .find(|r| r.instance.slot == slot.as_str() && r.instance.service == service.name);
            if let Some(r) = current {
                let same = r.instance.release == release.as_str();
                let alive = self.shared.runtime.status(&r.instance).is_running();
                if same && alive {
                    if r.health == health::STARTING {
                        waiting.push((service.clone(), r.clone()));
                    }
                    continue;
                }
                if same && !alive && r.health == health::EXITED {
                    // Crash handling (with its backoff) owns this one.
                    continue;
                }
                instances::stop(
                    &self.shared.runtime,
                    &mut self.store,
                    r,
                    self.shared.options.stop_grace,
                )
                .await?;
            }
            let Some(version) = record.version_of(&service.name) else {
                return Ok(Err(format!(
                    "release {release} has no version of service {}",
                    service.name
                )));
            };
            if !artifacts.exists(&service.name, version) {
                return Ok(Err(format!(
                    "the artifact of {} {} is missing under .hifi/artifacts; compose the release again to rebuild it",
                    service.name,
                    &version[..12.min(version.len())]
                )));
            }
            let builder = SpecBuilder {
                root: &self.shared.options.root,
                env,
                services: &config.services,
                internal_ports: &ports,
                artifacts: &artifacts,
            };
            let spec = match builder.spec(service, slot, release.as_str(), version, free_port()?) {
                Ok(spec) => spec,
                Err(message) => return Ok(Err(message)),
            };
            let audit = self.audit();
            let started =
                instances::start(&self.shared.runtime, &mut self.store, &audit, &spec, 0).await?;
            waiting.push((service.clone(), started));
        }
        for (service, r) in waiting {
            let version = record.version_of(&service.name).unwrap_or_default();
            let builder = SpecBuilder {
                root: &self.shared.options.root,
                env,
                services: &config.services,
                internal_ports: &ports,
                artifacts: &artifacts,
            };
            let spec = builder
                .spec(
                    &service,
                    slot,
                    release.as_str(),
                    version,
                    r.instance.addr.port(),
                )
                .map_err(Error::Other)?;
            match self
                .shared
                .runtime
                .wait_healthy(&spec, &r.instance, self.shared.options.start_timeout)
                .await
            {
                Ok(()) => {
                    let audit = self.audit();
                    let message = format!(
                        "{} is healthy on {}",
                        r.instance.describe(),
                        r.instance.addr
                    );
                    instances::record(
                        &mut self.store,
                        &audit,
                        &Running {
                            health: health::HEALTHY.into(),
                            ..r
                        },
                        "instance.healthy",
                        &message,
                    )?;
                }
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        Ok(Ok(()))
    }

    async fn stop_slot(&mut self, env: &str, slot: Slot) -> Result<()> {
        for r in instances::load(&self.store, env)? {
            if r.instance.slot == slot.as_str() {
                instances::stop(
                    &self.shared.runtime,
                    &mut self.store,
                    &r,
                    self.shared.options.stop_grace,
                )
                .await?;
            }
        }
        Ok(())
    }

    // ---- deployments -------------------------------------------------

    fn update(&mut self, id: i64, update: Update<'_>) -> Result<Deployment> {
        let audit = self.audit();
        Ok(self.store.update_deployment(&audit, id, update)?)
    }

    async fn drive(&mut self, config: &Config, env: &Environment, d: Deployment) -> Result<()> {
        let release = ReleaseId::from_stored(d.release.clone());
        if d.request.as_deref() == Some("abort") {
            let reason = format!("aborted by request while {}", d.state);
            return self.end(config, env, &d, Ending::Aborted, &reason).await;
        }
        match d.state {
            DeploymentState::Pending => {
                if d.strategy != ROLLBACK {
                    let facts = self.store.facts(&release, &env.name)?;
                    if let Err(refusal) = fidelity::check(env, &release, &facts) {
                        return self
                            .end(config, env, &d, Ending::Failed, &refusal.to_string())
                            .await;
                    }
                }
                self.update(
                    d.id,
                    Update {
                        state: Some(DeploymentState::Building),
                        message: "checking artifacts",
                        ..Update::default()
                    },
                )?;
            }
            DeploymentState::Building => self.building(config, env, &d, &release).await?,
            DeploymentState::Starting => self.starting(config, env, &d, &release).await?,
            DeploymentState::Verifying => {
                let routing = self.store.routing(&env.name)?;
                let gradual = env.strategy == Strategy::Canary
                    && d.strategy != ROLLBACK
                    && routing.active.is_some();
                // The smoke check runs before any user reaches the candidate:
                // before the switch, or before a canary's first step.
                let before_users = !gradual || d.weight <= 0.0;
                if before_users && d.strategy != ROLLBACK && env.smoke.is_some() && !d.paused {
                    if let Err(reason) = self.smoke(config, env).await {
                        return self.end(config, env, &d, Ending::Failed, &reason).await;
                    }
                    self.update(
                        d.id,
                        Update {
                            kind: Some("deployment.smoke-passed"),
                            message: "smoke check passed against the candidate",
                            ..Update::default()
                        },
                    )?;
                }
                if gradual {
                    self.canary(config, env, &d).await?;
                } else {
                    self.promote(config, env, &d, "").await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn building(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        release: &ReleaseId,
    ) -> Result<()> {
        let record = self.store.release(release)?;
        let artifacts = self.artifacts();
        let repo = hifi_git::Repo::open(&self.shared.options.root)?;
        for service in &config.services {
            let Some(version) = record.version_of(&service.name) else {
                let reason = format!(
                    "release {release} has no version of service {}; compose it again with the current hifi.toml",
                    service.name
                );
                return self.end(config, env, d, Ending::Failed, &reason).await;
            };
            // Builds normally happened at compose time; this only rebuilds
            // what was deleted, from exactly the same tree.
            let built = tokio::task::block_in_place(|| artifacts.ensure(&repo, service, version));
            if let Err(e) = built {
                return self
                    .end(config, env, d, Ending::Failed, &e.to_string())
                    .await;
            }
        }
        let mut routing = self.store.routing(&env.name)?;
        if d.strategy == ROLLBACK {
            let warm = routing
                .standby
                .as_ref()
                .is_some_and(|s| s.release == *release)
                && self
                    .slot_routable(env, routing.standby.as_ref().map(|s| s.slot))
                    .await?;
            if warm {
                let back_to = routing.standby.as_ref().map(|s| s.slot).expect("checked");
                routing
                    .rollback(self.now())
                    .map_err(|e| Error::Other(e.to_string()))?;
                let message = format!(
                    "rolled back to release {release}: the warm standby in {back_to} took all traffic in one table update"
                );
                if let Err(reason) = self.push(config, env, &routing).await {
                    return self.end(config, env, d, Ending::Failed, &reason).await;
                }
                self.update(
                    d.id,
                    Update {
                        state: Some(DeploymentState::Starting),
                        slot: Some(back_to),
                        message: "standby is warm",
                        ..Update::default()
                    },
                )?;
                self.update(
                    d.id,
                    Update {
                        state: Some(DeploymentState::Live),
                        routing: Some(&routing),
                        message: &message,
                        ..Update::default()
                    },
                )?;
                return Ok(());
            }
        }
        let displaced = match routing.begin(release.clone()) {
            Ok(displaced) => displaced,
            Err(e) => {
                return self
                    .end(config, env, d, Ending::Failed, &e.to_string())
                    .await;
            }
        };
        let slot = routing.idle_slot();
        let message = format!("starting release {release} in {slot}");
        self.update(
            d.id,
            Update {
                state: Some(DeploymentState::Starting),
                slot: Some(slot),
                routing: Some(&routing),
                message: &message,
                ..Update::default()
            },
        )?;
        if let Some(displaced) = displaced {
            self.stop_slot(&env.name, displaced.slot).await?;
        }
        Ok(())
    }

    async fn slot_routable(&mut self, env: &Environment, slot: Option<Slot>) -> Result<bool> {
        let Some(slot) = slot else { return Ok(false) };
        let running = instances::load(&self.store, &env.name)?;
        let in_slot: Vec<&Running> = running
            .iter()
            .filter(|r| r.instance.slot == slot.as_str())
            .collect();
        Ok(!in_slot.is_empty()
            && in_slot.len() == self.shared.config().services.len()
            && in_slot
                .iter()
                .all(|r| r.routable() && self.shared.runtime.status(&r.instance).is_running()))
    }

    async fn starting(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        release: &ReleaseId,
    ) -> Result<()> {
        let routing = self.store.routing(&env.name)?;
        let Some(slot) = routing
            .candidate
            .as_ref()
            .filter(|c| c.release == *release)
            .map(|c| c.slot)
        else {
            return self
                .end(
                    config,
                    env,
                    d,
                    Ending::Failed,
                    "the candidate slot vanished from the environment's routing",
                )
                .await;
        };
        match self.ensure_slot(config, env, slot, release).await? {
            Ok(()) => {
                if let Err(reason) = self.push(config, env, &routing).await {
                    return self.end(config, env, d, Ending::Failed, &reason).await;
                }
                let message = format!("all {} service(s) healthy in {slot}", config.services.len());
                let now = self.now();
                self.update(
                    d.id,
                    Update {
                        state: Some(DeploymentState::Verifying),
                        step_started_at: Some(now),
                        message: &message,
                        ..Update::default()
                    },
                )?;
                Ok(())
            }
            Err(reason) => self.end(config, env, d, Ending::Failed, &reason).await,
        }
    }

    async fn canary(&mut self, config: &Config, env: &Environment, d: &Deployment) -> Result<()> {
        if d.request.as_deref() == Some("promote") {
            return self.promote(config, env, d, "promoted by request").await;
        }
        if d.paused {
            return Ok(());
        }
        let canary = &env.canary;
        let now = self.now();
        let mut routing = self.store.routing(&env.name)?;
        let Some(candidate) = routing.candidate.clone() else {
            return self
                .end(
                    config,
                    env,
                    d,
                    Ending::Failed,
                    "the candidate slot vanished from the environment's routing",
                )
                .await;
        };
        if d.weight <= 0.0 {
            let Some(weight) = step_weight(canary, 0) else {
                return self.promote(config, env, d, "").await;
            };
            if let Err(refusal) = self.gate(env, &candidate.release) {
                return self.end(config, env, d, Ending::Failed, &refusal).await;
            }
            routing
                .set_weight(weight)
                .map_err(|e| Error::Other(e.to_string()))?;
            if let Err(reason) = self.push(config, env, &routing).await {
                return self.end(config, env, d, Ending::Failed, &reason).await;
            }
            let message = format!(
                "step 1 of {}: {weight} % of users on release {}",
                canary.steps.len(),
                candidate.release
            );
            self.update(
                d.id,
                Update {
                    step: Some(0),
                    weight: Some(weight),
                    step_started_at: Some(now),
                    routing: Some(&routing),
                    kind: Some("canary.step"),
                    message: &message,
                    ..Update::default()
                },
            )?;
            return Ok(());
        }
        let started = d.step_started_at.unwrap_or(now);
        if !step_due(canary, started, now)
            || self
                .next_judgement
                .is_some_and(|(id, at)| id == d.id && now < at)
        {
            return Ok(());
        }
        // The window is the step's length by hifi's clock, ending now by the
        // proxy's (wall) clock: the two agree in production, and a test that
        // moves its clock forward still judges the requests it really sent.
        let since = wall_ms() - (now - started);
        let query = StatsQuery {
            env: env.name.clone(),
            slot: candidate.slot.to_string(),
            service: None,
            since_ms: since.max(0) as u64,
        };
        let stats = self.shared.proxy.stats(&query).await?;
        let window = Window {
            requests: stats.requests,
            errors: stats.errors,
            error_ratio: stats.error_ratio,
            p50_ms: stats.p50_ms.unwrap_or(0.0),
            p99_ms: stats.p99_ms.unwrap_or(0.0),
        };
        let judgement = judge(canary, &window);
        let verdict = match &judgement {
            Judgement::Pass => "pass",
            Judgement::Fail(_) => "fail",
            Judgement::TooFewRequests { .. } => "extend",
        };
        self.store.record_analysis(&Analysis {
            deployment: d.id,
            step: d.step,
            weight: d.weight,
            requests: window.requests as i64,
            errors: window.errors as i64,
            error_ratio: window.error_ratio,
            p50_ms: window.p50_ms,
            p99_ms: window.p99_ms,
            verdict: verdict.into(),
            at: now,
        })?;
        let figures = format!(
            "{} requests, {} errors ({:.2} %), p50 {:.0} ms, p99 {:.0} ms",
            window.requests,
            window.errors,
            window.error_ratio * 100.0,
            window.p50_ms,
            window.p99_ms
        );
        match judgement {
            Judgement::TooFewRequests { seen, needed } => {
                self.next_judgement = Some((d.id, now + canary.interval.as_millis() as i64));
                let message = format!(
                    "step {} extended: {seen} of the {needed} requests needed to judge it ({figures})",
                    d.step + 1
                );
                self.update(
                    d.id,
                    Update {
                        kind: Some("canary.extended"),
                        message: &message,
                        ..Update::default()
                    },
                )?;
            }
            Judgement::Fail(reasons) => {
                let reason = format!(
                    "canary failed at {} %: {} ({figures})",
                    d.weight,
                    reasons.join("; ")
                );
                return self.end(config, env, d, Ending::Aborted, &reason).await;
            }
            Judgement::Pass => {
                self.next_judgement = None;
                let next = (d.step + 1) as usize;
                match step_weight(canary, next) {
                    Some(weight) => {
                        routing
                            .set_weight(weight)
                            .map_err(|e| Error::Other(e.to_string()))?;
                        if let Err(reason) = self.push(config, env, &routing).await {
                            return self.end(config, env, d, Ending::Failed, &reason).await;
                        }
                        let message = format!(
                            "step {} passed ({figures}); step {} of {}: {weight} % of users",
                            d.step + 1,
                            next + 1,
                            canary.steps.len()
                        );
                        self.update(
                            d.id,
                            Update {
                                step: Some(next as i64),
                                weight: Some(weight),
                                step_started_at: Some(now),
                                routing: Some(&routing),
                                kind: Some("canary.step"),
                                message: &message,
                                ..Update::default()
                            },
                        )?;
                    }
                    None => {
                        let note = format!("step {} passed ({figures})", d.step + 1);
                        self.promote(config, env, d, &note).await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn gate(&self, env: &Environment, release: &ReleaseId) -> Result<(), String> {
        let facts = self
            .store
            .facts(release, &env.name)
            .map_err(|e| e.to_string())?;
        fidelity::check(env, release, &facts).map_err(|r| r.to_string())
    }

    async fn smoke(&mut self, config: &Config, env: &Environment) -> Result<(), String> {
        let Some(smoke) = &env.smoke else {
            return Ok(());
        };
        let ports = self.ports(config, env).map_err(|e| e.to_string())?;
        let preview_url = format!(
            "http://127.0.0.1:{}",
            ports.get(table::PREVIEW).copied().unwrap_or(env.port)
        );
        let log = self
            .shared
            .options
            .root
            .join(".hifi/logs")
            .join(&env.name)
            .join("smoke.log");
        let preview = env
            .preview_token
            .as_deref()
            .map(|t| hifi_core::config::interpolate(t, |v| std::env::var(v).ok()))
            .transpose()?;
        let url = format!("http://127.0.0.1:{}", env.port);
        crate::smoke::run(
            smoke,
            &url,
            &preview_url,
            preview.as_deref(),
            &log,
            self.shared.options.smoke_timeout,
        )
        .await
    }

    async fn promote(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        note: &str,
    ) -> Result<()> {
        let release = ReleaseId::from_stored(d.release.clone());
        if d.strategy != ROLLBACK
            && let Err(refusal) = self.gate(env, &release)
        {
            return self.end(config, env, d, Ending::Failed, &refusal).await;
        }
        let mut routing = self.store.routing(&env.name)?;
        let old = routing.active.clone();
        routing
            .promote(self.now())
            .map_err(|e| Error::Other(e.to_string()))?;
        let slot = routing
            .active
            .as_ref()
            .map(|a| a.slot)
            .expect("just promoted");
        let mut message = format!("live: release {release} serves all users from {slot}");
        if let Some(old) = &old {
            message.push_str(&format!(
                "; release {} stays warm in {} for rollback",
                old.release, old.slot
            ));
        }
        if !note.is_empty() {
            message = format!("{note}; {message}");
        }
        if let Err(reason) = self.push(config, env, &routing).await {
            return self.end(config, env, d, Ending::Failed, &reason).await;
        }
        self.update(
            d.id,
            Update {
                state: Some(DeploymentState::Live),
                weight: Some(100.0),
                routing: Some(&routing),
                message: &message,
                ..Update::default()
            },
        )?;
        self.verified = None;
        if let Some(old) = old {
            // The old slot keeps running as standby; only long-lived
            // connections (WebSockets, streams) are closed at the deadline.
            let drain = DrainRequest {
                env: env.name.clone(),
                slot: old.slot.to_string(),
                service: None,
                deadline_ms: env.drain.as_millis() as u64,
            };
            if let Err(e) = self.shared.proxy.drain(&drain).await {
                tracing::warn!("draining {} {}: {e}", env.name, old.slot);
            }
        }
        Ok(())
    }

    /// Ends a deployment that did not go live: the candidate leaves the
    /// table first, its in-flight requests finish, then it stops. The
    /// active slot is never touched.
    async fn end(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        ending: Ending,
        reason: &str,
    ) -> Result<()> {
        let mut routing = self.store.routing(&env.name)?;
        let candidate = routing
            .candidate
            .clone()
            .filter(|c| c.release.as_str() == d.release);
        if candidate.is_some() {
            routing.abort().ok();
        }
        let state = match ending {
            Ending::Failed => DeploymentState::Failed,
            Ending::Aborted => DeploymentState::Aborted,
        };
        tracing::warn!("{} deployment #{} {state}: {reason}", env.name, d.id);
        let routing_update = candidate.as_ref().map(|_| &routing);
        self.update(
            d.id,
            Update {
                state: Some(state),
                weight: Some(0.0),
                reason: Some(reason),
                request: Some(None),
                routing: routing_update,
                message: reason,
                ..Update::default()
            },
        )?;
        self.apply_table(config, env).await?;
        if let Some(candidate) = candidate {
            self.await_drained(env, candidate.slot).await;
            self.stop_slot(&env.name, candidate.slot).await?;
        }
        Ok(())
    }

    /// Waits (up to the environment's drain time) until the proxy has no
    /// request in flight on `slot`, then closes what is long-lived.
    async fn await_drained(&mut self, env: &Environment, slot: Slot) {
        let deadline = wall_ms() + env.drain.as_millis() as i64;
        while wall_ms() < deadline {
            match self
                .shared
                .proxy
                .inflight(&env.name, slot.as_str(), None)
                .await
            {
                Ok(inflight) if inflight.requests == 0 && inflight.upgraded == 0 => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(_) => return,
            }
        }
        let drain = DrainRequest {
            env: env.name.clone(),
            slot: slot.to_string(),
            service: None,
            deadline_ms: 0,
        };
        let _ = self.shared.proxy.drain(&drain).await;
    }

    // ---- the proxy's table -------------------------------------------

    /// Pushes the table of the stored routing; a refusal is logged and
    /// retried next tick.
    async fn apply_table(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let routing = self.store.routing(&env.name)?;
        if let Err(e) = self.push(config, env, &routing).await {
            tracing::warn!("{}: {e}", env.name);
        }
        Ok(())
    }

    /// Pushes the table `routing` implies. Traffic moves only through here,
    /// and callers push a new routing *before* recording it: if the proxy
    /// refuses (a port taken by another program), the deployment fails with
    /// the proxy's reason instead of claiming a state nothing serves.
    async fn push(
        &mut self,
        config: &Config,
        env: &Environment,
        routing: &Routing,
    ) -> Result<(), String> {
        let running = instances::load(&self.store, &env.name).map_err(|e| e.to_string())?;
        let ports = self.ports(config, env).map_err(|e| e.to_string())?;
        let preview_token = env
            .preview_token
            .as_deref()
            .map(|t| hifi_core::config::interpolate(t, |v| std::env::var(v).ok()))
            .transpose()
            .map_err(|e| format!("preview_token of {}: {e}", env.name))?;
        let inputs = table::Inputs {
            env,
            services: &config.services,
            routing,
            instances: &running,
            internal_ports: &ports,
            preview_token,
        };
        let generation = self.shared.proxy_generation();
        match table::build(&inputs) {
            Some(spec) => {
                let json = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
                if self
                    .last_table
                    .as_ref()
                    .is_some_and(|(g, last)| *g == generation && *last == json)
                {
                    return Ok(());
                }
                self.shared
                    .proxy
                    .put_table(&spec)
                    .await
                    .map_err(|e| e.to_string())?;
                self.last_table = Some((generation, json));
            }
            None => {
                if self.last_table.take().is_some() {
                    self.shared
                        .proxy
                        .remove_table(&env.name)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }
}
