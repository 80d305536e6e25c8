//! The fidelity gate is the controller's too: a deployment written straight
//! into the store, bypassing the commands that check it, still cannot bring
//! an unverified release into an environment that promotes from another.

use hifi_core::DeploymentState;
use hifi_core::event::EventKind;

use crate::util::{App, Hifi, Project, Users};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_fails_a_prod_deployment_of_a_release_not_verified_in_dev() {
    let project = Project::new(&["catalog"]);
    let v1 = project.compose_dev();
    let v2 = project.release(&[("catalog", App::ok("2"))]);
    project.verified_in_dev(&v1);
    let hifi = Hifi::start(&project).await;
    let first = project.deploy("prod", &v1);
    project.wait_live(first).await;
    let routing = project.routing("prod");
    let running = project.instances("prod");

    // Recorded directly, as no command would have let it through.
    let id = project.deploy("prod", &v2);
    let d = project
        .wait_deployment(id, "failed", |d| d.state == DeploymentState::Failed)
        .await;
    let reason = d.reason.unwrap_or_default();
    assert!(
        reason.contains("is not verified in dev"),
        "the refusal should name the gate: {reason}"
    );
    assert!(d.slot.is_none(), "a slot was assigned: {:?}", d.slot);

    // Nothing was started and nothing moved.
    assert_eq!(project.routing("prod"), routing);
    assert_eq!(project.instances("prod"), running);
    assert!(
        project.instances("prod").iter().all(|i| i.release == v1),
        "an instance of the refused release was started"
    );
    let about_v2: Vec<EventKind> = project
        .store()
        .events(Some("prod"), 1000)
        .expect("events")
        .into_iter()
        .filter(|e| e.release.as_ref() == Some(&v2))
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        about_v2,
        [EventKind::DeploymentFailed, EventKind::DeploymentCreated]
    );
    assert!(
        !project.state_dir().join("logs/prod/green").exists(),
        "the idle slot was used"
    );
    Users::of(project.prod_port)
        .send("/catalog", &["u1".to_string(), "u2".to_string()])
        .await
        .assert_all(200, "1");
    hifi.stop().await;
}
