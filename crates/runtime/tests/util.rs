//! Test helpers: a tiny python3 HTTP service in a temp dir, specs for it,
//! and `/proc` readers to check processes independently of the runtime.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hifi_core::{ReleaseId, RuntimeKind, Slot};
use hifi_runtime::{Instance, InstanceId, InstanceSpec, Port, Program, free_port};
use rustix::process::{Pid, Signal, kill_process_group};
use tempfile::TempDir;
use tokio::time::{Instant, sleep};

/// Health and test service: answers `/healthz` 200 (503 with
/// `MODE=unhealthy`), prints its environment to stdout, reacts to SIGTERM
/// visibly and can fork a grandchild.
const APP: &str = r#"
import os, signal, subprocess
from http.server import BaseHTTPRequestHandler, HTTPServer

port = int(os.environ["PORT"])
mode = os.environ.get("MODE", "healthy")
print(f"greeting={os.environ.get('GREETING')} port={port}", flush=True)

def on_term(signum, frame):
    if os.environ.get("IGNORE_TERM"):
        print("ignoring SIGTERM", flush=True)
        return
    print("got SIGTERM", flush=True)
    os._exit(0)

signal.signal(signal.SIGTERM, on_term)

pidfile = os.environ.get("GRANDCHILD_PIDFILE")
if pidfile:
    # sh is python's child, sleep is python's grandchild.
    subprocess.Popen(["sh", "-c", 'sleep 600 & echo $! > "$0.tmp" && mv "$0.tmp" "$0"; wait', pidfile])

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        ok = self.path == "/healthz" and mode == "healthy"
        body = b"ok\n" if ok else b"not ok\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

/// Generous bound for anything that should take well under a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A temp project with the app in `artifact/`; kills every instance it
/// handed out a spec for when dropped, so a failing test leaks no process.
pub struct Fixture {
    pub dir: TempDir,
    started: Mutex<Vec<Instance>>,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("artifact")).unwrap();
        fs::write(dir.path().join("artifact/app.py"), APP).unwrap();
        Self {
            dir,
            started: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A spec for `service` in dev/green running the app on a free port.
    pub fn spec(&self, service: &str) -> InstanceSpec {
        InstanceSpec {
            env: "dev".into(),
            slot: Slot::Green,
            service: service.into(),
            replica: 0,
            replicas: 1,
            release: ReleaseId::compute("r1", &[]),
            runtime: RuntimeKind::Local,
            program: Program::Command {
                command: "python3 app.py".into(),
                workdir: self.path("artifact"),
                artifact: None,
            },
            port: Port::Fixed(free_port().unwrap()),
            reserved_ports: Default::default(),
            vars: BTreeMap::from([("GREETING".into(), "hello-from-vars".into())]),
            secret_vars: Default::default(),
            log: self.path(&format!("logs/dev/green/{service}.log")),
            health_path: "/healthz".into(),
            protocol: hifi_core::Protocol::Http1,
        }
    }
}

impl Fixture {
    /// [`Fixture::spec`] running `command` instead of the app.
    pub fn spec_running(&self, service: &str, command: &str) -> InstanceSpec {
        InstanceSpec {
            program: Program::Command {
                command: command.into(),
                workdir: self.path("artifact"),
                artifact: None,
            },
            ..self.spec(service)
        }
    }

    /// [`Fixture::spec`] run in `workdir`.
    pub fn spec_in(&self, service: &str, workdir: PathBuf) -> InstanceSpec {
        InstanceSpec {
            program: Program::Command {
                command: "python3 app.py".into(),
                workdir,
                artifact: None,
            },
            ..self.spec(service)
        }
    }
}

/// The port a spec made by [`Fixture::spec`] fixes.
pub fn port_of(spec: &InstanceSpec) -> u16 {
    match spec.port {
        Port::Fixed(port) => port,
        other => panic!("not a fixed port: {other:?}"),
    }
}

/// The working directory of a spec made by [`Fixture::spec`].
pub fn workdir_of(spec: &InstanceSpec) -> &Path {
    match &spec.program {
        Program::Command { workdir, .. } => workdir,
        other => panic!("not a command: {other:?}"),
    }
}

impl Fixture {
    /// Registers `instance` for cleanup and returns it.
    pub fn track(&self, instance: Instance) -> Instance {
        self.started.lock().unwrap().push(instance.clone());
        instance
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for instance in self.started.lock().unwrap().iter() {
            let (pid, start) = id_parts(&instance.id);
            if start_time(pid) == Some(start) {
                let _ = kill_process_group(Pid::from_raw(pid as i32).unwrap(), Signal::KILL);
            }
        }
    }
}

/// `(pid, start time)` from a local id (`local:<pid>:<start>:<boot>`).
pub fn id_parts(id: &InstanceId) -> (u32, u64) {
    let parts: Vec<&str> = id.as_str().split(':').collect();
    assert_eq!(parts[0], "local", "not a local id: {id}");
    (parts[1].parse().unwrap(), parts[2].parse().unwrap())
}

/// The same instance record with pid and/or start time replaced.
pub fn forge(instance: &Instance, pid: Option<u32>, start: Option<u64>) -> Instance {
    let parts: Vec<&str> = instance.id.as_str().split(':').collect();
    let pid = pid.map_or(parts[1].to_owned(), |p| p.to_string());
    let start = start.map_or(parts[2].to_owned(), |s| s.to_string());
    Instance {
        id: InstanceId::new(format!("local:{pid}:{start}:{}", parts[3])),
        ..instance.clone()
    }
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Field 22 of `/proc/<pid>/stat`.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Field 3 of `/proc/<pid>/stat`.
pub fn state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// Fields 5 and 6 of `/proc/<pid>/stat`: the process group and the session.
pub fn group_and_session(pid: u32) -> Option<(u32, u32)> {
    let fields = stat_fields(pid)?;
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// The process `(pid, start)` exists and has not finished.
pub fn alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start) && !matches!(state(pid), Some('Z' | 'X'))
}

/// Polls `check` until it holds, panicking after [`PATIENCE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}
