//! Shared helpers: a real project (git repository, python3 services,
//! `hifi.toml`) in a temp dir, releases composed the way `hifi compose`
//! records them, the proxy and the controller running in process with a
//! manual clock, sticky users sending real requests, and bounded polling.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hifi_artifacts::{Artifacts, Built};
use hifi_controller::{Clock, Controller, ManualClock, Options, ProxyLaunch};
use hifi_core::event::EventKind;
use hifi_core::release::{Release, ReleaseId, ServiceVersion, composition_key};
use hifi_core::{Config, DeploymentState, Health, Kind, Layout, Routing, Slot};
use hifi_git::{Oid, Repo};
use hifi_proxy::{AdminAddr, AdminClient, ProxyOptions, TableSpec};
use hifi_runtime::{Instance, LocalRuntime};
use hifi_store::{Analysis, Audit, Deployment, Store, Update};
use hifi_testkit::{Env, Service, loopback_port};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generous bound for anything awaited (a loaded 2-core machine starting
/// python processes).
pub const PATIENCE: Duration = Duration::from_secs(20);
/// The controller's pause between passes.
pub const TICK: Duration = Duration::from_millis(20);
/// `soak` of every environment, and `interval` of prod's canary steps.
pub const SOAK_MS: i64 = 30_000;
/// `interval` of prod's canary steps.
pub const INTERVAL_MS: i64 = 30_000;
/// `min_requests` of prod's canary.
pub const MIN_REQUESTS: usize = 5;

/// What a service answers besides `/healthz` (always 200).
#[derive(Debug, Clone, Copy)]
pub struct App {
    pub version: &'static str,
    /// Answer 500 to every user request.
    pub buggy: bool,
    /// Serve from a thread; on SIGTERM end only the main thread, so the
    /// process lives on with a zombie main thread (see `shutdown.rs`).
    pub lingering: bool,
}

impl App {
    pub fn ok(version: &'static str) -> App {
        App {
            version,
            buggy: false,
            lingering: false,
        }
    }

    pub fn buggy(version: &'static str) -> App {
        App {
            buggy: true,
            ..App::ok(version)
        }
    }

    pub fn lingering(version: &'static str) -> App {
        App {
            lingering: true,
            ..App::ok(version)
        }
    }

    fn source(self, service: &str) -> String {
        let buggy = if self.buggy { "True" } else { "False" };
        let serve = if self.lingering {
            "threading.Thread(target=server.serve_forever).start()\n\
             signal.signal(signal.SIGTERM, lambda *_: ctypes.CDLL(None).pthread_exit(None))\n\
             while True:\n    signal.pause()\n"
        } else {
            "server.serve_forever()\n"
        };
        format!(
            r#"import ctypes, http.server, json, os, signal, threading

SERVICE = "{service}"
VERSION = "{version}"
BUGGY = {buggy}
SLOT = os.environ.get("HIFI_SLOT", "?")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/healthz":
            status, body = 200, {{"ok": True}}
        elif BUGGY:
            status, body = 500, {{"error": "broken", "version": VERSION}}
        else:
            status, body = 200, {{"service": SERVICE, "version": VERSION, "slot": SLOT}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
{serve}"#,
            version = self.version,
        )
    }
}

/// A git repository in a temp dir with python3 services and a `hifi.toml`:
/// `dev` (composed from "Ready for Dev", blue-green, soak 30 s) and `prod`
/// (promotes from dev, canary 10/50/100 % every 30 s, at least 5 requests,
/// at most 5 % errors).
pub struct Project {
    dir: tempfile::TempDir,
    pub dev_port: u16,
    pub prod_port: u16,
    services: Vec<String>,
    pub clock: Arc<ManualClock>,
}

impl Project {
    /// A project whose services all answer version "1", committed on main.
    pub fn new(services: &[&str]) -> Project {
        Project::with_config(services, Project::config_text)
    }

    /// [`Project::new`] with dev and prod on Kubernetes (namespaces
    /// `shop-dev` and `shop-prod`), each service with an image and
    /// `replicas` replicas.
    pub fn on_kubernetes(services: &[&str], replicas: u16) -> Project {
        Project::with_config(services, |project| {
            let mut text = String::from(
                "[project]\nname = \"shop\"\nbase = \"main\"\n\n[registry]\nurl = \"registry.example.com/shop\"\n",
            );
            for service in &project.services {
                text.push_str(&format!(
                    "\n[[service]]\nname = \"{service}\"\npath = \"services/{service}\"\nbuild = \"python3 -m py_compile app.py\"\nrun = \"python3 app.py\"\nhealth = \"/healthz\"\nroute = \"/{service}\"\nimage = \"Dockerfile\"\nreplicas = {replicas}\n"
                ));
            }
            text.push_str(&format!(
                "\n[[environment]]\nname = \"dev\"\nport = {}\ncards_from = \"Ready for Dev\"\nruntime = \"kubernetes\"\nsoak = \"30s\"\ndrain = \"1s\"\n\n[[environment]]\nname = \"prod\"\nport = {}\npromote_from = \"dev\"\nstrategy = \"canary\"\nruntime = \"kubernetes\"\nsoak = \"30s\"\ndrain = \"1s\"\n[environment.canary]\nsteps = [10, 50, 100]\ninterval = \"30s\"\nmin_requests = {MIN_REQUESTS}\nmax_error_rate = 0.05\nmax_p99_ms = 5000\n",
                project.dev_port, project.prod_port
            ));
            text
        })
    }

    fn with_config(services: &[&str], config: impl Fn(&Project) -> String) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let project = Project {
            dir,
            dev_port: loopback_port(),
            prod_port: loopback_port(),
            services: services.iter().map(|s| s.to_string()).collect(),
            clock: Arc::new(ManualClock::new()),
        };
        project.git(&["init", "-q", "-b", "main"]);
        project.git(&["config", "user.name", "Test"]);
        project.git(&["config", "user.email", "test@example.com"]);
        project.git(&["config", "commit.gpgSign", "false"]);
        project.write(".gitignore", ".hifi/\n");
        for service in services {
            project.write_app(service, App::ok("1"));
        }
        project.write("hifi.toml", &config(&project));
        project.commit("services at version 1");
        std::fs::create_dir_all(project.state_dir()).expect("create .hifi");
        project
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root().join(".hifi")
    }

    fn config_text(&self) -> String {
        let build = "python3 -m py_compile app.py";
        hifi_testkit::Config::new("shop")
            .base("main")
            .services(self.services.iter().map(|s| Service::new(s).build(build)))
            .environment(
                Env::cards("dev", self.dev_port, "Ready for Dev")
                    .strategy("blue-green")
                    .soak("30s")
                    .drain("1s"),
            )
            .environment(
                Env::promote("prod", self.prod_port, "dev")
                    .strategy("canary")
                    .soak("30s")
                    .drain("1s")
                    .canary(&format!(
                        "steps = [10, 50, 100]\ninterval = \"30s\"\n\
                         min_requests = {MIN_REQUESTS}\nmax_error_rate = 0.05\nmax_p99_ms = 5000"
                    )),
            )
            .render()
    }

    pub fn config(&self) -> Config {
        let text = std::fs::read_to_string(self.root().join("hifi.toml")).expect("read hifi.toml");
        Config::parse(&text).expect("hifi.toml parses")
    }

    fn write(&self, path: &str, contents: &str) {
        let path = self.root().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        std::fs::write(path, contents).expect("write file");
    }

    fn write_app(&self, service: &str, app: App) {
        self.write(&format!("services/{service}/app.py"), &app.source(service));
    }

    /// Runs git in the project, isolated from the machine's configuration.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.root())
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim_end()
            .to_owned()
    }

    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Composes main's tip for dev the way `hifi compose dev` records it
    /// (no cards): service versions are subtree ids, artifacts are built,
    /// the release id hashes tree and recipes.
    pub fn compose_dev(&self) -> ReleaseId {
        let repo = Repo::open(self.root()).expect("open repository");
        let commit: Oid = self.git(&["rev-parse", "main"]).parse().expect("oid");
        let tree = repo.tree_of(&commit).expect("tree of main");
        let config = self.config();
        let paths: Vec<&str> = config.services.iter().map(|s| s.path.as_str()).collect();
        let versions = repo.subtrees(&tree, &paths).expect("subtrees");
        let artifacts = Artifacts::new(&Layout::new(self.root()).artifacts());
        let mut services = Vec::new();
        for (service, version) in config.services.iter().zip(versions) {
            let version = version.expect("service directory exists").to_string();
            let digest = match artifacts
                .ensure(&repo, service, &version)
                .expect("build artifact")
            {
                Built::Built(_, digest) => digest,
                Built::Reused => hifi_artifacts::digest(&artifacts.dir(service, &version))
                    .expect("digest of the artifact"),
            };
            // With a registry, the image is taken as built and pushed (a
            // made-up id and registry digest, derived from the version).
            let image_id = config.registry.as_ref().map(|registry| {
                let id = format!("sha256:{:0>64}", &version);
                let repository = format!("{}/{}", registry.url, service.name);
                self.store()
                    .record_artifact(
                        &service.name,
                        hifi_store::ArtifactKind::Pushed,
                        &hifi_store::pushed_key(&repository, &id),
                        &format!("sha256:{:f>64}", &version),
                        0,
                    )
                    .expect("record the push");
                id
            });
            services.push(ServiceVersion {
                service: service.name.clone(),
                version,
                recipe: service.clone(),
                digest: Some(digest),
                image_id,
            });
        }
        let release = Release {
            id: ReleaseId::compute(tree.as_str(), &config.services),
            tree: tree.to_string(),
            commit: commit.to_string(),
            base_commit: commit.to_string(),
            cards: Vec::new(),
            services,
            composed_for: "dev".into(),
            created_at: self.clock.now_ms(),
        };
        let key = composition_key(commit.as_str(), &[], &config.services);
        self.store()
            .record_composition(&self.audit(), "dev", &release, commit.as_str(), &key)
            .expect("record composition");
        release.id
    }

    /// Commits `apps` on main and composes the result for dev.
    pub fn release(&self, apps: &[(&str, App)]) -> ReleaseId {
        for (service, app) in apps {
            self.write_app(service, *app);
        }
        let versions: Vec<&str> = apps.iter().map(|(_, app)| app.version).collect();
        self.commit(&format!("services at {}", versions.join(", ")));
        self.compose_dev()
    }

    pub fn store(&self) -> Store {
        Store::open(&self.state_dir().join("state.db")).expect("open store")
    }

    pub fn audit(&self) -> Audit {
        Audit {
            actor: "tester".into(),
            at: self.clock.now_ms(),
        }
    }

    /// Records that `release` is verified in dev, as if it had soaked there.
    pub fn verified_in_dev(&self, release: &ReleaseId) {
        self.store()
            .record_verification(&self.audit(), "dev", release)
            .expect("record verification");
    }

    /// Records a deployment, as `hifi deploy` / `hifi promote` do.
    pub fn deploy(&self, env: &str, release: &ReleaseId) -> i64 {
        let strategy = match env {
            "prod" => Kind::Canary,
            _ => Kind::BlueGreen,
        };
        self.store()
            .record_deployment(&self.audit(), env, release, strategy)
            .expect("record deployment")
    }

    /// Changes a deployment as `hifi canary pause|resume|promote` do.
    pub fn update(&self, id: i64, update: Update<'_>) -> Deployment {
        self.store()
            .update_deployment(&self.audit(), id, update)
            .expect("update deployment")
    }

    pub fn deployment(&self, id: i64) -> Deployment {
        self.store().deployment(id).expect("deployment")
    }

    pub fn routing(&self, env: &str) -> Routing {
        self.store().routing(env).expect("routing")
    }

    pub fn analyses(&self, id: i64) -> Vec<Analysis> {
        self.store().analyses(id).expect("analyses")
    }

    /// The instances recorded for `env`, as the runtime described them.
    pub fn instances(&self, env: &str) -> Vec<Instance> {
        self.store()
            .instances(Some(env))
            .expect("instances")
            .into_iter()
            .map(|row| serde_json::from_str(&row.handle).expect("instance handle"))
            .collect()
    }

    /// The table the proxy serves for `env`.
    pub async fn proxy_table(&self, env: &str) -> Option<TableSpec> {
        AdminClient::new(self.state_dir().join("proxy.sock"))
            .get_table(env)
            .await
            .expect("the proxy's admin socket answers")
    }

    /// The deployment's events, for failure messages.
    pub fn story(&self, id: i64) -> String {
        self.store()
            .deployment_events(id)
            .map(|events| {
                events
                    .iter()
                    .map(|e| format!("  {} {}", e.kind, e.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// Polls deployment `id` until `what` holds; panics with its history.
    pub async fn wait_deployment(
        &self,
        id: i64,
        what: &str,
        cond: impl Fn(&Deployment) -> bool,
    ) -> Deployment {
        let store = self.store();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let d = store.deployment(id).expect("deployment");
            if cond(&d) {
                return d;
            }
            // A deployment that has ended will not change any more.
            if d.state.is_terminal() || tokio::time::Instant::now() > deadline {
                panic!(
                    "deployment #{id} never became {what}; it is {} at step {} weight {} ({:?})\n{}",
                    d.state,
                    d.step,
                    d.weight,
                    d.reason,
                    self.story(id)
                );
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Waits until deployment `id` is live.
    pub async fn wait_live(&self, id: i64) -> Deployment {
        self.wait_deployment(id, "live", |d| d.state == DeploymentState::Live)
            .await
    }

    /// Waits until deployment `id` is at canary step `step` (0-based).
    pub async fn wait_step(&self, id: i64, step: i64) -> Deployment {
        self.wait_deployment(id, &format!("verifying at step {}", step + 1), |d| {
            d.state == DeploymentState::Verifying && d.step == step && d.weight > 0.0
        })
        .await
    }
}

/// Polls `cond` every tick until it holds; panics after [`PATIENCE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(TICK).await;
    }
    panic!("timed out waiting for {what}");
}

/// Awaits `fut` for at most [`PATIENCE`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Lets the controller run several passes. Used only to show that
/// something does *not* happen while the clock stands still; never to wait
/// for a canary interval or a soak.
pub async fn let_controller_run() {
    tokio::time::sleep(TICK * 10).await;
}

/// The proxy and the controller of a [`Project`], running in this process.
pub struct Hifi {
    state_dir: PathBuf,
    controller: Option<(oneshot::Sender<()>, JoinHandle<hifi_controller::Result<()>>)>,
    proxy: Option<(oneshot::Sender<()>, JoinHandle<hifi_proxy::Result<()>>)>,
    /// The instances [`Hifi::stop`] checks, until they are known stopped.
    started: Vec<Instance>,
}

impl Hifi {
    /// Starts the proxy (in process, on the project's admin socket) and a
    /// controller that talks to it, reading the project's clock; returns
    /// once every environment had its first pass.
    pub async fn start(project: &Project) -> Hifi {
        Hifi::start_with(project, LocalRuntime::new()).await
    }

    /// [`Hifi::start`] with instances run by `runtime`.
    pub async fn start_with(project: &Project, runtime: impl hifi_runtime::Runtime) -> Hifi {
        let state_dir = project.state_dir();
        let sock = state_dir.join("proxy.sock");
        let (proxy_stop, proxy_stopped) = oneshot::channel::<()>();
        let mut proxy_options =
            ProxyOptions::new(state_dir.join("proxy"), AdminAddr::unix(sock.clone()));
        proxy_options.shutdown_grace = Duration::from_secs(2);
        let proxy = tokio::spawn(hifi_proxy::serve(proxy_options, async move {
            let _ = proxy_stopped.await;
        }));

        let layout = Layout::new(project.root());
        let launch = ProxyLaunch::external(&layout);
        let mut options = Options::new(layout, launch);
        options.actor = "controller".into();
        options.tick = TICK;
        options.start_timeout = Duration::from_secs(15);
        options.stop_grace = Duration::from_secs(2);
        options.smoke_timeout = Duration::from_secs(10);
        let controller =
            Controller::new(options, runtime, project.clock.clone()).expect("controller");
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            controller
                .run(
                    move || {
                        let _ = ready_tx.send(());
                    },
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await
        });
        let mut hifi = Hifi {
            state_dir,
            controller: Some((stop, task)),
            proxy: Some((proxy_stop, proxy)),
            started: Vec::new(),
        };
        if bounded("the controller's first pass", ready_rx)
            .await
            .is_err()
        {
            let (_, task) = hifi.controller.take().expect("controller");
            panic!(
                "the controller stopped before it was ready: {:?}",
                task.await
            );
        }
        hifi
    }

    /// Shuts the controller down and checks that it stopped every process
    /// it started: no instance recorded, none running, none answering.
    pub async fn stop(mut self) {
        let store = Store::open(&self.state_dir.join("state.db")).expect("open store");
        let started: Vec<Instance> = store
            .instances(None)
            .expect("instances")
            .into_iter()
            .map(|row| serde_json::from_str(&row.handle).expect("instance handle"))
            .collect();
        assert!(!started.is_empty(), "the test started no instance");
        self.started = started.clone();
        let (stop, task) = self.controller.take().expect("controller runs");
        let _ = stop.send(());
        bounded("the controller's shutdown", task)
            .await
            .expect("controller task")
            .expect("the controller shut down cleanly");
        let left = store.instances(None).expect("instances");
        assert!(left.is_empty(), "instances still recorded: {left:?}");
        let runtime = LocalRuntime::new();
        for instance in &started {
            assert!(
                !runtime.process_status(&instance.id).is_running(),
                "{} still runs",
                instance.describe()
            );
        }
        // The runtime may report a group gone while a process of it is still
        // exiting (its main thread already a zombie, other threads holding
        // its sockets; see `shutdown.rs`), so ports get a moment to close.
        let mut open = Vec::new();
        for instance in &started {
            if !closes_within(instance.addr, Duration::from_secs(2)).await {
                open.push(format!(
                    "{} ({}) on {}: {}",
                    instance.describe(),
                    instance.id,
                    instance.addr,
                    listeners(instance.addr.port())
                ));
            }
        }
        if !open.is_empty() {
            panic!(
                "instances still answer after the controller stopped:\n  {}",
                open.join("\n  ")
            );
        }
        let events = store.events(None, 5).expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::ControllerStopped),
            "no controller.stopped event: {events:?}"
        );
        self.started.clear();
        let (stop, proxy) = self.proxy.take().expect("proxy runs");
        let _ = stop.send(());
        bounded("the proxy's shutdown", proxy)
            .await
            .expect("proxy task")
            .expect("the proxy shut down cleanly");
    }
}

impl Drop for Hifi {
    /// A test that failed before [`Hifi::stop`] finished must not leave
    /// python processes behind: kill the process group of every instance
    /// it knows of.
    fn drop(&mut self) {
        let mut known = std::mem::take(&mut self.started);
        if let Ok(store) = Store::open(&self.state_dir.join("state.db")) {
            known.extend(
                store
                    .instances(None)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|row| serde_json::from_str::<Instance>(&row.handle).ok()),
            );
        }
        kill_groups(&known);
    }
}

/// Whether anything accepts connections on `addr`.
pub fn answers(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Polls until nothing accepts connections on `addr`, for at most `limit`.
async fn closes_within(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !answers(addr) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// SIGKILLs the process group each instance leads (the local runtime gives
/// every instance its own group, with the id `local:<pid>:...`).
fn kill_groups<'a>(instances: impl IntoIterator<Item = &'a Instance>) {
    for instance in instances {
        if let Some(pid) = instance.id.as_str().split(':').nth(1) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Who listens on `port`, for failure messages.
fn listeners(port: u16) -> String {
    Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("(ss failed: {e})"))
}

// ------------------------------------------------------------------ users

/// `count` user keys whose bucket puts them on the candidate at `weight` %.
pub fn candidate_users(weight: f64, count: usize) -> Vec<String> {
    users(count, |b| f64::from(b) < weight * 100.0 - 1.0)
}

/// `count` user keys that stay on the active slot at `weight` %.
pub fn active_users(weight: f64, count: usize) -> Vec<String> {
    users(count, |b| f64::from(b) > weight * 100.0 + 1.0)
}

fn users(count: usize, keep: impl Fn(u32) -> bool) -> Vec<String> {
    (0..)
        .map(|n| format!("u{n}"))
        .filter(|key| keep(hifi_proxy::bucket(key.as_bytes())))
        .take(count)
        .collect()
}

/// One answer through the proxy.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// `x-hifi-slot` of the response.
    pub slot: String,
    /// The JSON body's `version` (empty when it has none).
    pub version: String,
}

/// What a batch of requests got.
#[derive(Debug, Default)]
pub struct Tally {
    pub statuses: BTreeMap<u16, usize>,
    pub versions: BTreeMap<String, usize>,
    pub slots: BTreeMap<String, usize>,
}

impl Tally {
    pub fn total(&self) -> usize {
        self.statuses.values().sum()
    }

    /// How many answered `status`.
    pub fn with(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Every request answered `status` from `version`.
    pub fn assert_all(&self, status: u16, version: &str) {
        assert!(
            self.with(status) == self.total()
                && self.versions.get(version).copied().unwrap_or(0) == self.total(),
            "expected every answer {status} from version {version}: {self:?}"
        );
    }
}

/// Users sending requests to an environment's public port, each with its
/// own `hifi-user` cookie.
pub struct Users {
    client: Client<HttpConnector, Empty<Bytes>>,
    port: u16,
}

impl Users {
    pub fn of(port: u16) -> Users {
        Users {
            client: Client::builder(TokioExecutor::new()).build_http(),
            port,
        }
    }

    pub async fn get(&self, path: &str, user: &str) -> Reply {
        let request = hyper::Request::get(format!("http://127.0.0.1:{}{path}", self.port))
            .header("cookie", format!("hifi-user={user}"))
            .body(Empty::new())
            .expect("request");
        let response = bounded("a request through the proxy", self.client.request(request))
            .await
            .expect("the proxy answers");
        let status = response.status().as_u16();
        let slot = response
            .headers()
            .get("x-hifi-slot")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        let version = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("version").and_then(|v| v.as_str()).map(String::from))
            .unwrap_or_default();
        Reply {
            status,
            slot,
            version,
        }
    }

    /// One request per user.
    pub async fn send(&self, path: &str, users: &[String]) -> Tally {
        let mut tally = Tally::default();
        for user in users {
            let reply = self.get(path, user).await;
            *tally.statuses.entry(reply.status).or_default() += 1;
            *tally.versions.entry(reply.version).or_default() += 1;
            *tally.slots.entry(reply.slot).or_default() += 1;
        }
        tally
    }
}

/// Polls until every instance of `env` runs `release`'s services in `slot`,
/// healthy; returns them.
pub async fn wait_slot_healthy(
    project: &Project,
    env: &str,
    slot: &str,
    release: &ReleaseId,
) -> Vec<Instance> {
    let runtime = LocalRuntime::new();
    let services = project.config().services.len();
    let slot: Slot = slot.parse().expect("a slot");
    let mut found = Vec::new();
    eventually(
        &format!("release {release} healthy in {env}/{slot}"),
        || {
            let rows = project.store().instances(Some(env)).expect("instances");
            found = rows
                .iter()
                .filter(|r| r.slot == slot && r.release == *release && r.health == Health::Healthy)
                .map(|r| serde_json::from_str::<Instance>(&r.handle).expect("handle"))
                .filter(|i| runtime.process_status(&i.id).is_running())
                .collect();
            found.len() == services
        },
    )
    .await;
    found
}
