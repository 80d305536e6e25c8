//! [`ProxyPlane`]: an environment's data plane in its cluster, as the
//! controller drives it — the proxy's objects applied, the routing table
//! written to the ConfigMap every proxy replica watches, and each proxy
//! pod's status listener read through the API server's pod proxy (the
//! controller sums the per-slot figures for the canary judge).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};

use super::Shared;
use super::api::{self, bounded};
use super::objects::{self, PROXY_STATUS_PORT, ROUTING, proxy_objects, routing_config_map};
use super::target::Target;
use crate::error::{KubeError, Result};

/// How long one proxy pod may take to answer.
const POD_TIMEOUT: Duration = Duration::from_secs(5);

/// One environment's proxy in its cluster.
#[derive(Debug, Clone)]
pub struct ProxyPlane {
    shared: Arc<Shared>,
    target: Target,
}

/// What one proxy pod answered on its status listener.
#[derive(Debug, Clone)]
pub struct PodAnswer {
    /// The pod.
    pub pod: String,
    /// Its status code and body, or why there was none.
    pub answer: std::result::Result<(u16, Bytes), String>,
}

impl ProxyPlane {
    pub(crate) fn new(shared: Arc<Shared>, target: Target) -> ProxyPlane {
        ProxyPlane { shared, target }
    }

    /// Where it runs.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Applies the proxy's objects for `services` (config order): its
    /// ServiceAccount, Role, RoleBinding, Deployment and Service, and a
    /// stable Service per service.
    pub async fn ensure(&self, services: &[String]) -> Result<()> {
        let client = self.shared.clients.client(&self.target).await?;
        let mut objects = proxy_objects(&self.target, services);
        objects::sort(&mut objects);
        for object in &objects {
            api::apply(&client, &self.target, object).await?;
        }
        Ok(())
    }

    /// Writes the routing table (the proxy's JSON) to the ConfigMap the
    /// proxy replicas watch.
    pub async fn put_table(&self, table_json: &str) -> Result<()> {
        let client = self.shared.clients.client(&self.target).await?;
        api::apply(
            &client,
            &self.target,
            &routing_config_map(&self.target, table_json),
        )
        .await?;
        Ok(())
    }

    /// Removes the routing table: the proxies stop serving the environment.
    pub async fn remove_table(&self) -> Result<()> {
        let client = self.shared.clients.client(&self.target).await?;
        api::delete::<ConfigMap>(&client, &self.target, "ConfigMap", ROUTING).await?;
        Ok(())
    }

    /// `GET path_and_query` on the status listener of every running proxy
    /// pod, through the API server; one answer per pod (a pod that fails
    /// to answer says why, so a caller decides whether a partial sum will do).
    pub async fn ask_pods(&self, path_and_query: &str) -> Result<Vec<PodAnswer>> {
        let client = self.shared.clients.client(&self.target).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &self.target.namespace);
        let selector = objects::selector_string(&objects::proxy_selector(&self.target));
        let what = format!("the proxy pods of namespace {}", self.target.namespace);
        let listed = bounded(
            &self.target,
            "list",
            &what,
            pods.list(&ListParams::default().labels(&selector)),
        )
        .await?;
        let mut answers = Vec::new();
        for pod in listed.items {
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            if !running || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let path = format!(
                "/api/v1/namespaces/{}/pods/{name}:{PROXY_STATUS_PORT}/proxy{path_and_query}",
                self.target.namespace
            );
            let answer = api::get_raw(&client, &path, POD_TIMEOUT).await;
            answers.push(PodAnswer { pod: name, answer });
        }
        answers.sort_by(|a, b| a.pod.cmp(&b.pod));
        Ok(answers)
    }
}

impl From<KubeError> for PodAnswer {
    fn from(e: KubeError) -> Self {
        PodAnswer {
            pod: String::new(),
            answer: Err(e.to_string()),
        }
    }
}
