//! Talking to the API server: one client per kubeconfig context (made on
//! first use, so a machine without a kubeconfig is fine until an
//! environment needs one), server-side apply with field manager `hifi`,
//! deletes that treat "already gone" as done, and the translation of the
//! API server's `Status` answers into [`KubeError`]s that name the object.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::objects::{Object, label, label_value};
use super::target::Target;
use crate::error::{KubeError, Result};

/// hifi's field manager for server-side apply.
pub const FIELD_MANAGER: &str = "hifi";
/// Longest a single (non-watch) request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the kubeconfig comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `KUBECONFIG` (a list of files, merged), else `~/.kube/config`:
    /// what kubectl reads.
    Default,
    /// This file (tests, or a kubeconfig of hifi's own).
    File(PathBuf),
}

/// One client per context, made on first use.
pub(crate) struct Clients {
    source: KubeconfigSource,
    made: tokio::sync::Mutex<HashMap<Option<String>, Client>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Clients {
    pub(crate) fn new(source: KubeconfigSource) -> Clients {
        Clients {
            source,
            made: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The client of `target`'s context. A kubeconfig that cannot be read
    /// or lacks the context fails this environment only, with a reason
    /// worded for the person who has to fix it, and is read again next time.
    pub(crate) async fn client(&self, target: &Target) -> Result<Client> {
        let mut made = self.made.lock().await;
        if let Some(client) = made.get(&target.context) {
            return Ok(client.clone());
        }
        let kubeconfig = match &self.source {
            KubeconfigSource::Default => Kubeconfig::read(),
            KubeconfigSource::File(path) => Kubeconfig::read_from(path),
        }
        .map_err(|e| KubeError::Kubeconfig {
            env: target.env.clone(),
            reason: self.unreadable(&e),
        })?;
        let contexts: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
        if let Some(context) = &target.context
            && !contexts.contains(context)
        {
            return Err(KubeError::Kubeconfig {
                env: target.env.clone(),
                reason: format!(
                    "the kubeconfig has no context `{context}` (it has: {}); fix `[environment.kubernetes] context`",
                    if contexts.is_empty() {
                        "none".to_owned()
                    } else {
                        contexts.join(", ")
                    }
                ),
            }
            .into());
        }
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| KubeError::Kubeconfig {
                env: target.env.clone(),
                reason: match e {
                    KubeconfigError::CurrentContextNotSet => "the kubeconfig names no current context; set `[environment.kubernetes] context`".to_owned(),
                    e => format!("its kubeconfig cannot be used with {}: {e}", target.context_name()),
                },
            })?;
        let client = Client::try_from(config).map_err(|e| KubeError::Kubeconfig {
            env: target.env.clone(),
            reason: format!("no client could be made for {}: {e}", target.context_name()),
        })?;
        made.insert(target.context.clone(), client.clone());
        Ok(client)
    }

    fn unreadable(&self, e: &KubeconfigError) -> String {
        let hint = "hifi reads the kubeconfig kubectl reads: KUBECONFIG, else ~/.kube/config";
        match e {
            KubeconfigError::FindPath => {
                format!("no kubeconfig was found (no home directory); {hint}")
            }
            KubeconfigError::ReadConfig(source, path)
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                format!("there is no kubeconfig at {}; {hint}", path.display())
            }
            e => format!("its kubeconfig cannot be read: {e}"),
        }
    }
}

/// Turns a failed request into the error a user reads: a refusal by RBAC
/// or by a quota, a missing namespace, an unreachable server.
pub(crate) fn failed(target: &Target, verb: &str, object: &str, e: kube::Error) -> KubeError {
    match e {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                format!("{} {}", status.code, status.reason)
            } else {
                status.message.clone()
            };
            match status.code {
                403 if message.contains("exceeded quota") => KubeError::Quota {
                    verb: verb.to_owned(),
                    object: object.to_owned(),
                    message,
                },
                403 => KubeError::Forbidden {
                    env: target.env.clone(),
                    verb: verb.to_owned(),
                    object: object.to_owned(),
                    message,
                },
                404 if status
                    .details
                    .as_ref()
                    .is_some_and(|d| d.kind == "namespaces") =>
                {
                    KubeError::NoNamespace {
                        namespace: target.namespace.clone(),
                        verb: verb.to_owned(),
                        object: object.to_owned(),
                    }
                }
                code => KubeError::Api {
                    verb: verb.to_owned(),
                    object: object.to_owned(),
                    reason: format!("{message} ({code} {})", status.reason),
                },
            }
        }
        e @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => KubeError::Unreachable {
            env: target.env.clone(),
            verb: verb.to_owned(),
            object: object.to_owned(),
            reason: chain(&e),
        },
        e => KubeError::Api {
            verb: verb.to_owned(),
            object: object.to_owned(),
            reason: chain(&e),
        },
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether the request failed with 404 Not Found.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

/// Bounds one request by [`REQUEST_TIMEOUT`].
pub(crate) async fn bounded<T>(
    target: &Target,
    verb: &str,
    object: &str,
    request: impl std::future::Future<Output = kube::Result<T>>,
) -> Result<T, KubeError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failed(target, verb, object, e)),
        Err(_) => Err(KubeError::Unreachable {
            env: target.env.clone(),
            verb: verb.to_owned(),
            object: object.to_owned(),
            reason: format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
        }),
    }
}

/// Server-side apply of one object of kind `K`, with field manager `hifi`,
/// forcing ownership of the fields hifi sets; returns the object as the
/// API server now has it.
async fn apply_as<K>(
    client: &Client,
    target: &Target,
    object: &K,
    name: &str,
    describe: &str,
) -> Result<K, KubeError>
where
    K: kube::Resource<Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), &target.namespace);
    if let Some(found) = bounded(target, "get", describe, api.get_opt(name)).await? {
        ours(target, "apply", describe, found.meta())?;
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    bounded(
        target,
        "apply",
        describe,
        api.patch(name, &params, &Patch::Apply(object)),
    )
    .await
}

/// Server-side apply of `object` into `target`'s namespace; returns the
/// object as the API server now has it (a Service with its cluster IP).
pub(crate) async fn apply(
    client: &Client,
    target: &Target,
    object: &Object,
) -> Result<Object, KubeError> {
    let name = object.name();
    let describe = object.describe();
    Ok(match object {
        Object::ServiceAccount(o) => {
            Object::ServiceAccount(apply_as(client, target, o, name, &describe).await?)
        }
        Object::Role(o) => Object::Role(apply_as(client, target, o, name, &describe).await?),
        Object::RoleBinding(o) => {
            Object::RoleBinding(apply_as(client, target, o, name, &describe).await?)
        }
        Object::ConfigMap(o) => {
            Object::ConfigMap(apply_as(client, target, o, name, &describe).await?)
        }
        Object::Secret(o) => Object::Secret(apply_as(client, target, o, name, &describe).await?),
        Object::Deployment(o) => Object::Deployment(Box::new(
            apply_as(client, target, o.as_ref(), name, &describe).await?,
        )),
        Object::Service(o) => Object::Service(Box::new(
            apply_as(client, target, o.as_ref(), name, &describe).await?,
        )),
    })
}

/// Deletes object `name` of kind `K` once hifi has checked it is this
/// environment's; one already gone is not an error. The deletion is in
/// the foreground (a Deployment goes only once its pods have), and only of
/// the very object checked (its uid as a precondition).
pub(crate) async fn delete<K>(
    client: &Client,
    target: &Target,
    kind: &str,
    name: &str,
) -> Result<(), KubeError>
where
    K: kube::Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), &target.namespace);
    let object = super::objects::describe(kind, &target.namespace, name);
    let Some(found) = bounded(target, "get", &object, api.get_opt(name)).await? else {
        return Ok(());
    };
    ours(target, "delete", &object, found.meta())?;
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: found.meta().uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, api.delete(name, &params)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if is_not_found(&e) => Ok(()),
        Ok(Err(e)) => Err(failed(target, "delete", &object, e)),
        Err(_) => Err(KubeError::Unreachable {
            env: target.env.clone(),
            verb: "delete".to_owned(),
            object,
            reason: format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
        }),
    }
}

/// Refuses to change `found` unless hifi made it for `target`'s very
/// project and environment: two environments (or two projects) that share
/// a namespace must never overwrite or delete each other's objects, nor
/// anything hifi did not create.
fn ours(target: &Target, verb: &str, object: &str, found: &ObjectMeta) -> Result<(), KubeError> {
    let labels = found.labels.as_ref();
    let get = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    let (project, env) = (get(label::PROJECT), get(label::ENVIRONMENT));
    if project == Some(label_value(&target.project).as_str())
        && env == Some(label_value(&target.env).as_str())
    {
        return Ok(());
    }
    let whose = match (project, env) {
        (Some(project), Some(env)) => {
            format!("it belongs to environment {env} of project {project}")
        }
        _ => "hifi did not create it (it has no hifi.dev/project and hifi.dev/environment labels)"
            .to_owned(),
    };
    Err(KubeError::Api {
        verb: verb.to_owned(),
        object: object.to_owned(),
        reason: format!(
            "{whose}, so hifi leaves it alone; give environment {} a namespace of its own (`[environment.kubernetes] namespace`)",
            target.env
        ),
    })
}

/// `GET path` on the API server (a pod's or service's proxy subresource),
/// bounded by `timeout`: the status code and body of the answer, whatever
/// the code — for a proxied answer the code is the backend's (or the API
/// server's 503 when nothing serves).
pub(crate) async fn get_raw(
    client: &Client,
    path: &str,
    timeout: Duration,
) -> Result<(u16, bytes::Bytes), String> {
    use http_body_util::BodyExt;
    let request = http::Request::get(path)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| format!("cannot make a request for {path}: {e}"))?;
    let exchange = async {
        let response = client.send(request).await.map_err(|e| chain(&e))?;
        let code = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("the answer broke off: {e}"))?
            .to_bytes();
        Ok::<_, String>((code, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "no answer within {}",
            crate::error::fmt_duration(timeout)
        )),
    }
}
