//! Every decision of the rollout engine, without a process, a socket or a
//! clock: blue-green, canary steps and their judgement, abort, rollback,
//! crash handling, resuming after a controller restart, keeping the live
//! state up, and soak.

use std::collections::HashMap;
use std::time::Duration;

use hifi_core::deployment::{DeploymentState, Kind, Request};
use hifi_core::fidelity::Facts;
use hifi_core::rollout::{Placement, Window};
use hifi_core::{Config, Health, ReleaseId, Routing, RuntimeKind, Slot, Verdict};
use hifi_runtime::{Instance, InstanceId, InstanceStatus};
use hifi_store::Deployment;
use hifi_testkit::{Env, Service};

use super::*;

const NOW: i64 = 1_000_000;
const INTERVAL: i64 = 30_000;
const SERVICES: [&str; 2] = ["web", "api"];

/// Two services (`web` at `/`, `api` at `/api`), a blue-green `dev` that
/// soaks 30 s and a canary `prod` promoted from it; with `smoke`, both
/// environments run a smoke check.
fn config(smoke: bool) -> Config {
    let service = |name: &str, route: &str| Service::new(name).path(name).run("x").route(route);
    let smoke = |env: Env| if smoke { env.smoke("true") } else { env };
    let text = hifi_testkit::Config::new("shop")
        .service(service("web", "/"))
        .service(service("api", "/api"))
        .environment(smoke(Env::cards("dev", 8100, "In Dev").soak("30s")))
        .environment(
            smoke(Env::promote("prod", 8500, "dev").strategy("canary")).canary(
                "steps = [10, 50, 100]\ninterval = \"30s\"\n\
                 min_requests = 20\nmax_error_rate = 0.05\nmax_p99_ms = 500",
            ),
        )
        .render();
    Config::parse(&text).unwrap()
}

fn release(name: &str) -> ReleaseId {
    ReleaseId::compute(name, &[])
}

fn place(slot: Slot, name: &str) -> Placement {
    Placement {
        slot,
        release: release(name),
    }
}

/// A release composed for dev and verified there.
fn facts() -> ReleaseFacts {
    ReleaseFacts {
        services: SERVICES.iter().map(|s| (s.to_string(), 1)).collect(),
        intact: true,
        artifacts_ready: true,
        gate: Facts {
            composed_for: vec!["dev".into()],
            verified_in: vec!["dev".into()],
            approvers: vec![],
            rejected: None,
            promoter: None,
        },
    }
}

fn deployment(name: &str, kind: Kind, state: DeploymentState) -> Deployment {
    Deployment {
        id: 7,
        env: "dev".into(),
        release: release(name),
        strategy: kind,
        state,
        slot: None,
        created_at: 0,
        updated_at: 0,
        actor: "ann".into(),
        step: 0,
        step_started_at: None,
        weight: 0.0,
        paused: false,
        request: None,
        reason: None,
    }
}

fn running(slot: Slot, name: &str, service: &str, health: Health) -> Running {
    Running {
        instance: Instance {
            id: InstanceId::new(format!("test:{slot}:{service}")),
            addr: ([127, 0, 0, 1], 9000).into(),
            env: "dev".into(),
            slot,
            service: service.into(),
            replica: 0,
            release: release(name),
            runtime: RuntimeKind::Local,
        },
        health,
        restarts: 0,
        changed_at: NOW - 100,
        status: if health == Health::Exited {
            InstanceStatus::Exited {
                code: Some(1),
                signal: None,
            }
        } else {
            InstanceStatus::Running
        },
    }
}

/// Every service of `name` in `slot`, all with `health`.
fn slot_of(slot: Slot, name: &str, health: Health) -> Vec<Running> {
    SERVICES
        .iter()
        .map(|s| running(slot, name, s, health))
        .collect()
}

struct Case {
    o: Observed,
}

impl Case {
    fn new(env: &str) -> Case {
        Case::with_config(env, config(false))
    }

    fn with_config(env: &str, config: Config) -> Case {
        let env = config.environment(env).unwrap().clone();
        Case {
            o: Observed {
                now: NOW,
                env,
                start_timeout_ms: 15_000,
                routing: Routing::default(),
                deployment: None,
                releases: ["a", "b", "c"]
                    .into_iter()
                    .map(|n| (release(n), facts()))
                    .collect(),
                instances: Vec::new(),
                window: None,
                stable_window: None,
                extensions: 0,
                notes: Notes {
                    last_probe: NOW,
                    last_peek: NOW,
                    ..Notes::default()
                },
            },
        }
    }

    /// `a` live in blue, healthy.
    fn live(mut self) -> Case {
        self.o.routing.active = Some(place(Slot::Blue, "a"));
        self.o.routing.live_since = Some(0);
        self.o
            .instances
            .extend(slot_of(Slot::Blue, "a", Health::Healthy));
        self
    }

    fn deploying(mut self, d: Deployment) -> Case {
        self.o.env.name = d.env.clone();
        self.o.deployment = Some(d);
        self
    }

    /// A canary of `b` in green at `weight`, its step begun `age` ms ago.
    fn canary_at(self, step: i64, weight: f64, age: i64) -> Case {
        let mut d = deployment("b", Kind::Canary, DeploymentState::Verifying);
        d.env = "prod".into();
        d.step = step;
        d.weight = weight;
        d.step_started_at = Some(NOW - age);
        let mut case = self.deploying(d);
        case.o.routing.candidate = Some(place(Slot::Green, "b"));
        case.o.routing.weight = weight;
        case.o
            .instances
            .extend(slot_of(Slot::Green, "b", Health::Healthy));
        case
    }

    fn plan(&self) -> Plan {
        plan(&self.o)
    }

    fn actions(&self) -> Vec<Action> {
        self.plan().actions
    }

    /// The only rollout action (supervision and soak left aside).
    fn rollout(&self) -> Action {
        let actions: Vec<Action> = self
            .actions()
            .into_iter()
            .filter(|a| !a.is_supervision() && !matches!(a, Action::RecordVerified { .. }))
            .collect();
        assert_eq!(actions.len(), 1, "one rollout action expected: {actions:?}");
        actions.into_iter().next().unwrap()
    }
}

fn canary_case() -> Case {
    Case::new("prod").live()
}

fn window(requests: u64, errors: u64, p99: f64) -> Window {
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
        p99_ms: p99,
    }
}

fn ended(action: &Action) -> (Ending, &str) {
    match action {
        Action::End { ending, reason } => (*ending, reason),
        other => panic!("expected the deployment to end: {other:?}"),
    }
}

// ----------------------------------------------------------- blue-green

#[test]
fn a_pending_deployment_passes_the_gate_then_builds() {
    let case =
        Case::new("dev").deploying(deployment("a", Kind::BlueGreen, DeploymentState::Pending));
    assert_eq!(
        case.rollout(),
        Action::Advance {
            to: DeploymentState::Building,
            message: "checking artifacts".into()
        }
    );
}

#[test]
fn a_pending_deployment_the_gate_refuses_fails_naming_the_gate() {
    let mut d = deployment("a", Kind::Canary, DeploymentState::Pending);
    d.env = "prod".into();
    let mut case = Case::new("prod").deploying(d);
    case.o
        .releases
        .get_mut(&release("a"))
        .unwrap()
        .gate
        .verified_in
        .clear();
    let action = case.rollout();
    let (ending, reason) = ended(&action);
    assert_eq!(ending, Ending::Failed);
    assert!(reason.contains("not verified in dev"), "{reason}");

    // A rollback goes back to what was live: no gate.
    let mut back = case;
    back.o.deployment.as_mut().unwrap().strategy = Kind::Rollback;
    assert!(matches!(back.rollout(), Action::Advance { .. }));
}

#[test]
fn building_builds_missing_artifacts_first() {
    let mut case =
        Case::new("dev").deploying(deployment("a", Kind::BlueGreen, DeploymentState::Building));
    case.o
        .releases
        .get_mut(&release("a"))
        .unwrap()
        .artifacts_ready = false;
    assert_eq!(case.rollout(), Action::BuildArtifacts);
}

#[test]
fn building_refuses_a_release_already_live_or_tampered_with() {
    let case = Case::new("dev").live().deploying(deployment(
        "a",
        Kind::BlueGreen,
        DeploymentState::Building,
    ));
    assert!(ended(&case.rollout()).1.contains("is already live in dev"));

    let mut case =
        Case::new("dev").deploying(deployment("b", Kind::BlueGreen, DeploymentState::Building));
    case.o.releases.get_mut(&release("b")).unwrap().intact = false;
    assert!(ended(&case.rollout()).1.contains("does not match its id"));
}

#[test]
fn the_first_release_starts_in_blue_and_the_next_displaces_the_standby() {
    let first =
        Case::new("dev").deploying(deployment("a", Kind::BlueGreen, DeploymentState::Building));
    match first.rollout() {
        Action::Begin {
            routing,
            slot,
            displaced,
        } => {
            assert_eq!((slot, displaced), (Slot::Blue, None));
            assert_eq!(routing.candidate, Some(place(Slot::Blue, "a")));
            assert_eq!(routing.weight, 0.0);
        }
        other => panic!("{other:?}"),
    }

    let mut next = Case::new("dev").live().deploying(deployment(
        "c",
        Kind::BlueGreen,
        DeploymentState::Building,
    ));
    next.o.routing.standby = Some(place(Slot::Green, "b"));
    match next.rollout() {
        Action::Begin {
            routing,
            slot,
            displaced,
        } => {
            assert_eq!(slot, Slot::Green);
            assert_eq!(displaced, Some(place(Slot::Green, "b")));
            assert_eq!(routing.displaced, Some(place(Slot::Green, "b")));
            assert_eq!(routing.active, Some(place(Slot::Blue, "a")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_starting_deployment_starts_its_candidate_unless_it_vanished() {
    let mut case = Case::new("dev").live().deploying(deployment(
        "b",
        Kind::BlueGreen,
        DeploymentState::Starting,
    ));
    assert!(ended(&case.rollout()).1.contains("vanished"));
    case.o.routing.candidate = Some(place(Slot::Green, "b"));
    assert_eq!(
        case.rollout(),
        Action::StartCandidate {
            routing: case.o.routing.clone(),
            slot: Slot::Green
        }
    );
}

#[test]
fn blue_green_smokes_once_then_switches_every_user_when_all_are_healthy() {
    let mut case = Case::with_config("dev", config(true))
        .live()
        .deploying(deployment("b", Kind::BlueGreen, DeploymentState::Verifying));
    case.o.routing.candidate = Some(place(Slot::Green, "b"));
    case.o
        .instances
        .extend(slot_of(Slot::Green, "b", Health::Healthy));
    assert_eq!(case.rollout(), Action::Smoke);

    case.o.notes.smoked = Some(7);
    match case.rollout() {
        Action::Switch {
            routing,
            left,
            message,
        } => {
            assert_eq!(left, Some(Slot::Blue));
            assert_eq!(routing.active, Some(place(Slot::Green, "b")));
            assert_eq!(routing.standby, Some(place(Slot::Blue, "a")));
            assert_eq!(routing.live_since, Some(NOW));
            assert_eq!(
                message,
                format!(
                    "live: release {} serves all users from green; release {} stays warm in blue for rollback",
                    release("b"),
                    release("a")
                )
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_user_is_switched_to_a_slot_with_an_unhealthy_service_and_the_wait_is_bounded() {
    let mut case = Case::new("dev").live().deploying(deployment(
        "b",
        Kind::BlueGreen,
        DeploymentState::Verifying,
    ));
    case.o.routing.candidate = Some(place(Slot::Green, "b"));
    case.o
        .instances
        .push(running(Slot::Green, "b", "web", Health::Healthy));
    case.o
        .instances
        .push(running(Slot::Green, "b", "api", Health::Unhealthy));
    let plan = case.plan();
    assert!(
        plan.actions
            .iter()
            .all(|a| !matches!(a, Action::Switch { .. })),
        "{:?}",
        plan.actions
    );
    assert_eq!(plan.notes.unready_since, Some((7, NOW)));

    case.o.notes.unready_since = Some((7, NOW - 15_001));
    let action = case.rollout();
    let (ending, reason) = ended(&action);
    assert_eq!(ending, Ending::Failed);
    assert!(reason.contains("has not been running for 15 s"), "{reason}");
}

// ----------------------------------------------------------------- canary

#[test]
fn a_canary_takes_its_first_step_once_the_candidate_runs() {
    let case = canary_case().canary_at(0, 0.0, 0);
    match case.rollout() {
        Action::SetStep {
            routing,
            step,
            weight,
            message,
        } => {
            assert_eq!((step, weight, routing.weight), (0, 10.0, 10.0));
            assert_eq!(
                message,
                format!("step 1 of 3: 10 % of users on release {}", release("b"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_step_is_judged_only_once_its_interval_has_passed() {
    let early = canary_case().canary_at(0, 10.0, INTERVAL - 1);
    assert_eq!(window_wanted(&early.o), None);
    assert!(early.actions().is_empty(), "{:?}", early.actions());

    let due = canary_case().canary_at(0, 10.0, INTERVAL);
    assert_eq!(
        window_wanted(&due.o),
        Some(WindowWanted {
            slot: Slot::Green,
            stable: Slot::Blue,
            age_ms: INTERVAL,
            due: true,
        })
    );
    // Figures that could not be read: nothing is decided.
    assert!(due.actions().is_empty());
}

#[test]
fn a_passing_step_is_recorded_and_the_next_one_begins() {
    let mut case = canary_case().canary_at(0, 10.0, INTERVAL);
    case.o.window = Some(window(40, 0, 20.0));
    let actions = case.actions();
    match &actions[..] {
        [
            Action::RecordAnalysis(analysis),
            Action::SetStep {
                step,
                weight,
                message,
                ..
            },
        ] => {
            assert_eq!((analysis.verdict, analysis.requests), (Verdict::Pass, 40));
            assert_eq!((*step, *weight), (1, 50.0));
            assert!(
                message.starts_with("step 1 passed (40 requests"),
                "{message}"
            );
            assert!(message.ends_with("step 2 of 3: 50 % of users"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_last_step_passing_makes_the_candidate_live() {
    let mut case = canary_case().canary_at(1, 50.0, INTERVAL);
    case.o.window = Some(window(40, 0, 20.0));
    match case.actions().last() {
        Some(Action::Switch {
            routing, message, ..
        }) => {
            assert_eq!(routing.active, Some(place(Slot::Green, "b")));
            assert!(message.starts_with("step 2 passed"), "{message}");
            assert!(message.contains("; live: release"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_little_traffic_extends_the_step_and_waits_an_interval_to_judge_again() {
    let mut case = canary_case().canary_at(0, 10.0, INTERVAL);
    case.o.window = Some(window(3, 0, 5.0));
    let plan = case.plan();
    match &plan.actions[..] {
        [Action::RecordAnalysis(a), Action::Extend { message }] => {
            assert_eq!(a.verdict, Verdict::Extend);
            assert!(message.contains("3 of the 20 requests needed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(plan.notes.next_judgement, Some((7, NOW + INTERVAL)));

    case.o.notes = plan.notes;
    case.o.now = NOW + INTERVAL - 1;
    assert!(
        window_wanted(&case.o).is_none_or(|w| !w.due),
        "judged again too soon"
    );
    case.o.now = NOW + INTERVAL;
    assert!(window_wanted(&case.o).is_some_and(|w| w.due));
}

#[test]
fn a_step_that_can_never_be_judged_is_aborted() {
    let mut case = canary_case().canary_at(0, 10.0, JUDGE_WITHIN_MS + 1);
    case.o.window = Some(window(3, 0, 5.0));
    let actions = case.actions();
    let (ending, reason) = ended(actions.last().unwrap());
    assert_eq!(ending, Ending::Aborted);
    assert!(reason.contains("could not be judged"), "{reason}");
}

#[test]
fn errors_or_latency_beyond_the_limits_abort_the_canary_with_its_figures() {
    let mut case = canary_case().canary_at(0, 10.0, INTERVAL);
    case.o.window = Some(window(40, 40, 5.0));
    let actions = case.actions();
    assert!(matches!(&actions[0], Action::RecordAnalysis(a) if a.verdict == Verdict::Fail));
    let (ending, reason) = ended(&actions[1]);
    assert_eq!(ending, Ending::Aborted);
    assert!(
        reason.starts_with("canary failed at 10 %: error ratio 100.00 % (40 of 40 requests)"),
        "{reason}"
    );

    case.o.window = Some(window(40, 0, 900.0));
    let actions = case.actions();
    assert!(ended(&actions[1]).1.contains("p99 latency 900 ms"));
}

#[test]
fn between_judgements_a_step_that_can_no_longer_pass_is_aborted_at_once() {
    let mut case = canary_case().canary_at(0, 10.0, 2_000);
    case.o.notes.last_peek = NOW - PEEK_EVERY_MS;
    let wanted = window_wanted(&case.o).expect("a look between judgements");
    assert!(!wanted.due);
    // All is well so far: nothing is decided, and the look is noted.
    case.o.window = Some(window(3, 0, 5.0));
    let plan = case.plan();
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.notes.last_peek, NOW);
    // Two errors among 20 needed: 10 %, beyond the 5 % allowed whatever follows.
    case.o.window = Some(window(4, 2, 5.0));
    let actions = case.actions();
    assert!(matches!(&actions[0], Action::RecordAnalysis(a) if a.verdict == Verdict::Fail));
    let (ending, reason) = ended(&actions[1]);
    assert_eq!(ending, Ending::Aborted);
    assert!(reason.contains("2 of 4 requests"), "{reason}");
}

#[test]
fn a_step_starved_of_traffic_pauses_after_its_extensions_and_says_so() {
    let mut case = canary_case().canary_at(0, 10.0, INTERVAL * 4);
    case.o.window = Some(window(3, 0, 5.0));
    case.o.extensions = 2;
    assert!(matches!(case.actions().last(), Some(Action::Extend { .. })));
    case.o.extensions = 3;
    match case.actions().last() {
        Some(Action::Stall { message }) => {
            assert!(message.contains("step 1 paused"), "{message}");
            assert!(message.contains("after 3 extension(s)"), "{message}");
            assert!(message.contains("hifi canary prod resume"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failure_the_stable_slot_shares_is_not_the_candidates() {
    let mut case = canary_case().canary_at(0, 10.0, INTERVAL);
    // A downstream outage: both slots fail a third of their requests.
    case.o.window = Some(window(40, 13, 20.0));
    case.o.stable_window = Some(window(400, 130, 20.0));
    let actions = case.actions();
    assert!(
        matches!(&actions[..], [Action::RecordAnalysis(a), Action::SetStep { .. }] if a.verdict == Verdict::Pass),
        "{actions:?}"
    );
    // The same candidate beside a healthy stable slot fails, quoting both.
    case.o.stable_window = Some(window(400, 0, 20.0));
    let actions = case.actions();
    let (_, reason) = ended(&actions[1]);
    assert!(reason.contains("on the stable slot"), "{reason}");
    assert!(reason.contains("stable slot: 400 requests"), "{reason}");
}

#[test]
fn a_paused_canary_holds_and_a_promoted_one_goes_live_at_once() {
    let mut case = canary_case().canary_at(0, 10.0, INTERVAL * 10);
    case.o.deployment.as_mut().unwrap().paused = true;
    assert_eq!(window_wanted(&case.o), None);
    assert!(case.actions().is_empty());

    let d = case.o.deployment.as_mut().unwrap();
    d.paused = false;
    d.request = Some(Request::Promote);
    match case.rollout() {
        Action::Switch { message, .. } => {
            assert!(
                message.starts_with("promoted by request; live:"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_abort_request_ends_the_deployment_whatever_its_state() {
    for state in [
        DeploymentState::Pending,
        DeploymentState::Building,
        DeploymentState::Starting,
        DeploymentState::Verifying,
    ] {
        let mut case = canary_case().canary_at(0, 10.0, 0);
        let d = case.o.deployment.as_mut().unwrap();
        d.state = state;
        d.request = Some(Request::Abort);
        assert_eq!(
            case.rollout(),
            Action::End {
                ending: Ending::Aborted,
                reason: format!("aborted by request while {state}")
            }
        );
    }
}

#[test]
fn the_candidate_is_gated_again_before_users_reach_it() {
    let mut case = canary_case().canary_at(0, 0.0, 0);
    case.o
        .releases
        .get_mut(&release("b"))
        .unwrap()
        .gate
        .verified_in
        .clear();
    let action = case.rollout();
    let (ending, reason) = ended(&action);
    assert_eq!(ending, Ending::Failed);
    assert!(reason.contains("not verified"), "{reason}");
}

// --------------------------------------------------------------- rollback

#[test]
fn a_rollback_to_a_warm_standby_is_one_switch() {
    let mut case = Case::new("dev").live().deploying(deployment(
        "b",
        Kind::Rollback,
        DeploymentState::Building,
    ));
    case.o.routing.standby = Some(place(Slot::Green, "b"));
    case.o
        .instances
        .extend(slot_of(Slot::Green, "b", Health::Healthy));
    match case.rollout() {
        Action::Switch {
            routing,
            left,
            message,
        } => {
            assert_eq!(routing.active, Some(place(Slot::Green, "b")));
            assert_eq!(routing.standby, Some(place(Slot::Blue, "a")));
            assert_eq!(left, Some(Slot::Blue));
            assert!(message.starts_with("rolled back to release"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rollback_without_a_healthy_standby_deploys_the_previous_release_again() {
    let mut case = Case::new("dev").live().deploying(deployment(
        "b",
        Kind::Rollback,
        DeploymentState::Building,
    ));
    case.o.routing.standby = Some(place(Slot::Green, "b"));
    case.o
        .instances
        .push(running(Slot::Green, "b", "web", Health::Healthy));
    assert!(matches!(
        case.rollout(),
        Action::Begin {
            slot: Slot::Green,
            ..
        }
    ));
}

// ---------------------------------------------------------- supervision

#[test]
fn a_crash_is_recorded_when_seen_and_restarted_after_its_backoff() {
    let mut case = Case::new("dev").live();
    case.o.instances[0].status = InstanceStatus::Exited {
        code: Some(3),
        signal: None,
    };
    match &case.actions()[0] {
        Action::MarkCrashed { message, .. } => {
            assert!(
                message.ends_with("exited with status 3; restarting in 1 s"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }

    case.o.instances[0].health = Health::Exited;
    case.o.instances[0].changed_at = NOW - 999;
    assert!(!case.actions().iter().any(|a| a.is_supervision()));
    case.o.instances[0].changed_at = NOW - 1_000;
    assert!(matches!(case.actions()[0], Action::Restart { .. }));

    // Each restart that fails doubles the wait, up to 30 s.
    case.o.instances[0].restarts = 3;
    case.o.instances[0].changed_at = NOW - 7_999;
    assert!(!case.actions().iter().any(|a| a.is_supervision()));
    assert_eq!(backoff_ms(10), MAX_BACKOFF_MS);
}

#[test]
fn crashes_are_forgotten_once_an_instance_has_run_healthy_for_a_while() {
    let mut case = Case::new("dev").live();
    case.o.instances[0].restarts = 2;
    case.o.instances[0].changed_at = NOW - CRASHES_FORGOTTEN_AFTER_MS + 1;
    assert!(
        !case
            .actions()
            .iter()
            .any(|a| matches!(a, Action::ForgetCrashes { .. }))
    );
    case.o.instances[0].changed_at = NOW - CRASHES_FORGOTTEN_AFTER_MS;
    assert!(matches!(
        &case.actions()[0],
        Action::ForgetCrashes { instance } if instance.restarts == 2
    ));
    // Not while it is unhealthy.
    case.o.instances[0].health = Health::Unhealthy;
    assert!(
        !case
            .actions()
            .iter()
            .any(|a| matches!(a, Action::ForgetCrashes { .. }))
    );
}

#[test]
fn an_instance_no_slot_needs_is_stopped() {
    let mut case = Case::new("dev").live();
    // An aborted candidate's process, still in green.
    case.o
        .instances
        .push(running(Slot::Green, "c", "web", Health::Healthy));
    match &case.actions()[..] {
        [Action::Stop { instance, why }, ..] => {
            assert_eq!(instance.instance.release, release("c"));
            assert!(why.contains("no slot"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn health_is_probed_once_a_second_but_not_while_starting() {
    let mut case = Case::new("dev").live();
    case.o.notes.last_probe = NOW - 999;
    assert!(
        !case
            .actions()
            .iter()
            .any(|a| matches!(a, Action::Probe { .. }))
    );
    case.o.notes.last_probe = NOW - 1_000;
    case.o.instances[1].health = Health::Starting;
    let plan = case.plan();
    let probed: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Probe { instance } => Some(instance.instance.service.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(probed, ["web"]);
    assert_eq!(plan.notes.last_probe, NOW);
}

#[test]
fn a_restarted_controller_resumes_a_canary_at_its_recorded_step() {
    // Notes are lost with the process; the step and its start are not.
    let mut case = canary_case().canary_at(1, 50.0, INTERVAL * 3);
    case.o.notes = Notes::default();
    assert!(window_wanted(&case.o).is_some(), "judged at once");
    case.o.window = Some(window(40, 0, 5.0));
    assert!(matches!(case.actions().last(), Some(Action::Switch { .. })));
}

#[test]
fn without_a_deployment_the_live_state_is_kept_up_active_first() {
    let mut case = Case::new("dev");
    case.o.routing.active = Some(place(Slot::Blue, "a"));
    case.o.routing.standby = Some(place(Slot::Green, "b"));
    assert_eq!(
        case.rollout_all(),
        [
            Action::KeepRunning {
                placement: place(Slot::Blue, "a")
            },
            Action::PushTable,
            Action::KeepRunning {
                placement: place(Slot::Green, "b")
            },
        ]
    );

    case.o
        .instances
        .extend(slot_of(Slot::Blue, "a", Health::Healthy));
    case.o
        .instances
        .extend(slot_of(Slot::Green, "b", Health::Unhealthy));
    assert_eq!(case.rollout_all(), [Action::PushTable]);

    // A slot that failed to come up is left alone until its retry time.
    case.o.instances.truncate(2);
    case.o.notes.retry_at = HashMap::from([(Slot::Green, (NOW + 1, 1))]);
    assert_eq!(case.rollout_all(), [Action::PushTable]);
}

#[test]
fn a_candidate_no_deployment_owns_is_dropped() {
    let mut case = Case::new("dev").live();
    case.o.routing.candidate = Some(place(Slot::Green, "b"));
    match &case.rollout_all()[0] {
        Action::DropOrphan { routing, message } => {
            assert_eq!(routing.candidate, None);
            assert!(message.contains("no deployment owns"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------- soak

#[test]
fn a_release_is_verified_after_its_soak_without_a_break() {
    let mut case = Case::new("dev").live();
    let plan = case.plan();
    assert_eq!(plan.notes.healthy_since, Some((release("a"), NOW)));
    assert!(!plan.actions.contains(&Action::RecordVerified {
        release: release("a")
    }));

    case.o.notes.healthy_since = Some((release("a"), NOW - 29_999));
    assert!(!case.actions().contains(&Action::RecordVerified {
        release: release("a")
    }));
    case.o.notes.healthy_since = Some((release("a"), NOW - 30_000));
    assert!(case.actions().contains(&Action::RecordVerified {
        release: release("a")
    }));

    // Once verified, not again; a failed probe restarts the soak.
    case.o.notes.verified = Some(release("a"));
    assert!(!case.actions().contains(&Action::RecordVerified {
        release: release("a")
    }));
    case.o.instances[0].health = Health::Unhealthy;
    assert_eq!(case.plan().notes.healthy_since, None);
    assert_eq!(
        Duration::from_millis(30_000),
        case.o.env.soak,
        "the soak this test assumes"
    );
}

impl Case {
    /// The actions that are neither supervision nor soak.
    fn rollout_all(&self) -> Vec<Action> {
        self.actions()
            .into_iter()
            .filter(|a| !a.is_supervision() && !matches!(a, Action::RecordVerified { .. }))
            .collect()
    }
}
