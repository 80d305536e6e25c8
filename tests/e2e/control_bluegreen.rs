//! Blue-green through the real control plane: switches and rollbacks under
//! load fail no request, the previous state stays warm, and the smoke check
//! gates the switch.

use std::time::{Duration, Instant};

use hifi_testkit::Env;

use serde_json::Value;

use super::cluster::{APP_PATH, Cluster, Mode, alive, app, blue_green, pid_of, wait_until};
use super::load::Load;
use super::util::assert_mentions;

#[test]
fn blue_green_switch_under_load_fails_no_request_and_keeps_the_old_slot_warm() {
    let c = Cluster::new([blue_green("dev")]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");
    assert_eq!(c.version("dev", "first-user"), "v1");

    let v2 = c.release("dev", "v2", Mode::Ok);
    let load = Load::start(c.port("dev"), 12, 3);
    std::thread::sleep(Duration::from_millis(800));
    c.deploy("dev");
    let switched = Instant::now();
    // Past the drain time, so the old slot has been drained by then.
    std::thread::sleep(Duration::from_millis(2_500));
    let tally = load.stop();

    tally.assert_no_failures();
    let versions = tally.versions();
    assert!(
        versions.contains_key("v1") && versions.contains_key("v2"),
        "the load should see both sides of the switch: {}",
        tally.summary()
    );
    let stale: Vec<String> = tally
        .since(switched)
        .filter_map(|s| s.version())
        .filter(|v| v != "v2")
        .collect();
    assert!(
        stale.is_empty(),
        "after the switch only v2 answers, got {} other answer(s): {}",
        stale.len(),
        tally.summary()
    );

    let status = c.status("dev");
    let routing = &status["routing"];
    let active_slot = routing["active"]["slot"].as_str().expect("an active slot");
    for sample in tally.since(switched) {
        let reply = sample.reply.as_ref().expect("an answer");
        assert_eq!(reply.slot().as_deref(), Some(active_slot), "{reply:?}");
        assert_eq!(reply.slot_header.as_deref(), Some(active_slot), "{reply:?}");
    }
    assert_eq!(routing["active"]["release"], v2.as_str(), "{status}");
    assert_eq!(routing["standby"]["release"], v1.as_str(), "{status}");
    assert!(routing["candidate"].is_null(), "{status}");
    let instances = c.instances("dev");
    assert_eq!(instances.len(), 2, "one instance per slot: {status}");
    for (slot, row) in &instances {
        assert_eq!(row["health"], "healthy", "{slot}: {status}");
        let pid = pid_of(&Cluster::instance_id(row));
        assert!(alive(pid), "the {slot} instance (pid {pid}) should run");
    }
    let standby_slot = routing["standby"]["slot"].as_str().expect("a standby slot");
    assert_eq!(instances[standby_slot]["release"], v1.as_str());
}

#[test]
fn rollback_returns_to_the_previous_release_under_load_and_is_refused_without_one() {
    let c = Cluster::new([blue_green("dev")]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");

    let refused = c.hifi(&["rollback", "dev"]).fails(1);
    assert_mentions(&refused, &["dev has no previous state"]);
    assert_eq!(
        c.history("dev").len(),
        1,
        "a refused rollback records nothing"
    );

    let v2 = c.release("dev", "v2", Mode::Ok);
    c.deploy("dev");
    assert_eq!(c.version("dev", "first-user"), "v2");

    let load = Load::start(c.port("dev"), 12, 3);
    std::thread::sleep(Duration::from_millis(800));
    c.hifi(&["rollback", "dev", "--wait"]).ok();
    let rolled_back = Instant::now();
    std::thread::sleep(Duration::from_millis(1_500));
    let tally = load.stop();

    tally.assert_no_failures();
    let stale = tally
        .since(rolled_back)
        .filter(|s| s.version().as_deref() != Some("v1"))
        .count();
    assert_eq!(
        stale,
        0,
        "after the rollback only v1 answers: {}",
        tally.summary()
    );
    let status = c.status("dev");
    assert_eq!(
        status["routing"]["active"]["release"],
        v1.as_str(),
        "{status}"
    );
    assert_eq!(
        status["routing"]["standby"]["release"],
        v2.as_str(),
        "{status}"
    );
    let newest = &c.history("dev")[0]["deployment"];
    assert_eq!(newest["strategy"], "rollback", "{newest}");
    assert_eq!(newest["state"], "live", "{newest}");
}

/// The smoke command of these tests: GET /version through
/// `$HIFI_CANDIDATE_URL`, logged to `smoke.log`, must contain the version
/// written in the `expect` file (both in the scratch dir).
fn smoke_env(c_scratch: &std::path::Path) -> Env {
    let log = c_scratch.join("smoke.log");
    let expect = c_scratch.join("expect");
    let command = format!(
        "curl -fsS \"$HIFI_CANDIDATE_URL/version\" | tee -a '{}' | grep -q \"\\\"$(cat '{}')\\\"\"",
        log.display(),
        expect.display()
    );
    blue_green("dev").smoke(&command)
}

fn smoke_cluster() -> Cluster {
    let scratch = tempfile::tempdir().expect("temp dir");
    let envs = smoke_env(scratch.path());
    let mut c = Cluster::new([envs]);
    c.scratch = scratch;
    c
}

fn expect(c: &Cluster, version: &str) {
    std::fs::write(c.scratch.path().join("expect"), version).expect("write expect");
}

#[test]
fn failing_smoke_check_fails_the_deployment_and_the_active_release_keeps_serving() {
    let c = smoke_cluster();
    expect(&c, "v1");
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");

    let v2 = c.release("dev", "v2", Mode::Ok);
    expect(&c, "a version nobody answers with");
    let stderr = c.hifi(&["deploy", "dev", "--wait"]).fails(1);
    assert_mentions(&stderr, &["failed", "smoke"]);

    assert_eq!(c.version("dev", "someone"), "v1");
    let status = c.status("dev");
    assert_eq!(
        status["routing"]["active"]["release"],
        v1.as_str(),
        "{status}"
    );
    assert!(status["routing"]["candidate"].is_null(), "{status}");
    wait_until(
        "the failed candidate's instance to stop",
        Duration::from_secs(15),
        || {
            let instances = c.instances("dev");
            match instances.values().any(|i| i["release"] == v2.as_str()) {
                false => Ok(()),
                true => Err(format!("{instances:?}")),
            }
        },
    );
    let newest = &c.history("dev")[0]["deployment"];
    assert_eq!(newest["state"], "failed", "{newest}");
}

#[test]
fn smoke_check_reaches_the_candidate_not_the_active_release() {
    let c = smoke_cluster();
    expect(&c, "v1");
    c.compose("dev");
    c.up();
    c.deploy("dev");

    let v2 = c.release("dev", "v2", Mode::Ok);
    expect(&c, "v2");
    let run = c.hifi(&["deploy", "dev", "--wait"]);
    let smoke_log = std::fs::read_to_string(c.scratch.path().join("smoke.log")).unwrap_or_default();
    assert!(
        run.status.success(),
        "the smoke check of v2 should see v2; it saw:\n{smoke_log}\n{run}"
    );
    assert_eq!(c.active("dev").as_deref(), Some(v2.as_str()));
    assert_eq!(c.version("dev", "someone"), "v2");
}

#[test]
fn a_promoted_release_runs_the_recipe_it_was_verified_with() {
    let prod = Env::promote("prod", 0, "dev")
        .strategy("blue-green")
        .soak("1s")
        .drain("2s");
    let c = Cluster::new([blue_green("dev"), prod]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");
    c.wait_verified("dev", &v1);

    // Someone edits the run command after dev verified v1: prod must still
    // run v1 exactly as verified, not the edit.
    let toml = c.project.read("hifi.toml");
    c.project.write(
        "hifi.toml",
        &toml.replace("run = \"python3 app.py\"", "run = \"exit 7\""),
    );
    c.hifi(&["promote", "dev", "prod", "--wait"]).ok();

    assert_eq!(c.active("prod").as_deref(), Some(v1.as_str()));
    assert_eq!(c.version("prod", "someone"), "v1");
}

#[test]
fn deploying_the_release_already_live_is_refused_and_records_nothing() {
    let c = Cluster::new([blue_green("dev")]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");
    let deployments = c.history("dev").len();

    let stderr = c.hifi(&["deploy", "dev"]).fails(1);
    assert_mentions(&stderr, &["already live", &v1[..12]]);
    assert_eq!(c.history("dev").len(), deployments);
    assert_eq!(c.active("dev").as_deref(), Some(v1.as_str()));
}

#[test]
fn replicas_share_a_slot_behind_the_proxy_and_the_slot_is_healthy_only_when_all_are() {
    let c = Cluster::with_service(
        [blue_green("dev")],
        "",
        hifi_testkit::Service::new("api").route("/").replicas(3),
        &|_| vec![(APP_PATH.to_string(), app("v1", Mode::Ok))],
    );
    c.compose("dev");
    c.up();
    c.deploy("dev");
    let rows = c.status("dev")["instances"].clone();
    let replicas: Vec<u64> = rows
        .as_array()
        .expect("instances")
        .iter()
        .map(|r| r["replica"].as_u64().expect("a replica"))
        .collect();
    assert_eq!(replicas, [0, 1, 2], "{rows}");
    let ports: std::collections::BTreeSet<String> = (0..60)
        .filter_map(|i| c.get("dev", "/version", &format!("u{i}")).ok())
        .filter_map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body).ok()?["port"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(ports.len(), 3, "every replica serves: {ports:?}");

    // A new release is switched to only once all three are healthy.
    let v2 = c.release("dev", "v2", Mode::Ok);
    let load = Load::start(c.port("dev"), 8, 2);
    c.deploy("dev");
    load.stop().assert_no_failures();
    let live: Vec<Value> = c.status("dev")["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter(|r| r["release"] == v2.as_str())
        .cloned()
        .collect();
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|r| r["health"] == "healthy"), "{live:?}");
}
