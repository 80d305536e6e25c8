//! A slot's life on Kubernetes: applied, waited on, probed, re-adopted,
//! deleted.

use std::time::Duration;

use hifi_core::{Protocol, Slot};
use hifi_runtime::kubernetes::KubeconfigSource;
use hifi_runtime::{KubeRuntime, Runtime};

use super::{Cluster, IMAGE, PATIENCE, spec};

#[tokio::test]
async fn a_slot_is_a_deployment_and_a_service_applied_by_hifi() {
    let cluster = Cluster::new().await;
    let spec = spec("staging", Slot::Green);
    let instance = cluster.runtime.start(&spec).await.unwrap();
    assert_eq!(
        instance.id.as_str(),
        "kubernetes:shop-staging/catalog-green"
    );
    assert_eq!(
        instance.addr.ip().to_string(),
        "127.1.0.2",
        "the Service's cluster IP"
    );

    let deployment = cluster
        .fake
        .object("deployments", "shop-staging", "catalog-green")
        .expect("the Deployment");
    let labels = &deployment["metadata"]["labels"];
    assert_eq!(labels["hifi.dev/project"], "shop");
    assert_eq!(labels["hifi.dev/environment"], "staging");
    assert_eq!(labels["hifi.dev/service"], "catalog");
    assert_eq!(labels["hifi.dev/slot"], "green");
    assert_eq!(labels["hifi.dev/release"], &spec.release.as_str()[..12]);
    assert_eq!(
        deployment["metadata"]["annotations"]["hifi.dev/release"],
        spec.release.as_str()
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], IMAGE);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert!(
        container.get("resources").is_none(),
        "staging configures no resources: {container}"
    );
    let env: Vec<String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}={}",
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap()
            )
        })
        .collect();
    assert!(env.contains(&"PORT=8080".to_owned()), "{env:?}");
    assert!(env.contains(&"GREETING=hello".to_owned()), "{env:?}");
    let service = cluster
        .fake
        .object("services", "shop-staging", "catalog-green")
        .expect("the Service");
    assert_eq!(service["spec"]["selector"]["hifi.dev/slot"], "green");

    // Both by server-side apply, as field manager hifi.
    let applies: Vec<_> = cluster
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.verb == "patch")
        .collect();
    assert_eq!(applies.len(), 2);
    assert!(
        applies
            .iter()
            .all(|c| c.field_manager.as_deref() == Some("hifi"))
    );

    cluster
        .runtime
        .wait_healthy(&spec, &instance, PATIENCE)
        .await
        .unwrap();
    assert!(
        cluster
            .fake
            .calls()
            .iter()
            .any(|c| c.verb == "watch" && c.resource == "deployments"),
        "the runtime waits by watching"
    );
    assert!(cluster.runtime.status(&instance).await.is_running());
    assert_eq!(
        cluster
            .runtime
            .probe(&instance, "/healthz", Protocol::Http1, PATIENCE)
            .await
            .unwrap(),
        200
    );
}

#[tokio::test]
async fn applying_again_changes_the_deployment_in_place() {
    let cluster = Cluster::new().await;
    let first = spec("prod", Slot::Blue);
    cluster.runtime.start(&first).await.unwrap();
    let mut second = first.clone();
    second.replicas = 3;
    let instance = cluster.runtime.start(&second).await.unwrap();
    cluster
        .runtime
        .wait_healthy(&second, &instance, PATIENCE)
        .await
        .unwrap();
    let deployment = cluster
        .fake
        .object("deployments", "shop-live", "catalog-blue")
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["metadata"]["generation"], 2);
    assert_eq!(deployment["status"]["availableReplicas"], 3);
}

#[tokio::test]
async fn a_restarted_runtime_re_adopts_what_runs_and_stop_deletes_it() {
    let cluster = Cluster::new().await;
    let staging = spec("staging", Slot::Green);
    let prod = spec("prod", Slot::Blue);
    let a = cluster.runtime.start(&staging).await.unwrap();
    let b = cluster.runtime.start(&prod).await.unwrap();

    let again = cluster.restarted();
    let found = again.discover().await.unwrap();
    assert_eq!(found, vec![b.clone(), a.clone()], "sorted by environment");
    assert!(again.status(&a).await.is_running());

    again.stop(&a, Duration::from_secs(1)).await.unwrap();
    assert!(
        cluster
            .fake
            .object("deployments", "shop-staging", "catalog-green")
            .is_none()
    );
    assert!(
        cluster
            .fake
            .object("services", "shop-staging", "catalog-green")
            .is_none()
    );
    assert!(
        cluster.fake.names("pods", "shop-staging").is_empty(),
        "its pods go with it"
    );
    assert!(again.status(&a).await.is_exited());
    // Stopping what is gone is not an error.
    again.stop(&a, Duration::from_secs(1)).await.unwrap();
    assert_eq!(again.discover().await.unwrap(), vec![b]);
}

#[tokio::test]
async fn a_probe_sees_a_slot_with_no_ready_pod_by_status_and_through_the_api_server() {
    let cluster = Cluster::new().await;
    cluster
        .fake
        .behave("catalog-green", hifi_testkit::kube::Behaviour::NeverReady);
    let instance = cluster
        .runtime
        .start(&spec("staging", Slot::Green))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        cluster
            .runtime
            .probe(&instance, "/healthz", Protocol::Http1, PATIENCE)
            .await
            .unwrap(),
        503
    );
    assert_eq!(
        cluster
            .runtime
            .probe_through_api(&instance, "/healthz", PATIENCE)
            .await
            .unwrap(),
        503
    );
}

#[tokio::test]
async fn configured_resources_reach_every_service_container() {
    let cluster = Cluster::new().await;
    cluster
        .runtime
        .start(&spec("prod", Slot::Blue))
        .await
        .unwrap();
    let deployment = cluster
        .fake
        .object("deployments", "shop-live", "catalog-blue")
        .expect("the Deployment");
    let resources = &deployment["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(
        resources,
        &serde_json::json!({
            "requests": { "cpu": "250m", "memory": "128Mi" },
            "limits": { "memory": "256Mi" },
        })
    );
}

#[tokio::test]
async fn another_projects_objects_in_the_namespace_are_neither_overwritten_nor_deleted() {
    let cluster = Cluster::new().await;
    let ours = cluster
        .runtime
        .start(&spec("staging", Slot::Green))
        .await
        .unwrap();

    // Project `other` wrongly set to the same namespace.
    let other = KubeRuntime::new(KubeconfigSource::File(
        cluster.dir.path().join("kubeconfig"),
    ));
    let config = super::CONFIG.replace("name = \"shop\"", "name = \"other\"").replace(
        "name = \"staging\"\nport = 8100\ncards_from = \"In Dev\"\nruntime = \"kubernetes\"",
        "name = \"staging\"\nport = 8100\ncards_from = \"In Dev\"\nruntime = \"kubernetes\"\n[environment.kubernetes]\nnamespace = \"shop-staging\"",
    );
    other.configure(&hifi_core::Config::parse(&config).unwrap());
    let refused = other
        .start(&spec("staging", Slot::Green))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("shop-staging/catalog-green")
            && refused.contains("belongs to environment staging of project shop")
            && refused.contains("namespace of its own"),
        "{refused}"
    );
    let refused = other
        .stop(&ours, Duration::from_secs(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("project shop"), "{refused}");
    let deployment = cluster
        .fake
        .object("deployments", "shop-staging", "catalog-green")
        .expect("still there");
    assert_eq!(deployment["metadata"]["labels"]["hifi.dev/project"], "shop");
    assert!(cluster.runtime.status(&ours).await.is_running());
}

#[tokio::test]
async fn secret_vars_live_in_a_secret_of_the_slot_never_in_the_deployment() {
    let cluster = Cluster::new().await;
    let mut spec = spec("staging", Slot::Green);
    spec.vars
        .insert("PAYMENT_KEY".into(), "pk-live-0123456789".into());
    spec.secret_vars.insert("PAYMENT_KEY".into());
    let instance = cluster.runtime.start(&spec).await.unwrap();

    let deployment = cluster
        .fake
        .object("deployments", "shop-staging", "catalog-green")
        .expect("the Deployment");
    assert!(
        !deployment.to_string().contains("pk-live-0123456789"),
        "the secret is in the Deployment: {deployment}"
    );
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let key = env
        .iter()
        .find(|e| e["name"] == "PAYMENT_KEY")
        .expect("PAYMENT_KEY is set");
    assert_eq!(
        key["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "catalog-green-vars", "key": "PAYMENT_KEY", "optional": false})
    );
    // Plain vars stay plain.
    assert!(
        env.iter()
            .any(|e| e["name"] == "GREETING" && e["value"] == "hello"),
        "{env:?}"
    );

    let secret = cluster
        .fake
        .object("secrets", "shop-staging", "catalog-green-vars")
        .expect("the slot's Secret");
    assert_eq!(secret["type"], "Opaque");
    // `data` is base64: "pk-live-0123456789".
    assert_eq!(secret["data"]["PAYMENT_KEY"], "cGstbGl2ZS0wMTIzNDU2Nzg5");
    assert_eq!(
        secret["data"].as_object().unwrap().len(),
        1,
        "only the secret vars: {secret}"
    );
    assert_eq!(secret["metadata"]["labels"]["hifi.dev/slot"], "green");
    assert_eq!(
        secret["metadata"]["annotations"]["hifi.dev/keys"],
        "PAYMENT_KEY"
    );

    // The slot's Secret goes with the slot.
    cluster
        .runtime
        .stop(&instance, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        cluster
            .fake
            .object("secrets", "shop-staging", "catalog-green-vars")
            .is_none()
    );
}
