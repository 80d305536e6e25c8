//! [`Runtimes`]: every runtime hifi can drive, and the dispatch of each
//! instance to the one its environment uses. An instance records the
//! runtime that started it, so a controller restarted with another
//! configuration still stops it with the right one.

use std::time::Duration;

use hifi_core::{Config, Layout, Protocol, RuntimeKind};

use crate::docker::{DockerRuntime, Engine};
use crate::kubernetes::{KubeRuntime, KubeconfigSource, ProxyPlane};
use crate::{Error, Instance, InstanceSpec, InstanceStatus, LocalRuntime, Result, Runtime};

/// The runtimes of one control plane: local processes (embedded, always
/// available), Docker containers (the engine is contacted only when an
/// instance uses it, so machines without Docker are fine) and Kubernetes
/// (a cluster is contacted only for an environment that runs there).
#[derive(Debug)]
pub struct Runtimes {
    local: LocalRuntime,
    docker: DockerRuntime,
    kubernetes: KubeRuntime,
}

/// Calls `$method` on the runtime of `$kind`.
macro_rules! dispatch {
    ($self:ident, $kind:expr, $method:ident($($arg:expr),*)) => {
        match $kind {
            RuntimeKind::Local => $self.local.$method($($arg),*).await,
            RuntimeKind::Docker => $self.docker.$method($($arg),*).await,
            RuntimeKind::Kubernetes => $self.kubernetes.$method($($arg),*).await,
        }
    };
}

impl Runtimes {
    /// The runtimes of the project laid out by `layout`, its containers
    /// labelled with the name of the project's root directory. Prefer
    /// [`Runtimes::with_project`], which takes the configured name.
    pub fn new(layout: &Layout) -> Runtimes {
        let project = layout
            .root()
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "hifi".to_owned());
        Runtimes::with_project(layout, &project)
    }

    /// The runtimes of project `project` (`[project] name`) laid out by
    /// `layout`: the local runtime keeps its records of what it started
    /// under it, and containers carry `hifi.project=<project>`. The Docker
    /// engine is the one `DOCKER_HOST` names, else `/var/run/docker.sock`.
    pub fn with_project(layout: &Layout, project: &str) -> Runtimes {
        Runtimes::with_engine(layout, project, Engine::from_env())
    }

    /// [`Runtimes::with_project`] with containers on `engine`.
    pub fn with_engine(layout: &Layout, project: &str, engine: Engine) -> Runtimes {
        Runtimes {
            local: LocalRuntime::with_records(layout.runtime_records()),
            docker: DockerRuntime::new(project, engine).with_home(&layout.state_dir()),
            kubernetes: KubeRuntime::new(KubeconfigSource::Default),
        }
    }

    /// The same runtimes, reading the kubeconfig from `source` (tests; a
    /// kubeconfig of hifi's own).
    pub fn with_kubeconfig(mut self, source: KubeconfigSource) -> Runtimes {
        self.kubernetes = KubeRuntime::new(source);
        self
    }

    /// The Kubernetes runtime.
    pub fn kubernetes(&self) -> &KubeRuntime {
        &self.kubernetes
    }

    /// The local runtime, which also runs hifi's own processes (the proxy).
    pub fn local(&self) -> &LocalRuntime {
        &self.local
    }

    /// The Docker runtime, and through it the engine that builds images.
    pub fn docker(&self) -> &DockerRuntime {
        &self.docker
    }
}

impl Runtime for Runtimes {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance> {
        dispatch!(self, spec.runtime, start(spec))
    }

    async fn wait_healthy(
        &self,
        spec: &InstanceSpec,
        instance: &Instance,
        timeout: Duration,
    ) -> Result<()> {
        dispatch!(
            self,
            instance.runtime,
            wait_healthy(spec, instance, timeout)
        )
    }

    async fn status(&self, instance: &Instance) -> InstanceStatus {
        dispatch!(self, instance.runtime, status(instance))
    }

    async fn probe(
        &self,
        instance: &Instance,
        path: &str,
        protocol: Protocol,
        timeout: Duration,
    ) -> Result<u16> {
        dispatch!(
            self,
            instance.runtime,
            probe(instance, path, protocol, timeout)
        )
    }

    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<()> {
        dispatch!(self, instance.runtime, stop(instance, grace))
    }

    /// Local instances, then containers, then Deployments. No Docker
    /// engine answering means no containers run (they end with their
    /// engine): that is not an error. A cluster that cannot be asked is
    /// warned about and skipped by the Kubernetes runtime itself.
    async fn discover(&self) -> Result<Vec<Instance>> {
        let mut found = self.local.discover().await?;
        match self.docker.discover().await {
            Ok(containers) => found.extend(containers),
            Err(Error::DockerUnavailable { socket, reason }) => {
                tracing::debug!(socket = %socket.display(), "no Docker engine, so no containers: {reason}");
            }
            Err(e) => return Err(e),
        }
        found.extend(self.kubernetes.discover().await?);
        Ok(found)
    }

    fn configure(&self, config: &Config) {
        self.kubernetes.configure(config);
    }

    fn cluster_plane(&self, env: &str) -> Option<ProxyPlane> {
        self.kubernetes.plane(env)
    }
}
