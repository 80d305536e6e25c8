//! Rolling backups of the state database, taken with SQLite's online backup
//! API (a consistent copy while other connections read and write): before
//! every migration and after every change to what is live. Each backup is
//! written to a temporary file and renamed into place, so a backup that
//! exists is complete. The newest [`KEEP`] are kept.
//!
//! A backup is named `state-<unix ms>-<reason>.db`, so listing the
//! directory is enough to know when and why each was taken.

use std::path::{Path, PathBuf};

use hifi_core::Routing;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How many backups are kept.
pub const KEEP: usize = 20;

/// One backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backup {
    /// Its file name: what `hifi state restore NAME` takes.
    pub name: String,
    /// Its path.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// When it was taken (unix ms).
    pub at: i64,
    /// Why: `live`, `before-migration-3`, `before-restore`, ...
    pub reason: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What a backup holds, read from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Contents {
    /// What each environment served, by environment: `[env, routing]` pairs.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub routing: Vec<(String, Routing)>,
    /// How many events its log holds.
    pub events: i64,
}

fn parse_name(name: &str) -> Option<(i64, String)> {
    let stem = name.strip_prefix("state-")?.strip_suffix(".db")?;
    let (at, reason) = stem.split_once('-')?;
    Some((at.parse().ok()?, reason.to_string()))
}

/// Copies the open database `conn` into `dir` as a new backup, then prunes
/// the oldest beyond [`KEEP`].
pub(crate) fn take(conn: &Connection, dir: &Path, at: i64, reason: &str) -> Result<Backup> {
    let io = |e: std::io::Error| Error::Backup(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = format!("state-{at}-{reason}.db");
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    conn.backup(rusqlite::MAIN_DB, &tmp, None)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    for old in list(dir)?.into_iter().skip(KEEP) {
        let _ = std::fs::remove_file(old.path);
    }
    Ok(Backup {
        name,
        path,
        at,
        reason: reason.to_string(),
        bytes,
    })
}

/// The backups in `dir`, newest first.
pub fn list(dir: &Path) -> Result<Vec<Backup>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Backup(format!("{}: {e}", dir.display()))),
    };
    let mut backups: Vec<Backup> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let (at, reason) = parse_name(&name)?;
            Some(Backup {
                bytes: e.metadata().map(|m| m.len()).unwrap_or(0),
                path: e.path(),
                name,
                at,
                reason,
            })
        })
        .collect();
    backups.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.name.cmp(&a.name)));
    Ok(backups)
}

/// Reads what a backup holds, without changing it.
pub fn contents(backup: &Path) -> Result<Contents> {
    let conn = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let store = crate::Store::from_connection(conn);
    store.quick_check()?;
    let mut envs: Vec<String> = store
        .conn()
        .prepare("SELECT env FROM env_state ORDER BY env")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    envs.dedup();
    let routing = envs
        .into_iter()
        .map(|env| Ok((env.clone(), store.routing(&env)?)))
        .collect::<Result<_>>()?;
    Ok(Contents {
        routing,
        events: store.last_event_seq()?,
    })
}

/// Replaces the database at `db` with `backup`'s content (through the
/// online backup API, so the file stays a valid database at every step).
/// No other process may be writing to it.
pub fn restore(db: &Path, backup: &Path) -> Result<()> {
    // Check the backup before anything is overwritten.
    contents(backup)?;
    let mut conn = Connection::open(db)?;
    conn.restore(
        rusqlite::MAIN_DB,
        backup,
        None::<fn(rusqlite::backup::Progress)>,
    )?;
    Ok(())
}
