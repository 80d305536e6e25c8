//! What an environment serves, and the rules by which a rollout changes it.
//!
//! An environment has two slots, blue and green. [`Routing`] says which slot
//! is *active* (takes users), which holds a *candidate* (being rolled out,
//! with a share of users) and which holds the *standby* (the previous state,
//! kept warm so rollback is one table update). Its transition methods are
//! the only way these change, and they refuse impossible moves.
//!
//! The canary judge is here too: given the figures the proxy measured for
//! the candidate since a step began, [`judge`] passes, fails, or asks for
//! more traffic. Time is passed in, never read, so a 30-second step is
//! tested in microseconds.

use serde::{Deserialize, Serialize};

use crate::config::Canary;
use crate::names::named;
use crate::release::ReleaseId;

/// One of the two copies of a release an environment can run side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// The blue slot.
    Blue,
    /// The green slot.
    Green,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }
}

named!(Slot, "slot" {
    Blue => "blue",
    Green => "green",
});

/// A release placed in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Placement {
    /// The slot.
    pub slot: Slot,
    /// The release running there.
    pub release: ReleaseId,
}

/// What an environment serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Routing {
    /// The slot users are on.
    pub active: Option<Placement>,
    /// The release being rolled out, if any.
    pub candidate: Option<Placement>,
    /// Percent of users on the candidate (0–100).
    pub weight: f64,
    /// The previous state, kept warm for rollback.
    pub standby: Option<Placement>,
    /// When the active release went live (unix ms).
    pub live_since: Option<i64>,
    /// The standby the candidate displaced from its slot: an aborted
    /// rollout puts it back, so the environment ends exactly as it was,
    /// rollback included.
    pub displaced: Option<Placement>,
}

/// A move [`Routing`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// A rollout is already under way.
    #[error("release {0} is already being rolled out")]
    CandidateExists(ReleaseId),
    /// There is no candidate to act on.
    #[error("no release is being rolled out")]
    NoCandidate,
    /// There is nothing to roll back to.
    #[error("there is no previous state to go back to")]
    NoStandby,
    /// There is nothing live.
    #[error("nothing is live")]
    NothingActive,
}

impl Routing {
    /// The slot a new release starts in: the one that is not active. If the
    /// standby sits there, starting a candidate displaces it.
    pub fn idle_slot(&self) -> Slot {
        self.active.as_ref().map_or(Slot::Blue, |a| a.slot.other())
    }

    /// Starts rolling out `release` in the idle slot at weight 0. Returns the
    /// standby it displaced (whose instances must stop), if any.
    pub fn begin(&mut self, release: ReleaseId) -> Result<Option<Placement>, RoutingError> {
        if let Some(candidate) = &self.candidate {
            return Err(RoutingError::CandidateExists(candidate.release.clone()));
        }
        let slot = self.idle_slot();
        let displaced = self.standby.take_if(|s| s.slot == slot);
        self.displaced = displaced.clone();
        self.candidate = Some(Placement { slot, release });
        self.weight = 0.0;
        Ok(displaced)
    }

    /// Moves a share of users to the candidate.
    pub fn set_weight(&mut self, weight: f64) -> Result<(), RoutingError> {
        if self.candidate.is_none() {
            return Err(RoutingError::NoCandidate);
        }
        self.weight = weight.clamp(0.0, 100.0);
        Ok(())
    }

    /// Makes the candidate active; the old active becomes the standby.
    pub fn promote(&mut self, now: i64) -> Result<(), RoutingError> {
        let candidate = self.candidate.take().ok_or(RoutingError::NoCandidate)?;
        self.standby = self.active.replace(candidate);
        self.displaced = None;
        self.weight = 0.0;
        self.live_since = Some(now);
        Ok(())
    }

    /// Drops the candidate and puts back the standby it displaced (whose
    /// instances must be started again); returns the candidate so its
    /// instances can be stopped.
    pub fn abort(&mut self) -> Result<Placement, RoutingError> {
        let candidate = self.candidate.take().ok_or(RoutingError::NoCandidate)?;
        self.weight = 0.0;
        if let Some(displaced) = self.displaced.take() {
            self.standby = Some(displaced);
        }
        Ok(candidate)
    }

    /// Swaps active and standby: the previous state serves again, and the
    /// state rolled back from stays warm in case the rollback is undone.
    pub fn rollback(&mut self, now: i64) -> Result<(), RoutingError> {
        if self.candidate.is_some() {
            return Err(RoutingError::CandidateExists(
                self.candidate
                    .as_ref()
                    .map(|c| c.release.clone())
                    .expect("checked"),
            ));
        }
        let standby = self.standby.take().ok_or(RoutingError::NoStandby)?;
        self.standby = self.active.replace(standby);
        self.live_since = Some(now);
        Ok(())
    }

    /// Every placement with its role, for building the proxy table.
    pub fn placements(&self) -> impl Iterator<Item = &Placement> {
        self.active
            .iter()
            .chain(&self.candidate)
            .chain(&self.standby)
    }

    /// The placement in a slot.
    pub fn in_slot(&self, slot: Slot) -> Option<&Placement> {
        self.placements().find(|p| p.slot == slot)
    }
}

/// What the proxy measured for the candidate over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Window {
    /// Requests whose outcome was the slot's doing: answered, failed by
    /// the backend, or abandoned by a user who waited beyond the latency
    /// limit.
    pub requests: u64,
    /// Of which failed (5xx, no answer, or abandoned beyond the limit).
    pub errors: u64,
    /// Requests their clients ended (went away, sent a body that could not
    /// be framed, gave up early): shown, never judged.
    pub client_ended: u64,
    /// errors / requests (0 when there were none).
    pub error_ratio: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

/// The verdict on a canary step.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// Too little traffic to judge: the step is extended, not passed.
    TooFewRequests {
        /// Requests seen.
        seen: u64,
        /// Requests needed.
        needed: u64,
    },
    /// The figures are within bounds.
    Pass,
    /// The figures broke a bound; each reason names figure and bound.
    Fail(Vec<String>),
}

impl Judgement {
    /// The verdict recorded for this judgement.
    pub fn verdict(&self) -> Verdict {
        match self {
            Judgement::TooFewRequests { .. } => Verdict::Extend,
            Judgement::Pass => Verdict::Pass,
            Judgement::Fail(_) => Verdict::Fail,
        }
    }
}

/// The verdict on a canary step, as recorded with its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Within bounds: the next step.
    Pass,
    /// A bound was broken: the canary is aborted.
    Fail,
    /// Too little traffic: the step is extended.
    Extend,
}

named!(Verdict, "verdict" {
    Pass => "pass",
    Fail => "fail",
    Extend => "extend",
});

/// Below this, a p99 difference between two slots is noise (ms).
pub const P99_NOISE_MS: f64 = 25.0;

/// A p99 is compared between slots only over this many requests of each:
/// the 99th percentile of fewer is the slowest one or two (a cold cache, a
/// pause), not the release (Kayenta asks for 50 data points too).
pub const P99_COMPARED_FROM: u64 = 50;

/// Whether an error ratio of `ratio` over `requests` is worse than the
/// stable slot's by more than `allowed`, beyond chance: a one-sided
/// two-proportion z-test at 95 % (z > 1.645), so a few unlucky requests of a
/// small canary do not fail it and a real regression does.
fn significantly_worse(ratio: f64, requests: u64, stable: &Window, allowed: f64) -> bool {
    let excess = ratio - stable.error_ratio - allowed;
    // Ratios of counts: a hair of float error must not fail a step.
    if excess <= 1e-9 {
        return false;
    }
    let (n1, n2) = (requests as f64, stable.requests as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return false;
    }
    let pooled = (ratio * n1 + stable.error_ratio * n2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    se == 0.0 || excess / se > 1.645
}

/// Judges a canary step from the candidate's window and, when the canary
/// compares, the stable slot's over the same window.
///
/// - Errors: the candidate fails when its error ratio is above the stable
///   slot's by more than `max_error_rate_increase`, beyond chance (a
///   regression, however loose the absolute limit), or above
///   `max_error_rate` while the stable
///   slot is within it (a problem both slots share, such as a downstream
///   outage, is not the candidate's). Without a comparison (none asked for,
///   or the stable slot had too little traffic), the absolute limit alone.
/// - Latency: likewise, with `max_p99_ms` and `max_p99_increase` (a
///   fraction of the stable slot's p99, plus [`P99_NOISE_MS`]), compared
///   only once both slots served [`P99_COMPARED_FROM`] requests.
/// - A step with fewer than `min_requests` requests is judged on the worst
///   case — as if every missing request succeeded — so a candidate that can
///   no longer pass fails at once; otherwise it is extended.
pub fn judge(canary: &Canary, candidate: &Window, stable: Option<&Window>) -> Judgement {
    let needed = canary.min_requests.max(1);
    let enough = candidate.requests >= needed;
    let stable = stable.filter(|s| canary.compare && s.requests >= needed);
    // The best error ratio the step could still end with.
    let ratio = if enough {
        candidate.error_ratio
    } else {
        candidate.errors as f64 / needed as f64
    };
    let mut reasons = Vec::new();
    let errors = format!(
        "error ratio {:.2} % ({} of {} requests)",
        candidate.error_ratio * 100.0,
        candidate.errors,
        candidate.requests
    );
    let over_limit = ratio > canary.max_error_rate;
    match stable {
        None if over_limit => reasons.push(format!(
            "{errors} is above the {:.2} % allowed",
            canary.max_error_rate * 100.0
        )),
        None => {}
        Some(s) => {
            let increase = ratio - s.error_ratio;
            let seen = candidate.requests.max(if enough { 0 } else { needed });
            if significantly_worse(ratio, seen, s, canary.max_error_rate_increase)
                || (over_limit && s.error_ratio <= canary.max_error_rate)
            {
                // Short of its requests, the step is judged on its best
                // case: every request still to come succeeding.
                let worse = if enough {
                    format!("{:.2} points worse", increase * 100.0)
                } else {
                    format!(
                        "at least {:.2} points worse even if its next {} requests succeed",
                        increase * 100.0,
                        needed - candidate.requests
                    )
                };
                reasons.push(format!(
                    "{errors} against {:.2} % on the stable slot: {worse}, where {:.2} % and {:.2} points are allowed",
                    s.error_ratio * 100.0,
                    canary.max_error_rate * 100.0,
                    canary.max_error_rate_increase * 100.0
                ));
            }
        }
    }
    let slow = candidate.requests > 0 && candidate.p99_ms > canary.max_p99_ms as f64;
    match stable {
        None if slow => reasons.push(format!(
            "p99 latency {:.0} ms is above the {} ms allowed",
            candidate.p99_ms, canary.max_p99_ms
        )),
        None => {}
        Some(s) => {
            let allowed = s.p99_ms * (1.0 + canary.max_p99_increase) + P99_NOISE_MS;
            let comparable = enough
                && candidate.requests >= P99_COMPARED_FROM
                && s.requests >= P99_COMPARED_FROM;
            let regressed = comparable && candidate.p99_ms > allowed;
            if regressed || (slow && s.p99_ms <= canary.max_p99_ms as f64) {
                reasons.push(format!(
                    "p99 latency {:.0} ms against {:.0} ms on the stable slot, where {} ms and {:.0} ms are allowed",
                    candidate.p99_ms,
                    s.p99_ms,
                    canary.max_p99_ms,
                    allowed
                ));
            }
        }
    }
    if !reasons.is_empty() {
        Judgement::Fail(reasons)
    } else if !enough {
        Judgement::TooFewRequests {
            seen: candidate.requests,
            needed,
        }
    } else {
        Judgement::Pass
    }
}

/// Whether a step begun at `started_at` has been watched long enough.
pub fn step_due(canary: &Canary, started_at: i64, now: i64) -> bool {
    now.saturating_sub(started_at) >= canary.interval.as_millis() as i64
}

/// The weight of step `step`, or `None` past the last step below 100 %
/// (the candidate is then promoted: at 100 % it simply is the release).
pub fn step_weight(canary: &Canary, step: usize) -> Option<f64> {
    canary.steps.get(step).copied().filter(|w| *w < 100.0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn release(name: &str) -> ReleaseId {
        ReleaseId::compute(name, &[])
    }

    #[test]
    fn first_release_goes_to_blue_then_slots_alternate() {
        let mut r = Routing::default();
        assert_eq!(r.begin(release("a")).unwrap(), None);
        assert_eq!(r.candidate.as_ref().unwrap().slot, Slot::Blue);
        r.promote(1).unwrap();
        r.begin(release("b")).unwrap();
        assert_eq!(r.candidate.as_ref().unwrap().slot, Slot::Green);
        r.promote(2).unwrap();
        assert_eq!(r.active.as_ref().unwrap().release, release("b"));
        assert_eq!(r.standby.as_ref().unwrap().release, release("a"));
        assert_eq!(r.live_since, Some(2));
    }

    #[test]
    fn a_new_candidate_displaces_the_standby_in_its_slot() {
        let mut r = Routing::default();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            r.begin(release(name)).unwrap();
            r.promote(i as i64).unwrap();
        }
        let displaced = r.begin(release("c")).unwrap().unwrap();
        assert_eq!(displaced.release, release("a"));
        assert!(r.standby.is_none());
        r.abort().unwrap();
        assert_eq!(
            r.standby.as_ref().unwrap().release,
            release("a"),
            "an aborted rollout restores the standby"
        );
        r.begin(release("d")).unwrap();
        r.promote(9).unwrap();
        assert!(r.displaced.is_none());
        assert_eq!(r.standby.as_ref().unwrap().release, release("b"));
    }

    #[test]
    fn abort_leaves_the_active_slot_untouched() {
        let mut r = Routing::default();
        r.begin(release("a")).unwrap();
        r.promote(1).unwrap();
        let before = r.active.clone();
        r.begin(release("b")).unwrap();
        r.set_weight(10.0).unwrap();
        let dropped = r.abort().unwrap();
        assert_eq!(dropped.release, release("b"));
        assert_eq!(r.active, before);
        assert_eq!(r.weight, 0.0);
    }

    #[test]
    fn rollback_swaps_active_and_standby() {
        let mut r = Routing::default();
        assert_eq!(r.rollback(0), Err(RoutingError::NoStandby));
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            r.begin(release(name)).unwrap();
            r.promote(i as i64).unwrap();
        }
        r.rollback(5).unwrap();
        assert_eq!(r.active.as_ref().unwrap().release, release("a"));
        assert_eq!(r.standby.as_ref().unwrap().release, release("b"));
    }

    #[test]
    fn impossible_moves_are_refused() {
        let mut r = Routing::default();
        assert_eq!(r.set_weight(10.0), Err(RoutingError::NoCandidate));
        assert_eq!(r.promote(0), Err(RoutingError::NoCandidate));
        r.begin(release("a")).unwrap();
        assert!(matches!(
            r.begin(release("b")),
            Err(RoutingError::CandidateExists(_))
        ));
    }

    fn canary() -> Canary {
        Canary {
            steps: vec![10.0, 50.0, 100.0],
            interval: Duration::from_secs(30),
            max_error_rate: 0.01,
            max_p99_ms: 500,
            min_requests: 20,
            ..Canary::default()
        }
    }

    fn window(requests: u64, errors: u64, p99_ms: f64) -> Window {
        Window {
            requests,
            errors,
            client_ended: 0,
            error_ratio: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            p50_ms: 1.0,
            p99_ms,
        }
    }

    #[test]
    fn a_problem_the_stable_slot_shares_does_not_fail_the_candidate() {
        // A downstream outage: both slots fail 30 % of requests, both slow.
        let outage = window(100, 30, 900.0);
        assert_eq!(
            judge(&canary(), &window(100, 31, 950.0), Some(&outage)),
            Judgement::Pass
        );
        // Without the comparison, the absolute limits fail it.
        assert!(matches!(
            judge(&canary(), &window(100, 31, 950.0), None),
            Judgement::Fail(_)
        ));
    }

    #[test]
    fn a_regression_under_loose_limits_fails_with_both_numbers() {
        let loose = Canary {
            max_error_rate: 0.2,
            max_p99_ms: 5_000,
            ..canary()
        };
        let stable = window(400, 0, 20.0);
        let Judgement::Fail(reasons) = judge(&loose, &window(100, 8, 200.0), Some(&stable)) else {
            panic!("a regression passed")
        };
        assert!(
            reasons[0].contains("8.00 %") && reasons[0].contains("0.00 % on the stable slot"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("200 ms against 20 ms on the stable slot"),
            "{reasons:?}"
        );
        // Within the allowed increase, it passes.
        assert_eq!(
            judge(&loose, &window(100, 0, 30.0), Some(&stable)),
            Judgement::Pass
        );
        // On too few requests a slow p99 is one slow request: not compared.
        assert_eq!(
            judge(&loose, &window(30, 0, 200.0), Some(&stable)),
            Judgement::Pass
        );
    }

    #[test]
    fn a_step_that_can_no_longer_pass_fails_before_it_has_enough_traffic() {
        // 20 needed, 1 % allowed: one error among the first 3 is already too many.
        let Judgement::Fail(reasons) = judge(&canary(), &window(3, 1, 5.0), None) else {
            panic!("should fail")
        };
        assert!(reasons[0].contains("1 of 3"), "{reasons:?}");
        // A hanging candidate: few answers, far too slow.
        assert!(matches!(
            judge(&canary(), &window(2, 0, 2_000.0), None),
            Judgement::Fail(_)
        ));
        // Few requests that all went well only extend the step.
        assert!(matches!(
            judge(&canary(), &window(3, 0, 5.0), None),
            Judgement::TooFewRequests {
                seen: 3,
                needed: 20
            }
        ));
    }

    #[test]
    fn a_few_unlucky_requests_of_a_small_canary_are_not_a_regression() {
        // 35 % against 30 %, on 40 requests: well within chance.
        let stable = window(300, 90, 20.0);
        assert_eq!(
            judge(&canary_loose(), &window(40, 14, 20.0), Some(&stable)),
            Judgement::Pass
        );
        // 60 % against 30 % is not chance.
        assert!(matches!(
            judge(&canary_loose(), &window(40, 24, 20.0), Some(&stable)),
            Judgement::Fail(_)
        ));
    }

    fn canary_loose() -> Canary {
        Canary {
            max_error_rate: 1.0,
            ..canary()
        }
    }

    #[test]
    fn a_stable_slot_with_too_little_traffic_is_not_compared_with() {
        let quiet = window(2, 0, 1.0);
        assert!(matches!(
            judge(&canary(), &window(100, 5, 20.0), Some(&quiet)),
            Judgement::Fail(r) if r[0].ends_with("is above the 1.00 % allowed")
        ));
    }

    #[test]
    fn too_little_traffic_extends_the_step() {
        let w = Window {
            requests: 5,
            ..Window::default()
        };
        assert_eq!(
            judge(&canary(), &w, None),
            Judgement::TooFewRequests {
                seen: 5,
                needed: 20
            }
        );
    }

    #[test]
    fn errors_or_latency_fail_the_step_with_figures() {
        let errors = Window {
            requests: 100,
            errors: 5,
            client_ended: 0,
            error_ratio: 0.05,
            p50_ms: 3.0,
            p99_ms: 20.0,
        };
        let Judgement::Fail(reasons) = judge(&canary(), &errors, None) else {
            panic!()
        };
        assert!(
            reasons[0].contains("5.00 %") && reasons[0].contains("5 of 100"),
            "{reasons:?}"
        );
        let slow = Window {
            requests: 100,
            errors: 0,
            client_ended: 0,
            error_ratio: 0.0,
            p50_ms: 3.0,
            p99_ms: 900.0,
        };
        assert!(
            matches!(judge(&canary(), &slow, None), Judgement::Fail(r) if r[0].contains("900 ms"))
        );
        let good = Window {
            requests: 100,
            errors: 1,
            client_ended: 0,
            error_ratio: 0.01,
            p50_ms: 3.0,
            p99_ms: 20.0,
        };
        assert_eq!(judge(&canary(), &good, None), Judgement::Pass);
    }

    #[test]
    fn steps_are_due_after_their_interval_and_end_below_100() {
        let c = canary();
        assert!(!step_due(&c, 1_000, 30_999));
        assert!(step_due(&c, 1_000, 31_000));
        assert_eq!(step_weight(&c, 0), Some(10.0));
        assert_eq!(step_weight(&c, 1), Some(50.0));
        assert_eq!(step_weight(&c, 2), None);
    }
}
