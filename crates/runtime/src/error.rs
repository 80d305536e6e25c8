//! The runtime's errors, worded for the person running hifi: each names the
//! instance, what was attempted and, where there is one, what to look at.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use hifi_core::RuntimeKind;

use crate::instance::{InstanceId, InstanceStatus};

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong starting, probing or stopping an instance.
///
/// `instance` fields read like `service catalog (dev/green)`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No port could be bound on 127.0.0.1.
    #[error("could not find a free TCP port on 127.0.0.1: {0}")]
    FreePort(#[source] io::Error),

    /// The artifact directory to run in is missing.
    #[error(
        "could not start {instance}: its working directory {} does not exist (is the artifact built?)",
        workdir.display()
    )]
    Workdir {
        /// The instance.
        instance: String,
        /// The missing directory.
        workdir: PathBuf,
    },

    /// The instance's working directory could not be made from its artifact.
    #[error("could not prepare the working directory {} of {instance}: {source}", workdir.display())]
    LinkedWorkdir {
        /// The instance.
        instance: String,
        /// The working directory.
        workdir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// The log file could not be created or opened.
    #[error("could not open log file {} for {instance}: {source}", path.display())]
    Log {
        /// The instance.
        instance: String,
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// `sh -c <command>` could not be spawned.
    #[error("could not start `sh -c {command}` for {instance} in {}: {source}", workdir.display())]
    Spawn {
        /// The instance.
        instance: String,
        /// The run command.
        command: String,
        /// Where it was to run.
        workdir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// The process started but its identity could not be read back, so it
    /// could never be found again safely; it has been killed.
    #[error(
        "started {instance} as pid {pid} but could not read its start time from /proc: {source}"
    )]
    Identify {
        /// The instance.
        instance: String,
        /// The pid it got.
        pid: u32,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// The instance exited while hifi waited for it to become healthy.
    #[error(
        "{instance} {status} before it became healthy; last lines of {}:\n{}",
        log.display(),
        indent_tail(tail)
    )]
    ExitedBeforeHealthy {
        /// The instance.
        instance: String,
        /// How it ended.
        status: InstanceStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines it wrote in this run.
        tail: String,
    },

    /// The instance kept running but never answered 2xx in time.
    #[error(
        "{instance} did not answer 2xx on {path} within {} (last: {last})",
        fmt_duration(*timeout)
    )]
    Unhealthy {
        /// The instance.
        instance: String,
        /// The health path.
        path: String,
        /// How long hifi waited.
        timeout: Duration,
        /// What the last probe saw.
        last: ProbeFailure,
    },

    /// One probe got no HTTP answer.
    #[error("probe of {instance} at {url} failed: {failure}")]
    Probe {
        /// The instance.
        instance: String,
        /// What was requested.
        url: String,
        /// Why it failed.
        failure: ProbeFailure,
    },

    /// Signalling the instance's process group failed for a reason other
    /// than the group being gone (e.g. it belongs to another user).
    #[error("could not stop {instance}: sending {signal} to process group {pgid} failed: {source}")]
    Signal {
        /// The instance.
        instance: String,
        /// `SIGTERM` or `SIGKILL`.
        signal: &'static str,
        /// The process group.
        pgid: i32,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Processes of the group were still alive well after SIGKILL (stuck in
    /// the kernel, e.g. on a hung file system).
    #[error("could not stop {instance}: process group {pgid} is still alive after SIGKILL")]
    StillRunning {
        /// The instance.
        instance: String,
        /// The process group.
        pgid: i32,
    },

    /// The runtime cannot run this kind of program (an image given to the
    /// local runtime).
    #[error("could not start {instance}: this runtime cannot run {what}")]
    Unsupported {
        /// The instance.
        instance: String,
        /// What it was asked to run.
        what: String,
    },

    /// The id was issued by another runtime (or is corrupt).
    #[error(
        "{instance} has id `{id}`, which the {runtime} runtime did not issue, so it cannot manage it"
    )]
    ForeignId {
        /// The instance.
        instance: String,
        /// The id.
        id: InstanceId,
        /// The runtime that was asked to manage it.
        runtime: RuntimeKind,
    },

    /// No Docker engine answers on the socket hifi talks to.
    #[error(
        "no Docker engine answers at {} ({reason}); environments with runtime = \"docker\" need one: \
         start it (`sudo systemctl start docker`, or `sudo dockerd --bridge=none --iptables=false --ip-masq=false &`), \
         or point DOCKER_HOST at its socket (unix://...)",
        socket.display()
    )]
    DockerUnavailable {
        /// The socket (from `DOCKER_HOST`, else `/var/run/docker.sock`).
        socket: PathBuf,
        /// Why it did not answer.
        reason: String,
    },

    /// The Docker engine answered, but refused or failed a request.
    #[error("the Docker engine could not {what}: {message}")]
    Docker {
        /// What hifi asked for, e.g. `create a container for service catalog (dev/green)`.
        what: String,
        /// The engine's answer.
        message: String,
    },

    /// An image was named by something other than its id.
    #[error(
        "could not start {instance}: `{image}` is not an image id (sha256:...); hifi runs images by id, \
         never by tag, so that what runs is exactly what was built"
    )]
    NotAnImageId {
        /// The instance.
        instance: String,
        /// What was given.
        image: String,
    },

    /// The image id to run is not (or no longer) in the engine.
    #[error(
        "could not start {instance}: image {image} does not exist in the Docker engine \
         (was it removed, e.g. by `docker image prune`?); hifi runs only the image recorded \
         with the release, so a new release (a new commit) is needed to build another"
    )]
    ImageMissing {
        /// The instance.
        instance: String,
        /// The image id.
        image: String,
    },

    /// An image build failed.
    #[error("building image {tag} failed: {reason}; the build output is in {}", log.display())]
    Build {
        /// The tag it was to get.
        tag: String,
        /// The builder's last words.
        reason: String,
        /// The build log.
        log: PathBuf,
    },

    /// Kubernetes refused or failed what hifi asked of it (boxed: its
    /// variants are large, and this error travels far).
    #[error(transparent)]
    Kube(Box<KubeError>),

    /// An image could not be pushed to its registry.
    #[error("pushing image {image} to {repository} failed: {reason}; the push output is in {}", log.display())]
    Push {
        /// The image id.
        image: String,
        /// Where it was pushed.
        repository: String,
        /// The engine's or registry's words.
        reason: String,
        /// The push log.
        log: PathBuf,
    },

    /// The build context directory could not be read.
    #[error("could not read the build context {}: {source}", dir.display())]
    BuildContext {
        /// The context directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Failures of the Kubernetes runtime; each names the object (`Deployment
/// shop-prod/catalog-green`) and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No kubeconfig could be read, or it has no such context.
    #[error("environment {env} runs on Kubernetes, but {reason}")]
    Kubeconfig {
        /// The environment.
        env: String,
        /// What is wrong with the kubeconfig, and what to do.
        reason: String,
    },

    /// The environment is not one this runtime was configured with.
    #[error(
        "{instance}: environment {env} is not configured for Kubernetes (its `runtime` or `[registry]` changed?)"
    )]
    NoTarget {
        /// The instance.
        instance: String,
        /// The environment.
        env: String,
    },

    /// The API server could not be reached.
    #[error(
        "could not reach the Kubernetes API server of environment {env} to {verb} {object}: {reason}"
    )]
    Unreachable {
        /// The environment.
        env: String,
        /// What hifi was doing: `apply`, `get`, `delete`, `watch`, `list`.
        verb: String,
        /// The object, e.g. `Deployment shop-prod/catalog-green`.
        object: String,
        /// Why.
        reason: String,
    },

    /// RBAC refused a verb (403).
    #[error(
        "Kubernetes refused to let hifi {verb} {object}: {message}; grant hifi the Role that `hifi manifests {env} --rbac` prints"
    )]
    Forbidden {
        /// The environment.
        env: String,
        /// The verb.
        verb: String,
        /// The object.
        object: String,
        /// The API server's message.
        message: String,
    },

    /// A resource quota refused the object.
    #[error("Kubernetes refused to {verb} {object}: a resource quota is used up: {message}")]
    Quota {
        /// The verb.
        verb: String,
        /// The object.
        object: String,
        /// The API server's message.
        message: String,
    },

    /// The namespace does not exist (hifi does not create namespaces).
    #[error(
        "namespace {namespace} does not exist, so hifi cannot {verb} {object}; create it (`kubectl create namespace {namespace}`) and grant hifi its Role there"
    )]
    NoNamespace {
        /// The namespace.
        namespace: String,
        /// The verb.
        verb: String,
        /// The object.
        object: String,
    },

    /// Any other refusal or failure of the API server.
    #[error("could not {verb} {object}: {reason}")]
    Api {
        /// The verb.
        verb: String,
        /// The object.
        object: String,
        /// The API server's answer.
        reason: String,
    },

    /// A pod of the Deployment cannot pull its image.
    #[error("{deployment} cannot run: pod {pod} cannot pull image {image} ({reason}: {message})")]
    ImagePull {
        /// The Deployment.
        deployment: String,
        /// The pod.
        pod: String,
        /// The image.
        image: String,
        /// `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`…
        reason: String,
        /// The kubelet's message.
        message: String,
    },

    /// The Deployment's pods cannot be created (a quota, an admission
    /// webhook), or a container cannot start.
    #[error("{deployment} cannot run: {message}")]
    PodsRefused {
        /// The Deployment.
        deployment: String,
        /// What Kubernetes said.
        message: String,
    },

    /// The Deployment did not become available in time.
    #[error(
        "{deployment} did not become available within {}: {available} of {wanted} replica(s) available{detail}",
        fmt_duration(*timeout)
    )]
    NotAvailable {
        /// The Deployment.
        deployment: String,
        /// How long hifi waited.
        timeout: Duration,
        /// Available replicas at the end.
        available: i32,
        /// Replicas wanted.
        wanted: i32,
        /// The last condition or pod state seen, `; …`, or empty.
        detail: String,
    },

    /// The Deployment vanished while hifi waited for it.
    #[error("{deployment} was deleted while hifi waited for it to become available")]
    Vanished {
        /// The Deployment.
        deployment: String,
    },
}

impl From<KubeError> for Error {
    fn from(e: KubeError) -> Self {
        Error::Kube(Box::new(e))
    }
}

/// Why a health probe did not count as healthy.
#[derive(Debug, thiserror::Error)]
pub enum ProbeFailure {
    /// Nothing accepted the connection.
    #[error("connection refused")]
    Refused,
    /// Connecting failed otherwise.
    #[error("could not connect: {0}")]
    Connect(#[source] io::Error),
    /// No complete answer within the probe's timeout.
    #[error("no answer within {}", fmt_duration(*.0))]
    Timeout(Duration),
    /// The connection broke or the answer was not HTTP.
    #[error("{0}")]
    Http(#[source] hyper::Error),
    /// The path cannot be put in a request line.
    #[error("`{0}` is not a valid URL path")]
    InvalidPath(String),
    /// An answer, but not 2xx.
    #[error("answered {0}")]
    Status(u16),
    /// A gRPC answer whose `grpc-status` is an error (neither 0, OK, nor
    /// 12, UNIMPLEMENTED).
    #[error("answered with grpc-status {0}")]
    GrpcStatus(String),
    /// The port answered, but it is held by a program outside the instance
    /// (the instance could not bind it).
    #[error("port {0} is answered by another program, not by this instance")]
    NotThisInstance(u16),
}

/// `30s`, `1.5s`, `250ms`: how a user wrote it in hifi.toml.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Indents log lines so they stand apart from hifi's own words.
fn indent_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        return "  (nothing was written in this run)".to_owned();
    }
    tail.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
