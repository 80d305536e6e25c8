//! Real repositories in temporary directories.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hifi_git::{Oid, Repo};

/// A throw-away repository on branch `main`.
pub struct TestRepo {
    dir: tempfile::TempDir,
}

impl TestRepo {
    /// An empty repository (no commits).
    pub fn empty() -> TestRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = TestRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        // Local identity: the machine may have no global one.
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.git(&["config", "commit.gpgSign", "false"]);
        repo
    }

    /// A repository whose `main` has one commit with `files`.
    pub fn with_files(files: &[(&str, &str)]) -> TestRepo {
        let repo = TestRepo::empty();
        for (path, contents) in files {
            repo.write(path, contents);
        }
        repo.commit("initial");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn open(&self) -> Repo {
        Repo::open(self.path()).expect("open test repository")
    }

    /// Runs git in the repository, isolated from the machine's configuration.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_with(args, &[], None)
    }

    fn git_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> String {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(self.path())
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LC_ALL", "C")
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("run git");
        let input = stdin.unwrap_or_default().to_vec();
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || pipe.write_all(&input));
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    /// Writes a file in the work tree, creating directories.
    pub fn write(&self, path: &str, contents: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, contents).unwrap();
    }

    #[cfg(unix)]
    pub fn make_executable(&self, path: &str) {
        use std::os::unix::fs::PermissionsExt;
        let full = self.path().join(path);
        std::fs::set_permissions(full, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Commits everything in the work tree on the current branch.
    pub fn commit(&self, message: &str) -> Oid {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.oid("HEAD")
    }

    /// Creates branch `name` from `from` with one more commit writing
    /// `files`, using plumbing and a private index so that the work tree,
    /// the index and HEAD stay as they are.
    pub fn branch(&self, name: &str, from: &str, files: &[(&str, &str)]) -> Oid {
        let index = self
            .path()
            .join(".git")
            .join(format!("test-index-{}", name.replace('/', "-")));
        let index = index.to_str().unwrap();
        let env = [("GIT_INDEX_FILE", index)];
        self.git_with(&["read-tree", from], &env, None);
        for (path, contents) in files {
            let blob = self.git_with(
                &["hash-object", "-w", "--stdin"],
                &[],
                Some(contents.as_bytes()),
            );
            let info = format!("100644,{blob},{path}");
            self.git_with(&["update-index", "--add", "--cacheinfo", &info], &env, None);
        }
        let tree = self.git_with(&["write-tree"], &env, None);
        std::fs::remove_file(index).unwrap();
        let commit = self.git(&[
            "commit-tree",
            &tree,
            "-p",
            from,
            "-m",
            &format!("work on {name}"),
        ]);
        self.git(&["update-ref", &format!("refs/heads/{name}"), &commit]);
        commit.parse().unwrap()
    }

    pub fn oid(&self, rev: &str) -> Oid {
        self.git(&["rev-parse", "--verify", rev]).parse().unwrap()
    }

    /// The content of `path` in `tree_ish`.
    pub fn show(&self, tree_ish: &Oid, path: &str) -> String {
        self.git(&["cat-file", "blob", &format!("{tree_ish}:{path}")])
    }

    /// All refs and what they point at.
    pub fn refs(&self) -> String {
        self.git(&["for-each-ref", "--format=%(refname) %(objectname)"])
    }

    /// Everything a user could notice about their checkout.
    pub fn user_state(&self) -> UserState {
        UserState {
            status: self.git(&[
                "--no-optional-locks",
                "status",
                "--porcelain=v1",
                "--untracked-files=all",
            ]),
            head: self.git(&["symbolic-ref", "HEAD"]),
            head_commit: self.git(&["rev-parse", "HEAD"]),
            index: std::fs::read(self.path().join(".git/index")).unwrap(),
            files: files_under(self.path()),
            git_dir_entries: std::fs::read_dir(self.path().join(".git"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name != "objects" && name != "logs" && name != "refs")
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }
}

/// A snapshot of what a user sees of their checkout.
#[derive(Debug, PartialEq, Eq)]
pub struct UserState {
    status: String,
    head: String,
    head_commit: String,
    index: Vec<u8>,
    files: BTreeMap<PathBuf, (Vec<u8>, bool)>,
    git_dir_entries: Vec<String>,
}

/// Every file below `root` (except `.git`), relative, with its contents and
/// whether it is executable.
pub fn files_under(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, bool)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, bool)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.file_name().unwrap() == ".git" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_owned();
                out.insert(
                    relative,
                    (std::fs::read(&path).unwrap(), is_executable(&path)),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[cfg(unix)]
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
pub fn is_executable(_: &Path) -> bool {
    false
}
