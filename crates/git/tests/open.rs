use hifi_git::{Error, Repo};

use crate::util::TestRepo;

#[test]
fn open_finds_the_top_level_from_a_subdirectory() {
    let test = TestRepo::with_files(&[("services/pay/main.rs", "fn main() {}")]);
    let repo = Repo::open(&test.path().join("services/pay")).unwrap();
    assert_eq!(repo.root(), test.path().canonicalize().unwrap());
}

#[test]
fn open_reports_a_directory_outside_any_repository() {
    let dir = tempfile::tempdir().unwrap();
    let err = Repo::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotARepository { .. }), "{err:?}");
    assert!(err.to_string().contains("is not inside a git repository"));
}

#[test]
fn open_reports_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = Repo::open(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, Error::NotARepository { .. }), "{err:?}");
}

#[test]
fn open_reports_a_bare_repository() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let err = Repo::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NoWorkTree { .. }), "{err:?}");
}

#[test]
fn empty_repository_has_no_commits_and_no_branches() {
    let test = TestRepo::empty();
    let repo = test.open();
    assert!(!repo.has_commits().unwrap());
    assert_eq!(repo.resolve_branches(&["main"]).unwrap(), vec![None]);
    let err = repo.resolve_branch("main").unwrap_err();
    assert!(matches!(err, Error::NoCommits), "{err:?}");
}

#[test]
fn repository_with_a_commit_has_commits() {
    let test = TestRepo::with_files(&[("a", "a")]);
    assert!(test.open().has_commits().unwrap());
}
