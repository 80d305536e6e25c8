//! hifi's runtime: the seam between the controller and wherever service
//! instances run.
//!
//! The controller only ever talks to the [`Runtime`] trait: start an instance
//! of one service for one (environment, slot, release), wait until it answers
//! its health path, probe it, ask whether it still runs, stop it. Everything
//! it needs to find an instance again after its own crash is in [`Instance`],
//! which is serializable so the controller can keep it in its store and
//! re-adopt running instances on restart. The identity inside
//! ([`InstanceId`]) is an opaque string: the local runtime fills it with a
//! pid and process start time, a Kubernetes runtime would put a pod name
//! there.
//!
//! [`LocalRuntime`], the embedded default, runs each instance as `sh -c
//! <command>` in its own session and process group on this machine, with its output
//! appended to a log file. Instances deliberately outlive the controller
//! (no pipes, no parent-death signal, no kill-on-drop): killing the control
//! plane must not interrupt traffic.
//!
//! [`DockerRuntime`] runs each instance as a container of a Docker engine on
//! this machine, from an image id built by [`docker::build_image`], with host
//! networking so it too serves on `127.0.0.1:$PORT`; labels on the container
//! let a restarted controller find it. The engine is contacted only when an
//! environment uses it.
//!
//! [`KubeRuntime`] runs each (service, slot) of an environment as a
//! Deployment and a Service in a Kubernetes namespace, from images pushed
//! to a registry and named by digest; the environment's proxy runs there
//! too ([`kubernetes::ProxyPlane`]).
//!
//! Limits: the local runtime is Linux-only (it reads `/proc`), and it can
//! only stop services that stay in the process group it gave them (a service
//! that daemonizes with `setsid` escapes it). The Docker runtime talks to a
//! unix socket only (no remote engines).
//!
//! # Layout
//!
//! - `lib.rs` — the [`Runtime`] trait, [`free_port`] and [`choose_port`].
//! - [`instance`] — what the controller hands in ([`InstanceSpec`], with a
//!   [`Program`] — a command or an image — and a [`Port`] wish) and keeps
//!   ([`Instance`], [`InstanceId`], [`InstanceStatus`]).
//! - `runtimes.rs` — [`Runtimes`]: one runtime per kind, dispatching each
//!   instance to the runtime its environment uses (a new runtime is a new
//!   variant there and a module beside `local` and `docker`).
//! - [`error`] — the crate's [`Error`], worded for the person running hifi.
//! - [`probe`] — one health probe in the instance's protocol (HTTP/1.1,
//!   h2c or gRPC; a hyper client connection).
//! - [`local`] — [`LocalRuntime`]: spawning, reaping, re-adoption and process
//!   group signalling (also of hifi's own processes, [`ProcessSpec`]);
//!   `local/procfs.rs` reads `/proc`, `local/logfile.rs` opens logs and
//!   reads their tail (both also used by `docker`).
//! - [`kubernetes`] — [`KubeRuntime`]: Deployments and Services through the
//!   API server (`kubernetes/mod.rs`), the objects rendered purely
//!   (`kubernetes/objects.rs`, also what `hifi manifests` prints), clients
//!   and error translation (`kubernetes/api.rs`), waiting on a Deployment
//!   by watch (`kubernetes/rollout.rs`), the in-cluster data plane
//!   (`kubernetes/plane.rs`) and the proxy's ConfigMap table source
//!   (`kubernetes/table_source.rs`).
//! - [`docker`] — [`DockerRuntime`]: containers through the Engine API
//!   (`docker/mod.rs`), the lazily contacted [`docker::Engine`]
//!   (`docker/engine.rs`), image builds and image ids (`docker/image.rs`),
//!   and following containers' output into their log files
//!   (`docker/logs.rs`).

pub mod docker;
pub mod error;
pub mod instance;
pub mod kubernetes;
pub mod local;
pub mod probe;
mod runtimes;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use hifi_core::Protocol;

pub use docker::DockerRuntime;
pub use error::{Error, ProbeFailure, Result};
pub use instance::{Instance, InstanceId, InstanceSpec, InstanceStatus, Port, Program};
pub use kubernetes::KubeRuntime;
pub use local::{LocalRuntime, ProcessSpec};
pub use runtimes::Runtimes;

/// Where service instances run: local processes, containers, a cluster.
///
/// Every future is `Send` so the controller can drive a generic runtime from
/// spawned tokio tasks. Implementations must accept an [`Instance`] that they
/// did not create in this process (one read back from the store after a
/// controller restart).
pub trait Runtime: Send + Sync + 'static {
    /// Starts one instance of `spec` and returns as soon as it is spawned,
    /// with the address it serves on; it does not wait for health (see
    /// [`Runtime::wait_healthy`]).
    fn start(&self, spec: &InstanceSpec) -> impl Future<Output = Result<Instance>> + Send;

    /// Probes `spec.health_path` in `spec.protocol` until it answers 2xx
    /// ([`probe::get_status`]: a `GET`, or a gRPC call).
    ///
    /// Fails as soon as the instance exits (the error carries its exit status
    /// and the last lines of its log), or at `timeout` with the last probe's
    /// failure.
    fn wait_healthy(
        &self,
        spec: &InstanceSpec,
        instance: &Instance,
        timeout: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Whether the instance still runs. Works for instances started by an
    /// earlier controller process.
    fn status(&self, instance: &Instance) -> impl Future<Output = InstanceStatus> + Send;

    /// Probes `path` on the instance once, in the protocol it speaks, and
    /// returns the status code ([`probe::get_status`]: a `GET` for HTTP/1.1
    /// and h2c; for gRPC a call whose error `grpc-status` is an error).
    fn probe(
        &self,
        instance: &Instance,
        path: &str,
        protocol: Protocol,
        timeout: Duration,
    ) -> impl Future<Output = Result<u16>> + Send;

    /// Asks the instance to terminate, waits up to `grace`, then kills it;
    /// returns once it is gone. Stopping an instance that is already gone is
    /// not an error.
    fn stop(&self, instance: &Instance, grace: Duration)
    -> impl Future<Output = Result<()>> + Send;

    /// Every instance this runtime finds running for the project by its own
    /// means (process records, container labels), whatever the controller's
    /// store says: how hifi finds what to stop after its state was lost.
    fn discover(&self) -> impl Future<Output = Result<Vec<Instance>>> + Send;

    /// Takes what it needs of the project's configuration (the Kubernetes
    /// runtime: each environment's cluster, namespace and registry); called
    /// at start and whenever `hifi.toml` changes. Most runtimes need
    /// nothing.
    fn configure(&self, config: &hifi_core::Config) {
        let _ = config;
    }

    /// The data plane of `env` when it runs where the instances run rather
    /// than on this machine — in the cluster, for Kubernetes — and `None`
    /// when hifi's local proxy serves it.
    fn cluster_plane(&self, env: &str) -> Option<kubernetes::ProxyPlane> {
        let _ = env;
        None
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before returning, so another program may take it
/// before the instance binds it; [`Runtime::wait_healthy`] notices that (the
/// instance exits, and the local runtime refuses to count another program's
/// answers as the instance's health).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::FreePort)?;
    Ok(listener.local_addr().map_err(Error::FreePort)?.port())
}

/// The host port for an instance: what `port` asks for, never one of
/// `reserved` unless fixed.
pub fn choose_port(port: Port, reserved: &BTreeSet<u16>) -> Result<u16> {
    match port {
        Port::Fixed(port) => return Ok(port),
        Port::Prefer(port)
            if !reserved.contains(&port)
                && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() =>
        {
            return Ok(port);
        }
        Port::Prefer(_) | Port::Any => {}
    }
    for _ in 0..20 {
        let port = free_port()?;
        if !reserved.contains(&port) {
            return Ok(port);
        }
    }
    Err(Error::FreePort(std::io::Error::other(
        "every free port offered was one hifi keeps for its own listeners",
    )))
}
