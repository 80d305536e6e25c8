use hifi_git::{Error, Oid, Repo};

use crate::util::TestRepo;

#[test]
fn resolve_branches_answers_existing_and_missing_names_in_order() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let main = test.oid("main");
    let card = test.branch("feature/PAY-1", "main", &[("b", "b")]);
    let repo = test.open();
    let resolved = repo
        .resolve_branches(&["feature/PAY-1", "nope", "main", "feature/nope"])
        .unwrap();
    assert_eq!(resolved, vec![Some(card), None, Some(main), None]);
    assert_eq!(repo.resolve_branches(&[]).unwrap(), vec![]);
}

#[test]
fn resolve_branches_matches_exactly_without_guessing() {
    let test = TestRepo::with_files(&[("a", "a")]);
    test.git(&["tag", "v1"]);
    test.branch("team/card", "main", &[("b", "b")]);
    let repo = test.open();
    // A tag is not a branch, and `team` only prefixes `team/card`.
    assert_eq!(
        repo.resolve_branches(&["v1", "team"]).unwrap(),
        vec![None, None]
    );
}

#[test]
fn resolve_branch_reports_a_missing_branch() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let err = test.open().resolve_branch("nope").unwrap_err();
    assert!(
        matches!(err, Error::BranchNotFound { ref name } if name == "nope"),
        "{err:?}"
    );
}

#[test]
fn branch_names_that_look_like_options_or_revisions_are_rejected() {
    for bad in [
        "--upload-pack=x",
        "-x",
        "a..b",
        "a b",
        "@{",
        "x@{1}",
        "card.lock",
        "team/card.lock",
        "HEAD",
        "",
    ] {
        let err = Repo::validate_branch_name(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidBranchName { ref name, .. } if name == bad),
            "{bad:?}: {err:?}"
        );
    }
    for good in ["main", "feature/PAY-12", "hifi/env/dev", "release-1.2"] {
        Repo::validate_branch_name(good).unwrap();
    }
}

#[test]
fn bad_branch_names_are_refused_before_git_runs() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let repo = test.open();
    // With the repository gone, any git call would fail with a git error.
    std::fs::remove_dir_all(test.path().join(".git")).unwrap();
    let err = repo
        .resolve_branches(&["main", "--upload-pack=evil"])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidBranchName { .. }), "{err:?}");
    assert!(err.to_string().contains("must not start with '-'"), "{err}");
}

#[test]
fn read_ref_reads_full_names_only() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let repo = test.open();
    assert_eq!(
        repo.read_ref("refs/heads/main").unwrap(),
        Some(test.oid("main"))
    );
    assert_eq!(repo.read_ref("refs/hifi/nothing").unwrap(), None);
    for bad in ["main", "HEAD", "refs/heads/a..b", "refs/heads/x^"] {
        let err = repo.read_ref(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidRefName { .. }),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn update_ref_creates_a_ref_only_if_it_does_not_exist() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let main = test.oid("main");
    let repo = test.open();
    repo.update_ref("refs/heads/hifi/env/dev", &main, None, "hifi: compose dev")
        .unwrap();
    assert_eq!(test.oid("hifi/env/dev"), main);
    let reflog = test.git(&["reflog", "show", "--format=%gs", "hifi/env/dev"]);
    assert_eq!(reflog, "hifi: compose dev");

    let err = repo
        .update_ref("refs/heads/hifi/env/dev", &main, None, "again")
        .unwrap_err();
    assert!(
        matches!(err, Error::RefMoved { expected: None, found: Some(ref f), .. } if *f == main),
        "{err:?}"
    );
}

#[test]
fn update_ref_refuses_when_the_ref_moved() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let first = test.oid("main");
    let second = test.branch("other", "main", &[("b", "b")]);
    let third = test.branch("third", "main", &[("c", "c")]);
    let repo = test.open();
    let env = "refs/heads/hifi/env/uat";
    repo.update_ref(env, &first, None, "create").unwrap();
    repo.update_ref(env, &second, Some(&first), "move").unwrap();

    // Someone else moved it from `first` to `second`; our stale view loses.
    let err = repo
        .update_ref(env, &third, Some(&first), "stale")
        .unwrap_err();
    match err {
        Error::RefMoved {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, env);
            assert_eq!(expected, Some(first));
            assert_eq!(found, Some(second.clone()));
        }
        other => panic!("expected RefMoved, got {other:?}"),
    }
    assert_eq!(repo.read_ref(env).unwrap(), Some(second));
}

#[test]
fn update_ref_refuses_to_move_the_checked_out_branch() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let main = test.oid("main");
    let other = test.branch("other", "main", &[("b", "b")]);
    let repo = test.open();
    let err = repo
        .update_ref("refs/heads/main", &other, Some(&main), "no")
        .unwrap_err();
    assert!(matches!(err, Error::RefCheckedOut { .. }), "{err:?}");
    assert_eq!(test.oid("main"), main);
}

#[test]
fn oids_parse_and_display_round_trip() {
    let text = "0123456789abcdef0123456789abcdef01234567";
    let oid: Oid = text.parse().unwrap();
    assert_eq!(oid.to_string(), text);
    assert!("--upload-pack=x".parse::<Oid>().is_err());
}

#[test]
fn branch_name_rules_never_accept_what_git_refuses() {
    let test = TestRepo::with_files(&[("a", "a")]);
    for name in [
        "main", "a@b", "a#b", "a'b", "a<b", "foo/HEAD", "ünï", "a..b", "a.", "a/b.", ".a", "a/.b",
        "x.lock", "a@{1}", "@{-1}", "@", "HEAD", "-x", "a b", "a\\b", "a//b", "a/", "a~1", "a:b",
    ] {
        if Repo::validate_branch_name(name).is_ok() {
            assert_eq!(
                test.git(&["check-ref-format", "--branch", name]),
                name,
                "{name:?}"
            );
        }
    }
}
