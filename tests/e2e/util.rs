//! Shared helpers: a real git repository in a temp dir, driven through the
//! real `hifi` binary. Every git and hifi process ignores the user's global
//! and system git config, so tests see the same git wherever they run.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use hifi_testkit::{Config, Env, Service};
use serde_json::Value;
use tempfile::TempDir;

/// The environments most tests use: three composed from cards, and a
/// gated `prod` promoted from `prep`.
pub fn environments() -> Vec<Env> {
    vec![
        Env::cards("dev", 18100, "In Dev"),
        Env::cards("uat", 18200, "In Test"),
        Env::cards("prep", 18400, "Ready for Production"),
        Env::promote("prod", 18500, "prep").approvals(1),
    ]
}

/// One finished process: its exit status and what it printed.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    what: String,
}

impl Run {
    /// Asserts success; returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(self.status.success(), "{} failed: {self}", self.what);
        self.stdout
    }

    /// Asserts success; returns stderr (notes and progress).
    #[track_caller]
    pub fn ok_stderr(self) -> String {
        assert!(self.status.success(), "{} failed: {self}", self.what);
        self.stderr
    }

    /// Asserts exit `code`; returns stderr.
    #[track_caller]
    pub fn fails(self, code: i32) -> String {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{} should exit {code}: {self}",
            self.what
        );
        self.stderr
    }

    /// The exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

fn run(mut command: Command, what: String) -> Run {
    command
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("HIFI_LOG");
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        what,
    }
}

/// Runs `git args` in `dir`.
pub fn git_in(dir: &Path, args: &[&str]) -> Run {
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(args);
    run(command, format!("git {}", args.join(" ")))
}

/// Runs `hifi -C dir --as actor args`.
pub fn hifi_in(dir: &Path, actor: &str, args: &[&str]) -> Run {
    hifi_command(dir, actor, &[], args)
}

fn hifi_command(dir: &Path, actor: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hifi"));
    command
        .arg("-C")
        .arg(dir)
        .args(["--as", actor])
        .args(args)
        .envs(env.iter().copied());
    run(command, format!("hifi {}", args.join(" ")))
}

/// Runs `hifi args` against a team server, from a directory that holds no
/// project: `HIFI_SERVER=server`, and `HIFI_TOKEN=token` when given.
pub fn hifi_remote(server: &str, token: Option<&str>, args: &[&str]) -> Run {
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_hifi"));
    command
        .current_dir(elsewhere.path())
        .args(args)
        .env("HIFI_SERVER", server)
        .env_remove("HIFI_TOKEN");
    if let Some(token) = token {
        command.env("HIFI_TOKEN", token);
    }
    run(command, format!("hifi (remote) {}", args.join(" ")))
}

/// Parses JSON or fails the test showing the text.
#[track_caller]
pub fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// A git repository in a temp dir with a `hifi.toml` built up by the test.
pub struct TestProject {
    repo: TempDir,
    /// Outside the repository: the build log every counting build appends to.
    scratch: TempDir,
    services: Vec<Service>,
}

impl TestProject {
    /// `git init -b main` and nothing else: no commit, no files.
    pub fn empty() -> TestProject {
        let project = TestProject {
            repo: tempfile::tempdir().expect("temp dir"),
            scratch: tempfile::tempdir().expect("temp dir"),
            services: Vec::new(),
        };
        project.git(&["init", "-q", "-b", "main"]);
        project.git(&["config", "user.name", "Test Er"]);
        project.git(&["config", "user.email", "tester@example.com"]);
        project
    }

    /// A repository with one commit on `main` that ignores `.hifi/`.
    pub fn new() -> TestProject {
        let project = TestProject::empty();
        project.commit_files(
            "initial",
            &[("README", "shop\n"), (".gitignore", ".hifi/\n")],
        );
        project
    }

    /// Adds `services/NAME/app.py` (committed on main) and a `[[service]]`
    /// whose build appends NAME to the build log (see [`Self::builds`]).
    pub fn service(self, name: &str) -> TestProject {
        let counter = self.build_log();
        let build = format!(
            "echo {name} >> '{}' && echo artifact-of-{name} > built.txt",
            counter.display()
        );
        self.service_with_build(name, &build)
    }

    /// Adds a service with its own build command.
    pub fn service_with_build(mut self, name: &str, build: &str) -> TestProject {
        let path = format!("services/{name}/app.py");
        self.commit_files(
            &format!("add {name}"),
            &[(&path, &format!("print('{name}')\n"))],
        );
        self.services.push(Service::new(name).build(build));
        self
    }

    /// The start of a `hifi.toml`: project `shop` on `main` and the services
    /// added so far, for the test to add environments to and render.
    pub fn toml(&self) -> Config {
        Config::new("shop")
            .base("main")
            .services(self.services.iter().cloned())
    }

    /// Commits the services added so far with [`environments`] as `hifi.toml`.
    pub fn standard(self) -> TestProject {
        let text = self.toml().environments(environments()).render();
        self.config(&text)
    }

    /// Writes `text` as `hifi.toml` and commits it on main.
    pub fn config(self, text: &str) -> TestProject {
        self.commit_files("hifi config", &[("hifi.toml", text)]);
        self
    }

    /// Creates `branch` off main with `files` committed, and registers card `id` on it.
    pub fn card(self, id: &str, branch: &str, files: &[(&str, &str)]) -> TestProject {
        self.branch(branch, files);
        self.hifi(&["card", "add", id, "--branch", branch]).ok();
        self
    }

    /// Moves card `id` to `stage`.
    pub fn at(self, id: &str, stage: &str) -> TestProject {
        self.move_card(id, stage);
        self
    }

    /// `hifi card move id stage`, asserting success.
    pub fn move_card(&self, id: &str, stage: &str) {
        self.hifi(&["card", "move", id, stage]).ok();
    }

    /// Creates `branch` off main with `files` committed; main stays checked out.
    pub fn branch(&self, branch: &str, files: &[(&str, &str)]) {
        self.git(&["checkout", "-q", "-b", branch, "main"]);
        self.commit_files(&format!("work on {branch}"), files);
        self.git(&["checkout", "-q", "main"]);
    }

    /// Writes `files` and commits them on the current branch.
    pub fn commit_files(&self, message: &str, files: &[(&str, &str)]) {
        for (path, content) in files {
            self.write(path, content);
            self.git(&["add", "--", path]);
        }
        self.git(&["commit", "-q", "-m", message]);
    }

    /// Writes a file of the work tree (parents created), without committing.
    pub fn write(&self, path: &str, content: &str) {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    /// Reads a file of the work tree.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).expect("read")
    }

    /// The repository root.
    pub fn path(&self) -> &Path {
        self.repo.path()
    }

    /// The log every counting build appends its service name to.
    pub fn build_log(&self) -> PathBuf {
        self.scratch.path().join("builds.log")
    }

    /// How many times `service` was built.
    pub fn builds(&self, service: &str) -> usize {
        std::fs::read_to_string(self.build_log())
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == service)
            .count()
    }

    /// Runs git in the repository, asserting success; returns stdout.
    #[track_caller]
    pub fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args).ok()
    }

    /// `git rev-parse --verify` of `rev`, None when it does not resolve.
    pub fn rev(&self, rev: &str) -> Option<String> {
        let run = git_in(
            self.path(),
            &["rev-parse", "-q", "--verify", "--end-of-options", rev],
        );
        run.status.success().then(|| run.stdout.trim().to_string())
    }

    /// A file as committed at `rev`, None when it is not there.
    pub fn show(&self, rev: &str, path: &str) -> Option<String> {
        let run = git_in(self.path(), &["show", &format!("{rev}:{path}")]);
        run.status.success().then_some(run.stdout)
    }

    /// Every ref and what it points at.
    pub fn refs(&self) -> String {
        self.git(&["for-each-ref", "--format=%(refname) %(objectname)"])
    }

    /// Runs `hifi` as `tester` in the repository.
    pub fn hifi(&self, args: &[&str]) -> Run {
        hifi_in(self.path(), "tester", args)
    }

    /// Runs `hifi` with extra environment variables.
    pub fn hifi_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        hifi_command(self.path(), "tester", env, args)
    }

    /// Runs `hifi` as someone else.
    pub fn hifi_as(&self, actor: &str, args: &[&str]) -> Run {
        hifi_in(self.path(), actor, args)
    }

    /// Runs `hifi ARGS --json`, asserting success; returns the parsed report.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        parse_json(&self.hifi(&args).ok())
    }

    /// The card ids `hifi card list --json` reports, in its order.
    pub fn card_ids(&self) -> Vec<String> {
        self.json(&["card", "list"])
            .as_array()
            .expect("a list of cards")
            .iter()
            .map(|c| c["id"].as_str().expect("an id").to_string())
            .collect()
    }

    /// The releases, newest first.
    pub fn releases(&self) -> Vec<Value> {
        self.json(&["releases"])
            .as_array()
            .expect("a list of releases")
            .clone()
    }

    /// What hifi has recorded and every git ref: equal before and after a
    /// refused command means the command changed nothing.
    pub fn recorded(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.hifi(&["card", "list", "--json"]).ok(),
            self.hifi(&["releases", "--json"]).ok(),
            self.refs()
        )
    }
}

/// Asserts `text` contains every one of `needles`.
#[track_caller]
pub fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}
