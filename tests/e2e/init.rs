//! `hifi init`: scaffolds a valid config and `.hifi/`, never overwrites.

use super::util::{TestProject, assert_mentions, hifi_in};

#[test]
fn init_scaffolds_a_valid_config_and_ignores_state_dir_once() {
    let p = TestProject::empty();
    p.commit_files(
        "start",
        &[
            ("services/catalog/app.py", "print('catalog')\n"),
            (".gitignore", "target/\n*.log"),
        ],
    );

    p.hifi(&["init"]).ok();

    assert!(p.path().join("hifi.toml").is_file());
    assert!(p.path().join(".hifi").is_dir());
    assert_eq!(p.read(".gitignore"), "target/\n*.log\n.hifi/\n");
    let board = p.json(&["board"]);
    let envs: Vec<&str> = board["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["env"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["dev", "uat", "staging", "prep", "prod", "hotfix"]);
    assert!(
        p.read("hifi.toml").contains("services/catalog"),
        "the detected service is described"
    );
    // The scaffold is usable as it is: a card can be registered against it.
    p.hifi(&["card", "add", "PAY-1", "--branch", "main"]).ok();

    // Starting over after removing hifi.toml does not list .hifi/ twice.
    std::fs::remove_file(p.path().join("hifi.toml")).unwrap();
    p.hifi(&["init"]).ok();
    assert_eq!(p.read(".gitignore"), "target/\n*.log\n.hifi/\n");
}

#[test]
fn init_refuses_to_overwrite_hifi_toml() {
    let p = TestProject::new();
    let mine = "# my own config, not valid for hifi\n[project]\n";
    p.write("hifi.toml", mine);

    let stderr = p.hifi(&["init"]).fails(1);

    assert_mentions(&stderr, &["hifi.toml", "already exists"]);
    assert_eq!(p.read("hifi.toml"), mine, "left byte-identical");
    assert_eq!(p.read(".gitignore"), ".hifi/\n");
}

#[test]
fn init_outside_a_git_repository_is_refused() {
    let dir = tempfile::tempdir().unwrap();

    // Outside a repository is a usage error, like a missing hifi.toml.
    let stderr = hifi_in(dir.path(), "tester", &["init"]).fails(2);

    assert_mentions(&stderr, &["git repository"]);
    assert!(!dir.path().join("hifi.toml").exists());
    assert!(!dir.path().join(".hifi").exists());
}

#[test]
fn init_takes_master_as_base_when_there_is_no_main() {
    let p = TestProject::empty();
    p.git(&["checkout", "-q", "-b", "master"]);
    p.commit_files("start", &[("README", "shop\n")]);

    p.hifi(&["init"]).ok();

    p.hifi(&["compose", "dev"]).ok();
    assert_eq!(p.rev("hifi/env/dev^{tree}"), p.rev("master^{tree}"));
}

#[test]
fn init_takes_the_current_branch_as_base_when_there_is_no_main_or_master() {
    let p = TestProject::empty();
    p.git(&["checkout", "-q", "-b", "trunk"]);
    p.commit_files("start", &[("README", "shop\n")]);

    p.hifi(&["init"]).ok();

    p.hifi(&["compose", "dev"]).ok();
    assert_eq!(p.rev("hifi/env/dev^{tree}"), p.rev("trunk^{tree}"));
}
