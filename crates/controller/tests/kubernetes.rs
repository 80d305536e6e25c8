//! Kubernetes environments driven by the controller, against the fake API
//! server of `hifi_testkit::kube`: one Deployment per (service, slot) with
//! the service's replicas, the routing table in the proxy's ConfigMap, the
//! canary judged on the figures of every proxy replica, added up.

use hifi_core::{DeploymentState, Layout, RuntimeKind, Slot};
use hifi_runtime::Runtimes;
use hifi_runtime::kubernetes::KubeconfigSource;
use hifi_testkit::kube::FakeKube;
use serde_json::Value;

use crate::util::{Hifi, INTERVAL_MS, Project};

/// The table in the routing ConfigMap of `namespace`.
fn table(fake: &FakeKube, namespace: &str) -> Value {
    let map = fake
        .object("configmaps", namespace, "hifi-routing")
        .expect("the routing ConfigMap");
    serde_json::from_str(map["data"]["table.json"].as_str().unwrap()).unwrap()
}

async fn start(project: &Project, fake: &FakeKube) -> Hifi {
    let kubeconfig = fake.kubeconfig(&project.state_dir(), &["fake"]);
    let runtimes = Runtimes::new(&Layout::new(project.root()))
        .with_kubeconfig(KubeconfigSource::File(kubeconfig));
    Hifi::start_with(project, runtimes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_goes_live_as_deployments_and_a_routing_configmap() {
    let fake = FakeKube::start(&["shop-dev", "shop-prod"]).await;
    let project = Project::on_kubernetes(&["web", "api"], 3);
    let hifi = start(&project, &fake).await;

    let first = project.compose_dev();
    let id = project.deploy("dev", &first);
    project.wait_live(id).await;
    let slot = project.routing("dev").active.unwrap().slot;
    let instances = project.instances("dev");
    assert_eq!(
        instances.len(),
        2,
        "one instance per service: {instances:?}"
    );
    assert!(
        instances
            .iter()
            .all(|i| i.replica == 0 && i.runtime == RuntimeKind::Kubernetes)
    );

    let web = fake
        .object("deployments", "shop-dev", &format!("web-{slot}"))
        .expect("web's Deployment");
    assert_eq!(web["spec"]["replicas"], 3, "Kubernetes runs the replicas");
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    let image = container["image"].as_str().unwrap();
    assert!(
        image.starts_with("registry.example.com/shop/web@sha256:ffff"),
        "by the registry's digest: {image}"
    );
    let env = container["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|v| v["name"] == "HIFI_URL_API" && v["value"] == "http://api"),
        "peers by their stable Service: {env:?}"
    );

    // The data plane: the proxy and a stable Service per service.
    let proxy = fake
        .object("deployments", "shop-dev", "hifi-proxy")
        .expect("the proxy");
    assert_eq!(proxy["spec"]["replicas"], 2);
    assert_eq!(
        fake.names("services", "shop-dev"),
        vec![
            "api".to_owned(),
            format!("api-{slot}"),
            "hifi-proxy".to_owned(),
            "web".to_owned(),
            format!("web-{slot}"),
        ]
    );
    let live = table(&fake, "shop-dev");
    assert_eq!(live["listen"], "0.0.0.0:8080");
    let web_route = live["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap();
    assert_eq!(web_route["active"]["backends"][0], format!("web-{slot}:80"));
    assert_eq!(web_route["internal_listen"], "0.0.0.0:9000");
    // What the in-cluster proxy does with it: each Service name resolved
    // (here to loopback), then the proxy's own validation.
    let text = serde_json::to_string(&live)
        .unwrap()
        .replace(&format!("-{slot}:80"), "-x.localhost:80")
        .replace("\"web-x.localhost:80\"", "\"localhost:80\"")
        .replace("\"api-x.localhost:80\"", "\"localhost:81\"");
    let resolved =
        hifi_runtime::kubernetes::table_source::resolve(&serde_json::from_str(&text).unwrap())
            .await
            .unwrap();
    let spec = hifi_proxy::TableSpec::from_json(resolved.to_string().as_bytes()).unwrap();
    spec.validate().expect("the proxy takes the table");

    // The next release goes to the other slot; the first stays warm.
    std::fs::write(project.root().join("services/web/extra.txt"), "v2\n").unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "web v2"]);
    let second = project.compose_dev();
    let id = project.deploy("dev", &second);
    let done = project.wait_live(id).await;
    assert_eq!(done.state, DeploymentState::Live);
    let other = slot.other();
    let live = table(&fake, "shop-dev");
    let web_route = live["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap();
    assert_eq!(
        web_route["active"]["backends"][0],
        format!("web-{other}:80")
    );
    assert_eq!(
        web_route["standby"]["backends"][0],
        format!("web-{slot}:80")
    );
    assert_eq!(project.instances("dev").len(), 4);

    hifi.stop().await;
    let left: Vec<String> = fake
        .names("deployments", "shop-dev")
        .into_iter()
        .filter(|n| n != "hifi-proxy")
        .collect();
    assert!(
        left.is_empty(),
        "every slot's Deployment is deleted: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_is_judged_on_the_figures_of_every_proxy_replica_added_up() {
    let fake = FakeKube::start(&["shop-dev", "shop-prod"]).await;
    let project = Project::on_kubernetes(&["web"], 1);
    let hifi = start(&project, &fake).await;
    let first = project.compose_dev();
    project.verified_in_dev(&first);
    let id = project.deploy("prod", &first);
    project.wait_live(id).await;
    let stable = project.routing("prod").active.unwrap().slot;
    let candidate = stable.other();

    std::fs::write(project.root().join("services/web/extra.txt"), "v2\n").unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "web v2"]);
    let second = project.compose_dev();
    project.verified_in_dev(&second);
    // Each proxy replica saw part of the traffic: together the candidate
    // failed 6 of 40 requests (15 %, above the 5 % allowed), though neither
    // replica alone says so clearly (1 of 20, then 5 of 20).
    let figures = |requests: u64, errors: u64, slot: Slot| {
        serde_json::json!({
            "env": "prod", "slot": slot.as_str(), "service": null, "since_ms": 0,
            "requests": requests, "errors": errors,
            "error_ratio": errors as f64 / requests as f64,
            "p50_ms": 3.0, "p99_ms": 20.0,
        })
        .to_string()
    };
    let pods: Vec<String> = fake
        .names("pods", "shop-prod")
        .into_iter()
        .filter(|p| p.starts_with("hifi-proxy-"))
        .collect();
    assert_eq!(pods.len(), 2, "{pods:?}");
    for (pod, errors) in pods.iter().zip([1, 5]) {
        fake.pod_answer(
            pod,
            &format!("/stats?env=prod&slot={candidate}"),
            200,
            &figures(20, errors, candidate),
        );
        fake.pod_answer(
            pod,
            &format!("/stats?env=prod&slot={stable}"),
            200,
            &figures(100, 0, stable),
        );
        fake.pod_answer(pod, "/inflight", 200, &format!("{{\"env\":\"prod\",\"slot\":\"{candidate}\",\"service\":null,\"requests\":0,\"upgraded\":0}}"));
    }
    let id = project.deploy("prod", &second);
    project.wait_step(id, 0).await;
    project.clock.advance(INTERVAL_MS);
    let ended = project
        .wait_deployment(id, "aborted", |d| d.state.is_terminal())
        .await;
    assert_eq!(
        ended.state,
        DeploymentState::Aborted,
        "{}",
        project.story(id)
    );
    let reason = ended.reason.unwrap_or_default();
    assert!(reason.contains("6 of 40"), "{reason}");
    assert!(reason.contains("stable slot: 200 requests"), "{reason}");
    assert!(
        fake.calls().iter().any(|c| c.resource == "pods/proxy"),
        "figures come through the API server"
    );
    hifi.stop().await;
}

/// API calls by verb and resource, `patch deployments: 40, …`.
fn tally(calls: &[hifi_testkit::kube::Call]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for call in calls {
        *counts
            .entry(format!("{} {}", call.verb, call.resource))
            .or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The figures of `bench/RESULTS.md` ("Kubernetes: API calls"): calls to the
/// API server for a first deployment, a second one (the other slot), and
/// per reconcile pass while nothing changes, for `services` × 2 slots.
/// Run with `bench/kubernetes/run.sh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by bench/kubernetes/run.sh"]
async fn api_calls_per_deployment_and_per_reconcile() {
    let shapes: Vec<(usize, u16)> = std::env::var("HIFI_BENCH_SHAPES")
        .unwrap_or_else(|_| "1x1,5x1,10x1,20x1,20x3,40x1".to_owned())
        .split(',')
        .map(|s| {
            let (n, r) = s.split_once('x').unwrap();
            (n.parse().unwrap(), r.parse().unwrap())
        })
        .collect();
    println!(
        "| services × replicas | first deployment | second | third (displaces the standby) | idle, per second | third by kind |"
    );
    println!("|---|---|---|---|---|---|");
    for (services, replicas) in shapes {
        let names: Vec<String> = (0..services).map(|i| format!("svc{i:02}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let fake = FakeKube::start(&["shop-dev", "shop-prod"]).await;
        // Pods take a moment to become ready, so hifi waits by watch.
        fake.ready_delay(std::time::Duration::from_millis(300));
        let project = Project::on_kubernetes(&names, replicas);
        let hifi = start(&project, &fake).await;
        let mut counts = Vec::new();
        let mut last = Vec::new();
        for n in 0..3 {
            if n > 0 {
                std::fs::write(
                    project.root().join("services/svc00/extra.txt"),
                    format!("v{n}\n"),
                )
                .unwrap();
                project.git(&["add", "-A"]);
                project.git(&["commit", "-q", "-m", "next"]);
            }
            let release = project.compose_dev();
            fake.reset_calls();
            let id = project.deploy("dev", &release);
            project.wait_live(id).await;
            last = fake.calls();
            counts.push(last.len());
        }
        // Idle: every reconcile pass (here every 20 ms; 100 ms by default)
        // asks about every instance.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        fake.reset_calls();
        let window = std::time::Duration::from_secs(5);
        tokio::time::sleep(window).await;
        let idle = fake.calls();
        println!(
            "| {services} × {replicas} | {} | {} | {} | {:.1} ({}) | {} |",
            counts[0],
            counts[1],
            counts[2],
            idle.len() as f64 / window.as_secs_f64(),
            tally(&idle),
            tally(&last),
        );
        hifi.stop().await;
    }
}
