//! Finding containers again: by label, after the runtime that started them
//! is gone (a restarted controller, or `hifi down` after a lost state).

use hifi_core::{Protocol, Slot};
use hifi_runtime::{InstanceStatus, Runtime};

use super::{PATIENCE, Project, eventually, read};

#[tokio::test]
async fn discover_finds_running_containers_by_label_after_their_runtime_is_dropped() {
    let Some(p) =
        Project::new("discover_finds_running_containers_by_label_after_their_runtime_is_dropped")
            .await
    else {
        return;
    };
    let image = p.image("v1").await;
    let web = p.spec("web", &image, None);
    let mut api = p.spec("api", &image, None);
    api.slot = Slot::Blue;
    let dead = p.spec("dead", &image, Some("exit 0"));
    let mut started = {
        let first = p.runtime();
        let web = {
            let instance = first.start(&web).await.unwrap();
            first.wait_healthy(&web, &instance, PATIENCE).await.unwrap();
            instance
        };
        let api = {
            let instance = first.start(&api).await.unwrap();
            first.wait_healthy(&api, &instance, PATIENCE).await.unwrap();
            instance
        };
        let gone = first.start(&dead).await.unwrap();
        assert!(first.wait_healthy(&dead, &gone, PATIENCE).await.is_err());
        vec![api, web]
        // `first` is dropped here, as if the controller died.
    };

    let second = p.runtime();
    let found = second.discover().await.unwrap();
    started.sort_by(|a, b| (&a.env, a.slot, &a.service).cmp(&(&b.env, b.slot, &b.service)));
    assert_eq!(
        found, started,
        "exactly the running ones, as start returned them"
    );
    // Another project's runtime sees none of them.
    let other = hifi_runtime::DockerRuntime::new(
        &format!("{}-other", p.name),
        hifi_runtime::docker::Engine::from_env(),
    );
    assert!(other.discover().await.unwrap().is_empty());

    for instance in &found {
        assert_eq!(second.status(instance).await, InstanceStatus::Running);
        assert_eq!(
            second
                .probe(instance, "/healthz", Protocol::Http1, PATIENCE)
                .await
                .unwrap(),
            200
        );
    }
    second.stop(&found[0], PATIENCE).await.unwrap();
    assert_eq!(second.discover().await.unwrap(), found[1..].to_vec());
    second.stop(&found[1], PATIENCE).await.unwrap();
    assert!(second.discover().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_restarted_runtime_keeps_appending_a_containers_output_to_its_log() {
    let Some(p) =
        Project::new("a_restarted_runtime_keeps_appending_a_containers_output_to_its_log").await
    else {
        return;
    };
    let image = p.image("v1").await;
    let spec = p.spec(
        "ticker",
        &image,
        Some("i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done"),
    );
    let instance = {
        let first = p.runtime();
        let instance = first.start(&spec).await.unwrap();
        eventually("the first ticks are in the log", || {
            read(&spec.log).contains("tick 3\n")
        })
        .await;
        instance
    };
    // Nobody follows the output now; the next runtime takes over when it
    // first asks for the container's status.
    let ticks = |text: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix("tick ")?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
    };
    let before = ticks(&read(&spec.log));
    let second = p.runtime();
    assert_eq!(second.status(&instance).await, InstanceStatus::Running);
    eventually("new ticks are appended again", || {
        ticks(&read(&spec.log)) > before + 5
    })
    .await;
    assert!(read(&spec.log).contains("==> hifi: following container"));
    // No tick was lost in between (some may repeat).
    let log = read(&spec.log);
    for n in 1..=before + 5 {
        assert!(
            log.contains(&format!("tick {n}\n")),
            "tick {n} missing:\n{log}"
        );
    }
    second.stop(&instance, PATIENCE).await.unwrap();
}
