//! The hotfix lane through the real control plane: a fix composed onto
//! prod's live release (and nothing of what waits in prep), verified in the
//! hotfix environment and promoted to prod; a later promotion that would
//! take the fix back out is refused until the fix reaches it, by either
//! route; cards follow their releases to Deploy, Done and back; a rejected
//! release goes nowhere; a hotfix that clashes with prod's release changes
//! nothing.

use std::time::Duration;

use hifi_testkit::Env;

use super::cluster::{APP_PATH, Cluster, Mode, app, wait_until};
use super::util::assert_mentions;

/// prep (cards at Ready for Production) → prod (from prep or hotfix), and
/// hotfix (fixes prod), all blue-green with short soaks; v1 live in prod.
fn lane(follow: bool) -> (Cluster, String) {
    let prep = Env::cards("prep", 0, "Ready for Production")
        .strategy("blue-green")
        .soak("1s")
        .drain("1s");
    let prod = Env::promote_any("prod", 0, &["prep", "hotfix"])
        .strategy("blue-green")
        .soak("1s")
        .drain("1s");
    let hotfix = Env::hotfix("hotfix", 0, "prod")
        .strategy("blue-green")
        .soak("1s")
        .drain("1s");
    let c = Cluster::with_workflow(
        [prep, prod, hotfix],
        if follow {
            ""
        } else {
            "follow_releases = false"
        },
    );
    let v1 = c.compose("prep");
    c.up();
    c.deploy("prep");
    c.wait_verified("prep", &v1);
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    (c, v1)
}

fn stage(c: &Cluster, card: &str) -> String {
    c.project
        .json(&["card", "list"])
        .as_array()
        .expect("cards")
        .iter()
        .find(|v| v["id"] == card)
        .and_then(|v| v["stage"].as_str())
        .unwrap_or_else(|| panic!("no card {card}"))
        .to_string()
}

fn wait_stage(c: &Cluster, card: &str, wanted: &str) {
    wait_until(
        &format!("{card} to reach {wanted}"),
        Duration::from_secs(30),
        || match stage(c, card) {
            s if s == wanted => Ok(()),
            s => Err(s),
        },
    );
}

/// A feature waiting in prep, and a hotfix card off main fixing the api.
fn feature_in_prep_and_a_fix(c: &Cluster, fix: &str) {
    c.project
        .branch("feature/search", &[("services/api/search.txt", "search\n")]);
    c.hifi(&["card", "add", "FEAT-1", "--branch", "feature/search"])
        .ok();
    c.hifi(&["card", "move", "FEAT-1", "ready-for-production"])
        .ok();
    c.compose("prep");
    c.deploy("prep");
    c.project.branch(
        &format!("hotfix/{}", fix.to_ascii_lowercase()),
        &[(APP_PATH, &app("v1-fixed", Mode::Ok))],
    );
    c.hifi(&[
        "card",
        "add",
        fix,
        "--branch",
        &format!("hotfix/{}", fix.to_ascii_lowercase()),
        "--hotfix",
    ])
    .ok();
}

#[test]
fn a_hotfix_reaches_prod_from_its_live_release_and_holds_promotions_until_the_fix_is_in_them() {
    let (c, v1) = lane(true);
    let prod_commit = c.project.json(&["release", "show", &v1])["commit"]
        .as_str()
        .expect("a commit")
        .to_string();
    feature_in_prep_and_a_fix(&c, "FIX-1");
    let prep_release = c.active("prep").expect("prep runs the feature");

    // Composed onto prod's live release, with the fix and nothing else.
    let fix = c.compose("hotfix");
    let composed = c.project.json(&["release", "show", &fix]);
    assert_eq!(composed["base_commit"], prod_commit.as_str(), "{composed}");
    let cards: Vec<&str> = composed["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .map(|c| c["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(cards, ["FIX-1"]);
    assert_eq!(
        c.project.show("hifi/env/hotfix", "services/api/search.txt"),
        None,
        "prep's feature leaked into the hotfix"
    );

    c.deploy("hotfix");
    c.wait_verified("hotfix", &fix);
    let stdout = c.hifi(&["promote", "hotfix", "prod", "--wait"]).ok();
    assert_mentions(&stdout, &["Card FIX-1 moved from Ready for Dev to Deploy"]);
    assert_eq!(c.version("prod", "u1"), "v1-fixed");
    wait_stage(&c, "FIX-1", "Done");

    // prep's release lacks the fix: promoting it would undo it.
    let before = c.history("prod").len();
    let stderr = c.hifi(&["promote", "prep", "prod"]).fails(1);
    assert_mentions(
        &stderr,
        &[
            &prep_release[..12],
            "lacks hotfix card FIX-1",
            "undo the fix",
            "hint:",
            "hifi card move FIX-1",
            "hotfix/fix-1",
        ],
    );
    assert_eq!(
        c.history("prod").len(),
        before,
        "the refusal recorded a deployment"
    );

    // The card went through the stages (it is Done), so prep's next
    // composition carries it, and that release may go.
    let with_fix = c.compose("prep");
    c.deploy("prep");
    c.wait_verified("prep", &with_fix);
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    assert_eq!(c.version("prod", "u1"), "v1-fixed");
    wait_stage(&c, "FEAT-1", "Done");

    // A rollback takes the cards back to where they were.
    let stdout = c.hifi(&["rollback", "prod", "--wait"]).ok();
    assert_mentions(
        &stdout,
        &["Card FEAT-1 moved back from Done to Ready for Production"],
    );
    assert_eq!(stage(&c, "FEAT-1"), "Ready for Production");
    let moves: Vec<String> = c
        .events(None)
        .into_iter()
        .filter(|(kind, message)| kind == "card.moved" && message.contains("rolled back"))
        .map(|(_, message)| message)
        .collect();
    assert!(!moves.is_empty(), "the move back is in the log");
}

#[test]
fn a_fix_merged_into_the_base_branch_lifts_the_hold_and_a_rejected_release_goes_nowhere() {
    let (c, _v1) = lane(false);
    feature_in_prep_and_a_fix(&c, "FIX-2");
    let fix = c.compose("hotfix");
    c.deploy("hotfix");
    c.wait_verified("hotfix", &fix);
    c.hifi(&["promote", "hotfix", "prod", "--wait"]).ok();
    assert_eq!(
        stage(&c, "FIX-2"),
        "Ready for Dev",
        "cards do not follow here"
    );
    c.hifi(&["promote", "prep", "prod"]).fails(1);

    // Merged into main, the fix is in prep's next composition.
    c.project.git(&["merge", "-q", "--no-edit", "hotfix/fix-2"]);
    let merged = c.compose("prep");
    c.deploy("prep");
    c.wait_verified("prep", &merged);

    // Rejected before it goes: it goes nowhere, and says why.
    c.hifi(&[
        "release",
        "reject",
        &merged[..8],
        "--reason",
        "prices wrong in search",
    ])
    .ok();
    let stderr = c.hifi(&["promote", "prep", "prod"]).fails(1);
    assert_mentions(&stderr, &["rejected", "prices wrong in search"]);
    let stderr = c
        .hifi(&["deploy", "prep", "--release", &merged[..8]])
        .fails(1);
    assert_mentions(&stderr, &["rejected"]);
    let status = c.hifi(&["status", "prep"]).ok();
    assert_mentions(&status, &["rejected (prices wrong in search)"]);

    // The next composition is another release, which may go.
    c.commit_app("v1-fixed-too", Mode::Ok);
    let next = c.compose("prep");
    c.deploy("prep");
    c.wait_verified("prep", &next);
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    assert_eq!(c.version("prod", "u1"), "v1-fixed-too");
}

#[test]
fn a_hotfix_that_clashes_with_prods_release_is_refused_and_changes_nothing() {
    let (c, _v1) = lane(true);
    // A fix branched off the old main edits the line v2 changed.
    let old = c.project.rev("main").expect("main");
    let v2 = c.release("prep", "v2", Mode::Ok);
    c.deploy("prep");
    c.wait_verified("prep", &v2);
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    c.project
        .git(&["checkout", "-q", "-b", "hotfix/clash", &old]);
    c.project
        .commit_files("fix on v1", &[(APP_PATH, &app("v1-patched", Mode::Ok))]);
    c.project.git(&["checkout", "-q", "main"]);
    c.hifi(&[
        "card",
        "add",
        "FIX-9",
        "--branch",
        "hotfix/clash",
        "--hotfix",
    ])
    .ok();

    let before = c.project.refs();
    let stderr = c.hifi(&["compose", "hotfix"]).fails(1);
    assert_mentions(
        &stderr,
        &[
            "FIX-9",
            "conflicts with prod's live release",
            &v2[..12],
            APP_PATH,
        ],
    );
    assert_eq!(c.project.refs(), before, "a ref moved");
    assert!(c.project.rev("hifi/env/hotfix").is_none());
}
