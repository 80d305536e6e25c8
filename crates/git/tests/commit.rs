use hifi_git::{CommitDate, Error};

use crate::util::TestRepo;

#[test]
fn commit_tree_gives_the_same_id_for_the_same_inputs() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let main = test.oid("main");
    let card = test.branch("card", "main", &[("b", "b")]);
    let repo = test.open();
    let tree = repo.tree_of(&card).unwrap();
    let date = CommitDate::new(1_700_000_000, 60);
    let parents = [main.clone(), card.clone()];

    let first = repo
        .commit_tree(&tree, &parents, "Merge card", &date)
        .unwrap();
    let second = repo
        .commit_tree(&tree, &parents, "Merge card", &date)
        .unwrap();
    assert_eq!(first, second);
    let other = repo
        .commit_tree(&tree, &parents, "Merge other", &date)
        .unwrap();
    assert_ne!(first, other);

    let header = test.git(&[
        "log",
        "-1",
        "--format=%an <%ae>|%cn <%ce>|%ct %ci|%P",
        first.as_str(),
    ]);
    assert_eq!(
        header,
        format!(
            "hifi <hifi@localhost>|hifi <hifi@localhost>|1700000000 2023-11-14 23:13:20 +0100|{main} {card}"
        )
    );
    assert_eq!(repo.commit_date(&first).unwrap(), date);
}

#[test]
fn commit_date_and_tree_match_what_git_reports() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let main = test.oid("main");
    let repo = test.open();
    let raw = test.git(&["log", "-1", "--format=%cd", "--date=raw", "main"]);
    assert_eq!(repo.commit_date(&main).unwrap().to_string(), raw);
    assert_eq!(repo.tree_of(&main).unwrap(), test.oid("main^{tree}"));

    let infos = repo.commit_infos(&[main.clone(), main.clone()]).unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].tree, test.oid("main^{tree}"));
}

#[test]
fn commit_date_of_a_tree_is_an_error() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let tree = test.oid("main^{tree}");
    let err = test.open().commit_date(&tree).unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err:?}");
}

#[test]
fn ancestry_and_commit_counts() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let main = test.oid("main");
    test.branch("card", "main", &[("b", "b")]);
    let card = test.branch("card", "card", &[("c", "c")]);
    let repo = test.open();
    assert!(repo.is_ancestor(&main, &card).unwrap());
    assert!(!repo.is_ancestor(&card, &main).unwrap());
    assert_eq!(repo.count_commits(Some(&main), &card).unwrap(), 2);
    assert_eq!(repo.count_commits(None, &card).unwrap(), 3);
}
