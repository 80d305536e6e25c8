//! Services that speak gRPC, and services slower than their request
//! timeout, through the real control plane: a python `grpcio` server runs
//! under hifi as a `grpc` service, becomes healthy, goes live blue-green
//! and answers a real `grpcio` client through hifi's public listener; a
//! release whose calls fail (non-zero `grpc-status`) is aborted by its
//! canary; and a service slower than its `request_timeout` gets a 504 that
//! counts against its slot.
//!
//! The gRPC tests need python's `grpcio` (PyPI). When it is missing they
//! install it the way `bench/proxy/checks.sh` does, and say `SKIPPED`
//! (and pass) when that fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hifi_testkit::Service;

use super::cluster::{APP_PATH, Cluster, Mode, app, blue_green, canary, wait_until};
use super::util::assert_mentions;

/// The health path of the gRPC service: a method of its own that answers
/// OK, whatever its version does with the others.
const GRPC_HEALTH: &str = "/hifi.Echo/Health";

/// A gRPC service (python `grpcio`, no generated code: the methods carry
/// raw bytes). `/hifi.Echo/Say` answers `VERSION:` and the request, or,
/// when `fails`, aborts with INTERNAL; `/hifi.Echo/Health` answers OK.
fn grpc_app(version: &str, fails: bool) -> String {
    let fails = if fails { "True" } else { "False" };
    format!(
        r#"import os, sys
from concurrent import futures

import grpc

VERSION = "{version}"
FAILS = {fails}


def identity(b):
    return b


def say(request, context):
    if FAILS:
        context.abort(grpc.StatusCode.INTERNAL, "failing on purpose")
    return VERSION.encode() + b":" + request


def health(request, context):
    return b""


handler = grpc.method_handlers_generic_handler(
    "hifi.Echo",
    {{
        "Say": grpc.unary_unary_rpc_method_handler(say, identity, identity),
        "Health": grpc.unary_unary_rpc_method_handler(health, identity, identity),
    }},
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
server.add_generic_rpc_handlers((handler,))
if server.add_insecure_port("127.0.0.1:" + os.environ["PORT"]) == 0:
    sys.exit("could not bind port " + os.environ["PORT"])
server.start()
server.wait_for_termination()
"#
    )
}

/// A `grpcio` client: `once TARGET USER` makes one call of Say and prints
/// its outcome; `load TARGET SECONDS USERS` calls Say as USERS sticky users
/// in turn until SECONDS pass or a line arrives on its standard input,
/// printing one outcome per call. An outcome is `<ms since start> <user>
/// OK <answer>` or `<ms> <user> ERR <status code name>`.
const CLIENT: &str = r#"import select, sys, time

import grpc


def identity(b):
    return b


def call(say, user):
    try:
        answer = say(b"hello", timeout=10, metadata=(("cookie", "hifi-user=" + user),))
        return "OK " + answer.decode()
    except grpc.RpcError as e:
        return "ERR " + e.code().name


target = sys.argv[2]
with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
    say = channel.unary_unary("/hifi.Echo/Say", identity, identity)
    if sys.argv[1] == "once":
        print("0 " + sys.argv[3] + " " + call(say, sys.argv[3]), flush=True)
        sys.exit(0)
    seconds, users = float(sys.argv[3]), int(sys.argv[4])
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        if select.select([sys.stdin], [], [], 0)[0]:
            break
        user = "user-%d" % (i % users)
        outcome = call(say, user)
        print("%d %s %s" % ((time.monotonic() - start) * 1000, user, outcome), flush=True)
        i += 1
        time.sleep(0.005)
"#;

/// Whether python's `grpcio` can be imported, installing it once per test
/// run if it cannot; says why not when it still cannot.
fn grpcio_or_skip(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let imports = || {
            Command::new("python3")
                .args(["-c", "import grpc"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if imports() {
            return Ok(());
        }
        // As bench/proxy/checks.sh does; bounded, so a registry that does
        // not answer cannot hold the suite.
        let installed = Command::new("timeout")
            .args(["300", "python3", "-m", "pip", "install", "-q", "grpcio"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match installed {
            _ if imports() => Ok(()),
            Ok(status) => Err(format!("`pip install grpcio` ended with {status}")),
            Err(e) => Err(format!("`pip install grpcio` could not run: {e}")),
        }
    });
    match ready {
        Ok(()) => true,
        Err(why) => {
            hifi_testkit::skip(
                test,
                &format!("python3 cannot import grpcio ({why})"),
                "apt-get install python3-grpcio, or pip install grpcio",
            );
            false
        }
    }
}

/// One outcome of a client call.
#[derive(Debug, Clone)]
struct Outcome {
    /// When it ended, from the client's start.
    at: Duration,
    /// `OK v1:hello` or `ERR INTERNAL`.
    result: String,
}

impl Outcome {
    fn parse(line: &str) -> Option<Outcome> {
        let mut parts = line.splitn(3, ' ');
        let ms: u64 = parts.next()?.parse().ok()?;
        let _user = parts.next()?;
        Some(Outcome {
            at: Duration::from_millis(ms),
            result: parts.next()?.to_string(),
        })
    }

    fn ok(&self) -> bool {
        self.result.starts_with("OK ")
    }

    /// The version that answered, for a call that succeeded.
    fn version(&self) -> Option<&str> {
        self.result.strip_prefix("OK ")?.split(':').next()
    }
}

fn client_path(c: &Cluster) -> PathBuf {
    let path = c.scratch.path().join("grpc_client.py");
    if !path.exists() {
        std::fs::write(&path, CLIENT).expect("write the gRPC client");
    }
    path
}

/// One call of Say through `env`'s public listener, as `user`.
fn call_once(c: &Cluster, env: &str, user: &str) -> Outcome {
    let out = Command::new("timeout")
        .arg("30")
        .arg("python3")
        .arg(client_path(c))
        .args(["once", &format!("127.0.0.1:{}", c.port(env)), user])
        .output()
        .expect("run the gRPC client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().find_map(Outcome::parse).unwrap_or_else(|| {
        panic!(
            "the gRPC client printed no outcome: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Calls through `env`'s public listener by `users` sticky users, in a
/// client process of its own, until [`Load::stop`] (at most 90 s).
struct Load {
    child: Child,
    started: Instant,
}

impl Load {
    fn start(c: &Cluster, env: &str, users: u32) -> Load {
        let child = Command::new("python3")
            .arg(client_path(c))
            .args([
                "load",
                &format!("127.0.0.1:{}", c.port(env)),
                "90",
                &users.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gRPC client");
        Load {
            child,
            started: Instant::now(),
        }
    }

    /// Stops the client and returns every outcome it saw.
    fn stop(mut self) -> Vec<Outcome> {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let out = self
            .child
            .wait_with_output()
            .expect("wait for the gRPC client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let outcomes: Vec<Outcome> = stdout.lines().filter_map(Outcome::parse).collect();
        assert!(
            !outcomes.is_empty(),
            "the gRPC client made no call: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outcomes
    }
}

fn summary(outcomes: &[Outcome]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for o in outcomes {
        *counts
            .entry(o.result.split(':').next().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    format!("{} call(s): {counts:?}", outcomes.len())
}

/// A project whose one service is the gRPC app at v1.
fn grpc_cluster(environments: impl IntoIterator<Item = hifi_testkit::Env>) -> Cluster {
    Cluster::with_service(
        environments,
        "",
        Service::new("api")
            .route("/")
            .health(GRPC_HEALTH)
            .protocol("grpc"),
        &|_| vec![(APP_PATH.to_string(), grpc_app("v1", false))],
    )
}

fn commit_grpc(c: &Cluster, version: &str, fails: bool) {
    c.project.commit_files(
        &format!("api {version}"),
        &[(APP_PATH, &grpc_app(version, fails))],
    );
}

#[test]
fn a_grpc_service_becomes_healthy_goes_live_blue_green_and_answers_a_grpc_client() {
    if !grpcio_or_skip(
        "a_grpc_service_becomes_healthy_goes_live_blue_green_and_answers_a_grpc_client",
    ) {
        return;
    }
    let c = grpc_cluster([blue_green("dev")]);
    let v1 = c.compose("dev");
    c.up();
    c.deploy("dev");
    c.wait_verified("dev", &v1);
    let instances = c.instances("dev");
    assert!(
        instances.values().all(|i| i["health"] == "healthy"),
        "probed over gRPC, the instance is healthy: {instances:?}"
    );
    let release = c.project.json(&["release", "show", &v1]);
    assert!(
        release.to_string().contains("\"protocol\":\"grpc\""),
        "the release records its protocol: {release}"
    );

    let answer = call_once(&c, "dev", "first-user");
    assert_eq!(answer.result, "OK v1:hello", "{answer:?}");

    // v2 goes live beside v1 while a gRPC client keeps calling.
    commit_grpc(&c, "v2", false);
    let v2 = c.compose("dev");
    let load = Load::start(&c, "dev", 12);
    std::thread::sleep(Duration::from_millis(800));
    c.deploy("dev");
    let switched = load.started.elapsed();
    std::thread::sleep(Duration::from_millis(2_500));
    let outcomes = load.stop();

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok()).collect();
    assert!(
        failed.is_empty(),
        "no call fails during the switch: {failed:?} of {}",
        summary(&outcomes)
    );
    assert!(
        outcomes.iter().any(|o| o.version() == Some("v1"))
            && outcomes.iter().any(|o| o.version() == Some("v2")),
        "the client sees both sides of the switch: {}",
        summary(&outcomes)
    );
    let stale = outcomes
        .iter()
        .filter(|o| o.at > switched && o.version() != Some("v2"))
        .count();
    assert_eq!(
        stale,
        0,
        "after the switch only v2 answers: {}",
        summary(&outcomes)
    );
    assert_eq!(c.active("dev").as_deref(), Some(v2.as_str()));
    assert_eq!(call_once(&c, "dev", "late-user").result, "OK v2:hello");
}

#[test]
fn a_canary_of_a_grpc_release_whose_calls_fail_is_aborted() {
    if !grpcio_or_skip("a_canary_of_a_grpc_release_whose_calls_fail_is_aborted") {
        return;
    }
    let c = grpc_cluster([
        blue_green("prep"),
        canary("prod", "prep", "steps = [20, 60]\ninterval = \"1s\""),
    ]);
    let v1 = c.compose("prep");
    c.up();
    c.deploy("prep");
    c.wait_verified("prep", &v1);
    c.hifi(&["approve", "prod"]).ok();
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    assert_eq!(call_once(&c, "prod", "first-user").result, "OK v1:hello");

    // v2 is healthy (its health method answers) but every call of Say
    // fails with INTERNAL; blue-green prep takes it, having no judge.
    commit_grpc(&c, "v2", true);
    let v2 = c.compose("prep");
    c.deploy("prep");
    c.wait_verified("prep", &v2);
    assert_eq!(call_once(&c, "prep", "tester").result, "ERR INTERNAL");
    c.hifi(&["approve", "prod"]).ok();

    let load = Load::start(&c, "prod", 40);
    std::thread::sleep(Duration::from_millis(500));
    let stderr = c.hifi(&["promote", "prep", "prod", "--wait"]).fails(1);
    let aborted = load.started.elapsed();
    std::thread::sleep(Duration::from_millis(1_000));
    let outcomes = load.stop();

    assert_mentions(&stderr, &["aborted", "error ratio"]);
    assert!(
        outcomes.iter().any(|o| o.result == "ERR INTERNAL"),
        "the candidate's share of users saw its failures: {}",
        summary(&outcomes)
    );
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.at > aborted).collect();
    assert!(!after.is_empty(), "{}", summary(&outcomes));
    assert!(
        after.iter().all(|o| o.version() == Some("v1")),
        "after the abort every user is back on v1: {}",
        summary(&outcomes)
    );
    let entry = &c.history("prod")[0];
    let deployment = &entry["deployment"];
    assert_eq!(deployment["release"], v2.as_str(), "{entry}");
    assert_eq!(deployment["state"], "aborted", "{entry}");
    let last = entry["analyses"]
        .as_array()
        .and_then(|a| a.last())
        .expect("the analysis that failed");
    assert_eq!(last["verdict"], "fail", "{entry}");
    assert!(last["errors"].as_i64() > Some(0), "{entry}");
    assert_eq!(c.active("prod").as_deref(), Some(v1.as_str()));
}

/// The proxy's figures for one slot of `env`, read over its admin socket.
fn slot_stats(root: &Path, env: &str, slot: &str) -> hifi_proxy::Stats {
    let admin = hifi_proxy::AdminClient::new(root.join(".hifi/proxy.sock"));
    let query = hifi_proxy::StatsQuery {
        env: env.into(),
        slot: slot.into(),
        service: Some("api".into()),
        since_ms: 0,
        slow_ms: None,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(admin.stats(&query))
        .expect("the proxy's stats")
}

#[test]
fn a_service_slower_than_its_request_timeout_gets_a_504_counted_against_its_slot() {
    let c = Cluster::with_service(
        [blue_green("dev")],
        "",
        Service::new("api").route("/").request_timeout("1s"),
        // Health answers at once; every other path after 30 s.
        &|_| vec![(APP_PATH.to_string(), app("v1", Mode::Hangs))],
    );
    c.compose("dev");
    c.up();
    c.deploy("dev");
    let slot = c.status("dev")["routing"]["active"]["slot"]
        .as_str()
        .expect("an active slot")
        .to_string();
    let before = slot_stats(c.root(), "dev", &slot);

    let sent = Instant::now();
    let reply = c.get("dev", "/version", "patient-user").expect("an answer");
    let waited = sent.elapsed();
    assert_eq!(reply.status, 504, "{reply:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "the 504 comes after the service's 1 s, not the proxy's 60 s: {waited:?}"
    );
    let health = c.get("dev", "/healthz", "patient-user").expect("an answer");
    assert_eq!(health.status, 200, "a quick answer is not cut: {health:?}");

    wait_until(
        "the proxy to count the 504 against the slot",
        Duration::from_secs(10),
        || {
            let now = slot_stats(c.root(), "dev", &slot);
            if now.errors > before.errors && now.requests >= before.requests + 2 {
                Ok(())
            } else {
                Err(format!("before {before:?}, now {now:?}"))
            }
        },
    );
}
