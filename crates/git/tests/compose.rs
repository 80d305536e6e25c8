use hifi_git::{Composition, Ingredient};

use crate::util::TestRepo;

fn ingredient(test: &TestRepo, name: &str, files: &[(&str, &str)]) -> Ingredient {
    Ingredient {
        label: name.to_owned(),
        commit: test.branch(name, "main", files),
    }
}

#[test]
fn composing_fifty_cards_is_reproducible() {
    let test = TestRepo::with_files(&[("README", "base")]);
    let base = test.oid("main");
    let cards: Vec<Ingredient> = (0..50)
        .map(|i| {
            let path = format!("svc{}/card{i}.txt", i % 5);
            ingredient(&test, &format!("CARD-{i}"), &[(&path, "work")])
        })
        .collect();
    let repo = test.open();

    // Speed is measured by bench/compose, never asserted here.
    let first = repo.compose(&base, &cards).unwrap();

    let Composition::Composed {
        commit,
        tree,
        unchanged,
    } = &first
    else {
        panic!("expected a clean composition, got {first:?}");
    };
    assert!(unchanged.is_empty());
    assert_eq!(repo.tree_of(commit).unwrap(), *tree);
    assert_eq!(test.show(tree, "svc4/card49.txt"), "work");
    // 50 card commits and 50 merges on top of the base.
    assert_eq!(repo.count_commits(Some(&base), commit).unwrap(), 100);
    assert_eq!(repo.compose(&base, &cards).unwrap(), first);
}

#[test]
fn compose_reports_the_conflicting_card_and_blames_the_earlier_one() {
    let test = TestRepo::with_files(&[("pay/price.txt", "10\n"), ("shop/a", "a")]);
    let base = test.oid("main");
    let cards = [
        ingredient(&test, "PAY-1", &[("pay/price.txt", "11\n")]),
        ingredient(&test, "SHOP-1", &[("shop/a", "a2")]),
        ingredient(&test, "PAY-2", &[("pay/price.txt", "12\n")]),
    ];
    let before = test.refs();

    let outcome = test.open().compose(&base, &cards).unwrap();
    let Composition::Conflict {
        index,
        files,
        messages,
        blamed,
    } = outcome
    else {
        panic!("expected a conflict, got {outcome:?}");
    };
    assert_eq!(index, 2);
    assert_eq!(files, ["pay/price.txt"]);
    assert!(messages.contains("CONFLICT"), "{messages}");
    assert_eq!(blamed, [0]);
    assert_eq!(test.refs(), before);
}

#[test]
fn compose_skips_cards_that_add_nothing() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let merged = ingredient(&test, "OLD-1", &[("old", "x")]);
    test.git(&["merge", "-q", "--no-edit", "OLD-1"]);
    let base = test.oid("main");
    let fresh = ingredient(&test, "NEW-1", &[("new", "y")]);

    let outcome = test.open().compose(&base, &[merged, fresh]).unwrap();
    let Composition::Composed {
        unchanged, tree, ..
    } = outcome
    else {
        panic!("expected a clean composition, got {outcome:?}");
    };
    assert_eq!(unchanged, [0]);
    assert_eq!(test.show(&tree, "new"), "y");
}

#[test]
fn compose_without_cards_is_the_base() {
    let test = TestRepo::with_files(&[("a", "a")]);
    let base = test.oid("main");
    let outcome = test.open().compose(&base, &[]).unwrap();
    assert_eq!(
        outcome,
        Composition::Composed {
            commit: base,
            tree: test.oid("main^{tree}"),
            unchanged: vec![]
        }
    );
}
