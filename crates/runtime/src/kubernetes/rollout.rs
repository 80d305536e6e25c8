//! Waiting for a Deployment to become available: by watching it (never by
//! polling on a timer), and failing fast, naming the object, when
//! Kubernetes says it cannot get there — a pod that cannot pull its image or
//! keeps crashing, pods a quota refuses, a progress deadline exceeded.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::time::Instant;

use super::api::{bounded, failed};
use super::objects::{describe, selector_string};
use super::target::Target;
use crate::error::KubeError;

/// How often the pods of a Deployment that is not available yet are
/// looked at for a reason it never will be (image pulls, crash loops).
const POD_CHECK: Duration = Duration::from_secs(2);
/// After a watch that failed at once, wait this long before the next.
const REWATCH_PAUSE: Duration = Duration::from_millis(200);
/// Pod waiting reasons that mean the image cannot be pulled.
const PULL_FAILURES: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// Pod waiting reasons that mean a container cannot run.
const RUN_FAILURES: [&str; 3] = [
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// What a Deployment's status says.
enum Progress {
    /// Every wanted replica is updated and available.
    Available,
    /// Not yet; the words say how far it is.
    Waiting { available: i32, detail: String },
    /// Never will be.
    Failed(KubeError),
}

/// Reads a Deployment's status against `wanted` replicas.
fn progress(deployment: &Deployment, name: &str, wanted: i32) -> Progress {
    let Some(status) = &deployment.status else {
        return Progress::Waiting {
            available: 0,
            detail: "; Kubernetes has not reported on it yet".to_owned(),
        };
    };
    let available = status.available_replicas.unwrap_or(0);
    for condition in status.conditions.iter().flatten() {
        let message = condition.message.clone().unwrap_or_default();
        let reason = condition.reason.clone().unwrap_or_default();
        if condition.type_ == "ReplicaFailure" && condition.status == "True" {
            return Progress::Failed(KubeError::PodsRefused {
                deployment: name.to_owned(),
                message: format!("{reason}: {message}"),
            });
        }
        if condition.type_ == "Progressing"
            && condition.status == "False"
            && reason == "ProgressDeadlineExceeded"
        {
            return Progress::Failed(KubeError::NotAvailable {
                deployment: name.to_owned(),
                timeout: Duration::from_secs(
                    deployment
                        .spec
                        .as_ref()
                        .and_then(|s| s.progress_deadline_seconds)
                        .unwrap_or(600)
                        .unsigned_abs()
                        .into(),
                ),
                available,
                wanted,
                detail: format!("; Kubernetes gave up ({reason}: {message})"),
            });
        }
    }
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    if observed >= generation && updated >= wanted && available >= wanted && ready >= wanted {
        return Progress::Available;
    }
    Progress::Waiting {
        available,
        detail: if observed < generation {
            "; Kubernetes has not taken in its latest spec yet".to_owned()
        } else {
            format!("; {updated} updated, {ready} ready")
        },
    }
}

/// The first pod of the Deployment that cannot pull its image or run.
async fn pod_failure(
    client: &Client,
    target: &Target,
    name: &str,
    selector: &str,
) -> Result<Option<KubeError>, KubeError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let what = format!("the pods of {name}");
    let listed = bounded(
        target,
        "list",
        &what,
        pods.list(&ListParams::default().labels(selector)),
    )
    .await?;
    for pod in listed.items {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod.status.iter().flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        });
        for status in statuses {
            let Some(waiting) = status.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.clone().unwrap_or_default();
            let message = waiting.message.clone().unwrap_or_default();
            if PULL_FAILURES.contains(&reason.as_str()) {
                return Ok(Some(KubeError::ImagePull {
                    deployment: name.to_owned(),
                    pod: pod_name,
                    image: status.image.clone(),
                    reason,
                    message,
                }));
            }
            if RUN_FAILURES.contains(&reason.as_str()) {
                let exit = status
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| format!("; its last run exited with status {}", t.exit_code))
                    .unwrap_or_default();
                return Ok(Some(KubeError::PodsRefused {
                    deployment: name.to_owned(),
                    message: format!(
                        "pod {pod_name}: container {} {reason}: {message}{exit}",
                        status.name
                    ),
                }));
            }
        }
    }
    Ok(None)
}

/// Waits until Deployment `name` has `wanted` replicas updated and
/// available, watching it; fails at `timeout`, or at once when Kubernetes
/// says it cannot get there.
pub(crate) async fn wait_available(
    client: &Client,
    target: &Target,
    name: &str,
    selector: &std::collections::BTreeMap<String, String>,
    wanted: i32,
    timeout: Duration,
) -> Result<(), KubeError> {
    let object = describe("Deployment", &target.namespace, name);
    let api: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
    let selector = selector_string(selector);
    let deadline = Instant::now() + timeout;
    let mut last = Progress::Waiting {
        available: 0,
        detail: String::new(),
    };
    let mut next_pod_check = Instant::now();
    let not_available = |last: Progress| match last {
        Progress::Waiting { available, detail } => KubeError::NotAvailable {
            deployment: object.clone(),
            timeout,
            available,
            wanted,
            detail,
        },
        Progress::Failed(e) => e,
        Progress::Available => KubeError::NotAvailable {
            deployment: object.clone(),
            timeout,
            available: wanted,
            wanted,
            detail: String::new(),
        },
    };
    // Each round reads the Deployment, then watches it from there until the
    // watch ends (its timeout, a dropped connection, 410 Gone).
    while Instant::now() < deadline {
        let Some(current) = bounded(target, "get", &object, api.get_opt(name)).await? else {
            return Err(KubeError::Vanished { deployment: object });
        };
        match progress(&current, &object, wanted) {
            Progress::Available => return Ok(()),
            Progress::Failed(e) => return Err(e),
            waiting => last = waiting,
        }
        let mut version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(u32::try_from(remaining.as_secs().clamp(1, 290)).unwrap_or(290));
        let stream = match bounded(target, "watch", &object, api.watch(&params, &version)).await {
            Ok(stream) => stream,
            Err(e @ (KubeError::Forbidden { .. } | KubeError::NoNamespace { .. })) => {
                return Err(e);
            }
            Err(e) => {
                tracing::debug!("{e}; watching again");
                tokio::time::sleep(REWATCH_PAUSE.min(remaining)).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_pod_check {
                if let Some(e) = pod_failure(client, target, &object, &selector).await? {
                    return Err(e);
                }
                next_pod_check = Instant::now() + POD_CHECK;
            }
            let wait = next_pod_check
                .min(deadline)
                .saturating_duration_since(Instant::now());
            let event = match tokio::time::timeout(wait, stream.next()).await {
                Err(_) => continue,
                Ok(None) => break,
                // A refusal comes as the stream's first item.
                Ok(Some(Err(e @ kube::Error::Api(_)))) => {
                    match failed(target, "watch", &object, e) {
                        e @ (KubeError::Forbidden { .. } | KubeError::NoNamespace { .. }) => {
                            return Err(e);
                        }
                        e => {
                            tracing::debug!("{e}; watching again");
                            tokio::time::sleep(REWATCH_PAUSE).await;
                            break;
                        }
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!("watch of {object} broke off: {e}");
                    break;
                }
                Ok(Some(Ok(event))) => event,
            };
            match event {
                WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                    version = d.metadata.resource_version.clone().unwrap_or(version);
                    match progress(&d, &object, wanted) {
                        Progress::Available => return Ok(()),
                        Progress::Failed(e) => return Err(e),
                        waiting => last = waiting,
                    }
                }
                WatchEvent::Deleted(_) => {
                    return Err(KubeError::Vanished { deployment: object });
                }
                WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                WatchEvent::Error(status) => {
                    // 410 Gone: the version is too old; read it afresh.
                    if status.code != 410 {
                        return Err(failed(target, "watch", &object, kube::Error::Api(status)));
                    }
                    break;
                }
            }
        }
        let _ = version;
    }
    Err(not_available(last))
}
