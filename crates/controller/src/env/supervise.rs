//! Supervision: restarting crashed instances with backoff, probing health,
//! stopping what no slot needs, keeping the live state running, and
//! recording verification once the active release has soaked.

use std::time::Duration;

use hifi_core::release::Release;
use hifi_core::rollout::Placement;
use hifi_core::{Config, Environment, ReleaseId, Slot};
use hifi_runtime::{InstanceStatus, Runtime};
use hifi_store::events::Subject;

use super::{EnvReconciler, PROBE_EVERY_MS, backoff_ms};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::instances;
use crate::table::{Running, health};

impl<R: Runtime, C: Clock> EnvReconciler<R, C> {
    /// Restarts what crashed, probes health, stops what no slot needs.
    pub(super) async fn supervise(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let routing = self.store.routing(&env.name)?;
        let running = instances::load(&self.store, &env.name)?;
        let now = self.now();
        let probe = now - self.last_probe >= PROBE_EVERY_MS;
        if probe {
            self.last_probe = now;
        }
        for r in running {
            let what = r.instance.describe();
            if let Err(e) = self.supervise_one(config, env, &routing, r, probe).await {
                self.warn_once("instance", &format!("{what}: {e}"));
            }
        }
        Ok(())
    }

    async fn supervise_one(
        &mut self,
        config: &Config,
        env: &Environment,
        routing: &hifi_core::Routing,
        r: Running,
        probe: bool,
    ) -> Result<()> {
        let slot: Option<Slot> = r.instance.slot.parse().ok();
        let wanted = slot
            .and_then(|s| routing.in_slot(s))
            .is_some_and(|p| p.release.as_str() == r.instance.release);
        if !wanted {
            // A leftover of an interrupted abort or a displaced standby.
            return self
                .stop(&r, "no slot of the environment needs it any more")
                .await;
        }
        match self.shared.runtime.status(&r.instance) {
            InstanceStatus::Exited { code, signal } => {
                self.crashed(config, env, r, code, signal).await
            }
            InstanceStatus::Running if probe && r.health != health::STARTING => self.probe(r).await,
            _ => Ok(()),
        }
    }

    pub(super) async fn stop(&mut self, r: &Running, why: &str) -> Result<()> {
        let audit = self.audit();
        let grace = self.shared.options.stop_grace;
        instances::stop(&self.shared.runtime, &mut self.store, &audit, r, grace, why).await
    }

    fn record_health(&mut self, r: Running, health: &str, kind: &str, message: &str) -> Result<()> {
        let audit = self.audit();
        instances::record(
            &mut self.store,
            &audit,
            &Running {
                health: health.into(),
                ..r
            },
            kind,
            message,
        )
    }

    async fn probe(&mut self, r: Running) -> Result<()> {
        let release = self
            .store
            .release(&ReleaseId::from_stored(r.instance.release.clone()))?;
        let Some(service) = release.service(&r.instance.service) else {
            return Ok(());
        };
        let path = service.recipe.health.clone();
        let ok = matches!(
            self.shared.runtime.probe(&r.instance, &path, Duration::from_secs(2)).await,
            Ok(code) if (200..300).contains(&code)
        );
        let health = if ok {
            health::HEALTHY
        } else {
            health::UNHEALTHY
        };
        if r.health != health {
            let message = format!("{} is {health}", r.instance.describe());
            self.record_health(r, health, &format!("instance.{health}"), &message)?;
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
            let backoff = backoff_ms(r.restarts);
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
            self.record_health(r, health::EXITED, "instance.crashed", &message)?;
            self.restart_at.insert(key, now + backoff);
            return Ok(());
        }
        if self.restart_at.get(&key).is_some_and(|at| now < *at) {
            return Ok(());
        }
        let release = self
            .store
            .release(&ReleaseId::from_stored(r.instance.release.clone()))?;
        let Some(service) = release.service(&r.instance.service).cloned() else {
            return Ok(());
        };
        let slot: Slot = r.instance.slot.parse().map_err(Error::Other)?;
        // Same port as before when it is still free, so the table need not
        // change; if another program took it, a fresh one.
        let old = r.instance.addr.port();
        let port = if std::net::TcpListener::bind(("127.0.0.1", old)).is_ok() {
            old
        } else {
            self.free_port()?
        };
        let spec = match self.spec(config, env, slot, &release.id, &service, port)? {
            Ok(spec) => spec,
            Err(reason) => {
                self.restart_at
                    .insert(key, now + backoff_ms(r.restarts + 1));
                return self.unavailable(env, slot, reason);
            }
        };
        let audit = self.audit();
        let restarted = match instances::start(
            &self.shared.runtime,
            &mut self.store,
            &audit,
            &spec,
            r.restarts + 1,
        )
        .await
        {
            Ok(restarted) => restarted,
            Err(e) => {
                let message = format!("{}: restart failed: {e}", r.instance.describe());
                let restarts = r.restarts + 1;
                self.record_health(
                    Running { restarts, ..r },
                    health::EXITED,
                    "instance.crashed",
                    &message,
                )?;
                self.restart_at.insert(key, now + backoff_ms(restarts));
                return Ok(());
            }
        };
        self.restart_at.remove(&key);
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
                self.record_health(restarted, health::HEALTHY, "instance.restarted", &message)
            }
            Err(e) => {
                let message = format!("restart failed: {e}");
                let restarts = restarted.restarts;
                let _ = self
                    .shared
                    .runtime
                    .stop(&restarted.instance, self.shared.options.stop_grace)
                    .await;
                self.record_health(restarted, health::EXITED, "instance.crashed", &message)?;
                self.restart_at
                    .insert(key, self.now() + backoff_ms(restarts));
                Ok(())
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
            "slot.unavailable",
            Subject::env(&env.name),
            &message,
        )?;
        self.unavailable.insert(slot, reason);
        Ok(())
    }

    /// Without a deployment in progress: keep the active slot running (after
    /// `hifi down` or a reboot), serve it, then warm the standby; and record
    /// verification.
    pub(super) async fn maintain(&mut self, config: &Config, env: &Environment) -> Result<()> {
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
        if let Some(active) = routing.active.clone() {
            self.keep_running(config, env, &active).await?;
            // Serve the active slot before waiting on the standby.
            self.apply_table(config, env).await?;
        }
        if let Some(standby) = routing.standby.clone() {
            self.keep_running(config, env, &standby).await?;
        }
        Ok(())
    }

    /// Brings a slot up if it is down. A slot that cannot be brought up is
    /// tried again with a growing pause, so it does not hold up every tick.
    async fn keep_running(
        &mut self,
        config: &Config,
        env: &Environment,
        placement: &Placement,
    ) -> Result<()> {
        let now = self.now();
        if let Some((at, _)) = self.retry_at.get(&placement.slot)
            && now < *at
        {
            return Ok(());
        }
        match self
            .ensure_slot(config, env, placement.slot, &placement.release, false)
            .await?
        {
            Ok(()) => {
                self.unavailable.remove(&placement.slot);
                self.retry_at.remove(&placement.slot);
                Ok(())
            }
            Err(reason) => {
                let failures = self.retry_at.get(&placement.slot).map_or(0, |(_, n)| n + 1);
                let pause = backoff_ms(i64::from(failures));
                self.retry_at
                    .insert(placement.slot, (self.now() + pause, failures));
                self.unavailable(env, placement.slot, reason)
            }
        }
    }

    /// Records verification once every service of the active release has
    /// been healthy, without a break, for the environment's soak time. The
    /// clock restarts at every crash, failed probe or restart of hifi.
    pub(super) fn verify(&mut self, env: &Environment, routing: &hifi_core::Routing) -> Result<()> {
        let Some(active) = &routing.active else {
            self.healthy_since = None;
            return Ok(());
        };
        let release = self.store.release(&active.release)?;
        let running = instances::load(&self.store, &env.name)?;
        let healthy = self.slot_ready(&release, active.slot, &running, true);
        let now = self.now();
        self.healthy_since = match self.healthy_since.take() {
            Some((id, since)) if healthy && id == active.release => Some((id, since)),
            _ if healthy => Some((active.release.clone(), now)),
            _ => None,
        };
        let Some((_, since)) = &self.healthy_since else {
            return Ok(());
        };
        if self.verified.as_ref() == Some(&active.release)
            || now - since < env.soak.as_millis() as i64
        {
            return Ok(());
        }
        let audit = self.audit();
        self.store
            .record_verification(&audit, &env.name, &active.release)?;
        self.verified = Some(active.release.clone());
        Ok(())
    }

    /// Whether every service of `release` has an instance of that release in
    /// `slot` that runs and takes traffic (`healthy_only`: that passed its
    /// last health probe).
    pub(super) fn slot_ready(
        &self,
        release: &Release,
        slot: Slot,
        running: &[Running],
        healthy_only: bool,
    ) -> bool {
        release.services.iter().all(|service| {
            running.iter().any(|r| {
                r.instance.slot == slot.as_str()
                    && r.instance.release == release.id.as_str()
                    && r.instance.service == service.service
                    && if healthy_only {
                        r.health == health::HEALTHY
                    } else {
                        r.routable()
                    }
                    && self.shared.runtime.status(&r.instance).is_running()
            })
        })
    }

    /// Makes sure every service of `release` runs healthy in `slot`,
    /// adopting what already runs and rebuilding a missing artifact.
    /// `Ok(Err(reason))` when that cannot be done (the caller decides what
    /// it means). With `restart_exited`, a crashed instance is replaced now;
    /// otherwise crash handling, with its backoff, owns it.
    pub(super) async fn ensure_slot(
        &mut self,
        config: &Config,
        env: &Environment,
        slot: Slot,
        release: &ReleaseId,
        restart_exited: bool,
    ) -> Result<Result<(), String>> {
        let record = self.store.release(release)?;
        let running = instances::load(&self.store, &env.name)?;
        let mut waiting = Vec::new();
        for service in &record.services {
            let current = running.iter().find(|r| {
                r.instance.slot == slot.as_str() && r.instance.service == service.service
            });
            if let Some(r) = current {
                let same = r.instance.release == release.as_str();
                let alive = self.shared.runtime.status(&r.instance).is_running();
                if same && alive {
                    if r.health == health::STARTING {
                        waiting.push((service.clone(), r.clone()));
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
            let port = self.free_port()?;
            let spec = match self.spec(config, env, slot, release, service, port)? {
                Ok(spec) => spec,
                Err(reason) => return Ok(Err(reason)),
            };
            let audit = self.audit();
            match instances::start(&self.shared.runtime, &mut self.store, &audit, &spec, 0).await {
                Ok(started) => waiting.push((service.clone(), started)),
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        let timeout = self.shared.options.start_timeout;
        for (service, r) in waiting {
            let spec =
                match self.spec(config, env, slot, release, &service, r.instance.addr.port())? {
                    Ok(spec) => spec,
                    Err(reason) => return Ok(Err(reason)),
                };
            if let Err(e) = self
                .shared
                .runtime
                .wait_healthy(&spec, &r.instance, timeout)
                .await
            {
                return Ok(Err(e.to_string()));
            }
            let message = format!(
                "{} is healthy on {}",
                r.instance.describe(),
                r.instance.addr
            );
            self.record_health(r, health::HEALTHY, "instance.healthy", &message)?;
        }
        Ok(Ok(()))
    }

    /// Builds an artifact that is missing (it normally exists since compose;
    /// this rebuilds a deleted one from exactly the same tree).
    pub(super) fn ensure_artifact(
        &self,
        recipe: &hifi_core::Service,
        version: &str,
    ) -> Result<(), String> {
        let artifacts = self.artifacts();
        if artifacts.exists(recipe, version) {
            return Ok(());
        }
        let repo = hifi_git::Repo::open(&self.shared.options.root).map_err(|e| e.to_string())?;
        tokio::task::block_in_place(|| artifacts.ensure(&repo, recipe, version))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Stops every instance in a slot.
    pub(super) async fn stop_slot(&mut self, env: &str, slot: Slot, why: &str) -> Result<()> {
        for r in instances::load(&self.store, env)? {
            if r.instance.slot == slot.as_str() {
                self.stop(&r, why).await?;
            }
        }
        Ok(())
    }
}
