//! Re-adoption after a controller restart, and ids that must not be trusted.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use hifi_core::Protocol;
use hifi_runtime::{Error, Instance, InstanceId, InstanceStatus, LocalRuntime, Runtime};
use tokio::time::Instant;

use crate::util::{
    Fixture, PATIENCE, alive, eventually, forge, id_parts, start_time, state, workdir_of,
};

#[tokio::test]
async fn restarted_controller_adopts_a_running_instance_from_its_stored_record() {
    let fx = Fixture::new();
    let spec = fx.spec("catalog");
    let stored = {
        let first = LocalRuntime::new();
        let instance = fx.track(first.start(&spec).await.unwrap());
        first
            .wait_healthy(&spec, &instance, PATIENCE)
            .await
            .unwrap();
        serde_json::to_string(&instance).unwrap()
        // `first` is dropped here, as if the controller died.
    };

    let second = LocalRuntime::new();
    let instance: Instance = serde_json::from_str(&stored).unwrap();
    let (pid, start) = id_parts(&instance.id);

    assert_eq!(second.status(&instance).await, InstanceStatus::Running);
    second
        .wait_healthy(&spec, &instance, PATIENCE)
        .await
        .unwrap();
    assert_eq!(
        second
            .probe(&instance, "/healthz", Protocol::Http1, PATIENCE)
            .await
            .unwrap(),
        200
    );

    second.stop(&instance, PATIENCE).await.unwrap();
    assert!(!alive(pid, start));
    assert!(second.status(&instance).await.is_exited());
}

#[tokio::test]
async fn adopted_instance_that_exits_fails_wait_healthy_fast() {
    let fx = Fixture::new();
    let spec = fx.spec_running(
        "catalog",
        "while [ ! -e die ]; do sleep 0.05; done; echo 'dying on request'; exit 4",
    );
    let instance = fx.track(LocalRuntime::new().start(&spec).await.unwrap());
    std::fs::write(workdir_of(&spec).join("die"), "").unwrap();

    let began = Instant::now();
    let err = LocalRuntime::new()
        .wait_healthy(&spec, &instance, Duration::from_secs(120))
        .await
        .unwrap_err();

    assert!(
        began.elapsed() < Duration::from_secs(60),
        "did not fail fast"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("service catalog (dev/green) exited before it became healthy"),
        "{message}"
    );
    assert!(message.contains("dying on request"), "{message}");
}

#[tokio::test]
async fn stale_id_whose_pid_or_start_time_does_not_match_is_exited_and_left_alone() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let spec = fx.spec("catalog");
    let instance = fx.track(rt.start(&spec).await.unwrap());
    rt.wait_healthy(&spec, &instance, PATIENCE).await.unwrap();
    let (pid, start) = id_parts(&instance.id);

    // The instance's pid, but another start time: the pid was reused.
    let restarted = forge(&instance, None, Some(start + 1));
    assert!(rt.status(&restarted).await.is_exited());
    rt.stop(&restarted, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(
        alive(pid, start),
        "stopping a stale id killed the live process"
    );

    // A pid that now belongs to another process (this test).
    let me = std::process::id();
    let mine = forge(&instance, Some(me), Some(start_time(me).unwrap() + 1));
    assert!(LocalRuntime::new().status(&mine).await.is_exited());
    LocalRuntime::new()
        .stop(&mine, Duration::from_millis(100))
        .await
        .unwrap();

    assert_eq!(rt.status(&instance).await, InstanceStatus::Running);
    rt.stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn zombie_counts_as_exited() {
    let mut child = Command::new("sh")
        .args(["-c", "exit 0"])
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    // Not waited for yet, so it stays as a zombie.
    eventually("the child is a zombie", || state(pid) == Some('Z')).await;
    let fx = Fixture::new();
    let record = LocalRuntime::new().start(&fx.spec("probe")).await.unwrap();
    let zombie = forge(&record, Some(pid), Some(start_time(pid).unwrap()));
    LocalRuntime::new().stop(&record, PATIENCE).await.unwrap();

    assert!(LocalRuntime::new().status(&zombie).await.is_exited());
    LocalRuntime::new().stop(&zombie, PATIENCE).await.unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn id_from_another_runtime_is_unknown_and_refused() {
    let rt = LocalRuntime::new();
    let instance = Instance {
        id: InstanceId::new("k8s:catalog-green-7d9f"),
        addr: "127.0.0.1:1".parse().unwrap(),
        env: "dev".into(),
        slot: hifi_core::Slot::Green,
        service: "catalog".into(),
        replica: 0,
        release: hifi_core::ReleaseId::compute("r1", &[]),
        runtime: hifi_core::RuntimeKind::Local,
    };

    assert_eq!(rt.status(&instance).await, InstanceStatus::Unknown);
    let err = rt.stop(&instance, PATIENCE).await.unwrap_err();
    assert!(matches!(err, Error::ForeignId { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "service catalog (dev/green) has id `k8s:catalog-green-7d9f`, which the local runtime did not issue, so it cannot manage it"
    );
}
