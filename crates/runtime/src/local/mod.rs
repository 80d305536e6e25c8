//! [`LocalRuntime`]: each instance is a child process on this machine.
//!
//! An instance is `sh -c <command>` in its own session (and so its own
//! process group), with stdin from `/dev/null` and stdout and stderr
//! appended to its log file. Nothing ties its life to the controller's (no pipes, no parent-death signal, no
//! kill-on-drop), so traffic survives a controller crash and a restarted
//! controller re-adopts instances from their [`Instance`] records.
//!
//! Identity is pid + start time + boot id (see `id.rs`), checked against
//! `/proc` before anything is signalled, so a reused pid is never mistaken
//! for an instance. Children spawned by this process are reaped by a small
//! task each, which also keeps their exact exit status for error messages.

mod id;
pub(crate) mod logfile;
pub(crate) mod procfs;
mod workdir;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, Signal};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use hifi_core::{Protocol, RuntimeKind};

use self::id::LocalId;
use crate::error::{Error, Result};
use crate::instance::{Instance, InstanceId, InstanceSpec, InstanceStatus, Program};
use crate::{Runtime, choose_port, probe};

/// A process of hifi's own (or a service instance's), as the local runtime
/// spawns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// How errors and logs name it: `service catalog (dev/green)`, `the proxy`.
    pub name: String,
    /// Run with `sh -c`.
    pub command: String,
    /// Its working directory.
    pub workdir: PathBuf,
    /// Its environment, on top of hifi's own.
    pub vars: BTreeMap<String, String>,
    /// Receives its stdout and stderr (appended; parent directories created).
    pub log: PathBuf,
    /// The line written to the log before this start.
    pub banner: String,
}

/// Lines of the log quoted when an instance dies before becoming healthy.
const TAIL_LINES: usize = 15;
/// After SIGKILL the kernel needs only moments; longer means the process is
/// stuck in uninterruptible sleep.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long to wait for the reaper task to deliver an exit status the kernel
/// already has.
const REAP_WAIT: Duration = Duration::from_secs(1);
/// Exit records of children kept before finished ones are dropped (their
/// status then comes from `/proc`, without the code).
const MAX_REMEMBERED: usize = 256;

/// Runs instances as local child processes; see the [module docs](self).
///
/// Cheap to create. Any number of `LocalRuntime`s (in this or a later
/// process) can manage the same instances; only the one that spawned an
/// instance knows its exact exit code.
#[derive(Debug)]
pub struct LocalRuntime {
    boot_id: String,
    /// Where a record of each instance it starts is kept until it stops.
    records: Option<PathBuf>,
    /// Exit status of the children this runtime spawned, filled in by their
    /// reaper tasks.
    children: Mutex<HashMap<LocalId, watch::Receiver<Option<InstanceStatus>>>>,
}

impl Default for LocalRuntime {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/proc` says about an instance's leading process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leader {
    Alive,
    /// Finished, not yet reaped.
    Zombie,
    /// No process has the pid. Members of its group may still run.
    Vanished,
    /// The pid now names another process, or the machine rebooted. The
    /// kernel does not reuse a pid while a group of that id exists, so the
    /// instance's group is certainly empty.
    Replaced,
}

impl LocalRuntime {
    /// A runtime for this machine, keeping no records.
    pub fn new() -> Self {
        Self {
            boot_id: procfs::boot_id(),
            records: None,
            children: Mutex::new(HashMap::new()),
        }
    }

    /// A runtime that keeps a record of each instance it starts in
    /// `dir` (removed when it stops), so [`Runtime::discover`] finds what
    /// runs even when nothing else remembers it.
    pub fn with_records(dir: PathBuf) -> Self {
        Self {
            records: Some(dir),
            ..Self::new()
        }
    }

    fn record_path(&self, id: &InstanceId) -> Option<PathBuf> {
        let dir = self.records.as_ref()?;
        Some(dir.join(format!("{}.json", id.as_str().replace(':', "-"))))
    }

    /// Writes the record of a started instance (temp file + rename).
    fn write_record(&self, instance: &Instance) -> Result<()> {
        let Some(path) = self.record_path(&instance.id) else {
            return Ok(());
        };
        let io = |e: std::io::Error| Error::Log {
            instance: instance.describe(),
            path: path.clone(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string(instance).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io)
    }

    fn local_id(&self, name: &str, id: &InstanceId) -> Result<LocalId> {
        LocalId::parse(id).ok_or_else(|| Error::ForeignId {
            instance: name.to_string(),
            id: id.clone(),
            runtime: RuntimeKind::Local,
        })
    }

    /// Spawns `spec` in its own session and process group, its output appended to its
    /// log, and returns its identity. Used for service instances and for
    /// hifi's own processes (the proxy).
    pub async fn spawn(&self, spec: &ProcessSpec) -> Result<InstanceId> {
        if !spec.workdir.is_dir() {
            return Err(Error::Workdir {
                instance: spec.name.clone(),
                workdir: spec.workdir.clone(),
            });
        }
        let log_error = |source| Error::Log {
            instance: spec.name.clone(),
            path: spec.log.clone(),
            source,
        };
        // Files, not pipes: a pipe would break (SIGPIPE) when the controller
        // dies, taking the instance with it.
        let stdout = logfile::open(&spec.log, &spec.banner).map_err(log_error)?;
        let stderr = stdout.try_clone().map_err(log_error)?;

        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.workdir)
            .envs(&spec.vars)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(false);
        // Its own session, and so its own process group: stop reaches `sh`,
        // the service and anything it forks, while a Ctrl-C or a hangup on
        // the controller's terminal does not. Where the kernel groups
        // sessions for CPU fairness (autogroup), it also gets a share of
        // its own instead of splitting one with whatever else runs in the
        // terminal that started hifi.
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before exec, where
        // only async-signal-safe calls are allowed; setsid(2) is one system
        // call, it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(|| {
                rustix::process::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let spawn_error = |source| Error::Spawn {
            instance: spec.name.clone(),
            command: spec.command.clone(),
            workdir: spec.workdir.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        // Linux pids fit in an i32, which signalling needs.
        let pid = child
            .id()
            .filter(|pid| i32::try_from(*pid).is_ok())
            .ok_or_else(|| spawn_error(std::io::Error::other("the child has no pid")))?;

        // Until it is waited for, the child stays in /proc (at worst as a
        // zombie), so its start time can always be read here.
        let start_time = match procfs::stat(pid) {
            Ok(Some(stat)) => stat.start_time,
            failed => {
                // Without an identity it could never be found and stopped
                // safely later, so it must not be left running.
                if let Some(group) = Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process_group(group, Signal::KILL);
                }
                return Err(Error::Identify {
                    instance: spec.name.clone(),
                    pid,
                    source: failed
                        .err()
                        .unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
                });
            }
        };
        let id = LocalId {
            pid,
            start_time,
            boot: self.boot_id.clone(),
        };

        let (tx, rx) = watch::channel(None);
        // Reaps the child as soon as it exits, so no zombies pile up, and
        // keeps the exit status for `status` and `wait_healthy`.
        tokio::spawn(async move {
            tx.send_replace(Some(exit_status(child.wait().await)));
        });
        self.remember(id.clone(), rx);
        tracing::info!(process = %spec.name, pid, "started");
        Ok(id.to_id())
    }

    /// Whether a process this runtime (in this or an earlier controller)
    /// spawned still runs.
    pub fn process_status(&self, id: &InstanceId) -> InstanceStatus {
        let Some(id) = LocalId::parse(id) else {
            return InstanceStatus::Unknown;
        };
        if let Some(status) = self.exit_watch(&id).and_then(|rx| *rx.borrow()) {
            return status;
        }
        match self.leader(&id) {
            Ok(Leader::Alive) => InstanceStatus::Running,
            Ok(Leader::Zombie | Leader::Vanished | Leader::Replaced) => InstanceStatus::Exited {
                code: None,
                signal: None,
            },
            Err(_) => InstanceStatus::Unknown,
        }
    }

    /// Stops the process group of `id` (named `name` in errors): SIGTERM,
    /// `grace`, then SIGKILL. A process already gone is not an error.
    pub async fn stop_process(&self, name: &str, id: &InstanceId, grace: Duration) -> Result<()> {
        let id = self.local_id(name, id)?;
        let pgid = id.pgid();
        // When /proc cannot be read, still try: the group id cannot have been
        // reused while the group exists.
        if self
            .leader(&id)
            .is_ok_and(|leader| leader == Leader::Replaced)
        {
            return Ok(());
        }
        if self.signal_group(name, pgid, Signal::TERM)? && !Self::wait_group_gone(pgid, grace).await
        {
            tracing::warn!(process = %name, ?grace, "still running after SIGTERM; sending SIGKILL");
            if self.signal_group(name, pgid, Signal::KILL)?
                && !Self::wait_group_gone(pgid, KILL_WAIT).await
            {
                return Err(Error::StillRunning {
                    instance: name.to_string(),
                    pgid,
                });
            }
        }
        // Let our reaper record how it ended, so `status` can tell.
        if let Some(mut rx) = self.exit_watch(&id) {
            let _ = timeout(REAP_WAIT, rx.wait_for(Option::is_some)).await;
        }
        tracing::info!(process = %name, "stopped");
        Ok(())
    }

    fn leader(&self, id: &LocalId) -> std::io::Result<Leader> {
        // An empty boot id means the kernel did not tell us; compare only
        // when both sides know.
        if !id.boot.is_empty() && !self.boot_id.is_empty() && id.boot != self.boot_id {
            return Ok(Leader::Replaced);
        }
        Ok(match procfs::stat(id.pid)? {
            None => Leader::Vanished,
            Some(stat) if stat.start_time != id.start_time => Leader::Replaced,
            Some(stat) if stat.is_dead() && !procfs::has_live_threads(id.pid) => Leader::Zombie,
            Some(_) => Leader::Alive,
        })
    }

    fn exit_watch(&self, id: &LocalId) -> Option<watch::Receiver<Option<InstanceStatus>>> {
        self.children.lock().ok()?.get(id).cloned()
    }

    /// `Some(how)` once the instance has finished. For our own children,
    /// waits briefly for the reaper so the exit code can be reported.
    async fn finished(
        &self,
        id: &LocalId,
        exit: Option<&mut watch::Receiver<Option<InstanceStatus>>>,
    ) -> Option<InstanceStatus> {
        if let Some(status) = exit.as_ref().and_then(|rx| *rx.borrow()) {
            return Some(status);
        }
        match self.leader(id) {
            Ok(Leader::Alive) | Err(_) => None,
            Ok(_) => {
                let unknown = InstanceStatus::Exited {
                    code: None,
                    signal: None,
                };
                let Some(rx) = exit else {
                    return Some(unknown);
                };
                match timeout(REAP_WAIT, rx.wait_for(Option::is_some)).await {
                    Ok(Ok(status)) => Some(status.unwrap_or(unknown)),
                    _ => Some(unknown),
                }
            }
        }
    }

    /// Whether the socket listening on `port` belongs to the instance's
    /// process group. Guards against counting another program's answers as
    /// the instance's health when the instance could not bind its port.
    /// Anything unreadable counts as "yes": this check must never fail a
    /// healthy instance.
    fn owns_port(&self, id: &LocalId, port: u16) -> bool {
        let Ok(inodes) = procfs::listening_inodes(port) else {
            return true;
        };
        if inodes.is_empty() {
            // E.g. the listener is in another network namespace.
            return true;
        }
        let Ok(members) = procfs::live_group_members(id.pgid()) else {
            return true;
        };
        members.into_iter().any(|pid| {
            match procfs::holds_socket(pid, &inodes) {
                Ok(held) => held,
                // A member that vanished mid-scan holds nothing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(_) => true,
            }
        })
    }

    /// Sends `signal` to the group; `false` if the group no longer exists.
    fn signal_group(&self, name: &str, pgid: i32, signal: Signal) -> Result<bool> {
        // Signalling our own group would take the controller down with it.
        if pgid == rustix::process::getpgrp().as_raw_nonzero().get() {
            return Ok(false);
        }
        let Some(pid) = Pid::from_raw(pgid) else {
            return Ok(false);
        };
        match rustix::process::kill_process_group(pid, signal) {
            Ok(()) => Ok(true),
            Err(Errno::SRCH) => Ok(false),
            Err(e) => Err(Error::Signal {
                instance: name.to_string(),
                signal: if signal == Signal::KILL {
                    "SIGKILL"
                } else {
                    "SIGTERM"
                },
                pgid,
                source: e.into(),
            }),
        }
    }

    /// Polls until no live process is left in the group, or `limit` passes.
    async fn wait_group_gone(pgid: i32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut interval = Duration::from_millis(5);
        loop {
            if group_gone(pgid) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(Duration::from_millis(100));
        }
    }

    fn remember(&self, id: LocalId, exit: watch::Receiver<Option<InstanceStatus>>) {
        let Ok(mut children) = self.children.lock() else {
            return;
        };
        if children.len() >= MAX_REMEMBERED {
            children.retain(|_, rx| rx.borrow().is_none());
        }
        children.insert(id, exit);
    }
}

/// No live (non-zombie) process is left in group `pgid`.
fn group_gone(pgid: i32) -> bool {
    let Some(pid) = Pid::from_raw(pgid) else {
        return true;
    };
    match rustix::process::test_kill_process_group(pid) {
        Err(Errno::SRCH) => true,
        // The group exists, but maybe only as zombies that nobody reaps yet.
        Ok(()) => procfs::live_group_members(pgid).is_ok_and(|members| members.is_empty()),
        Err(_) => false,
    }
}

fn exit_status(status: std::io::Result<ExitStatus>) -> InstanceStatus {
    match status {
        Ok(status) => InstanceStatus::Exited {
            code: status.code(),
            signal: status.signal(),
        },
        Err(_) => InstanceStatus::Exited {
            code: None,
            signal: None,
        },
    }
}

impl Runtime for LocalRuntime {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance> {
        let Program::Command {
            command,
            workdir,
            artifact,
        } = &spec.program
        else {
            return Err(Error::Unsupported {
                instance: spec.describe(),
                what: spec.program.describe(),
            });
        };
        if let Some(artifact) = artifact {
            let (from, to) = (artifact.clone(), workdir.clone());
            tokio::task::spawn_blocking(move || workdir::link_copy(&from, &to))
                .await
                .map_err(std::io::Error::other)
                .and_then(|done| done)
                .map_err(|source| Error::LinkedWorkdir {
                    instance: spec.describe(),
                    workdir: workdir.clone(),
                    source,
                })?;
        }
        let port = choose_port(spec.port, &spec.reserved_ports)?;
        let name = spec.describe();
        let process = ProcessSpec {
            banner: format!(
                "{name} release {} on port {port}: sh -c {command:?}",
                spec.release
            ),
            name,
            command: command.clone(),
            workdir: workdir.clone(),
            // PORT is set after the vars, so they cannot override it by accident.
            vars: spec
                .vars
                .clone()
                .into_iter()
                .chain([("PORT".to_string(), port.to_string())])
                .collect(),
            log: spec.log.clone(),
        };
        let id = self.spawn(&process).await?;
        let instance = Instance {
            id,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            env: spec.env.clone(),
            slot: spec.slot,
            service: spec.service.clone(),
            replica: spec.replica,
            release: spec.release.clone(),
            runtime: RuntimeKind::Local,
        };
        if let Err(e) = self.write_record(&instance) {
            // Unrecorded, it could be lost with the store: do not keep it.
            let _ = self
                .stop_process(&instance.describe(), &instance.id, Duration::ZERO)
                .await;
            return Err(e);
        }
        Ok(instance)
    }

    async fn wait_healthy(
        &self,
        spec: &InstanceSpec,
        instance: &Instance,
        timeout: Duration,
    ) -> Result<()> {
        let id = self.local_id(&instance.describe(), &instance.id)?;
        let exit = self.exit_watch(&id);
        let mut watched = Watched {
            runtime: self,
            id,
            exit,
            log: &spec.log,
        };
        probe::until_healthy(spec, instance, timeout, &mut watched).await
    }

    async fn status(&self, instance: &Instance) -> InstanceStatus {
        self.process_status(&instance.id)
    }

    async fn probe(
        &self,
        instance: &Instance,
        path: &str,
        protocol: Protocol,
        timeout: Duration,
    ) -> Result<u16> {
        probe::once(instance, path, protocol, timeout).await
    }

    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<()> {
        self.stop_process(&instance.describe(), &instance.id, grace)
            .await?;
        if let Some(path) = self.record_path(&instance.id) {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    async fn discover(&self) -> Result<Vec<Instance>> {
        let Some(dir) = &self.records else {
            return Ok(Vec::new());
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Log {
                    instance: "the local runtime's records".into(),
                    path: dir.clone(),
                    source: e,
                });
            }
        };
        let mut found = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Some(instance) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| serde_json::from_str::<Instance>(&text).ok())
            else {
                continue;
            };
            if self.process_status(&instance.id).is_running() {
                found.push(instance);
            } else {
                // It ended without hifi: the record is of nothing now.
                let _ = std::fs::remove_file(&path);
            }
        }
        found.sort_by(|a, b| (&a.env, a.slot, &a.service).cmp(&(&b.env, b.slot, &b.service)));
        Ok(found)
    }
}

/// A local instance as [`probe::until_healthy`] watches it: its process
/// group, and the reaper's word on our own children.
struct Watched<'a> {
    runtime: &'a LocalRuntime,
    id: LocalId,
    exit: Option<watch::Receiver<Option<InstanceStatus>>>,
    log: &'a std::path::Path,
}

impl probe::Watched for Watched<'_> {
    async fn ended(&mut self) -> Option<(InstanceStatus, String)> {
        let status = self.runtime.finished(&self.id, self.exit.as_mut()).await?;
        Some((status, logfile::tail(self.log, TAIL_LINES)))
    }

    async fn owns_port(&mut self, port: u16) -> bool {
        self.runtime.owns_port(&self.id, port)
    }

    async fn pause(&mut self, pause: Duration) {
        match self.exit.as_mut() {
            // Wake at once when our child dies: fail fast.
            Some(rx) => tokio::select! {
                Ok(()) = rx.changed() => {}
                () = sleep(pause) => {}
            },
            None => sleep(pause).await,
        }
    }
}
