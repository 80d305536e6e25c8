//! Cards that cannot be merged: the composition is refused, the environment
//! branch stays where it was, and the board flags the card until a later
//! composition succeeds.

use serde_json::Value;

use super::util::{TestProject, assert_mentions};

const APP: &str = "services/catalog/app.py";

fn conflicts(p: &TestProject) -> Vec<Value> {
    p.json(&["board"])["conflicts"].as_array().unwrap().clone()
}

fn flag<'a>(flags: &'a [Value], env: &str) -> Option<&'a Value> {
    flags.iter().find(|f| f["env"] == env)
}

/// A-0 (harmless) and A-1 composed into dev, then B-2 (same line of the
/// same file as A-1) moved in.
fn conflicting() -> TestProject {
    let p = TestProject::new()
        .service("catalog")
        .standard()
        .card("A-0", "feature/a-0", &[("README", "shop, documented\n")])
        .at("A-0", "In Dev")
        .card("A-1", "feature/a-1", &[(APP, "print('a')\n")])
        .at("A-1", "In Dev")
        .card("B-2", "feature/b-2", &[(APP, "print('b')\n")]);
    p.hifi(&["compose", "dev"]).ok();
    p.move_card("B-2", "In Dev");
    p
}

#[test]
fn cards_changing_the_same_line_refuse_composition_and_are_flagged() {
    let p = conflicting();
    let dev = p.rev("hifi/env/dev").unwrap();
    let releases = p.releases().len();

    let stderr = p.hifi(&["compose", "dev"]).fails(1);

    assert_mentions(&stderr, &["B-2", "A-1", APP]);
    assert_eq!(
        p.rev("hifi/env/dev").unwrap(),
        dev,
        "branch left where it was"
    );
    assert_eq!(p.releases().len(), releases);
    let flags = conflicts(&p);
    let dev_flag = flag(&flags, "dev").expect("dev is flagged");
    assert_eq!(dev_flag["card"], "B-2", "the card that could not be merged");
    assert_eq!(
        dev_flag["with_cards"],
        serde_json::json!(["A-1"]),
        "only the card it conflicts with"
    );
    assert_eq!(dev_flag["files"], serde_json::json!([APP]));
    assert_mentions(&p.hifi(&["board"]).ok(), &["B-2", "A-1", APP]);
}

#[test]
fn failed_composition_does_not_create_the_branch_and_a_new_one_clears_the_flag() {
    let p = conflicting().at("A-1", "In Test").at("B-2", "In Test");

    p.hifi(&["compose", "uat"]).fails(1);
    assert_eq!(p.rev("hifi/env/uat"), None, "never composed, not created");
    assert!(flag(&conflicts(&p), "uat").is_some());

    p.move_card("B-2", "Ready for Dev");
    p.hifi(&["compose", "uat"]).ok();

    assert!(flag(&conflicts(&p), "uat").is_none());
    assert_eq!(p.show("hifi/env/uat", APP).as_deref(), Some("print('a')\n"));
}

#[test]

fn composition_back_to_an_earlier_state_clears_the_conflict_flag() {
    let p = conflicting();
    p.hifi(&["compose", "dev"]).fails(1);
    assert!(flag(&conflicts(&p), "dev").is_some());

    // dev is again exactly what it was before B-2 came in.
    p.move_card("B-2", "Ready for Dev");
    p.hifi(&["compose", "dev"]).ok();

    assert!(conflicts(&p).is_empty(), "{:#?}", conflicts(&p));
    assert!(!p.hifi(&["board"]).ok().contains("could not be merged"));
}

#[test]
fn card_conflicting_with_the_base_names_the_base_branch() {
    let p = TestProject::new()
        .service("catalog")
        .standard()
        .card("A-1", "feature/a-1", &[(APP, "print('a')\n")])
        .at("A-1", "In Dev");
    p.commit_files("main moves on", &[(APP, "print('main')\n")]);

    let stderr = p.hifi(&["compose", "dev"]).fails(1);

    assert_mentions(&stderr, &["A-1", "main", APP]);
    assert_eq!(p.rev("hifi/env/dev"), None);
    let flags = conflicts(&p);
    let dev_flag = flag(&flags, "dev").expect("dev is flagged");
    assert_eq!(dev_flag["card"], "A-1");
    assert_eq!(dev_flag["with_cards"], serde_json::json!([]));
}
