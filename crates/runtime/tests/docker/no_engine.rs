//! Without a Docker engine: hifi works as long as nothing uses Docker, and
//! says clearly what is missing when something does. Runs everywhere.

use std::time::Duration;

use hifi_core::{Layout, RuntimeKind};
use hifi_runtime::docker::Engine;
use hifi_runtime::{Error, Instance, InstanceId, InstanceStatus, Program, Runtime, Runtimes};

use crate::util::Fixture;

#[tokio::test]
async fn without_an_engine_local_instances_work_and_docker_ones_fail_clearly() {
    let fx = Fixture::new();
    let socket = fx.path("no-docker.sock");
    let runtimes = Runtimes::with_engine(
        &Layout::new(fx.path("project")),
        "shop",
        Engine::new(&socket),
    );
    assert_eq!(runtimes.docker().project(), "shop");

    // Local instances are started, found and stopped as ever; discovery
    // does not fail for want of an engine.
    let spec = fx.spec_running("catalog", "exec sleep 600");
    let local = fx.track(runtimes.start(&spec).await.unwrap());
    assert_eq!(local.runtime, RuntimeKind::Local);
    assert_eq!(runtimes.discover().await.unwrap(), vec![local.clone()]);
    runtimes.stop(&local, Duration::from_secs(5)).await.unwrap();
    assert!(runtimes.discover().await.unwrap().is_empty());

    // A container cannot start, and the error says where hifi looked and
    // how to get an engine.
    let mut docker = fx.spec("catalog");
    docker.runtime = RuntimeKind::Docker;
    docker.program = Program::Image {
        image: format!("sha256:{}", "ab".repeat(32)),
        command: None,
    };
    let err = runtimes.start(&docker).await.unwrap_err();
    assert!(matches!(err, Error::DockerUnavailable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("no Docker engine answers at {}", socket.display())),
        "{message}"
    );
    assert!(message.contains("dockerd --bridge=none"), "{message}");

    let container = Instance {
        id: InstanceId::new(format!("docker:{}", "cd".repeat(32))),
        runtime: RuntimeKind::Docker,
        ..local
    };
    assert_eq!(runtimes.status(&container).await, InstanceStatus::Unknown);
    assert!(matches!(
        runtimes.stop(&container, Duration::ZERO).await.unwrap_err(),
        Error::DockerUnavailable { .. }
    ));
}
