//! `hifi compose ENV`: each environment branch holds the base plus exactly
//! the cards at its stage or later, deterministically, and the release
//! records what went in.

use super::util::{TestProject, assert_mentions, hifi_in};

/// catalog and checkout; PAY-1 (catalog) in dev only, SHIP-2 (checkout) in dev and uat.
fn shop() -> TestProject {
    TestProject::new()
        .service("catalog")
        .service("checkout")
        .standard()
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
        .at("SHIP-2", "In Test")
}

#[test]
fn each_environment_holds_the_cards_at_its_stage_or_later() {
    let p = shop()
        .card(
            "DONE-3",
            "feature/done-3",
            &[("services/catalog/done.txt", "done\n")],
        )
        .at("DONE-3", "Done")
        .card(
            "TODO-4",
            "feature/todo-4",
            &[("services/catalog/todo.txt", "todo\n")],
        );

    p.hifi(&["compose", "dev"]).ok();
    p.hifi(&["compose", "uat"]).ok();
    p.hifi(&["compose", "prep"]).ok();

    assert_eq!(
        p.show("hifi/env/dev", "services/catalog/pay.txt")
            .as_deref(),
        Some("pay\n")
    );
    assert_eq!(
        p.show("hifi/env/dev", "services/checkout/ship.txt")
            .as_deref(),
        Some("ship\n")
    );
    assert_eq!(p.show("hifi/env/dev", "README").as_deref(), Some("shop\n"));
    assert_eq!(p.show("hifi/env/uat", "services/catalog/pay.txt"), None);
    assert_eq!(
        p.show("hifi/env/uat", "services/checkout/ship.txt")
            .as_deref(),
        Some("ship\n")
    );
    for env in ["dev", "uat", "prep"] {
        let branch = format!("hifi/env/{env}");
        assert!(
            p.show(&branch, "services/catalog/done.txt").is_some(),
            "{env}"
        );
        assert_eq!(p.show(&branch, "services/catalog/todo.txt"), None, "{env}");
    }
    assert_eq!(p.show("hifi/env/prep", "services/checkout/ship.txt"), None);
    assert_eq!(p.show("hifi/env/prep", "services/catalog/pay.txt"), None);
    // With DONE-3 moved back, no card reaches prep: it is the base, exactly.
    p.move_card("DONE-3", "Ready for Dev");
    p.hifi(&["compose", "prep"]).ok();
    assert_eq!(p.rev("hifi/env/prep^{tree}"), p.rev("main^{tree}"));
}

#[test]
fn card_moved_back_drops_out_of_next_composition() {
    let p = shop();
    let first = p.hifi(&["compose", "dev"]).ok();

    p.move_card("PAY-1", "Ready for Dev");
    let without = p.hifi(&["compose", "dev"]).ok();

    assert_ne!(without, first);
    assert_eq!(p.show("hifi/env/dev", "services/catalog/pay.txt"), None);
    assert!(
        p.show("hifi/env/dev", "services/checkout/ship.txt")
            .is_some()
    );

    // Moving it forward again gives back the very same release.
    p.move_card("PAY-1", "In Dev");
    assert_eq!(p.hifi(&["compose", "dev"]).ok(), first);
    assert!(p.show("hifi/env/dev", "services/catalog/pay.txt").is_some());
    assert_eq!(p.releases().len(), 2);
}

#[test]
fn composing_twice_gives_the_same_release_and_commit() {
    let p = shop();
    let id = p.hifi(&["compose", "dev"]).ok();
    let commit = p.rev("hifi/env/dev").unwrap();
    let releases = p.releases().len();

    assert_eq!(p.hifi(&["compose", "dev"]).ok(), id);
    assert_eq!(p.rev("hifi/env/dev").unwrap(), commit);
    assert_eq!(p.releases().len(), releases);

    // Recomposed from nothing, later and by someone else, the branch comes back identical.
    p.git(&["branch", "-D", "hifi/env/dev"]);
    let elsewhen = [
        ("GIT_AUTHOR_DATE", "2001-02-03T04:05:06Z"),
        ("GIT_COMMITTER_DATE", "2001-02-03T04:05:06Z"),
        ("GIT_AUTHOR_NAME", "Someone Else"),
        ("GIT_COMMITTER_NAME", "Someone Else"),
    ];
    assert_eq!(p.hifi_env(&elsewhen, &["compose", "dev"]).ok(), id);
    assert_eq!(p.rev("hifi/env/dev").unwrap(), commit);
    assert_eq!(p.releases().len(), releases);
}

#[test]
fn same_content_composed_for_two_environments_is_one_release() {
    let p = shop().at("PAY-1", "In Test");

    let dev = p.hifi(&["compose", "dev"]).ok();
    let uat = p.hifi(&["compose", "uat"]).ok();

    assert_eq!(dev, uat);
    assert_eq!(p.rev("hifi/env/dev^{tree}"), p.rev("hifi/env/uat^{tree}"));
    assert_eq!(p.releases().len(), 1);
}

#[test]
fn compose_prints_the_short_release_id_and_records_what_went_in() {
    let p = shop();

    let stdout = p.hifi(&["compose", "dev"]).ok();

    let short = stdout.trim_end();
    assert_eq!(stdout, format!("{short}\n"), "only the id on stdout");
    assert_eq!(short.len(), 12);
    assert!(short.bytes().all(|b| b.is_ascii_hexdigit()), "{short}");
    let releases = p.releases();
    assert_eq!(releases.len(), 1);
    let release = &releases[0];
    assert!(release["id"].as_str().unwrap().starts_with(short));
    assert_eq!(release["commit"], p.rev("hifi/env/dev").unwrap().as_str());
    assert_eq!(
        release["tree"],
        p.rev("hifi/env/dev^{tree}").unwrap().as_str()
    );
    assert_eq!(release["base_commit"], p.rev("main").unwrap().as_str());
    let cards: Vec<(&str, &str)> = release["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["commit"].as_str().unwrap()))
        .collect();
    let pay = p.rev("feature/pay-1").unwrap();
    let ship = p.rev("feature/ship-2").unwrap();
    // The card further along the workflow is merged first.
    assert_eq!(cards, [("SHIP-2", ship.as_str()), ("PAY-1", pay.as_str())]);
    for service in ["catalog", "checkout"] {
        let version = release["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == service)
            .unwrap_or_else(|| panic!("no {service} in {release:#}"));
        let tree = p.rev(&format!("hifi/env/dev:services/{service}")).unwrap();
        assert_eq!(version["version"], tree.as_str(), "{service}");
    }
}

#[test]
fn a_card_branch_that_moves_on_is_recomposed_with_its_new_commit() {
    let p = shop();
    p.hifi(&["compose", "dev"]).ok();

    p.git(&["checkout", "-q", "feature/pay-1"]);
    p.commit_files("more pay", &[("services/catalog/pay.txt", "pay v2\n")]);
    p.git(&["checkout", "-q", "main"]);
    p.hifi(&["compose", "dev"]).ok();

    assert_eq!(
        p.show("hifi/env/dev", "services/catalog/pay.txt")
            .as_deref(),
        Some("pay v2\n")
    );
    let newest = &p.releases()[0];
    let pay = newest["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "PAY-1")
        .unwrap()
        .clone();
    assert_eq!(pay["commit"], p.rev("feature/pay-1").unwrap().as_str());
}

#[test]
fn compose_leaves_the_work_tree_index_and_current_branch_alone() {
    let p = shop();
    p.git(&["checkout", "-q", "-b", "my-work"]);
    p.write("README", "edited, not committed\n");
    p.write("services/catalog/app.py", "print('staged')\n");
    p.git(&["add", "services/catalog/app.py"]);
    p.write("notes.txt", "untracked\n");
    let status = p.git(&["status", "--porcelain"]);
    let head = p.git(&["rev-parse", "HEAD"]);
    let branch = p.git(&["symbolic-ref", "HEAD"]);
    let staged = p.git(&["diff", "--cached"]);

    p.hifi(&["compose", "dev"]).ok();
    // From a subdirectory too.
    let sub = p.path().join("services");
    hifi_in(&sub, "tester", &["compose", "uat"]).ok();

    assert_eq!(p.git(&["status", "--porcelain"]), status);
    assert_eq!(p.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(p.git(&["symbolic-ref", "HEAD"]), branch);
    assert_eq!(p.git(&["diff", "--cached"]), staged);
    assert_eq!(p.read("README"), "edited, not committed\n");
    assert_eq!(p.read("notes.txt"), "untracked\n");
    // What is composed is what was committed, not the edits.
    assert_eq!(p.show("hifi/env/dev", "README").as_deref(), Some("shop\n"));
}

#[test]
fn removed_card_drops_out_but_its_releases_keep_it() {
    let p = shop();
    let with_pay = p.json(&["compose", "dev"])["release"]["id"].clone();

    p.hifi(&["card", "rm", "PAY-1"]).ok();
    p.hifi(&["compose", "dev"]).ok();

    assert_eq!(p.show("hifi/env/dev", "services/catalog/pay.txt"), None);
    let releases = p.releases();
    let old = releases.iter().find(|r| r["id"] == with_pay).unwrap();
    assert!(
        old["cards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "PAY-1")
    );
}

#[test]
fn compose_of_an_unknown_environment_is_refused() {
    let p = shop();

    let stderr = p.hifi(&["compose", "qa"]).fails(1);

    assert_mentions(&stderr, &["qa"]);
    assert_eq!(p.rev("hifi/env/qa"), None);
}
