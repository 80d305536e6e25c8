//! A project on disk: a git repository with one service and `hifi.toml`
//! (dev composed from In Dev, prod promoting from dev with one approval).

use std::path::Path;
use std::process::Command;

use hifi_app::{Actor, Project, Role};
use hifi_testkit::{Config, Env, Service, loopback_port};

/// The project's config: one service; dev composed from In Dev, prod
/// promoting from dev with one approval.
fn config() -> String {
    Config::new("shop")
        .service(Service::new("api").route("/"))
        .environment(Env::cards("dev", loopback_port(), "In Dev"))
        .environment(Env::promote("prod", loopback_port(), "dev").approvals(1))
        .render()
}

/// A temp git repository with hifi set up.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

impl Repo {
    /// main with the service and `hifi.toml`, and a branch `feature/a`.
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q", "-b", "main"]);
        git(root, &["config", "user.name", "Test"]);
        git(root, &["config", "user.email", "test@example.com"]);
        std::fs::create_dir_all(root.join("services/api")).unwrap();
        std::fs::write(root.join("services/api/app.py"), "print('api')\n").unwrap();
        std::fs::write(root.join("hifi.toml"), config()).unwrap();
        std::fs::write(root.join(".gitignore"), ".hifi/\n").unwrap();
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "api"]);
        git(root, &["checkout", "-q", "-b", "feature/a"]);
        std::fs::write(root.join("services/api/a.txt"), "a\n").unwrap();
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "a"]);
        git(root, &["checkout", "-q", "main"]);
        Repo { dir }
    }

    pub fn open(&self) -> Project {
        Project::open(self.dir.path()).unwrap()
    }

    /// How many events the audit log holds: unchanged means nothing was done.
    pub fn events(&self) -> i64 {
        self.open().last_event(&admin()).unwrap()
    }
}

pub fn as_role(name: &str, role: Role) -> Actor {
    Actor {
        name: name.into(),
        role,
    }
}

pub fn admin() -> Actor {
    Actor::local("ann")
}
