//! Canary rollouts through the real control plane: one that passes goes
//! live step by step with sticky users, one whose requests fail aborts by
//! itself, and promotion is refused before verification and approval.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use hifi_testkit::Env;

use super::cluster::{
    Cluster, Mode, assert_sticky, blue_green, canary, canary_ready, canary_ready_with, wait_until,
};
use super::load::Load;
use super::util::assert_mentions;

const TWO_STEPS: &str = "steps = [20, 60]\ninterval = \"1s\"";

#[test]
fn canary_that_passes_goes_live_step_by_step_and_keeps_users_on_the_new_release() {
    let (c, _v1, v2) = canary_ready(TWO_STEPS, "v2", Mode::Ok);
    assert_eq!(c.version("prod", "first-user"), "v1");

    let load = Load::start(c.port("prod"), 40, 4);
    std::thread::sleep(Duration::from_millis(500));
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    let live = Instant::now();
    std::thread::sleep(Duration::from_millis(1_000));
    let tally = load.stop();

    tally.assert_no_failures();
    assert_sticky(&tally, "v1", "v2");
    let first_v2 = tally
        .samples
        .iter()
        .find(|s| s.version().as_deref() == Some("v2"))
        .map(|s| s.sent)
        .expect("v2 answered");
    assert!(
        first_v2 < live,
        "some users should meet v2 before it goes live"
    );
    assert!(
        tally
            .since(first_v2)
            .any(|s| s.sent < live && s.version().as_deref() == Some("v1")),
        "the canary should keep some users on v1 while others are on v2: {}",
        tally.summary()
    );
    let stale = tally
        .since(live)
        .filter(|s| s.version().as_deref() != Some("v2"))
        .count();
    assert_eq!(stale, 0, "once live, only v2 answers: {}", tally.summary());

    let entry = &c.history("prod")[0];
    let deployment = &entry["deployment"];
    assert_eq!(deployment["release"], v2.as_str(), "{entry}");
    assert_eq!(deployment["strategy"], "canary", "{entry}");
    assert_eq!(deployment["state"], "live", "{entry}");
    let analyses = entry["analyses"].as_array().expect("analyses");
    let passed: Vec<i64> = analyses
        .iter()
        .filter(|a| a["verdict"] == "pass")
        .map(|a| a["step"].as_i64().expect("a step"))
        .collect();
    assert_eq!(passed, [0, 1], "each step below 100 % passed once: {entry}");
    assert!(
        analyses
            .iter()
            .all(|a| a["verdict"] != "fail" && a["errors"] == 0),
        "{entry}"
    );
    let status = c.status("prod");
    assert_eq!(status["routing"]["active"]["release"], v2.as_str());
    assert!(status["routing"]["candidate"].is_null(), "{status}");
}

#[test]
fn canary_of_a_release_whose_requests_fail_aborts_by_itself_and_leaves_the_active_release() {
    let (c, v1, v2) = canary_ready(TWO_STEPS, "v2", Mode::Buggy);
    let before = c.instances("prod");
    assert_eq!(before.len(), 1, "{before:?}");

    let load = Load::start(c.port("prod"), 40, 4);
    std::thread::sleep(Duration::from_millis(500));
    let stderr = c.hifi(&["promote", "prep", "prod", "--wait"]).fails(1);
    let aborted = Instant::now();
    std::thread::sleep(Duration::from_millis(1_000));
    let tally = load.stop();

    assert_mentions(&stderr, &["aborted", "error ratio"]);
    assert!(
        !tally.failures().is_empty(),
        "the candidate's share should have seen its 500s: {}",
        tally.summary()
    );
    let after: Vec<_> = tally.since(aborted).collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|s| s.version().as_deref() == Some("v1")),
        "after the abort every user is back on v1: {}",
        tally.summary()
    );

    let status = c.status("prod");
    assert_eq!(
        status["routing"]["active"]["release"],
        v1.as_str(),
        "{status}"
    );
    assert!(status["routing"]["candidate"].is_null(), "{status}");
    assert!(status["deployment"].is_null(), "{status}");
    wait_until(
        "the aborted candidate's instance to stop",
        Duration::from_secs(15),
        || {
            let now = c.instances("prod");
            match now.len() {
                1 => Ok(()),
                _ => Err(format!("{now:?}")),
            }
        },
    );
    let active_slot = status["routing"]["active"]["slot"]
        .as_str()
        .expect("a slot");
    assert_eq!(
        Cluster::instance_id(&c.instances("prod")[active_slot]),
        Cluster::instance_id(&before[active_slot]),
        "the active instance is untouched"
    );

    let entry = &c.history("prod")[0];
    let deployment = &entry["deployment"];
    assert_eq!(deployment["release"], v2.as_str(), "{entry}");
    assert_eq!(deployment["state"], "aborted", "{entry}");
    assert_mentions(
        deployment["reason"].as_str().expect("a reason"),
        &["error ratio", "requests"],
    );
    let last = entry["analyses"]
        .as_array()
        .and_then(|a| a.last())
        .expect("the analysis that failed");
    assert_eq!(last["verdict"], "fail", "{entry}");
    assert!(last["errors"].as_i64() > Some(0), "{entry}");
    assert!(last["requests"].as_i64() >= Some(5), "{entry}");
}

#[test]
fn promote_is_refused_before_the_source_verified_the_release_and_without_approval() {
    let c = Cluster::new([
        Env::cards("uat", 0, "In Dev").soak("1h"),
        Env::cards("prep", 0, "In Dev").soak("1s"),
        Env::promote("staging", 0, "uat"),
        Env::promote("prod", 0, "prep").approvals(1),
    ]);
    let release = c.compose("uat");
    assert_eq!(c.compose("prep"), release, "same content, same release");
    c.up();
    c.deploy("uat");
    c.deploy("prep");
    c.wait_verified("prep", &release);
    assert_eq!(c.status("uat")["verified"], false);

    let stderr = c.hifi(&["promote", "uat", "staging", "--wait"]).fails(1);
    assert_mentions(&stderr, &["not verified in uat"]);
    assert!(c.history("staging").is_empty(), "nothing recorded");

    let stderr = c.hifi(&["promote", "prep", "prod", "--wait"]).fails(1);
    assert_mentions(&stderr, &["0 of the 1 approval(s)", "hifi approve prod"]);
    assert!(c.history("prod").is_empty(), "nothing recorded");
    assert!(c.status("prod")["routing"]["active"].is_null());

    c.hifi(&["approve", "prod"]).ok();
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    assert_eq!(c.history("prod").len(), 1);
    assert_eq!(c.version("prod", "someone"), "v1");
}

#[test]
fn a_downstream_outage_both_slots_share_does_not_fail_the_candidate() {
    // A third of every slot's requests fail, as when a service they both
    // call is down: far above the 5 % allowed, but not the candidate's doing.
    let settings = "steps = [20, 60]\ninterval = \"1s\"\nmax_error_rate = 0.05";
    let c = Cluster::new([blue_green("prep"), canary("prod", "prep", settings)]);
    let v1 = c.release("prep", "v1", Mode::Flaky);
    c.up();
    c.deploy("prep");
    c.wait_verified("prep", &v1);
    c.hifi(&["approve", "prod"]).ok();
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    let v2 = c.release("prep", "v2", Mode::Flaky);
    c.deploy("prep");
    c.wait_verified("prep", &v2);
    c.hifi(&["approve", "prod"]).ok();

    let load = Load::start(c.port("prod"), 40, 4);
    std::thread::sleep(Duration::from_millis(500));
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    load.stop();

    let entry = &c.history("prod")[0];
    assert_eq!(entry["deployment"]["release"], v2.as_str(), "{entry}");
    assert_eq!(entry["deployment"]["state"], "live", "{entry}");
    let judged: Vec<f64> = entry["analyses"]
        .as_array()
        .expect("analyses")
        .iter()
        .filter(|a| a["verdict"] == "pass")
        .map(|a| a["error_ratio"].as_f64().expect("a ratio"))
        .collect();
    assert!(!judged.is_empty(), "{entry}");
    assert!(
        judged.iter().all(|r| *r > 0.05),
        "the candidate passed with errors above the limit: {judged:?}"
    );
}

#[test]
fn a_canary_without_traffic_pauses_after_its_extensions_and_says_so() {
    let settings = "steps = [50]\ninterval = \"1s\"\nmax_extensions = 2";
    let (c, _v1, _v2) = canary_ready(settings, "v2", Mode::Ok);
    c.hifi(&["promote", "prep", "prod"]).ok();
    wait_until("the canary to pause", Duration::from_secs(30), || {
        let d = c.status("prod")["deployment"].clone();
        if d["paused"] == true {
            Ok(())
        } else {
            Err(d.to_string())
        }
    });
    let d = c.status("prod")["deployment"].clone();
    let reason = d["reason"].as_str().unwrap_or_default().to_string();
    assert_mentions(
        &reason,
        &[
            "step 1 paused",
            "after 2 extension(s)",
            "hifi canary prod resume",
        ],
    );
    let text = c.hifi(&["status", "prod"]).ok();
    assert_mentions(&text, &["paused", "after 2 extension(s)"]);
    let kinds: Vec<String> = c.events(Some("prod")).into_iter().map(|e| e.0).collect();
    assert!(kinds.iter().any(|k| k == "canary.stalled"), "{kinds:?}");
    c.hifi(&["canary", "prod", "abort"]).ok();
}

/// `prep` (blue-green) → `prod` (canary with exactly the `canary` lines,
/// one approval), ready for `hifi promote prep prod`.
fn ready(canary_lines: &str, version: &str, mode: Mode) -> Cluster {
    let prod = Env::promote("prod", 0, "prep")
        .strategy("canary")
        .approvals(1)
        .soak("1s")
        .drain("2s")
        .canary(canary_lines);
    canary_ready_with(prod, version, mode).0
}

fn wait_step(c: &Cluster) {
    wait_until("the canary's first step", Duration::from_secs(30), || {
        let s = c.status("prod");
        match s["deployment"]["weight"].as_f64() {
            Some(w) if w > 0.0 => Ok(()),
            _ => Err(s.to_string()),
        }
    });
}

#[test]
fn one_user_abandoning_uploads_on_the_candidate_does_not_fail_a_healthy_canary() {
    let c = ready(
        "steps = [20, 100]\ninterval = \"3s\"\nmin_requests = 20\nmax_p99_ms = 5000",
        "v2",
        Mode::Ok,
    );
    let port = c.port("prod");
    let load = Load::start(port, 16, 4);
    c.hifi(&["promote", "prep", "prod"]).ok();
    wait_step(&c);
    // The attacker tries cookies until one lands on the candidate.
    let attacker = (0..2_000)
        .map(|i| format!("attacker-{i}"))
        .find(|user| c.version("prod", user) == "v2")
        .expect("a cookie that lands on the candidate");
    let send = |head: String, body: &[u8]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(body).expect("part of the body");
        std::thread::sleep(Duration::from_millis(30));
    };
    for _ in 0..15 {
        // Half an upload, then gone.
        send(
            format!(
                "POST /version HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: hifi-user={attacker}\r\ncontent-length: 1000000\r\n\r\n"
            ),
            &[b'x'; 4096],
        );
        // A chunked body that cannot be framed.
        send(
            format!(
                "POST /version HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: hifi-user={attacker}\r\ntransfer-encoding: chunked\r\n\r\n"
            ),
            b"5\r\nabc\r\nzz\r\n",
        );
    }
    let d = c.wait_settled("prod", Duration::from_secs(60));
    load.stop().assert_no_failures();

    assert_eq!(d["state"], "live", "{d}");
    let entry = &c.history("prod")[0];
    let first = &entry["analyses"][0];
    assert_eq!(first["verdict"], "pass", "{entry}");
    let events: Vec<String> = c
        .events(Some("prod"))
        .into_iter()
        .map(|(_, message)| message)
        .collect();
    assert!(
        events.iter().any(|m| m.contains("ended by their clients")),
        "the client-side endings are shown: {events:?}"
    );
}

#[test]
fn a_candidate_that_hangs_is_aborted_within_three_intervals() {
    let c = ready(
        "steps = [20, 100]\ninterval = \"3s\"\nmin_requests = 20\nmax_p99_ms = 1000",
        "v2",
        Mode::Hangs,
    );
    let port = c.port("prod");
    // Users who give up after two seconds, as browsers and clients do.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let users: Vec<_> = (0..12)
        .map(|u| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let head = format!(
                        "GET /version HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: hifi-user=user-{u}\r\nconnection: close\r\n\r\n"
                    );
                    let mut answer = Vec::new();
                    if s.write_all(head.as_bytes()).is_ok() {
                        let _ = s.read_to_end(&mut answer);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    c.hifi(&["promote", "prep", "prod"]).ok();
    let d = c.wait_settled("prod", Duration::from_secs(60));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for user in users {
        let _ = user.join();
    }

    assert_eq!(d["state"], "aborted", "{d}");
    let reason = d["reason"].as_str().unwrap_or_default();
    assert_mentions(reason, &["p99"]);
    let entry = &c.history("prod")[0];
    let first_step = entry["analyses"]
        .as_array()
        .and_then(|a| a.first())
        .map(|a| a["at"].as_i64().expect("at"));
    let started = entry["deployment"]["created_at"].as_i64().expect("created");
    let ended = entry["deployment"]["updated_at"].as_i64().expect("updated");
    assert!(
        ended - started < 3 * 3_000 + 5_000,
        "aborted {} ms after the promotion (first analysis at {first_step:?})",
        ended - started
    );
    assert_eq!(c.version("prod", "after"), "v1");
}
