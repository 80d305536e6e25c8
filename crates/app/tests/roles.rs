//! Every operation checks the actor's role, whatever shell calls it.

use hifi_app::{Error, ErrorKind, Role};

use hifi_app::deploy::Start;

use crate::util::{Repo, admin, as_role};

#[track_caller]
fn forbidden<T: std::fmt::Debug>(result: Result<T, Error>) -> Error {
    let e = result.expect_err("should be forbidden");
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Forbidden, "forbidden"),
        "{e}"
    );
    e
}

#[test]
fn a_viewer_reads_everything_and_changes_nothing() {
    let repo = Repo::new();
    let mut p = repo.open();
    p.add_card(&admin(), "A-1", "feature/a", "A", false)
        .unwrap();
    let viewer = as_role("vic", Role::Viewer);
    assert_eq!(p.cards(&viewer).unwrap().len(), 1);
    p.board(&viewer).unwrap();
    p.status(&viewer, None).unwrap();
    p.releases(&viewer).unwrap();
    let before = repo.events();

    let e = forbidden(p.move_card(&viewer, "A-1", "in-dev"));
    assert_eq!(e.to_string(), "vic (viewer) may not change cards");
    forbidden(p.add_card(&viewer, "B-2", "feature/a", "", false));
    forbidden(p.remove_card(&viewer, "A-1"));
    forbidden(p.compose(&viewer, "dev", &mut |_| {}));
    forbidden(p.deploy(&viewer, "dev", None, Start::default()));
    forbidden(p.approve(&viewer, "prod", None));
    assert_eq!(repo.events(), before, "a refusal recorded something");
}

#[test]
fn a_developer_deploys_where_no_approval_is_needed_but_not_where_one_is() {
    let repo = Repo::new();
    let mut p = repo.open();
    let dev = as_role("dora", Role::Developer);
    p.add_card(&dev, "A-1", "feature/a", "A", false).unwrap();
    p.move_card(&dev, "A-1", "in-dev").unwrap();
    p.compose(&dev, "dev", &mut |_| {}).unwrap();
    let started = p.deploy(&dev, "dev", None, Start::default()).unwrap();
    assert_eq!(started.deployment.actor, "dora");
    assert!(!started.control_plane_running);

    let before = repo.events();
    let e = forbidden(p.promote(&dev, "dev", "prod", Start::default()));
    assert!(e.to_string().contains("requires approvals"), "{e}");
    forbidden(p.rollback(&dev, "prod", Start::default()));
    forbidden(p.approve(&dev, "prod", None));
    assert_eq!(repo.events(), before);
}

#[test]
fn an_approver_signs_off_but_deploys_nothing_and_an_operator_does_both() {
    let repo = Repo::new();
    let mut p = repo.open();
    p.compose(&admin(), "dev", &mut |_| {}).unwrap();
    let approver = as_role("po", Role::Approver);
    let approved = p.approve(&approver, "dev", None).unwrap();
    assert_eq!((approved.approver.as_str(), approved.new), ("po", true));
    forbidden(p.deploy(&approver, "dev", None, Start::default()));
    forbidden(p.move_card(&approver, "X-1", "in-dev"));

    let operator = as_role("otto", Role::Operator);
    p.approve(&operator, "dev", None).unwrap();
    p.deploy(&operator, "dev", None, Start::default()).unwrap();
}
