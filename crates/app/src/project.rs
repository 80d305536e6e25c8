//! The project an operation works on — its repository, validated config,
//! state store and paths — and who is acting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hifi_core::card::{Card, CardId};
use hifi_core::clock::{Clock, SystemClock};
use hifi_core::layout::CONFIG_FILE;
use hifi_core::{Action, Config, Environment, Layout, Role};
use hifi_git::Repo;
use hifi_store::{Audit, Store};

use crate::error::{BadConfig, Error, Result};

/// Who does something: recorded as the actor of every event, and checked
/// against what their role allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The name events record (an OS user, `--as`, a token's name).
    pub name: String,
    /// What they may do.
    pub role: Role,
}

impl Actor {
    /// Someone working on `.hifi/` directly: the file system is the
    /// boundary, so they may do everything.
    pub fn local(name: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            role: Role::Admin,
        }
    }

    /// The acting OS user: `explicit` (`--as`), else `$USER`, `$LOGNAME`,
    /// the name of the uid in `/etc/passwd`, or `uid N`.
    pub fn os_user(explicit: Option<&str>) -> Actor {
        let name = explicit
            .map(str::to_string)
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .filter(|name| !name.trim().is_empty())
            .or_else(user_from_passwd)
            .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()));
        Actor::local(name)
    }
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

/// One hifi project: everything an operation needs.
pub struct Project {
    pub(crate) layout: Layout,
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) repo: Repo,
    pub(crate) clock: Arc<dyn Clock>,
}

/// Opens the repository containing `dir`, telling "not a repository" apart
/// from git failing.
pub(crate) fn open_repo(dir: &Path) -> Result<Repo> {
    Repo::open(dir).map_err(|e| match e {
        hifi_git::Error::NotARepository { .. } | hifi_git::Error::NoWorkTree { .. } => {
            Error::NotARepository(e.to_string())
        }
        e => e.into(),
    })
}

impl Project {
    /// Finds the repository containing `dir`, reads its config and opens
    /// its store.
    pub fn open(dir: &Path) -> Result<Project> {
        Project::open_with_clock(dir, Arc::new(SystemClock))
    }

    /// [`Project::open`] with the clock that decides what time it is (when a
    /// promotion window is open, what is recorded when).
    pub fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Result<Project> {
        let repo = open_repo(dir)?;
        let layout = Layout::new(repo.root());
        let config = load_config(&layout)?;
        let state = layout.state_dir();
        std::fs::create_dir_all(&state)
            .map_err(|e| Error::Io(format!("cannot create {}: {e}", state.display())))?;
        let store = Store::open_in(&layout)?;
        Ok(Project {
            layout,
            config,
            store,
            repo,
            clock,
        })
    }

    /// Where the project's files are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The validated config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// An environment by name.
    pub fn environment(&self, name: &str) -> Result<&Environment> {
        self.config
            .environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Error::UnknownEnvironment {
                name: name.to_string(),
                known: self
                    .config
                    .environments
                    .iter()
                    .map(|e| e.name.clone())
                    .collect(),
            })
    }

    /// Refuses what the actor's role does not allow.
    pub(crate) fn authorize(&self, actor: &Actor, action: Action) -> Result<()> {
        if actor.role.allows(action) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                actor: actor.name.clone(),
                role: actor.role,
                action: action.describe(),
            })
        }
    }

    /// The deployment action on `env`, as roles see it.
    pub(crate) fn deploy_action(env: &Environment) -> Action {
        Action::Deploy {
            needs_approvals: env.approvals > 0,
        }
    }

    /// Now, by the project's clock (unix ms).
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Who did it and when, for a change about to be written.
    pub(crate) fn audit(&self, actor: &Actor) -> Audit {
        Audit {
            actor: actor.name.clone(),
            at: self.now(),
        }
    }

    /// Every card, with its stage resolved against the workflow.
    pub(crate) fn all_cards(&self) -> Result<Vec<Card>> {
        self.store
            .cards()?
            .into_iter()
            .map(|row| {
                let stage =
                    self.config
                        .workflow
                        .find(&row.stage)
                        .ok_or_else(|| Error::StageGone {
                            card: row.id.to_string(),
                            stage: row.stage.clone(),
                        })?;
                Ok(Card {
                    id: row.id,
                    title: row.title,
                    branch: row.branch,
                    stage,
                    hotfix: row.hotfix,
                })
            })
            .collect()
    }

    /// A card id as the user typed it.
    pub(crate) fn card_id(id: &str) -> Result<CardId> {
        CardId::parse(id).map_err(Error::BadInput)
    }

    /// A release by id or unique prefix.
    pub(crate) fn resolve_release(&self, prefix: &str) -> Result<hifi_core::ReleaseId> {
        self.store.resolve_release(prefix).map_err(|e| match e {
            e @ (hifi_store::Error::NotFound { .. }
            | hifi_store::Error::Ambiguous { .. }
            | hifi_store::Error::Refused(_)) => Error::UnknownRelease(e.to_string()),
            e => e.into(),
        })
    }
}

/// Reads and validates `hifi.toml`.
pub(crate) fn load_config(layout: &Layout) -> Result<Config> {
    let path = layout.config();
    let source = match std::fs::read_to_string(&path) {
        Ok(source) => source,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoConfig {
                root: layout.root().to_path_buf(),
            });
        }
        Err(e) => {
            return Err(Error::UnreadableConfig {
                path,
                reason: e.to_string(),
            });
        }
    };
    Config::parse(&source).map_err(|error| {
        Error::Config(Box::new(BadConfig {
            path: PathBuf::from(CONFIG_FILE),
            source,
            error,
        }))
    })
}
