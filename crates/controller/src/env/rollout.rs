//! Deployments, one lifecycle state per tick: the fidelity gate, artifacts,
//! the idle slot, the smoke check, canary steps judged on the proxy's
//! figures, the switch in one table update, and ending a rollout that did
//! not go live.

use std::time::Duration;

use hifi_core::deployment::{DeploymentState, Kind, Request};
use hifi_core::rollout::{Judgement, Window, judge, step_due, step_weight};
use hifi_core::{Config, Environment, ReleaseId, Routing, Slot, fidelity};
use hifi_proxy::{DrainRequest, StatsQuery};
use hifi_runtime::Runtime;
use hifi_store::{Analysis, Deployment, Update};

use super::{Ending, EnvReconciler};
use crate::clock::{Clock, wall_ms};
use crate::error::{Error, Result};
use crate::{instances, table};

const CANDIDATE_VANISHED: &str = "the candidate slot vanished from the environment's routing";

/// How long a canary step may wait for enough traffic to be judged: the
/// proxy keeps 15 minutes of figures, so a longer wait could never succeed.
const JUDGE_WITHIN_MS: i64 = 14 * 60_000;

impl<R: Runtime, C: Clock> EnvReconciler<R, C> {
    /// Takes the next step of the deployment in progress.
    pub(super) async fn drive(
        &mut self,
        config: &Config,
        env: &Environment,
        d: Deployment,
    ) -> Result<()> {
        let release = ReleaseId::from_stored(d.release.clone());
        let kind: Kind = d.strategy.parse().map_err(Error::Other)?;
        let request: Option<Request> = d.request.as_deref().and_then(|r| r.parse().ok());
        if request == Some(Request::Abort) {
            let reason = format!("aborted by request while {}", d.state);
            return self.end(config, env, &d, Ending::Aborted, &reason).await;
        }
        match d.state {
            DeploymentState::Pending => {
                if kind != Kind::Rollback
                    && let Err(refusal) = self.gate(env, &release)
                {
                    return self.end(config, env, &d, Ending::Failed, &refusal).await;
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
            DeploymentState::Building => self.building(config, env, &d, kind, &release).await?,
            DeploymentState::Starting => self.starting(config, env, &d, &release).await?,
            DeploymentState::Verifying => {
                let routing = self.store.routing(&env.name)?;
                let gradual = kind == Kind::Canary && routing.active.is_some();
                // The smoke check runs once, before any user reaches the
                // candidate: before the switch, or before a canary's first
                // step — whatever was requested meanwhile.
                let before_users = !gradual || d.weight <= 0.0;
                if before_users
                    && kind != Kind::Rollback
                    && self.smoked != Some(d.id)
                    && env.smoke.is_some()
                {
                    if let Err(reason) = self.smoke(config, env).await {
                        return self.end(config, env, &d, Ending::Failed, &reason).await;
                    }
                    self.smoked = Some(d.id);
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
                    self.canary(config, env, &d, request).await?;
                } else {
                    self.promote(config, env, &d, kind, "").await?;
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
        kind: Kind,
        release: &ReleaseId,
    ) -> Result<()> {
        let mut routing = self.store.routing(&env.name)?;
        if routing
            .active
            .as_ref()
            .is_some_and(|a| a.release == *release)
        {
            let reason = format!("release {release} is already live in {}", env.name);
            return self.end(config, env, d, Ending::Failed, &reason).await;
        }
        let record = self.store.release(release)?;
        // What runs must be what the id names, bit for bit: the recorded
        // recipes must hash, with the tree, to the release id.
        if record.recomputed_id() != *release {
            let reason = format!(
                "the stored record of release {release} does not match its id; compose it again"
            );
            return self.end(config, env, d, Ending::Failed, &reason).await;
        }
        for service in &record.services {
            if let Err(reason) = self.ensure_artifact(&service.recipe, &service.version) {
                return self.end(config, env, d, Ending::Failed, &reason).await;
            }
        }
        if kind == Kind::Rollback
            && let Some(standby) = routing.standby.clone().filter(|s| s.release == *release)
        {
            let running = instances::load(&self.store, &env.name)?;
            if self.slot_ready(&record, standby.slot, &running, true) {
                let old = routing.active.as_ref().map(|a| a.slot);
                routing
                    .rollback(self.now())
                    .map_err(|e| Error::Other(e.to_string()))?;
                let message = format!(
                    "rolled back to release {release}: the warm standby in {} took all traffic in one table update",
                    standby.slot
                );
                return self.switch(config, env, d, &routing, old, &message).await;
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
        let slot = routing
            .candidate
            .as_ref()
            .map(|c| c.slot)
            .expect("just begun");
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
            // The previous release may still be draining from its switch.
            self.await_drained(env, displaced.slot).await;
            let why = format!("its slot is needed for release {release}");
            self.stop_slot(&env.name, displaced.slot, &why).await?;
        }
        Ok(())
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
                .end(config, env, d, Ending::Failed, CANDIDATE_VANISHED)
                .await;
        };
        if let Err(reason) = self.ensure_slot(config, env, slot, release, true).await? {
            return self.end(config, env, d, Ending::Failed, &reason).await;
        }
        // The candidate enters the table at weight 0: only the smoke check
        // and testers reach it.
        if let Err(reason) = self.push(config, env, &routing).await {
            return self.end(config, env, d, Ending::Failed, &reason).await;
        }
        let message = format!(
            "all {} service(s) healthy in {slot}",
            self.store.release(release)?.services.len()
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
        )?;
        Ok(())
    }

    async fn canary(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        request: Option<Request>,
    ) -> Result<()> {
        if request == Some(Request::Promote) {
            return self
                .promote(config, env, d, Kind::Canary, "promoted by request")
                .await;
        }
        if d.paused {
            return Ok(());
        }
        let canary = &env.canary;
        let now = self.now();
        let mut routing = self.store.routing(&env.name)?;
        let Some(candidate) = routing.candidate.clone() else {
            return self
                .end(config, env, d, Ending::Failed, CANDIDATE_VANISHED)
                .await;
        };
        if !self
            .candidate_ready(config, env, d, &candidate.release, candidate.slot, false)
            .await?
        {
            return Ok(());
        }
        if d.weight <= 0.0 {
            let Some(weight) = step_weight(canary, 0) else {
                return self.promote(config, env, d, Kind::Canary, "").await;
            };
            if let Err(refusal) = self.gate(env, &candidate.release) {
                return self.end(config, env, d, Ending::Failed, &refusal).await;
            }
            routing
                .set_weight(weight)
                .map_err(|e| Error::Other(e.to_string()))?;
            let message = format!(
                "step 1 of {}: {weight} % of users on release {}",
                canary.steps.len(),
                candidate.release
            );
            return self
                .step(config, env, d, &routing, 0, weight, &message)
                .await;
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
            Judgement::TooFewRequests { seen, needed } if now - started > JUDGE_WITHIN_MS => {
                let reason = format!(
                    "step {} could not be judged: {seen} of the {needed} requests needed in {} minutes ({figures})",
                    d.step + 1,
                    JUDGE_WITHIN_MS / 60_000
                );
                self.end(config, env, d, Ending::Aborted, &reason).await
            }
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
                Ok(())
            }
            Judgement::Fail(reasons) => {
                let reason = format!(
                    "canary failed at {} %: {} ({figures})",
                    d.weight,
                    reasons.join("; ")
                );
                self.end(config, env, d, Ending::Aborted, &reason).await
            }
            Judgement::Pass => {
                self.next_judgement = None;
                let next = (d.step + 1) as usize;
                let note = format!("step {} passed ({figures})", d.step + 1);
                match step_weight(canary, next) {
                    Some(weight) => {
                        routing
                            .set_weight(weight)
                            .map_err(|e| Error::Other(e.to_string()))?;
                        let message = format!(
                            "{note}; step {} of {}: {weight} % of users",
                            next + 1,
                            canary.steps.len()
                        );
                        self.step(config, env, d, &routing, next as i64, weight, &message)
                            .await
                    }
                    None => self.promote(config, env, d, Kind::Canary, &note).await,
                }
            }
        }
    }

    /// Moves a canary to step `step` at `weight` (pushed, then recorded).
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        routing: &Routing,
        step: i64,
        weight: f64,
        message: &str,
    ) -> Result<()> {
        if let Err(reason) = self.push(config, env, routing).await {
            return self.end(config, env, d, Ending::Failed, &reason).await;
        }
        let now = self.now();
        self.update(
            d.id,
            Update {
                step: Some(step),
                weight: Some(weight),
                step_started_at: Some(now),
                routing: Some(routing),
                kind: Some("canary.step"),
                message,
                ..Update::default()
            },
        )?;
        Ok(())
    }

    /// Whether every service of the candidate runs and takes traffic
    /// (`healthy_only`: and passed its last health probe, as a switch of all
    /// users requires). Users are never moved onto a slot with a dead
    /// service (PRIOR-ART pitfall 6): the rollout waits for crash handling
    /// to bring it back, and fails when that takes longer than an instance
    /// may take to start.
    async fn candidate_ready(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        release: &ReleaseId,
        slot: Slot,
        healthy_only: bool,
    ) -> Result<bool> {
        let record = self.store.release(release)?;
        let running = instances::load(&self.store, &env.name)?;
        if self.slot_ready(&record, slot, &running, healthy_only) {
            self.unready_since = None;
            return Ok(true);
        }
        let now = self.now();
        let since = match self.unready_since {
            Some((id, since)) if id == d.id => since,
            _ => {
                self.unready_since = Some((d.id, now));
                now
            }
        };
        if now - since > self.shared.options.start_timeout.as_millis() as i64 {
            let reason = format!(
                "a service of the candidate in {slot} has not been running for {} s",
                (now - since) / 1000
            );
            self.end(config, env, d, Ending::Failed, &reason).await?;
        }
        Ok(false)
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
        let ports = self.ports(config).map_err(|e| e.to_string())?;
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

    /// Makes the candidate active: every user moves to it in one table
    /// update, and the old active becomes the warm standby.
    async fn promote(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        kind: Kind,
        note: &str,
    ) -> Result<()> {
        let release = ReleaseId::from_stored(d.release.clone());
        if kind != Kind::Rollback
            && let Err(refusal) = self.gate(env, &release)
        {
            return self.end(config, env, d, Ending::Failed, &refusal).await;
        }
        let mut routing = self.store.routing(&env.name)?;
        let Some(slot) = routing.candidate.as_ref().map(|c| c.slot) else {
            return self
                .end(config, env, d, Ending::Failed, CANDIDATE_VANISHED)
                .await;
        };
        if !self
            .candidate_ready(config, env, d, &release, slot, true)
            .await?
        {
            return Ok(());
        }
        let old = routing.active.clone();
        routing
            .promote(self.now())
            .map_err(|e| Error::Other(e.to_string()))?;
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
        self.switch(config, env, d, &routing, old.map(|o| o.slot), &message)
            .await
    }

    /// Puts `routing` live: pushed to the proxy, recorded with the
    /// deployment going live, then the slot users left is drained — it keeps
    /// running as the standby; only long-lived connections (WebSockets,
    /// streams) are closed at the drain deadline.
    async fn switch(
        &mut self,
        config: &Config,
        env: &Environment,
        d: &Deployment,
        routing: &Routing,
        left: Option<Slot>,
        message: &str,
    ) -> Result<()> {
        if let Err(reason) = self.push(config, env, routing).await {
            return self.end(config, env, d, Ending::Failed, &reason).await;
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
        self.verified = None;
        self.healthy_since = None;
        if let Some(left) = left {
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

    /// Ends a deployment that did not go live: the candidate leaves the
    /// table first, its in-flight requests finish, then it stops. The
    /// active slot is never touched; a standby the candidate displaced is
    /// put back (and started again by supervision).
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
        let state = match ending {
            Ending::Failed => DeploymentState::Failed,
            Ending::Aborted => DeploymentState::Aborted,
        };
        tracing::warn!("{} deployment #{} {state}: {reason}", env.name, d.id);
        self.update(
            d.id,
            Update {
                state: Some(state),
                weight: Some(0.0),
                reason: Some(reason),
                request: Some(None),
                routing: candidate.as_ref().map(|_| &routing),
                message: reason,
                ..Update::default()
            },
        )?;
        self.apply_table(config, env).await?;
        if let Some(candidate) = candidate {
            let why = format!("deployment #{} {state}", d.id);
            for r in instances::load(&self.store, &env.name)? {
                if r.instance.slot == candidate.slot.as_str()
                    && r.instance.release == candidate.release.as_str()
                {
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
        while tokio::time::Instant::now() < deadline {
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
