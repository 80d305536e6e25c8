//! The routing table as the in-cluster proxy gets it: `hifi proxy
//! --table-configmap NAME` follows ConfigMap `NAME` (key `table.json`) of
//! its namespace by watching it, so a switch reaches every proxy replica
//! within about a second, without a restart.
//!
//! The table names its backends as the cluster does (`catalog-green:80`,
//! the slot's Service), so `hifi manifests` can print it before anything
//! runs; this source resolves each name to its address before handing the
//! table on, and resolves again every few seconds, handing it on again
//! only when an address changed.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, WatchEvent, WatchParams};
use serde_json::Value;

use super::objects::TABLE_KEY;

/// How often names are resolved again while nothing changes.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(10);
/// After a failure (no answer, a name that does not resolve yet), try again
/// after this.
const RETRY: Duration = Duration::from_secs(1);
/// Seconds a watch stays open before it is renewed.
const WATCH_SECONDS: u32 = 240;

/// What the source hands on.
#[derive(Debug, Clone, PartialEq)]
pub enum TableChange {
    /// A table with every backend an address, as JSON.
    Table(Vec<u8>),
    /// The ConfigMap is gone: stop serving the environment.
    Removed,
}

/// A client for the API server of the cluster this process runs in, and
/// the namespace it runs in.
pub fn in_cluster() -> Result<(Client, String), String> {
    let config = kube::Config::incluster().map_err(|e| {
        format!("not running in a Kubernetes pod (or its service account is not mounted): {e}")
    })?;
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| format!("no client for the cluster: {e}"))?;
    Ok((client, namespace))
}

/// Resolves every backend name in a table's JSON to an address. Names that
/// are already addresses are kept.
pub async fn resolve(table: &Value) -> Result<Value, String> {
    let mut table = table.clone();
    let Some(services) = table.get_mut("services").and_then(Value::as_array_mut) else {
        return Err("the table has no `services` list".to_owned());
    };
    for service in services {
        for role in ["active", "candidate", "standby"] {
            let Some(backends) = service
                .get_mut(role)
                .and_then(|r| r.get_mut("backends"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for backend in backends {
                let Some(name) = backend.as_str() else {
                    continue;
                };
                if name.parse::<SocketAddr>().is_ok() {
                    continue;
                }
                let addr = tokio::net::lookup_host(name)
                    .await
                    .map_err(|e| format!("cannot resolve backend {name}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("backend {name} resolves to no address"))?;
                *backend = Value::String(addr.to_string());
            }
        }
    }
    Ok(table)
}

/// The table in a ConfigMap, parsed; `None` without the key.
fn table_of(map: &ConfigMap) -> Result<Option<Value>, String> {
    let Some(text) = map.data.as_ref().and_then(|d| d.get(TABLE_KEY)) else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("{TABLE_KEY} is not JSON: {e}"))
}

/// Hands `wanted` to `apply` unless it was the last thing handed.
async fn hand(
    apply: &mut impl AsyncFnMut(TableChange) -> Result<(), String>,
    wanted: TableChange,
    handed: &mut Option<TableChange>,
    whence: &str,
) {
    if handed.as_ref() == Some(&wanted) {
        return;
    }
    match apply(wanted.clone()).await {
        Ok(()) => *handed = Some(wanted),
        Err(e) => tracing::warn!("the routing table from ConfigMap {whence} was refused: {e}"),
    }
}

/// Follows ConfigMap `name` in `namespace` until `stop` completes, calling
/// `apply` with each change (resolved). `apply` saying no (the proxy refused
/// the table) is logged, and the same table is offered again on the next
/// change or resolution round.
pub async fn follow(
    client: Client,
    namespace: &str,
    name: &str,
    mut apply: impl AsyncFnMut(TableChange) -> Result<(), String>,
    stop: impl Future<Output = ()>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let mut stop = std::pin::pin!(stop);
    let whence = format!("{namespace}/{name}");
    let mut current: Option<Value> = None;
    let mut handed: Option<TableChange> = None;
    loop {
        // Read it, then watch it from there.
        let round = async {
            let map = api.get_opt(name).await.map_err(|e| e.to_string())?;
            let version = map
                .as_ref()
                .and_then(|m| m.metadata.resource_version.clone())
                .unwrap_or_else(|| "0".to_owned());
            Ok::<_, String>((map, version))
        };
        let (map, version) = tokio::select! {
            () = &mut stop => return,
            got = round => match got {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!("cannot read ConfigMap {namespace}/{name}: {e}");
                    tokio::select! { () = &mut stop => return, () = tokio::time::sleep(RETRY) => continue }
                }
            },
        };
        current = match map.as_ref().map(table_of).transpose() {
            Ok(table) => table.flatten(),
            Err(e) => {
                tracing::warn!("ConfigMap {namespace}/{name}: {e}");
                current
            }
        };
        if map.is_none() {
            hand(&mut apply, TableChange::Removed, &mut handed, &whence).await;
        }
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(WATCH_SECONDS);
        let stream = match api.watch(&params, &version).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("cannot watch ConfigMap {namespace}/{name}: {e}");
                tokio::select! { () = &mut stop => return, () = tokio::time::sleep(RETRY) => continue }
            }
        };
        let mut stream = std::pin::pin!(stream);
        let mut next_resolve = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_resolve {
                next_resolve = tokio::time::Instant::now() + RESOLVE_EVERY;
                if let Some(table) = &current {
                    match resolve(table).await {
                        Ok(resolved) => {
                            let json = serde_json::to_vec(&resolved).unwrap_or_default();
                            hand(&mut apply, TableChange::Table(json), &mut handed, &whence).await;
                        }
                        Err(e) => {
                            tracing::warn!("ConfigMap {namespace}/{name}: {e}; trying again");
                            next_resolve = tokio::time::Instant::now() + RETRY;
                        }
                    }
                }
            }
            let event = tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep_until(next_resolve) => continue,
                event = stream.next() => event,
            };
            match event {
                Some(Ok(WatchEvent::Added(map) | WatchEvent::Modified(map))) => {
                    match table_of(&map) {
                        Ok(table) => current = table,
                        Err(e) => tracing::warn!("ConfigMap {namespace}/{name}: {e}"),
                    }
                    next_resolve = tokio::time::Instant::now();
                }
                Some(Ok(WatchEvent::Deleted(_))) => {
                    current = None;
                    hand(&mut apply, TableChange::Removed, &mut handed, &whence).await;
                }
                Some(Ok(WatchEvent::Bookmark(_))) => {}
                Some(Ok(WatchEvent::Error(status))) => {
                    tracing::debug!("watch of ConfigMap {namespace}/{name}: {}", status.message);
                    break;
                }
                Some(Err(e)) => {
                    tracing::debug!("watch of ConfigMap {namespace}/{name} broke off: {e}");
                    break;
                }
                None => break,
            }
        }
    }
}
