//! The hotfix lane's composition: a fix lands on exactly what production
//! runs, and the release it makes still names the cards it carries from
//! there, so the board and `hifi status` keep telling what is live.

use std::sync::Arc;

use hifi_app::Project;
use hifi_app::deploy::Start;
use hifi_core::clock::ManualClock;

use crate::util::{Repo, admin, composed_live, goes_live, lane_config};

#[test]
fn a_hotfix_release_is_prods_live_release_plus_the_fix_and_names_both_cards() {
    let repo = Repo::with_config(&lane_config());
    let clock = Arc::new(ManualClock::new());
    // Monday 2026-11-30 10:00 in Zurich: inside prod's window.
    clock.set(1_796_029_200_000);
    let mut p = Project::open_with_clock(repo.dir.path(), clock).unwrap();
    repo.branch("feature/search", "services/api/search.txt");
    p.add_card(&admin(), "FEAT-1", "feature/search", "", false)
        .unwrap();
    p.move_card(&admin(), "FEAT-1", "ready-for-production")
        .unwrap();
    let live = composed_live(&mut p, "prep");
    let started = p
        .promote(&admin(), "prep", "prod", Start::default())
        .unwrap();
    goes_live(&p, "prod", started.deployment.id);

    // Meanwhile main moves on; the fix must not bring that along.
    std::fs::write(repo.dir.path().join("services/api/next.txt"), "next\n").unwrap();
    repo.commit("next feature on main");
    repo.branch("hotfix/pay", "services/api/fix.txt");
    p.add_card(&admin(), "FIX-1", "hotfix/pay", "", true)
        .unwrap();
    let fix = p.compose(&admin(), "hotfix", &mut |_| {}).unwrap().release;

    assert_eq!(fix.base_commit, live.commit);
    let cards: Vec<&str> = fix.cards.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(cards, ["FEAT-1", "FIX-1"]);
    assert_eq!(fix.cards[0].commit, live.cards[0].commit);
}
