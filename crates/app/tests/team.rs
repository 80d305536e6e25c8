//! The team server's rules in the application layer: four-eyes approvals
//! and API tokens.

use std::time::Duration;

use hifi_app::deploy::Start;
use hifi_app::{Error, ErrorKind, Role};
use hifi_testkit::{Config, Env, Service, loopback_port};

use crate::util::{Repo, admin, as_role, composed_live};

/// dev composed from In Dev; prod promoting from dev, four-eyes.
fn four_eyes_config() -> String {
    Config::new("shop")
        .service(Service::new("api").route("/"))
        .environment(Env::cards("dev", loopback_port(), "In Dev"))
        .environment(Env::promote("prod", loopback_port(), "dev").set("four_eyes", "true"))
        .render()
}

/// A project whose dev runs a verified release, ready to promote to prod.
fn verified_in_dev() -> Repo {
    let repo = Repo::with_config(&four_eyes_config());
    let mut p = repo.open();
    composed_live(&mut p, "dev");
    repo
}

#[test]
fn four_eyes_refuses_a_promotion_signed_off_only_by_the_promoter() {
    let repo = verified_in_dev();
    let mut p = repo.open();
    let ann = as_role("ann", Role::Operator);
    let approved = p.approve(&ann, "prod", None).unwrap();
    assert!(approved.four_eyes);
    assert_eq!((approved.approvals, approved.required), (1, 1));

    let before = repo.events();
    let e = p
        .promote(&ann, "dev", "prod", Start::default())
        .unwrap_err();
    assert!(
        matches!(&e, Error::NeedsApproval { have: 0, need: 1, own_excluded: Some(own), .. } if own == "ann"),
        "{e}"
    );
    assert_eq!((e.kind(), e.code()), (ErrorKind::Refused, "needs_approval"));
    assert!(
        e.to_string()
            .contains("four-eyes: ann's own sign-off does not count"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("someone other than ann"));
    assert_eq!(repo.events(), before, "a refusal recorded something");

    // Another person's sign-off lets ann promote; ann's lets bob promote.
    let bob = as_role("bob", Role::Operator);
    p.approve(&bob, "prod", None).unwrap();
    p.promote(&ann, "dev", "prod", Start::default()).unwrap();
}

#[test]
fn four_eyes_approvals_are_per_release_and_per_person() {
    let repo = verified_in_dev();
    let mut p = repo.open();
    let po = as_role("po", Role::Approver);
    assert!(p.approve(&po, "prod", None).unwrap().new);
    let again = p
        .approve(&as_role("PO", Role::Approver), "prod", None)
        .unwrap();
    assert_eq!(
        again.approvals, 1,
        "the same person approving twice counts once"
    );

    // A new release in dev needs new sign-offs.
    repo.branch("feature/b", "services/api/b.txt");
    p.add_card(&admin(), "B-1", "feature/b", "B", false)
        .unwrap();
    p.move_card(&admin(), "B-1", "in-dev").unwrap();
    composed_live(&mut p, "dev");
    let status = p.status(&admin(), Some("prod")).unwrap();
    let count = status.environments[0].approvals.clone().unwrap();
    assert_eq!((count.have, count.need), (0, 1));
    let e = p.promote(
        &as_role("otto", Role::Operator),
        "dev",
        "prod",
        Start::default(),
    );
    assert!(
        matches!(e, Err(Error::NeedsApproval { have: 0, .. })),
        "{e:?}"
    );
}

#[test]
fn without_four_eyes_the_promoters_own_sign_off_counts() {
    let repo = Repo::new();
    let mut p = repo.open();
    composed_live(&mut p, "dev");
    let otto = as_role("otto", Role::Operator);
    assert!(!p.approve(&otto, "prod", None).unwrap().four_eyes);
    p.promote(&otto, "dev", "prod", Start::default()).unwrap();
}

#[test]
fn a_token_authenticates_as_its_name_and_role_until_revoked() {
    let repo = Repo::new();
    let mut p = repo.open();
    let created = p
        .create_token(&admin(), "ci-bot", Role::Developer, None)
        .unwrap();
    assert!(created.secret.starts_with("hifi_"));
    let actor = p.authenticate(&created.secret).unwrap();
    assert_eq!(
        (actor.name.as_str(), actor.role),
        ("ci-bot", Role::Developer)
    );
    // Only the hash is stored: the secret appears in no table of the database.
    let db = std::fs::read(p.layout().db()).unwrap();
    let wal = std::fs::read(p.layout().db().with_extension("db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes
                .windows(created.secret.len())
                .any(|w| w == created.secret.as_bytes()),
            "the secret was stored"
        );
    }
    let listed = p.tokens(&admin()).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());

    let e = p
        .create_token(&admin(), "ci-bot", Role::Viewer, None)
        .unwrap_err();
    assert_eq!(e.code(), "token_exists");
    assert!(p.revoke_token(&admin(), "ci-bot").unwrap().new);
    let e = p.authenticate(&created.secret).unwrap_err();
    assert_eq!(
        (e.kind(), e.to_string().as_str()),
        (ErrorKind::Unauthenticated, "token ci-bot was revoked")
    );
    assert_eq!(
        p.revoke_token(&admin(), "nobody").unwrap_err().code(),
        "unknown_token"
    );
}

#[test]
fn expired_wrong_and_malformed_tokens_do_not_authenticate() {
    let repo = Repo::new();
    let clock = std::sync::Arc::new(hifi_core::clock::ManualClock::at(1_000_000));
    let mut p = hifi_app::Project::open_with_clock(repo.dir.path(), clock.clone()).unwrap();
    let created = p
        .create_token(
            &admin(),
            "temp",
            Role::Viewer,
            Some(Duration::from_secs(60)),
        )
        .unwrap();
    assert_eq!(created.token.expires_at, Some(1_060_000));
    assert!(p.authenticate(&created.secret).is_ok());
    clock.advance(60_000);
    assert_eq!(
        p.authenticate(&created.secret).unwrap_err().to_string(),
        "token temp has expired"
    );

    let mut forged = created.secret.clone();
    forged.pop();
    forged.push(if created.secret.ends_with('0') {
        '1'
    } else {
        '0'
    });
    assert_eq!(
        p.authenticate(&forged).unwrap_err().to_string(),
        "unknown token"
    );
    assert_eq!(
        p.authenticate("letmein").unwrap_err().to_string(),
        "that is not a hifi token"
    );
}

#[test]
fn only_an_admin_manages_tokens() {
    let repo = Repo::new();
    let mut p = repo.open();
    for role in [
        Role::Viewer,
        Role::Developer,
        Role::Approver,
        Role::Operator,
    ] {
        let actor = as_role("x", role);
        let e = p.create_token(&actor, "t", Role::Admin, None).unwrap_err();
        assert_eq!(e.code(), "forbidden");
        assert_eq!(p.tokens(&actor).unwrap_err().code(), "forbidden");
    }
    let e = p
        .create_token(&admin(), "bad name", Role::Viewer, None)
        .unwrap_err();
    assert_eq!(e.code(), "bad_input");
}
