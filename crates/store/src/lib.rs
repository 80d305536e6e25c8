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

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub mod cards;
pub mod events;
pub mod ledger;
pub mod releases;
pub mod routing;
mod schema;

pub use cards::{CardRow, ConflictFlag};
pub use events::Event;
pub use ledger::{Approval, Deployment, Update};
pub use releases::Composition;
pub use routing::{Analysis, InstanceRow};
pub use schema::LATEST as SCHEMA_VERSION;

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
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        // Long enough to outwait another command's whole transaction; hifi's
        // transactions are short, so a wait this long means a stuck process.
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Off while migrations rebuild tables; on for everything after.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        schema::migrate(&mut conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Store { conn })
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
