//! [`DockerRuntime`]: each instance is a container of a Docker engine on
//! this machine, driven through the Engine API (bollard), never the CLI.
//!
//! A container runs an image by **id** (`sha256:…`, as built by
//! [`build_image`]), never by tag, with **host networking**: it listens on
//! `127.0.0.1:$PORT` like a local instance, and never gets a bridge or a
//! private-range address. It gets the spec's vars plus `PORT`, a small init
//! as PID 1 (so a service that does not handle signals still ends on
//! SIGTERM, as it would locally) and no restart policy: hifi supervises.
//! Labels (`hifi.project`, `hifi.env`, `hifi.slot`, `hifi.release`,
//! `hifi.service`, and `hifi.log` for the log file) let a restarted
//! controller find its containers again ([`Runtime::discover`]) and keep
//! their output flowing into their logs (see `logs.rs`).
//!
//! A run command (`Program::Image { command: Some(..) }`) means what it
//! means locally: `/bin/sh -c <command>` (so the image needs `/bin/sh`);
//! without one the image's own entrypoint and command run.
//!
//! Stopped containers are removed by [`Runtime::stop`]; exited ones are kept
//! until then (their exit code and output are what an error reports), and a
//! new start of the same (environment, slot, service) removes exited
//! leftovers of earlier ones.
//!
//! The engine is contacted lazily ([`Engine`]): without Docker, hifi works
//! as long as no environment uses it.

mod engine;
mod ignore;
mod image;
mod logs;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerWaitResponse,
    HostConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hifi_core::{Protocol, ReleaseId, RuntimeKind, Slot};
use tokio::time::sleep;

pub use self::engine::{DEFAULT_SOCKET, Engine};
pub use self::image::{
    BUILD_TIMEOUT, ImageId, PUSH_TIMEOUT, build_image, image_exists, image_id, image_tag,
    push_image,
};

use self::engine::{REQUEST_TIMEOUT, is_not_found};
use self::logs::Followers;
use crate::error::{Error, Result};
use crate::instance::{Instance, InstanceId, InstanceSpec, InstanceStatus, Program};
use crate::local::{logfile, procfs};
use crate::{Runtime, choose_port, probe};

/// The labels hifi puts on its containers.
pub mod label {
    /// The project (`[project] name`).
    pub const PROJECT: &str = "hifi.project";
    /// The environment.
    pub const ENV: &str = "hifi.env";
    /// The slot (`blue`, `green`).
    pub const SLOT: &str = "hifi.slot";
    /// The release id.
    pub const RELEASE: &str = "hifi.release";
    /// The service.
    pub const SERVICE: &str = "hifi.service";
    /// Which of the slot's instances of the service it is, from 0.
    pub const REPLICA: &str = "hifi.replica";
    /// The log file its output is appended to.
    pub const LOG: &str = "hifi.log";
    /// The state directory of the hifi that started it: two checkouts of
    /// one project on a machine never manage each other's containers.
    pub const HOME: &str = "hifi.home";
}

/// Prefix of the instance ids this runtime issues: `docker:<container id>`.
const ID_PREFIX: &str = "docker:";
/// Lines of output quoted when a container dies before becoming healthy.
const TAIL_LINES: usize = 15;
/// Beyond the grace period, how long the engine may take to kill and reap.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// How long the follower of an ended container may take to write its last
/// lines.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Runs instances as containers of a Docker engine; see the
/// [module docs](self).
///
/// Any number of `DockerRuntime`s (in this or a later process) can manage
/// the same containers: everything is asked of the engine.
#[derive(Debug)]
pub struct DockerRuntime {
    project: String,
    home: Option<String>,
    engine: Engine,
    followers: Followers,
}

impl DockerRuntime {
    /// The runtime of project `project` (the `hifi.project` label of its
    /// containers) on `engine`. Contacts nothing yet.
    pub fn new(project: &str, engine: Engine) -> DockerRuntime {
        DockerRuntime {
            project: project.to_owned(),
            home: None,
            engine,
            followers: Followers::default(),
        }
    }

    /// Manages only the containers started for the hifi state directory
    /// `home` (the `hifi.home` label), not those of another checkout of the
    /// same project.
    pub fn with_home(mut self, home: &std::path::Path) -> DockerRuntime {
        self.home = Some(home.to_string_lossy().into_owned());
        self
    }

    /// The project whose containers this runtime manages.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The engine, e.g. for [`build_image`].
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    async fn client(&self) -> Result<&Docker> {
        self.engine.client().await
    }

    fn container_id<'a>(&self, name: &str, id: &'a InstanceId) -> Result<&'a str> {
        container_of(id).ok_or_else(|| Error::ForeignId {
            instance: name.to_owned(),
            id: id.clone(),
            runtime: RuntimeKind::Docker,
        })
    }

    /// List filters: this project's containers with the `labels` given, in
    /// one of the `states` (any state if empty).
    fn filters(&self, labels: &[(&str, &str)], states: &[&str]) -> HashMap<String, Vec<String>> {
        let mut filters = HashMap::from([(
            "label".to_owned(),
            std::iter::once(format!("{}={}", label::PROJECT, self.project))
                .chain(
                    self.home
                        .iter()
                        .map(|home| format!("{}={home}", label::HOME)),
                )
                .chain(labels.iter().map(|(key, value)| format!("{key}={value}")))
                .collect(),
        )]);
        if !states.is_empty() {
            filters.insert(
                "status".to_owned(),
                states.iter().map(|s| (*s).to_owned()).collect(),
            );
        }
        filters
    }

    /// Removes exited containers of the same (environment, slot, service):
    /// leftovers of crashed instances that nobody stopped.
    async fn remove_leftovers(&self, docker: &Docker, spec: &InstanceSpec) {
        let filters = self.filters(
            &[
                (label::ENV, &spec.env),
                (label::SLOT, spec.slot.as_str()),
                (label::SERVICE, &spec.service),
                (label::REPLICA, &spec.replica.to_string()),
            ],
            // Not "created": a concurrent start of a replica may be between
            // its create and its start.
            &["exited", "dead"],
        );
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let Ok(found) = docker.list_containers(Some(options)).await else {
            return;
        };
        for container in found {
            if let Some(id) = container.id {
                tracing::debug!(container = %id, "removing an exited leftover");
                let _ = docker.remove_container(&id, Some(force_remove())).await;
            }
        }
    }

    /// What the engine says of the container, `None` if it is gone.
    async fn inspect(&self, docker: &Docker, id: &str) -> Result<Option<ContainerInspectResponse>> {
        match docker.inspect_container(id, None).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.engine.failed(format!("inspect container {id}"), e)),
        }
    }

    /// Status of container `id`; keeps a running one's output flowing into
    /// its log (a restarted controller takes over the following here).
    async fn container_status(&self, docker: &Docker, id: &str) -> InstanceStatus {
        match self.inspect(docker, id).await {
            Ok(Some(found)) => {
                let status = status_of(&found);
                if status.is_running() && !self.followers.is_following(id) {
                    self.follow_again(docker, id, &found);
                }
                status
            }
            Ok(None) => InstanceStatus::Exited {
                code: None,
                signal: None,
            },
            Err(_) => InstanceStatus::Unknown,
        }
    }

    fn follow_again(&self, docker: &Docker, id: &str, found: &ContainerInspectResponse) {
        let Some(log) = labels_of(found)
            .get(label::LOG)
            .map(std::path::PathBuf::from)
        else {
            return;
        };
        let since = logs::resume_point(&log);
        if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(&log) {
            use std::io::Write;
            let _ = writeln!(
                file,
                "==> hifi: following container {} again (output since the last line written; a few may repeat)",
                short(id)
            );
        }
        self.followers.follow(docker, id, &log, since);
    }

    /// Whether the socket listening on `port` is held by a process of the
    /// container: guards against counting another program's answers as the
    /// container's health. Anything unreadable counts as "yes".
    async fn owns_port(&self, docker: &Docker, id: &str, port: u16) -> bool {
        let Ok(inodes) = procfs::listening_inodes(port) else {
            return true;
        };
        if inodes.is_empty() {
            return true;
        }
        let Ok(top) = docker.top_processes(id, None).await else {
            return true;
        };
        let Some(column) = top
            .titles
            .as_ref()
            .and_then(|titles| titles.iter().position(|t| t == "PID"))
        else {
            return true;
        };
        let pids: Vec<u32> = top
            .processes
            .unwrap_or_default()
            .iter()
            .filter_map(|row| row.get(column)?.parse().ok())
            .collect();
        if pids.is_empty() {
            return true;
        }
        pids.into_iter()
            .any(|pid| match procfs::holds_socket(pid, &inodes) {
                Ok(held) => held,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(_) => true,
            })
    }

    /// The instance a running container of this project is, from its labels
    /// and its `PORT`; `None` for one whose labels are not hifi's.
    fn instance_of(&self, found: &ContainerInspectResponse) -> Option<Instance> {
        let id = found.id.as_deref()?;
        let labels = labels_of(found);
        let port: u16 = found
            .config
            .as_ref()?
            .env
            .as_ref()?
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("PORT="))?
            .parse()
            .ok()?;
        Some(Instance {
            id: InstanceId::new(format!("{ID_PREFIX}{id}")),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            env: labels.get(label::ENV)?.clone(),
            slot: labels.get(label::SLOT)?.parse::<Slot>().ok()?,
            service: labels.get(label::SERVICE)?.clone(),
            // Containers started before replicas carry no such label.
            replica: labels
                .get(label::REPLICA)
                .map_or(Some(0), |r| r.parse().ok())?,
            release: labels.get(label::RELEASE)?.parse::<ReleaseId>().ok()?,
            runtime: RuntimeKind::Docker,
        })
    }

    /// A readable, unique container name:
    /// `hifi-<project>-<env>-<slot>-<service>-<8 hex>`.
    fn container_name(&self, spec: &InstanceSpec) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nonce = std::collections::hash_map::RandomState::new()
            .hash_one((COUNTER.fetch_add(1, Ordering::Relaxed), std::process::id()));
        let part = |s: &str| -> String {
            s.chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
                    _ => '-',
                })
                .collect()
        };
        format!(
            "hifi-{}-{}-{}-{}-{:08x}",
            part(&self.project),
            part(&spec.env),
            spec.slot,
            part(&spec.service),
            nonce as u32
        )
    }
}

/// The container id inside a `docker:` instance id.
fn container_of(id: &InstanceId) -> Option<&str> {
    id.as_str()
        .strip_prefix(ID_PREFIX)
        .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The first 12 digits, as `docker ps` shows ids.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn labels_of(found: &ContainerInspectResponse) -> HashMap<String, String> {
    found
        .config
        .as_ref()
        .and_then(|config| config.labels.clone())
        .unwrap_or_default()
}

fn status_of(found: &ContainerInspectResponse) -> InstanceStatus {
    let Some(state) = &found.state else {
        return InstanceStatus::Unknown;
    };
    match state.status {
        Some(
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::RESTARTING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::STOPPING,
        ) => InstanceStatus::Running,
        // Created but never started: it does not run, and never ran.
        Some(ContainerStateStatusEnum::CREATED) => InstanceStatus::Exited {
            code: None,
            signal: None,
        },
        Some(
            ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::REMOVING,
        ) => InstanceStatus::Exited {
            code: state.exit_code.and_then(|code| i32::try_from(code).ok()),
            signal: None,
        },
        Some(ContainerStateStatusEnum::EMPTY) | None => match state.running {
            Some(true) => InstanceStatus::Running,
            Some(false) => InstanceStatus::Exited {
                code: state.exit_code.and_then(|code| i32::try_from(code).ok()),
                signal: None,
            },
            None => InstanceStatus::Unknown,
        },
    }
}

fn force_remove() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        ..Default::default()
    }
}

/// `docker stop`'s `t`: whole seconds, rounded up so the service gets at
/// least its grace.
fn grace_seconds(grace: Duration) -> i32 {
    let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

impl Runtime for DockerRuntime {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance> {
        let name = spec.describe();
        let Program::Image { image, command } = &spec.program else {
            return Err(Error::Unsupported {
                instance: name,
                what: spec.program.describe(),
            });
        };
        let Some(image) = ImageId::parse(image) else {
            return Err(Error::NotAnImageId {
                instance: name,
                image: image.clone(),
            });
        };
        let docker = self.client().await?;
        if !image_exists(&self.engine, &image).await? {
            return Err(Error::ImageMissing {
                instance: name,
                image: image.to_string(),
            });
        }
        self.remove_leftovers(docker, spec).await;
        let port = choose_port(spec.port, &spec.reserved_ports)?;

        let container_name = self.container_name(spec);
        let banner = format!(
            "{name} release {} on port {port}: container {container_name} of {}{}",
            spec.release,
            image,
            command
                .as_deref()
                .map(|c| format!(", sh -c {c:?}"))
                .unwrap_or_default()
        );
        logfile::open(&spec.log, &banner).map_err(|source| Error::Log {
            instance: name.clone(),
            path: spec.log.clone(),
            source,
        })?;

        // PORT is set after the vars, so they cannot override it by accident.
        let mut env: Vec<String> = spec
            .vars
            .iter()
            .filter(|(key, _)| key.as_str() != "PORT")
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        env.push(format!("PORT={port}"));
        let labels = HashMap::from([
            (label::PROJECT.to_owned(), self.project.clone()),
            (
                label::HOME.to_owned(),
                self.home.clone().unwrap_or_default(),
            ),
            (label::ENV.to_owned(), spec.env.clone()),
            (label::SLOT.to_owned(), spec.slot.as_str().to_owned()),
            (label::RELEASE.to_owned(), spec.release.as_str().to_owned()),
            (label::SERVICE.to_owned(), spec.service.clone()),
            (label::REPLICA.to_owned(), spec.replica.to_string()),
            (
                label::LOG.to_owned(),
                spec.log.to_string_lossy().into_owned(),
            ),
        ]);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            env: Some(env),
            labels: Some(labels),
            entrypoint: command
                .as_ref()
                .map(|c| vec!["/bin/sh".to_owned(), "-c".to_owned(), c.clone()]),
            cmd: command.as_ref().map(|_| Vec::new()),
            host_config: Some(HostConfig {
                // Never a bridge or a private-range address: the container
                // shares the host's network and listens on 127.0.0.1:PORT.
                network_mode: Some("host".to_owned()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(container_name.clone()),
            ..Default::default()
        };
        let created = match docker.create_container(Some(options), body).await {
            Ok(created) => created,
            // Removed since it was checked a moment ago.
            Err(e) if is_not_found(&e) => {
                return Err(Error::ImageMissing {
                    instance: name,
                    image: image.to_string(),
                });
            }
            Err(e) => {
                return Err(self
                    .engine
                    .failed(format!("create a container for {name}"), e));
            }
        };
        let id = created.id;
        if let Err(e) = docker.start_container(&id, None).await {
            let _ = docker.remove_container(&id, Some(force_remove())).await;
            return Err(self
                .engine
                .failed(format!("start container {container_name} for {name}"), e));
        }
        self.followers.follow(docker, &id, &spec.log, 0);
        tracing::info!(instance = %name, container = %container_name, port, "started");
        Ok(Instance {
            id: InstanceId::new(format!("{ID_PREFIX}{id}")),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            env: spec.env.clone(),
            slot: spec.slot,
            service: spec.service.clone(),
            replica: spec.replica,
            release: spec.release.clone(),
            runtime: RuntimeKind::Docker,
        })
    }

    async fn wait_healthy(
        &self,
        spec: &InstanceSpec,
        instance: &Instance,
        timeout: Duration,
    ) -> Result<()> {
        let id = self.container_id(&instance.describe(), &instance.id)?;
        let docker = self.client().await?;
        // Wakes the loop the moment the container ends: fail fast.
        let waiter = docker.clone().with_timeout(timeout + REQUEST_TIMEOUT);
        let ending = waiter
            .wait_container(
                id,
                Some(WaitContainerOptions {
                    condition: "not-running".to_owned(),
                }),
            )
            .boxed();
        let mut watched = Watched {
            runtime: self,
            docker,
            id,
            ending: Some(ending),
            log: &spec.log,
        };
        probe::until_healthy(spec, instance, timeout, &mut watched).await
    }

    async fn status(&self, instance: &Instance) -> InstanceStatus {
        let Some(id) = container_of(&instance.id) else {
            return InstanceStatus::Unknown;
        };
        match self.client().await {
            Ok(docker) => self.container_status(docker, id).await,
            Err(_) => InstanceStatus::Unknown,
        }
    }

    async fn probe(
        &self,
        instance: &Instance,
        path: &str,
        protocol: Protocol,
        timeout: Duration,
    ) -> Result<u16> {
        probe::once(instance, path, protocol, timeout).await
    }

    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<()> {
        let name = instance.describe();
        let id = self.container_id(&name, &instance.id)?;
        let docker = self.client().await?;
        // The engine sends the stop signal (SIGTERM), waits `t` seconds, then
        // SIGKILL; the request returns once the container has ended.
        let stopper = docker.clone().with_timeout(grace + KILL_WAIT);
        let options = StopContainerOptions {
            t: Some(grace_seconds(grace)),
            ..Default::default()
        };
        match stopper.stop_container(id, Some(options)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {
                self.followers.finish(id, Duration::ZERO).await;
                return Ok(());
            }
            Err(e) => return Err(self.engine.failed(format!("stop {name}"), e)),
        }
        // Its last words (e.g. "got SIGTERM") into the log before it goes.
        self.followers.finish(id, DRAIN_WAIT).await;
        match docker.remove_container(id, Some(force_remove())).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            // "removal already in progress": someone else finishes it.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {}
            Err(e) => {
                return Err(self
                    .engine
                    .failed(format!("remove the container of {name}"), e));
            }
        }
        tracing::info!(instance = %name, "stopped");
        Ok(())
    }

    async fn discover(&self) -> Result<Vec<Instance>> {
        let docker = self.client().await?;
        let options = ListContainersOptions {
            all: false,
            filters: Some(self.filters(&[], &["running"])),
            ..Default::default()
        };
        let listed = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.engine.failed("list the project's containers", e))?;
        let mut found = Vec::new();
        for id in listed.into_iter().filter_map(|c| c.id) {
            let Some(container) = self.inspect(docker, &id).await? else {
                continue;
            };
            if !status_of(&container).is_running() {
                continue;
            }
            match self.instance_of(&container) {
                Some(instance) => found.push(instance),
                None => tracing::warn!(
                    container = %id,
                    "a container labelled {}={} lacks hifi's other labels or PORT; ignored",
                    label::PROJECT,
                    self.project
                ),
            }
        }
        found.sort_by(|a, b| {
            (&a.env, a.slot, &a.service, a.replica).cmp(&(&b.env, b.slot, &b.service, b.replica))
        });
        Ok(found)
    }
}

/// A container as [`probe::until_healthy`] watches it: the engine's word on
/// whether it still runs, and a wait that ends when it does.
struct Watched<'a> {
    runtime: &'a DockerRuntime,
    docker: &'a Docker,
    id: &'a str,
    /// Spent once it has answered (an exit code, an error): the next round
    /// asks the engine.
    ending: Option<BoxStream<'static, Result<ContainerWaitResponse, bollard::errors::Error>>>,
    log: &'a std::path::Path,
}

impl probe::Watched for Watched<'_> {
    async fn ended(&mut self) -> Option<(InstanceStatus, String)> {
        let status = self.runtime.container_status(self.docker, self.id).await;
        if !status.is_exited() {
            return None;
        }
        self.runtime.followers.finish(self.id, DRAIN_WAIT).await;
        let tail = match logs::tail(self.docker, self.id, TAIL_LINES).await {
            Some(tail) => tail,
            None => logfile::tail(self.log, TAIL_LINES),
        };
        Some((status, tail))
    }

    async fn owns_port(&mut self, port: u16) -> bool {
        self.runtime.owns_port(self.docker, self.id, port).await
    }

    async fn pause(&mut self, pause: Duration) {
        match self.ending.as_mut() {
            Some(ending) => tokio::select! {
                _ = ending.next() => self.ending = None,
                () = sleep(pause) => {}
            },
            None => sleep(pause).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_docker_container_ids_only() {
        let id = InstanceId::new("docker:0123abcd");
        assert_eq!(container_of(&id), Some("0123abcd"));
        assert_eq!(container_of(&InstanceId::new("docker:")), None);
        assert_eq!(container_of(&InstanceId::new("docker:../x")), None);
        assert_eq!(container_of(&InstanceId::new("local:1:2:3")), None);
    }

    #[test]
    fn grace_is_rounded_up_to_whole_seconds() {
        assert_eq!(grace_seconds(Duration::ZERO), 0);
        assert_eq!(grace_seconds(Duration::from_millis(1)), 1);
        assert_eq!(grace_seconds(Duration::from_secs(10)), 10);
        assert_eq!(grace_seconds(Duration::from_millis(2500)), 3);
    }
}
