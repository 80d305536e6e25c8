//! Tests of the Docker runtime against a real engine: images built `FROM
//! scratch` with a static busybox (no registry is needed), whose `httpd`
//! serves `/healthz` as a file and `/cgi-bin/env` as a CGI script that
//! answers with the environment it got.
//!
//! Without an engine (or a static busybox) every test here returns early and
//! says so on the terminal, past the test harness's capture: `cargo test`
//! passes on a machine without Docker. `.ci/docker.sh start` starts one.

mod build;
mod discover;
mod no_engine;
mod push;
mod run;
mod stop;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    ListContainersOptions, RemoveContainerOptions, RemoveImageOptions,
};
use hifi_core::{ReleaseId, RuntimeKind, Slot};
use hifi_runtime::docker::{DockerRuntime, Engine, ImageId, build_image, image_tag};
use hifi_runtime::{InstanceSpec, Port, Program, free_port};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the static busybox comes from (Debian's busybox-static).
const BUSYBOX: &str = "/bin/busybox";

/// The test service's Dockerfile. The `RUN` step checks that build steps
/// work without a bridge network.
const DOCKERFILE: &str = r#"FROM scratch
COPY bin /bin
COPY www /www
ENV PATH=/bin
RUN ["/bin/busybox", "sh", "-c", "echo built-by-run > /www/built"]
CMD ["/bin/sh", "-c", "echo \"serving on 127.0.0.1:$PORT\"; exec httpd -f -v -p 127.0.0.1:$PORT -h /www"]
"#;

/// Answers with the variables a test sets, as the container got them.
const ENV_CGI: &str = r#"#!/bin/sh
echo "Content-Type: text/plain"
echo ""
echo "PORT=$PORT"
echo "GREETING=$GREETING"
echo "HIFI_ENV=$HIFI_ENV"
"#;

/// Applets the images get as links to busybox.
const APPLETS: &[&str] = &["sh", "httpd", "sleep", "cat", "echo"];

/// Generous bound for anything that should take a few seconds.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// An engine to test against, or `None` after saying loudly why the test
/// is skipped.
pub async fn engine_or_skip(test: &str) -> Option<Engine> {
    let skip = |why: String| {
        hifi_testkit::skip(
            test,
            &why,
            "start an engine with `.ci/docker.sh start`; it installs what is missing",
        );
        None
    };
    if !is_static_elf(Path::new(BUSYBOX)) {
        return skip(format!(
            "{BUSYBOX} is not a static busybox (install busybox-static)"
        ));
    }
    let engine = Engine::from_env();
    match tokio::time::timeout(Duration::from_secs(15), engine.ping()).await {
        Ok(Ok(())) => Some(engine),
        Ok(Err(e)) => skip(e.to_string()),
        Err(_) => skip(format!(
            "the engine at {} did not answer within 15s",
            engine.socket().display()
        )),
    }
}

/// An ELF file without a program interpreter (PT_INTERP) runs FROM scratch.
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false; // not a 64-bit ELF
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        at + 4 <= bytes.len() && u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) != 3
    })
}

/// One test's project: a unique name (so tests never see each other's
/// containers), a temp dir for contexts and logs, and cleanup of every
/// container of the project when dropped.
pub struct Project {
    pub name: String,
    pub dir: TempDir,
    pub engine: Engine,
    /// Tags of its own ([`Project::own_tag`]), removed when dropped.
    tags: std::sync::Mutex<Vec<String>>,
}

impl Project {
    /// `None` (the test is skipped) when there is no engine.
    pub async fn new(test: &str) -> Option<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let engine = engine_or_skip(test).await?;
        let name = format!(
            "t{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            test.replace('_', "-")
                .chars()
                .take(24)
                .collect::<String>()
                .trim_end_matches('-')
        );
        Some(Project {
            name,
            dir: tempfile::tempdir().unwrap(),
            engine,
            tags: Default::default(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A runtime of this project, as a (re)started controller makes one.
    pub fn runtime(&self) -> DockerRuntime {
        DockerRuntime::new(&self.name, Engine::from_env())
    }

    /// Writes the test service's build context for `version` (served as
    /// `/version`) and returns its directory.
    pub fn context(&self, version: &str) -> PathBuf {
        let dir = self.path(&format!("context-{version}"));
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::create_dir_all(dir.join("www/cgi-bin")).unwrap();
        fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
        for applet in APPLETS {
            let link = dir.join("bin").join(applet);
            if !link.exists() {
                symlink("busybox", link).unwrap();
            }
        }
        fs::write(dir.join("www/healthz"), "ok\n").unwrap();
        fs::write(dir.join("www/version"), format!("{version}\n")).unwrap();
        let cgi = dir.join("www/cgi-bin/env");
        fs::write(&cgi, ENV_CGI).unwrap();
        fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
        dir
    }

    /// Builds the test service at `version` and returns its image id.
    ///
    /// One build at a time: two first builds of the same content racing on
    /// an empty cache would make two images, and the shared tag would name
    /// either. Once one is built, the cache gives every later build its id.
    pub async fn image(&self, version: &str) -> ImageId {
        static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _turn = ONE_AT_A_TIME.lock().await;
        let context = self.context(version);
        build_image(
            &self.engine,
            &context,
            Path::new("Dockerfile"),
            &self.tag(version),
            &self.path("build.log"),
        )
        .await
        .unwrap()
    }

    /// The tag of the test service at `version`, shared by every test and
    /// run: the same version is always the same content, hence the same
    /// image, so tests never delete an image another one is building.
    pub fn tag(&self, version: &str) -> String {
        image_tag("hifi-runtime-tests", "web", version)
    }

    /// A tag of this test's own, removed when it ends (only the tag: the
    /// image it names must also have a shared [`Project::tag`]).
    pub fn own_tag(&self, version: &str) -> String {
        let tag = image_tag(&self.name, "web", version);
        self.tags.lock().unwrap().push(tag.clone());
        tag
    }

    /// A spec for `service` in dev/green running `image` (its own command
    /// unless `command`) on a free port.
    pub fn spec(&self, service: &str, image: &ImageId, command: Option<&str>) -> InstanceSpec {
        InstanceSpec {
            env: "dev".into(),
            slot: Slot::Green,
            service: service.into(),
            replica: 0,
            replicas: 1,
            release: ReleaseId::compute("r1", &[]),
            runtime: RuntimeKind::Docker,
            program: Program::Image {
                image: image.to_string(),
                command: command.map(str::to_owned),
            },
            port: Port::Fixed(free_port().unwrap()),
            reserved_ports: Default::default(),
            vars: BTreeMap::from([
                ("GREETING".into(), "hello-from-vars".into()),
                ("HIFI_ENV".into(), "dev".into()),
            ]),
            secret_vars: Default::default(),
            log: self.path(&format!("logs/dev/green/{service}.log")),
            health_path: "/healthz".into(),
            protocol: hifi_core::Protocol::Http1,
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Drop cannot await: clean up on a runtime of its own.
        let project = self.name.clone();
        let tags = std::mem::take(&mut *self.tags.lock().unwrap());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(docker) = docker() else { return };
                for id in containers(&docker, &project, true).await {
                    let options = RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    };
                    let _ = docker.remove_container(&id, Some(options)).await;
                }
                for tag in tags {
                    let options = RemoveImageOptions {
                        noprune: true,
                        ..Default::default()
                    };
                    let _ = docker.remove_image(&tag, Some(options), None).await;
                }
            });
        })
        .join();
    }
}

/// bollard directly, to check what the runtime did independently of it.
pub fn docker() -> Result<Docker, bollard::errors::Error> {
    let engine = Engine::from_env();
    Docker::connect_with_unix(
        &engine.socket().to_string_lossy(),
        120,
        &bollard::ClientVersion {
            major_version: 1,
            minor_version: 41,
        },
    )
}

/// Ids of the containers labelled with `project` (also stopped ones if `all`).
pub async fn containers(docker: &Docker, project: &str, all: bool) -> Vec<String> {
    let options = ListContainersOptions {
        all,
        filters: Some([("label".to_string(), vec![format!("hifi.project={project}")])].into()),
        ..Default::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// The container behind a `docker:` instance id; `None` once removed.
pub async fn inspect(
    docker: &Docker,
    id: &hifi_runtime::InstanceId,
) -> Option<ContainerInspectResponse> {
    let id = id.as_str().strip_prefix("docker:").expect("a docker id");
    docker.inspect_container(id, None).await.ok()
}

/// `GET path` over HTTP/1.0; the body of a 200 answer.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("no answer in time");
    // CGI scripts end their header lines with a bare \n.
    let end = ["\r\n\r\n", "\n\n"]
        .iter()
        .filter_map(|sep| answer.find(sep).map(|at| (at, sep.len())))
        .min()
        .expect("an HTTP answer");
    let (head, body) = (&answer[..end.0], &answer[end.0 + end.1..]);
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{answer}"
    );
    body.to_owned()
}

/// Polls `check` until it holds, panicking after [`PATIENCE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}
