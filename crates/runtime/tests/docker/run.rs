//! Starting containers: host networking on 127.0.0.1:$PORT, the env, the
//! labels, the log, health, and containers that die or never get healthy.

use std::net::Ipv4Addr;
use std::time::Duration;

use hifi_core::{Protocol, RuntimeKind};
use hifi_runtime::{Error, InstanceId, InstanceStatus, ProbeFailure, Runtime};
use tokio::time::Instant;

use super::{PATIENCE, Project, docker, eventually, get, inspect, read};

#[tokio::test]
async fn container_serves_on_its_port_with_host_networking_the_env_and_the_labels() {
    let Some(p) =
        Project::new("container_serves_on_its_port_with_host_networking_the_env_and_the_labels")
            .await
    else {
        return;
    };
    let image = p.image("v1").await;
    let rt = p.runtime();
    let spec = p.spec("web", &image, None);
    let instance = rt.start(&spec).await.unwrap();

    let port = super::super::util::port_of(&spec);
    assert_eq!(instance.addr, (Ipv4Addr::LOCALHOST, port).into());
    assert!(
        instance.id.as_str().starts_with("docker:"),
        "{}",
        instance.id
    );
    assert_eq!(instance.runtime, RuntimeKind::Docker);
    assert_eq!(
        (instance.env.as_str(), instance.service.as_str()),
        ("dev", "web")
    );
    rt.wait_healthy(&spec, &instance, PATIENCE).await.unwrap();
    assert_eq!(
        rt.probe(&instance, "/healthz", Protocol::Http1, PATIENCE)
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        rt.probe(&instance, "/nothing-here", Protocol::Http1, PATIENCE)
            .await
            .unwrap(),
        404
    );
    assert_eq!(rt.status(&instance).await, InstanceStatus::Running);

    // The vars and PORT reach the service (through a CGI script).
    let env = get(instance.addr, "/cgi-bin/env").await;
    assert!(env.contains(&format!("PORT={port}\n")), "{env}");
    assert!(env.contains("GREETING=hello-from-vars\n"), "{env}");
    assert!(env.contains("HIFI_ENV=dev\n"), "{env}");
    // The build's RUN step ran.
    assert_eq!(get(instance.addr, "/built").await, "built-by-run\n");

    // Host networking: no bridge, no address of its own; hifi's labels.
    let docker = docker().unwrap();
    let container = inspect(&docker, &instance.id).await.unwrap();
    let host = container.host_config.as_ref().unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("host"));
    assert_eq!(host.init, Some(true));
    let networks = container
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    assert_eq!(
        networks.keys().collect::<Vec<_>>(),
        ["host"],
        "{networks:?}"
    );
    for endpoint in networks.values() {
        assert_eq!(
            endpoint.ip_address.as_deref().unwrap_or(""),
            "",
            "{endpoint:?}"
        );
    }
    let labels = container.config.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(labels["hifi.project"], p.name);
    assert_eq!(labels["hifi.env"], "dev");
    assert_eq!(labels["hifi.slot"], "green");
    assert_eq!(labels["hifi.service"], "web");
    assert_eq!(labels["hifi.release"], spec.release.as_str());
    assert_eq!(container.image.as_deref(), Some(image.as_str()));
    let name = container.name.unwrap();
    assert!(
        name.starts_with(&format!("/hifi-{}-dev-green-web-", p.name)),
        "{name}"
    );

    // Its output goes to the instance's log, after hifi's start marker.
    eventually("the container's output is in its log", || {
        read(&spec.log).contains(&format!("serving on 127.0.0.1:{port}"))
    })
    .await;
    assert!(read(&spec.log).contains("==> hifi: starting service web (dev/green)"));

    rt.stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn container_that_exits_at_start_fails_fast_with_its_exit_code_and_log_tail() {
    let Some(p) =
        Project::new("container_that_exits_at_start_fails_fast_with_its_exit_code_and_log_tail")
            .await
    else {
        return;
    };
    let image = p.image("v1").await;
    let rt = p.runtime();
    let spec = p.spec(
        "web",
        &image,
        Some("echo 'reading config'; echo 'boom: DATABASE_URL is not set' >&2; exit 3"),
    );
    // A previous run's last words must not show up in this run's error.
    std::fs::create_dir_all(spec.log.parent().unwrap()).unwrap();
    std::fs::write(&spec.log, "==> hifi: starting old run\nold failure\n").unwrap();

    let instance = rt.start(&spec).await.unwrap();
    let began = Instant::now();
    let err = rt
        .wait_healthy(&spec, &instance, Duration::from_secs(120))
        .await
        .unwrap_err();
    assert!(
        began.elapsed() < Duration::from_secs(30),
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
        message.starts_with(
            "service web (dev/green) exited with status 3 before it became healthy; last lines of "
        ),
        "{message}"
    );
    assert!(
        message.contains(&spec.log.display().to_string()),
        "{message}"
    );
    // stdout and stderr are separate pipes: their lines may interleave
    // either way.
    assert!(message.contains("\n  reading config"), "{message}");
    assert!(
        message.contains("\n  boom: DATABASE_URL is not set"),
        "{message}"
    );
    assert!(!message.contains("old failure"), "{message}");
    // The log file has the run's output too.
    assert!(read(&spec.log).contains("boom: DATABASE_URL is not set"));
    assert_eq!(
        rt.status(&instance).await,
        InstanceStatus::Exited {
            code: Some(3),
            signal: None
        }
    );
    // Starting the same (env, slot, service) again clears the exited
    // leftover; stopping an exited container removes it.
    let docker = docker().unwrap();
    assert!(inspect(&docker, &instance.id).await.is_some());
    let again = rt.start(&spec).await.unwrap();
    assert!(
        inspect(&docker, &instance.id).await.is_none(),
        "leftover removed"
    );
    assert!(rt.wait_healthy(&spec, &again, PATIENCE).await.is_err());
    rt.stop(&again, PATIENCE).await.unwrap();
    assert!(inspect(&docker, &again.id).await.is_none());
    rt.stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn answers_from_another_program_on_the_port_are_not_the_containers_health() {
    let Some(p) =
        Project::new("answers_from_another_program_on_the_port_are_not_the_containers_health")
            .await
    else {
        return;
    };
    let image = p.image("v1").await;
    let rt = p.runtime();
    // The container's server cannot bind the port, but it keeps running.
    let spec = p.spec(
        "web",
        &image,
        Some("httpd -f -p 127.0.0.1:$PORT -h /www; echo 'httpd could not start'; exec sleep 600"),
    );
    let port = super::super::util::port_of(&spec);
    let impostor = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let answering = tokio::spawn(async move {
        // Bounded: the test ends long before.
        for _ in 0..1000 {
            let Ok((mut conn, _)) = impostor.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut conn, &mut buf).await;
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut conn,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        }
    });

    let instance = rt.start(&spec).await.unwrap();
    let err = rt
        .wait_healthy(&spec, &instance, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unhealthy {
                last: ProbeFailure::NotThisInstance(p),
                ..
            } if p == port
        ),
        "{err:?}"
    );
    assert!(read(&spec.log).contains("httpd could not start"));
    answering.abort();
    rt.stop(&instance, Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn container_that_never_gets_healthy_times_out_with_the_last_probe() {
    let Some(p) =
        Project::new("container_that_never_gets_healthy_times_out_with_the_last_probe").await
    else {
        return;
    };
    let image = p.image("v1").await;
    let rt = p.runtime();
    let mut spec = p.spec("web", &image, None);
    spec.health_path = "/not-there".into();
    let instance = rt.start(&spec).await.unwrap();
    let err = rt
        .wait_healthy(&spec, &instance, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unhealthy {
                last: ProbeFailure::Status(404),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(rt.status(&instance).await, InstanceStatus::Running);
    rt.stop(&instance, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn ids_of_other_runtimes_are_not_managed() {
    let Some(p) = Project::new("ids_of_other_runtimes_are_not_managed").await else {
        return;
    };
    let image = p.image("v1").await;
    let rt = p.runtime();
    let spec = p.spec("web", &image, None);
    let instance = hifi_runtime::Instance {
        id: InstanceId::new("local:123:456:boot"),
        addr: (Ipv4Addr::LOCALHOST, 1).into(),
        env: spec.env.clone(),
        slot: spec.slot,
        service: spec.service.clone(),
        replica: 0,
        release: spec.release.clone(),
        runtime: RuntimeKind::Docker,
    };
    assert_eq!(rt.status(&instance).await, InstanceStatus::Unknown);
    let err = rt.stop(&instance, PATIENCE).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "service web (dev/green) has id `local:123:456:boot`, which the docker runtime did not issue, so it cannot manage it"
    );
    // A command spec is the local runtime's, not this one's.
    let mut command = spec.clone();
    command.program = hifi_runtime::Program::Command {
        command: "true".into(),
        workdir: p.dir.path().to_path_buf(),
        artifact: None,
    };
    assert!(matches!(
        rt.start(&command).await.unwrap_err(),
        Error::Unsupported { .. }
    ));
}
