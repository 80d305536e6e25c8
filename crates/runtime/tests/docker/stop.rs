//! Stopping containers: SIGTERM first, SIGKILL after the grace, removal,
//! and a container that is gone is not an error.

use std::time::Duration;

use hifi_runtime::{InstanceStatus, Runtime};
use tokio::time::Instant;

use super::{PATIENCE, Project, containers, docker, eventually, inspect, read};

/// Waits in the shell's `wait` (not in a foreground `sleep`), so a trap
/// runs as soon as the signal comes.
const HANDLES_TERM: &str =
    "trap 'echo got SIGTERM; exit 0' TERM; echo ready; while :; do sleep 1 & wait $!; done";
const IGNORES_TERM: &str =
    "trap 'echo ignoring SIGTERM' TERM; echo ready; while :; do sleep 1 & wait $!; done";

#[tokio::test]
async fn stop_sends_sigterm_first_then_removes_the_container() {
    let Some(p) = Project::new("stop_sends_sigterm_first_then_removes_the_container").await else {
        return;
    };
    let image = p.image("v1").await;
    let rt = p.runtime();
    let spec = p.spec("worker", &image, Some(HANDLES_TERM));
    let instance = rt.start(&spec).await.unwrap();
    eventually("the container is up", || read(&spec.log).contains("ready")).await;

    let began = Instant::now();
    rt.stop(&instance, Duration::from_secs(30)).await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "a service that ends on SIGTERM must not wait out the grace"
    );
    assert!(
        read(&spec.log).contains("got SIGTERM"),
        "{}",
        read(&spec.log)
    );
    let docker = docker().unwrap();
    assert!(inspect(&docker, &instance.id).await.is_none(), "removed");
    assert!(containers(&docker, &p.name, true).await.is_empty());
    assert!(rt.status(&instance).await.is_exited());

    // Gone is not an error, from this runtime or another.
    rt.stop(&instance, PATIENCE).await.unwrap();
    p.runtime().stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn stop_kills_after_the_grace_when_sigterm_is_ignored() {
    let Some(p) = Project::new("stop_kills_after_the_grace_when_sigterm_is_ignored").await else {
        return;
    };
    let image = p.image("v1").await;
    let rt = p.runtime();
    let spec = p.spec("worker", &image, Some(IGNORES_TERM));
    let instance = rt.start(&spec).await.unwrap();
    eventually("the container is up", || read(&spec.log).contains("ready")).await;
    assert_eq!(rt.status(&instance).await, InstanceStatus::Running);

    let began = Instant::now();
    rt.stop(&instance, Duration::from_secs(2)).await.unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "killed before the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        read(&spec.log).contains("ignoring SIGTERM"),
        "{}",
        read(&spec.log)
    );
    assert!(
        inspect(&docker().unwrap(), &instance.id).await.is_none(),
        "removed"
    );
}
