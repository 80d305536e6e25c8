//! Supervision: restarting crashed instances with backoff, probing health,
//! stopping what no slot needs, keeping the live state running, and
//! recording verification once the active release has soaked.

use super::*;

impl<R: Runtime, C: Clock> EnvReconciler<R, C> {
    pub(super) async fn supervise(&mut self, config: &Config, env: &Environment) -> Result<()> {
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

    pub(super) async fn probe(&mut self, config: &Config, r: Running) -> Result<()> {
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

    pub(super) async fn crashed(
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

    /// Without a deployment in progress: keep the active and standby slots
    /// running (after `hifi down` or a reboot), and record verification.
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

    pub(super) fn verify(&mut self, env: &Environment, routing: &Routing) -> Result<()> {
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
    pub(super) async fn ensure_slot(
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

    pub(super) async fn stop_slot(&mut self, env: &str, slot: Slot) -> Result<()> {
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

    pub(super) async fn slot_routable(
        &mut self,
        env: &Environment,
        slot: Option<Slot>,
    ) -> Result<bool> {
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
}
