//! Each failure a user must be told about: it fails that deployment with a
//! clear reason naming the object, promptly, and leaves other environments
//! alone.

use std::time::{Duration, Instant};

use hifi_core::{Config, Slot};
use hifi_runtime::kubernetes::KubeconfigSource;
use hifi_runtime::{KubeRuntime, Runtime};
use hifi_testkit::kube::Behaviour;

use super::{CONFIG, Cluster, PATIENCE, spec};

/// Starts catalog in `env`/green and waits for it: the error, as a user reads it.
async fn deploy(runtime: &KubeRuntime, env: &str, timeout: Duration) -> String {
    let spec = spec(env, Slot::Green);
    let instance = match runtime.start(&spec).await {
        Ok(instance) => instance,
        Err(e) => return e.to_string(),
    };
    match runtime.wait_healthy(&spec, &instance, timeout).await {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn no_kubeconfig_fails_the_environment_and_says_where_hifi_looked() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let runtime = KubeRuntime::new(KubeconfigSource::File(missing.clone()));
    runtime.configure(&Config::parse(CONFIG).unwrap());
    let e = deploy(&runtime, "staging", PATIENCE).await;
    assert!(e.contains("environment staging runs on Kubernetes"), "{e}");
    assert!(e.contains(&missing.display().to_string()), "{e}");
}

#[tokio::test]
async fn a_wrong_context_names_it_and_the_contexts_there_are() {
    let config = CONFIG.replace(
        "namespace = \"shop-live\"",
        "namespace = \"shop-live\"\ncontext = \"prod-cluster\"",
    );
    let cluster = Cluster::with_config(&config).await;
    let e = deploy(&cluster.runtime, "prod", PATIENCE).await;
    assert!(e.contains("no context `prod-cluster`"), "{e}");
    assert!(e.contains("fake, other"), "{e}");
    // The other environment, on the current context, is untouched.
    assert_eq!(deploy(&cluster.runtime, "staging", PATIENCE).await, "ok");
}

#[tokio::test]
async fn a_forbidden_verb_names_the_object_and_the_role_to_grant() {
    let cluster = Cluster::new().await;
    cluster.fake.forbid("patch", "deployments");
    let e = deploy(&cluster.runtime, "staging", PATIENCE).await;
    assert!(
        e.contains("refused to let hifi apply Deployment shop-staging/catalog-green"),
        "{e}"
    );
    assert!(e.contains("cannot patch resource \"deployments\""), "{e}");
    assert!(e.contains("hifi manifests staging --rbac"), "{e}");
}

#[tokio::test]
async fn a_forbidden_watch_fails_the_wait_instead_of_retrying_until_the_timeout() {
    let cluster = Cluster::new().await;
    cluster.fake.forbid("watch", "deployments");
    cluster.fake.behave("catalog-green", Behaviour::NeverReady);
    let started = Instant::now();
    let e = deploy(&cluster.runtime, "staging", Duration::from_secs(20)).await;
    assert!(
        e.contains("watch Deployment shop-staging/catalog-green"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_quota_refusing_the_service_is_said_to_be_a_quota() {
    let cluster = Cluster::new().await;
    cluster.fake.quota("services");
    let e = deploy(&cluster.runtime, "staging", PATIENCE).await;
    assert!(e.contains("Service shop-staging/catalog-green"), "{e}");
    assert!(e.contains("resource quota is used up"), "{e}");
}

#[tokio::test]
async fn a_quota_refusing_the_pods_fails_at_once_naming_the_deployment() {
    let cluster = Cluster::new().await;
    cluster
        .fake
        .behave("catalog-green", Behaviour::QuotaRefusesPods);
    let started = Instant::now();
    let e = deploy(&cluster.runtime, "staging", Duration::from_secs(20)).await;
    assert!(
        e.contains("Deployment shop-staging/catalog-green cannot run"),
        "{e}"
    );
    assert!(e.contains("exceeded quota"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_names_the_pod_and_the_image() {
    let cluster = Cluster::new().await;
    cluster.fake.behave("catalog-green", Behaviour::Unpullable);
    let started = Instant::now();
    let e = deploy(&cluster.runtime, "staging", Duration::from_secs(20)).await;
    assert!(
        e.contains("Deployment shop-staging/catalog-green cannot run"),
        "{e}"
    );
    assert!(
        e.contains("cannot pull image registry.example.com/shop/catalog@sha256:"),
        "{e}"
    );
    assert!(e.contains("ImagePullBackOff"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "it fails fast");
}

#[tokio::test]
async fn a_crash_loop_fails_the_wait_with_the_exit_status() {
    let cluster = Cluster::new().await;
    cluster.fake.behave("catalog-green", Behaviour::CrashLoop);
    let e = deploy(&cluster.runtime, "staging", Duration::from_secs(20)).await;
    assert!(e.contains("CrashLoopBackOff"), "{e}");
    assert!(e.contains("exited with status 3"), "{e}");
}

#[tokio::test]
async fn a_deployment_that_never_becomes_available_fails_at_the_timeout() {
    let cluster = Cluster::new().await;
    cluster.fake.behave("catalog-green", Behaviour::NeverReady);
    let started = Instant::now();
    let e = deploy(&cluster.runtime, "staging", Duration::from_millis(1500)).await;
    assert!(
        e.contains("Deployment shop-staging/catalog-green did not become available within 1.5s: 0 of 2 replica(s) available"),
        "{e}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_progress_deadline_kubernetes_gave_up_on_is_reported_at_once() {
    let cluster = Cluster::new().await;
    cluster
        .fake
        .behave("catalog-green", Behaviour::ProgressDeadline);
    let e = deploy(&cluster.runtime, "staging", Duration::from_secs(20)).await;
    assert!(e.contains("ProgressDeadlineExceeded"), "{e}");
    assert!(e.contains("Deployment shop-staging/catalog-green"), "{e}");
}

#[tokio::test]
async fn a_missing_namespace_is_named_with_how_to_create_it() {
    let config = CONFIG.replace("shop-live", "shop-nowhere");
    let cluster = Cluster::with_config(&config).await;
    let e = deploy(&cluster.runtime, "prod", PATIENCE).await;
    assert!(e.contains("namespace shop-nowhere does not exist"), "{e}");
    assert!(e.contains("kubectl create namespace shop-nowhere"), "{e}");
}

#[tokio::test]
async fn an_unreachable_api_server_fails_promptly_and_names_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let port = hifi_testkit::loopback_port();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\ncurrent-context: gone\n"),
    )
    .unwrap();
    let runtime = KubeRuntime::new(KubeconfigSource::File(path));
    runtime.configure(&Config::parse(CONFIG).unwrap());
    let e = deploy(&runtime, "staging", PATIENCE).await;
    assert!(
        e.contains("could not reach the Kubernetes API server of environment staging"),
        "{e}"
    );
}
