//! A running hifi for the control-plane tests: a [`TestProject`] with one
//! python service, environments on free ports, `hifi up --detach`, and a
//! guard that always ends with `hifi down` — and then kills whatever is
//! still running under the project's directory, so a failed test leaves no
//! process and no port behind.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hifi_testkit::{Env, Service, loopback_port};
use serde_json::Value;
use tempfile::TempDir;

use super::load::{Reply, get};
use super::util::{Run, TestProject, parse_json};

/// Where the service lives in the repository.
pub const APP_PATH: &str = "services/api/app.py";

/// How a version of the service behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Healthy, every path answers 200.
    Ok,
    /// `/healthz` answers 200, every other path 500.
    Buggy,
    /// `/healthz` answers 500: it never becomes healthy.
    Unhealthy,
    /// Exits with this status as soon as it starts.
    Exits(i32),
    /// Every third request to a path other than `/healthz` answers 503, as
    /// when a downstream service it needs is down.
    Flaky,
    /// `/healthz` answers at once; every other path only after 30 s.
    Hangs,
}

/// The service, python 3 stdlib only: `/healthz` for health, any other path
/// answers JSON naming its version and the slot hifi started it in.
pub fn app(version: &str, mode: Mode) -> String {
    let (route_status, health_status, exit) = match mode {
        Mode::Ok | Mode::Flaky | Mode::Hangs => (200, 200, String::new()),
        Mode::Buggy => (500, 200, String::new()),
        Mode::Unhealthy => (200, 500, String::new()),
        Mode::Exits(code) => (200, 200, format!("sys.exit({code})\n")),
    };
    let flaky = if mode == Mode::Flaky { "True" } else { "False" };
    let hang = if mode == Mode::Hangs { 30 } else { 0 };
    format!(
        r#"import itertools, json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "{version}"
FLAKY = {flaky}
HANG = {hang}
COUNT = itertools.count(1)
{exit}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        # An upload: read it whole, then answer as a GET would.
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.do_GET()

    def do_GET(self):
        if self.path != "/healthz" and HANG:
            time.sleep(HANG)
        if self.path == "/healthz":
            status, body = {health_status}, b"ok"
        elif FLAKY and next(COUNT) % 3 == 0:
            status, body = 503, b"downstream unavailable"
        else:
            status = {route_status}
            body = json.dumps({{"version": VERSION, "slot": os.environ["HIFI_SLOT"], "port": os.environ["PORT"]}}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#
    )
}

/// A blue-green environment composed from cards at In Dev, with short
/// soak and drain, on a port [`Cluster::new`] picks.
pub fn blue_green(name: &str) -> Env {
    Env::cards(name, 0, "In Dev")
        .strategy("blue-green")
        .soak("1s")
        .drain("2s")
}

/// A canary environment promoted from `from` with one required approval,
/// on a port [`Cluster::new`] picks; `settings` are lines of its
/// `[environment.canary]` table (steps, interval, ...), after short
/// defaults for the rest.
pub fn canary(name: &str, from: &str, settings: &str) -> Env {
    Env::promote(name, 0, from)
        .strategy("canary")
        .approvals(1)
        .soak("1s")
        .drain("2s")
        .canary("min_requests = 5\nmax_p99_ms = 10000")
        .canary(settings)
}

/// Whether something accepts connections on `port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Polls `check` every 100 ms until it holds; fails the test with `what`
/// and the last `context` after `limit`.
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(context) if started.elapsed() > limit => {
                panic!("timed out after {limit:?} waiting for {what}: {context}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The pid inside a local runtime id (`local:<pid>:<start>:<boot>`).
pub fn pid_of(id: &str) -> u32 {
    id.strip_prefix("local:")
        .and_then(|rest| rest.split(':').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("not a local runtime id: {id}"))
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
    })
}

/// SIGKILLs `pid` (and its process group when it leads one).
pub fn kill(pid: u32) {
    let Some(target) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    let leads_group = rustix::process::getpgid(Some(target)).is_ok_and(|g| g == target);
    if leads_group {
        let _ = rustix::process::kill_process_group(target, rustix::process::Signal::KILL);
    }
    let _ = rustix::process::kill_process(target, rustix::process::Signal::KILL);
}

/// Live processes that belong to the project at `root`: their working
/// directory is inside it, or their command line names it.
pub fn processes_under(root: &Path) -> Vec<u32> {
    let me = std::process::id();
    let needle = root.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && alive(*pid))
        .filter(|pid| {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cwd.is_ok_and(|cwd| cwd.starts_with(root))
                || String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

/// A project with one service and its environments, and hifi running on it
/// once [`Cluster::up`] was called. Dropping it stops everything.
pub struct Cluster {
    pub project: TestProject,
    /// Outside the repository: files the tests' smoke commands read.
    pub scratch: TempDir,
    root: PathBuf,
    ports: BTreeMap<String, u16>,
}

impl Cluster {
    /// Commits the service at v1 and a `hifi.toml` with `environments`,
    /// where each `port = 0` becomes a free loopback port of its own: below
    /// the kernel's ephemeral range, so no `bind(0)` — hifi's own instance
    /// ports included — can take it before hifi binds it.
    pub fn new(environments: impl IntoIterator<Item = Env>) -> Cluster {
        Cluster::with_workflow(environments, "")
    }

    /// [`Cluster::new`] with `workflow` lines in `[workflow]`.
    pub fn with_workflow(environments: impl IntoIterator<Item = Env>, workflow: &str) -> Cluster {
        Cluster::with_service(
            environments,
            workflow,
            Service::new("api").route("/"),
            &|_| vec![(APP_PATH.to_string(), app("v1", Mode::Ok))],
        )
    }

    /// A cluster whose one service is `service` (named `api`, in
    /// `services/api`), its first version written by `v1` into the
    /// repository (relative paths and contents; files it writes itself are
    /// committed too).
    pub fn with_service(
        environments: impl IntoIterator<Item = Env>,
        workflow: &str,
        service: Service,
        v1: &dyn Fn(&Path) -> Vec<(String, String)>,
    ) -> Cluster {
        let project = TestProject::new();
        let mut ports = BTreeMap::new();
        let mut config = project.toml().workflow(workflow).service(service);
        for env in environments {
            let port = match env.public_port() {
                0 => loopback_port(),
                port => port,
            };
            ports.insert(env.name().to_string(), port);
            config = config.environment(env.port(port));
        }
        let toml = config.render();
        let mut files = v1(project.path());
        project.git(&["add", "-A"]);
        files.push(("hifi.toml".to_string(), toml));
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(path, text)| (path.as_str(), text.as_str()))
            .collect();
        project.commit_files("api v1 and hifi config", &files);
        let root = project.path().canonicalize().expect("canonical root");
        Cluster {
            project,
            scratch: tempfile::tempdir().expect("temp dir"),
            root,
            ports,
        }
    }

    /// The project.
    pub fn project(&self) -> &TestProject {
        &self.project
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The public port of `env`.
    pub fn port(&self, env: &str) -> u16 {
        self.ports[env]
    }

    /// Every environment's public port.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.values().copied().collect()
    }

    /// Runs `hifi args`.
    pub fn hifi(&self, args: &[&str]) -> Run {
        self.project.hifi(args)
    }

    /// `hifi up --detach`, asserting success.
    pub fn up(&self) {
        self.hifi(&["up", "--detach"]).ok();
    }

    /// Commits a new version of the service on main.
    pub fn commit_app(&self, version: &str, mode: Mode) {
        self.project.commit_files(
            &format!("api {version}"),
            &[(APP_PATH, &app(version, mode))],
        );
    }

    /// `hifi compose env`; returns the full release id.
    pub fn compose(&self, env: &str) -> String {
        let report = self.project.json(&["compose", env]);
        report["release"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no release id in {report}"))
            .to_string()
    }

    /// Commits `version` and composes `env`; returns the release id.
    pub fn release(&self, env: &str, version: &str, mode: Mode) -> String {
        self.commit_app(version, mode);
        self.compose(env)
    }

    /// `hifi deploy env --wait`, asserting it went live.
    pub fn deploy(&self, env: &str) {
        self.hifi(&["deploy", env, "--wait"]).ok();
    }

    /// `hifi status env --json`: the report of that environment.
    pub fn status(&self, env: &str) -> Value {
        self.project.json(&["status", env])["environments"][0].clone()
    }

    /// `hifi status --json`: the whole report.
    pub fn status_all(&self) -> Value {
        self.project.json(&["status"])
    }

    /// `hifi history env --json`: deployments, newest first.
    pub fn history(&self, env: &str) -> Vec<Value> {
        self.project
            .json(&["history", env])
            .as_array()
            .expect("a list of deployments")
            .clone()
    }

    /// The release active in `env`, if any.
    pub fn active(&self, env: &str) -> Option<String> {
        self.status(env)["routing"]["active"]["release"]
            .as_str()
            .map(str::to_string)
    }

    /// Waits until `env` has `release` active and verified (soaked).
    pub fn wait_verified(&self, env: &str, release: &str) {
        wait_until(
            &format!("{env} to verify {release}"),
            Duration::from_secs(30),
            || {
                let s = self.status(env);
                let active = s["routing"]["active"]["release"].as_str();
                if active == Some(release) && s["verified"] == true {
                    Ok(())
                } else {
                    Err(s.to_string())
                }
            },
        );
    }

    /// Waits until no deployment is in progress in `env`; returns the
    /// newest deployment of its history.
    pub fn wait_settled(&self, env: &str, limit: Duration) -> Value {
        wait_until(&format!("{env} to settle"), limit, || {
            let s = self.status(env);
            if s["deployment"].is_null() {
                Ok(())
            } else {
                Err(s["deployment"].to_string())
            }
        });
        self.history(env)[0]["deployment"].clone()
    }

    /// One GET on `env`'s public listener as `user`.
    pub fn get(&self, env: &str, path: &str, user: &str) -> Result<Reply, String> {
        get(self.port(env), path, Some(user))
    }

    /// The version `env` answers with for `user`, asserting a 200.
    #[track_caller]
    pub fn version(&self, env: &str, user: &str) -> String {
        let reply = self
            .get(env, "/version", user)
            .unwrap_or_else(|e| panic!("GET {env}: {e}"));
        assert_eq!(reply.status, 200, "GET {env}: {reply:?}");
        reply.version().expect("a version")
    }

    /// The pid of the running control plane, from `hifi status --json`.
    pub fn control_plane_pid(&self) -> u32 {
        let status = self.status_all();
        status["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("hifi is not running: {status}")) as u32
    }

    /// The proxy's runtime id, from `.hifi/proxy.json`.
    pub fn proxy_id(&self) -> String {
        let text = std::fs::read_to_string(self.root.join(".hifi/proxy.json"))
            .expect("read .hifi/proxy.json");
        parse_json(&text)["id"]
            .as_str()
            .expect("an id in proxy.json")
            .to_string()
    }

    /// `(slot, service) -> instance row` of `env`, as `hifi status` reports them.
    pub fn instances(&self, env: &str) -> BTreeMap<String, Value> {
        self.status(env)["instances"]
            .as_array()
            .expect("a list of instances")
            .iter()
            .map(|i| (i["slot"].as_str().expect("a slot").to_string(), i.clone()))
            .collect()
    }

    /// The runtime id of an instance row.
    pub fn instance_id(row: &Value) -> String {
        let handle = parse_json(row["handle"].as_str().expect("a handle"));
        handle["id"].as_str().expect("an id").to_string()
    }

    /// The events recorded for `env` (all of them for `None`), oldest
    /// first, as `(kind, message)`: the audit log, read from the store.
    pub fn events(&self, env: Option<&str>) -> Vec<(String, String)> {
        let store = hifi_store::Store::open(&self.root.join(".hifi/state.db")).expect("open store");
        let mut events = store.events(env, 10_000).expect("read events");
        events.sort_by_key(|e| e.seq);
        events
            .into_iter()
            .map(|e| (e.kind.to_string(), e.message))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // `hifi down` refuses when nothing runs; either way, anything still
        // alive under the project is killed.
        let _ = self.project.hifi(&["down"]);
        for _ in 0..50 {
            let left = processes_under(&self.root);
            if left.is_empty() {
                return;
            }
            for pid in left {
                kill(pid);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A `prep` (blue-green) → `prod` (canary with `settings`) project with
/// hifi up, v1 live in both, and `version` (behaving as `mode`) live,
/// verified in prep and approved for prod: ready for `hifi promote prep
/// prod`. Returns the cluster and the two release ids.
pub fn canary_ready(settings: &str, version: &str, mode: Mode) -> (Cluster, String, String) {
    canary_ready_with(canary("prod", "prep", settings), version, mode)
}

/// [`canary_ready`] with `prod` as given (promoted from `prep`, one approval).
pub fn canary_ready_with(prod: Env, version: &str, mode: Mode) -> (Cluster, String, String) {
    let c = Cluster::new([blue_green("prep"), prod]);
    let v1 = c.compose("prep");
    c.up();
    c.deploy("prep");
    c.wait_verified("prep", &v1);
    c.hifi(&["approve", "prod"]).ok();
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    let v2 = c.release("prep", version, mode);
    c.deploy("prep");
    c.wait_verified("prep", &v2);
    c.hifi(&["approve", "prod"]).ok();
    (c, v1, v2)
}

/// Asserts no user went back to `old` after `new` answered them.
#[track_caller]
pub fn assert_sticky(tally: &super::load::Tally, old: &str, new: &str) {
    for (user, samples) in tally.by_user() {
        let versions: Vec<String> = samples.iter().filter_map(|s| s.version()).collect();
        if let Some(first_new) = versions.iter().position(|v| v == new) {
            let back = versions[first_new..].iter().filter(|v| *v == old).count();
            assert_eq!(
                back, 0,
                "{user} went back from {new} to {old} {back} time(s): {versions:?}"
            );
        }
    }
}
