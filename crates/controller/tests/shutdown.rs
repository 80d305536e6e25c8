//! Shutdown: `Controller::run` stops every process it started before it
//! returns (the other tests check this after each run, see `Hifi::stop`).

use crate::util::{App, Hifi, Project, Users};

/// A service that answers SIGTERM by ending its main thread while another
/// thread serves on must still be stopped (SIGKILL after the grace). The
/// local runtime decides a process group is gone when no member's
/// `/proc/<pid>/stat` shows a live state, but that file describes the main
/// thread only: here it says `Z` while the serving thread runs on, so the
/// runtime neither waits nor escalates to SIGKILL, and the service keeps
/// its port after `run` returned. Ordinary multi-threaded services go
/// through the same state for a few milliseconds while they exit, which is
/// why `Hifi::stop` gives ports a moment to close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_an_instance_whose_main_thread_has_exited() {
    let project = Project::new(&["catalog"]);
    let v1 = project.release(&[("catalog", App::lingering("1"))]);
    let hifi = Hifi::start(&project).await;
    let id = project.deploy("dev", &v1);
    project.wait_live(id).await;
    Users::of(project.dev_port)
        .send("/catalog", &["u1".to_string()])
        .await
        .assert_all(200, "1");
    hifi.stop().await;
}
