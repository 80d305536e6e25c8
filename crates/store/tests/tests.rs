//! Store tests on a real SQLite file in a temp dir.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

use hifi_core::card::CardId;
use hifi_core::deployment::{DeploymentState, Kind, Request};
use hifi_core::event::EventKind;
use hifi_core::health::Health;
use hifi_core::release::{MergedCard, Release, ReleaseId, ServiceVersion};
use hifi_core::rollout::{Routing, Slot};
use hifi_store::{Audit, ConflictFlag, Error, InstanceRow, SCHEMA_VERSION, Store, Update};

fn card(id: &str) -> CardId {
    CardId::parse(id).unwrap()
}

fn audit(at: i64) -> Audit {
    Audit {
        actor: "ann".into(),
        at,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    (dir, store)
}

fn release(tree: &str) -> Release {
    Release {
        id: ReleaseId::compute(tree, &[]),
        tree: tree.into(),
        commit: format!("commit-{tree}"),
        base_commit: "base".into(),
        cards: vec![MergedCard {
            id: CardId::parse("PAY-1").unwrap(),
            branch: "f/pay-1".into(),
            commit: "c1".into(),
        }],
        services: vec![ServiceVersion {
            service: "api".into(),
            version: "v1".into(),
            recipe: hifi_core::Service {
                name: "api".into(),
                path: "services/api".into(),
                build: Some("make".into()),
                run: "./api".into(),
                health: "/healthz".into(),
                route: "/api".into(),
                image: Some("Dockerfile".into()),
                replicas: 1,
                protocol: hifi_core::Protocol::Http1,
                request_timeout: None,
            },
            digest: Some(format!("sha256:{}", "d".repeat(64))),
            image_id: Some(format!("sha256:{}", "e".repeat(64))),
        }],
        composed_for: "dev".into(),
        created_at: 5,
    }
}

/// Every deployment of dev, newest first, with where it stands.
fn states(store: &Store) -> Vec<(i64, DeploymentState)> {
    store
        .deployments("dev")
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.state))
        .collect()
}

/// Records a deployment of `release` to dev and walks it to live.
fn deploy_live(store: &mut Store, release: &Release, strategy: Kind, slot: Option<Slot>) -> i64 {
    let id = store
        .record_deployment(&audit(2), "dev", &release.id, strategy)
        .unwrap();
    for state in [
        DeploymentState::Building,
        DeploymentState::Starting,
        DeploymentState::Verifying,
        DeploymentState::Live,
    ] {
        store
            .update_deployment(
                &audit(3),
                id,
                Update {
                    state: Some(state),
                    slot,
                    ..Update::default()
                },
            )
            .unwrap();
    }
    id
}

#[test]
fn migrations_run_once_and_reopen_cleanly() {
    let (dir, store) = open();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);
    let again = Store::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(again.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn commands_creating_a_new_state_at_once_all_open_it_in_wal_mode() {
    // Rounds of a fresh file opened by 8 threads at once: the first to
    // convert it to WAL has the file to itself, and the others must wait
    // for it, not fail with "database is locked" (as one did in each of
    // four runs before the conversion was retried).
    for _ in 0..50 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            let opened: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        Store::open(&path).map(drop)
                    })
                })
                .collect();
            for opened in opened {
                if let Err(e) = opened.join().unwrap() {
                    panic!("a concurrent open failed: {e}");
                }
            }
        });
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}

#[test]
fn newer_schema_is_refused() {
    let (dir, store) = open();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&dir.path().join("state.db")).err().unwrap();
    assert!(matches!(err, Error::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn card_changes_write_their_event_in_the_same_transaction() {
    let (_dir, mut store) = open();
    store
        .add_card(&audit(1), &card("PAY-1"), "Pay", "f/pay-1", "Ready for Dev")
        .unwrap();
    let from = store
        .move_card(&audit(2), &card("PAY-1"), "In Test")
        .unwrap();
    assert_eq!(from, "Ready for Dev");
    assert_eq!(store.card(&card("PAY-1")).unwrap().stage, "In Test");
    store.remove_card(&audit(3), &card("PAY-1")).unwrap();
    let kinds: Vec<EventKind> = store
        .events(None, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::CardRemoved,
            EventKind::CardMoved,
            EventKind::CardAdded
        ]
    );
}

#[test]
fn refused_changes_leave_no_trace() {
    let (_dir, mut store) = open();
    store
        .add_card(&audit(1), &card("PAY-1"), "Pay", "f/pay-1", "In Dev")
        .unwrap();
    assert!(matches!(
        store.add_card(&audit(2), &card("PAY-1"), "x", "y", "In Dev"),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.move_card(&audit(2), &card("NOPE"), "In Dev"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.remove_card(&audit(2), &card("NOPE")),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.events(None, 10).unwrap().len(), 1);
    assert_eq!(store.card(&card("PAY-1")).unwrap().title, "Pay");
}

#[test]
fn compositions_record_a_release_once() {
    let (_dir, mut store) = open();
    let r = release("t1");
    use hifi_store::releases::Recorded;
    assert_eq!(
        store
            .record_composition(&audit(1), "dev", &r, "c", "in")
            .unwrap(),
        Recorded::NewRelease
    );
    assert_eq!(
        store
            .record_composition(&audit(2), "uat", &r, "c2", "in")
            .unwrap(),
        Recorded::KnownRelease
    );
    assert_eq!(store.release(&r.id).unwrap(), r);
    assert_eq!(store.releases().unwrap().len(), 1);
    assert_eq!(store.composed_for(&r.id).unwrap(), ["dev", "uat"]);
    assert_eq!(
        store.latest_composition("uat").unwrap().unwrap().commit,
        "c2"
    );
    assert!(store.latest_composition("prod").unwrap().is_none());
}

#[test]
fn a_release_keeps_the_protocol_of_its_recipe() {
    let (_dir, mut store) = open();
    let mut r = release("grpc");
    r.services[0].recipe.protocol = hifi_core::Protocol::Grpc;
    r.id = r.recomputed_id();
    store
        .record_composition(&audit(1), "dev", &r, "c", "in")
        .unwrap();
    let read = store.release(&r.id).unwrap();
    assert_eq!(read.services[0].recipe.protocol, hifi_core::Protocol::Grpc);
    assert_eq!(
        read.recomputed_id(),
        r.id,
        "the recorded recipe proves its id"
    );
}

#[test]
fn a_composition_clears_the_environment_conflict_flag() {
    let (_dir, mut store) = open();
    store
        .add_card(&audit(1), &card("PAY-1"), "Pay", "f/pay-1", "In Dev")
        .unwrap();
    let flag = ConflictFlag {
        env: "dev".into(),
        card: card("PAY-1"),
        with_cards: vec![card("PAY-0")],
        files: vec!["a.txt".into(), "b.txt".into()],
        at: 1,
    };
    store.record_conflict(&audit(1), &flag, "conflict").unwrap();
    assert_eq!(store.conflicts().unwrap(), [flag]);
    store
        .record_composition(&audit(2), "dev", &release("t"), "c", "in")
        .unwrap();
    assert!(store.conflicts().unwrap().is_empty());
}

#[test]
fn release_prefixes_resolve_or_say_why_not() {
    let (_dir, mut store) = open();
    let r = release("t1");
    store
        .record_composition(&audit(1), "dev", &r, "c", "in")
        .unwrap();
    assert_eq!(store.resolve_release(&r.id.as_str()[..6]).unwrap(), r.id);
    assert_eq!(
        store
            .resolve_release(&r.id.as_str().to_uppercase()[..8])
            .unwrap(),
        r.id
    );
    assert!(matches!(
        store.resolve_release("abc"),
        Err(Error::Refused(m)) if m.contains("at least 4")
    ));
    assert!(matches!(
        store.resolve_release("zzzzzz"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn going_live_supersedes_the_previous_live_deployment() {
    let (_dir, mut store) = open();
    let (a, b) = (release("a"), release("b"));
    for r in [&a, &b] {
        store
            .record_composition(&audit(1), "dev", r, "c", "in")
            .unwrap();
    }
    let first = deploy_live(&mut store, &a, Kind::BlueGreen, Some(Slot::Blue));
    assert_eq!(store.live_release("dev").unwrap(), Some(a.id.clone()));
    let second = store
        .record_deployment(&audit(4), "dev", &b.id, Kind::BlueGreen)
        .unwrap();
    assert!(
        store
            .update_deployment(
                &audit(5),
                second,
                Update {
                    state: Some(DeploymentState::Live),
                    slot: None,
                    ..Update::default()
                }
            )
            .is_err(),
        "pending cannot jump to live"
    );
    for state in [
        DeploymentState::Building,
        DeploymentState::Starting,
        DeploymentState::Verifying,
        DeploymentState::Live,
    ] {
        store
            .update_deployment(
                &audit(6),
                second,
                Update {
                    state: Some(state),
                    slot: Some(Slot::Green),
                    ..Update::default()
                },
            )
            .unwrap();
    }
    let states = states(&store);
    assert_eq!(
        states,
        [
            (second, DeploymentState::Live),
            (first, DeploymentState::Superseded)
        ]
    );
    assert_eq!(store.live_release("dev").unwrap(), Some(b.id));
}

#[test]
fn facts_gather_compositions_verifications_and_distinct_approvals() {
    let (_dir, mut store) = open();
    let r = release("t");
    store
        .record_composition(&audit(1), "prep", &r, "c", "in")
        .unwrap();
    store.record_verification(&audit(2), "prep", &r.id).unwrap();
    store.record_verification(&audit(3), "prep", &r.id).unwrap();
    assert!(store.approve(&audit(4), "prod", &r.id).unwrap());
    assert!(
        !store.approve(&audit(5), "prod", &r.id).unwrap(),
        "a second sign-off by the same person counts once"
    );
    let facts = store.facts(&r.id, "prod").unwrap();
    assert_eq!(facts.composed_for, ["prep"]);
    assert_eq!(facts.verified_in, ["prep"]);
    assert_eq!(facts.approvers, ["ann"]);
    let verified_events = store
        .events(Some("prep"), 10)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::ReleaseVerified)
        .count();
    assert_eq!(verified_events, 1);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Store::open(&path).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                for i in 0..50 {
                    let id = format!("W{w}-{i}");
                    store
                        .add_card(&audit(i), &card(&id), "t", "b", "In Dev")
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.cards().unwrap().len(), 200);
    assert_eq!(store.events(None, 1000).unwrap().len(), 200);
}

#[test]
fn a_second_deployment_is_refused_while_one_is_in_progress() {
    let (_dir, mut store) = open();
    let r = release("t");
    store
        .record_composition(&audit(1), "dev", &r, "c", "in")
        .unwrap();
    let first = store
        .record_deployment(&audit(2), "dev", &r.id, Kind::BlueGreen)
        .unwrap();
    assert!(
        matches!(store.record_deployment(&audit(3), "dev", &r.id, Kind::BlueGreen), Err(Error::Busy { deployment, .. }) if deployment == first)
    );
    store
        .update_deployment(
            &audit(4),
            first,
            Update {
                state: Some(DeploymentState::Failed),
                reason: Some(Some("boom")),
                ..Update::default()
            },
        )
        .unwrap();
    assert_eq!(
        store.deployment(first).unwrap().reason.as_deref(),
        Some("boom")
    );
    store
        .record_deployment(&audit(5), "dev", &r.id, Kind::BlueGreen)
        .unwrap();
}

#[test]
fn a_deployment_update_writes_routing_and_its_event_together() {
    let (_dir, mut store) = open();
    let r = release("t");
    store
        .record_composition(&audit(1), "dev", &r, "c", "in")
        .unwrap();
    let id = store
        .record_deployment(&audit(2), "dev", &r.id, Kind::Canary)
        .unwrap();
    let mut routing = Routing::default();
    routing.begin(r.id.clone()).unwrap();
    routing.set_weight(10.0).unwrap();
    let update = Update {
        weight: Some(10.0),
        step_started_at: Some(7),
        routing: Some(&routing),
        message: "10 %",
        ..Update::default()
    };
    let d = store.update_deployment(&audit(3), id, update).unwrap();
    assert_eq!((d.weight, d.step_started_at), (10.0, Some(7)));
    assert_eq!(store.routing("dev").unwrap(), routing);
    let events = store.deployment_events(id).unwrap();
    assert_eq!(events.last().unwrap().message, "10 %");
    assert!(store.routing("uat").unwrap().active.is_none());
}

#[test]
fn rollback_marks_the_previous_live_deployment_rolled_back() {
    let (_dir, mut store) = open();
    let (a, b) = (release("a"), release("b"));
    for r in [&a, &b] {
        store
            .record_composition(&audit(1), "dev", r, "c", "in")
            .unwrap();
    }
    let live = |store: &mut Store, release: &Release, strategy: Kind| {
        deploy_live(store, release, strategy, None)
    };
    let first = live(&mut store, &a, Kind::BlueGreen);
    let second = live(&mut store, &b, Kind::BlueGreen);
    let back = live(&mut store, &a, Kind::Rollback);
    let states = states(&store);
    assert_eq!(
        states,
        [
            (back, DeploymentState::Live),
            (second, DeploymentState::RolledBack),
            (first, DeploymentState::Superseded)
        ]
    );
}

#[test]
fn instances_and_internal_ports_persist() {
    let (_dir, mut store) = open();
    let row = InstanceRow {
        env: "dev".into(),
        slot: Slot::Blue,
        service: "api".into(),
        replica: 0,
        release: release("r").id,
        handle: "{}".into(),
        health: Health::Starting,
        restarts: 0,
        updated_at: 0,
    };
    store
        .put_instance(&audit(1), &row, EventKind::InstanceStarted, "started")
        .unwrap();
    let healthy = InstanceRow {
        health: Health::Healthy,
        ..row.clone()
    };
    store
        .put_instance(&audit(2), &healthy, EventKind::InstanceHealthy, "healthy")
        .unwrap();
    assert_eq!(
        store.instances(Some("dev")).unwrap()[0].health,
        Health::Healthy
    );
    store
        .remove_instance(&audit(3), ("dev", Slot::Blue, "api", 0), "stopped")
        .unwrap();
    assert!(store.instances(None).unwrap().is_empty());
    let kinds: Vec<EventKind> = store
        .events(Some("dev"), 10)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::InstanceStopped,
            EventKind::InstanceHealthy,
            EventKind::InstanceStarted
        ]
    );
    assert_eq!(store.internal_port("dev", "api", 9001).unwrap(), 9001);
    assert_eq!(
        store.internal_port("dev", "api", 9002).unwrap(),
        9001,
        "stable once assigned"
    );
    assert!(matches!(
        store.internal_port("dev", "web", 9001),
        Err(Error::AlreadyExists { .. })
    ));
}

#[test]
fn requests_reach_only_a_deployment_in_progress() {
    let (_dir, mut store) = open();
    let r = release("t");
    store
        .record_composition(&audit(1), "dev", &r, "c", "in")
        .unwrap();
    let id = store
        .record_deployment(&audit(2), "dev", &r.id, Kind::Canary)
        .unwrap();
    let pause = || Update {
        paused: Some(true),
        message: "paused",
        ..Update::default()
    };
    assert!(
        store
            .update_deployment(&audit(3), id, pause())
            .unwrap()
            .paused
    );
    store
        .update_deployment(
            &audit(4),
            id,
            Update {
                state: Some(DeploymentState::Failed),
                message: "failed",
                ..Update::default()
            },
        )
        .unwrap();
    let abort = Update {
        request: Some(Some(Request::Abort)),
        message: "abort",
        ..Update::default()
    };
    assert!(matches!(
        store.update_deployment(&audit(5), id, abort),
        Err(Error::Refused(m)) if m.contains("already failed")
    ));
    assert!(store.update_deployment(&audit(6), id, pause()).is_err());
    assert_eq!(store.deployment(id).unwrap().request, None);
}

#[test]
fn a_release_keeps_the_recipe_its_id_was_computed_from() {
    let (_dir, mut store) = open();
    let r = release("t");
    store
        .record_composition(&audit(1), "dev", &r, "c", "in")
        .unwrap();
    let read = store.release(&r.id).unwrap();
    assert_eq!(read.services[0].recipe.run, "./api");
    assert_eq!(read.services[0].recipe.build.as_deref(), Some("make"));
}

#[test]
fn enum_columns_refuse_values_no_reader_understands() {
    let (dir, mut store) = open();
    let r = release("t");
    store
        .record_composition(&audit(1), "dev", &r, "c", "in")
        .unwrap();
    let id = store
        .record_deployment(&audit(2), "dev", &r.id, Kind::Canary)
        .unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    for (column, value) in [
        ("state", "finished"),
        ("strategy", "yolo"),
        ("slot", "purple"),
        ("request", "retry"),
    ] {
        let refused = conn.execute(
            &format!("UPDATE deployments SET {column} = ?1 WHERE id = ?2"),
            rusqlite::params![value, id],
        );
        assert!(
            matches!(&refused, Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation),
            "{column} = {value}: {refused:?}"
        );
    }
    let refused = conn.execute(
        "INSERT INTO events (at, actor, kind, message) VALUES (1, 'x', 'Not A Kind', 'm')",
        [],
    );
    assert!(refused.is_err(), "an event kind is topic.name");
}

#[test]
fn a_release_going_live_is_backed_up_and_a_backup_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layout_in(dir.path());
    let mut store = Store::open_in(&layout).unwrap();
    let r = release("t");
    store
        .record_composition(&audit(1), "dev", &r, "c", "in")
        .unwrap();
    let mut routing = Routing::default();
    routing.begin(r.id.clone()).unwrap();
    routing.promote(3).unwrap();
    let id = deploy_live(&mut store, &r, Kind::BlueGreen, Some(Slot::Blue));
    store
        .set_routing(&audit(4), "dev", &routing, EventKind::RoutingRepaired, "x")
        .unwrap();
    let taken = hifi_store::backups::list(&layout.backups()).unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!((taken[0].reason.as_str(), taken[0].at), ("live", 3));

    // The live state is lost; the backup holds it.
    drop(store);
    std::fs::write(layout.db(), b"").unwrap();
    let contents = hifi_store::backups::contents(&taken[0].path).unwrap();
    assert_eq!(
        contents.routing.len(),
        0,
        "routing was set after the backup"
    );
    hifi_store::backups::restore(&layout.db(), &taken[0].path).unwrap();
    let store = Store::open_in(&layout).unwrap();
    assert_eq!(store.deployment(id).unwrap().state, DeploymentState::Live);
    assert_eq!(store.live_release("dev").unwrap(), Some(r.id));
}

fn layout_in(dir: &std::path::Path) -> hifi_core::Layout {
    std::fs::create_dir_all(dir.join(".hifi")).unwrap();
    hifi_core::Layout::new(dir)
}

#[test]
fn backups_roll_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layout_in(dir.path());
    let store = Store::open_in(&layout).unwrap();
    for at in 0..(hifi_store::backups::KEEP as i64 + 5) {
        store.backup(at, "test").unwrap();
    }
    let kept = hifi_store::backups::list(&layout.backups()).unwrap();
    assert_eq!(kept.len(), hifi_store::backups::KEEP);
    assert_eq!(
        kept[0].at,
        hifi_store::backups::KEEP as i64 + 4,
        "newest first"
    );
}

#[test]
fn a_damaged_database_is_named_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layout_in(dir.path());
    let mut store = Store::open_in(&layout).unwrap();
    for i in 0..300 {
        store
            .add_card(
                &audit(i),
                &card(&format!("C-{i}")),
                &"t".repeat(200),
                "b",
                "In Dev",
            )
            .unwrap();
    }
    drop(store);
    let mut bytes = std::fs::read(layout.db()).unwrap();
    assert!(bytes.len() > 4096 * 4);
    bytes[4096 * 2..4096 * 3].fill(0xA5);
    std::fs::write(layout.db(), &bytes).unwrap();
    let err = Store::open_in(&layout).err().unwrap();
    assert!(matches!(err, Error::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("is damaged"), "{err}");

    std::fs::write(layout.db(), &bytes[..500]).unwrap();
    let err = Store::open_in(&layout).err().unwrap();
    assert!(matches!(err, Error::Damaged { .. }), "{err}");
}

mod team;
