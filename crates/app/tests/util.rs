//! A project on disk: a git repository with one service and `hifi.toml`
//! (dev composed from In Dev, prod promoting from dev with one approval).

use hifi_app::{Actor, Project, Role};
use hifi_testkit::repo::git;
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

/// The hotfix lane with a promotion window on prod: prep (cards at Ready
/// for Production) → prod (from prep or hotfix, Mon-Fri 09:00-16:00
/// Zurich), hotfix (fixes prod).
pub fn lane_config() -> String {
    Config::new("shop")
        .service(Service::new("api").route("/"))
        .environment(Env::cards("prep", loopback_port(), "Ready for Production"))
        .environment(
            Env::promote_any("prod", loopback_port(), &["prep", "hotfix"])
                .set("windows", "[\"Mon-Fri 09:00-16:00 Europe/Zurich\"]"),
        )
        .environment(Env::hotfix("hotfix", loopback_port(), "prod"))
        .render()
}

/// A temp git repository with hifi set up.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    /// main with the service and `hifi.toml`, and a branch `feature/a`.
    pub fn new() -> Repo {
        Repo::with_config(&config())
    }

    /// [`Repo::new`] with another `hifi.toml`.
    pub fn with_config(config: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        hifi_testkit::repo::one_service(dir.path(), config);
        Repo { dir }
    }

    /// Commits everything in the work tree on the current branch.
    pub fn commit(&self, message: &str) {
        git(self.dir.path(), &["add", "-A"]);
        git(self.dir.path(), &["commit", "-q", "-m", message]);
    }

    /// Creates `branch` off main with one new file, main staying checked out.
    pub fn branch(&self, branch: &str, file: &str) {
        let root = self.dir.path();
        git(root, &["checkout", "-q", "-b", branch, "main"]);
        std::fs::write(root.join(file), "fixed\n").unwrap();
        self.commit(branch);
        git(root, &["checkout", "-q", "main"]);
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

/// Composes `env`, deploys what was composed there, and records it live
/// and verified as the control plane would; returns the release.
pub fn composed_live(p: &mut Project, env: &str) -> hifi_core::Release {
    let release = p.compose(&admin(), env, &mut |_| {}).unwrap().release;
    let started = p
        .deploy(&admin(), env, None, hifi_app::deploy::Start::default())
        .unwrap();
    goes_live(p, env, started.deployment.id);
    release
}

/// Records, as the control plane would, that `release` went live in `env`
/// (active in blue or green, the previous one kept as standby) and was
/// verified there.
pub fn goes_live(project: &Project, env: &str, id: i64) {
    let mut store = hifi_store::Store::open(&project.layout().db()).unwrap();
    hifi_store::testing::went_live(&mut store, env, id, project.now()).unwrap();
}
