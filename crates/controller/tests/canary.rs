//! Canary rollouts in prod, driven by the injected clock: a step is judged
//! when the clock says its interval is over, on the figures the proxy
//! measured for real requests, and never earlier.

use std::time::{Duration, Instant};

use hifi_core::Verdict;
use hifi_core::deployment::Request;
use hifi_core::{DeploymentState, ReleaseId, Slot};
use hifi_store::Update;

use crate::util::{
    App, Hifi, INTERVAL_MS, MIN_REQUESTS, Project, Users, active_users, answers, candidate_users,
    eventually, let_controller_run, wait_slot_healthy,
};

/// prod with release v1 live and v2 at the first canary step (10 %).
struct FirstStep {
    project: Project,
    hifi: Hifi,
    v1: ReleaseId,
    v2: ReleaseId,
    /// The deployment of v2.
    id: i64,
}

async fn first_step(v2: App) -> FirstStep {
    let project = Project::new(&["catalog"]);
    let v1 = project.compose_dev();
    let v2 = project.release(&[("catalog", v2)]);
    project.verified_in_dev(&v1);
    project.verified_in_dev(&v2);
    let hifi = Hifi::start(&project).await;

    // Nothing is live in prod yet: the first release goes straight live.
    let first = project.deploy("prod", &v1);
    project.wait_live(first).await;
    assert!(project.analyses(first).is_empty());

    let id = project.deploy("prod", &v2);
    let d = project.wait_step(id, 0).await;
    assert_eq!(d.weight, 10.0);
    let routing = project.routing("prod");
    assert_eq!(routing.weight, 10.0);
    assert_eq!(
        routing.candidate.as_ref().map(|c| &c.release),
        Some(&v2),
        "{routing:?}"
    );
    FirstStep {
        project,
        hifi,
        v1,
        v2,
        id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_steps_advance_when_the_injected_clock_passes_the_interval_and_not_before() {
    let began = Instant::now();
    let FirstStep {
        project,
        hifi,
        v1,
        v2,
        id,
    } = first_step(App::ok("2")).await;
    let users = Users::of(project.prod_port);
    let early = candidate_users(10.0, 8);
    let late = candidate_users(50.0, 20)
        .into_iter()
        .filter(|u| !early.contains(u))
        .take(8)
        .collect::<Vec<_>>();
    let stay = active_users(50.0, 8);
    users.send("/catalog", &early).await.assert_all(200, "2");
    users.send("/catalog", &late).await.assert_all(200, "1");
    users.send("/catalog", &stay).await.assert_all(200, "1");

    // One millisecond short of the interval by the controller's clock.
    let_controller_run().await;
    project.clock.advance(INTERVAL_MS - 1);
    let_controller_run().await;
    let d = project.deployment(id);
    assert_eq!(
        (d.state, d.step, d.weight),
        (DeploymentState::Verifying, 0, 10.0),
        "{}",
        project.story(id)
    );
    assert!(
        project.analyses(id).is_empty(),
        "judged before the interval"
    );

    project.clock.advance(1);
    let d = project.wait_step(id, 1).await;
    assert_eq!(d.weight, 50.0);
    assert_eq!(project.routing("prod").weight, 50.0);
    // Sticky: the first 10 % stay on the candidate, the next users join them.
    users.send("/catalog", &early).await.assert_all(200, "2");
    users.send("/catalog", &late).await.assert_all(200, "2");
    users.send("/catalog", &stay).await.assert_all(200, "1");

    let_controller_run().await;
    assert_eq!(project.deployment(id).step, 1, "step 2 judged early");
    project.clock.advance(INTERVAL_MS);
    let d = project.wait_live(id).await;
    assert_eq!(d.weight, 100.0);
    let routing = project.routing("prod");
    assert_eq!(routing.active.as_ref().map(|a| &a.release), Some(&v2));
    assert_eq!(routing.standby.as_ref().map(|s| &s.release), Some(&v1));
    assert!(routing.candidate.is_none(), "{routing:?}");
    users.send("/catalog", &stay).await.assert_all(200, "2");

    let analyses = project.analyses(id);
    let judged: Vec<(i64, f64, &str)> = analyses
        .iter()
        .map(|a| (a.step, a.weight, a.verdict.as_str()))
        .collect();
    assert_eq!(judged, [(0, 10.0, "pass"), (1, 50.0, "pass")]);
    for a in &analyses {
        assert!(a.requests >= MIN_REQUESTS as i64, "{a:?}");
        assert_eq!(a.errors, 0, "{a:?}");
    }
    hifi.stop().await;
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "two 30-second steps took {:?} of real time",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_with_too_little_traffic_is_extended_instead_of_passed() {
    let FirstStep {
        project,
        hifi,
        v1,
        id,
        ..
    } = first_step(App::ok("2")).await;

    // Nobody used the candidate during the step.
    project.clock.advance(INTERVAL_MS);
    eventually("the step's judgement", || !project.analyses(id).is_empty()).await;
    let analyses = project.analyses(id);
    assert_eq!(analyses.len(), 1, "{analyses:?}");
    assert_eq!(
        (analyses[0].verdict.as_str(), analyses[0].requests),
        ("extend", 0)
    );
    let d = project.deployment(id);
    assert_eq!(
        (d.state, d.step, d.weight),
        (DeploymentState::Verifying, 0, 10.0)
    );
    assert_eq!(project.routing("prod").weight, 10.0);
    assert!(
        project.story(id).contains("canary.extended"),
        "{}",
        project.story(id)
    );

    // Traffic arrives; the step is judged again one interval later, not at once.
    let users = Users::of(project.prod_port);
    users
        .send("/catalog", &candidate_users(10.0, 8))
        .await
        .assert_all(200, "2");
    let_controller_run().await;
    assert_eq!(
        project.analyses(id).len(),
        1,
        "judged again before the extension ended"
    );
    assert_eq!(project.deployment(id).step, 0);

    project.clock.advance(INTERVAL_MS);
    let d = project.wait_step(id, 1).await;
    assert_eq!(d.weight, 50.0);
    let verdicts: Vec<Verdict> = project
        .analyses(id)
        .into_iter()
        .map(|a| a.verdict)
        .collect();
    assert_eq!(verdicts, [Verdict::Extend, Verdict::Pass]);

    // Stopping hifi mid-rollout aborts the rollout: its processes are gone.
    hifi.stop().await;
    let d = project.deployment(id);
    assert_eq!(d.state, DeploymentState::Aborted);
    let reason = d.reason.unwrap_or_default();
    assert!(
        reason.contains("hifi was stopped while it was verifying"),
        "{reason}"
    );
    let routing = project.routing("prod");
    assert!(routing.candidate.is_none(), "{routing:?}");
    assert_eq!(routing.active.as_ref().map(|a| &a.release), Some(&v1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_candidate_is_aborted_by_its_figures_and_the_displaced_standby_returns() {
    let project = Project::new(&["catalog"]);
    let a = project.compose_dev();
    let b = project.release(&[("catalog", App::ok("1.1"))]);
    let c = project.release(&[("catalog", App::buggy("2"))]);
    for release in [&a, &b, &c] {
        project.verified_in_dev(release);
    }
    let hifi = Hifi::start(&project).await;

    // a live in blue, then b promoted by request into green: a is the standby.
    let first = project.deploy("prod", &a);
    project.wait_live(first).await;
    let second = project.deploy("prod", &b);
    project.wait_step(second, 0).await;
    project.update(
        second,
        Update {
            request: Some(Some(Request::Promote)),
            message: "promote requested by tester",
            ..Update::default()
        },
    );
    project.wait_live(second).await;
    let routing = project.routing("prod");
    assert_eq!(
        routing.active.as_ref().map(|p| (p.slot, &p.release)),
        Some((Slot::Green, &b))
    );
    assert_eq!(
        routing.standby.as_ref().map(|p| (p.slot, &p.release)),
        Some((Slot::Blue, &a))
    );
    let standby = wait_slot_healthy(&project, "prod", "blue", &a).await;

    // c starts in blue, displacing the standby.
    let id = project.deploy("prod", &c);
    project.wait_step(id, 0).await;
    let routing = project.routing("prod");
    assert_eq!(
        routing.candidate.as_ref().map(|p| (p.slot, &p.release)),
        Some((Slot::Blue, &c))
    );
    assert!(routing.standby.is_none(), "{routing:?}");
    assert_eq!(routing.displaced.as_ref().map(|p| &p.release), Some(&a));
    eventually("the displaced standby to stop", || {
        standby.iter().all(|i| !answers(i.addr))
    })
    .await;
    let doomed = wait_slot_healthy(&project, "prod", "blue", &c).await;

    let users = Users::of(project.prod_port);
    let unlucky = candidate_users(10.0, 8);
    let others = active_users(10.0, 8);
    // The unlucky users reach the candidate until its figures stop it — at
    // the next look, which need not wait for the interval — and from then
    // on get the active release; nobody gets anything else.
    let tally = users.send("/catalog", &unlucky).await;
    assert!(tally.with(500) >= 1, "{tally:?}");
    assert_eq!(
        tally.with(500) + tally.versions.get("1.1").copied().unwrap_or(0),
        unlucky.len(),
        "{tally:?}"
    );
    users.send("/catalog", &others).await.assert_all(200, "1.1");

    project.clock.advance(INTERVAL_MS);
    let d = project
        .wait_deployment(id, "aborted", |d| d.state == DeploymentState::Aborted)
        .await;
    let reason = d.reason.unwrap_or_default();
    assert!(reason.contains("error ratio"), "{reason}");
    assert!(reason.contains("100.00 %"), "{reason}");
    assert_eq!(d.weight, 0.0);
    let analyses = project.analyses(id);
    assert_eq!(analyses.len(), 1, "{analyses:?}");
    assert_eq!(analyses[0].verdict, Verdict::Fail);
    assert!(analyses[0].requests >= 1);
    assert_eq!(analyses[0].errors, analyses[0].requests);

    // The environment is exactly as before c: b serves everyone, a is the standby again.
    let routing = project.routing("prod");
    assert!(routing.candidate.is_none(), "{routing:?}");
    assert_eq!(routing.weight, 0.0);
    assert_eq!(
        routing.active.as_ref().map(|p| (p.slot, &p.release)),
        Some((Slot::Green, &b))
    );
    assert_eq!(
        routing.standby.as_ref().map(|p| (p.slot, &p.release)),
        Some((Slot::Blue, &a))
    );
    assert!(routing.displaced.is_none(), "{routing:?}");
    users
        .send("/catalog", &unlucky)
        .await
        .assert_all(200, "1.1");
    users.send("/catalog", &others).await.assert_all(200, "1.1");
    eventually("the aborted candidate's instances to stop", || {
        doomed.iter().all(|i| !answers(i.addr))
    })
    .await;
    let restored = wait_slot_healthy(&project, "prod", "blue", &a).await;
    assert!(restored.iter().all(|i| answers(i.addr)));
    let mut restored_addrs: Vec<String> = restored.iter().map(|i| i.addr.to_string()).collect();
    restored_addrs.sort();
    let mut served = None;
    for _ in 0..100 {
        let table = project.proxy_table("prod").await.expect("prod's table");
        let service = &table.services[0];
        served = Some((
            service.candidate.clone(),
            service
                .standby
                .as_ref()
                .map(|s| (s.slot.clone(), s.backends.clone())),
        ));
        if served == Some((None, Some(("blue".to_string(), restored_addrs.clone())))) {
            break;
        }
        tokio::time::sleep(crate::util::TICK).await;
    }
    assert_eq!(
        served,
        Some((None, Some(("blue".to_string(), restored_addrs)))),
        "the proxy's table should have no candidate and the restored standby"
    );
    assert!(
        project.instances("prod").iter().all(|i| i.release != c),
        "an instance of the aborted release is still recorded"
    );
    hifi.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_canary_holds_its_step_past_the_interval_until_resumed() {
    let FirstStep {
        project, hifi, id, ..
    } = first_step(App::ok("2")).await;
    project.update(
        id,
        Update {
            paused: Some(true),
            message: "paused by tester",
            ..Update::default()
        },
    );
    let_controller_run().await;
    let users = Users::of(project.prod_port);
    users
        .send("/catalog", &candidate_users(10.0, 8))
        .await
        .assert_all(200, "2");

    project.clock.advance(INTERVAL_MS * 4);
    let_controller_run().await;
    let d = project.deployment(id);
    assert!(d.paused);
    assert_eq!(
        (d.state, d.step, d.weight),
        (DeploymentState::Verifying, 0, 10.0),
        "{}",
        project.story(id)
    );
    assert!(project.analyses(id).is_empty(), "a paused step was judged");
    assert_eq!(project.routing("prod").weight, 10.0);

    project.update(
        id,
        Update {
            paused: Some(false),
            message: "resumed by tester",
            ..Update::default()
        },
    );
    let d = project.wait_step(id, 1).await;
    assert_eq!(d.weight, 50.0);
    let verdicts: Vec<Verdict> = project
        .analyses(id)
        .into_iter()
        .map(|a| a.verdict)
        .collect();
    assert_eq!(verdicts, [Verdict::Pass]);
    hifi.stop().await;
}
