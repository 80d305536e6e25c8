//! The control plane's life: starting it (in the foreground, or detached in
//! the background), knowing whether it runs, and stopping everything hifi
//! started.
//!
//! `hifi up` holds an exclusive lock on `.hifi/up.lock` for its whole life,
//! which is how a second `hifi up` is refused and how `hifi down` knows a
//! control plane runs; the kernel drops the lock when the process dies, so a
//! killed control plane never leaves a stale "running" behind. Ctrl-C or
//! `hifi down` stop everything hifi started; a control plane that dies any
//! other way leaves traffic flowing, and the next `hifi up` re-adopts it.
//! These are local operations: they work on this machine's processes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hifi_controller::proxy_process::shell_quote;
use hifi_controller::{Controller, Options, ProxyLaunch, SystemClock};
use hifi_core::Layout;
use hifi_runtime::{Runtime, Runtimes};
use hifi_store::{Event, Store};

use crate::error::{Error, Result};
use crate::project::{Actor, Project};

/// The control plane's lock file, opened (not locked).
fn open_lock(layout: &Layout) -> Result<File> {
    let path = layout.up_lock();
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))
}

/// The pid of the running control plane, if one runs.
pub fn running(layout: &Layout) -> Option<u32> {
    let mut file = open_lock(layout).ok()?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(_) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            Some(text.trim().parse().unwrap_or(0))
        }
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("cannot start the async runtime: {e}")))
}

/// How the control plane runs `exe`'s proxy (`hifi proxy`) for this project.
fn options(layout: &Layout, exe: &Path) -> Options {
    let command = format!(
        "exec {} proxy --state-dir {} --admin {}",
        shell_quote(&exe.to_string_lossy()),
        shell_quote(&layout.proxy_tables().to_string_lossy()),
        shell_quote(&layout.proxy_socket().to_string_lossy()),
    );
    Options::new(layout.clone(), ProxyLaunch::managed(layout, command))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A service that runs beside the control plane for as long as it does
/// (the team server, the webhooks): called once the control plane holds
/// its lock, inside its async runtime, to bind what it needs and return
/// the work to run until the token is cancelled. An error stops `up`
/// before anything starts.
pub type Alongside = Box<
    dyn FnOnce(
            tokio_util::sync::CancellationToken,
        ) -> Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>
        + Send,
>;

/// How long services beside the control plane may take to stop.
const ALONGSIDE_STOP: Duration = Duration::from_secs(15);

/// A control plane started in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detached {
    /// Its pid.
    pub pid: u32,
    /// Its log.
    pub log: PathBuf,
}

/// What `down` stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// What was stopped, in a sentence.
    pub message: String,
}

impl Project {
    /// Runs the control plane in this process until Ctrl-C or SIGTERM:
    /// `on_ready` once every environment had its first pass, `on_event` for
    /// every event recorded meanwhile. `exe` is the hifi binary (it runs the
    /// proxy). `alongside` run beside it (see [`Alongside`]). On return,
    /// everything it started is stopped.
    ///
    /// An empty state database while `.hifi/` shows a previous run is
    /// refused (nothing would be known of what runs), unless `reset_state`:
    /// then what runs is stopped and forgotten first.
    pub fn up(
        &mut self,
        exe: &Path,
        reset_state: bool,
        alongside: Vec<Alongside>,
        on_pass: Option<hifi_controller::PassHook>,
        on_ready: impl FnOnce(),
        on_event: impl FnMut(&Event) + Send + 'static,
    ) -> Result<()> {
        let layout = &self.layout.clone();
        std::fs::create_dir_all(layout.logs())?;
        if let Some(pid) = running(layout) {
            return Err(Error::AlreadyRunning { pid });
        }
        let mut lock = open_lock(layout)?;
        if lock.try_lock().is_err() {
            return Err(Error::AlreadyRunning { pid: 0 });
        }
        lock.set_len(0)?;
        lock.rewind()?;
        write!(lock, "{}", std::process::id())?;
        lock.flush()?;
        let _ = std::fs::remove_file(layout.up_ready());

        let mut options = options(layout, exe);
        options.actor = format!("hifi up ({})", std::process::id());
        options.on_pass = on_pass;
        let tokio = tokio_runtime()?;
        if self.state_is_empty()? {
            let runtimes = Runtimes::with_project(layout, &self.config.name);
            runtimes.configure(&self.config);
            let found = tokio.block_on(crate::state::previous_run(layout, &runtimes));
            if !found.is_empty() {
                if !reset_state {
                    return Err(Error::StateLost {
                        db: layout.db(),
                        found,
                    });
                }
                self.reset_state(&tokio, &options, &runtimes, &found)?;
            }
        }
        let controller = Controller::new(
            options,
            Runtimes::with_project(layout, &self.config.name),
            SystemClock,
        )?;
        let ready_file = layout.up_ready();
        let db = layout.db();
        let stop = tokio_util::sync::CancellationToken::new();
        let beside = {
            let _entered = tokio.enter();
            alongside
                .into_iter()
                .map(|start| start(stop.clone()).map(|work| tokio.spawn(work)))
                .collect::<Result<Vec<_>>>()
        };
        let beside = match beside {
            Ok(beside) => beside,
            Err(e) => {
                stop.cancel();
                return Err(e);
            }
        };
        let result = tokio.block_on(async move {
            let follow = tokio::spawn(follow_events(db, on_event));
            let ready = move || {
                let _ = std::fs::write(&ready_file, std::process::id().to_string());
                on_ready();
            };
            let result = controller.run(ready, terminated()).await;
            follow.abort();
            stop.cancel();
            for task in beside {
                if tokio::time::timeout(ALONGSIDE_STOP, task).await.is_err() {
                    tracing::warn!("a service beside the control plane did not stop in time");
                }
            }
            result
        });
        let _ = std::fs::remove_file(layout.up_ready());
        drop(lock);
        Ok(result?)
    }

    /// `hifi up --reset-state`: stops what a forgotten run left running and
    /// removes its routing tables, so the control plane starts from nothing.
    fn reset_state(
        &mut self,
        tokio: &tokio::runtime::Runtime,
        options: &Options,
        runtimes: &Runtimes,
        found: &[String],
    ) -> Result<()> {
        let audit = Actor::local(options.actor.clone());
        let audit = self.audit(&audit);
        let stopped = tokio.block_on(hifi_controller::stop_everything(
            options,
            runtimes,
            runtimes.local(),
            audit.clone(),
            "hifi up --reset-state",
        ))?;
        if let Ok(entries) = std::fs::read_dir(self.layout.proxy_tables()) {
            for entry in entries.filter_map(|e| e.ok()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let message = format!(
            "the state was reset on purpose (found {}); stopped {}",
            found.join("; "),
            stopped.describe()
        );
        self.store.record_event(
            &audit,
            hifi_core::EventKind::StateReset,
            hifi_store::events::Subject::default(),
            &message,
        )?;
        Ok(())
    }

    /// Starts `exe up` in the background and returns once it is ready.
    pub fn up_detached(&self, exe: &Path, reset_state: bool) -> Result<Detached> {
        let layout = &self.layout;
        std::fs::create_dir_all(layout.logs())?;
        if let Some(pid) = running(layout) {
            return Err(Error::AlreadyRunning { pid });
        }
        let log_path = layout.hifi_log();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let _ = std::fs::remove_file(layout.up_ready());
        let mut child = std::process::Command::new(exe);
        use std::os::unix::process::CommandExt;
        child.arg("-C").arg(layout.root()).arg("up");
        if reset_state {
            child.arg("--reset-state");
        }
        child
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: Ctrl-C in this terminal must not reach it.
            .process_group(0);
        let mut child = child
            .spawn()
            .map_err(|e| Error::Io(format!("cannot start hifi in the background: {e}")))?;
        let started = Instant::now();
        loop {
            if let Ok(pid) = std::fs::read_to_string(layout.up_ready())
                && pid.trim() == child.id().to_string()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(Error::Io(format!(
                    "hifi stopped while starting ({status}); last lines of {}:\n  {}",
                    log_path.display(),
                    tail.join("\n  ")
                )));
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(Error::Io(format!(
                    "hifi did not get ready within 120 s (pid {}); see {}; stop it with `hifi down`",
                    child.id(),
                    log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Detached {
            pid: child.id(),
            log: log_path,
        })
    }

    /// Stops the running control plane (which stops everything it started),
    /// or, when none runs, what a killed one left running.
    pub fn down(&mut self, actor: &Actor, exe: &Path) -> Result<Stopped> {
        let layout = self.layout.clone();
        let mut lock = open_lock(&layout)?;
        if lock.try_lock().is_err() {
            drop(lock);
            if let Some(stopped) = self.stop_control_plane()? {
                return Ok(stopped);
            }
            // It stopped by itself meanwhile: stop what it may have left.
            lock = open_lock(&layout)?;
            if lock.try_lock().is_err() {
                return Err(Error::AlreadyRunning { pid: 0 });
            }
        }
        // No control plane, and holding its lock no `hifi up` can start while
        // we stop what a killed one left running — what the store records,
        // and what the runtime finds by its own records.
        let options = options(&layout, exe);
        let runtimes = Runtimes::with_project(&layout, &self.config.name);
        runtimes.configure(&self.config);
        let tokio = tokio_runtime()?;
        let recorded = self.store.instances(None)?.len();
        let found = tokio
            .block_on(runtimes.discover())
            .map_err(hifi_controller::Error::from)?
            .len();
        if recorded == 0 && found == 0 && !options.proxy.alive(runtimes.local()) {
            return Err(Error::NothingToStop);
        }
        let audit = self.audit(actor);
        let stopped = tokio.block_on(hifi_controller::stop_everything(
            &options,
            &runtimes,
            runtimes.local(),
            audit,
            "hifi down",
        ))?;
        drop(lock);
        Ok(Stopped {
            message: format!(
                "stopped {} left by a control plane that is gone",
                stopped.describe()
            ),
        })
    }

    /// Signals the control plane holding the lock and waits for it to stop;
    /// `None` if it stopped by itself meanwhile.
    fn stop_control_plane(&mut self) -> Result<Option<Stopped>> {
        let layout = &self.layout;
        // One that has just started may not have written its pid yet.
        let started = Instant::now();
        let pid = loop {
            match running(layout) {
                Some(pid) if pid > 0 => break pid,
                None => return Ok(None),
                Some(_) if started.elapsed() > Duration::from_secs(5) => {
                    return Err(Error::Io(format!(
                        "{} is locked but holds no pid",
                        layout.up_lock().display()
                    )));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let target = rustix::process::Pid::from_raw(pid as i32)
            .ok_or_else(|| Error::Io(format!("{} holds no pid", layout.up_lock().display())))?;
        rustix::process::kill_process(target, rustix::process::Signal::TERM)
            .map_err(|e| Error::Io(format!("cannot signal hifi (pid {pid}): {e}")))?;
        let started = Instant::now();
        while running(layout).is_some() {
            if started.elapsed() > Duration::from_secs(90) {
                return Err(Error::Io(format!(
                    "hifi (pid {pid}) did not stop within 90 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Its lock is released just before it exits: wait for the exit
        // itself, so "stopped" means no hifi process is left.
        let exiting = Instant::now();
        while !exited(pid) {
            if exiting.elapsed() > Duration::from_secs(10) {
                return Err(Error::Io(format!(
                    "hifi (pid {pid}) released its lock but did not exit within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(Stopped {
            message: format!("stopped hifi (pid {pid}) and everything it started"),
        }))
    }
}

/// Whether process `pid` has exited: it is gone, or a zombie waiting for a
/// parent that may never reap it.
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|state| matches!(state, 'Z' | 'X' | 'x'))
    })
}

/// Hands every event recorded from now on to `on_event`: the foreground log
/// of `hifi up`.
async fn follow_events(db: PathBuf, mut on_event: impl FnMut(&Event)) {
    let Ok(store) = Store::open(&db) else { return };
    let mut last = store.last_event_seq().unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(events) = store.events_after(last, 100) else {
            continue;
        };
        for e in events {
            last = e.seq;
            on_event(&e);
        }
    }
}
