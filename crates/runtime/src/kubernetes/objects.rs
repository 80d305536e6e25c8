//! The Kubernetes objects of one environment, rendered from what hifi knows
//! and nothing else: pure functions, no API calls, so `hifi manifests`
//! prints exactly what the runtime applies, and two renderings of the same
//! state are byte for byte the same.
//!
//! Per (service, slot): a Deployment `<service>-<slot>` and a Service of the
//! same name, and when the environment's vars take values from hifi's own
//! environment (`${NAME}`: secrets), a Secret `<service>-<slot>-vars` that
//! the Deployment's pods read them from, so no secret sits in a
//! Deployment. Per environment: the data plane — the `hifi-proxy`
//! Deployment (2 replicas), its Service (type `expose`), a ServiceAccount,
//! Role and RoleBinding that let it watch its routing ConfigMap
//! `hifi-routing`, and per service a stable Service `<service>` pointing at
//! the proxy's internal listener for it (`HIFI_URL_<SERVICE>`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretKeySelector, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::target::Target;
use crate::instance::{InstanceSpec, Program};

/// The labels hifi puts on its objects (and their pods).
pub mod label {
    /// The project (`[project] name`).
    pub const PROJECT: &str = "hifi.dev/project";
    /// The environment.
    pub const ENVIRONMENT: &str = "hifi.dev/environment";
    /// The service.
    pub const SERVICE: &str = "hifi.dev/service";
    /// The slot (`blue`, `green`).
    pub const SLOT: &str = "hifi.dev/slot";
    /// The release, as hifi prints it (12 hex digits; the full id is in
    /// the annotation of the same name).
    pub const RELEASE: &str = "hifi.dev/release";
    /// What part of the environment an object is: `service` or `proxy`.
    pub const COMPONENT: &str = "hifi.dev/component";
    /// On a slot's Secret: the variables it holds, comma-separated (for
    /// whoever provides it when its values are not printed).
    pub const KEYS: &str = "hifi.dev/keys";
    /// The standard "managed by" label, always `hifi`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
}

/// The name of the proxy's objects (Deployment, Service, ServiceAccount,
/// Role, RoleBinding).
pub const PROXY: &str = "hifi-proxy";
/// The ConfigMap holding the environment's routing table.
pub const ROUTING: &str = "hifi-routing";
/// The key of the table in [`ROUTING`].
pub const TABLE_KEY: &str = "table.json";
/// The Role `hifi manifests --rbac` prints: what hifi itself needs.
pub const HIFI_ROLE: &str = "hifi";
/// The port every service container listens on (`PORT`).
pub const SERVICE_PORT: u16 = 8080;
/// The proxy's public listener in its pod.
pub const PROXY_PUBLIC_PORT: u16 = 8080;
/// The proxy's preview listener in its pod (smoke checks, testers).
pub const PROXY_PREVIEW_PORT: u16 = 8081;
/// The proxy's read-only status listener (per-slot figures, health), read
/// by the controller through the API server's pod proxy.
pub const PROXY_STATUS_PORT: u16 = 9900;
/// The proxy's internal listener for the `i`th service is this plus `i`.
pub const PROXY_INTERNAL_BASE: u16 = 9000;
/// Replicas of the proxy Deployment.
pub const PROXY_REPLICAS: i32 = 2;
/// Where the proxy keeps its state in its pod (an emptyDir).
const PROXY_STATE: &str = "/var/run/hifi";
/// Seconds a Deployment may go without progress before Kubernetes says so
/// (its `progressDeadlineSeconds`); hifi fails the rollout then, or at its
/// own start timeout, whichever comes first.
pub const PROGRESS_DEADLINE_SECONDS: i32 = 120;

/// One object hifi applies, of a kind it knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    /// The proxy's identity.
    ServiceAccount(ServiceAccount),
    /// What the proxy (or hifi) may do.
    Role(Role),
    /// The proxy's Role granted to its ServiceAccount.
    RoleBinding(RoleBinding),
    /// The routing table.
    ConfigMap(ConfigMap),
    /// A slot's secret vars.
    Secret(Secret),
    /// A slot of a service, or the proxy.
    Deployment(Box<Deployment>),
    /// A slot's address, a service's stable address, or the proxy's.
    Service(Box<Service>),
}

impl Object {
    /// The object's kind, as Kubernetes spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::Role(_) => "Role",
            Object::RoleBinding(_) => "RoleBinding",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
        }
    }

    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::ServiceAccount(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// How errors name it: `Deployment shop-prod/catalog-green`.
    pub fn describe(&self) -> String {
        describe(
            self.kind(),
            self.meta().namespace.as_deref().unwrap_or_default(),
            self.name(),
        )
    }

    /// The order objects are applied and printed in: what others refer to
    /// first (identity, rights, the table), then workloads, then addresses.
    fn rank(&self) -> u8 {
        match self {
            Object::ServiceAccount(_) => 0,
            Object::Role(_) => 1,
            Object::RoleBinding(_) => 2,
            Object::ConfigMap(_) | Object::Secret(_) => 3,
            Object::Deployment(_) => 4,
            Object::Service(_) => 5,
        }
    }
}

/// `Deployment shop-prod/catalog-green`.
pub fn describe(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

/// Sorts objects into their apply order: by kind, then name.
pub fn sort(objects: &mut [Object]) {
    objects.sort_by(|a, b| (a.rank(), a.name()).cmp(&(b.rank(), b.name())));
}

/// The objects as one YAML stream, `---` before each document: what
/// `hifi manifests` prints. Deterministic (field order is the types',
/// maps are sorted), so two renderings of the same state diff clean.
pub fn to_yaml(objects: &[Object]) -> Result<String, String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        let text = serde_saphyr::to_string(object)
            .map_err(|e| format!("cannot write {} as YAML: {e}", object.describe()))?;
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// A label value Kubernetes accepts: at most 63 characters of letters,
/// digits, `-`, `_` and `.`, starting and ending with a letter or digit.
pub fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The name of the objects of a service's slot: `<service>-<slot>`.
pub fn slot_name(service: &str, slot: &str) -> String {
    format!("{service}-{slot}")
}

/// Labels every object of the environment carries.
fn env_labels(target: &Target, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (label::PROJECT.to_owned(), label_value(&target.project)),
        (label::ENVIRONMENT.to_owned(), label_value(&target.env)),
        (label::COMPONENT.to_owned(), component.to_owned()),
        (label::MANAGED_BY.to_owned(), "hifi".to_owned()),
    ])
}

/// What selects a slot's pods: never the release, so a selector (which
/// Kubernetes never lets change) stays valid for any release in the slot.
pub fn slot_selector(target: &Target, service: &str, slot: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (label::PROJECT.to_owned(), label_value(&target.project)),
        (label::ENVIRONMENT.to_owned(), label_value(&target.env)),
        (label::SERVICE.to_owned(), service.to_owned()),
        (label::SLOT.to_owned(), slot.to_owned()),
    ])
}

/// What selects the proxy's pods.
pub fn proxy_selector(target: &Target) -> BTreeMap<String, String> {
    BTreeMap::from([
        (label::PROJECT.to_owned(), label_value(&target.project)),
        (label::ENVIRONMENT.to_owned(), label_value(&target.env)),
        (label::COMPONENT.to_owned(), "proxy".to_owned()),
    ])
}

/// `k=v,k=v`: a label selector for list calls.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn meta(
    target: &Target,
    name: &str,
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(target.namespace.clone()),
        labels: Some(labels),
        annotations,
        ..ObjectMeta::default()
    }
}

/// A service container's `resources`, `None` when none is configured.
fn resources(configured: &hifi_core::Resources) -> Option<ResourceRequirements> {
    let quantities = |side: &BTreeMap<String, String>| {
        (!side.is_empty()).then(|| {
            side.iter()
                .map(|(name, q)| (name.clone(), Quantity(q.clone())))
                .collect()
        })
    };
    (!configured.is_empty()).then(|| ResourceRequirements {
        requests: quantities(&configured.requests),
        limits: quantities(&configured.limits),
        ..ResourceRequirements::default()
    })
}

fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(2),
        failure_threshold: Some(3),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn tcp_port(name: Option<&str>, port: u16) -> ContainerPort {
    ContainerPort {
        name: name.map(str::to_owned),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// The name of the Secret of the slot whose Deployment is `deployment`
/// (`<service>-<slot>`): `<service>-<slot>-vars`.
pub fn secret_name(deployment: &str) -> String {
    format!("{deployment}-vars")
}

/// The objects of one (service, slot) running `image`
/// (`<registry>/<service>@sha256:…`): a Deployment of `spec.replicas` pods,
/// each with the spec's vars plus `PORT`, ready when the health path
/// answers, and a Service; first, when the spec has secret vars, the
/// Secret its pods read them from (see [`without_secret_values`]).
pub fn slot_objects(target: &Target, spec: &InstanceSpec, image: &str) -> Vec<Object> {
    let name = slot_name(&spec.service, spec.slot.as_str());
    let selector = slot_selector(target, &spec.service, spec.slot.as_str());
    let mut labels = env_labels(target, "service");
    labels.extend(selector.clone());
    labels.insert(
        label::RELEASE.to_owned(),
        spec.release.as_str().chars().take(12).collect(),
    );
    let annotations =
        BTreeMap::from([(label::RELEASE.to_owned(), spec.release.as_str().to_owned())]);
    let secret = secret_name(&name);
    let mut env: Vec<EnvVar> = spec
        .vars
        .iter()
        .filter(|(key, _)| key.as_str() != "PORT")
        .map(|(key, value)| {
            if spec.secret_vars.contains(key) {
                EnvVar {
                    name: key.clone(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret.clone(),
                            key: key.clone(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                }
            } else {
                EnvVar {
                    name: key.clone(),
                    value: Some(value.clone()),
                    ..EnvVar::default()
                }
            }
        })
        .collect();
    let secrets: BTreeMap<String, ByteString> = spec
        .vars
        .iter()
        .filter(|(key, _)| spec.secret_vars.contains(*key) && key.as_str() != "PORT")
        .map(|(key, value)| (key.clone(), ByteString(value.clone().into_bytes())))
        .collect();
    env.push(EnvVar {
        name: "PORT".to_owned(),
        value: Some(SERVICE_PORT.to_string()),
        ..EnvVar::default()
    });
    let command = match &spec.program {
        Program::Image {
            command: Some(command),
            ..
        } => Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), command.clone()]),
        _ => None,
    };
    let container = Container {
        name: spec.service.clone(),
        image: Some(image.to_owned()),
        command,
        env: Some(env),
        ports: Some(vec![tcp_port(Some("http"), SERVICE_PORT)]),
        readiness_probe: Some(http_probe(&spec.health_path, "http")),
        resources: resources(&target.resources),
        ..Container::default()
    };
    let deployment = Deployment {
        metadata: meta(target, &name, labels.clone(), Some(annotations.clone())),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::from(spec.replicas.max(1))),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            progress_deadline_seconds: Some(PROGRESS_DEADLINE_SECONDS),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    annotations: Some(annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // Services do not talk to the API server.
                    automount_service_account_token: Some(false),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    let secret = (!secrets.is_empty()).then(|| {
        let mut annotations = annotations.clone();
        annotations.insert(
            label::KEYS.to_owned(),
            secrets.keys().cloned().collect::<Vec<_>>().join(","),
        );
        Object::Secret(Secret {
            metadata: meta(target, &secret, labels.clone(), Some(annotations)),
            type_: Some("Opaque".to_owned()),
            data: Some(secrets),
            ..Secret::default()
        })
    });
    let service = Service {
        metadata: meta(target, &name, labels, Some(annotations)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    secret
        .into_iter()
        .chain([
            Object::Deployment(Box::new(deployment)),
            Object::Service(Box::new(service)),
        ])
        .collect()
}

/// The objects with every Secret's values left out (its keys stay named in
/// its `hifi.dev/keys` annotation): what may be printed or committed.
pub fn without_secret_values(objects: &mut [Object]) {
    for object in objects {
        if let Object::Secret(secret) = object {
            secret.data = None;
            secret.string_data = None;
        }
    }
}

/// The in-cluster address of a slot of a service, as the routing table
/// names its backend: `<service>-<slot>:80`, resolved by the proxy.
pub fn slot_backend(service: &str, slot: &str) -> String {
    format!("{}:80", slot_name(service, slot))
}

/// The proxy's internal listener port for the `index`th service.
pub fn internal_port(index: usize) -> u16 {
    PROXY_INTERNAL_BASE
        .saturating_add(u16::try_from(index).unwrap_or(u16::MAX - PROXY_INTERNAL_BASE))
}

/// The URL a service's peers reach it at (`HIFI_URL_<SERVICE>`): its
/// stable Service, which leads to the proxy's internal listener for it.
pub fn service_url(service: &str) -> String {
    format!("http://{service}")
}

/// The data plane of the environment, for services `services` (in config
/// order, which fixes their internal ports): the proxy's ServiceAccount,
/// Role, RoleBinding, Deployment and Service, and each service's stable
/// Service.
pub fn proxy_objects(target: &Target, services: &[String]) -> Vec<Object> {
    let labels = env_labels(target, "proxy");
    let selector = proxy_selector(target);
    let account = ServiceAccount {
        metadata: meta(target, PROXY, labels.clone(), None),
        ..ServiceAccount::default()
    };
    let role = Role {
        metadata: meta(target, PROXY, labels.clone(), None),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            resource_names: Some(vec![ROUTING.to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(target, PROXY, labels.clone(), None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: PROXY.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: PROXY.to_owned(),
            namespace: Some(target.namespace.clone()),
            ..Subject::default()
        }]),
    };
    let mut ports = vec![
        tcp_port(Some("http"), PROXY_PUBLIC_PORT),
        tcp_port(Some("preview"), PROXY_PREVIEW_PORT),
        tcp_port(Some("status"), PROXY_STATUS_PORT),
    ];
    ports.extend((0..services.len()).map(|i| tcp_port(None, internal_port(i))));
    let container = Container {
        name: "proxy".to_owned(),
        image: Some(target.proxy_image.clone()),
        args: Some(
            [
                "proxy",
                "--state-dir",
                &format!("{PROXY_STATE}/tables"),
                "--admin",
                &format!("{PROXY_STATE}/admin.sock"),
                "--table-configmap",
                ROUTING,
                "--status-listen",
                &format!("0.0.0.0:{PROXY_STATUS_PORT}"),
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        ports: Some(ports),
        readiness_probe: Some(http_probe("/healthz", "status")),
        volume_mounts: Some(vec![VolumeMount {
            name: "state".to_owned(),
            mount_path: PROXY_STATE.to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let deployment = Deployment {
        metadata: meta(target, PROXY, labels.clone(), None),
        spec: Some(DeploymentSpec {
            replicas: Some(PROXY_REPLICAS),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            progress_deadline_seconds: Some(PROGRESS_DEADLINE_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(PROXY.to_owned()),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "state".to_owned(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    let public = Service {
        metadata: meta(target, PROXY, labels.clone(), None),
        spec: Some(ServiceSpec {
            type_: Some(target.expose.as_str().to_owned()),
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    let mut objects = vec![
        Object::ServiceAccount(account),
        Object::Role(role),
        Object::RoleBinding(binding),
        Object::Deployment(Box::new(deployment)),
        Object::Service(Box::new(public)),
    ];
    for (i, service) in services.iter().enumerate() {
        let mut labels = labels.clone();
        labels.insert(label::SERVICE.to_owned(), service.clone());
        objects.push(Object::Service(Box::new(Service {
            metadata: meta(target, service, labels, None),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".to_owned()),
                selector: Some(selector.clone()),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: 80,
                    target_port: Some(IntOrString::Int(i32::from(internal_port(i)))),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        })));
    }
    objects
}

/// The ConfigMap holding the environment's routing table (`table.json`,
/// the proxy's table format with in-cluster listeners and backends).
pub fn routing_config_map(target: &Target, table_json: &str) -> Object {
    Object::ConfigMap(ConfigMap {
        metadata: meta(target, ROUTING, env_labels(target, "proxy"), None),
        data: Some(BTreeMap::from([(
            TABLE_KEY.to_owned(),
            table_json.to_owned(),
        )])),
        ..ConfigMap::default()
    })
}

/// The Role hifi needs in an environment's namespace: everything it
/// applies, reads, watches and deletes there, and the pod and service
/// proxies it reads figures and health through. Namespaces themselves are
/// not hifi's to create.
pub fn hifi_role(target: &Target) -> Object {
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    };
    let manage = ["get", "list", "watch", "create", "patch", "delete"];
    Object::Role(Role {
        metadata: meta(target, HIFI_ROLE, env_labels(target, "control-plane"), None),
        rules: Some(vec![
            rule("apps", &["deployments"], &manage),
            rule(
                "",
                &["services", "configmaps", "secrets", "serviceaccounts"],
                &manage,
            ),
            rule(
                "rbac.authorization.k8s.io",
                &["roles", "rolebindings"],
                &["get", "create", "patch", "delete"],
            ),
            rule("", &["pods"], &["get", "list", "watch"]),
            rule("", &["pods/proxy", "services/proxy"], &["get"]),
        ]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_what_kubernetes_accepts() {
        assert_eq!(label_value("shop"), "shop");
        assert_eq!(label_value("My Shop!"), "My-Shop");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
        assert_eq!(label_value("--x--"), "x");
    }

    #[test]
    fn internal_ports_follow_the_service_order() {
        assert_eq!(internal_port(0), 9000);
        assert_eq!(internal_port(3), 9003);
    }
}
