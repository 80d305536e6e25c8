//! [`KubeRuntime`]: each (service, slot) of a Kubernetes environment is a
//! Deployment `<service>-<slot>` with the service's `replicas` and a
//! readiness probe on its health path, plus a Service of the same name, in
//! the environment's namespace (`<project>-<env>` by default).
//!
//! Kubernetes scales a slot itself ([`RuntimeKind::scales_slots`]): the
//! controller starts one instance per (service, slot) — replica 0, whose
//! spec carries the number of replicas — and that instance *is* the
//! Deployment. Objects are applied with server-side apply, field manager
//! `hifi`; a start returns once they are applied, and
//! [`Runtime::wait_healthy`] watches the Deployment until every replica is
//! available, failing fast, with the object named, on what Kubernetes says
//! will never work (an image that cannot be pulled, a crash loop, pods a
//! quota refuses, a progress deadline exceeded). [`Runtime::stop`] deletes
//! the Deployment and its Service. Labels `hifi.dev/{project,environment,
//! service,slot,release}` (the full release id in the annotation
//! `hifi.dev/release`) let [`Runtime::discover`] re-adopt what runs after a
//! restart.
//!
//! Images run by registry digest (`<registry>/<service>@sha256:…`), never
//! by tag: the controller resolves the reference recorded when the image
//! was pushed. The environment's data plane runs in the cluster too
//! ([`ProxyPlane`]): hifi's own proxy as the `hifi-proxy` Deployment, its
//! routing table in a ConfigMap it watches ([`table_source`]), its per-slot
//! figures read through the API server.
//!
//! Every environment has its own [`Target`] (context, namespace, registry),
//! given by [`KubeRuntime::configure`]; clients are made per kubeconfig
//! context on first use, so a machine without a kubeconfig is fine as long
//! as no environment runs on Kubernetes, and a broken kubeconfig fails only
//! the environments that use it.
//!
//! The controller asks about every instance on every pass; those answers
//! ([`Runtime::status`], [`Runtime::probe`]) come from one listing of the
//! namespace's Deployments at most [`STATUS_TTL`] old, so the API server
//! sees about one request a second per namespace while nothing changes,
//! however many services there are.
//!
//! Limits: it has been tested against a faithful fake of the API server,
//! not a live cluster; hifi does not create namespaces; an instance's
//! address is its Service's cluster IP, which only the cluster reaches.

pub mod api;
pub mod objects;
pub mod plane;
mod rollout;
pub mod table_source;
pub mod target;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hifi_core::{Config, Protocol, ReleaseId, RuntimeKind, Slot};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, ListParams};
use tokio::time::Instant;

pub use self::api::KubeconfigSource;
pub use self::plane::ProxyPlane;
pub use self::target::Target;

use self::api::{Clients, bounded};
use self::objects::{Object, describe, label, selector_string, slot_name, slot_objects};
use crate::Runtime;
use crate::error::{Error, KubeError, ProbeFailure, Result};
use crate::instance::{Instance, InstanceId, InstanceSpec, InstanceStatus, Program};

/// Prefix of the instance ids this runtime issues:
/// `kubernetes:<namespace>/<deployment>`.
const ID_PREFIX: &str = "kubernetes:";
/// How often a stopped Deployment is looked for until it is gone.
const GONE_POLL: Duration = Duration::from_millis(200);
/// Beyond the grace period, how long a delete may take to be seen through.
const DELETE_WAIT: Duration = Duration::from_secs(30);

/// How long one listing of a namespace's Deployments answers
/// [`Runtime::status`] and [`Runtime::probe`]: the controller asks about
/// every instance on every pass (10 a second), which must not become a
/// request per instance per pass to the API server.
pub const STATUS_TTL: Duration = Duration::from_secs(1);

/// What one listing says of a Deployment: whether it is being deleted, and
/// how many of its replicas are available (ready).
#[derive(Debug, Clone, Copy)]
struct Seen {
    deleting: bool,
    available: i32,
}

/// The Deployments of one namespace as last listed.
#[derive(Debug)]
struct Listing {
    at: Instant,
    deployments: HashMap<String, Seen>,
}

/// What every part of the runtime shares: the clients, the targets (which
/// name the project as `hifi.toml` does), the last listing of each
/// namespace.
#[derive(Debug)]
pub(crate) struct Shared {
    clients: Clients,
    targets: RwLock<BTreeMap<String, Target>>,
    listings: std::sync::Mutex<HashMap<(Option<String>, String), Listing>>,
}

impl Shared {
    fn target(&self, env: &str) -> Option<Target> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(env)
            .cloned()
    }
}

/// Runs instances as Deployments of a Kubernetes cluster; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct KubeRuntime {
    shared: Arc<Shared>,
}

impl KubeRuntime {
    /// A runtime reading the kubeconfig from `source` when an environment
    /// first needs it. No environment (nor project name: labels carry
    /// `[project] name`) is known until [`KubeRuntime::configure`].
    pub fn new(source: KubeconfigSource) -> KubeRuntime {
        KubeRuntime {
            shared: Arc::new(Shared {
                clients: Clients::new(source),
                targets: RwLock::new(BTreeMap::new()),
                listings: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Takes the Kubernetes environments of `config` (called again when
    /// `hifi.toml` changes).
    pub fn configure(&self, config: &Config) {
        let targets = Target::all(config)
            .into_iter()
            .map(|t| (t.env.clone(), t))
            .collect();
        *self
            .shared
            .targets
            .write()
            .unwrap_or_else(|e| e.into_inner()) = targets;
    }

    /// The target of `env`, if it runs on Kubernetes.
    pub fn target(&self, env: &str) -> Option<Target> {
        self.shared.target(env)
    }

    /// The data plane of `env` in its cluster, if it runs on Kubernetes.
    pub fn plane(&self, env: &str) -> Option<ProxyPlane> {
        Some(ProxyPlane::new(self.shared.clone(), self.target(env)?))
    }

    fn target_of(&self, instance: &str, env: &str) -> Result<Target> {
        self.target(env).ok_or_else(|| {
            KubeError::NoTarget {
                instance: instance.to_owned(),
                env: env.to_owned(),
            }
            .into()
        })
    }

    /// Namespace and Deployment name inside an instance id.
    fn deployment_of<'a>(&self, instance: &'a Instance) -> Result<(&'a str, &'a str)> {
        parse_id(&instance.id).ok_or_else(|| Error::ForeignId {
            instance: instance.describe(),
            id: instance.id.clone(),
            runtime: RuntimeKind::Kubernetes,
        })
    }

    /// Deployment `name` of `namespace` as a listing at most [`STATUS_TTL`]
    /// old says; `None` when it is not there.
    async fn seen(&self, target: &Target, namespace: &str, name: &str) -> Result<Option<Seen>> {
        let key = (target.context.clone(), namespace.to_owned());
        {
            let listings = self
                .shared
                .listings
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(listing) = listings.get(&key)
                && listing.at.elapsed() < STATUS_TTL
            {
                return Ok(listing.deployments.get(name).copied());
            }
        }
        let client = self.shared.clients.client(target).await?;
        let api: Api<Deployment> = Api::namespaced(client, namespace);
        let selector = selector_string(&BTreeMap::from([
            (
                label::PROJECT.to_owned(),
                objects::label_value(&target.project),
            ),
            (label::COMPONENT.to_owned(), "service".to_owned()),
        ]));
        let what = format!("the Deployments of namespace {namespace}");
        let listed = bounded(
            target,
            "list",
            &what,
            api.list(&ListParams::default().labels(&selector)),
        )
        .await?;
        let deployments: HashMap<String, Seen> = listed
            .items
            .iter()
            .filter_map(|d| {
                Some((
                    d.metadata.name.clone()?,
                    Seen {
                        deleting: d.metadata.deletion_timestamp.is_some(),
                        available: d
                            .status
                            .as_ref()
                            .and_then(|s| s.available_replicas)
                            .unwrap_or(0),
                    },
                ))
            })
            .collect();
        let found = deployments.get(name).copied();
        self.shared
            .listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                Listing {
                    at: Instant::now(),
                    deployments,
                },
            );
        Ok(found)
    }

    /// Forgets the listing of `namespace`: what was just applied or deleted
    /// is seen on the next question.
    fn forget(&self, target: &Target, namespace: &str) {
        self.shared
            .listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(target.context.clone(), namespace.to_owned()));
    }

    /// The instance a Deployment of this project is, from its labels and
    /// annotation; `None` for one whose labels are not hifi's.
    fn instance_of(
        &self,
        deployment: &Deployment,
        addrs: &HashMap<String, SocketAddr>,
    ) -> Option<Instance> {
        let meta = &deployment.metadata;
        let labels = meta.labels.as_ref()?;
        let name = meta.name.as_deref()?;
        let namespace = meta.namespace.as_deref()?;
        let release = meta
            .annotations
            .as_ref()?
            .get(label::RELEASE)?
            .parse::<ReleaseId>()
            .ok()?;
        Some(Instance {
            id: InstanceId::new(format!("{ID_PREFIX}{namespace}/{name}")),
            addr: addrs.get(name).copied().unwrap_or_else(unknown_addr),
            env: labels.get(label::ENVIRONMENT)?.clone(),
            slot: labels.get(label::SLOT)?.parse::<Slot>().ok()?,
            service: labels.get(label::SERVICE)?.clone(),
            replica: 0,
            release,
            runtime: RuntimeKind::Kubernetes,
        })
    }
}

/// The address recorded when a Service has no cluster IP (yet).
fn unknown_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80))
}

/// A Service's cluster IP and port 80, the address its slot is reached at
/// inside the cluster.
fn cluster_addr(service: &Service) -> Option<SocketAddr> {
    let ip: IpAddr = service.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok()?;
    Some(SocketAddr::new(ip, 80))
}

/// `kubernetes:<namespace>/<deployment>` → (namespace, deployment).
fn parse_id(id: &InstanceId) -> Option<(&str, &str)> {
    let (namespace, name) = id.as_str().strip_prefix(ID_PREFIX)?.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then_some((namespace, name))
}

impl Runtime for KubeRuntime {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance> {
        let instance = spec.describe();
        if spec.replica != 0 {
            return Err(Error::Unsupported {
                instance,
                what:
                    "a replica of its own: Kubernetes scales a slot itself, from replica 0's spec"
                        .to_owned(),
            });
        }
        let Program::Image { image, .. } = &spec.program else {
            return Err(Error::Unsupported {
                instance,
                what: spec.program.describe(),
            });
        };
        if !image.contains("@sha256:") {
            return Err(Error::NotAnImageId {
                instance,
                image: image.clone(),
            });
        }
        let target = self.target_of(&instance, &spec.env)?;
        let client = self.shared.clients.client(&target).await?;
        let objects = slot_objects(&target, spec, image);
        let applied = async {
            let mut applied = Vec::with_capacity(objects.len());
            for object in &objects {
                applied.push(api::apply(&client, &target, object).await?);
            }
            Ok::<_, Error>(applied)
        }
        .await;
        self.forget(&target, &target.namespace);
        let applied = applied?;
        let name = slot_name(&spec.service, spec.slot.as_str());
        // The Service as applied carries the cluster IP it was given.
        let addr = applied
            .iter()
            .find_map(|o| match o {
                Object::Service(service) => cluster_addr(service),
                _ => None,
            })
            .unwrap_or_else(unknown_addr);
        tracing::info!(%instance, deployment = %name, namespace = %target.namespace, "applied");
        Ok(Instance {
            id: InstanceId::new(format!("{ID_PREFIX}{}/{name}", target.namespace)),
            addr,
            env: spec.env.clone(),
            slot: spec.slot,
            service: spec.service.clone(),
            replica: 0,
            release: spec.release.clone(),
            runtime: RuntimeKind::Kubernetes,
        })
    }

    async fn wait_healthy(
        &self,
        spec: &InstanceSpec,
        instance: &Instance,
        timeout: Duration,
    ) -> Result<()> {
        let (_, name) = self.deployment_of(instance)?;
        let target = self.target_of(&instance.describe(), &instance.env)?;
        let client = self.shared.clients.client(&target).await?;
        let selector = objects::slot_selector(&target, &instance.service, instance.slot.as_str());
        rollout::wait_available(
            &client,
            &target,
            name,
            &selector,
            i32::from(spec.replicas.max(1)),
            timeout,
        )
        .await?;
        tracing::info!(instance = %instance.describe(), "available");
        Ok(())
    }

    async fn status(&self, instance: &Instance) -> InstanceStatus {
        let Some((namespace, name)) = parse_id(&instance.id) else {
            return InstanceStatus::Unknown;
        };
        let Some(target) = self.target(&instance.env) else {
            return InstanceStatus::Unknown;
        };
        match self.seen(&target, namespace, name).await {
            Ok(Some(seen)) if !seen.deleting => InstanceStatus::Running,
            Ok(_) => InstanceStatus::Exited {
                code: None,
                signal: None,
            },
            Err(e) => {
                tracing::debug!("{e}");
                InstanceStatus::Unknown
            }
        }
    }

    /// The health path as the kubelet probes it on every pod (the
    /// readiness probe): 200 while at least one replica of the slot is
    /// available, 503 while none is — read from the Deployment's status
    /// (one listing a second for the namespace), not a request of hifi's
    /// own through the API server for every instance every second.
    /// [`KubeRuntime::probe_through_api`] sends one when it must be a
    /// request.
    async fn probe(
        &self,
        instance: &Instance,
        path: &str,
        protocol: Protocol,
        timeout: Duration,
    ) -> Result<u16> {
        // Configuration keeps services that are not HTTP/1.1 off Kubernetes.
        let _ = (path, protocol, timeout);
        let (namespace, name) = self.deployment_of(instance)?;
        let target = self.target_of(&instance.describe(), &instance.env)?;
        Ok(match self.seen(&target, namespace, name).await? {
            Some(seen) if !seen.deleting && seen.available > 0 => 200,
            _ => 503,
        })
    }

    /// Deletes the slot's Deployment, Service and Secret; Kubernetes gives its pods
    /// their termination grace. Returns once the Deployment is gone.
    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<()> {
        let (namespace, name) = self.deployment_of(instance)?;
        let target = self.target_of(&instance.describe(), &instance.env)?;
        if target.namespace != namespace {
            tracing::warn!(
                instance = %instance.describe(),
                "stopping in namespace {namespace}, where it was started (the environment now uses {})",
                target.namespace
            );
        }
        let target = Target {
            namespace: namespace.to_owned(),
            ..target
        };
        let client = self.shared.clients.client(&target).await?;
        let deleted = async {
            api::delete::<Service>(&client, &target, "Service", name).await?;
            api::delete::<Deployment>(&client, &target, "Deployment", name).await?;
            // The slot's secret vars, if it had any (its pods have read them).
            let secret = objects::secret_name(name);
            api::delete::<Secret>(&client, &target, "Secret", &secret).await
        }
        .await;
        self.forget(&target, namespace);
        deleted?;
        let api: Api<Deployment> = Api::namespaced(client, namespace);
        let object = describe("Deployment", namespace, name);
        let deadline = Instant::now() + grace + DELETE_WAIT;
        while bounded(&target, "get", &object, api.get_opt(name))
            .await?
            .is_some()
        {
            if Instant::now() >= deadline {
                return Err(KubeError::Api {
                    verb: "delete".to_owned(),
                    object,
                    reason: "it is still there well after its pods' grace".to_owned(),
                }
                .into());
            }
            tokio::time::sleep(GONE_POLL).await;
        }
        tracing::info!(instance = %instance.describe(), "deleted");
        Ok(())
    }

    /// The project's Deployments in every configured environment's
    /// namespace. An environment whose cluster cannot be asked is skipped
    /// with a warning: it must not hide what runs elsewhere.
    async fn discover(&self) -> Result<Vec<Instance>> {
        let targets: Vec<Target> = self
            .shared
            .targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut found = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for target in targets {
            if !seen.insert((target.context.clone(), target.namespace.clone())) {
                continue;
            }
            match self.discover_in(&target).await {
                Ok(instances) => found.extend(instances),
                Err(e) => tracing::warn!("cannot look for what runs in {}: {e}", target.namespace),
            }
        }
        found.sort_by(|a, b| (&a.env, a.slot, &a.service).cmp(&(&b.env, b.slot, &b.service)));
        Ok(found)
    }
}

impl KubeRuntime {
    /// `GET path` on the slot's Service through the API server's service
    /// proxy: what one ready pod answers, or the API server's 503 when no
    /// pod is ready.
    pub async fn probe_through_api(
        &self,
        instance: &Instance,
        path: &str,
        timeout: Duration,
    ) -> Result<u16> {
        let (namespace, name) = self.deployment_of(instance)?;
        let target = self.target_of(&instance.describe(), &instance.env)?;
        let client = self.shared.clients.client(&target).await?;
        let url = format!(
            "/api/v1/namespaces/{namespace}/services/{name}:http/proxy{}",
            if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            }
        );
        api::get_raw(&client, &url, timeout)
            .await
            .map(|(code, _)| code)
            .map_err(|reason| Error::Probe {
                instance: instance.describe(),
                url: url.clone(),
                failure: ProbeFailure::Connect(std::io::Error::other(reason)),
            })
    }

    async fn discover_in(&self, target: &Target) -> Result<Vec<Instance>> {
        let client = self.shared.clients.client(target).await?;
        let selector = selector_string(&BTreeMap::from([
            (
                label::PROJECT.to_owned(),
                objects::label_value(&target.project),
            ),
            (label::COMPONENT.to_owned(), "service".to_owned()),
        ]));
        let params = ListParams::default().labels(&selector);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
        let services: Api<Service> = Api::namespaced(client, &target.namespace);
        let what = format!("the Deployments of namespace {}", target.namespace);
        let listed = bounded(target, "list", &what, deployments.list(&params)).await?;
        let what = format!("the Services of namespace {}", target.namespace);
        let addrs: HashMap<String, SocketAddr> =
            bounded(target, "list", &what, services.list(&params))
                .await?
                .items
                .iter()
                .filter_map(|s| Some((s.metadata.name.clone()?, cluster_addr(s)?)))
                .collect();
        let mut found = Vec::new();
        for deployment in &listed.items {
            if deployment.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match self.instance_of(deployment, &addrs) {
                Some(instance) => found.push(instance),
                None => tracing::warn!(
                    "{} is labelled {}={} but lacks hifi's other labels; ignored",
                    describe(
                        "Deployment",
                        &target.namespace,
                        deployment.metadata.name.as_deref().unwrap_or_default()
                    ),
                    label::PROJECT,
                    target.project
                ),
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_a_namespace_and_a_deployment() {
        let id = InstanceId::new("kubernetes:shop-prod/catalog-green");
        assert_eq!(parse_id(&id), Some(("shop-prod", "catalog-green")));
        assert_eq!(parse_id(&InstanceId::new("kubernetes:/x")), None);
        assert_eq!(parse_id(&InstanceId::new("kubernetes:a/b/c")), None);
        assert_eq!(parse_id(&InstanceId::new("docker:abc")), None);
    }
}
