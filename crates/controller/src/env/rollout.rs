//! Deployments, one lifecycle state per tick: the fidelity gate, artifacts,
//! the idle slot, smoke check, canary steps judged on the proxy's figures,
//! promotion in one table update, and ending a rollout that did not go live.

use super::*;

impl<R: Runtime, C: Clock> EnvReconciler<R, C> {
    pub(super) async fn drive(
        &mut self,
        config: &Config,
        env: &Environment,
        d: Deployment,
    ) -> Result<()> {
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

    pub(super) async fn building(
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

    pub(super) async fn starting(
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

    pub(super) async fn canary(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
    ) -> Result<()> {
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

    pub(super) fn gate(&self, env: &Environment, release: &ReleaseId) -> Result<(), String> {
        let facts = self
            .store
            .facts(release, &env.name)
            .map_err(|e| e.to_string())?;
        fidelity::check(env, release, &facts).map_err(|r| r.to_string())
    }

    pub(super) async fn smoke(&mut self, config: &Config, env: &Environment) -> Result<(), String> {
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

    pub(super) async fn promote(
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
    pub(super) async fn end(
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
    pub(super) async fn await_drained(&mut self, env: &Environment, slot: Slot) {
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
}
