//! Schema migrations, applied in order inside one transaction on open.
//! `PRAGMA user_version` records how many have run. Never edit a shipped
//! migration: append a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::{Error, Result};

const MIGRATIONS: &[&str] = &[
    // 1: the foundation.
    r#"
    CREATE TABLE cards (
        id          TEXT PRIMARY KEY,
        title       TEXT NOT NULL,
        branch      TEXT NOT NULL,
        stage       TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    ) STRICT;

    -- The last composition of an environment that could not merge a card.
    CREATE TABLE conflicts (
        env         TEXT NOT NULL,
        card        TEXT NOT NULL REFERENCES cards(id) ON DELETE CASCADE,
        with_cards  TEXT NOT NULL,   -- card ids, one per line (may be empty)
        files       TEXT NOT NULL,   -- paths, one per line
        at          INTEGER NOT NULL,
        PRIMARY KEY (env, card)
    ) STRICT;

    CREATE TABLE releases (
        id           TEXT PRIMARY KEY,
        tree         TEXT NOT NULL,
        commit_id    TEXT NOT NULL,
        base_commit  TEXT NOT NULL,
        composed_for TEXT NOT NULL,
        created_at   INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE release_cards (
        release_id  TEXT NOT NULL REFERENCES releases(id),
        position    INTEGER NOT NULL,
        card        TEXT NOT NULL,
        branch      TEXT NOT NULL,
        commit_id   TEXT NOT NULL,
        PRIMARY KEY (release_id, position)
    ) STRICT;

    CREATE TABLE release_services (
        release_id  TEXT NOT NULL REFERENCES releases(id),
        service     TEXT NOT NULL,
        version     TEXT NOT NULL,
        PRIMARY KEY (release_id, service)
    ) STRICT;

    -- Each time an environment was composed, and from which inputs: the
    -- inputs key lets an unchanged composition be recognised without git.
    CREATE TABLE compositions (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        env         TEXT NOT NULL,
        release_id  TEXT NOT NULL REFERENCES releases(id),
        commit_id   TEXT NOT NULL,
        inputs      TEXT NOT NULL,
        at          INTEGER NOT NULL,
        actor       TEXT NOT NULL
    ) STRICT;
    CREATE INDEX compositions_by_env ON compositions (env, seq);
    CREATE INDEX compositions_by_release ON compositions (release_id);

    CREATE TABLE deployments (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        env         TEXT NOT NULL,
        release_id  TEXT NOT NULL REFERENCES releases(id),
        strategy    TEXT NOT NULL,
        state       TEXT NOT NULL,
        slot        TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        actor       TEXT NOT NULL
    ) STRICT;
    CREATE INDEX deployments_by_env ON deployments (env, id);

    CREATE TABLE verifications (
        env         TEXT NOT NULL,
        release_id  TEXT NOT NULL REFERENCES releases(id),
        at          INTEGER NOT NULL,
        PRIMARY KEY (env, release_id)
    ) STRICT;

    CREATE TABLE approvals (
        env         TEXT NOT NULL,
        release_id  TEXT NOT NULL REFERENCES releases(id),
        actor       TEXT NOT NULL,
        at          INTEGER NOT NULL,
        PRIMARY KEY (env, release_id, actor)
    ) STRICT;

    -- The audit log: append-only, one row per change, written in the same
    -- transaction as the change.
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        kind        TEXT NOT NULL,
        env         TEXT,
        card        TEXT,
        release_id  TEXT,
        message     TEXT NOT NULL
    ) STRICT;
    CREATE INDEX events_by_env ON events (env, seq);
    "#,
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(Error::TooNew {
            found: current,
            known: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
