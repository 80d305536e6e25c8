//! `hifi up`, `hifi down` and `hifi proxy`: the processes of hifi.
//!
//! `hifi up` holds an exclusive lock on `.hifi/up.lock` for its whole life,
//! which is how a second `hifi up` is refused and how `hifi down` knows a
//! control plane runs; the kernel drops the lock when the process dies, so
//! a killed control plane never leaves a stale "running" behind. Ctrl-C or
//! `hifi down` stop everything hifi started; a control plane that dies any
//! other way leaves traffic flowing, and the next `hifi up` re-adopts it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hifi_controller::proxy_process::shell_quote;
use hifi_controller::{Controller, Options, ProxyLaunch, SystemClock};
use hifi_runtime::LocalRuntime;
use hifi_store::Store;

use super::Output;
use crate::cli::ProxyArgs;
use crate::error::{Failure, Result};
use crate::output::{self, timestamp};
use crate::project::{Project, STATE_DIR, now_ms};

const LOCK: &str = "up.lock";
const READY: &str = "up.ready";

/// The control plane's lock file, opened (not locked).
fn open_lock(state: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(state.join(LOCK))
        .map_err(|e| Failure::refused(format!("cannot open {}: {e}", state.join(LOCK).display())))
}

/// The pid of the running control plane, if one runs.
pub fn running(state: &Path) -> Option<u32> {
    let mut file = open_lock(state).ok()?;
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::refused(format!("cannot start the async runtime: {e}")))
}

/// How the control plane starts the proxy: this same binary, `hifi proxy`.
fn options(root: &Path) -> Result<Options> {
    let state = root.join(STATE_DIR);
    let exe = std::env::current_exe()
        .map_err(|e| Failure::refused(format!("cannot find the hifi binary: {e}")))?;
    let admin = state.join("proxy.sock");
    let command = format!(
        "exec {} proxy --state-dir {} --admin {}",
        shell_quote(&exe.to_string_lossy()),
        shell_quote(&state.join("proxy").to_string_lossy()),
        shell_quote(&admin.to_string_lossy()),
    );
    let launch = ProxyLaunch {
        managed: true,
        command,
        workdir: root.to_path_buf(),
        admin,
        record: state.join("proxy.json"),
        log: state.join("logs/proxy.log"),
    };
    Ok(Options::new(root.to_path_buf(), launch))
}

async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `hifi up [--detach]`.
pub fn up(project: &Project, detach: bool, out: Output) -> Result {
    let state = project.state_dir();
    std::fs::create_dir_all(state.join("logs"))?;
    if let Some(pid) = running(&state) {
        return Err(
            Failure::refused(format!("hifi is already running here (pid {pid})"))
                .hint("stop it with `hifi down`, or see what it does with `hifi status`"),
        );
    }
    if detach {
        return up_detached(project, &state, out);
    }
    let mut lock = open_lock(&state)?;
    if lock.try_lock().is_err() {
        return Err(
            Failure::refused("hifi is already running here").hint("stop it with `hifi down`")
        );
    }
    lock.set_len(0)?;
    lock.rewind()?;
    write!(lock, "{}", std::process::id())?;
    lock.flush()?;
    let _ = std::fs::remove_file(state.join(READY));

    let mut options = options(project.root())?;
    options.actor = format!("hifi up ({})", std::process::id());
    let controller = Controller::new(options, LocalRuntime::new(), SystemClock)
        .map_err(|e| Failure::refused(e.to_string()))?;
    let envs: Vec<(String, u16)> = project
        .config
        .environments
        .iter()
        .map(|e| (e.name.clone(), e.port))
        .collect();
    let ready_file = state.join(READY);
    let db = state.join("state.db");
    let json = out.json;
    let result = runtime()?.block_on(async move {
        let follow = tokio::spawn(follow_events(db));
        let ready = move || {
            let _ = std::fs::write(&ready_file, std::process::id().to_string());
            if !json {
                eprintln!("hifi is up. Environments:");
                for (env, port) in &envs {
                    eprintln!("  {env:<10} http://127.0.0.1:{port}/");
                }
                eprintln!("Ctrl-C or `hifi down` stops everything.");
            }
        };
        let result = controller.run(ready, terminated()).await;
        follow.abort();
        result
    });
    let _ = std::fs::remove_file(state.join(READY));
    result.map_err(|e| Failure::refused(e.to_string()))?;
    if !out.json {
        eprintln!("hifi stopped; every process it started is gone.");
    }
    Ok(())
}

/// Prints the audit log as it grows: the foreground log of `hifi up`.
async fn follow_events(db: PathBuf) {
    let Ok(store) = Store::open(&db) else { return };
    let mut last = store.last_event_seq().unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(events) = store.events_after(last, 100) else {
            continue;
        };
        for e in events {
            last = e.seq;
            let env = e.env.as_deref().unwrap_or("-");
            eprintln!("{} {env:<8} {}", &timestamp(e.at)[11..], e.message);
        }
    }
}

fn up_detached(project: &Project, state: &Path, out: Output) -> Result {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::refused(format!("cannot find the hifi binary: {e}")))?;
    let log_path = state.join("logs/hifi.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let _ = std::fs::remove_file(state.join(READY));
    let mut child = std::process::Command::new(exe);
    use std::os::unix::process::CommandExt;
    child
        .arg("-C")
        .arg(project.root())
        .arg("up")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: Ctrl-C in this terminal must not reach it.
        .process_group(0);
    let mut child = child
        .spawn()
        .map_err(|e| Failure::refused(format!("cannot start hifi in the background: {e}")))?;
    let started = Instant::now();
    loop {
        if let Ok(pid) = std::fs::read_to_string(state.join(READY))
            && pid.trim() == child.id().to_string()
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(Failure::refused(format!(
                "hifi stopped while starting ({status}); last lines of {}:\n  {}",
                log_path.display(),
                tail.join("\n  ")
            )));
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(Failure::refused(format!(
                "hifi did not get ready within 120 s (pid {}); see {}",
                child.id(),
                log_path.display()
            ))
            .hint("stop it with `hifi down`"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if out.json {
        output::json(&serde_json::json!({ "pid": child.id(), "log": log_path }));
    } else {
        println!(
            "hifi is up in the background (pid {}); log: {}",
            child.id(),
            log_path.display()
        );
        for env in &project.config.environments {
            println!("  {:<10} http://127.0.0.1:{}/", env.name, env.port);
        }
        println!("Stop it with `hifi down`.");
    }
    Ok(())
}

/// `hifi down`.
pub fn down(project: &Project, out: Output) -> Result {
    let state = project.state_dir();
    let lock = open_lock(&state)?;
    if lock.try_lock().is_err() {
        // A control plane holds the lock; one that has just started may not
        // have written its pid yet.
        let started = Instant::now();
        let pid = loop {
            match running(&state) {
                Some(pid) if pid > 0 => break pid,
                None => {
                    // It stopped meanwhile: start over.
                    drop(lock);
                    return down(project, out);
                }
                Some(_) if started.elapsed() > Duration::from_secs(5) => {
                    return Err(Failure::refused(format!(
                        "{} is locked but holds no pid",
                        state.join(LOCK).display()
                    )));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let target = rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| {
            Failure::refused(format!("{} holds no pid", state.join(LOCK).display()))
        })?;
        rustix::process::kill_process(target, rustix::process::Signal::TERM)
            .map_err(|e| Failure::refused(format!("cannot signal hifi (pid {pid}): {e}")))?;
        let started = Instant::now();
        while running(&state).is_some() {
            if started.elapsed() > Duration::from_secs(90) {
                return Err(Failure::refused(format!(
                    "hifi (pid {pid}) did not stop within 90 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        report_down(
            out,
            &format!("stopped hifi (pid {pid}) and everything it started"),
        );
        return Ok(());
    }
    // No control plane, and holding its lock no `hifi up` can start while
    // we stop what a killed one left running.
    let leftovers = project.store.instances(None)?.len();
    let options = options(project.root())?;
    let runtime_ = LocalRuntime::new();
    let proxy_alive = options.proxy.alive(&runtime_);
    if leftovers == 0 && !proxy_alive {
        return Err(
            Failure::refused("hifi is not running here; there is nothing to stop")
                .hint("start it with `hifi up`"),
        );
    }
    let audit = project.audit();
    runtime()?
        .block_on(hifi_controller::stop_everything(
            &options,
            &runtime_,
            audit,
            "hifi down",
        ))
        .map_err(|e| Failure::refused(e.to_string()))?;
    report_down(
        out,
        &format!(
            "stopped {leftovers} instance(s){} left by a control plane that is gone",
            if proxy_alive { " and the proxy" } else { "" }
        ),
    );
    Ok(())
}

fn report_down(out: Output, message: &str) {
    if out.json {
        output::json(&serde_json::json!({ "stopped": true, "message": message, "at": now_ms() }));
    } else {
        println!("{message}.");
    }
}

/// `hifi proxy`: the data plane in the foreground.
pub fn proxy(dir: &Path, args: ProxyArgs) -> Result {
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| dir.join(STATE_DIR).join("proxy"));
    let admin = args
        .admin
        .unwrap_or_else(|| dir.join(STATE_DIR).join("proxy.sock"));
    std::fs::create_dir_all(&state_dir)?;
    let mut options = hifi_proxy::ProxyOptions::new(state_dir, hifi_proxy::AdminAddr::unix(admin));
    if let Some(workers) = args.workers {
        options.workers = workers;
    }
    // With worker threads serving the connections, this runtime only
    // accepts, answers the admin socket and runs health checks.
    let runtime = if options.workers > 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::refused(format!("cannot start the async runtime: {e}")))?
    } else {
        runtime()?
    };
    runtime
        .block_on(hifi_proxy::serve(options, terminated()))
        .map_err(|e| Failure::refused(format!("the proxy stopped: {e}")))
}
