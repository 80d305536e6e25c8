//! The in-cluster proxy's table source: the routing ConfigMap followed by
//! watch, its backend names resolved, each change handed on once.

use std::time::Duration;

use hifi_runtime::kubernetes::ProxyPlane;
use hifi_runtime::kubernetes::table_source::{TableChange, follow};
use kube::Client;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Cluster, PATIENCE};

fn table(backend: &str) -> String {
    json!({
        "env": "staging",
        "listen": "0.0.0.0:8080",
        "services": [{
            "name": "catalog",
            "route": "/catalog",
            "internal_listen": "0.0.0.0:9000",
            "active": {"slot": "blue", "backends": [backend]},
        }],
    })
    .to_string()
}

async fn next(changes: &mut mpsc::Receiver<TableChange>) -> TableChange {
    tokio::time::timeout(PATIENCE, changes.recv())
        .await
        .expect("a change in time")
        .expect("the source runs")
}

fn backend(change: &TableChange) -> String {
    let TableChange::Table(json) = change else {
        panic!("not a table: {change:?}");
    };
    let table: Value = serde_json::from_slice(json).unwrap();
    table["services"][0]["active"]["backends"][0]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_proxy_follows_its_configmap_with_names_resolved() {
    let cluster = Cluster::new().await;
    let plane: ProxyPlane = cluster.runtime.plane("staging").unwrap();
    plane.put_table(&table("localhost:8081")).await.unwrap();

    let kubeconfig = cluster.dir.path().join("kubeconfig");
    let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    let (tx, mut changes) = mpsc::channel(16);
    let following = follow(
        client,
        "shop-staging",
        "hifi-routing",
        async |change| tx.send(change).await.map_err(|e| e.to_string()),
        std::future::pending(),
    );
    let checks = async {
        let first = next(&mut changes).await;
        let addr = backend(&first);
        assert!(
            addr == "127.0.0.1:8081" || addr == "[::1]:8081",
            "localhost resolved: {addr}"
        );
        // A switch arrives by watch, in well under a second.
        let started = std::time::Instant::now();
        plane.put_table(&table("127.0.0.1:9999")).await.unwrap();
        assert_eq!(backend(&next(&mut changes).await), "127.0.0.1:9999");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        plane.remove_table().await.unwrap();
        assert_eq!(next(&mut changes).await, TableChange::Removed);
    };
    tokio::select! {
        () = following => panic!("the source stopped by itself"),
        () = checks => {}
    }
}
