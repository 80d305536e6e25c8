//! The control plane refusing bad input and surviving bad releases: a
//! second `hifi up`, `hifi down` with nothing running, an unknown
//! environment, a release that exits at once or never gets healthy, a
//! public port taken by another program — and `hifi down` leaving nothing
//! behind.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use super::cluster::{
    Cluster, Mode, alive, blue_green, listening, pid_of, processes_under, wait_until,
};
use super::util::{assert_mentions, parse_json};

#[test]
fn second_up_down_with_nothing_running_and_unknown_environment_are_refused() {
    let c = Cluster::new([blue_green("dev")]);
    c.compose("dev");

    let stderr = c.hifi(&["down"]).fails(1);
    assert_mentions(&stderr, &["not running"]);
    let stderr = c.hifi(&["deploy", "dev", "--wait"]).fails(1);
    assert_mentions(&stderr, &["hifi is not running"]);
    assert!(
        c.history("dev").is_empty(),
        "a refused --wait records nothing"
    );

    c.up();
    let pid = c.control_plane_pid();
    let stderr = c.hifi(&["up", "--detach"]).fails(1);
    assert_mentions(&stderr, &["already running", &pid.to_string()]);
    let stderr = c.hifi(&["up"]).fails(1);
    assert_mentions(&stderr, &["already running"]);
    assert_eq!(c.control_plane_pid(), pid, "the first one still runs");

    for args in [
        &["deploy", "nowhere", "--wait"][..],
        &["deploy", "nowhere"],
        &["promote", "dev", "nowhere"],
        &["rollback", "nowhere"],
    ] {
        let stderr = c.hifi(args).fails(1);
        assert_mentions(&stderr, &["nowhere"]);
    }
    assert!(c.history("dev").is_empty());

    c.hifi(&["down"]).ok();
    assert!(!alive(pid));
    c.hifi(&["down"]).fails(1);
}

/// Asserts `env` still serves `release` (v1) from one healthy instance and
/// nothing else runs there.
fn assert_only_v1_serves(c: &Cluster, env: &str, release: &str) {
    assert_eq!(c.version(env, "someone"), "v1");
    let status = c.status(env);
    assert_eq!(status["routing"]["active"]["release"], release, "{status}");
    assert!(status["routing"]["candidate"].is_null(), "{status}");
    wait_until(
        "only the active instance to run",
        Duration::from_secs(15),
        || {
            let instances = c.instances(env);
            let others = instances.values().any(|i| i["release"] != release);
            match (instances.len(), others) {
                (1, false) => Ok(()),
                _ => Err(format!("{instances:?}")),
            }
        },
    );
}

#[test]
fn release_that_exits_at_once_fails_its_deployment_and_the_active_release_keeps_serving() {
    let c = Cluster::new([blue_green("dev")]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");

    c.release("dev", "v2", Mode::Exits(3));
    let stderr = c.hifi(&["deploy", "dev", "--wait"]).fails(1);
    assert_mentions(&stderr, &["failed", "service api", "exited with status 3"]);
    assert_only_v1_serves(&c, "dev", &v1);
}

#[test]
fn release_that_never_gets_healthy_fails_its_deployment_after_the_start_timeout() {
    // The start timeout is 30 s and not configurable: this test takes that long.
    let c = Cluster::new([blue_green("dev")]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");

    c.release("dev", "v2", Mode::Unhealthy);
    let stderr = c.hifi(&["deploy", "dev", "--wait"]).fails(1);
    assert_mentions(&stderr, &["failed", "service api", "/healthz", "500"]);
    assert_only_v1_serves(&c, "dev", &v1);
}

#[test]
fn deploy_on_a_public_port_taken_by_another_program_fails_naming_it_and_leaves_nothing() {
    let c = Cluster::new([blue_green("dev")]);
    let port = c.port("dev");
    let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the env's port");
    c.compose("dev");
    c.up();

    let stderr = c.hifi(&["deploy", "dev", "--wait"]).fails(1);
    assert_mentions(&stderr, &["failed", &port.to_string()]);
    wait_until(
        "the failed deployment's instances to stop",
        Duration::from_secs(15),
        || {
            let status = c.status("dev");
            match status["instances"].as_array().map(Vec::len) {
                Some(0) => Ok(()),
                _ => Err(status.to_string()),
            }
        },
    );
    let status = c.status("dev");
    assert!(status["routing"]["active"].is_null(), "{status}");
    assert!(status["routing"]["candidate"].is_null(), "{status}");
    assert_eq!(c.history("dev")[0]["deployment"]["state"], "failed");

    // Once the port is free again, the same deployment goes through.
    drop(squatter);
    c.deploy("dev");
    assert_eq!(c.version("dev", "someone"), "v1");
}

#[test]
fn down_frees_every_port_and_leaves_no_process() {
    let c = Cluster::new([blue_green("dev"), blue_green("uat")]);
    c.compose("dev");
    c.compose("uat");
    c.up();
    c.deploy("dev");
    c.deploy("uat");
    c.release("dev", "v2", Mode::Ok);
    c.deploy("dev");

    // Every port hifi listens on: public, internal and the instances'.
    let mut ports = c.ports();
    let tables = c.root().join(".hifi/proxy/tables");
    for entry in std::fs::read_dir(&tables).expect("the proxy's tables") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let table = parse_json(&std::fs::read_to_string(&path).expect("read table"));
            if let Some(preview) = table["preview_listen"].as_str() {
                ports.push(preview.rsplit(':').next().unwrap().parse().unwrap());
            }
            for service in table["services"].as_array().expect("services") {
                let internal = service["internal_listen"].as_str().expect("internal");
                ports.push(internal.rsplit(':').next().unwrap().parse().unwrap());
            }
        }
    }
    let mut pids = vec![c.control_plane_pid(), pid_of(&c.proxy_id())];
    for env in ["dev", "uat"] {
        for row in c.instances(env).values() {
            let handle = parse_json(row["handle"].as_str().expect("a handle"));
            let addr = handle["addr"].as_str().expect("an addr");
            ports.push(addr.rsplit(':').next().unwrap().parse().unwrap());
            pids.push(pid_of(handle["id"].as_str().expect("an id")));
        }
    }
    assert_eq!(pids.len(), 2 + 3, "control plane, proxy, three instances");
    assert!(
        ports.len() >= 2 + 2 + 3,
        "two public, two internal, three instances at least: {ports:?}"
    );
    for port in &ports {
        assert!(listening(*port), "port {port} should be in use before down");
    }

    c.hifi(&["down"]).ok();

    let still_listening: Vec<u16> = ports.iter().copied().filter(|p| listening(*p)).collect();
    assert!(
        still_listening.is_empty(),
        "still listening: {still_listening:?}"
    );
    let running: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(running.is_empty(), "still running: {running:?}");
    let left = processes_under(c.root());
    assert!(
        left.is_empty(),
        "processes left under the project: {left:?}"
    );
    let status = c.status_all();
    assert_eq!(status["running"], false, "{status}");
    for env in status["environments"].as_array().expect("environments") {
        assert_eq!(env["instances"], serde_json::json!([]), "{env}");
    }

    // The next `hifi up` brings back every environment's last live state.
    c.up();
    assert_eq!(c.version("dev", "someone"), "v2");
    assert_eq!(c.version("uat", "someone"), "v1");
}
