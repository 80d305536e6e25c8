//! Pushing an image to a registry, as composing does for Kubernetes
//! environments: against a real registry (Debian's `docker-registry`, the
//! CNCF distribution server) on 127.0.0.1, through a real engine. Skipped,
//! loudly, without either.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hifi_runtime::docker::push_image;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{PATIENCE, Project};

/// Where Debian's `docker-registry` package puts the server.
const REGISTRY: &str = "/usr/bin/docker-registry";

/// A registry serving from a temp dir on 127.0.0.1; stopped when dropped.
struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    async fn start(dir: &std::path::Path) -> Registry {
        let port = hifi_testkit::loopback_port();
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("registry").display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let registry = Registry { child, port };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while get(port, "/v2/", "").await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the registry never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        registry
    }
}

/// `GET path` on the registry: the status line and headers, or `None` when
/// nothing answers.
async fn get(port: u16, path: &str, accept: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut answer))
        .await
        .ok()?
        .ok()?;
    Some(answer)
}

#[tokio::test]
async fn an_image_is_pushed_once_and_named_by_the_registrys_digest() {
    let Some(project) = Project::new("push").await else {
        return;
    };
    if !std::path::Path::new(REGISTRY).exists() {
        hifi_testkit::skip(
            "push",
            &format!("no {REGISTRY}"),
            "apt-get install docker-registry",
        );
        return;
    }
    let registry = Registry::start(project.dir.path()).await;
    let image = project.image("v1").await;
    let repository = format!("127.0.0.1:{}/shop/web", registry.port);
    let log = project.path("push.log");
    let digest = push_image(&project.engine, &image, &repository, &log)
        .await
        .unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // The registry serves the manifest under that digest.
    let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
    let answer = get(
        registry.port,
        &format!("/v2/shop/web/manifests/{digest}"),
        accept,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("docker-content-digest: {digest}")),
        "{answer}"
    );
    // The same bytes pushed again are the same digest.
    assert_eq!(
        push_image(&project.engine, &image, &repository, &log)
            .await
            .unwrap(),
        digest
    );
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains(&format!(
            "==> hifi: pushed {image} as {repository}@{digest}"
        )),
        "{written}"
    );

    // The push's tag is the test's to remove (the image stays: it is shared).
    let tag = format!("{repository}:{}", &image.as_str()["sha256:".len()..][..12]);
    let options = bollard::query_parameters::RemoveImageOptions {
        noprune: true,
        ..Default::default()
    };
    let options = || options.clone();
    super::docker()
        .unwrap()
        .remove_image(&tag, Some(options()), None)
        .await
        .unwrap();

    // A registry that is not there fails the push with the reason.
    let gone = format!("127.0.0.1:{}/shop/web", hifi_testkit::loopback_port());
    let e = push_image(&project.engine, &image, &gone, &log)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("pushing image {image} to {gone} failed")),
        "{e}"
    );
}
