//! The fidelity gate and approvals: an environment that promotes is never
//! composed, and sign-offs are recorded against (environment, release).

use super::util::{TestProject, assert_mentions, parse_json};

fn shop() -> TestProject {
    TestProject::new()
        .service("catalog")
        .standard()
        .card(
            "PAY-1",
            "feature/pay-1",
            &[("services/catalog/pay.txt", "pay\n")],
        )
        .at("PAY-1", "In Dev")
}

#[test]
fn an_environment_that_promotes_is_never_composed() {
    let p = shop();
    let before = p.recorded();

    let stderr = p.hifi(&["compose", "prod"]).fails(1);

    assert_mentions(&stderr, &["prod", "promote"]);
    assert_eq!(p.recorded(), before);
}

#[test]
fn approve_defaults_to_the_latest_composition_of_a_composed_environment() {
    let p = shop();
    let with_pay = p.json(&["compose", "dev"])["release"]["id"].clone();
    p.move_card("PAY-1", "Ready for Dev");
    let without_pay = p.json(&["compose", "dev"])["release"]["id"].clone();
    p.move_card("PAY-1", "In Dev");
    // Same content as the first: dev's latest composition is the older release.
    assert_eq!(p.json(&["compose", "dev"])["release"]["id"], with_pay);
    assert_eq!(
        p.releases()[0]["id"],
        without_pay,
        "newest release is the other one"
    );

    let approval = p.json(&["approve", "dev"]);

    assert_eq!(approval["env"], "dev");
    assert_eq!(approval["release"], with_pay);
    assert_eq!(approval["approver"], "tester");
    assert_eq!(approval["new"], true);
    assert_eq!(approval["approvals"], 1);

    let again = p.json(&["approve", "dev"]);
    assert_eq!(again["new"], false, "one approval per person");
    assert_eq!(again["approvals"], 1);
    let other = parse_json(&p.hifi_as("other", &["approve", "dev", "--json"]).ok());
    assert_eq!(other["approvals"], 2);
}

#[test]
fn approving_for_a_gated_environment_needs_a_release() {
    let p = shop();
    let id = p.json(&["compose", "dev"])["release"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let stderr = p.hifi(&["approve", "prod"]).fails(1);
    assert_mentions(&stderr, &["--release"]);

    let approval = p.json(&["approve", "prod", "--release", &id[..8]]);
    assert_eq!(approval["env"], "prod");
    assert_eq!(approval["release"], id.as_str());
    assert_eq!(approval["approvals"], 1);
    assert_eq!(approval["required"], 1);

    let stderr = p
        .hifi(&["approve", "prod", "--release", "deadbeef"])
        .fails(1);
    assert_mentions(&stderr, &["deadbeef"]);
    let stderr = p.hifi(&["approve", "prod", "--release", &id[..3]]).fails(1);
    assert_mentions(&stderr, &["too short", "at least 4"]);
    let stderr = p.hifi(&["approve", "uat"]).fails(1);
    assert_mentions(&stderr, &["uat", "compose"]);
    let stderr = p.hifi(&["approve", "qa"]).fails(1);
    assert_mentions(&stderr, &["qa"]);
}
