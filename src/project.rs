//! The project a command runs in: the git repository, its `hifi.toml`, the
//! state store under `.hifi/`, and who is acting. Commands get a [`Project`]
//! and never look these up themselves.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hifi_core::Config;
use hifi_core::card::{Card, CardId};
use hifi_git::Repo;
use hifi_store::{Audit, Store};

use crate::error::{BadConfig, Failure, Result};

/// The config file at the repository root.
pub const CONFIG_FILE: &str = "hifi.toml";
/// hifi's own directory at the repository root (git-ignored).
pub const STATE_DIR: &str = ".hifi";

/// Everything a command needs to know about where it runs.
pub struct Project {
    /// The repository.
    pub repo: Repo,
    /// The validated config.
    pub config: Config,
    /// The state store.
    pub store: Store,
    actor: String,
}

impl Project {
    /// Finds the repository containing `dir`, reads its config and opens its store.
    pub fn open(dir: &Path, actor: &str) -> Result<Project> {
        let repo = Repo::open(dir)?;
        let config = load_config(repo.root())?;
        let state = repo.root().join(STATE_DIR);
        std::fs::create_dir_all(&state)
            .map_err(|e| Failure::refused(format!("cannot create {}: {e}", state.display())))?;
        let store = Store::open(&state.join("state.db"))?;
        Ok(Project {
            repo,
            config,
            store,
            actor: actor.to_string(),
        })
    }

    /// The repository root.
    pub fn root(&self) -> &Path {
        self.repo.root()
    }

    /// `.hifi/` in the repository.
    pub fn state_dir(&self) -> PathBuf {
        self.root().join(STATE_DIR)
    }

    /// Every card, with its stage resolved against the workflow.
    pub fn cards(&self) -> Result<Vec<Card>> {
        self.store
            .cards()?
            .into_iter()
            .map(|row| {
                let stage =
                    self.config.workflow.find(&row.stage).ok_or_else(|| {
                        Failure::refused(format!(
                        "card {} is at stage `{}`, which the workflow in hifi.toml no longer has",
                        row.id, row.stage
                    ))
                    .hint(format!("move it to an existing stage: hifi card move {} STAGE", row.id))
                    })?;
                let id = CardId::parse(&row.id).map_err(Failure::refused)?;
                Ok(Card {
                    id,
                    title: row.title,
                    branch: row.branch,
                    stage,
                })
            })
            .collect()
    }

    /// Who did it and when, for a change about to be written.
    pub fn audit(&self) -> Audit {
        Audit {
            actor: self.actor.clone(),
            at: now_ms(),
        }
    }
}

/// Reads and validates `hifi.toml` at `root`.
pub fn load_config(root: &Path) -> Result<Config> {
    let path = root.join(CONFIG_FILE);
    let source = match std::fs::read_to_string(&path) {
        Ok(source) => source,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::Usage(format!(
                "no {CONFIG_FILE} in {}; run `hifi init` to create one",
                root.display()
            )));
        }
        Err(e) => {
            return Err(Failure::Usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    Config::parse(&source).map_err(|error| {
        Failure::Config(Box::new(BadConfig {
            path: PathBuf::from(CONFIG_FILE),
            source,
            error,
        }))
    })
}

/// The acting user: `--as`, else the OS user.
pub fn actor(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|name| !name.trim().is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()))
}

/// The name of the current uid in `/etc/passwd` (for shells without `$USER`).
fn user_from_passwd() -> Option<String> {
    let uid = rustix::process::getuid().as_raw().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_string())
    })
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
