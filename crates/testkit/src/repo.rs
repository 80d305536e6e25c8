//! Git repositories for tests, with git's own configuration of this
//! machine left out (no global or system config), so every test sees the
//! same git.

use std::path::Path;
use std::process::Command;

/// Runs `git -C dir ARGS`, panicking with git's output if it fails.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?} cannot run: {e}"));
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// Makes `root` a repository with one service: `main` holds
/// `services/api/app.py`, `hifi.toml` (`config`) and a `.gitignore` for
/// `.hifi/`; branch `feature/a` adds `services/api/a.txt`. Leaves `main`
/// checked out.
pub fn one_service(root: &Path, config: &str) {
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["config", "user.name", "Test"]);
    git(root, &["config", "user.email", "test@example.com"]);
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("a directory of the test repository");
        }
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    };
    write("services/api/app.py", "print('api')\n");
    write("hifi.toml", config);
    write(".gitignore", ".hifi/\n");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "api"]);
    git(root, &["checkout", "-q", "-b", "feature/a"]);
    write("services/api/a.txt", "a\n");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "a"]);
    git(root, &["checkout", "-q", "main"]);
}
