//! hifi's state store: one SQLite file (`.hifi/state.db`) holding the
//! desired state (cards, releases, compositions) and the ledger the fidelity
//! gate reads (deployments, verifications, approvals), next to an append-only
//! audit log of events.
//!
//! Every change is one `BEGIN IMMEDIATE` transaction that writes the change
//! and its audit event together, so a killed process leaves either both or
//! neither. The database runs in WAL mode with a busy timeout, so two hifi
//! commands at once wait for each other instead of failing or corrupting.
//! The schema is versioned with `PRAGMA user_version` and migrated on open;
//! a database from a newer hifi is refused rather than guessed at.
//!
//! Opened for a project ([`Store::open_in`]), the database is checked
//! (`PRAGMA quick_check`) and backed up before every migration and after
//! every change to what is live, so a damaged or lost file is noticed and
//! can be restored with its history.
//!
//! # Layout
//!
//! - [`schema`]: the migrations, applied in order on open.
//! - [`cards`]: cards and their conflict flags.
//! - [`releases`]: releases and the compositions that produced them.
//! - [`ledger`]: deployments, verifications and approvals — the facts the
//!   fidelity gate decides on.
//! - [`routing`]: what each environment serves, its running instances, its
//!   stable internal ports and the canary analyses.
//! - [`events`]: the audit log.
//! - [`backups`]: rolling backups (online backup API), listing and restoring.
//! - [`tokens`]: API tokens (names, roles, hashes of their secrets).
//! - [`webhooks`]: each webhook's delivery cursor and failures.
//! - `testing` (feature `testing`, for other crates' tests): state
//!   recorded as the control plane would record it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hifi_core::Layout;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

pub mod backups;
pub mod cards;
pub mod events;
pub mod ledger;
pub mod releases;
pub mod routing;
mod schema;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod webhooks;

pub use cards::{CardMove, CardRow, ConflictFlag};
pub use events::Event;
pub use ledger::{Approval, Deployment, Extras, NewDeployment, Rejection, Update};
pub use releases::{ArtifactKind, Composition, pushed_key};
pub use routing::{Analysis, InstanceRow};
pub use schema::LATEST as SCHEMA_VERSION;
pub use tokens::{NewToken, SessionRow, StoredToken, TokenRow};
pub use webhooks::WebhookRow;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed (I/O, corruption, lock timeout).
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A value read back could not be decoded.
    #[error("state database holds an unreadable {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it could not be read.
        detail: String,
    },
    /// The database was written by a newer hifi.
    #[error(
        "state database schema version {found} is newer than this hifi understands ({known}); upgrade hifi"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
    /// A record that must exist does not.
    #[error("unknown {kind} `{id}`")]
    NotFound {
        /// Kind of record.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A record that must be unique exists already.
    #[error("{kind} `{id}` already exists")]
    AlreadyExists {
        /// Kind of record.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A deployment is already in progress in the environment.
    #[error(
        "deployment #{deployment} is in progress in {env}; wait for it, or abort it with `hifi canary {env} abort`"
    )]
    Busy {
        /// The environment.
        env: String,
        /// The deployment in progress.
        deployment: i64,
    },
    /// A change the state machine does not allow.
    #[error("{0}")]
    Refused(String),
    /// The database file is damaged (a torn write, a lost page, not a
    /// database at all).
    #[error("the state database {} is damaged: {detail}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What SQLite found.
        detail: String,
    },
    /// A backup could not be taken, listed or read.
    #[error("state backup: {0}")]
    Backup(String),
    /// A release id prefix matches several releases.
    #[error("release id `{prefix}` is ambiguous; it matches {matches}; give more characters")]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The short ids it matches.
        matches: String,
    },
}

/// Result with the store's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who did something and when: stamped on every change and its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The person or process (OS user, or `--as`).
    pub actor: String,
    /// Unix milliseconds.
    pub at: i64,
}

/// An open state database.
pub struct Store {
    conn: Connection,
    /// Where backups go, when this store takes them.
    backups: Option<PathBuf>,
}

/// How long a command waits for another one's lock: long enough to outwait
/// another command's whole transaction; hifi's transactions are short, so
/// a wait this long means a stuck process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Puts the database in WAL mode. WAL is a property of the file: once a
/// connection has converted it, later ones find it so and change nothing.
/// The conversion itself needs the file to itself, and SQLite does not wait
/// on the busy handler for it, so two commands creating a new state at once
/// had one of them fail with "database is locked". The mode is read first
/// (a read, which does wait), and a conversion that meets another
/// connection is tried again until [`BUSY_TIMEOUT`].
fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        // Reading the file first makes the connection find its mode.
        conn.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        let now = match conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        {
            Ok(now) => now,
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => mode,
            Err(e) => return Err(e),
        };
        if now.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        if started.elapsed() >= BUSY_TIMEOUT {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some(format!(
                    "the database stayed in {now} mode: another process kept it locked"
                )),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Whether a SQLite failure means the file itself is damaged.
fn damaged(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            Error::Damaged {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        _ => e.into(),
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    /// Takes no backups (see [`Store::open_in`]).
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, None)
    }

    /// Opens the state database of the project laid out by `layout`, checks
    /// it is intact (`PRAGMA quick_check`), backs it up before a migration,
    /// and keeps backing it up after every change to what is live.
    pub fn open_in(layout: &Layout) -> Result<Store> {
        Store::open_with(&layout.db(), Some(layout.backups()))
    }

    fn open_with(path: &Path, backups: Option<PathBuf>) -> Result<Store> {
        let at = |e| damaged(path, e);
        let conn = Connection::open(path).map_err(at)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(at)?;
        use_wal(&conn).map_err(at)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(at)?;
        let store = Store {
            conn,
            backups: backups.clone(),
        };
        if backups.is_some() {
            store.quick_check().map_err(|e| match e {
                Error::Sqlite(e) => damaged(path, e),
                e => e,
            })?;
            let version = store.schema_version()?;
            if version > 0 && version < schema::LATEST {
                store.backup(now_ms(), &format!("before-migration-{}", schema::LATEST))?;
            }
        }
        let mut conn = store.conn;
        // Off while migrations rebuild tables; on for everything after.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        schema::migrate(&mut conn).map_err(|e| match e {
            Error::Sqlite(e) => damaged(path, e),
            e => e,
        })?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Store { conn, backups })
    }

    /// A store over an already open connection (read-only inspection of a
    /// backup).
    pub(crate) fn from_connection(conn: Connection) -> Store {
        Store {
            conn,
            backups: None,
        }
    }

    /// Checks the database file is intact: `PRAGMA quick_check` finds no
    /// damaged page, index or record.
    pub fn quick_check(&self) -> Result<()> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let problems: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match problems.as_slice() {
            [ok] if ok == "ok" => Ok(()),
            _ => Err(Error::Damaged {
                path: self.conn.path().map(PathBuf::from).unwrap_or_default(),
                detail: problems.into_iter().take(3).collect::<Vec<_>>().join("; "),
            }),
        }
    }

    /// Takes a backup now (when this store takes backups), stamped `at`.
    pub fn backup(&self, at: i64, reason: &str) -> Result<Option<backups::Backup>> {
        match &self.backups {
            Some(dir) => Ok(Some(backups::take(&self.conn, dir, at, reason)?)),
            None => Ok(None),
        }
    }

    /// Runs `f` in one immediate transaction: all of its writes land, or none.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// The read connection.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

/// Now, in unix milliseconds (for backups taken outside a change).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
