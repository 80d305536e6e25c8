use hifi_git::MergeOutcome;

use crate::util::TestRepo;

#[test]
fn clean_merge_of_branches_touching_different_files_combines_both() {
    let test = TestRepo::with_files(&[("pay/a.txt", "a\n"), ("shop/b.txt", "b\n")]);
    let ours = test.branch("pay-1", "main", &[("pay/a.txt", "a changed\n")]);
    let theirs = test.branch("shop-1", "main", &[("shop/b.txt", "b changed\n")]);
    let repo = test.open();
    let before = test.refs();

    let MergeOutcome::Clean { tree } = repo.merge(&ours, &theirs).unwrap() else {
        panic!("expected a clean merge");
    };
    assert_eq!(test.show(&tree, "pay/a.txt"), "a changed");
    assert_eq!(test.show(&tree, "shop/b.txt"), "b changed");
    assert_eq!(test.refs(), before);
}

#[test]
fn conflicting_merge_reports_the_files_and_writes_no_ref() {
    let test = TestRepo::with_files(&[("pay/a.txt", "a\n"), ("shop/b.txt", "b\n")]);
    let ours = test.branch("pay-1", "main", &[("pay/a.txt", "ours\n"), ("x", "x")]);
    let theirs = test.branch("pay-2", "main", &[("pay/a.txt", "theirs\n"), ("y", "y")]);
    let repo = test.open();
    let before = test.refs();

    match repo.merge(&ours, &theirs).unwrap() {
        MergeOutcome::Conflict { files, messages } => {
            assert_eq!(files, vec!["pay/a.txt".to_owned()]);
            assert!(messages.contains("CONFLICT (content)"), "{messages}");
            assert!(messages.contains("pay/a.txt"), "{messages}");
            assert!(!messages.contains("Auto-merging"), "{messages}");
        }
        clean => panic!("expected a conflict, got {clean:?}"),
    }
    assert_eq!(test.refs(), before);
}

#[test]
fn changed_files_lists_what_the_branch_changed_since_it_forked() {
    let test = TestRepo::with_files(&[("a", "a"), ("b", "b")]);
    let card = test.branch("card", "main", &[("a", "a2"), ("dir/new file", "n")]);
    // Base moves on after the fork; its changes are not the card's.
    test.write("b", "b2");
    let base = test.commit("base moves");
    let repo = test.open();
    assert_eq!(
        repo.changed_files(&base, &card).unwrap(),
        vec!["a".to_owned(), "dir/new file".to_owned()]
    );
    assert_eq!(
        repo.changed_files(&card, &base).unwrap(),
        vec!["b".to_owned()]
    );
}
