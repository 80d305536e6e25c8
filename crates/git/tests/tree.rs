use hifi_git::Error;

use crate::util::{TestRepo, files_under, is_executable};

#[test]
fn subtree_ids_are_stable_for_unchanged_dirs_and_change_with_their_files() {
    let test = TestRepo::with_files(&[("pay/main.rs", "v1"), ("shop/main.rs", "v1")]);
    let first = test.oid("main");
    test.write("shop/main.rs", "v2");
    let second = test.commit("shop v2");
    let repo = test.open();

    let pay = |c| repo.subtree(c, "pay").unwrap().unwrap();
    let shop = |c| repo.subtree(c, "shop").unwrap().unwrap();
    assert_eq!(pay(&first), pay(&second));
    assert_ne!(shop(&first), shop(&second));
    assert_eq!(shop(&first), test.oid(&format!("{first}:shop")));
}

#[test]
fn subtrees_answers_many_paths_at_once() {
    let test = TestRepo::with_files(&[("services/pay/main.rs", "x"), ("my dir/f", "y")]);
    let main = test.oid("main");
    let repo = test.open();
    let root = test.oid("main^{tree}");
    let found = repo
        .subtrees(
            &main,
            &["services/pay", "./services/pay/", "nope", "", ".", "my dir"],
        )
        .unwrap();
    let pay = Some(test.oid("main:services/pay"));
    assert_eq!(
        found,
        vec![
            pay.clone(),
            pay,
            None,
            Some(root.clone()),
            Some(root.clone()),
            Some(test.oid("main:my dir"))
        ]
    );
    // A tree works as well as a commit.
    assert_eq!(repo.subtree(&root, "").unwrap(), Some(root));
}

#[test]
fn subtree_of_a_file_or_an_unknown_object_is_an_error() {
    let test = TestRepo::with_files(&[("pay/main.rs", "x")]);
    let main = test.oid("main");
    let repo = test.open();
    let err = repo.subtree(&main, "pay/main.rs").unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }), "{err:?}");
    let unknown = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
    let err = repo.subtree(&unknown, "pay").unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err:?}");
    let err = repo.subtree(&main, "../etc").unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
}

#[test]
fn export_writes_exactly_the_subtree_files_and_keeps_exec_bits() {
    let test = TestRepo::with_files(&[
        ("pay/src/main.rs", "fn main() {}\n"),
        ("pay/run.sh", "#!/bin/sh\necho pay\n"),
        ("shop/main.rs", "shop"),
        ("README", "top"),
    ]);
    test.make_executable("pay/run.sh");
    let version = test.commit("pay gets a script");
    // Later edits must not leak into an export of the earlier version.
    test.write("pay/src/main.rs", "changed");
    test.commit("later");
    let repo = test.open();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("pay-build");

    repo.export(&version, "pay", &dest).unwrap();
    let files = files_under(&dest);
    let names: Vec<_> = files.keys().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(names, ["run.sh", "src/main.rs"]);
    assert_eq!(
        files[std::path::Path::new("src/main.rs")].0,
        b"fn main() {}\n"
    );
    assert!(is_executable(&dest.join("run.sh")));
    assert!(!is_executable(&dest.join("src/main.rs")));

    // No scratch files are left in the git directory.
    let leftovers: Vec<_> = std::fs::read_dir(test.path().join(".git"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hifi"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn export_refuses_a_destination_with_files() {
    let test = TestRepo::with_files(&[("pay/main.rs", "x")]);
    let main = test.oid("main");
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("stale"), "old").unwrap();
    let err = test.open().export(&main, "pay", out.path()).unwrap_err();
    assert!(matches!(err, Error::DestinationNotEmpty { .. }), "{err:?}");

    let empty = tempfile::tempdir().unwrap();
    test.open().export(&main, "pay", empty.path()).unwrap();
    assert!(empty.path().join("main.rs").exists());
}

#[test]
fn export_of_a_missing_directory_is_an_error() {
    let test = TestRepo::with_files(&[("pay/main.rs", "x")]);
    let main = test.oid("main");
    let out = tempfile::tempdir().unwrap();
    let err = test
        .open()
        .export(&main, "nope", &out.path().join("x"))
        .unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err:?}");
}
