//! `hifi card add|move|rm|list` and `hifi board`.

use serde_json::Value;

use super::util::{TestProject, assert_mentions};

fn standard() -> TestProject {
    TestProject::new().service("catalog").standard()
}

fn column<'a>(board: &'a Value, stage: &str) -> Vec<&'a str> {
    let column = board["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stage"] == stage)
        .unwrap_or_else(|| panic!("no column {stage} in {board:#}"));
    column["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect()
}

fn env_cards<'a>(board: &'a Value, env: &str) -> Vec<&'a str> {
    let row = board["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["env"] == env)
        .unwrap_or_else(|| panic!("no environment {env} in {board:#}"));
    row["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect()
}

#[test]
fn card_goes_through_the_workflow_and_environments_follow_its_stage() {
    let p = standard();

    let added = p.json(&[
        "card",
        "add",
        "PAY-1",
        "--branch",
        "feature/pay-1",
        "--title",
        "Pay by card",
    ]);
    assert_eq!(added["id"], "PAY-1");
    assert_eq!(added["branch"], "feature/pay-1");
    assert_eq!(added["title"], "Pay by card");
    assert_eq!(added["stage"], "Ready for Dev");
    assert_eq!(added["environments"], serde_json::json!([]));

    let moved = p.json(&["card", "move", "PAY-1", "ready-for-po-sign-off"]);
    assert_eq!(moved["stage"], "Ready for PO Sign-Off");
    assert_eq!(moved["environments"], serde_json::json!(["dev", "uat"]));

    let moved = p.json(&["card", "move", "PAY-1", "IN_TEST"]);
    assert_eq!(moved["stage"], "In Test");

    let list = p.json(&["card", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["stage"], "In Test");
    assert_eq!(list[0]["environments"], serde_json::json!(["dev", "uat"]));

    let board = p.json(&["board"]);
    assert_eq!(column(&board, "In Test"), ["PAY-1"]);
    assert!(column(&board, "Ready for Dev").is_empty());
    assert_eq!(env_cards(&board, "dev"), ["PAY-1"]);
    assert_eq!(env_cards(&board, "uat"), ["PAY-1"]);
    assert!(env_cards(&board, "prep").is_empty());
    assert!(env_cards(&board, "prod").is_empty());

    p.json(&["card", "move", "PAY-1", "in dev"]);
    let board = p.json(&["board"]);
    assert_eq!(env_cards(&board, "dev"), ["PAY-1"]);
    assert!(env_cards(&board, "uat").is_empty(), "moved back out of uat");

    p.hifi(&["card", "rm", "PAY-1"]).ok();
    assert!(p.card_ids().is_empty());
    assert!(column(&p.json(&["board"]), "In Dev").is_empty());
}

#[test]
fn refused_card_commands_name_the_problem_and_record_nothing() {
    let p = standard().card(
        "PAY-1",
        "feature/pay-1",
        &[("services/catalog/pay.txt", "x")],
    );
    let before = p.hifi(&["card", "list", "--json"]).ok();

    let refusals: &[(&[&str], &[&str])] = &[
        (&["card", "move", "PAY-9", "In Test"], &["PAY-9"]),
        (&["card", "rm", "PAY-9"], &["PAY-9"]),
        (
            &["card", "add", "PAY-1", "--branch", "feature/other"],
            &["PAY-1", "already exists"],
        ),
        (
            &["card", "move", "PAY-1", "shipped"],
            &["shipped", "Ready for Dev", "In Test", "Done"],
        ),
        (&["card", "add", "bad id", "--branch", "b"], &["bad id"]),
        (&["card", "add", "-", "--branch", "b"], &["card id"]),
    ];
    for (args, mentions) in refusals {
        let stderr = p.hifi(args).fails(1);
        assert_mentions(&stderr, mentions);
        let after = p.hifi(&["card", "list", "--json"]).ok();
        assert_eq!(after, before, "hifi {} changed the cards", args.join(" "));
    }
}

#[test]
fn branch_names_that_git_would_read_as_options_or_ranges_are_refused() {
    let p = standard();
    let before = p.hifi(&["card", "list", "--json"]).ok();

    let refusals: &[(&[&str], &str)] = &[
        (
            &["card", "add", "X-1", "--branch=--upload-pack=evil"],
            "--upload-pack=evil",
        ),
        (
            &["card", "add", "X-1", "--branch", "--upload-pack=evil"],
            "--upload-pack",
        ),
        (&["card", "add", "X-1", "--branch=-x"], "-x"),
        (&["card", "add", "X-1", "--branch", "-x"], "-x"),
        (&["card", "add", "X-1", "--branch", "a..b"], "a..b"),
        (&["card", "add", "X-1", "--branch", "HEAD@{1}"], "HEAD@{1}"),
    ];
    for (args, named) in refusals {
        let run = p.hifi(args);
        assert!(
            matches!(run.code(), Some(1 | 2)),
            "hifi {} should be refused: {run}",
            args.join(" ")
        );
        assert_mentions(&run.stderr, &[named]);
        let after = p.hifi(&["card", "list", "--json"]).ok();
        assert_eq!(after, before, "hifi {} recorded a card", args.join(" "));
    }
}

#[test]
fn a_card_branch_inside_hifis_own_namespace_is_refused() {
    let p = standard();
    for branch in ["hifi/env/dev", "hifi/mine"] {
        let stderr = p.hifi(&["card", "add", "X-1", "--branch", branch]).fails(1);
        assert_mentions(&stderr, &[branch, "hifi's own namespace"]);
    }
    assert!(p.card_ids().is_empty());
}

#[test]
fn card_titles_never_reach_the_terminal_with_control_characters() {
    let p = standard();
    p.hifi(&[
        "card",
        "add",
        "X-1",
        "--branch",
        "feature/x",
        "--title",
        "Pay\n\u{1b}[2Jnow",
    ])
    .ok();
    let list = p.hifi(&["card", "list"]).ok();
    assert!(
        !list.contains('\u{1b}'),
        "an escape reached the terminal: {list:?}"
    );
    assert_mentions(&list, &["Pay  [2Jnow"]);
    // JSON keeps the title exactly as given.
    assert_eq!(p.json(&["card", "list"])[0]["title"], "Pay\n\u{1b}[2Jnow");
}
