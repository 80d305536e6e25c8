//! The contract every runtime keeps, run against each of them: the local
//! runtime (real processes), the Docker runtime (a real engine; skipped
//! when none answers) and the Kubernetes runtime (the fake API server).
//!
//! Started, an instance runs and becomes healthy; a runtime made afresh —
//! a restarted controller's — finds it by its own means, sees it run, and
//! stops it; stopped, it is gone for the one that stopped it at once and
//! for the other within a few seconds, stopping it again is no error, and
//! it is no longer found.

use std::time::Duration;

use hifi_core::Slot;
use hifi_runtime::{InstanceSpec, LocalRuntime, Runtime};

use crate::util::{Fixture, PATIENCE};

async fn holds<R: Runtime>(first: &R, restarted: &R, spec: &InstanceSpec) {
    let instance = first.start(spec).await.unwrap();
    first.wait_healthy(spec, &instance, PATIENCE).await.unwrap();
    assert!(first.status(&instance).await.is_running());
    let code = first
        .probe(&instance, &spec.health_path, spec.protocol, PATIENCE)
        .await
        .unwrap();
    assert!((200..300).contains(&code), "health answered {code}");
    assert_eq!(
        (
            &instance.env,
            instance.slot,
            &instance.service,
            &instance.release,
            instance.runtime
        ),
        (
            &spec.env,
            spec.slot,
            &spec.service,
            &spec.release,
            spec.runtime
        )
    );

    let found = restarted.discover().await.unwrap();
    let again = found
        .iter()
        .find(|i| i.id == instance.id)
        .unwrap_or_else(|| panic!("{} not re-adopted from {found:?}", instance.id));
    assert_eq!(again, &instance, "re-adopted as it was recorded");
    assert!(restarted.status(&instance).await.is_running());

    restarted
        .stop(&instance, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(restarted.status(&instance).await.is_exited());
    // Another runtime may answer from what it saw a moment ago (the
    // Kubernetes runtime lists a namespace at most once a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !first.status(&instance).await.is_exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running for the first runtime"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    restarted
        .stop(&instance, Duration::from_secs(2))
        .await
        .unwrap();
    let found = restarted.discover().await.unwrap();
    assert!(found.iter().all(|i| i.id != instance.id), "{found:?}");
}

#[tokio::test]
async fn the_local_runtime_keeps_the_contract() {
    let fx = Fixture::new();
    let first = LocalRuntime::with_records(fx.path("run"));
    let restarted = LocalRuntime::with_records(fx.path("run"));
    holds(&first, &restarted, &fx.spec("contract")).await;
}

#[tokio::test]
async fn the_docker_runtime_keeps_the_contract() {
    let Some(project) = crate::docker::Project::new("contract").await else {
        return;
    };
    let image = project.image("v1").await;
    let spec = project.spec("contract", &image, None);
    holds(&project.runtime(), &project.runtime(), &spec).await;
}

#[tokio::test]
async fn the_kubernetes_runtime_keeps_the_contract() {
    let cluster = crate::kubernetes::Cluster::new().await;
    let spec = crate::kubernetes::spec("prod", Slot::Blue);
    holds(&cluster.runtime, &cluster.restarted(), &spec).await;
}
