//! Containers' output: appended to the instance's log file as it comes, and
//! the last lines of a run for error messages.
//!
//! The engine keeps each container's output (its log driver); hifi follows
//! that stream with one small task per container and appends it to the same
//! file a local instance would write (`InstanceSpec::log`), after the usual
//! `==> hifi: starting` marker. A follower ends by itself when its container
//! ends. Followers belong to the [`DockerRuntime`](super::DockerRuntime)
//! that started them and are aborted when it is dropped, so two runtime
//! objects in one process never write the same lines twice.
//!
//! A restarted controller picks the output up again: the first time it asks
//! for the status of a running container that nobody in this process
//! follows, it follows it from the log file's last modification (to the
//! second: a few lines written in that second may appear twice, none are
//! lost). Whatever the engine kept can always be read with `docker logs`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

/// The follower tasks of one runtime, by container id.
#[derive(Debug, Default)]
pub(crate) struct Followers {
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Followers {
    /// Whether a live follower of container `id` exists.
    pub(crate) fn is_following(&self, id: &str) -> bool {
        self.tasks
            .lock()
            .map(|tasks| tasks.get(id).is_some_and(|task| !task.is_finished()))
            .unwrap_or(true)
    }

    /// Follows the output of container `id` from `since` (seconds since the
    /// epoch; 0 for all of it), appending it to `log`.
    pub(crate) fn follow(&self, docker: &Docker, id: &str, log: &Path, since: i64) {
        let Ok(mut tasks) = self.tasks.lock() else {
            return;
        };
        tasks.retain(|_, task| !task.is_finished());
        if tasks.contains_key(id) {
            return;
        }
        let task = tokio::spawn(follow(
            docker.clone(),
            id.to_owned(),
            log.to_path_buf(),
            since,
        ));
        tasks.insert(id.to_owned(), task);
    }

    /// Waits up to `limit` for the follower of `id` to write the last of the
    /// container's output (the container has ended, or is ending); aborts it
    /// after that.
    pub(crate) async fn finish(&self, id: &str, limit: Duration) {
        let task = self
            .tasks
            .lock()
            .ok()
            .and_then(|mut tasks| tasks.remove(id));
        if let Some(mut task) = task
            && tokio::time::timeout(limit, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for task in tasks.values() {
                task.abort();
            }
        }
    }
}

/// Appends the output of container `id` to `log` until it ends.
async fn follow(docker: Docker, id: String, log: PathBuf, since: i64) {
    let open = || {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        OpenOptions::new().create(true).append(true).open(&log)
    };
    let mut file = match open() {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(container = %id, log = %log.display(), "cannot append the container's output to its log: {e}");
            return;
        }
    };
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        since: i32::try_from(since).unwrap_or(0),
        ..Default::default()
    };
    // The request itself is answered at once; the body runs as long as the
    // container does, which no request timeout covers.
    let mut stream = docker.logs(&id, Some(options));
    while let Some(item) = stream.next().await {
        match item {
            Ok(output) => {
                if let Err(e) = file.write_all(output.as_ref()) {
                    tracing::warn!(container = %id, log = %log.display(), "cannot append the container's output to its log: {e}");
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(container = %id, "stopped following the container's output: {e}");
                return;
            }
        }
    }
}

/// When `log` was last written, in seconds since the epoch: where a
/// follower that takes over resumes. 0 (everything) if unknown.
pub(crate) fn resume_point(log: &Path) -> i64 {
    std::fs::metadata(log)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// The last `lines` lines the container wrote, as the engine kept them;
/// `None` if the engine cannot say.
pub(crate) async fn tail(docker: &Docker, id: &str, lines: usize) -> Option<String> {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: lines.to_string(),
        ..Default::default()
    };
    let mut stream = docker.logs(id, Some(options));
    let mut bytes = Vec::new();
    let read = async {
        while let Some(item) = stream.next().await {
            bytes.extend_from_slice(item.ok()?.as_ref());
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    Some(all[all.len().saturating_sub(lines)..].join("\n"))
}
