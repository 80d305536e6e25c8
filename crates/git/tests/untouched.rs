//! The promise that matters most: hifi never disturbs the user's checkout.

use hifi_git::{Ingredient, MergeOutcome};

use crate::util::TestRepo;

#[test]
fn no_operation_touches_the_work_tree_index_or_head() {
    let test = TestRepo::with_files(&[("pay/a.txt", "a\n"), ("shop/b.txt", "b\n")]);
    let base = test.oid("main");
    let pay = test.branch("PAY-1", "main", &[("pay/a.txt", "pay\n")]);
    let shop = test.branch("SHOP-1", "main", &[("shop/b.txt", "shop\n")]);
    let rival = test.branch("PAY-2", "main", &[("pay/a.txt", "rival\n")]);
    // The user is mid-work: a staged edit, an unstaged edit, an untracked file.
    test.write("shop/b.txt", "staged\n");
    test.git(&["add", "shop/b.txt"]);
    test.write("pay/a.txt", "local edit\n");
    test.write("notes.txt", "untracked\n");
    let before = test.user_state();

    let repo = hifi_git::Repo::open(&test.path().join("pay")).unwrap();
    assert!(repo.has_commits().unwrap());
    repo.resolve_branches(&["main", "PAY-1", "missing"])
        .unwrap();
    repo.read_ref("refs/heads/main").unwrap();
    let MergeOutcome::Clean { tree } = repo.merge(&pay, &shop).unwrap() else {
        panic!("expected a clean merge");
    };
    assert!(matches!(
        repo.merge(&pay, &rival).unwrap(),
        MergeOutcome::Conflict { .. }
    ));
    let date = repo.commit_date(&shop).unwrap();
    let commit = repo
        .commit_tree(&tree, &[pay.clone(), shop.clone()], "Merge", &date)
        .unwrap();
    repo.update_ref("refs/heads/hifi/env/dev", &commit, None, "compose dev")
        .unwrap();
    repo.subtree(&commit, "pay").unwrap();
    repo.subtrees(&commit, &["pay", "shop", "nope"]).unwrap();
    repo.changed_files(&base, &pay).unwrap();
    let out = tempfile::tempdir().unwrap();
    repo.export(&commit, "pay", &out.path().join("pay"))
        .unwrap();
    let cards = [
        Ingredient {
            label: "PAY-1".into(),
            commit: pay,
        },
        Ingredient {
            label: "PAY-2".into(),
            commit: rival,
        },
    ];
    repo.compose(&base, &cards).unwrap();

    assert_eq!(test.user_state(), before);
    assert_eq!(
        std::fs::read_to_string(test.path().join("pay/a.txt")).unwrap(),
        "local edit\n"
    );
}
