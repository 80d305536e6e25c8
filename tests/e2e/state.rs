//! State that cannot be silently lost: an emptied, truncated or damaged
//! `state.db` is refused with what was found and the way back; rolling
//! backups restore every environment's live state and history; and
//! `hifi down` stops what runs even when the state forgot it.

use std::time::Duration;

use super::cluster::{Cluster, alive, blue_green, kill, listening, pid_of, wait_until};
use super::util::assert_mentions;

/// dev live on v1 with hifi up; returns the cluster, the release and the
/// pid of its one instance.
fn live_dev() -> (Cluster, String, u32) {
    let c = Cluster::new([blue_green("dev")]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");
    let instance = c
        .instances("dev")
        .values()
        .map(Cluster::instance_id)
        .next()
        .expect("an instance");
    (c, v1, pid_of(&instance))
}

/// Kills the control plane as a crash would (its services live on).
fn crash_control_plane(c: &Cluster) {
    let pid = c.control_plane_pid();
    kill(pid);
    wait_until(
        "the control plane to die",
        Duration::from_secs(10),
        || match alive(pid) {
            false => Ok(()),
            true => Err(format!("pid {pid} runs")),
        },
    );
}

/// Replaces the state database with an empty file, as `: > state.db` does.
fn empty_the_state(c: &Cluster) {
    let db = c.root().join(".hifi/state.db");
    for sidecar in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(c.root().join(".hifi").join(sidecar));
    }
    std::fs::write(&db, b"").expect("empty state.db");
}

#[test]
fn an_emptied_state_is_refused_by_up_and_down_still_stops_what_runs() {
    let (c, _, instance) = live_dev();
    crash_control_plane(&c);
    empty_the_state(&c);

    let stderr = c.hifi(&["up", "--detach"]).fails(1);
    assert_mentions(
        &stderr,
        &[
            "holds nothing",
            "previous run",
            "running instance",
            "service api (dev/blue)",
            "hifi state restore",
            "--reset-state",
        ],
    );
    assert!(alive(instance), "a refused up stopped nothing");
    assert!(listening(c.port("dev")), "traffic still flows");

    let stdout = c.hifi(&["down"]).ok();
    assert_mentions(
        &stdout,
        &[
            "the state no longer knew",
            "service api (dev/blue)",
            "the proxy",
        ],
    );
    assert!(!alive(instance), "down stopped the forgotten instance");
    assert!(!listening(c.port("dev")), "down freed the port");
}

#[test]
fn truncated_and_damaged_databases_are_refused_with_the_way_back() {
    let (c, _, _) = live_dev();
    c.hifi(&["down"]).ok();
    let db = c.root().join(".hifi/state.db");
    let intact = std::fs::read(&db).expect("read state.db");
    assert!(intact.len() > 8192, "the database has pages to damage");

    // Torn: only part of its first page is left.
    std::fs::write(&db, &intact[..1000]).expect("truncate");
    let stderr = c.hifi(&["status"]).fails(1);
    assert_mentions(&stderr, &["damaged", "hifi state restore"]);

    // A page in the middle overwritten: quick_check finds it.
    let mut damaged = intact.clone();
    let page = 4096 * 2;
    damaged[page..page + 4096].fill(0xA5);
    std::fs::write(&db, &damaged).expect("damage a page");
    let stderr = c.hifi(&["up", "--detach"]).fails(1);
    assert_mentions(&stderr, &["damaged", "hifi state restore"]);
    assert!(!listening(c.port("dev")), "nothing started");
}

#[test]
fn restoring_a_backup_brings_back_the_live_state_and_its_history() {
    let (c, v1, _) = live_dev();
    c.hifi(&["down"]).ok();
    empty_the_state(&c);

    let backups = c.project.json(&["state", "backups"]);
    let newest = &backups[0];
    assert_eq!(newest["reason"], "live", "{backups}");
    let live_dev: Vec<String> = newest["routing"]
        .as_array()
        .expect("routing")
        .iter()
        .filter(|pair| pair[0] == "dev")
        .filter_map(|pair| pair[1]["active"]["release"].as_str().map(String::from))
        .collect();
    assert_eq!(
        live_dev,
        std::slice::from_ref(&v1),
        "the backup holds what was live"
    );

    let stdout = c.hifi(&["state", "restore"]).ok();
    assert_mentions(&stdout, &["Restored the state from", "state-"]);
    let history = c.history("dev");
    assert_eq!(history.len(), 1, "the deployment came back");
    assert_eq!(history[0]["deployment"]["state"], "live");

    c.up();
    wait_until("dev to serve v1 again", Duration::from_secs(30), || match c
        .get("dev", "/version", "u1")
    {
        Ok(reply) if reply.status == 200 => Ok(()),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(c.version("dev", "u1"), "v1");
    assert_eq!(c.active("dev").as_deref(), Some(v1.as_str()));
}

#[test]
fn a_restore_is_refused_while_hifi_runs_and_a_reset_starts_over_knowingly() {
    let (c, _, instance) = live_dev();
    let stderr = c.hifi(&["state", "restore"]).fails(1);
    assert_mentions(&stderr, &["already running"]);

    crash_control_plane(&c);
    empty_the_state(&c);
    c.hifi(&["up", "--detach", "--reset-state"]).ok();
    assert!(!alive(instance), "the forgotten instance was stopped");
    let status = c.status("dev");
    assert!(status["routing"]["active"].is_null(), "{status}");
    let kinds: Vec<String> = c.events(None).into_iter().map(|e| e.0).collect();
    assert!(kinds.iter().any(|k| k == "state.reset"), "{kinds:?}");
}
