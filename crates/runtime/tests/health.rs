//! Starting instances and waiting for them to become healthy.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use hifi_core::Protocol;
use hifi_runtime::{Error, InstanceStatus, LocalRuntime, ProbeFailure, Runtime, probe};
use tokio::time::Instant;

use crate::util::{Fixture, PATIENCE, eventually, port_of, read, workdir_of};

#[tokio::test]
async fn started_service_gets_port_and_vars_answers_health_and_logs() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let spec = fx.spec("catalog");

    let instance = fx.track(rt.start(&spec).await.unwrap());
    assert_eq!(instance.addr.port(), port_of(&spec));
    assert_eq!(instance.service, "catalog");
    rt.wait_healthy(&spec, &instance, PATIENCE).await.unwrap();

    assert_eq!(
        rt.probe(&instance, "/healthz", Protocol::Http1, PATIENCE)
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        rt.probe(&instance, "/other", Protocol::Http1, PATIENCE)
            .await
            .unwrap(),
        503
    );
    assert_eq!(rt.status(&instance).await, InstanceStatus::Running);

    let line = format!("greeting=hello-from-vars port={}", port_of(&spec));
    eventually("the service's output is in its log", || {
        read(&spec.log).contains(&line)
    })
    .await;
    assert!(read(&spec.log).contains("==> hifi: starting service catalog (dev/green)"));

    rt.stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn instance_that_exits_at_once_fails_fast_with_status_and_log_tail() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let spec = fx.spec_running(
        "catalog",
        "echo 'reading config'; echo 'boom: DATABASE_URL is not set' >&2; exit 3",
    );
    // A previous run's last words must not show up in this run's error.
    std::fs::create_dir_all(spec.log.parent().unwrap()).unwrap();
    std::fs::write(&spec.log, "==> hifi: starting old run\nold failure\n").unwrap();

    let instance = fx.track(rt.start(&spec).await.unwrap());
    let began = Instant::now();
    let err = rt
        .wait_healthy(&spec, &instance, Duration::from_secs(120))
        .await
        .unwrap_err();

    assert!(
        began.elapsed() < Duration::from_secs(60),
        "did not fail fast"
    );
    assert!(
        matches!(
            err,
            Error::ExitedBeforeHealthy {
                status: InstanceStatus::Exited { code: Some(3), .. },
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("service catalog (dev/green) exited with status 3 before it became healthy; last lines of "),
        "{message}"
    );
    assert!(
        message.contains(&spec.log.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("  reading config\n  boom: DATABASE_URL is not set"),
        "{message}"
    );
    assert!(!message.contains("old failure"), "{message}");
    assert_eq!(
        rt.status(&instance).await,
        InstanceStatus::Exited {
            code: Some(3),
            signal: None
        }
    );
}

#[tokio::test]
async fn unhealthy_service_times_out_with_the_last_probe_result() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let mut spec = fx.spec("catalog");
    spec.vars.insert("MODE".into(), "unhealthy".into());

    let instance = fx.track(rt.start(&spec).await.unwrap());
    let err = rt
        .wait_healthy(&spec, &instance, Duration::from_secs(5))
        .await
        .unwrap_err();

    // The service may not have bound its port yet at the very first probe,
    // but five seconds are plenty for python to start.
    assert!(
        matches!(
            err,
            Error::Unhealthy {
                last: ProbeFailure::Status(503),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "service catalog (dev/green) did not answer 2xx on /healthz within 5s (last: answered 503)"
    );
    assert_eq!(rt.status(&instance).await, InstanceStatus::Running);
    rt.stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn service_that_never_listens_times_out_with_connection_refused() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let spec = fx.spec_running("catalog", "exec sleep 600");

    let instance = fx.track(rt.start(&spec).await.unwrap());
    let err = rt
        .wait_healthy(&spec, &instance, Duration::from_millis(500))
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        "service catalog (dev/green) did not answer 2xx on /healthz within 500ms (last: connection refused)"
    );
    rt.stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn port_taken_by_another_program_fails_the_instance_with_the_bind_error() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let spec = fx.spec("catalog");

    // Another program holds the port and even answers the health path: its
    // answers must not count as the instance's health.
    let squatter = KillOnDrop(
        Command::new("python3")
            .arg("app.py")
            .current_dir(workdir_of(&spec))
            .env("PORT", port_of(&spec).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let began = Instant::now();
    loop {
        let answer = probe::get_status(
            SocketAddr::from(([127, 0, 0, 1], port_of(&spec))),
            "/healthz",
            Protocol::Http1,
            PATIENCE,
        )
        .await;
        if answer.is_ok() {
            break;
        }
        assert!(began.elapsed() < PATIENCE, "squatter never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let instance = fx.track(rt.start(&spec).await.unwrap());
    let err = rt
        .wait_healthy(&spec, &instance, Duration::from_secs(120))
        .await
        .unwrap_err();
    drop(squatter);

    assert!(matches!(err, Error::ExitedBeforeHealthy { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("exited with status 1"), "{message}");
    assert!(message.contains("Address already in use"), "{message}");
}

#[tokio::test]
async fn missing_workdir_is_reported_before_spawning() {
    let fx = Fixture::new();
    let rt = LocalRuntime::new();
    let spec = fx.spec_in("catalog", fx.path("not-built"));

    let err = rt.start(&spec).await.unwrap_err();

    assert!(matches!(err, Error::Workdir { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("does not exist (is the artifact built?)")
    );
}

/// A child the test spawned itself, killed even when an assertion fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
