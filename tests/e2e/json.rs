//! Every command that reports takes `--json` and prints one JSON document on
//! stdout (progress, if any, goes to stderr).

use super::util::{TestProject, parse_json};

#[test]
fn every_reporting_command_prints_json() {
    let p = TestProject::new().service("catalog").standard();
    let commands: &[&[&str]] = &[
        &[
            "card",
            "add",
            "PAY-1",
            "--branch",
            "feature/pay-1",
            "--title",
            "Pay \"now\"",
        ],
        &["card", "move", "PAY-1", "in-dev"],
        &["card", "list"],
        &["board"],
        &["compose", "dev"],
        &["compose", "dev"],
        &["compose", "uat"],
        &["releases"],
        &["diff", "dev", "uat"],
        &["diff", "uat", "prep"],
        &["approve", "dev"],
        &["card", "rm", "PAY-1"],
    ];
    p.branch("feature/pay-1", &[("services/catalog/pay.txt", "pay\n")]);
    for args in commands {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = p.hifi(&args).ok();
        let value = parse_json(&stdout);
        assert!(
            value.is_object() || value.is_array(),
            "hifi {}: {value}",
            args.join(" ")
        );
    }
    let list = p.json(&["card", "list"]);
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn init_reports_in_json() {
    let p = TestProject::new();

    let report = parse_json(&p.hifi(&["init", "--json"]).ok());

    assert_eq!(report["base"], "main");
    assert_eq!(report["environments"][0], "dev");
}
