//! Repository states a composition cannot start from: each is refused with
//! a message naming what is missing, and nothing is written.

use super::util::{TestProject, assert_mentions, environments};

#[test]
fn compose_in_a_repository_without_commits_is_refused() {
    let p = TestProject::empty();
    p.write("hifi.toml", &p.toml().environments(environments()).render());

    let stderr = p.hifi(&["compose", "dev"]).fails(1);

    assert_mentions(&stderr, &["no commit"]);
    assert_eq!(p.refs(), "");
}

#[test]
fn compose_without_the_base_branch_names_it() {
    let p = TestProject::new().service("catalog");
    let text = p.toml().base("trunk").environments(environments()).render();
    let p = p.config(&text);

    let stderr = p.hifi(&["compose", "dev"]).fails(1);

    assert_mentions(&stderr, &["trunk"]);
    assert_eq!(p.rev("hifi/env/dev"), None);
}

#[test]
fn compose_with_a_card_whose_branch_does_not_exist_names_card_and_branch() {
    let p = TestProject::new().service("catalog").standard();
    let run = p.hifi(&["card", "add", "GHOST-1", "--branch", "feature/ghost"]);
    assert_mentions(&run.ok_stderr(), &["feature/ghost"]);
    p.move_card("GHOST-1", "In Dev");
    let before = p.recorded();

    let stderr = p.hifi(&["compose", "dev"]).fails(1);

    assert_mentions(&stderr, &["GHOST-1", "feature/ghost"]);
    assert_eq!(p.recorded(), before);
}
