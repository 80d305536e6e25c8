//! `hifi diff A B`: cards, service versions and vars that differ.

use hifi_testkit::Env;
use serde_json::{Value, json};

use super::util::{TestProject, assert_mentions};

/// `dev` and `uat`, whose vars differ in MODE (changed) and LEVEL (only in dev).
fn environments() -> [Env; 2] {
    [
        Env::cards("dev", 18100, "In Dev")
            .var("MODE", "test")
            .var("LEVEL", "debug")
            .var("REGION", "eu"),
        Env::cards("uat", 18200, "In Test")
            .var("MODE", "staging")
            .var("REGION", "eu"),
    ]
}

fn names(changes: &Value) -> Vec<&str> {
    changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn diff_lists_cards_service_versions_and_vars_that_differ() {
    let p = TestProject::new().service("catalog").service("checkout");
    let text = p.toml().environments(environments()).render();
    let p = p
        .config(&text)
        .card(
            "PAY-1",
            "feature/pay-1",
            &[("services/catalog/pay.txt", "pay\n")],
        )
        .at("PAY-1", "In Dev")
        .card(
            "SHIP-2",
            "feature/ship-2",
            &[("services/checkout/ship.txt", "ship\n")],
        )
        .at("SHIP-2", "In Test");
    p.hifi(&["compose", "dev"]).ok();
    p.hifi(&["compose", "uat"]).ok();

    let diff = p.json(&["diff", "dev", "uat"]);

    assert_eq!(names(&diff["cards"]), ["PAY-1"]);
    assert_eq!(
        diff["cards"][0]["a"],
        p.rev("feature/pay-1").unwrap().as_str()
    );
    assert_eq!(diff["cards"][0]["b"], Value::Null);
    assert_eq!(names(&diff["services"]), ["catalog"]);
    assert_eq!(
        diff["services"][0],
        json!({
            "name": "catalog",
            "a": p.rev("hifi/env/dev:services/catalog").unwrap(),
            "b": p.rev("hifi/env/uat:services/catalog").unwrap(),
        })
    );
    assert_eq!(names(&diff["vars"]), ["LEVEL", "MODE"]);
    assert_eq!(
        diff["vars"][0],
        json!({"name": "LEVEL", "a": "debug", "b": null})
    );
    assert_eq!(
        diff["vars"][1],
        json!({"name": "MODE", "a": "test", "b": "staging"})
    );
    assert_ne!(diff["release_a"], diff["release_b"]);

    let stderr = p.hifi(&["diff", "dev", "qa"]).fails(1);
    assert_mentions(&stderr, &["qa"]);
}

#[test]
fn diff_of_one_environment_with_itself_is_empty() {
    let p = TestProject::new().service("catalog").standard();
    p.hifi(&["compose", "dev"]).ok();

    let diff = p.json(&["diff", "dev", "dev"]);

    for section in ["cards", "services", "vars"] {
        assert_eq!(diff[section], json!([]), "{section}");
    }
    assert_eq!(diff["release_a"], diff["release_b"]);
}
