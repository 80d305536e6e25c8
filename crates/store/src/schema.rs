//! Schema migrations, applied in order inside one transaction on open.
//! `PRAGMA user_version` records how many have run. Never edit a shipped
//! migration: append a new one.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::{Error, Result};

const MIGRATIONS: &[&str] = &[
    // 1: the foundation.
    r#"
    -- Card ids compare without case: PAY-1 and pay-1 are one card.
    CREATE TABLE cards (
        id          TEXT PRIMARY KEY COLLATE NOCASE,
        title       TEXT NOT NULL,
        branch      TEXT NOT NULL,
        stage       TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    ) STRICT;

    -- The last composition of an environment that could not merge a card.
    CREATE TABLE conflicts (
        env         TEXT NOT NULL,
        card        TEXT NOT NULL COLLATE NOCASE REFERENCES cards(id) ON DELETE CASCADE,
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

    -- Each service's version and the recipe the release id hashed: what
    -- runs is started from here, never from a later hifi.toml.
    CREATE TABLE release_services (
        release_id  TEXT NOT NULL REFERENCES releases(id),
        service     TEXT NOT NULL,
        version     TEXT NOT NULL,
        path        TEXT NOT NULL,
        build       TEXT,
        run         TEXT NOT NULL,
        health      TEXT NOT NULL,
        route       TEXT NOT NULL,
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
    // 2: the control plane — rollout progress, what runs where, analyses.
    r#"
    ALTER TABLE deployments ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployments ADD COLUMN step_started_at INTEGER;
    ALTER TABLE deployments ADD COLUMN weight REAL NOT NULL DEFAULT 0;
    ALTER TABLE deployments ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
    -- A user's request the controller has not acted on yet: 'abort' or 'promote'.
    ALTER TABLE deployments ADD COLUMN request TEXT;
    -- Why it failed or was aborted, in a sentence.
    ALTER TABLE deployments ADD COLUMN reason TEXT;
    ALTER TABLE events ADD COLUMN deployment INTEGER;
    CREATE INDEX events_by_deployment ON events (deployment, seq);

    -- What each environment serves: the routing the controller maintains.
    CREATE TABLE env_state (
        env               TEXT PRIMARY KEY,
        active_slot       TEXT,
        active_release    TEXT,
        candidate_slot    TEXT,
        candidate_release TEXT,
        candidate_weight  REAL NOT NULL DEFAULT 0,
        standby_slot      TEXT,
        standby_release   TEXT,
        displaced_slot    TEXT,
        displaced_release TEXT,
        live_since        INTEGER,
        updated_at        INTEGER NOT NULL
    ) STRICT;

    -- Running instances, as the runtime described them, for re-adoption.
    CREATE TABLE instances (
        env         TEXT NOT NULL,
        slot        TEXT NOT NULL,
        service     TEXT NOT NULL,
        release_id  TEXT NOT NULL,
        handle      TEXT NOT NULL,
        health      TEXT NOT NULL,
        restarts    INTEGER NOT NULL DEFAULT 0,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (env, slot, service)
    ) STRICT;

    -- The stable internal address of each service of each environment.
    CREATE TABLE internal_ports (
        env      TEXT NOT NULL,
        service  TEXT NOT NULL,
        port     INTEGER NOT NULL UNIQUE,
        PRIMARY KEY (env, service)
    ) STRICT;

    -- Each judgement of a canary step, with the figures it was made on.
    CREATE TABLE analyses (
        deployment   INTEGER NOT NULL REFERENCES deployments(id),
        step         INTEGER NOT NULL,
        weight       REAL NOT NULL,
        requests     INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        error_ratio  REAL NOT NULL,
        p50_ms       REAL NOT NULL,
        p99_ms       REAL NOT NULL,
        verdict      TEXT NOT NULL,
        at           INTEGER NOT NULL
    ) STRICT;
    "#,
    // 3: every column that holds an enum says which values it may hold, so
    // no writer can store a state the readers would not understand. SQLite
    // cannot add a CHECK to a table, so each table is rebuilt (the store
    // migrates with foreign keys off, as SQLite's ALTER TABLE guide asks).
    // Event kinds are many and grow with every feature; their column checks
    // the `topic.name` shape rather than a list.
    r#"
    CREATE TABLE deployments_v3 (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        env             TEXT NOT NULL,
        release_id      TEXT NOT NULL REFERENCES releases(id),
        strategy        TEXT NOT NULL CHECK (strategy IN ('blue-green', 'canary', 'rollback')),
        state           TEXT NOT NULL CHECK (state IN ('pending', 'building', 'starting', 'verifying',
                            'live', 'superseded', 'failed', 'aborted', 'rolled-back')),
        slot            TEXT CHECK (slot IN ('blue', 'green')),
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        actor           TEXT NOT NULL,
        step            INTEGER NOT NULL DEFAULT 0,
        step_started_at INTEGER,
        weight          REAL NOT NULL DEFAULT 0 CHECK (weight BETWEEN 0 AND 100),
        paused          INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
        request         TEXT CHECK (request IN ('abort', 'promote')),
        reason          TEXT
    ) STRICT;
    INSERT INTO deployments_v3 SELECT id, env, release_id, strategy, state, slot, created_at, updated_at,
        actor, step, step_started_at, weight, paused, request, reason FROM deployments;
    DROP TABLE deployments;
    ALTER TABLE deployments_v3 RENAME TO deployments;
    CREATE INDEX deployments_by_env ON deployments (env, id);

    CREATE TABLE env_state_v3 (
        env               TEXT PRIMARY KEY,
        active_slot       TEXT CHECK (active_slot IN ('blue', 'green')),
        active_release    TEXT,
        candidate_slot    TEXT CHECK (candidate_slot IN ('blue', 'green')),
        candidate_release TEXT,
        candidate_weight  REAL NOT NULL DEFAULT 0 CHECK (candidate_weight BETWEEN 0 AND 100),
        standby_slot      TEXT CHECK (standby_slot IN ('blue', 'green')),
        standby_release   TEXT,
        displaced_slot    TEXT CHECK (displaced_slot IN ('blue', 'green')),
        displaced_release TEXT,
        live_since        INTEGER,
        updated_at        INTEGER NOT NULL
    ) STRICT;
    INSERT INTO env_state_v3 SELECT env, active_slot, active_release, candidate_slot, candidate_release,
        candidate_weight, standby_slot, standby_release, displaced_slot, displaced_release, live_since,
        updated_at FROM env_state;
    DROP TABLE env_state;
    ALTER TABLE env_state_v3 RENAME TO env_state;

    CREATE TABLE instances_v3 (
        env         TEXT NOT NULL,
        slot        TEXT NOT NULL CHECK (slot IN ('blue', 'green')),
        service     TEXT NOT NULL,
        release_id  TEXT NOT NULL,
        handle      TEXT NOT NULL,
        health      TEXT NOT NULL CHECK (health IN ('starting', 'healthy', 'unhealthy', 'exited')),
        restarts    INTEGER NOT NULL DEFAULT 0,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (env, slot, service)
    ) STRICT;
    INSERT INTO instances_v3 SELECT env, slot, service, release_id, handle, health, restarts, updated_at
        FROM instances;
    DROP TABLE instances;
    ALTER TABLE instances_v3 RENAME TO instances;

    CREATE TABLE analyses_v3 (
        deployment   INTEGER NOT NULL REFERENCES deployments(id),
        step         INTEGER NOT NULL,
        weight       REAL NOT NULL,
        requests     INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        error_ratio  REAL NOT NULL,
        p50_ms       REAL NOT NULL,
        p99_ms       REAL NOT NULL,
        verdict      TEXT NOT NULL CHECK (verdict IN ('pass', 'fail', 'extend')),
        at           INTEGER NOT NULL
    ) STRICT;
    INSERT INTO analyses_v3 SELECT deployment, step, weight, requests, errors, error_ratio, p50_ms, p99_ms,
        verdict, at FROM analyses;
    DROP TABLE analyses;
    ALTER TABLE analyses_v3 RENAME TO analyses;
    CREATE INDEX analyses_by_deployment ON analyses (deployment, at);

    CREATE TABLE events_v3 (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind GLOB '[a-z]*.[a-z]*' AND kind NOT GLOB '*[^a-z.-]*'),
        env         TEXT,
        card        TEXT,
        release_id  TEXT,
        message     TEXT NOT NULL,
        deployment  INTEGER
    ) STRICT;
    INSERT INTO events_v3 SELECT seq, at, actor, kind, env, card, release_id, message, deployment FROM events;
    DROP TABLE events;
    ALTER TABLE events_v3 RENAME TO events;
    CREATE INDEX events_by_env ON events (env, seq);
    CREATE INDEX events_by_deployment ON events (deployment, seq);
    "#,
    // 4: the hotfix lane — hotfix cards, rejected releases, and the card
    // moves a promotion made, so a rollback or an abort can undo them.
    r#"
    ALTER TABLE cards ADD COLUMN hotfix INTEGER NOT NULL DEFAULT 0 CHECK (hotfix IN (0, 1));

    CREATE TABLE rejections (
        release_id  TEXT PRIMARY KEY REFERENCES releases(id),
        reason      TEXT NOT NULL,
        actor       TEXT NOT NULL,
        at          INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE card_follow (
        deployment  INTEGER NOT NULL REFERENCES deployments(id),
        card        TEXT NOT NULL COLLATE NOCASE,
        from_stage  TEXT NOT NULL,
        to_stage    TEXT NOT NULL,
        PRIMARY KEY (deployment, card)
    ) STRICT;
    "#,
    // 5: artifacts with content digests (a directory's or an image's),
    // checked by every start; the Dockerfile in a service's recipe; and
    // several instances of a service per slot.
    r#"
    ALTER TABLE release_services ADD COLUMN image TEXT;
    ALTER TABLE release_services ADD COLUMN digest TEXT CHECK (digest GLOB 'sha256:*');
    ALTER TABLE release_services ADD COLUMN image_id TEXT CHECK (image_id GLOB 'sha256:*');

    -- Every artifact built, by service and key (a directory's name under
    -- .hifi/artifacts, an image's tag), with the digest it had when built.
    CREATE TABLE artifacts (
        service   TEXT NOT NULL,
        kind      TEXT NOT NULL CHECK (kind IN ('directory', 'image')),
        key       TEXT NOT NULL,
        digest    TEXT NOT NULL CHECK (digest GLOB 'sha256:*'),
        built_at  INTEGER NOT NULL,
        PRIMARY KEY (service, kind, key)
    ) STRICT;

    CREATE TABLE instances_v5 (
        env         TEXT NOT NULL,
        slot        TEXT NOT NULL CHECK (slot IN ('blue', 'green')),
        service     TEXT NOT NULL,
        replica     INTEGER NOT NULL DEFAULT 0 CHECK (replica BETWEEN 0 AND 63),
        release_id  TEXT NOT NULL,
        handle      TEXT NOT NULL,
        health      TEXT NOT NULL CHECK (health IN ('starting', 'healthy', 'unhealthy', 'exited')),
        restarts    INTEGER NOT NULL DEFAULT 0,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (env, slot, service, replica)
    ) STRICT;
    INSERT INTO instances_v5 SELECT env, slot, service, 0, release_id, handle, health, restarts, updated_at
        FROM instances;
    DROP TABLE instances;
    ALTER TABLE instances_v5 RENAME TO instances;
    "#,
    // 6: the team server — API tokens (their hashes only; the lookup id
    // finds a row without comparing secrets in SQL) and each webhook's
    // delivery cursor, so a restart neither loses nor repeats events.
    r#"
    CREATE TABLE tokens (
        name          TEXT PRIMARY KEY COLLATE NOCASE,
        role          TEXT NOT NULL CHECK (role IN ('viewer', 'developer', 'approver', 'operator', 'admin')),
        lookup        TEXT NOT NULL UNIQUE CHECK (length(lookup) = 8),
        hash          TEXT NOT NULL CHECK (length(hash) = 64),
        created_at    INTEGER NOT NULL,
        created_by    TEXT NOT NULL,
        expires_at    INTEGER,
        revoked_at    INTEGER,
        last_used_at  INTEGER
    ) STRICT;

    -- One row per [[notify]] target, keyed by a hash of its url as written
    -- and its format (never the url itself: it may hold a secret).
    CREATE TABLE webhooks (
        target         TEXT PRIMARY KEY,
        cursor         INTEGER NOT NULL,
        attempts       INTEGER NOT NULL DEFAULT 0,
        failing_since  INTEGER,
        next_at        INTEGER,
        last_error     TEXT,
        delivered      INTEGER NOT NULL DEFAULT 0,
        dropped        INTEGER NOT NULL DEFAULT 0,
        updated_at     INTEGER NOT NULL
    ) STRICT;
    "#,
    // 7: the protocol a service's instances speak, part of the recipe a
    // release records (every release before it spoke HTTP/1.1).
    r#"
    ALTER TABLE release_services ADD COLUMN protocol TEXT NOT NULL DEFAULT 'http1'
        CHECK (protocol IN ('http1', 'h2c', 'grpc'));
    "#,
    // 8: images pushed to a registry for Kubernetes, keyed by repository
    // and image id, with the digest the registry gave them.
    r#"
    CREATE TABLE artifacts_v6 (
        service   TEXT NOT NULL,
        kind      TEXT NOT NULL CHECK (kind IN ('directory', 'image', 'pushed')),
        key       TEXT NOT NULL,
        digest    TEXT NOT NULL CHECK (digest GLOB 'sha256:*'),
        built_at  INTEGER NOT NULL,
        PRIMARY KEY (service, kind, key)
    ) STRICT;
    INSERT INTO artifacts_v6 SELECT service, kind, key, digest, built_at FROM artifacts;
    DROP TABLE artifacts;
    ALTER TABLE artifacts_v6 RENAME TO artifacts;
    "#,
    // 9: the team server's dashboard sessions, so a restart signs no one
    // out: the SHA-256 of the session id (never the id), the token's name
    // and role, and the expiry.
    r#"
    CREATE TABLE sessions (
        hash       TEXT PRIMARY KEY CHECK (length(hash) = 64),
        token      TEXT NOT NULL,
        role       TEXT NOT NULL CHECK (role IN ('viewer', 'developer', 'approver', 'operator', 'admin')),
        expires_at INTEGER NOT NULL
    ) STRICT;
    "#,
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies the migrations this database has not had yet. Foreign keys must
/// be off while it runs (tables are rebuilt); their integrity is checked
/// before the migration commits.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_until(conn, LATEST)
}

/// Applies the migrations up to schema version `until`.
fn migrate_until(conn: &mut Connection, until: i64) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(Error::TooNew {
            found: current,
            known: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(until as usize)
        .skip(current as usize)
    {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    let broken: Option<String> = tx
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()?;
    if let Some(table) = broken {
        return Err(Error::Corrupt {
            what: "reference",
            detail: format!("a row of {table} points at a row that does not exist"),
        });
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hifi_core::Layout;

    use super::*;
    use crate::Store;

    /// A database file at schema `version`, as an older hifi left it.
    fn at_version(path: &Path, version: i64) -> Connection {
        let mut conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        migrate_until(&mut conn, version).unwrap();
        conn
    }

    #[test]
    fn every_older_schema_migrates_with_its_history() {
        for version in 2..LATEST {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.db");
            let conn = at_version(&path, version);
            conn.execute_batch(
                "INSERT INTO releases (id, tree, commit_id, base_commit, composed_for, created_at)
                     VALUES ('0000000000000000000000000000000000000000000000000000000000000001', 't', 'c', 'b', 'dev', 1);
                 INSERT INTO deployments (env, release_id, strategy, state, created_at, updated_at, actor)
                     VALUES ('dev', '0000000000000000000000000000000000000000000000000000000000000001', 'canary', 'live', 1, 1, 'ann');
                 INSERT INTO analyses (deployment, step, weight, requests, errors, error_ratio, p50_ms, p99_ms, verdict, at)
                     VALUES (1, 0, 10, 5, 0, 0, 1, 2, 'pass', 3);
                 INSERT INTO events (at, actor, kind, message) VALUES (1, 'ann', 'deployment.created', 'm');
                 INSERT INTO cards (id, title, branch, stage, created_at, updated_at)
                     VALUES ('PAY-1', 'Pay', 'f/pay', 'In Dev', 1, 1);",
            )
            .unwrap();
            drop(conn);
            let store = Store::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), LATEST, "from {version}");
            assert_eq!(store.deployments("dev").unwrap().len(), 1);
            assert_eq!(store.analyses(1).unwrap().len(), 1);
            assert_eq!(store.events(None, 10).unwrap().len(), 1);
            let cards = store.cards().unwrap();
            assert!(!cards[0].hotfix, "an existing card is no hotfix");
        }
    }

    #[test]
    fn a_migration_is_backed_up_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".hifi")).unwrap();
        let layout = Layout::new(dir.path());
        drop(at_version(&layout.db(), LATEST - 1));
        Store::open_in(&layout).unwrap();
        let backups = crate::backups::list(&layout.backups()).unwrap();
        assert_eq!(backups.len(), 1);
        assert_eq!(backups[0].reason, format!("before-migration-{LATEST}"));
        // The backup is the database before it migrated.
        let old = Connection::open(&backups[0].path).unwrap();
        let version: i64 = old
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, LATEST - 1);
    }
}
