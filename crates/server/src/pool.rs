//! Opened projects, kept for reuse. Opening a project reads `hifi.toml`,
//! finds the repository and checks the state database; doing that for
//! every request would cost more than most requests. The application layer
//! is synchronous, so every call runs on the blocking pool with a project
//! of its own; a project whose `hifi.toml` changed since it was opened is
//! dropped, so a request always sees the config on disk.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hifi_app::Project;
use hifi_core::clock::Clock;

use crate::problem::Problem;

/// How many idle projects are kept.
const KEEP: usize = 8;

/// Projects of one directory, ready for calls.
pub struct Pool {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    idle: Mutex<Vec<(Option<SystemTime>, Project)>>,
}

impl Pool {
    /// A pool of the project in `dir`, whose operations read `clock`.
    pub fn new(dir: PathBuf, clock: Arc<dyn Clock>) -> Pool {
        Pool {
            dir,
            clock,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn stamp(&self, project: Option<&Project>) -> Option<SystemTime> {
        let config = match project {
            Some(p) => p.layout().config(),
            None => hifi_core::Layout::new(&self.dir).config(),
        };
        std::fs::metadata(config).and_then(|m| m.modified()).ok()
    }

    fn take(&self) -> Result<(Option<SystemTime>, Project), hifi_app::Error> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some((stamp, project)) = idle
            && stamp == self.stamp(Some(&project))
        {
            return Ok((stamp, project));
        }
        let project = Project::open_with_clock(&self.dir, self.clock.clone())?;
        Ok((self.stamp(Some(&project)), project))
    }

    fn give_back(&self, stamp: Option<SystemTime>, project: Project) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP {
            idle.push((stamp, project));
        }
    }

    /// Runs `f` with a project on the blocking pool.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Project) -> Result<T, hifi_app::Error> + Send + 'static,
    ) -> Result<T, Problem> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let (stamp, mut project) = pool.take()?;
            let result = f(&mut project);
            // A project whose store failed is not trusted again.
            if !matches!(&result, Err(e) if e.kind() == hifi_app::ErrorKind::Internal) {
                pool.give_back(stamp, project);
            }
            result
        })
        .await
        .map_err(Problem::internal)?
        .map_err(Problem::from)
    }
}
