//! [`Runtimes`]: every runtime hifi can drive, and the dispatch of each
//! instance to the one its environment uses. An instance records the
//! runtime that started it, so a controller restarted with another
//! configuration still stops it with the right one.

use std::time::Duration;

use hifi_core::{Layout, RuntimeKind};

use crate::{Instance, InstanceSpec, InstanceStatus, LocalRuntime, Result, Runtime};

/// The runtimes of one control plane. Today: local processes, embedded and
/// always available.
#[derive(Debug)]
pub struct Runtimes {
    local: LocalRuntime,
}

impl Runtimes {
    /// The runtimes of the project laid out by `layout`: they keep their
    /// records of what they started under it.
    pub fn new(layout: &Layout) -> Runtimes {
        Runtimes {
            local: LocalRuntime::with_records(layout.runtime_records()),
        }
    }

    /// The local runtime, which also runs hifi's own processes (the proxy).
    pub fn local(&self) -> &LocalRuntime {
        &self.local
    }

    fn of(&self, kind: RuntimeKind) -> &LocalRuntime {
        match kind {
            RuntimeKind::Local => &self.local,
        }
    }
}

impl Runtime for Runtimes {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance> {
        self.of(spec.runtime).start(spec).await
    }

    async fn wait_healthy(
        &self,
        spec: &InstanceSpec,
        instance: &Instance,
        timeout: Duration,
    ) -> Result<()> {
        self.of(instance.runtime)
            .wait_healthy(spec, instance, timeout)
            .await
    }

    async fn status(&self, instance: &Instance) -> InstanceStatus {
        self.of(instance.runtime).status(instance).await
    }

    async fn probe(&self, instance: &Instance, path: &str, timeout: Duration) -> Result<u16> {
        self.of(instance.runtime)
            .probe(instance, path, timeout)
            .await
    }

    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<()> {
        self.of(instance.runtime).stop(instance, grace).await
    }

    async fn discover(&self) -> Result<Vec<Instance>> {
        self.local.discover().await
    }
}
