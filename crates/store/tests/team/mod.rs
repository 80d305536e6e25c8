//! The team server's tables: tokens (hashes only) and webhook cursors.

use hifi_core::Role;
use hifi_core::event::EventKind;
use hifi_store::{Audit, Error, NewToken, Store};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    (dir, store)
}

fn audit(at: i64) -> Audit {
    Audit {
        actor: "root".into(),
        at,
    }
}

fn token<'a>(name: &'a str, lookup: &'a str, expires_at: Option<i64>) -> NewToken<'a> {
    NewToken {
        name,
        role: Role::Approver,
        lookup,
        hash: "ab".repeat(32).leak(),
        expires_at,
    }
}

#[test]
fn a_token_is_created_once_revoked_once_and_its_name_reused_after() {
    let (_dir, mut store) = open();
    let row = store
        .create_token(&audit(1), token("ann", "0000000a", None))
        .unwrap();
    assert_eq!(
        (row.role, row.created_by.as_str()),
        (Role::Approver, "root")
    );
    let again = store.create_token(&audit(2), token("ANN", "0000000b", None));
    assert!(matches!(
        again,
        Err(Error::AlreadyExists { kind: "token", .. })
    ));
    let found = store.token_by_lookup("0000000a").unwrap().unwrap();
    assert_eq!(found.hash.len(), 64);
    assert!(store.token_by_lookup("0000000b").unwrap().is_none());

    assert!(store.revoke_token(&audit(3), "ann").unwrap());
    assert!(!store.revoke_token(&audit(4), "ann").unwrap());
    assert!(matches!(
        store.revoke_token(&audit(4), "bob"),
        Err(Error::NotFound { .. })
    ));
    store
        .create_token(&audit(5), token("ann", "0000000c", Some(10)))
        .unwrap();
    assert!(
        store.token_by_lookup("0000000a").unwrap().is_none(),
        "the revoked one is gone"
    );
    // Expired: its name can be taken over too.
    store
        .create_token(&audit(11), token("ann", "0000000d", None))
        .unwrap();
    let kinds: Vec<EventKind> = store
        .events(None, 10)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::TokenCreated,
            EventKind::TokenCreated,
            EventKind::TokenRevoked,
            EventKind::TokenCreated
        ]
    );
    let listed = store.tokens().unwrap();
    assert_eq!(listed.len(), 1);
}

#[test]
fn a_webhook_starts_at_the_present_and_keeps_its_failures_until_delivered() {
    let (_dir, mut store) = open();
    let row = store.webhook_or_start("t1", 41, 100).unwrap();
    assert_eq!((row.cursor, row.attempts, row.failing_since), (41, 0, None));
    // Starting again keeps the cursor where it was.
    store.webhook_advanced("t1", 42, true, 101).unwrap();
    assert_eq!(store.webhook_or_start("t1", 99, 102).unwrap().cursor, 42);

    store.webhook_failed("t1", "HTTP 500", 200, 110).unwrap();
    store.webhook_failed("t1", "timed out", 300, 120).unwrap();
    let row = store.webhook("t1").unwrap().unwrap();
    assert_eq!(
        (
            row.attempts,
            row.failing_since,
            row.next_at,
            row.last_error.as_deref()
        ),
        (2, Some(110), Some(300), Some("timed out"))
    );
    store.webhook_dropped("t1", 43, 130).unwrap();
    let row = store.webhook("t1").unwrap().unwrap();
    assert_eq!((row.cursor, row.dropped, row.attempts), (43, 1, 0));
    assert_eq!(
        row.failing_since,
        Some(110),
        "still failing until a delivery succeeds"
    );
    store.webhook_advanced("t1", 44, true, 140).unwrap();
    let row = store.webhook("t1").unwrap().unwrap();
    assert_eq!(
        (row.cursor, row.delivered, row.failing_since, row.last_error),
        (44, 2, None, None)
    );
    // A cursor never moves back.
    store.webhook_advanced("t1", 40, false, 150).unwrap();
    assert_eq!(store.webhooks().unwrap()[0].cursor, 44);
}
