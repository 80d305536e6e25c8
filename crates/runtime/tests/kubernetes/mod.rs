//! Tests of the Kubernetes runtime against `hifi_testkit::kube::FakeKube`,
//! a fake API server on loopback that answers with real Kubernetes JSON:
//! applying a slot, waiting on it by watch, re-adopting it, deleting it,
//! and each failure a user must be told about clearly.

mod apply;
mod failures;
mod table_source;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hifi_core::{Config, Protocol, ReleaseId, RuntimeKind, Slot};
use hifi_runtime::kubernetes::KubeconfigSource;
use hifi_runtime::{InstanceSpec, KubeRuntime, Port, Program};
use hifi_testkit::kube::FakeKube;
use tempfile::TempDir;

/// A project with a service `catalog` (2 replicas) and two Kubernetes
/// environments, `staging` and `prod` (namespace `shop-live`).
pub const CONFIG: &str = r#"
[project]
name = "shop"

[registry]
url = "registry.example.com/shop"

[[service]]
name = "catalog"
path = "services/catalog"
run = "./serve"
health = "/healthz"
route = "/catalog"
image = "Dockerfile"
replicas = 2

[[environment]]
name = "staging"
port = 8100
cards_from = "In Dev"
runtime = "kubernetes"

[[environment]]
name = "prod"
port = 8500
promote_from = "staging"
runtime = "kubernetes"
[environment.kubernetes]
namespace = "shop-live"
requests = { cpu = "250m", memory = "128Mi" }
limits = { memory = "256Mi" }
"#;

/// The image every test runs, by digest.
pub const IMAGE: &str = "registry.example.com/shop/catalog@sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A fake cluster with the namespaces of [`CONFIG`], a kubeconfig leading
/// to it, and a runtime configured with [`CONFIG`].
pub struct Cluster {
    pub fake: FakeKube,
    pub dir: TempDir,
    pub runtime: KubeRuntime,
}

impl Cluster {
    pub async fn new() -> Cluster {
        Cluster::with_config(CONFIG).await
    }

    pub async fn with_config(config: &str) -> Cluster {
        let fake = FakeKube::start(&["shop-staging", "shop-live"]).await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = fake.kubeconfig(dir.path(), &["fake", "other"]);
        let runtime = KubeRuntime::new(KubeconfigSource::File(kubeconfig));
        runtime.configure(&Config::parse(config).unwrap());
        Cluster { fake, dir, runtime }
    }

    /// Another runtime on the same cluster, as a restarted controller has.
    pub fn restarted(&self) -> KubeRuntime {
        let runtime = KubeRuntime::new(KubeconfigSource::File(self.dir.path().join("kubeconfig")));
        runtime.configure(&Config::parse(CONFIG).unwrap());
        runtime
    }
}

/// The spec of `catalog` in `env`/`slot`: replica 0 carrying 2 replicas.
pub fn spec(env: &str, slot: Slot) -> InstanceSpec {
    InstanceSpec {
        env: env.into(),
        slot,
        service: "catalog".into(),
        replica: 0,
        replicas: 2,
        release: ReleaseId::compute("r1", &[]),
        runtime: RuntimeKind::Kubernetes,
        program: Program::Image {
            image: IMAGE.into(),
            command: None,
        },
        port: Port::Any,
        reserved_ports: Default::default(),
        vars: BTreeMap::from([
            ("GREETING".into(), "hello".into()),
            ("HIFI_URL_CATALOG".into(), "http://catalog".into()),
        ]),
        secret_vars: Default::default(),
        log: Path::new("/nonexistent/hifi-test.log").into(),
        health_path: "/healthz".into(),
        protocol: Protocol::Http1,
    }
}

/// Bound for anything the fake does at once.
pub const PATIENCE: Duration = Duration::from_secs(10);
