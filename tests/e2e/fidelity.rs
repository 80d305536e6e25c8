//! The fidelity gate and approvals: an environment that promotes is never
//! composed, and sign-offs are recorded against (environment, release).

use std::path::PathBuf;
use std::time::Duration;

use super::cluster::{Cluster, blue_green, kill, pid_of, wait_until};
use super::util::{TestProject, assert_mentions, parse_json};

fn shop() -> TestProject {
    TestProject::new()
        .service("catalog")
        .standard()
        .card(
            "PAY-1",
            "feature/pay-1",
            &[("services/catalog/pay.txt", "pay\n")],
        )
        .at("PAY-1", "In Dev")
}

#[test]
fn an_environment_that_promotes_is_never_composed() {
    let p = shop();
    let before = p.recorded();

    let stderr = p.hifi(&["compose", "prod"]).fails(1);

    assert_mentions(&stderr, &["prod", "promote"]);
    assert_eq!(p.recorded(), before);
}

#[test]
fn approve_defaults_to_the_latest_composition_of_a_composed_environment() {
    let p = shop();
    let with_pay = p.json(&["compose", "dev"])["release"]["id"].clone();
    p.move_card("PAY-1", "Ready for Dev");
    let without_pay = p.json(&["compose", "dev"])["release"]["id"].clone();
    p.move_card("PAY-1", "In Dev");
    // Same content as the first: dev's latest composition is the older release.
    assert_eq!(p.json(&["compose", "dev"])["release"]["id"], with_pay);
    assert_eq!(
        p.releases()[0]["id"],
        without_pay,
        "newest release is the other one"
    );

    let approval = p.json(&["approve", "dev"]);

    assert_eq!(approval["env"], "dev");
    assert_eq!(approval["release"], with_pay);
    assert_eq!(approval["approver"], "tester");
    assert_eq!(approval["new"], true);
    assert_eq!(approval["approvals"], 1);

    let again = p.json(&["approve", "dev"]);
    assert_eq!(again["new"], false, "one approval per person");
    assert_eq!(again["approvals"], 1);
    let other = parse_json(&p.hifi_as("other", &["approve", "dev", "--json"]).ok());
    assert_eq!(other["approvals"], 2);
}

#[test]
fn approving_for_a_gated_environment_needs_a_release() {
    let p = shop();
    let id = p.json(&["compose", "dev"])["release"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let stderr = p.hifi(&["approve", "prod"]).fails(1);
    assert_mentions(&stderr, &["--release"]);

    let approval = p.json(&["approve", "prod", "--release", &id[..8]]);
    assert_eq!(approval["env"], "prod");
    assert_eq!(approval["release"], id.as_str());
    assert_eq!(approval["approvals"], 1);
    assert_eq!(approval["required"], 1);

    let stderr = p
        .hifi(&["approve", "prod", "--release", "deadbeef"])
        .fails(1);
    assert_mentions(&stderr, &["deadbeef"]);
    let stderr = p.hifi(&["approve", "prod", "--release", &id[..3]]).fails(1);
    assert_mentions(&stderr, &["too short", "at least 4"]);
    let stderr = p.hifi(&["approve", "uat"]).fails(1);
    assert_mentions(&stderr, &["uat", "compose"]);
    let stderr = p.hifi(&["approve", "qa"]).fails(1);
    assert_mentions(&stderr, &["qa"]);
}

/// The artifact directory of the one service of a cluster.
fn artifact_of(c: &Cluster) -> PathBuf {
    let dir = c.root().join(".hifi/artifacts/api");
    std::fs::read_dir(&dir)
        .expect("the service's artifacts")
        .map(|e| e.expect("an entry").path())
        .find(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .expect("an artifact")
}

#[test]
fn an_artifact_changed_after_it_was_built_is_never_run_again() {
    let c = Cluster::new([blue_green("dev"), blue_green("uat")]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");
    // What the instance writes where it runs stays out of the artifact.
    let shown = c.project.json(&["release", "show", &v1]);
    let digest = shown["services"][0]["digest"]
        .as_str()
        .expect("a digest")
        .to_string();
    assert!(digest.starts_with("sha256:"), "{shown}");
    assert_eq!(
        c.status("dev")["artifacts"][0]["digest"],
        digest.as_str(),
        "status shows what runs"
    );

    let app = artifact_of(&c).join("app.py");
    let mut text = std::fs::read_to_string(&app).expect("the artifact's app.py");
    text.push_str("\nprint('not what was verified')\n");
    std::fs::write(&app, text).expect("tamper");

    // Another environment of the same release refuses to start it...
    assert_eq!(c.compose("uat"), v1);
    let stderr = c.hifi(&["deploy", "uat", "--wait"]).fails(1);
    assert_mentions(&stderr, &["changed after it was built", &digest[..20]]);
    assert_eq!(c.active("uat"), None);

    // ...and so does a restart of the one running.
    let row = c
        .instances("dev")
        .into_values()
        .next()
        .expect("an instance");
    kill(pid_of(&Cluster::instance_id(&row)));
    wait_until("a refused restart", Duration::from_secs(30), || {
        let events = c.events(Some("dev"));
        match events
            .iter()
            .any(|(_, message)| message.contains("changed after it was built"))
        {
            true => Ok(()),
            false => Err(format!("{events:?}")),
        }
    });
}
