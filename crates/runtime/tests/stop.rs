//! Stopping instances: SIGTERM to the group, SIGKILL after grace,
//! idempotence.

use std::fs;
use std::time::Duration;

use hifi_runtime::{LocalRuntime, Runtime};

use crate::util::{
    Fixture, PATIENCE, alive, eventually, group_and_session, id_parts, read, start_time,
};

#[tokio::test]
async fn an_instance_leads_a_session_of_its_own() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let spec = fx.spec("catalog");
    let instance = fx.track(rt.start(&spec).await.unwrap());
    let (pid, _) = id_parts(&instance.id);

    // Its own process group (what stop signals) and its own session: no
    // terminal signal of the controller's reaches it, and the kernel's
    // per-session CPU fairness gives it a share of its own.
    assert_eq!(group_and_session(pid), Some((pid, pid)));
    let (_, ours) = group_and_session(std::process::id()).unwrap();
    assert_ne!(ours, pid);
    rt.stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn stop_terminates_the_whole_process_group_including_grandchildren() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let pidfile = fx.path("grandchild.pid");
    let mut spec = fx.spec("catalog");
    spec.vars
        .insert("GRANDCHILD_PIDFILE".into(), pidfile.display().to_string());
    let instance = fx.track(rt.start(&spec).await.unwrap());
    rt.wait_healthy(&spec, &instance, PATIENCE).await.unwrap();
    eventually("the grandchild wrote its pid", || pidfile.exists()).await;
    let grandchild: u32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let grandchild_start = start_time(grandchild).unwrap();
    let (pid, start) = id_parts(&instance.id);
    assert!(alive(grandchild, grandchild_start));

    rt.stop(&instance, PATIENCE).await.unwrap();

    assert!(
        read(&spec.log).contains("got SIGTERM"),
        "{}",
        read(&spec.log)
    );
    assert!(!alive(grandchild, grandchild_start), "grandchild survived");
    assert!(!alive(pid, start), "leader survived");
    assert!(rt.status(&instance).await.is_exited());
}

#[tokio::test]
async fn process_ignoring_sigterm_is_killed_after_grace() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let mut spec = fx.spec("catalog");
    spec.vars.insert("IGNORE_TERM".into(), "1".into());
    let instance = fx.track(rt.start(&spec).await.unwrap());
    rt.wait_healthy(&spec, &instance, PATIENCE).await.unwrap();
    let (pid, start) = id_parts(&instance.id);

    rt.stop(&instance, Duration::from_millis(300))
        .await
        .unwrap();

    assert!(
        read(&spec.log).contains("ignoring SIGTERM"),
        "{}",
        read(&spec.log)
    );
    assert!(!alive(pid, start));
    assert!(rt.status(&instance).await.is_exited());
}

#[tokio::test]
async fn stop_is_idempotent() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let spec = fx.spec("catalog");
    let instance = fx.track(rt.start(&spec).await.unwrap());
    rt.wait_healthy(&spec, &instance, PATIENCE).await.unwrap();

    rt.stop(&instance, PATIENCE).await.unwrap();
    rt.stop(&instance, PATIENCE).await.unwrap();
    LocalRuntime::new().stop(&instance, PATIENCE).await.unwrap();

    assert!(rt.status(&instance).await.is_exited());
}
