//! Verification: a release is verified in an environment once it has been
//! the active release there, healthy, for the soak time by the controller's
//! clock.

use crate::util::{Hifi, Project, SOAK_MS, Users, eventually, let_controller_run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_release_is_verified_in_dev_once_the_clock_passes_its_soak() {
    let project = Project::new(&["catalog"]);
    let v1 = project.compose_dev();
    let hifi = Hifi::start(&project).await;

    let id = project.deploy("dev", &v1);
    project.wait_live(id).await;
    Users::of(project.dev_port)
        .send("/catalog", &["u1".to_string(), "u2".to_string()])
        .await
        .assert_all(200, "1");

    let verified = || project.store().verified_in(&v1).expect("verified_in");
    let_controller_run().await;
    assert!(verified().is_empty(), "verified before any soak");
    project.clock.advance(SOAK_MS - 1);
    let_controller_run().await;
    assert!(verified().is_empty(), "verified 1 ms before the soak ended");

    project.clock.advance(1);
    eventually("verification in dev", || verified() == ["dev"]).await;

    // Verified in dev, it now passes prod's fidelity gate.
    let promoted = project.deploy("prod", &v1);
    project.wait_live(promoted).await;
    Users::of(project.prod_port)
        .send("/catalog", &["u1".to_string()])
        .await
        .assert_all(200, "1");
    hifi.stop().await;
}
