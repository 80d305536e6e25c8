//! Crashes: SIGKILL of the control plane in the middle of a canary, of the
//! proxy, and of service instances. Traffic survives a dead control plane,
//! the next `hifi up` re-adopts what runs and resumes the rollout, and the
//! control plane restarts a dead proxy or instance.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::cluster::{
    Cluster, Mode, alive, assert_sticky, blue_green, canary_ready, kill, listening, pid_of,
    processes_under, wait_until,
};
use super::load::Load;

/// Waits until `env`'s canary has started its first step.
fn wait_canary_started(c: &Cluster, env: &str) {
    wait_until("the canary's first step", Duration::from_secs(30), || {
        let s = c.status(env);
        match s["deployment"]["weight"].as_f64() {
            Some(w) if w > 0.0 => Ok(()),
            _ => Err(s.to_string()),
        }
    });
}

#[test]
fn killing_the_control_plane_mid_canary_fails_no_request_and_the_next_up_resumes_the_rollout() {
    let (c, v1, v2) = canary_ready("steps = [20, 50, 80]\ninterval = \"2s\"", "v2", Mode::Ok);
    let load = Load::start(c.port("prod"), 40, 4);
    std::thread::sleep(Duration::from_millis(500));
    c.hifi(&["promote", "prep", "prod"]).ok();
    wait_canary_started(&c, "prod");

    let control_plane = c.control_plane_pid();
    let proxy = c.proxy_id();
    let instances: BTreeSet<String> = c
        .instances("prod")
        .values()
        .map(Cluster::instance_id)
        .collect();
    assert_eq!(instances.len(), 2, "active and candidate");
    kill(control_plane);
    wait_until(
        "the control plane to die",
        Duration::from_secs(10),
        || match alive(control_plane) {
            false => Ok(()),
            true => Err(format!("pid {control_plane} runs")),
        },
    );
    let interrupted = c.status("prod")["deployment"].clone();
    assert_eq!(
        interrupted["state"], "verifying",
        "killed mid-canary: {interrupted}"
    );
    // Traffic flows on without a control plane.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(c.status_all()["running"], false);
    assert!(
        alive(pid_of(&proxy)),
        "the proxy outlives the control plane"
    );
    for id in &instances {
        assert!(
            alive(pid_of(id)),
            "instance {id} outlives the control plane"
        );
    }

    c.up();
    assert_eq!(c.proxy_id(), proxy, "the running proxy is adopted");
    let adopted: BTreeSet<String> = c
        .instances("prod")
        .values()
        .map(Cluster::instance_id)
        .collect();
    assert_eq!(adopted, instances, "the running instances are adopted");
    let starts: Vec<String> = c
        .events(None)
        .into_iter()
        .filter(|(kind, _)| kind == "controller.started")
        .map(|(_, message)| message)
        .collect();
    assert!(
        starts
            .last()
            .is_some_and(|m| m.contains("running proxy adopted")),
        "{starts:?}"
    );

    let deployment = c.wait_settled("prod", Duration::from_secs(60));
    let live = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let tally = load.stop();

    assert_eq!(deployment["state"], "live", "{deployment}");
    assert_eq!(deployment["release"], v2.as_str(), "{deployment}");
    tally.assert_no_failures();
    assert_sticky(&tally, "v1", "v2");
    assert!(
        tally
            .since(live)
            .all(|s| s.version().as_deref() == Some("v2")),
        "{}",
        tally.summary()
    );
    let status = c.status("prod");
    assert_eq!(status["routing"]["standby"]["release"], v1.as_str());
    assert_eq!(c.proxy_id(), proxy, "still the same proxy");
}

/// Waits until `env` answers 200 from v1 again.
fn serves_again(c: &Cluster, env: &str) {
    wait_until(
        &format!("{env} to serve v1 again"),
        Duration::from_secs(20),
        || match c.get(env, "/version", "someone") {
            Ok(r) if r.status == 200 && r.version().as_deref() == Some("v1") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

#[test]
fn killed_proxy_and_killed_instance_are_restarted_and_the_environment_serves_again() {
    let c = Cluster::new([blue_green("dev")]);
    c.compose("dev");
    c.up();
    c.deploy("dev");

    let proxy = c.proxy_id();
    kill(pid_of(&proxy));
    wait_until("a new proxy", Duration::from_secs(20), || {
        match c.proxy_id() {
            id if id != proxy && alive(pid_of(&id)) => Ok(()),
            id => Err(id),
        }
    });
    serves_again(&c, "dev");
    wait_until(
        "the proxy's restart in the audit log",
        Duration::from_secs(10),
        || {
            let events = c.events(None);
            match events.iter().any(|(kind, _)| kind == "proxy.restarted") {
                true => Ok(()),
                false => Err(format!("{events:?}")),
            }
        },
    );

    let row = c
        .instances("dev")
        .into_values()
        .next()
        .expect("an instance");
    let killed = Cluster::instance_id(&row);
    kill(pid_of(&killed));
    wait_until(
        "the instance to be restarted",
        Duration::from_secs(30),
        || {
            let rows = c.instances("dev");
            let row = rows.values().next().ok_or("no instance")?;
            let id = Cluster::instance_id(row);
            if id != killed && row["health"] == "healthy" && row["restarts"] == 1 {
                Ok(())
            } else {
                Err(row.to_string())
            }
        },
    );
    serves_again(&c, "dev");
    let kinds: Vec<String> = c.events(Some("dev")).into_iter().map(|e| e.0).collect();
    let crashed = kinds.iter().position(|k| k == "instance.crashed");
    let restarted = kinds.iter().position(|k| k == "instance.restarted");
    assert!(
        crashed.is_some() && restarted > crashed,
        "crashed, then restarted: {kinds:?}"
    );
}

#[test]
fn killed_candidate_instance_is_restarted_during_a_canary_and_the_environment_keeps_serving() {
    // Errors do not abort this canary, absolute or compared with the stable
    // slot: it is about the restart.
    let settings =
        "steps = [20, 60]\ninterval = \"2s\"\nmax_error_rate = 1.0\nmax_error_rate_increase = 1.0";
    let (c, _v1, v2) = canary_ready(settings, "v2", Mode::Ok);
    let load = Load::start(c.port("prod"), 40, 4);
    std::thread::sleep(Duration::from_millis(300));
    c.hifi(&["promote", "prep", "prod"]).ok();
    wait_canary_started(&c, "prod");

    let status = c.status("prod");
    let slot = status["routing"]["candidate"]["slot"]
        .as_str()
        .expect("a candidate")
        .to_string();
    let killed = Cluster::instance_id(&c.instances("prod")[&slot]);
    kill(pid_of(&killed));
    wait_until(
        "the candidate to be restarted",
        Duration::from_secs(30),
        || {
            let rows = c.instances("prod");
            let row = rows.get(&slot).ok_or("no candidate instance")?;
            match row["restarts"].as_i64() {
                Some(n) if n >= 1 && row["health"] == "healthy" => Ok(()),
                _ => Err(row.to_string()),
            }
        },
    );
    let deployment = c.wait_settled("prod", Duration::from_secs(60));
    let live = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let tally = load.stop();

    assert_eq!(deployment["state"], "live", "{deployment}");
    assert_eq!(deployment["release"], v2.as_str());
    let kinds: Vec<String> = c.events(Some("prod")).into_iter().map(|e| e.0).collect();
    assert!(
        kinds.iter().any(|k| k == "instance.crashed")
            && kinds.iter().any(|k| k == "instance.restarted"),
        "{kinds:?}"
    );
    // Only the candidate's users may have met its crash.
    let canary_users: BTreeSet<&str> = tally
        .samples
        .iter()
        .filter(|s| s.sent < live && s.version().as_deref() == Some("v2"))
        .map(|s| s.user.as_str())
        .collect();
    for failure in tally.failures() {
        assert!(
            canary_users.contains(failure.user.as_str()),
            "{} is not a candidate user but failed: {}",
            failure.user,
            tally.summary()
        );
    }
    assert!(
        tally
            .since(live)
            .all(|s| s.version().as_deref() == Some("v2")),
        "{}",
        tally.summary()
    );
}

#[test]
fn down_after_a_killed_control_plane_stops_what_it_left_running() {
    let c = Cluster::new([blue_green("dev")]);
    c.compose("dev");
    c.up();
    c.deploy("dev");
    let control_plane = c.control_plane_pid();
    let proxy = pid_of(&c.proxy_id());
    let instance = pid_of(&Cluster::instance_id(
        c.instances("dev").values().next().expect("an instance"),
    ));
    kill(control_plane);
    wait_until(
        "the control plane to die",
        Duration::from_secs(10),
        || match alive(control_plane) {
            false => Ok(()),
            true => Err(format!("pid {control_plane} runs")),
        },
    );
    assert_eq!(c.version("dev", "someone"), "v1", "traffic outlives it");

    let stdout = c.hifi(&["down"]).ok();
    assert!(
        stdout.contains("left by a control plane that is gone"),
        "{stdout}"
    );
    assert!(!alive(proxy) && !alive(instance));
    assert!(!listening(c.port("dev")));
    assert!(processes_under(c.root()).is_empty());
}

#[test]
fn public_port_stays_open_while_the_only_instance_of_an_environment_restarts() {
    let c = Cluster::new([blue_green("dev")]);
    c.compose("dev");
    c.up();
    c.deploy("dev");

    let killed = Cluster::instance_id(c.instances("dev").values().next().expect("an instance"));
    kill(pid_of(&killed));
    // Until the instance is back, users get an answer (a 503), not a
    // refused connection: the port stays hifi's.
    let mut answers = Vec::new();
    wait_until("dev to serve again", Duration::from_secs(30), || {
        let reply = c.get("dev", "/version", "someone");
        let served = reply.as_ref().is_ok_and(|r| r.status == 200);
        answers.push(reply.map(|r| r.status));
        match served {
            true => Ok(()),
            false => Err(format!("{:?}", answers.last())),
        }
    });
    let refused: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(
        refused.is_empty(),
        "{} of {} requests found the port closed while the instance restarted: {:?}",
        refused.len(),
        answers.len(),
        refused.first()
    );
}
