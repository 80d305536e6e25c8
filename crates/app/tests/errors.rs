//! Refusals carry what a shell needs as data: the facts, a stable code, a
//! kind for the exit code or status, and the hint.

use hifi_app::{Error, ErrorKind};
use hifi_core::Kind;
use hifi_store::{Audit, Store};

use hifi_app::deploy::Start;

use crate::util::{Repo, admin};

#[test]
fn a_promotion_of_an_unverified_release_names_release_and_environments() {
    let repo = Repo::new();
    let mut p = repo.open();
    let composed = p.compose(&admin(), "dev", &mut |_| {}).unwrap();
    let release = composed.release.id.clone();
    // What the control plane records once dev runs it.
    let mut store = Store::open(&p.layout().db()).unwrap();
    let audit = Audit {
        actor: "hifi".into(),
        at: 1,
    };
    let id = store
        .record_deployment(&audit, "dev", &release, Kind::BlueGreen)
        .unwrap();
    for state in [
        hifi_core::DeploymentState::Building,
        hifi_core::DeploymentState::Starting,
        hifi_core::DeploymentState::Verifying,
        hifi_core::DeploymentState::Live,
    ] {
        store
            .update_deployment(
                &audit,
                id,
                hifi_store::Update {
                    state: Some(state),
                    ..Default::default()
                },
            )
            .unwrap();
    }

    let e = p
        .promote(&admin(), "dev", "prod", Start::default())
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotVerified { release: r, env, from } if *r == release && env == "prod" && from == "dev"),
        "{e:?}"
    );
    assert_eq!((e.kind(), e.code()), (ErrorKind::Refused, "not_verified"));

    store.record_verification(&audit, "dev", &release).unwrap();
    let e = p
        .promote(&admin(), "dev", "prod", Start::default())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::NeedsApproval {
                have: 0,
                need: 1,
                ..
            }
        ),
        "{e:?}"
    );
    p.approve(&admin(), "prod", None).unwrap();
    let started = p
        .promote(&admin(), "dev", "prod", Start::default())
        .unwrap();
    assert_eq!(started.deployment.release, release);
}

#[test]
fn each_refusal_says_what_to_do() {
    let repo = Repo::new();
    let mut p = repo.open();
    let e = p
        .deploy(&admin(), "prod", None, Start::default())
        .unwrap_err();
    assert!(matches!(&e, Error::PromoteOnly { env, from } if env == "prod" && from == "dev"));
    assert_eq!(
        e.hint().as_deref(),
        Some("promote one: hifi promote dev prod")
    );

    let e = p
        .deploy(&admin(), "qa", None, Start::default())
        .unwrap_err();
    assert!(matches!(&e, Error::UnknownEnvironment { known, .. } if known == &["dev", "prod"]));
    assert_eq!(e.kind(), ErrorKind::NotFound);

    let e = p.deploy(&admin(), "dev", None, wait()).unwrap_err();
    assert!(
        matches!(&e, Error::NotComposed { env } if env == "dev"),
        "{e:?}"
    );
    assert_eq!(
        e.hint().as_deref(),
        Some("compose it first: hifi compose dev")
    );

    let e = p.move_card(&admin(), "bad id", "in-dev").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);

    let e = p.rollback(&admin(), "dev", Start::default()).unwrap_err();
    assert!(matches!(e, Error::NothingToRollBack { .. }));
    assert_eq!(
        e.hint().as_deref(),
        Some("a rollback needs an earlier release that was live here")
    );
}

#[test]
fn a_deploy_that_would_wait_on_no_control_plane_records_nothing() {
    let repo = Repo::new();
    let mut p = repo.open();
    p.compose(&admin(), "dev", &mut |_| {}).unwrap();
    let before = repo.events();
    let e = p.deploy(&admin(), "dev", None, wait()).unwrap_err();
    assert!(matches!(e, Error::NotRunning), "{e:?}");
    assert_eq!(repo.events(), before);
    assert!(p.history(&admin(), "dev").unwrap().is_empty());
}

/// A deploy that will be followed: refused without a control plane.
fn wait() -> Start<'static> {
    Start {
        require_running: true,
        reason: None,
    }
}
