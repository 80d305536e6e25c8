//! Promotion windows, on an injected clock: a promotion starts only inside
//! one; outside, a hotfix may go with a reason on record; a rollback is
//! never held.

use std::sync::Arc;

use hifi_app::deploy::Start;
use hifi_app::{Error, Project};
use hifi_core::clock::ManualClock;

use crate::util::{Repo, admin, composed_live, goes_live, lane_config};

/// Unix ms of a time in Zurich.
fn zurich(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
    jiff::civil::date(y, mo, d)
        .at(h, mi, 0, 0)
        .to_zoned(jiff::tz::TimeZone::get("Europe/Zurich").unwrap())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

const MONDAY_10: (i16, i8, i8, i8, i8) = (2026, 11, 30, 10, 0);
const SATURDAY_10: (i16, i8, i8, i8, i8) = (2026, 12, 5, 10, 0);

fn at(clock: &ManualClock, (y, mo, d, h, mi): (i16, i8, i8, i8, i8)) {
    clock.set(zurich(y, mo, d, h, mi));
}

/// prep's release live and verified, promoted into prod on Monday and
/// live there; the project reads `clock`.
fn prod_live(repo: &Repo, clock: &Arc<ManualClock>) -> Project {
    let mut p = Project::open_with_clock(repo.dir.path(), clock.clone()).unwrap();
    at(clock, MONDAY_10);
    let composed = composed_live(&mut p, "prep");
    let started = p
        .promote(&admin(), "prep", "prod", Start::default())
        .unwrap();
    assert_eq!(started.deployment.release, composed.id);
    assert_eq!(started.overrode_window, None);
    goes_live(&p, "prod", started.deployment.id);
    p
}

#[test]
fn a_promotion_starts_only_inside_a_window_and_is_told_when_the_next_opens() {
    let repo = Repo::with_config(&lane_config());
    let clock = Arc::new(ManualClock::new());
    let mut p = prod_live(&repo, &clock);
    // A new release in prep, to promote on Saturday.
    std::fs::write(repo.dir.path().join("services/api/app.py"), "v2\n").unwrap();
    repo.commit("v2");
    composed_live(&mut p, "prep");

    at(&clock, SATURDAY_10);
    let before = repo.events();
    let e = p
        .promote(&admin(), "prep", "prod", Start::default())
        .unwrap_err();
    match &e {
        Error::OutsideWindow {
            env, next, hotfix, ..
        } => {
            assert_eq!(env, "prod");
            assert_eq!(next, "Mon 2026-12-07 09:00 Europe/Zurich");
            assert!(!hotfix);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("Mon-Fri 09:00-16:00 Europe/Zurich"));
    // A reason does not open a window for anything but a hotfix.
    let e = p
        .promote(
            &admin(),
            "prep",
            "prod",
            Start {
                reason: Some("in a hurry"),
                ..Start::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::OutsideWindow { .. }), "{e:?}");
    assert_eq!(repo.events(), before, "a refusal recorded something");

    at(&clock, (2026, 12, 7, 9, 0));
    p.promote(&admin(), "prep", "prod", Start::default())
        .unwrap();
}

#[test]
fn outside_a_window_a_hotfix_goes_with_a_reason_and_a_rollback_always_goes() {
    let repo = Repo::with_config(&lane_config());
    let clock = Arc::new(ManualClock::new());
    let mut p = prod_live(&repo, &clock);
    repo.branch("hotfix/pay", "services/api/fix.txt");
    p.add_card(&admin(), "FIX-1", "hotfix/pay", "", true)
        .unwrap();
    composed_live(&mut p, "hotfix");

    at(&clock, SATURDAY_10);
    let e = p
        .promote(&admin(), "hotfix", "prod", Start::default())
        .unwrap_err();
    assert!(
        matches!(e, Error::OutsideWindow { hotfix: true, .. }),
        "{e:?}"
    );
    assert!(e.hint().is_some_and(|h| h.contains("--reason")));
    let e = p
        .promote(
            &admin(),
            "hotfix",
            "prod",
            Start {
                reason: Some("  "),
                ..Start::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::OutsideWindow { .. }),
        "a blank reason is none"
    );

    let started = p
        .promote(
            &admin(),
            "hotfix",
            "prod",
            Start {
                reason: Some("checkout charges twice"),
                ..Start::default()
            },
        )
        .unwrap();
    let note = started.overrode_window.expect("the override is recorded");
    assert!(note.contains("checkout charges twice"), "{note}");
    let events = p
        .deployment_events(&admin(), started.deployment.id)
        .unwrap();
    assert!(
        events[0]
            .message
            .contains("because: checkout charges twice"),
        "{events:?}"
    );
    goes_live(&p, "prod", started.deployment.id);

    // Going back is never held by a window.
    p.rollback(&admin(), "prod", Start::default()).unwrap();
}
