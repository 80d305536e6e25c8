//! Rollout decisions, one lifecycle step per tick: pending (the fidelity
//! gate) → building (artifacts) → starting (the idle slot) → verifying
//! (smoke, then canary steps judged on the proxy's figures) → live, or
//! failed / aborted with the reason; and, without a deployment, keeping the
//! live state running.

use hifi_core::deployment::{DeploymentState, Kind, Request};
use hifi_core::rollout::{Judgement, Window, judge, step_weight};
use hifi_core::{ReleaseId, Slot, Verdict};
use hifi_store::{Analysis, Deployment};

use super::{Action, CANDIDATE_VANISHED, Ending, JUDGE_WITHIN_MS, Planner};

/// The figures a verdict quotes: the candidate's, and the stable slot's
/// when it was compared with.
fn figures(window: &Window, stable: Option<&Window>) -> String {
    let mut text = format!(
        "{} requests, {} errors ({:.2} %), p50 {:.0} ms, p99 {:.0} ms",
        window.requests,
        window.errors,
        window.error_ratio * 100.0,
        window.p50_ms,
        window.p99_ms
    );
    if window.client_ended > 0 {
        text.push_str(&format!(
            ", {} ended by their clients (not judged)",
            window.client_ended
        ));
    }
    if let Some(s) = stable {
        text.push_str(&format!(
            "; stable slot: {} requests, {:.2} % errors, p99 {:.0} ms",
            s.requests,
            s.error_ratio * 100.0,
            s.p99_ms
        ));
    }
    text
}

/// The record of a judgement.
fn analysis(d: &Deployment, window: &Window, at: i64, verdict: Verdict) -> Analysis {
    Analysis {
        deployment: d.id,
        step: d.step,
        weight: d.weight,
        requests: window.requests as i64,
        errors: window.errors as i64,
        error_ratio: window.error_ratio,
        p50_ms: window.p50_ms,
        p99_ms: window.p99_ms,
        verdict,
        at,
    }
}

impl Planner<'_> {
    fn end(&mut self, ending: Ending, reason: impl Into<String>) {
        self.act(Action::End {
            ending,
            reason: reason.into(),
        });
    }

    /// Takes the next step of the deployment in progress.
    pub(super) fn drive(&mut self, d: &Deployment) {
        if d.request == Some(Request::Abort) {
            self.end(
                Ending::Aborted,
                format!("aborted by request while {}", d.state),
            );
            return;
        }
        match d.state {
            DeploymentState::Pending => {
                if d.strategy != Kind::Rollback
                    && let Err(refusal) = self.gate(&d.release)
                {
                    return self.end(Ending::Failed, refusal);
                }
                self.act(Action::Advance {
                    to: DeploymentState::Building,
                    message: "checking artifacts".into(),
                });
            }
            DeploymentState::Building => self.building(d),
            DeploymentState::Starting => {
                let routing = &self.o.routing;
                match routing
                    .candidate
                    .as_ref()
                    .filter(|c| c.release == d.release)
                {
                    Some(c) => self.act(Action::StartCandidate {
                        routing: routing.clone(),
                        slot: c.slot,
                    }),
                    None => self.end(Ending::Failed, CANDIDATE_VANISHED),
                }
            }
            DeploymentState::Verifying => self.verifying(d),
            _ => {}
        }
    }

    fn building(&mut self, d: &Deployment) {
        let release = &d.release;
        let mut routing = self.o.routing.clone();
        if routing
            .active
            .as_ref()
            .is_some_and(|a| a.release == *release)
        {
            let reason = format!("release {release} is already live in {}", self.o.env.name);
            return self.end(Ending::Failed, reason);
        }
        let Some(facts) = self.o.releases.get(release) else {
            return self.end(Ending::Failed, format!("release {release} is not recorded"));
        };
        // What runs must be what the id names, bit for bit: the recorded
        // recipes must hash, with the tree, to the release id.
        if !facts.intact {
            let reason = format!(
                "the stored record of release {release} does not match its id; compose it again"
            );
            return self.end(Ending::Failed, reason);
        }
        if !facts.artifacts_ready {
            return self.act(Action::BuildArtifacts);
        }
        if d.strategy == Kind::Rollback
            && let Some(standby) = routing.standby.clone().filter(|s| s.release == *release)
            && self.slot_ready(release, standby.slot, true)
        {
            let left = routing.active.as_ref().map(|a| a.slot);
            if routing.rollback(self.o.now).is_ok() {
                let message = format!(
                    "rolled back to release {release}: the warm standby in {} took all traffic in one table update",
                    standby.slot
                );
                return self.act(Action::Switch {
                    routing,
                    left,
                    message,
                });
            }
        }
        match routing.begin(release.clone()) {
            Ok(displaced) => {
                let slot = routing
                    .candidate
                    .as_ref()
                    .map_or(routing.idle_slot(), |c| c.slot);
                self.act(Action::Begin {
                    routing,
                    slot,
                    displaced,
                });
            }
            Err(e) => self.end(Ending::Failed, e.to_string()),
        }
    }

    fn verifying(&mut self, d: &Deployment) {
        let gradual = d.strategy == Kind::Canary && self.o.routing.active.is_some();
        // The smoke check runs once, before any user reaches the candidate:
        // before the switch, or before a canary's first step — whatever was
        // requested meanwhile.
        let before_users = !gradual || d.weight <= 0.0;
        if before_users
            && d.strategy != Kind::Rollback
            && self.notes.smoked != Some(d.id)
            && self.o.env.smoke.is_some()
        {
            return self.act(Action::Smoke);
        }
        if gradual {
            self.canary(d);
        } else {
            self.promote(d, "");
        }
    }

    fn canary(&mut self, d: &Deployment) {
        if d.request == Some(Request::Promote) {
            return self.promote(d, "promoted by request");
        }
        if d.paused {
            return;
        }
        let o = self.o;
        let canary = &o.env.canary;
        let now = o.now;
        let mut routing = o.routing.clone();
        let Some(candidate) = routing.candidate.clone() else {
            return self.end(Ending::Failed, CANDIDATE_VANISHED);
        };
        if !self.candidate_ready(d, &candidate.release, candidate.slot, false) {
            return;
        }
        if d.weight <= 0.0 {
            let Some(weight) = step_weight(canary, 0) else {
                return self.promote(d, "");
            };
            if let Err(refusal) = self.gate(&candidate.release) {
                return self.end(Ending::Failed, refusal);
            }
            if routing.set_weight(weight).is_err() {
                return self.end(Ending::Failed, CANDIDATE_VANISHED);
            }
            let message = format!(
                "step 1 of {}: {weight} % of users on release {}",
                canary.steps.len(),
                candidate.release
            );
            return self.act(Action::SetStep {
                routing,
                step: 0,
                weight,
                message,
            });
        }
        // Nothing to look at yet, or the figures could not be read.
        let (Some(wanted), Some(window)) = (super::window_wanted(o), o.window) else {
            return;
        };
        let started = d.step_started_at.unwrap_or(now);
        let judgement = judge(canary, &window, o.stable_window.as_ref());
        let figures = figures(&window, o.stable_window.as_ref());
        if !wanted.due {
            // Between judgements, only a step that can no longer pass ends.
            self.notes.last_peek = now;
            if let Judgement::Fail(reasons) = judgement {
                self.act(Action::RecordAnalysis(analysis(
                    d,
                    &window,
                    now,
                    Verdict::Fail,
                )));
                self.end(
                    Ending::Aborted,
                    format!(
                        "canary failed at {} %: {} ({figures})",
                        d.weight,
                        reasons.join("; ")
                    ),
                );
            }
            return;
        }
        self.act(Action::RecordAnalysis(analysis(
            d,
            &window,
            now,
            judgement.verdict(),
        )));
        match judgement {
            Judgement::TooFewRequests { seen, needed } if now - started > JUDGE_WITHIN_MS => {
                let reason = format!(
                    "step {} could not be judged: {seen} of the {needed} requests needed in {} minutes ({figures})",
                    d.step + 1,
                    JUDGE_WITHIN_MS / 60_000
                );
                self.end(Ending::Aborted, reason);
            }
            Judgement::TooFewRequests { seen, needed } if o.extensions >= canary.max_extensions => {
                let message = format!(
                    "step {} paused: {seen} of the {needed} requests needed to judge it after {} extension(s) ({figures}); send it traffic and resume it (`hifi canary {env} resume`), or decide (`hifi canary {env} promote|abort`)",
                    d.step + 1,
                    o.extensions,
                    env = o.env.name
                );
                self.act(Action::Stall { message });
            }
            Judgement::TooFewRequests { seen, needed } => {
                self.notes.next_judgement = Some((d.id, now + canary.interval.as_millis() as i64));
                let message = format!(
                    "step {} extended: {seen} of the {needed} requests needed to judge it ({figures})",
                    d.step + 1
                );
                self.act(Action::Extend { message });
            }
            Judgement::Fail(reasons) => {
                let reason = format!(
                    "canary failed at {} %: {} ({figures})",
                    d.weight,
                    reasons.join("; ")
                );
                self.end(Ending::Aborted, reason);
            }
            Judgement::Pass => {
                self.notes.next_judgement = None;
                let next = (d.step + 1) as usize;
                let note = format!("step {} passed ({figures})", d.step + 1);
                match step_weight(canary, next) {
                    Some(weight) if routing.set_weight(weight).is_ok() => {
                        let message = format!(
                            "{note}; step {} of {}: {weight} % of users",
                            next + 1,
                            canary.steps.len()
                        );
                        self.act(Action::SetStep {
                            routing,
                            step: next as i64,
                            weight,
                            message,
                        });
                    }
                    _ => self.promote(d, &note),
                }
            }
        }
    }

    /// Makes the candidate active: every user moves to it in one table
    /// update, and the old active becomes the warm standby.
    fn promote(&mut self, d: &Deployment, note: &str) {
        if d.strategy != Kind::Rollback
            && let Err(refusal) = self.gate(&d.release)
        {
            return self.end(Ending::Failed, refusal);
        }
        let mut routing = self.o.routing.clone();
        let Some(slot) = routing.candidate.as_ref().map(|c| c.slot) else {
            return self.end(Ending::Failed, CANDIDATE_VANISHED);
        };
        if !self.candidate_ready(d, &d.release, slot, true) {
            return;
        }
        let old = routing.active.clone();
        if routing.promote(self.o.now).is_err() {
            return self.end(Ending::Failed, CANDIDATE_VANISHED);
        }
        let mut message = format!("live: release {} serves all users from {slot}", d.release);
        if let Some(old) = &old {
            message.push_str(&format!(
                "; release {} stays warm in {} for rollback",
                old.release, old.slot
            ));
        }
        if !note.is_empty() {
            message = format!("{note}; {message}");
        }
        self.act(Action::Switch {
            routing,
            left: old.map(|o| o.slot),
            message,
        });
    }

    /// Whether every service of the candidate runs and takes traffic
    /// (`healthy_only`: and passed its last health probe, as a switch of all
    /// users requires). Users are never moved onto a slot with a dead
    /// service (PRIOR-ART pitfall 6): the rollout waits for crash handling
    /// to bring it back, and fails when that takes longer than an instance
    /// may take to start.
    fn candidate_ready(
        &mut self,
        d: &Deployment,
        release: &ReleaseId,
        slot: Slot,
        healthy_only: bool,
    ) -> bool {
        if self.slot_ready(release, slot, healthy_only) {
            self.notes.unready_since = None;
            return true;
        }
        let now = self.o.now;
        let since = match self.notes.unready_since {
            Some((id, since)) if id == d.id => since,
            _ => {
                self.notes.unready_since = Some((d.id, now));
                now
            }
        };
        if now - since > self.o.start_timeout_ms {
            let reason = format!(
                "a service of the candidate in {slot} has not been running for {} s",
                (now - since) / 1000
            );
            self.end(Ending::Failed, reason);
        }
        false
    }

    /// Without a deployment in progress: keep the active slot running (after
    /// `hifi down` or a reboot), serve it, then warm the standby.
    pub(super) fn maintain(&mut self) {
        let mut routing = self.o.routing.clone();
        if let Some(orphan) = routing.candidate.clone() {
            // A candidate without a deployment cannot come from hifi's own
            // transitions; drop it rather than leave half a rollout behind.
            routing.abort().ok();
            let message = format!(
                "dropped candidate {} in {} that no deployment owns",
                orphan.release, orphan.slot
            );
            self.act(Action::DropOrphan {
                routing: routing.clone(),
                message,
            });
        }
        if let Some(active) = routing.active.clone() {
            self.keep_running(active);
            // Serve the active slot before waiting on the standby.
            self.act(Action::PushTable);
        }
        if let Some(standby) = routing.standby.clone() {
            self.keep_running(standby);
        }
    }

    /// Brings a slot up if a service of it has no instance of its release
    /// (crashed ones are crash handling's), unless it failed recently.
    fn keep_running(&mut self, placement: hifi_core::rollout::Placement) {
        if let Some((at, _)) = self.notes.retry_at.get(&placement.slot)
            && self.o.now < *at
        {
            return;
        }
        if !self.o.releases.contains_key(&placement.release) {
            return;
        }
        let complete = self.every_replica(&placement.release, |r| {
            r.runs(placement.slot, &placement.release) && r.health != hifi_core::Health::Starting
        });
        if !complete {
            self.act(Action::KeepRunning { placement });
        }
    }
}
