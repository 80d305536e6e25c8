//! Trusting the state database: noticing that it was lost while `.hifi/`
//! shows a previous run, listing its rolling backups with what each holds,
//! and restoring one. The store checks the file itself on every open
//! (`PRAGMA quick_check`) and takes the backups.

use hifi_core::event::EventKind;
use hifi_core::{Action, Layout, Routing};
use hifi_runtime::Runtime;
use hifi_store::backups::{self, Backup};
use hifi_store::events::Subject;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Actor, Project, now_ms};

/// A backup, with what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupView {
    /// The file.
    #[serde(flatten)]
    pub backup: Backup,
    /// What each environment served in it.
    pub routing: Vec<(String, Routing)>,
    /// How many events its log holds.
    pub events: i64,
}

/// A restore just done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Restored {
    /// The backup restored.
    pub from: Backup,
    /// The state replaced, saved as a backup first.
    pub saved: Option<Backup>,
}

/// Signs that hifi ran here before: what a lost state database would leave
/// behind.
pub(crate) async fn previous_run(layout: &Layout, runtime: &impl Runtime) -> Vec<String> {
    let mut found = Vec::new();
    let count = |dir: std::path::PathBuf, ext: Option<&str>| {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| {
                        ext.is_none_or(|ext| {
                            e.path().extension().and_then(|x| x.to_str()) == Some(ext)
                        })
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let tables = count(layout.proxy_tables(), Some("json"));
    if tables > 0 {
        found.push(format!(
            "{tables} routing table(s) of the proxy in {}",
            layout.proxy_tables().display()
        ));
    }
    if let Ok(running) = runtime.discover().await
        && !running.is_empty()
    {
        found.push(format!(
            "{} running instance(s) ({})",
            running.len(),
            running
                .iter()
                .map(|i| i.describe())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if layout.proxy_record().exists() {
        found.push(format!(
            "a proxy record ({})",
            layout.proxy_record().display()
        ));
    }
    let artifacts = count(layout.artifacts(), None);
    if artifacts > 0 {
        found.push(format!("artifacts of {artifacts} service(s)"));
    }
    let saved = backups::list(&layout.backups())
        .map(|b| b.len())
        .unwrap_or(0);
    if saved > 0 {
        found.push(format!("{saved} backup(s) of the state"));
    }
    found
}

impl Project {
    /// Whether the state database is empty (no event was ever recorded).
    pub(crate) fn state_is_empty(&self) -> Result<bool> {
        Ok(self.store.last_event_seq()? == 0)
    }

    /// The rolling backups, newest first, with what each holds.
    pub fn backups(&self, actor: &Actor) -> Result<Vec<BackupView>> {
        self.authorize(actor, Action::ManageState)?;
        backups::list(&self.layout.backups())?
            .into_iter()
            .map(|backup| {
                let contents = backups::contents(&backup.path)?;
                Ok(BackupView {
                    backup,
                    routing: contents.routing,
                    events: contents.events,
                })
            })
            .collect()
    }

    /// Restores a backup (by name; default the newest), after saving the
    /// current state as a backup. Refused while a control plane runs.
    pub fn restore(&mut self, actor: &Actor, name: Option<&str>) -> Result<Restored> {
        self.authorize(actor, Action::ManageState)?;
        if let Some(pid) = crate::control::running(&self.layout) {
            return Err(Error::AlreadyRunning { pid });
        }
        let all = backups::list(&self.layout.backups())?;
        let from =
            match name {
                Some(name) => all.into_iter().find(|b| b.name == name).ok_or_else(|| {
                    Error::UnknownBackup {
                        name: name.to_string(),
                    }
                })?,
                None => all.into_iter().next().ok_or(Error::NoBackup)?,
            };
        // A state that cannot even be read is not worth saving.
        let saved = self.store.backup(now_ms(), "before-restore").ok().flatten();
        backups::restore(&self.layout.db(), &from.path)?;
        self.store.quick_check()?;
        let audit = self.audit(actor);
        let message = format!(
            "restored the state from backup {} ({})",
            from.name, from.reason
        );
        self.store.record_event(
            &audit,
            EventKind::StateRestored,
            Subject::default(),
            &message,
        )?;
        Ok(Restored { from, saved })
    }
}
