//! Where a project keeps things: `hifi.toml` at the repository root and
//! everything hifi writes under `.hifi/` (git-ignored). [`Layout`] is the
//! one place these paths are spelled; every crate asks it. It only
//! computes paths — creating or reading them is the caller's business.
//!
//! ```text
//! hifi.toml
//! .hifi/
//!   state.db                       desired state and the event log (SQLite)
//!   backups/state-<ms>-<why>.db    rolling backups of state.db
//!   run/                           the local runtime's records of the processes it started
//!   artifacts/<service>/<version>/ built service versions
//!   logs/<env>/<slot>/<service>.log, logs/<env>/smoke.log
//!   logs/proxy.log, logs/hifi.log
//!   proxy/                         the proxy's persisted routing tables
//!   proxy.sock, proxy.json         the proxy's admin socket and process record
//!   up.lock, up.ready              the control plane's lock and readiness mark
//! ```

use std::path::{Path, PathBuf};

/// The config file at the repository root.
pub const CONFIG_FILE: &str = "hifi.toml";
/// hifi's own directory at the repository root.
pub const STATE_DIR: &str = ".hifi";

/// The paths of one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the project whose repository root is `root`.
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The repository root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `hifi.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// `.hifi/`.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// The state database.
    pub fn db(&self) -> PathBuf {
        self.state_dir().join("state.db")
    }

    /// Rolling backups of the state database.
    pub fn backups(&self) -> PathBuf {
        self.state_dir().join("backups")
    }

    /// The local runtime's own records of the processes it started, so what
    /// runs can be found even when the state database lost track of it.
    pub fn runtime_records(&self) -> PathBuf {
        self.state_dir().join("run")
    }

    /// Where artifacts are built and kept.
    pub fn artifacts(&self) -> PathBuf {
        self.state_dir().join("artifacts")
    }

    /// Where a local instance runs: a linked copy of its artifact, so what
    /// it writes there never changes the artifact.
    pub fn instance_workdir(&self, env: &str, slot: &str, service: &str, replica: u16) -> PathBuf {
        self.state_dir()
            .join("work")
            .join(env)
            .join(slot)
            .join(format!("{service}.{replica}"))
    }

    /// Every log.
    pub fn logs(&self) -> PathBuf {
        self.state_dir().join("logs")
    }

    /// The log of one service instance.
    pub fn instance_log(&self, env: &str, slot: &str, service: &str) -> PathBuf {
        self.logs()
            .join(env)
            .join(slot)
            .join(format!("{service}.log"))
    }

    /// The output of an environment's last smoke check.
    pub fn smoke_log(&self, env: &str) -> PathBuf {
        self.logs().join(env).join("smoke.log")
    }

    /// The proxy's log.
    pub fn proxy_log(&self) -> PathBuf {
        self.logs().join("proxy.log")
    }

    /// The log of `hifi up --detach`.
    pub fn hifi_log(&self) -> PathBuf {
        self.logs().join("hifi.log")
    }

    /// Where the proxy persists its routing tables.
    pub fn proxy_tables(&self) -> PathBuf {
        self.state_dir().join("proxy")
    }

    /// The proxy's admin socket.
    pub fn proxy_socket(&self) -> PathBuf {
        self.state_dir().join("proxy.sock")
    }

    /// The record of the proxy process, for re-adoption.
    pub fn proxy_record(&self) -> PathBuf {
        self.state_dir().join("proxy.json")
    }

    /// The lock a running control plane holds.
    pub fn up_lock(&self) -> PathBuf {
        self.state_dir().join("up.lock")
    }

    /// Written by a control plane once it is ready.
    pub fn up_ready(&self) -> PathBuf {
        self.state_dir().join("up.ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_hifi_writes_is_under_its_state_dir() {
        let layout = Layout::new("/repo");
        assert_eq!(layout.config(), Path::new("/repo/hifi.toml"));
        for path in [
            layout.db(),
            layout.backups(),
            layout.runtime_records(),
            layout.artifacts(),
            layout.instance_log("dev", "blue", "api"),
            layout.smoke_log("dev"),
            layout.proxy_log(),
            layout.hifi_log(),
            layout.proxy_tables(),
            layout.proxy_socket(),
            layout.proxy_record(),
            layout.up_lock(),
            layout.up_ready(),
        ] {
            assert!(path.starts_with("/repo/.hifi"), "{}", path.display());
        }
        assert_eq!(
            layout.instance_log("dev", "blue", "api"),
            Path::new("/repo/.hifi/logs/dev/blue/api.log")
        );
    }
}
