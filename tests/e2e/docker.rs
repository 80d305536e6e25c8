//! The Docker runtime through the real control plane and a real engine:
//! images built once per service version and run by id, replicas behind
//! the proxy, blue-green and canary without a failed request, a rollback,
//! a control plane killed and its successor adopting the containers, and
//! the clear refusals (a container that dies at start, an image gone from
//! the engine, a tag pointed elsewhere).
//!
//! The service's image is built `FROM scratch` with Debian's static busybox:
//! `httpd` serves `/healthz` and `/version` as files and `/` through a CGI
//! script that answers with its version, slot and port. Without an engine (or a static
//! busybox) each test says so past the harness's capture and passes;
//! `.ci/docker.sh start` starts one.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use hifi_testkit::{Env, Service};

use super::cluster::{Cluster, Mode, blue_green, canary, kill, wait_until};
use super::load::{Load, get};
use super::util::assert_mentions;

const BUSYBOX: &str = "/bin/busybox";
const SOCKET: &str = "/var/run/docker.sock";

const DOCKERFILE: &str = "FROM scratch\nCOPY bin /bin\nCOPY www /www\nENV PATH=/bin\nCMD [\"/bin/sh\", \"/bin/start\"]\n";

/// Whether an engine and a static busybox are here; says why not.
fn engine_or_skip(test: &str) -> bool {
    let why = if !is_static(Path::new(BUSYBOX)) {
        Some(format!("{BUSYBOX} is not a static busybox"))
    } else if !pings() {
        Some(format!("no Docker engine answers at {SOCKET}"))
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            hifi_testkit::skip(test, &why, "`.ci/docker.sh start` starts one");
            false
        }
    }
}

fn pings() -> bool {
    let Ok(mut socket) = UnixStream::connect(SOCKET) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = String::new();
    socket
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .and_then(|()| socket.read_to_string(&mut answer))
        .is_ok()
        && answer.ends_with("OK")
}

/// A static ELF has no program interpreter, so it runs `FROM scratch`.
fn is_static(path: &Path) -> bool {
    std::process::Command::new("file")
        .args(["-L", &path.to_string_lossy()])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("statically linked"))
}

/// The `docker` command line, asserting success.
fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes version `version` of the service's image sources under `root`.
fn write_image(root: &Path, version: &str, mode: Mode) {
    let dir = root.join("services/api");
    let file = |path: &str, text: &str, executable: bool| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    if !dir.join("bin/busybox").exists() {
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir bin");
        std::fs::copy(BUSYBOX, dir.join("bin/busybox")).expect("copy busybox");
        for applet in ["sh", "httpd", "echo", "cat"] {
            symlink("busybox", dir.join("bin").join(applet)).expect("applet link");
        }
    }
    file("Dockerfile", DOCKERFILE, false);
    file("www/healthz", "ok\n", false);
    // What users (and the load) ask for; `/` also says which replica answered.
    file(
        "www/version",
        &format!("{{\"version\": \"{version}\"}}\n"),
        false,
    );
    let start = match mode {
        Mode::Exits(code) => format!(
            "echo \"api {version} starting\"\necho \"cannot open /data/catalog.db: no such file\" >&2\nexit {code}\n"
        ),
        _ => "exec httpd -f -p 127.0.0.1:$PORT -h /www\n".to_string(),
    };
    file("bin/start", &start, true);
    let status = if mode == Mode::Buggy {
        "echo \"Status: 500 Internal Server Error\"\n"
    } else {
        ""
    };
    file(
        "www/cgi-bin/index.cgi",
        &format!(
            "#!/bin/sh\n{status}echo \"Content-Type: application/json\"\necho \"\"\necho \"{{\\\"version\\\": \\\"{version}\\\", \\\"slot\\\": \\\"$HIFI_SLOT\\\", \\\"port\\\": \\\"$PORT\\\"}}\"\n"
        ),
        true,
    );
}

/// Commits version `version` of the image on main.
fn commit_image(c: &Cluster, version: &str, mode: Mode) {
    write_image(c.root(), version, mode);
    c.project.git(&["add", "-A"]);
    c.project
        .git(&["commit", "-q", "-m", &format!("api {version}")]);
}

/// A cluster of `environments` (each on the Docker runtime) whose service
/// is the busybox image with `replicas` per slot; `None` (the test is
/// skipped) without an engine.
fn docker_cluster(
    test: &str,
    environments: impl IntoIterator<Item = Env>,
    replicas: u16,
) -> Option<Cluster> {
    if !engine_or_skip(test) {
        return None;
    }
    let service = Service::new("api")
        .route("/")
        .run("sh /bin/start")
        .image("Dockerfile")
        .replicas(replicas);
    let environments: Vec<Env> = environments
        .into_iter()
        .map(|e| e.set("runtime", "\"docker\""))
        .collect();
    Some(Cluster::with_service(environments, "", service, &|root| {
        write_image(root, "v1", Mode::Ok);
        Vec::new()
    }))
}

/// The ids of the running containers this cluster's hifi started.
fn containers(c: &Cluster) -> BTreeSet<String> {
    let home = c.root().join(".hifi");
    docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=hifi.home={}", home.display()),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// The image id a release records for the service.
fn image_of(c: &Cluster, release: &str) -> String {
    let shown = c.project.json(&["release", "show", release]);
    shown["services"][0]["image_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no image id in {shown}"))
        .to_string()
}

fn images_built(report: &serde_json::Value) -> usize {
    report["images_built"].as_array().map_or(0, Vec::len)
}

#[test]
fn containers_roll_out_with_replicas_blue_green_and_canary_without_a_failed_request() {
    let prod = canary("prod", "prep", "steps = [50, 100]\ninterval = \"2s\"");
    let Some(c) = docker_cluster(
        "containers_roll_out_with_replicas",
        [blue_green("prep"), prod],
        2,
    ) else {
        return;
    };
    let first = c.project.json(&["compose", "prep"]);
    assert_eq!(images_built(&first), 1, "{first}");
    let v1 = first["release"]["id"].as_str().expect("an id").to_string();
    assert!(image_of(&c, &v1).starts_with("sha256:"));
    // A change outside the service makes a new release of the same
    // service version: its image is reused, not built again.
    c.project
        .commit_files("docs", &[("README", "the shop, in containers\n")]);
    let second = c.project.json(&["compose", "prep"]);
    assert_eq!(images_built(&second), 0, "{second}");
    let v1b = second["release"]["id"].as_str().expect("an id").to_string();
    assert_ne!(v1, v1b);
    assert_eq!(image_of(&c, &v1), image_of(&c, &v1b));

    c.up();
    c.deploy("prep");
    c.wait_verified("prep", &v1b);
    c.hifi(&["approve", "prod"]).ok();
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    assert_eq!(c.version("prod", "u1"), "v1");
    let replicas = c.status("prep")["instances"]
        .as_array()
        .expect("instances")
        .len();
    assert_eq!(replicas, 2, "two replicas of the one service in prep");

    // Blue-green in prep under load.
    commit_image(&c, "v2", Mode::Ok);
    let v2 = c.compose("prep");
    let load = Load::start(c.port("prep"), 8, 4);
    c.deploy("prep");
    std::thread::sleep(Duration::from_millis(500));
    let tally = load.stop();
    tally.assert_no_failures();
    let ports: BTreeSet<String> = (0..40)
        .filter_map(|i| get(c.port("prep"), "/", Some(&format!("p{i}"))).ok())
        .filter_map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body).ok()?["port"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(ports.len(), 2, "both replicas answer: {ports:?}");
    c.wait_verified("prep", &v2);

    // A canary in prod under load, then a rollback.
    c.hifi(&["approve", "prod"]).ok();
    let load = Load::start(c.port("prod"), 8, 4);
    c.hifi(&["promote", "prep", "prod", "--wait"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    load.stop().assert_no_failures();
    assert_eq!(c.version("prod", "u1"), "v2");
    let load = Load::start(c.port("prod"), 8, 4);
    c.hifi(&["rollback", "prod", "--wait"]).ok();
    load.stop().assert_no_failures();
    assert_eq!(c.version("prod", "u1"), "v1");

    // Two environments, two warm slots each, two replicas per slot.
    assert_eq!(containers(&c).len(), 8);
    c.hifi(&["down"]).ok();
    assert_eq!(containers(&c), BTreeSet::new(), "hifi down left containers");
}

#[test]
fn a_killed_control_plane_leaves_containers_serving_and_its_successor_adopts_them() {
    let Some(c) = docker_cluster("a_killed_control_plane", [blue_green("dev")], 1) else {
        return;
    };
    c.compose("dev");
    c.up();
    c.deploy("dev");
    let before = containers(&c);
    assert_eq!(before.len(), 1);

    kill(c.control_plane_pid());
    assert_eq!(c.version("dev", "u1"), "v1", "traffic goes on");
    c.up();
    c.wait_settled("dev", Duration::from_secs(30));
    assert_eq!(containers(&c), before, "adopted, not started again");
    assert_eq!(c.version("dev", "u1"), "v1");

    c.hifi(&["down"]).ok();
    assert!(containers(&c).is_empty(), "hifi down left containers");
}

#[test]
fn containers_that_die_images_that_vanished_and_moved_tags_are_handled_clearly() {
    let Some(c) = docker_cluster("containers_that_die", [blue_green("dev")], 1) else {
        return;
    };
    c.compose("dev");
    c.up();
    c.deploy("dev");

    // Dies at start: the deployment fails with its exit and its last words.
    commit_image(&c, "v2", Mode::Exits(3));
    c.compose("dev");
    let stderr = c.hifi(&["deploy", "dev", "--wait"]).fails(1);
    assert_mentions(
        &stderr,
        &["exited with status 3", "cannot open /data/catalog.db"],
    );
    assert_eq!(c.version("dev", "u1"), "v1");

    // Its image removed from the engine: refused, naming the image.
    commit_image(&c, "v3", Mode::Ok);
    let v3 = c.compose("dev");
    let image = image_of(&c, &v3);
    docker(&["rmi", "-f", &image]);
    let stderr = c.hifi(&["deploy", "dev", "--wait"]).fails(1);
    assert_mentions(&stderr, &[&image[..19]]);
    assert_eq!(c.version("dev", "u1"), "v1");

    // Its tag pointed at another image: hifi runs the id it recorded.
    commit_image(&c, "v4", Mode::Ok);
    let v4 = c.compose("dev");
    let shown = c.project.json(&["release", "show", &v4]);
    let version = shown["services"][0]["version"]
        .as_str()
        .expect("a version")
        .to_string();
    let v1_image = docker(&[
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        "reference=hifi/shop/api",
    ]);
    let other = v1_image
        .lines()
        .find(|id| *id != image_of(&c, &v4))
        .expect("another image of the service")
        .to_string();
    docker(&["tag", &other, &format!("hifi/shop/api:{version}")]);
    c.deploy("dev");
    assert_eq!(c.version("dev", "u1"), "v4");

    c.hifi(&["down"]).ok();
    wait_until(
        "no containers",
        Duration::from_secs(10),
        || match containers(&c).len() {
            0 => Ok(()),
            n => Err(format!("{n} left")),
        },
    );
}
