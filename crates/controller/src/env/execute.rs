//! Performing the planner's actions: the runtime, the proxy and the store.
//! Each action records what it changed with its event; a rollout step whose
//! effect fails (a service that does not come up, a table the proxy
//! refuses, a smoke check that fails) ends its deployment with the reason,
//! as a user would want, rather than retrying forever.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use hifi_core::deployment::DeploymentState;
use hifi_core::event::EventKind;
use hifi_core::rollout::Placement;
use hifi_core::{Config, Environment, Health, ReleaseId, Routing, Slot};
use hifi_proxy::DrainRequest;
use hifi_runtime::{Port, Runtime};
use hifi_store::events::Subject;
use hifi_store::{CardMove, Deployment, Update};

use super::EnvReconciler;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::instances;
use crate::plan::{Action, Ending, Running, backoff_ms};
use crate::table;

impl<R: Runtime, C: Clock> EnvReconciler<R, C> {
    /// Performs one action.
    pub(super) async fn execute(
        &mut self,
        config: &Config,
        env: &Environment,
        action: Action,
    ) -> Result<()> {
        match action {
            Action::Stop { instance, why } => self.stop(&instance, &why).await,
            Action::MarkCrashed { instance, message } => {
                tracing::warn!("{message}");
                self.record_health(*instance, Health::Exited, &message)
            }
            Action::Restart { instance } => self.restart(config, env, *instance).await,
            Action::Probe { instance } => self.probe(*instance).await,
            Action::ForgetCrashes { instance } => {
                let message = format!(
                    "{} has run healthy for {} min; its {} crash(es) are forgotten",
                    instance.instance.describe(),
                    crate::plan::CRASHES_FORGOTTEN_AFTER_MS / 60_000,
                    instance.restarts
                );
                let audit = self.audit();
                instances::record(
                    &mut self.store,
                    &audit,
                    &Running {
                        restarts: 0,
                        ..*instance
                    },
                    EventKind::InstanceHealthy,
                    &message,
                )
            }
            Action::End { ending, reason } => self.end(config, env, ending, &reason).await,
            Action::Advance { to, message } => {
                let d = self.in_progress(env)?;
                self.update(
                    d.id,
                    Update {
                        state: Some(to),
                        message: &message,
                        ..Update::default()
                    },
                )
            }
            Action::BuildArtifacts => self.build_artifacts(config, env).await,
            Action::Begin {
                routing,
                slot,
                displaced,
            } => self.begin(env, &routing, slot, displaced).await,
            Action::StartCandidate { routing, slot } => {
                self.start_candidate(config, env, &routing, slot).await
            }
            Action::Smoke => self.smoke(config, env).await,
            Action::SetStep {
                routing,
                step,
                weight,
                message,
            } => {
                let d = self.in_progress(env)?;
                if let Err(reason) = self.push(config, env, &routing).await {
                    return self.end(config, env, Ending::Failed, &reason).await;
                }
                let now = self.now();
                self.update(
                    d.id,
                    Update {
                        step: Some(step),
                        weight: Some(weight),
                        step_started_at: Some(now),
                        routing: Some(&routing),
                        kind: Some(EventKind::CanaryStep),
                        message: &message,
                        ..Update::default()
                    },
                )
            }
            Action::RecordAnalysis(analysis) => Ok(self.store.record_analysis(&analysis)?),
            Action::Extend { message } => {
                let d = self.in_progress(env)?;
                self.update(
                    d.id,
                    Update {
                        kind: Some(EventKind::CanaryExtended),
                        message: &message,
                        ..Update::default()
                    },
                )
            }
            Action::Stall { message } => {
                let d = self.in_progress(env)?;
                tracing::warn!("{} deployment #{}: {message}", env.name, d.id);
                self.update(
                    d.id,
                    Update {
                        paused: Some(true),
                        reason: Some(Some(&message)),
                        kind: Some(EventKind::CanaryStalled),
                        message: &message,
                        ..Update::default()
                    },
                )
            }
            Action::Switch {
                routing,
                left,
                message,
            } => self.switch(config, env, &routing, left, &message).await,
            Action::DropOrphan { routing, message } => {
                let audit = self.audit();
                Ok(self.store.set_routing(
                    &audit,
                    &env.name,
                    &routing,
                    EventKind::RoutingRepaired,
                    &message,
                )?)
            }
            Action::KeepRunning { placement } => self.keep_running(config, env, placement).await,
            Action::PushTable => self.apply_table(config, env).await,
            Action::RecordVerified { release } => {
                let moves = self.cards_to_done(config, env, &release)?;
                let audit = self.audit();
                self.store
                    .record_verification_with(&audit, &env.name, &release, &moves)?;
                self.notes.verified = Some(release);
                Ok(())
            }
        }
    }

    /// The cards of `release` that reach Done now that it is verified in
    /// `env`: when `env` is a production environment and cards follow their
    /// releases.
    fn cards_to_done(
        &self,
        config: &Config,
        env: &Environment,
        release: &ReleaseId,
    ) -> Result<Vec<CardMove>> {
        if !config.follow_releases || !config.production().any(|p| p.name == env.name) {
            return Ok(Vec::new());
        }
        let done = config.workflow.last();
        let mut moves = Vec::new();
        for merged in self.store.release(release)?.cards {
            let Ok(card) = self.store.card(&merged.id) else {
                continue;
            };
            if card.stage != done.name {
                moves.push(CardMove {
                    card: merged.id,
                    from: card.stage,
                    to: done.name.clone(),
                });
            }
        }
        Ok(moves)
    }

    fn in_progress(&self, env: &Environment) -> Result<Deployment> {
        self.store
            .deployment_in_progress(&env.name)?
            .ok_or_else(|| Error::Other(format!("no deployment is in progress in {}", env.name)))
    }

    fn update(&mut self, id: i64, update: Update<'_>) -> Result<()> {
        let audit = self.audit();
        self.store.update_deployment(&audit, id, update)?;
        Ok(())
    }

    async fn stop(&mut self, r: &Running, why: &str) -> Result<()> {
        let audit = self.audit();
        let grace = self.shared.options.stop_grace;
        instances::stop(&self.shared.runtime, &mut self.store, &audit, r, grace, why).await
    }

    fn record_health(&mut self, r: Running, health: Health, message: &str) -> Result<()> {
        let audit = self.audit();
        let kind = EventKind::instance(health);
        instances::record(
            &mut self.store,
            &audit,
            &Running { health, ..r },
            kind,
            message,
        )
    }

    async fn probe(&mut self, r: Running) -> Result<()> {
        let release = self.store.release(&r.instance.release)?;
        let Some(service) = release.service(&r.instance.service) else {
            return Ok(());
        };
        let (path, protocol) = (service.recipe.health.clone(), service.recipe.protocol);
        let ok = matches!(
            self.shared.runtime.probe(&r.instance, &path, protocol, Duration::from_secs(2)).await,
            Ok(code) if (200..300).contains(&code)
        );
        let health = if ok {
            Health::Healthy
        } else {
            Health::Unhealthy
        };
        if r.health != health {
            let message = format!("{} is {health}", r.instance.describe());
            self.record_health(r, health, &message)?;
        }
        Ok(())
    }

    /// Starts a crashed instance again: on its old port when that is still
    /// free, so the table need not change.
    async fn restart(&mut self, config: &Config, env: &Environment, r: Running) -> Result<()> {
        let release = self.store.release(&r.instance.release)?;
        let Some(service) = release.service(&r.instance.service).cloned() else {
            return Ok(());
        };
        let slot = r.instance.slot;
        let restarts = r.restarts + 1;
        let port = Port::Prefer(r.instance.addr.port());
        let replica = r.instance.replica;
        let placement = Placement {
            slot,
            release: release.id.clone(),
        };
        let spec = match self
            .spec(config, env, &placement, &service, replica, port)
            .await?
        {
            Ok(spec) => spec,
            Err(reason) => {
                // Counted as a failed restart, so the next try waits longer.
                let message = format!("{}: restart failed: {reason}", r.instance.describe());
                self.record_health(Running { restarts, ..r }, Health::Exited, &message)?;
                return self.unavailable(env, slot, reason);
            }
        };
        let audit = self.audit();
        let restarted = match instances::start(
            &self.shared.runtime,
            &mut self.store,
            &audit,
            &spec,
            restarts,
        )
        .await
        {
            Ok(restarted) => restarted,
            Err(e) => {
                let message = format!("{}: restart failed: {e}", r.instance.describe());
                return self.record_health(Running { restarts, ..r }, Health::Exited, &message);
            }
        };
        let timeout = self.shared.options.start_timeout;
        match self
            .shared
            .runtime
            .wait_healthy(&spec, &restarted.instance, timeout)
            .await
        {
            Ok(()) => {
                let message = format!(
                    "{} restarted (restart #{})",
                    restarted.instance.describe(),
                    restarted.restarts
                );
                let audit = self.audit();
                instances::record(
                    &mut self.store,
                    &audit,
                    &Running {
                        health: Health::Healthy,
                        ..restarted
                    },
                    EventKind::InstanceRestarted,
                    &message,
                )
            }
            Err(e) => {
                let message = format!("restart failed: {e}");
                let _ = self
                    .shared
                    .runtime
                    .stop(&restarted.instance, self.shared.options.stop_grace)
                    .await;
                self.record_health(restarted, Health::Exited, &message)
            }
        }
    }

    /// Records, once per distinct reason, that a slot cannot be brought up.
    fn unavailable(&mut self, env: &Environment, slot: Slot, reason: String) -> Result<()> {
        if self.unavailable.get(&slot) == Some(&reason) {
            return Ok(());
        }
        tracing::warn!("{} {slot}: {reason}", env.name);
        let audit = self.audit();
        let message = format!("{slot} cannot run: {reason}");
        self.store.record_event(
            &audit,
            EventKind::SlotUnavailable,
            Subject::env(&env.name),
            &message,
        )?;
        self.unavailable.insert(slot, reason);
        Ok(())
    }

    /// Brings a slot of the live state up; one that cannot be brought up is
    /// tried again after a growing pause, so it does not hold up every tick.
    async fn keep_running(
        &mut self,
        config: &Config,
        env: &Environment,
        placement: Placement,
    ) -> Result<()> {
        match self
            .ensure_slot(config, env, placement.slot, &placement.release, false)
            .await?
        {
            Ok(()) => {
                self.unavailable.remove(&placement.slot);
                self.notes.retry_at.remove(&placement.slot);
                Ok(())
            }
            Err(reason) => {
                let failures = self
                    .notes
                    .retry_at
                    .get(&placement.slot)
                    .map_or(0, |(_, n)| n + 1);
                let pause = backoff_ms(i64::from(failures));
                self.notes
                    .retry_at
                    .insert(placement.slot, (self.now() + pause, failures));
                self.unavailable(env, placement.slot, reason)
            }
        }
    }

    /// Makes sure every service of `release` runs healthy in `slot`,
    /// adopting what already runs and rebuilding a missing artifact.
    /// `Ok(Err(reason))` when that cannot be done (the caller decides what
    /// it means). With `restart_exited`, a crashed instance is replaced now;
    /// otherwise crash handling, with its backoff, owns it.
    async fn ensure_slot(
        &mut self,
        config: &Config,
        env: &Environment,
        slot: Slot,
        release: &ReleaseId,
        restart_exited: bool,
    ) -> Result<Result<(), String>> {
        let record = self.store.release(release)?;
        let running = self.running().await?;
        // What runs and still starts, and what must be started.
        let mut waiting = Vec::new();
        let mut to_start = Vec::new();
        let placement = Placement {
            slot,
            release: release.clone(),
        };
        // A runtime that scales a slot itself gets replica 0 only, whose
        // spec carries the number of replicas.
        let wanted = record.services.iter().flat_map(|service| {
            let replicas = config
                .services
                .iter()
                .find(|c| c.name == service.service)
                .map_or(1, |c| c.replicas);
            (0..env.runtime.instances_per_slot(replicas)).map(move |replica| (service, replica))
        });
        for (service, replica) in wanted {
            let current = running
                .iter()
                .find(|r| r.instance.slot == slot && r.is(&service.service, replica));
            if let Some(r) = current {
                let same = r.instance.release == *release;
                let alive = r.status.is_running();
                if same && alive {
                    if r.health == Health::Starting {
                        waiting.push((service.clone(), replica, r.clone()));
                    }
                    continue;
                }
                if same && !restart_exited {
                    continue;
                }
                self.stop(r, "replaced").await?;
            }
            if let Err(reason) = self.ensure_artifact(&service.recipe, &service.version) {
                return Ok(Err(reason));
            }
            let spec = match self
                .spec(config, env, &placement, service, replica, Port::Any)
                .await?
            {
                Ok(spec) => spec,
                Err(reason) => return Ok(Err(reason)),
            };
            to_start.push((service.clone(), replica, spec));
        }

        // Every instance of the slot starts at once, each recorded the moment
        // its runtime returns it, so none is ever left running unrecorded.
        let audit = self.audit();
        let mut failed = None;
        {
            let runtime = &self.shared.runtime;
            let mut starts: FuturesUnordered<_> = to_start
                .iter()
                .map(|(service, replica, spec)| async move {
                    (service, *replica, spec, runtime.start(spec).await)
                })
                .collect();
            while let Some((service, replica, spec, started)) = starts.next().await {
                let recorded = match started {
                    Ok(instance) => {
                        instances::record_start(runtime, &mut self.store, &audit, spec, instance, 0)
                            .await
                    }
                    Err(e) => Err(e.into()),
                };
                match recorded {
                    Ok(r) => waiting.push((service.clone(), replica, r)),
                    Err(e) => {
                        failed.get_or_insert(e.to_string());
                    }
                }
            }
        }
        if let Some(reason) = failed {
            return Ok(Err(reason));
        }

        // Then they are waited on together: the slot is ready when the
        // slowest is, not after the sum of them all.
        let mut checks = Vec::with_capacity(waiting.len());
        for (service, replica, r) in waiting {
            let port = Port::Fixed(r.instance.addr.port());
            match self
                .spec(config, env, &placement, &service, replica, port)
                .await?
            {
                Ok(spec) => checks.push((spec, r)),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        let timeout = self.shared.options.start_timeout;
        let runtime = &self.shared.runtime;
        let outcomes = join_all(
            checks
                .iter()
                .map(|(spec, r)| runtime.wait_healthy(spec, &r.instance, timeout)),
        )
        .await;
        let mut failed = None;
        for ((_, r), outcome) in checks.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    let message = format!(
                        "{} is healthy on {}",
                        r.instance.describe(),
                        r.instance.addr
                    );
                    self.record_health(r, Health::Healthy, &message)?;
                }
                Err(e) => {
                    failed.get_or_insert(e.to_string());
                }
            }
        }
        Ok(match failed {
            Some(reason) => Err(reason),
            None => Ok(()),
        })
    }

    /// Builds an artifact that is missing (it normally exists since compose;
    /// this rebuilds a deleted one from exactly the same tree).
    fn ensure_artifact(&self, recipe: &hifi_core::Service, version: &str) -> Result<(), String> {
        let artifacts = self.artifacts();
        if artifacts.exists(recipe, version) {
            return Ok(());
        }
        let repo =
            hifi_git::Repo::open(self.shared.options.layout.root()).map_err(|e| e.to_string())?;
        tokio::task::block_in_place(|| artifacts.ensure(&repo, recipe, version))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn build_artifacts(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let d = self.in_progress(env)?;
        let record = self.store.release(&d.release)?;
        for service in &record.services {
            if let Err(reason) = self.ensure_artifact(&service.recipe, &service.version) {
                return self.end(config, env, Ending::Failed, &reason).await;
            }
        }
        Ok(())
    }

    /// Records the candidate in its slot (starting), then stops the standby
    /// it displaced once that has drained.
    async fn begin(
        &mut self,
        env: &Environment,
        routing: &Routing,
        slot: Slot,
        displaced: Option<Placement>,
    ) -> Result<()> {
        let d = self.in_progress(env)?;
        let message = format!("starting release {} in {slot}", d.release);
        self.update(
            d.id,
            Update {
                state: Some(DeploymentState::Starting),
                slot: Some(slot),
                routing: Some(routing),
                message: &message,
                ..Update::default()
            },
        )?;
        if let Some(displaced) = displaced {
            // The previous release may still be draining from its switch.
            self.await_drained(env, displaced.slot).await;
            let why = format!("its slot is needed for release {}", d.release);
            self.stop_slot(displaced.slot, &why).await?;
        }
        Ok(())
    }

    async fn start_candidate(
        &mut self,
        config: &Config,
        env: &Environment,
        routing: &Routing,
        slot: Slot,
    ) -> Result<()> {
        let d = self.in_progress(env)?;
        if let Err(reason) = self
            .ensure_slot(config, env, slot, &d.release, true)
            .await?
        {
            return self.end(config, env, Ending::Failed, &reason).await;
        }
        // The candidate enters the table at weight 0: only the smoke check
        // and testers reach it.
        if let Err(reason) = self.push(config, env, routing).await {
            return self.end(config, env, Ending::Failed, &reason).await;
        }
        let message = format!(
            "all {} service(s) healthy in {slot}",
            self.store.release(&d.release)?.services.len()
        );
        let now = self.now();
        self.update(
            d.id,
            Update {
                state: Some(DeploymentState::Verifying),
                step_started_at: Some(now),
                message: &message,
                ..Update::default()
            },
        )
    }

    async fn smoke(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let d = self.in_progress(env)?;
        let Some(smoke) = &env.smoke else {
            return Ok(());
        };
        let outcome = async {
            let ports = self.ports(config).map_err(|e| e.to_string())?;
            let preview_url = format!(
                "http://127.0.0.1:{}",
                ports.get(table::PREVIEW).copied().unwrap_or(env.port)
            );
            let log = self.shared.options.layout.smoke_log(&env.name);
            let token = instances::preview_token(env)?;
            let url = format!("http://127.0.0.1:{}", env.port);
            crate::smoke::run(
                smoke,
                &url,
                &preview_url,
                token.as_deref(),
                &log,
                self.shared.options.smoke_timeout,
            )
            .await
        }
        .await;
        if let Err(reason) = outcome {
            return self.end(config, env, Ending::Failed, &reason).await;
        }
        self.notes.smoked = Some(d.id);
        self.update(
            d.id,
            Update {
                kind: Some(EventKind::DeploymentSmokePassed),
                message: "smoke check passed against the candidate",
                ..Update::default()
            },
        )
    }

    /// Puts `routing` live: pushed to the proxy, recorded with the
    /// deployment going live, then the slot users left is drained — it keeps
    /// running as the standby; only long-lived connections (WebSockets,
    /// streams) are closed at the drain deadline.
    async fn switch(
        &mut self,
        config: &Config,
        env: &Environment,
        routing: &Routing,
        left: Option<Slot>,
        message: &str,
    ) -> Result<()> {
        let d = self.in_progress(env)?;
        if let Err(reason) = self.push(config, env, routing).await {
            return self.end(config, env, Ending::Failed, &reason).await;
        }
        self.update(
            d.id,
            Update {
                state: Some(DeploymentState::Live),
                weight: Some(100.0),
                routing: Some(routing),
                message,
                ..Update::default()
            },
        )?;
        self.notes.verified = None;
        self.notes.healthy_since = None;
        if let Some(left) = left
            && self.shared.runtime.cluster_plane(&env.name).is_none()
        {
            let drain = DrainRequest {
                env: env.name.clone(),
                slot: left.to_string(),
                service: None,
                deadline_ms: env.drain.as_millis() as u64,
            };
            if let Err(e) = self.shared.proxy.drain(&drain).await {
                tracing::warn!("draining {} {left}: {e}", env.name);
            }
        }
        Ok(())
    }

    /// Ends the deployment in progress, which did not go live: the
    /// candidate leaves the table first, its in-flight requests finish, then
    /// it stops. The active slot is never touched; a standby the candidate
    /// displaced is put back (and started again by supervision).
    async fn end(
        &mut self,
        config: &Config,
        env: &Environment,
        ending: Ending,
        reason: &str,
    ) -> Result<()> {
        let d = self.in_progress(env)?;
        let mut routing = self.store.routing(&env.name)?;
        let candidate = routing.candidate.clone().filter(|c| c.release == d.release);
        if let Some(candidate) = &candidate {
            // No new user reaches the candidate, but it stays in the table
            // while its requests finish, so their internal calls (pinned by
            // x-hifi-slot) stay on its release.
            let mut closing = routing.clone();
            if closing.set_weight(0.0).is_ok() && self.push(config, env, &closing).await.is_ok() {
                self.await_drained(env, candidate.slot).await;
            }
            routing.abort().ok();
        }
        let state = ending.state();
        tracing::warn!("{} deployment #{} {state}: {reason}", env.name, d.id);
        self.update(
            d.id,
            Update {
                state: Some(state),
                weight: Some(0.0),
                reason: Some(Some(reason)),
                request: Some(None),
                routing: candidate.as_ref().map(|_| &routing),
                unfollow: Some(&format!(
                    "release {} did not go live in {}",
                    d.release, env.name
                )),
                message: reason,
                ..Update::default()
            },
        )?;
        self.apply_table(config, env).await?;
        if let Some(candidate) = candidate {
            let why = format!("deployment #{} {state}", d.id);
            for r in self.running().await? {
                if r.runs(candidate.slot, &candidate.release) {
                    self.stop(&r, &why).await?;
                }
            }
        }
        Ok(())
    }

    /// Waits (up to the environment's drain time) until the proxy has no
    /// request in flight on `slot`, then closes what is long-lived.
    async fn await_drained(&mut self, env: &Environment, slot: Slot) {
        let deadline = tokio::time::Instant::now() + env.drain;
        let plane = self.shared.runtime.cluster_plane(&env.name);
        while tokio::time::Instant::now() < deadline {
            let inflight = match &plane {
                Some(plane) => crate::cluster::inflight(plane, &env.name, slot.as_str()).await,
                None => self
                    .shared
                    .proxy
                    .inflight(&env.name, slot.as_str(), None)
                    .await
                    .map_err(Into::into),
            };
            match inflight {
                Ok(inflight) if inflight.requests == 0 && inflight.upgraded == 0 => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(_) => return,
            }
        }
        if plane.is_some() {
            // The in-cluster proxy takes no drain orders: long-lived
            // connections to the slot end when its pods do.
            return;
        }
        let drain = DrainRequest {
            env: env.name.clone(),
            slot: slot.to_string(),
            service: None,
            deadline_ms: 0,
        };
        let _ = self.shared.proxy.drain(&drain).await;
    }

    /// Stops every instance in a slot.
    async fn stop_slot(&mut self, slot: Slot, why: &str) -> Result<()> {
        for r in self.running().await? {
            if r.instance.slot == slot {
                self.stop(&r, why).await?;
            }
        }
        Ok(())
    }
}
